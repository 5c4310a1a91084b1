//! Templates: the list with approval state and variables, and a sync from
//! Twilio's Content API on demand.

use chrono::{DateTime, Utc};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::model::Role;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateRow {
    pub name: String,
    pub category: String,
    pub language: String,
    pub approval_status: String,
    pub rejection_reason: Option<String>,
    pub source: String,
    pub synced_at: Option<DateTime<Utc>>,
    pub body: String,
    /// Names of the placeholders `{{1}}`, `{{2}}`, ... in order.
    pub variables: Vec<String>,
}

impl TemplateRow {
    pub fn approved(&self) -> bool {
        self.approval_status == "approved"
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplatesData {
    pub templates: Vec<TemplateRow>,
    pub last_sync: Option<DateTime<Utc>>,
    /// Is there a Content API to sync from?
    pub can_sync: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncOutcome {
    pub seen: usize,
    pub updated: usize,
    pub failed: Vec<String>,
}

#[cfg(feature = "ssr")]
pub(crate) fn row(t: heimdall_domain::templates::Template) -> TemplateRow {
    TemplateRow {
        name: t.name,
        category: t.category,
        language: t.language,
        approval_status: t.approval_status,
        rejection_reason: t.rejection_reason,
        source: t.source,
        synced_at: t.synced_at,
        body: t.body,
        variables: t.variables,
    }
}

#[server(prefix = "/_sf", endpoint = "templates_list")]
pub async fn templates_list() -> Result<TemplatesData, AppError> {
    use crate::server::*;
    respond(
        async move {
            let ctx = require(Role::Viewer).await?;
            let templates: Vec<TemplateRow> = heimdall_domain::templates::list(ctx.core())
                .await
                .map_err(internal)?
                .into_iter()
                .map(row)
                .collect();
            let last_sync = templates.iter().filter_map(|t| t.synced_at).max();
            Ok(TemplatesData {
                templates,
                last_sync,
                can_sync: ctx.core().providers.twilio.is_some(),
            })
        }
        .await,
    )
}

/// Read every template and its approval state from the Content API now.
#[server(prefix = "/_sf", endpoint = "templates_sync")]
pub async fn templates_sync(#[server(default)] csrf: String) -> Result<SyncOutcome, AppError> {
    use crate::server::*;
    respond(
        async move {
            let ctx = mutation(Role::Operator, &csrf).await?;
            let report = heimdall_domain::templates::sync_from_twilio(ctx.core())
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, "template sync from the console failed");
                    AppError::Conflict(format!("The sync did not complete: {e}"))
                })?;
            ctx.audit(
                "templates_synced",
                Some("templates"),
                Some(serde_json::json!({
                    "seen": report.seen,
                    "updated": report.updated,
                    "failed": report.failed,
                })),
            )
            .await?;
            Ok(SyncOutcome {
                seen: report.seen,
                updated: report.updated.len(),
                failed: report.failed,
            })
        }
        .await,
    )
}
