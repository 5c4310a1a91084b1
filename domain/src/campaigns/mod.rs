//! Campaigns: one approved template sent to an audience (contacts with
//! given tags, or a list of numbers uploaded as CSV), written by one staff
//! member and approved by another, then fanned out into messages exactly
//! once.
//!
//! ```text
//! draft ─submit─> submitted ─approve─> approved ─fan-out─> sending ─all settled─> completed
//!   ^               │    │                  ^
//!   │               │    └─approve (time ahead)─> scheduled ─time comes─┘
//!   └─edit─ rejected <─reject─┘
//! approved / scheduled / sending ─pause─> paused ─resume─> (where it was)
//! anything but completed ─cancel─> cancelled
//! ```
//!
//! The diagram is one table, `CampaignStatus::apply` (in `heimdall-codes`,
//! which the console asks which actions to offer). Every status change is
//! a compare-and-set on the current status and writes a
//! `campaign_approvals` row (and, for staff, a staff audit row) in
//! the same transaction, so two approvers clicking at once cannot both win.
//!
//! This module must never send anything itself: every message goes through
//! [`outbound::accept`] (gates and audit) with an idempotency key per
//! recipient, which is what makes a repeated or resumed fan-out harmless.
//! It must never let a campaign's author approve it, whatever a client
//! claims: whoever created the campaign or later changed its content,
//! audience or schedule is one of its `authors`, and the approver must be
//! none of them. An approval binds to what the approver reviewed: a hash
//! of the template (provider id, body, language, category, variables, purpose), the
//! variable mapping, the audience (the tag query with its count, or the
//! list of numbers) and the schedule ([`ContentSnapshot`]). A campaign whose
//! content no longer matches at fan-out goes back to review, with an alert.
//!
//! One file per part: `validate` (a draft's checks), `records` (reading
//! and writing stored campaigns), `lifecycle` (create to cancel), `review`
//! (recipients, samples, dry run, cost), `fan_out` (messages, scheduled
//! start, completion), `progress`. Everything is used as `campaigns::name`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, TimeZone, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};

use crate::access::accounts::{Role, StaffUser};
use crate::access::authz;
use crate::alerts;
use crate::audit;
use crate::channel::Channel;
use crate::channels::formatting::sms_segments;
use crate::clock::new_id;
use crate::compliance::gates::{self, Authorization, ConsentStatus, Decision, TemplateCategory};
use crate::compliance::message_state::MessageState;
use crate::contacts::{self, Contact};
use crate::entities::{campaign, campaign_approval, contact, outbound_message, staff_user};
use crate::phone::PhoneNumber;
use crate::sending::outbound::{
    self, AcceptError, Origin, Recipient, RequestedContent, SendRequest,
};
use crate::sending::state::moving;
use crate::templates::{self, Template};
use crate::Core;

mod fan_out;
mod lifecycle;
mod progress;
mod records;
mod review;
mod validate;

pub use fan_out::*;
pub use lifecycle::*;
pub use progress::*;
pub use records::*;
pub use review::*;
pub use validate::*;

// ---------------------------------------------------------------------------
// Types

/// Who a campaign goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Audience {
    /// Every contact with at least one of these tags.
    Tags { tags: Vec<String> },
    /// These numbers (an uploaded CSV); each must be a contact with an
    /// active consent for the channel.
    Phones { phones: Vec<String> },
}

/// Where a template variable's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VariableSource {
    /// A contact field: `name`, `phone`, or a key of the contact's attributes.
    Field(String),
    /// The same text for everyone.
    Value(String),
}

/// What the author writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CampaignDraft {
    pub name: String,
    pub channel: Channel,
    pub template_name: String,
    pub audience: Audience,
    pub variables: BTreeMap<String, VariableSource>,
    /// None = send on approval
    pub scheduled_at: Option<DateTime<Utc>>,
}

/// A campaign's states and the one table of its transitions live in
/// `heimdall-codes` (the console asks it which actions to offer).
pub use heimdall_codes::{CampaignAction, CampaignStatus};

/// The status `action` leads to from `from`, or the error that names both.
fn next_status(
    from: CampaignStatus,
    action: CampaignAction,
) -> Result<CampaignStatus, CampaignError> {
    from.apply(action).ok_or(CampaignError::InvalidTransition {
        from,
        action: action.name(),
    })
}

/// One entry of a campaign's history.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalEvent {
    /// The staff member's email, or `system` for the fan-out and completion.
    pub actor_email: String,
    /// submitted, approved, rejected, paused, resumed, cancelled, reopened
    /// (a rejected draft edited), started (a scheduled time came), sending,
    /// completed.
    pub decision: String,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

/// A campaign as the console shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CampaignView {
    pub id: String,
    pub name: String,
    pub channel: Channel,
    pub template_name: String,
    /// UTILITY, MARKETING or AUTHENTICATION.
    pub template_category: String,
    pub audience: Audience,
    pub variables: BTreeMap<String, VariableSource>,
    pub status: CampaignStatus,
    /// The author's staff user id.
    pub created_by: String,
    /// Everyone who wrote or changed it (staff user ids): none may approve.
    pub authors: Vec<String>,
    pub created_by_email: Option<String>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub approved_by: Option<String>,
    pub approved_by_email: Option<String>,
    pub approved_at: Option<DateTime<Utc>>,
    pub rejection_reason: Option<String>,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub fanned_out_at: Option<DateTime<Utc>>,
    /// When the fan-out had accepted a message for every recipient.
    pub fan_out_finished_at: Option<DateTime<Utc>>,
    /// How many recipients the fan-out found.
    pub recipients: Option<u32>,
    pub completed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Oldest first.
    pub history: Vec<ApprovalEvent>,
}

#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    #[error("no such campaign")]
    NotFound,
    /// The actor's role does not allow this.
    #[error("{0}")]
    Forbidden(String),
    #[error("a campaign must be approved or rejected by someone other than its authors (whoever wrote or changed it)")]
    SelfApproval,
    /// The campaign changed since the approver's review: nothing was approved.
    #[error("the campaign changed since you reviewed it ({0}); review it again")]
    Changed(String),
    #[error("cannot {action} a campaign that is {from}")]
    InvalidTransition {
        from: CampaignStatus,
        action: &'static str,
    },
    /// Bad input, with the field it is about (`name`, `template_name`,
    /// `variables`, `audience`, `audience.phones`, `scheduled_at`...).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A number of a `Phones` audience that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusedNumber {
    /// As given.
    pub number: String,
    pub why: String,
}

/// The review screen: who would get what, and what the gates would say.
#[derive(Debug, Clone, Serialize)]
pub struct Review {
    pub campaign_id: String,
    /// Recipients found (contacts).
    pub audience_size: usize,
    pub samples: Vec<SampleRender>,
    pub dry_run: DryRun,
    pub estimated_cost: Cost,
    /// Mapped contact fields missing for some recipients (sent empty).
    pub missing_fields: BTreeMap<String, usize>,
    /// Numbers of a `Phones` audience that no longer match a contact.
    pub unresolved: Vec<RefusedNumber>,
    /// What an approval of this review binds to ([`ContentSnapshot::hash`]).
    pub content_hash: String,
}

/// What an approval binds to: everything that decides who gets what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentSnapshot {
    pub channel: Channel,
    pub template_name: String,
    /// [`Template::digest`]: provider id, body, language, category, variables, purpose.
    pub template_digest: String,
    pub variables: BTreeMap<String, VariableSource>,
    pub audience: Audience,
    /// How many contacts the audience resolved to.
    pub audience_count: usize,
    pub scheduled_at: Option<DateTime<Utc>>,
}

impl ContentSnapshot {
    /// SHA-256 of the snapshot's canonical JSON (maps are sorted).
    pub fn hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let json = serde_json::to_string(self).unwrap_or_default();
        hex::encode(Sha256::digest(json.as_bytes()))
    }

    /// What differs from `other`, in words, for the history and alerts.
    pub fn differences(&self, other: &ContentSnapshot) -> String {
        let mut out = Vec::new();
        if self.channel != other.channel {
            out.push("the channel".to_string());
        }
        if self.template_name != other.template_name {
            out.push("the template".to_string());
        } else if self.template_digest != other.template_digest {
            out.push(
                "the template's content or purpose (provider id, body, language, category or purpose)".to_string(),
            );
        }
        if self.variables != other.variables {
            out.push("the variable mapping".to_string());
        }
        if self.audience != other.audience {
            out.push("the audience".to_string());
        } else if self.audience_count != other.audience_count {
            out.push(format!(
                "the audience's size ({} approved, {} now)",
                other.audience_count, self.audience_count
            ));
        }
        if self.scheduled_at != other.scheduled_at {
            out.push("the schedule".to_string());
        }
        if out.is_empty() {
            "nothing visible".into()
        } else {
            out.join(", ")
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SampleRender {
    pub contact_id: String,
    /// Masked with [`outbound::mask`].
    pub phone: String,
    pub name: Option<String>,
    /// The template rendered with this contact's variables.
    pub text: String,
}

/// The gate pipeline run for every recipient as if the campaign were
/// approved by someone other than its author, writing nothing.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DryRun {
    pub would_pass: usize,
    /// Reason code -> recipients. `marketing_paused` counts the +1 numbers
    /// Meta will not deliver a WhatsApp MARKETING template to.
    pub would_block: BTreeMap<String, usize>,
    pub would_defer: BTreeMap<String, usize>,
}

/// An estimate from [`PRICES`], never a bill.
#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    /// Average per billable message.
    pub per_message: f64,
    pub currency: &'static str,
    pub total: f64,
    /// Messages that would be sent (passing or deferred).
    pub billable_messages: usize,
    /// SMS only: segments over all billable messages.
    pub sms_segments: Option<usize>,
}

/// One line of the price table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub channel: Channel,
    /// `None`: any category.
    pub category: Option<TemplateCategory>,
    /// USD per message, or per segment when `per_segment`.
    pub usd: f64,
    pub per_segment: bool,
}

/// ESTIMATES ONLY, in USD, for the campaign review screen: typical list
/// prices (WhatsApp per template message by category, SMS per 160-character
/// segment). Real prices depend on the destination country, volume and the
/// provider's invoice; nothing is billed from this table.
pub const PRICES: &[Price] = &[
    Price {
        channel: Channel::WhatsApp,
        category: Some(TemplateCategory::Utility),
        usd: 0.0080,
        per_segment: false,
    },
    Price {
        channel: Channel::WhatsApp,
        category: Some(TemplateCategory::Marketing),
        usd: 0.0250,
        per_segment: false,
    },
    Price {
        channel: Channel::WhatsApp,
        category: Some(TemplateCategory::Authentication),
        usd: 0.0135,
        per_segment: false,
    },
    Price {
        channel: Channel::Sms,
        category: None,
        usd: 0.0079,
        per_segment: true,
    },
];

/// The price line for a channel and template category.
pub fn price_for(channel: Channel, category: TemplateCategory) -> Price {
    PRICES
        .iter()
        .find(|p| p.channel == channel && p.category.is_none_or(|c| c == category))
        .copied()
        .unwrap_or(PRICES[0])
}

/// Where a campaign's messages stand.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub status: CampaignStatus,
    /// Messages created so far.
    pub total: usize,
    /// Recipients the fan-out found (once it finished).
    pub recipients: Option<usize>,
    pub by_state: BTreeMap<String, usize>,
    pub by_block_reason: BTreeMap<String, usize>,
    /// Delivered (or read) over messages handed to the provider.
    pub delivered_rate: f64,
    /// Read over messages handed to the provider.
    pub read_rate: f64,
    /// Newest 50 failed or undelivered messages.
    pub failures: Vec<FailureRow>,
}

/// A failed message, for progress and the dashboard.
#[derive(Debug, Clone, Serialize)]
pub struct FailureRow {
    pub message_id: String,
    pub phone_masked: String,
    pub error_code: Option<i32>,
    /// What the error means (from the error table).
    pub meaning: Option<String>,
    pub at: DateTime<Utc>,
}

/// What one fan-out run did.
#[derive(Debug, Clone, Serialize)]
pub struct FanOutReport {
    pub campaign_id: String,
    /// This run moved the campaign to `sending` (false: it continued one
    /// already sending, or found nothing to do).
    pub claimed: bool,
    /// The campaign's status when the run ended.
    pub status: CampaignStatus,
    pub recipients: usize,
    /// Messages this run created.
    pub created: usize,
    /// Recipients that already had their message (an earlier or parallel run).
    pub existing: usize,
    /// Recipients that could not be addressed (contact gone).
    pub skipped: usize,
    /// Every recipient has its message.
    pub finished: bool,
    /// States of the messages this run created.
    pub by_state: BTreeMap<String, usize>,
}

// ---------------------------------------------------------------------------
// Constants

/// What a paused campaign's waiting messages are marked with (their
/// `block_reason`, shown as why they wait) and held until.
pub const PAUSED_REASON: &str = heimdall_codes::CAMPAIGN_PAUSED;

/// A paused message's `defer_until`: far enough that nothing sends it
/// before a resume releases it.
pub fn paused_until() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2999, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// How often (in recipients) a running fan-out shows it is alive.
const CHECK_EVERY: usize = 20;

/// After this long without a sign of life, housekeeping enqueues an
/// approved campaign's or an unfinished fan-out's job again. A running
/// fan-out shows it is alive every [`CHECK_EVERY`] recipients (well under a
/// second); a second run of a live one is harmless (idempotency keys), so
/// this is short: a fan-out whose worker died resumes within two minutes
/// (housekeeping looks every minute).
const STALE_AFTER: Duration = Duration::minutes(1);

const MAX_NAME: usize = 200;
const MAX_PHONES: usize = 100_000;
const MAX_SAMPLES: usize = 50;
const SYSTEM: &str = "system";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for s in CampaignStatus::ALL {
            assert_eq!(CampaignStatus::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert!("bogus".parse::<CampaignStatus>().is_err());
    }

    #[test]
    fn audiences_read_both_shapes() {
        let tags = Audience::Tags {
            tags: vec!["vip".into()],
        };
        assert_eq!(parse_audience(&serde_json::to_string(&tags).unwrap()), tags);
        assert_eq!(
            parse_audience(r#"{"phones": ["+4791234567"]}"#),
            Audience::Phones {
                phones: vec!["+4791234567".into()]
            }
        );
        assert_eq!(
            parse_audience(r#"{"tags": ["a"]}"#),
            Audience::Tags {
                tags: vec!["a".into()]
            }
        );
        assert_eq!(parse_audience("garbage"), Audience::Tags { tags: vec![] });
    }

    #[test]
    fn variable_sources_serialise_as_documented() {
        assert_eq!(
            serde_json::to_string(&VariableSource::Field("name".into())).unwrap(),
            r#"{"field":"name"}"#
        );
        assert_eq!(
            serde_json::to_string(&VariableSource::Value("x".into())).unwrap(),
            r#"{"value":"x"}"#
        );
    }

    #[test]
    fn variables_come_from_fields_attributes_and_values() {
        let c = Contact {
            id: "c1".into(),
            phone: "+4791234567".into(),
            name: Some("Ada".into()),
            time_zone: None,
            time_zone_inferred: None,
            locale: None,
            tags: vec![],
            attributes: [("city".to_string(), "Oslo".to_string())].into(),
            needs_manual_outreach: false,
            manual_outreach_reason: None,
            created_at: Utc::now(),
        };
        let mapping: BTreeMap<String, VariableSource> = [
            ("a".to_string(), VariableSource::Field("name".into())),
            ("b".to_string(), VariableSource::Field("phone".into())),
            ("c".to_string(), VariableSource::Field("city".into())),
            ("d".to_string(), VariableSource::Value("fixed".into())),
            ("e".to_string(), VariableSource::Field("missing".into())),
        ]
        .into();
        let (values, missing) = variables_for(&mapping, &c);
        assert_eq!(values["a"], "Ada");
        assert_eq!(values["b"], "+4791234567");
        assert_eq!(values["c"], "Oslo");
        assert_eq!(values["d"], "fixed");
        assert_eq!(values["e"], "");
        assert_eq!(missing, vec!["missing".to_string()]);
    }

    #[test]
    fn prices_are_looked_up_by_channel_and_category() {
        assert_eq!(
            price_for(Channel::WhatsApp, TemplateCategory::Marketing).usd,
            0.0250
        );
        assert_eq!(
            price_for(Channel::WhatsApp, TemplateCategory::Utility).usd,
            0.0080
        );
        assert_eq!(
            price_for(Channel::WhatsApp, TemplateCategory::Authentication).usd,
            0.0135
        );
        let sms = price_for(Channel::Sms, TemplateCategory::Marketing);
        assert_eq!(sms.usd, 0.0079);
        assert!(sms.per_segment);
    }
}
