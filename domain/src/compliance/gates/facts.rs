//! What the pipeline is given: the message, the facts loaded for it, and
//! the policy that is settings.

use super::*;

/// Why the message is being sent: decides which human authorization stands
/// behind it and which gates apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// A campaign message; authorized by the campaign's approval.
    Campaign,
    /// An API or scheduled send; authorized by an approved automation.
    Automation,
    /// A staff member's own reply in the inbox.
    InboxReply,
    /// The SMS fallback of another message; inherits its authorization.
    Fallback,
    /// The fixed reply to a person's own keyword (STOP confirmation, HELP).
    /// Goes even to a suppressed person: it answers what they just sent.
    ComplianceReply,
    /// A double opt-in confirmation request for a consent that is pending.
    OptInConfirmation,
}

/// What is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageContent {
    FreeForm,
    Template {
        name: String,
        /// The variable names the caller supplied.
        supplied: Vec<String>,
    },
}

/// The message as the pipeline sees it.
#[derive(Debug, Clone)]
pub struct MessageFacts {
    pub channel: Channel,
    /// The address as given; `recipient` is its parsed form.
    pub raw_to: String,
    pub recipient: Option<PhoneNumber>,
    pub content: MessageContent,
    pub purpose: Purpose,
    /// What it is sent for, by name (`marketing`, `service`, ...): the
    /// purpose it names, else its template's. `None`: it names none.
    pub consent_purpose: Option<String>,
}

pub use heimdall_codes::ConsentStatus;

/// The latest consent record for the recipient and channel that covers
/// the message's purpose.
#[derive(Debug, Clone)]
pub struct ConsentFact {
    pub status: ConsentStatus,
    pub source: String,
    pub captured_at: DateTime<Utc>,
    /// The purpose it names; `None`: recorded before purposes existed,
    /// covering the purposes that existed then.
    pub purpose: Option<String>,
}

/// The message's purpose as staff defined it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurposeFact {
    pub name: String,
    /// A marketing purpose: a marketing opt-out stops it.
    pub marketing: bool,
}

#[derive(Debug, Clone)]
pub struct SuppressionFact {
    pub reason: String,
    pub since: DateTime<Utc>,
    /// Only marketing templates are stopped (Meta's 131050: the person
    /// stopped marketing messages, not the conversation).
    pub marketing_only: bool,
    /// Only this purpose is stopped (the person withdrew it).
    pub purpose: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TemplateCategory {
    Utility,
    Marketing,
    Authentication,
}

#[derive(Debug, Clone)]
pub struct TemplateFact {
    pub name: String,
    /// approved, pending, rejected, paused, disabled, unknown
    pub approval_status: heimdall_codes::TemplateApproval,
    pub category: TemplateCategory,
    pub variable_names: Vec<String>,
    /// What the template sends and for what (provider id, body, language, category,
    /// variables, purpose), hashed: a campaign's approval binds to it.
    pub digest: String,
}

/// The human decision behind the message, as loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    /// A campaign and who wrote and approved it.
    Campaign {
        status: heimdall_codes::CampaignStatus,
        /// Everyone who wrote or changed the content, audience or schedule.
        authors: Vec<String>,
        approved_by: Option<String>,
        /// The template digest the approver approved ([`TemplateFact::digest`]).
        approved_template: Option<String>,
    },
    /// An automation (API key) and its approval and templates.
    Automation {
        name: String,
        approved: bool,
        approved_by: Option<String>,
        templates: Vec<String>,
        /// Approved for free-form replies inside the 24-hour window.
        free_form: bool,
    },
    /// A staff member replying in the inbox.
    Staff { user: String, may_reply: bool },
    /// The system itself, for compliance replies and opt-in confirmations.
    System,
    /// Nothing was found.
    None { why: String },
}

/// The sender and whether an admin activated it.
#[derive(Debug, Clone)]
pub struct SenderFact {
    pub address: Option<String>,
    pub active: bool,
    /// Paused after a fault of ours (63007, 131048), with the reason: its
    /// messages wait until an admin re-activates it.
    pub paused: Option<String>,
}

/// Messaging tier usage (WhatsApp, business-initiated outside a window).
#[derive(Debug, Clone)]
pub struct TierFact {
    /// Unique people reached in the moving 24 hours.
    pub used: u64,
    /// `None` is unlimited.
    pub limit: Option<u64>,
    /// This recipient is already among them (sending again costs nothing).
    pub recipient_counted: bool,
    /// When the oldest counted person leaves the moving window.
    pub next_free_at: Option<DateTime<Utc>>,
}

/// Everything the pipeline needs, loaded by the caller.
#[derive(Debug, Clone)]
pub struct LoadedFacts {
    /// The message's purpose as defined (`None`: it names none, or one
    /// that is not defined).
    pub purpose: Option<PurposeFact>,
    pub consent: Option<ConsentFact>,
    pub suppression: Option<SuppressionFact>,
    /// When the customer-service window for this channel closes, if open or
    /// last opened.
    pub window_expires_at: Option<DateTime<Utc>>,
    pub template: Option<TemplateFact>,
    pub authorization: Authorization,
    pub sender: SenderFact,
    /// The recipient's local time zone(s), for quiet hours.
    pub time_zone: LocalZones,
    pub tier: TierFact,
    /// The earliest time the next message may go to this recipient (pace);
    /// `None` when it may go now.
    pub recipient_next_at: Option<DateTime<Utc>>,
}

/// Where a recipient's local time comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum LocalZones {
    /// The contact's own time zone.
    Contact(chrono_tz::Tz),
    /// Inferred from the number: every zone its prefix may be in (a number
    /// that spans zones takes the most restrictive hours).
    Inferred {
        zones: &'static [chrono_tz::Tz],
        prefix: &'static str,
    },
    /// The setting `HEIMDALL_DEFAULT_TIME_ZONE` (nothing better known).
    Default(chrono_tz::Tz),
}

impl LocalZones {
    pub fn zones(&self) -> &[chrono_tz::Tz] {
        match self {
            LocalZones::Contact(tz) | LocalZones::Default(tz) => std::slice::from_ref(tz),
            LocalZones::Inferred { zones, .. } => zones,
        }
    }

    /// The one zone to use where one is needed (a schedule's "07:00"): the
    /// contact's, or of the inferred ones the zone whose clock is furthest
    /// behind at `now`, so that a time of day there is no earlier than
    /// that time anywhere the person may be.
    pub fn primary(&self, now: DateTime<Utc>) -> chrono_tz::Tz {
        use chrono::Offset;
        self.zones()
            .iter()
            .copied()
            .min_by_key(|tz| now.with_timezone(tz).offset().fix().local_minus_utc())
            .unwrap_or(chrono_tz::UTC)
    }

    /// How the gates' details name it.
    pub fn describe(&self) -> String {
        match self {
            LocalZones::Contact(tz) => tz.to_string(),
            LocalZones::Default(tz) => format!("{tz} (default)"),
            LocalZones::Inferred { zones, prefix } => {
                let names: Vec<String> = zones.iter().map(|z| z.to_string()).collect();
                format!("{} (inferred from +{prefix})", names.join(", "))
            }
        }
    }
}

/// Rules that are settings.
#[derive(Debug, Clone)]
pub struct Policy {
    /// When SMS may be sent, local time.
    pub sms_hours: (NaiveTime, NaiveTime),
    /// When set, the only numbers anything may be sent to.
    pub allowlist: Option<std::sync::Arc<std::collections::BTreeSet<String>>>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            sms_hours: (
                NaiveTime::from_hms_opt(8, 0, 0).expect("valid"),
                NaiveTime::from_hms_opt(21, 0, 0).expect("valid"),
            ),
            allowlist: None,
        }
    }
}
