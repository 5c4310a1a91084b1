//! The audit log: every gate evaluation and send attempt (`tool_calls`)
//! with filters, its CSV export (served by the server at
//! `/audit/export.csv` with the same query), and the staff actions trail.

use chrono::{DateTime, Utc};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::api::contacts::VerdictRow;
use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::model::Role;

/// The audit page's filters, as the query string carries them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditQuery {
    pub contact: Option<String>,
    pub campaign: Option<String>,
    pub decision: Option<String>,
    pub reason: Option<String>,
    /// `YYYY-MM-DD`, from the start of that day.
    pub from: Option<String>,
    /// `YYYY-MM-DD`, to the end of that day.
    pub to: Option<String>,
}

impl AuditQuery {
    /// The same filters as a query string (for the CSV link).
    pub fn to_query_string(&self) -> String {
        let pairs = [
            ("contact", &self.contact),
            ("campaign", &self.campaign),
            ("decision", &self.decision),
            ("reason", &self.reason),
            ("from", &self.from),
            ("to", &self.to),
        ];
        pairs
            .iter()
            .filter_map(|(k, v)| {
                v.as_deref()
                    .filter(|v| !v.is_empty())
                    .map(|v| format!("{k}={}", encode(v)))
            })
            .collect::<Vec<_>>()
            .join("&")
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub kind: String,
    pub stage: String,
    pub message_id: Option<String>,
    pub contact_id: Option<String>,
    pub campaign_id: Option<String>,
    pub channel: Option<String>,
    pub phone_masked: Option<String>,
    pub decision: String,
    pub reason_code: Option<String>,
    pub error_code: Option<i32>,
    pub detail: Option<String>,
    pub verdicts: Vec<VerdictRow>,
    pub actor: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaffActionRow {
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
    pub ip: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditView {
    pub entries: Vec<AuditEntry>,
    pub staff_actions: Vec<StaffActionRow>,
    pub time_zone: String,
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use super::*;
    use crate::server::optional;
    use chrono::TimeZone;
    use heimdall_domain::reports::AuditFilter;
    use heimdall_domain::Core;

    fn day_start(core: &Core, field: &str, s: &str, next: bool) -> Result<DateTime<Utc>, AppError> {
        let date = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map_err(|_| AppError::invalid(field, "Enter a date as YYYY-MM-DD."))?;
        let date = if next {
            date.succ_opt()
                .ok_or_else(|| AppError::invalid(field, "That date is too far ahead."))?
        } else {
            date
        };
        let tz = core.settings.default_time_zone;
        let local = date.and_time(chrono::NaiveTime::MIN);
        tz.from_local_datetime(&local)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| AppError::invalid(field, "That date has no midnight in this time zone."))
    }

    fn plain(field: &str, v: Option<String>) -> Result<Option<String>, AppError> {
        match optional(v) {
            Some(v)
                if v.len() <= 64
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
            {
                Ok(Some(v))
            }
            Some(_) => Err(AppError::invalid(
                field,
                "Use an id or code as shown in the log.",
            )),
            None => Ok(None),
        }
    }

    /// The domain filter for a query, or an error beside the bad field.
    pub fn filter(core: &Core, q: &AuditQuery, limit: u64) -> Result<AuditFilter, AppError> {
        let decision = plain("decision", q.decision.clone())?;
        if let Some(d) = &decision {
            if !heimdall_codes::AUDIT_DECISIONS.contains(&d.as_str()) {
                return Err(AppError::invalid(
                    "decision",
                    "Choose pass, block, defer, sent or failed.",
                ));
            }
        }
        Ok(AuditFilter {
            contact_id: plain("contact", q.contact.clone())?,
            campaign_id: plain("campaign", q.campaign.clone())?,
            decision,
            reason_code: plain("reason", q.reason.clone())?,
            from: match optional(q.from.clone()) {
                Some(f) => Some(day_start(core, "from", &f, false)?),
                None => None,
            },
            to: match optional(q.to.clone()) {
                Some(t) => Some(day_start(core, "to", &t, true)?),
                None => None,
            },
            kind: None,
            limit: Some(limit),
            offset: None,
        })
    }
}

#[server(prefix = "/_sf", endpoint = "audit_log")]
pub async fn audit_log(
    contact: Option<String>,
    campaign: Option<String>,
    decision: Option<String>,
    reason: Option<String>,
    from: Option<String>,
    to: Option<String>,
) -> Result<AuditView, AppError> {
    use crate::api::contacts::ssr::verdicts;
    use crate::server::*;
    respond(
        async move {
            let ctx = require(Role::Viewer).await?;
            let core = ctx.core();
            let query = AuditQuery {
                contact,
                campaign,
                decision,
                reason,
                from,
                to,
            };
            let filter = ssr::filter(core, &query, 200)?;
            let names = staff_names(core).await?;
            let entries = heimdall_domain::reports::audit_log(core, &filter)
                .await
                .map_err(internal)?
                .into_iter()
                .map(|r| AuditEntry {
                    verdicts: verdicts(&r.verdicts),
                    at: r.at,
                    kind: r.kind,
                    stage: r.stage,
                    message_id: r.message_id,
                    contact_id: r.contact_id,
                    campaign_id: r.campaign_id,
                    channel: r.channel,
                    phone_masked: r.phone_masked,
                    decision: r.decision,
                    reason_code: r.reason_code,
                    error_code: r.error_code,
                    detail: r.detail,
                    actor: actor_label(&names, r.actor),
                })
                .collect();
            let staff_actions =
                heimdall_domain::access::sessions::recent_staff_actions(core, None, 100)
                    .await
                    .map_err(internal)?
                    .into_iter()
                    .map(|a| StaffActionRow {
                        actor: a.actor,
                        action: a.action,
                        target: a.target,
                        detail: a.detail,
                        ip: a.ip,
                        at: a.at,
                    })
                    .collect();
            Ok(AuditView {
                entries,
                staff_actions,
                time_zone: core.settings.default_time_zone.name().to_string(),
            })
        }
        .await,
    )
}
