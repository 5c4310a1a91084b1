//! [`Settings`] built from the raw values: every value parsed and checked
//! (a bad one names its setting), the providers' groups assembled, and the
//! parsers the runtime settings share.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::{
    invalid, MetaSettings, SandboxMode, Settings, SettingsError, Source, TwilioSettings,
    WhatsAppProvider, RUNTIME_VARIABLES,
};

impl Settings {
    /// Read settings from `heimdall.toml` and the environment.
    pub fn load() -> Result<Self, SettingsError> {
        Self::from_source(&Source::from_env()?)
    }

    /// Build settings from raw pairs, checking every value.
    pub fn from_source(src: &Source) -> Result<Self, SettingsError> {
        let database_url = src
            .get("HEIMDALL_DATABASE_URL")
            .unwrap_or("sqlite://data/heimdall.db?mode=rwc")
            .to_string();
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "HEIMDALL_DATABASE_URL",
                "must start with sqlite: or postgres://",
            ));
        }
        let redis_url = src.secret("HEIMDALL_REDIS_URL");
        if let Some(r) = &redis_url {
            let v = r.expose_secret();
            if !(v.starts_with("redis://") || v.starts_with("rediss://")) {
                return Err(invalid(
                    "HEIMDALL_REDIS_URL",
                    "must start with redis:// or rediss://",
                ));
            }
        }
        let bind: SocketAddr =
            src.parse("HEIMDALL_BIND", SocketAddr::from(([127, 0, 0, 1], 3000)))?;
        let public_url = src.url("HEIMDALL_PUBLIC_URL")?;

        let twilio = match (
            src.get("TWILIO_ACCOUNT_SID"),
            src.secret("TWILIO_AUTH_TOKEN"),
        ) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    "TWILIO_AUTH_TOKEN",
                    "is required when TWILIO_ACCOUNT_SID is set",
                ))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "TWILIO_ACCOUNT_SID",
                    "is required when TWILIO_AUTH_TOKEN is set",
                ))
            }
            (Some(sid), Some(token)) => {
                if !(sid.starts_with("AC") && sid.len() == 34) {
                    return Err(invalid(
                        "TWILIO_ACCOUNT_SID",
                        "must be AC followed by 32 characters",
                    ));
                }
                let api_base = src.url_or("TWILIO_API_BASE", "https://api.twilio.com")?;
                let content_base = match src.url("TWILIO_CONTENT_BASE")? {
                    Some(u) => u,
                    None if src.get("TWILIO_API_BASE").is_some() => api_base.clone(),
                    None => Url::parse("https://content.twilio.com").expect("valid"),
                };
                Some(TwilioSettings {
                    account_sid: sid.to_string(),
                    auth_token: token,
                    whatsapp_number: src
                        .get("TWILIO_WHATSAPP_NUMBER")
                        .map(|s| s.trim_start_matches("whatsapp:").to_string()),
                    sms_number: src.get("TWILIO_SMS_NUMBER").map(str::to_string),
                    api_base,
                    content_base,
                })
            }
        };

        let meta = match src.secret("WHATSAPP_ACCESS_TOKEN") {
            None => None,
            Some(access_token) => {
                let phone_number_id = src
                    .get("WHATSAPP_PHONE_NUMBER_ID")
                    .ok_or_else(|| {
                        invalid(
                            "WHATSAPP_PHONE_NUMBER_ID",
                            "is required when WHATSAPP_ACCESS_TOKEN is set",
                        )
                    })?
                    .to_string();
                let app_secret = src.secret("WHATSAPP_APP_SECRET").ok_or_else(|| {
                    invalid(
                        "WHATSAPP_APP_SECRET",
                        "is required when WHATSAPP_ACCESS_TOKEN is set (webhook signatures)",
                    )
                })?;
                Some(MetaSettings {
                    access_token,
                    phone_number_id,
                    app_secret,
                    verify_token: src
                        .secret("WHATSAPP_VERIFY_TOKEN")
                        .unwrap_or_else(|| SecretString::from(String::new())),
                    graph_base: src.url_or("META_GRAPH_BASE", "https://graph.facebook.com")?,
                    graph_version: src.get("META_GRAPH_VERSION").unwrap_or("v21.0").to_string(),
                    business_account_id: src
                        .get("WHATSAPP_BUSINESS_ACCOUNT_ID")
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string),
                })
            }
        };

        let whatsapp_provider = match src.get("HEIMDALL_WHATSAPP_PROVIDER") {
            None if twilio.is_none() && meta.is_some() => WhatsAppProvider::Meta,
            None => WhatsAppProvider::Twilio,
            Some(v) if v.eq_ignore_ascii_case("twilio") => WhatsAppProvider::Twilio,
            Some(v) if v.eq_ignore_ascii_case("meta") => {
                if meta.is_none() {
                    return Err(invalid(
                        "HEIMDALL_WHATSAPP_PROVIDER",
                        "is meta but WHATSAPP_ACCESS_TOKEN is not set",
                    ));
                }
                WhatsAppProvider::Meta
            }
            Some(v) => {
                return Err(invalid(
                    "HEIMDALL_WHATSAPP_PROVIDER",
                    format!("'{v}' is not twilio or meta"),
                ))
            }
        };

        let mut templates = BTreeMap::new();
        let mut keys: Vec<&String> = src.values.keys().collect();
        keys.sort();
        for key in keys {
            if let Some(name) = key.strip_prefix("WA_TEMPLATE_") {
                let value = src.get(key).unwrap_or_default();
                if value.is_empty() || name.is_empty() {
                    continue;
                }
                let name = template_name_from_setting(name);
                templates.insert(name, value.to_string());
            }
        }

        let sandbox = match src.get("HEIMDALL_SANDBOX").map(|s| s.to_ascii_lowercase()) {
            None => SandboxMode::Auto,
            Some(v) if v == "auto" => SandboxMode::Auto,
            Some(v) if ["on", "true", "1"].contains(&v.as_str()) => SandboxMode::On,
            Some(v) if ["off", "false", "0"].contains(&v.as_str()) => SandboxMode::Off,
            Some(v) => {
                return Err(invalid(
                    "HEIMDALL_SANDBOX",
                    format!("'{v}' is not auto, on or off"),
                ))
            }
        };

        let region = src.get("HEIMDALL_DEFAULT_REGION").unwrap_or("US");
        let default_region: phonenumber::country::Id =
            region.to_ascii_uppercase().parse().map_err(|_| {
                invalid(
                    "HEIMDALL_DEFAULT_REGION",
                    format!("'{region}' is not a region code such as US or NO"),
                )
            })?;

        let tier_ladder = parse_ladder(
            src.get("HEIMDALL_TIER_LADDER")
                .unwrap_or("250,2000,10000,100000,unlimited"),
        )
        .map_err(|m| invalid("HEIMDALL_TIER_LADDER", m))?;
        let tier_limit = match src.get("HEIMDALL_TIER_LIMIT") {
            None => tier_ladder.first().copied().flatten(),
            Some(v) if v.eq_ignore_ascii_case("unlimited") => None,
            Some(v) => Some(v.parse().map_err(|_| {
                invalid(
                    "HEIMDALL_TIER_LIMIT",
                    format!("'{v}' is not a number or 'unlimited'"),
                )
            })?),
        };

        let fallback_codes = match src.get("HEIMDALL_FALLBACK_CODES") {
            None => crate::compliance::provider_errors::DEFAULT_FALLBACK_CODES.to_vec(),
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<i64>().map_err(|_| {
                        invalid(
                            "HEIMDALL_FALLBACK_CODES",
                            format!("'{s}' is not an error code"),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        };

        let sms_hours = parse_hours(src.get("HEIMDALL_QUIET_HOURS").unwrap_or("08:00-21:00"))
            .map_err(|m| invalid("HEIMDALL_QUIET_HOURS", m))?;
        let tz_name = src.get("HEIMDALL_DEFAULT_TIME_ZONE").unwrap_or("UTC");
        let default_time_zone: chrono_tz::Tz = tz_name.parse().map_err(|_| {
            invalid(
                "HEIMDALL_DEFAULT_TIME_ZONE",
                format!("'{tz_name}' is not an IANA time zone"),
            )
        })?;

        let rate_per_second: u32 = src.parse("HEIMDALL_RATE_PER_SECOND", 80)?;
        if rate_per_second == 0 {
            return Err(invalid("HEIMDALL_RATE_PER_SECOND", "must be at least 1"));
        }
        let worker_concurrency: usize = src.parse("HEIMDALL_WORKER_CONCURRENCY", 32)?;
        if worker_concurrency == 0 {
            return Err(invalid("HEIMDALL_WORKER_CONCURRENCY", "must be at least 1"));
        }
        let sqlite_synchronous_full = match src
            .get("HEIMDALL_SQLITE_SYNCHRONOUS")
            .map(|s| s.to_ascii_lowercase())
        {
            None => false,
            Some(v) if v == "normal" => false,
            Some(v) if v == "full" => true,
            Some(v) => {
                return Err(invalid(
                    "HEIMDALL_SQLITE_SYNCHRONOUS",
                    format!("'{v}' is not normal or full"),
                ))
            }
        };
        let log_json = match src
            .get("HEIMDALL_LOG_FORMAT")
            .map(|s| s.to_ascii_lowercase())
        {
            None => false,
            Some(v) if v == "text" => false,
            Some(v) if v == "json" => true,
            Some(v) => {
                return Err(invalid(
                    "HEIMDALL_LOG_FORMAT",
                    format!("'{v}' is not text or json"),
                ))
            }
        };

        let settings = Settings {
            database_url: SecretString::from(database_url),
            redis_url,
            redis_namespace: src
                .get("HEIMDALL_REDIS_NAMESPACE")
                .unwrap_or("heimdall")
                .to_string(),
            bind,
            public_url,
            api_key: src
                .secret("HEIMDALL_API_KEY")
                .or_else(|| src.secret("NORNS_API_KEY")),
            api_key_scopes: crate::entities::api_key::Scopes::parse_list(
                src.get("HEIMDALL_API_KEY_SCOPES")
                    .unwrap_or("send,reminders"),
            )
            .map_err(|m| invalid("HEIMDALL_API_KEY_SCOPES", m))?,
            api_key_free_form: src.bool("HEIMDALL_API_KEY_FREE_FORM", false)?,
            runtime_sources: RUNTIME_VARIABLES
                .iter()
                .map(|(_, name)| (*name, src.origin(name)))
                .collect(),
            twilio,
            meta,
            whatsapp_provider,
            templates,
            discord_webhook_url: src.secret("DISCORD_WEBHOOK_URL"),
            sandbox,
            default_region,
            site_root: src.get("HEIMDALL_SITE_ROOT").map(PathBuf::from),
            data_dir: PathBuf::from(src.get("HEIMDALL_DATA_DIR").unwrap_or("data")),
            log_json,
            rate_per_second,
            recipient_pace_seconds: check_pace(src.parse("HEIMDALL_RECIPIENT_PACE_SECONDS", 6)?)
                .map_err(|m| invalid("HEIMDALL_RECIPIENT_PACE_SECONDS", m))?,
            tier_ladder,
            tier_limit,
            fallback_codes,
            sms_hours,
            default_time_zone,
            program_name: src
                .get("HEIMDALL_PROGRAM_NAME")
                .unwrap_or("Heimdall")
                .to_string(),
            help_text: src
                .get("HEIMDALL_HELP_TEXT")
                .map(parse_help_text)
                .transpose()
                .map_err(|m| invalid("HEIMDALL_HELP_TEXT", m))?,
            phone_allowlist: parse_allowlist(
                src.get("HEIMDALL_PHONE_ALLOWLIST").unwrap_or(""),
                default_region,
            )
            .map_err(|m| invalid("HEIMDALL_PHONE_ALLOWLIST", m))?,
            meta_read_receipts: src.bool("HEIMDALL_META_READ_RECEIPTS", false)?,
            worker_concurrency,
            sqlite_synchronous_full,
            max_webhook_bytes: src.parse("HEIMDALL_MAX_WEBHOOK_BYTES", 65536)?,
            sandbox_step_ms: src.parse("HEIMDALL_STATUS_STEP_MS", 300)?,
            metrics_token: src.secret("HEIMDALL_METRICS_TOKEN"),
            webhook_audit_days: {
                let days: u32 = src.parse("HEIMDALL_WEBHOOK_AUDIT_DAYS", 30)?;
                if days == 0 {
                    return Err(invalid("HEIMDALL_WEBHOOK_AUDIT_DAYS", "must be at least 1"));
                }
                days
            },
            attachment_days: {
                let days: u32 = src.parse("HEIMDALL_ATTACHMENT_DAYS", 30)?;
                if days == 0 {
                    return Err(invalid("HEIMDALL_ATTACHMENT_DAYS", "must be at least 1"));
                }
                days
            },
            fetch_allowlist: {
                let v = src
                    .get("HEIMDALL_FETCH_ALLOWLIST")
                    .unwrap_or("")
                    .to_string();
                crate::outbound_http::UrlPolicy::parse(&v)
                    .map_err(|m| invalid("HEIMDALL_FETCH_ALLOWLIST", m))?;
                v
            },
        };
        // The sandbox answers webhooks signed with its own keys: in auto mode
        // (no credentials found) it is only for this machine. A deployment
        // reachable from elsewhere that forgot its credentials stops here.
        if settings.sandbox == SandboxMode::Auto
            && settings.sandbox_active()
            && !settings.only_this_machine()
        {
            return Err(invalid(
                "HEIMDALL_SANDBOX",
                format!(
                    "no Twilio or Meta credentials are set and Heimdall is reachable beyond this machine ({}): set the credentials, or HEIMDALL_SANDBOX=on to run the built-in sandbox on purpose",
                    settings.public_base()
                ),
            ));
        }
        Ok(settings)
    }
}

/// `WA_TEMPLATE_TASK_REMINDER` registers `task_reminder`. The seed's
/// `WA_TEMPLATE_TASK_COMPLETE` registers `task_complete_confirm`, as the
/// seed's own template table names it.
pub fn template_name_from_setting(suffix: &str) -> String {
    let name = suffix.to_ascii_lowercase();
    if name == "task_complete" {
        "task_complete_confirm".to_string()
    } else {
        name
    }
}

/// The per-recipient pace in seconds, from the environment or the
/// console: 0 (off) to an hour. The one rule for both.
pub(crate) fn check_pace(seconds: u64) -> Result<u32, String> {
    u32::try_from(seconds)
        .ok()
        .filter(|n| *n <= 3600)
        .ok_or_else(|| "the pace must be 0 to 3600 seconds".to_string())
}

/// The HELP reply, from the environment or the console: text that tells
/// people how to opt out (STOP). The one rule for both.
pub(crate) fn parse_help_text(v: &str) -> Result<String, String> {
    let text = v.trim();
    if text.is_empty() {
        return Err("the HELP reply must be text".into());
    }
    if !text.to_ascii_uppercase().contains("STOP") {
        return Err("the HELP reply must tell people how to opt out (STOP)".into());
    }
    Ok(text.to_string())
}

/// A tier ladder, `1000,10000,unlimited`: the one rule for the
/// environment, the stored value and the console.
pub fn parse_ladder(v: &str) -> Result<Vec<Option<u64>>, String> {
    let mut out = Vec::new();
    for part in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if part.eq_ignore_ascii_case("unlimited") {
            out.push(None);
        } else {
            out.push(Some(part.parse().map_err(|_| {
                format!("'{part}' is not a number or 'unlimited'")
            })?));
        }
    }
    if out.is_empty() {
        return Err("must list at least one step".into());
    }
    let finite: Vec<u64> = out.iter().flatten().copied().collect();
    if finite.windows(2).any(|w| w[0] >= w[1]) {
        return Err("steps must increase".into());
    }
    if out
        .iter()
        .position(Option::is_none)
        .is_some_and(|i| i != out.len() - 1)
    {
        return Err("'unlimited' can only be the last step".into());
    }
    Ok(out)
}

/// The phone allowlist: numbers separated by commas, spaces or lines, each
/// parsed (and so written) as E.164; empty means everyone.
pub(crate) fn parse_allowlist(
    v: &str,
    region: phonenumber::country::Id,
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for part in v
        .split([',', ' ', '\n', ';'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let p =
            crate::phone::PhoneNumber::parse(part, region).map_err(|e| format!("'{part}': {e}"))?;
        out.push(p.to_string());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

pub(crate) fn parse_hours(v: &str) -> Result<(chrono::NaiveTime, chrono::NaiveTime), String> {
    let (a, b) = v
        .split_once('-')
        .ok_or_else(|| format!("'{v}' is not of the form HH:MM-HH:MM"))?;
    let parse = |s: &str| {
        chrono::NaiveTime::parse_from_str(s.trim(), "%H:%M")
            .map_err(|_| format!("'{s}' is not a time HH:MM"))
    };
    let (start, end) = (parse(a)?, parse(b)?);
    if start >= end {
        return Err("the start must be before the end".into());
    }
    Ok((start, end))
}
