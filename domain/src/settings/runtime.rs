//! The settings an admin changes while Heimdall runs (HELP text, fallback
//! codes, rates, pace, tier ladder and limit, quiet hours, phone
//! allowlist), as every process sees them now.
//!
//! The environment gives the defaults; a value stored in `app_settings`
//! (by the console, or by Meta's tier update) wins. Every process re-reads
//! the table every [`REFRESH`] and applies what changed, so a change made
//! in one process takes effect in all of them within seconds, with no
//! restart. Polling the database was chosen over Redis pub/sub: it works
//! on every backend (SQLite too), it cannot miss a change (a subscriber
//! that reconnects has lost the messages sent meanwhile; a poll reads the
//! state itself), and the table is a few rows, so a read a second costs
//! nothing measurable.
//!
//! The same loop shares "a STOP is waiting in a local spool" across
//! processes through Redis (see [`crate::store::spool::spool_pending`]).
//!
//! This module must never accept a stored value that does not parse: such
//! a row is skipped with a warning and the environment's value stands.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, NaiveTime, Utc};
use sea_orm::EntityTrait;

use crate::compliance::gates::Policy;
use crate::compliance::provider_errors::ErrorTable;
use crate::entities::app_setting;
pub use crate::settings::runtime_setting::{RuntimeSetting, RuntimeValue};
use crate::settings::Settings;
use crate::Core;

/// How often every process re-reads the stored settings.
pub const REFRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// The keys in `app_settings`.
pub mod keys {
    pub const HELP_TEXT: &str = "help_text";
    pub const FALLBACK_CODES: &str = "fallback_codes";
    pub const TIER_LADDER: &str = "tier_ladder";
    pub const TIER_LIMIT: &str = "tier_limit";
    pub const RATE_PER_SECOND: &str = "rate_per_second";
    pub const RECIPIENT_PACE_SECONDS: &str = "recipient_pace_seconds";
    pub const QUIET_HOURS: &str = "quiet_hours";
    pub const PHONE_ALLOWLIST: &str = "phone_allowlist";
}

/// The runtime settings in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Runtime {
    /// The HELP reply; `None` is the compliant default.
    pub help_text: Option<String>,
    pub fallback_codes: Vec<i64>,
    /// The error table with the fallback set applied.
    pub errors: ErrorTable,
    pub tier_ladder: Vec<Option<u64>>,
    /// The current messaging tier; `None` is unlimited.
    pub tier_limit: Option<u64>,
    pub rate_per_second: u32,
    pub recipient_pace_seconds: u32,
    /// When SMS may be sent, the recipient's local time.
    pub sms_hours: (NaiveTime, NaiveTime),
    /// E.164 numbers; empty is everyone.
    pub allowlist: Arc<BTreeSet<String>>,
}

/// Where a runtime setting's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Configured: the environment, `heimdall.toml`, or the built-in default.
    Configured(crate::settings::ValueSource),
    /// Stored by someone (an admin in the console, Meta's tier update).
    Stored { by: String, at: DateTime<Utc> },
}

impl Runtime {
    /// The built-in defaults (the README's table).
    pub fn defaults() -> Runtime {
        let fallback_codes = crate::compliance::provider_errors::DEFAULT_FALLBACK_CODES.to_vec();
        let hour = |h| NaiveTime::from_hms_opt(h, 0, 0).expect("a whole hour is a time");
        Runtime {
            help_text: None,
            errors: ErrorTable::new().with_fallback_codes(&fallback_codes),
            fallback_codes,
            tier_ladder: vec![Some(250), Some(2000), Some(10_000), Some(100_000), None],
            tier_limit: Some(250),
            rate_per_second: 80,
            recipient_pace_seconds: 6,
            sms_hours: (hour(8), hour(21)),
            allowlist: Arc::new(BTreeSet::new()),
        }
    }

    /// The values the environment gives.
    pub fn from_settings(s: &Settings) -> Runtime {
        Runtime {
            help_text: s.help_text.clone(),
            fallback_codes: s.fallback_codes.clone(),
            errors: ErrorTable::new().with_fallback_codes(&s.fallback_codes),
            tier_ladder: s.tier_ladder.clone(),
            tier_limit: s.tier_limit,
            rate_per_second: s.rate_per_second,
            recipient_pace_seconds: s.recipient_pace_seconds,
            sms_hours: s.sms_hours,
            allowlist: Arc::new(s.phone_allowlist.iter().cloned().collect()),
        }
    }

    /// Apply one stored value; an error says why it does not parse (and
    /// nothing changed). Read by the one rule of each setting,
    /// [`RuntimeSetting::read_stored`].
    pub fn apply(
        &mut self,
        key: &str,
        value: &serde_json::Value,
        region: phonenumber::country::Id,
    ) -> Result<(), String> {
        self.set(RuntimeSetting::read(key, value, region)?);
        Ok(())
    }

    /// Put a parsed value in force.
    pub fn set(&mut self, value: RuntimeValue) {
        match value {
            RuntimeValue::HelpText(t) => self.help_text = Some(t),
            RuntimeValue::FallbackCodes(codes) => {
                self.errors = ErrorTable::new().with_fallback_codes(&codes);
                self.fallback_codes = codes;
            }
            RuntimeValue::TierLadder(steps) => self.tier_ladder = steps,
            RuntimeValue::TierLimit(limit) => self.tier_limit = limit,
            RuntimeValue::RatePerSecond(n) => self.rate_per_second = n,
            RuntimeValue::RecipientPaceSeconds(n) => self.recipient_pace_seconds = n,
            RuntimeValue::QuietHours(hours) => self.sms_hours = hours,
            RuntimeValue::PhoneAllowlist(set) => self.allowlist = Arc::new(set),
        }
    }

    /// The gates' rules that are settings.
    pub fn policy(&self) -> Policy {
        Policy {
            sms_hours: self.sms_hours,
            allowlist: (!self.allowlist.is_empty()).then(|| self.allowlist.clone()),
        }
    }

    /// Is this E.164 number allowed to receive anything?
    pub fn allows(&self, e164: &str) -> bool {
        self.allowlist.is_empty() || self.allowlist.contains(e164)
    }

    /// The HELP reply: the configured text or a compliant default.
    pub fn help_reply(&self, program: &str) -> String {
        self.help_text.clone().unwrap_or_else(|| {
            format!(
                "{program}: account alerts and reminders. Reply STOP to unsubscribe, START to resubscribe. \
                 Msg frequency varies. Msg & data rates may apply. Help: reply HELP or contact your account team."
            )
        })
    }
}

/// One `app_settings` row as last read.
type Row = (String, String, String, DateTime<Utc>);

/// The runtime settings of one process: the environment's values, the
/// stored rows last applied, and what is in force.
#[derive(Debug)]
pub struct Live {
    base: Runtime,
    region: phonenumber::country::Id,
    current: RwLock<Arc<Runtime>>,
    /// Where each stored value came from (key -> origin).
    origins: RwLock<std::collections::BTreeMap<String, Origin>>,
    seen: Mutex<Option<Vec<Row>>>,
    /// Where each key's configured value comes from (key -> source).
    configured: std::collections::BTreeMap<String, crate::settings::ValueSource>,
}

impl Live {
    pub fn new(settings: &Settings) -> Live {
        let base = Runtime::from_settings(settings);
        Live {
            current: RwLock::new(Arc::new(base.clone())),
            base,
            region: settings.default_region,
            origins: RwLock::new(Default::default()),
            seen: Mutex::new(None),
            configured: RuntimeSetting::ALL
                .iter()
                .map(|setting| {
                    (
                        setting.key().to_string(),
                        settings
                            .runtime_sources
                            .get(setting.variable())
                            .copied()
                            .unwrap_or(crate::settings::ValueSource::Default),
                    )
                })
                .collect(),
        }
    }

    /// The settings in force now (cheap: an `Arc` clone under a read lock).
    pub fn get(&self) -> Arc<Runtime> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Where `key`'s value in force comes from.
    pub fn origin(&self, key: &str) -> Origin {
        self.origins
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
            .unwrap_or_else(|| {
                Origin::Configured(
                    self.configured
                        .get(key)
                        .copied()
                        .unwrap_or(crate::settings::ValueSource::Default),
                )
            })
    }

    /// Rebuild from the environment's values and these rows; `true` when
    /// something changed.
    fn apply_rows(&self, rows: Vec<Row>) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.as_ref() == Some(&rows) {
            return false;
        }
        let mut next = self.base.clone();
        let mut origins = std::collections::BTreeMap::new();
        for (key, value, by, at) in &rows {
            if RuntimeSetting::from_key(key).is_none() {
                continue;
            }
            let parsed = serde_json::from_str::<serde_json::Value>(value)
                .map_err(|e| e.to_string())
                .and_then(|v| next.apply(key, &v, self.region));
            match parsed {
                Ok(()) => {
                    origins.insert(
                        key.clone(),
                        Origin::Stored {
                            by: by.clone(),
                            at: *at,
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(key = %key, error = %e, "a stored setting does not parse; the environment's value is used")
                }
            }
        }
        *seen = Some(rows);
        let changed = *self.get() != next;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        *self.origins.write().unwrap_or_else(|e| e.into_inner()) = origins;
        changed
    }
}

/// Read the stored settings and apply what changed (to [`Live`] and to the
/// limits built from it). `true` when something changed.
pub async fn refresh(core: &Core) -> Result<bool, sea_orm::DbErr> {
    let mut rows: Vec<Row> = app_setting::Entity::find()
        .all(&core.db.conn)
        .await?
        .into_iter()
        .map(|r| (r.key, r.value, r.updated_by, r.updated_at))
        .collect();
    rows.sort();
    let changed = core.live.apply_rows(rows);
    if changed {
        let now = core.live.get();
        core.limits.set_tier_limit(now.tier_limit);
        core.limits.set_default_rate(now.rate_per_second);
        core.limits.set_pace_seconds(now.recipient_pace_seconds);
        tracing::info!("runtime settings changed; applied");
    }
    Ok(changed)
}

/// Store a runtime setting (read by its rule first, [`RuntimeSetting::read`], so a
/// value that would not parse is refused and nothing is stored), record
/// who changed it, and apply it in this process at once (the others follow
/// within [`REFRESH`]).
pub async fn store(
    core: &Core,
    key: &str,
    value: serde_json::Value,
    actor: &str,
) -> Result<(), StoreError> {
    RuntimeSetting::read(key, &value, core.settings.default_region).map_err(StoreError::Invalid)?;
    let before = crate::settings::store::get(core, key).await?;
    crate::settings::store::put(core, key, &value, actor).await?;
    crate::audit::record_infra_change(
        &core.db.conn,
        actor,
        key,
        "setting changed (applies in every process within seconds)",
        before,
        Some(value),
        core.now(),
    )
    .await?;
    refresh(core).await?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestEnv;

    #[tokio::test]
    async fn a_stored_value_applies_and_a_broken_one_is_skipped() {
        let env = TestEnv::new(&[]).await;
        let core = &env.core;
        for (k, v) in [
            (
                keys::HELP_TEXT,
                serde_json::json!("Call us at 555. Reply STOP to opt out."),
            ),
            (keys::FALLBACK_CODES, serde_json::json!([63003])),
            (keys::TIER_LADDER, serde_json::json!(["1000", "unlimited"])),
            (keys::RATE_PER_SECOND, serde_json::json!(20)),
            (keys::RECIPIENT_PACE_SECONDS, serde_json::json!(3)),
            (keys::QUIET_HOURS, serde_json::json!("09:00-20:00")),
            (keys::PHONE_ALLOWLIST, serde_json::json!(["+4791234567"])),
            (keys::TIER_LIMIT, serde_json::json!(1000)),
        ] {
            crate::settings::store::put(core, k, &v, "admin@example.com")
                .await
                .unwrap();
        }
        // A row that does not parse is skipped, the rest apply.
        crate::settings::store::put(core, keys::RATE_PER_SECOND, &serde_json::json!("x"), "a")
            .await
            .unwrap();
        assert!(refresh(core).await.unwrap());
        let now = core.live.get();
        assert_eq!(
            now.help_reply("X"),
            "Call us at 555. Reply STOP to opt out."
        );
        assert_eq!(now.fallback_codes, vec![63003]);
        assert_eq!(now.tier_ladder, vec![Some(1000), None]);
        assert_eq!(now.tier_limit, Some(1000));
        assert_eq!(core.limits.tier_limit(), Some(1000));
        assert_eq!(now.rate_per_second, core.settings.rate_per_second);
        assert_eq!(now.recipient_pace_seconds, 3);
        assert_eq!(core.limits.pace().num_seconds(), 3);
        assert_eq!(now.sms_hours.0.to_string(), "09:00:00");
        assert!(now.allows("+4791234567"));
        assert!(!now.allows("+4791234568"));
        assert!(now.policy().allowlist.is_some());
        assert!(matches!(
            core.live.origin(keys::QUIET_HOURS),
            Origin::Stored { ref by, .. } if by == "admin@example.com"
        ));
        assert_eq!(
            core.live.origin(keys::RATE_PER_SECOND),
            Origin::Configured(crate::settings::ValueSource::Default)
        );
        // Nothing changed since: no work.
        assert!(!refresh(core).await.unwrap());
    }

    #[tokio::test]
    async fn store_refuses_what_does_not_parse_and_changes_nothing() {
        let env = TestEnv::new(&[]).await;
        let core = &env.core;
        for (k, v) in [
            (keys::HELP_TEXT, serde_json::json!("no opt-out words here")),
            (keys::QUIET_HOURS, serde_json::json!("21:00-08:00")),
            (keys::PHONE_ALLOWLIST, serde_json::json!(["not a number"])),
            (keys::RATE_PER_SECOND, serde_json::json!(0)),
            ("no_such_setting", serde_json::json!(1)),
        ] {
            let e = store(core, k, v, "admin").await.unwrap_err();
            assert!(matches!(e, StoreError::Invalid(_)), "{k}: {e}");
            assert_eq!(crate::settings::store::get(core, k).await.unwrap(), None);
        }
        store(
            core,
            keys::QUIET_HOURS,
            serde_json::json!("09:30-20:00"),
            "admin",
        )
        .await
        .unwrap();
        assert_eq!(core.live.get().sms_hours.0.to_string(), "09:30:00");
    }
}
