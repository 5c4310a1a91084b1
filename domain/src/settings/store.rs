//! The `app_settings` rows: values stored as JSON by the console (runtime
//! settings, applied by [`crate::settings::runtime`]) and by Heimdall itself (the
//! tier limit Meta reports, the trusted proxies).

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
