//! The real application in-process on port 0, with a fresh database (and
//! PostgreSQL/Redis when the run asks for them), for HTTP-level tests.

#![allow(dead_code)]

use std::sync::Arc;

use heimdall_domain::settings::{Settings, Source};
use heimdall_domain::Core;
use heimdall_server::startup::{Application, Options};

pub const AUTH_TOKEN: &str = "test-auth-token";
pub const APP_SECRET: &str = "test-app-secret";
pub const VERIFY_TOKEN: &str = "test-verify-token";
pub const API_KEY: &str = "test-api-key-0123456789";
pub const ALL_SCOPES: &str = "send,reminders,schedules,contacts:read,contacts:write,contacts:erase,consents:read,consents:write,forms:read,forms:write";

pub struct TestApp {
    pub base: String,
    pub core: Arc<Core>,
    pub http: reqwest::Client,
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub dir: tempfile::TempDir,
}

impl TestApp {
    /// Twilio and Meta configured with test credentials (signatures are
    /// checked against them); providers point at a closed port unless the
    /// test says otherwise, so nothing is sent anywhere.
    pub async fn spawn(extra: &[(&str, &str)]) -> TestApp {
        Self::spawn_with(extra, true).await
    }

    pub async fn spawn_with(extra: &[(&str, &str)], workers: bool) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let url = heimdall_domain::testing::fresh_database_url(dir.path()).await;
        let data = dir.path().join("data").display().to_string();
        let mut pairs: Vec<(String, String)> = vec![
            ("HEIMDALL_DATABASE_URL".into(), url),
            ("HEIMDALL_DATA_DIR".into(), data),
            ("HEIMDALL_BIND".into(), "127.0.0.1:0".into()),
            ("HEIMDALL_API_KEY".into(), API_KEY.into()),
            // Every scope, unless a test narrows it (the scopes' own tests).
            ("HEIMDALL_API_KEY_SCOPES".into(), ALL_SCOPES.into()),
            (
                "TWILIO_ACCOUNT_SID".into(),
                "ACsandbox0000000000000000000000000".into(),
            ),
            ("TWILIO_AUTH_TOKEN".into(), AUTH_TOKEN.into()),
            ("TWILIO_WHATSAPP_NUMBER".into(), "+14155238886".into()),
            ("TWILIO_SMS_NUMBER".into(), "+14155550100".into()),
            ("TWILIO_API_BASE".into(), "http://127.0.0.1:9".into()),
            ("WHATSAPP_ACCESS_TOKEN".into(), "test-meta-token".into()),
            ("WHATSAPP_PHONE_NUMBER_ID".into(), "100000000000001".into()),
            ("WHATSAPP_APP_SECRET".into(), APP_SECRET.into()),
            ("WHATSAPP_VERIFY_TOKEN".into(), VERIFY_TOKEN.into()),
            ("HEIMDALL_RECIPIENT_PACE_SECONDS".into(), "0".into()),
        ];
        if let Some(r) = heimdall_domain::testing::redis_url() {
            pairs.push(("HEIMDALL_REDIS_URL".into(), r));
            pairs.push((
                "HEIMDALL_REDIS_NAMESPACE".into(),
                heimdall_domain::testing::unique("app"),
            ));
        }
        for (k, v) in extra {
            pairs.retain(|(key, _)| key != k);
            pairs.push((k.to_string(), v.to_string()));
        }
        let settings = Settings::from_source(&Source::from_pairs(pairs)).expect("settings");
        let app = Application::build(settings, Options { workers })
            .await
            .expect("build app");
        let base = format!("http://127.0.0.1:{}", app.port());
        let core = app.core().clone();
        let (stop, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(app.run_until_stopped(Some(rx)));
        TestApp {
            base,
            core,
            http: reqwest::Client::new(),
            stop,
            task: Some(task),
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    /// POST a form to a Twilio webhook path, signed as Twilio signs it.
    pub async fn twilio_post(&self, path: &str, params: &[(&str, &str)]) -> reqwest::Response {
        let url = self.url(path);
        let owned: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let sig = heimdall_domain::signature::twilio_signature(AUTH_TOKEN, &url, &owned);
        self.http
            .post(&url)
            .header("X-Twilio-Signature", sig)
            .form(&owned)
            .send()
            .await
            .unwrap()
    }

    pub async fn api_post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .header("X-API-Key", API_KEY)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn api_get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .header("X-API-Key", API_KEY)
            .send()
            .await
            .unwrap()
    }
}

/// Every sender (WhatsApp and SMS numbers) activated by an admin.
pub async fn activate_senders(app: &TestApp) {
    for sender in heimdall_domain::access::authz::list_senders(&app.core)
        .await
        .unwrap()
    {
        heimdall_domain::sending::senders::set_sender_active(
            &app.core,
            &sender.id,
            true,
            "admin@example.com",
            heimdall_domain::access::accounts::Role::Admin,
        )
        .await
        .unwrap();
    }
}

/// The sandbox in-process as the Twilio account the app is configured with, the app
/// (with `extra` settings) sending to it, and its senders activated.
pub async fn app_with_sandbox(
    extra: &[(&str, &str)],
) -> (heimdall_sandbox::SandboxHandle, TestApp) {
    let sandbox = heimdall_sandbox::start(
        heimdall_sandbox::SandboxConfig {
            account_sid: "ACsandbox0000000000000000000000000".into(),
            auth_token: secrecy::SecretString::from(AUTH_TOKEN),
            whatsapp_number: "+14155238886".into(),
            sms_number: "+14155550100".into(),
            ..Default::default()
        },
        std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap(),
    )
    .await
    .unwrap();
    let base = sandbox.base_url().to_string();
    let mut pairs = vec![("TWILIO_API_BASE", base.as_str())];
    pairs.extend_from_slice(extra);
    let app = TestApp::spawn(&pairs).await;
    activate_senders(&app).await;
    (sandbox, app)
}

/// A Twilio inbound WhatsApp message's form parameters.
pub fn inbound(sid: &str, from: &str, body: &str) -> Vec<(&'static str, String)> {
    vec![
        ("MessageSid", sid.to_string()),
        ("SmsMessageSid", sid.to_string()),
        (
            "AccountSid",
            "ACsandbox0000000000000000000000000".to_string(),
        ),
        ("From", format!("whatsapp:{from}")),
        ("To", "whatsapp:+14155238886".to_string()),
        ("Body", body.to_string()),
        ("NumMedia", "0".to_string()),
        ("ProfileName", "Kari".to_string()),
        ("WaId", from.trim_start_matches('+').to_string()),
    ]
}

pub fn as_refs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, s)| (*k, s.as_str())).collect()
}
