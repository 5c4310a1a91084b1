//! The audit log (`tool_calls` rows, phone numbers masked) and its CSV
//! export, with cells a spreadsheet would run as formulas neutralised.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};

use crate::compliance::gates::{GateVerdict, Verdict};
use crate::entities::{outbound_message, tool_call};
use crate::sending::outbound;
use crate::Core;

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
}
