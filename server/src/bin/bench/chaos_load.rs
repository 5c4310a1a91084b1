//! The workload of `heimdall-bench chaos` (automations through the API, the
//! people through the sandbox) and the drain at its end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{json, Value};

use heimdall_domain::entities::outbound_message;
use heimdall_domain::{Db, Settings};

const API_KEY: &str = "chaos-bench-key";

/// POST with the API key, retried (bounded) while the answer does not come:
/// a serve process may be down at that moment. Only for requests that are
/// safe to repeat (an upsert, or a send with an idempotency key).
async fn post(http: &reqwest::Client, url: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    let mut last = String::new();
    for attempt in 0..20u32 {
        match http
            .post(url)
            .header("X-API-Key", API_KEY)
            .json(body)
            .send()
            .await
        {
            Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => {
                last = format!("HTTP {}", r.status());
            }
            Ok(r) => {
                let status = r.status().as_u16();
                let v = r.json::<Value>().await.unwrap_or(Value::Null);
                return Ok((status, v));
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt.min(10) + 1))).await;
    }
    anyhow::bail!("POST {url}: no answer after 20 tries ({last})")
}

/// Each number a contact tagged `chaos` with a WhatsApp consent and its
/// evidence; their ids in the same order.
pub async fn create_contacts(
    http: &reqwest::Client,
    base: &str,
    phones: &[String],
) -> anyhow::Result<Vec<String>> {
    let ids: Arc<Mutex<Vec<Option<String>>>> = Arc::new(Mutex::new(vec![None; phones.len()]));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (http, base, phones, ids, next) = (
            http.clone(),
            base.to_string(),
            phones.to_vec(),
            ids.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= phones.len() {
                    return Ok::<(), anyhow::Error>(());
                }
                let (status, c) = post(
                    &http,
                    &format!("{base}/api/v1/contacts"),
                    &json!({"phone": phones[i], "name": format!("Chaos {i}"), "tags": ["chaos"]}),
                )
                .await?;
                let id = c["id"]
                    .as_str()
                    .ok_or_else(|| anyhow::anyhow!("contact {}: HTTP {status} {c}", phones[i]))?
                    .to_string();
                let (status, consent) = post(
                    &http,
                    &format!("{base}/api/v1/contacts/{id}/consents"),
                    &json!({
                        "channel": "whatsapp",
                        "source": "api",
                        "evidence": {
                            "ip": "203.0.113.7",
                            "user_agent": "heimdall-bench chaos",
                            "consent_text_version": "chaos-v1"
                        }
                    }),
                )
                .await?;
                anyhow::ensure!(
                    status == 201,
                    "consent for {}: HTTP {status} {consent}",
                    phones[i]
                );
                ids.lock().unwrap()[i] = Some(id);
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let ids = ids.lock().unwrap().clone();
    Ok(ids.into_iter().map(Option::unwrap_or_default).collect())
}

/// `count` reminders, spread over contacts, due at `at`.
pub async fn create_reminders(
    http: &reqwest::Client,
    base: &str,
    contacts: &[String],
    count: usize,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    for k in 0..count {
        let contact = &contacts[(k * 7 + 3) % contacts.len()];
        let (status, body) = post(
            http,
            &format!("{base}/api/v1/reminders"),
            &json!({
                "contact_id": contact,
                "template_name": "task_reminder",
                "variables": {"task_name": format!("Reminder {k}"), "due_time": "09:00"},
                "send_at": at.to_rfc3339(),
                "tolerance": 900
            }),
        )
        .await?;
        anyhow::ensure!(status == 201, "reminder {k}: HTTP {status} {body}");
    }
    Ok(())
}

/// A STOP from each number, spread over `over`, played by the sandbox (signed
/// as Twilio signs). The time Heimdall answered each is recorded; a STOP that
/// got no 2xx is sent again (as a person would), bounded. Returns how many
/// never got an answer.
pub async fn send_stops(
    http: reqwest::Client,
    sandbox: String,
    numbers: Vec<String>,
    over: Duration,
    answered: Arc<Mutex<HashMap<String, DateTime<Utc>>>>,
) -> usize {
    let start = Instant::now();
    let gap = over.div_f64(numbers.len().max(1) as f64);
    let mut never = 0;
    for (k, number) in numbers.iter().enumerate() {
        tokio::time::sleep_until((start + gap.mul_f64(k as f64)).into()).await;
        let mut ok = false;
        for attempt in 0..30u32 {
            let r = http
                .post(format!("{sandbox}/sandbox/inbound"))
                .json(&json!({"from": number, "body": "STOP"}))
                .send()
                .await;
            if let Ok(r) = r {
                let v = r.json::<Value>().await.unwrap_or(Value::Null);
                if v["status"]
                    .as_u64()
                    .is_some_and(|s| (200..300).contains(&s))
                {
                    answered.lock().unwrap().insert(number.clone(), Utc::now());
                    ok = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt.min(10) + 1))).await;
        }
        never += usize::from(!ok);
    }
    never
}

/// `count` template sends through `POST /api/v1/messages`, spread over
/// `over`, each with an idempotency key (so a repeat after a lost answer
/// sends nothing again). Returns (accepted, never answered).
pub async fn api_sends(
    http: reqwest::Client,
    base: String,
    contacts: Vec<String>,
    count: usize,
    over: Duration,
) -> (usize, usize) {
    let start = Instant::now();
    let gap = over.div_f64(count.max(1) as f64);
    let (mut accepted, mut lost) = (0, 0);
    for k in 0..count {
        tokio::time::sleep_until((start + gap.mul_f64(k as f64)).into()).await;
        let contact = &contacts[(k * 13 + 1) % contacts.len()];
        match post(
            &http,
            &format!("{base}/api/v1/messages"),
            &json!({
                "contact_id": contact,
                "template_name": "task_reminder",
                "variables": {"task_name": format!("API {k}"), "due_time": "12:00"},
                "idempotency_key": format!("chaos-api-{k}")
            }),
        )
        .await
        {
            Ok((status, _)) if status < 300 => accepted += 1,
            // A gate's refusal (a STOP came first) is an answer, recorded as blocked.
            Ok(_) => {}
            Err(_) => lost += 1,
        }
    }
    (accepted, lost)
}

/// The reason a message waits for the messaging tier (its gate's code).
pub const HELD_BY_TIER: &str = "tier_limit";

/// Messages waiting to be sent, but for those the messaging tier holds (they
/// wait, rightly, for the moving 24 hours to free a place: explained, not
/// stuck).
pub async fn waiting_to_send(db: &Db) -> u64 {
    outbound_message::Entity::find()
        .filter(outbound_message::Column::State.is_in(["pending", "queued", "deferred", "held"]))
        .filter(
            sea_orm::Condition::any()
                .add(outbound_message::Column::BlockReason.is_null())
                .add(outbound_message::Column::BlockReason.ne(HELD_BY_TIER)),
        )
        .count(&db.conn)
        .await
        .unwrap_or(u64::MAX)
}

async fn unsettled(db: &Db) -> u64 {
    let waiting = waiting_to_send(db).await;
    let claimed = outbound_message::Entity::find()
        .filter(outbound_message::Column::State.eq("sending"))
        .filter(outbound_message::Column::ProviderSid.is_null())
        .count(&db.conn)
        .await
        .unwrap_or(u64::MAX);
    // A campaign whose fan-out has not finished has work left too.
    let fanning = heimdall_domain::entities::campaign::Entity::find()
        .filter(heimdall_domain::entities::campaign::Column::Status.eq("sending"))
        .filter(heimdall_domain::entities::campaign::Column::FanOutFinishedAt.is_null())
        .count(&db.conn)
        .await
        .unwrap_or(u64::MAX);
    waiting.saturating_add(claimed).saturating_add(fanning)
}

/// Wait until no message is left waiting or claimed without an answer and
/// no fan-out is unfinished, up to `deadline`. When nothing has moved for
/// `stall`, the recovery housekeeping does on its own later (every minute
/// for fan-outs silent for 5 minutes; every 10 minutes for messages older
/// than 15) is run as it would run 16 minutes later: stalled fan-outs and
/// lost queue entries enqueued again, messages whose worker died mid-call
/// failed for a person. At most three times; each is reported.
pub async fn drain(
    db: &Db,
    settings: &Settings,
    deadline: Duration,
    stall: Duration,
) -> anyhow::Result<Vec<String>> {
    use heimdall_domain::housekeeping::{self, Job};
    let until = Instant::now() + deadline;
    let mut last = u64::MAX;
    let mut still_since = Instant::now();
    let mut done = Vec::new();
    loop {
        let left = unsettled(db).await;
        if left == 0 {
            return Ok(done);
        }
        if left != last {
            last = left;
            still_since = Instant::now();
        }
        if Instant::now() > until {
            println!("drain: {left} messages or fan-outs still unsettled at the deadline");
            return Ok(done);
        }
        if done.len() < 3 && still_since.elapsed() > stall {
            let later = Utc::now() + chrono::Duration::minutes(16);
            let (core, _q) = heimdall_server::startup::build_core(
                settings.clone(),
                Arc::new(heimdall_domain::ManualClock::new(later)),
            )
            .await?;
            let campaigns = housekeeping::execute(&core, Job::StartCampaigns)
                .await
                .unwrap_or_else(|e| format!("failed: {e}"));
            let r = housekeeping::reconcile_messages(&core).await?;
            let what = format!(
                "at +{:.0} s, {left} unsettled for {} s: housekeeping run as 16 minutes later: campaigns: {campaigns}; messages: {} enqueued again, {} claimed by a dead worker failed for a person",
                deadline.as_secs_f64() - (until - Instant::now()).as_secs_f64(),
                stall.as_secs(),
                r.requeued,
                r.stuck
            );
            println!("drain: {what}");
            done.push(what);
            still_since = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
