//! Periodic work: delivering reminders, running schedules, and the
//! housekeeping that keeps Heimdall tidy (dedup entries, service windows,
//! tier usage, scheduled campaigns, template approvals, the webhook spool,
//! messages whose status stopped moving, the audit chain's sealer and daily
//! anchor, retention). Each job is a function here that
//! can be run and tested directly; [`run`] runs one as the scheduler does,
//! at most once per cadence across all processes, and records it in
//! `job_runs` (last run, next run, outcome) for the console.
//!
//! The cadences live here, in [`Job::cron`], so the scheduler (the jobs
//! crate, on apalis-cron) and the console read the same table.
//!
//! Nothing here sends a message except through [`crate::sending::outbound`].

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use serde::{Deserialize, Serialize};

use crate::alerts::{self, Alert};
use crate::automations::schedules::CronExpr;
use crate::clock::new_id;
use crate::compliance::message_state::MessageState;
use crate::entities::{job_run, outbound_message, service_window, tier_usage, tier_usage_daily};
use crate::sending::limits::TIER_WINDOW;
use crate::sending::outbound::{self, StatusReport};
use crate::{automations::reminders, automations::schedules, campaigns, inbound, templates, Core};

pub mod retention;
mod shared_state;
pub use shared_state::watch_redis;

/// Service-window rows are kept this long after the window closed (the
/// session API shows the last inbound time); older ones are deleted.
pub const WINDOW_RETENTION: Duration = Duration::days(30);
/// A queued message not picked up in this long, or a deferred one this long
/// past its time, lost its queue entry: it is enqueued again.
pub const REQUEUE_GRACE: Duration = Duration::minutes(15);
/// A message claimed by a worker this long ago with no provider id is
/// resolved as failed (see [`outbound::resolve_stuck_sending`]).
pub const STUCK_SENDING: Duration = Duration::minutes(15);
/// A sent message whose status has not moved in this long is checked with
/// the provider...
pub const STALE_STATUS: Duration = Duration::hours(24);
/// ...for this long after it was created.
pub const RECONCILE_FOR: Duration = Duration::days(7);
const RECONCILE_BATCH: u64 = 100;

/// Every periodic job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Job {
    DeliverReminders,
    RunSchedules,
    PurgeDedup,
    ExpireServiceWindows,
    RollUpTierUsage,
    StartCampaigns,
    SyncTemplates,
    ReplayWebhookSpool,
    ReconcileMessages,
    PruneAttachments,
    SealAuditChain,
    AnchorAuditChain,
    ApplyRetention,
}

impl Job {
    pub const ALL: [Job; 13] = [
        Job::DeliverReminders,
        Job::RunSchedules,
        Job::PurgeDedup,
        Job::ExpireServiceWindows,
        Job::RollUpTierUsage,
        Job::StartCampaigns,
        Job::SyncTemplates,
        Job::ReplayWebhookSpool,
        Job::ReconcileMessages,
        Job::PruneAttachments,
        Job::SealAuditChain,
        Job::AnchorAuditChain,
        Job::ApplyRetention,
    ];

    /// The stable name (the `job_runs` key).
    pub fn name(self) -> &'static str {
        match self {
            Job::DeliverReminders => "deliver_reminders",
            Job::RunSchedules => "run_schedules",
            Job::PurgeDedup => "purge_dedup",
            Job::ExpireServiceWindows => "expire_service_windows",
            Job::RollUpTierUsage => "roll_up_tier_usage",
            Job::StartCampaigns => "start_campaigns",
            Job::SyncTemplates => "sync_templates",
            Job::ReplayWebhookSpool => "replay_webhook_spool",
            Job::ReconcileMessages => "reconcile_messages",
            Job::PruneAttachments => "prune_attachments",
            Job::SealAuditChain => "seal_audit_chain",
            Job::AnchorAuditChain => "anchor_audit_chain",
            Job::ApplyRetention => "apply_retention",
        }
    }

    pub fn parse(name: &str) -> Option<Job> {
        Self::ALL.into_iter().find(|j| j.name() == name)
    }

    /// When it runs: six fields with seconds, UTC.
    pub fn cron(self) -> &'static str {
        match self {
            Job::DeliverReminders => "*/15 * * * * *",
            Job::RunSchedules => "5/15 * * * * *",
            Job::PurgeDedup => "0 17 * * * *",
            Job::ExpireServiceWindows => "0 23 3 * * *",
            Job::RollUpTierUsage => "0 7 * * * *",
            Job::StartCampaigns => "20 * * * * *",
            Job::SyncTemplates => "0 */30 * * * *",
            Job::ReplayWebhookSpool => "10/30 * * * * *",
            Job::ReconcileMessages => "0 */10 * * * *",
            Job::PruneAttachments => "0 47 3 * * *",
            Job::SealAuditChain => "* * * * * *",
            Job::AnchorAuditChain => "0 53 3 * * *",
            Job::ApplyRetention => "0 35 3 * * *",
        }
    }

    /// The cadence in words, for the console.
    pub fn cadence(self) -> &'static str {
        match self {
            Job::DeliverReminders | Job::RunSchedules => "every 15 seconds",
            Job::PurgeDedup => "hourly (at :17)",
            Job::ExpireServiceWindows => "daily at 03:23 UTC",
            Job::RollUpTierUsage => "hourly (at :07)",
            Job::StartCampaigns => "every minute",
            Job::SyncTemplates => "every 30 minutes",
            Job::ReplayWebhookSpool => "every 30 seconds",
            Job::ReconcileMessages => "every 10 minutes",
            Job::PruneAttachments => "daily at 03:47 UTC",
            Job::SealAuditChain => "every second",
            Job::AnchorAuditChain => "daily at 03:53 UTC",
            Job::ApplyRetention => "daily at 03:35 UTC",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Job::DeliverReminders => "Send reminders that came due (once each, through the gates); record late ones as missed",
            Job::RunSchedules => "Send due occurrences of recurring schedules in each contact's time zone",
            Job::PurgeDedup => {
                "Forget webhook dedup entries and finished queue jobs older than 24 hours"
            }
            Job::ExpireServiceWindows => "Delete service windows closed more than 30 days ago",
            Job::RollUpTierUsage => "Fold tier usage older than the moving 24 hours into daily counts",
            Job::StartCampaigns => "Start scheduled campaigns whose time has come, re-enqueue stalled fan-outs, complete finished campaigns",
            Job::SyncTemplates => "Read template approval states from Twilio's Content API",
            Job::ReplayWebhookSpool => "Replay webhook events saved to the local fallback file",
            Job::ReconcileMessages => "Re-enqueue lost jobs, resolve stuck sends, ask Twilio about statuses that stopped moving",
            Job::PruneAttachments => "Delete files attached to inbox replies older than HEIMDALL_ATTACHMENT_DAYS",
            Job::SealAuditChain => "Chain new audit rows (tool calls, consents, suppressions, approvals) into the tamper-evident audit chain",
            Job::AnchorAuditChain => "Write the audit chain's heads to the log, audit_anchors and HEIMDALL_AUDIT_ANCHOR_URL",
            Job::ApplyRetention => "Clear message bodies and inbound texts, delete webhook audit rows and redact the evidence of long-revoked consents past their HEIMDALL_RETAIN_*_DAYS (and HEIMDALL_WEBHOOK_AUDIT_DAYS); counts in retention_runs",
        }
    }

    fn expr(self) -> Option<CronExpr> {
        CronExpr::parse(self.cron()).ok()
    }

    /// The next time it runs after `after`.
    pub fn next_after(self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.expr()?.next_after(Tz::UTC, after)
    }

    /// Runs closer together than this are one run (half the cadence): with
    /// several processes ticking on the same schedule, one of them runs it.
    fn min_gap(self, now: DateTime<Utc>) -> Duration {
        let gap = self
            .next_after(now)
            .and_then(|a| Some((a, self.next_after(a)?)))
            .map(|(a, b)| (b - a) / 2)
            .unwrap_or(Duration::seconds(5));
        gap.max(Duration::seconds(1))
    }
}

impl std::fmt::Display for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What [`run`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum RunResult {
    /// Another process (or an earlier tick) ran it within half its cadence.
    Skipped,
    Ok {
        summary: String,
    },
    Failed {
        error: String,
    },
}

/// Run one job as the scheduler does: claim this cadence's run (so several
/// processes run it once), run it, record the outcome and the next run.
/// A failure is recorded and alerted, not returned; only a database error
/// while claiming or recording is.
pub async fn run(core: &Core, job: Job) -> Result<RunResult, sea_orm::DbErr> {
    let now = core.now();
    if !claim_run(core, job, now).await? {
        tracing::debug!(job = %job, "job already ran this cadence; skipped");
        return Ok(RunResult::Skipped);
    }
    let started = std::time::Instant::now();
    let result = execute(core, job).await;
    let elapsed_ms = started.elapsed().as_millis();
    let (outcome, error) = match &result {
        Ok(summary) => (format!("ok: {summary}"), None),
        Err(e) => ("error".to_string(), Some(e.clone())),
    };
    job_run::Entity::update_many()
        .col_expr(job_run::Column::LastOutcome, Expr::value(Some(outcome)))
        .col_expr(job_run::Column::LastError, Expr::value(error.clone()))
        .col_expr(
            job_run::Column::NextRunAt,
            Expr::value(job.next_after(core.now())),
        )
        .filter(job_run::Column::Name.eq(job.name()))
        .exec(&core.db.conn)
        .await?;
    metrics::counter!("heimdall_job_runs_total", "job" => job.name(), "outcome" => if result.is_ok() { "ok" } else { "error" }).increment(1);
    Ok(match result {
        Ok(summary) => {
            tracing::debug!(job = %job, %summary, elapsed_ms, "job ran");
            RunResult::Ok { summary }
        }
        Err(error) => {
            tracing::error!(job = %job, %error, elapsed_ms, "job failed");
            alerts::raise(
                core,
                Alert::new(
                    format!("job:{}", job.name()),
                    "Scheduled job failed",
                    format!("{} ({}): {error}", job.name(), job.description()),
                ),
            )
            .await;
            RunResult::Failed { error }
        }
    })
}

/// Take this cadence's run of `job`: `false` when it ran less than half a
/// cadence ago (here or in another process).
async fn claim_run(core: &Core, job: Job, now: DateTime<Utc>) -> Result<bool, sea_orm::DbErr> {
    job_run::Entity::insert(job_run::ActiveModel {
        name: Set(job.name().to_string()),
        last_run_at: Set(None),
        next_run_at: Set(None),
        last_outcome: Set(None),
        last_error: Set(None),
        runs: Set(0),
    })
    .on_conflict(
        OnConflict::column(job_run::Column::Name)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(&core.db.conn)
    .await?;
    let res = job_run::Entity::update_many()
        .col_expr(job_run::Column::LastRunAt, Expr::value(Some(now)))
        .col_expr(
            job_run::Column::Runs,
            Expr::col(job_run::Column::Runs).add(1),
        )
        .filter(job_run::Column::Name.eq(job.name()))
        .filter(
            Condition::any()
                .add(job_run::Column::LastRunAt.is_null())
                .add(job_run::Column::LastRunAt.lte(now - job.min_gap(now))),
        )
        .exec(&core.db.conn)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Run the job's work, without claiming or recording.
pub async fn execute(core: &Core, job: Job) -> Result<String, String> {
    let db = |e: sea_orm::DbErr| format!("database: {e}");
    match job {
        Job::DeliverReminders => reminders::deliver_due(core)
            .await
            .map(|r| r.to_string())
            .map_err(db),
        Job::RunSchedules => schedules::run_due(core)
            .await
            .map(|r| r.to_string())
            .map_err(db),
        Job::PurgeDedup => async {
            let dedup = inbound::purge_dedup(core).await?;
            let jobs = purge_finished_queue_jobs(core).await?;
            Ok::<_, sea_orm::DbErr>(format!(
                "{dedup} dedup entries and {jobs} finished queue jobs purged"
            ))
        }
        .await
        .map_err(db),
        Job::ExpireServiceWindows => expire_service_windows(core)
            .await
            .map(|n| format!("{n} closed windows deleted"))
            .map_err(db),
        Job::RollUpTierUsage => roll_up_tier_usage(core)
            .await
            .map(|r| r.to_string())
            .map_err(db),
        Job::StartCampaigns => start_campaigns(core).await.map_err(db),
        Job::SyncTemplates => sync_templates(core).await,
        Job::ReplayWebhookSpool => inbound::replay_spool(core)
            .await
            .map(|n| format!("{n} spooled events replayed")),
        Job::ReconcileMessages => reconcile_messages(core)
            .await
            .map(|r| r.to_string())
            .map_err(db),
        Job::PruneAttachments => crate::channels::attachments::prune(core)
            .await
            .map(|n| {
                format!(
                    "{n} attachments older than {} days deleted",
                    core.settings.attachment_days
                )
            })
            .map_err(db),
        Job::SealAuditChain => crate::audit::chain::seal(core)
            .await
            .map(|r| r.to_string())
            .map_err(db),
        Job::AnchorAuditChain => crate::audit::chain::anchor(core)
            .await
            .map(|r| r.to_string())
            .map_err(|e| e.to_string()),
        Job::ApplyRetention => retention::apply(core)
            .await
            .map(|r| r.to_string())
            .map_err(db),
    }
}

// ---------------------------------------------------------------------------
// The jobs

/// Delete service-window rows whose window closed more than
/// [`WINDOW_RETENTION`] ago. Windows are judged by time, so this only
/// keeps the table small.
pub async fn expire_service_windows(core: &Core) -> Result<u64, sea_orm::DbErr> {
    Ok(service_window::Entity::delete_many()
        .filter(service_window::Column::WindowExpiresAt.lt(core.now() - WINDOW_RETENTION))
        .exec(&core.db.conn)
        .await?
        .rows_affected)
}

/// What a tier roll-up did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RollUp {
    /// `tier_usage` rows folded (and deleted).
    pub rows: u64,
    /// Daily counts touched.
    pub days: usize,
}

impl std::fmt::Display for RollUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} tier usage rows folded into {} daily counts",
            self.rows, self.days
        )
    }
}

/// Fold `tier_usage` rows older than the moving 24 hours into
/// `tier_usage_daily` (people newly counted per portfolio and UTC day) and
/// delete them. Safe to run concurrently: only rows this run deleted are
/// counted.
pub async fn roll_up_tier_usage(core: &Core) -> Result<RollUp, sea_orm::DbErr> {
    const BATCH: u64 = 1000;
    let now = core.now();
    let cutoff = now - TIER_WINDOW;
    let mut report = RollUp::default();
    let mut days = std::collections::BTreeSet::new();
    loop {
        let rows = tier_usage::Entity::find()
            .filter(tier_usage::Column::ReachedAt.lte(cutoff))
            .order_by_asc(tier_usage::Column::ReachedAt)
            .limit(BATCH)
            .all(&core.db.conn)
            .await?;
        let n = rows.len() as u64;
        let mut groups: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for r in rows {
            groups
                .entry((r.portfolio, r.reached_at.format("%Y-%m-%d").to_string()))
                .or_default()
                .push(r.id);
        }
        let txn = core.db.begin_write().await?;
        for ((portfolio, day), ids) in groups {
            let deleted = tier_usage::Entity::delete_many()
                .filter(tier_usage::Column::Id.is_in(ids))
                .exec(&txn)
                .await?
                .rows_affected;
            if deleted == 0 {
                continue;
            }
            let added = i64::try_from(deleted).unwrap_or(i64::MAX);
            tier_usage_daily::Entity::insert(tier_usage_daily::ActiveModel {
                id: Set(new_id()),
                portfolio: Set(portfolio.clone()),
                day: Set(day.clone()),
                recipients: Set(added),
                updated_at: Set(now),
            })
            .on_conflict(
                OnConflict::columns([
                    tier_usage_daily::Column::Portfolio,
                    tier_usage_daily::Column::Day,
                ])
                .value(
                    tier_usage_daily::Column::Recipients,
                    Expr::col((
                        tier_usage_daily::Entity,
                        tier_usage_daily::Column::Recipients,
                    ))
                    .add(added),
                )
                .value(tier_usage_daily::Column::UpdatedAt, Expr::value(now))
                .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
            report.rows += deleted;
            days.insert((portfolio, day));
        }
        txn.commit().await?;
        if n < BATCH {
            break;
        }
    }
    report.days = days.len();
    Ok(report)
}

/// One day of the tier's history.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TierDay {
    pub portfolio: String,
    pub day: String,
    pub recipients: i64,
}

/// The tier's daily history (rolled up), latest first.
pub async fn tier_history(core: &Core, days: u64) -> Result<Vec<TierDay>, sea_orm::DbErr> {
    Ok(tier_usage_daily::Entity::find()
        .order_by_desc(tier_usage_daily::Column::Day)
        .order_by_asc(tier_usage_daily::Column::Portfolio)
        .limit(days)
        .all(&core.db.conn)
        .await?
        .into_iter()
        .map(|d| TierDay {
            portfolio: d.portfolio,
            day: d.day,
            recipients: d.recipients,
        })
        .collect())
}

async fn start_campaigns(core: &Core) -> Result<String, sea_orm::DbErr> {
    let started = campaigns::start_due(core).await?;
    let completed = campaigns::complete_finished(core).await?;
    Ok(format!(
        "{started} campaign fan-outs enqueued, {completed} campaigns completed"
    ))
}

async fn sync_templates(core: &Core) -> Result<String, String> {
    if core.providers.twilio.is_none() && templates::authoring::available_providers(core).is_empty()
    {
        return Ok("skipped: neither Twilio nor Meta's templates are configured".into());
    }
    // Twilio's Content API, and Meta's template list when it is configured.
    let r = templates::authoring::refresh_approvals(core).await?;
    if r.failed.is_empty() {
        Ok(format!(
            "{} templates read, {} updated",
            r.seen,
            r.updated.len()
        ))
    } else {
        Ok(format!(
            "{} templates read, {} updated, {} not: {}",
            r.seen,
            r.updated.len(),
            r.failed.len(),
            r.failed.join("; ")
        ))
    }
}

/// What a reconciliation did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reconciliation {
    /// Waiting messages whose queue entry was lost, enqueued again.
    pub requeued: u64,
    /// Messages claimed by a worker that stopped mid-send, failed for a person to check.
    pub stuck: u64,
    /// Messages whose status was asked of the provider.
    pub asked: u64,
    /// ... and whose state moved because of the answer.
    pub moved: u64,
    /// Provider lookups that failed.
    pub errors: u64,
}

impl std::fmt::Display for Reconciliation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} re-enqueued, {} stuck sends resolved, {} statuses checked ({} moved, {} lookups failed)",
            self.requeued, self.stuck, self.asked, self.moved, self.errors
        )
    }
}

/// Reconcile messages: re-enqueue waiting messages whose queue entry was
/// lost, resolve sends stuck without a provider id, and ask Twilio about
/// messages whose status has not moved in a day, applying what it says
/// (forward only, like a status callback).
pub async fn reconcile_messages(core: &Core) -> Result<Reconciliation, sea_orm::DbErr> {
    let mut report = Reconciliation {
        requeued: requeue_lost(core).await?
            + outbound::reconcile_held_parts(core, REQUEUE_GRACE).await?,
        stuck: outbound::resolve_stuck_sending(core, STUCK_SENDING).await?,
        ..Default::default()
    };
    let Some(twilio) = core.providers.twilio.clone() else {
        return Ok(report);
    };
    let now = core.now();
    let stale = outbound_message::Entity::find()
        .filter(
            outbound_message::Column::State
                .is_in([MessageState::Sending.as_str(), MessageState::Sent.as_str()]),
        )
        .filter(outbound_message::Column::ProviderSid.is_not_null())
        .filter(outbound_message::Column::Provider.eq("twilio"))
        .filter(outbound_message::Column::UpdatedAt.lt(now - STALE_STATUS))
        .filter(outbound_message::Column::CreatedAt.gt(now - RECONCILE_FOR))
        .order_by_asc(outbound_message::Column::UpdatedAt)
        .limit(RECONCILE_BATCH)
        .all(&core.db.conn)
        .await?;
    for m in stale {
        let Some(sid) = m.provider_sid.clone() else {
            continue;
        };
        report.asked += 1;
        match twilio.fetch_message(&sid).await {
            Ok(tm) => {
                outbound::apply_status(
                    core,
                    StatusReport {
                        message_id: Some(m.id.clone()),
                        provider_sid: Some(tm.sid),
                        status: tm.status,
                        error_code: tm.error_code,
                        error_message: tm.error_message,
                        price: tm.price,
                        price_unit: tm.price_unit,
                        source: "reconcile".into(),
                    },
                )
                .await?;
            }
            Err(e) => {
                report.errors += 1;
                tracing::warn!(message_id = %m.id, error = %e, "reconcile: Twilio lookup failed");
            }
        }
        // Unmoved: not asked again until another day has passed.
        let touched = outbound_message::Entity::update_many()
            .col_expr(outbound_message::Column::UpdatedAt, Expr::value(core.now()))
            .filter(outbound_message::Column::Id.eq(&m.id))
            .filter(outbound_message::Column::State.eq(m.state))
            .filter(outbound_message::Column::UpdatedAt.eq(m.updated_at))
            .exec(&core.db.conn)
            .await?;
        if touched.rows_affected == 0 {
            report.moved += 1;
        }
    }
    Ok(report)
}

/// Enqueue again the messages whose queue entry was lost: queued and not
/// picked up within [`REQUEUE_GRACE`], or deferred and that long past their
/// time. (A deferred message that is not yet due keeps its entry; enqueuing
/// it on every run would pile up duplicates.) The worker's compare-and-set
/// makes a duplicate entry harmless.
async fn requeue_lost(core: &Core) -> Result<u64, sea_orm::DbErr> {
    let cutoff = core.now() - REQUEUE_GRACE;
    let lost = outbound_message::Entity::find()
        .filter(
            Condition::any()
                .add(
                    Condition::all()
                        .add(outbound_message::Column::State.eq(MessageState::Queued.as_str()))
                        .add(outbound_message::Column::UpdatedAt.lt(cutoff)),
                )
                .add(
                    Condition::all()
                        .add(outbound_message::Column::State.eq(MessageState::Deferred.as_str()))
                        .add(
                            Condition::any()
                                .add(outbound_message::Column::DeferUntil.lt(cutoff))
                                .add(
                                    Condition::all()
                                        .add(outbound_message::Column::DeferUntil.is_null())
                                        .add(outbound_message::Column::UpdatedAt.lt(cutoff)),
                                ),
                        ),
                ),
        )
        .order_by_asc(outbound_message::Column::UpdatedAt)
        .limit(1000)
        .all(&core.db.conn)
        .await?;
    let mut n = 0;
    for m in lost {
        match core.queue.enqueue_send(m.id.clone(), None).await {
            Ok(()) => n += 1,
            Err(e) => tracing::error!(message_id = %m.id, error = %e, "could not re-enqueue"),
        }
    }
    Ok(n)
}

// ---------------------------------------------------------------------------
// For the console

/// One periodic job as the console shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct JobRunView {
    pub name: String,
    pub description: String,
    /// The cron expression (six fields, UTC) and the same in words.
    pub cron: String,
    pub cadence: String,
    pub last_run_at: Option<DateTime<Utc>>,
    pub next_run_at: Option<DateTime<Utc>>,
    /// `ok`, `error` or `never_run`.
    pub status: String,
    pub last_outcome: Option<String>,
    pub last_error: Option<String>,
    pub runs: i64,
}

/// Every periodic job with its last run, next run and outcome.
pub async fn job_runs(core: &Core) -> Result<Vec<JobRunView>, sea_orm::DbErr> {
    let rows: BTreeMap<String, job_run::Model> = job_run::Entity::find()
        .all(&core.db.conn)
        .await?
        .into_iter()
        .map(|r| (r.name.clone(), r))
        .collect();
    let now = core.now();
    Ok(Job::ALL
        .into_iter()
        .map(|job| {
            let row = rows.get(job.name());
            let status = match row {
                Some(r) if r.last_error.is_some() => "error",
                Some(r) if r.last_outcome.is_some() => "ok",
                _ => "never_run",
            };
            JobRunView {
                name: job.name().into(),
                description: job.description().into(),
                cron: job.cron().into(),
                cadence: job.cadence().into(),
                last_run_at: row.and_then(|r| r.last_run_at),
                next_run_at: row
                    .and_then(|r| r.next_run_at)
                    .filter(|t| *t > now)
                    .or_else(|| job.next_after(now)),
                status: status.into(),
                last_outcome: row.and_then(|r| r.last_outcome.clone()),
                last_error: row.and_then(|r| r.last_error.clone()),
                runs: row.map(|r| r.runs).unwrap_or(0),
            }
        })
        .collect())
}

/// Delete queue jobs that finished more than a day ago (the messages are
/// the record; the queue only carried them). Keeps the queue's tables, and
/// the cost of its statements, from growing without end. Redis expires its
/// own.
pub async fn purge_finished_queue_jobs(core: &Core) -> Result<u64, sea_orm::DbErr> {
    use sea_orm::{ConnectionTrait, Statement};
    // The queue stamps `done_at` with the database's clock: compare with it.
    let sql = if core.db.is_sqlite() {
        "DELETE FROM Jobs WHERE status IN ('Done', 'Killed') AND done_at IS NOT NULL AND done_at < strftime('%s', 'now') - 86400"
    } else {
        "DELETE FROM apalis.jobs WHERE status IN ('Done', 'Killed') AND done_at IS NOT NULL AND done_at < now() - interval '1 day'"
    };
    match core
        .db
        .conn
        .execute_raw(Statement::from_string(core.db.backend(), sql))
        .await
    {
        Ok(r) => Ok(r.rows_affected()),
        // With Redis as the queue the database has no queue tables.
        Err(e)
            if e.to_string().contains("no such table")
                || e.to_string().contains("does not exist") =>
        {
            Ok(0)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_has_a_valid_cadence_and_a_unique_name() {
        let now = DateTime::parse_from_rfc3339("2026-11-17T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut names = std::collections::HashSet::new();
        for job in Job::ALL {
            assert!(names.insert(job.name()), "{job} twice");
            assert_eq!(Job::parse(job.name()), Some(job));
            let next = job
                .next_after(now)
                .unwrap_or_else(|| panic!("{job} never runs"));
            assert!(next > now);
            assert!(job.min_gap(now) >= Duration::seconds(1));
        }
        assert_eq!(
            Job::DeliverReminders.next_after(now).unwrap() - now,
            Duration::seconds(15)
        );
        assert_eq!(
            Job::DeliverReminders.min_gap(now),
            Duration::milliseconds(7500)
        );
        assert_eq!(
            Job::ExpireServiceWindows
                .next_after(now)
                .unwrap()
                .to_rfc3339(),
            "2026-11-18T03:23:00+00:00"
        );
    }
}
