//! The local spool: where a process keeps the webhook events it could not
//! write to the database (a STOP among them must not be lost), and the
//! shared flag that holds every process's sends until the spool is
//! replayed (`inbound::replay_spool`). The flag is read on every send's
//! path; through Redis, every process sees every other's.
//!
//! Knows nothing of what an event means: it appends lines and says whether
//! any wait.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use chrono::Utc;
use serde::Serialize;

use crate::Core;

pub fn spool_path(core: &Core) -> PathBuf {
    core.settings.data_dir.join("spool").join("webhooks.jsonl")
}

/// True while events wait in a spool, this process's or (through Redis)
/// any other's: a STOP may be among them, so sends hold back until they
/// are replayed.
pub fn spool_pending(core: &Core) -> bool {
    // Atomic reads: this is on every send's path. Start-up replays (or,
    // failing that, flags) a spool left by an earlier run; the runtime
    // refresher reads the other processes' announcements every second.
    core.spool.pending.load(Ordering::SeqCst) || core.spool.elsewhere.load(Ordering::SeqCst)
}

/// How long a process's announcement of a pending spool lasts unless it
/// renews it (every second while events wait): a process that died with
/// events in its spool stops holding the others' sends after this, and
/// replays its spool when it starts again.
const SPOOL_LEASE_MS: i64 = 15_000;

fn spool_key(core: &Core) -> String {
    format!("{}:spool:pending", core.settings.redis_namespace)
}

/// Announce (or withdraw) this process's pending spool in Redis and read
/// whether any other process has one. Without Redis there is nothing to
/// share: each process holds its own sends. When Redis does not answer,
/// the last reading stands (a hold is never released on a failed read).
pub async fn share_spool_state(core: &Core) {
    let Some(conn) = &core.redis else {
        return;
    };
    // Another process on this spool file may have replayed it (a restart
    // on the same data directory): an empty file holds nothing.
    if core.spool.pending.load(Ordering::SeqCst)
        && !matches!(std::fs::metadata(spool_path(core)), Ok(m) if m.len() > 0)
    {
        core.spool.pending.store(false, Ordering::SeqCst);
    }
    let mut conn = conn.clone();
    let key = spool_key(core);
    let me = &core.spool.instance;
    let now_ms = Utc::now().timestamp_millis();
    let mut pipe = redis::pipe();
    if core.spool.pending.load(Ordering::SeqCst) {
        pipe.zadd(&key, me, now_ms + SPOOL_LEASE_MS).ignore();
    } else {
        pipe.zrem(&key, me).ignore();
    }
    pipe.zrangebyscore(&key, now_ms, "+inf");
    let res: Result<(Vec<String>,), _> = pipe.query_async(&mut conn).await;
    match res {
        Ok((holders,)) => {
            // Any other spool with events (this one is the local flag).
            let others = holders.iter().any(|h| h != me);
            core.spool.elsewhere.store(others, Ordering::SeqCst);
        }
        Err(e) => tracing::warn!(error = %e, "could not share the spool state through Redis"),
    }
}

/// Append an event to the local spool and flush it to disk.
pub async fn append(core: &Core, event: &impl Serialize) -> std::io::Result<()> {
    let guard = core.spool.lock.lock().await;
    let path = spool_path(core);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    let mut line = serde_json::to_string(event).map_err(std::io::Error::other)?;
    line.push('\n');
    f.write_all(line.as_bytes())?;
    f.sync_all()?;
    core.spool.pending.store(true, Ordering::SeqCst);
    drop(guard);
    // Tell the other processes at once (Redis may answer while the
    // database does not).
    share_spool_state(core).await;
    metrics::counter!("heimdall_webhooks_spooled_total").increment(1);
    Ok(())
}
