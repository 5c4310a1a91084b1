//! A message's receipt: one document with everything that justified its
//! send, for the API (`GET /api/v1/messages/{id}/receipt`) and the
//! console's printable page.
//!
//! - the message (what went, to whom, from which origin, in which state);
//! - the consent in force when it was accepted, with its evidence and the
//!   consent text agreed to ([`consent::consent_at`]), or why none was
//!   needed (a reply to the person's own keyword, a reply inside the
//!   window: conversational consent, as the gate's verdict says);
//! - the human authorization: a campaign's approval, an automation's
//!   approver, the staff member who replied;
//! - every gate evaluation, the provider's answers and the status reports,
//!   in time order;
//! - for each chained row it cites (audit rows, the consent, the approval,
//!   a suppression), its entries in the audit chain and whether the row
//!   still matches them now ([`chain::position`]).
//!
//! It only reads. It carries no secret: no key hash, no confirmation token.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::access::authz;
use crate::audit::chain::{self, ChainState, Position, Stream};
use crate::compliance::gates::{GateVerdict, Verdict};
use crate::compliance::message_source::MessageSource;
use crate::compliance::message_state::MessageState;
use crate::consent;
use crate::entities::{
    api_key, automation, campaign, campaign_approval, consent as consent_row, consent_text,
    message_status_event, outbound_message, staff_user, suppression, template, tool_call,
};
use crate::Core;

/// Everything that justified one message's send.
#[derive(Debug, Clone, Serialize)]
pub struct Receipt {
    pub generated_at: DateTime<Utc>,
    pub message: MessageFacts,
    pub consent: ConsentInForce,
    pub authorization: HumanAuthorization,
    /// Every gate evaluation (at acceptance, in the worker), in time order.
    pub evaluations: Vec<Evaluation>,
    /// The provider's answers to each send attempt, in time order.
    pub provider_answers: Vec<ProviderAnswer>,
    /// The status reports (callbacks), in time order.
    pub status_events: Vec<StatusEvent>,
    /// Suppressions on the channel in force when it was accepted.
    pub suppressions: Vec<SuppressionInForce>,
    /// Every chained row cited: intact when all are, changed when any is.
    pub chain: ChainState,
}

#[derive(Debug, Clone, Serialize)]
pub struct MessageFacts {
    pub id: String,
    pub channel: String,
    pub to: String,
    pub contact_id: Option<String>,
    pub source: MessageSource,
    /// The purpose the consent gate checked it for (`purposes.name`).
    pub purpose: Option<String>,
    pub kind: String,
    /// The template sent, or none for free-form text.
    pub template: Option<TemplateRef>,
    pub free_form: bool,
    /// The text as sent (free-form; a template's text is the provider's,
    /// filled with `variables`); none once retention cleared it.
    pub text: Option<String>,
    /// SHA-256 (hex) of the text as sent, while it is kept.
    pub text_sha256: Option<String>,
    /// A template's variables as sent; empty once retention cleared them.
    pub variables: std::collections::BTreeMap<String, String>,
    /// Retention cleared the content (the text, or a template's variables).
    pub content_cleared: bool,
    pub media_url: Option<String>,
    pub state: MessageState,
    pub block_reason: Option<String>,
    pub provider: Option<String>,
    pub provider_sid: Option<String>,
    pub error_code: Option<i32>,
    pub error_message: Option<String>,
    pub part_index: Option<i32>,
    pub part_count: Option<i32>,
    pub fallback_of: Option<String>,
    /// When it was accepted (written, then evaluated).
    pub accepted_at: DateTime<Utc>,
    pub queued_at: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub read_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TemplateRef {
    pub name: String,
    pub id: Option<String>,
    pub language: Option<String>,
    pub category: Option<String>,
    /// The template's provider id (Content SID, Meta name).
    pub provider_id: Option<String>,
}

/// The consent in force when the message was accepted.
#[derive(Debug, Clone, Serialize)]
pub struct ConsentInForce {
    /// The record, when there was one.
    pub record: Option<ConsentRecord>,
    /// In words: which consent, or why there was none and whether one was
    /// needed.
    pub summary: String,
    /// What the consent gate said at acceptance.
    pub gate_detail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsentRecord {
    pub id: String,
    pub channel: String,
    /// The purpose it covers; none: recorded before purposes (it covers
    /// the purposes that existed then).
    pub purpose: Option<String>,
    /// Its status now (a revocation after the send shows here, with its time).
    pub status_now: String,
    pub source: String,
    pub strength: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub page_url: Option<String>,
    pub form_id: Option<String>,
    pub qr_code: Option<String>,
    pub inbound_message_id: Option<String>,
    pub captured_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revocation_source: Option<String>,
    pub recorded_by: String,
    pub consent_text_version: Option<String>,
    pub consent_text_hash: Option<String>,
    pub consent_text: Option<String>,
    /// The form's registered consent text with that hash, when the consent
    /// came from a form.
    pub registered_text: Option<RegisteredText>,
    pub chain: Position,
}

#[derive(Debug, Clone, Serialize)]
pub struct RegisteredText {
    pub id: String,
    pub form_id: String,
    pub channel: String,
    pub version: i32,
    pub hash: String,
    pub text: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// A staff member as a receipt names them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StaffRef {
    pub id: String,
    /// None when the account no longer exists.
    pub email: Option<String>,
    pub name: Option<String>,
}

/// The human decision behind the message.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HumanAuthorization {
    /// A campaign approved by someone other than its authors.
    Campaign {
        campaign_id: String,
        campaign_name: Option<String>,
        authors: Vec<StaffRef>,
        approved_by: Option<StaffRef>,
        approved_at: Option<DateTime<Utc>>,
        /// What the approval binds to (`campaigns::ContentSnapshot::hash`).
        approved_content_hash: Option<String>,
        /// The approved template's digest (in the approved snapshot).
        approved_template_digest: Option<String>,
        /// The approval row in force when the message was accepted.
        approval: Option<Box<Approval>>,
    },
    /// An API key, a reminder or a schedule: the automation behind the key.
    Automation {
        api_key_id: Option<String>,
        api_key_name: String,
        reminder_id: Option<String>,
        automations: Vec<AutomationRef>,
    },
    /// A staff member's own reply in the inbox.
    Staff { staff: StaffRef },
    /// The SMS fallback of another message: that message's authorization.
    Fallback {
        of: String,
        original: Option<Box<HumanAuthorization>>,
    },
    /// Sent by Heimdall itself (a reply to a keyword, an opt-in
    /// confirmation); no human decision is needed.
    System { why: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct Approval {
    pub id: String,
    pub by: StaffRef,
    pub decision: String,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
    pub chain: Position,
}

#[derive(Debug, Clone, Serialize)]
pub struct AutomationRef {
    pub id: String,
    pub name: String,
    pub status: String,
    pub created_by: String,
    pub approved_by: Option<String>,
    pub approved_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub id: String,
    pub at: DateTime<Utc>,
    /// `accept` or `worker`.
    pub stage: String,
    pub decision: String,
    pub reason_code: Option<String>,
    pub actor: String,
    pub detail: Option<String>,
    pub verdicts: Vec<GateVerdictRow>,
    pub chain: Position,
}

#[derive(Debug, Clone, Serialize)]
pub struct GateVerdictRow {
    pub gate: String,
    /// `pass`, `not_applicable`, `block`, `defer`.
    pub verdict: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProviderAnswer {
    pub id: String,
    pub at: DateTime<Utc>,
    pub ok: bool,
    pub provider: Option<String>,
    /// The provider's message id, or its error text.
    pub answer: Option<String>,
    pub error_code: Option<i32>,
    pub chain: Position,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusEvent {
    pub at: DateTime<Utc>,
    pub status: String,
    pub error_code: Option<i32>,
    pub source: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SuppressionInForce {
    pub id: String,
    pub channel: String,
    pub scope: String,
    pub reason: String,
    pub source_ref: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub lifted_at: Option<DateTime<Utc>>,
    pub chain: Position,
}

/// The receipt of message `id`; none when no message has that id.
pub async fn receipt(core: &Core, id: &str) -> Result<Option<Receipt>, DbErr> {
    let db = &core.db.conn;
    let Some(m) = outbound_message::Entity::find_by_id(id).one(db).await? else {
        return Ok(None);
    };
    let calls = tool_call::Entity::find()
        .filter(tool_call::Column::MessageId.eq(id))
        .order_by_asc(tool_call::Column::CreatedAt)
        .order_by_asc(tool_call::Column::Id)
        .all(db)
        .await?;
    let mut evaluations = Vec::new();
    let mut provider_answers = Vec::new();
    for t in calls {
        let chain = chain::position(db, Stream::ToolCalls, &t.id).await?;
        if t.kind == "send_attempt" {
            let (provider, answer) = match t.detail.as_deref().map(|d| d.split_once(": ")) {
                Some(Some((p, a))) => (Some(p.to_string()), Some(a.to_string())),
                _ => (None, t.detail.clone()),
            };
            provider_answers.push(ProviderAnswer {
                id: t.id,
                at: t.created_at,
                ok: t.result_ok,
                provider,
                answer,
                error_code: t.error_code,
                chain,
            });
        } else {
            evaluations.push(Evaluation {
                verdicts: verdict_rows(&t.verdicts),
                id: t.id,
                at: t.created_at,
                stage: t.stage,
                decision: t.decision,
                reason_code: t.reason_code,
                actor: t.actor,
                detail: t.detail,
                chain,
            });
        }
    }
    let status_events = message_status_event::Entity::find()
        .filter(message_status_event::Column::MessageId.eq(id))
        .order_by_asc(message_status_event::Column::OccurredAt)
        .order_by_asc(message_status_event::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(|e| StatusEvent {
            at: e.occurred_at,
            status: e.status,
            error_code: e.error_code,
            source: e.source,
        })
        .collect();
    let gate_detail = evaluations
        .iter()
        .find(|e| e.stage == "accept")
        .and_then(|e| e.verdicts.iter().find(|v| v.gate == "no_consent"))
        .map(|v| v.detail.clone());
    let consent = consent_in_force(db, &m, gate_detail).await?;
    let suppressions = suppressions_at(db, &m).await?;
    let authorization = authorization(db, &m, 0).await?;
    let message = message_facts(db, m).await?;
    let mut states: Vec<ChainState> = evaluations
        .iter()
        .map(|e| e.chain.state)
        .chain(provider_answers.iter().map(|p| p.chain.state))
        .chain(consent.record.iter().map(|c| c.chain.state))
        .chain(suppressions.iter().map(|s| s.chain.state))
        .collect();
    if let HumanAuthorization::Campaign {
        approval: Some(a), ..
    } = &authorization
    {
        states.push(a.chain.state);
    }
    Ok(Some(Receipt {
        generated_at: core.now(),
        message,
        consent,
        authorization,
        evaluations,
        provider_answers,
        status_events,
        suppressions,
        chain: overall(&states),
    }))
}

/// Changed when any row is, else not chained yet when any row is not, else intact.
fn overall(states: &[ChainState]) -> ChainState {
    if states.contains(&ChainState::ChangedSinceChained) {
        ChainState::ChangedSinceChained
    } else if states.contains(&ChainState::NotChainedYet) {
        ChainState::NotChainedYet
    } else {
        ChainState::Intact
    }
}

fn verdict_rows(stored: &str) -> Vec<GateVerdictRow> {
    serde_json::from_str::<Vec<GateVerdict>>(stored)
        .unwrap_or_default()
        .into_iter()
        .map(|v| {
            let (verdict, detail) = match v.verdict {
                Verdict::Pass { detail } => ("pass", detail),
                Verdict::NotApplicable { detail } => ("not_applicable", detail),
                Verdict::Block { detail } => ("block", detail),
                Verdict::Defer { detail, until } => {
                    ("defer", format!("{detail} (until {})", until.to_rfc3339()))
                }
            };
            GateVerdictRow {
                gate: v.gate.code().to_string(),
                verdict: verdict.into(),
                detail,
            }
        })
        .collect()
}

async fn message_facts(
    db: &impl ConnectionTrait,
    m: outbound_message::Model,
) -> Result<MessageFacts, DbErr> {
    let mut template_has_variables = false;
    let template = match &m.template_name {
        Some(name) => {
            let t = match &m.template_id {
                Some(tid) => template::Entity::find_by_id(tid.as_str()).one(db).await?,
                None => None,
            };
            template_has_variables = t.as_ref().is_some_and(|t| {
                serde_json::from_str::<Vec<String>>(&t.variables).is_ok_and(|v| !v.is_empty())
            });
            Some(TemplateRef {
                name: name.clone(),
                id: m.template_id.clone(),
                language: t.as_ref().map(|t| t.language.clone()),
                category: t.as_ref().map(|t| t.category.clone()),
                provider_id: t.and_then(|t| t.provider_id),
            })
        }
        None => None,
    };
    let text_sha256 = m
        .body
        .as_deref()
        .map(|b| hex::encode(Sha256::digest(b.as_bytes())));
    let variables: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&m.variables).unwrap_or_default();
    let content_cleared = match &template {
        Some(_) => template_has_variables && variables.is_empty(),
        None => m.body.is_none() && m.media_url.is_none() && m.interactive.is_none(),
    };
    Ok(MessageFacts {
        purpose: m.purpose.clone(),
        free_form: template.is_none(),
        template,
        variables,
        content_cleared,
        text_sha256,
        text: m.body,
        id: m.id,
        channel: m.channel,
        to: m.to_address,
        contact_id: m.contact_id,
        source: m.source,
        kind: m.kind,
        media_url: m.media_url,
        state: m.state,
        block_reason: m.block_reason,
        provider: m.provider,
        provider_sid: m.provider_sid,
        error_code: m.error_code,
        error_message: m.error_message,
        part_index: m.part_index,
        part_count: m.part_count,
        fallback_of: m.fallback_of,
        accepted_at: m.created_at,
        queued_at: m.queued_at,
        sent_at: m.sent_at,
        delivered_at: m.delivered_at,
        read_at: m.read_at,
        failed_at: m.failed_at,
    })
}

async fn consent_in_force(
    db: &impl ConnectionTrait,
    m: &outbound_message::Model,
    gate_detail: Option<String>,
) -> Result<ConsentInForce, DbErr> {
    let found = match &m.contact_id {
        Some(contact) => {
            // The consent for the purpose the gate checked the message for.
            let purpose = match m.purpose.as_deref() {
                Some(name) => consent::purposes::find(db, name).await?,
                None => None,
            };
            consent::consent_at(db, contact, &m.channel, purpose.as_ref(), m.created_at).await?
        }
        None => None,
    };
    let conversational = gate_detail
        .as_deref()
        .is_some_and(|d| d.contains("conversational consent"));
    let summary = match (&found, m.source) {
        (_, MessageSource::Compliance) => {
            "none needed: a reply to the person's own keyword".to_string()
        }
        (_, _) if conversational => format!(
            "conversational consent: a reply inside the 24-hour window to a person who wrote first{}",
            if found.is_some() {
                " (the recorded consent below was also on file)"
            } else {
                "; no opt-in was on file"
            }
        ),
        (Some(c), _) => format!(
            "the {} consent recorded {} via {}, the latest on file when the message was accepted",
            c.channel,
            c.captured_at.format("%Y-%m-%d %H:%M UTC"),
            c.source
        ),
        (None, _) => format!(
            "none: no {} consent was on file for this person when the message was accepted",
            m.channel
        ),
    };
    let record = match found {
        Some(c) => Some(consent_record(db, c).await?),
        None => None,
    };
    Ok(ConsentInForce {
        record,
        summary,
        gate_detail,
    })
}

async fn consent_record(
    db: &impl ConnectionTrait,
    c: consent_row::Model,
) -> Result<ConsentRecord, DbErr> {
    let registered_text = match (&c.form_id, &c.consent_text_hash) {
        (Some(form), Some(hash)) => consent_text::Entity::find()
            .filter(consent_text::Column::FormId.eq(form.as_str()))
            .filter(consent_text::Column::Channel.eq(c.channel.as_str()))
            .filter(consent_text::Column::Hash.eq(hash.as_str()))
            .order_by_desc(consent_text::Column::Version)
            .one(db)
            .await?
            .map(|t| RegisteredText {
                id: t.id,
                form_id: t.form_id,
                channel: t.channel,
                version: t.version,
                hash: t.hash,
                text: t.text,
                created_by: t.created_by,
                created_at: t.created_at,
            }),
        _ => None,
    };
    let chain = chain::position(db, Stream::Consents, &c.id).await?;
    Ok(ConsentRecord {
        status_now: consent::consent_status(&c).as_str().to_string(),
        id: c.id,
        channel: c.channel,
        purpose: c.purpose,
        source: c.source,
        strength: c.strength,
        ip: c.ip,
        user_agent: c.user_agent,
        page_url: c.page_url,
        form_id: c.form_id,
        qr_code: c.qr_code,
        inbound_message_id: c.inbound_message_id,
        captured_at: c.captured_at,
        recorded_at: c.created_at,
        confirmed_at: c.confirmed_at,
        revoked_at: c.revoked_at,
        revocation_source: c.revocation_source,
        recorded_by: c.recorded_by,
        consent_text_version: c.consent_text_version,
        consent_text_hash: c.consent_text_hash,
        consent_text: c.consent_text,
        registered_text,
        chain,
    })
}

/// Suppressions covering the channel that were in force at acceptance.
async fn suppressions_at(
    db: &impl ConnectionTrait,
    m: &outbound_message::Model,
) -> Result<Vec<SuppressionInForce>, DbErr> {
    let Some(contact) = &m.contact_id else {
        return Ok(vec![]);
    };
    let at = m.created_at;
    let rows = suppression::Entity::find()
        .filter(suppression::Column::ContactId.eq(contact.as_str()))
        .filter(suppression::Column::Channel.is_in([m.channel.as_str(), "all"]))
        .filter(suppression::Column::CreatedAt.lte(at))
        .order_by_asc(suppression::Column::CreatedAt)
        .order_by_asc(suppression::Column::Id)
        .all(db)
        .await?;
    let mut out = Vec::new();
    for s in rows
        .into_iter()
        .filter(|s| s.lifted_at.is_none_or(|l| l > at))
    {
        out.push(SuppressionInForce {
            chain: chain::position(db, Stream::Suppressions, &s.id).await?,
            id: s.id,
            channel: s.channel,
            scope: s.scope,
            reason: s.reason,
            source_ref: s.source_ref,
            created_by: s.created_by,
            created_at: s.created_at,
            lifted_at: s.lifted_at,
        });
    }
    Ok(out)
}

async fn staff_ref(db: &impl ConnectionTrait, id: &str) -> Result<StaffRef, DbErr> {
    let u = staff_user::Entity::find_by_id(id).one(db).await?;
    Ok(StaffRef {
        id: id.to_string(),
        email: u.as_ref().map(|u| u.email.clone()),
        name: u.and_then(|u| u.name),
    })
}

/// The human decision behind `m`; `depth` bounds a fallback's look at its
/// original (a fallback's original is never itself a fallback, but a row
/// changed by hand must not send this into a loop).
fn authorization<'a>(
    db: &'a impl ConnectionTrait,
    m: &'a outbound_message::Model,
    depth: u8,
) -> futures::future::BoxFuture<'a, Result<HumanAuthorization, DbErr>> {
    Box::pin(async move {
        Ok(match m.source {
            MessageSource::Campaign => campaign_authorization(db, m).await?,
            MessageSource::Api | MessageSource::Reminder | MessageSource::Schedule => {
                automation_authorization(db, m).await?
            }
            MessageSource::Inbox => HumanAuthorization::Staff {
                staff: staff_ref(db, m.actor.strip_prefix("staff:").unwrap_or(&m.actor)).await?,
            },
            MessageSource::Fallback => {
                let of = m.fallback_of.clone().unwrap_or_default();
                let original = match outbound_message::Entity::find_by_id(of.as_str())
                    .one(db)
                    .await?
                {
                    Some(o) if depth == 0 => Some(Box::new(authorization(db, &o, 1).await?)),
                    _ => None,
                };
                HumanAuthorization::Fallback { of, original }
            }
            MessageSource::Compliance => HumanAuthorization::System {
                why: "Heimdall's fixed reply to the person's own keyword (STOP, HELP...)".into(),
            },
            MessageSource::Optin => HumanAuthorization::System {
                why: "the confirmation request of a double opt-in the person asked for".into(),
            },
        })
    })
}

async fn campaign_authorization(
    db: &impl ConnectionTrait,
    m: &outbound_message::Model,
) -> Result<HumanAuthorization, DbErr> {
    let campaign_id = m.campaign_id.clone().unwrap_or_default();
    let c = campaign::Entity::find_by_id(campaign_id.as_str())
        .one(db)
        .await?;
    let approval = campaign_approval::Entity::find()
        .filter(campaign_approval::Column::CampaignId.eq(campaign_id.as_str()))
        .filter(campaign_approval::Column::Decision.eq("approved"))
        .filter(campaign_approval::Column::CreatedAt.lte(m.created_at))
        .order_by_desc(campaign_approval::Column::CreatedAt)
        .order_by_desc(campaign_approval::Column::Id)
        .one(db)
        .await?;
    let approval = match approval {
        Some(a) => Some(Box::new(Approval {
            by: staff_ref(db, &a.actor_id).await?,
            chain: chain::position(db, Stream::CampaignApprovals, &a.id).await?,
            id: a.id,
            decision: a.decision,
            reason: a.reason,
            at: a.created_at,
        })),
        None => None,
    };
    let Some(c) = c else {
        return Ok(HumanAuthorization::Campaign {
            campaign_id,
            campaign_name: None,
            authors: vec![],
            approved_by: None,
            approved_at: None,
            approved_content_hash: None,
            approved_template_digest: None,
            approval,
        });
    };
    let mut authors = Vec::new();
    for a in authz::campaign_authors(&c) {
        authors.push(staff_ref(db, &a).await?);
    }
    let approved_by = match &c.approved_by {
        Some(a) => Some(staff_ref(db, a).await?),
        None => None,
    };
    let approved_template_digest = c
        .approved_snapshot
        .as_deref()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        .and_then(|v| v["template_digest"].as_str().map(str::to_string));
    Ok(HumanAuthorization::Campaign {
        campaign_id,
        campaign_name: Some(c.name),
        authors,
        approved_by,
        approved_at: c.approved_at,
        approved_content_hash: c.approved_hash,
        approved_template_digest,
        approval,
    })
}

async fn automation_authorization(
    db: &impl ConnectionTrait,
    m: &outbound_message::Model,
) -> Result<HumanAuthorization, DbErr> {
    let key_id = m.automation_id.clone().filter(|k| k != "bootstrap");
    let Some(key_id) = key_id else {
        return Ok(HumanAuthorization::Automation {
            api_key_id: None,
            api_key_name: "bootstrap key (HEIMDALL_API_KEY), set by the operator".into(),
            reminder_id: m.reminder_id.clone(),
            automations: vec![],
        });
    };
    let name = api_key::Entity::find_by_id(key_id.as_str())
        .one(db)
        .await?
        .map(|k| k.name)
        .unwrap_or_else(|| "(a key since deleted)".into());
    let automations = automation::Entity::find()
        .filter(automation::Column::ApiKeyId.eq(key_id.as_str()))
        .order_by_asc(automation::Column::CreatedAt)
        .all(db)
        .await?
        .into_iter()
        .map(|a| AutomationRef {
            id: a.id,
            name: a.name,
            status: a.status,
            created_by: a.created_by,
            approved_by: a.approved_by,
            approved_at: a.approved_at,
        })
        .collect();
    Ok(HumanAuthorization::Automation {
        api_key_id: Some(key_id),
        api_key_name: name,
        reminder_id: m.reminder_id.clone(),
        automations,
    })
}
