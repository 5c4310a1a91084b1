//! Campaigns: list, draft (create and edit), review, submit, approve or
//! reject, pause, resume, cancel, and live progress. The domain enforces
//! the rules (never the author's own approval, roles, transitions); these
//! functions check the session first and say no before the domain would.

// Server-function arguments are the fields of a form.
#![allow(clippy::too_many_arguments)]

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::api::templates::TemplateRow;
use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::model::Role;
use crate::model::{Counts, FailureView};
use heimdall_codes::{CampaignAction, CampaignStatus};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignRow {
    pub id: String,
    pub name: String,
    pub channel: String,
    pub template_name: String,
    pub status: CampaignStatus,
    pub author: Option<String>,
    pub audience: String,
    pub recipients: Option<u32>,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariableMapping {
    pub name: String,
    /// `field` (a contact field) or `value` (the same text for everyone).
    pub source: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRow {
    pub actor: String,
    pub decision: String,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignInfo {
    pub id: String,
    pub name: String,
    pub channel: String,
    pub template_name: String,
    pub template_category: String,
    pub template_body: Option<String>,
    pub template_variables: Vec<String>,
    pub status: CampaignStatus,
    /// `tags` or `phones`.
    pub audience_kind: String,
    pub tags: Vec<String>,
    pub phones: Vec<String>,
    pub variables: Vec<VariableMapping>,
    pub author: Option<String>,
    pub is_author: bool,
    pub submitted_at: Option<DateTime<Utc>>,
    pub approved_by: Option<String>,
    pub approved_at: Option<DateTime<Utc>>,
    pub rejection_reason: Option<String>,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub fanned_out_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub recipients: Option<u32>,
    pub created_at: DateTime<Utc>,
    pub history: Vec<HistoryRow>,
}

impl CampaignInfo {
    /// Not yet approved: the review applies.
    pub fn before_sending(&self) -> bool {
        self.status.before_approval()
    }

    /// Whether the server would accept `action` now.
    pub fn allows(&self, action: CampaignAction) -> bool {
        self.status.allows(action)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleView {
    pub phone: String,
    pub name: Option<String>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewView {
    pub audience_size: usize,
    pub samples: Vec<SampleView>,
    pub would_pass: usize,
    pub would_block: Counts,
    pub would_defer: Counts,
    pub per_message: f64,
    pub currency: String,
    pub total: f64,
    pub billable_messages: usize,
    pub sms_segments: Option<usize>,
    pub missing_fields: Counts,
    /// Numbers of a list that no longer match a usable contact, and why.
    pub unresolved: Vec<(String, String)>,
    /// What approving this review binds to: sent back with the approval.
    pub content_hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressView {
    pub status: CampaignStatus,
    pub total: usize,
    pub recipients: Option<usize>,
    pub by_state: Counts,
    pub by_block_reason: Counts,
    pub delivered_rate: f64,
    pub read_rate: f64,
    pub failures: Vec<FailureView>,
}

/// The campaign page's data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignPageData {
    pub info: CampaignInfo,
    /// Before approval only.
    pub review: Option<ReviewView>,
}

/// What the draft form needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DraftFormData {
    /// Approved templates to choose from.
    pub templates: Vec<TemplateRow>,
    /// The chosen one (from `?template=`, else the draft's).
    pub selected: Option<TemplateRow>,
    pub draft: Option<CampaignInfo>,
    /// Schedules are entered in this time zone.
    pub time_zone: String,
    /// The draft's schedule as `YYYY-MM-DDTHH:MM` in that zone.
    pub scheduled_local: Option<String>,
}

#[cfg(feature = "ssr")]
mod ssr {
    use super::*;
    use crate::server::*;
    use heimdall_domain::campaigns::{self, Audience, CampaignError, CampaignView, VariableSource};

    /// The domain's errors as the console shows them, an invalid value
    /// beside its field.
    pub fn campaign_error(e: CampaignError) -> AppError {
        match e {
            CampaignError::NotFound => AppError::NotFound("No such campaign.".into()),
            CampaignError::Forbidden(m) => AppError::Forbidden(capitalise(&m)),
            CampaignError::SelfApproval => AppError::Forbidden(
                "You wrote or changed this campaign: another approver must approve or reject it."
                    .into(),
            ),
            e @ CampaignError::Changed(_) => AppError::Conflict(capitalise(&e.to_string())),
            e @ CampaignError::InvalidTransition { .. } => {
                AppError::Conflict(capitalise(&e.to_string()))
            }
            CampaignError::Invalid { field, message } => AppError::Invalid {
                // The form has one field for the list of numbers.
                field: match field.as_str() {
                    "audience.phones" => "phones".to_string(),
                    _ => field,
                },
                message: capitalise(&message),
            },
            CampaignError::Db(e) => internal(e),
        }
    }

    pub fn audience_summary(a: &Audience) -> String {
        match a {
            Audience::Tags { tags } => format!("tags: {}", tags.join(", ")),
            Audience::Phones { phones } => format!("{} uploaded numbers", phones.len()),
        }
    }

    pub fn row(v: CampaignView) -> CampaignRow {
        CampaignRow {
            audience: audience_summary(&v.audience),
            id: v.id,
            name: v.name,
            channel: v.channel.to_string(),
            template_name: v.template_name,
            status: v.status,
            author: v.created_by_email,
            recipients: v.recipients,
            scheduled_at: v.scheduled_at,
            created_at: v.created_at,
        }
    }

    pub async fn info(ctx: &Ctx, v: CampaignView) -> Result<CampaignInfo, AppError> {
        let template =
            heimdall_domain::templates::find_by_name(&ctx.core().db.conn, &v.template_name)
                .await
                .map_err(internal)?;
        let (audience_kind, tags, phones) = match &v.audience {
            Audience::Tags { tags } => ("tags", tags.clone(), vec![]),
            Audience::Phones { phones } => ("phones", vec![], phones.clone()),
        };
        Ok(CampaignInfo {
            is_author: v.authors.contains(&ctx.user().id),
            template_body: template.as_ref().map(|t| t.body.clone()),
            template_variables: template.map(|t| t.variables).unwrap_or_default(),
            audience_kind: audience_kind.into(),
            tags,
            phones,
            variables: v
                .variables
                .iter()
                .map(|(name, src)| match src {
                    VariableSource::Field(f) => VariableMapping {
                        name: name.clone(),
                        source: "field".into(),
                        value: f.clone(),
                    },
                    VariableSource::Value(x) => VariableMapping {
                        name: name.clone(),
                        source: "value".into(),
                        value: x.clone(),
                    },
                })
                .collect(),
            history: v
                .history
                .into_iter()
                .map(|h| HistoryRow {
                    actor: h.actor_email,
                    decision: h.decision,
                    reason: h.reason,
                    at: h.at,
                })
                .collect(),
            id: v.id,
            name: v.name,
            channel: v.channel.to_string(),
            template_name: v.template_name,
            template_category: v.template_category,
            status: v.status,
            author: v.created_by_email,
            submitted_at: v.submitted_at,
            approved_by: v.approved_by_email,
            approved_at: v.approved_at,
            rejection_reason: v.rejection_reason,
            scheduled_at: v.scheduled_at,
            fanned_out_at: v.fanned_out_at,
            completed_at: v.completed_at,
            recipients: v.recipients,
            created_at: v.created_at,
        })
    }

    pub fn counts(m: BTreeMap<String, usize>) -> Counts {
        m.into_iter().collect()
    }

    pub fn failure(f: heimdall_domain::campaigns::FailureRow) -> FailureView {
        FailureView {
            message_id: f.message_id,
            phone_masked: f.phone_masked,
            error_code: f.error_code,
            meaning: f.meaning,
            at: f.at,
        }
    }

    /// Numbers from a pasted or uploaded CSV: the first cell of each line
    /// that looks like a phone number; a header line is skipped. Lines with
    /// no number are reported with their line number.
    pub fn phones_from_csv(text: &str) -> Result<Vec<String>, AppError> {
        let mut phones = Vec::new();
        let mut bad = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim().trim_start_matches('\u{feff}');
            if line.is_empty() {
                continue;
            }
            let cell = line
                .split([',', ';', '\t'])
                .map(|c| c.trim().trim_matches('"').trim())
                .find(|c| {
                    let digits = c.chars().filter(char::is_ascii_digit).count();
                    digits >= 6
                        && c.chars()
                            .all(|ch| ch.is_ascii_digit() || " +-().".contains(ch))
                });
            match cell {
                Some(c) => phones.push(c.to_string()),
                None if i == 0 => {} // a header
                None => bad.push(format!(
                    "line {}: no phone number in '{}'",
                    i + 1,
                    truncate(line, 40)
                )),
            }
        }
        if !bad.is_empty() {
            return Err(AppError::invalid(
                "phones",
                format!(
                    "{} line(s) could not be read: {}",
                    bad.len(),
                    bad.join("; ")
                ),
            ));
        }
        Ok(phones)
    }

    fn truncate(s: &str, n: usize) -> String {
        if s.chars().count() > n {
            format!("{}…", s.chars().take(n).collect::<String>())
        } else {
            s.to_string()
        }
    }

    /// A change of a campaign's status by a staff member.
    pub enum Step {
        Submit,
        /// With the content hash of the review the approver saw.
        Approve(String),
        Reject(String),
        Pause,
        Resume,
        Cancel,
    }

    pub async fn transition(csrf: String, id: String, step: Step) -> Result<(), AppError> {
        let role = match step {
            Step::Approve(_) | Step::Reject(_) => Role::Approver,
            _ => Role::Operator,
        };
        let ctx = mutation(role, &csrf).await?;
        let id = check_id(&id, "campaign")?;
        let (core, user) = (ctx.core(), ctx.user());
        match &step {
            Step::Submit => campaigns::submit(core, user, &id).await,
            Step::Approve(reviewed) => campaigns::approve(core, user, &id, reviewed).await,
            Step::Reject(reason) => {
                if reason.trim().is_empty() {
                    return Err(AppError::invalid(
                        "reason",
                        "Say why the campaign is rejected.",
                    ));
                }
                campaigns::reject(core, user, &id, reason).await
            }
            Step::Pause => campaigns::pause(core, user, &id).await,
            Step::Resume => campaigns::resume(core, user, &id).await,
            Step::Cancel => campaigns::cancel(core, user, &id).await,
        }
        .map_err(campaign_error)?;
        Ok(())
    }
}

#[cfg(feature = "ssr")]
pub(crate) use ssr::{counts, failure};

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::ssr::*;
    use heimdall_domain::campaigns::CampaignError;

    #[test]
    fn numbers_from_a_csv() {
        let csv = "phone,name\n+4791234567,Kari\n\n\"+47 912 34 568\";Ola\n";
        assert_eq!(
            phones_from_csv(csv).unwrap(),
            vec!["+4791234567".to_string(), "+47 912 34 568".to_string()]
        );
        assert_eq!(
            phones_from_csv("+4791234567\n+4791234568").unwrap().len(),
            2
        );
        let err = phones_from_csv("phone\n+4791234567\nKari Nordmann\n").unwrap_err();
        assert!(err.for_field("phones").is_some());
        assert!(err.to_string().contains("line 3"), "{err}");
    }

    #[test]
    fn domain_errors_land_beside_their_fields() {
        let e = campaign_error(CampaignError::Invalid {
            field: "audience.phones".into(),
            message: "2 number(s) refused".into(),
        });
        assert_eq!(
            e.for_field("phones").as_deref(),
            Some("2 number(s) refused")
        );
        let e = campaign_error(CampaignError::Invalid {
            field: "name".into(),
            message: "must not be blank".into(),
        });
        assert_eq!(e.for_field("name").as_deref(), Some("Must not be blank"));
        assert_eq!(campaign_error(CampaignError::SelfApproval).status(), 403);
        assert_eq!(campaign_error(CampaignError::NotFound).status(), 404);
    }
}

#[server(prefix = "/_sf", endpoint = "campaigns_list")]
pub async fn campaigns_list(status: Option<String>) -> Result<Vec<CampaignRow>, AppError> {
    use self::ssr::*;
    use crate::server::*;
    respond(
        async move {
            let ctx = require(Role::Viewer).await?;
            let status = match status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                None => None,
                Some(s) => Some(
                    heimdall_domain::campaigns::CampaignStatus::parse(s).ok_or_else(|| {
                        AppError::invalid("status", format!("Unknown status '{s}'."))
                    })?,
                ),
            };
            Ok(heimdall_domain::campaigns::list(
                ctx.core(),
                status,
                heimdall_domain::campaigns::MAX_LIST,
                None,
            )
            .await
            .map_err(internal)?
            .into_iter()
            .map(row)
            .collect())
        }
        .await,
    )
}

/// The campaign page: the campaign and, before it is approved, its review
/// (samples, audience size, the dry run of the gates over the whole
/// audience, estimated cost). Each review is recorded as done by whoever
/// asked for it.
#[server(prefix = "/_sf", endpoint = "campaign_page")]
pub async fn campaign_page(id: String) -> Result<CampaignPageData, AppError> {
    use self::ssr::*;
    use crate::server::*;
    respond(
        async move {
            let ctx = require(Role::Viewer).await?;
            let id = check_id(&id, "campaign")?;
            let v = heimdall_domain::campaigns::get(ctx.core(), &id)
                .await
                .map_err(campaign_error)?;
            let info = info(&ctx, v).await?;
            let review = if info.before_sending() {
                let r = heimdall_domain::campaigns::review_by(ctx.core(), Some(ctx.user()), &id, 5)
                    .await
                    .map_err(campaign_error)?;
                Some(ReviewView {
                    audience_size: r.audience_size,
                    samples: r
                        .samples
                        .into_iter()
                        .map(|s| SampleView {
                            phone: s.phone,
                            name: s.name,
                            text: s.text,
                        })
                        .collect(),
                    would_pass: r.dry_run.would_pass,
                    would_block: counts(r.dry_run.would_block),
                    would_defer: counts(r.dry_run.would_defer),
                    per_message: r.estimated_cost.per_message,
                    currency: r.estimated_cost.currency.to_string(),
                    total: r.estimated_cost.total,
                    billable_messages: r.estimated_cost.billable_messages,
                    sms_segments: r.estimated_cost.sms_segments,
                    missing_fields: counts(r.missing_fields),
                    unresolved: r
                        .unresolved
                        .into_iter()
                        .map(|u| (u.number, u.why))
                        .collect(),
                    content_hash: r.content_hash,
                })
            } else {
                None
            };
            Ok(CampaignPageData { info, review })
        }
        .await,
    )
}

#[server(prefix = "/_sf", endpoint = "campaign_progress")]
pub async fn campaign_progress(id: String) -> Result<ProgressView, AppError> {
    use self::ssr::*;
    use crate::server::*;
    respond(
        async move {
            let ctx = require(Role::Viewer).await?;
            let id = check_id(&id, "campaign")?;
            let p = heimdall_domain::campaigns::progress(ctx.core(), &id)
                .await
                .map_err(campaign_error)?;
            Ok(ProgressView {
                status: p.status,
                total: p.total,
                recipients: p.recipients,
                by_state: counts(p.by_state),
                by_block_reason: counts(p.by_block_reason),
                delivered_rate: p.delivered_rate,
                read_rate: p.read_rate,
                failures: p.failures.into_iter().map(failure).collect(),
            })
        }
        .await,
    )
}

/// What the draft form needs: approved templates, the chosen one, and the
/// draft being edited.
#[server(prefix = "/_sf", endpoint = "campaign_form")]
pub async fn campaign_form(
    id: Option<String>,
    template: Option<String>,
) -> Result<DraftFormData, AppError> {
    use self::ssr::*;
    use crate::server::*;
    respond(
        async move {
            let ctx = require(Role::Operator).await?;
            let core = ctx.core();
            let templates: Vec<TemplateRow> = heimdall_domain::templates::list(core)
                .await
                .map_err(internal)?
                .into_iter()
                .filter(|t| t.approval_status.is_approved())
                .map(crate::api::templates::row)
                .collect();
            let draft = match optional(id) {
                Some(id) => {
                    let id = check_id(&id, "campaign")?;
                    let v = heimdall_domain::campaigns::get(core, &id)
                        .await
                        .map_err(campaign_error)?;
                    Some(info(&ctx, v).await?)
                }
                None => None,
            };
            let wanted = optional(template)
                .map(|t| t.to_lowercase())
                .or_else(|| draft.as_ref().map(|d| d.template_name.clone()));
            let selected = wanted.and_then(|w| templates.iter().find(|t| t.name == w).cloned());
            let tz = core.settings.default_time_zone;
            let scheduled_local = draft
                .as_ref()
                .and_then(|d| d.scheduled_at)
                .map(|at| at.with_timezone(&tz).format("%Y-%m-%dT%H:%M").to_string());
            Ok(DraftFormData {
                templates,
                selected,
                draft,
                time_zone: tz.name().to_string(),
                scheduled_local,
            })
        }
        .await,
    )
}

/// Create or change a draft; on success, go to its review page.
#[server(prefix = "/_sf", endpoint = "campaign_save")]
pub async fn campaign_save(
    #[server(default)] csrf: String,
    #[server(default)] id: Option<String>,
    name: String,
    channel: String,
    template_name: String,
    audience: String,
    #[server(default)] tags: String,
    #[server(default)] phones: String,
    #[server(default)] var_source: BTreeMap<String, String>,
    #[server(default)] var_value: BTreeMap<String, String>,
    schedule: String,
    #[server(default)] scheduled_at: String,
) -> Result<String, AppError> {
    use self::ssr::*;
    use crate::server::*;
    use chrono::TimeZone;
    use heimdall_domain::campaigns::{self, Audience, VariableSource};
    respond(
        async move {
            let ctx = mutation(Role::Operator, &csrf).await?;
            let core = ctx.core();
            let channel: heimdall_domain::Channel = channel
                .parse()
                .map_err(|e: String| AppError::invalid("channel", capitalise(&e)))?;
            let audience =
                match audience.as_str() {
                    "tags" => Audience::Tags {
                        tags: tags
                            .split([',', ';', '\n'])
                            .map(|t| t.trim().to_string())
                            .filter(|t| !t.is_empty())
                            .collect(),
                    },
                    "phones" => Audience::Phones {
                        phones: phones_from_csv(&phones)?,
                    },
                    _ => return Err(AppError::invalid(
                        "audience",
                        "Choose who gets the campaign: contacts with tags, or a list of numbers.",
                    )),
                };
            let mut variables = BTreeMap::new();
            for (var, source) in &var_source {
                let value = var_value.get(var).cloned().unwrap_or_default();
                let src = match source.as_str() {
                    "field" => VariableSource::Field(value.trim().to_string()),
                    "value" => VariableSource::Value(value),
                    _ => {
                        return Err(AppError::invalid(
                            "variables",
                            format!("Choose where '{var}' comes from."),
                        ))
                    }
                };
                variables.insert(var.clone(), src);
            }
            let scheduled_at = match schedule.as_str() {
                "on_approval" => None,
                "at" => {
                    let naive = chrono::NaiveDateTime::parse_from_str(
                        scheduled_at.trim(),
                        "%Y-%m-%dT%H:%M",
                    )
                    .map_err(|_| {
                        AppError::invalid(
                            "scheduled_at",
                            "Enter a date and time, or choose 'send on approval'.",
                        )
                    })?;
                    let tz = core.settings.default_time_zone;
                    let local = tz.from_local_datetime(&naive).earliest().ok_or_else(|| {
                        AppError::invalid(
                            "scheduled_at",
                            "That time does not exist in this time zone (a clock change).",
                        )
                    })?;
                    Some(local.with_timezone(&Utc))
                }
                _ => {
                    return Err(AppError::invalid(
                        "schedule",
                        "Choose when to send: on approval, or at a time.",
                    ))
                }
            };
            let draft = campaigns::CampaignDraft {
                name,
                channel,
                template_name,
                audience,
                variables,
                scheduled_at,
            };
            let saved = match optional(id) {
                Some(id) => {
                    let id = check_id(&id, "campaign")?;
                    campaigns::update_draft(core, ctx.user(), &id, draft).await
                }
                None => campaigns::create_draft(core, ctx.user(), draft).await,
            }
            .map_err(campaign_error)?;
            leptos_actix::redirect(&format!("/campaigns/{}", saved.id));
            Ok(saved.id)
        }
        .await,
    )
}

/// Ask for approval.
#[server(prefix = "/_sf", endpoint = "campaign_submit")]
pub async fn campaign_submit(#[server(default)] csrf: String, id: String) -> Result<(), AppError> {
    use self::ssr::*;
    use crate::server::*;
    respond(transition(csrf, id, Step::Submit).await)
}

/// Approve what the review showed (`content_hash`): an approver who did
/// not write or change the campaign.
#[server(prefix = "/_sf", endpoint = "campaign_approve")]
pub async fn campaign_approve(
    #[server(default)] csrf: String,
    id: String,
    #[server(default)] content_hash: String,
) -> Result<(), AppError> {
    use self::ssr::*;
    use crate::server::*;
    respond(transition(csrf, id, Step::Approve(content_hash)).await)
}

/// Send back to the author with a reason (required).
#[server(prefix = "/_sf", endpoint = "campaign_reject")]
pub async fn campaign_reject(
    #[server(default)] csrf: String,
    id: String,
    reason: String,
) -> Result<(), AppError> {
    use self::ssr::*;
    use crate::server::*;
    respond(transition(csrf, id, Step::Reject(reason)).await)
}

#[server(prefix = "/_sf", endpoint = "campaign_pause")]
pub async fn campaign_pause(#[server(default)] csrf: String, id: String) -> Result<(), AppError> {
    use self::ssr::*;
    use crate::server::*;
    respond(transition(csrf, id, Step::Pause).await)
}

#[server(prefix = "/_sf", endpoint = "campaign_resume")]
pub async fn campaign_resume(#[server(default)] csrf: String, id: String) -> Result<(), AppError> {
    use self::ssr::*;
    use crate::server::*;
    respond(transition(csrf, id, Step::Resume).await)
}

#[server(prefix = "/_sf", endpoint = "campaign_cancel")]
pub async fn campaign_cancel(#[server(default)] csrf: String, id: String) -> Result<(), AppError> {
    use self::ssr::*;
    use crate::server::*;
    respond(transition(csrf, id, Step::Cancel).await)
}
