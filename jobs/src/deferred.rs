//! Send jobs for a later time, on Redis: kept in a sorted set of Heimdall's own
//! and moved onto the queue in bounded batches when they fall due.
//!
//! apalis-redis keeps scheduled jobs in a sorted set too, but its fetch moves
//! *every* due one to the queue in one Lua call (`rpush` with `unpack` of
//! them all). Lua cannot unpack more than about 8,000 values: past that the
//! fetch fails, every fetch after it too, and the queue stops for good. That
//! many deferred messages falling due together is ordinary (a campaign
//! accepted during quiet hours: all due at the hour they end), so a message
//! deferred for later never enters apalis' scheduled set. (apalis still puts a
//! job there to retry it after its handler fails; the send job does not fail
//! for a reason that could strike thousands at once: see
//! [`crate::send_message`].)
//!
//! How an entry moves, so that a process dying at any point loses nothing:
//! [`promote`] takes up to [`BATCH`] due entries in one script, from the
//! waiting set into a set of entries being moved (scored with when the move
//! counts as abandoned), pushes their jobs onto the queue, then removes them
//! from the moving set. An entry a dead process was moving goes back to the
//! waiting set, due, at the next promotion after [`ABANDONED_AFTER_MS`]. At
//! worst a job is pushed twice, which is harmless: the worker claims a
//! message with a compare-and-set.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// Due entries moved per script call.
pub const BATCH: usize = 500;
/// Batches one promotion moves at most before it lets the next tick come
/// (500 × 20 = 10,000 a tick: far above any sending rate).
const MAX_BATCHES: usize = 20;
/// How often each worker process looks for due entries.
pub const TICK: Duration = Duration::from_millis(250);
/// After this long an entry still in the moving set was abandoned (its
/// process died between taking it and pushing it).
pub const ABANDONED_AFTER_MS: i64 = 30_000;

/// The waiting set and the moving set beside a Redis send queue.
#[derive(Debug, Clone)]
pub struct DeferredKeys {
    pub waiting: String,
    pub moving: String,
}

impl DeferredKeys {
    pub fn beside(queue: &str) -> DeferredKeys {
        DeferredKeys {
            waiting: format!("{queue}:heimdall_deferred"),
            moving: format!("{queue}:heimdall_deferred_moving"),
        }
    }
}

/// Keep `message_id` for `at`. An entry already waiting for an earlier time
/// keeps that time: a worker that looks at a message before its time
/// enqueues it again for its time, while one that looked too late would
/// have delayed it.
pub async fn defer(
    conn: &mut redis::aio::ConnectionManager,
    keys: &DeferredKeys,
    message_id: &str,
    at: DateTime<Utc>,
) -> redis::RedisResult<()> {
    redis::cmd("ZADD")
        .arg(&keys.waiting)
        .arg("LT")
        .arg(at.timestamp_millis())
        .arg(message_id)
        .query_async(conn)
        .await
}

/// Entries abandoned in the moving set go back to wait, due; then up to
/// ARGV[2] due entries move from waiting to moving, scored ARGV[3].
/// KEYS: waiting, moving. ARGV: now (ms), count, abandoned-at (ms).
const TAKE: &str = r"
local back = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, 1000)
for _, id in ipairs(back) do
  redis.call('ZADD', KEYS[1], 'LT', ARGV[1], id)
  redis.call('ZREM', KEYS[2], id)
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZADD', KEYS[2], ARGV[3], id)
end
return due
";

/// Entries moved by this call (scored ARGV[1]) leave the moving set; one taken
/// again since by another mover (another score) stays.
/// KEYS: moving. ARGV: the score, then the ids.
const DONE: &str = r"
local n = 0
for i = 2, #ARGV do
  if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[i])) == tonumber(ARGV[1]) then
    redis.call('ZREM', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
";

/// The scripts, each hashed once (invoking sends EVALSHA, loading the script
/// when Redis does not know it).
static TAKE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(TAKE));
static DONE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(DONE));

/// Move the due entries onto the queue with `push` (which enqueues each id
/// for now), at most [`MAX_BATCHES`] × [`BATCH`] of them. Returns how many
/// were pushed.
pub async fn promote<F, Fut>(
    conn: &mut redis::aio::ConnectionManager,
    keys: &DeferredKeys,
    now: DateTime<Utc>,
    mut push: F,
) -> Result<usize, String>
where
    F: FnMut(Vec<String>) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let now_ms = now.timestamp_millis();
    let mut pushed = 0;
    for round in 0..MAX_BATCHES {
        // A distinct score per batch: DONE removes only what this batch took.
        let abandoned_at = now_ms + ABANDONED_AFTER_MS + round as i64;
        let due: Vec<String> = TAKE_SCRIPT
            .key(&keys.waiting)
            .key(&keys.moving)
            .arg(now_ms)
            .arg(BATCH)
            .arg(abandoned_at)
            .invoke_async(conn)
            .await
            .map_err(|e| e.to_string())?;
        if due.is_empty() {
            break;
        }
        let n = due.len();
        push(due.clone()).await?;
        let _: i64 = DONE_SCRIPT
            .key(&keys.moving)
            .arg(abandoned_at)
            .arg(&due)
            .invoke_async(conn)
            .await
            .map_err(|e| e.to_string())?;
        pushed += n;
        if n < BATCH {
            break;
        }
    }
    Ok(pushed)
}

/// Entries waiting or being moved (for the queue's depth).
pub async fn count(
    conn: &mut redis::aio::ConnectionManager,
    keys: &DeferredKeys,
) -> redis::RedisResult<u64> {
    let (waiting, moving): (u64, u64) = redis::pipe()
        .zcard(&keys.waiting)
        .zcard(&keys.moving)
        .query_async(conn)
        .await?;
    Ok(waiting + moving)
}
