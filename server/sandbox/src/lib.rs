//! # Heimdall's sandbox
//!
//! A local stand-in for the services Heimdall talks to, on one port, so that
//! a newcomer, a demo or a test sees the whole flow with no accounts:
//!
//! * **Twilio Messages API** (2010-04-01): `POST/GET
//!   /2010-04-01/Accounts/{AccountSid}/Messages.json`, `GET
//!   .../Messages/{Sid}.json`, with HTTP Basic auth (401/20003), Twilio's
//!   validation errors (21604, 21603, 21602, 21211, ...), its documented
//!   test-number errors and the magic numbers below. Every accepted message
//!   walks `queued -> sending -> sent -> delivered (-> read on WhatsApp)`, one
//!   step per `status_step`, and each step after the first is POSTed to the
//!   message's `StatusCallback` exactly as Twilio does: form-encoded, signed
//!   with `X-Twilio-Signature` over the callback URL as given.
//! * **Twilio Content API** (v1): `GET /v1/Content` (paged), `GET
//!   /v1/Content/{sid}`, `GET /v1/Content/{sid}/ApprovalRequests`, seeded
//!   with [`seeded_templates`]; `POST /v1/Content` (any documented type; the
//!   text, quick-reply, list-picker and media types checked as Twilio
//!   does), `POST /v1/Content/{sid}/ApprovalRequests/whatsapp` (pending
//!   until `POST /sandbox/templates` approves or rejects it), `DELETE
//!   /v1/Content/{sid}`.
//! * **Meta Graph API**: `POST /{version}/{phone_number_id}/messages` with a
//!   bearer token (401/190 otherwise): text, media, templates, interactive
//!   messages, read receipts; status webhooks (`sent`, `delivered`, `read`)
//!   go to `{heimdall_url}/webhooks/meta`, signed with `X-Hub-Signature-256`;
//!   `POST|GET /{version}/{waba_id}/message_templates` create and list
//!   message templates (pending until `POST /sandbox/templates` approves or
//!   rejects them).
//! * **Discord webhook**: `POST /api/webhooks/{id}/{token}` (also under
//!   `/discord/webhooks/...`) records alerts and answers 204; it can be told
//!   to answer 429 first.
//! * **Inspection and control** under `/sandbox/`: `GET /sandbox` (what this
//!   is, magic numbers), `GET /sandbox/messages`, `GET
//!   /sandbox/messages/{sid}`, `GET /sandbox/alerts`, `POST /sandbox/reset`,
//!   `GET|POST /sandbox/templates`, `POST /sandbox/discord/rate-limit`
//!   (`{"times": 1, "retry_after": 0.2}`).
//! * **Playing the person**: `POST /sandbox/inbound` with `{"from": "+1...",
//!   "body": "STOP"}` (optional `channel` `whatsapp`|`sms`, `to`,
//!   `profile_name`, `button_text`, `button_payload`, `provider`
//!   `twilio`|`meta`) sends Heimdall the exact signed request Twilio (or Meta)
//!   would, and answers `{"status", "message_sid", "response_body"}`.
//!
//! Every response carries `X-Heimdall-Sandbox: true`, and the sandbox says in
//! its log that it is one: it must never be mistaken for production.
//!
//! ## Magic numbers
//!
//! Recipients (`To`, with or without `whatsapp:`), all valid numbers for
//! libphonenumber so that Heimdall's own checks let them through:
//!
//! | number | behaviour |
//! |---|---|
//! | `+15005550001` | 400, 21211: the 'To' number is not a valid phone number |
//! | `+15005550002` | 400, 21612: cannot be reached from the 'From' number |
//! | `+15005550003` | 400, 21408: no permission for the 'To' number's region |
//! | `+15005550004` | 400, 21610: the recipient unsubscribed (STOP) |
//! | `+15005550009` | 400, 21614: not a mobile number |
//! | `+12025550107` | accepted, then `failed` with 63007 |
//! | `+12025550116` | accepted, then `failed` with 63016 |
//! | `+12025550132` | accepted, then `undelivered` with 63032 |
//! | `+12025550110` | accepted, then `failed` with 21610 |
//! | `+12025550103` | accepted, then `undelivered` with 30003 |
//! | `+12025550126` | Meta: accepted, then a `failed` status with 131026 |
//! | `+12025550147` | Meta: accepted, then a `failed` status with 131047 |
//! | `+12025550120` | the create request answers after 2 s |
//! | `+12025550129` | HTTP 429 (20429) for the first 2 create requests, then success |
//! | `+12025550150` | HTTP 500 (20500) for the first 2 create requests, then success |
//! | `+12025550141` | Twilio: accepted (and delivered), then the connection breaks before the answer's body |
//!
//! Senders (`From`): `+15005550006` is a valid sender (as is any valid
//! number); `+15005550001` gives 21212, `+15005550007` 21606, `+15005550008`
//! 21611. The same table is in [`MAGIC_RECIPIENTS`] and [`MAGIC_SENDERS`].
//!
//! ## Credentials
//!
//! The sandbox checks the credentials Heimdall is configured with
//! (`TWILIO_ACCOUNT_SID`, `TWILIO_AUTH_TOKEN`, `WHATSAPP_ACCESS_TOKEN`,
//! `WHATSAPP_APP_SECRET`, `WHATSAPP_PHONE_NUMBER_ID`), or the defaults
//! [`DEFAULT_ACCOUNT_SID`], [`DEFAULT_AUTH_TOKEN`], [`DEFAULT_META_TOKEN`],
//! [`DEFAULT_APP_SECRET`] when they are unset. It never logs a secret.
//!
//! ## The official Twilio library
//!
//! `tests/official_twilio_library.rs` drives `tests/twilio_official.py`,
//! which creates and fetches a message with Twilio's own Python library,
//! pointed at the sandbox by setting `client.api.base_url` (the library's
//! per-domain base URL). It needs the `twilio` package:
//!
//! ```text
//! python3 -m pip install twilio
//! ```
//!
//! (or in a virtual environment, e.g. `python3 -m venv target/pyenv &&
//! target/pyenv/bin/pip install twilio`, then `HEIMDALL_PYTHON=target/pyenv/bin/python`).
//! The test fails, saying so, when the package is missing. `HEIMDALL_PYTHON`
//! names the interpreter (default `python3`).

// Request helpers return `Result<_, HttpResponse>` so a handler can answer
// early with the provider's error shape; one response per request, not a hot path.
#![allow(clippy::result_large_err)]

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::middleware::DefaultHeaders;
use actix_web::{web, App, HttpServer};
use heimdall_domain::settings::{MetaSettings, TwilioSettings};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

mod content_api;
mod control;
mod discord_api;
pub mod magic;
mod meta_api;
mod meta_templates;
mod state;
pub mod templates;
mod twilio_api;
mod walk;

pub use magic::{MAGIC_RECIPIENTS, MAGIC_SENDERS};
pub use state::{CallbackRecord, DiscordPost, SandboxMessage, SandboxState, StatusEvent};
pub use templates::{content_sid, seeded_templates, SeedTemplate, StoredTemplate, TemplateSpec};

/// The account SID the sandbox accepts when none is configured: 34
/// characters, deliberately not hex, so it can never look like a real SID.
pub const DEFAULT_ACCOUNT_SID: &str = "ACsandbox0000000000000000000000000";
pub const DEFAULT_AUTH_TOKEN: &str = "sandbox-auth-token";
pub const DEFAULT_META_TOKEN: &str = "sandbox-meta-token";
pub const DEFAULT_APP_SECRET: &str = "sandbox-app-secret";
pub const DEFAULT_PHONE_NUMBER_ID: &str = "100000000000001";
/// The WhatsApp Business Account id the sandbox answers to (and reports in webhooks).
pub const DEFAULT_WABA_ID: &str = "100000000000000";
/// The WhatsApp sender inbound messages are addressed to by default.
pub const DEFAULT_WHATSAPP_NUMBER: &str = "+14155238886";
/// The SMS sender inbound messages are addressed to by default (Twilio's valid test sender).
pub const DEFAULT_SMS_NUMBER: &str = "+15005550006";
/// The webhook id and token in [`SandboxHandle::discord_webhook_url`].
pub const DISCORD_WEBHOOK_ID: &str = "100000000000000000";
pub const DISCORD_WEBHOOK_TOKEN: &str = "sandbox-discord-token";

/// What the sandbox needs to know.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// `TWILIO_ACCOUNT_SID`; default [`DEFAULT_ACCOUNT_SID`].
    pub account_sid: String,
    /// `TWILIO_AUTH_TOKEN`; default [`DEFAULT_AUTH_TOKEN`].
    pub auth_token: SecretString,
    /// `WHATSAPP_ACCESS_TOKEN`; default [`DEFAULT_META_TOKEN`].
    pub meta_access_token: SecretString,
    /// `WHATSAPP_APP_SECRET`; default [`DEFAULT_APP_SECRET`].
    pub meta_app_secret: SecretString,
    /// `WHATSAPP_PHONE_NUMBER_ID`; default [`DEFAULT_PHONE_NUMBER_ID`].
    pub meta_phone_number_id: String,
    /// Time between status steps (`HEIMDALL_STATUS_STEP_MS`), default 300 ms.
    pub status_step: Duration,
    /// Heimdall's public base URL, for `POST /sandbox/inbound` and Meta webhooks.
    pub heimdall_url: Option<Url>,
    /// `TWILIO_WHATSAPP_NUMBER`: the default `To` of inbound WhatsApp messages.
    pub whatsapp_number: String,
    /// `TWILIO_SMS_NUMBER`: the default `To` of inbound SMS.
    pub sms_number: String,
    /// `WHATSAPP_VERIFY_TOKEN` Heimdall answers Meta's handshake with.
    pub meta_verify_token: SecretString,
    /// `WHATSAPP_BUSINESS_ACCOUNT_ID`: the account whose message templates
    /// `/{version}/{waba_id}/message_templates` serves; default [`DEFAULT_WABA_ID`].
    pub meta_business_account_id: String,
}

/// A secret made for one start of the sandbox: when no credentials are
/// configured, nothing fixed (and so guessable) stands in for them, or a
/// deployment that forgot its credentials would accept webhooks signed
/// with a published key.
fn fresh_secret(prefix: &str) -> SecretString {
    use rand::RngCore;
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    SecretString::from(format!("{prefix}-{hex}"))
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            account_sid: DEFAULT_ACCOUNT_SID.into(),
            auth_token: SecretString::from(DEFAULT_AUTH_TOKEN),
            meta_access_token: SecretString::from(DEFAULT_META_TOKEN),
            meta_app_secret: SecretString::from(DEFAULT_APP_SECRET),
            meta_phone_number_id: DEFAULT_PHONE_NUMBER_ID.into(),
            status_step: Duration::from_millis(300),
            heimdall_url: None,
            whatsapp_number: DEFAULT_WHATSAPP_NUMBER.into(),
            sms_number: DEFAULT_SMS_NUMBER.into(),
            meta_verify_token: SecretString::from("sandbox-verify-token"),
            meta_business_account_id: DEFAULT_WABA_ID.into(),
        }
    }
}

impl SandboxConfig {
    /// The same credentials Heimdall reads; secrets that are unset are made
    /// at random for this start (never the published defaults of
    /// [`SandboxConfig::default`], which are for tests that set them on
    /// purpose). `heimdall_url` is Heimdall's public base URL.
    pub fn from_settings(settings: &heimdall_domain::Settings) -> Self {
        let defaults = SandboxConfig {
            auth_token: fresh_secret("sandbox-auth"),
            meta_access_token: fresh_secret("sandbox-meta"),
            meta_app_secret: fresh_secret("sandbox-app"),
            meta_verify_token: fresh_secret("sandbox-verify"),
            ..SandboxConfig::default()
        };
        let twilio = settings.twilio.as_ref();
        let meta = settings.meta.as_ref();
        SandboxConfig {
            account_sid: twilio
                .map(|t| t.account_sid.clone())
                .unwrap_or(defaults.account_sid),
            auth_token: twilio
                .map(|t| t.auth_token.clone())
                .unwrap_or(defaults.auth_token),
            meta_access_token: meta
                .map(|m| m.access_token.clone())
                .unwrap_or(defaults.meta_access_token),
            meta_app_secret: meta
                .map(|m| m.app_secret.clone())
                .unwrap_or(defaults.meta_app_secret),
            meta_phone_number_id: meta
                .map(|m| m.phone_number_id.clone())
                .unwrap_or(defaults.meta_phone_number_id),
            status_step: Duration::from_millis(settings.sandbox_step_ms),
            heimdall_url: Some(settings.public_base()),
            whatsapp_number: twilio
                .and_then(|t| t.whatsapp_number.clone())
                .unwrap_or(defaults.whatsapp_number),
            meta_verify_token: meta
                .map(|m| m.verify_token.clone())
                .unwrap_or(defaults.meta_verify_token),
            sms_number: twilio
                .and_then(|t| t.sms_number.clone())
                .unwrap_or(defaults.sms_number),
            meta_business_account_id: meta
                .and_then(|m| m.business_account_id.clone())
                .unwrap_or(defaults.meta_business_account_id),
        }
    }
}

/// Start the sandbox on `listener` (bind it to port 0 for a free port).
/// Background work (status walks, callbacks) runs on the current Tokio runtime.
pub async fn start(config: SandboxConfig, listener: TcpListener) -> anyhow::Result<SandboxHandle> {
    let address = listener.local_addr()?;
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .user_agent("heimdall-sandbox")
        .build()?;
    let shared = Arc::new(state::Shared::new(
        config,
        http,
        tokio::runtime::Handle::current(),
    ));
    let data = web::Data::new(shared.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(1024 * 1024))
            .wrap(DefaultHeaders::new().add(("X-Heimdall-Sandbox", "true")))
            .configure(control::routes)
            .configure(twilio_api::routes)
            .configure(content_api::routes)
            .configure(discord_api::routes)
            .configure(meta_api::routes)
            .configure(meta_templates::routes)
    })
    .workers(2)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    let server_handle = server.handle();
    let task = tokio::spawn(server);
    tracing::warn!(
        address = %address,
        account_sid = %shared.config.account_sid,
        "SANDBOX: Heimdall's stand-in for Twilio, Meta and Discord is listening; nothing sent to it reaches a person. Never use it in production."
    );
    Ok(SandboxHandle {
        shared,
        server: server_handle,
        task,
        port: address.port(),
        host: address.ip(),
    })
}

/// A running sandbox. Dropping it leaves the sandbox running; call
/// [`stop`](Self::stop) to end it.
pub struct SandboxHandle {
    shared: Arc<state::Shared>,
    server: actix_web::dev::ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    port: u16,
    host: std::net::IpAddr,
}

impl std::fmt::Debug for SandboxHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxHandle")
            .field("base_url", &self.base_url().as_str())
            .finish()
    }
}

impl SandboxHandle {
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://{host}:{port}/` (an unspecified bind address shows as 127.0.0.1).
    pub fn base_url(&self) -> Url {
        let host = match self.host {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_string(),
            std::net::IpAddr::V4(ip) => ip.to_string(),
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        };
        Url::parse(&format!("http://{host}:{}/", self.port))
            .expect("an IP address and a port make a valid URL")
    }

    /// Tell the sandbox where Heimdall is (for inbound messages and Meta webhooks).
    pub fn set_heimdall_url(&self, url: Url) {
        self.shared.set_heimdall_url(Some(url));
    }

    pub fn heimdall_url(&self) -> Option<Url> {
        self.shared.heimdall_url()
    }

    /// The sandbox's memory: messages, alerts, templates.
    pub fn state(&self) -> SandboxState {
        SandboxState(self.shared.clone())
    }

    /// Settings for a Twilio client pointed at this sandbox.
    pub fn twilio_settings(&self) -> TwilioSettings {
        TwilioSettings {
            account_sid: self.shared.config.account_sid.clone(),
            auth_token: self.shared.config.auth_token.clone(),
            whatsapp_number: Some(self.shared.config.whatsapp_number.clone()),
            sms_number: Some(self.shared.config.sms_number.clone()),
            api_base: self.base_url(),
            content_base: self.base_url(),
        }
    }

    /// Settings for a Meta client pointed at this sandbox.
    pub fn meta_settings(&self) -> MetaSettings {
        MetaSettings {
            access_token: self.shared.config.meta_access_token.clone(),
            phone_number_id: self.shared.config.meta_phone_number_id.clone(),
            app_secret: self.shared.config.meta_app_secret.clone(),
            verify_token: self.shared.config.meta_verify_token.clone(),
            graph_base: self.base_url(),
            graph_version: "v21.0".into(),
            business_account_id: Some(self.shared.config.meta_business_account_id.clone()),
        }
    }

    /// A Discord webhook URL on this sandbox.
    pub fn discord_webhook_url(&self) -> SecretString {
        SecretString::from(format!(
            "{}api/webhooks/{DISCORD_WEBHOOK_ID}/{DISCORD_WEBHOOK_TOKEN}",
            self.base_url()
        ))
    }

    /// The auth token the sandbox signs callbacks with (for tests that verify them).
    pub fn auth_token(&self) -> &str {
        self.shared.config.auth_token.expose_secret()
    }

    /// The Meta app secret the sandbox signs webhooks with.
    pub fn meta_app_secret(&self) -> &str {
        self.shared.config.meta_app_secret.expose_secret()
    }

    /// Stop the server and every status walk.
    pub async fn stop(self) {
        self.shared.shutdown.send_replace(true);
        self.server.stop(true).await;
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "sandbox server task ended abnormally");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use heimdall_domain::settings::Source;

    #[test]
    fn default_account_sid_has_twilios_shape_but_is_not_hex() {
        assert_eq!(DEFAULT_ACCOUNT_SID.len(), 34);
        assert!(DEFAULT_ACCOUNT_SID.starts_with("AC"));
        assert!(!DEFAULT_ACCOUNT_SID[2..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit()));
        // Heimdall's own settings accept it, so it can be configured explicitly.
        let settings = heimdall_domain::Settings::from_source(&Source::from_pairs([
            ("TWILIO_ACCOUNT_SID", DEFAULT_ACCOUNT_SID),
            ("TWILIO_AUTH_TOKEN", DEFAULT_AUTH_TOKEN),
        ]))
        .expect("valid settings");
        assert_eq!(
            SandboxConfig::from_settings(&settings).account_sid,
            DEFAULT_ACCOUNT_SID
        );
    }

    #[test]
    fn from_settings_reads_heimdalls_settings_or_defaults() {
        let empty = heimdall_domain::Settings::from_source(&Source::from_pairs(Vec::<(
            String,
            String,
        )>::new()))
        .expect("defaults");
        let c = SandboxConfig::from_settings(&empty);
        assert_eq!(c.account_sid, DEFAULT_ACCOUNT_SID);
        // Security finding 5: unset secrets are made at random per start,
        // never the published defaults.
        let again = SandboxConfig::from_settings(&empty);
        for (secret, published, twin) in [
            (&c.auth_token, DEFAULT_AUTH_TOKEN, &again.auth_token),
            (
                &c.meta_access_token,
                DEFAULT_META_TOKEN,
                &again.meta_access_token,
            ),
            (
                &c.meta_app_secret,
                DEFAULT_APP_SECRET,
                &again.meta_app_secret,
            ),
            (
                &c.meta_verify_token,
                "sandbox-verify-token",
                &again.meta_verify_token,
            ),
        ] {
            assert_ne!(secret.expose_secret(), published);
            assert_ne!(secret.expose_secret(), twin.expose_secret());
            assert!(secret.expose_secret().len() > 40);
        }
        assert_eq!(c.meta_phone_number_id, DEFAULT_PHONE_NUMBER_ID);
        assert_eq!(c.status_step, Duration::from_millis(300));
        assert_eq!(
            c.heimdall_url.as_ref().map(Url::as_str),
            Some("http://127.0.0.1:3000/")
        );

        let set = heimdall_domain::Settings::from_source(&Source::from_pairs([
            ("TWILIO_ACCOUNT_SID", "ACtestaccount000000000000000000001"),
            ("TWILIO_AUTH_TOKEN", "configured-token"),
            ("TWILIO_WHATSAPP_NUMBER", "whatsapp:+14155550100"),
            ("WHATSAPP_ACCESS_TOKEN", "configured-meta-token"),
            ("WHATSAPP_APP_SECRET", "configured-secret"),
            ("WHATSAPP_PHONE_NUMBER_ID", "555"),
            ("HEIMDALL_STATUS_STEP_MS", "40"),
            ("HEIMDALL_PUBLIC_URL", "https://heimdall.example"),
        ]))
        .expect("valid settings");
        let c = SandboxConfig::from_settings(&set);
        assert_eq!(c.account_sid, "ACtestaccount000000000000000000001");
        assert_eq!(c.auth_token.expose_secret(), "configured-token");
        assert_eq!(c.meta_access_token.expose_secret(), "configured-meta-token");
        assert_eq!(c.meta_app_secret.expose_secret(), "configured-secret");
        assert_eq!(c.meta_phone_number_id, "555");
        assert_eq!(c.whatsapp_number, "+14155550100");
        assert_eq!(c.status_step, Duration::from_millis(40));
        assert_eq!(
            c.heimdall_url.as_ref().map(Url::as_str),
            Some("https://heimdall.example/")
        );
        let debug = format!("{c:?}");
        for secret in [
            "configured-token",
            "configured-meta-token",
            "configured-secret",
        ] {
            assert!(!debug.contains(secret), "{secret} in Debug output");
        }
    }
}
