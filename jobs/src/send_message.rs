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
pub async fn run(job: SendMessage, core: Arc<Core>) -> Result<(), anyhow::Error> {
    let result = outbound::process_send(&core, &job.message_id).await?;
    tracing::debug!(message_id = %job.message_id, ?result, "send job done");
    Ok(())
}
