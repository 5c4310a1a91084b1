//! Opt-in forms: the list with their counts, one form with its versioned
//! consent texts, QR codes and recent submissions, creating and editing
//! forms (admins: consent texts are legal evidence), QR codes, and the CSV
//! import of consent records with a report per row.

// Server-function arguments are the fields of a form.
#![allow(clippy::too_many_arguments)]

use chrono::{DateTime, Utc};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::api::templates::{PurposeRow, TemplateRow};
use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::model::Role;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FormRow {
    pub id: String,
    pub slug: String,
    pub title: String,
    pub url: String,
    pub active: bool,
    pub double_opt_in: bool,
    /// The channels offered, with the current text version (`whatsapp:v2`).
    pub channels: Vec<String>,
    pub contacts: u64,
    pub qr_codes: usize,
    pub last_submission_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextVersionRow {
    pub channel: String,
    pub label: String,
    pub text: String,
    pub hash: String,
    pub current: bool,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QrRow {
    pub code: String,
    pub source_label: String,
    pub prefilled_text: String,
    pub scans: i64,
    pub consents: u64,
    pub url: String,
    pub svg_url: String,
    pub print_url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmissionRow {
    pub contact_id: String,
    pub channel: String,
    pub status: String,
    pub source: String,
    pub text_version: Option<String>,
    pub captured_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelCountRow {
    pub channel: String,
    pub active: u64,
    pub pending: u64,
    pub revoked: u64,
}

/// A form as its page (and its edit form) shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FormDetail {
    pub id: String,
    pub slug: String,
    pub title: String,
    pub intro: String,
    pub thank_you: String,
    pub url: String,
    pub active: bool,
    pub double_opt_in: bool,
    pub confirmation_template: Option<String>,
    /// `key: Label` per line, `*` after a required one.
    pub fields_spec: String,
    /// The channel's text when it is asked once.
    pub whatsapp_text: Option<String>,
    pub sms_text: Option<String>,
    /// The texts of a channel asked per purpose, by `<channel>.<purpose>`.
    pub purpose_texts: BTreeMap<String, String>,
    pub history: Vec<TextVersionRow>,
    pub qr_codes: Vec<QrRow>,
    pub counts: Vec<ChannelCountRow>,
    pub recent: Vec<SubmissionRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FormsView {
    pub forms: Vec<FormRow>,
    /// The report of this session's last import (shown once).
    pub import_report: Option<ImportReportView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportReportView {
    pub imported: usize,
    pub duplicates: Vec<usize>,
    pub refused: Vec<(usize, String)>,
    pub ignored_columns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FormEditData {
    pub form: Option<FormDetail>,
    /// Approved templates, for the WhatsApp confirmation of a double opt-in.
    pub templates: Vec<TemplateRow>,
    /// Every purpose, for asking per purpose.
    pub purposes: Vec<PurposeRow>,
}

#[cfg(feature = "ssr")]
mod ssr {
    use super::*;
    use crate::server::*;
    use heimdall_domain::optin::{self, Form, FormError, FormField};

    pub fn form_error(e: FormError) -> AppError {
        match e {
            FormError::Invalid(errors) => {
                let field = errors.keys().next().cloned().unwrap_or_default();
                let message = errors
                    .values()
                    .map(|m| capitalise(m))
                    .collect::<Vec<_>>()
                    .join(". ");
                AppError::Invalid {
                    field: field_name(&field),
                    message,
                }
            }
            FormError::SlugTaken(s) => AppError::invalid(
                "slug",
                format!("A form with the address '{s}' already exists."),
            ),
            FormError::NotFound(_) => AppError::NotFound("No such form.".into()),
            FormError::Db(e) => internal(e),
        }
    }

    /// The console's field for a domain field name (`channels[0].consent_text`).
    fn field_name(f: &str) -> String {
        if f.starts_with("channels") {
            if f.contains("sms") {
                "sms_text".into()
            } else {
                "whatsapp_text".into()
            }
        } else if f.starts_with("fields") {
            "fields_spec".into()
        } else if f == "whatsapp_confirmation_template" {
            "confirmation_template".into()
        } else {
            f.to_string()
        }
    }

    pub fn fields_spec(fields: &[FormField]) -> String {
        fields
            .iter()
            .map(|f| {
                format!(
                    "{}: {}{}",
                    f.key,
                    f.label,
                    if f.required { " *" } else { "" }
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `key: Label` per line; a trailing `*` makes it required.
    pub fn parse_fields(spec: &str) -> Result<Vec<FormField>, AppError> {
        let mut out = Vec::new();
        for (i, line) in spec.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let Some((key, label)) = line.split_once(':') else {
                return Err(AppError::invalid(
                    "fields_spec",
                    format!(
                        "Line {}: write 'key: Label' (add * for a required field).",
                        i + 1
                    ),
                ));
            };
            let label = label.trim();
            let (label, required) = match label.strip_suffix('*') {
                Some(l) => (l.trim(), true),
                None => (label, false),
            };
            out.push(FormField {
                key: key.trim().to_string(),
                label: label.to_string(),
                required,
            });
        }
        Ok(out)
    }

    pub fn row(f: optin::FormSummary) -> FormRow {
        FormRow {
            channels: f.form.channels.iter().map(|c| c.label.clone()).collect(),
            contacts: f.stats.contacts,
            qr_codes: f.stats.qr_codes.len(),
            last_submission_at: f.stats.last_submission_at,
            id: f.form.id,
            slug: f.form.slug,
            title: f.form.title,
            url: f.form.url,
            active: f.form.active,
            double_opt_in: f.form.double_opt_in,
        }
    }

    pub async fn detail(ctx: &Ctx, form: Form) -> Result<FormDetail, AppError> {
        let core = ctx.core();
        let history = optin::consent_text_history(core, &form.id)
            .await
            .map_err(internal)?;
        let stats = optin::form_stats(core, &form.id).await.map_err(internal)?;
        let qr = optin::list_qr_codes(core, &form.id)
            .await
            .map_err(internal)?;
        let recent = optin::recent_consents(core, &form.id, 20)
            .await
            .map_err(internal)?;
        let text = |ch: heimdall_domain::Channel| form.offer(ch, None).map(|c| c.text.clone());
        Ok(FormDetail {
            whatsapp_text: text(heimdall_domain::Channel::WhatsApp),
            sms_text: text(heimdall_domain::Channel::Sms),
            purpose_texts: form
                .channels
                .iter()
                .filter_map(|t| {
                    let p = t.purpose.as_ref()?;
                    Some((format!("{}.{p}", t.channel.as_str()), t.text.clone()))
                })
                .collect(),
            fields_spec: fields_spec(&form.fields),
            history: history
                .into_iter()
                .map(|v| TextVersionRow {
                    channel: v.channel.to_string(),
                    label: v.label,
                    text: v.text,
                    hash: v.hash,
                    current: v.current,
                    created_by: v.created_by,
                    created_at: v.created_at,
                })
                .collect(),
            qr_codes: qr
                .into_iter()
                .map(|q| QrRow {
                    prefilled_text: q.whatsapp_text(),
                    consents: stats
                        .qr_codes
                        .iter()
                        .find(|s| s.code == q.code)
                        .map(|s| s.consents)
                        .unwrap_or(0),
                    code: q.code,
                    source_label: q.source_label,
                    scans: q.scans,
                    url: q.url,
                    svg_url: q.svg_url,
                    print_url: q.print_url,
                })
                .collect(),
            counts: stats
                .channels
                .into_iter()
                .map(|c| ChannelCountRow {
                    channel: c.channel,
                    active: c.active,
                    pending: c.pending,
                    revoked: c.revoked,
                })
                .collect(),
            recent: recent
                .into_iter()
                .map(|c| SubmissionRow {
                    contact_id: c.contact_id,
                    channel: c.channel,
                    status: if c.revoked_at.is_some() {
                        "revoked".into()
                    } else {
                        c.status.to_string()
                    },
                    source: c.source,
                    text_version: c.consent_text_version,
                    captured_at: c.captured_at,
                })
                .collect(),
            id: form.id,
            slug: form.slug,
            title: form.title,
            intro: form.intro,
            thank_you: form.thank_you,
            url: form.url,
            active: form.active,
            double_opt_in: form.double_opt_in,
            confirmation_template: form.whatsapp_confirmation_template,
        })
    }
}

#[server(prefix = "/_sf", endpoint = "forms_list")]
pub async fn forms_list() -> Result<FormsView, AppError> {
    use crate::server::*;
    respond(
        async move {
            let ctx = require(Role::Viewer).await?;
            let forms = heimdall_domain::optin::list_forms(ctx.core())
                .await
                .map_err(internal)?
                .into_iter()
                .map(ssr::row)
                .collect();
            let import_report = take_import_report(&ctx);
            Ok(FormsView {
                forms,
                import_report,
            })
        }
        .await,
    )
}

/// The report of this session's last consent import, once (the contacts page shows it).
#[server(prefix = "/_sf", endpoint = "consents_import_report")]
pub async fn consents_import_report() -> Result<Option<ImportReportView>, AppError> {
    use crate::server::*;
    respond(
        async move {
            let ctx = require(Role::Viewer).await?;
            Ok(take_import_report(&ctx))
        }
        .await,
    )
}

#[cfg(feature = "ssr")]
fn take_import_report(ctx: &crate::server::Ctx) -> Option<ImportReportView> {
    ctx.state
        .flash
        .take(&ctx.session.id, "import_report", ctx.core().now())
        .and_then(|r| serde_json::from_str(secrecy::ExposeSecret::expose_secret(&r)).ok())
}

#[server(prefix = "/_sf", endpoint = "form_get")]
pub async fn form_get(id: String) -> Result<FormDetail, AppError> {
    use crate::server::*;
    respond(
        async move {
            let ctx = require(Role::Viewer).await?;
            let id = check_id(&id, "form")?;
            let form = heimdall_domain::optin::get_form(ctx.core(), &id)
                .await
                .map_err(ssr::form_error)?;
            ssr::detail(&ctx, form).await
        }
        .await,
    )
}

#[server(prefix = "/_sf", endpoint = "form_editor")]
pub async fn form_editor(id: Option<String>) -> Result<FormEditData, AppError> {
    use crate::server::*;
    respond(
        async move {
            let ctx = require(Role::Admin).await?;
            let form = match optional(id) {
                Some(id) => {
                    let id = check_id(&id, "form")?;
                    let f = heimdall_domain::optin::get_form(ctx.core(), &id)
                        .await
                        .map_err(ssr::form_error)?;
                    Some(ssr::detail(&ctx, f).await?)
                }
                None => None,
            };
            let templates = heimdall_domain::templates::list(ctx.core())
                .await
                .map_err(internal)?
                .into_iter()
                .filter(|t| t.approval_status.is_approved())
                .map(crate::api::templates::row)
                .collect();
            let purposes = crate::api::templates::purpose_rows(ctx.core()).await?;
            Ok(FormEditData {
                form,
                templates,
                purposes,
            })
        }
        .await,
    )
}

/// Create or change a form. A changed consent text becomes a new version;
/// the old one stays on record with the consents that cite it.
#[server(prefix = "/_sf", endpoint = "form_save")]
pub async fn form_save(
    #[server(default)] csrf: String,
    #[server(default)] id: Option<String>,
    #[server(default)] slug: String,
    title: String,
    #[server(default)] intro: String,
    #[server(default)] thank_you: String,
    #[server(default)] fields_spec: String,
    #[server(default)] double_opt_in: Option<String>,
    #[server(default)] active: Option<String>,
    #[server(default)] offer_whatsapp: Option<String>,
    #[server(default)] whatsapp_text: String,
    #[server(default)] offer_sms: Option<String>,
    #[server(default)] sms_text: String,
    #[server(default)] purpose_text: BTreeMap<String, String>,
    #[server(default)] confirmation_template: String,
) -> Result<String, AppError> {
    use crate::server::*;
    use heimdall_domain::optin::{self, ChannelText, FormInput, FormUpdate};
    use heimdall_domain::Channel;
    respond(
        async move {
            let ctx = mutation(Role::Admin, &csrf).await?;
            let fields = ssr::parse_fields(&fields_spec)?;
            // A channel offered is asked once (its text) or per purpose (the
            // purposes' texts filled in); both filled in is refused by the domain.
            let mut channels = Vec::new();
            for (channel, offered, once) in [
                (Channel::WhatsApp, offer_whatsapp.is_some(), whatsapp_text),
                (Channel::Sms, offer_sms.is_some(), sms_text),
            ] {
                if !offered {
                    continue;
                }
                let per_purpose: Vec<ChannelText> = purpose_text
                    .iter()
                    .filter(|(_, text)| !text.trim().is_empty())
                    .filter_map(|(key, text)| {
                        let (c, purpose) = key.split_once('.')?;
                        (c == channel.as_str()).then(|| ChannelText {
                            channel,
                            consent_text: text.clone(),
                            purpose: Some(purpose.to_string()),
                        })
                    })
                    .collect();
                if per_purpose.is_empty() || !once.trim().is_empty() {
                    channels.push(ChannelText {
                        channel,
                        consent_text: once,
                        purpose: None,
                    });
                }
                channels.extend(per_purpose);
            }
            if channels.is_empty() {
                return Err(AppError::invalid(
                    "channels",
                    "Offer at least one channel, with the consent text shown beside it.",
                ));
            }
            let template = optional(Some(confirmation_template));
            let form = match optional(id) {
                None => {
                    optin::create_form(
                        ctx.core(),
                        &FormInput {
                            slug,
                            title,
                            intro,
                            fields,
                            thank_you,
                            channels,
                            double_opt_in: double_opt_in.is_some(),
                            whatsapp_confirmation_template: template,
                            active: Some(active.is_some()),
                        },
                        &ctx.actor(),
                    )
                    .await
                }
                Some(id) => {
                    let id = check_id(&id, "form")?;
                    optin::update_form(
                        ctx.core(),
                        &id,
                        &FormUpdate {
                            title: Some(title),
                            intro: Some(intro),
                            fields: Some(fields),
                            thank_you: Some(thank_you),
                            double_opt_in: Some(double_opt_in.is_some()),
                            whatsapp_confirmation_template: Some(template.unwrap_or_default()),
                            active: Some(active.is_some()),
                            channels: Some(channels),
                        },
                        &ctx.actor(),
                    )
                    .await
                }
            }
            .map_err(ssr::form_error)?;
            leptos_actix::redirect(&format!("/forms/{}", form.id));
            Ok(form.id)
        }
        .await,
    )
}

/// A new QR code leading to a form.
#[server(prefix = "/_sf", endpoint = "qr_create")]
pub async fn qr_create(
    #[server(default)] csrf: String,
    form_id: String,
    source_label: String,
    #[server(default)] prefilled_text: String,
) -> Result<(), AppError> {
    use crate::server::*;
    use heimdall_domain::optin::{self, QrInput};
    respond(
        async move {
            let ctx = mutation(Role::Admin, &csrf).await?;
            let id = check_id(&form_id, "form")?;
            optin::create_qr_code(
                ctx.core(),
                &id,
                &QrInput {
                    source_label,
                    prefilled_text: optional(Some(prefilled_text)),
                },
                &ctx.actor(),
            )
            .await
            .map_err(ssr::form_error)?;
            Ok(())
        }
        .await,
    )
}

/// Import consent records from CSV; the report (row by row) is shown on
/// the forms page. Rows with errors record nothing.
#[server(prefix = "/_sf", endpoint = "consents_import")]
pub async fn consents_import(#[server(default)] csrf: String, csv: String) -> Result<(), AppError> {
    use crate::server::*;
    use heimdall_domain::optin::{self, ImportError};
    respond(
        async move {
            let ctx = mutation(Role::Admin, &csrf).await?;
            if csv.trim().is_empty() {
                return Err(AppError::invalid(
                    "csv",
                    "Paste the CSV (with its header row) or choose a file.",
                ));
            }
            let report = optin::import_consents(ctx.core(), &csv, &ctx.actor())
                .await
                .map_err(|e| match e {
                    ImportError::File(m) => AppError::invalid("csv", capitalise(&m)),
                    ImportError::Db(e) => internal(e),
                })?;
            let view = ImportReportView {
                imported: report.imported,
                duplicates: report.duplicates,
                refused: report
                    .refused
                    .into_iter()
                    .map(|r| (r.row, r.reason))
                    .collect(),
                ignored_columns: report.ignored_columns,
            };
            let json = serde_json::to_string(&view).map_err(internal)?;
            ctx.state.flash.put(
                &ctx.session.id,
                "import_report",
                secrecy::SecretString::from(json),
                ctx.core().now(),
            );
            Ok(())
        }
        .await,
    )
}
