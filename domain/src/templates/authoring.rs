//! Templates written by staff: a [`TemplateDraft`] parsed from what they
//! typed (named variables such as `{{first_name}}` become `{{1}}`, `{{2}}`,
//! ... in order of first appearance), created at the provider and submitted
//! for WhatsApp approval ([`create`]), then recorded here as `pending` with
//! an audit row in one transaction. [`refresh_approvals`] reads the review
//! outcome back (status and rejection reason) from Twilio's Content API and
//! Meta's template list.
//!
//! Nothing here decides whether a template may be sent: the gates read the
//! approval state from the `templates` table as for every other template,
//! so a draft that is pending or rejected is refused `template_not_approved`.

use std::collections::BTreeMap;

use sea_orm::TransactionTrait;
use serde::Serialize;

use super::{find_by_name, upsert, SyncReport, Template, TemplateApproval, TemplateSpec};
use crate::settings::WhatsAppProvider;
use crate::Core;

/// Meta's limit on a template body, which both providers submit to.
pub const BODY_LIMIT: usize = 1024;
/// Meta's limit on a template name.
pub const NAME_LIMIT: usize = 512;

/// What staff typed.
#[derive(Debug, Clone, Default)]
pub struct DraftInput {
    pub name: String,
    pub language: String,
    pub category: String,
    /// The text with named variables: `Hi {{first_name}}, ...`.
    pub body: String,
    /// A sample value for each variable, by name (both providers require
    /// samples to review a template).
    pub samples: BTreeMap<String, String>,
}

/// A template ready to submit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateDraft {
    pub name: String,
    pub language: String,
    /// `UTILITY`, `MARKETING` or `AUTHENTICATION`.
    pub category: String,
    /// The text with positional placeholders `{{1}}`, `{{2}}`, ...
    pub body: String,
    /// The names of the placeholders, in order.
    pub variables: Vec<String>,
    /// The sample value of each placeholder, in order.
    pub samples: Vec<String>,
}

/// One problem with a draft, and the field it is in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct DraftError {
    /// `name`, `language`, `category`, `body` or `samples`.
    pub field: &'static str,
    pub message: String,
}

fn problem(field: &'static str, message: impl Into<String>) -> DraftError {
    DraftError {
        field,
        message: message.into(),
    }
}

fn is_variable_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && s.len() <= 64
}

/// The body with `{{name}}` replaced by `{{1}}`, `{{2}}`, ... and the names in order.
pub fn number_variables(body: &str) -> Result<(String, Vec<String>), DraftError> {
    let mut out = String::with_capacity(body.len());
    let mut names: Vec<String> = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(problem("body", "A {{ has no closing }}."));
        };
        let name = after[..end].trim();
        if name.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty() {
            return Err(problem(
                "body",
                format!("Name the variable instead of numbering it: {{{{first_name}}}}, not {{{{{name}}}}}."),
            ));
        }
        if !is_variable_name(name) {
            return Err(problem(
                "body",
                format!(
                    "'{{{{{name}}}}}' is not a variable name: use lower-case letters, digits and underscores, starting with a letter (such as {{{{first_name}}}})."
                ),
            ));
        }
        let position = match names.iter().position(|n| n == name) {
            Some(i) => i + 1,
            None => {
                names.push(name.to_string());
                names.len()
            }
        };
        out.push_str(&format!("{{{{{position}}}}}"));
        rest = &after[end + 2..];
    }
    if rest.contains("}}") {
        return Err(problem("body", "A }} has no opening {{."));
    }
    out.push_str(rest);
    Ok((out, names))
}

/// Sample values written one `name=value` per line (blank lines skipped).
pub fn parse_sample_lines(text: &str) -> Result<BTreeMap<String, String>, DraftError> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            return Err(problem(
                "samples",
                format!("Line {}: write each sample as name=value.", i + 1),
            ));
        };
        let name = name
            .trim()
            .trim_start_matches("{{")
            .trim_end_matches("}}")
            .trim();
        if out
            .insert(name.to_string(), value.trim().to_string())
            .is_some()
        {
            return Err(problem(
                "samples",
                format!("Line {}: '{name}' has a sample already.", i + 1),
            ));
        }
    }
    Ok(out)
}

impl TemplateDraft {
    /// Check everything staff typed; the first problem names its field.
    pub fn parse(input: &DraftInput) -> Result<TemplateDraft, DraftError> {
        let name = input.name.trim();
        if name.is_empty() {
            return Err(problem("name", "Give the template a name."));
        }
        if name.len() > NAME_LIMIT {
            return Err(problem("name", format!("At most {NAME_LIMIT} characters.")));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(problem(
                "name",
                "Use lower-case letters, digits and underscores only (WhatsApp's rule), such as order_ready.",
            ));
        }
        let language = input.language.trim().replace('-', "_");
        let valid_language = {
            let mut parts = language.splitn(2, '_');
            let lang = parts.next().unwrap_or("");
            let region = parts.next();
            (2..=3).contains(&lang.len())
                && lang.bytes().all(|b| b.is_ascii_lowercase())
                && region.is_none_or(|r| {
                    (2..=4).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_alphanumeric())
                })
        };
        if !valid_language {
            return Err(problem(
                "language",
                "Give a language code such as en, en_US or pt_BR.",
            ));
        }
        let category = input.category.trim().to_ascii_uppercase();
        if !["UTILITY", "MARKETING", "AUTHENTICATION"].contains(&category.as_str()) {
            return Err(problem(
                "category",
                "Choose Utility, Marketing or Authentication.",
            ));
        }
        if input.body.trim().is_empty() {
            return Err(problem("body", "Write the text of the template."));
        }
        let (body, variables) = number_variables(input.body.trim())?;
        let length = body.chars().count();
        if length > BODY_LIMIT {
            return Err(problem(
                "body",
                format!("At most {BODY_LIMIT} characters (it has {length})."),
            ));
        }
        if body.starts_with("{{") || body.ends_with("}}") {
            return Err(problem(
                "body",
                "WhatsApp does not accept a variable at the very start or end of the text: add words around it.",
            ));
        }
        if let Some(extra) = input.samples.keys().find(|k| !variables.contains(k)) {
            return Err(problem(
                "samples",
                format!("There is no variable {{{{{extra}}}}} in the text."),
            ));
        }
        let mut samples = Vec::with_capacity(variables.len());
        for v in &variables {
            match input.samples.get(v).map(|s| s.trim()).filter(|s| !s.is_empty()) {
                Some(s) if s.chars().count() > 200 => {
                    return Err(problem(
                        "samples",
                        format!("The sample for {{{{{v}}}}} is too long (at most 200 characters)."),
                    ))
                }
                Some(s) => samples.push(s.to_string()),
                None => {
                    return Err(problem(
                        "samples",
                        format!("Give a sample value for {{{{{v}}}}}: WhatsApp reviews the template with it."),
                    ))
                }
            }
        }
        Ok(TemplateDraft {
            name: name.to_string(),
            language,
            category,
            body,
            variables,
            samples,
        })
    }
}

/// Which provider a template is submitted through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TemplateProvider {
    Twilio,
    Meta,
}

impl TemplateProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateProvider::Twilio => "twilio",
            TemplateProvider::Meta => "meta",
        }
    }

    pub fn parse(s: &str) -> Option<TemplateProvider> {
        match s.trim().to_ascii_lowercase().as_str() {
            "twilio" => Some(TemplateProvider::Twilio),
            "meta" => Some(TemplateProvider::Meta),
            _ => None,
        }
    }
}

/// The providers templates can be submitted through here: Twilio when its
/// client is configured, Meta when its client and the business account id
/// are; the one WhatsApp goes through first.
pub fn available_providers(core: &Core) -> Vec<TemplateProvider> {
    let twilio = core.providers.twilio.is_some();
    let meta = core.providers.meta.is_some()
        && core
            .settings
            .meta
            .as_ref()
            .is_some_and(|m| m.business_account_id.is_some());
    let mut out = Vec::new();
    let (first, second) = match core.settings.whatsapp_provider {
        WhatsAppProvider::Meta => (
            (TemplateProvider::Meta, meta),
            (TemplateProvider::Twilio, twilio),
        ),
        WhatsAppProvider::Twilio => (
            (TemplateProvider::Twilio, twilio),
            (TemplateProvider::Meta, meta),
        ),
    };
    for (p, on) in [first, second] {
        if on {
            out.push(p);
        }
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error(transparent)]
    Draft(#[from] DraftError),
    /// A template of that name is known here already.
    #[error("a template named {0} exists already")]
    Exists(String),
    /// The provider asked for is not configured.
    #[error("{0}")]
    NotConfigured(String),
    /// The provider refused it (its message says why); nothing was recorded.
    #[error("{0}")]
    Provider(String),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

/// Create the template at the provider, submit it for WhatsApp approval,
/// and record it here as `pending` (source `console`) with the staff audit
/// row, in one transaction. A refusal by the provider records nothing (and
/// content Twilio made before refusing the submission is deleted again).
pub async fn create(
    core: &Core,
    draft: &TemplateDraft,
    provider: TemplateProvider,
    actor: &str,
    ip: Option<&str>,
) -> Result<Template, CreateError> {
    if !available_providers(core).contains(&provider) {
        return Err(CreateError::NotConfigured(match provider {
            TemplateProvider::Twilio => "Twilio is not configured".into(),
            TemplateProvider::Meta => {
                "Meta is not configured (WHATSAPP_ACCESS_TOKEN and WHATSAPP_BUSINESS_ACCOUNT_ID)"
                    .into()
            }
        }));
    }
    if find_by_name(&core.db.conn, &draft.name).await?.is_some() {
        return Err(CreateError::Exists(draft.name.clone()));
    }
    let (provider_id, status, rejection_reason) = match provider {
        TemplateProvider::Twilio => submit_to_twilio(core, draft).await?,
        TemplateProvider::Meta => {
            let meta = core
                .providers
                .meta
                .clone()
                .ok_or_else(|| CreateError::NotConfigured("Meta is not configured".into()))?;
            let created = meta
                .create_template(
                    &draft.name,
                    &draft.language,
                    &draft.category,
                    &draft.body,
                    &draft.samples,
                )
                .await
                .map_err(|e| CreateError::Provider(e.message))?;
            (
                created.id,
                TemplateApproval::from_provider(&created.status),
                None,
            )
        }
    };
    let now = core.now();
    let spec = TemplateSpec {
        name: draft.name.clone(),
        provider: provider.as_str().into(),
        provider_id: Some(provider_id.clone()),
        category: draft.category.clone(),
        language: draft.language.clone(),
        body: draft.body.clone(),
        variables: draft.variables.clone(),
        approval_status: status,
        rejection_reason,
        source: "console".into(),
    };
    let txn = core.db.conn.begin().await?;
    let template = upsert(&txn, spec, true, now).await?;
    crate::audit::record_staff_action(
        &txn,
        actor,
        "template_created",
        Some(&format!("template:{}", template.name)),
        Some(serde_json::json!({
            "provider": provider.as_str(),
            "provider_id": provider_id,
            "language": template.language,
            "category": template.category,
            "body": template.body,
            "variables": template.variables,
            "samples": draft.samples,
            "approval_status": template.approval_status,
        })),
        ip,
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(template)
}

/// Twilio: `POST /v1/Content`, then the WhatsApp approval request.
async fn submit_to_twilio(
    core: &Core,
    draft: &TemplateDraft,
) -> Result<(String, TemplateApproval, Option<String>), CreateError> {
    let twilio = core
        .providers
        .twilio
        .clone()
        .ok_or_else(|| CreateError::NotConfigured("Twilio is not configured".into()))?;
    let samples: BTreeMap<String, String> = draft
        .samples
        .iter()
        .enumerate()
        .map(|(i, s)| ((i + 1).to_string(), s.clone()))
        .collect();
    let content = twilio
        .create_content(
            &draft.name,
            &draft.language,
            &samples,
            serde_json::json!({"twilio/text": {"body": draft.body}}),
        )
        .await
        .map_err(|e| CreateError::Provider(e.message))?;
    match twilio
        .submit_whatsapp_approval(&content.sid, &draft.name, &draft.category)
        .await
    {
        Ok(approval) => Ok((
            content.sid,
            TemplateApproval::from_provider(&approval.status),
            approval.rejection_reason,
        )),
        Err(e) => {
            if let Err(cleanup) = twilio.delete_content(&content.sid).await {
                tracing::warn!(sid = %content.sid, error = %cleanup.message, "content whose approval request was refused could not be deleted");
            }
            Err(CreateError::Provider(e.message))
        }
    }
}

/// Read Meta's templates: those recorded here for Meta are updated (status,
/// rejection reason, body); new ones are added when WhatsApp goes through
/// Meta. A template recorded for Twilio under the same name is left alone.
pub async fn sync_from_meta(core: &Core) -> Result<SyncReport, String> {
    use crate::entities::template;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let meta = core
        .providers
        .meta
        .clone()
        .ok_or("Meta is not configured")?;
    let listed = meta.list_templates().await.map_err(|e| e.message)?;
    let now = core.now();
    let import_new = core.settings.whatsapp_provider == WhatsAppProvider::Meta;
    let mut report = SyncReport {
        seen: listed.len(),
        ..Default::default()
    };
    for t in listed {
        let by_id = template::Entity::find()
            .filter(template::Column::Provider.eq("meta"))
            .filter(template::Column::ProviderId.eq(&t.id))
            .one(&core.db.conn)
            .await
            .map_err(|e| e.to_string())?
            .map(Template::from);
        let existing = match by_id {
            Some(found) => Some(found),
            None => match find_by_name(&core.db.conn, &t.name)
                .await
                .map_err(|e| e.to_string())?
            {
                Some(other) if other.provider != "meta" || other.source == "settings" => continue,
                Some(mine) => Some(mine),
                None if import_new => None,
                None => continue,
            },
        };
        let body = t.body.clone().unwrap_or_default();
        let count = crate::templates::positional_count(&body);
        let variables = match &existing {
            Some(e) if e.variables.len() == count => e.variables.clone(),
            _ => (1..=count).map(|i| i.to_string()).collect(),
        };
        let spec = TemplateSpec {
            name: existing
                .as_ref()
                .map_or_else(|| t.name.clone(), |e| e.name.clone()),
            provider: "meta".into(),
            provider_id: Some(t.id.clone()),
            category: if t.category.is_empty() {
                "UTILITY".into()
            } else {
                t.category.clone()
            },
            language: t.language.clone(),
            body,
            variables,
            approval_status: TemplateApproval::from_provider(&t.status),
            rejection_reason: t.rejected_reason.clone(),
            source: existing
                .as_ref()
                .map_or_else(|| "meta_api".into(), |e| e.source.clone()),
        };
        upsert(&core.db.conn, spec, true, now)
            .await
            .map_err(|e| e.to_string())?;
        report.updated.push(t.name);
    }
    Ok(report)
}

/// Refresh every template's approval state from the providers configured
/// (Twilio's Content API, Meta's template list): what a "Refresh approval"
/// does. A provider that fails is reported in `failed`; the other still runs.
pub async fn refresh_approvals(core: &Core) -> Result<SyncReport, String> {
    let mut report = SyncReport::default();
    let mut ran = false;
    if core.providers.twilio.is_some() {
        ran = true;
        match super::sync_from_twilio(core).await {
            Ok(r) => {
                report.seen += r.seen;
                report.updated.extend(r.updated);
                report.failed.extend(r.failed);
            }
            Err(e) => report.failed.push(format!("Twilio: {e}")),
        }
    }
    if available_providers(core).contains(&TemplateProvider::Meta) {
        ran = true;
        match sync_from_meta(core).await {
            Ok(r) => {
                report.seen += r.seen;
                report.updated.extend(r.updated);
                report.failed.extend(r.failed);
            }
            Err(e) => report.failed.push(format!("Meta: {e}")),
        }
    }
    if !ran {
        return Err("no provider to read templates from is configured".into());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(body: &str, samples: &[(&str, &str)]) -> DraftInput {
        DraftInput {
            name: "order_ready".into(),
            language: "en".into(),
            category: "utility".into(),
            body: body.into(),
            samples: samples
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn named_variables_become_positions_in_order_of_first_appearance() {
        let d = TemplateDraft::parse(&input(
            "Hi {{first_name}}, order {{ order_id }} is ready, {{first_name}}. Pick up at {{place}}.",
            &[("first_name", "Kari"), ("order_id", "A-17"), ("place", "Desk 2")],
        ))
        .unwrap();
        assert_eq!(
            d.body,
            "Hi {{1}}, order {{2}} is ready, {{1}}. Pick up at {{3}}."
        );
        assert_eq!(d.variables, vec!["first_name", "order_id", "place"]);
        assert_eq!(d.samples, vec!["Kari", "A-17", "Desk 2"]);
        assert_eq!(d.category, "UTILITY");
        let plain = TemplateDraft::parse(&input("No variables here.", &[])).unwrap();
        assert!(plain.variables.is_empty() && plain.samples.is_empty());
    }

    #[test]
    fn every_problem_names_its_field() {
        let cases: Vec<(DraftInput, &str)> = vec![
            (
                DraftInput {
                    name: "".into(),
                    ..input("Hi.", &[])
                },
                "name",
            ),
            (
                DraftInput {
                    name: "Order Ready".into(),
                    ..input("Hi.", &[])
                },
                "name",
            ),
            (
                DraftInput {
                    name: "order-ready".into(),
                    ..input("Hi.", &[])
                },
                "name",
            ),
            (
                DraftInput {
                    name: "a".repeat(513),
                    ..input("Hi.", &[])
                },
                "name",
            ),
            (
                DraftInput {
                    language: "".into(),
                    ..input("Hi.", &[])
                },
                "language",
            ),
            (
                DraftInput {
                    language: "english".into(),
                    ..input("Hi.", &[])
                },
                "language",
            ),
            (
                DraftInput {
                    category: "promo".into(),
                    ..input("Hi.", &[])
                },
                "category",
            ),
            (input("  ", &[]), "body"),
            (input("Hi {{1}} there", &[("1", "x")]), "body"),
            (input("Hi {{First}} there", &[]), "body"),
            (input("Hi {{first_name there", &[]), "body"),
            (input("Hi first_name}} there", &[]), "body"),
            (input("{{first_name}}, hi", &[("first_name", "K")]), "body"),
            (input("Hi {{first_name}}", &[("first_name", "K")]), "body"),
            (input(&"x".repeat(1025), &[]), "body"),
            (input("Hi {{first_name}} there", &[]), "samples"),
            (
                input("Hi {{first_name}} there", &[("first_name", "  ")]),
                "samples",
            ),
            (
                input(
                    "Hi {{first_name}} there",
                    &[("first_name", "K"), ("other", "x")],
                ),
                "samples",
            ),
        ];
        for (i, (case, field)) in cases.into_iter().enumerate() {
            let err = TemplateDraft::parse(&case).expect_err(&format!("case {i} is refused"));
            assert_eq!(err.field, field, "case {i}: {err}");
            assert!(!err.message.is_empty());
        }
        let ok = DraftInput {
            language: "pt-BR".into(),
            ..input("Hi.", &[])
        };
        assert_eq!(TemplateDraft::parse(&ok).unwrap().language, "pt_BR");
    }

    #[test]
    fn sample_lines_parse_and_name_bad_lines() {
        let s = parse_sample_lines("first_name = Kari\n\n{{order_id}}=A=17\n").unwrap();
        assert_eq!(s.get("first_name").map(String::as_str), Some("Kari"));
        assert_eq!(s.get("order_id").map(String::as_str), Some("A=17"));
        let e = parse_sample_lines("first_name Kari").unwrap_err();
        assert_eq!(e.field, "samples");
        assert!(e.message.contains("Line 1"));
        let e = parse_sample_lines("a=1\na=2").unwrap_err();
        assert!(e.message.contains("Line 2"));
    }

    #[test]
    fn meta_statuses_map_to_ours() {
        use heimdall_codes::TemplateApproval as A;
        assert_eq!(A::from_provider("APPROVED"), A::Approved);
        assert_eq!(A::from_provider("REJECTED"), A::Rejected);
        assert_eq!(A::from_provider("IN_APPEAL"), A::Pending);
        assert_eq!(A::from_provider("PAUSED"), A::Paused);
    }
}
