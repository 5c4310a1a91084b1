//! Fan an approved campaign out into messages (all in
//! [`heimdall_domain::campaigns::fan_out`]), on its own queue
//! (`heimdall.fan_out_campaign`) beside the send queue.
//!
//! The job is only a trigger: the campaign's status is the record, the
//! claim is a compare-and-set and each recipient's message has an
//! idempotency key, so a job run twice, by two workers at once or again
//! after a crash, never creates a second message for anyone. This job must
//! never send a message itself.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use serde::{Deserialize, Serialize};

use heimdall_domain::campaigns::{self, CampaignError};
use heimdall_domain::Core;

/// The job: which campaign. Stable name: stored in the queue.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FanOutCampaign {
    pub campaign_id: String,
}

pub const QUEUE: &str = "heimdall.fan_out_campaign";

/// Fan-outs in flight per process: each is a long loop of database work.
pub(crate) const CONCURRENCY: usize = 2;

/// How often an idle worker looks for jobs.
pub(crate) const POLL: Duration = Duration::from_millis(100);

/// An error here is an infrastructure failure (database away): apalis
/// retries the job, and the retry continues where this run stopped. A
/// campaign that is gone or not approved is logged and not retried.
pub async fn run(job: FanOutCampaign, core: Arc<Core>) -> Result<(), anyhow::Error> {
    match campaigns::fan_out(&core, &job.campaign_id).await {
        Ok(report) => {
            tracing::info!(
                campaign_id = %job.campaign_id,
                claimed = report.claimed,
                status = %report.status,
                created = report.created,
                existing = report.existing,
                finished = report.finished,
                "fan-out job done"
            );
            Ok(())
        }
        Err(CampaignError::Db(e)) => Err(e.into()),
        Err(e) => {
            tracing::warn!(campaign_id = %job.campaign_id, error = %e, "fan-out job dropped");
            Ok(())
        }
    }
}

/// The worker's entry (registered in [`crate::runner`]).
pub(crate) async fn handler(job: FanOutCampaign, core: Data<Arc<Core>>) -> Result<(), BoxDynError> {
    run(job, (*core).clone())
        .await
        .map_err(|e| -> BoxDynError { e.into() })
}
