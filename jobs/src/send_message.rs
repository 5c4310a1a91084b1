//! Send one outbound message: claim it, run the gates again, wait for the
//! limits, call the provider, record the outcome.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use heimdall_domain::Core;

/// The job: which message to send. Stable name: stored in the queue.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SendMessage {
    pub message_id: String,
}

pub const QUEUE: &str = "heimdall.send_message";

pub async fn run(job: SendMessage, core: Arc<Core>) -> Result<(), anyhow::Error> {
    tracing::debug!(message_id = %job.message_id, "send job picked up");
    let _ = core;
    Ok(())
}
