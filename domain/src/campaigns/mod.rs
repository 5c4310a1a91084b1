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
//! Every status change is a compare-and-set on the current status and
//! writes a `campaign_approvals` row (and, for staff, a staff audit row) in
//! the same transaction, so two approvers clicking at once cannot both win.
//!
//! This module must never send anything itself: every message goes through
//! [`outbound::accept`] (gates and audit) with an idempotency key per
//! recipient, which is what makes a repeated or resumed fan-out harmless.
//! It must never let a campaign's author approve it, whatever a client
//! claims: whoever created the campaign or later changed its content,
//! audience or schedule is one of its `authors`, and the approver must be
//! none of them. An approval binds to what the approver reviewed: a hash
//! of the template (provider id, body, language, category, variables), the
//! variable mapping, the audience (the tag query with its count, or the
//! list of numbers) and the schedule ([`ContentSnapshot`]). A campaign whose
//! content no longer matches at fan-out goes back to review, with an alert.

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
use crate::templates::{self, Template};
use crate::Core;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    Draft,
    Submitted,
    Approved,
    Rejected,
    Scheduled,
    Sending,
    Paused,
    Completed,
    Cancelled,
}

impl CampaignStatus {
    pub const ALL: [CampaignStatus; 9] = [
        CampaignStatus::Draft,
        CampaignStatus::Submitted,
        CampaignStatus::Approved,
        CampaignStatus::Rejected,
        CampaignStatus::Scheduled,
        CampaignStatus::Sending,
        CampaignStatus::Paused,
        CampaignStatus::Completed,
        CampaignStatus::Cancelled,
    ];

    /// The stored name (also what the gates read).
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Draft => "draft",
            CampaignStatus::Submitted => "submitted",
            CampaignStatus::Approved => "approved",
            CampaignStatus::Rejected => "rejected",
            CampaignStatus::Scheduled => "scheduled",
            CampaignStatus::Sending => "sending",
            CampaignStatus::Paused => "paused",
            CampaignStatus::Completed => "completed",
            CampaignStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<CampaignStatus> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Nothing more can happen to the campaign.
    pub fn is_terminal(self) -> bool {
        matches!(self, CampaignStatus::Completed | CampaignStatus::Cancelled)
    }
}

impl std::fmt::Display for CampaignStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for CampaignStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s.trim()).ok_or_else(|| format!("unknown campaign status '{}'", s.trim()))
    }
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
    /// Bad input; the message starts with the field it is about.
    #[error("{0}")]
    Invalid(String),
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
    /// [`Template::digest`]: provider id, body, language, category, variables.
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
                "the template's content (provider id, body, language or category)".to_string(),
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
/// approved campaign's or an unfinished fan-out's job again.
const STALE_AFTER: Duration = Duration::minutes(5);

const MAX_NAME: usize = 200;
const MAX_PHONES: usize = 100_000;
const MAX_SAMPLES: usize = 50;
const SYSTEM: &str = "system";

// ---------------------------------------------------------------------------
// Validation

fn invalid(field: &str, why: impl std::fmt::Display) -> CampaignError {
    CampaignError::Invalid(format!("{field}: {why}"))
}

fn require(actor: &StaffUser, role: Role, what: &str) -> Result<(), CampaignError> {
    if !actor.active {
        return Err(CampaignError::Forbidden(format!(
            "the account {} is deactivated",
            actor.email
        )));
    }
    if !actor.role.allows(role) {
        return Err(CampaignError::Forbidden(format!(
            "only an {role} or above may {what}; {} is a {}",
            actor.email, actor.role
        )));
    }
    Ok(())
}

fn clean_tags(tags: &[String]) -> Vec<String> {
    let set: BTreeSet<String> = tags
        .iter()
        .map(|t| t.trim().to_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    set.into_iter().collect()
}

/// The draft as stored: trimmed, lower-cased names and tags.
fn normalise(mut d: CampaignDraft) -> CampaignDraft {
    d.name = d.name.trim().to_string();
    d.template_name = d.template_name.trim().to_lowercase();
    d.audience = match d.audience {
        Audience::Tags { tags } => Audience::Tags {
            tags: clean_tags(&tags),
        },
        Audience::Phones { phones } => Audience::Phones {
            phones: phones
                .into_iter()
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect(),
        },
    };
    d.variables = d
        .variables
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                VariableSource::Field(f) => VariableSource::Field(f.trim().to_string()),
                other => other,
            };
            (k.trim().to_string(), v)
        })
        .collect();
    d
}

/// Check every number of a `Phones` audience: it must parse (default
/// region), belong to a contact, and that contact must have an active,
/// unsuppressed consent for the channel. Returns the contacts found (in
/// the order given, each once) and every refused number with the reason.
pub async fn check_phone_audience(
    core: &Core,
    channel: Channel,
    phones: &[String],
) -> Result<(Vec<Contact>, Vec<RefusedNumber>), DbErr> {
    let mut ok = Vec::new();
    let mut refused = Vec::new();
    let mut seen = BTreeSet::new();
    for raw in phones.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let refuse = |why: String| RefusedNumber {
            number: raw.chars().take(64).collect(),
            why,
        };
        let phone = match PhoneNumber::parse(raw, core.settings.default_region) {
            Ok(p) => p,
            Err(e) => {
                refused.push(refuse(format!("not a number ({e})")));
                continue;
            }
        };
        if !seen.insert(phone.clone()) {
            continue;
        }
        let Some(c) = contacts::find_by_phone(&core.db.conn, &phone).await? else {
            refused.push(refuse("not a contact".into()));
            continue;
        };
        // An opt-out first: it is the stronger fact (and it revoked the
        // consent too).
        let suppressed = crate::consent::active_suppression(&core.db.conn, &c.id, channel)
            .await?
            .map(|s| format!("suppressed on {channel} ({})", s.reason));
        let why = match suppressed {
            Some(w) => Some(w),
            None => match crate::consent::current_consent(&core.db.conn, &c.id, channel)
                .await?
                .map(|m| crate::consent::consent_status(&m))
            {
                None => Some(format!("no consent for {channel}")),
                Some(ConsentStatus::Pending) => {
                    Some(format!("{channel} consent is waiting for confirmation"))
                }
                Some(ConsentStatus::Revoked) => Some(format!("{channel} consent was revoked")),
                Some(ConsentStatus::Active) => None,
            },
        };
        match why {
            Some(why) => refused.push(refuse(why)),
            None => ok.push(Contact::from(c)),
        }
    }
    Ok((ok, refused))
}

/// Check the template and the variable mapping against it.
async fn check_template(
    core: &Core,
    template_name: &str,
    variables: &BTreeMap<String, VariableSource>,
) -> Result<Template, CampaignError> {
    if template_name.is_empty() {
        return Err(invalid("template_name", "choose a template"));
    }
    let Some(t) = templates::find_by_name(&core.db.conn, template_name).await? else {
        return Err(invalid(
            "template_name",
            format!("template '{template_name}' is not registered"),
        ));
    };
    if t.approval_status != "approved" {
        return Err(invalid(
            "template_name",
            format!(
                "template '{}' is {}, not approved",
                t.name, t.approval_status
            ),
        ));
    }
    let missing: Vec<&str> = t
        .variables
        .iter()
        .filter(|v| !variables.contains_key(*v))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(invalid(
            "variables",
            format!(
                "template '{}' needs a value for: {}",
                t.name,
                missing.join(", ")
            ),
        ));
    }
    let extra: Vec<&str> = variables
        .keys()
        .filter(|k| !t.variables.contains(k))
        .map(String::as_str)
        .collect();
    if !extra.is_empty() {
        return Err(invalid(
            "variables",
            format!(
                "template '{}' has no variable(s): {}",
                t.name,
                extra.join(", ")
            ),
        ));
    }
    for (k, v) in variables {
        if let VariableSource::Field(f) = v {
            if f.is_empty() {
                return Err(invalid(
                    "variables",
                    format!("'{k}' takes a contact field: name it (name, phone or an attribute)"),
                ));
            }
        }
    }
    Ok(t)
}

/// Every rule of a draft. Returns the template.
async fn validate(core: &Core, d: &CampaignDraft) -> Result<Template, CampaignError> {
    if d.name.is_empty() {
        return Err(invalid("name", "must not be blank"));
    }
    if d.name.chars().count() > MAX_NAME {
        return Err(invalid(
            "name",
            format!("must be at most {MAX_NAME} characters"),
        ));
    }
    let template = check_template(core, &d.template_name, &d.variables).await?;
    match &d.audience {
        Audience::Tags { tags } => {
            if tags.is_empty() {
                return Err(invalid("audience", "name at least one tag"));
            }
            if contacts::with_tags(core, tags).await?.is_empty() {
                return Err(invalid(
                    "audience",
                    format!("no contact has the tag(s) {}", tags.join(", ")),
                ));
            }
        }
        Audience::Phones { phones } => {
            if phones.is_empty() {
                return Err(invalid("audience", "the list of numbers is empty"));
            }
            if phones.len() > MAX_PHONES {
                return Err(invalid(
                    "audience",
                    format!("at most {MAX_PHONES} numbers per campaign"),
                ));
            }
            let (_, refused) = check_phone_audience(core, d.channel, phones).await?;
            if !refused.is_empty() {
                let list: Vec<String> = refused
                    .iter()
                    .map(|r| format!("{} ({})", r.number, r.why))
                    .collect();
                return Err(invalid(
                    "audience.phones",
                    format!("{} number(s) refused: {}", refused.len(), list.join("; ")),
                ));
            }
        }
    }
    if let Some(at) = d.scheduled_at {
        if at <= core.now() {
            return Err(invalid(
                "scheduled_at",
                "must be in the future (leave it empty to send on approval)",
            ));
        }
    }
    Ok(template)
}

/// The stored form of a Phones audience: E.164, each once.
fn stored_audience(core: &Core, a: &Audience) -> Audience {
    match a {
        Audience::Phones { phones } => {
            let mut seen = BTreeSet::new();
            Audience::Phones {
                phones: phones
                    .iter()
                    .filter_map(|p| PhoneNumber::parse(p, core.settings.default_region).ok())
                    .filter(|p| seen.insert(p.clone()))
                    .map(|p| p.to_string())
                    .collect(),
            }
        }
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------
// Reading stored campaigns

fn parse_audience(s: &str) -> Audience {
    if let Ok(a) = serde_json::from_str::<Audience>(s) {
        return a;
    }
    // The schema's documented shape: {"tags": [...]} or {"phones": [...]}.
    #[derive(Deserialize)]
    struct Loose {
        tags: Option<Vec<String>>,
        phones: Option<Vec<String>>,
    }
    match serde_json::from_str::<Loose>(s) {
        Ok(Loose {
            phones: Some(phones),
            ..
        }) => Audience::Phones { phones },
        Ok(Loose { tags, .. }) => Audience::Tags {
            tags: tags.unwrap_or_default(),
        },
        Err(_) => Audience::Tags { tags: vec![] },
    }
}

fn parse_variables(s: &str) -> BTreeMap<String, VariableSource> {
    serde_json::from_str(s).unwrap_or_default()
}

fn status_of(m: &campaign::Model) -> CampaignStatus {
    CampaignStatus::parse(&m.status).unwrap_or(CampaignStatus::Draft)
}

fn draft_of(m: &campaign::Model, template_name: String) -> CampaignDraft {
    CampaignDraft {
        name: m.name.clone(),
        channel: m.channel.parse().unwrap_or(Channel::WhatsApp),
        template_name,
        audience: parse_audience(&m.audience),
        variables: parse_variables(&m.variable_mapping),
        scheduled_at: m.scheduled_at,
    }
}

/// What the campaign would send now: the snapshot an approval binds to.
pub async fn content_snapshot(core: &Core, m: &campaign::Model) -> Result<ContentSnapshot, DbErr> {
    let template = template_of(core, m).await?;
    let audience = parse_audience(&m.audience);
    let (contacts, _) = recipients(core, &audience).await?;
    Ok(ContentSnapshot {
        channel: m.channel.parse().unwrap_or(Channel::WhatsApp),
        template_name: template.name.clone(),
        template_digest: template.digest(),
        variables: parse_variables(&m.variable_mapping),
        audience,
        audience_count: contacts.len(),
        scheduled_at: m.scheduled_at,
    })
}

async fn load(core: &Core, id: &str) -> Result<campaign::Model, CampaignError> {
    campaign::Entity::find_by_id(id.trim())
        .one(&core.db.conn)
        .await?
        .ok_or(CampaignError::NotFound)
}

async fn template_of(core: &Core, m: &campaign::Model) -> Result<Template, DbErr> {
    templates::get(&core.db.conn, &m.template_id)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("template {}", m.template_id)))
}

/// Build views for many campaigns with a fixed number of queries.
async fn views(core: &Core, models: Vec<campaign::Model>) -> Result<Vec<CampaignView>, DbErr> {
    if models.is_empty() {
        return Ok(vec![]);
    }
    let db = &core.db.conn;
    let ids: Vec<String> = models.iter().map(|m| m.id.clone()).collect();
    let mut history: HashMap<String, Vec<campaign_approval::Model>> = HashMap::new();
    for chunk in ids.chunks(500) {
        for a in campaign_approval::Entity::find()
            .filter(campaign_approval::Column::CampaignId.is_in(chunk.to_vec()))
            .order_by_asc(campaign_approval::Column::CreatedAt)
            .order_by_asc(campaign_approval::Column::Id)
            .all(db)
            .await?
        {
            history.entry(a.campaign_id.clone()).or_default().push(a);
        }
    }
    let mut user_ids: BTreeSet<String> = BTreeSet::new();
    for m in &models {
        user_ids.insert(m.created_by.clone());
        if let Some(a) = &m.approved_by {
            user_ids.insert(a.clone());
        }
    }
    for h in history.values() {
        user_ids.extend(h.iter().map(|a| a.actor_id.clone()));
    }
    let mut emails: HashMap<String, String> = HashMap::new();
    let user_ids: Vec<String> = user_ids.into_iter().collect();
    for chunk in user_ids.chunks(500) {
        for u in staff_user::Entity::find()
            .filter(staff_user::Column::Id.is_in(chunk.to_vec()))
            .all(db)
            .await?
        {
            emails.insert(u.id, u.email);
        }
    }
    let template_ids: BTreeSet<String> = models.iter().map(|m| m.template_id.clone()).collect();
    let mut tpl: HashMap<String, (String, String)> = HashMap::new();
    for id in template_ids {
        if let Some(t) = templates::get(db, &id).await? {
            tpl.insert(id, (t.name, t.category.to_uppercase()));
        }
    }
    Ok(models
        .into_iter()
        .map(|m| {
            let (template_name, template_category) = tpl
                .get(&m.template_id)
                .cloned()
                .unwrap_or_else(|| (m.template_id.clone(), "UTILITY".into()));
            let history = history
                .remove(&m.id)
                .unwrap_or_default()
                .into_iter()
                .map(|a| ApprovalEvent {
                    actor_email: emails
                        .get(&a.actor_id)
                        .cloned()
                        .unwrap_or_else(|| a.actor_id.clone()),
                    decision: a.decision,
                    reason: a.reason,
                    at: a.created_at,
                })
                .collect();
            CampaignView {
                authors: authz::campaign_authors(&m),
                status: status_of(&m),
                channel: m.channel.parse().unwrap_or(Channel::WhatsApp),
                audience: parse_audience(&m.audience),
                variables: parse_variables(&m.variable_mapping),
                created_by_email: emails.get(&m.created_by).cloned(),
                approved_by_email: m.approved_by.as_ref().and_then(|a| emails.get(a).cloned()),
                recipients: m.recipients.and_then(|r| u32::try_from(r).ok()),
                id: m.id,
                name: m.name,
                template_name,
                template_category,
                created_by: m.created_by,
                submitted_at: m.submitted_at,
                approved_by: m.approved_by,
                approved_at: m.approved_at,
                rejection_reason: m.rejection_reason,
                scheduled_at: m.scheduled_at,
                fanned_out_at: m.fanned_out_at,
                fan_out_finished_at: m.fan_out_finished_at,
                completed_at: m.completed_at,
                created_at: m.created_at,
                updated_at: m.updated_at,
                history,
            }
        })
        .collect())
}

pub async fn get(core: &Core, id: &str) -> Result<CampaignView, CampaignError> {
    let m = load(core, id).await?;
    views(core, vec![m])
        .await?
        .pop()
        .ok_or(CampaignError::NotFound)
}

/// At most this many campaigns in one list.
pub const MAX_LIST: u64 = 200;

/// Campaigns, newest first, optionally of one status: at most `limit`
/// ([`MAX_LIST`] at most), created before the campaign `before` (its id,
/// for the next page) when given.
pub async fn list(
    core: &Core,
    status: Option<CampaignStatus>,
    limit: u64,
    before: Option<&str>,
) -> Result<Vec<CampaignView>, DbErr> {
    let mut q = campaign::Entity::find()
        .order_by_desc(campaign::Column::CreatedAt)
        .order_by_desc(campaign::Column::Id)
        .limit(limit.clamp(1, MAX_LIST));
    if let Some(s) = status {
        q = q.filter(campaign::Column::Status.eq(s.as_str()));
    }
    if let Some(id) = before {
        if let Some(b) = campaign::Entity::find_by_id(id).one(&core.db.conn).await? {
            q = q.filter(
                Condition::any()
                    .add(campaign::Column::CreatedAt.lt(b.created_at))
                    .add(
                        Condition::all()
                            .add(campaign::Column::CreatedAt.eq(b.created_at))
                            .add(campaign::Column::Id.lt(b.id)),
                    ),
            );
        }
    }
    views(core, q.all(&core.db.conn).await?).await
}

// ---------------------------------------------------------------------------
// Writing: history rows and compare-and-set

fn target(id: &str) -> String {
    format!("campaign:{id}")
}

/// The history row and, for staff, the staff audit row of one change.
#[allow(clippy::too_many_arguments)]
async fn record(
    db: &impl ConnectionTrait,
    campaign_id: &str,
    actor: Option<&StaffUser>,
    decision: &str,
    reason: Option<&str>,
    audit_action: Option<&str>,
    detail: Option<serde_json::Value>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    campaign_approval::ActiveModel {
        id: Set(new_id()),
        campaign_id: Set(campaign_id.to_string()),
        actor_id: Set(actor.map(|a| a.id.clone()).unwrap_or_else(|| SYSTEM.into())),
        decision: Set(decision.to_string()),
        reason: Set(reason.map(str::to_string)),
        created_at: Set(now),
    }
    .insert(db)
    .await?;
    if let (Some(actor), Some(action)) = (actor, audit_action) {
        audit::record_staff_action(
            db,
            &actor.email,
            action,
            Some(&target(campaign_id)),
            detail,
            None,
            now,
        )
        .await?;
    }
    Ok(())
}

/// An update of one campaign that only applies while its status is `from`.
fn cas(
    id: &str,
    from: CampaignStatus,
    now: DateTime<Utc>,
) -> sea_orm::UpdateMany<campaign::Entity> {
    campaign::Entity::update_many()
        .col_expr(campaign::Column::UpdatedAt, Expr::value(now))
        .filter(campaign::Column::Id.eq(id))
        .filter(campaign::Column::Status.eq(from.as_str()))
}

/// The error for a compare-and-set that lost: the status someone else set.
async fn lost(core: &Core, id: &str, action: &'static str) -> CampaignError {
    match load(core, id).await {
        Ok(m) => CampaignError::InvalidTransition {
            from: status_of(&m),
            action,
        },
        Err(e) => e,
    }
}

async fn enqueue_fan_out(core: &Core, id: &str) {
    // The campaign's status is the record: if the queue is away,
    // housekeeping (`start_due`) enqueues it again.
    if let Err(e) = core.queue.enqueue_campaign(id.to_string()).await {
        tracing::error!(campaign_id = %id, error = %e, "could not enqueue the fan-out; housekeeping will retry");
    }
}

// ---------------------------------------------------------------------------
// Life cycle

/// Write a new draft (operator or above).
pub async fn create_draft(
    core: &Core,
    actor: &StaffUser,
    draft: CampaignDraft,
) -> Result<CampaignView, CampaignError> {
    require(actor, Role::Operator, "create campaigns")?;
    let draft = normalise(draft);
    let template = validate(core, &draft).await?;
    let now = core.now();
    let id = new_id();
    let txn = core.db.begin_write().await?;
    campaign::ActiveModel {
        id: Set(id.clone()),
        name: Set(draft.name.clone()),
        channel: Set(draft.channel.as_str().into()),
        template_id: Set(template.id.clone()),
        audience: Set(
            serde_json::to_string(&stored_audience(core, &draft.audience))
                .unwrap_or_else(|_| "{}".into()),
        ),
        variable_mapping: Set(
            serde_json::to_string(&draft.variables).unwrap_or_else(|_| "{}".into())
        ),
        scheduled_at: Set(draft.scheduled_at),
        send_on_approval: Set(draft.scheduled_at.is_none()),
        status: Set(CampaignStatus::Draft.as_str().into()),
        created_by: Set(actor.id.clone()),
        submitted_at: Set(None),
        approved_by: Set(None),
        approved_at: Set(None),
        rejection_reason: Set(None),
        fanned_out_at: Set(None),
        completed_at: Set(None),
        fan_out_finished_at: Set(None),
        recipients: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        authors: Set(serde_json::json!([actor.id]).to_string()),
        approved_hash: Set(None),
        approved_snapshot: Set(None),
    }
    .insert(&txn)
    .await?;
    audit::record_staff_action(
        &txn,
        &actor.email,
        "campaign created",
        Some(&target(&id)),
        Some(serde_json::json!({"name": draft.name, "template": template.name})),
        None,
        now,
    )
    .await?;
    txn.commit().await?;
    get(core, &id).await
}

/// Change a draft: its author or an admin, while it is a draft or was
/// rejected (it becomes a draft again).
pub async fn update_draft(
    core: &Core,
    actor: &StaffUser,
    id: &str,
    draft: CampaignDraft,
) -> Result<CampaignView, CampaignError> {
    require(actor, Role::Operator, "edit campaigns")?;
    let m = load(core, id).await?;
    if m.created_by != actor.id && actor.role != Role::Admin {
        return Err(CampaignError::Forbidden(
            "only the campaign's author or an admin may edit it".into(),
        ));
    }
    let from = status_of(&m);
    if !matches!(from, CampaignStatus::Draft | CampaignStatus::Rejected) {
        return Err(CampaignError::InvalidTransition {
            from,
            action: "edit",
        });
    }
    let draft = normalise(draft);
    let template = validate(core, &draft).await?;
    let now = core.now();
    // Whoever changes it is one of its authors from now on.
    let mut authors = authz::campaign_authors(&m);
    if !authors.contains(&actor.id) {
        authors.push(actor.id.clone());
    }
    let txn = core.db.begin_write().await?;
    let res = cas(&m.id, from, now)
        .col_expr(
            campaign::Column::Authors,
            Expr::value(serde_json::json!(authors).to_string()),
        )
        .col_expr(campaign::Column::Name, Expr::value(draft.name.clone()))
        .col_expr(
            campaign::Column::Channel,
            Expr::value(draft.channel.as_str()),
        )
        .col_expr(
            campaign::Column::TemplateId,
            Expr::value(template.id.clone()),
        )
        .col_expr(
            campaign::Column::Audience,
            Expr::value(
                serde_json::to_string(&stored_audience(core, &draft.audience))
                    .unwrap_or_else(|_| "{}".into()),
            ),
        )
        .col_expr(
            campaign::Column::VariableMapping,
            Expr::value(serde_json::to_string(&draft.variables).unwrap_or_else(|_| "{}".into())),
        )
        .col_expr(
            campaign::Column::ScheduledAt,
            Expr::value(draft.scheduled_at),
        )
        .col_expr(
            campaign::Column::SendOnApproval,
            Expr::value(draft.scheduled_at.is_none()),
        )
        .col_expr(
            campaign::Column::Status,
            Expr::value(CampaignStatus::Draft.as_str()),
        )
        .col_expr(
            campaign::Column::RejectionReason,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            campaign::Column::SubmittedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .exec(&txn)
        .await?;
    if res.rows_affected != 1 {
        txn.rollback().await?;
        return Err(lost(core, &m.id, "edit").await);
    }
    if from == CampaignStatus::Rejected {
        record(&txn, &m.id, Some(actor), "reopened", None, None, None, now).await?;
    }
    audit::record_staff_action(
        &txn,
        &actor.email,
        "campaign updated",
        Some(&target(&m.id)),
        Some(serde_json::json!({"name": draft.name, "template": template.name})),
        None,
        now,
    )
    .await?;
    txn.commit().await?;
    get(core, &m.id).await
}

/// Ask for approval (operator or above). The draft is checked again: its
/// template or the consents of a number list may have changed.
pub async fn submit(
    core: &Core,
    actor: &StaffUser,
    id: &str,
) -> Result<CampaignView, CampaignError> {
    require(actor, Role::Operator, "submit campaigns")?;
    let m = load(core, id).await?;
    let from = status_of(&m);
    if from != CampaignStatus::Draft {
        return Err(CampaignError::InvalidTransition {
            from,
            action: "submit",
        });
    }
    let template = template_of(core, &m).await?;
    validate(core, &draft_of(&m, template.name)).await?;
    let now = core.now();
    let txn = core.db.begin_write().await?;
    let res = cas(&m.id, from, now)
        .col_expr(
            campaign::Column::Status,
            Expr::value(CampaignStatus::Submitted.as_str()),
        )
        .col_expr(campaign::Column::SubmittedAt, Expr::value(Some(now)))
        .exec(&txn)
        .await?;
    if res.rows_affected != 1 {
        txn.rollback().await?;
        return Err(lost(core, &m.id, "submit").await);
    }
    record(
        &txn,
        &m.id,
        Some(actor),
        "submitted",
        None,
        Some("campaign submitted"),
        None,
        now,
    )
    .await?;
    txn.commit().await?;
    get(core, &m.id).await
}

/// Approve (approver or above, never one of its authors) what the approver
/// reviewed: `reviewed` is the review's [`Review::content_hash`]; if the
/// campaign changed since, nothing is approved. The campaign is then
/// scheduled, or its fan-out is enqueued at once.
pub async fn approve(
    core: &Core,
    actor: &StaffUser,
    id: &str,
    reviewed: &str,
) -> Result<CampaignView, CampaignError> {
    require(actor, Role::Approver, "approve campaigns")?;
    let m = load(core, id).await?;
    if authz::campaign_authors(&m).contains(&actor.id) {
        return Err(CampaignError::SelfApproval);
    }
    let from = status_of(&m);
    if from != CampaignStatus::Submitted {
        return Err(CampaignError::InvalidTransition {
            from,
            action: "approve",
        });
    }
    let template = template_of(core, &m).await?;
    check_template(core, &template.name, &parse_variables(&m.variable_mapping)).await?;
    let snapshot = content_snapshot(core, &m).await?;
    let hash = snapshot.hash();
    if reviewed.trim() != hash {
        return Err(CampaignError::Changed(
            "its template, mapping, audience or schedule is not what the review showed".into(),
        ));
    }
    let now = core.now();
    let to = match m.scheduled_at {
        Some(at) if at > now => CampaignStatus::Scheduled,
        _ => CampaignStatus::Approved,
    };
    let txn = core.db.begin_write().await?;
    let res = cas(&m.id, from, now)
        .col_expr(campaign::Column::Status, Expr::value(to.as_str()))
        .col_expr(
            campaign::Column::ApprovedBy,
            Expr::value(Some(actor.id.clone())),
        )
        .col_expr(campaign::Column::ApprovedAt, Expr::value(Some(now)))
        .col_expr(
            campaign::Column::ApprovedHash,
            Expr::value(Some(hash.clone())),
        )
        .col_expr(
            campaign::Column::ApprovedSnapshot,
            Expr::value(Some(serde_json::to_string(&snapshot).unwrap_or_default())),
        )
        // The authors who were current when it was reviewed.
        .filter(campaign::Column::Authors.eq(m.authors.clone()))
        .exec(&txn)
        .await?;
    if res.rows_affected != 1 {
        txn.rollback().await?;
        return Err(lost(core, &m.id, "approve").await);
    }
    record(
        &txn,
        &m.id,
        Some(actor),
        "approved",
        None,
        Some("campaign approved"),
        Some(serde_json::json!({
            "status": to.as_str(),
            "scheduled_at": m.scheduled_at,
            "content_hash": hash,
            "audience_count": snapshot.audience_count,
        })),
        now,
    )
    .await?;
    txn.commit().await?;
    if to == CampaignStatus::Approved {
        enqueue_fan_out(core, &m.id).await;
    }
    get(core, &m.id).await
}

/// Send back to the author with a reason (approver or above, not the author).
pub async fn reject(
    core: &Core,
    actor: &StaffUser,
    id: &str,
    reason: &str,
) -> Result<CampaignView, CampaignError> {
    require(actor, Role::Approver, "reject campaigns")?;
    let m = load(core, id).await?;
    if authz::campaign_authors(&m).contains(&actor.id) {
        return Err(CampaignError::SelfApproval);
    }
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(invalid("reason", "say why the campaign is rejected"));
    }
    let reason: String = reason.chars().take(2000).collect();
    let from = status_of(&m);
    if from != CampaignStatus::Submitted {
        return Err(CampaignError::InvalidTransition {
            from,
            action: "reject",
        });
    }
    let now = core.now();
    let txn = core.db.begin_write().await?;
    let res = cas(&m.id, from, now)
        .col_expr(
            campaign::Column::Status,
            Expr::value(CampaignStatus::Rejected.as_str()),
        )
        .col_expr(
            campaign::Column::RejectionReason,
            Expr::value(Some(reason.clone())),
        )
        .exec(&txn)
        .await?;
    if res.rows_affected != 1 {
        txn.rollback().await?;
        return Err(lost(core, &m.id, "reject").await);
    }
    record(
        &txn,
        &m.id,
        Some(actor),
        "rejected",
        Some(&reason),
        Some("campaign rejected"),
        Some(serde_json::json!({"reason": reason})),
        now,
    )
    .await?;
    txn.commit().await?;
    get(core, &m.id).await
}

/// Stop sending (operator or above): the fan-out stops and the campaign's
/// waiting messages are held (deferred, marked [`PAUSED_REASON`]) until a
/// resume.
pub async fn pause(
    core: &Core,
    actor: &StaffUser,
    id: &str,
) -> Result<CampaignView, CampaignError> {
    require(actor, Role::Operator, "pause campaigns")?;
    let m = load(core, id).await?;
    let from = status_of(&m);
    if !matches!(
        from,
        CampaignStatus::Approved | CampaignStatus::Scheduled | CampaignStatus::Sending
    ) {
        return Err(CampaignError::InvalidTransition {
            from,
            action: "pause",
        });
    }
    let now = core.now();
    let txn = core.db.begin_write().await?;
    let res = cas(&m.id, from, now)
        .col_expr(
            campaign::Column::Status,
            Expr::value(CampaignStatus::Paused.as_str()),
        )
        .exec(&txn)
        .await?;
    if res.rows_affected != 1 {
        txn.rollback().await?;
        return Err(lost(core, &m.id, "pause").await);
    }
    let held = outbound_message::Entity::update_many()
        .col_expr(
            outbound_message::Column::State,
            Expr::value(MessageState::Deferred.as_str()),
        )
        .col_expr(
            outbound_message::Column::DeferUntil,
            Expr::value(Some(paused_until())),
        )
        .col_expr(
            outbound_message::Column::BlockReason,
            Expr::value(Some(PAUSED_REASON.to_string())),
        )
        .col_expr(outbound_message::Column::UpdatedAt, Expr::value(now))
        .filter(outbound_message::Column::CampaignId.eq(&m.id))
        .filter(outbound_message::Column::State.is_in([
            MessageState::Queued.as_str(),
            MessageState::Deferred.as_str(),
        ]))
        .exec(&txn)
        .await?
        .rows_affected;
    record(
        &txn,
        &m.id,
        Some(actor),
        "paused",
        None,
        Some("campaign paused"),
        Some(serde_json::json!({"from": from.as_str(), "messages_held": held})),
        now,
    )
    .await?;
    txn.commit().await?;
    get(core, &m.id).await
}

/// Go on where the campaign was paused (operator or above): held messages
/// are released to the send queue, and an unfinished fan-out continues.
pub async fn resume(
    core: &Core,
    actor: &StaffUser,
    id: &str,
) -> Result<CampaignView, CampaignError> {
    require(actor, Role::Operator, "resume campaigns")?;
    let m = load(core, id).await?;
    let from = status_of(&m);
    if from != CampaignStatus::Paused {
        return Err(CampaignError::InvalidTransition {
            from,
            action: "resume",
        });
    }
    let now = core.now();
    let to = if m.fanned_out_at.is_some() {
        CampaignStatus::Sending
    } else if m.scheduled_at.is_some_and(|at| at > now) {
        CampaignStatus::Scheduled
    } else {
        CampaignStatus::Approved
    };
    let held = |q: sea_orm::Select<outbound_message::Entity>| {
        q.filter(outbound_message::Column::CampaignId.eq(&m.id))
            .filter(outbound_message::Column::State.eq(MessageState::Deferred.as_str()))
            .filter(outbound_message::Column::BlockReason.eq(PAUSED_REASON))
    };
    let txn = core.db.begin_write().await?;
    let res = cas(&m.id, from, now)
        .col_expr(campaign::Column::Status, Expr::value(to.as_str()))
        .exec(&txn)
        .await?;
    if res.rows_affected != 1 {
        txn.rollback().await?;
        return Err(lost(core, &m.id, "resume").await);
    }
    let released: Vec<String> = held(outbound_message::Entity::find())
        .select_only()
        .column(outbound_message::Column::Id)
        .into_tuple()
        .all(&txn)
        .await?;
    outbound::release_held(&txn, &released, PAUSED_REASON, now).await?;
    record(
        &txn,
        &m.id,
        Some(actor),
        "resumed",
        None,
        Some("campaign resumed"),
        Some(serde_json::json!({"to": to.as_str(), "messages_released": released.len()})),
        now,
    )
    .await?;
    txn.commit().await?;
    for message_id in released {
        // The worker evaluates the gates again (quiet hours may hold it).
        if let Err(e) = core.queue.enqueue_send(message_id.clone(), None).await {
            tracing::error!(%message_id, error = %e, "could not enqueue a released message; housekeeping will retry");
        }
    }
    let unfinished_fan_out = to == CampaignStatus::Sending && m.fan_out_finished_at.is_none();
    if to == CampaignStatus::Approved || unfinished_fan_out {
        enqueue_fan_out(core, &m.id).await;
    }
    get(core, &m.id).await
}

/// Withdraw the campaign (operator or above): its waiting messages are
/// cancelled and nothing more is sent.
pub async fn cancel(
    core: &Core,
    actor: &StaffUser,
    id: &str,
) -> Result<CampaignView, CampaignError> {
    require(actor, Role::Operator, "cancel campaigns")?;
    let m = load(core, id).await?;
    let from = status_of(&m);
    if from.is_terminal() {
        return Err(CampaignError::InvalidTransition {
            from,
            action: "cancel",
        });
    }
    let now = core.now();
    let txn = core.db.begin_write().await?;
    let res = cas(&m.id, from, now)
        .col_expr(
            campaign::Column::Status,
            Expr::value(CampaignStatus::Cancelled.as_str()),
        )
        .exec(&txn)
        .await?;
    if res.rows_affected != 1 {
        txn.rollback().await?;
        return Err(lost(core, &m.id, "cancel").await);
    }
    let cancelled = outbound_message::Entity::update_many()
        .col_expr(
            outbound_message::Column::State,
            Expr::value(MessageState::Cancelled.as_str()),
        )
        .col_expr(outbound_message::Column::UpdatedAt, Expr::value(now))
        .filter(outbound_message::Column::CampaignId.eq(&m.id))
        .filter(outbound_message::Column::State.is_in([
            MessageState::Queued.as_str(),
            MessageState::Deferred.as_str(),
        ]))
        .exec(&txn)
        .await?
        .rows_affected;
    record(
        &txn,
        &m.id,
        Some(actor),
        "cancelled",
        None,
        Some("campaign cancelled"),
        Some(serde_json::json!({"from": from.as_str(), "messages_cancelled": cancelled})),
        now,
    )
    .await?;
    txn.commit().await?;
    get(core, &m.id).await
}

// ---------------------------------------------------------------------------
// Recipients and variables

/// The contacts a campaign goes to, and the numbers of a `Phones` audience
/// that no longer match a contact.
async fn recipients(
    core: &Core,
    audience: &Audience,
) -> Result<(Vec<Contact>, Vec<RefusedNumber>), DbErr> {
    match audience {
        Audience::Tags { tags } => {
            let mut found = contacts::with_tags(core, tags).await?;
            // Ids are time-ordered: a stable order when creation times tie.
            found.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
            Ok((found, vec![]))
        }
        Audience::Phones { phones } => {
            let mut by_phone: HashMap<String, contact::Model> = HashMap::new();
            for chunk in phones.chunks(500) {
                for c in contact::Entity::find()
                    .filter(contact::Column::PhoneE164.is_in(chunk.to_vec()))
                    .all(&core.db.conn)
                    .await?
                {
                    by_phone.insert(c.phone_e164.clone(), c);
                }
            }
            let mut found = Vec::new();
            let mut missing = Vec::new();
            let mut seen = BTreeSet::new();
            for p in phones {
                if !seen.insert(p.as_str()) {
                    continue;
                }
                match by_phone.get(p) {
                    Some(c) => found.push(Contact::from(c.clone())),
                    None => missing.push(RefusedNumber {
                        number: p.clone(),
                        why: "not a contact".into(),
                    }),
                }
            }
            Ok((found, missing))
        }
    }
}

/// A contact's values for the mapped variables, and the mapped fields it
/// lacks (sent as empty text).
pub fn variables_for(
    mapping: &BTreeMap<String, VariableSource>,
    c: &Contact,
) -> (BTreeMap<String, String>, Vec<String>) {
    let mut values = BTreeMap::new();
    let mut missing = Vec::new();
    for (var, source) in mapping {
        let value = match source {
            VariableSource::Value(v) => Some(v.clone()),
            VariableSource::Field(f) => match f.as_str() {
                "name" => c.name.clone().filter(|n| !n.trim().is_empty()),
                "phone" => Some(c.phone.clone()),
                key => c.attributes.get(key).cloned(),
            },
        };
        match value {
            Some(v) => {
                values.insert(var.clone(), v);
            }
            None => {
                if let VariableSource::Field(f) = source {
                    missing.push(f.clone());
                }
                values.insert(var.clone(), String::new());
            }
        }
    }
    (values, missing)
}

// ---------------------------------------------------------------------------
// Review

/// [`review_by`] without a known actor (recorded as `unattributed`).
pub async fn review(core: &Core, id: &str, samples: usize) -> Result<Review, CampaignError> {
    review_by(core, None, id, samples).await
}

/// The review screen: audience size, sample renders, the gate pipeline's
/// dry run for every recipient, and the estimated cost. Writes no
/// `tool_calls` row (no message is evaluated) but one staff audit row
/// "campaign reviewed".
pub async fn review_by(
    core: &Core,
    actor: Option<&StaffUser>,
    id: &str,
    samples: usize,
) -> Result<Review, CampaignError> {
    let m = load(core, id).await?;
    let template = template_of(core, &m).await?;
    let channel: Channel = m.channel.parse().unwrap_or(Channel::WhatsApp);
    let mapping = parse_variables(&m.variable_mapping);
    let audience = parse_audience(&m.audience);
    let (contacts, unresolved) = recipients(core, &audience).await?;
    // What an approval of this review binds to (as [`content_snapshot`]).
    let content_hash = ContentSnapshot {
        channel,
        template_name: template.name.clone(),
        template_digest: template.digest(),
        variables: mapping.clone(),
        audience,
        audience_count: contacts.len(),
        scheduled_at: m.scheduled_at,
    }
    .hash();
    let now = core.now();
    // The dry run evaluates every recipient's gates: the same content
    // looked at again within a short while is answered from what was
    // computed (a viewer reloading the page costs one audience read, not
    // one facts read per recipient).
    let cache_key = (m.id.clone(), content_hash.clone(), samples);
    let cached = reviews()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&cache_key)
        .filter(|(at, _)| now - *at < REVIEW_FRESH)
        .map(|(_, r)| r.clone());
    if let Some(review) = cached {
        record_review(core, actor, &m.id, &review, now).await?;
        return Ok(review);
    }
    let policy = outbound::policy(core);
    // As it would be once approved by someone other than its authors.
    let authorization = Authorization::Campaign {
        status: CampaignStatus::Approved.as_str().into(),
        authors: authz::campaign_authors(&m),
        approved_by: Some("review:another approver".into()),
        approved_template: None,
    };
    let category = templates::parse_category(&template.category);
    let price = price_for(channel, category);
    let mut dry = DryRun::default();
    let mut missing_fields: BTreeMap<String, usize> = BTreeMap::new();
    let mut sample_rows = Vec::new();
    let mut billable = 0usize;
    let mut segments = 0usize;
    for c in &contacts {
        let (values, missing) = variables_for(&mapping, c);
        for f in missing {
            *missing_fields.entry(f).or_default() += 1;
        }
        let text = template.render(&values);
        if sample_rows.len() < samples.min(MAX_SAMPLES) {
            sample_rows.push(SampleRender {
                contact_id: c.id.clone(),
                phone: outbound::mask(&c.phone),
                name: c.name.clone(),
                text: text.clone(),
            });
        }
        let message = unsent_message(&m, &template, channel, c, &values, now);
        let (facts, loaded) =
            outbound::dry_run_facts(core, &message, Some(&template), authorization.clone()).await?;
        let decision = gates::evaluate(&facts, &loaded, now, &policy);
        match decision.decision {
            Decision::Pass => dry.would_pass += 1,
            Decision::Block { reason } => {
                *dry.would_block.entry(reason.code().into()).or_default() += 1
            }
            Decision::Defer { reason, .. } => {
                *dry.would_defer.entry(reason.code().into()).or_default() += 1
            }
        }
        if !matches!(decision.decision, Decision::Block { .. }) {
            billable += 1;
            if price.per_segment {
                segments += sms_segments(&text).segments;
            }
        }
    }
    let total = if price.per_segment {
        price.usd * segments as f64
    } else {
        price.usd * billable as f64
    };
    let per_message = if billable > 0 {
        total / billable as f64
    } else if price.per_segment {
        price.usd * sms_segments(&template.body).segments as f64
    } else {
        price.usd
    };
    let review = Review {
        campaign_id: m.id.clone(),
        audience_size: contacts.len(),
        samples: sample_rows,
        dry_run: dry,
        estimated_cost: Cost {
            per_message: round4(per_message),
            currency: "USD",
            total: round4(total),
            billable_messages: billable,
            sms_segments: price.per_segment.then_some(segments),
        },
        missing_fields,
        unresolved,
        content_hash,
    };
    reviews()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .put(cache_key, (now, review.clone()));
    record_review(core, actor, &m.id, &review, now).await?;
    Ok(review)
}

/// How long a computed review answers for the same content.
const REVIEW_FRESH: Duration = Duration::minutes(2);

/// Reviews computed lately, by (campaign, content hash, samples).
type ReviewCache =
    std::sync::Mutex<lru::LruCache<(String, String, usize), (DateTime<Utc>, Review)>>;

fn reviews() -> &'static ReviewCache {
    static CACHE: std::sync::OnceLock<ReviewCache> = std::sync::OnceLock::new();
    CACHE.get_or_init(|| {
        std::sync::Mutex::new(lru::LruCache::new(
            std::num::NonZeroUsize::new(256).expect("positive"),
        ))
    })
}

/// The staff audit row of a review (every look is recorded, cached or not).
async fn record_review(
    core: &Core,
    actor: Option<&StaffUser>,
    id: &str,
    review: &Review,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    audit::record_staff_action(
        &core.db.conn,
        actor.map(|a| a.email.as_str()).unwrap_or("unattributed"),
        "campaign reviewed",
        Some(&target(id)),
        Some(serde_json::json!({
            "audience_size": review.audience_size,
            "would_pass": review.dry_run.would_pass,
            "would_block": review.dry_run.would_block,
            "would_defer": review.dry_run.would_defer,
            "content_hash": review.content_hash,
        })),
        None,
        now,
    )
    .await
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// The message a recipient would get, in memory only (never stored).
fn unsent_message(
    m: &campaign::Model,
    template: &Template,
    channel: Channel,
    c: &Contact,
    values: &BTreeMap<String, String>,
    now: DateTime<Utc>,
) -> outbound_message::Model {
    outbound_message::Model {
        contact_id: Some(c.id.clone()),
        channel: channel.as_str().into(),
        kind: "template".into(),
        template_id: Some(template.id.clone()),
        template_name: Some(template.name.clone()),
        variables: serde_json::to_string(values).unwrap_or_else(|_| "{}".into()),
        source: "campaign".into(),
        campaign_id: Some(m.id.clone()),
        actor: format!("campaign:{}", m.id),
        ..crate::sending::outbound::pending_message(
            format!("dry-run:{}:{}", m.id, c.id),
            c.phone.clone(),
            now,
        )
    }
}

// ---------------------------------------------------------------------------
// Fan-out

/// The idempotency key of a campaign's message to one contact.
pub fn idempotency_key(campaign_id: &str, contact_id: &str) -> String {
    format!("campaign:{campaign_id}:{contact_id}")
}

/// Turn an approved (or due scheduled) campaign into messages, each through
/// [`outbound::accept`]. Safe to run twice at once or again after a crash:
/// the claim is a compare-and-set to `sending`, a campaign already sending
/// whose fan-out did not finish is continued, and each recipient's message
/// has an idempotency key, so no one ever gets two. Stops when the campaign
/// is paused or cancelled (checked before every recipient); a resume
/// enqueues it again to continue.
///
/// One edge remains by design: a recipient accepted in the very instant a
/// pause lands is evaluated against the paused campaign and blocked
/// (`not_authorized`, recorded, never sent) instead of held, because the
/// gates read the campaign's status and a blocked message stays final.
pub async fn fan_out(core: &Core, id: &str) -> Result<FanOutReport, CampaignError> {
    let m = load(core, id).await?;
    let now = core.now();
    let status = status_of(&m);
    let due = match status {
        CampaignStatus::Approved | CampaignStatus::Sending => true,
        CampaignStatus::Scheduled => m.scheduled_at.is_none_or(|at| at <= now),
        _ => false,
    };
    if due && m.fan_out_finished_at.is_none() {
        // The approval binds to what the approver reviewed: if that is
        // not what would go out now, nothing goes out.
        let current = content_snapshot(core, &m).await?;
        if m.approved_hash.as_deref() != Some(current.hash().as_str()) {
            return_to_review(core, &m, status, &current).await?;
            let after = load(core, &m.id).await?;
            return Ok(FanOutReport {
                campaign_id: m.id.clone(),
                claimed: false,
                status: status_of(&after),
                recipients: 0,
                created: 0,
                existing: 0,
                skipped: 0,
                finished: false,
                by_state: BTreeMap::new(),
            });
        }
    }
    let txn = core.db.begin_write().await?;
    let claimed = campaign::Entity::update_many()
        .col_expr(
            campaign::Column::Status,
            Expr::value(CampaignStatus::Sending.as_str()),
        )
        .col_expr(campaign::Column::FannedOutAt, Expr::value(Some(now)))
        .col_expr(campaign::Column::UpdatedAt, Expr::value(now))
        .filter(campaign::Column::Id.eq(&m.id))
        .filter(
            Condition::any()
                .add(campaign::Column::Status.eq(CampaignStatus::Approved.as_str()))
                .add(
                    Condition::all()
                        .add(campaign::Column::Status.eq(CampaignStatus::Scheduled.as_str()))
                        .add(campaign::Column::ScheduledAt.lte(now)),
                ),
        )
        .exec(&txn)
        .await?
        .rows_affected
        == 1;
    if claimed {
        record(&txn, &m.id, None, "sending", None, None, None, now).await?;
    }
    txn.commit().await?;
    let m = load(core, id).await?;
    let status = status_of(&m);
    let mut report = FanOutReport {
        campaign_id: m.id.clone(),
        claimed,
        status,
        recipients: 0,
        created: 0,
        existing: 0,
        skipped: 0,
        finished: m.fan_out_finished_at.is_some(),
        by_state: BTreeMap::new(),
    };
    if status != CampaignStatus::Sending || m.fan_out_finished_at.is_some() {
        return Ok(report);
    }
    let template = template_of(core, &m).await?;
    let channel: Channel = m.channel.parse().unwrap_or(Channel::WhatsApp);
    let mapping = parse_variables(&m.variable_mapping);
    let (contacts, unresolved) = recipients(core, &parse_audience(&m.audience)).await?;
    report.recipients = contacts.len();
    report.skipped = unresolved.len();
    for (i, c) in contacts.iter().enumerate() {
        // Checked before every recipient, so a pause or cancel stops the run
        // at once; every CHECK_EVERY recipients the check is also the run's
        // heartbeat.
        let going_on = if i > 0 && i % CHECK_EVERY == 0 {
            still_sending(core, &m.id).await?
        } else {
            current_status(core, &m.id).await? == Some(CampaignStatus::Sending)
        };
        if !going_on {
            report.status = status_of(&load(core, &m.id).await?);
            return Ok(report);
        }
        let (variables, _) = variables_for(&mapping, c);
        let res = outbound::accept(
            core,
            SendRequest {
                recipient: Recipient::Contact(c.id.clone()),
                channel,
                content: RequestedContent::Template {
                    name: template.name.clone(),
                    variables,
                },
                origin: Origin::Campaign {
                    campaign_id: m.id.clone(),
                },
                idempotency_key: Some(idempotency_key(&m.id, &c.id)),
            },
        )
        .await;
        match res {
            Ok(o) if o.duplicate => report.existing += 1,
            Ok(o) => {
                report.created += 1;
                *report.by_state.entry(o.state.as_str().into()).or_default() += 1;
            }
            Err(AcceptError::Db(e)) => return Err(e.into()),
            Err(e) => {
                tracing::warn!(campaign_id = %m.id, contact_id = %c.id, error = %e, "campaign recipient skipped");
                report.skipped += 1;
            }
        }
    }
    let done = core.now();
    let finished = campaign::Entity::update_many()
        .col_expr(campaign::Column::FanOutFinishedAt, Expr::value(Some(done)))
        .col_expr(
            campaign::Column::Recipients,
            Expr::value(Some(i32::try_from(contacts.len()).unwrap_or(i32::MAX))),
        )
        .col_expr(campaign::Column::UpdatedAt, Expr::value(done))
        .filter(campaign::Column::Id.eq(&m.id))
        .filter(campaign::Column::Status.eq(CampaignStatus::Sending.as_str()))
        .filter(campaign::Column::FanOutFinishedAt.is_null())
        .exec(&core.db.conn)
        .await?;
    let after = load(core, &m.id).await?;
    report.status = status_of(&after);
    report.finished = after.fan_out_finished_at.is_some();
    tracing::info!(
        campaign_id = %m.id,
        recipients = report.recipients,
        created = report.created,
        existing = report.existing,
        skipped = report.skipped,
        marked_finished = finished.rows_affected == 1,
        "campaign fanned out"
    );
    Ok(report)
}

/// A campaign whose content no longer matches its approval goes back to
/// review (`submitted`, the approval cleared), with a history row saying
/// what changed and an alert. Messages already accepted stay as they are
/// (their worker re-checks the template against the approval); once
/// approved again, the fan-out continues where it stopped.
async fn return_to_review(
    core: &Core,
    m: &campaign::Model,
    from: CampaignStatus,
    current: &ContentSnapshot,
) -> Result<(), CampaignError> {
    let approved: Option<ContentSnapshot> = m
        .approved_snapshot
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok());
    let what = match &approved {
        Some(a) => current.differences(a),
        None => "it was approved before approvals were bound to content".into(),
    };
    let now = core.now();
    let txn = core.db.begin_write().await?;
    let res = cas(&m.id, from, now)
        .col_expr(
            campaign::Column::Status,
            Expr::value(CampaignStatus::Submitted.as_str()),
        )
        .col_expr(
            campaign::Column::ApprovedBy,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            campaign::Column::ApprovedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            campaign::Column::ApprovedHash,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            campaign::Column::ApprovedSnapshot,
            Expr::value(Option::<String>::None),
        )
        .exec(&txn)
        .await?;
    if res.rows_affected != 1 {
        // Paused or cancelled meanwhile: nothing to send anyway.
        txn.rollback().await?;
        return Ok(());
    }
    let reason = format!("changed since it was approved: {what}");
    record(
        &txn,
        &m.id,
        None,
        "returned",
        Some(&reason),
        None,
        None,
        now,
    )
    .await?;
    txn.commit().await?;
    tracing::warn!(campaign_id = %m.id, %what, "campaign returned to review: its content changed since approval");
    alerts::raise(
        core,
        alerts::Alert {
            key: format!("campaign_returned:{}", m.id),
            title: "Campaign returned to review".into(),
            description: format!(
                "Campaign '{}' was not sent: {reason}. An approver must review and approve it again.",
                m.name
            ),
            error_code: None,
            meaning: None,
            message_id: None,
            campaign_id: Some(m.id.clone()),
        },
    )
    .await;
    Ok(())
}

async fn current_status(core: &Core, id: &str) -> Result<Option<CampaignStatus>, DbErr> {
    let status: Option<String> = campaign::Entity::find_by_id(id)
        .select_only()
        .column(campaign::Column::Status)
        .into_tuple()
        .one(&core.db.conn)
        .await?;
    Ok(status.as_deref().and_then(CampaignStatus::parse))
}

/// Heartbeat of a running fan-out: touches the campaign while it is still
/// sending; false when it was paused or cancelled meanwhile.
async fn still_sending(core: &Core, id: &str) -> Result<bool, DbErr> {
    Ok(campaign::Entity::update_many()
        .col_expr(campaign::Column::UpdatedAt, Expr::value(core.now()))
        .filter(campaign::Column::Id.eq(id))
        .filter(campaign::Column::Status.eq(CampaignStatus::Sending.as_str()))
        .exec(&core.db.conn)
        .await?
        .rows_affected
        == 1)
}

/// Housekeeping: scheduled campaigns whose time has come are started
/// (scheduled -> approved, fan-out enqueued). Approved campaigns and
/// unfinished fan-outs with no sign of life for a while are enqueued again
/// (a lost job, a crashed worker). Returns how many fan-outs were enqueued.
pub async fn start_due(core: &Core) -> Result<usize, DbErr> {
    let now = core.now();
    let mut enqueued = Vec::new();
    let due = campaign::Entity::find()
        .filter(campaign::Column::Status.eq(CampaignStatus::Scheduled.as_str()))
        .filter(campaign::Column::ScheduledAt.lte(now))
        .all(&core.db.conn)
        .await?;
    for m in due {
        let txn = core.db.begin_write().await?;
        let res = cas(&m.id, CampaignStatus::Scheduled, now)
            .col_expr(
                campaign::Column::Status,
                Expr::value(CampaignStatus::Approved.as_str()),
            )
            .filter(campaign::Column::ScheduledAt.lte(now))
            .exec(&txn)
            .await?;
        if res.rows_affected == 1 {
            record(&txn, &m.id, None, "started", None, None, None, now).await?;
            txn.commit().await?;
            enqueued.push(m.id);
        } else {
            txn.rollback().await?;
        }
    }
    let stale = campaign::Entity::find()
        .filter(campaign::Column::UpdatedAt.lt(now - STALE_AFTER))
        .filter(
            Condition::any()
                .add(campaign::Column::Status.eq(CampaignStatus::Approved.as_str()))
                .add(
                    Condition::all()
                        .add(campaign::Column::Status.eq(CampaignStatus::Sending.as_str()))
                        .add(campaign::Column::FanOutFinishedAt.is_null()),
                ),
        )
        .all(&core.db.conn)
        .await?;
    for m in stale {
        // Touch it, so it is not enqueued again on every tick while the job waits.
        let res = cas(&m.id, status_of(&m), now).exec(&core.db.conn).await?;
        if res.rows_affected == 1 {
            enqueued.push(m.id);
        }
    }
    for id in &enqueued {
        enqueue_fan_out(core, id).await;
    }
    Ok(enqueued.len())
}

/// Message states in which Heimdall still has work to do for a campaign.
const UNFINISHED: [MessageState; 3] = [
    MessageState::Pending,
    MessageState::Queued,
    MessageState::Deferred,
];

/// Housekeeping: sending campaigns whose fan-out finished and whose
/// messages are all settled (none waiting or mid-claim; messages handed to
/// the provider count as settled, their statuses keep arriving) become
/// completed. Returns how many.
pub async fn complete_finished(core: &Core) -> Result<usize, DbErr> {
    let now = core.now();
    let candidates = campaign::Entity::find()
        .filter(campaign::Column::Status.eq(CampaignStatus::Sending.as_str()))
        .filter(campaign::Column::FanOutFinishedAt.is_not_null())
        .all(&core.db.conn)
        .await?;
    let mut n = 0;
    for m in candidates {
        let busy = outbound_message::Entity::find()
            .select_only()
            .column(outbound_message::Column::Id)
            .filter(outbound_message::Column::CampaignId.eq(&m.id))
            .filter(
                Condition::any()
                    .add(outbound_message::Column::State.is_in(UNFINISHED.map(|s| s.as_str())))
                    .add(
                        Condition::all()
                            .add(outbound_message::Column::State.eq(MessageState::Sending.as_str()))
                            .add(outbound_message::Column::ProviderSid.is_null()),
                    ),
            )
            .into_tuple::<String>()
            .one(&core.db.conn)
            .await?;
        if busy.is_some() {
            continue;
        }
        let txn = core.db.begin_write().await?;
        let res = cas(&m.id, CampaignStatus::Sending, now)
            .col_expr(
                campaign::Column::Status,
                Expr::value(CampaignStatus::Completed.as_str()),
            )
            .col_expr(campaign::Column::CompletedAt, Expr::value(Some(now)))
            .exec(&txn)
            .await?;
        if res.rows_affected == 1 {
            record(&txn, &m.id, None, "completed", None, None, None, now).await?;
            txn.commit().await?;
            n += 1;
        } else {
            txn.rollback().await?;
        }
    }
    Ok(n)
}

// ---------------------------------------------------------------------------
// Progress

/// Message counts grouped by state and block reason, with how many of each
/// were handed to the provider (have a provider sid).
pub(crate) async fn state_counts(
    db: &impl ConnectionTrait,
    filter: Condition,
) -> Result<Vec<(String, Option<String>, i64, i64)>, DbErr> {
    outbound_message::Entity::find()
        .select_only()
        .column(outbound_message::Column::State)
        .column(outbound_message::Column::BlockReason)
        .column_as(Expr::col(outbound_message::Column::Id).count(), "n")
        .column_as(
            Expr::col(outbound_message::Column::ProviderSid).count(),
            "handed",
        )
        .filter(filter)
        .group_by(outbound_message::Column::State)
        .group_by(outbound_message::Column::BlockReason)
        .into_tuple::<(String, Option<String>, i64, i64)>()
        .all(db)
        .await
}

/// Rates over messages handed to the provider: (delivered or read, read).
pub(crate) fn rates(counts: &[(String, Option<String>, i64, i64)]) -> (f64, f64) {
    let handed: i64 = counts.iter().map(|c| c.3).sum();
    if handed <= 0 {
        return (0.0, 0.0);
    }
    let of = |states: &[MessageState]| -> i64 {
        counts
            .iter()
            .filter(|c| states.iter().any(|s| s.as_str() == c.0))
            .map(|c| c.3)
            .sum()
    };
    let delivered = of(&[MessageState::Delivered, MessageState::Read]);
    let read = of(&[MessageState::Read]);
    (
        delivered as f64 / handed as f64,
        read as f64 / handed as f64,
    )
}

/// The newest failed or undelivered messages matching `filter`.
pub(crate) async fn failures(
    core: &Core,
    filter: Condition,
    limit: u64,
) -> Result<Vec<FailureRow>, DbErr> {
    Ok(outbound_message::Entity::find()
        .filter(filter)
        .filter(outbound_message::Column::State.is_in([
            MessageState::Failed.as_str(),
            MessageState::Undelivered.as_str(),
        ]))
        .order_by_desc(outbound_message::Column::UpdatedAt)
        .order_by_desc(outbound_message::Column::Id)
        .limit(limit)
        .all(&core.db.conn)
        .await?
        .into_iter()
        .map(|m| FailureRow {
            phone_masked: outbound::mask(&m.to_address),
            error_code: m.error_code,
            meaning: m.error_message.clone().or_else(|| {
                m.error_code.map(|c| {
                    core.live
                        .get()
                        .errors
                        .classify(
                            &crate::compliance::provider_errors::ProviderFailure::Code {
                                code: i64::from(c),
                                http_status: None,
                            },
                            m.channel.parse().unwrap_or(Channel::WhatsApp),
                        )
                        .meaning
                })
            }),
            at: m.failed_at.unwrap_or(m.updated_at),
            message_id: m.id,
        })
        .collect())
}

/// Where a campaign's messages stand.
pub async fn progress(core: &Core, id: &str) -> Result<Progress, CampaignError> {
    let m = load(core, id).await?;
    let filter = Condition::all().add(outbound_message::Column::CampaignId.eq(&m.id));
    let counts = state_counts(&core.db.conn, filter.clone()).await?;
    let mut by_state: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_block_reason: BTreeMap<String, usize> = BTreeMap::new();
    let mut total = 0usize;
    for (state, reason, n, _) in &counts {
        let n = usize::try_from(*n).unwrap_or(0);
        total += n;
        *by_state.entry(state.clone()).or_default() += n;
        if state == MessageState::Blocked.as_str() {
            if let Some(r) = reason {
                *by_block_reason.entry(r.clone()).or_default() += n;
            }
        }
    }
    let (delivered_rate, read_rate) = rates(&counts);
    Ok(Progress {
        status: status_of(&m),
        total,
        recipients: m.recipients.and_then(|r| usize::try_from(r).ok()),
        by_state,
        by_block_reason,
        delivered_rate,
        read_rate,
        failures: failures(core, filter, 50).await?,
    })
}

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
