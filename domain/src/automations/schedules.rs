//! Recurring schedules: a cron expression evaluated in the contact's own
//! time zone (a daily briefing at 07:00 local, a weekly review on Monday),
//! a template, and variables that are fixed or fetched at send time from a
//! URL answering JSON (as n8n fed the briefing). [`run_due`] sends each
//! occurrence once, through [`outbound::accept`], with the authorization of
//! the API key that created the schedule, checked again at send time.
//!
//! Exactly once: an occurrence is claimed by inserting its
//! `schedule_occurrences` row, unique on `(schedule_id, occurs_at)`; a
//! worker whose insert collides leaves it to the one that won. The message
//! is accepted with the idempotency key `schedule:{id}:{unix time}`, so an
//! occurrence left `claimed` by a worker that stopped is taken up again
//! without sending twice.
//!
//! Downtime: of the occurrences that came due while nothing ran, only the
//! latest is sent, and only within the schedule's tolerance; the others are
//! recorded as `missed` (with a `schedule_missed` audit row), never sent in
//! a burst.
//!
//! Time zones: occurrences are wall-clock times in the contact's zone, so
//! 07:00 stays 07:00 local across a daylight-saving change. A local time
//! that does not exist (inside a spring-forward gap) is moved forward by the
//! length of the gap (02:30 becomes 03:30); one that exists twice (in a
//! fall-back overlap) happens once, at the earlier instant.
//!
//! Cron expressions: the common five fields (`minute hour day-of-month
//! month day-of-week`, day-of-week 0-7 with 0 and 7 Sunday, or names), or
//! the `cron` crate's six or seven (with seconds first and an optional
//! year; its day-of-week numbers run 1-7 from Sunday, so names are safer),
//! or `@daily`, `@weekly`, `@monthly`, `@yearly`, `@hourly`. When both day
//! fields are restricted, both must match. A schedule may fire at most once
//! a minute.
//!
//! This module never calls a provider: every message goes through the gates.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::Serialize;

use crate::access::authz::ApiPrincipal;
use crate::alerts::{self, Alert};
use crate::automations::reminders::{
    self, actor_of, audit, check_template, contact_time_zone, message_for_key, resolve_contact,
    settle, stored_principal, variables_from_json, RequestError, Target, STALE_CLAIM,
};
use crate::channel::Channel;
use crate::clock::new_id;
use crate::compliance::gates::Gate;
use crate::entities::{api_key, automation, contact, schedule, schedule_occurrence};
use crate::sending::outbound::{self, AcceptError, Origin, Recipient, RequestedContent};
use crate::Core;

/// How long the variables URL has to answer.
pub const DEFAULT_FETCH_TIMEOUT: StdDuration = StdDuration::from_secs(5);
/// The largest variables answer read.
pub const MAX_VARIABLES_BYTES: usize = 256 * 1024;
/// Missed occurrences recorded one by one per run (older ones are counted).
const MAX_MISSED_RECORDED: usize = 50;
/// How far back a run looks for occurrences after downtime.
const LOOK_BACK: Duration = Duration::days(7);
/// Candidates examined per computation (bounds a pathological expression).
const MAX_SCAN: usize = 25_000;
/// The largest daylight-saving shift handled (real ones are 30-60 minutes).
const DST_MARGIN: Duration = Duration::hours(3);
const BATCH: u64 = 200;

// ---------------------------------------------------------------------------
// Time

/// The instant of a wall-clock time in `tz`: a time in a spring-forward gap
/// is moved forward by the gap; a time in a fall-back overlap is the earlier.
pub fn local_instant(tz: Tz, naive: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
        chrono::LocalResult::Ambiguous(earlier, _) => earlier.with_timezone(&Utc),
        chrono::LocalResult::None => {
            // Read it with the offset in force before the gap.
            let before = tz
                .offset_from_local_datetime(&(naive - DST_MARGIN))
                .earliest()
                .map(|o| o.fix().local_minus_utc())
                .unwrap_or(0);
            Utc.from_utc_datetime(&(naive - Duration::seconds(i64::from(before))))
        }
    }
}

/// A parsed cron expression, evaluated on wall-clock time.
#[derive(Debug, Clone)]
pub struct CronExpr {
    source: String,
    schedule: cron::Schedule,
}

impl CronExpr {
    /// Parse and check an expression (see the module docs for the forms).
    pub fn parse(raw: &str) -> Result<CronExpr, String> {
        let source = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        if source.is_empty() {
            return Err("the cron expression is empty".into());
        }
        if source.len() > 200 {
            return Err("the cron expression is longer than 200 characters".into());
        }
        let normalized = if source.starts_with('@') {
            source.clone()
        } else {
            let fields: Vec<&str> = source.split(' ').collect();
            match fields.len() {
                5 => {
                    let dow = crontab_days_of_week(fields[4])?;
                    format!(
                        "0 {} {} {} {} {dow}",
                        fields[0], fields[1], fields[2], fields[3]
                    )
                }
                6 | 7 => source.clone(),
                n => {
                    return Err(format!(
                        "'{source}' has {n} fields; a cron expression has five (minute hour day-of-month month day-of-week), or six or seven with seconds first (and a year)"
                    ))
                }
            }
        };
        let schedule = cron::Schedule::from_str(&normalized)
            .map_err(|e| format!("'{source}' is not a valid cron expression: {e}"))?;
        let expr = CronExpr { source, schedule };
        if expr.schedule.upcoming(Utc).next().is_none() {
            return Err(format!("'{}' never fires", expr.source));
        }
        Ok(expr)
    }

    /// Parse an expression for a schedule to a person: it may fire at most
    /// once a minute.
    pub fn parse_for_schedule(raw: &str) -> Result<CronExpr, String> {
        let expr = Self::parse(raw)?;
        // Wall-clock times, read as UTC: enough to judge the spacing.
        let upcoming: Vec<DateTime<Utc>> = expr.schedule.upcoming(Utc).take(20).collect();
        if upcoming
            .windows(2)
            .any(|w| w[1] - w[0] < Duration::seconds(60))
        {
            return Err(format!(
                "'{}' fires more often than once a minute",
                expr.source
            ));
        }
        Ok(expr)
    }

    /// The expression as given (whitespace normalized).
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Wall-clock candidates from `from` (naive), in order.
    fn candidates(&self, from: NaiveDateTime) -> impl Iterator<Item = NaiveDateTime> + '_ {
        self.schedule
            .after(&Utc.from_utc_datetime(&from))
            .take(MAX_SCAN)
            .map(|t| t.naive_utc())
    }

    /// The first occurrence strictly after `after`, in `tz`.
    pub fn next_after(&self, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = after.with_timezone(&tz).naive_local() - DST_MARGIN;
        let mut best: Option<(DateTime<Utc>, NaiveDateTime)> = None;
        for naive in self.candidates(start) {
            if let Some((_, best_naive)) = best {
                // Later wall-clock times cannot map to an earlier instant
                // once past the largest shift.
                if naive > best_naive + DST_MARGIN {
                    break;
                }
            }
            let at = local_instant(tz, naive);
            if at > after && best.is_none_or(|(b, _)| at < b) {
                best = Some((at, naive));
            }
        }
        best.map(|(at, _)| at)
    }

    /// The first occurrence strictly after `after`, in UTC (Heimdall's own jobs).
    pub fn next_after_utc(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next_after(Tz::UTC, after)
    }

    /// Occurrences in `(after, until]` in `tz`, keeping the latest `keep`
    /// (ascending), and how many there were in all.
    pub fn occurrences(
        &self,
        tz: Tz,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        keep: usize,
    ) -> (Vec<DateTime<Utc>>, usize) {
        let start = after.with_timezone(&tz).naive_local() - DST_MARGIN;
        let end = until.with_timezone(&tz).naive_local() + DST_MARGIN;
        let mut kept = BTreeSet::new();
        let mut total = 0;
        for naive in self.candidates(start) {
            if naive > end {
                break;
            }
            let at = local_instant(tz, naive);
            if at > after && at <= until && kept.insert(at) {
                total += 1;
                if kept.len() > keep.max(1) {
                    kept.pop_first();
                }
            }
        }
        (kept.into_iter().collect(), total)
    }
}

/// A five-field day-of-week (0-7, Sunday 0 or 7, or names; lists, ranges,
/// steps) as the `cron` crate's names, which mean the same day in both.
fn crontab_days_of_week(field: &str) -> Result<String, String> {
    const NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    if field == "*" || field == "?" {
        return Ok(field.to_string());
    }
    let value = |s: &str| -> Result<u32, String> {
        if let Ok(n) = s.parse::<u32>() {
            return if n <= 7 {
                Ok(n)
            } else {
                Err(format!("day of week {n} is not 0-7"))
            };
        }
        NAMES
            .iter()
            .position(|d| d.eq_ignore_ascii_case(s))
            .map(|p| p as u32)
            .ok_or_else(|| format!("'{s}' is not a day of the week"))
    };
    let mut days = BTreeSet::new();
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .ok()
                    .filter(|s| *s >= 1)
                    .ok_or_else(|| format!("'{s}' is not a step"))?;
                (r, Some(step))
            }
            None => (part, None),
        };
        let (lo, hi) = match range.split_once('-') {
            _ if range == "*" => (0, 6),
            Some((a, b)) => (value(a)?, value(b)?),
            None => {
                let a = value(range)?;
                (a, if step.is_some() { 6 } else { a })
            }
        };
        if lo > hi {
            return Err(format!("'{range}' runs backwards"));
        }
        let mut d = lo;
        while d <= hi {
            days.insert(d % 7);
            d += step.unwrap_or(1);
        }
    }
    Ok(days
        .into_iter()
        .map(|d| NAMES[d as usize])
        .collect::<Vec<_>>()
        .join(","))
}

// ---------------------------------------------------------------------------
// Creating, reading, changing

/// A schedule as the caller asks for it.
#[derive(Debug, Clone)]
pub struct NewSchedule {
    pub name: String,
    pub target: Target,
    pub cron: String,
    pub template_name: String,
    /// Fixed values (strings, numbers, booleans).
    pub variables: BTreeMap<String, serde_json::Value>,
    /// Fetched at each occurrence (GET, JSON object); its values override
    /// the fixed ones. Only the template's variables are taken from it.
    pub variables_url: Option<String>,
    /// Seconds an occurrence may be late after downtime; default 15 minutes.
    pub tolerance_secs: Option<i64>,
}

/// A schedule as the API and console show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Schedule {
    pub id: String,
    pub name: String,
    pub contact_id: String,
    pub to: Option<String>,
    /// The zone the cron expression is read in (the contact's, or the default).
    pub time_zone: String,
    pub cron: String,
    pub template_name: String,
    pub variables: BTreeMap<String, String>,
    /// The variables URL with its query values hidden.
    pub variables_url: Option<String>,
    pub active: bool,
    pub tolerance_secs: i64,
    pub next_run_at: Option<DateTime<Utc>>,
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_outcome: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The latest occurrences (single-schedule views only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occurrences: Option<Vec<Occurrence>>,
}

/// One occurrence of a schedule and what became of it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Occurrence {
    pub occurs_at: DateTime<Utc>,
    /// claimed | sent | blocked | failed | missed
    pub state: String,
    pub message_id: Option<String>,
    pub outcome: Option<String>,
}

/// The URL with query values and credentials hidden, for views and alerts.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            let _ = u.set_username("");
            if u.query().is_some() {
                let names: Vec<String> = u.query_pairs().map(|(k, _)| k.into_owned()).collect();
                u.set_query(None);
                let mut q = u.query_pairs_mut();
                for n in names {
                    q.append_pair(&n, "***");
                }
            }
            u.to_string()
        }
        Err(_) => "(invalid URL)".into(),
    }
}

fn parse_variables_url(
    policy: &crate::outbound_http::UrlPolicy,
    raw: &str,
) -> Result<String, RequestError> {
    let raw = raw.trim();
    if raw.len() > 2048 {
        return Err(RequestError::invalid(
            "invalid_variables_url",
            "variables_url is longer than 2048 characters",
        ));
    }
    let u = url::Url::parse(raw).map_err(|e| {
        RequestError::invalid(
            "invalid_variables_url",
            format!("variables_url is not a URL: {e}"),
        )
    })?;
    if !matches!(u.scheme(), "http" | "https") || u.host().is_none() {
        return Err(RequestError::invalid(
            "invalid_variables_url",
            "variables_url must be an http or https URL",
        ));
    }
    // An address on this network is refused now (a name is checked again
    // at every fetch, when it is resolved).
    crate::outbound_http::check_url(policy, &u).map_err(|e| {
        RequestError::invalid("invalid_variables_url", format!("variables_url: {e}"))
    })?;
    Ok(u.to_string())
}

/// The API principal of an automation, for schedules (or reminders) a
/// staff member creates in the console on that automation's behalf: the
/// automation's API key and its approval apply, again at every send.
pub async fn principal_for_automation(
    core: &Core,
    automation_id: &str,
) -> Result<ApiPrincipal, RequestError> {
    let a = automation::Entity::find_by_id(automation_id)
        .one(&core.db.conn)
        .await?
        .ok_or_else(|| RequestError::NotFound(format!("no automation with id {automation_id}")))?;
    let key = api_key::Entity::find_by_id(a.api_key_id.as_str())
        .one(&core.db.conn)
        .await?
        .ok_or_else(|| {
            RequestError::Conflict(format!(
                "the API key of automation '{}' no longer exists",
                a.name
            ))
        })?;
    if key.revoked_at.is_some() {
        return Err(RequestError::Conflict(format!(
            "the API key of automation '{}' was revoked",
            a.name
        )));
    }
    Ok(ApiPrincipal {
        key_id: Some(key.id),
        name: key.name,
    })
}

/// Create a schedule for `principal` (the caller's API key). Nothing is
/// stored when the request is refused.
pub async fn create(
    core: &Core,
    principal: &ApiPrincipal,
    input: NewSchedule,
) -> Result<Schedule, RequestError> {
    let name = input.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(RequestError::invalid(
            "bad_request",
            "name is required (at most 200 characters)",
        ));
    }
    let cron = CronExpr::parse_for_schedule(&input.cron)
        .map_err(|m| RequestError::invalid("invalid_cron", m))?;
    let tolerance_secs = reminders::tolerance(input.tolerance_secs)?;
    let variables = variables_from_json(&input.variables)?;
    let variables_url = input
        .variables_url
        .as_deref()
        .filter(|u| !u.trim().is_empty())
        .map(|u| parse_variables_url(&core.fetch.policy, u))
        .transpose()?;
    if input.template_name.trim().is_empty() {
        return Err(RequestError::invalid(
            "bad_request",
            "template_name is required",
        ));
    }
    let contact = resolve_contact(core, &input.target).await?;
    let template = check_template(
        core,
        principal,
        &input.template_name,
        &variables,
        variables_url.is_none(),
    )
    .await?;
    let now = core.now();
    let tz = contact_time_zone(core, &contact);
    let row = schedule::ActiveModel {
        id: Set(new_id()),
        name: Set(name),
        contact_id: Set(contact.id.clone()),
        cron: Set(cron.as_str().to_string()),
        template_name: Set(template.name),
        variables: Set(serde_json::to_string(&variables).unwrap_or_else(|_| "{}".into())),
        variables_url: Set(variables_url),
        automation_id: Set(None),
        api_key_id: Set(principal.key_id.clone()),
        tolerance_secs: Set(tolerance_secs),
        active: Set(true),
        last_run_at: Set(None),
        next_run_at: Set(cron.next_after(tz, now)),
        last_outcome: Set(None),
        created_by: Set(principal.actor()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&core.db.conn)
    .await?;
    tracing::info!(schedule_id = %row.id, cron = %row.cron, time_zone = %tz, actor = %principal.actor(), "schedule created");
    Ok(view(core, row, false).await?)
}

async fn view(
    core: &Core,
    m: schedule::Model,
    with_occurrences: bool,
) -> Result<Schedule, sea_orm::DbErr> {
    let c = contact::Entity::find_by_id(m.contact_id.as_str())
        .one(&core.db.conn)
        .await?;
    let tz = c
        .as_ref()
        .map(|c| contact_time_zone(core, c))
        .unwrap_or(core.settings.default_time_zone);
    let occurrences = if with_occurrences {
        Some(
            schedule_occurrence::Entity::find()
                .filter(schedule_occurrence::Column::ScheduleId.eq(&m.id))
                .order_by_desc(schedule_occurrence::Column::OccursAt)
                .limit(20)
                .all(&core.db.conn)
                .await?
                .into_iter()
                .map(|o| Occurrence {
                    occurs_at: o.occurs_at,
                    state: o.state,
                    message_id: o.message_id,
                    outcome: o.outcome,
                })
                .collect(),
        )
    } else {
        None
    };
    Ok(Schedule {
        variables: serde_json::from_str(&m.variables).unwrap_or_default(),
        variables_url: m.variables_url.as_deref().map(redact_url),
        to: c.map(|c| c.phone_e164),
        time_zone: tz.to_string(),
        id: m.id,
        name: m.name,
        contact_id: m.contact_id,
        cron: m.cron,
        template_name: m.template_name,
        active: m.active,
        tolerance_secs: m.tolerance_secs,
        next_run_at: m.next_run_at,
        last_run_at: m.last_run_at,
        last_outcome: m.last_outcome,
        created_by: m.created_by,
        created_at: m.created_at,
        updated_at: m.updated_at,
        occurrences,
    })
}

/// One schedule with its latest occurrences.
pub async fn get(core: &Core, id: &str) -> Result<Schedule, RequestError> {
    let m = schedule::Entity::find_by_id(id)
        .one(&core.db.conn)
        .await?
        .ok_or_else(|| RequestError::NotFound(format!("no schedule with id {id}")))?;
    Ok(view(core, m, true).await?)
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ScheduleFilter {
    pub contact_id: Option<String>,
    pub active: Option<bool>,
}

pub async fn list(core: &Core, filter: &ScheduleFilter) -> Result<Vec<Schedule>, RequestError> {
    let mut q = schedule::Entity::find()
        .order_by_asc(schedule::Column::Name)
        .order_by_asc(schedule::Column::Id);
    if let Some(c) = filter.contact_id.as_deref().filter(|c| !c.is_empty()) {
        q = q.filter(schedule::Column::ContactId.eq(c));
    }
    if let Some(a) = filter.active {
        q = q.filter(schedule::Column::Active.eq(a));
    }
    let mut out = Vec::new();
    for m in q.limit(1000).all(&core.db.conn).await? {
        out.push(view(core, m, false).await?);
    }
    Ok(out)
}

/// Pause (`active = false`) or resume a schedule. Resuming starts from the
/// next occurrence after now: nothing missed while paused is sent.
pub async fn set_active(
    core: &Core,
    id: &str,
    active: bool,
    actor: &str,
) -> Result<Schedule, RequestError> {
    let m = schedule::Entity::find_by_id(id)
        .one(&core.db.conn)
        .await?
        .ok_or_else(|| RequestError::NotFound(format!("no schedule with id {id}")))?;
    if m.active == active {
        return Ok(view(core, m, true).await?);
    }
    let now = core.now();
    let next = if active {
        let tz = match contact::Entity::find_by_id(m.contact_id.as_str())
            .one(&core.db.conn)
            .await?
        {
            Some(c) => contact_time_zone(core, &c),
            None => {
                return Err(RequestError::Conflict(
                    "the schedule's contact no longer exists".into(),
                ))
            }
        };
        CronExpr::parse(&m.cron)
            .map_err(|e| RequestError::Conflict(format!("the schedule cannot run: {e}")))?
            .next_after(tz, now)
    } else {
        None
    };
    schedule::Entity::update_many()
        .col_expr(schedule::Column::Active, Expr::value(active))
        .col_expr(schedule::Column::NextRunAt, Expr::value(next))
        .col_expr(
            schedule::Column::LastOutcome,
            Expr::value(Some(format!(
                "{} by {actor}",
                if active { "resumed" } else { "paused" }
            ))),
        )
        .col_expr(schedule::Column::UpdatedAt, Expr::value(now))
        .filter(schedule::Column::Id.eq(id))
        .exec(&core.db.conn)
        .await?;
    tracing::info!(schedule_id = %id, active, %actor, "schedule changed");
    get(core, id).await
}

// ---------------------------------------------------------------------------
// Running

/// What one run of the schedules did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScheduleReport {
    pub sent: usize,
    pub blocked: usize,
    pub failed: usize,
    pub missed: usize,
    /// Occurrences another worker had already claimed.
    pub taken: usize,
    pub recovered: usize,
}

impl std::fmt::Display for ScheduleReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} sent, {} blocked, {} failed, {} missed",
            self.sent, self.blocked, self.failed, self.missed
        )?;
        if self.recovered > 0 {
            write!(f, " ({} recovered)", self.recovered)?;
        }
        Ok(())
    }
}

/// How a run behaves.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// How long the variables URL has to answer.
    pub fetch_timeout: StdDuration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OccurrenceState {
    Claimed,
    Sent,
    Blocked,
    Failed,
    Missed,
}

impl OccurrenceState {
    fn as_str(self) -> &'static str {
        match self {
            OccurrenceState::Claimed => "claimed",
            OccurrenceState::Sent => "sent",
            OccurrenceState::Blocked => "blocked",
            OccurrenceState::Failed => "failed",
            OccurrenceState::Missed => "missed",
        }
    }
}

fn tally(report: &mut ScheduleReport, state: OccurrenceState) {
    match state {
        OccurrenceState::Sent => report.sent += 1,
        OccurrenceState::Blocked => report.blocked += 1,
        OccurrenceState::Failed => report.failed += 1,
        OccurrenceState::Missed => report.missed += 1,
        OccurrenceState::Claimed => {}
    }
}

/// Send every due occurrence once (see the module docs). Safe to run in
/// several workers at once.
pub async fn run_due(core: &Core) -> Result<ScheduleReport, sea_orm::DbErr> {
    run_due_with(core, &RunOptions::default()).await
}

pub async fn run_due_with(
    core: &Core,
    opts: &RunOptions,
) -> Result<ScheduleReport, sea_orm::DbErr> {
    let mut report = ScheduleReport::default();
    let now = core.now();
    recover_claims(core, opts, now, &mut report).await?;
    let due = schedule::Entity::find()
        .filter(schedule::Column::Active.eq(true))
        .filter(schedule::Column::NextRunAt.lte(now))
        .order_by_asc(schedule::Column::NextRunAt)
        .limit(BATCH)
        .all(&core.db.conn)
        .await?;
    for s in due {
        run_one(core, opts, &s, now, &mut report).await?;
    }
    if report != ScheduleReport::default() {
        tracing::info!(%report, "schedules run");
    }
    Ok(report)
}

async fn run_one(
    core: &Core,
    opts: &RunOptions,
    s: &schedule::Model,
    now: DateTime<Utc>,
    report: &mut ScheduleReport,
) -> Result<(), sea_orm::DbErr> {
    let Some(due_from) = s.next_run_at else {
        return Ok(());
    };
    let contact = contact::Entity::find_by_id(s.contact_id.as_str())
        .one(&core.db.conn)
        .await?;
    let cron = CronExpr::parse(&s.cron);
    let (contact, cron) = match (contact, cron) {
        (Some(c), Ok(cron)) => (c, cron),
        (None, _) => {
            return pause(core, s, "the contact no longer exists; schedule paused").await;
        }
        (_, Err(e)) => {
            return pause(core, s, &format!("{e}; schedule paused")).await;
        }
    };
    let tz = contact_time_zone(core, &contact);
    let after = (due_from - Duration::seconds(1)).max(now - LOOK_BACK);
    let (occurrences, total) = cron.occurrences(tz, after, now, MAX_MISSED_RECORDED + 1);
    if let Some((&latest, older)) = occurrences.split_last() {
        if total > occurrences.len() {
            tracing::warn!(schedule_id = %s.id, skipped = total - occurrences.len(), "older missed occurrences not recorded one by one");
        }
        for &at in older {
            if record_missed(core, s, at, now).await? {
                report.missed += 1;
            }
        }
        if now - latest > Duration::seconds(s.tolerance_secs) {
            if record_missed(core, s, latest, now).await? {
                report.missed += 1;
            }
        } else if claim(core, s, latest, now).await? {
            let state = process(core, opts, s, &contact, latest, false).await?;
            tally(report, state);
        } else {
            report.taken += 1;
        }
    }
    // Move on; a concurrent run (or a pause) that changed it first wins.
    schedule::Entity::update_many()
        .col_expr(
            schedule::Column::NextRunAt,
            Expr::value(cron.next_after(tz, now)),
        )
        .filter(schedule::Column::Id.eq(&s.id))
        .filter(schedule::Column::NextRunAt.eq(due_from))
        .filter(schedule::Column::Active.eq(true))
        .exec(&core.db.conn)
        .await?;
    Ok(())
}

async fn pause(core: &Core, s: &schedule::Model, why: &str) -> Result<(), sea_orm::DbErr> {
    tracing::warn!(schedule_id = %s.id, why, "schedule paused");
    schedule::Entity::update_many()
        .col_expr(schedule::Column::Active, Expr::value(false))
        .col_expr(
            schedule::Column::NextRunAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(schedule::Column::LastOutcome, Expr::value(Some(why)))
        .col_expr(schedule::Column::UpdatedAt, Expr::value(core.now()))
        .filter(schedule::Column::Id.eq(&s.id))
        .exec(&core.db.conn)
        .await?;
    alerts::raise(
        core,
        Alert::new(
            format!("schedule_paused:{}", s.id),
            "Schedule paused",
            format!("Schedule '{}' ({}): {why}", s.name, s.id),
        ),
    )
    .await;
    Ok(())
}

/// Insert the occurrence row; `false` when another worker has it.
async fn insert_occurrence(
    core: &Core,
    s: &schedule::Model,
    at: DateTime<Utc>,
    state: OccurrenceState,
    outcome: Option<String>,
    now: DateTime<Utc>,
) -> Result<bool, sea_orm::DbErr> {
    let res = schedule_occurrence::ActiveModel {
        id: Set(new_id()),
        schedule_id: Set(s.id.clone()),
        occurs_at: Set(at),
        state: Set(state.as_str().into()),
        message_id: Set(None),
        outcome: Set(outcome),
        created_at: Set(now),
        updated_at: Set(Some(now)),
    }
    .insert(&core.db.conn)
    .await;
    match res {
        Ok(_) => Ok(true),
        Err(e) => {
            // A unique violation: the row exists, someone else has it.
            let exists = schedule_occurrence::Entity::find()
                .filter(schedule_occurrence::Column::ScheduleId.eq(&s.id))
                .filter(schedule_occurrence::Column::OccursAt.eq(at))
                .one(&core.db.conn)
                .await?;
            match exists {
                Some(_) => Ok(false),
                None => Err(e),
            }
        }
    }
}

async fn claim(
    core: &Core,
    s: &schedule::Model,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, sea_orm::DbErr> {
    insert_occurrence(core, s, at, OccurrenceState::Claimed, None, now).await
}

/// Record an occurrence as missed (with its audit row); `false` when it was
/// already recorded.
async fn record_missed(
    core: &Core,
    s: &schedule::Model,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, sea_orm::DbErr> {
    let detail = missed_detail(s, at, now);
    if !insert_occurrence(
        core,
        s,
        at,
        OccurrenceState::Missed,
        Some(detail.clone()),
        now,
    )
    .await?
    {
        return Ok(false);
    }
    audit(
        &core.db.conn,
        "schedule_missed",
        &s.contact_id,
        "missed",
        None,
        format!("schedule '{}' ({}): {detail}", s.name, s.id),
        &actor_of(s.api_key_id.as_deref()),
        now,
    )
    .await?;
    note_outcome(core, s, at, &format!("missed: {detail}")).await?;
    Ok(true)
}

fn missed_detail(s: &schedule::Model, at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!(
        "occurrence at {} came up {} s late (tolerance {} s); not sent",
        at.to_rfc3339(),
        (now - at).num_seconds(),
        s.tolerance_secs
    )
}

/// The schedule's latest outcome, if this occurrence is the latest seen.
async fn note_outcome(
    core: &Core,
    s: &schedule::Model,
    at: DateTime<Utc>,
    outcome: &str,
) -> Result<(), sea_orm::DbErr> {
    let now = core.now();
    schedule::Entity::update_many()
        .col_expr(schedule::Column::LastRunAt, Expr::value(Some(at)))
        .col_expr(
            schedule::Column::LastOutcome,
            Expr::value(Some(outcome.to_string())),
        )
        .col_expr(schedule::Column::UpdatedAt, Expr::value(now))
        .filter(schedule::Column::Id.eq(&s.id))
        .filter(
            sea_orm::Condition::any()
                .add(schedule::Column::LastRunAt.is_null())
                .add(schedule::Column::LastRunAt.lte(at)),
        )
        .exec(&core.db.conn)
        .await?;
    Ok(())
}

/// Occurrences left `claimed` by a worker that stopped: take them up again.
async fn recover_claims(
    core: &Core,
    opts: &RunOptions,
    now: DateTime<Utc>,
    report: &mut ScheduleReport,
) -> Result<(), sea_orm::DbErr> {
    let stale = schedule_occurrence::Entity::find()
        .filter(schedule_occurrence::Column::State.eq(OccurrenceState::Claimed.as_str()))
        .filter(schedule_occurrence::Column::UpdatedAt.lt(now - STALE_CLAIM))
        .order_by_asc(schedule_occurrence::Column::OccursAt)
        .limit(BATCH)
        .all(&core.db.conn)
        .await?;
    for o in stale {
        let retaken = schedule_occurrence::Entity::update_many()
            .col_expr(
                schedule_occurrence::Column::UpdatedAt,
                Expr::value(Some(now)),
            )
            .filter(schedule_occurrence::Column::Id.eq(&o.id))
            .filter(schedule_occurrence::Column::State.eq(OccurrenceState::Claimed.as_str()))
            .filter(schedule_occurrence::Column::UpdatedAt.eq(o.updated_at))
            .exec(&core.db.conn)
            .await?;
        if retaken.rows_affected != 1 {
            continue;
        }
        report.recovered += 1;
        let Some(s) = schedule::Entity::find_by_id(o.schedule_id.as_str())
            .one(&core.db.conn)
            .await?
        else {
            continue;
        };
        let state = match contact::Entity::find_by_id(s.contact_id.as_str())
            .one(&core.db.conn)
            .await?
        {
            Some(c) => process(core, opts, &s, &c, o.occurs_at, true).await?,
            None => {
                settle_occurrence(
                    core,
                    &s,
                    o.occurs_at,
                    OccurrenceState::Failed,
                    None,
                    "the contact no longer exists".into(),
                )
                .await?
            }
        };
        tally(report, state);
    }
    Ok(())
}

/// Has the contact not opted out and an active consent on WhatsApp (the
/// channel schedules send on)?
async fn may_message(core: &Core, contact: &contact::Model) -> Result<bool, sea_orm::DbErr> {
    let channel = Channel::WhatsApp;
    if crate::consent::opted_out(&core.db.conn, &contact.id, channel)
        .await?
        .is_some()
    {
        return Ok(false);
    }
    Ok(
        crate::consent::current_consent(&core.db.conn, &contact.id, channel)
            .await?
            .is_some_and(|c| {
                crate::consent::consent_status(&c)
                    == crate::compliance::gates::ConsentStatus::Active
            }),
    )
}

/// Send one claimed occurrence. A database error leaves it claimed; it is
/// taken up again after [`STALE_CLAIM`].
async fn process(
    core: &Core,
    opts: &RunOptions,
    s: &schedule::Model,
    contact: &contact::Model,
    at: DateTime<Utc>,
    recovering: bool,
) -> Result<OccurrenceState, sea_orm::DbErr> {
    let now = core.now();
    let key = format!("schedule:{}:{}", s.id, at.timestamp());
    let actor = actor_of(s.api_key_id.as_deref());
    let already_sent = recovering && message_for_key(core, &key).await?.is_some();
    if !already_sent && now - at > Duration::seconds(s.tolerance_secs) {
        let detail = missed_detail(s, at, now);
        audit(
            &core.db.conn,
            "schedule_missed",
            &s.contact_id,
            "missed",
            None,
            format!("schedule '{}' ({}): {detail}", s.name, s.id),
            &actor,
            now,
        )
        .await?;
        return settle_occurrence(core, s, at, OccurrenceState::Missed, None, detail).await;
    }
    let principal = match stored_principal(core, s.api_key_id.as_deref()).await? {
        Ok(p) => p,
        Err(why) => {
            audit(
                &core.db.conn,
                "schedule_blocked",
                &s.contact_id,
                "block",
                Some(Gate::NotAuthorized),
                format!("schedule '{}' ({}): {why}", s.name, s.id),
                &actor,
                now,
            )
            .await?;
            return settle_occurrence(
                core,
                s,
                at,
                OccurrenceState::Blocked,
                None,
                format!("{}: {why}", Gate::NotAuthorized.code()),
            )
            .await;
        }
    };
    let mut variables: BTreeMap<String, String> =
        serde_json::from_str(&s.variables).unwrap_or_default();
    // Nothing is fetched for someone nobody may message: the send below is
    // refused by the gates (suppressed, no consent) whatever the variables.
    let may_message = may_message(core, contact).await?;
    if let (Some(url), false, true) = (&s.variables_url, already_sent, may_message) {
        let wanted = match crate::templates::find_by_name(&core.db.conn, &s.template_name).await? {
            Some(t) => t.variables,
            // The template gate will say so.
            None => Vec::new(),
        };
        match fetch_variables(core, url, &wanted, &variables, opts.fetch_timeout).await {
            Ok(fetched) => variables.extend(fetched),
            Err(why) => {
                let detail = format!("variables URL {} failed: {why}", redact_url(url));
                audit(
                    &core.db.conn,
                    "schedule_failed",
                    &s.contact_id,
                    "failed",
                    None,
                    format!(
                        "schedule '{}' ({}), occurrence at {}: {detail}",
                        s.name,
                        s.id,
                        at.to_rfc3339()
                    ),
                    &actor,
                    now,
                )
                .await?;
                alerts::raise(
                    core,
                    Alert::new(
                        format!("schedule_variables:{}", s.id),
                        "Schedule variables unavailable",
                        format!(
                            "Schedule '{}' ({}), occurrence at {}: {detail}. The occurrence was not sent.",
                            s.name,
                            s.id,
                            at.to_rfc3339()
                        ),
                    ),
                )
                .await;
                return settle_occurrence(core, s, at, OccurrenceState::Failed, None, detail).await;
            }
        }
    }
    let res = outbound::accept(
        core,
        outbound::SendRequest {
            recipient: Recipient::Contact(contact.id.clone()),
            channel: Channel::WhatsApp,
            content: RequestedContent::Template {
                name: s.template_name.clone(),
                variables,
            },
            origin: Origin::Automation {
                principal,
                source: "schedule",
                reminder_id: None,
            },
            idempotency_key: Some(key),
        },
    )
    .await;
    let (state, message_id, outcome) = match res {
        Ok(o) => {
            let (went, text) = settle(&o);
            let state = if went {
                OccurrenceState::Sent
            } else {
                OccurrenceState::Blocked
            };
            (state, Some(o.message_id), text)
        }
        Err(AcceptError::Db(e)) => return Err(e),
        Err(e @ (AcceptError::ContactNotFound(_) | AcceptError::BadRequest(_))) => {
            (OccurrenceState::Failed, None, e.to_string())
        }
    };
    settle_occurrence(core, s, at, state, message_id, outcome).await
}

async fn settle_occurrence(
    core: &Core,
    s: &schedule::Model,
    at: DateTime<Utc>,
    state: OccurrenceState,
    message_id: Option<String>,
    outcome: String,
) -> Result<OccurrenceState, sea_orm::DbErr> {
    let now = core.now();
    schedule_occurrence::Entity::update_many()
        .col_expr(
            schedule_occurrence::Column::State,
            Expr::value(state.as_str()),
        )
        .col_expr(
            schedule_occurrence::Column::MessageId,
            Expr::value(message_id),
        )
        .col_expr(
            schedule_occurrence::Column::Outcome,
            Expr::value(Some(outcome.clone())),
        )
        .col_expr(
            schedule_occurrence::Column::UpdatedAt,
            Expr::value(Some(now)),
        )
        .filter(schedule_occurrence::Column::ScheduleId.eq(&s.id))
        .filter(schedule_occurrence::Column::OccursAt.eq(at))
        .filter(schedule_occurrence::Column::State.eq(OccurrenceState::Claimed.as_str()))
        .exec(&core.db.conn)
        .await?;
    note_outcome(core, s, at, &format!("{}: {outcome}", state.as_str())).await?;
    tracing::info!(schedule_id = %s.id, occurs_at = %at, state = state.as_str(), "schedule occurrence settled");
    Ok(state)
}

// ---------------------------------------------------------------------------
// Variables from a URL

/// GET the variables URL: a JSON object whose values for the template's
/// variables (`wanted`) are strings, numbers or booleans. Other keys are
/// ignored; a wanted variable that is neither in the answer nor among the
/// `fixed` ones is an error. The URL goes through the guarded client
/// ([`crate::outbound_http`]): an address on this network is refused
/// unless `HEIMDALL_FETCH_ALLOWLIST` names it, on every redirect too. The
/// error says what went wrong, without the URL or anything of the answer.
pub async fn fetch_variables(
    core: &Core,
    url: &str,
    wanted: &[String],
    fixed: &BTreeMap<String, String>,
    timeout: StdDuration,
) -> Result<BTreeMap<String, String>, String> {
    let url = url::Url::parse(url).map_err(|_| "the URL does not parse".to_string())?;
    let fetched = crate::outbound_http::fetch_json(
        &core.fetch.client,
        &core.fetch.policy,
        &url,
        MAX_VARIABLES_BYTES,
    );
    let value = match tokio::time::timeout(timeout, fetched).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => {
            return Err(format!(
                "no answer within {} s",
                timeout.as_secs_f64().max(0.001)
            ))
        }
    };
    let obj = value.as_object().ok_or("the answer is not a JSON object")?;
    let mut out = BTreeMap::new();
    for name in wanted {
        let Some(v) = obj.get(name) else { continue };
        let s = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            other => {
                return Err(format!(
                    "'{name}' is {}, not a string or number",
                    json_kind(other)
                ))
            }
        };
        if s.chars().count() > reminders::MAX_VALUE_CHARS {
            return Err(format!(
                "'{name}' is longer than {} characters",
                reminders::MAX_VALUE_CHARS
            ));
        }
        out.insert(name.clone(), s);
    }
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|w| !out.contains_key(*w) && !fixed.contains_key(*w))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the answer has no value for: {}",
            missing.join(", ")
        ));
    }
    Ok(out)
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn oslo() -> Tz {
        "Europe/Oslo".parse().unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn five_fields_read_as_crontab() {
        // Monday at 08:00, crontab numbering (1 = Monday).
        let c = CronExpr::parse("0 8 * * 1").unwrap();
        let next = c.next_after(Tz::UTC, utc("2026-11-17T12:00:00Z")).unwrap();
        assert_eq!(next, utc("2026-11-23T08:00:00Z"));
        assert_eq!(next.format("%A").to_string(), "Monday");
        // Sunday as 0 and as 7.
        for e in ["0 8 * * 0", "0 8 * * 7", "0 8 * * sun"] {
            let n = CronExpr::parse(e)
                .unwrap()
                .next_after(Tz::UTC, utc("2026-11-17T12:00:00Z"))
                .unwrap();
            assert_eq!(n, utc("2026-11-22T08:00:00Z"), "{e}");
        }
        assert_eq!(crontab_days_of_week("1-5").unwrap(), "MON,TUE,WED,THU,FRI");
        assert_eq!(crontab_days_of_week("5-7").unwrap(), "SUN,FRI,SAT");
        assert_eq!(crontab_days_of_week("*/2").unwrap(), "SUN,TUE,THU,SAT");
        assert_eq!(crontab_days_of_week("1-5/2").unwrap(), "MON,WED,FRI");
        assert!(crontab_days_of_week("8").is_err());
        assert!(crontab_days_of_week("5-1").is_err());
    }

    #[test]
    fn bad_expressions_are_refused_with_a_reason() {
        for (e, why) in [
            ("", "empty"),
            ("0 7 * *", "fields"),
            ("61 7 * * *", "not a valid"),
            ("* * * * * *", "once a minute"),
            ("0 0 7 * * * 2020", "never fires"),
            ("0 7 * * funday", "day of the week"),
        ] {
            let err = CronExpr::parse_for_schedule(e).unwrap_err();
            assert!(err.contains(why), "{e}: {err}");
        }
        assert!(CronExpr::parse(&"1,".repeat(150))
            .unwrap_err()
            .contains("longer"));
        assert!(CronExpr::parse("@daily").is_ok());
        assert!(CronExpr::parse("0 0 7 * * Mon").is_ok());
        assert!(CronExpr::parse("  0   7 * * *  ").unwrap().as_str() == "0 7 * * *");
    }

    #[test]
    fn daily_local_time_stays_local_across_daylight_saving() {
        let c = CronExpr::parse("0 7 * * *").unwrap();
        // Europe/Oslo springs forward on 29 March 2026.
        let a = c.next_after(oslo(), utc("2026-03-28T12:00:00Z")).unwrap();
        assert_eq!(a, utc("2026-03-29T05:00:00Z"));
        let b = c.next_after(oslo(), utc("2026-03-27T12:00:00Z")).unwrap();
        assert_eq!(b, utc("2026-03-28T06:00:00Z"));
        // And falls back on 25 October 2026.
        let d = c.next_after(oslo(), utc("2026-10-25T00:00:00Z")).unwrap();
        assert_eq!(d, utc("2026-10-25T06:00:00Z"));
    }

    #[test]
    fn gap_times_move_forward_and_overlap_times_happen_once() {
        let c = CronExpr::parse("30 2 * * *").unwrap();
        // 02:30 does not exist on 29 March 2026 in Oslo: 03:30 CEST instead.
        let n = c.next_after(oslo(), utc("2026-03-28T12:00:00Z")).unwrap();
        assert_eq!(n, utc("2026-03-29T01:30:00Z"));
        // 02:30 exists twice on 25 October: once, at the earlier instant.
        let (all, total) = c.occurrences(
            oslo(),
            utc("2026-10-24T12:00:00Z"),
            utc("2026-10-26T12:00:00Z"),
            10,
        );
        assert_eq!(total, 2);
        assert_eq!(
            all,
            vec![utc("2026-10-25T00:30:00Z"), utc("2026-10-26T01:30:00Z")]
        );
        assert_eq!(
            local_instant(
                oslo(),
                NaiveDate::from_ymd_opt(2026, 3, 29)
                    .unwrap()
                    .and_hms_opt(2, 30, 0)
                    .unwrap()
            ),
            utc("2026-03-29T01:30:00Z")
        );
    }

    #[test]
    fn occurrences_keep_the_latest() {
        let c = CronExpr::parse("*/10 * * * *").unwrap();
        let (kept, total) = c.occurrences(
            Tz::UTC,
            utc("2026-11-17T10:00:00Z"),
            utc("2026-11-17T12:00:00Z"),
            3,
        );
        assert_eq!(total, 12);
        assert_eq!(
            kept,
            vec![
                utc("2026-11-17T11:40:00Z"),
                utc("2026-11-17T11:50:00Z"),
                utc("2026-11-17T12:00:00Z")
            ]
        );
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("https://user:pw@n8n.example.com/webhook/briefing?token=abc&x=1"),
            "https://n8n.example.com/webhook/briefing?token=***&x=***"
        );
        assert_eq!(redact_url("nonsense"), "(invalid URL)");
    }
}
