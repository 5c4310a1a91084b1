//! [`Settings`] built from the raw values: every value parsed and checked
//! (a bad one names its setting; a runtime setting by its own rule in
//! [`super::runtime_setting`]) and the providers' groups assembled.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::{
    invalid, MetaSettings, SandboxMode, Settings, SettingsError, Source, TwilioSettings,
    WhatsAppProvider,
};
use crate::settings::runtime::{Runtime, RuntimeSetting};

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

        // The runtime settings, each read by its one rule (as a stored
        // value and the console's field are).
        let mut runtime = Runtime::defaults();
        for setting in RuntimeSetting::ALL {
            if let Some(text) = src.get(setting.variable()) {
                runtime.set(
                    setting
                        .parse(text, default_region)
                        .map_err(|m| invalid(setting.variable(), m))?,
                );
            }
        }
        if src.get(RuntimeSetting::TierLimit.variable()).is_none() {
            // Unset, the limit is the ladder's first step.
            runtime.tier_limit = runtime.tier_ladder.first().copied().flatten();
        }
        let tz_name = src.get("HEIMDALL_DEFAULT_TIME_ZONE").unwrap_or("UTC");
        let default_time_zone: chrono_tz::Tz = tz_name.parse().map_err(|_| {
            invalid(
                "HEIMDALL_DEFAULT_TIME_ZONE",
                format!("'{tz_name}' is not an IANA time zone"),
            )
        })?;

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
            runtime_sources: RuntimeSetting::ALL
                .iter()
                .map(|s| (s.variable(), src.origin(s.variable())))
                .collect(),
            twilio,
            meta,
            whatsapp_provider,
            templates,
            discord_webhook_url: src.secret("DISCORD_WEBHOOK_URL"),
            audit_anchor_url: match src.secret("HEIMDALL_AUDIT_ANCHOR_URL") {
                Some(u) => {
                    let parsed = Url::parse(u.expose_secret().trim());
                    if !parsed.is_ok_and(|p| matches!(p.scheme(), "http" | "https")) {
                        return Err(invalid(
                            "HEIMDALL_AUDIT_ANCHOR_URL",
                            "must be an http(s) URL",
                        ));
                    }
                    Some(u)
                }
                None => None,
            },
            erasure_key: match src.secret("HEIMDALL_ERASURE_KEY") {
                Some(k) if k.expose_secret().trim().chars().count() < 32 => return Err(invalid(
                    "HEIMDALL_ERASURE_KEY",
                    "must be at least 32 characters (a random secret, e.g. `openssl rand -hex 32`)",
                )),
                other => other,
            },
            sandbox,
            default_region,
            site_root: src.get("HEIMDALL_SITE_ROOT").map(PathBuf::from),
            data_dir: PathBuf::from(src.get("HEIMDALL_DATA_DIR").unwrap_or("data")),
            log_json,
            rate_per_second: runtime.rate_per_second,
            recipient_pace_seconds: runtime.recipient_pace_seconds,
            tier_ladder: runtime.tier_ladder,
            tier_limit: runtime.tier_limit,
            fallback_codes: runtime.fallback_codes,
            sms_hours: runtime.sms_hours,
            default_time_zone,
            default_purpose: match src.get("HEIMDALL_DEFAULT_PURPOSE") {
                None => "service".into(),
                Some(v) => {
                    check_purpose_name(v).map_err(|m| invalid("HEIMDALL_DEFAULT_PURPOSE", m))?
                }
            },
            marketing_stop_phrases: parse_marketing_stop_phrases(
                src.get("HEIMDALL_MARKETING_STOP_PHRASES")
                    .unwrap_or(DEFAULT_MARKETING_STOP_PHRASES),
            )
            .map_err(|m| invalid("HEIMDALL_MARKETING_STOP_PHRASES", m))?,
            program_name: src
                .get("HEIMDALL_PROGRAM_NAME")
                .unwrap_or("Heimdall")
                .to_string(),
            help_text: runtime.help_text,
            phone_allowlist: runtime.allowlist.iter().cloned().collect(),
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
            retain_message_body_days: {
                let days: u32 = src.parse("HEIMDALL_RETAIN_MESSAGE_BODY_DAYS", 90)?;
                if days == 0 {
                    return Err(invalid(
                        "HEIMDALL_RETAIN_MESSAGE_BODY_DAYS",
                        "must be at least 1",
                    ));
                }
                days
            },
            retain_inbound_text_days: {
                let days: u32 = src.parse("HEIMDALL_RETAIN_INBOUND_TEXT_DAYS", 90)?;
                if days == 0 {
                    return Err(invalid(
                        "HEIMDALL_RETAIN_INBOUND_TEXT_DAYS",
                        "must be at least 1",
                    ));
                }
                days
            },
            retain_consent_evidence_days: {
                let days: u32 = src.parse("HEIMDALL_RETAIN_CONSENT_EVIDENCE_DAYS", 1826)?;
                if days == 0 {
                    return Err(invalid(
                        "HEIMDALL_RETAIN_CONSENT_EVIDENCE_DAYS",
                        "must be at least 1",
                    ));
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

/// The marketing-only opt-out phrases when `HEIMDALL_MARKETING_STOP_PHRASES`
/// is not set.
pub const DEFAULT_MARKETING_STOP_PHRASES: &str =
    "en: STOP PROMOTIONS, STOP PROMOS, STOP MARKETING, STOP OFFERS, NO PROMOTIONS; \
es: STOP PROMOCIONES, BAJA PROMOCIONES; \
fr: STOP PROMOTIONS, STOP PUB; \
de: STOP WERBUNG; \
pt: PARAR PROMOCOES, STOP PROMOCOES; \
it: STOP PROMOZIONI";

/// `lang: PHRASE, PHRASE; lang: ...` as (language, normalised phrase)
/// pairs. A phrase that is an opt-out keyword by itself ("STOP") is
/// refused: it must stop everything.
pub fn parse_marketing_stop_phrases(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for group in text.split(';').map(str::trim).filter(|g| !g.is_empty()) {
        let (lang, phrases) = group.split_once(':').ok_or_else(|| {
            format!("'{group}' has no language: write it as 'en: STOP PROMOTIONS, ...'")
        })?;
        let lang = lang.trim().to_lowercase();
        if lang.is_empty()
            || lang.len() > 8
            || !lang.chars().all(|c| c.is_ascii_alphabetic() || c == '-')
        {
            return Err(format!(
                "'{lang}' is not a language code (such as en, es, pt-br)"
            ));
        }
        for phrase in phrases.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let normalised = crate::compliance::keywords::normalise(phrase);
            if normalised.is_empty() {
                return Err(format!("'{phrase}' is empty once normalised"));
            }
            // Never let a full opt-out (even one for staff to review) be
            // read as marketing only.
            if crate::compliance::keywords::classify(phrase).is_some() {
                return Err(format!(
                    "'{phrase}' is read as a keyword or an opt-out already: it cannot stop marketing only"
                ));
            }
            out.push((lang.clone(), normalised));
        }
    }
    Ok(out)
}

/// A purpose's name: 1 to 40 lower-case letters, digits, `-` or `_`,
/// starting with a letter.
pub fn check_purpose_name(name: &str) -> Result<String, String> {
    let n = name.trim();
    let ok = !n.is_empty()
        && n.len() <= 40
        && n.starts_with(|c: char| c.is_ascii_lowercase())
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(n.to_string())
    } else {
        Err(format!(
            "'{name}' is not a purpose name: 1 to 40 lower-case letters, digits, - or _, starting with a letter"
        ))
    }
}
