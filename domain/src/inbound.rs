//! Inbound traffic from Twilio and Meta, after the signature was checked:
//! dedup, the person's message (keywords first), service windows, and
//! delivery statuses. Also the webhook audit log and the local spool that
//! keeps events when the database is away.
//!
//! A STOP is written to the database (consent revoked, suppression added)
//! before the webhook answers, so no gate evaluated afterwards can pass.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};

use crate::channel::Channel;
use crate::clock::new_id;
use crate::compliance::keywords::{self, KeywordAction};
use crate::consent::{self, FromNumber, NumberOptIn, OptOutSource, Scope};
use crate::contacts;
use crate::entities::{inbound_message, processed_webhook_event, webhook_audit};
use crate::phone::PhoneNumber;
use crate::sending::outbound::{
    self, Origin, Recipient, RequestedContent, SendRequest, StatusReport,
};
use crate::store;
use crate::Core;

/// How long a processed event id is remembered.
pub const DEDUP_TTL: Duration = Duration::hours(24);

/// An inbound message, whichever provider brought it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InboundMessage {
    pub provider: String,
    pub provider_message_id: String,
    pub channel: Channel,
    pub from: String,
    pub to: Option<String>,
    pub body: Option<String>,
    pub media: Vec<String>,
    pub button_text: Option<String>,
    pub button_payload: Option<String>,
    pub profile_name: Option<String>,
    pub received_at: DateTime<Utc>,
}

impl InboundMessage {
    /// Twilio's form parameters for an inbound WhatsApp or SMS message.
    pub fn from_twilio(
        params: &BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<Self, String> {
        let sid = params
            .get("MessageSid")
            .or_else(|| params.get("SmsMessageSid"))
            .or_else(|| params.get("SmsSid"))
            .filter(|s| !s.is_empty())
            .ok_or("MessageSid is missing")?;
        let from = params
            .get("From")
            .filter(|s| !s.is_empty())
            .ok_or("From is missing")?;
        let channel = if from.starts_with("whatsapp:") {
            Channel::WhatsApp
        } else {
            Channel::Sms
        };
        let num_media: usize = params
            .get("NumMedia")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
            .min(10);
        let media = (0..num_media)
            .filter_map(|i| params.get(&format!("MediaUrl{i}")).cloned())
            .collect();
        Ok(InboundMessage {
            provider: "twilio".into(),
            provider_message_id: sid.clone(),
            channel,
            from: from.clone(),
            to: params.get("To").cloned(),
            body: params.get("Body").cloned(),
            media,
            button_text: params.get("ButtonText").cloned().filter(|s| !s.is_empty()),
            button_payload: params
                .get("ButtonPayload")
                .cloned()
                .filter(|s| !s.is_empty()),
            profile_name: params.get("ProfileName").cloned().filter(|s| !s.is_empty()),
            received_at: now,
        })
    }

    /// The keyword this message carries, if any. A button reply (it has a
    /// payload) is matched by its payload for opt-in and help: a "Yes"
    /// button answering an unrelated question must not become a consent.
    /// An opt-out is honoured from the payload, the button's text or the
    /// body alike: a STOP is never lost.
    pub fn keyword(&self) -> Option<keywords::KeywordMatch> {
        fn text(t: &Option<String>) -> Option<&str> {
            t.as_deref().filter(|b| !b.trim().is_empty())
        }
        if let Some(payload) = text(&self.button_payload) {
            if let Some(k) = keywords::classify(payload) {
                return Some(k);
            }
            return [text(&self.body), text(&self.button_text)]
                .into_iter()
                .flatten()
                .filter_map(keywords::classify)
                .find(|k| k.action == KeywordAction::OptOut);
        }
        text(&self.body)
            .or(text(&self.button_text))
            .and_then(keywords::classify)
    }
}

/// What handling an inbound message did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum InboundOutcome {
    Duplicate,
    /// Not on the phone allowlist: recorded in the audit log only.
    Ignored,
    Stored {
        inbound_id: String,
        contact_id: String,
        keyword: Option<String>,
        /// The reply queued (STOP confirmation, HELP), if any.
        reply_message_id: Option<String>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    #[error("{0}")]
    Malformed(String),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

fn redis_dedup_key(core: &Core, key: &str) -> String {
    format!("{}:dedup:{key}", core.settings.redis_namespace)
}

/// Claim an event id in Redis for 24 hours (when Redis is configured):
/// false when another delivery already claimed it. A claim must be
/// released with [`release`] if processing fails, so a retry or the spool
/// replay is not taken for a duplicate.
async fn claim_redis(core: &Core, key: &str) -> bool {
    let Some(conn) = &core.redis else {
        return true;
    };
    let mut conn = conn.clone();
    let res: Result<Option<String>, _> = redis::cmd("SET")
        .arg(redis_dedup_key(core, key))
        .arg(1)
        .arg("NX")
        .arg("EX")
        .arg(DEDUP_TTL.num_seconds())
        .query_async(&mut conn)
        .await;
    match res {
        Ok(Some(_)) => true,
        Ok(None) => false,
        Err(e) => {
            tracing::warn!(error = %e, "dedup: redis unavailable, using the database");
            true
        }
    }
}

async fn release_redis(core: &Core, key: &str) {
    if let Some(conn) = &core.redis {
        let mut conn = conn.clone();
        let res: Result<i64, _> = redis::cmd("DEL")
            .arg(redis_dedup_key(core, key))
            .query_async(&mut conn)
            .await;
        if let Err(e) = res {
            tracing::warn!(error = %e, "dedup: could not release a claim in redis");
        }
    }
}

/// Record an event id in the database (the record, and the only dedup
/// without Redis): false when it is already there and not expired. Run it
/// in the same transaction as the event's effects, so a failure leaves no
/// mark behind.
async fn claim_db(
    db: &impl ConnectionTrait,
    key: &str,
    provider: &str,
    now: DateTime<Utc>,
) -> Result<bool, sea_orm::DbErr> {
    use sea_orm::sea_query::OnConflict;
    let key: String = key.chars().take(200).collect();
    processed_webhook_event::Entity::delete_many()
        .filter(processed_webhook_event::Column::EventKey.eq(&key))
        .filter(processed_webhook_event::Column::ExpiresAt.lt(now))
        .exec(db)
        .await?;
    let inserted = processed_webhook_event::Entity::insert(dedup_entry(&key, provider, now))
        .on_conflict(
            OnConflict::column(processed_webhook_event::Column::EventKey)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(inserted == 1)
}

/// Forget dedup entries older than 24 hours (housekeeping).
pub async fn purge_dedup(core: &Core) -> Result<u64, sea_orm::DbErr> {
    Ok(processed_webhook_event::Entity::delete_many()
        .filter(processed_webhook_event::Column::ExpiresAt.lt(core.now()))
        .exec(&core.db.conn)
        .await?
        .rows_affected)
}

/// Handle one inbound message: dedup, keywords first, store, open the
/// window, and queue the reply a keyword calls for.
pub async fn handle_message(
    core: &Core,
    msg: InboundMessage,
) -> Result<InboundOutcome, InboundError> {
    handle_message_audited(core, msg, None)
        .await
        .map(|h| h.outcome)
}

/// What [`handle_message_audited`] did.
#[derive(Debug)]
pub struct Handled {
    pub outcome: InboundOutcome,
    /// The webhook's audit row was written with the message (verdict
    /// `accepted`); otherwise the caller writes it.
    pub audited: bool,
}

/// Handle an inbound message; when `audit` is given, its audit row (verdict
/// `accepted`) is written in the same transaction as the message, if the
/// message is stored on the common path.
pub async fn handle_message_audited(
    core: &Core,
    msg: InboundMessage,
    audit: Option<&WebhookRecord>,
) -> Result<Handled, InboundError> {
    let phone = match msg.channel {
        Channel::WhatsApp => PhoneNumber::parse(&msg.from, core.settings.default_region)
            .or_else(|_| PhoneNumber::from_wa_id(&msg.from)),
        Channel::Sms => PhoneNumber::parse(&msg.from, core.settings.default_region),
    }
    .map_err(|e| InboundError::Malformed(format!("From: {e}")))?;
    let unaudited = |outcome| Handled {
        outcome,
        audited: false,
    };
    let matched = msg.keyword();
    // Outside the phone allowlist a message is only logged, but an opt-out
    // is honoured from every number (nothing is sent to them anyway: the
    // `not_allowlisted` gate refuses it).
    let opt_out = matched
        .as_ref()
        .is_some_and(|k| k.action == KeywordAction::OptOut);
    if !opt_out && !core.live.get().allows(phone.as_str()) {
        return Ok(unaudited(InboundOutcome::Ignored));
    }
    let key = format!("{}:msg:{}", msg.provider, msg.provider_message_id);
    if !claim_redis(core, &key).await {
        return Ok(unaudited(InboundOutcome::Duplicate));
    }
    if matched.is_none() {
        match store_plain_message(core, &msg, &phone, &key, audit).await {
            Ok(Some(outcome)) => {
                return Ok(Handled {
                    outcome,
                    audited: audit.is_some(),
                })
            }
            // A conflict (a redelivery, or a dedup entry to expire first):
            // the general path below sorts it out.
            Ok(None) => {}
            Err(e) => {
                release_redis(core, &key).await;
                return Err(e);
            }
        }
    }
    match store_message(core, &msg, &phone, &key, matched).await {
        Ok(Some(stored)) => Ok(unaudited(reply_to_keyword(core, &msg, stored).await)),
        Ok(None) => Ok(unaudited(InboundOutcome::Duplicate)),
        Err(e) => {
            release_redis(core, &key).await;
            Err(e)
        }
    }
}

/// The common case, a message with no keyword, in two round trips: the
/// contact (found, or created on a first message), then the dedup entry,
/// the message, the service window and the audit row written together (one
/// statement on PostgreSQL, one batch on SQLite). `None` when a unique key
/// was taken (a redelivery, or an expired dedup entry still present): the
/// caller then takes the general path, which handles both.
async fn store_plain_message(
    core: &Core,
    msg: &InboundMessage,
    phone: &PhoneNumber,
    key: &str,
    audit: Option<&WebhookRecord>,
) -> Result<Option<InboundOutcome>, InboundError> {
    use sea_orm::QueryTrait;
    let now = core.now();
    let contact_id = core
        .contact_ids
        .find_or_create(&core.db.conn, phone, msg.profile_name.clone(), now)
        .await?;
    let backend = core.db.backend();
    let inbound_id = new_id();
    let mut statements = vec![
        processed_webhook_event::Entity::insert(dedup_entry(key, &msg.provider, now))
            .build(backend),
        inbound_message::Entity::insert(inbound_row(
            msg,
            phone,
            &contact_id,
            &inbound_id,
            None,
            now,
        ))
        .build(backend),
        contacts::window_upsert(&contact_id, msg.channel, msg.received_at, now).build(backend),
    ];
    if let Some(rec) = audit {
        statements.push(webhook_audit::Entity::insert(audit_row(rec, false, now)).build(backend));
    }
    match core.db.write_together(statements).await {
        Ok(()) => {}
        Err(e) if is_unique_violation(&e) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    contacts::cache_window(core, phone.as_str(), msg.channel, msg.received_at).await;
    metrics::counter!("heimdall_inbound_messages_total", "channel" => msg.channel.as_str(), "keyword" => "none").increment(1);
    Ok(Some(InboundOutcome::Stored {
        inbound_id,
        contact_id,
        keyword: None,
        reply_message_id: None,
    }))
}

/// Did this fail on a unique key?
fn is_unique_violation(e: &sea_orm::DbErr) -> bool {
    matches!(
        e.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

fn dedup_entry(
    key: &str,
    provider: &str,
    now: DateTime<Utc>,
) -> processed_webhook_event::ActiveModel {
    processed_webhook_event::ActiveModel {
        event_key: Set(key.chars().take(200).collect()),
        provider: Set(provider.to_string()),
        created_at: Set(now),
        expires_at: Set(now + DEDUP_TTL),
    }
}

/// The inbox row for an inbound message.
fn inbound_row(
    msg: &InboundMessage,
    phone: &PhoneNumber,
    contact_id: &str,
    inbound_id: &str,
    matched: Option<&keywords::KeywordMatch>,
    now: DateTime<Utc>,
) -> inbound_message::ActiveModel {
    inbound_message::ActiveModel {
        id: Set(inbound_id.to_string()),
        contact_id: Set(contact_id.to_string()),
        channel: Set(msg.channel.as_str().into()),
        provider: Set(msg.provider.clone()),
        provider_message_id: Set(msg.provider_message_id.clone()),
        from_address: Set(phone.to_string()),
        to_address: Set(msg.to.clone()),
        body: Set(msg.body.clone()),
        media: Set(serde_json::to_string(&msg.media).unwrap_or_else(|_| "[]".into())),
        button_text: Set(msg.button_text.clone()),
        button_payload: Set(msg.button_payload.clone()),
        profile_name: Set(msg.profile_name.clone()),
        keyword_action: Set(matched.map(|k| format!("{:?}", k.action).to_lowercase())),
        needs_review: Set(matched.is_some_and(|k| !k.exact)),
        reviewed_at: Set(None),
        reviewed_by: Set(None),
        review_outcome: Set(None),
        received_at: Set(msg.received_at),
        created_at: Set(now),
    }
}

/// What storing an inbound message did, for the reply that follows.
struct Stored {
    inbound_id: String,
    contact_id: String,
    matched: Option<keywords::KeywordMatch>,
    changed: bool,
}

/// Everything an inbound message changes, in one transaction with its
/// dedup record: `None` when it was a duplicate.
async fn store_message(
    core: &Core,
    msg: &InboundMessage,
    phone: &PhoneNumber,
    key: &str,
    matched: Option<keywords::KeywordMatch>,
) -> Result<Option<Stored>, InboundError> {
    let now = core.now();
    let txn = core.db.begin_write().await?;
    if !claim_db(&txn, key, &msg.provider, now).await? {
        txn.rollback().await?;
        return Ok(None);
    }
    // Already in the inbox: a redelivery after its dedup entry expired
    // (24 h). A duplicate: the renewed dedup entry is kept, nothing else
    // changes (no keyword acts twice).
    let stored_before = inbound_message::Entity::find()
        .filter(inbound_message::Column::Provider.eq(&msg.provider))
        .filter(inbound_message::Column::ProviderMessageId.eq(&msg.provider_message_id))
        .one(&txn)
        .await?
        .is_some();
    if stored_before {
        txn.commit().await?;
        return Ok(None);
    }
    let contact =
        contacts::find_or_create_by_phone(&txn, phone, msg.profile_name.clone(), now).await?;
    let inbound_id = new_id();
    let mut changed = false;
    if let Some(k) = &matched {
        match k.action {
            KeywordAction::OptOut => {
                changed = consent::opt_out(
                    &txn,
                    &contact.id,
                    Some(msg.channel),
                    Scope::All,
                    OptOutSource::Keyword,
                    Some(&format!("{} ({})", k.keyword, msg.provider_message_id)),
                    "inbound",
                    now,
                )
                .await?;
            }
            KeywordAction::OptIn => {
                // Proof from the number: it confirms what is pending and
                // lifts an opt-out; a YES to nothing changes nothing.
                let from = FromNumber {
                    provider_message_id: &msg.provider_message_id,
                    received_at: msg.received_at,
                    keyword: k.keyword,
                    body: msg.body.as_deref(),
                };
                changed = consent::opt_in_from_number(&txn, &contact.id, msg.channel, &from, now)
                    .await?
                    != NumberOptIn::NothingToConfirm;
            }
            KeywordAction::Help => changed = true,
        }
    }
    inbound_row(msg, phone, &contact.id, &inbound_id, matched.as_ref(), now)
        .insert(&txn)
        .await?;
    contacts::open_window(&txn, &contact.id, msg.channel, msg.received_at, now).await?;
    txn.commit().await?;
    contacts::cache_window(core, phone.as_str(), msg.channel, msg.received_at).await;
    metrics::counter!("heimdall_inbound_messages_total", "channel" => msg.channel.as_str(), "keyword" => matched.as_ref().map(|k| match k.action { KeywordAction::OptOut => "opt_out", KeywordAction::OptIn => "opt_in", KeywordAction::Help => "help" }).unwrap_or("none")).increment(1);
    Ok(Some(Stored {
        inbound_id,
        contact_id: contact.id,
        matched,
        changed,
    }))
}

/// Queue the reply a keyword calls for (after the effects are committed).
async fn reply_to_keyword(core: &Core, msg: &InboundMessage, stored: Stored) -> InboundOutcome {
    let Stored {
        inbound_id,
        contact_id,
        matched,
        changed,
    } = stored;
    let reply = match (&matched, changed) {
        (Some(k), true) => Some(match k.action {
            KeywordAction::OptOut => format!(
                "{}: you are unsubscribed and will receive no more messages on this number. Reply START to resubscribe.",
                core.settings.program_name
            ),
            KeywordAction::OptIn => format!(
                "{}: you are subscribed. Msg frequency varies. Msg & data rates may apply. Reply HELP for help, STOP to unsubscribe.",
                core.settings.program_name
            ),
            KeywordAction::Help => core.live.get().help_reply(&core.settings.program_name),
        }),
        _ => None,
    };
    let reply_message_id = match reply {
        Some(body) => {
            let out = outbound::accept(
                core,
                SendRequest {
                    recipient: Recipient::Contact(contact_id.clone()),
                    channel: msg.channel,
                    // Heimdall's own text, written for the channel: only split.
                    content: RequestedContent::Text {
                        body,
                        media_url: None,
                        format: crate::channels::formatting::TextFormat::AsIs,
                        reply_to: None,
                    },
                    origin: Origin::ComplianceReply,
                    idempotency_key: Some(format!("reply:{}", msg.provider_message_id)),
                },
            )
            .await;
            match out {
                Ok(o) => Some(o.message_id),
                Err(e) => {
                    tracing::error!(error = %e, "could not queue the keyword reply");
                    None
                }
            }
        }
        None => None,
    };
    InboundOutcome::Stored {
        inbound_id,
        contact_id,
        keyword: matched.map(|k| k.keyword.to_string()),
        reply_message_id,
    }
}

/// Apply a delivery status once (dedup by sid and status).
pub async fn handle_status(core: &Core, report: StatusReport) -> Result<bool, sea_orm::DbErr> {
    let sid = report
        .provider_sid
        .clone()
        .or_else(|| report.message_id.clone())
        .unwrap_or_default();
    let key = format!(
        "{}:status:{sid}:{}",
        report.source,
        report.status.to_ascii_lowercase()
    );
    if !claim_redis(core, &key).await {
        return Ok(false);
    }
    let source = report.source.clone();
    let res = async {
        if !claim_db(&core.db.conn, &key, &source, core.now()).await? {
            return Ok(false);
        }
        if let Err(e) = outbound::apply_status(core, report).await {
            // Release the claim so a redelivery or the spool replay applies it.
            let _ = processed_webhook_event::Entity::delete_by_id(
                key.chars().take(200).collect::<String>(),
            )
            .exec(&core.db.conn)
            .await;
            return Err(e);
        }
        Ok(true)
    }
    .await;
    if res.is_err() {
        release_redis(core, &key).await;
    }
    res
}

// ---------------------------------------------------------------------------
// Audit log and the local spool

/// One webhook request as recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookRecord {
    pub provider: String,
    pub path: String,
    /// accepted, duplicate, bad_signature, malformed, too_large, ignored
    pub verdict: String,
    pub headers: BTreeMap<String, String>,
    /// The body with secret-bearing fields removed.
    pub body: String,
    pub event_id: Option<String>,
    pub received_at: DateTime<Utc>,
}

/// Parameters never stored in clear.
const SECRET_PARAMS: &[&str] = &["hub.verify_token", "access_token", "AuthToken", "Password"];

/// Remove secret-bearing fields from a form-encoded or JSON body.
pub fn redact_body(body: &str) -> String {
    let trimmed = body.trim_start();
    if trimmed.starts_with('{') {
        if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(body) {
            redact_json(&mut v);
            return v.to_string();
        }
        return body.to_string();
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(body).unwrap_or_default();
    if pairs.is_empty() {
        return body.chars().take(4096).collect();
    }
    let cleaned: Vec<(String, String)> = pairs
        .into_iter()
        .map(|(k, v)| {
            if SECRET_PARAMS.iter().any(|s| s.eq_ignore_ascii_case(&k)) {
                (k, "[redacted]".into())
            } else {
                (k, v)
            }
        })
        .collect();
    serde_urlencoded::to_string(cleaned).unwrap_or_default()
}

fn redact_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if SECRET_PARAMS.iter().any(|s| s.eq_ignore_ascii_case(k)) {
                    *val = serde_json::Value::String("[redacted]".into());
                } else {
                    redact_json(val);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json),
        _ => {}
    }
}

/// How much of a refused request's body is kept (a bad signature proves
/// nothing, and anyone can send one: a few KiB and the body's hash are
/// enough to investigate).
pub const REFUSED_BODY_BYTES: usize = 2048;

/// Refused requests recorded per address per minute; beyond that they are
/// only counted (`heimdall_webhooks_refused_unrecorded_total`).
pub const REFUSED_PER_MINUTE: u32 = 30;

/// The body of a refused request as recorded: its length, its SHA-256 and
/// at most [`REFUSED_BODY_BYTES`] of it (secrets redacted).
pub fn refused_body(body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let hash = hex::encode(Sha256::digest(body));
    let head = &body[..body.len().min(REFUSED_BODY_BYTES)];
    let kept: String = redact_body(&String::from_utf8_lossy(head))
        .chars()
        .take(REFUSED_BODY_BYTES)
        .collect();
    format!(
        "[refused: {} bytes, sha256 {hash}; first {} kept] {kept}",
        body.len(),
        head.len()
    )
}

/// Which refused requests get an audit row: at most
/// [`REFUSED_PER_MINUTE`] per address (a flood of forged requests must not
/// fill the disk). Bounded in memory too.
#[derive(Debug)]
pub struct RefusedWebhooks(governor::DefaultKeyedRateLimiter<std::net::IpAddr>);

impl Default for RefusedWebhooks {
    fn default() -> Self {
        let per_minute = std::num::NonZeroU32::new(REFUSED_PER_MINUTE).expect("positive");
        RefusedWebhooks(governor::RateLimiter::keyed(governor::Quota::per_minute(
            per_minute,
        )))
    }
}

impl RefusedWebhooks {
    /// May a refused request from `ip` be recorded now?
    pub fn may_record(&self, ip: std::net::IpAddr) -> bool {
        if self.0.len() > 10_000 {
            self.0.retain_recent();
            self.0.shrink_to_fit();
        }
        self.0.check_key(&ip).is_ok()
    }
}

/// Record a refused webhook request (bad signature, malformed): never
/// spooled (there is nothing to replay), its body cut to a few KiB with its
/// hash, and at most [`REFUSED_PER_MINUTE`] per address.
pub async fn record_refused(
    core: &Core,
    ip: std::net::IpAddr,
    mut rec: WebhookRecord,
    body: &[u8],
) {
    if !core.refused_webhooks.may_record(ip) {
        metrics::counter!("heimdall_webhooks_refused_unrecorded_total").increment(1);
        return;
    }
    rec.body = refused_body(body);
    if let Err(e) = record_webhook(&core.db.conn, &rec, false, core.now()).await {
        tracing::warn!(error = %e, "could not record a refused webhook request");
    }
}

/// Delete webhook audit rows older than `HEIMDALL_WEBHOOK_AUDIT_DAYS`
/// (housekeeping, daily).
pub async fn prune_webhook_audit(core: &Core) -> Result<u64, sea_orm::DbErr> {
    let cutoff = core.now() - Duration::days(i64::from(core.settings.webhook_audit_days));
    Ok(webhook_audit::Entity::delete_many()
        .filter(webhook_audit::Column::ReceivedAt.lt(cutoff))
        .exec(&core.db.conn)
        .await?
        .rows_affected)
}

pub async fn record_webhook(
    db: &impl ConnectionTrait,
    rec: &WebhookRecord,
    replayed: bool,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    audit_row(rec, replayed, now).insert(db).await?;
    Ok(())
}

/// The audit-log row for a webhook request.
fn audit_row(
    rec: &WebhookRecord,
    replayed: bool,
    now: DateTime<Utc>,
) -> webhook_audit::ActiveModel {
    webhook_audit::ActiveModel {
        id: Set(new_id()),
        provider: Set(rec.provider.clone()),
        path: Set(rec.path.clone()),
        verdict: Set(rec.verdict.clone()),
        headers: Set(serde_json::to_string(&rec.headers).unwrap_or_else(|_| "{}".into())),
        body: Set(rec.body.clone()),
        event_id: Set(rec.event_id.clone()),
        replayed: Set(replayed),
        received_at: Set(rec.received_at),
        created_at: Set(now),
    }
}

/// An accepted event kept on local disk while the database is away.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpooledEvent {
    pub record: WebhookRecord,
    pub event: SpooledPayload,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SpooledPayload {
    Message(InboundMessage),
    Status(StatusReportData),
    None,
}

/// A serialisable copy of a status report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReportData {
    pub message_id: Option<String>,
    pub provider_sid: Option<String>,
    pub status: String,
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
    pub price: Option<String>,
    pub price_unit: Option<String>,
    pub source: String,
}

impl From<StatusReportData> for StatusReport {
    fn from(d: StatusReportData) -> Self {
        StatusReport {
            message_id: d.message_id,
            provider_sid: d.provider_sid,
            status: d.status,
            error_code: d.error_code,
            error_message: d.error_message,
            price: d.price,
            price_unit: d.price_unit,
            source: d.source,
        }
    }
}

impl From<&StatusReport> for StatusReportData {
    fn from(d: &StatusReport) -> Self {
        StatusReportData {
            message_id: d.message_id.clone(),
            provider_sid: d.provider_sid.clone(),
            status: d.status.clone(),
            error_code: d.error_code,
            error_message: d.error_message.clone(),
            price: d.price.clone(),
            price_unit: d.price_unit.clone(),
            source: d.source.clone(),
        }
    }
}

/// Keep an event in the local spool (the database is away); sends hold
/// until it is replayed.
pub async fn spool(core: &Core, event: &SpooledEvent) -> std::io::Result<()> {
    store::spool::append(core, event).await
}

/// Replay spooled events into the database; returns how many were replayed.
/// Events stay in the spool until every one of them went in.
pub async fn replay_spool(core: &Core) -> Result<usize, String> {
    let guard = core.spool.lock.lock().await;
    let path = store::spool::spool_path(core);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => {
            if !t.trim().is_empty() {
                // Until every event went in, sends wait.
                core.spool.pending.store(true, Ordering::SeqCst);
            }
            t
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            core.spool.pending.store(false, Ordering::SeqCst);
            return Ok(0);
        }
        Err(e) => return Err(e.to_string()),
    };
    let mut n = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let ev: SpooledEvent = match serde_json::from_str(line) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "unreadable spool line skipped");
                continue;
            }
        };
        let now = core.now();
        record_webhook(&core.db.conn, &ev.record, true, now)
            .await
            .map_err(|e| e.to_string())?;
        match ev.event {
            SpooledPayload::Message(m) => {
                handle_message(core, m).await.map_err(|e| e.to_string())?;
            }
            SpooledPayload::Status(s) => {
                handle_status(core, s.into())
                    .await
                    .map_err(|e| e.to_string())?;
            }
            SpooledPayload::None => {}
        }
        n += 1;
    }
    std::fs::write(&path, b"").map_err(|e| e.to_string())?;
    core.spool.pending.store(false, Ordering::SeqCst);
    drop(guard);
    store::spool::share_spool_state(core).await;
    if n > 0 {
        tracing::info!(events = n, "replayed webhook events from the local spool");
    }
    Ok(n)
}

// ---------------------------------------------------------------------------
// Meta webhooks

/// What one Meta webhook delivery carries.
#[derive(Debug, Default)]
pub struct MetaEvents {
    pub messages: Vec<InboundMessage>,
    pub statuses: Vec<StatusReport>,
    /// A new messaging limit from `business_capability_update`.
    pub tier_limit: Option<Option<u64>>,
}

/// Parse Meta's webhook JSON (`whatsapp_business_account` object).
pub fn parse_meta(body: &serde_json::Value, now: DateTime<Utc>) -> Result<MetaEvents, String> {
    if body.get("object").and_then(|o| o.as_str()) != Some("whatsapp_business_account") {
        return Err("object must be whatsapp_business_account".into());
    }
    let entries = body
        .get("entry")
        .and_then(|e| e.as_array())
        .ok_or("entry is missing")?;
    let mut out = MetaEvents::default();
    for entry in entries {
        for change in entry
            .get("changes")
            .and_then(|c| c.as_array())
            .into_iter()
            .flatten()
        {
            let field = change
                .get("field")
                .and_then(|f| f.as_str())
                .unwrap_or_default();
            let value = change.get("value").cloned().unwrap_or_default();
            match field {
                "messages" => {
                    let names: BTreeMap<String, String> = value
                        .get("contacts")
                        .and_then(|c| c.as_array())
                        .into_iter()
                        .flatten()
                        .filter_map(|c| {
                            Some((
                                c.get("wa_id")?.as_str()?.to_string(),
                                c.pointer("/profile/name")?.as_str()?.to_string(),
                            ))
                        })
                        .collect();
                    let to = value
                        .pointer("/metadata/display_phone_number")
                        .and_then(|v| v.as_str())
                        .map(str::to_string);
                    for m in value
                        .get("messages")
                        .and_then(|m| m.as_array())
                        .into_iter()
                        .flatten()
                    {
                        let id = m
                            .get("id")
                            .and_then(|v| v.as_str())
                            .ok_or("message id missing")?;
                        let from = m
                            .get("from")
                            .and_then(|v| v.as_str())
                            .ok_or("message from missing")?;
                        let kind = m.get("type").and_then(|v| v.as_str()).unwrap_or("text");
                        let received_at = m
                            .get("timestamp")
                            .and_then(|t| t.as_str())
                            .and_then(|t| t.parse::<i64>().ok())
                            .and_then(|t| DateTime::from_timestamp(t, 0))
                            .filter(|t| *t <= now + Duration::minutes(5))
                            .unwrap_or(now);
                        let (body, button_text, button_payload) = match kind {
                            "text" => (
                                m.pointer("/text/body")
                                    .and_then(|v| v.as_str())
                                    .map(str::to_string),
                                None,
                                None,
                            ),
                            "button" => (
                                None,
                                m.pointer("/button/text")
                                    .and_then(|v| v.as_str())
                                    .map(str::to_string),
                                m.pointer("/button/payload")
                                    .and_then(|v| v.as_str())
                                    .map(str::to_string),
                            ),
                            "interactive" => {
                                let reply = m
                                    .pointer("/interactive/button_reply")
                                    .or_else(|| m.pointer("/interactive/list_reply"));
                                (
                                    None,
                                    reply
                                        .and_then(|r| r.get("title"))
                                        .and_then(|v| v.as_str())
                                        .map(str::to_string),
                                    reply
                                        .and_then(|r| r.get("id"))
                                        .and_then(|v| v.as_str())
                                        .map(str::to_string),
                                )
                            }
                            _ => (
                                m.pointer(&format!("/{kind}/caption"))
                                    .and_then(|v| v.as_str())
                                    .map(str::to_string),
                                None,
                                None,
                            ),
                        };
                        let media = ["image", "audio", "video", "document", "sticker"]
                            .iter()
                            .filter_map(|k| {
                                m.pointer(&format!("/{k}/id"))
                                    .and_then(|v| v.as_str())
                                    .map(|id| format!("meta-media:{id}"))
                            })
                            .collect();
                        out.messages.push(InboundMessage {
                            provider: "meta".into(),
                            provider_message_id: id.to_string(),
                            channel: Channel::WhatsApp,
                            from: from.to_string(),
                            to: to.clone(),
                            body,
                            media,
                            button_text,
                            button_payload,
                            profile_name: names.get(from).cloned(),
                            received_at,
                        });
                    }
                    for s in value
                        .get("statuses")
                        .and_then(|s| s.as_array())
                        .into_iter()
                        .flatten()
                    {
                        let id = s
                            .get("id")
                            .and_then(|v| v.as_str())
                            .ok_or("status id missing")?;
                        let status = s
                            .get("status")
                            .and_then(|v| v.as_str())
                            .ok_or("status missing")?;
                        let err = s
                            .get("errors")
                            .and_then(|e| e.as_array())
                            .and_then(|e| e.first());
                        out.statuses.push(StatusReport {
                            message_id: None,
                            provider_sid: Some(id.to_string()),
                            status: status.to_string(),
                            error_code: err.and_then(|e| e.get("code")).and_then(|c| c.as_i64()),
                            error_message: err
                                .and_then(|e| e.get("title").or_else(|| e.get("message")))
                                .and_then(|t| t.as_str())
                                .map(str::to_string),
                            price: None,
                            price_unit: None,
                            source: "meta".into(),
                        });
                    }
                }
                "business_capability_update" | "account_update" | "phone_number_quality_update" => {
                    if let Some(limit) = parse_meta_limit(&value) {
                        out.tier_limit = Some(limit);
                    }
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// Meta's messaging limit as a number (`None` = unlimited), from either
/// `max_daily_conversation_per_phone` (number), `max_daily_conversations_per_business`
/// or `current_limit` (`TIER_250`, `TIER_2K`, `TIER_10K`, `TIER_100K`, `TIER_UNLIMITED`).
pub fn parse_meta_limit(value: &serde_json::Value) -> Option<Option<u64>> {
    for key in [
        "max_daily_conversations_per_business",
        "max_daily_conversation_per_phone",
        "current_limit",
        "messaging_limit_tier",
    ] {
        match value.get(key) {
            Some(serde_json::Value::Number(n)) => return n.as_u64().map(Some),
            Some(serde_json::Value::String(s)) => {
                let s = s.to_ascii_uppercase();
                let tier = s.trim_start_matches("TIER_");
                return match tier {
                    "UNLIMITED" => Some(None),
                    _ => {
                        let (digits, mult) = match tier.strip_suffix('K') {
                            Some(d) => (d, 1000),
                            None => (tier, 1),
                        };
                        digits.parse::<u64>().ok().map(|n| Some(n * mult))
                    }
                };
            }
            _ => {}
        }
    }
    None
}

/// Persist a new tier limit (from Meta or an admin) and apply it, in this
/// process at once and in every other within seconds ([`crate::settings::runtime`]).
pub async fn set_tier_limit(
    core: &Core,
    limit: Option<u64>,
    actor: &str,
) -> Result<(), sea_orm::DbErr> {
    let before = core.limits.tier_limit();
    crate::settings::store::put(
        core,
        crate::settings::runtime::keys::TIER_LIMIT,
        &serde_json::json!(limit),
        actor,
    )
    .await?;
    crate::audit::record_infra_change(
        &core.db.conn,
        actor,
        "tier_limit",
        "messaging limit changed",
        Some(serde_json::json!(before)),
        Some(serde_json::json!(limit)),
        core.now(),
    )
    .await?;
    crate::settings::runtime::refresh(core).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secrets() {
        assert_eq!(
            redact_body("hub.mode=subscribe&hub.verify_token=s3cret&hub.challenge=1"),
            "hub.mode=subscribe&hub.verify_token=%5Bredacted%5D&hub.challenge=1"
        );
        let j = redact_body(r#"{"a":{"access_token":"x"},"b":1}"#);
        assert!(!j.contains("\"x\""));
    }

    #[test]
    fn meta_limits() {
        use serde_json::json;
        assert_eq!(
            parse_meta_limit(&json!({"max_daily_conversation_per_phone": 1000})),
            Some(Some(1000))
        );
        assert_eq!(
            parse_meta_limit(&json!({"max_daily_conversations_per_business": "TIER_2K"})),
            Some(Some(2000))
        );
        assert_eq!(
            parse_meta_limit(&json!({"current_limit": "TIER_UNLIMITED"})),
            Some(None)
        );
        assert_eq!(
            parse_meta_limit(&json!({"current_limit": "TIER_250"})),
            Some(Some(250))
        );
        assert_eq!(parse_meta_limit(&json!({})), None);
    }

    #[test]
    fn parses_meta_messages_and_statuses() {
        let now = Utc::now();
        let body = serde_json::json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550001111", "phone_number_id": "1"},
                "contacts": [{"profile": {"name": "Kari"}, "wa_id": "4791234567"}],
                "messages": [{"from": "4791234567", "id": "wamid.A", "timestamp": "1700000000", "type": "text", "text": {"body": "STOP"}}],
                "statuses": [{"id": "wamid.B", "status": "failed", "timestamp": "1700000001", "recipient_id": "4791234567",
                              "errors": [{"code": 131026, "title": "Message undeliverable"}]}]
            }}]}]
        });
        let ev = parse_meta(&body, now).unwrap();
        assert_eq!(ev.messages.len(), 1);
        assert_eq!(ev.messages[0].body.as_deref(), Some("STOP"));
        assert_eq!(ev.messages[0].profile_name.as_deref(), Some("Kari"));
        assert_eq!(ev.statuses[0].error_code, Some(131026));
        assert!(parse_meta(&serde_json::json!({"object": "page"}), now).is_err());
    }
}
