//! The audit trails written by more than one module, each written here
//! only:
//!
//! - `tool_calls`: one row per gate evaluation and per send attempt. No
//!   provider call happens without a passing evaluation row written first.
//! - `staff_audit`: what a staff member did in the console (sign-in, a
//!   campaign approved, a form changed...), [`record_staff_action`].
//! - `infra_config_changes`: a sender activated or paused, a runtime
//!   setting or the tier changed, [`record_infra_change`].
//!
//! (The webhook audit, every provider request received, is the inbound
//! side's own: `inbound::record_webhook`.)
//!
//! [`chain`] makes `tool_calls`, consents, suppressions and campaign
//! approvals tamper-evident: each row chained by hash shortly after it is
//! written, verified by `heimdall audit verify`, anchored daily.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use serde::Serialize;

use crate::clock::new_id;
use crate::compliance::gates::GateDecision;
use crate::entities::{infra_config_change, outbound_message, tool_call};

pub mod chain;

/// Where an evaluation happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// When the message was accepted.
    Accept,
    /// In the worker, immediately before the provider call.
    Worker,
    /// A campaign review's dry run (no message exists).
    DryRun,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Accept => "accept",
            Stage::Worker => "worker",
            Stage::DryRun => "dry_run",
        }
    }
}

pub async fn record_evaluation(
    db: &impl ConnectionTrait,
    message: &outbound_message::Model,
    stage: Stage,
    decision: &GateDecision,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<String, sea_orm::DbErr> {
    let row = evaluation_row(message, stage, decision, actor, now);
    let id = row.id.clone().take().unwrap_or_default();
    row.insert(db).await?;
    Ok(id)
}

/// The audit row of one gate evaluation, to be written with other
/// statements (see [`crate::store::db::Db::write_together`]).
pub fn evaluation_row(
    message: &outbound_message::Model,
    stage: Stage,
    decision: &GateDecision,
    actor: &str,
    now: DateTime<Utc>,
) -> tool_call::ActiveModel {
    tool_call::ActiveModel {
        stage: Set(stage.as_str().into()),
        verdicts: Set(serde_json::to_string(&decision.verdicts).unwrap_or_else(|_| "[]".into())),
        decision: Set(decision.decision.as_str().into()),
        reason_code: Set(decision.decision.reason().map(|g| g.code().to_string())),
        result_ok: Set(matches!(
            decision.decision,
            crate::compliance::gates::Decision::Pass
        )),
        detail: Set(Some(decision.explanation())),
        ..row_for(message, "gate_evaluation", actor, now)
    }
}

/// The columns every audit row of a message shares.
fn row_for(
    message: &outbound_message::Model,
    kind: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> tool_call::ActiveModel {
    tool_call::ActiveModel {
        id: Set(new_id()),
        message_id: Set(Some(message.id.clone())),
        kind: Set(kind.into()),
        stage: Set("worker".into()),
        channel: Set(Some(message.channel.clone())),
        contact_id: Set(message.contact_id.clone()),
        campaign_id: Set(message.campaign_id.clone()),
        verdicts: Set("[]".into()),
        decision: Set(String::new()),
        reason_code: Set(None),
        result_ok: Set(false),
        error_code: Set(None),
        detail: Set(None),
        actor: Set(actor.to_string()),
        created_at: Set(now),
    }
}

/// The audit row of one provider call (the outcome, sid or error), to be
/// inserted alone or written with other statements.
#[allow(clippy::too_many_arguments)]
pub fn send_attempt_row(
    message: &outbound_message::Model,
    ok: bool,
    provider: &str,
    sid_or_error: &str,
    error_code: Option<i64>,
    actor: &str,
    now: DateTime<Utc>,
) -> tool_call::ActiveModel {
    tool_call::ActiveModel {
        decision: Set(if ok { "sent" } else { "failed" }.into()),
        result_ok: Set(ok),
        error_code: Set(error_code.and_then(|c| i32::try_from(c).ok())),
        detail: Set(Some(format!("{provider}: {sid_or_error}"))),
        ..row_for(message, "send_attempt", actor, now)
    }
}

/// Record a staff action that changed something (who, what, when, from where).
pub async fn record_staff_action(
    db: &impl sea_orm::ConnectionTrait,
    actor: &str,
    action: &str,
    target: Option<&str>,
    detail: Option<serde_json::Value>,
    ip: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), sea_orm::DbErr> {
    crate::entities::staff_audit::ActiveModel {
        id: Set(new_id()),
        actor: Set(actor.to_string()),
        action: Set(action.to_string()),
        target: Set(target.map(str::to_string)),
        detail: Set(detail.map(|d| d.to_string())),
        ip: Set(ip.map(str::to_string)),
        created_at: Set(now),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// The staff audit row of a staff member's inbox reply (`inbox_reply`),
/// written in the same statement as the message
/// (`sending::outbound::accept`): there is no reply without its row.
pub fn inbox_reply_row(
    staff_email: &str,
    ip: Option<&str>,
    message: &crate::entities::outbound_message::Model,
    decision: &crate::compliance::gates::Decision,
    now: chrono::DateTime<chrono::Utc>,
) -> crate::entities::staff_audit::Model {
    crate::entities::staff_audit::Model {
        id: new_id(),
        actor: staff_email.to_string(),
        action: "inbox_reply".into(),
        target: Some(format!("message:{}", message.id)),
        detail: Some(
            serde_json::json!({
                "contact_id": message.contact_id,
                "channel": message.channel,
                "decision": decision.as_str(),
                "reason": decision.reason().map(|r| r.code()),
            })
            .to_string(),
        ),
        ip: ip.map(str::to_string),
        created_at: now,
    }
}

/// One `infra_config_changes` row: who changed a sender or a setting, from what, to what.
pub async fn record_infra_change(
    db: &impl ConnectionTrait,
    actor: &str,
    target: &str,
    action: &str,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    infra_config_change::ActiveModel {
        id: Set(new_id()),
        actor: Set(actor.to_string()),
        target: Set(target.to_string()),
        action: Set(action.to_string()),
        before: Set(before.map(|v| v.to_string())),
        after: Set(after.map(|v| v.to_string())),
        created_at: Set(now),
    }
    .insert(db)
    .await?;
    Ok(())
}
