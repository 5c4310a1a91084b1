//! Accepted events kept on local disk while the database is away (sends
//! hold meanwhile), and replayed into the database once it is back.

use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use crate::sending::outbound::StatusReport;
use crate::store;
use crate::Core;

use super::{handle_message, handle_status, record_webhook, InboundMessage, WebhookRecord};

/// An accepted event kept on local disk while the database is away.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpooledEvent {
    pub record: WebhookRecord,
    pub event: SpooledPayload,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SpooledPayload {
    Message(InboundMessage),
    Status(StatusReportData),
    None,
}

/// A serialisable copy of a status report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReportData {
    pub message_id: Option<String>,
    pub provider_sid: Option<String>,
    pub status: String,
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
    pub price: Option<String>,
    pub price_unit: Option<String>,
    pub source: String,
}

impl From<StatusReportData> for StatusReport {
    fn from(d: StatusReportData) -> Self {
        StatusReport {
            message_id: d.message_id,
            provider_sid: d.provider_sid,
            status: d.status,
            error_code: d.error_code,
            error_message: d.error_message,
            price: d.price,
            price_unit: d.price_unit,
            source: d.source,
        }
    }
}

impl From<&StatusReport> for StatusReportData {
    fn from(d: &StatusReport) -> Self {
        StatusReportData {
            message_id: d.message_id.clone(),
            provider_sid: d.provider_sid.clone(),
            status: d.status.clone(),
            error_code: d.error_code,
            error_message: d.error_message.clone(),
            price: d.price.clone(),
            price_unit: d.price_unit.clone(),
            source: d.source.clone(),
        }
    }
}

/// Keep an event in the local spool (the database is away); sends hold
/// until it is replayed.
pub async fn spool(core: &Core, event: &SpooledEvent) -> std::io::Result<()> {
    store::spool::append(core, event).await
}

/// Replay spooled events into the database; returns how many were replayed.
/// Events stay in the spool until every one of them went in.
pub async fn replay_spool(core: &Core) -> Result<usize, String> {
    let guard = core.spool.lock.lock().await;
    let path = store::spool::spool_path(core);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => {
            if !t.trim().is_empty() {
                // Until every event went in, sends wait.
                core.spool.pending.store(true, Ordering::SeqCst);
            }
            t
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            core.spool.pending.store(false, Ordering::SeqCst);
            return Ok(0);
        }
        Err(e) => return Err(e.to_string()),
    };
    let mut n = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let ev: SpooledEvent = match serde_json::from_str(line) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "unreadable spool line skipped");
                continue;
            }
        };
        let now = core.now();
        record_webhook(&core.db.conn, &ev.record, true, now)
            .await
            .map_err(|e| e.to_string())?;
        match ev.event {
            SpooledPayload::Message(m) => {
                handle_message(core, m).await.map_err(|e| e.to_string())?;
            }
            SpooledPayload::Status(s) => {
                handle_status(core, s.into())
                    .await
                    .map_err(|e| e.to_string())?;
            }
            SpooledPayload::None => {}
        }
        n += 1;
    }
    std::fs::write(&path, b"").map_err(|e| e.to_string())?;
    core.spool.pending.store(false, Ordering::SeqCst);
    drop(guard);
    store::spool::share_spool_state(core).await;
    if n > 0 {
        tracing::info!(events = n, "replayed webhook events from the local spool");
    }
    Ok(n)
}
