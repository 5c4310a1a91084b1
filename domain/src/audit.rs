//! `tool_calls`: one audit row per gate evaluation and per send attempt.
//! No provider call happens without a passing evaluation row written first.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use serde::Serialize;

use crate::clock::new_id;
use crate::entities::{outbound_message, tool_call};
use crate::gates::GateDecision;

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
/// statements (see [`crate::db::Db::write_together`]).
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
        result_ok: Set(matches!(decision.decision, crate::gates::Decision::Pass)),
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
