//! The job queue as the domain sees it: a place to put "send this message"
//! and "run this job" requests. The apalis storages behind it live in the
//! `heimdall-jobs` crate, so this crate does not depend on a queue library's
//! moving API.
//!
//! The database is the record: a message's state says whether it still has
//! to be sent, so a lost or repeated queue entry can never lose or double a
//! message (the worker claims it with a compare-and-set, and housekeeping
//! re-enqueues messages left waiting).

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

#[derive(Debug, thiserror::Error)]
#[error("could not enqueue the job: {0}")]
pub struct QueueError(pub String);

pub trait JobQueue: Send + Sync + std::fmt::Debug {
    /// Ask a worker to send the message, not before `not_before`.
    fn enqueue_send(
        &self,
        message_id: String,
        not_before: Option<DateTime<Utc>>,
    ) -> BoxFuture<'_, Result<(), QueueError>>;

    /// Ask a worker to fan a campaign out into messages.
    fn enqueue_campaign(&self, campaign_id: String) -> BoxFuture<'_, Result<(), QueueError>>;

    /// Jobs waiting, for dashboards and readiness; `None` when unknown.
    fn depth(&self) -> BoxFuture<'_, Option<u64>>;
}

/// A queue that records what it was given and runs nothing (tests of
/// acceptance without workers).
#[derive(Debug, Default)]
pub struct RecordingQueue {
    pub sends: std::sync::Mutex<Vec<(String, Option<DateTime<Utc>>)>>,
    pub campaigns: std::sync::Mutex<Vec<String>>,
}

impl JobQueue for RecordingQueue {
    fn enqueue_send(
        &self,
        message_id: String,
        not_before: Option<DateTime<Utc>>,
    ) -> BoxFuture<'_, Result<(), QueueError>> {
        self.sends
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((message_id, not_before));
        Box::pin(async { Ok(()) })
    }

    fn enqueue_campaign(&self, campaign_id: String) -> BoxFuture<'_, Result<(), QueueError>> {
        self.campaigns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(campaign_id);
        Box::pin(async { Ok(()) })
    }

    fn depth(&self) -> BoxFuture<'_, Option<u64>> {
        let n = self.sends.lock().map(|v| v.len() as u64).ok();
        Box::pin(async move { n })
    }
}
