//! The schedules: every periodic job ticks on its own apalis-cron worker at
//! the cadence in [`heimdall_domain::housekeeping::Job::cron`] (UTC):
//! reminders and recurring schedules every 15 seconds, housekeeping at its
//! own pace. Each tick runs the job through
//! [`heimdall_domain::housekeeping::run`], which runs it at most once per
//! cadence across all processes and records it in `job_runs`.
//!
//! The ticks are wall-clock (apalis-cron); the jobs themselves read the
//! domain's clock, so tests drive them directly with a manual clock.

use std::sync::Arc;

use apalis::prelude::*;
use apalis_cron::{CronScheduler, Tick};
use chrono::{DateTime, Utc};

use heimdall_domain::automations::schedules::CronExpr;
use heimdall_domain::housekeeping::Job;
use heimdall_domain::Core;

use crate::housekeeping::Housekeeping;
use crate::queue::Queue;

/// A cron expression as an apalis-cron schedule. It never yields the same
/// instant twice, even if a timer fires a little early.
#[derive(Debug, Clone)]
pub struct Cadence {
    expr: CronExpr,
    last: Option<DateTime<Utc>>,
}

impl Cadence {
    pub fn new(expr: CronExpr) -> Self {
        Cadence { expr, last: None }
    }

    /// The job's own cadence.
    pub fn of(job: Job) -> Result<Self, String> {
        CronExpr::parse(job.cron()).map(Cadence::new)
    }
}

impl apalis_cron::Schedule<Utc> for Cadence {
    fn next_tick(&mut self, _tz: &Utc) -> Option<Tick<Utc>> {
        let from = match self.last {
            Some(last) => last.max(Utc::now()),
            None => Utc::now(),
        };
        let next = self.expr.next_after_utc(from)?;
        self.last = Some(next);
        Some(Tick::new(u64::try_from(next.timestamp()).ok()?))
    }
}

/// Set while a job's run is in progress in this process.
#[derive(Clone, Default)]
struct Running(Arc<std::sync::atomic::AtomicBool>);

/// Clears the flag when the run ends, however it ends.
struct RunGuard(Running);

impl Drop for RunGuard {
    fn drop(&mut self) {
        (self.0)
            .0
            .store(false, std::sync::atomic::Ordering::Release);
    }
}

async fn on_tick(
    _tick: Tick,
    job: Data<Job>,
    core: Data<Arc<Core>>,
    running: Data<Running>,
) -> Result<(), BoxDynError> {
    // A tick that comes while the previous run is still going is skipped:
    // runs never overlap, and the next tick is already waiting.
    let flag: &Running = &running;
    if flag.0.swap(true, std::sync::atomic::Ordering::AcqRel) {
        tracing::debug!(job = %*job, "previous run still in progress; tick skipped");
        return Ok(());
    }
    let _guard = RunGuard(flag.clone());
    let core: Arc<Core> = (*core).clone();
    let result = match *job {
        Job::DeliverReminders => crate::deliver_reminders::run(core).await,
        Job::RunSchedules => crate::run_schedules::run(core).await,
        task => crate::housekeeping::run(Housekeeping { task }, core).await,
    };
    match result {
        Ok(r) => {
            tracing::trace!(job = %*job, result = ?r, "tick");
            Ok(())
        }
        Err(e) => {
            tracing::error!(job = %*job, error = %e, "scheduled job could not run");
            Err(e.into())
        }
    }
}

/// Register every periodic job at its own cadence.
pub fn register(monitor: Monitor, core: &Arc<Core>, _queue: &Queue) -> Monitor {
    let jobs = Job::ALL
        .into_iter()
        .filter_map(|job| match Cadence::of(job) {
            Ok(c) => Some((job, c)),
            Err(e) => {
                tracing::error!(job = %job, error = %e, "job has no valid cadence; not scheduled");
                None
            }
        });
    register_jobs(monitor, core, jobs)
}

/// Register the given jobs at the given cadences (tests use faster ones).
pub fn register_jobs(
    mut monitor: Monitor,
    core: &Arc<Core>,
    jobs: impl IntoIterator<Item = (Job, Cadence)>,
) -> Monitor {
    for (job, cadence) in jobs {
        // Worker names must be unique among live workers: one per process and start.
        let name = format!(
            "heimdall-cron-{}-{}-{}",
            job.name(),
            std::process::id(),
            heimdall_domain::clock::new_id()
        );
        let core = core.clone();
        let running = Running::default();
        monitor = monitor.register(move |_| {
            WorkerBuilder::new(name.clone())
                .backend(CronScheduler::new(cadence.clone()))
                // Two slots, so the scheduler is polled (and the next
                // tick's timer set) while a run is in progress: apalis-cron
                // fails a worker whose next tick is already past when it is
                // polled. The second slot only ever skips (see `on_tick`).
                .concurrency(2)
                .data(job)
                .data(core.clone())
                .data(running.clone())
                .build(on_tick)
        });
    }
    monitor
}

#[cfg(test)]
mod tests {
    use super::*;
    use apalis_cron::Schedule;

    #[test]
    fn every_job_has_a_cadence() {
        for job in Job::ALL {
            assert!(Cadence::of(job).is_ok(), "{job}");
        }
    }

    #[test]
    fn a_cadence_never_repeats_an_instant() {
        let mut c = Cadence::new(CronExpr::parse("* * * * * *").unwrap());
        let a = c.next_tick(&Utc).unwrap().get_timestamp();
        let b = c.next_tick(&Utc).unwrap().get_timestamp();
        assert!(b > a, "{a} then {b}");
    }
}
