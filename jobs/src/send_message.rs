//! Send one outbound message: claim it, run the gates again, wait for the
//! limits, call the provider, record the outcome (all in
//! [`heimdall_domain::sending::outbound::process_send`]).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use heimdall_domain::sending::outbound;
use heimdall_domain::Core;

/// The job: which message to send. Stable name: stored in the queue.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SendMessage {
    pub message_id: String,
}

pub const QUEUE: &str = "heimdall.send_message";

/// An error here is an infrastructure failure (database away): apalis
/// retries the job. Provider failures are handled by the domain.
///
/// The send runs as a task of its own, awaited here: if the queue's worker
/// stops mid-job (its Redis restarted, say) and drops this future, the send
/// still finishes (its claim, its provider call and the record of the
/// answer), instead of stopping between the claim and the call, which would
/// leave the message for a person to check. A redelivered job finds the
/// message claimed and does nothing.
///
/// A send that fails for an infrastructure reason (the database away) is
/// enqueued again for [`RETRY_AFTER`] later, and the job ends well: apalis'
/// own retry would give up after a number of attempts (a longer outage
/// would leave the message to housekeeping's 15-minute sweep), and on Redis
/// it goes through the scheduled set that [`crate::deferred`] keeps
/// messages out of. Only when even that enqueue fails does the job fail and
/// apalis retry it.
/// The worker's entry (registered in [`crate::runner`]).
pub(crate) async fn handler(
    job: SendMessage,
    core: apalis::prelude::Data<Arc<Core>>,
) -> Result<(), apalis::prelude::BoxDynError> {
    run(job, (*core).clone())
        .await
        .map_err(|e| -> apalis::prelude::BoxDynError { e.into() })
}

pub async fn run(job: SendMessage, core: Arc<Core>) -> Result<(), anyhow::Error> {
    let id = job.message_id.clone();
    let task_core = core.clone();
    let send = SENDS.spawn(async move { outbound::process_send(&task_core, &id).await });
    match send.await? {
        Ok(result) => {
            tracing::debug!(message_id = %job.message_id, ?result, "send job done");
            Ok(())
        }
        Err(e) => {
            let at = chrono::Utc::now() + RETRY_AFTER;
            match core
                .queue
                .enqueue_send(job.message_id.clone(), Some(at))
                .await
            {
                Ok(()) => {
                    tracing::warn!(message_id = %job.message_id, error = %e, "send failed for an infrastructure reason; trying again shortly");
                    Ok(())
                }
                Err(_) => Err(e.into()),
            }
        }
    }
}

/// How long after an infrastructure failure a send is tried again.
pub const RETRY_AFTER: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

/// Sends running in this process: their own tasks, which outlive a job its
/// worker dropped.
static SENDS: std::sync::LazyLock<tokio_util::task::TaskTracker> =
    std::sync::LazyLock::new(tokio_util::task::TaskTracker::new);

/// At shutdown, after the queue's workers stopped: wait (up to `within`) for the
/// sends still running in this process, so that the process does not exit between
/// a claim and its call, or during a call before its answer is recorded. (apalis
/// may drop a job at shutdown without waiting for it; the send is a task of its own
/// and goes on, but only while the process lives.) Returns how many were still
/// running when the wait ended.
pub async fn wait_for_sends(within: std::time::Duration) -> usize {
    SENDS.close();
    let _ = tokio::time::timeout(within, SENDS.wait()).await;
    // (Closing only lets `wait` end when the tasks have; sends still start.)
    SENDS.reopen();
    SENDS.len()
}
