//! The apalis storages behind [`heimdall_domain::sending::queue::JobQueue`]:
//! SQLite or PostgreSQL (the same database as the record) by default,
//! Redis when `HEIMDALL_REDIS_URL` is set. Two queues live there: one for
//! sending messages, one for fanning campaigns out ([`FanOutQueue`], made
//! from the same pool or connection).

use std::time::{Duration, SystemTime};

use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
use apalis_redis::RedisStorage;
use apalis_sqlite::SqliteStorage;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use heimdall_domain::sending::queue::{JobQueue, QueueError};
use heimdall_domain::Db;

use crate::deferred::{self, DeferredKeys};
use crate::fan_out_campaign::{self, FanOutCampaign};
use crate::send_message::{self, SendMessage};

/// Attempts apalis makes for one job when the handler fails for an
/// infrastructure reason (database away). Provider errors are retried by
/// the domain with its own backoff, not here.
const MAX_ATTEMPTS: usize = 10;

#[derive(Clone)]
pub enum Queue {
    Sqlite(SqliteStorage<SendMessage>),
    Postgres(PostgresStorage<SendMessage>),
    Redis(RedisStorage<SendMessage>),
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Queue::Sqlite(_) => "Queue::Sqlite",
            Queue::Postgres(_) => "Queue::Postgres",
            Queue::Redis(_) => "Queue::Redis",
        })
    }
}

/// The fan-out jobs' storage: the same backend, pool or connection as the
/// send queue, under its own queue name.
#[derive(Clone)]
pub enum FanOutQueue {
    Sqlite(SqliteStorage<FanOutCampaign>),
    Postgres(PostgresStorage<FanOutCampaign>),
    Redis(RedisStorage<FanOutCampaign>),
}

/// A queue's name in Redis: under the installation's namespace.
fn redis_queue(namespace: &str, queue: &str) -> String {
    format!("{namespace}:{queue}")
}

/// The name of another queue beside `send_name` (made by [`redis_queue`]).
fn redis_sibling(send_name: &str, queue: &str) -> String {
    match send_name.strip_suffix(send_message::QUEUE) {
        Some(prefix) => format!("{prefix}{queue}"),
        None => format!("{send_name}:{queue}"),
    }
}

impl Queue {
    /// The fan-out queue beside this send queue.
    pub fn fan_out(&self) -> FanOutQueue {
        match self {
            Queue::Sqlite(s) => FanOutQueue::Sqlite(
                SqliteStorage::new(s.pool())
                    .with_config(apalis_sqlite::Config::default().queue(fan_out_campaign::QUEUE)),
            ),
            Queue::Postgres(s) => FanOutQueue::Postgres(
                PostgresStorage::new(s.pool())
                    .with_config(apalis_postgres::Config::default().queue(fan_out_campaign::QUEUE)),
            ),
            Queue::Redis(s) => {
                let mut s = s.clone();
                let name = redis_sibling(s.get_config().queue.as_ref(), fan_out_campaign::QUEUE);
                let conn = s.get_connection().clone();
                FanOutQueue::Redis(
                    RedisStorage::new(conn)
                        .with_config(apalis_redis::Config::default().queue(name)),
                )
            }
        }
    }

    /// Set up the queue's own tables (or nothing, for Redis) and open it.
    pub async fn open(
        db: &Db,
        redis: Option<redis::aio::ConnectionManager>,
        namespace: &str,
    ) -> Result<Queue, anyhow::Error> {
        if let Some(conn) = redis {
            let config = apalis_redis::Config::default()
                .queue(redis_queue(namespace, send_message::QUEUE))
                // Nothing subscribes to apalis' pub/sub events; publishing
                // one per push, fetch and ack only costs Redis time.
                .emit_events(false)
                // No per-task lease: apalis' lease takes each fetched job
                // off the waiting list again with LREM, a scan of the whole
                // list (the job left it when it was fetched), so every job
                // cost time in proportion to the backlog (measured: 230 µs
                // per job at a 30,000-job backlog, a third of the machine's
                // CPU). A fetched job stays in this worker's in-flight set
                // either way, and is re-enqueued from it if the worker
                // dies (heartbeats); the message's state is the record, and
                // its claim the guard against sending it twice.
                .lock_tasks(false)
                // A dead worker's fetched jobs go back to the queue when another
                // worker's heartbeat finds it silent for this long (apalis' default:
                // 10 × 30 s, five minutes in which its messages wait for nothing).
                .heartbeat_interval(std::time::Duration::from_secs(5))
                .missed_heartbeats(3);
            return Ok(Queue::Redis(RedisStorage::new(conn).with_config(config)));
        }
        if let Some(pool) = db.sqlite_pool() {
            // Not SqliteStorage::setup: it switches `synchronous` OFF, which
            // would trade away durability of the whole database file.
            SqliteStorage::<()>::migrations()
                .run(pool)
                .await
                .map_err(|e| anyhow::anyhow!("queue migrations: {e}"))?;
            steer_sqlite_planner(pool).await?;
            let config = apalis_sqlite::Config::default().queue(send_message::QUEUE);
            return Ok(Queue::Sqlite(SqliteStorage::new(pool).with_config(config)));
        }
        let pool = db
            .postgres_pool()
            .ok_or_else(|| anyhow::anyhow!("no database pool"))?;
        PostgresStorage::<()>::setup(pool)
            .await
            .map_err(|e| anyhow::anyhow!("queue migrations: {e}"))?;
        let config = apalis_postgres::Config::default().queue(send_message::QUEUE);
        Ok(Queue::Postgres(
            PostgresStorage::new(pool).with_config(config),
        ))
    }

    /// On Redis: the connection and the keys of the messages deferred for later
    /// (see [`crate::deferred`]).
    fn redis_deferred(&self) -> Option<(redis::aio::ConnectionManager, DeferredKeys)> {
        match self {
            Queue::Redis(s) => {
                let mut s = s.clone();
                let keys = DeferredKeys::beside(s.get_config().queue.as_ref());
                Some((s.get_connection().clone(), keys))
            }
            _ => None,
        }
    }

    /// On Redis, move the deferred messages that are due onto the queue (in
    /// bounded batches); how many moved. Nothing to do on the SQL backends,
    /// whose fetch takes due jobs a page at a time.
    pub async fn promote_due(&self) -> Result<usize, String> {
        let Some((mut conn, keys)) = self.redis_deferred() else {
            return Ok(0);
        };
        deferred::promote(&mut conn, &keys, Utc::now(), |ids| async move {
            let tasks = ids.into_iter().map(|message_id| {
                TaskBuilder::new(SendMessage { message_id })
                    .max_attempts(MAX_ATTEMPTS)
                    .build()
            });
            match self.clone() {
                Queue::Redis(mut s) => s
                    .push_all(futures::stream::iter(tasks))
                    .await
                    .map_err(|e| e.to_string()),
                _ => Ok(()),
            }
        })
        .await
    }

    /// On Redis, at the end of a graceful stop: the jobs this process's send workers
    /// (named `{worker_prefix}-{restarts}`) had fetched and not finished go back to the
    /// queue at once, instead of when their silence is noticed. apalis may drop a
    /// fetched job at shutdown without running it; its message is still waiting. (Run
    /// after the sends still running have finished: a job done but not yet
    /// acknowledged is pushed again, which is harmless.) How many went back.
    pub async fn release_in_flight(&self, worker_prefix: &str) -> Result<u64, String> {
        let Queue::Redis(s) = self else {
            return Ok(0);
        };
        let mut s = s.clone();
        let config = s.get_config().clone();
        let mut conn = s.get_connection().clone();
        let pattern = format!("{}:{worker_prefix}-*", config.inflight_jobs_set());
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mut moved = 0u64;
        for key in keys {
            let n: u64 = RELEASE_SCRIPT
                .key(&key)
                .key(config.active_jobs_list())
                .key(config.signal_list())
                .invoke_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            moved += n;
        }
        Ok(moved)
    }

    async fn push(&self, task: Task<SendMessage>) -> Result<(), QueueError> {
        let err = |e: String| QueueError(e);
        match self.clone() {
            Queue::Sqlite(mut s) => s.push_task(task).await.map_err(|e| err(e.to_string())),
            Queue::Postgres(mut s) => s.push_task(task).await.map_err(|e| err(e.to_string())),
            Queue::Redis(mut s) => s.push_task(task).await.map_err(|e| err(e.to_string())),
        }
    }
}

impl JobQueue for Queue {
    fn enqueue_send(
        &self,
        message_id: String,
        not_before: Option<DateTime<Utc>>,
    ) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async move {
            if let (Some(at), Some((mut conn, keys))) = (not_before, self.redis_deferred()) {
                if at > Utc::now() {
                    return deferred::defer(&mut conn, &keys, &message_id, at)
                        .await
                        .map_err(|e| QueueError(e.to_string()));
                }
            }
            let mut builder =
                TaskBuilder::new(SendMessage { message_id }).max_attempts(MAX_ATTEMPTS);
            if let Some(at) = not_before {
                let secs = at.timestamp().max(0) as u64;
                builder = builder.run_at_time(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
            }
            self.push(builder.build()).await
        })
    }

    fn enqueue_campaign(&self, campaign_id: String) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async move {
            let task = TaskBuilder::new(FanOutCampaign { campaign_id })
                .max_attempts(MAX_ATTEMPTS)
                .build();
            let err = |e: String| QueueError(e);
            match self.fan_out() {
                FanOutQueue::Sqlite(mut s) => {
                    s.push_task(task).await.map_err(|e| err(e.to_string()))
                }
                FanOutQueue::Postgres(mut s) => {
                    s.push_task(task).await.map_err(|e| err(e.to_string()))
                }
                FanOutQueue::Redis(mut s) => {
                    s.push_task(task).await.map_err(|e| err(e.to_string()))
                }
            }
        })
    }

    /// Jobs waiting in both queues (due or not yet due, and on Redis the
    /// messages deferred for later); `None` when the
    /// backend cannot be asked.
    fn depth(&self) -> BoxFuture<'_, Option<u64>> {
        Box::pin(async move {
            match self.waiting_jobs().await {
                Ok(n) => Some(n),
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the queue depth");
                    None
                }
            }
        })
    }
}

impl Queue {
    async fn waiting_jobs(&self) -> Result<u64, String> {
        let text = |e: apalis_sqlite::Error| e.to_string();
        match (self, self.fan_out()) {
            (Queue::Sqlite(send), FanOutQueue::Sqlite(fan)) => {
                Ok(pending(send.fetch_by_queue().await.map_err(text)?)
                    + pending(fan.fetch_by_queue().await.map_err(text)?))
            }
            (Queue::Postgres(send), FanOutQueue::Postgres(fan)) => {
                let text = |e: apalis_postgres::Error| e.to_string();
                Ok(pending(send.fetch_by_queue().await.map_err(text)?)
                    + pending(fan.fetch_by_queue().await.map_err(text)?))
            }
            (Queue::Redis(send), FanOutQueue::Redis(fan)) => {
                let mut conn = send.clone().get_connection().clone();
                let mut pipe = redis::pipe();
                for config in [send.get_config(), fan.get_config()] {
                    pipe.llen(config.active_jobs_list())
                        .zcard(config.scheduled_jobs_set());
                }
                let queued = pipe
                    .query_async::<Vec<u64>>(&mut conn)
                    .await
                    .map(|counts| counts.iter().sum::<u64>())
                    .map_err(|e| e.to_string())?;
                let keys = DeferredKeys::beside(send.get_config().queue.as_ref());
                let later = deferred::count(&mut conn, &keys)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(queued + later)
            }
            _ => Err("the send and fan-out queues are on different backends".into()),
        }
    }
}

/// A stopped worker's in-flight set onto the active list (one by one: Lua's `unpack`
/// has a limit), then deleted; the signal list told. KEYS: in-flight set, active
/// list, signal list.
const RELEASE: &str = r"
local ids = redis.call('SMEMBERS', KEYS[1])
for _, id in ipairs(ids) do
  redis.call('RPUSH', KEYS[2], id)
end
redis.call('DEL', KEYS[1])
if #ids > 0 then
  redis.call('DEL', KEYS[3])
  redis.call('LPUSH', KEYS[3], 1)
end
return #ids
";

static RELEASE_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(RELEASE));

/// Jobs waiting to run, from a SQL backend's per-queue statistics.
fn pending(stats: Vec<Statistic>) -> u64 {
    stats
        .iter()
        .find(|s| s.title == "PENDING_JOBS")
        .and_then(|s| s.value.parse::<f64>().ok())
        .map(|v| v.max(0.0) as u64)
        .unwrap_or(0)
}

/// apalis-sqlite acknowledges a job with `... FROM json_each(?) WHERE
/// Jobs.id = j.task_id AND Jobs.lock_by = ?`. Without statistics SQLite
/// plans it through the `lock_by` index, and every finished job keeps its
/// worker's id there, so each acknowledgement scans all the jobs that
/// worker ever ran: the queue slows down as it grows. A statistics row
/// saying `lock_by` is unselective makes SQLite look jobs up by id. Real
/// statistics (a later ANALYZE) replace it and lead to the same plan.
async fn steer_sqlite_planner(pool: &sqlx::SqlitePool) -> Result<(), anyhow::Error> {
    let has_stats: Option<(i64,)> = sqlx::query_as(
        "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'sqlite_stat1'",
    )
    .fetch_optional(pool)
    .await?;
    if has_stats.is_none() {
        // Creates sqlite_stat1 (cheap: nothing to scan but the schema).
        sqlx::query("ANALYZE sqlite_schema").execute(pool).await?;
    }
    let known: Option<(String,)> =
        sqlx::query_as("SELECT stat FROM sqlite_stat1 WHERE tbl = 'Jobs' AND idx = 'LIdx'")
            .fetch_optional(pool)
            .await?;
    if known.is_none() {
        sqlx::query(
            "INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES ('Jobs', 'LIdx', '1000000 1000000')",
        )
        .execute(pool)
        .await?;
        // Reload the statistics in every connection of the pool.
        sqlx::query("ANALYZE sqlite_schema").execute(pool).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_queues_share_the_namespace() {
        let send = redis_queue("heimdall", send_message::QUEUE);
        assert_eq!(send, "heimdall:heimdall.send_message");
        assert_eq!(
            redis_sibling(&send, fan_out_campaign::QUEUE),
            "heimdall:heimdall.fan_out_campaign"
        );
    }
}
