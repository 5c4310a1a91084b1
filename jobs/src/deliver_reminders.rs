//! Deliver the reminders that came due: each once, through the gates, with
//! the authorization of the API key that created it; late ones recorded as
//! missed (all in [`heimdall_domain::automations::reminders::deliver_due`], run and
//! recorded in `job_runs` by [`heimdall_domain::housekeeping::run`]).

use std::sync::Arc;

use heimdall_domain::housekeeping::{self, Job, RunResult};
use heimdall_domain::Core;

/// The job as the schedule knows it.
pub const JOB: Job = Job::DeliverReminders;

/// An error here is an infrastructure failure (database away) while
/// claiming or recording the run; the next tick tries again.
pub async fn run(core: Arc<Core>) -> Result<RunResult, anyhow::Error> {
    Ok(housekeeping::run(&core, JOB).await?)
}
