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

use crate::poll::Tick;
use crate::queue::{FanOutQueue, Queue};

/// The job: which campaign. Stable name: stored in the queue.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FanOutCampaign {
    pub campaign_id: String,
}

pub const QUEUE: &str = "heimdall.fan_out_campaign";

/// Fan-outs in flight per process: each is a long loop of database work.
const CONCURRENCY: usize = 2;

/// How often an idle worker looks for jobs.
const POLL: Duration = Duration::from_millis(100);

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

async fn handler(job: FanOutCampaign, core: Data<Arc<Core>>) -> Result<(), BoxDynError> {
    run(job, (*core).clone())
        .await
        .map_err(|e| -> BoxDynError { e.into() })
}

/// Register this module's workers with the monitor.
pub fn register(monitor: Monitor, core: &Arc<Core>, queue: &Queue) -> Monitor {
    // Worker names must be unique among live workers: one per process and start,
    // and a fresh one for each restart (see `runner::run`).
    let worker_name = format!(
        "heimdall-fan-out-{}-{}",
        std::process::id(),
        heimdall_domain::clock::new_id()
    );
    let core = core.clone();
    match queue.fan_out() {
        FanOutQueue::Sqlite(storage) => monitor.register(move |restarts| {
            WorkerBuilder::new(format!("{worker_name}-{restarts}"))
                .backend(storage.clone().poll_with_strategy(Tick::new(POLL)))
                .concurrency(CONCURRENCY)
                .data(core.clone())
                .build(handler)
        }),
        FanOutQueue::Postgres(storage) => monitor.register(move |restarts| {
            WorkerBuilder::new(format!("{worker_name}-{restarts}"))
                .backend(storage.clone().poll_with_strategy(Tick::new(POLL)))
                .concurrency(CONCURRENCY)
                .data(core.clone())
                .build(handler)
        }),
        FanOutQueue::Redis(storage) => monitor.register(move |restarts| {
            WorkerBuilder::new(format!("{worker_name}-{restarts}"))
                .backend(storage.clone().poll_with_strategy(Tick::new(POLL)))
                .concurrency(CONCURRENCY)
                .data(core.clone())
                .build(handler)
        }),
    }
}
