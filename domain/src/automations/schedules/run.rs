//! Running due occurrences: each claimed once (its row is unique), sent through
//! the send path with the creating key's authorization checked again, and
//! recorded.

use super::*;
use crate::compliance::message_source::MessageSource;

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
pub(super) enum OccurrenceState {
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

pub(super) fn tally(report: &mut ScheduleReport, state: OccurrenceState) {
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

pub(super) async fn run_one(
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

pub(super) async fn pause(
    core: &Core,
    s: &schedule::Model,
    why: &str,
) -> Result<(), sea_orm::DbErr> {
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
pub(super) async fn insert_occurrence(
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

pub(super) async fn claim(
    core: &Core,
    s: &schedule::Model,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, sea_orm::DbErr> {
    insert_occurrence(core, s, at, OccurrenceState::Claimed, None, now).await
}

/// Record an occurrence as missed (with its audit row); `false` when it was
/// already recorded.
pub(super) async fn record_missed(
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

pub(super) fn missed_detail(s: &schedule::Model, at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!(
        "occurrence at {} came up {} s late (tolerance {} s); not sent",
        at.to_rfc3339(),
        (now - at).num_seconds(),
        s.tolerance_secs
    )
}

/// The schedule's latest outcome, if this occurrence is the latest seen.
pub(super) async fn note_outcome(
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
pub(super) async fn recover_claims(
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
/// channel schedules send on) for the purpose of the template `template`?
pub(super) async fn may_message(
    core: &Core,
    contact: &contact::Model,
    template: &str,
) -> Result<bool, sea_orm::DbErr> {
    let channel = Channel::WhatsApp;
    let db = &core.db.conn;
    let purpose = match crate::templates::find_by_name(db, template)
        .await?
        .and_then(|t| t.purpose)
    {
        Some(name) => crate::consent::purposes::find(db, &name).await?,
        None => None,
    };
    if crate::consent::opted_out(db, &contact.id, channel, purpose.as_ref())
        .await?
        .is_some()
    {
        return Ok(false);
    }
    let current = match &purpose {
        Some(p) => crate::consent::current_consent_for(db, &contact.id, channel, p).await?,
        // No template or purpose: the gates refuse the send anyway.
        None => return Ok(false),
    };
    Ok(current.is_some_and(|c| {
        crate::consent::consent_status(&c) == crate::compliance::gates::ConsentStatus::Active
    }))
}

/// Send one claimed occurrence. A database error leaves it claimed; it is
/// taken up again after [`STALE_CLAIM`].
pub(super) async fn process(
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
    let may_message = may_message(core, contact, &s.template_name).await?;
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
                source: MessageSource::Schedule,
                reminder_id: None,
            },
            idempotency_key: Some(key),
            purpose: None,
        },
    )
    .await;
    let (settled, message_id, outcome) = settle(res)?;
    let state = match settled {
        Settled::Sent => OccurrenceState::Sent,
        Settled::Blocked => OccurrenceState::Blocked,
        Settled::Failed => OccurrenceState::Failed,
    };
    settle_occurrence(core, s, at, state, message_id, outcome).await
}

pub(super) async fn settle_occurrence(
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
