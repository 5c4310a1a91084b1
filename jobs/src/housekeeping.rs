//! Keep Heimdall tidy: one housekeeping task per tick (purge dedup entries,
//! expire service windows, roll up tier usage, start scheduled campaigns,
//! sync template approvals, replay the webhook spool, reconcile messages),
//! each in [`heimdall_domain::housekeeping`], run and recorded in
//! `job_runs` by [`heimdall_domain::housekeeping::run`].

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use heimdall_domain::housekeeping::{self, Job, RunResult};
use heimdall_domain::Core;

/// The job: which housekeeping task to run.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Housekeeping {
    pub task: Job,
}

/// The housekeeping tasks (every periodic job but reminders and schedules,
/// which have their own files).
pub fn tasks() -> impl Iterator<Item = Job> {
    Job::ALL
        .into_iter()
        .filter(|j| !matches!(j, Job::DeliverReminders | Job::RunSchedules))
}

/// A failed task is recorded and alerted by the domain; an error here is
/// an infrastructure failure (database away) while claiming or recording.
pub async fn run(job: Housekeeping, core: Arc<Core>) -> Result<RunResult, anyhow::Error> {
    Ok(housekeeping::run(&core, job.task).await?)
}
