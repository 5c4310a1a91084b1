//! The apalis storages behind [`heimdall_domain::queue::JobQueue`]:
//! SQLite or PostgreSQL (the same database as the record) by default,
//! Redis when `HEIMDALL_REDIS_URL` is set.

use std::time::{Duration, SystemTime};

use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
use apalis_redis::RedisStorage;
use apalis_sqlite::SqliteStorage;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use heimdall_domain::queue::{JobQueue, QueueError};
use heimdall_domain::Db;

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

impl Queue {
    /// Set up the queue's own tables (or nothing, for Redis) and open it.
    pub async fn open(
        db: &Db,
        redis: Option<redis::aio::ConnectionManager>,
        namespace: &str,
    ) -> Result<Queue, anyhow::Error> {
        if let Some(conn) = redis {
            let config = apalis_redis::Config::default()
                .queue(format!("{namespace}:{}", send_message::QUEUE));
            return Ok(Queue::Redis(RedisStorage::new(conn).with_config(config)));
        }
        if let Some(pool) = db.sqlite_pool() {
            // Not SqliteStorage::setup: it switches `synchronous` OFF, which
            // would trade away durability of the whole database file.
            SqliteStorage::<()>::migrations()
                .run(pool)
                .await
                .map_err(|e| anyhow::anyhow!("queue migrations: {e}"))?;
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
            let mut builder =
                TaskBuilder::new(SendMessage { message_id }).max_attempts(MAX_ATTEMPTS);
            if let Some(at) = not_before {
                let secs = at.timestamp().max(0) as u64;
                builder = builder.run_at_time(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
            }
            self.push(builder.build()).await
        })
    }

    fn enqueue_campaign(&self, _campaign_id: String) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async { Ok(()) })
    }

    fn depth(&self) -> BoxFuture<'_, Option<u64>> {
        Box::pin(async { None })
    }
}
