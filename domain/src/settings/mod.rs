//! Typed settings, read once at start-up from the environment and an optional
//! `heimdall.toml` (same keys as the environment variables; the environment
//! wins). Each field names the variable that sets it. Secrets are wrapped in
//! [`SecretString`] so they cannot be printed by accident, and a bad value
//! stops start-up with a message that names the setting.
//!
//! The settings an admin changes while Heimdall runs are in [`runtime`],
//! stored as rows by [`store`].
//!
//! This module must never log or format a secret's value.

pub mod runtime;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::channel::Channel;

/// A setting that could not be read. The message always names the setting.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{name}: {message}")]
    Invalid { name: String, message: String },
    #[error("could not read settings file {path}: {message}")]
    File { path: String, message: String },
}

fn invalid(name: &str, message: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        name: name.to_string(),
        message: message.into(),
    }
}

/// Where the WhatsApp channel is sent through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhatsAppProvider {
    /// Twilio as BSP (Messages API with `whatsapp:` addresses).
    Twilio,
    /// Meta's WhatsApp Cloud API directly.
    Meta,
}

/// Whether the built-in sandbox stands in for Twilio, Meta and Discord.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxMode {
    /// On when no provider credentials are configured (the default).
    Auto,
    On,
    Off,
}

/// Twilio account and senders.
#[derive(Debug, Clone)]
pub struct TwilioSettings {
    /// `TWILIO_ACCOUNT_SID`
    pub account_sid: String,
    /// `TWILIO_AUTH_TOKEN`: signs webhooks and authenticates API calls.
    pub auth_token: SecretString,
    /// `TWILIO_WHATSAPP_NUMBER`: the WhatsApp sender, E.164 (with or without `whatsapp:`).
    pub whatsapp_number: Option<String>,
    /// `TWILIO_SMS_NUMBER`: the SMS sender, E.164.
    pub sms_number: Option<String>,
    /// `TWILIO_API_BASE`, default `https://api.twilio.com`.
    pub api_base: Url,
    /// `TWILIO_CONTENT_BASE`, default `https://content.twilio.com`, or
    /// `TWILIO_API_BASE` when only that one is set (the sandbox serves both).
    pub content_base: Url,
}

/// Meta WhatsApp Cloud API.
#[derive(Debug, Clone)]
pub struct MetaSettings {
    /// `WHATSAPP_ACCESS_TOKEN`
    pub access_token: SecretString,
    /// `WHATSAPP_PHONE_NUMBER_ID`
    pub phone_number_id: String,
    /// `WHATSAPP_APP_SECRET`: checks `X-Hub-Signature-256`.
    pub app_secret: SecretString,
    /// `WHATSAPP_VERIFY_TOKEN`: the GET handshake token.
    pub verify_token: SecretString,
    /// `META_GRAPH_BASE`, default `https://graph.facebook.com`.
    pub graph_base: Url,
    /// `META_GRAPH_VERSION`, default `v21.0`.
    pub graph_version: String,
    /// `WHATSAPP_BUSINESS_ACCOUNT_ID`: the WhatsApp Business Account whose
    /// message templates Heimdall creates and reads (Meta's template
    /// endpoints are on the account, not on the phone number).
    pub business_account_id: Option<String>,
}

/// All of Heimdall's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `HEIMDALL_DATABASE_URL`, default `sqlite://data/heimdall.db?mode=rwc`.
    pub database_url: SecretString,
    /// `HEIMDALL_REDIS_URL`: when set, the queue, caches and shared limits use Redis.
    pub redis_url: Option<SecretString>,
    /// `HEIMDALL_REDIS_NAMESPACE`, default `heimdall`: prefix of every Redis key
    /// (several installations, or tests, can share one Redis).
    pub redis_namespace: String,
    /// `HEIMDALL_BIND`, default `127.0.0.1:3000`.
    pub bind: SocketAddr,
    /// `HEIMDALL_PUBLIC_URL`: the URL Twilio and Meta see; default `http://{bind}`.
    pub public_url: Option<Url>,
    /// `HEIMDALL_API_KEY` (or the seed's `NORNS_API_KEY`): a bootstrap API key.
    pub api_key: Option<SecretString>,
    /// `HEIMDALL_API_KEY_SCOPES`, default `send,reminders`: what the
    /// bootstrap key may do.
    pub api_key_scopes: crate::entities::api_key::Scopes,
    /// `HEIMDALL_API_KEY_FREE_FORM`, default `false`: whether the bootstrap key
    /// may send free-form text as replies inside the 24-hour window (as an
    /// automation approved for it may), besides the templates from settings.
    pub api_key_free_form: bool,
    /// Where each runtime setting's configured value comes from, by its variable name
    /// ([`RUNTIME_VARIABLES`]).
    pub runtime_sources: BTreeMap<&'static str, ValueSource>,
    /// `TWILIO_*`; `None` when no Twilio credentials are set.
    pub twilio: Option<TwilioSettings>,
    /// `WHATSAPP_*`, `META_*`; `None` when no Meta credentials are set.
    pub meta: Option<MetaSettings>,
    /// `HEIMDALL_WHATSAPP_PROVIDER` (`twilio` or `meta`); default: Twilio when
    /// its credentials are set, otherwise Meta.
    pub whatsapp_provider: WhatsAppProvider,
    /// `WA_TEMPLATE_<NAME>`: template name (lower-cased) to provider id (`HX...`).
    pub templates: BTreeMap<String, String>,
    /// `DISCORD_WEBHOOK_URL`: where alerts go (the URL carries a token: secret).
    pub discord_webhook_url: Option<SecretString>,
    /// `HEIMDALL_SANDBOX` (`auto`, `on`, `off`), default `auto`.
    pub sandbox: SandboxMode,
    /// `HEIMDALL_DEFAULT_REGION`, default `US`: region for numbers without `+`.
    pub default_region: phonenumber::country::Id,
    /// `HEIMDALL_SITE_ROOT`: where the console's compiled assets are.
    pub site_root: Option<PathBuf>,
    /// `HEIMDALL_DATA_DIR`, default `data`: the local spool for webhook events
    /// that could not be written to the database.
    pub data_dir: PathBuf,
    /// `HEIMDALL_LOG_FORMAT` (`text` or `json`), default `text`.
    pub log_json: bool,
    /// `HEIMDALL_RATE_PER_SECOND`, default 80: per-sender send rate.
    pub rate_per_second: u32,
    /// `HEIMDALL_RECIPIENT_PACE_SECONDS`, default 6: at most one WhatsApp
    /// message per this many seconds to one person (0 turns it off).
    pub recipient_pace_seconds: u32,
    /// `HEIMDALL_TIER_LADDER`, default `250,2000,10000,100000,unlimited`.
    pub tier_ladder: Vec<Option<u64>>,
    /// `HEIMDALL_TIER_LIMIT`, default the first step of the ladder.
    pub tier_limit: Option<u64>,
    /// `HEIMDALL_FALLBACK_CODES`, default `63003,131026,63032`.
    pub fallback_codes: Vec<i64>,
    /// `HEIMDALL_QUIET_HOURS`, default `08:00-21:00`: when SMS may be sent,
    /// in the recipient's time zone.
    pub sms_hours: (chrono::NaiveTime, chrono::NaiveTime),
    /// `HEIMDALL_DEFAULT_TIME_ZONE`, default `UTC`: for contacts without one.
    pub default_time_zone: chrono_tz::Tz,
    /// `HEIMDALL_PROGRAM_NAME`, default `Heimdall`: used in HELP and opt-out replies.
    pub program_name: String,
    /// `HEIMDALL_HELP_TEXT`: the HELP reply; a compliant default is built from the program name.
    pub help_text: Option<String>,
    /// `HEIMDALL_PHONE_ALLOWLIST`: comma-separated numbers (stored as E.164);
    /// empty means everyone.
    pub phone_allowlist: Vec<String>,
    /// `HEIMDALL_META_READ_RECEIPTS`, default false: mark processed inbound Meta messages read.
    pub meta_read_receipts: bool,
    /// `HEIMDALL_WORKER_CONCURRENCY`, default 32: send jobs in flight per process.
    pub worker_concurrency: usize,
    /// `HEIMDALL_SQLITE_SYNCHRONOUS` (`normal` or `full`), default `normal`
    /// (WAL: durable across a process crash; `full` adds power-loss durability).
    pub sqlite_synchronous_full: bool,
    /// `HEIMDALL_MAX_WEBHOOK_BYTES`, default 65536.
    pub max_webhook_bytes: usize,
    /// `HEIMDALL_STATUS_STEP_MS`: the in-process sandbox's clock step between statuses, default 300.
    pub sandbox_step_ms: u64,
    /// `HEIMDALL_FETCH_ALLOWLIST`: hosts (optionally `host:port`) or IP
    /// addresses that are meant to be internal and that Heimdall may fetch
    /// from although they are not public (a schedule's `variables_url`, the
    /// Discord webhook). Empty: public addresses only. Validated at start.
    pub fetch_allowlist: String,
    /// `HEIMDALL_METRICS_TOKEN`: when set, `/metrics` needs it as a bearer
    /// token. Unset, `/metrics` is open only while Heimdall is reachable
    /// from this machine alone.
    pub metrics_token: Option<SecretString>,
    /// `HEIMDALL_WEBHOOK_AUDIT_DAYS`, default 30: webhook audit rows older
    /// than this are deleted by housekeeping.
    pub webhook_audit_days: u32,
    /// `HEIMDALL_ATTACHMENT_DAYS`, default 30: files attached to inbox replies are
    /// deleted by housekeeping after this many days (the provider fetched them when the
    /// message went).
    pub attachment_days: u32,
}

/// The runtime settings (their `app_settings` keys) and the variables that configure
/// them.
pub const RUNTIME_VARIABLES: [(&str, &str); 8] = [
    ("help_text", "HEIMDALL_HELP_TEXT"),
    ("fallback_codes", "HEIMDALL_FALLBACK_CODES"),
    ("tier_ladder", "HEIMDALL_TIER_LADDER"),
    ("tier_limit", "HEIMDALL_TIER_LIMIT"),
    ("rate_per_second", "HEIMDALL_RATE_PER_SECOND"),
    ("recipient_pace_seconds", "HEIMDALL_RECIPIENT_PACE_SECONDS"),
    ("quiet_hours", "HEIMDALL_QUIET_HOURS"),
    ("phone_allowlist", "HEIMDALL_PHONE_ALLOWLIST"),
];

/// Raw key/value pairs from the file and the environment.
#[derive(Debug, Default, Clone)]
pub struct Source {
    values: HashMap<String, String>,
    /// The keys whose value came from the settings file (the environment did not
    /// override them).
    from_file: std::collections::HashSet<String>,
}

/// Where a setting's configured value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueSource {
    /// Nothing set it: Heimdall's default.
    Default,
    /// An environment variable.
    Environment,
    /// `heimdall.toml` (or the file `HEIMDALL_CONFIG` names).
    File,
}

impl ValueSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ValueSource::Default => "default",
            ValueSource::Environment => "environment",
            ValueSource::File => "settings file",
        }
    }
}

impl Source {
    /// Read `heimdall.toml` (or the file named by `HEIMDALL_CONFIG`) and then
    /// the process environment, which wins.
    pub fn from_env() -> Result<Self, SettingsError> {
        let mut source = Source::default();
        let explicit = std::env::var("HEIMDALL_CONFIG").ok();
        let path = explicit.clone().unwrap_or_else(|| "heimdall.toml".into());
        if Path::new(&path).exists() {
            source.merge_toml_file(Path::new(&path))?;
        } else if let Some(p) = explicit {
            return Err(SettingsError::File {
                path: p,
                message: "file not found".into(),
            });
        }
        source.overlay_environment(std::env::vars());
        Ok(source)
    }

    /// The environment's variables, which win over the file's.
    pub fn overlay_environment(&mut self, vars: impl IntoIterator<Item = (String, String)>) {
        for (k, v) in vars {
            self.from_file.remove(&k);
            self.values.insert(k, v);
        }
    }

    /// Where `name`'s value comes from (a blank value counts as unset).
    pub fn origin(&self, name: &str) -> ValueSource {
        match self.get(name) {
            None => ValueSource::Default,
            Some(_) if self.from_file.contains(name) => ValueSource::File,
            Some(_) => ValueSource::Environment,
        }
    }

    /// Pairs given directly (tests, tools).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Source {
            values: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            from_file: Default::default(),
        }
    }

    fn merge_toml_file(&mut self, path: &Path) -> Result<(), SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|e| SettingsError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        self.merge_toml(&text)
            .map_err(|message| SettingsError::File {
                path: path.display().to_string(),
                message,
            })
    }

    /// Keys may be written as the variable (`HEIMDALL_BIND`) or lower case.
    pub fn merge_toml(&mut self, text: &str) -> Result<(), String> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
        for (k, v) in table {
            let value = match v {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|i| match i {
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                other => return Err(format!("{k}: unsupported value {other}")),
            };
            self.from_file.insert(k.to_uppercase());
            self.values.insert(k.to_uppercase(), value);
        }
        Ok(())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    }

    fn secret(&self, name: &str) -> Option<SecretString> {
        self.get(name).map(|s| SecretString::from(s.to_string()))
    }

    fn parse<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, SettingsError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|e| invalid(name, format!("'{v}' is not valid: {e}"))),
        }
    }

    fn bool(&self, name: &str, default: bool) -> Result<bool, SettingsError> {
        match self.get(name).map(|s| s.to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => Ok(true),
            Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => Ok(false),
            Some(v) => Err(invalid(name, format!("'{v}' is not true or false"))),
        }
    }

    fn url(&self, name: &str) -> Result<Option<Url>, SettingsError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => {
                let url =
                    Url::parse(v).map_err(|e| invalid(name, format!("'{v}' is not a URL: {e}")))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(invalid(name, "must be an http or https URL"));
                }
                Ok(Some(url))
            }
        }
    }

    fn url_or(&self, name: &str, default: &str) -> Result<Url, SettingsError> {
        Ok(self
            .url(name)?
            .unwrap_or_else(|| Url::parse(default).expect("default URLs are valid")))
    }
}

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
            recipient_pace_seconds: src.parse("HEIMDALL_RECIPIENT_PACE_SECONDS", 6)?,
            tier_ladder,
            tier_limit,
            fallback_codes,
            sms_hours,
            default_time_zone,
            program_name: src
                .get("HEIMDALL_PROGRAM_NAME")
                .unwrap_or("Heimdall")
                .to_string(),
            help_text: src.get("HEIMDALL_HELP_TEXT").map(str::to_string),
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

    /// Is Heimdall reachable from this machine only: its public URL (or,
    /// without one, the address it listens on) is a loopback address or
    /// `localhost`?
    pub fn only_this_machine(&self) -> bool {
        match &self.public_url {
            Some(u) => match u.host() {
                Some(url::Host::Domain(d)) => {
                    d.eq_ignore_ascii_case("localhost") || d.ends_with(".localhost")
                }
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            },
            None => self.bind.ip().is_loopback(),
        }
    }

    /// True when the built-in sandbox stands in for the providers.
    pub fn sandbox_active(&self) -> bool {
        match self.sandbox {
            SandboxMode::On => true,
            SandboxMode::Off => false,
            SandboxMode::Auto => self.twilio.is_none() && self.meta.is_none(),
        }
    }

    /// The URL providers call us on.
    pub fn public_base(&self) -> Url {
        self.public_url.clone().unwrap_or_else(|| {
            Url::parse(&format!("http://{}", self.bind)).expect("a socket address makes a URL")
        })
    }

    /// The database backend named by the URL.
    pub fn is_postgres(&self) -> bool {
        self.database_url.expose_secret().starts_with("postgres")
    }

    /// The HELP reply: the configured text or a compliant default.
    pub fn help_reply(&self) -> String {
        self.help_text.clone().unwrap_or_else(|| {
            format!(
                "{name}: account alerts and reminders. Reply STOP to unsubscribe, START to resubscribe. \
                 Msg frequency varies. Msg & data rates may apply. Help: reply HELP or contact your account team.",
                name = self.program_name
            )
        })
    }

    /// The sender address for a channel, if configured.
    pub fn sender_for(&self, channel: Channel) -> Option<String> {
        match channel {
            Channel::WhatsApp => match self.whatsapp_provider {
                WhatsAppProvider::Meta => self.meta.as_ref().map(|m| m.phone_number_id.clone()),
                WhatsAppProvider::Twilio => {
                    self.twilio.as_ref().and_then(|t| t.whatsapp_number.clone())
                }
            },
            Channel::Sms => self.twilio.as_ref().and_then(|t| t.sms_number.clone()),
        }
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

pub(crate) fn parse_ladder(v: &str) -> Result<Vec<Option<u64>>, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_runtime_setting_says_where_its_value_comes_from() {
        let mut src = Source::default();
        src.merge_toml("heimdall_rate_per_second = 40\nHEIMDALL_QUIET_HOURS = \"09:00-20:00\"\n")
            .unwrap();
        src.overlay_environment([(
            "HEIMDALL_QUIET_HOURS".to_string(),
            "10:00-18:00".to_string(),
        )]);
        assert_eq!(src.origin("HEIMDALL_RATE_PER_SECOND"), ValueSource::File);
        assert_eq!(
            src.origin("HEIMDALL_QUIET_HOURS"),
            ValueSource::Environment,
            "the environment wins"
        );
        assert_eq!(src.origin("HEIMDALL_TIER_LIMIT"), ValueSource::Default);
        let settings = Settings::from_source(&src).unwrap();
        assert_eq!(settings.rate_per_second, 40);
        assert_eq!(
            settings.runtime_sources["HEIMDALL_RATE_PER_SECOND"],
            ValueSource::File
        );
        assert_eq!(
            settings.runtime_sources["HEIMDALL_QUIET_HOURS"],
            ValueSource::Environment
        );
        assert_eq!(
            settings.runtime_sources["HEIMDALL_HELP_TEXT"],
            ValueSource::Default
        );
        assert_eq!(
            RUNTIME_VARIABLES.map(|(key, _)| key),
            crate::settings::runtime::keys::ALL,
            "one variable for every runtime setting, in the console's order"
        );
    }

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        Settings::from_source(&Source::from_pairs(pairs.iter().copied()))
    }

    /// Security finding 5: the auto sandbox (no credentials found) is for
    /// this machine only.
    #[test]
    fn the_auto_sandbox_refuses_to_run_where_others_can_reach_it() {
        for public in ["https://heimdall.example.com", "http://203.0.113.5:3000"] {
            match settings(&[("HEIMDALL_PUBLIC_URL", public)]) {
                Err(SettingsError::Invalid { name, message }) => {
                    assert_eq!(name, "HEIMDALL_SANDBOX", "{message}");
                    assert!(message.contains("HEIMDALL_SANDBOX=on"), "{message}");
                }
                other => panic!("{public}: {other:?}"),
            }
        }
        // Listening on every address without a public URL: the same.
        assert!(settings(&[("HEIMDALL_BIND", "0.0.0.0:3000")]).is_err());
        // On purpose, or on this machine: fine.
        assert!(settings(&[
            ("HEIMDALL_PUBLIC_URL", "https://heimdall.example.com"),
            ("HEIMDALL_SANDBOX", "on"),
        ])
        .is_ok());
        for local in [
            "http://127.0.0.1:3000",
            "http://localhost:8080",
            "http://[::1]:3000",
        ] {
            assert!(
                settings(&[("HEIMDALL_PUBLIC_URL", local)]).is_ok(),
                "{local}"
            );
        }
        // With credentials there is no sandbox to worry about.
        assert!(settings(&[
            ("HEIMDALL_PUBLIC_URL", "https://heimdall.example.com"),
            ("TWILIO_ACCOUNT_SID", "ACtestaccount000000000000000000001"),
            ("TWILIO_AUTH_TOKEN", "t"),
        ])
        .is_ok());
    }

    #[test]
    fn defaults_need_nothing() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:3000");
        assert_eq!(
            s.database_url.expose_secret(),
            "sqlite://data/heimdall.db?mode=rwc"
        );
        assert!(s.sandbox_active());
        assert_eq!(s.rate_per_second, 80);
        assert_eq!(s.tier_limit, Some(250));
        assert_eq!(s.fallback_codes, vec![63003, 131026, 63032]);
    }

    #[test]
    fn bad_values_name_the_setting() {
        for (pairs, name) in [
            (vec![("HEIMDALL_BIND", "nowhere")], "HEIMDALL_BIND"),
            (
                vec![("HEIMDALL_DATABASE_URL", "mysql://x")],
                "HEIMDALL_DATABASE_URL",
            ),
            (
                vec![("HEIMDALL_REDIS_URL", "http://x")],
                "HEIMDALL_REDIS_URL",
            ),
            (
                vec![("TWILIO_ACCOUNT_SID", "ACtestaccount000000000000000000001")],
                "TWILIO_AUTH_TOKEN",
            ),
            (
                vec![("HEIMDALL_TIER_LADDER", "250,100")],
                "HEIMDALL_TIER_LADDER",
            ),
            (
                vec![("HEIMDALL_QUIET_HOURS", "21:00-08:00")],
                "HEIMDALL_QUIET_HOURS",
            ),
            (
                vec![("HEIMDALL_DEFAULT_TIME_ZONE", "Mars/Base")],
                "HEIMDALL_DEFAULT_TIME_ZONE",
            ),
            (
                vec![("HEIMDALL_RATE_PER_SECOND", "fast")],
                "HEIMDALL_RATE_PER_SECOND",
            ),
            (
                vec![("HEIMDALL_PUBLIC_URL", "ftp://x")],
                "HEIMDALL_PUBLIC_URL",
            ),
            (
                vec![("HEIMDALL_FALLBACK_CODES", "63007,abc")],
                "HEIMDALL_FALLBACK_CODES",
            ),
        ] {
            let err = settings(&pairs).unwrap_err().to_string();
            assert!(err.starts_with(name), "{err} should name {name}");
        }
    }

    #[test]
    fn secrets_are_not_printed() {
        let s = settings(&[
            ("TWILIO_ACCOUNT_SID", "ACtestaccount000000000000000000001"),
            ("TWILIO_AUTH_TOKEN", "supersecret-token-value"),
            ("HEIMDALL_API_KEY", "bootstrap-key-value"),
        ])
        .unwrap();
        let printed = format!("{s:?}");
        assert!(!printed.contains("supersecret-token-value"));
        assert!(!printed.contains("bootstrap-key-value"));
        assert!(!s.sandbox_active());
    }

    #[test]
    fn templates_come_from_wa_template_settings() {
        let s = settings(&[
            ("WA_TEMPLATE_TASK_REMINDER", "HX1111"),
            ("WA_TEMPLATE_TASK_COMPLETE", "HX2222"),
        ])
        .unwrap();
        assert_eq!(s.templates.get("task_reminder").unwrap(), "HX1111");
        assert_eq!(s.templates.get("task_complete_confirm").unwrap(), "HX2222");
    }

    #[test]
    fn toml_file_keys_match_env_names_and_env_wins() {
        let mut src = Source::default();
        src.merge_toml("HEIMDALL_BIND = \"127.0.0.1:4000\"\nheimdall_rate_per_second = 10\n")
            .unwrap();
        let s = Settings::from_source(&src).unwrap();
        assert_eq!(s.bind.port(), 4000);
        assert_eq!(s.rate_per_second, 10);
        src.values
            .insert("HEIMDALL_BIND".into(), "127.0.0.1:5000".into());
        assert_eq!(Settings::from_source(&src).unwrap().bind.port(), 5000);
    }

    #[test]
    fn norns_api_key_is_read() {
        let s = settings(&[("NORNS_API_KEY", "k")]).unwrap();
        assert_eq!(s.api_key.unwrap().expose_secret(), "k");
    }
}
