//! Reading a message as the API and the console show it.

use super::*;

/// A message with its verdicts and history, for the API and the console.
#[derive(Debug, Clone, Serialize)]
pub struct MessageView {
    pub id: String,
    pub contact_id: Option<String>,
    pub to: String,
    pub channel: String,
    pub kind: String,
    pub template_name: Option<String>,
    pub body: Option<String>,
    pub source: MessageSource,
    pub campaign_id: Option<String>,
    pub actor: String,
    pub state: MessageState,
    pub block_reason: Option<String>,
    pub defer_until: Option<DateTime<Utc>>,
    pub provider: Option<String>,
    pub provider_sid: Option<String>,
    pub error_code: Option<i32>,
    pub error_message: Option<String>,
    pub attempts: i32,
    pub price: Option<String>,
    pub fallback_of: Option<String>,
    pub fallback_message_id: Option<String>,
    pub in_window: Option<bool>,
    /// A text sent in parts: this part's number of how many, and every part in order.
    pub part_index: Option<i32>,
    pub part_count: Option<i32>,
    pub parts: Vec<PartView>,
    /// The text as written, before it was converted and split (the first part only).
    pub source_text: Option<String>,
    /// An SMS body's encoding and the segments the carrier bills.
    pub sms: Option<formatting::SmsSegments>,
    /// The buttons or list, for kind `interactive` (as requested: body, choices and ids).
    pub interactive: Option<crate::channels::interactive::InteractiveSpec>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub evaluations: Vec<EvaluationView>,
    pub status_history: Vec<StatusEventView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvaluationView {
    pub kind: String,
    pub stage: String,
    pub decision: String,
    pub reason_code: Option<String>,
    pub result_ok: bool,
    pub error_code: Option<i32>,
    pub detail: Option<String>,
    pub verdicts: serde_json::Value,
    pub actor: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PartView {
    pub id: String,
    pub index: i32,
    pub state: MessageState,
    pub error_message: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusEventView {
    pub status: String,
    pub error_code: Option<i32>,
    pub source: String,
    pub at: DateTime<Utc>,
}

pub async fn view(core: &Core, id: &str) -> Result<Option<MessageView>, sea_orm::DbErr> {
    use crate::entities::tool_call;
    let Some(m) = outbound_message::Entity::find_by_id(id)
        .one(&core.db.conn)
        .await?
    else {
        return Ok(None);
    };
    let evaluations = tool_call::Entity::find()
        .filter(tool_call::Column::MessageId.eq(id))
        .order_by_asc(tool_call::Column::CreatedAt)
        .order_by_asc(tool_call::Column::Id)
        .all(&core.db.conn)
        .await?
        .into_iter()
        .map(|t| EvaluationView {
            kind: t.kind,
            stage: t.stage,
            decision: t.decision,
            reason_code: t.reason_code,
            result_ok: t.result_ok,
            error_code: t.error_code,
            detail: t.detail,
            verdicts: serde_json::from_str(&t.verdicts).unwrap_or(serde_json::Value::Null),
            actor: t.actor,
            at: t.created_at,
        })
        .collect();
    let status_history = message_status_event::Entity::find()
        .filter(message_status_event::Column::MessageId.eq(id))
        .order_by_asc(message_status_event::Column::OccurredAt)
        .order_by_asc(message_status_event::Column::Id)
        .all(&core.db.conn)
        .await?
        .into_iter()
        .map(|e| StatusEventView {
            status: e.status,
            error_code: e.error_code,
            source: e.source,
            at: e.occurred_at,
        })
        .collect();
    let fallback_message_id = outbound_message::Entity::find()
        .filter(outbound_message::Column::FallbackOf.eq(id))
        .one(&core.db.conn)
        .await?
        .map(|f| f.id);
    let parts = match &m.part_of {
        Some(first) => parts_of(&core.db.conn, first)
            .await?
            .into_iter()
            .map(|p| PartView {
                id: p.id,
                index: p.part_index.unwrap_or_default(),
                state: p.state,
                error_message: p.error_message,
            })
            .collect(),
        None => vec![],
    };
    let sms = (m.channel == Channel::Sms.as_str())
        .then(|| m.body.as_deref().map(formatting::sms_segments))
        .flatten();
    Ok(Some(MessageView {
        id: m.id,
        contact_id: m.contact_id,
        to: m.to_address,
        channel: m.channel,
        kind: m.kind,
        template_name: m.template_name,
        body: m.body,
        source: m.source,
        campaign_id: m.campaign_id,
        actor: m.actor,
        state: m.state,
        block_reason: m.block_reason,
        defer_until: m.defer_until,
        provider: m.provider,
        provider_sid: m.provider_sid,
        error_code: m.error_code,
        error_message: m.error_message,
        attempts: m.attempts,
        price: m.price,
        fallback_of: m.fallback_of,
        fallback_message_id,
        in_window: m.in_window,
        part_index: m.part_index,
        part_count: m.part_count,
        parts,
        source_text: m.source_text,
        sms,
        interactive: Interactive::from_stored(m.interactive.as_deref())
            .ok()
            .map(|c| c.spec()),
        created_at: m.created_at,
        updated_at: m.updated_at,
        evaluations,
        status_history,
    }))
}

/// Messages whose send has no recorded outcome (no sid, no status report) are not
/// re-sent (a provider may have accepted them): claimed by a worker that stopped
/// mid-call, or unconfirmed (the provider's answer was lost) with no report since.
/// They are failed for a person to check, with an alert.
pub async fn resolve_stuck_sending(
    core: &Core,
    older_than: Duration,
) -> Result<u64, sea_orm::DbErr> {
    let now = core.now();
    let stuck = outbound_message::Entity::find()
        .filter(outbound_message::Column::State.eq(MessageState::Sending.as_str()))
        .filter(outbound_message::Column::ProviderSid.is_null())
        .filter(outbound_message::Column::UpdatedAt.lt(now - older_than))
        .all(&core.db.conn)
        .await?;
    let mut n = 0;
    for m in stuck {
        let res = moving(&[MessageState::Sending], MessageState::Failed)
            .col_expr(
                outbound_message::Column::ErrorMessage,
                Expr::value(Some(stuck_reason(&m))),
            )
            // The failure is "outcome unknown": an earlier attempt's code
            // (a retried 20500, say) does not describe it.
            .col_expr(
                outbound_message::Column::ErrorCode,
                Expr::value(Option::<i32>::None),
            )
            .col_expr(outbound_message::Column::FailedAt, Expr::value(Some(now)))
            .col_expr(outbound_message::Column::UpdatedAt, Expr::value(now))
            .filter(outbound_message::Column::Id.eq(&m.id))
            .filter(outbound_message::Column::ProviderSid.is_null())
            .exec(&core.db.conn)
            .await?;
        if res.rows_affected == 1 {
            n += 1;
            alerts::raise(
                core,
                Alert {
                    key: "stuck_sending".into(),
                    title: "Send outcome unknown".into(),
                    description: format!("Message {}: {}.", m.id, stuck_reason(&m)),
                    error_code: None,
                    meaning: None,
                    message_id: Some(m.id.clone()),
                    campaign_id: m.campaign_id.clone(),
                },
            )
            .await;
        }
    }
    Ok(n)
}

/// Why a send stuck without an outcome was failed: the worker stopped, or the provider's
/// answer was lost (noted by the worker, after [`UNCONFIRMED`]) and no status report came.
fn stuck_reason(m: &outbound_message::Model) -> String {
    match m.error_message.as_deref().and_then(|e| e.strip_prefix(UNCONFIRMED)) {
        Some(why) => format!(
            "the provider's answer was lost ({why}) and no status report came since; not re-sent (check the provider's log)"
        ),
        None => "the worker stopped during the send; outcome unknown, not re-sent (check the provider's log)".to_string(),
    }
}

/// How the error message of a send whose answer was lost begins (the message stays
/// `sending`, waiting for the provider's status report).
pub const UNCONFIRMED: &str = "unconfirmed: ";
