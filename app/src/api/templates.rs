//! Templates: the list with approval state and variables, a new template
//! written in the console and submitted for WhatsApp approval, and a
//! refresh of every template's approval state on demand.

use chrono::{DateTime, Utc};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::model::Role;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateRow {
    pub name: String,
    /// `twilio` or `meta`.
    pub provider: String,
    pub category: String,
    pub language: String,
    pub approval_status: heimdall_codes::TemplateApproval,
    pub rejection_reason: Option<String>,
    pub source: String,
    pub synced_at: Option<DateTime<Utc>>,
    pub body: String,
    /// Names of the placeholders `{{1}}`, `{{2}}`, ... in order.
    pub variables: Vec<String>,
    /// What its messages are sent for (`purposes.name`).
    pub purpose: Option<String>,
}

/// A purpose as staff defined it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PurposeRow {
    pub name: String,
    pub label: String,
    pub description: String,
    pub marketing: bool,
    /// Covered by the consents recorded before purposes existed.
    pub legacy: bool,
}

/// Every purpose defined, as rows.
#[cfg(feature = "ssr")]
pub(crate) async fn purpose_rows(
    core: &heimdall_domain::Core,
) -> Result<Vec<PurposeRow>, AppError> {
    Ok(heimdall_domain::consent::purposes::list(&core.db.conn)
        .await
        .map_err(crate::server::internal)?
        .into_iter()
        .map(|p| PurposeRow {
            name: p.name,
            label: p.label,
            description: p.description,
            marketing: p.marketing,
            legacy: p.legacy,
        })
        .collect())
}

impl TemplateRow {
    pub fn approved(&self) -> bool {
        self.approval_status.is_approved()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplatesData {
    pub templates: Vec<TemplateRow>,
    pub last_sync: Option<DateTime<Utc>>,
    /// Is there a Content API to sync from?
    pub can_sync: bool,
    /// The providers a new template can be submitted through (`twilio`,
    /// `meta`), the one WhatsApp goes through first; empty: none.
    pub providers: Vec<String>,
    /// Every purpose, by name.
    pub purposes: Vec<PurposeRow>,
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
        provider: t.provider,
        category: t.category,
        language: t.language,
        approval_status: t.approval_status,
        rejection_reason: t.rejection_reason,
        source: t.source,
        synced_at: t.synced_at,
        body: t.body,
        variables: t.variables,
        purpose: t.purpose,
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
            let purposes = purpose_rows(ctx.core()).await?;
            Ok(TemplatesData {
                templates,
                last_sync,
                can_sync: ctx.core().providers.twilio.is_some()
                    || !heimdall_domain::templates::authoring::available_providers(ctx.core())
                        .is_empty(),
                providers: heimdall_domain::templates::authoring::available_providers(ctx.core())
                    .into_iter()
                    .map(|p| p.as_str().to_string())
                    .collect(),
                purposes,
            })
        }
        .await,
    )
}

/// Read every template's approval state (and rejection reason) from the
/// providers now: Twilio's Content API and Meta's template list.
#[server(prefix = "/_sf", endpoint = "templates_sync")]
pub async fn templates_sync(#[server(default)] csrf: String) -> Result<SyncOutcome, AppError> {
    use crate::server::*;
    respond(
        async move {
            let ctx = mutation(Role::Operator, &csrf).await?;
            let report = heimdall_domain::templates::authoring::refresh_approvals(ctx.core())
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

/// A new template: created at the provider, submitted for WhatsApp approval,
/// and recorded as pending. `body` uses named variables (`{{first_name}}`);
/// `samples` gives one `name=value` per line.
#[server(prefix = "/_sf", endpoint = "template_create")]
pub async fn template_create(
    #[server(default)] csrf: String,
    #[server(default)] name: String,
    #[server(default)] language: String,
    #[server(default)] category: String,
    #[server(default)] provider: String,
    #[server(default)] body: String,
    #[server(default)] samples: String,
) -> Result<TemplateRow, AppError> {
    use crate::server::*;
    use heimdall_domain::templates::authoring::{
        self, parse_sample_lines, CreateError, DraftInput, TemplateDraft, TemplateProvider,
    };
    respond(
        async move {
            let ctx = mutation(Role::Operator, &csrf).await?;
            let available = authoring::available_providers(ctx.core());
            let provider = match provider.trim() {
                "" => available.first().copied().ok_or_else(|| {
                    AppError::invalid(
                        "provider",
                        "No provider to submit templates to is configured.",
                    )
                })?,
                other => TemplateProvider::parse(other)
                    .filter(|p| available.contains(p))
                    .ok_or_else(|| {
                        AppError::invalid("provider", "Choose one of the providers offered.")
                    })?,
            };
            let field = |e: heimdall_domain::templates::authoring::DraftError| {
                AppError::invalid(e.field, capitalise(&e.message))
            };
            let samples = parse_sample_lines(&samples).map_err(field)?;
            let draft = TemplateDraft::parse(&DraftInput {
                name,
                language,
                category,
                body,
                samples,
            })
            .map_err(field)?;
            let ip = ctx.ip().await;
            let template =
                authoring::create(ctx.core(), &draft, provider, &ctx.actor(), ip.as_deref())
                    .await
                    .map_err(|e| match e {
                        CreateError::Draft(e) => field(e),
                        CreateError::Exists(name) => AppError::invalid(
                            "name",
                            format!("A template named {name} exists already."),
                        ),
                        CreateError::NotConfigured(m) => {
                            AppError::invalid("provider", capitalise(&m))
                        }
                        CreateError::Provider(m) => {
                            tracing::warn!(error = %m, "the provider refused a new template");
                            AppError::Conflict(format!(
                                "{} refused the template: {m}",
                                match provider {
                                    TemplateProvider::Twilio => "Twilio",
                                    TemplateProvider::Meta => "Meta",
                                }
                            ))
                        }
                        CreateError::Db(e) => internal(e),
                    })?;
            Ok(row(template))
        }
        .await,
    )
}

/// Define a purpose (admin): its name never changes once consents name it.
#[server(prefix = "/_sf", endpoint = "purpose_create")]
pub async fn purpose_create(
    #[server(default)] csrf: String,
    #[server(default)] name: String,
    #[server(default)] label: String,
    #[server(default)] description: String,
    #[server(default)] marketing: Option<String>,
) -> Result<PurposeRow, AppError> {
    use crate::server::*;
    use heimdall_domain::consent::purposes::{self, NewPurpose, PurposeError};
    respond(
        async move {
            let ctx = mutation(Role::Admin, &csrf).await?;
            let new = NewPurpose {
                name,
                label,
                description,
                marketing: marketing.is_some(),
            };
            let p = purposes::create(&ctx.core().db.conn, &new, &ctx.actor(), ctx.core().now())
                .await
                .map_err(|e| match e {
                    PurposeError::Invalid(m) if m.contains("label") => {
                        AppError::invalid("label", capitalise(&m))
                    }
                    PurposeError::Invalid(m) if m.contains("description") => {
                        AppError::invalid("description", capitalise(&m))
                    }
                    PurposeError::Invalid(m) => AppError::invalid("name", capitalise(&m)),
                    PurposeError::Exists(n) => {
                        AppError::invalid("name", format!("A purpose named {n} exists already."))
                    }
                    PurposeError::Unknown(n) => AppError::invalid("name", n),
                    PurposeError::Db(e) => internal(e),
                })?;
            ctx.audit(
                "purpose_created",
                Some(&format!("purpose:{}", p.name)),
                Some(serde_json::json!({"label": p.label, "marketing": p.marketing})),
            )
            .await?;
            Ok(PurposeRow {
                name: p.name,
                label: p.label,
                description: p.description,
                marketing: p.marketing,
                legacy: p.legacy,
            })
        }
        .await,
    )
}

/// Tag a template with a purpose (admin): which consent lets its messages go.
#[server(prefix = "/_sf", endpoint = "template_set_purpose")]
pub async fn template_set_purpose(
    #[server(default)] csrf: String,
    #[server(default)] template: String,
    #[server(default)] purpose: String,
) -> Result<TemplateRow, AppError> {
    use crate::server::*;
    respond(
        async move {
            let ctx = mutation(Role::Admin, &csrf).await?;
            let db = &ctx.core().db.conn;
            let t = heimdall_domain::templates::find_by_name(db, &template)
                .await
                .map_err(internal)?
                .ok_or_else(|| AppError::invalid("template", "No such template."))?;
            let before = t.purpose.clone();
            let t = heimdall_domain::templates::set_purpose(db, &t.id, &purpose)
                .await
                .map_err(|e| match e {
                    heimdall_domain::consent::purposes::PurposeError::Db(e) => internal(e),
                    other => AppError::invalid("purpose", capitalise(&other.to_string())),
                })?;
            ctx.audit(
                "template_purpose_set",
                Some(&format!("template:{}", t.name)),
                Some(serde_json::json!({"from": before, "to": t.purpose})),
            )
            .await?;
            Ok(row(t))
        }
        .await,
    )
}
