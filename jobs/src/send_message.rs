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
pub async fn run(job: SendMessage, core: Arc<Core>) -> Result<(), anyhow::Error> {
    let id = job.message_id.clone();
    let send = tokio::spawn(async move { outbound::process_send(&core, &id).await });
    let result = send.await??;
    tracing::debug!(message_id = %job.message_id, ?result, "send job done");
    Ok(())
}
