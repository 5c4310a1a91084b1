//! The webhook audit log: every request recorded with its verdict and its
//! body, secrets redacted; refused requests cut short and recorded at most
//! so often per address; and the housekeeping that prunes old rows.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};

use crate::clock::new_id;
use crate::entities::webhook_audit;
use crate::Core;

/// One webhook request as recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookRecord {
    pub provider: String,
    pub path: String,
    /// accepted, duplicate, bad_signature, malformed, too_large, ignored
    pub verdict: String,
    pub headers: BTreeMap<String, String>,
    /// The body with secret-bearing fields removed.
    pub body: String,
    pub event_id: Option<String>,
    pub received_at: DateTime<Utc>,
}

/// Parameters never stored in clear.
const SECRET_PARAMS: &[&str] = &["hub.verify_token", "access_token", "AuthToken", "Password"];

/// Remove secret-bearing fields from a form-encoded or JSON body.
pub fn redact_body(body: &str) -> String {
    let trimmed = body.trim_start();
    if trimmed.starts_with('{') {
        if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(body) {
            redact_json(&mut v);
            return v.to_string();
        }
        return body.to_string();
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(body).unwrap_or_default();
    if pairs.is_empty() {
        return body.chars().take(4096).collect();
    }
    let cleaned: Vec<(String, String)> = pairs
        .into_iter()
        .map(|(k, v)| {
            if SECRET_PARAMS.iter().any(|s| s.eq_ignore_ascii_case(&k)) {
                (k, "[redacted]".into())
            } else {
                (k, v)
            }
        })
        .collect();
    serde_urlencoded::to_string(cleaned).unwrap_or_default()
}

fn redact_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if SECRET_PARAMS.iter().any(|s| s.eq_ignore_ascii_case(k)) {
                    *val = serde_json::Value::String("[redacted]".into());
                } else {
                    redact_json(val);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json),
        _ => {}
    }
}

/// How much of a refused request's body is kept (a bad signature proves
/// nothing, and anyone can send one: a few KiB and the body's hash are
/// enough to investigate).
pub const REFUSED_BODY_BYTES: usize = 2048;

/// Refused requests recorded per address per minute; beyond that they are
/// only counted (`heimdall_webhooks_refused_unrecorded_total`).
pub const REFUSED_PER_MINUTE: u32 = 30;

/// The body of a refused request as recorded: its length, its SHA-256 and
/// at most [`REFUSED_BODY_BYTES`] of it (secrets redacted).
pub fn refused_body(body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let hash = hex::encode(Sha256::digest(body));
    let head = &body[..body.len().min(REFUSED_BODY_BYTES)];
    let kept: String = redact_body(&String::from_utf8_lossy(head))
        .chars()
        .take(REFUSED_BODY_BYTES)
        .collect();
    format!(
        "[refused: {} bytes, sha256 {hash}; first {} kept] {kept}",
        body.len(),
        head.len()
    )
}

/// Which refused requests get an audit row: at most
/// [`REFUSED_PER_MINUTE`] per address (a flood of forged requests must not
/// fill the disk). Bounded in memory too.
#[derive(Debug)]
pub struct RefusedWebhooks(governor::DefaultKeyedRateLimiter<std::net::IpAddr>);

impl Default for RefusedWebhooks {
    fn default() -> Self {
        let per_minute = std::num::NonZeroU32::new(REFUSED_PER_MINUTE).expect("positive");
        RefusedWebhooks(governor::RateLimiter::keyed(governor::Quota::per_minute(
            per_minute,
        )))
    }
}

impl RefusedWebhooks {
    /// May a refused request from `ip` be recorded now?
    pub fn may_record(&self, ip: std::net::IpAddr) -> bool {
        if self.0.len() > 10_000 {
            self.0.retain_recent();
            self.0.shrink_to_fit();
        }
        self.0.check_key(&ip).is_ok()
    }
}

/// Record a refused webhook request (bad signature, malformed): never
/// spooled (there is nothing to replay), its body cut to a few KiB with its
/// hash, and at most [`REFUSED_PER_MINUTE`] per address.
pub async fn record_refused(
    core: &Core,
    ip: std::net::IpAddr,
    mut rec: WebhookRecord,
    body: &[u8],
) {
    if !core.refused_webhooks.may_record(ip) {
        metrics::counter!("heimdall_webhooks_refused_unrecorded_total").increment(1);
        return;
    }
    rec.body = refused_body(body);
    if let Err(e) = record_webhook(&core.db.conn, &rec, false, core.now()).await {
        tracing::warn!(error = %e, "could not record a refused webhook request");
    }
}

/// Delete webhook audit rows older than `HEIMDALL_WEBHOOK_AUDIT_DAYS`
/// (housekeeping, daily: [`crate::housekeeping::retention`]).
/// In batches of 1,000 rows, each its own statement, so that a backlog
/// never holds a long transaction.
pub async fn prune_webhook_audit(core: &Core) -> Result<u64, sea_orm::DbErr> {
    const BATCH: u64 = 1_000;
    let cutoff = core.now() - Duration::days(i64::from(core.settings.webhook_audit_days));
    let mut total = 0;
    loop {
        let ids: Vec<String> = webhook_audit::Entity::find()
            .select_only()
            .column(webhook_audit::Column::Id)
            .filter(webhook_audit::Column::ReceivedAt.lt(cutoff))
            .order_by_asc(webhook_audit::Column::ReceivedAt)
            .limit(BATCH)
            .into_tuple()
            .all(&core.db.conn)
            .await?;
        let n = ids.len() as u64;
        if n == 0 {
            break;
        }
        total += webhook_audit::Entity::delete_many()
            .filter(webhook_audit::Column::Id.is_in(ids))
            .exec(&core.db.conn)
            .await?
            .rows_affected;
        if n < BATCH {
            break;
        }
    }
    Ok(total)
}

pub async fn record_webhook(
    db: &impl ConnectionTrait,
    rec: &WebhookRecord,
    replayed: bool,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    audit_row(rec, replayed, now).insert(db).await?;
    Ok(())
}

/// The audit-log row for a webhook request.
pub(super) fn audit_row(
    rec: &WebhookRecord,
    replayed: bool,
    now: DateTime<Utc>,
) -> webhook_audit::ActiveModel {
    webhook_audit::ActiveModel {
        id: Set(new_id()),
        provider: Set(rec.provider.clone()),
        path: Set(rec.path.clone()),
        verdict: Set(rec.verdict.clone()),
        headers: Set(serde_json::to_string(&rec.headers).unwrap_or_else(|_| "{}".into())),
        body: Set(rec.body.clone()),
        event_id: Set(rec.event_id.clone()),
        replayed: Set(replayed),
        received_at: Set(rec.received_at),
        created_at: Set(now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secrets() {
        assert_eq!(
            redact_body("hub.mode=subscribe&hub.verify_token=s3cret&hub.challenge=1"),
            "hub.mode=subscribe&hub.verify_token=%5Bredacted%5D&hub.challenge=1"
        );
        let j = redact_body(r#"{"a":{"access_token":"x"},"b":1}"#);
        assert!(!j.contains("\"x\""));
    }
}
