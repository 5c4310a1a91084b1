//! The daily anchor: the head of every stream written to the log, kept in
//! `audit_anchors` (which [`super::verify`] checks the chain against), and,
//! when `HEIMDALL_AUDIT_ANCHOR_URL` is set, POSTed there as JSON. A copy
//! kept outside the database is what catches a chain rewritten from some
//! point on with every hash recomputed.

use sea_orm::{ActiveModelTrait, DbErr, Set};
use secrecy::ExposeSecret;
use serde::Serialize;

use super::{content, seal, Stream};
use crate::clock::new_id;
use crate::entities::audit_anchor;
use crate::Core;

/// One stream's head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Head {
    pub stream: &'static str,
    /// 0 while the stream is empty.
    pub seq: i64,
    pub hash: String,
}

/// What [`anchor`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnchorReport {
    pub anchored_at: chrono::DateTime<chrono::Utc>,
    pub heads: Vec<Head>,
    /// Whether the heads were POSTed (a URL is configured and took them).
    pub posted: bool,
}

impl std::fmt::Display for AnchorReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let heads: Vec<String> = self
            .heads
            .iter()
            .map(|h| format!("{} at seq {}", h.stream, h.seq))
            .collect();
        write!(
            f,
            "anchored {}{}",
            heads.join(", "),
            if self.posted {
                "; sent to HEIMDALL_AUDIT_ANCHOR_URL"
            } else {
                ""
            }
        )
    }
}

/// Why an anchor failed (the heads are stored and logged before any POST:
/// a POST that fails leaves them there).
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error("database: {0}")]
    Db(#[from] DbErr),
    /// The POST failed; the text never carries the URL (it may hold a
    /// token) nor what the other side answered.
    #[error(
        "the heads were stored and logged, but HEIMDALL_AUDIT_ANCHOR_URL did not take them: {0}"
    )]
    Post(String),
}

/// The JSON the anchor URL receives.
#[derive(Debug, Serialize)]
struct Body<'a> {
    service: &'static str,
    anchored_at: String,
    heads: &'a [Head],
}

/// Chain what is waiting, then anchor every stream's head.
pub async fn anchor(core: &Core) -> Result<AnchorReport, AnchorError> {
    seal(core).await?;
    let now = core.now();
    let mut heads = Vec::new();
    for stream in Stream::ALL {
        let (seq, hash) = content::head(&core.db.conn, stream).await?;
        tracing::info!(stream = %stream, seq, hash = %hash, "audit chain anchor");
        audit_anchor::ActiveModel {
            id: Set(new_id()),
            anchored_at: Set(now),
            stream: Set(stream.as_str().to_string()),
            seq: Set(seq),
            hash: Set(hash.clone()),
        }
        .insert(&core.db.conn)
        .await?;
        heads.push(Head {
            stream: stream.as_str(),
            seq,
            hash,
        });
    }
    let mut report = AnchorReport {
        anchored_at: now,
        heads,
        posted: false,
    };
    if let Some(url) = &core.settings.audit_anchor_url {
        post(core, url.expose_secret(), &report).await?;
        report.posted = true;
    }
    Ok(report)
}

/// POST the heads through the guarded client (the same policy as the
/// Discord webhook: no address on this network unless allowlisted).
async fn post(core: &Core, url: &str, report: &AnchorReport) -> Result<(), AnchorError> {
    let url = url::Url::parse(url.trim()).map_err(|_| AnchorError::Post("not a URL".into()))?;
    crate::outbound_http::check_url(&core.fetch.policy, &url)
        .map_err(|e| AnchorError::Post(e.to_string()))?;
    let body = Body {
        service: "heimdall",
        anchored_at: super::content::canonical_time(report.anchored_at),
        heads: &report.heads,
    };
    let resp = core
        .fetch
        .client
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| {
            tracing::debug!(error = %e.without_url(), "anchor POST failed");
            AnchorError::Post("the request failed (connection or timeout)".into())
        })?;
    if !resp.status().is_success() {
        return Err(AnchorError::Post(format!(
            "it answered HTTP {}",
            resp.status().as_u16()
        )));
    }
    Ok(())
}
