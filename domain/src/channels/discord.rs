//! Operator alerts on a Discord webhook, throttled so that a burst of one
//! kind of failure is one message with a count.
//!
//! [`Alerter::alert`] never blocks and never fails: it hands the alert to a
//! background task through a bounded queue and counts what it had to drop.
//! The task posts the first alert of a key at once, folds further alerts with
//! the same key into a count while the window lasts, and posts one summary
//! when the window ends. It honours Discord's rate limits (HTTP 429 with
//! `retry_after`) and gives up after a few tries.
//!
//! The webhook URL carries a token: it is kept in a [`SecretString`] and
//! never logged, never part of an error and never shown by `Debug`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use url::Url;

use super::twilio::describe_error;

/// How many alerts may wait for the background task before new ones are dropped.
const QUEUE_CAPACITY: usize = 1024;
/// Attempts per post (the first and three retries).
const MAX_ATTEMPTS: u32 = 4;
/// The longest we wait on one rate limit before trying again.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);
/// Embed colours: red for a new failure, orange for a summary of repeats.
const COLOR_ALERT: u32 = 0xE7_4C_3C;
const COLOR_SUMMARY: u32 = 0xE6_7E_22;

/// One thing a person should know about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// What to throttle by: alerts with the same key inside the window are
    /// folded into one summary (e.g. `twilio:63007`).
    pub key: String,
    pub title: String,
    pub description: String,
    pub error_code: Option<i64>,
    /// What the error code means (from the error table).
    pub meaning: Option<String>,
    /// Heimdall's message id.
    pub message_id: Option<String>,
    pub campaign_id: Option<String>,
}

impl Alert {
    pub fn new(
        key: impl Into<String>,
        title: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Self {
            key: key.into(),
            title: title.into(),
            description: description.into(),
            error_code: None,
            meaning: None,
            message_id: None,
            campaign_id: None,
        }
    }

    pub fn with_error(mut self, code: i64, meaning: impl Into<String>) -> Self {
        self.error_code = Some(code);
        let meaning = meaning.into();
        self.meaning = (!meaning.trim().is_empty()).then_some(meaning);
        self
    }

    pub fn with_message(mut self, message_id: impl Into<String>) -> Self {
        self.message_id = Some(message_id.into());
        self
    }

    pub fn with_campaign(mut self, campaign_id: impl Into<String>) -> Self {
        self.campaign_id = Some(campaign_id.into());
        self
    }
}

/// What the alerter has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AlertStats {
    /// Posts Discord accepted (first alerts and summaries).
    pub posted: u64,
    /// Alerts folded into a summary instead of being posted on their own.
    pub throttled: u64,
    /// Alerts dropped because the queue was full or the task had stopped.
    pub dropped: u64,
    /// Posts given up on (refused, or still failing after the retries).
    pub failed: u64,
    /// Alerts (and summaries) only logged because no webhook is configured.
    pub logged: u64,
}

#[derive(Debug, Default)]
struct Counters {
    posted: AtomicU64,
    throttled: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    logged: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) -> u64 {
        counter.fetch_add(1, Ordering::Relaxed) + 1
    }
}

enum Command {
    Alert(Alert),
    Flush(oneshot::Sender<()>),
}

/// Throttled Discord alerts. Cheap to clone; every clone feeds the same task.
#[derive(Clone)]
pub struct Alerter {
    tx: mpsc::Sender<Command>,
    counters: Arc<Counters>,
    configured: bool,
}

impl std::fmt::Debug for Alerter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerter")
            .field(
                "webhook",
                &if self.configured {
                    "[configured]"
                } else {
                    "none"
                },
            )
            .field("stats", &self.stats())
            .finish()
    }
}

impl Alerter {
    /// Start the background task (on the current Tokio runtime). Without a
    /// URL (or with one that does not parse) alerts are only logged.
    ///
    /// The URL must pass [`crate::outbound_http::check_url`] under `policy`
    /// (a public address, or one `HEIMDALL_FETCH_ALLOWLIST` names); `http`
    /// should be [`crate::outbound_http::client`] built with the same
    /// policy, so that a name resolving to this network is refused too.
    pub fn new(
        webhook_url: Option<SecretString>,
        http: reqwest::Client,
        policy: &crate::outbound_http::UrlPolicy,
        window: Duration,
    ) -> Alerter {
        let url = webhook_url.and_then(|u| match Url::parse(u.expose_secret().trim()) {
            Ok(url) => match crate::outbound_http::check_url(policy, &url) {
                Ok(()) => Some(url),
                Err(e) => {
                    tracing::error!(error = %e, "DISCORD_WEBHOOK_URL is refused; alerts will only be logged");
                    None
                }
            },
            Err(_) => {
                tracing::error!(
                    "DISCORD_WEBHOOK_URL is not an http(s) URL; alerts will only be logged"
                );
                None
            }
        });
        let configured = url.is_some();
        let counters = Arc::new(Counters::default());
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let worker = Worker {
                    url,
                    http,
                    counters: counters.clone(),
                    throttle: Throttle::new(window),
                };
                runtime.spawn(worker.run(rx));
            }
            Err(_) => {
                tracing::error!(
                    "Alerter::new called outside a Tokio runtime: alerts will be dropped"
                );
                drop(rx);
            }
        }
        Alerter {
            tx,
            counters,
            configured,
        }
    }

    /// Queue an alert. Never blocks, never fails: when the queue is full the
    /// alert is counted as dropped.
    pub fn alert(&self, alert: Alert) {
        if self.tx.try_send(Command::Alert(alert)).is_err() {
            let n = Counters::bump(&self.counters.dropped);
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "alert queue full or stopped: alert dropped");
            }
        }
    }

    /// Post pending summaries now and wait until everything queued before
    /// this call has been handled.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Command::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    pub fn stats(&self) -> AlertStats {
        AlertStats {
            posted: self.counters.posted.load(Ordering::Relaxed),
            throttled: self.counters.throttled.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
            logged: self.counters.logged.load(Ordering::Relaxed),
        }
    }

    /// Whether a webhook URL is configured.
    pub fn is_configured(&self) -> bool {
        self.configured
    }
}

/// What the throttle lets out.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outgoing {
    /// The first alert of its key in a window: post it as it is.
    First(Alert),
    /// `count` further alerts of one key folded over `elapsed`; `latest` is the last of them.
    Summary {
        latest: Alert,
        count: u64,
        elapsed: Duration,
    },
}

#[derive(Debug)]
struct KeyWindow {
    started: Instant,
    folded: u64,
    latest: Option<Alert>,
}

/// Per-key windows. Pure: the caller passes the time.
#[derive(Debug)]
struct Throttle {
    window: Duration,
    keys: HashMap<String, KeyWindow>,
}

impl Throttle {
    fn new(window: Duration) -> Self {
        Self {
            window,
            keys: HashMap::new(),
        }
    }

    /// `Some` when the alert should go out now; `None` when it was folded.
    fn offer(&mut self, now: Instant, alert: Alert) -> Option<Outgoing> {
        if let Some(w) = self.keys.get_mut(&alert.key) {
            if now < w.started + self.window {
                w.folded += 1;
                w.latest = Some(alert);
                return None;
            }
        }
        self.keys.insert(
            alert.key.clone(),
            KeyWindow {
                started: now,
                folded: 0,
                latest: None,
            },
        );
        Some(Outgoing::First(alert))
    }

    /// Summaries of windows that have ended; a window that folded nothing ends quietly.
    fn due(&mut self, now: Instant) -> Vec<Outgoing> {
        let window = self.window;
        self.take(now, |w| now >= w.started + window)
    }

    /// Every pending summary, whether or not its window has ended.
    fn flush(&mut self, now: Instant) -> Vec<Outgoing> {
        let mut out = self.take(now, |w| w.folded > 0);
        // A flush is also a good moment to forget windows that already ended.
        out.extend(self.due(now));
        out
    }

    fn take(&mut self, now: Instant, pick: impl Fn(&KeyWindow) -> bool) -> Vec<Outgoing> {
        let mut out = Vec::new();
        let mut finished = Vec::new();
        let mut keys: Vec<&String> = self.keys.keys().collect();
        keys.sort();
        let keys: Vec<String> = keys.into_iter().cloned().collect();
        for key in keys {
            let Some(w) = self.keys.get_mut(&key) else {
                continue;
            };
            if !pick(w) {
                continue;
            }
            match w.latest.take() {
                Some(latest) if w.folded > 0 => {
                    out.push(Outgoing::Summary {
                        latest,
                        count: w.folded,
                        elapsed: now.saturating_duration_since(w.started),
                    });
                    // The window restarts with the summary.
                    w.started = now;
                    w.folded = 0;
                }
                _ => finished.push(key),
            }
        }
        for key in finished {
            self.keys.remove(&key);
        }
        out
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.keys.values().map(|w| w.started + self.window).min()
    }
}

struct Worker {
    url: Option<Url>,
    http: reqwest::Client,
    counters: Arc<Counters>,
    throttle: Throttle,
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        loop {
            let deadline = self.throttle.next_deadline();
            let timer = async move {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                command = rx.recv() => match command {
                    Some(Command::Alert(alert)) => {
                        let now = Instant::now();
                        for out in self.throttle.due(now) {
                            self.deliver(out).await;
                        }
                        match self.throttle.offer(now, alert) {
                            Some(out) => self.deliver(out).await,
                            None => {
                                Counters::bump(&self.counters.throttled);
                            }
                        }
                    }
                    Some(Command::Flush(done)) => {
                        for out in self.throttle.flush(Instant::now()) {
                            self.deliver(out).await;
                        }
                        let _ = done.send(());
                    }
                    None => {
                        for out in self.throttle.flush(Instant::now()) {
                            self.deliver(out).await;
                        }
                        break;
                    }
                },
                () = timer => {
                    for out in self.throttle.due(Instant::now()) {
                        self.deliver(out).await;
                    }
                }
            }
        }
    }

    async fn deliver(&self, out: Outgoing) {
        let payload = webhook_payload(&out, chrono::Utc::now());
        let Some(url) = &self.url else {
            let (alert, count) = match &out {
                Outgoing::First(a) => (a, 1),
                Outgoing::Summary { latest, count, .. } => (latest, *count),
            };
            tracing::warn!(
                key = %alert.key,
                title = %alert.title,
                description = %alert.description,
                error_code = ?alert.error_code,
                message_id = ?alert.message_id,
                campaign_id = ?alert.campaign_id,
                count,
                "alert (no Discord webhook configured)"
            );
            Counters::bump(&self.counters.logged);
            return;
        };
        for attempt in 1..=MAX_ATTEMPTS {
            let last = attempt == MAX_ATTEMPTS;
            match self.http.post(url.clone()).json(&payload).send().await {
                Ok(response) if response.status().is_success() => {
                    Counters::bump(&self.counters.posted);
                    return;
                }
                Ok(response) if response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS => {
                    let header = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let body = response
                        .bytes()
                        .await
                        .map(|b| b.to_vec())
                        .unwrap_or_default();
                    let wait = retry_after(header.as_deref(), &body);
                    tracing::warn!(
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "Discord rate limited the alert"
                    );
                    if last {
                        break;
                    }
                    tokio::time::sleep(wait).await;
                }
                Ok(response) if response.status().is_server_error() => {
                    tracing::warn!(
                        attempt,
                        status = response.status().as_u16(),
                        "Discord failed to take the alert"
                    );
                    if last {
                        break;
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    tracing::warn!(status, "Discord refused the alert; not retried");
                    Counters::bump(&self.counters.failed);
                    return;
                }
                Err(e) => {
                    tracing::warn!(attempt, error = %describe_error(e), "could not reach Discord");
                    if last {
                        break;
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                }
            }
        }
        Counters::bump(&self.counters.failed);
        tracing::error!(
            attempts = MAX_ATTEMPTS,
            "gave up posting an alert to Discord"
        );
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250 * u64::from(attempt))
}

/// How long Discord asked us to wait: the body's `retry_after` (seconds,
/// fractional) or the `Retry-After` header, at most [`MAX_RETRY_WAIT`], 1 s
/// when neither says.
fn retry_after(header: Option<&str>, body: &[u8]) -> Duration {
    let from_body = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("retry_after").and_then(Value::as_f64));
    let from_header = header.and_then(|h| h.trim().parse::<f64>().ok());
    let secs = from_body
        .or(from_header)
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(1.0);
    Duration::from_secs_f64(secs).min(MAX_RETRY_WAIT)
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn human_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The webhook JSON for one post.
fn webhook_payload(out: &Outgoing, now: chrono::DateTime<chrono::Utc>) -> Value {
    let (alert, count, elapsed) = match out {
        Outgoing::First(a) => (a, None, None),
        Outgoing::Summary {
            latest,
            count,
            elapsed,
        } => (latest, Some(*count), Some(*elapsed)),
    };
    let mut fields = Vec::new();
    let error = match (alert.error_code, &alert.meaning) {
        (Some(code), Some(meaning)) => Some(format!("{code} — {meaning}")),
        (Some(code), None) => Some(code.to_string()),
        (None, Some(meaning)) => Some(meaning.clone()),
        (None, None) => None,
    };
    if let Some(error) = error {
        fields.push(json!({"name": "Error", "value": truncate(&error, 1024), "inline": true}));
    }
    if let Some(id) = &alert.message_id {
        fields.push(json!({"name": "Message", "value": truncate(id, 1024), "inline": true}));
    }
    if let Some(id) = &alert.campaign_id {
        fields.push(json!({"name": "Campaign", "value": truncate(id, 1024), "inline": true}));
    }
    let (title, description, color) = match (count, elapsed) {
        (Some(count), Some(elapsed)) => {
            fields.push(json!({"name": "Count", "value": count.to_string(), "inline": true}));
            let label = alert
                .error_code
                .map(|c| c.to_string())
                .unwrap_or_else(|| alert.key.clone());
            let description = format!(
                "{label} ×{count} in the last {} s\nLatest: {}",
                human_seconds(elapsed),
                alert.description
            );
            (
                format!("{} (repeated)", alert.title),
                description,
                COLOR_SUMMARY,
            )
        }
        _ => (alert.title.clone(), alert.description.clone(), COLOR_ALERT),
    };
    json!({
        "username": "Heimdall",
        "allowed_mentions": {"parse": []},
        "embeds": [{
            "title": truncate(&title, 256),
            "description": truncate(&description, 4096),
            "color": color,
            "fields": fields,
            "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(key: &str, n: u32) -> Alert {
        Alert::new(key, "Delivery failed", format!("message {n} failed"))
            .with_error(63007, "From is not a WhatsApp sender")
            .with_message(format!("msg-{n}"))
    }

    #[test]
    fn first_is_posted_then_folded_then_one_summary() {
        let mut t = Throttle::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert!(matches!(
            t.offer(t0, alert("k", 0)),
            Some(Outgoing::First(_))
        ));
        for i in 1..50 {
            assert_eq!(
                t.offer(t0 + Duration::from_millis(i), alert("k", i as u32)),
                None
            );
        }
        assert!(t.due(t0 + Duration::from_secs(59)).is_empty());
        let due = t.due(t0 + Duration::from_secs(60));
        assert_eq!(due.len(), 1);
        match &due[0] {
            Outgoing::Summary { latest, count, .. } => {
                assert_eq!(*count, 49);
                assert_eq!(latest.message_id.as_deref(), Some("msg-49"));
            }
            other => panic!("expected a summary, got {other:?}"),
        }
        // The window restarted with the summary: an alert now is folded again.
        assert_eq!(t.offer(t0 + Duration::from_secs(61), alert("k", 99)), None);
        // A window that folds nothing ends quietly and the key starts afresh.
        let due = t.due(t0 + Duration::from_secs(120));
        assert_eq!(due.len(), 1);
        assert!(t.due(t0 + Duration::from_secs(180)).is_empty());
        assert_eq!(t.next_deadline(), None);
        assert!(matches!(
            t.offer(t0 + Duration::from_secs(181), alert("k", 100)),
            Some(Outgoing::First(_))
        ));
    }

    #[test]
    fn keys_are_independent_and_flush_forces_summaries() {
        let mut t = Throttle::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert!(t.offer(t0, alert("a", 0)).is_some());
        assert!(t.offer(t0, alert("b", 0)).is_some());
        assert!(t.offer(t0, alert("a", 1)).is_none());
        let flushed = t.flush(t0 + Duration::from_secs(1));
        assert_eq!(flushed.len(), 1);
        assert!(
            matches!(&flushed[0], Outgoing::Summary { count: 1, latest, .. } if latest.key == "a")
        );
        assert!(t.flush(t0 + Duration::from_secs(2)).is_empty());
    }

    #[test]
    fn payload_shapes() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let a = alert("twilio:63007", 1).with_campaign("camp-9");
        let p = webhook_payload(&Outgoing::First(a.clone()), now);
        assert_eq!(p["username"], "Heimdall");
        let e = &p["embeds"][0];
        assert_eq!(e["title"], "Delivery failed");
        assert_eq!(e["timestamp"], "2026-01-02T03:04:05Z");
        assert_eq!(e["fields"][0]["name"], "Error");
        assert_eq!(
            e["fields"][0]["value"],
            "63007 — From is not a WhatsApp sender"
        );
        assert_eq!(e["fields"][0]["inline"], true);
        assert_eq!(e["fields"][1]["value"], "msg-1");
        assert_eq!(e["fields"][2]["name"], "Campaign");
        assert_eq!(e["fields"].as_array().unwrap().len(), 3);

        let p = webhook_payload(
            &Outgoing::Summary {
                latest: a,
                count: 37,
                elapsed: Duration::from_secs(60),
            },
            now,
        );
        let e = &p["embeds"][0];
        assert!(e["description"]
            .as_str()
            .unwrap()
            .starts_with("63007 ×37 in the last 60 s"));
        let fields = e["fields"].as_array().unwrap();
        assert_eq!(fields.last().unwrap()["name"], "Count");
        assert_eq!(fields.last().unwrap()["value"], "37");
    }

    #[test]
    fn long_texts_are_cut_to_discord_limits() {
        let mut a = alert("k", 1);
        a.title = "x".repeat(300);
        a.description = "é".repeat(5000);
        let p = webhook_payload(&Outgoing::First(a), chrono::Utc::now());
        assert_eq!(
            p["embeds"][0]["title"].as_str().unwrap().chars().count(),
            256
        );
        assert_eq!(
            p["embeds"][0]["description"]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            4096
        );
    }

    #[test]
    fn retry_after_from_body_then_header_then_default() {
        assert_eq!(
            retry_after(Some("3"), br#"{"retry_after": 1.5, "global": false}"#),
            Duration::from_millis(1500)
        );
        assert_eq!(retry_after(Some("2"), b"not json"), Duration::from_secs(2));
        assert_eq!(retry_after(None, b""), Duration::from_secs(1));
        assert_eq!(retry_after(Some("99999"), b""), MAX_RETRY_WAIT);
        assert_eq!(retry_after(Some("-1"), b""), Duration::from_secs(1));
    }

    #[tokio::test]
    async fn without_url_alerts_are_logged_and_counted() {
        let alerter = Alerter::new(
            None,
            reqwest::Client::new(),
            &Default::default(),
            Duration::from_secs(60),
        );
        assert!(!alerter.is_configured());
        for i in 0..3 {
            alerter.alert(alert("k", i));
        }
        alerter.alert(alert("other", 0));
        alerter.flush().await;
        let stats = alerter.stats();
        // "k": the first and one summary of 2; "other": the first.
        assert_eq!(stats.logged, 3);
        assert_eq!(stats.throttled, 2);
        assert_eq!(stats.posted, 0);
        assert_eq!(stats.dropped, 0);
    }

    #[tokio::test]
    async fn debug_never_shows_the_webhook_token() {
        let url =
            SecretString::from("https://discord.example.com/api/webhooks/1/tok-SECRET".to_string());
        let alerter = Alerter::new(
            Some(url),
            reqwest::Client::new(),
            &Default::default(),
            Duration::from_secs(60),
        );
        assert!(alerter.is_configured());
        let dbg = format!("{alerter:?}");
        assert!(!dbg.contains("tok-SECRET"));
        assert!(dbg.contains("[configured]"));
    }
}
