//! Settings that admins change at run time (HELP text, fallback codes, tier
//! limit, rate limits), stored in `app_settings` as JSON. The environment
//! gives the defaults; a stored value wins.

use sea_orm::{ActiveModelTrait, EntityTrait, Set};

use crate::entities::app_setting;
use crate::Core;

pub async fn get(core: &Core, key: &str) -> Result<Option<serde_json::Value>, sea_orm::DbErr> {
    Ok(app_setting::Entity::find_by_id(key)
        .one(&core.db.conn)
        .await?
        .and_then(|m| serde_json::from_str(&m.value).ok()))
}

pub async fn put(
    core: &Core,
    key: &str,
    value: &serde_json::Value,
    actor: &str,
) -> Result<(), sea_orm::DbErr> {
    let now = core.now();
    let existing = app_setting::Entity::find_by_id(key)
        .one(&core.db.conn)
        .await?;
    match existing {
        Some(m) => {
            let mut am: app_setting::ActiveModel = m.into();
            am.value = Set(value.to_string());
            am.updated_by = Set(actor.to_string());
            am.updated_at = Set(now);
            am.update(&core.db.conn).await?;
        }
        None => {
            app_setting::ActiveModel {
                key: Set(key.to_string()),
                value: Set(value.to_string()),
                updated_by: Set(actor.to_string()),
                updated_at: Set(now),
            }
            .insert(&core.db.conn)
            .await?;
        }
    }
    Ok(())
}

/// Apply stored overrides at start-up (tier limit).
pub async fn apply(core: &Core) -> Result<(), sea_orm::DbErr> {
    if let Some(v) = get(core, "tier_limit").await? {
        core.limits.set_tier_limit(v.as_u64());
    }
    Ok(())
}
