//! An event claimed once: in Redis for 24 hours (when Redis is configured)
//! and in the database, in the same transaction as the event's effects; and
//! the housekeeping that forgets old claims.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use crate::entities::processed_webhook_event;
use crate::Core;

/// How long a processed event id is remembered.
pub const DEDUP_TTL: Duration = Duration::hours(24);

fn redis_dedup_key(core: &Core, key: &str) -> String {
    format!("{}:dedup:{key}", core.settings.redis_namespace)
}

/// Claim an event id in Redis for 24 hours (when Redis is configured):
/// false when another delivery already claimed it. A claim must be
/// released with [`release`] if processing fails, so a retry or the spool
/// replay is not taken for a duplicate.
pub(super) async fn claim_redis(core: &Core, key: &str) -> bool {
    let Some(conn) = &core.redis else {
        return true;
    };
    let mut conn = conn.clone();
    let res: Result<Option<String>, _> = redis::cmd("SET")
        .arg(redis_dedup_key(core, key))
        .arg(1)
        .arg("NX")
        .arg("EX")
        .arg(DEDUP_TTL.num_seconds())
        .query_async(&mut conn)
        .await;
    match res {
        Ok(Some(_)) => true,
        Ok(None) => false,
        Err(e) => {
            tracing::warn!(error = %e, "dedup: redis unavailable, using the database");
            true
        }
    }
}

pub(super) async fn release_redis(core: &Core, key: &str) {
    if let Some(conn) = &core.redis {
        let mut conn = conn.clone();
        let res: Result<i64, _> = redis::cmd("DEL")
            .arg(redis_dedup_key(core, key))
            .query_async(&mut conn)
            .await;
        if let Err(e) = res {
            tracing::warn!(error = %e, "dedup: could not release a claim in redis");
        }
    }
}

/// Record an event id in the database (the record, and the only dedup
/// without Redis): false when it is already there and not expired. Run it
/// in the same transaction as the event's effects, so a failure leaves no
/// mark behind.
pub(super) async fn claim_db(
    db: &impl ConnectionTrait,
    key: &str,
    provider: &str,
    now: DateTime<Utc>,
) -> Result<bool, sea_orm::DbErr> {
    use sea_orm::sea_query::OnConflict;
    let key: String = key.chars().take(200).collect();
    processed_webhook_event::Entity::delete_many()
        .filter(processed_webhook_event::Column::EventKey.eq(&key))
        .filter(processed_webhook_event::Column::ExpiresAt.lt(now))
        .exec(db)
        .await?;
    let inserted = processed_webhook_event::Entity::insert(dedup_entry(&key, provider, now))
        .on_conflict(
            OnConflict::column(processed_webhook_event::Column::EventKey)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(inserted == 1)
}

/// Forget dedup entries older than 24 hours (housekeeping).
pub async fn purge_dedup(core: &Core) -> Result<u64, sea_orm::DbErr> {
    Ok(processed_webhook_event::Entity::delete_many()
        .filter(processed_webhook_event::Column::ExpiresAt.lt(core.now()))
        .exec(&core.db.conn)
        .await?
        .rows_affected)
}

pub(super) fn dedup_entry(
    key: &str,
    provider: &str,
    now: DateTime<Utc>,
) -> processed_webhook_event::ActiveModel {
    processed_webhook_event::ActiveModel {
        event_key: Set(key.chars().take(200).collect()),
        provider: Set(provider.to_string()),
        created_at: Set(now),
        expires_at: Set(now + DEDUP_TTL),
    }
}
