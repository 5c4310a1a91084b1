//! What the sandbox remembers: messages and their status history, templates,
//! Discord posts, fault counters. Inspectable from tests through
//! [`SandboxState`] and over HTTP under `/sandbox/`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use url::Url;

use crate::templates::{seed_store, StoredTemplate, TemplateSpec};
use crate::SandboxConfig;

/// One status a message passed through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusEvent {
    pub status: String,
    pub at: DateTime<Utc>,
}

/// One status callback (Twilio) or webhook (Meta) the sandbox sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackRecord {
    pub status: String,
    pub url: String,
    /// The receiver's HTTP status; `None` when it could not be reached.
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
}

/// A message the sandbox accepted (or, for `direction == "inbound"`, played).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxMessage {
    /// `SM...` (Twilio) or `wamid....` (Meta).
    pub sid: String,
    /// `twilio` or `meta`.
    pub provider: String,
    /// `outbound-api` or `inbound`.
    pub direction: String,
    /// `whatsapp` or `sms`.
    pub channel: String,
    /// As the provider shows it (`whatsapp:+1...` on Twilio's WhatsApp).
    pub to: String,
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    /// The text sent (a template rendered with its variables).
    pub body: Option<String>,
    pub content_sid: Option<String>,
    pub template_name: Option<String>,
    pub language: Option<String>,
    /// Template variables as sent (`{"1": "...", "2": "..."}`).
    pub variables: BTreeMap<String, String>,
    pub media_urls: Vec<String>,
    pub status_callback: Option<String>,
    /// Meta's reply context.
    pub reply_to: Option<String>,
    /// Meta: the request body as received (interactive messages and all).
    pub request: Option<serde_json::Value>,
    pub status: String,
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
    pub price: Option<String>,
    pub num_segments: u32,
    pub history: Vec<StatusEvent>,
    pub callbacks: Vec<CallbackRecord>,
    pub date_created: DateTime<Utc>,
    pub date_updated: DateTime<Utc>,
    pub date_sent: Option<DateTime<Utc>>,
}

impl SandboxMessage {
    /// The statuses in order.
    pub fn statuses(&self) -> Vec<String> {
        self.history.iter().map(|e| e.status.clone()).collect()
    }

    pub fn is_whatsapp(&self) -> bool {
        self.channel == "whatsapp"
    }
}

/// One post to the sandbox's Discord webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscordPost {
    pub webhook_id: String,
    pub received_at: DateTime<Utc>,
    pub payload: serde_json::Value,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub messages: Vec<SandboxMessage>,
    pub index: HashMap<String, usize>,
    pub templates: BTreeMap<String, StoredTemplate>,
    pub alerts: Vec<DiscordPost>,
    /// Discord: how many more posts get a 429, and the `retry_after` they carry.
    pub discord_rate_limit: Option<(u32, f64)>,
    /// Discord posts answered with 429 so far.
    pub discord_rate_limited: u64,
    /// Fault-injection counters per recipient.
    pub faults: HashMap<String, u32>,
    /// Meta `status: read` requests (wamids).
    pub read_receipts: Vec<String>,
}

impl Inner {
    fn new() -> Self {
        Inner {
            messages: Vec::new(),
            index: HashMap::new(),
            templates: seed_store(),
            alerts: Vec::new(),
            discord_rate_limit: None,
            discord_rate_limited: 0,
            faults: HashMap::new(),
            read_receipts: Vec::new(),
        }
    }

    pub fn insert(&mut self, message: SandboxMessage) {
        self.index.insert(message.sid.clone(), self.messages.len());
        self.messages.push(message);
    }

    pub fn get_mut(&mut self, sid: &str) -> Option<&mut SandboxMessage> {
        let i = *self.index.get(sid)?;
        self.messages.get_mut(i)
    }

    pub fn get(&self, sid: &str) -> Option<&SandboxMessage> {
        let i = *self.index.get(sid)?;
        self.messages.get(i)
    }

    pub fn template_by_name(&self, name: &str) -> Option<&StoredTemplate> {
        self.templates
            .values()
            .find(|t| t.whatsapp_name.as_deref().unwrap_or(&t.friendly_name) == name)
    }
}

/// Everything the handlers and background walks share.
pub(crate) struct Shared {
    pub config: SandboxConfig,
    pub heimdall_url: RwLock<Option<Url>>,
    inner: Mutex<Inner>,
    /// For callbacks, webhooks and inbound posts.
    pub http: reqwest::Client,
    /// The runtime `start` was called on: walks and outgoing requests run there.
    pub runtime: tokio::runtime::Handle,
    /// Set to true when the sandbox stops: walks end.
    pub shutdown: watch::Sender<bool>,
}

impl Shared {
    pub fn new(
        config: SandboxConfig,
        http: reqwest::Client,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        let heimdall_url = RwLock::new(config.heimdall_url.clone());
        Shared {
            config,
            heimdall_url,
            inner: Mutex::new(Inner::new()),
            http,
            runtime,
            shutdown: watch::Sender::new(false),
        }
    }

    /// The state, even if a panicking handler poisoned the lock.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn heimdall_url(&self) -> Option<Url> {
        self.heimdall_url
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn set_heimdall_url(&self, url: Option<Url>) {
        *self
            .heimdall_url
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = url;
    }

    pub fn reset(&self) {
        *self.lock() = Inner::new();
    }
}

/// A cheap handle on the sandbox's memory, for tests and tools.
#[derive(Clone)]
pub struct SandboxState(pub(crate) Arc<Shared>);

impl std::fmt::Debug for SandboxState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxState")
            .field("messages", &self.0.lock().messages.len())
            .finish()
    }
}

impl SandboxState {
    /// Every message, oldest first.
    pub fn messages(&self) -> Vec<SandboxMessage> {
        self.0.lock().messages.clone()
    }

    pub fn message(&self, sid: &str) -> Option<SandboxMessage> {
        self.0.lock().get(sid).cloned()
    }

    /// Every post the Discord webhook received, oldest first.
    pub fn alerts(&self) -> Vec<DiscordPost> {
        self.0.lock().alerts.clone()
    }

    /// How many Discord posts were answered with 429.
    pub fn discord_rate_limited(&self) -> u64 {
        self.0.lock().discord_rate_limited
    }

    /// Make the next `times` Discord posts answer 429 with `retry_after` seconds.
    pub fn set_discord_rate_limit(&self, times: u32, retry_after: f64) {
        self.0.lock().discord_rate_limit = (times > 0).then_some((times, retry_after.max(0.0)));
    }

    /// The Content API store.
    pub fn templates(&self) -> Vec<StoredTemplate> {
        self.0.lock().templates.values().cloned().collect()
    }

    /// Add or replace a template (keyed by its SID).
    pub fn upsert_template(&self, template: StoredTemplate) {
        self.0
            .lock()
            .templates
            .insert(template.sid.clone(), template);
    }

    /// Add a template or change one (found by name), as `POST /sandbox/templates` does.
    pub fn apply_template(&self, spec: TemplateSpec) -> Result<StoredTemplate, String> {
        let mut inner = self.0.lock();
        let existing = inner.template_by_name(spec.name.trim()).cloned();
        let template = spec.apply(existing)?;
        inner
            .templates
            .insert(template.sid.clone(), template.clone());
        Ok(template)
    }

    /// Meta read receipts received (wamids).
    pub fn read_receipts(&self) -> Vec<String> {
        self.0.lock().read_receipts.clone()
    }

    /// Forget every message, alert and counter; re-seed the templates.
    pub fn reset(&self) {
        self.0.reset();
    }
}
