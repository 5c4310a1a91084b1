//! Run the recurring schedules: each due occurrence once, in the contact's
//! time zone, through the gates, with variables fetched at send time when
//! the schedule names a URL (all in
//! [`heimdall_domain::automations::schedules::run_due`], run and recorded in `job_runs`
//! by [`heimdall_domain::housekeeping::run`]).

use std::sync::Arc;

use heimdall_domain::housekeeping::{self, Job, RunResult};
use heimdall_domain::Core;

/// The job as the schedule knows it.
pub const JOB: Job = Job::RunSchedules;

/// An error here is an infrastructure failure (database away) while
/// claiming or recording the run; the next tick tries again.
pub async fn run(core: Arc<Core>) -> Result<RunResult, anyhow::Error> {
    Ok(housekeeping::run(&core, JOB).await?)
}
