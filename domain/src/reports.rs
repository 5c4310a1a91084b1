//! Read models for the console: the dashboard of one day, the audit log
//! (and its CSV export), the inbox with its conversations, and a contact's
//! timeline.
//!
//! Everything here only reads; it must never write or send. Phone numbers
//! in lists of messages (audit log, CSV, failures) are masked; only the
//! views of one contact (inbox thread, timeline) carry the contact's own
//! number, as the contact page does. The CSV export neutralises cells a
//! spreadsheet would run as formulas.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, Condition, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};

use crate::alerts::{self, AlertRow};
use crate::campaigns;
pub use crate::campaigns::FailureRow;
use crate::channel::Channel;
use crate::compliance::gates::{self, GateVerdict, Verdict};
use crate::compliance::message_state::MessageState;
use crate::contacts::{self, Contact, WindowState};

use crate::consent::{ConsentRecord, Suppression};
use crate::entities::{
    contact, inbound_message, message_status_event, outbound_message, suppression, tool_call,
};
use crate::sending::outbound::{self, MessageView, StatusEventView};
use crate::templates::{self, Template};
use crate::Core;

// ---------------------------------------------------------------------------
// Dashboard

/// One day at a glance.
#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    pub day: NaiveDate,
    pub time_zone: String,
    /// Messages created that local day, by state.
    pub sends_by_state: BTreeMap<String, usize>,
    /// Messages created that local day.
    pub total: usize,
    /// Of that day's messages handed to the provider: delivered (or read).
    pub delivery_rate: f64,
    /// Of that day's messages handed to the provider: read.
    pub read_rate: f64,
    pub window_coverage: WindowCoverage,
    /// That day's blocked messages by reason code.
    pub blocks_by_reason: BTreeMap<String, usize>,
    /// Messaging tier use now (moving 24 hours).
    pub tier: TierUsage,
    /// Jobs waiting in the queue, when the queue can tell.
    pub queue_depth: Option<u64>,
    /// Messages waiting to be sent now (queued or deferred), any day.
    pub waiting: usize,
    /// The 10 newest failed or undelivered messages.
    pub recent_failures: Vec<FailureRow>,
    /// The 10 newest alerts.
    pub recent_alerts: Vec<AlertRow>,
}

/// How that day's WhatsApp messages relate to the 24-hour window.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WindowCoverage {
    /// Went (or are going) inside an open window.
    pub in_window: usize,
    /// Went outside a window, as an approved template.
    pub by_template: usize,
    /// Free-form text refused because no window was open.
    pub free_form_outside_window_blocked: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct TierUsage {
    /// Unique people reached outside a window in the moving 24 hours.
    pub used: u64,
    /// `None`: unlimited.
    pub limit: Option<u64>,
    /// `used` as a percentage of `limit`; `None` when unlimited.
    pub percent: Option<f64>,
}

/// The UTC instants a local day starts and ends at.
fn day_bounds(day: NaiveDate, tz: chrono_tz::Tz) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = gates::next_local_time(tz, day, NaiveTime::MIN)
        .unwrap_or_else(|| day.and_time(NaiveTime::MIN).and_utc());
    let next = day.succ_opt().unwrap_or(day);
    let end = gates::next_local_time(tz, next, NaiveTime::MIN).unwrap_or(start + Duration::days(1));
    (start, end)
}

fn to_usize(n: i64) -> usize {
    usize::try_from(n).unwrap_or(0)
}

pub async fn dashboard(core: &Core, day: NaiveDate, tz: chrono_tz::Tz) -> Result<Dashboard, DbErr> {
    let db = &core.db.conn;
    let (start, end) = day_bounds(day, tz);
    let that_day = Condition::all()
        .add(outbound_message::Column::CreatedAt.gte(start))
        .add(outbound_message::Column::CreatedAt.lt(end));
    let counts = campaigns::state_counts(db, that_day.clone()).await?;
    let mut sends_by_state: BTreeMap<String, usize> = BTreeMap::new();
    let mut blocks_by_reason: BTreeMap<String, usize> = BTreeMap::new();
    let mut total = 0;
    for (state, reason, n, _) in &counts {
        let n = to_usize(*n);
        total += n;
        *sends_by_state.entry(state.clone()).or_default() += n;
        if state == MessageState::Blocked.as_str() {
            if let Some(r) = reason {
                *blocks_by_reason.entry(r.clone()).or_default() += n;
            }
        }
    }
    let (delivery_rate, read_rate) = campaigns::rates(&counts);

    let coverage: Vec<(String, Option<bool>, i64)> = outbound_message::Entity::find()
        .select_only()
        .column(outbound_message::Column::Kind)
        .column(outbound_message::Column::InWindow)
        .column_as(Expr::col(outbound_message::Column::Id).count(), "n")
        .filter(that_day)
        .filter(outbound_message::Column::Channel.eq(Channel::WhatsApp.as_str()))
        .filter(outbound_message::Column::State.is_not_in([
            MessageState::Pending.as_str(),
            MessageState::Blocked.as_str(),
            MessageState::Cancelled.as_str(),
        ]))
        .group_by(outbound_message::Column::Kind)
        .group_by(outbound_message::Column::InWindow)
        .into_tuple()
        .all(db)
        .await?;
    let mut window_coverage = WindowCoverage {
        free_form_outside_window_blocked: blocks_by_reason
            .get(gates::Gate::OutsideWindow.code())
            .copied()
            .unwrap_or(0),
        ..Default::default()
    };
    for (kind, in_window, n) in coverage {
        match (in_window, kind.as_str()) {
            (Some(true), _) => window_coverage.in_window += to_usize(n),
            (_, "template") => window_coverage.by_template += to_usize(n),
            _ => {}
        }
    }

    let now = core.now();
    let fact = core.limits.tier_fact("", now).await;
    let tier = TierUsage {
        used: fact.used,
        limit: fact.limit,
        percent: fact
            .limit
            .filter(|l| *l > 0)
            .map(|l| (fact.used as f64 * 100.0 / l as f64 * 10.0).round() / 10.0),
    };
    let waiting = outbound_message::Entity::find()
        .filter(outbound_message::Column::State.is_in([
            MessageState::Queued.as_str(),
            MessageState::Deferred.as_str(),
            MessageState::Held.as_str(),
        ]))
        .count(db)
        .await?;
    Ok(Dashboard {
        day,
        time_zone: tz.name().to_string(),
        sends_by_state,
        total,
        delivery_rate,
        read_rate,
        window_coverage,
        blocks_by_reason,
        tier,
        queue_depth: core.queue.depth().await,
        waiting: usize::try_from(waiting).unwrap_or(usize::MAX),
        recent_failures: campaigns::failures(core, Condition::all(), 10).await?,
        recent_alerts: alerts::recent(core, 10).await?,
    })
}

// ---------------------------------------------------------------------------
// Audit log

/// Which audit rows to show. Every field is optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditFilter {
    pub contact_id: Option<String>,
    pub campaign_id: Option<String>,
    /// pass, block, defer (evaluations) or sent, failed (send attempts).
    pub decision: Option<String>,
    /// A gate's reason code, e.g. `no_consent`.
    pub reason_code: Option<String>,
    /// From this instant (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// Until this instant (exclusive).
    pub to: Option<DateTime<Utc>>,
    /// `gate_evaluation` or `send_attempt`.
    pub kind: Option<String>,
    /// Default 100 (at most 1,000) for the log, 10,000 (at most 100,000) for CSV.
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

/// One `tool_calls` row as shown.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    pub id: String,
    pub at: DateTime<Utc>,
    /// `gate_evaluation` or `send_attempt`.
    pub kind: String,
    /// `accept` or `worker`.
    pub stage: String,
    pub message_id: Option<String>,
    pub contact_id: Option<String>,
    pub campaign_id: Option<String>,
    pub channel: Option<String>,
    /// The message's recipient, masked.
    pub phone_masked: Option<String>,
    pub decision: String,
    pub reason_code: Option<String>,
    pub result_ok: bool,
    pub error_code: Option<i32>,
    pub detail: Option<String>,
    /// Every gate's verdict (a JSON array), empty for send attempts.
    pub verdicts: serde_json::Value,
    pub actor: String,
}

fn non_blank(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

async fn audit_rows(
    core: &Core,
    f: &AuditFilter,
    default_limit: u64,
    max_limit: u64,
) -> Result<Vec<AuditRow>, DbErr> {
    let db = &core.db.conn;
    let mut q = tool_call::Entity::find()
        .order_by_desc(tool_call::Column::CreatedAt)
        .order_by_desc(tool_call::Column::Id);
    if let Some(v) = non_blank(&f.contact_id) {
        q = q.filter(tool_call::Column::ContactId.eq(v));
    }
    if let Some(v) = non_blank(&f.campaign_id) {
        q = q.filter(tool_call::Column::CampaignId.eq(v));
    }
    if let Some(v) = non_blank(&f.decision) {
        q = q.filter(tool_call::Column::Decision.eq(v.to_lowercase()));
    }
    if let Some(v) = non_blank(&f.reason_code) {
        q = q.filter(tool_call::Column::ReasonCode.eq(v.to_lowercase()));
    }
    if let Some(v) = non_blank(&f.kind) {
        q = q.filter(tool_call::Column::Kind.eq(v.to_lowercase()));
    }
    if let Some(from) = f.from {
        q = q.filter(tool_call::Column::CreatedAt.gte(from));
    }
    if let Some(to) = f.to {
        q = q.filter(tool_call::Column::CreatedAt.lt(to));
    }
    let rows = q
        .limit(f.limit.unwrap_or(default_limit).clamp(1, max_limit))
        .offset(f.offset.unwrap_or(0))
        .all(db)
        .await?;
    let ids: Vec<String> = rows
        .iter()
        .filter_map(|r| r.message_id.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut phones: HashMap<String, String> = HashMap::new();
    for chunk in ids.chunks(500) {
        let found: Vec<(String, String)> = outbound_message::Entity::find()
            .select_only()
            .column(outbound_message::Column::Id)
            .column(outbound_message::Column::ToAddress)
            .filter(outbound_message::Column::Id.is_in(chunk.to_vec()))
            .into_tuple()
            .all(db)
            .await?;
        phones.extend(found);
    }
    Ok(rows
        .into_iter()
        .map(|r| AuditRow {
            phone_masked: r
                .message_id
                .as_ref()
                .and_then(|id| phones.get(id))
                .map(|p| outbound::mask(p)),
            verdicts: serde_json::from_str(&r.verdicts).unwrap_or(serde_json::Value::Array(vec![])),
            id: r.id,
            at: r.created_at,
            kind: r.kind,
            stage: r.stage,
            message_id: r.message_id,
            contact_id: r.contact_id,
            campaign_id: r.campaign_id,
            channel: r.channel,
            decision: r.decision,
            reason_code: r.reason_code,
            result_ok: r.result_ok,
            error_code: r.error_code,
            detail: r.detail,
            actor: r.actor,
        })
        .collect())
}

/// `tool_calls` rows, newest first.
pub async fn audit_log(core: &Core, filter: &AuditFilter) -> Result<Vec<AuditRow>, DbErr> {
    audit_rows(core, filter, 100, 1_000).await
}

/// The verdicts of an audit row as `gate:verdict;...`.
pub fn compact_verdicts(verdicts: &serde_json::Value) -> String {
    let parsed: Vec<GateVerdict> = serde_json::from_value(verdicts.clone()).unwrap_or_default();
    parsed
        .iter()
        .map(|v| {
            format!(
                "{}:{}",
                v.gate.code(),
                match v.verdict {
                    Verdict::Pass { .. } => "pass",
                    Verdict::NotApplicable { .. } => "not_applicable",
                    Verdict::Block { .. } => "block",
                    Verdict::Defer { .. } => "defer",
                }
            )
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// A cell a spreadsheet will not run as a formula: one starting with
/// `=`, `+`, `-`, `@` (or a tab or carriage return) gets a leading quote.
pub fn csv_safe(cell: &str) -> String {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}"),
        _ => cell.to_string(),
    }
}

/// The audit log as CSV: a header row, then one row per `tool_calls` row.
pub async fn audit_csv(core: &Core, filter: &AuditFilter) -> Result<String, DbErr> {
    let rows = audit_rows(core, filter, 10_000, 100_000).await?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let csv_err = |e: csv::Error| DbErr::Custom(format!("could not write the CSV: {e}"));
    w.write_record([
        "at",
        "kind",
        "stage",
        "message_id",
        "contact_id",
        "campaign_id",
        "channel",
        "phone",
        "decision",
        "reason_code",
        "result_ok",
        "error_code",
        "detail",
        "verdicts",
        "actor",
    ])
    .map_err(csv_err)?;
    for r in rows {
        let cells = [
            r.at.to_rfc3339(),
            r.kind,
            r.stage,
            r.message_id.unwrap_or_default(),
            r.contact_id.unwrap_or_default(),
            r.campaign_id.unwrap_or_default(),
            r.channel.unwrap_or_default(),
            r.phone_masked.unwrap_or_default(),
            r.decision,
            r.reason_code.unwrap_or_default(),
            r.result_ok.to_string(),
            r.error_code.map(|c| c.to_string()).unwrap_or_default(),
            r.detail.unwrap_or_default(),
            compact_verdicts(&r.verdicts),
            r.actor,
        ];
        w.write_record(cells.iter().map(|c| csv_safe(c)))
            .map_err(csv_err)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| DbErr::Custom(format!("could not write the CSV: {e}")))?;
    String::from_utf8(bytes).map_err(|e| DbErr::Custom(format!("CSV is not UTF-8: {e}")))
}

// ---------------------------------------------------------------------------
// Inbox

/// One person's conversation as the inbox lists it.
#[derive(Debug, Clone, Serialize)]
pub struct InboxThread {
    pub contact: Contact,
    /// The channel of the last inbound message.
    pub channel: String,
    pub last_inbound_id: String,
    pub last_inbound_text: Option<String>,
    pub last_inbound_at: DateTime<Utc>,
    /// Inbound messages since the last outbound message that went (or is
    /// going) out.
    pub unread: usize,
    pub last_outbound_at: Option<DateTime<Utc>>,
    /// The window on the channel of the last inbound message.
    pub window: WindowState,
    /// Some inbound message looked like an opt-out in other words and waits
    /// for a person to check it.
    pub needs_review: bool,
}

/// Outbound states that did not reach (and will not reach) the person.
pub(crate) const NOT_OUT: [MessageState; 3] = [
    MessageState::Pending,
    MessageState::Blocked,
    MessageState::Cancelled,
];

/// Threads, newest inbound first (one per contact), or only the thread of
/// `contact_id`.
pub async fn inbox(
    core: &Core,
    contact_id: Option<&str>,
    limit: u64,
) -> Result<Vec<InboxThread>, DbErr> {
    let db = &core.db.conn;
    let mut q = inbound_message::Entity::find()
        .select_only()
        .column(inbound_message::Column::ContactId)
        .group_by(inbound_message::Column::ContactId)
        .order_by_desc(Expr::col(inbound_message::Column::ReceivedAt).max())
        .limit(limit.clamp(1, 500));
    if let Some(id) = contact_id {
        q = q.filter(inbound_message::Column::ContactId.eq(id));
    }
    let contact_ids: Vec<String> = q.into_tuple().all(db).await?;
    let now = core.now();
    let mut threads = Vec::with_capacity(contact_ids.len());
    for id in contact_ids {
        let Some(c) = contact::Entity::find_by_id(id.as_str()).one(db).await? else {
            continue;
        };
        let Some(last) = inbound_message::Entity::find()
            .filter(inbound_message::Column::ContactId.eq(&id))
            .order_by_desc(inbound_message::Column::ReceivedAt)
            .order_by_desc(inbound_message::Column::Id)
            .one(db)
            .await?
        else {
            continue;
        };
        let last_outbound_at: Option<DateTime<Utc>> = outbound_message::Entity::find()
            .select_only()
            .column(outbound_message::Column::CreatedAt)
            .filter(outbound_message::Column::ContactId.eq(&id))
            .filter(outbound_message::Column::State.is_not_in(NOT_OUT.map(|s| s.as_str())))
            .order_by_desc(outbound_message::Column::CreatedAt)
            .into_tuple()
            .one(db)
            .await?;
        let mut unread =
            inbound_message::Entity::find().filter(inbound_message::Column::ContactId.eq(&id));
        if let Some(at) = last_outbound_at {
            unread = unread.filter(inbound_message::Column::ReceivedAt.gt(at));
        }
        let unread = unread.count(db).await?;
        let needs_review = inbound_message::Entity::find()
            .filter(inbound_message::Column::ContactId.eq(&id))
            .filter(inbound_message::Column::NeedsReview.eq(true))
            .filter(inbound_message::Column::ReviewedAt.is_null())
            .count(db)
            .await?
            > 0;
        let channel: Channel = last.channel.parse().unwrap_or(Channel::WhatsApp);
        threads.push(InboxThread {
            window: contacts::window(db, &id, channel, now).await?,
            contact: Contact::from(c),
            channel: last.channel,
            last_inbound_id: last.id,
            last_inbound_text: last.body.or(last.button_text),
            last_inbound_at: last.received_at,
            unread: usize::try_from(unread).unwrap_or(usize::MAX),
            last_outbound_at,
            needs_review,
        });
    }
    Ok(threads)
}

/// One message in a conversation.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "direction", rename_all = "snake_case")]
pub enum ConversationItem {
    Inbound {
        id: String,
        channel: String,
        text: Option<String>,
        media: Vec<String>,
        button_text: Option<String>,
        /// opt_out, opt_in or help, when the text was a keyword.
        keyword_action: Option<String>,
        needs_review: bool,
        /// Who reviewed a flagged message, when, and what they decided.
        reviewed_by: Option<String>,
        reviewed_at: Option<DateTime<Utc>>,
        review_outcome: Option<String>,
        at: DateTime<Utc>,
    },
    Outbound {
        id: String,
        channel: String,
        /// `template` or `freeform`.
        kind: String,
        /// The text as sent (a template rendered with its variables).
        text: Option<String>,
        template_name: Option<String>,
        state: MessageState,
        /// The gate that refused or holds it.
        block_reason: Option<String>,
        error_code: Option<i32>,
        /// Why it failed or was not sent (a later part stopped by an earlier one says so).
        error_message: Option<String>,
        /// A text sent in parts: this part's number, of how many.
        part: Option<(i32, i32)>,
        /// The attachment's link, when one went with it.
        media_url: Option<String>,
        source: String,
        actor: String,
        at: DateTime<Utc>,
        status_history: Vec<StatusEventView>,
    },
}

impl ConversationItem {
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            ConversationItem::Inbound { at, .. } | ConversationItem::Outbound { at, .. } => *at,
        }
    }

    /// Where it goes in the conversation: by time, the parts of one text in their order.
    fn order(&self) -> (DateTime<Utc>, i32) {
        match self {
            ConversationItem::Outbound {
                part: Some((i, _)), ..
            } => (self.at(), *i),
            _ => (self.at(), 0),
        }
    }
}

/// The newest `limit` messages with a contact, both ways, oldest first.
pub async fn conversation(
    core: &Core,
    contact_id: &str,
    limit: u64,
) -> Result<Vec<ConversationItem>, DbErr> {
    let db = &core.db.conn;
    let limit = limit.clamp(1, 1_000);
    let inbound = inbound_message::Entity::find()
        .filter(inbound_message::Column::ContactId.eq(contact_id))
        .order_by_desc(inbound_message::Column::ReceivedAt)
        .order_by_desc(inbound_message::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    let outbound = outbound_message::Entity::find()
        .filter(outbound_message::Column::ContactId.eq(contact_id))
        .order_by_desc(outbound_message::Column::CreatedAt)
        .order_by_desc(outbound_message::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    let ids: Vec<String> = outbound.iter().map(|m| m.id.clone()).collect();
    let mut history: HashMap<String, Vec<StatusEventView>> = HashMap::new();
    for chunk in ids.chunks(500) {
        for e in message_status_event::Entity::find()
            .filter(message_status_event::Column::MessageId.is_in(chunk.to_vec()))
            .order_by_asc(message_status_event::Column::OccurredAt)
            .order_by_asc(message_status_event::Column::Id)
            .all(db)
            .await?
        {
            history
                .entry(e.message_id.clone())
                .or_default()
                .push(StatusEventView {
                    status: e.status,
                    error_code: e.error_code,
                    source: e.source,
                    at: e.occurred_at,
                });
        }
    }
    let mut templates_by_name: HashMap<String, Option<Template>> = HashMap::new();
    let mut items: Vec<ConversationItem> = Vec::with_capacity(inbound.len() + outbound.len());
    for m in inbound {
        items.push(ConversationItem::Inbound {
            media: serde_json::from_str(&m.media).unwrap_or_default(),
            id: m.id,
            channel: m.channel,
            text: m.body,
            button_text: m.button_text,
            keyword_action: m.keyword_action,
            needs_review: m.needs_review,
            reviewed_by: m.reviewed_by,
            reviewed_at: m.reviewed_at,
            review_outcome: m.review_outcome,
            at: m.received_at,
        });
    }
    for m in outbound {
        let text = match (&m.kind[..], &m.template_name) {
            ("template", Some(name)) => {
                if !templates_by_name.contains_key(name) {
                    let t = templates::find_by_name(db, name).await?;
                    templates_by_name.insert(name.clone(), t);
                }
                templates_by_name
                    .get(name)
                    .and_then(|t| t.as_ref())
                    .map(|t| t.render(&serde_json::from_str(&m.variables).unwrap_or_default()))
            }
            // The body and its choices, as the person saw them.
            ("interactive", _) => {
                crate::channels::interactive::Interactive::from_stored(m.interactive.as_deref())
                    .ok()
                    .map(|c| c.plain_text())
            }
            .or_else(|| m.body.clone()),
            _ => m.body.clone(),
        };
        items.push(ConversationItem::Outbound {
            status_history: history.remove(&m.id).unwrap_or_default(),
            id: m.id,
            channel: m.channel,
            kind: m.kind,
            text,
            template_name: m.template_name,
            state: m.state,
            block_reason: m.block_reason,
            error_code: m.error_code,
            error_message: m.error_message,
            part: m.part_index.zip(m.part_count),
            media_url: m.media_url,
            source: m.source,
            actor: m.actor,
            at: m.created_at,
        });
    }
    items.sort_by_key(ConversationItem::order);
    let excess = items
        .len()
        .saturating_sub(usize::try_from(limit).unwrap_or(usize::MAX));
    items.drain(..excess);
    Ok(items)
}

// ---------------------------------------------------------------------------
// Contact timeline

/// A suppression with where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct SuppressionView {
    #[serde(flatten)]
    pub suppression: Suppression,
    /// `keyword` (the person replied STOP or similar), `provider` (an
    /// opt-out error code), `api`, `import`, or `staff`.
    pub origin: String,
    /// Not lifted.
    pub active: bool,
}

/// A contact's window on one channel.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelWindow {
    pub channel: Channel,
    #[serde(flatten)]
    pub window: WindowState,
}

/// Everything about one person, for the contact page.
#[derive(Debug, Clone, Serialize)]
pub struct ContactTimeline {
    pub contact: Contact,
    /// Newest first, with their evidence.
    pub consents: Vec<ConsentRecord>,
    /// Newest first.
    pub suppressions: Vec<SuppressionView>,
    pub windows: Vec<ChannelWindow>,
    /// The newest 100 outbound messages, newest first, each with every gate
    /// evaluation and its status history.
    pub messages: Vec<MessageView>,
}

fn suppression_origin(reason: &str) -> &'static str {
    match reason {
        "keyword" => "keyword",
        "provider" => "provider",
        "api" => "api",
        "import" => "import",
        _ => "staff",
    }
}

pub async fn contact_timeline(core: &Core, contact_id: &str) -> Result<ContactTimeline, DbErr> {
    let db = &core.db.conn;
    let c = contact::Entity::find_by_id(contact_id)
        .one(db)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("no contact with id {contact_id}")))?;
    let consents = crate::consent::consent_history(core, contact_id).await?;
    let suppressions = suppression::Entity::find()
        .filter(suppression::Column::ContactId.eq(contact_id))
        .order_by_desc(suppression::Column::CreatedAt)
        .all(db)
        .await?
        .into_iter()
        .map(|s| SuppressionView {
            origin: suppression_origin(&s.reason).to_string(),
            active: s.lifted_at.is_none(),
            suppression: Suppression::from(s),
        })
        .collect();
    let now = core.now();
    let mut windows = Vec::new();
    for channel in Channel::ALL {
        windows.push(ChannelWindow {
            channel,
            window: contacts::window(db, contact_id, channel, now).await?,
        });
    }
    let ids: Vec<String> = outbound_message::Entity::find()
        .select_only()
        .column(outbound_message::Column::Id)
        .filter(outbound_message::Column::ContactId.eq(contact_id))
        .order_by_desc(outbound_message::Column::CreatedAt)
        .order_by_desc(outbound_message::Column::Id)
        .limit(100)
        .into_tuple()
        .all(db)
        .await?;
    let mut messages = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(v) = outbound::view(core, &id).await? {
            messages.push(v);
        }
    }
    Ok(ContactTimeline {
        contact: Contact::from(c),
        consents,
        suppressions,
        windows,
        messages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised() {
        assert_eq!(csv_safe("=cmd|' /C calc'!A0"), "'=cmd|' /C calc'!A0");
        assert_eq!(csv_safe("+4791234567"), "'+4791234567");
        assert_eq!(csv_safe("-1"), "'-1");
        assert_eq!(csv_safe("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_safe("\t=1"), "'\t=1");
        assert_eq!(csv_safe("plain"), "plain");
        assert_eq!(csv_safe(""), "");
    }

    #[test]
    fn verdicts_compact_to_gate_colon_verdict() {
        let v = serde_json::json!([
            {"gate": "invalid_number", "verdict": "pass", "detail": "ok"},
            {"gate": "no_consent", "verdict": "block", "detail": "none"},
            {"gate": "quiet_hours", "verdict": "not_applicable", "detail": "sms only"},
            {"gate": "tier_limit", "verdict": "defer", "until": "2026-11-17T12:00:00Z", "detail": "full"}
        ]);
        assert_eq!(
            compact_verdicts(&v),
            "invalid_number:pass;no_consent:block;quiet_hours:not_applicable;tier_limit:defer"
        );
        assert_eq!(compact_verdicts(&serde_json::json!([])), "");
        assert_eq!(compact_verdicts(&serde_json::Value::Null), "");
    }

    #[test]
    fn local_days_follow_the_time_zone() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 17).unwrap();
        let (s, e) = day_bounds(day, chrono_tz::Europe::Oslo);
        assert_eq!(s.to_rfc3339(), "2026-11-16T23:00:00+00:00");
        assert_eq!(e - s, Duration::hours(24));
        // A day with a daylight-saving change is 23 hours long.
        let spring = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
        let (s, e) = day_bounds(spring, chrono_tz::Europe::Oslo);
        assert_eq!(e - s, Duration::hours(23));
    }
}
