//! The gate pipeline: a pure function of the message, the facts loaded for
//! it and the clock. It returns every gate's verdict and one decision.
//!
//! It never reads the database, the network or the system clock, so the
//! same inputs always give the same decision and every rule can be tested
//! on its own. Loading the facts is [`crate::sending::outbound`]'s job; writing the
//! decision to the `tool_calls` audit log happens before any provider call.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Timelike, Utc};
use serde::{Deserialize, Serialize};

use crate::channel::Channel;
use crate::phone::PhoneNumber;

/// The gates and their stable reason codes (part of the outside contract)
/// live in `heimdall-codes`, which the console's browser build shares.
pub use heimdall_codes::Gate;

/// One gate's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Pass {
        detail: String,
    },
    /// The gate does not apply to this message (e.g. quiet hours on WhatsApp).
    NotApplicable {
        detail: String,
    },
    Block {
        detail: String,
    },
    Defer {
        until: DateTime<Utc>,
        detail: String,
    },
}

impl Verdict {
    fn pass(d: impl Into<String>) -> Self {
        Verdict::Pass { detail: d.into() }
    }
    fn na(d: impl Into<String>) -> Self {
        Verdict::NotApplicable { detail: d.into() }
    }
    fn block(d: impl Into<String>) -> Self {
        Verdict::Block { detail: d.into() }
    }
    pub fn detail(&self) -> &str {
        match self {
            Verdict::Pass { detail }
            | Verdict::NotApplicable { detail }
            | Verdict::Block { detail }
            | Verdict::Defer { detail, .. } => detail,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateVerdict {
    pub gate: Gate,
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// What happens to the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Pass,
    Block { reason: Gate },
    Defer { reason: Gate, until: DateTime<Utc> },
}

impl Decision {
    pub fn as_str(&self) -> &'static str {
        match self {
            Decision::Pass => "pass",
            Decision::Block { .. } => "block",
            Decision::Defer { .. } => "defer",
        }
    }
    pub fn reason(&self) -> Option<Gate> {
        match self {
            Decision::Pass => None,
            Decision::Block { reason } | Decision::Defer { reason, .. } => Some(*reason),
        }
    }
}

/// The pipeline's answer: the decision and every gate's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateDecision {
    pub decision: Decision,
    pub verdicts: Vec<GateVerdict>,
}

impl GateDecision {
    pub fn verdict(&self, gate: Gate) -> Option<&Verdict> {
        self.verdicts
            .iter()
            .find(|v| v.gate == gate)
            .map(|v| &v.verdict)
    }

    /// A one-line explanation for API errors and the console.
    pub fn explanation(&self) -> String {
        match self.decision {
            Decision::Pass => "all gates passed".into(),
            Decision::Block { reason } | Decision::Defer { reason, .. } => self
                .verdict(reason)
                .map(|v| v.detail().to_string())
                .unwrap_or_else(|| reason.code().to_string()),
        }
    }
}

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentStatus {
    Active,
    Pending,
    Revoked,
}

/// The latest consent record for the recipient and channel.
#[derive(Debug, Clone)]
pub struct ConsentFact {
    pub status: ConsentStatus,
    pub source: String,
    pub captured_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct SuppressionFact {
    pub reason: String,
    pub since: DateTime<Utc>,
    /// Only marketing templates are stopped (Meta's 131050: the person
    /// stopped marketing messages, not the conversation).
    pub marketing_only: bool,
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
    pub approval_status: String,
    pub category: TemplateCategory,
    pub variable_names: Vec<String>,
    /// What the template sends (provider id, body, language, category,
    /// variables), hashed: a campaign's approval binds to it.
    pub digest: String,
}

/// The human decision behind the message, as loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    /// A campaign and who wrote and approved it.
    Campaign {
        status: String,
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

/// Is the customer-service window open at `now`?
pub fn in_window(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    expires_at.is_some_and(|e| e > now)
}

/// Evaluate every gate. The decision is the first blocking gate in
/// [`Gate::ORDER`]; failing that, a defer until the latest time any
/// deferring gate names; failing that, pass.
pub fn evaluate(
    msg: &MessageFacts,
    facts: &LoadedFacts,
    now: DateTime<Utc>,
    policy: &Policy,
) -> GateDecision {
    let window_open = in_window(facts.window_expires_at, now);
    let verdicts: Vec<GateVerdict> = Gate::ORDER
        .iter()
        .map(|&gate| GateVerdict {
            gate,
            verdict: match gate {
                Gate::InvalidNumber => invalid_number(msg),
                Gate::NotAllowlisted => not_allowlisted(msg, policy),
                Gate::Suppressed => suppressed(msg, facts),
                Gate::NoConsent => no_consent(msg, facts, window_open),
                Gate::NotAuthorized => not_authorized(msg, facts, window_open),
                Gate::TemplateNotApproved => template_not_approved(msg, facts),
                Gate::OutsideWindow => outside_window(msg, facts, window_open, now),
                Gate::MarketingPaused => marketing_paused(msg, facts),
                Gate::SenderPaused => sender_paused(msg, facts),
                Gate::QuietHours => quiet_hours(msg, facts, now, policy),
                Gate::TierLimit => tier_limit(msg, facts, window_open, now),
                Gate::RateLimited => rate_limited(facts, now),
            },
        })
        .collect();
    let decision = decide(&verdicts);
    GateDecision { decision, verdicts }
}

fn decide(verdicts: &[GateVerdict]) -> Decision {
    if let Some(v) = verdicts
        .iter()
        .find(|v| matches!(v.verdict, Verdict::Block { .. }))
    {
        return Decision::Block { reason: v.gate };
    }
    verdicts
        .iter()
        .filter_map(|v| match v.verdict {
            Verdict::Defer { until, .. } => Some((v.gate, until)),
            _ => None,
        })
        .max_by_key(|(_, until)| *until)
        .map(|(reason, until)| Decision::Defer { reason, until })
        .unwrap_or(Decision::Pass)
}

fn invalid_number(msg: &MessageFacts) -> Verdict {
    match &msg.recipient {
        Some(p) => Verdict::pass(format!("{p} is a valid E.164 number")),
        None => Verdict::block(format!(
            "'{}' is not a valid E.164 phone number",
            msg.raw_to
        )),
    }
}

fn not_allowlisted(msg: &MessageFacts, policy: &Policy) -> Verdict {
    let (Some(list), Some(to)) = (&policy.allowlist, &msg.recipient) else {
        return Verdict::na("no phone allowlist is set");
    };
    if list.contains(to.as_str()) {
        Verdict::pass(format!("{to} is on the phone allowlist"))
    } else {
        Verdict::block(format!(
            "{to} is not on the phone allowlist; only listed numbers receive anything"
        ))
    }
}

/// Is the message a WhatsApp or SMS marketing template?
fn is_marketing(msg: &MessageFacts, facts: &LoadedFacts) -> bool {
    matches!(
        (&msg.content, &facts.template),
        (MessageContent::Template { .. }, Some(t)) if t.category == TemplateCategory::Marketing
    )
}

fn suppressed(msg: &MessageFacts, facts: &LoadedFacts) -> Verdict {
    match (&facts.suppression, &msg.purpose) {
        (Some(s), _) if s.marketing_only && !is_marketing(msg, facts) => Verdict::pass(format!(
            "the person stopped marketing messages ({}), and this is not marketing",
            s.reason
        )),
        (Some(s), Purpose::ComplianceReply) => Verdict::na(format!(
            "suppressed ({}), but this is the reply to the person's own keyword",
            s.reason
        )),
        (Some(s), _) => Verdict::block(format!(
            "the contact is suppressed on {} since {} ({})",
            msg.channel,
            s.since.format("%Y-%m-%d %H:%M UTC"),
            s.reason
        )),
        (None, _) => Verdict::pass("no suppression"),
    }
}

/// Whether the authorization behind a free-form message is one that may reply in a
/// conversation: staff in the inbox, or an automation approved for free-form replies.
fn allows_free_form_replies(authorization: &Authorization) -> bool {
    match authorization {
        Authorization::Staff { .. } => true,
        Authorization::Automation {
            approved,
            free_form,
            ..
        } => *approved && *free_form,
        _ => false,
    }
}

fn no_consent(msg: &MessageFacts, facts: &LoadedFacts, window_open: bool) -> Verdict {
    match msg.purpose {
        Purpose::ComplianceReply => {
            return Verdict::na("reply to the person's own keyword needs no opt-in")
        }
        Purpose::OptInConfirmation => {
            return match facts.consent.as_ref().map(|c| c.status) {
                Some(ConsentStatus::Pending) | Some(ConsentStatus::Active) => {
                    Verdict::pass("confirmation of a consent the person just gave")
                }
                _ => Verdict::block(format!("no pending {} opt-in to confirm", msg.channel)),
            }
        }
        // A reply inside the window to a person who wrote first, by staff or by an
        // automation an approver approved for it (the not_authorized gate checks which).
        Purpose::InboxReply | Purpose::Automation
            if window_open
                && msg.content == MessageContent::FreeForm
                && allows_free_form_replies(&facts.authorization) =>
        {
            if matches!(
                facts.consent.as_ref().map(|c| c.status),
                Some(ConsentStatus::Revoked)
            ) {
                return Verdict::block(format!(
                    "{} consent was revoked; the person must opt in again",
                    msg.channel
                ));
            }
            return Verdict::pass(
                "a reply inside the window to a person who wrote first (conversational consent)",
            );
        }
        _ => {}
    }
    match &facts.consent {
        Some(c) if c.status == ConsentStatus::Active => Verdict::pass(format!(
            "{} opt-in recorded {} via {}",
            msg.channel,
            c.captured_at.format("%Y-%m-%d"),
            c.source
        )),
        Some(c) if c.status == ConsentStatus::Pending => Verdict::block(format!(
            "{} opt-in via {} is waiting for the person's confirmation",
            msg.channel, c.source
        )),
        Some(_) => Verdict::block(format!("{} consent was revoked", msg.channel)),
        None => Verdict::block(format!(
            "no recorded {} opt-in for this person",
            msg.channel
        )),
    }
}

fn not_authorized(msg: &MessageFacts, facts: &LoadedFacts, window_open: bool) -> Verdict {
    if !facts.sender.active {
        return Verdict::block(match &facts.sender.address {
            Some(a) => format!(
                "the {} sender {a} has not been activated by an admin",
                msg.channel
            ),
            None => format!("no {} sender is configured", msg.channel),
        });
    }
    match (&facts.authorization, &msg.purpose) {
        (Authorization::System, Purpose::ComplianceReply | Purpose::OptInConfirmation) => {
            Verdict::pass("system reply required by the consent rules")
        }
        (
            Authorization::Campaign {
                status,
                authors,
                approved_by,
                approved_template,
            },
            Purpose::Campaign | Purpose::Fallback,
        ) => match approved_by {
            None => Verdict::block("the campaign has not been approved"),
            Some(a) if authors.contains(a) => {
                Verdict::block("the campaign was approved by one of its authors")
            }
            Some(_)
                if msg.purpose == Purpose::Campaign
                    && approved_template.is_some()
                    && facts.template.as_ref().map(|t| &t.digest) != approved_template.as_ref() =>
            {
                Verdict::block(
                    "the template changed since the campaign was approved (provider id, body, language, category or variables); it must be approved again",
                )
            }
            Some(_)
                if !heimdall_codes::CampaignStatus::parse(status)
                    .is_some_and(|s| s.authorizes_sending()) =>
            {
                Verdict::block(format!("the campaign is {status}"))
            }
            Some(a) => Verdict::pass(format!("campaign approved by {a}")),
        },
        (
            Authorization::Automation {
                name,
                approved,
                approved_by,
                free_form,
                ..
            },
            Purpose::Automation | Purpose::Fallback,
        ) => {
            if !approved {
                return Verdict::block(format!("the automation '{name}' is not approved"));
            }
            match &msg.content {
                MessageContent::Template { name: t, .. } => {
                    automation_template_verdict(&facts.authorization, t)
                }
                MessageContent::FreeForm if msg.purpose != Purpose::Fallback && !free_form => {
                    Verdict::block(format!(
                        "the automation '{name}' may only send approved templates"
                    ))
                }
                // Approved for replies: on WhatsApp the window gate refuses them once the
                // window has closed; SMS has no such gate, so the reply rule is kept here.
                MessageContent::FreeForm
                    if msg.purpose != Purpose::Fallback
                        && msg.channel == Channel::Sms
                        && !window_open =>
                {
                    Verdict::block(format!(
                        "the automation '{name}' may send free text only as a reply within 24 hours of the person's last message"
                    ))
                }
                MessageContent::FreeForm if msg.purpose != Purpose::Fallback => {
                    Verdict::pass(format!(
                        "automation '{name}' approved for free-form replies inside the window by {}",
                        approved_by.as_deref().unwrap_or("its configurer")
                    ))
                }
                _ => Verdict::pass(format!(
                    "automation '{name}' approved by {}",
                    approved_by.as_deref().unwrap_or("its configurer")
                )),
            }
        }
        (Authorization::Staff { user, may_reply }, Purpose::InboxReply | Purpose::Fallback) => {
            if *may_reply {
                Verdict::pass(format!("inbox reply by {user}"))
            } else {
                Verdict::block(format!("{user} may not reply to contacts"))
            }
        }
        (Authorization::None { why }, _) => Verdict::block(why.clone()),
        (auth, purpose) => Verdict::block(format!(
            "{purpose:?} is not authorized by {}",
            match auth {
                Authorization::Campaign { .. } => "a campaign",
                Authorization::Automation { .. } => "an automation",
                Authorization::Staff { .. } => "a staff member",
                Authorization::System => "the system",
                Authorization::None { .. } => "nothing",
            }
        )),
    }
}

fn template_not_approved(msg: &MessageFacts, facts: &LoadedFacts) -> Verdict {
    let (name, supplied) = match &msg.content {
        MessageContent::FreeForm => return Verdict::na("free-form text, no template"),
        MessageContent::Template { name, supplied } => (name, supplied),
    };
    let registered = facts
        .template
        .as_ref()
        .map(|t| (t.approval_status.as_str(), t.variable_names.as_slice()));
    let name = facts.template.as_ref().map_or(name, |t| &t.name);
    match template_problem(registered, supplied.iter().map(String::as_str)) {
        Some(TemplateProblem::NotRegistered) => {
            Verdict::block(format!("template '{name}' is not registered"))
        }
        Some(TemplateProblem::NotApproved { status }) => {
            Verdict::block(format!("template '{name}' is {status}, not approved"))
        }
        Some(TemplateProblem::Variables { missing, unknown }) => {
            if !missing.is_empty() {
                Verdict::block(format!(
                    "template '{name}' needs variable(s): {}",
                    missing.join(", ")
                ))
            } else {
                Verdict::block(format!(
                    "template '{name}' has no variable(s): {}",
                    unknown.join(", ")
                ))
            }
        }
        None => Verdict::pass(format!("template '{name}' is approved")),
    }
}

/// What is wrong with the template a message names, if anything: the rule
/// of the `template_not_approved` gate, also used by the checks made before
/// a message exists (a campaign's draft, a reminder, a schedule), each of
/// which words the problem for its own form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateProblem {
    NotRegistered,
    NotApproved {
        status: String,
    },
    /// `missing`: the template's variables not supplied; `unknown`:
    /// supplied names the template does not have. At least one is not empty.
    Variables {
        missing: Vec<String>,
        unknown: Vec<String>,
    },
}

/// `registered`: the template's approval status and variable names, if it
/// is registered; `supplied`: the variable names the message fills.
pub fn template_problem<'a>(
    registered: Option<(&str, &[String])>,
    supplied: impl IntoIterator<Item = &'a str>,
) -> Option<TemplateProblem> {
    let Some((status, variables)) = registered else {
        return Some(TemplateProblem::NotRegistered);
    };
    if status != "approved" {
        return Some(TemplateProblem::NotApproved {
            status: status.to_string(),
        });
    }
    let supplied: Vec<&str> = supplied.into_iter().collect();
    let missing: Vec<String> = variables
        .iter()
        .filter(|n| !supplied.contains(&n.as_str()))
        .cloned()
        .collect();
    let unknown: Vec<String> = supplied
        .iter()
        .filter(|s| !variables.iter().any(|v| v == *s))
        .map(|s| s.to_string())
        .collect();
    (!missing.is_empty() || !unknown.is_empty())
        .then_some(TemplateProblem::Variables { missing, unknown })
}

/// The automation's part of `not_authorized` for a template message: is the
/// automation approved, and approved for this template? Shared by the gate
/// and the checks made when a reminder or schedule is created.
pub fn automation_template_verdict(automation: &Authorization, template: &str) -> Verdict {
    match automation {
        Authorization::Automation {
            name,
            approved,
            approved_by,
            templates,
            ..
        } => {
            if !approved {
                Verdict::block(format!("the automation '{name}' is not approved"))
            } else if !templates.iter().any(|t| t == template) {
                Verdict::block(format!(
                    "the automation '{name}' is not approved for template '{template}'"
                ))
            } else {
                Verdict::pass(format!(
                    "automation '{name}' approved by {}",
                    approved_by.as_deref().unwrap_or("its configurer")
                ))
            }
        }
        _ => Verdict::block("no approved automation stands behind this API key"),
    }
}

fn outside_window(
    msg: &MessageFacts,
    facts: &LoadedFacts,
    window_open: bool,
    now: DateTime<Utc>,
) -> Verdict {
    if msg.channel != Channel::WhatsApp {
        return Verdict::na("SMS has no customer-service window");
    }
    match (&msg.content, window_open) {
        (MessageContent::Template { .. }, true) => Verdict::pass("template inside the window"),
        (MessageContent::Template { .. }, false) => {
            Verdict::pass("approved templates may open a conversation")
        }
        (MessageContent::FreeForm, true) => {
            let left = facts
                .window_expires_at
                .map(|e| e - now)
                .unwrap_or_else(Duration::zero);
            Verdict::pass(format!(
                "inside the 24-hour window ({}h{:02}m left)",
                left.num_hours(),
                left.num_minutes() % 60
            ))
        }
        (MessageContent::FreeForm, false) if msg.purpose == Purpose::ComplianceReply => {
            Verdict::pass("reply to the person's own message")
        }
        (MessageContent::FreeForm, false) => Verdict::block(match facts.window_expires_at {
            Some(e) => format!(
                "the 24-hour window closed at {}; only an approved template may go",
                e.format("%Y-%m-%d %H:%M UTC")
            ),
            None => "the person has never written; only an approved template may go".into(),
        }),
    }
}

fn marketing_paused(msg: &MessageFacts, facts: &LoadedFacts) -> Verdict {
    if msg.channel != Channel::WhatsApp || !is_marketing(msg, facts) {
        return Verdict::na("not a WhatsApp marketing template");
    }
    match &msg.recipient {
        Some(p) if p.is_us() => Verdict::block(
            "Meta does not deliver WhatsApp MARKETING templates to US numbers; use SMS where consented",
        ),
        _ => Verdict::pass("marketing template to a number outside the US"),
    }
}

/// A sender paused after a fault of ours holds its messages (nothing is
/// dropped) until an admin fixes and re-activates it.
fn sender_paused(msg: &MessageFacts, facts: &LoadedFacts) -> Verdict {
    match &facts.sender.paused {
        None => Verdict::pass("the sender is not paused"),
        Some(why) => Verdict::Defer {
            until: sender_paused_until(),
            detail: format!(
                "the {} sender {} is paused ({why}); held until an admin re-activates it",
                msg.channel,
                facts.sender.address.as_deref().unwrap_or("?")
            ),
        },
    }
}

/// A held message's `defer_until` while its sender is paused: far enough
/// that nothing sends it before the sender is re-activated.
pub fn sender_paused_until() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2999, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn quiet_hours(
    msg: &MessageFacts,
    facts: &LoadedFacts,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Verdict {
    if msg.channel != Channel::Sms {
        return Verdict::na("quiet hours apply to SMS");
    }
    if msg.purpose == Purpose::ComplianceReply {
        return Verdict::na("immediate reply to the person's own keyword");
    }
    let zones = facts.time_zone.zones();
    let (start, end) = policy.sms_hours;
    // Local times in every zone the person may be in.
    let clocks = zones
        .iter()
        .map(|tz| {
            let t = now.with_timezone(tz).time();
            format!("{:02}:{:02}", t.hour(), t.minute())
        })
        .collect::<Vec<_>>()
        .join(" / ");
    let place = facts.time_zone.describe();
    if crate::time_zones::within_hours_everywhere(zones, now, start, end) {
        return Verdict::pass(format!("{clocks} in {place} is within sending hours"));
    }
    let until = crate::time_zones::next_within_hours_everywhere(zones, now, start, end)
        .unwrap_or(now + Duration::hours(1));
    Verdict::Defer {
        until,
        detail: format!(
            "{clocks} in {place} is outside {}-{}; held until {}",
            start.format("%H:%M"),
            end.format("%H:%M"),
            until.format("%Y-%m-%d %H:%M UTC")
        ),
    }
}

/// The UTC instant of a local wall-clock time, skipping forward over a gap
/// (a daylight-saving spring-forward) and taking the earlier of two
/// instants in an overlap.
pub fn next_local_time(
    tz: chrono_tz::Tz,
    day: chrono::NaiveDate,
    time: NaiveTime,
) -> Option<DateTime<Utc>> {
    let mut naive = day.and_time(time);
    for _ in 0..4 {
        match tz.from_local_datetime(&naive) {
            chrono::LocalResult::Single(t) => return Some(t.with_timezone(&Utc)),
            chrono::LocalResult::Ambiguous(a, _) => return Some(a.with_timezone(&Utc)),
            chrono::LocalResult::None => naive += Duration::minutes(30),
        }
    }
    None
}

fn tier_limit(
    msg: &MessageFacts,
    facts: &LoadedFacts,
    window_open: bool,
    now: DateTime<Utc>,
) -> Verdict {
    let business_initiated = msg.channel == Channel::WhatsApp
        && matches!(msg.content, MessageContent::Template { .. })
        && !window_open;
    if !business_initiated {
        return Verdict::na("not a business-initiated WhatsApp conversation");
    }
    let tier = &facts.tier;
    match tier.limit {
        None => Verdict::pass("unlimited messaging tier"),
        Some(_) if tier.recipient_counted => Verdict::pass(format!(
            "recipient already counted in the moving 24 hours ({} of {})",
            tier.used,
            tier.limit.map(|l| l.to_string()).unwrap_or_default()
        )),
        Some(limit) if tier.used < limit => Verdict::pass(format!(
            "{} of {limit} unique people in the moving 24 hours",
            tier.used
        )),
        Some(limit) => Verdict::Defer {
            until: tier.next_free_at.unwrap_or(now + Duration::hours(1)),
            detail: format!(
                "messaging tier reached: {} of {limit} unique people in the moving 24 hours",
                tier.used
            ),
        },
    }
}

fn rate_limited(facts: &LoadedFacts, now: DateTime<Utc>) -> Verdict {
    match facts.recipient_next_at {
        Some(at) if at > now => Verdict::Defer {
            until: at,
            detail: format!(
                "one message per person at a time: next at {}",
                at.format("%H:%M:%S UTC")
            ),
        },
        _ => Verdict::pass("within the sender's and the recipient's pace"),
    }
}

#[cfg(test)]
mod tests;
