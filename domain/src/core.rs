//! The one context every part of Heimdall works through: settings, the
//! database, Redis when configured, the clock, the job queue, the channel
//! clients, the alert sink and the limits. Built once at start-up and shared.

use std::sync::Arc;

use secrecy::ExposeSecret;

use crate::alerts::{LogSink, SharedSink};
use crate::channel::Channel;
use crate::channels::MessageProvider;
use crate::clock::SharedClock;
use crate::sending::limits::Limits;
use crate::sending::queue::JobQueue;
use crate::settings::Settings;
use crate::store::db::Db;

/// The clients messages go out through, per channel.
#[derive(Debug, Clone, Default)]
pub struct Providers {
    pub whatsapp: Option<Arc<dyn MessageProvider>>,
    pub sms: Option<Arc<dyn MessageProvider>>,
    /// Twilio's own client, for the Content API and reconciliation.
    pub twilio: Option<Arc<crate::channels::twilio::TwilioClient>>,
    /// Meta's client, for read receipts.
    pub meta: Option<Arc<crate::channels::meta::MetaClient>>,
}

impl Providers {
    pub fn for_channel(&self, channel: Channel) -> Option<&Arc<dyn MessageProvider>> {
        match channel {
            Channel::WhatsApp => self.whatsapp.as_ref(),
            Channel::Sms => self.sms.as_ref(),
        }
    }
}

#[derive(Debug)]
pub struct Core {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub redis: Option<redis::aio::ConnectionManager>,
    pub clock: SharedClock,
    pub queue: Arc<dyn JobQueue>,
    pub providers: Providers,
    pub alerts: SharedSink,
    pub limits: Limits,
    /// The runtime settings in force in every process ([`crate::settings::runtime`]).
    pub live: crate::settings::runtime::Live,
    /// Webhook events waiting in the local spool (see [`crate::inbound`]).
    pub spool: SpoolState,
    /// Contact ids by number, for inbound messages.
    pub contact_ids: crate::contacts::ContactIds,
    /// `HEIMDALL_ERASURE_KEY` as a keyed hash, made once (every message's
    /// read hashes its recipient with it).
    pub erasure_key: Option<crate::consent::tombstone::ErasureKey>,
    /// The send workers' reads of their messages, merged on PostgreSQL
    /// (they claim a message with their evaluation's write).
    pub message_reads: crate::sending::outbound::MessageReads,
    /// The acceptance reads, merged on PostgreSQL.
    pub fact_reads: crate::sending::outbound::FactReads,
    /// HTTP to URLs someone other than the operator chose (a schedule's
    /// variables URL), guarded against reaching this network.
    pub fetch: Fetch,
    /// Which refused webhook requests get an audit row (per address).
    pub refused_webhooks: crate::inbound::RefusedWebhooks,
    /// Opt-in form submissions per address (shared through Redis when set).
    pub optin_limiter: crate::optin::SubmissionLimiter,
    /// The preference page's posts per address (a count of their own: a
    /// person pressing each button must not use up a household's sign-ups).
    pub preference_limiter: crate::optin::SubmissionLimiter,
    /// Redis as this process last saw it ([`crate::housekeeping::watch_redis`]).
    pub redis_watch: RedisWatch,
    /// Set when the process is asked to stop: sends waiting for their slot give their
    /// message back instead of holding it ([`Core::stop`]).
    pub stopping: Stopping,
}

/// The process is stopping (SIGTERM): a flag, and a wake-up for those waiting.
#[derive(Debug, Default)]
pub struct Stopping {
    flag: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
}

impl Stopping {
    pub fn is_set(&self) -> bool {
        self.flag.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Sleep until `deadline`; `false` when the process was asked to stop first.
    pub async fn sleep_until(&self, deadline: tokio::time::Instant) -> bool {
        let notified = self.notify.notified();
        if self.is_set() {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => !self.is_set(),
            _ = notified => false,
        }
    }
}

/// Whether Redis answered this process's last look, and the mark this process
/// leaves in it (`Limits::mark_key`): a Redis that no longer holds the mark
/// has lost what it held (restarted without persistence), queues included.
#[derive(Debug)]
pub struct RedisWatch {
    pub answering: std::sync::atomic::AtomicBool,
    /// This process has seen Redis answer (with the mark, or after setting it).
    pub seen: std::sync::atomic::AtomicBool,
    pub mark: String,
}

impl Default for RedisWatch {
    fn default() -> Self {
        RedisWatch {
            answering: std::sync::atomic::AtomicBool::new(true),
            seen: Default::default(),
            mark: crate::clock::new_id(),
        }
    }
}

/// The guarded client for URLs chosen by API clients or staff, and the
/// policy it enforces ([`crate::outbound_http`]).
#[derive(Debug, Clone)]
pub struct Fetch {
    pub policy: Arc<crate::outbound_http::UrlPolicy>,
    pub client: reqwest::Client,
}

impl Fetch {
    pub fn from_settings(settings: &Settings) -> Fetch {
        let policy = crate::outbound_http::UrlPolicy::parse(&settings.fetch_allowlist)
            .unwrap_or_else(|e| {
                // Validated when the settings were read; never reached.
                tracing::error!(error = %e, "HEIMDALL_FETCH_ALLOWLIST does not parse; allowing public addresses only");
                crate::outbound_http::UrlPolicy::default()
            });
        let policy = Arc::new(policy);
        Fetch {
            client: crate::outbound_http::client(
                policy.clone(),
                std::time::Duration::from_secs(15),
                3,
            ),
            policy,
        }
    }
}

/// Whether this process has webhook events in its local spool, whether any
/// other process has (shared through Redis), and the lock that serialises
/// writing and replaying this process's spool.
#[derive(Debug)]
pub struct SpoolState {
    pub pending: std::sync::atomic::AtomicBool,
    /// Another process announced events in its spool (a STOP may be among
    /// them), as last read from Redis.
    pub elsewhere: std::sync::atomic::AtomicBool,
    /// This spool's name in the shared announcement: the machine and the
    /// spool file (a process that replays the file clears it, whichever
    /// process wrote it; see [`crate::store::spool::share_spool_state`]).
    pub instance: String,
    pub lock: tokio::sync::Mutex<()>,
}

impl SpoolState {
    fn for_settings(settings: &Settings) -> SpoolState {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(crate::clock::new_id);
        let dir =
            std::path::absolute(&settings.data_dir).unwrap_or_else(|_| settings.data_dir.clone());
        SpoolState {
            pending: Default::default(),
            elsewhere: Default::default(),
            instance: format!("{host}:{}", dir.display()),
            lock: Default::default(),
        }
    }
}

/// Connect to Redis when the settings name it.
pub async fn connect_redis(
    settings: &Settings,
) -> Result<Option<redis::aio::ConnectionManager>, redis::RedisError> {
    match &settings.redis_url {
        None => Ok(None),
        Some(url) => {
            let client = redis::Client::open(url.expose_secret())?;
            // A command while Redis is away fails within about a second
            // (two quick reconnection attempts), rather than after the
            // client's default six: the callers wait and ask again themselves
            // (the limits fail closed; the watch alerts once).
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(std::time::Duration::from_secs(5)))
                .set_response_timeout(Some(std::time::Duration::from_secs(5)))
                .set_number_of_retries(2)
                .set_max_delay(std::time::Duration::from_millis(500));
            Ok(Some(
                redis::aio::ConnectionManager::new_with_config(client, config).await?,
            ))
        }
    }
}

/// Everything a [`Core`] is made of that is not derived from settings.
pub struct CoreParts {
    pub settings: Settings,
    pub db: Db,
    pub redis: Option<redis::aio::ConnectionManager>,
    pub clock: SharedClock,
    pub queue: Arc<dyn JobQueue>,
    pub providers: Providers,
    pub alerts: Option<SharedSink>,
}

impl Core {
    pub fn new(parts: CoreParts) -> Arc<Core> {
        let s = &parts.settings;
        let portfolio = s
            .sender_for(Channel::WhatsApp)
            .unwrap_or_else(|| "default".into());
        let limits = Limits::new(
            parts.redis.clone(),
            s.rate_per_second,
            s.recipient_pace_seconds,
            s.tier_limit,
            &portfolio,
            &s.redis_namespace,
        );
        let live = crate::settings::runtime::Live::new(s);
        let spool = SpoolState::for_settings(s);
        let fetch = Fetch::from_settings(s);
        let erasure_key = crate::consent::tombstone::ErasureKey::configured(s);
        Arc::new(Core {
            settings: Arc::new(parts.settings),
            db: parts.db,
            redis: parts.redis,
            clock: parts.clock,
            queue: parts.queue,
            providers: parts.providers,
            alerts: parts.alerts.unwrap_or_else(|| Arc::new(LogSink)),
            limits,
            live,
            spool,
            contact_ids: crate::contacts::ContactIds::default(),
            erasure_key,
            message_reads: crate::sending::outbound::MessageReads::default(),
            fact_reads: crate::sending::outbound::FactReads::default(),
            fetch,
            refused_webhooks: Default::default(),
            optin_limiter: Default::default(),
            preference_limiter: crate::optin::SubmissionLimiter::named(
                "preferences",
                crate::consent::preferences::POSTS_PER_ADDRESS,
                crate::optin::RATE_LIMIT_PERIOD,
            ),
            redis_watch: RedisWatch::default(),
            stopping: Stopping::default(),
        })
    }

    /// The process is stopping: sends waiting for their slot give their message
    /// back to the queue (another process takes it) rather than hold it.
    pub fn stop(&self) {
        self.stopping
            .flag
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.stopping.notify.notify_waiters();
    }

    /// Is Redis answering (when configured)?
    pub async fn ping_redis(&self) -> Result<(), redis::RedisError> {
        match &self.redis {
            None => Ok(()),
            Some(conn) => {
                let mut conn = conn.clone();
                redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .map(|_| ())
            }
        }
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}

/// Keep this process's runtime settings and the shared spool flag current,
/// and watch Redis, until the process stops: every
/// [`crate::settings::runtime::REFRESH`].
pub async fn run_refresher(core: Arc<Core>) {
    let mut tick = tokio::time::interval(crate::settings::runtime::REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = crate::settings::runtime::refresh(&core).await {
            tracing::debug!(error = %e, "could not re-read the runtime settings");
        }
        crate::store::spool::share_spool_state(&core).await;
        // Another process's erasure: its number no longer leads to the shell here.
        if let Err(e) = core.contact_ids.forget_after_erasures(&core.db.conn).await {
            tracing::debug!(error = %e, "could not look for new erasures");
        }
        // This process's own spool is replayed as soon as the database takes it: every
        // process holds its sends while any spool waits (a STOP may be in it), so it is
        // not left to the cluster-wide replay job, which another process may win.
        if core.spool.pending.load(std::sync::atomic::Ordering::SeqCst) {
            if let Err(e) = crate::inbound::replay_spool(&core).await {
                tracing::debug!(error = %e, "the local spool could not be replayed yet");
            }
        }
        crate::housekeeping::watch_redis(&core).await;
    }
}
