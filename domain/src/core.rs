//! The one context every part of Heimdall works through: settings, the
//! database, Redis when configured, the clock, the job queue, the channel
//! clients, the alerter and the limits. Built once at start-up and shared.

use std::sync::Arc;

use secrecy::ExposeSecret;

use crate::clock::SharedClock;
use crate::db::Db;
use crate::queue::JobQueue;
use crate::settings::Settings;

#[derive(Debug, Clone)]
pub struct Core {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub redis: Option<redis::aio::ConnectionManager>,
    pub clock: SharedClock,
    pub queue: Arc<dyn JobQueue>,
}

/// Connect to Redis when the settings name it.
pub async fn connect_redis(
    settings: &Settings,
) -> Result<Option<redis::aio::ConnectionManager>, redis::RedisError> {
    match &settings.redis_url {
        None => Ok(None),
        Some(url) => {
            let client = redis::Client::open(url.expose_secret())?;
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(std::time::Duration::from_secs(5)))
                .set_response_timeout(Some(std::time::Duration::from_secs(5)));
            Ok(Some(
                redis::aio::ConnectionManager::new_with_config(client, config).await?,
            ))
        }
    }
}

impl Core {
    pub fn new(
        settings: Arc<Settings>,
        db: Db,
        redis: Option<redis::aio::ConnectionManager>,
        clock: SharedClock,
        queue: Arc<dyn JobQueue>,
    ) -> Arc<Core> {
        Arc::new(Core {
            settings,
            db,
            redis,
            clock,
            queue,
        })
    }

    /// Is Redis answering (when configured)?
    pub async fn ping_redis(&self) -> Result<(), redis::RedisError> {
        match &self.redis {
            None => Ok(()),
            Some(conn) => {
                let mut conn = conn.clone();
                redis::cmd("PING").query_async::<String>(&mut conn).await.map(|_| ())
            }
        }
    }
}
