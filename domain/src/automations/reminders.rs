//! One-off reminders: an automation asks for a template message to one
//! contact at a given time, and [`deliver_due`] sends it once, when it is
//! due, through [`outbound::accept`] (gates and audit) with the
//! authorization of the API key that created it, checked again at send time.
//!
//! States (`reminders.state`):
//!
//! ```text
//! scheduled ──due, claimed──> sending ──accepted──> sent     (handed to the send path;
//!     │                          │                            the message has its own state)
//!     │                          ├──gate refused──> blocked  (reason recorded)
//!     │                          ├──too late──────> missed   (audit row, never sent)
//!     │                          └──cannot send───> failed   (contact gone, ...)
//!     └──DELETE──> cancelled
//! ```
//!
//! Exactly once: a worker claims a reminder with a compare-and-set
//! (`scheduled -> sending`), and the message is accepted with the
//! idempotency key `reminder:{id}`, so a claim left behind by a worker that
//! stopped is taken up again later without sending twice.
//!
//! After downtime, a reminder that came due more than its tolerance ago is
//! recorded as `missed` with a `tool_calls` row (kind `reminder_missed`) and
//! is not sent: no burst of stale reminders.
//!
//! This module never calls a provider: every message goes through the gates.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, Utc};
use chrono_tz::Tz;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::Serialize;

use crate::access::authz::{self, ApiPrincipal};
use crate::automations::schedules::local_instant;
use crate::channel::Channel;
use crate::clock::new_id;
use crate::compliance::gates::{self, Decision, Gate, TemplateProblem, Verdict};
use crate::contacts;
use crate::entities::{api_key, contact, outbound_message, reminder, tool_call};
use crate::phone::PhoneNumber;
use crate::sending::outbound::{self, AcceptError, Origin, Outcome, Recipient, RequestedContent};
use crate::templates;
use crate::Core;

/// How late a reminder may still be sent when no tolerance is given.
pub const DEFAULT_TOLERANCE_SECS: i64 = 15 * 60;
/// The smallest tolerance accepted: the delivery job runs every 15 seconds.
pub const MIN_TOLERANCE_SECS: i64 = 60;
/// The largest tolerance accepted (a week).
pub const MAX_TOLERANCE_SECS: i64 = 7 * 24 * 3600;
/// How far ahead a reminder may be set.
pub const MAX_AHEAD: Duration = Duration::days(2 * 366);
/// A claim older than this was left by a worker that stopped.
pub const STALE_CLAIM: Duration = Duration::minutes(5);
/// Template values longer than this are refused (WhatsApp's own limit).
pub const MAX_VALUE_CHARS: usize = 1024;

const BATCH: u64 = 200;

/// Where a reminder is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReminderState {
    Scheduled,
    Sending,
    Sent,
    Blocked,
    Missed,
    Cancelled,
    Failed,
}

impl ReminderState {
    pub const ALL: [ReminderState; 7] = [
        ReminderState::Scheduled,
        ReminderState::Sending,
        ReminderState::Sent,
        ReminderState::Blocked,
        ReminderState::Missed,
        ReminderState::Cancelled,
        ReminderState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReminderState::Scheduled => "scheduled",
            ReminderState::Sending => "sending",
            ReminderState::Sent => "sent",
            ReminderState::Blocked => "blocked",
            ReminderState::Missed => "missed",
            ReminderState::Cancelled => "cancelled",
            ReminderState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<ReminderState> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl std::fmt::Display for ReminderState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a reminder or schedule is for, as the caller names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Contact(String),
    /// A phone number of an existing contact.
    Phone(String),
}

/// Why a request to create or change a reminder or schedule was refused.
/// Nothing is changed when one of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Bad input (HTTP 400), with a stable code.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// The contact does not exist (HTTP 404).
    #[error("{0}")]
    ContactNotFound(String),
    /// The reminder or schedule does not exist (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// A gate would refuse every send (HTTP 422, with the gate's code).
    #[error("{message}")]
    Refused { gate: Gate, message: String },
    /// The request conflicts with the current state (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

impl RequestError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        RequestError::Invalid {
            code,
            message: message.into(),
        }
    }
}

/// A reminder as the caller asks for it.
#[derive(Debug, Clone)]
pub struct NewReminder {
    pub target: Target,
    pub template_name: String,
    /// Named template values: strings, numbers or booleans.
    pub variables: BTreeMap<String, serde_json::Value>,
    /// RFC 3339 (`2026-11-20T07:00:00+01:00`), or a local time without an
    /// offset (`2026-11-20T07:00`) read in the contact's time zone.
    pub send_at: String,
    /// Seconds after `send_at` it may still be sent; default 15 minutes.
    pub tolerance_secs: Option<i64>,
}

/// A reminder as the API and console show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reminder {
    pub id: String,
    pub contact_id: String,
    pub to: String,
    pub template_name: String,
    pub variables: BTreeMap<String, String>,
    pub send_at: DateTime<Utc>,
    pub tolerance_secs: i64,
    pub state: String,
    /// What happened when it came due (gate reason, lateness, ...).
    pub outcome: Option<String>,
    pub message_id: Option<String>,
    /// The message's own state (queued, sent, delivered, ...), when there is one.
    pub message_state: Option<crate::compliance::message_state::MessageState>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What one delivery run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryReport {
    pub sent: usize,
    pub blocked: usize,
    pub missed: usize,
    pub failed: usize,
    /// Claims left by a stopped worker that this run took up again.
    pub recovered: usize,
}

impl std::fmt::Display for DeliveryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} sent, {} blocked, {} missed, {} failed",
            self.sent, self.blocked, self.missed, self.failed
        )?;
        if self.recovered > 0 {
            write!(f, " ({} recovered)", self.recovered)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Input parsing shared with schedules

/// Template values from JSON: strings, numbers and booleans become text.
pub fn variables_from_json(
    vars: &BTreeMap<String, serde_json::Value>,
) -> Result<BTreeMap<String, String>, RequestError> {
    let mut out = BTreeMap::new();
    for (k, v) in vars {
        let name = k.trim();
        if name.is_empty() {
            return Err(RequestError::invalid(
                "invalid_variables",
                "variable names must not be empty",
            ));
        }
        let s = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            other => {
                return Err(RequestError::invalid(
                    "invalid_variables",
                    format!("variables.{name} must be a string or number, not {other}"),
                ))
            }
        };
        if s.chars().count() > MAX_VALUE_CHARS {
            return Err(RequestError::invalid(
                "invalid_variables",
                format!("variables.{name} is longer than {MAX_VALUE_CHARS} characters"),
            ));
        }
        out.insert(name.to_string(), s);
    }
    Ok(out)
}

/// A tolerance in seconds, within bounds; the default when not given.
pub fn tolerance(secs: Option<i64>) -> Result<i64, RequestError> {
    match secs {
        None => Ok(DEFAULT_TOLERANCE_SECS),
        Some(s) if (MIN_TOLERANCE_SECS..=MAX_TOLERANCE_SECS).contains(&s) => Ok(s),
        Some(s) => Err(RequestError::invalid(
            "invalid_tolerance",
            format!(
                "tolerance must be between {MIN_TOLERANCE_SECS} and {MAX_TOLERANCE_SECS} seconds, not {s}"
            ),
        )),
    }
}

/// The contact a reminder or schedule is for; it must exist.
pub async fn resolve_contact(core: &Core, target: &Target) -> Result<contact::Model, RequestError> {
    match target {
        Target::Contact(id) => contact::Entity::find_by_id(id.trim())
            .one(&core.db.conn)
            .await?
            .ok_or_else(|| RequestError::ContactNotFound(format!("no contact with id {id}"))),
        Target::Phone(raw) => {
            let phone = PhoneNumber::parse(raw, core.settings.default_region)
                .map_err(|e| RequestError::invalid("invalid_number", format!("'{raw}': {e}")))?;
            contacts::find_by_phone(&core.db.conn, &phone)
                .await?
                .ok_or_else(|| {
                    RequestError::ContactNotFound(format!(
                        "no contact with phone {phone}; add the contact (with consent) first"
                    ))
                })
        }
    }
}

/// The contact's time zone: its own, else the one its number is in (for
/// a number that spans zones, the one whose clock is furthest behind, so a
/// 07:00 briefing is 07:00 or later wherever they are), else the
/// configured default.
pub fn contact_time_zone(core: &Core, c: &contact::Model) -> Tz {
    let number = crate::phone::PhoneNumber::parse_e164(&c.phone_e164).ok();
    crate::sending::outbound::local_zones(core, c.time_zone.as_deref(), number.as_ref())
        .primary(core.now())
}

/// A send time: RFC 3339 with an offset, or a local time without one read
/// in `tz` (a local time that does not exist, in a spring-forward gap, is
/// moved forward by the gap; one that exists twice is the earlier).
pub fn parse_send_at(raw: &str, tz: Tz) -> Result<DateTime<Utc>, RequestError> {
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(raw, fmt) {
            // Far-off years are refused later; keep the arithmetic in range.
            if !(1970..=9999).contains(&n.year()) {
                break;
            }
            return Ok(local_instant(tz, n));
        }
    }
    Err(RequestError::invalid(
        "invalid_send_at",
        format!(
            "send_at '{raw}' is not an RFC 3339 time (2026-11-20T07:00:00+01:00) or a local time (2026-11-20T07:00) in the contact's time zone"
        ),
    ))
}

/// Check, at creation, what the template and authorization gates would
/// check at send time, so a request that could never be sent is refused
/// now. With `complete`, the variables must be exactly the template's;
/// otherwise (values fetched later) they must be a subset.
pub async fn check_template(
    core: &Core,
    principal: &ApiPrincipal,
    name: &str,
    variables: &BTreeMap<String, String>,
    complete: bool,
) -> Result<templates::Template, RequestError> {
    let name = name.trim().to_lowercase();
    if name.is_empty() {
        return Err(RequestError::invalid(
            "bad_request",
            "template_name must not be empty",
        ));
    }
    let refused = |message: String| RequestError::Refused {
        gate: Gate::TemplateNotApproved,
        message,
    };
    let Some(t) = templates::find_by_name(&core.db.conn, &name).await? else {
        return Err(refused(format!("template '{name}' is not registered")));
    };
    let registered = Some((t.approval_status.as_str(), t.variables.as_slice()));
    match gates::template_problem(registered, variables.keys().map(String::as_str)) {
        Some(TemplateProblem::NotApproved { status }) => {
            return Err(refused(format!(
                "template '{name}' is {status}, not approved"
            )))
        }
        Some(TemplateProblem::Variables { unknown, .. }) if !unknown.is_empty() => {
            return Err(refused(format!(
                "template '{name}' has no variable(s): {}",
                unknown.join(", ")
            )))
        }
        // Values fetched at send time may fill the rest.
        Some(TemplateProblem::Variables { missing, .. }) if complete => {
            return Err(refused(format!(
                "template '{name}' needs variable(s): {}",
                missing.join(", ")
            )))
        }
        _ => {}
    }
    let authorization = authz::automation_authorization(core, principal).await?;
    match gates::automation_template_verdict(&authorization, &name) {
        Verdict::Block { detail } => Err(RequestError::Refused {
            gate: Gate::NotAuthorized,
            message: detail,
        }),
        _ => Ok(t),
    }
}

/// The API principal stored with a reminder or schedule, as it stands now:
/// `Err` says why it may no longer send (key revoked or gone, bootstrap key
/// no longer configured).
pub async fn stored_principal(
    core: &Core,
    api_key_id: Option<&str>,
) -> Result<Result<ApiPrincipal, String>, sea_orm::DbErr> {
    match api_key_id {
        None if core.settings.api_key.is_some() => Ok(Ok(ApiPrincipal {
            key_id: None,
            name: "bootstrap (HEIMDALL_API_KEY)".into(),
        })),
        None => Ok(Err(
            "the bootstrap API key that created it is no longer configured".into(),
        )),
        Some(id) => Ok(
            match api_key::Entity::find_by_id(id).one(&core.db.conn).await? {
                None => Err("the API key that created it no longer exists".into()),
                Some(k) if k.revoked_at.is_some() => Err(format!(
                    "the API key '{}' that created it was revoked",
                    k.name
                )),
                Some(k) => Ok(ApiPrincipal {
                    key_id: Some(k.id),
                    name: k.name,
                }),
            },
        ),
    }
}

/// How a stored API key id reads in `created_by` and audit rows.
pub fn actor_of(api_key_id: Option<&str>) -> String {
    match api_key_id {
        None => "api_key:bootstrap".into(),
        Some(id) => format!("api_key:{id}"),
    }
}

/// An audit row for a scheduled send that never became a message (missed,
/// refused before the gates, failed): `tool_calls` with no message id.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn audit(
    db: &impl ConnectionTrait,
    kind: &str,
    contact_id: &str,
    decision: &str,
    reason: Option<Gate>,
    detail: String,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    tool_call::ActiveModel {
        id: Set(new_id()),
        message_id: Set(None),
        kind: Set(kind.to_string()),
        stage: Set("scheduler".into()),
        channel: Set(Some(Channel::WhatsApp.as_str().to_string())),
        contact_id: Set(Some(contact_id.to_string())),
        campaign_id: Set(None),
        verdicts: Set("[]".into()),
        decision: Set(decision.to_string()),
        reason_code: Set(reason.map(|g| g.code().to_string())),
        result_ok: Set(false),
        error_code: Set(None),
        detail: Set(Some(detail)),
        actor: Set(actor.to_string()),
        created_at: Set(now),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// What an accepted (or refused) message means for the reminder or
/// occurrence behind it: `true` when it was handed to the send path.
pub(crate) fn settle(outcome: &Outcome) -> (bool, String) {
    match outcome.decision.decision {
        Decision::Block { reason } => (
            false,
            format!("{}: {}", reason.code(), outcome.decision.explanation()),
        ),
        Decision::Defer { reason, until } => (
            true,
            format!(
                "accepted; held by {} until {}",
                reason.code(),
                until.to_rfc3339()
            ),
        ),
        Decision::Pass => (true, format!("accepted ({})", outcome.state)),
    }
}

/// Is there already a message for this idempotency key (a claim taken up
/// again after a worker stopped)?
pub(crate) async fn message_for_key(
    core: &Core,
    key: &str,
) -> Result<Option<outbound_message::Model>, sea_orm::DbErr> {
    outbound_message::Entity::find()
        .filter(outbound_message::Column::IdempotencyKey.eq(key))
        .one(&core.db.conn)
        .await
}

// ---------------------------------------------------------------------------
// Creating, reading, cancelling

/// Create a reminder for `principal` (the caller's API key). Nothing is
/// stored when the request is refused.
pub async fn create(
    core: &Core,
    principal: &ApiPrincipal,
    input: NewReminder,
) -> Result<Reminder, RequestError> {
    let tolerance_secs = tolerance(input.tolerance_secs)?;
    let variables = variables_from_json(&input.variables)?;
    if input.template_name.trim().is_empty() {
        return Err(RequestError::invalid(
            "bad_request",
            "template_name is required",
        ));
    }
    let contact = resolve_contact(core, &input.target).await?;
    let send_at = parse_send_at(&input.send_at, contact_time_zone(core, &contact))?;
    let now = core.now();
    if now - send_at > Duration::seconds(tolerance_secs) {
        return Err(RequestError::invalid(
            "invalid_send_at",
            format!(
                "send_at {} is more than the tolerance ({tolerance_secs} s) in the past",
                send_at.to_rfc3339()
            ),
        ));
    }
    if send_at - now > MAX_AHEAD {
        return Err(RequestError::invalid(
            "invalid_send_at",
            "send_at is more than two years ahead",
        ));
    }
    let template = check_template(core, principal, &input.template_name, &variables, true).await?;
    let row = reminder::ActiveModel {
        id: Set(new_id()),
        contact_id: Set(contact.id.clone()),
        to_address: Set(contact.phone_e164.clone()),
        template_name: Set(template.name),
        variables: Set(serde_json::to_string(&variables).unwrap_or_else(|_| "{}".into())),
        send_at: Set(send_at),
        tolerance_secs: Set(tolerance_secs),
        state: Set(ReminderState::Scheduled.as_str().into()),
        automation_id: Set(None),
        api_key_id: Set(principal.key_id.clone()),
        message_id: Set(None),
        outcome: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&core.db.conn)
    .await?;
    tracing::info!(reminder_id = %row.id, send_at = %row.send_at, actor = %principal.actor(), "reminder scheduled");
    view(core, row).await.map_err(Into::into)
}

async fn view(core: &Core, m: reminder::Model) -> Result<Reminder, sea_orm::DbErr> {
    let message_state = match &m.message_id {
        Some(id) => outbound_message::Entity::find_by_id(id.as_str())
            .one(&core.db.conn)
            .await?
            .map(|msg| msg.state),
        None => None,
    };
    Ok(Reminder {
        variables: serde_json::from_str(&m.variables).unwrap_or_default(),
        created_by: actor_of(m.api_key_id.as_deref()),
        id: m.id,
        contact_id: m.contact_id,
        to: m.to_address,
        template_name: m.template_name,
        send_at: m.send_at,
        tolerance_secs: m.tolerance_secs,
        state: m.state,
        outcome: m.outcome,
        message_id: m.message_id,
        message_state,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

pub async fn get(core: &Core, id: &str) -> Result<Reminder, RequestError> {
    let m = reminder::Entity::find_by_id(id)
        .one(&core.db.conn)
        .await?
        .ok_or_else(|| RequestError::NotFound(format!("no reminder with id {id}")))?;
    Ok(view(core, m).await?)
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ReminderFilter {
    pub contact_id: Option<String>,
    /// One of the [`ReminderState`] names.
    pub state: Option<String>,
    /// At most this many (default 100, at most 500), latest `send_at` first.
    pub limit: Option<u64>,
}

pub async fn list(core: &Core, filter: &ReminderFilter) -> Result<Vec<Reminder>, RequestError> {
    let mut q = reminder::Entity::find()
        .order_by_desc(reminder::Column::SendAt)
        .order_by_desc(reminder::Column::Id);
    if let Some(c) = filter.contact_id.as_deref().filter(|c| !c.is_empty()) {
        q = q.filter(reminder::Column::ContactId.eq(c));
    }
    if let Some(s) = filter.state.as_deref().filter(|s| !s.is_empty()) {
        let state = ReminderState::parse(s).ok_or_else(|| {
            RequestError::invalid(
                "invalid_state",
                format!(
                    "state must be one of {}",
                    ReminderState::ALL.map(|s| s.as_str()).join(", ")
                ),
            )
        })?;
        q = q.filter(reminder::Column::State.eq(state.as_str()));
    }
    let limit = match filter.limit {
        None => 100,
        Some(n) if (1..=500).contains(&n) => n,
        Some(_) => {
            return Err(RequestError::invalid(
                "bad_request",
                "limit must be between 1 and 500",
            ))
        }
    };
    let mut out = Vec::new();
    for m in q.limit(limit).all(&core.db.conn).await? {
        out.push(view(core, m).await?);
    }
    Ok(out)
}

/// Cancel a reminder that has not come due yet. Cancelling a cancelled
/// reminder is not an error; one already sent (or being sent) is a conflict.
pub async fn cancel(core: &Core, id: &str, actor: &str) -> Result<Reminder, RequestError> {
    let now = core.now();
    let res = reminder::Entity::update_many()
        .col_expr(
            reminder::Column::State,
            Expr::value(ReminderState::Cancelled.as_str()),
        )
        .col_expr(
            reminder::Column::Outcome,
            Expr::value(Some(format!("cancelled by {actor}"))),
        )
        .col_expr(reminder::Column::UpdatedAt, Expr::value(now))
        .filter(reminder::Column::Id.eq(id))
        .filter(reminder::Column::State.eq(ReminderState::Scheduled.as_str()))
        .exec(&core.db.conn)
        .await?;
    let current = get(core, id).await?;
    if res.rows_affected == 1 {
        tracing::info!(reminder_id = %id, %actor, "reminder cancelled");
        return Ok(current);
    }
    match ReminderState::parse(&current.state) {
        Some(ReminderState::Cancelled) => Ok(current),
        Some(ReminderState::Sending) => Err(RequestError::Conflict(
            "the reminder is being sent and can no longer be cancelled".into(),
        )),
        _ => Err(RequestError::Conflict(format!(
            "the reminder is already {} and can no longer be cancelled",
            current.state
        ))),
    }
}

// ---------------------------------------------------------------------------
// Delivering

/// Send every reminder that is due, once each; record the late ones as
/// missed. Safe to run in several workers at once.
pub async fn deliver_due(core: &Core) -> Result<DeliveryReport, sea_orm::DbErr> {
    let mut report = DeliveryReport::default();
    let now = core.now();

    // Claims left by a worker that stopped: take them up again.
    let stale = reminder::Entity::find()
        .filter(reminder::Column::State.eq(ReminderState::Sending.as_str()))
        .filter(reminder::Column::UpdatedAt.lt(now - STALE_CLAIM))
        .order_by_asc(reminder::Column::SendAt)
        .limit(BATCH)
        .all(&core.db.conn)
        .await?;
    for r in stale {
        let claimed = reminder::Entity::update_many()
            .col_expr(reminder::Column::UpdatedAt, Expr::value(now))
            .filter(reminder::Column::Id.eq(&r.id))
            .filter(reminder::Column::State.eq(ReminderState::Sending.as_str()))
            .filter(reminder::Column::UpdatedAt.eq(r.updated_at))
            .exec(&core.db.conn)
            .await?;
        if claimed.rows_affected == 1 {
            report.recovered += 1;
            let state = process(core, &r, true).await?;
            count(&mut report, state);
        }
    }

    for _ in 0..50 {
        let due = reminder::Entity::find()
            .filter(reminder::Column::State.eq(ReminderState::Scheduled.as_str()))
            .filter(reminder::Column::SendAt.lte(now))
            .order_by_asc(reminder::Column::SendAt)
            .limit(BATCH)
            .all(&core.db.conn)
            .await?;
        let n = due.len();
        for r in due {
            // Claim: exactly one worker moves it to `sending`.
            let claimed = reminder::Entity::update_many()
                .col_expr(
                    reminder::Column::State,
                    Expr::value(ReminderState::Sending.as_str()),
                )
                .col_expr(reminder::Column::UpdatedAt, Expr::value(now))
                .filter(reminder::Column::Id.eq(&r.id))
                .filter(reminder::Column::State.eq(ReminderState::Scheduled.as_str()))
                .exec(&core.db.conn)
                .await?;
            if claimed.rows_affected == 1 {
                let state = process(core, &r, false).await?;
                count(&mut report, state);
            }
        }
        if (n as u64) < BATCH {
            break;
        }
    }
    if report != DeliveryReport::default() {
        tracing::info!(%report, "reminders delivered");
    }
    Ok(report)
}

fn count(report: &mut DeliveryReport, state: ReminderState) {
    match state {
        ReminderState::Sent => report.sent += 1,
        ReminderState::Blocked => report.blocked += 1,
        ReminderState::Missed => report.missed += 1,
        ReminderState::Failed => report.failed += 1,
        _ => {}
    }
}

/// Settle one claimed reminder. A database error leaves it claimed; it is
/// taken up again after [`STALE_CLAIM`].
async fn process(
    core: &Core,
    r: &reminder::Model,
    recovering: bool,
) -> Result<ReminderState, sea_orm::DbErr> {
    let now = core.now();
    let key = format!("reminder:{}", r.id);
    let actor = actor_of(r.api_key_id.as_deref());
    let already_sent = recovering && message_for_key(core, &key).await?.is_some();
    let late = now - r.send_at;
    if !already_sent && late > Duration::seconds(r.tolerance_secs) {
        let detail = format!(
            "reminder {} ({}) was due at {} and came up {} s late (tolerance {} s); not sent",
            r.id,
            r.template_name,
            r.send_at.to_rfc3339(),
            late.num_seconds(),
            r.tolerance_secs
        );
        let txn = core.db.begin_write().await?;
        audit(
            &txn,
            "reminder_missed",
            &r.contact_id,
            "missed",
            None,
            detail.clone(),
            &actor,
            now,
        )
        .await?;
        finish(&txn, r, ReminderState::Missed, None, detail, now).await?;
        txn.commit().await?;
        tracing::warn!(reminder_id = %r.id, late_s = late.num_seconds(), "reminder missed");
        return Ok(ReminderState::Missed);
    }
    let principal = match stored_principal(core, r.api_key_id.as_deref()).await? {
        Ok(p) => p,
        Err(why) => {
            let detail = format!("{}: {why}", Gate::NotAuthorized.code());
            let txn = core.db.begin_write().await?;
            audit(
                &txn,
                "reminder_blocked",
                &r.contact_id,
                "block",
                Some(Gate::NotAuthorized),
                format!("reminder {}: {why}", r.id),
                &actor,
                now,
            )
            .await?;
            finish(&txn, r, ReminderState::Blocked, None, detail, now).await?;
            txn.commit().await?;
            return Ok(ReminderState::Blocked);
        }
    };
    let variables: BTreeMap<String, String> =
        serde_json::from_str(&r.variables).unwrap_or_default();
    let res = outbound::accept(
        core,
        outbound::SendRequest {
            recipient: Recipient::Contact(r.contact_id.clone()),
            channel: Channel::WhatsApp,
            content: RequestedContent::Template {
                name: r.template_name.clone(),
                variables,
            },
            origin: Origin::Automation {
                principal,
                source: "reminder",
                reminder_id: Some(r.id.clone()),
            },
            idempotency_key: Some(key),
        },
    )
    .await;
    let (state, message_id, outcome) = match res {
        Ok(o) => {
            let (went, text) = settle(&o);
            let state = if went {
                ReminderState::Sent
            } else {
                ReminderState::Blocked
            };
            (state, Some(o.message_id), text)
        }
        Err(AcceptError::Db(e)) => return Err(e),
        Err(e @ (AcceptError::ContactNotFound(_) | AcceptError::BadRequest(_))) => {
            (ReminderState::Failed, None, e.to_string())
        }
    };
    finish(&core.db.conn, r, state, message_id, outcome, core.now()).await?;
    tracing::info!(reminder_id = %r.id, state = %state, "reminder came due");
    Ok(state)
}

async fn finish(
    db: &impl ConnectionTrait,
    r: &reminder::Model,
    state: ReminderState,
    message_id: Option<String>,
    outcome: String,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    reminder::Entity::update_many()
        .col_expr(reminder::Column::State, Expr::value(state.as_str()))
        .col_expr(reminder::Column::MessageId, Expr::value(message_id))
        .col_expr(reminder::Column::Outcome, Expr::value(Some(outcome)))
        .col_expr(reminder::Column::UpdatedAt, Expr::value(now))
        .filter(reminder::Column::Id.eq(&r.id))
        .filter(reminder::Column::State.eq(ReminderState::Sending.as_str()))
        .exec(db)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        for s in ReminderState::ALL {
            assert_eq!(ReminderState::parse(s.as_str()), Some(s));
        }
        assert_eq!(ReminderState::parse("done"), None);
    }

    #[test]
    fn tolerance_bounds() {
        assert_eq!(tolerance(None).unwrap(), DEFAULT_TOLERANCE_SECS);
        assert_eq!(tolerance(Some(60)).unwrap(), 60);
        assert!(tolerance(Some(59)).is_err());
        assert!(tolerance(Some(-5)).is_err());
        assert!(tolerance(Some(MAX_TOLERANCE_SECS + 1)).is_err());
    }

    #[test]
    fn variables_accept_strings_numbers_and_booleans_only() {
        let ok: BTreeMap<String, serde_json::Value> = serde_json::from_value(
            serde_json::json!({"task_name": "Call Bob", "count": 3, "flag": true}),
        )
        .unwrap();
        let v = variables_from_json(&ok).unwrap();
        assert_eq!(v["count"], "3");
        assert_eq!(v["flag"], "true");
        for bad in [
            serde_json::json!({"a": null}),
            serde_json::json!({"a": [1]}),
            serde_json::json!({"a": {"b": 1}}),
            serde_json::json!({"  ": "x"}),
            serde_json::json!({"a": "x".repeat(MAX_VALUE_CHARS + 1)}),
        ] {
            let m: BTreeMap<String, serde_json::Value> = serde_json::from_value(bad).unwrap();
            assert!(variables_from_json(&m).is_err());
        }
    }

    #[test]
    fn send_at_takes_offsets_or_local_times() {
        let oslo: Tz = "Europe/Oslo".parse().unwrap();
        let a = parse_send_at("2026-11-20T07:00:00+01:00", oslo).unwrap();
        assert_eq!(a.to_rfc3339(), "2026-11-20T06:00:00+00:00");
        let b = parse_send_at("2026-11-20T07:00", oslo).unwrap();
        assert_eq!(a, b);
        // Summer time: 07:00 in Oslo is 05:00 UTC.
        let c = parse_send_at("2026-06-20 07:00", oslo).unwrap();
        assert_eq!(c.to_rfc3339(), "2026-06-20T05:00:00+00:00");
        assert!(parse_send_at("tomorrow", oslo).is_err());
        assert!(parse_send_at("2026-13-01T07:00", oslo).is_err());
        assert!(parse_send_at("+262000-01-01T07:00", oslo).is_err());
        assert!(parse_send_at("-262000-01-01T07:00", oslo).is_err());
    }
}
