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
                if !matches!(
                    status.as_str(),
                    "approved" | "scheduled" | "sending" | "completed"
                ) =>
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
                templates,
                free_form,
            },
            Purpose::Automation | Purpose::Fallback,
        ) => {
            if !approved {
                return Verdict::block(format!("the automation '{name}' is not approved"));
            }
            match &msg.content {
                MessageContent::Template { name: t, .. } if !templates.iter().any(|x| x == t) => {
                    Verdict::block(format!(
                        "the automation '{name}' is not approved for template '{t}'"
                    ))
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
    let Some(t) = &facts.template else {
        return Verdict::block(format!("template '{name}' is not registered"));
    };
    if t.approval_status != "approved" {
        return Verdict::block(format!(
            "template '{}' is {}, not approved",
            t.name, t.approval_status
        ));
    }
    let missing: Vec<&str> = t
        .variable_names
        .iter()
        .filter(|n| !supplied.contains(n))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Verdict::block(format!(
            "template '{}' needs variable(s): {}",
            t.name,
            missing.join(", ")
        ));
    }
    let unknown: Vec<&str> = supplied
        .iter()
        .filter(|s| !t.variable_names.contains(s))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Verdict::block(format!(
            "template '{}' has no variable(s): {}",
            t.name,
            unknown.join(", ")
        ));
    }
    Verdict::pass(format!("template '{}' is approved", t.name))
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
mod tests {
    use super::*;
    use phonenumber::country::Id;

    fn now() -> DateTime<Utc> {
        // A Tuesday, 15:00 UTC.
        Utc.with_ymd_and_hms(2026, 11, 17, 15, 0, 0).unwrap()
    }

    fn msg(channel: Channel, content: MessageContent, purpose: Purpose) -> MessageFacts {
        MessageFacts {
            channel,
            raw_to: "+4791234567".into(),
            recipient: Some(PhoneNumber::parse("+4791234567", Id::US).unwrap()),
            content,
            purpose,
        }
    }

    fn template(name: &str) -> MessageContent {
        MessageContent::Template {
            name: name.into(),
            supplied: vec!["task_name".into(), "due_time".into()],
        }
    }

    fn facts() -> LoadedFacts {
        LoadedFacts {
            consent: Some(ConsentFact {
                status: ConsentStatus::Active,
                source: "web_form".into(),
                captured_at: now() - Duration::days(3),
            }),
            suppression: None,
            window_expires_at: None,
            template: Some(TemplateFact {
                name: "task_reminder".into(),
                approval_status: "approved".into(),
                category: TemplateCategory::Utility,
                variable_names: vec!["task_name".into(), "due_time".into()],
                digest: "d1".into(),
            }),
            authorization: Authorization::Automation {
                name: "n8n".into(),
                approved: true,
                approved_by: Some("approver@example.com".into()),
                templates: vec!["task_reminder".into()],
                free_form: false,
            },
            sender: SenderFact {
                address: Some("+14155550100".into()),
                active: true,
                paused: None,
            },
            time_zone: LocalZones::Contact(chrono_tz::Europe::Oslo),
            tier: TierFact {
                used: 0,
                limit: Some(250),
                recipient_counted: false,
                next_free_at: None,
            },
            recipient_next_at: None,
        }
    }

    fn run(m: &MessageFacts, f: &LoadedFacts) -> GateDecision {
        evaluate(m, f, now(), &Policy::default())
    }

    fn automation_template() -> MessageFacts {
        msg(
            Channel::WhatsApp,
            template("task_reminder"),
            Purpose::Automation,
        )
    }

    #[test]
    fn the_passing_message_passes_with_every_verdict() {
        let d = run(&automation_template(), &facts());
        assert_eq!(d.decision, Decision::Pass, "{d:#?}");
        assert_eq!(d.verdicts.len(), Gate::ORDER.len());
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["decision"]["decision"], "pass");
        assert_eq!(json["verdicts"][0]["gate"], "invalid_number");
    }

    #[test]
    fn invalid_number_blocks() {
        let mut m = automation_template();
        m.recipient = None;
        m.raw_to = "12".into();
        let d = run(&m, &facts());
        assert_eq!(
            d.decision,
            Decision::Block {
                reason: Gate::InvalidNumber
            }
        );
        assert!(d.explanation().contains("'12'"));
    }

    #[test]
    fn no_consent_blocks_and_pending_or_revoked_also_block() {
        let m = automation_template();
        let mut f = facts();
        f.consent = None;
        assert_eq!(
            run(&m, &f).decision,
            Decision::Block {
                reason: Gate::NoConsent
            }
        );
        for status in [ConsentStatus::Pending, ConsentStatus::Revoked] {
            f.consent = Some(ConsentFact {
                status,
                source: "web_form".into(),
                captured_at: now(),
            });
            assert_eq!(
                run(&m, &f).decision,
                Decision::Block {
                    reason: Gate::NoConsent
                }
            );
        }
    }

    #[test]
    fn suppressed_blocks_everything_but_the_keyword_reply() {
        let mut f = facts();
        f.suppression = Some(SuppressionFact {
            reason: "keyword STOP".into(),
            since: now(),
            marketing_only: false,
        });
        assert_eq!(
            run(&automation_template(), &f).decision,
            Decision::Block {
                reason: Gate::Suppressed
            }
        );
        let mut reply = msg(
            Channel::WhatsApp,
            MessageContent::FreeForm,
            Purpose::ComplianceReply,
        );
        f.authorization = Authorization::System;
        f.consent = None;
        reply.content = MessageContent::FreeForm;
        assert_eq!(run(&reply, &f).decision, Decision::Pass);
    }

    #[test]
    fn outside_window_blocks_free_form_and_its_twin_passes_inside() {
        let m = msg(
            Channel::WhatsApp,
            MessageContent::FreeForm,
            Purpose::InboxReply,
        );
        let mut f = facts();
        f.authorization = Authorization::Staff {
            user: "op@example.com".into(),
            may_reply: true,
        };
        f.window_expires_at = Some(now() - Duration::minutes(1));
        assert_eq!(
            run(&m, &f).decision,
            Decision::Block {
                reason: Gate::OutsideWindow
            }
        );
        f.window_expires_at = Some(now() + Duration::hours(2));
        assert_eq!(run(&m, &f).decision, Decision::Pass);
        // Outside the window a template passes.
        f.window_expires_at = None;
        let t = msg(
            Channel::WhatsApp,
            template("task_reminder"),
            Purpose::InboxReply,
        );
        assert_eq!(run(&t, &f).decision, Decision::Pass);
    }

    #[test]
    fn an_automation_replies_in_free_text_only_when_approved_for_it_and_only_inside_the_window() {
        let automation = |approved: bool, free_form: bool| Authorization::Automation {
            name: "agent".into(),
            approved,
            approved_by: approved.then(|| "approver@example.com".into()),
            templates: vec![],
            free_form,
        };
        let wa = msg(
            Channel::WhatsApp,
            MessageContent::FreeForm,
            Purpose::Automation,
        );
        let sms = msg(Channel::Sms, MessageContent::FreeForm, Purpose::Automation);
        let mut f = facts();
        f.consent = None;
        f.window_expires_at = Some(now() + Duration::hours(3));
        let blocked = |reason| Decision::Block { reason };

        // Not approved for free text (or not approved at all): refused, window or not.
        // Without an opt-in the consent gate refuses first; with one, the authorization.
        for auth in [automation(true, false), automation(false, true)] {
            f.authorization = auth;
            f.consent = None;
            assert_eq!(run(&wa, &f).decision, blocked(Gate::NoConsent));
            f.consent = facts().consent;
            assert_eq!(run(&wa, &f).decision, blocked(Gate::NotAuthorized));
        }
        f.consent = None;

        // Approved: inside the window it goes, to a person who wrote first (no opt-in needed,
        // as for staff), on WhatsApp and SMS alike.
        f.authorization = automation(true, true);
        let d = run(&wa, &f);
        assert_eq!(d.decision, Decision::Pass, "{d:#?}");
        let said = d
            .verdicts
            .iter()
            .find(|v| v.gate == Gate::NotAuthorized)
            .map(|v| format!("{:?}", v.verdict))
            .unwrap_or_default();
        assert!(
            said.contains(
                "approved for free-form replies inside the window by approver@example.com"
            ),
            "{said}"
        );
        assert_eq!(run(&sms, &f).decision, Decision::Pass);

        // Outside the window: refused on both channels, with the reason that applies.
        f.window_expires_at = Some(now() - Duration::minutes(1));
        assert_eq!(run(&wa, &f).decision, blocked(Gate::NoConsent));
        assert_eq!(run(&sms, &f).decision, blocked(Gate::NoConsent));
        f.consent = facts().consent;
        assert_eq!(run(&wa, &f).decision, blocked(Gate::OutsideWindow));
        assert_eq!(run(&sms, &f).decision, blocked(Gate::NotAuthorized));

        // A STOP, or a revoked consent, blocks even inside the window.
        f.window_expires_at = Some(now() + Duration::hours(3));
        let mut revoked = facts();
        if let Some(c) = revoked.consent.as_mut() {
            c.status = ConsentStatus::Revoked;
        }
        f.consent = revoked.consent;
        assert_eq!(run(&wa, &f).decision, blocked(Gate::NoConsent));
        f.consent = None;
        f.suppression = Some(SuppressionFact {
            reason: "keyword STOP".into(),
            since: now(),
            marketing_only: false,
        });
        assert_eq!(run(&wa, &f).decision, blocked(Gate::Suppressed));
        assert_eq!(run(&sms, &f).decision, blocked(Gate::Suppressed));
    }

    #[test]
    fn inbox_reply_in_window_needs_no_opt_in_but_revocation_still_blocks() {
        let m = msg(
            Channel::WhatsApp,
            MessageContent::FreeForm,
            Purpose::InboxReply,
        );
        let mut f = facts();
        f.authorization = Authorization::Staff {
            user: "op@example.com".into(),
            may_reply: true,
        };
        f.window_expires_at = Some(now() + Duration::hours(2));
        f.consent = None;
        assert_eq!(run(&m, &f).decision, Decision::Pass);
        f.consent = Some(ConsentFact {
            status: ConsentStatus::Revoked,
            source: "keyword".into(),
            captured_at: now(),
        });
        assert_eq!(
            run(&m, &f).decision,
            Decision::Block {
                reason: Gate::NoConsent
            }
        );
    }

    #[test]
    fn template_not_approved_blocks_unknown_unapproved_and_mismatched() {
        let m = automation_template();
        let mut f = facts();
        f.template = None;
        assert_eq!(
            run(&m, &f).decision,
            Decision::Block {
                reason: Gate::TemplateNotApproved
            }
        );
        for status in ["pending", "rejected", "paused", "disabled"] {
            let mut f = facts();
            f.template.as_mut().unwrap().approval_status = status.into();
            let d = run(&m, &f);
            assert_eq!(
                d.decision,
                Decision::Block {
                    reason: Gate::TemplateNotApproved
                }
            );
            assert!(d.explanation().contains(status));
        }
        let mut missing = m.clone();
        missing.content = MessageContent::Template {
            name: "task_reminder".into(),
            supplied: vec!["task_name".into()],
        };
        let d = run(&missing, &facts());
        assert_eq!(
            d.decision,
            Decision::Block {
                reason: Gate::TemplateNotApproved
            }
        );
        assert!(d.explanation().contains("due_time"));
        let mut extra = m.clone();
        extra.content = MessageContent::Template {
            name: "task_reminder".into(),
            supplied: vec!["task_name".into(), "due_time".into(), "colour".into()],
        };
        assert!(run(&extra, &facts()).explanation().contains("colour"));
    }

    #[test]
    fn not_authorized_covers_campaigns_automations_staff_and_senders() {
        let campaign = msg(
            Channel::WhatsApp,
            template("task_reminder"),
            Purpose::Campaign,
        );
        let mut f = facts();
        f.authorization = Authorization::Campaign {
            status: "approved".into(),
            authors: vec!["a@x.com".into()],
            approved_by: Some("a@x.com".into()),
            approved_template: None,
        };
        assert_eq!(
            run(&campaign, &f).decision,
            Decision::Block {
                reason: Gate::NotAuthorized
            }
        );
        f.authorization = Authorization::Campaign {
            status: "approved".into(),
            authors: vec!["a@x.com".into()],
            approved_by: None,
            approved_template: None,
        };
        assert_eq!(
            run(&campaign, &f).decision,
            Decision::Block {
                reason: Gate::NotAuthorized
            }
        );
        f.authorization = Authorization::Campaign {
            status: "sending".into(),
            authors: vec!["a@x.com".into()],
            approved_by: Some("b@x.com".into()),
            approved_template: None,
        };
        assert_eq!(run(&campaign, &f).decision, Decision::Pass);
        f.authorization = Authorization::Campaign {
            status: "cancelled".into(),
            authors: vec!["a@x.com".into()],
            approved_by: Some("b@x.com".into()),
            approved_template: None,
        };
        assert_eq!(
            run(&campaign, &f).decision,
            Decision::Block {
                reason: Gate::NotAuthorized
            }
        );

        // Automation not approved, or not for this template.
        let mut f = facts();
        f.authorization = Authorization::Automation {
            name: "n8n".into(),
            approved: false,
            approved_by: None,
            templates: vec!["task_reminder".into()],
            free_form: false,
        };
        assert_eq!(
            run(&automation_template(), &f).decision,
            Decision::Block {
                reason: Gate::NotAuthorized
            }
        );
        f.authorization = Authorization::Automation {
            name: "n8n".into(),
            approved: true,
            approved_by: Some("x".into()),
            templates: vec!["daily_briefing".into()],
            free_form: false,
        };
        assert_eq!(
            run(&automation_template(), &f).decision,
            Decision::Block {
                reason: Gate::NotAuthorized
            }
        );

        // A sender nobody activated.
        let mut f = facts();
        f.sender.active = false;
        let d = run(&automation_template(), &f);
        assert_eq!(
            d.decision,
            Decision::Block {
                reason: Gate::NotAuthorized
            }
        );
        assert!(d.explanation().contains("activated"));

        // Staff without the right to reply.
        let mut f = facts();
        f.window_expires_at = Some(now() + Duration::hours(1));
        f.authorization = Authorization::Staff {
            user: "viewer@x.com".into(),
            may_reply: false,
        };
        let m = msg(
            Channel::WhatsApp,
            MessageContent::FreeForm,
            Purpose::InboxReply,
        );
        assert_eq!(
            run(&m, &f).decision,
            Decision::Block {
                reason: Gate::NotAuthorized
            }
        );
    }

    #[test]
    fn marketing_to_plus_one_is_paused_on_whatsapp_only() {
        let mut m = msg(
            Channel::WhatsApp,
            template("spring_offer"),
            Purpose::Automation,
        );
        m.recipient = Some(PhoneNumber::parse("+14155552671", Id::US).unwrap());
        let mut f = facts();
        f.template.as_mut().unwrap().category = TemplateCategory::Marketing;
        if let Authorization::Automation { templates, .. } = &mut f.authorization {
            templates.push("spring_offer".into());
        }
        f.template.as_mut().unwrap().name = "spring_offer".into();
        assert_eq!(
            run(&m, &f).decision,
            Decision::Block {
                reason: Gate::MarketingPaused
            }
        );
        // Twin: the same template to a Norwegian number passes.
        let mut m2 = m.clone();
        m2.recipient = Some(PhoneNumber::parse("+4791234567", Id::US).unwrap());
        assert_eq!(run(&m2, &f).decision, Decision::Pass);
        // Canada is +1 but not part of Meta's US pause.
        let mut ca = m.clone();
        ca.recipient = Some(PhoneNumber::parse("+14165550123", Id::US).unwrap());
        assert_eq!(run(&ca, &f).decision, Decision::Pass);
        // And by SMS the WhatsApp rule does not apply.
        let mut m3 = m.clone();
        m3.channel = Channel::Sms;
        f.time_zone = LocalZones::Contact(chrono_tz::UTC);
        assert_eq!(run(&m3, &f).decision, Decision::Pass);
    }

    #[test]
    fn quiet_hours_defer_sms_until_eight_local() {
        let m = msg(Channel::Sms, template("task_reminder"), Purpose::Automation);
        let mut f = facts();
        // 15:00 UTC is 16:00 in Oslo: fine.
        assert_eq!(run(&m, &f).decision, Decision::Pass);
        // 15:00 UTC is 04:00 next day in Auckland (UTC+13): defer to 08:00 local.
        f.time_zone = LocalZones::Contact(chrono_tz::Pacific::Auckland);
        match run(&m, &f).decision {
            Decision::Defer { reason, until } => {
                assert_eq!(reason, Gate::QuietHours);
                assert_eq!(until, Utc.with_ymd_and_hms(2026, 11, 17, 19, 0, 0).unwrap());
            }
            other => panic!("expected defer, got {other:?}"),
        }
        // 15:00 UTC is 10:00 in New York: fine; 22:00 New York defers to next 08:00.
        f.time_zone = LocalZones::Contact(chrono_tz::America::New_York);
        assert_eq!(run(&m, &f).decision, Decision::Pass);
        let late = Utc.with_ymd_and_hms(2026, 11, 18, 3, 0, 0).unwrap();
        match evaluate(&m, &f, late, &Policy::default()).decision {
            Decision::Defer { until, .. } => {
                assert_eq!(until, Utc.with_ymd_and_hms(2026, 11, 18, 13, 0, 0).unwrap())
            }
            other => panic!("expected defer, got {other:?}"),
        }
        // WhatsApp at the same hour is not subject to quiet hours.
        let wa = automation_template();
        assert_eq!(
            evaluate(&wa, &f, late, &Policy::default()).decision,
            Decision::Pass
        );
    }

    #[test]
    fn tier_limit_defers_new_people_but_not_counted_ones() {
        let m = automation_template();
        let mut f = facts();
        f.tier = TierFact {
            used: 250,
            limit: Some(250),
            recipient_counted: false,
            next_free_at: Some(now() + Duration::hours(3)),
        };
        assert_eq!(
            run(&m, &f).decision,
            Decision::Defer {
                reason: Gate::TierLimit,
                until: now() + Duration::hours(3)
            }
        );
        f.tier.recipient_counted = true;
        assert_eq!(run(&m, &f).decision, Decision::Pass);
        f.tier.recipient_counted = false;
        f.tier.limit = None;
        assert_eq!(run(&m, &f).decision, Decision::Pass);
        // Inside the window the conversation is not business-initiated.
        f.tier.limit = Some(250);
        f.window_expires_at = Some(now() + Duration::hours(1));
        assert_eq!(run(&m, &f).decision, Decision::Pass);
    }

    #[test]
    fn rate_limited_defers_until_the_recipient_may_be_messaged() {
        let m = automation_template();
        let mut f = facts();
        f.recipient_next_at = Some(now() + Duration::seconds(4));
        assert_eq!(
            run(&m, &f).decision,
            Decision::Defer {
                reason: Gate::RateLimited,
                until: now() + Duration::seconds(4)
            }
        );
        f.recipient_next_at = Some(now() - Duration::seconds(1));
        assert_eq!(run(&m, &f).decision, Decision::Pass);
    }

    #[test]
    fn a_block_wins_over_a_defer_and_the_first_block_names_the_decision() {
        let m = msg(Channel::Sms, template("task_reminder"), Purpose::Automation);
        let mut f = facts();
        f.time_zone = LocalZones::Contact(chrono_tz::Pacific::Auckland);
        f.consent = None;
        f.suppression = Some(SuppressionFact {
            reason: "staff".into(),
            since: now(),
            marketing_only: false,
        });
        let d = run(&m, &f);
        assert_eq!(
            d.decision,
            Decision::Block {
                reason: Gate::Suppressed
            }
        );
        assert!(matches!(
            d.verdict(Gate::NoConsent),
            Some(Verdict::Block { .. })
        ));
        assert!(matches!(
            d.verdict(Gate::QuietHours),
            Some(Verdict::Defer { .. })
        ));
    }

    #[test]
    fn next_local_time_handles_daylight_saving_gaps() {
        // Europe/Oslo springs forward at 02:00 on 2026-03-29: 02:30 does not exist.
        let t = next_local_time(
            chrono_tz::Europe::Oslo,
            chrono::NaiveDate::from_ymd_opt(2026, 3, 29).unwrap(),
            NaiveTime::from_hms_opt(2, 30, 0).unwrap(),
        )
        .unwrap();
        assert_eq!(t, Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap());
    }

    #[test]
    fn reason_codes_are_the_contract() {
        let codes: Vec<&str> = Gate::ORDER.iter().map(|g| g.code()).collect();
        assert_eq!(
            codes,
            [
                "invalid_number",
                "not_allowlisted",
                "suppressed",
                "no_consent",
                "outside_window",
                "template_not_approved",
                "not_authorized",
                "marketing_paused",
                "sender_paused",
                "quiet_hours",
                "tier_limit",
                "rate_limited"
            ]
        );
        for g in Gate::ORDER {
            assert_eq!(serde_json::to_value(g).unwrap(), g.code());
        }
    }

    #[test]
    fn the_allowlist_refuses_every_other_number_with_its_own_code() {
        let m = automation_template();
        let f = facts();
        let mut policy = Policy {
            allowlist: Some(std::sync::Arc::new(
                ["+4700000000".to_string()].into_iter().collect(),
            )),
            ..Policy::default()
        };
        let d = evaluate(&m, &f, now(), &policy);
        assert_eq!(
            d.decision,
            Decision::Block {
                reason: Gate::NotAllowlisted
            }
        );
        // Even the reply to a keyword does not go outside the list.
        let reply = msg(
            Channel::WhatsApp,
            MessageContent::FreeForm,
            Purpose::ComplianceReply,
        );
        assert_eq!(
            evaluate(&reply, &f, now(), &policy).decision.reason(),
            Some(Gate::NotAllowlisted)
        );
        // The listed number passes.
        policy.allowlist = Some(std::sync::Arc::new(
            ["+4791234567".to_string()].into_iter().collect(),
        ));
        assert_eq!(evaluate(&m, &f, now(), &policy).decision, Decision::Pass);
        // No list: the gate does not apply.
        assert!(matches!(
            run(&m, &f).verdict(Gate::NotAllowlisted),
            Some(Verdict::NotApplicable { .. })
        ));
    }

    #[test]
    fn a_marketing_only_suppression_stops_marketing_and_nothing_else() {
        let mut f = facts();
        f.suppression = Some(SuppressionFact {
            reason: "provider 131050".into(),
            since: now(),
            marketing_only: true,
        });
        // A utility template still goes.
        assert_eq!(run(&automation_template(), &f).decision, Decision::Pass);
        // A marketing one does not.
        f.template.as_mut().unwrap().category = TemplateCategory::Marketing;
        assert_eq!(
            run(&automation_template(), &f).decision.reason(),
            Some(Gate::Suppressed)
        );
    }

    #[test]
    fn no_author_may_approve_and_approval_binds_to_the_template() {
        let campaign = msg(
            Channel::WhatsApp,
            template("task_reminder"),
            Purpose::Campaign,
        );
        let mut f = facts();
        // A second author (who edited the draft) approved it: refused.
        f.authorization = Authorization::Campaign {
            status: "approved".into(),
            authors: vec!["a".into(), "b".into()],
            approved_by: Some("b".into()),
            approved_template: Some("d1".into()),
        };
        assert_eq!(
            run(&campaign, &f).decision.reason(),
            Some(Gate::NotAuthorized)
        );
        // Someone else approved the template as it is now: passes.
        f.authorization = Authorization::Campaign {
            status: "approved".into(),
            authors: vec!["a".into(), "b".into()],
            approved_by: Some("c".into()),
            approved_template: Some("d1".into()),
        };
        assert_eq!(run(&campaign, &f).decision, Decision::Pass);
        // The template changed since: refused.
        f.template.as_mut().unwrap().digest = "d2".into();
        let d = run(&campaign, &f);
        assert_eq!(d.decision.reason(), Some(Gate::NotAuthorized));
        assert!(
            d.explanation().contains("template changed"),
            "{}",
            d.explanation()
        );
    }

    #[test]
    fn a_paused_sender_holds_messages_instead_of_refusing_them() {
        let mut f = facts();
        f.sender.paused = Some("error 63007".into());
        let d = run(&automation_template(), &f);
        match d.decision {
            Decision::Defer { reason, until } => {
                assert_eq!(reason, Gate::SenderPaused);
                assert_eq!(until, sender_paused_until());
            }
            other => panic!("{other:?}"),
        }
        assert!(Gate::SenderPaused.defers());
    }

    #[test]
    fn quiet_hours_name_the_zone_and_take_every_inferred_zone() {
        let m = msg(Channel::Sms, template("task_reminder"), Purpose::Automation);
        let mut f = facts();
        static ZONES: [chrono_tz::Tz; 2] = [
            chrono_tz::America::New_York,
            chrono_tz::America::Los_Angeles,
        ];
        f.time_zone = LocalZones::Inferred {
            zones: &ZONES,
            prefix: "1",
        };
        // 15:00 UTC: 10:00 in New York, 07:00 in Los Angeles: held.
        let d = run(&m, &f);
        match d.decision {
            Decision::Defer { reason, until } => {
                assert_eq!(reason, Gate::QuietHours);
                // Until 08:00 in Los Angeles (16:00 UTC in November).
                assert_eq!(until, Utc.with_ymd_and_hms(2026, 11, 17, 16, 0, 0).unwrap());
            }
            other => panic!("{other:?}"),
        }
        let detail = d.explanation();
        assert!(detail.contains("America/Los_Angeles"), "{detail}");
        assert!(detail.contains("inferred from +1"), "{detail}");
        // One zone only (New York): it may go.
        f.time_zone = LocalZones::Contact(chrono_tz::America::New_York);
        assert_eq!(run(&m, &f).decision, Decision::Pass);
    }
}
