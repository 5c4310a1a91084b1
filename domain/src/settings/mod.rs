//! Typed settings, read once at start-up from the environment and an optional
//! `heimdall.toml` (same keys as the environment variables; the environment
//! wins). Each field names the variable that sets it. Secrets are wrapped in
//! [`SecretString`] so they cannot be printed by accident, and a bad value
//! stops start-up with a message that names the setting.
//!
//! The settings an admin changes while Heimdall runs are in [`runtime`],
//! stored as rows by [`store`].
//!
//! Reading is in two steps: `source` gathers the raw values (the file,
//! then the environment over it) and `load` turns them into [`Settings`],
//! checking every value.
//!
//! This module must never log or format a secret's value.

mod load;
pub mod runtime;
pub mod runtime_setting;
mod source;
pub mod store;
#[cfg(test)]
mod tests;

pub use load::{
    check_purpose_name, parse_marketing_stop_phrases, template_name_from_setting,
    DEFAULT_MARKETING_STOP_PHRASES,
};
pub use source::{Source, ValueSource};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

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
    /// ([`runtime_setting::RuntimeSetting::variable`]).
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
    /// `HEIMDALL_AUDIT_ANCHOR_URL`: where the daily anchor of the audit
    /// chain's heads is POSTed as JSON (it may carry a token: secret); like
    /// the Discord webhook, a public address unless `HEIMDALL_FETCH_ALLOWLIST`
    /// names it. Unset: the anchor goes to the log and `audit_anchors` only.
    pub audit_anchor_url: Option<SecretString>,
    /// `HEIMDALL_ERASURE_KEY`: the key of the HMAC-SHA256 that an erased
    /// person's number is kept as (`crate::privacy`), at least 32
    /// characters. Unset: erasure is refused. It must never change once
    /// used: start-up refuses a key that does not match the check value
    /// stored at the first erasure.
    pub erasure_key: Option<SecretString>,
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
    /// `HEIMDALL_DEFAULT_PURPOSE`, default `service`: the purpose a free-form
    /// message that names none is checked for (a template's is its own).
    pub default_purpose: String,
    /// `HEIMDALL_MARKETING_STOP_PHRASES`: per language, the whole messages
    /// that stop marketing only ("STOP PROMOTIONS"), normalised as keywords
    /// are. `(language, phrase)`.
    pub marketing_stop_phrases: Vec<(String, String)>,
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
    /// `HEIMDALL_RETAIN_MESSAGE_BODY_DAYS`, default 90: the content of
    /// outbound messages (text, variables, media link, buttons) older than
    /// this is cleared by housekeeping; the row, its state and its audit stay.
    pub retain_message_body_days: u32,
    /// `HEIMDALL_RETAIN_INBOUND_TEXT_DAYS`, default 90: the text and media
    /// links of inbound messages older than this are cleared; the row (who,
    /// when, the keyword it was read as: a STOP) stays.
    pub retain_inbound_text_days: u32,
    /// `HEIMDALL_RETAIN_CONSENT_EVIDENCE_DAYS`, default 1826 (five years):
    /// the IP address and user agent of a consent revoked longer ago than
    /// this are redacted (through the audit chain); a consent in force keeps
    /// them.
    pub retain_consent_evidence_days: u32,
}

impl Settings {
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
