//! Test support shared by every crate's tests (feature `testing`): a fresh
//! database per test (a SQLite file, or a PostgreSQL database cloned from a
//! migrated template), Redis when the run asks for it, a manual clock, a
//! recording queue and a scriptable provider.
//!
//! `HEIMDALL_TEST_BACKEND=postgres` (with `HEIMDALL_TEST_POSTGRES_URL`,
//! default `postgres://postgres@127.0.0.1:5432/postgres`) and
//! `HEIMDALL_TEST_REDIS_URL` switch the storage under every test.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{TimeZone, Utc};
use futures::future::BoxFuture;
use sea_orm::{ConnectionTrait, Statement};

use crate::channels::{Accepted, MessageProvider, OutboundRequest, Rejected};
use crate::clock::ManualClock;
use crate::core::{CoreParts, Providers};
use crate::sending::queue::RecordingQueue;
use crate::settings::{Settings, Source};
use crate::store::db::Db;
use crate::Core;

/// Which storage the tests run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres { admin_url: String },
}

pub fn backend() -> Backend {
    match std::env::var("HEIMDALL_TEST_BACKEND").as_deref() {
        Ok("postgres") => Backend::Postgres {
            admin_url: std::env::var("HEIMDALL_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
        },
        _ => Backend::Sqlite,
    }
}

pub fn redis_url() -> Option<String> {
    std::env::var("HEIMDALL_TEST_REDIS_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

/// A unique name for this test's database and Redis namespace.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        Utc::now().timestamp_micros(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A database URL for one test; the database exists and is empty (SQLite)
/// or migrated (PostgreSQL, cloned from a template migrated once per process).
pub async fn fresh_database_url(dir: &std::path::Path) -> String {
    match backend() {
        Backend::Sqlite => format!("sqlite://{}/heimdall.db?mode=rwc", dir.display()),
        Backend::Postgres { admin_url } => {
            static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
            let template = TEMPLATE
                .get_or_init(|| async {
                    let name = unique("heimdall_tmpl");
                    let admin = Db::connect_url(&admin_url, false)
                        .await
                        .expect("connect to PostgreSQL for tests");
                    admin
                        .conn
                        .execute_raw(Statement::from_string(
                            admin.backend(),
                            format!("CREATE DATABASE {name}"),
                        ))
                        .await
                        .expect("create template database");
                    let url = replace_db(&admin_url, &name);
                    let db = Db::connect_url(&url, false)
                        .await
                        .expect("connect to template");
                    db.migrate().await.expect("migrate template");
                    db.conn.close().await.ok();
                    name
                })
                .await;
            let name = unique("heimdall_test");
            let admin = Db::connect_url(&admin_url, false)
                .await
                .expect("connect to PostgreSQL for tests");
            // CREATE DATABASE ... TEMPLATE fails while another session uses
            // the template; retry briefly.
            let mut last = None;
            for _ in 0..50 {
                match admin
                    .conn
                    .execute_raw(Statement::from_string(
                        admin.backend(),
                        format!("CREATE DATABASE {name} TEMPLATE {template}"),
                    ))
                    .await
                {
                    Ok(_) => {
                        last = None;
                        break;
                    }
                    Err(e) => {
                        last = Some(e);
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
            }
            if let Some(e) = last {
                panic!("could not create a test database: {e}");
            }
            admin.conn.close().await.ok();
            replace_db(&admin_url, &name)
        }
    }
}

fn replace_db(url: &str, name: &str) -> String {
    let mut u = url::Url::parse(url).expect("valid PostgreSQL URL");
    u.set_path(&format!("/{name}"));
    u.to_string()
}

/// Something a test runs at the moment of each provider call (to check an
/// invariant against the database as it is then).
pub type SendHook = Arc<dyn Fn(OutboundRequest) -> BoxFuture<'static, ()> + Send + Sync>;

/// A provider that records what it was asked to send and answers from a
/// script (per recipient), accepting by default.
#[derive(Default)]
pub struct FakeProvider {
    pub sent: Mutex<Vec<OutboundRequest>>,
    script: Mutex<HashMap<String, VecDeque<Result<Accepted, Rejected>>>>,
    counter: AtomicU64,
    hook: Mutex<Option<SendHook>>,
}

impl std::fmt::Debug for FakeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeProvider")
            .field("sent", &self.count())
            .finish()
    }
}

impl FakeProvider {
    /// Run `hook` at every call, before it is recorded and answered.
    pub fn on_send(&self, hook: SendHook) {
        *self.hook.lock().unwrap() = Some(hook);
    }

    /// Queue answers for one recipient (E.164), used in order.
    pub fn script(&self, to: &str, answers: Vec<Result<Accepted, Rejected>>) {
        self.script
            .lock()
            .unwrap()
            .entry(to.to_string())
            .or_default()
            .extend(answers);
    }

    pub fn sent_to(&self, to: &str) -> usize {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.to.as_str() == to)
            .count()
    }

    pub fn count(&self) -> usize {
        self.sent.lock().unwrap().len()
    }

    pub fn accepted(&self) -> Accepted {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        Accepted {
            provider: "twilio",
            sid: format!("SM{n:032x}"),
            status: "queued".into(),
            price: None,
            price_unit: None,
        }
    }
}

impl MessageProvider for FakeProvider {
    fn send<'a>(
        &'a self,
        request: &'a OutboundRequest,
    ) -> BoxFuture<'a, Result<Accepted, Rejected>> {
        Box::pin(async move {
            let hook = self.hook.lock().unwrap().clone();
            if let Some(hook) = hook {
                hook(request.clone()).await;
            }
            self.sent.lock().unwrap().push(request.clone());
            let scripted = self
                .script
                .lock()
                .unwrap()
                .get_mut(request.to.as_str())
                .and_then(|q| q.pop_front());
            match scripted {
                Some(Ok(mut a)) => {
                    if a.sid.is_empty() {
                        a.sid = self.accepted().sid;
                    }
                    Ok(a)
                }
                Some(Err(e)) => Err(e),
                None => Ok(self.accepted()),
            }
        })
    }
}

/// One test's world.
pub struct TestEnv {
    pub core: Arc<Core>,
    pub clock: ManualClock,
    pub provider: Arc<FakeProvider>,
    pub queue: Arc<RecordingQueue>,
    pub dir: tempfile::TempDir,
}

impl TestEnv {
    /// The test's world (settings, storage, clock, provider) around another
    /// queue: the real apalis queue, in the jobs crate's tests.
    pub fn core_with_queue(&self, queue: Arc<dyn crate::sending::queue::JobQueue>) -> Arc<Core> {
        Core::new(CoreParts {
            settings: (*self.core.settings).clone(),
            db: self.core.db.clone(),
            redis: self.core.redis.clone(),
            clock: self.core.clock.clone(),
            queue,
            providers: self.core.providers.clone(),
            alerts: None,
        })
    }

    /// A Tuesday at 12:00 UTC, so SMS quiet hours are not in play unless a
    /// test moves the clock.
    pub fn start_time() -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 17, 12, 0, 0).unwrap()
    }

    /// Fresh storage, settings from `pairs` on top of test defaults
    /// (senders configured, pace and tier as given).
    pub async fn new(pairs: &[(&str, &str)]) -> TestEnv {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = fresh_database_url(dir.path()).await;
        let mut all: Vec<(String, String)> = vec![
            ("HEIMDALL_DATABASE_URL".into(), url),
            (
                "TWILIO_ACCOUNT_SID".into(),
                "ACsandbox0000000000000000000000000".into(),
            ),
            ("TWILIO_AUTH_TOKEN".into(), "test-token".into()),
            ("TWILIO_WHATSAPP_NUMBER".into(), "+14155238886".into()),
            ("TWILIO_SMS_NUMBER".into(), "+14155550100".into()),
            (
                "HEIMDALL_PUBLIC_URL".into(),
                "https://heimdall.example.com".into(),
            ),
            (
                "HEIMDALL_DATA_DIR".into(),
                dir.path().join("data").display().to_string(),
            ),
        ];
        if let Some(r) = redis_url() {
            all.push(("HEIMDALL_REDIS_URL".into(), r));
            all.push(("HEIMDALL_REDIS_NAMESPACE".into(), unique("t")));
        }
        for (k, v) in pairs {
            all.retain(|(key, _)| key != k);
            all.push((k.to_string(), v.to_string()));
        }
        let settings = Settings::from_source(&Source::from_pairs(all)).expect("test settings");
        let db = Db::connect(&settings).await.expect("test database");
        db.migrate().await.expect("migrations");
        let redis = crate::core::connect_redis(&settings)
            .await
            .expect("test redis");
        let clock = ManualClock::new(Self::start_time());
        let provider = Arc::new(FakeProvider::default());
        let queue = Arc::new(RecordingQueue::default());
        let core = Core::new(CoreParts {
            settings,
            db,
            redis,
            clock: Arc::new(clock.clone()),
            queue: queue.clone(),
            providers: Providers {
                whatsapp: Some(provider.clone()),
                sms: Some(provider.clone()),
                twilio: None,
                meta: None,
            },
            alerts: None,
        });
        // As at a process's start: the shared limits ready in Redis.
        crate::housekeeping::watch_redis(&core).await;
        TestEnv {
            core,
            clock,
            provider,
            queue,
            dir,
        }
    }

    /// Another process's world on this one's storage: the same database and
    /// Redis namespace, its own core (its own caches, limits, runtime
    /// settings and spool), clock, queue and provider. For the rules that
    /// must hold across processes (`serve` plus `heimdall worker`).
    pub async fn sibling(&self, pairs: &[(&str, &str)]) -> TestEnv {
        use secrecy::ExposeSecret;
        let url = self.core.settings.database_url.expose_secret().to_string();
        let ns = self.core.settings.redis_namespace.clone();
        let mut all: Vec<(&str, &str)> = vec![
            ("HEIMDALL_DATABASE_URL", url.as_str()),
            ("HEIMDALL_REDIS_NAMESPACE", ns.as_str()),
        ];
        all.extend_from_slice(pairs);
        let env = TestEnv::new(&all).await;
        env.clock.set(self.core.now());
        // Its provider's sids continue where this one's are (they are
        // unique across the storage).
        env.provider.counter.store(
            self.provider.counter.load(Ordering::Relaxed) + 1_000_000,
            Ordering::Relaxed,
        );
        env
    }

    /// The texts handed to the provider so far, in order (a template panics: the caller
    /// expected only free-form text).
    pub fn sent_texts(&self) -> Vec<String> {
        self.provider
            .sent
            .lock()
            .unwrap()
            .iter()
            .map(|r| match &r.content {
                crate::channels::Content::Text { body, .. } => body.clone(),
                crate::channels::Content::Interactive(c) => c.plain_text(),
                other => panic!("not a text: {other:?}"),
            })
            .collect()
    }

    /// Message ids enqueued so far (drained).
    pub fn take_enqueued(&self) -> Vec<String> {
        std::mem::take(&mut *self.queue.sends.lock().unwrap())
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }
}

/// A staff member with `role` and no usable password (for tests that act
/// as staff without signing in).
pub async fn staff_user(
    core: &Core,
    email: &str,
    role: crate::access::accounts::Role,
) -> crate::access::accounts::StaffUser {
    use sea_orm::{ActiveModelTrait, Set};
    let now = core.now();
    let m = crate::entities::staff_user::ActiveModel {
        id: Set(crate::clock::new_id()),
        email: Set(email.into()),
        name: Set(None),
        role: Set(role.as_str().into()),
        password_hash: Set("not-a-hash".into()),
        active: Set(true),
        failed_logins: Set(0),
        locked_until: Set(None),
        last_login_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&core.db.conn)
    .await
    .expect("a staff user");
    crate::access::accounts::StaffUser {
        id: m.id,
        email: m.email,
        name: None,
        role,
        active: true,
    }
}

/// The evidence an API client gives for a consent, as the tests record it.
pub fn api_evidence() -> crate::consent::ConsentEvidence {
    crate::consent::ConsentEvidence {
        ip: Some("203.0.113.7".into()),
        user_agent: Some("Mozilla/5.0 test".into()),
        consent_text_version: Some("v1".into()),
        consent_text: Some("I agree to messages.".into()),
        ..Default::default()
    }
}

/// A contact (in Europe/Oslo) with an active API consent on each of `channels`.
pub async fn contact_with_consent(
    core: &Core,
    phone: &str,
    channels: &[crate::channel::Channel],
) -> String {
    let (c, _) = crate::contacts::upsert(
        core,
        &crate::contacts::ContactInput {
            phone: phone.into(),
            name: Some("Test Person".into()),
            time_zone: Some("Europe/Oslo".into()),
            ..Default::default()
        },
    )
    .await
    .expect("the test contact");
    for channel in channels {
        // One consent, as recorded before purposes: it covers both
        // purposes that exist from the start.
        crate::consent::record_opt_in(
            &core.db.conn,
            &c.id,
            *channel,
            None,
            crate::consent::ConsentSource::Api,
            &api_evidence(),
            "test",
            false,
            core.now(),
        )
        .await
        .expect("the test consent");
    }
    c.id
}

/// A `redis-server` of a test's own on a spare loopback port (the machine's
/// Redis is never stopped), without persistence (a restart
/// comes back empty, as Redis without persistence does).
pub struct OwnRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl OwnRedis {
    pub fn start() -> OwnRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a spare port")
            .port();
        let mut r = OwnRedis { port, child: None };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (scripts/test installs it)");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A WhatsApp template send to the contact `contact_id` from the bootstrap
/// API key, its variables by name.
/// The usual test world: `extra` on top of the bootstrap API key, the
/// reminder template's content id and no pause between one person's
/// messages; the senders active and the templates registered.
pub async fn reminder_world(extra: &[(&str, &str)]) -> TestEnv {
    let mut pairs = vec![
        ("HEIMDALL_API_KEY", "test-bootstrap-key"),
        (
            "WA_TEMPLATE_TASK_REMINDER",
            "HX00000000000000000000000000000001",
        ),
        ("HEIMDALL_RECIPIENT_PACE_SECONDS", "0"),
    ];
    pairs.extend_from_slice(extra);
    let env = TestEnv::new(&pairs).await;
    crate::access::authz::register_senders(&env.core, true)
        .await
        .expect("the senders register");
    crate::templates::register_from_settings(&env.core)
        .await
        .expect("the templates register");
    env
}

pub fn template_send(
    contact_id: &str,
    template: &str,
    variables: &[(&str, &str)],
) -> crate::sending::outbound::SendRequest {
    use crate::sending::outbound::{Origin, Recipient, RequestedContent, SendRequest};
    SendRequest {
        recipient: Recipient::Contact(contact_id.to_string()),
        channel: crate::Channel::WhatsApp,
        content: RequestedContent::Template {
            name: template.into(),
            variables: variables
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        },
        origin: Origin::Automation {
            principal: crate::access::authz::ApiPrincipal {
                key_id: None,
                name: "bootstrap".into(),
            },
            source: crate::compliance::message_source::MessageSource::Api,
            reminder_id: None,
        },
        idempotency_key: None,
        purpose: None,
    }
}

/// An approved Twilio template `name` of `category` (tagged with its
/// default purpose), its body `Hi {{1}}` with the variable `name`.
pub async fn approved_template(
    core: &Core,
    name: &str,
    category: &str,
) -> crate::templates::Template {
    crate::templates::upsert(
        &core.db.conn,
        crate::templates::TemplateSpec {
            name: name.into(),
            provider: "twilio".into(),
            provider_id: Some(format!("HX{:0>32}", name.len())),
            category: category.into(),
            language: "en".into(),
            body: "Hi {{1}}".into(),
            variables: vec!["name".into()],
            approval_status: crate::templates::TemplateApproval::Approved,
            rejection_reason: None,
            source: "settings".into(),
        },
        false,
        core.now(),
    )
    .await
    .expect("the test template")
}

/// A task reminder to `phone` (a contact with WhatsApp consent, made if
/// needed), accepted from the bootstrap API key on `core`: its id. Needs the
/// settings `HEIMDALL_API_KEY` and `WA_TEMPLATE_TASK_REMINDER`, with the
/// senders and templates registered.
pub async fn accept_reminder_to(core: &Core, phone: &str) -> String {
    let contact = contact_with_consent(core, phone, &[crate::Channel::WhatsApp]).await;
    crate::sending::outbound::accept(
        core,
        template_send(
            &contact,
            "task_reminder",
            &[("task_name", "Call Bob"), ("due_time", "17:00")],
        ),
    )
    .await
    .expect("the reminder is accepted")
    .message_id
}

/// Poll `done` every 50 ms until it holds; fail the test after `within`.
pub async fn eventually<F, Fut>(what: &str, within: std::time::Duration, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + within;
    while !done().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
