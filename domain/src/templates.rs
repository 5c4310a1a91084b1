//! Message templates: registered from `WA_TEMPLATE_<NAME>` settings (taken
//! as approved until a Content API sync says otherwise), from the Content
//! API, or by staff. The gates read their approval state from here.

use chrono::{DateTime, Utc};
pub use heimdall_codes::TemplateApproval;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};
use serde::Serialize;

use crate::clock::new_id;
use crate::compliance::gates::{TemplateCategory, TemplateFact};
use crate::entities::template;
use crate::Core;

pub mod authoring;

/// The seed's templates and their variables, in placeholder order. A
/// template registered from settings takes its variable names from here
/// until a Content API sync supplies the body.
pub const KNOWN_TEMPLATES: &[(&str, &[&str], &str)] = &[
    (
        "task_reminder",
        &["task_name", "due_time"],
        "Reminder: {{1}} is due at {{2}}.",
    ),
    (
        "daily_briefing",
        &["date", "task_count", "top_tasks"],
        "Good morning! {{1}}: you have {{2}} tasks today. Top: {{3}}",
    ),
    (
        "calendar_reminder",
        &["event_name", "time", "location"],
        "{{1}} at {{2}}, {{3}}",
    ),
    ("task_complete_confirm", &["task_name"], "Done: {{1}} ✅"),
    (
        "weekly_review",
        &["completed_count", "highlights"],
        "This week you completed {{1}} tasks. Highlights: {{2}}",
    ),
];

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Template {
    pub id: String,
    pub name: String,
    pub provider: String,
    pub provider_id: Option<String>,
    pub category: String,
    pub language: String,
    pub body: String,
    pub variables: Vec<String>,
    pub approval_status: TemplateApproval,
    pub rejection_reason: Option<String>,
    pub source: String,
    pub synced_at: Option<DateTime<Utc>>,
    /// What its messages are sent for (`purposes.name`).
    pub purpose: Option<String>,
}

impl From<template::Model> for Template {
    fn from(m: template::Model) -> Self {
        Template {
            variables: serde_json::from_str(&m.variables).unwrap_or_default(),
            id: m.id,
            name: m.name,
            provider: m.provider,
            provider_id: m.provider_id,
            category: m.category,
            language: m.language,
            body: m.body,
            approval_status: m.approval_status,
            rejection_reason: m.rejection_reason,
            source: m.source,
            synced_at: m.synced_at,
            purpose: m.purpose,
        }
    }
}

impl Template {
    pub fn fact(&self) -> TemplateFact {
        TemplateFact {
            name: self.name.clone(),
            approval_status: self.approval_status,
            category: parse_category(&self.category),
            variable_names: self.variables.clone(),
            digest: self.digest(),
        }
    }

    /// What this template sends and for what, hashed (SHA-256 over its
    /// provider id, body, language, category, variable names and purpose):
    /// two templates with the same digest send the same thing to the same
    /// people. A campaign's approval binds to it, so retagging an approved
    /// campaign's template with another purpose (which changes whose consent
    /// lets it go) needs a new approval.
    ///
    /// The purpose is hashed only where it is not the one its category
    /// implies ([`default_purpose`]): every template was tagged with that one
    /// when purposes came (migration 070), so approvals given before then
    /// still match, while any other tag, and a tag taken back to the default,
    /// changes the digest.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut canonical = serde_json::json!({
            "provider_id": self.provider_id,
            "body": self.body,
            "language": self.language,
            "category": self.category.to_ascii_uppercase(),
            "variables": self.variables,
        });
        if self.purpose.as_deref() != Some(default_purpose(&self.category)) {
            canonical["purpose"] = serde_json::json!(self.purpose);
        }
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }

    /// The text with its placeholders filled, for SMS fallback and previews.
    pub fn render(&self, values: &std::collections::BTreeMap<String, String>) -> String {
        let mut out = self.body.clone();
        for (i, name) in self.variables.iter().enumerate() {
            let value = values.get(name).map(String::as_str).unwrap_or("");
            out = out.replace(&format!("{{{{{}}}}}", i + 1), value);
        }
        out
    }
}

/// The highest positional placeholder `{{n}}` in a body.
pub fn positional_count(body: &str) -> usize {
    let mut max = 0;
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        if let Ok(n) = after[..end].trim().parse::<usize>() {
            max = max.max(n);
        }
        rest = &after[end + 2..];
    }
    max
}

pub fn parse_category(s: &str) -> TemplateCategory {
    match s.to_ascii_uppercase().as_str() {
        "MARKETING" => TemplateCategory::Marketing,
        "AUTHENTICATION" => TemplateCategory::Authentication,
        _ => TemplateCategory::Utility,
    }
}

/// What a registration says about one template.
#[derive(Debug, Clone)]
pub struct TemplateSpec {
    pub name: String,
    pub provider: String,
    pub provider_id: Option<String>,
    pub category: String,
    pub language: String,
    pub body: String,
    pub variables: Vec<String>,
    pub approval_status: TemplateApproval,
    pub rejection_reason: Option<String>,
    pub source: String,
}

pub async fn find_by_name(
    db: &impl ConnectionTrait,
    name: &str,
) -> Result<Option<Template>, sea_orm::DbErr> {
    Ok(template::Entity::find()
        .filter(template::Column::Name.eq(name.trim().to_lowercase()))
        .one(db)
        .await?
        .map(Template::from))
}

pub async fn get(db: &impl ConnectionTrait, id: &str) -> Result<Option<Template>, sea_orm::DbErr> {
    Ok(template::Entity::find_by_id(id)
        .one(db)
        .await?
        .map(Template::from))
}

pub async fn list(core: &Core) -> Result<Vec<Template>, sea_orm::DbErr> {
    Ok(template::Entity::find()
        .order_by_asc(template::Column::Name)
        .all(&core.db.conn)
        .await?
        .into_iter()
        .map(Template::from)
        .collect())
}

/// Insert or update by name. A sync (`synced = true`) sets `synced_at`.
pub async fn upsert(
    db: &impl ConnectionTrait,
    spec: TemplateSpec,
    synced: bool,
    now: DateTime<Utc>,
) -> Result<Template, sea_orm::DbErr> {
    let name = spec.name.trim().to_lowercase();
    let vars = serde_json::to_string(&spec.variables).unwrap_or_else(|_| "[]".into());
    let existing = template::Entity::find()
        .filter(template::Column::Name.eq(&name))
        .one(db)
        .await?;
    let model = match existing {
        Some(t) => {
            // A template that became MARKETING keeps a purpose of its own
            // only when that is a marketing one.
            let retag = spec.category.eq_ignore_ascii_case("MARKETING")
                && !match t.purpose.as_deref() {
                    Some(p) => crate::consent::purposes::find(db, p)
                        .await?
                        .is_some_and(|p| p.marketing),
                    None => false,
                };
            let mut am: template::ActiveModel = t.into();
            if retag {
                am.purpose = Set(Some(default_purpose(&spec.category).to_string()));
            }
            am.provider = Set(spec.provider);
            am.provider_id = Set(spec.provider_id);
            am.category = Set(spec.category);
            am.language = Set(spec.language);
            am.body = Set(spec.body);
            am.variables = Set(vars);
            am.approval_status = Set(spec.approval_status);
            am.rejection_reason = Set(spec.rejection_reason);
            am.source = Set(spec.source);
            if synced {
                am.synced_at = Set(Some(now));
            }
            am.updated_at = Set(now);
            am.update(db).await?
        }
        None => {
            template::ActiveModel {
                id: Set(new_id()),
                name: Set(name),
                provider: Set(spec.provider),
                provider_id: Set(spec.provider_id),
                category: Set(spec.category.clone()),
                language: Set(spec.language),
                body: Set(spec.body),
                variables: Set(vars),
                approval_status: Set(spec.approval_status),
                rejection_reason: Set(spec.rejection_reason),
                purpose: Set(Some(default_purpose(&spec.category).to_string())),
                source: Set(spec.source),
                synced_at: Set(synced.then_some(now)),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(db)
            .await?
        }
    };
    Ok(model.into())
}

/// Register the templates named in settings. Existing rows keep the
/// approval state a sync gave them; new ones are taken as approved.
pub async fn register_from_settings(core: &Core) -> Result<Vec<String>, sea_orm::DbErr> {
    let now = core.clock.now();
    let provider = match core.settings.whatsapp_provider {
        crate::settings::WhatsAppProvider::Twilio => "twilio",
        crate::settings::WhatsAppProvider::Meta => "meta",
    };
    let mut names = Vec::new();
    for (name, provider_id) in &core.settings.templates {
        let existing = find_by_name(&core.db.conn, name).await?;
        let (vars, body) = KNOWN_TEMPLATES
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, v, b)| (v.iter().map(|s| s.to_string()).collect(), b.to_string()))
            .unwrap_or_default();
        let spec = match existing {
            Some(t) if t.provider_id.as_deref() == Some(provider_id.as_str()) => {
                names.push(name.clone());
                continue;
            }
            Some(t) => TemplateSpec {
                name: name.clone(),
                provider: provider.into(),
                provider_id: Some(provider_id.clone()),
                category: t.category,
                language: t.language,
                body: if t.body.is_empty() { body } else { t.body },
                variables: if t.variables.is_empty() {
                    vars
                } else {
                    t.variables
                },
                approval_status: TemplateApproval::Approved,
                rejection_reason: None,
                source: "settings".into(),
            },
            None => TemplateSpec {
                name: name.clone(),
                provider: provider.into(),
                provider_id: Some(provider_id.clone()),
                category: "UTILITY".into(),
                language: "en".into(),
                body,
                variables: vars,
                approval_status: TemplateApproval::Approved,
                rejection_reason: None,
                source: "settings".into(),
            },
        };
        upsert(&core.db.conn, spec, false, now).await?;
        names.push(name.clone());
    }
    Ok(names)
}

/// What a sync did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    pub seen: usize,
    pub updated: Vec<String>,
    pub failed: Vec<String>,
}

/// Read every template and its approval state from Twilio's Content API.
/// A template registered from settings (matched by its ContentSid) keeps
/// its name and takes the approval state Twilio reports.
pub async fn sync_from_twilio(core: &Core) -> Result<SyncReport, String> {
    let client = core
        .providers
        .twilio
        .clone()
        .ok_or("Twilio is not configured")?;
    // The resources made for interactive session messages are not templates.
    let contents: Vec<_> = client
        .list_content()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|c| {
            !c.friendly_name
                .starts_with(crate::channels::twilio::SESSION_CONTENT_PREFIX)
        })
        .collect();
    let now = core.now();
    let mut report = SyncReport {
        seen: contents.len(),
        ..Default::default()
    };
    for c in contents {
        let approval = match client.approval_status(&c.sid).await {
            Ok(a) => a,
            Err(e) => {
                report.failed.push(format!("{}: {e}", c.friendly_name));
                continue;
            }
        };
        let by_sid = template::Entity::find()
            .filter(template::Column::ProviderId.eq(&c.sid))
            .one(&core.db.conn)
            .await
            .map_err(|e| e.to_string())?
            .map(Template::from);
        let name = by_sid
            .as_ref()
            .map(|t| t.name.clone())
            .unwrap_or_else(|| c.friendly_name.trim().to_lowercase());
        if by_sid.is_none() {
            // A template registered from settings under this name with
            // another ContentSid: the configured sid is authoritative.
            if let Some(existing) = find_by_name(&core.db.conn, &name)
                .await
                .map_err(|e| e.to_string())?
            {
                if existing.source == "settings" {
                    report.failed.push(format!(
                        "{name}: registered from settings with another ContentSid; left as configured"
                    ));
                    continue;
                }
                // A template made through Meta keeps its provider.
                if existing.provider == "meta" {
                    continue;
                }
            }
        }
        let mut positions: Vec<&String> = c.variables.keys().collect();
        positions.sort_by_key(|k| k.parse::<u32>().unwrap_or(u32::MAX));
        let known = KNOWN_TEMPLATES.iter().find(|(n, _, _)| *n == name);
        let variables: Vec<String> = match (&by_sid, known) {
            (Some(t), _) if t.variables.len() == positions.len() => t.variables.clone(),
            (_, Some((_, vars, _))) if vars.len() == positions.len() => {
                vars.iter().map(|v| v.to_string()).collect()
            }
            _ => positions.iter().map(|p| p.to_string()).collect(),
        };
        let spec = TemplateSpec {
            name: name.clone(),
            provider: "twilio".into(),
            provider_id: Some(c.sid.clone()),
            category: approval
                .category
                .clone()
                .unwrap_or_else(|| "UTILITY".into())
                .to_uppercase(),
            language: c.language.clone(),
            body: c.body.clone().unwrap_or_default(),
            variables,
            approval_status: TemplateApproval::from_provider(&approval.status),
            rejection_reason: approval.rejection_reason.clone(),
            source: by_sid
                .as_ref()
                .map(|t| t.source.clone())
                .unwrap_or_else(|| "content_api".into()),
        };
        upsert(&core.db.conn, spec, true, now)
            .await
            .map_err(|e| e.to_string())?;
        report.updated.push(name);
    }
    Ok(report)
}

/// The purpose a new template is tagged with until staff tag it
/// otherwise: `marketing` for a MARKETING template, else `service` (the
/// two purposes that always exist).
pub fn default_purpose(category: &str) -> &'static str {
    if category.eq_ignore_ascii_case("MARKETING") {
        "marketing"
    } else {
        "service"
    }
}

/// Tag a template with a purpose. A MARKETING template must have a
/// marketing purpose: otherwise a consent to something else would let it
/// go (the marketing opt-outs would still stop it, the consent gate would
/// not).
pub async fn set_purpose(
    db: &impl sea_orm::ConnectionTrait,
    template_id: &str,
    purpose: &str,
) -> Result<Template, crate::consent::purposes::PurposeError> {
    use crate::consent::purposes::{self, PurposeError};
    let p = purposes::require(db, purpose).await?;
    let Some(m) = template::Entity::find_by_id(template_id.to_string())
        .one(db)
        .await?
    else {
        return Err(PurposeError::Invalid(format!(
            "no template with id {template_id}"
        )));
    };
    if m.category.eq_ignore_ascii_case("MARKETING") && !p.marketing {
        return Err(PurposeError::Invalid(format!(
            "{} is a MARKETING template: its purpose must be a marketing one, and {} is not",
            m.name, p.name
        )));
    }
    let mut am: template::ActiveModel = m.into();
    am.purpose = Set(Some(p.name));
    Ok(am.update(db).await?.into())
}
