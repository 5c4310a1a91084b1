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

/// Apply what admins saved in the console over the environment's values,
/// before the core is built (the rate limiter, the error table and the
/// keyword replies are made from the settings). Returns the keys applied.
/// A stored value that no longer parses is skipped with a warning.
pub async fn apply_to_settings(
    db: &crate::db::Db,
    settings: &mut crate::settings::Settings,
) -> Result<Vec<String>, sea_orm::DbErr> {
    let mut applied = Vec::new();
    for row in app_setting::Entity::find().all(&db.conn).await? {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&row.value) else {
            continue;
        };
        let ok = match row.key.as_str() {
            "help_text" => value
                .as_str()
                .filter(|s| !s.trim().is_empty())
                .map(|s| settings.help_text = Some(s.to_string()))
                .is_some(),
            "fallback_codes" => value
                .as_array()
                .and_then(|a| a.iter().map(|v| v.as_i64()).collect::<Option<Vec<i64>>>())
                .map(|codes| settings.fallback_codes = codes)
                .is_some(),
            "tier_ladder" => value
                .as_array()
                .and_then(|a| {
                    a.iter()
                        .map(|v| match v.as_str() {
                            Some(s) if s.eq_ignore_ascii_case("unlimited") => Some(None),
                            Some(s) => s.parse::<u64>().ok().map(Some),
                            None => v.as_u64().map(Some),
                        })
                        .collect::<Option<Vec<Option<u64>>>>()
                })
                .filter(|l| !l.is_empty())
                .map(|ladder| settings.tier_ladder = ladder)
                .is_some(),
            "rate_per_second" => value
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n > 0)
                .map(|n| settings.rate_per_second = n)
                .is_some(),
            "recipient_pace_seconds" => value
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(|n| settings.recipient_pace_seconds = n)
                .is_some(),
            // Applied once the core exists (see `apply`), or not a setting.
            _ => continue,
        };
        if ok {
            applied.push(row.key);
        } else {
            tracing::warn!(key = %row.key, "a stored setting no longer parses; the environment's value is used");
        }
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use crate::testing::TestEnv;

    #[tokio::test]
    async fn stored_values_override_the_environment() {
        let env = TestEnv::new(&[]).await;
        for (k, v) in [
            ("help_text", serde_json::json!("Call us at 555.")),
            ("fallback_codes", serde_json::json!([63007])),
            ("tier_ladder", serde_json::json!(["1000", "unlimited"])),
            ("rate_per_second", serde_json::json!(20)),
            ("recipient_pace_seconds", serde_json::json!(3)),
            ("rate_per_second_broken", serde_json::json!("x")),
        ] {
            super::put(&env.core, k, &v, "admin").await.unwrap();
        }
        let mut settings = (*env.core.settings).clone();
        let applied = super::apply_to_settings(&env.core.db, &mut settings)
            .await
            .unwrap();
        assert_eq!(applied.len(), 5, "{applied:?}");
        assert_eq!(settings.help_reply(), "Call us at 555.");
        assert_eq!(settings.fallback_codes, vec![63007]);
        assert_eq!(settings.tier_ladder, vec![Some(1000), None]);
        assert_eq!(settings.rate_per_second, 20);
        assert_eq!(settings.recipient_pace_seconds, 3);
    }
}
