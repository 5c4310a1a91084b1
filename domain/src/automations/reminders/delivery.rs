//! Delivering due reminders, exactly once each, and the send-time pieces
//! schedules share: the stored authority, the audit row of a send that never
//! became a message, and what an accepted message means.

use super::*;
use crate::compliance::message_source::MessageSource;

const BATCH: u64 = 200;

/// Send every reminder that is due, once each; record the late ones as
/// missed. Safe to run in several workers at once.
pub async fn deliver_due(core: &Core) -> Result<DeliveryReport, sea_orm::DbErr> {
    let mut report = DeliveryReport::default();
    let now = core.now();

    // Claims left by a worker that stopped: take them up again.
    let stale = reminder::Entity::find()
        .filter(reminder::Column::State.eq(ReminderState::Sending.as_str()))
        .filter(reminder::Column::UpdatedAt.lt(now - STALE_CLAIM))
        .order_by_asc(reminder::Column::SendAt)
        .limit(BATCH)
        .all(&core.db.conn)
        .await?;
    for r in stale {
        let claimed = reminder::Entity::update_many()
            .col_expr(reminder::Column::UpdatedAt, Expr::value(now))
            .filter(reminder::Column::Id.eq(&r.id))
            .filter(reminder::Column::State.eq(ReminderState::Sending.as_str()))
            .filter(reminder::Column::UpdatedAt.eq(r.updated_at))
            .exec(&core.db.conn)
            .await?;
        if claimed.rows_affected == 1 {
            report.recovered += 1;
            let state = process(core, &r, true).await?;
            count(&mut report, state);
        }
    }

    for _ in 0..50 {
        let due = reminder::Entity::find()
            .filter(reminder::Column::State.eq(ReminderState::Scheduled.as_str()))
            .filter(reminder::Column::SendAt.lte(now))
            .order_by_asc(reminder::Column::SendAt)
            .limit(BATCH)
            .all(&core.db.conn)
            .await?;
        let n = due.len();
        for r in due {
            // Claim: exactly one worker moves it to `sending`.
            let claimed = reminder::Entity::update_many()
                .col_expr(
                    reminder::Column::State,
                    Expr::value(ReminderState::Sending.as_str()),
                )
                .col_expr(reminder::Column::UpdatedAt, Expr::value(now))
                .filter(reminder::Column::Id.eq(&r.id))
                .filter(reminder::Column::State.eq(ReminderState::Scheduled.as_str()))
                .exec(&core.db.conn)
                .await?;
            if claimed.rows_affected == 1 {
                let state = process(core, &r, false).await?;
                count(&mut report, state);
            }
        }
        if (n as u64) < BATCH {
            break;
        }
    }
    if report != DeliveryReport::default() {
        tracing::info!(%report, "reminders delivered");
    }
    Ok(report)
}

fn count(report: &mut DeliveryReport, state: ReminderState) {
    match state {
        ReminderState::Sent => report.sent += 1,
        ReminderState::Blocked => report.blocked += 1,
        ReminderState::Missed => report.missed += 1,
        ReminderState::Failed => report.failed += 1,
        _ => {}
    }
}

/// Settle one claimed reminder. A database error leaves it claimed; it is
/// taken up again after [`STALE_CLAIM`].
async fn process(
    core: &Core,
    r: &reminder::Model,
    recovering: bool,
) -> Result<ReminderState, sea_orm::DbErr> {
    let now = core.now();
    let key = format!("reminder:{}", r.id);
    let actor = actor_of(r.api_key_id.as_deref());
    let already_sent = recovering && message_for_key(core, &key).await?.is_some();
    let late = now - r.send_at;
    if !already_sent && late > Duration::seconds(r.tolerance_secs) {
        let detail = format!(
            "reminder {} ({}) was due at {} and came up {} s late (tolerance {} s); not sent",
            r.id,
            r.template_name,
            r.send_at.to_rfc3339(),
            late.num_seconds(),
            r.tolerance_secs
        );
        let txn = core.db.begin_write().await?;
        audit(
            &txn,
            "reminder_missed",
            &r.contact_id,
            "missed",
            None,
            detail.clone(),
            &actor,
            now,
        )
        .await?;
        finish(&txn, r, ReminderState::Missed, None, detail, now).await?;
        txn.commit().await?;
        tracing::warn!(reminder_id = %r.id, late_s = late.num_seconds(), "reminder missed");
        return Ok(ReminderState::Missed);
    }
    let principal = match stored_principal(core, r.api_key_id.as_deref()).await? {
        Ok(p) => p,
        Err(why) => {
            let detail = format!("{}: {why}", Gate::NotAuthorized.code());
            let txn = core.db.begin_write().await?;
            audit(
                &txn,
                "reminder_blocked",
                &r.contact_id,
                "block",
                Some(Gate::NotAuthorized),
                format!("reminder {}: {why}", r.id),
                &actor,
                now,
            )
            .await?;
            finish(&txn, r, ReminderState::Blocked, None, detail, now).await?;
            txn.commit().await?;
            return Ok(ReminderState::Blocked);
        }
    };
    let variables: BTreeMap<String, String> =
        serde_json::from_str(&r.variables).unwrap_or_default();
    let res = outbound::accept(
        core,
        outbound::SendRequest {
            recipient: Recipient::Contact(r.contact_id.clone()),
            channel: Channel::WhatsApp,
            content: RequestedContent::Template {
                name: r.template_name.clone(),
                variables,
            },
            origin: Origin::Automation {
                principal,
                source: MessageSource::Reminder,
                reminder_id: Some(r.id.clone()),
            },
            idempotency_key: Some(key),
            purpose: None,
        },
    )
    .await;
    let (settled, message_id, outcome) = settle(res)?;
    let state = match settled {
        Settled::Sent => ReminderState::Sent,
        Settled::Blocked => ReminderState::Blocked,
        Settled::Failed => ReminderState::Failed,
    };
    finish(&core.db.conn, r, state, message_id, outcome, core.now()).await?;
    tracing::info!(reminder_id = %r.id, state = %state, "reminder came due");
    Ok(state)
}

async fn finish(
    db: &impl ConnectionTrait,
    r: &reminder::Model,
    state: ReminderState,
    message_id: Option<String>,
    outcome: String,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    reminder::Entity::update_many()
        .col_expr(reminder::Column::State, Expr::value(state.as_str()))
        .col_expr(reminder::Column::MessageId, Expr::value(message_id))
        .col_expr(reminder::Column::Outcome, Expr::value(Some(outcome)))
        .col_expr(reminder::Column::UpdatedAt, Expr::value(now))
        .filter(reminder::Column::Id.eq(&r.id))
        .filter(reminder::Column::State.eq(ReminderState::Sending.as_str()))
        .exec(db)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Send-time pieces shared with schedules

/// The API principal stored with a reminder or schedule, as it stands now:
/// `Err` says why it may no longer send (key revoked or gone, bootstrap key
/// no longer configured).
pub async fn stored_principal(
    core: &Core,
    api_key_id: Option<&str>,
) -> Result<Result<ApiPrincipal, String>, sea_orm::DbErr> {
    match api_key_id {
        None if core.settings.api_key.is_some() => Ok(Ok(ApiPrincipal {
            key_id: None,
            name: "bootstrap (HEIMDALL_API_KEY)".into(),
        })),
        None => Ok(Err(
            "the bootstrap API key that created it is no longer configured".into(),
        )),
        Some(id) => Ok(
            match api_key::Entity::find_by_id(id).one(&core.db.conn).await? {
                None => Err("the API key that created it no longer exists".into()),
                Some(k) if k.revoked_at.is_some() => Err(format!(
                    "the API key '{}' that created it was revoked",
                    k.name
                )),
                Some(k) => Ok(ApiPrincipal {
                    key_id: Some(k.id),
                    name: k.name,
                }),
            },
        ),
    }
}

/// How a stored API key id reads in `created_by` and audit rows.
pub fn actor_of(api_key_id: Option<&str>) -> String {
    match api_key_id {
        None => "api_key:bootstrap".into(),
        Some(id) => format!("api_key:{id}"),
    }
}

/// An audit row for a scheduled send that never became a message (missed,
/// refused before the gates, failed): `tool_calls` with no message id.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn audit(
    db: &impl ConnectionTrait,
    kind: &str,
    contact_id: &str,
    decision: &str,
    reason: Option<Gate>,
    detail: String,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    tool_call::ActiveModel {
        id: Set(new_id()),
        message_id: Set(None),
        kind: Set(kind.to_string()),
        stage: Set("scheduler".into()),
        channel: Set(Some(Channel::WhatsApp.as_str().to_string())),
        contact_id: Set(Some(contact_id.to_string())),
        campaign_id: Set(None),
        verdicts: Set("[]".into()),
        decision: Set(decision.to_string()),
        reason_code: Set(reason.map(|g| g.code().to_string())),
        result_ok: Set(false),
        error_code: Set(None),
        detail: Set(Some(detail)),
        actor: Set(actor.to_string()),
        created_at: Set(now),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// What became of an automation's message, for the reminder or schedule
/// occurrence behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// Handed to the send path (passed, or held by a gate until later).
    Sent,
    /// Refused by a gate.
    Blocked,
    /// Not accepted at all (no such contact, a bad request).
    Failed,
}

/// What `accept`'s answer means for the reminder or occurrence behind the
/// message: how it settled, the message (if one was made) and why, in
/// words. A database error stays an error (the run is tried again).
pub(crate) fn settle(
    res: Result<Outcome, AcceptError>,
) -> Result<(Settled, Option<String>, String), sea_orm::DbErr> {
    let o = match res {
        Ok(o) => o,
        Err(AcceptError::Db(e)) => return Err(e),
        Err(e @ (AcceptError::ContactNotFound(_) | AcceptError::BadRequest(_))) => {
            return Ok((Settled::Failed, None, e.to_string()))
        }
    };
    let (settled, text) = match o.decision.decision {
        Decision::Block { reason } => (
            Settled::Blocked,
            format!("{}: {}", reason.code(), o.decision.explanation()),
        ),
        Decision::Defer { reason, until } => (
            Settled::Sent,
            format!(
                "accepted; held by {} until {}",
                reason.code(),
                until.to_rfc3339()
            ),
        ),
        Decision::Pass => (Settled::Sent, format!("accepted ({})", o.state)),
    };
    Ok((settled, Some(o.message_id), text))
}

/// Is there already a message for this idempotency key (a claim taken up
/// again after a worker stopped)?
pub(crate) async fn message_for_key(
    core: &Core,
    key: &str,
) -> Result<Option<outbound_message::Model>, sea_orm::DbErr> {
    outbound_message::Entity::find()
        .filter(outbound_message::Column::IdempotencyKey.eq(key))
        .one(&core.db.conn)
        .await
}
