//! Settings (admins only): senders (activating one is an explicit, recorded
//! authorization), API keys (shown once, revocable), staff users, and the
//! run-time settings (HELP text, fallback codes, tier ladder and limit,
//! rate limits). Also automations: created by an admin, approved by an
//! approver who did not create them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::api::templates::TemplateRow;
use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::model::Role;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SenderRow {
    pub id: String,
    pub kind: String,
    pub address: String,
    pub active: bool,
    pub activated_by: Option<String>,
    pub activated_at: Option<DateTime<Utc>>,
    /// Paused after a fault of ours (63007, 131048, ...), and why: its
    /// messages wait until an admin re-activates it.
    pub paused_reason: Option<String>,
    pub paused_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyRow {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// What the key may do (scope names).
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRow {
    pub email: String,
    pub name: Option<String>,
    pub role: String,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorCodeRow {
    pub code: Option<i64>,
    pub meaning: String,
    pub action: String,
}

/// A run-time setting: what is in effect in every process, and where that
/// value comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingValue {
    pub effective: String,
    /// "the default", "from the environment", "from the settings file", or who set it in
    /// the console and when.
    pub origin: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingsView {
    pub senders: Vec<SenderRow>,
    pub api_keys: Vec<ApiKeyRow>,
    /// A key just created by this session: shown once, then gone.
    pub new_key: Option<String>,
    pub users: Vec<UserRow>,
    pub help_text: SettingValue,
    pub fallback_codes: SettingValue,
    pub tier_ladder: SettingValue,
    pub tier_limit: SettingValue,
    pub rate_per_second: SettingValue,
    pub recipient_pace_seconds: SettingValue,
    /// `HH:MM-HH:MM`, the recipient's local time.
    pub quiet_hours: SettingValue,
    /// E.164 numbers, comma separated; empty is everyone.
    pub phone_allowlist: SettingValue,
    /// Reverse proxies whose `X-Forwarded-For` is believed (comma separated).
    pub trusted_proxies: String,
    pub error_codes: Vec<ErrorCodeRow>,
    /// How long each kind of personal content is kept, and what the daily
    /// retention job purged.
    pub retention: Vec<RetentionRow>,
}

/// One kind of data retention purges, as the Settings page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetentionRow {
    pub kind: String,
    /// What it is, in words.
    pub label: String,
    /// The setting that says how long it is kept, and its value.
    pub variable: String,
    pub days: u32,
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_purged: Option<i64>,
    /// Due at the last run but left for the next (a consent not chained yet).
    pub last_deferred: Option<i64>,
    pub purged_last_30_days: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutomationRow {
    pub id: String,
    pub name: String,
    pub api_key: String,
    pub templates: Vec<String>,
    /// May reply in free text inside the 24-hour window.
    pub free_form: bool,
    pub status: String,
    pub created_by: String,
    pub approved_by: Option<String>,
    pub approved_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutomationsView {
    pub automations: Vec<AutomationRow>,
    /// Unrevoked keys an automation can be bound to (id, name and prefix).
    pub keys: Vec<ApiKeyRow>,
    pub templates: Vec<TemplateRow>,
}

#[cfg(feature = "ssr")]
mod ssr {
    use super::*;
    use crate::server::*;
    use heimdall_domain::Core;

    use heimdall_domain::settings::runtime::{RuntimeSetting, RuntimeValue};
    pub use heimdall_domain::settings::runtime_setting::limit_text;

    /// A form field read by its setting's one rule (the environment's and the
    /// stored value's too); the error names the field.
    pub fn parse(
        ctx: &Ctx,
        setting: RuntimeSetting,
        field: &str,
        text: &str,
    ) -> Result<RuntimeValue, AppError> {
        setting
            .parse(text, ctx.core().settings.default_region)
            .map_err(|m| AppError::invalid(field, capitalise(&m)))
    }

    /// Store a form field's value, read by [`parse`] first.
    pub async fn save_field(
        ctx: &Ctx,
        setting: RuntimeSetting,
        field: &str,
        text: &str,
    ) -> Result<(), AppError> {
        let value = parse(ctx, setting, field, text)?;
        save(ctx, setting.key(), field, value.stored()).await
    }

    /// A runtime setting as in force, and where it comes from.
    pub fn setting(core: &Core, key: &str, effective: String) -> SettingValue {
        use heimdall_domain::settings::runtime::Origin;
        SettingValue {
            effective,
            origin: match core.live.origin(key) {
                Origin::Configured(source) => match source {
                    heimdall_domain::settings::ValueSource::Default => "the default".into(),
                    other => format!("from the {}", other.as_str()),
                },
                Origin::Stored { by, at } => {
                    format!("set by {by} on {}", at.format("%Y-%m-%d %H:%M UTC"))
                }
            },
        }
    }

    pub fn key_row(k: heimdall_domain::access::accounts::ApiKeyInfo) -> ApiKeyRow {
        ApiKeyRow {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            created_by: k.created_by,
            created_at: k.created_at,
            revoked_at: k.revoked_at,
            last_used_at: k.last_used_at,
            scopes: k.scopes.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Store a runtime setting (every process applies it within seconds)
    /// and record who changed it.
    pub async fn save(
        ctx: &Ctx,
        key: &str,
        field: &str,
        value: serde_json::Value,
    ) -> Result<(), AppError> {
        use heimdall_domain::settings::runtime::StoreError;
        heimdall_domain::settings::runtime::store(ctx.core(), key, value.clone(), &ctx.actor())
            .await
            .map_err(|e| match e {
                StoreError::Invalid(m) => AppError::invalid(field, capitalise(&m)),
                StoreError::Db(e) => internal(e),
            })?;
        ctx.audit(
            "setting_changed",
            Some(&format!("setting:{key}")),
            Some(value),
        )
        .await
    }
}

#[server(prefix = "/_sf", endpoint = "settings_data")]
pub async fn settings_data() -> Result<SettingsView, AppError> {
    use self::ssr::*;
    use crate::server::*;
    respond(
        async move {
            let ctx = require(Role::Admin).await?;
            let core = ctx.core();
            let live = core.live.get();
            use heimdall_domain::settings::runtime::keys::*;
            let senders = heimdall_domain::access::authz::list_senders(core)
                .await
                .map_err(internal)?
                .into_iter()
                .map(|x| SenderRow {
                    id: x.id,
                    kind: x.kind,
                    address: x.address,
                    active: x.active,
                    activated_by: x.activated_by,
                    activated_at: x.activated_at,
                    paused_reason: x.paused_reason,
                    paused_at: x.paused_at,
                })
                .collect();
            let api_keys = heimdall_domain::access::accounts::list_api_keys(core)
                .await
                .map_err(internal)?
                .into_iter()
                .map(key_row)
                .collect();
            let users = heimdall_domain::access::accounts::list_users(core)
                .await
                .map_err(internal)?
                .into_iter()
                .map(|u| UserRow {
                    email: u.email,
                    name: u.name,
                    role: u.role.to_string(),
                    active: u.active,
                })
                .collect();
            let new_key = ctx
                .state
                .flash
                .take(&ctx.session.id, "api_key", core.now())
                .map(|k| secrecy::ExposeSecret::expose_secret(&k).to_string());
            let fallback: Vec<String> = live.fallback_codes.iter().map(|c| c.to_string()).collect();
            let ladder: Vec<String> = live.tier_ladder.iter().map(|l| limit_text(*l)).collect();
            let (start, end) = live.sms_hours;
            let retention = heimdall_domain::housekeeping::retention::overview(core)
                .await
                .map_err(internal)?
                .into_iter()
                .map(|r| RetentionRow {
                    kind: r.kind,
                    label: r.label,
                    variable: r.variable,
                    days: r.days,
                    last_run_at: r.last_run_at,
                    last_purged: r.last_purged,
                    last_deferred: r.last_deferred,
                    purged_last_30_days: r.purged_last_30_days,
                })
                .collect();
            Ok(SettingsView {
                retention,
                senders,
                api_keys,
                new_key,
                users,
                help_text: setting(
                    core,
                    HELP_TEXT,
                    live.help_reply(&core.settings.program_name),
                ),
                fallback_codes: setting(core, FALLBACK_CODES, fallback.join(",")),
                tier_ladder: setting(core, TIER_LADDER, ladder.join(",")),
                tier_limit: setting(core, TIER_LIMIT, limit_text(live.tier_limit)),
                rate_per_second: setting(core, RATE_PER_SECOND, live.rate_per_second.to_string()),
                recipient_pace_seconds: setting(
                    core,
                    RECIPIENT_PACE_SECONDS,
                    live.recipient_pace_seconds.to_string(),
                ),
                quiet_hours: setting(
                    core,
                    QUIET_HOURS,
                    format!("{}-{}", start.format("%H:%M"), end.format("%H:%M")),
                ),
                phone_allowlist: setting(
                    core,
                    PHONE_ALLOWLIST,
                    live.allowlist
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                trusted_proxies: heimdall_domain::optin::trusted_proxies(core)
                    .await
                    .map_err(internal)?
                    .iter()
                    .map(|ip| ip.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                error_codes: live
                    .errors
                    .entries()
                    .into_iter()
                    .map(|e| ErrorCodeRow {
                        code: e.code,
                        meaning: e.meaning,
                        action: serde_json::to_value(e.action)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default(),
                    })
                    .collect(),
            })
        }
        .await,
    )
}

/// Activate (with an explicit authorization) or deactivate a sender.
#[server(prefix = "/_sf", endpoint = "sender_set_active")]
pub async fn sender_set_active(
    #[server(default)] csrf: String,
    id: String,
    active: String,
    #[server(default)] authorize: Option<String>,
) -> Result<(), AppError> {
    use crate::server::*;
    use heimdall_domain::sending::senders::SenderError;
    respond(
        async move {
            let ctx = mutation(Role::Admin, &csrf).await?;
            let id = check_id(&id, "sender")?;
            let active = match active.as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(AppError::invalid(
                        "active",
                        "Choose activate or deactivate.",
                    ))
                }
            };
            if active && authorize.as_deref() != Some("yes") {
                return Err(AppError::invalid(
                    "authorize",
                    "Tick the box to authorize sending from this sender.",
                ));
            }
            let sender = heimdall_domain::sending::senders::set_sender_active(
                ctx.core(),
                &id,
                active,
                &ctx.actor(),
                role_to_domain(ctx.me().role),
            )
            .await
            .map_err(|e| match e {
                SenderError::NotFound(_) => AppError::NotFound("No sender with that id.".into()),
                SenderError::Forbidden => AppError::Forbidden(e.to_string()),
                SenderError::Db(e) => internal(e),
            })?;
            ctx.audit(
                if active {
                    "sender_activated"
                } else {
                    "sender_deactivated"
                },
                Some(&format!("sender:{}:{}", sender.kind, sender.address)),
                None,
            )
            .await
        }
        .await,
    )
}

/// The scopes an API key may be given, as the console offers them: the
/// scope's name, its form field (`scope_<name>`), and what it allows.
pub const API_KEY_SCOPES: [(&str, &str, &str); 10] = [
    (
        "send",
        "scope_send",
        "send messages, read their state, templates and session windows",
    ),
    (
        "reminders",
        "scope_reminders",
        "create, read and cancel reminders",
    ),
    (
        "schedules",
        "scope_schedules",
        "create, read, pause and resume recurring schedules",
    ),
    ("contacts:read", "scope_contacts_read", "read contacts"),
    (
        "contacts:write",
        "scope_contacts_write",
        "create and change contacts",
    ),
    (
        "contacts:erase",
        "scope_contacts_erase",
        "erase a person's personal data (their opt-out is kept as a keyed hash)",
    ),
    (
        "consents:read",
        "scope_consents_read",
        "read consent history and export it",
    ),
    (
        "consents:write",
        "scope_consents_write",
        "record, revoke and import consents",
    ),
    ("forms:read", "scope_forms_read", "read opt-in forms"),
    (
        "forms:write",
        "scope_forms_write",
        "create and change opt-in forms, consent texts and QR codes",
    ),
];

/// Create an API key with the ticked scopes; it is shown once, on the
/// settings page.
#[allow(clippy::too_many_arguments)]
#[server(prefix = "/_sf", endpoint = "api_key_create")]
pub async fn api_key_create(
    #[server(default)] csrf: String,
    name: String,
    #[server(default)] scope_send: Option<String>,
    #[server(default)] scope_reminders: Option<String>,
    #[server(default)] scope_schedules: Option<String>,
    #[server(default)] scope_contacts_read: Option<String>,
    #[server(default)] scope_contacts_write: Option<String>,
    #[server(default)] scope_consents_read: Option<String>,
    #[server(default)] scope_consents_write: Option<String>,
    #[server(default)] scope_forms_read: Option<String>,
    #[server(default)] scope_forms_write: Option<String>,
) -> Result<(), AppError> {
    use crate::server::*;
    respond(
        async move {
            let ctx = mutation(Role::Admin, &csrf).await?;
            let name = required("name", "A name", &name, 100)?;
            let ticked = [
                scope_send,
                scope_reminders,
                scope_schedules,
                scope_contacts_read,
                scope_contacts_write,
                scope_consents_read,
                scope_consents_write,
                scope_forms_read,
                scope_forms_write,
            ];
            let names: Vec<&str> = API_KEY_SCOPES
                .iter()
                .zip(ticked.iter())
                .filter(|(_, on)| on.as_deref().is_some_and(|v| !v.is_empty()))
                .map(|((name, _, _), _)| *name)
                .collect();
            if names.is_empty() {
                return Err(AppError::invalid(
                    "scopes",
                    "Tick at least one thing this key may do.",
                ));
            }
            let scopes = heimdall_domain::entities::api_key::Scopes::parse_list(&names.join(","))
                .map_err(|e| AppError::invalid("scopes", e))?;
            let key = heimdall_domain::access::accounts::create_api_key(
                ctx.core(),
                &name,
                &ctx.actor(),
                &scopes,
            )
            .await
            .map_err(internal)?;
            ctx.audit(
                "api_key_created",
                Some(&format!("api_key:{}", key.id)),
                Some(serde_json::json!({
                    "name": key.name,
                    "prefix": key.prefix,
                    "scopes": scopes.names(),
                })),
            )
            .await?;
            ctx.state
                .flash
                .put(&ctx.session.id, "api_key", key.key, ctx.core().now());
            Ok(())
        }
        .await,
    )
}

#[server(prefix = "/_sf", endpoint = "api_key_revoke")]
pub async fn api_key_revoke(#[server(default)] csrf: String, id: String) -> Result<(), AppError> {
    use crate::server::*;
    use heimdall_domain::access::sessions::RevokeKeyError;
    respond(
        async move {
            let ctx = mutation(Role::Admin, &csrf).await?;
            let id = check_id(&id, "API key")?;
            let ip = ctx.ip().await;
            heimdall_domain::access::sessions::revoke_api_key(
                ctx.core(),
                &id,
                &ctx.actor(),
                ip.as_deref(),
            )
            .await
            .map_err(|e| match e {
                RevokeKeyError::NotFound(_) => {
                    AppError::NotFound("No API key with that id.".into())
                }
                RevokeKeyError::AlreadyRevoked => {
                    AppError::Conflict("That key was already revoked.".into())
                }
                RevokeKeyError::Db(e) => internal(e),
            })
        }
        .await,
    )
}

/// Change a staff account (admins only): `action` is `deactivate`,
/// `reactivate`, `role` (with `role`) or `password` (with `password`). The
/// person's sessions end when they lose access, change role or get a new
/// password; at least one active admin always remains; recorded.
#[server(prefix = "/_sf", endpoint = "staff_update")]
pub async fn staff_update(
    #[server(default)] csrf: String,
    email: String,
    action: String,
    #[server(default)] role: Option<String>,
    #[server(default)] password: Option<String>,
) -> Result<(), AppError> {
    use crate::server::*;
    use heimdall_domain::access::accounts::{AccountError, StaffChange};
    respond(
        async move {
            let ctx = mutation(Role::Admin, &csrf).await?;
            let change = match action.as_str() {
                "deactivate" => StaffChange::Deactivate,
                "reactivate" => StaffChange::Reactivate,
                "role" => StaffChange::Role(
                    role.unwrap_or_default()
                        .parse()
                        .map_err(|e: String| AppError::invalid("role", e))?,
                ),
                "password" => {
                    StaffChange::Password(secrecy::SecretString::from(password.unwrap_or_default()))
                }
                _ => return Err(AppError::invalid("action", "Choose what to change.")),
            };
            heimdall_domain::access::accounts::change_staff(
                ctx.core(),
                Some(ctx.user()),
                &email,
                change,
            )
            .await
            .map(|_| ())
            .map_err(|e| match e {
                AccountError::NoSuchUser(_) => AppError::NotFound(capitalise(&e.to_string())),
                AccountError::LastAdmin => AppError::Conflict(capitalise(&e.to_string())),
                AccountError::WeakPassword => {
                    AppError::invalid("password", capitalise(&e.to_string()))
                }
                AccountError::NotAdmin => AppError::Forbidden(capitalise(&e.to_string())),
                other => internal(other),
            })
        }
        .await,
    )
}

/// Create a staff account with a role.
#[server(prefix = "/_sf", endpoint = "user_create")]
pub async fn user_create(
    #[server(default)] csrf: String,
    email: String,
    #[server(default)] name: Option<String>,
    role: String,
    password: String,
) -> Result<(), AppError> {
    use crate::server::*;
    use heimdall_domain::access::accounts::AccountError;
    respond(
        async move {
            let ctx = mutation(Role::Admin, &csrf).await?;
            let role: heimdall_domain::access::accounts::Role = role
                .parse()
                .map_err(|e: String| AppError::invalid("role", e))?;
            let password = secrecy::SecretString::from(password);
            let user = heimdall_domain::access::accounts::create_user(
                ctx.core(),
                &email,
                optional(name),
                role,
                &password,
            )
            .await
            .map_err(|e| match e {
                AccountError::InvalidEmail(_) | AccountError::Exists(_) => {
                    AppError::invalid("email", e.to_string())
                }
                AccountError::WeakPassword => AppError::invalid("password", e.to_string()),
                other => internal(other),
            })?;
            ctx.audit(
                "staff_user_created",
                Some(&format!("staff_user:{}", user.id)),
                Some(serde_json::json!({ "email": user.email, "role": user.role.as_str() })),
            )
            .await
        }
        .await,
    )
}

/// The HELP reply text (applies in every process within seconds).
#[server(prefix = "/_sf", endpoint = "help_text_save")]
pub async fn help_text_save(
    #[server(default)] csrf: String,
    help_text: String,
) -> Result<(), AppError> {
    use self::ssr::*;
    use crate::server::*;
    use heimdall_domain::settings::runtime::RuntimeSetting;
    respond(
        async move {
            let ctx = mutation(Role::Admin, &csrf).await?;
            let text = required("help_text", "The HELP reply", &help_text, 1000)?;
            save_field(&ctx, RuntimeSetting::HelpText, "help_text", &text).await
        }
        .await,
    )
}

/// Error codes that fall back to SMS.
#[server(prefix = "/_sf", endpoint = "fallback_codes_save")]
pub async fn fallback_codes_save(
    #[server(default)] csrf: String,
    codes: String,
) -> Result<(), AppError> {
    use self::ssr::*;
    use crate::server::*;
    use heimdall_domain::settings::runtime::RuntimeSetting;
    respond(
        async move {
            let ctx = mutation(Role::Admin, &csrf).await?;
            save_field(&ctx, RuntimeSetting::FallbackCodes, "codes", &codes).await
        }
        .await,
    )
}

/// The tier ladder and the current tier limit.
#[server(prefix = "/_sf", endpoint = "tier_save")]
pub async fn tier_save(
    #[server(default)] csrf: String,
    ladder: String,
    limit: String,
) -> Result<(), AppError> {
    use self::ssr::*;
    use crate::server::*;
    use heimdall_domain::settings::runtime::keys::TIER_LADDER;
    use heimdall_domain::settings::runtime::{RuntimeSetting, RuntimeValue};
    respond(
        async move {
            let ctx = mutation(Role::Admin, &csrf).await?;
            // Both read by the domain's one rule before either is saved.
            let steps = parse(&ctx, RuntimeSetting::TierLadder, "ladder", &ladder)?;
            let limit = heimdall_domain::settings::runtime_setting::parse_tier_limit(&limit)
                .map_err(|m| AppError::invalid("limit", capitalise(&m)))?;
            let live = ctx.core().live.get();
            if steps != RuntimeValue::TierLadder(live.tier_ladder.clone()) {
                save(&ctx, TIER_LADDER, "ladder", steps.stored()).await?;
            }
            if limit != live.tier_limit {
                heimdall_domain::inbound::set_tier_limit(ctx.core(), limit, &ctx.actor())
                    .await
                    .map_err(internal)?;
                ctx.audit(
                    "tier_limit_changed",
                    Some("setting:tier_limit"),
                    Some(serde_json::json!({ "limit": limit })),
                )
                .await?;
            }
            Ok(())
        }
        .await,
    )
}

/// Sender rate and per-recipient pace.
#[server(prefix = "/_sf", endpoint = "rates_save")]
pub async fn rates_save(
    #[server(default)] csrf: String,
    rate_per_second: String,
    recipient_pace_seconds: String,
) -> Result<(), AppError> {
    use self::ssr::*;
    use crate::server::*;
    use heimdall_domain::settings::runtime::keys::{RATE_PER_SECOND, RECIPIENT_PACE_SECONDS};
    use heimdall_domain::settings::runtime::{RuntimeSetting, RuntimeValue};
    respond(
        async move {
            let ctx = mutation(Role::Admin, &csrf).await?;
            // Both read by the domain's one rule before either is saved.
            let rate = parse(
                &ctx,
                RuntimeSetting::RatePerSecond,
                "rate_per_second",
                &rate_per_second,
            )?;
            let pace = parse(
                &ctx,
                RuntimeSetting::RecipientPaceSeconds,
                "recipient_pace_seconds",
                &recipient_pace_seconds,
            )?;
            let live = ctx.core().live.get();
            if rate != RuntimeValue::RatePerSecond(live.rate_per_second) {
                save(&ctx, RATE_PER_SECOND, "rate_per_second", rate.stored()).await?;
            }
            if pace != RuntimeValue::RecipientPaceSeconds(live.recipient_pace_seconds) {
                save(
                    &ctx,
                    RECIPIENT_PACE_SECONDS,
                    "recipient_pace_seconds",
                    pace.stored(),
                )
                .await?;
            }
            Ok(())
        }
        .await,
    )
}

/// When SMS may be sent, the recipient's local time (`HH:MM-HH:MM`).
#[server(prefix = "/_sf", endpoint = "quiet_hours_save")]
pub async fn quiet_hours_save(
    #[server(default)] csrf: String,
    quiet_hours: String,
) -> Result<(), AppError> {
    use self::ssr::*;
    use crate::server::*;
    use heimdall_domain::settings::runtime::RuntimeSetting;
    respond(
        async move {
            let ctx = mutation(Role::Admin, &csrf).await?;
            let hours = required("quiet_hours", "The sending hours", &quiet_hours, 20)?;
            save_field(&ctx, RuntimeSetting::QuietHours, "quiet_hours", &hours).await
        }
        .await,
    )
}

/// The phone allowlist: when set, nothing is sent to any other number.
#[server(prefix = "/_sf", endpoint = "allowlist_save")]
pub async fn allowlist_save(
    #[server(default)] csrf: String,
    allowlist: String,
) -> Result<(), AppError> {
    use self::ssr::*;
    use crate::server::*;
    use heimdall_domain::settings::runtime::RuntimeSetting;
    respond(
        async move {
            let ctx = mutation(Role::Admin, &csrf).await?;
            if allowlist.chars().count() > 20_000 {
                return Err(AppError::invalid(
                    "allowlist",
                    "The allowlist is too long (at most 20,000 characters).",
                ));
            }
            save_field(
                &ctx,
                RuntimeSetting::PhoneAllowlist,
                "allowlist",
                &allowlist,
            )
            .await
        }
        .await,
    )
}

/// The reverse proxies whose `X-Forwarded-For` is believed (applies at
/// once): opt-in evidence and sign-in throttling then see the visitor's
/// address instead of the proxy's.
#[server(prefix = "/_sf", endpoint = "proxies_save")]
pub async fn proxies_save(
    #[server(default)] csrf: String,
    proxies: String,
) -> Result<(), AppError> {
    use crate::server::*;
    respond(
        async move {
            let ctx = mutation(Role::Admin, &csrf).await?;
            let mut list = Vec::new();
            for part in proxies
                .split([',', ' ', '\n'])
                .map(str::trim)
                .filter(|p| !p.is_empty())
            {
                let ip: std::net::IpAddr = part.parse().map_err(|_| {
                    AppError::invalid("proxies", format!("'{part}' is not an IP address."))
                })?;
                list.push(ip);
            }
            heimdall_domain::optin::set_trusted_proxies(ctx.core(), &list, &ctx.actor())
                .await
                .map_err(internal)
        }
        .await,
    )
}

// ---------------------------------------------------------------------------
// Automations

#[server(prefix = "/_sf", endpoint = "automations_data")]
pub async fn automations_data() -> Result<AutomationsView, AppError> {
    use self::ssr::*;
    use crate::server::*;
    respond(
        async move {
            let ctx = require(Role::Viewer).await?;
            let core = ctx.core();
            let keys: Vec<ApiKeyRow> = heimdall_domain::access::accounts::list_api_keys(core)
                .await
                .map_err(internal)?
                .into_iter()
                .map(key_row)
                .collect();
            let key_label = |id: &str| {
                keys.iter()
                    .find(|k| k.id == id)
                    .map(|k| format!("{} ({}…)", k.name, k.prefix))
                    .unwrap_or_else(|| id.to_string())
            };
            let automations = heimdall_domain::access::authz::list_automations(core)
                .await
                .map_err(internal)?
                .into_iter()
                .map(|a| AutomationRow {
                    api_key: key_label(&a.api_key_id),
                    id: a.id,
                    name: a.name,
                    templates: a.templates,
                    free_form: a.free_form,
                    status: a.status,
                    created_by: a.created_by,
                    approved_by: a.approved_by,
                    approved_at: a.approved_at,
                })
                .collect();
            let templates = heimdall_domain::templates::list(core)
                .await
                .map_err(internal)?
                .into_iter()
                .filter(|t| t.approval_status.is_approved())
                .map(crate::api::templates::row)
                .collect();
            Ok(AutomationsView {
                automations,
                keys: keys
                    .into_iter()
                    .filter(|k| k.revoked_at.is_none())
                    .collect(),
                templates,
            })
        }
        .await,
    )
}

/// Bind an API key to templates and, when asked, to free-form replies inside the window
/// (admin); an approver must then approve it.
#[server(prefix = "/_sf", endpoint = "automation_create")]
pub async fn automation_create(
    #[server(default)] csrf: String,
    name: String,
    api_key_id: String,
    #[server(default)] tpl: BTreeMap<String, String>,
    /// The checkbox: present (any value) when ticked.
    #[server(default)]
    free_form: Option<String>,
) -> Result<(), AppError> {
    use crate::server::*;
    use heimdall_domain::access::authz::AutomationError;
    respond(
        async move {
            let ctx = mutation(Role::Admin, &csrf).await?;
            let name = required("name", "A name", &name, 200)?;
            let key = check_id(&api_key_id, "API key")
                .map_err(|_| AppError::invalid("api_key_id", "Choose an API key."))?;
            let templates: Vec<String> = tpl.into_keys().collect();
            let free_form = free_form.is_some();
            let a = heimdall_domain::access::authz::create_automation(
                ctx.core(),
                &name,
                &key,
                &templates,
                free_form,
                &ctx.actor(),
            )
            .await
            .map_err(|e| match e {
                AutomationError::NoTemplates | AutomationError::UnknownTemplate(_) => {
                    AppError::invalid("templates", capitalise(&e.to_string()))
                }
                AutomationError::NoKey(_) => AppError::invalid("api_key_id", "Choose an API key."),
                AutomationError::Db(e) => internal(e),
                other => AppError::Conflict(capitalise(&other.to_string())),
            })?;
            ctx.audit(
                "automation_created",
                Some(&format!("automation:{}", a.id)),
                Some(serde_json::json!({
                    "name": a.name,
                    "templates": a.templates,
                    "free_form": a.free_form,
                })),
            )
            .await
        }
        .await,
    )
}

/// Approve an automation: an approver who did not create it.
#[server(prefix = "/_sf", endpoint = "automation_approve")]
pub async fn automation_approve(
    #[server(default)] csrf: String,
    id: String,
) -> Result<(), AppError> {
    use crate::server::*;
    use heimdall_domain::access::authz::AutomationError;
    respond(
        async move {
            let ctx = mutation(Role::Approver, &csrf).await?;
            let id = check_id(&id, "automation")?;
            let a = heimdall_domain::access::authz::approve_automation(
                ctx.core(),
                &id,
                &ctx.actor(),
                role_to_domain(ctx.me().role),
            )
            .await
            .map_err(|e| match e {
                AutomationError::NotFound(_) => {
                    AppError::NotFound("No automation with that id.".into())
                }
                AutomationError::SelfApproval | AutomationError::Forbidden => {
                    AppError::Forbidden(capitalise(&e.to_string()))
                }
                AutomationError::Db(e) => internal(e),
                other => AppError::Conflict(capitalise(&other.to_string())),
            })?;
            ctx.audit(
                "automation_approved",
                Some(&format!("automation:{}", a.id)),
                Some(serde_json::json!({
                    "name": a.name,
                    "templates": a.templates,
                    "free_form": a.free_form,
                })),
            )
            .await
        }
        .await,
    )
}
