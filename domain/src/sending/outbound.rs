//! The send path: accept a message (write it, evaluate the gates, audit,
//! enqueue), send it from a worker (claim, evaluate again, wait for the
//! limits, call the provider, record), and move it forward on status
//! reports, classifying failures with the one error table.
//!
//! Every outbound message from every source comes through [`accept`]; no
//! other code calls a provider to send a message.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TryIntoModel,
};
use serde::{Deserialize, Serialize};

use crate::access::accounts::{Role, StaffUser};
use crate::access::authz::{self, ApiPrincipal};
use crate::alerts::{self, Alert};
use crate::audit::{self, Stage};
use crate::channel::Channel;
use crate::channels::formatting::{self, Destination, TextFormat};
use crate::channels::interactive::Interactive;
use crate::channels::{Content, OutboundRequest};
use crate::clock::new_id;
use crate::compliance::gates::{
    self, Authorization, ConsentFact, Decision, GateDecision, LoadedFacts, MessageContent,
    MessageFacts, Policy, Purpose, SuppressionFact, TierFact,
};
use crate::compliance::message_state::{MessageState, ProviderStatus};
use crate::compliance::provider_errors::{self, ErrorAction, ErrorClass, ProviderFailure};
use crate::contacts;
use crate::entities::{campaign, message_status_event, outbound_message, staff_user};
use crate::phone::PhoneNumber;
use crate::sending::facts::{self, ContactKey, FactRows};
use crate::sending::limits::TierReservation;
use crate::sending::state::moving;
use crate::store::message_writes::{EvaluationUpdate, RowWrite, SentUpdate};
use crate::templates::{self, Template};
use crate::Core;

/// Who the message is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    Contact(String),
    Phone(String),
}

/// What to send, as the caller asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestedContent {
    Template {
        name: String,
        variables: BTreeMap<String, String>,
    },
    /// Free-form text: converted for the channel (unless `format` says it already is) and
    /// sent in as many parts as the channel's limit takes ([`formatting::prepare`]).
    Text {
        body: String,
        media_url: Option<String>,
        format: TextFormat,
        /// The person's inbound message this text answers (Heimdall's id or the
        /// provider's): quoted on WhatsApp through Meta (reply context). Must be a
        /// message from the recipient.
        reply_to: Option<String>,
    },
    /// Quick-reply buttons or a list: WhatsApp only, and session content (the gates let it
    /// go only inside the 24-hour window, as free-form text).
    Interactive {
        content: Interactive,
        /// As for text: the person's message this answers.
        reply_to: Option<String>,
    },
}

/// Who stands behind the message.
#[derive(Debug, Clone)]
pub enum Origin {
    /// The internal API, a reminder or a schedule, under an API key.
    Automation {
        principal: ApiPrincipal,
        /// `api`, `reminder` or `schedule`.
        source: &'static str,
        reminder_id: Option<String>,
    },
    Campaign {
        campaign_id: String,
    },
    Inbox {
        staff: StaffUser,
    },
    Fallback {
        of: String,
    },
    ComplianceReply,
    OptInConfirmation,
    /// The same message again, after its sender was paused by a fault of
    /// ours and an admin re-activated it: the original's origin columns,
    /// so the same human decision stands behind it (and the gates judge
    /// it afresh: a STOP since then blocks it).
    Resend {
        original: Box<outbound_message::Model>,
    },
}

#[derive(Debug, Clone)]
pub struct SendRequest {
    pub recipient: Recipient,
    pub channel: Channel,
    pub content: RequestedContent,
    pub origin: Origin,
    /// A caller's key: a second request with the same key returns the first
    /// message instead of sending again.
    pub idempotency_key: Option<String>,
}

/// What happened to an accepted message.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The message, or the first part of a text sent in parts.
    pub message_id: String,
    /// Every part's id in sending order (just `message_id` for a message in one part).
    pub parts: Vec<String>,
    pub state: MessageState,
    pub decision: GateDecision,
    /// True when an earlier message with the same idempotency key was returned.
    pub duplicate: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("{0}")]
    BadRequest(String),
    #[error("no contact with id {0}")]
    ContactNotFound(String),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

const STATUS_PATH: &str = "/webhooks/twilio/status";

/// What a message's origin puts in its row.
struct OriginColumns {
    source: &'static str,
    campaign_id: Option<String>,
    /// The API key behind an automation (`bootstrap` for the settings key).
    automation_id: Option<String>,
    reminder_id: Option<String>,
    fallback_of: Option<String>,
    actor: String,
}

fn origin_columns(origin: &Origin) -> OriginColumns {
    let base = |source, actor: String| OriginColumns {
        source,
        campaign_id: None,
        automation_id: None,
        reminder_id: None,
        fallback_of: None,
        actor,
    };
    match origin {
        Origin::Automation {
            principal,
            source,
            reminder_id,
        } => OriginColumns {
            automation_id: Some(
                principal
                    .key_id
                    .clone()
                    .unwrap_or_else(|| "bootstrap".into()),
            ),
            reminder_id: reminder_id.clone(),
            ..base(source, principal.actor())
        },
        Origin::Campaign { campaign_id } => OriginColumns {
            campaign_id: Some(campaign_id.clone()),
            ..base("campaign", format!("campaign:{campaign_id}"))
        },
        Origin::Inbox { staff } => base("inbox", format!("staff:{}", staff.id)),
        Origin::Fallback { of } => OriginColumns {
            fallback_of: Some(of.clone()),
            ..base("fallback", "system:fallback".into())
        },
        Origin::ComplianceReply => base("compliance", "system:keyword".into()),
        Origin::OptInConfirmation => base("optin", "system:optin".into()),
        Origin::Resend { original } => OriginColumns {
            source: known_source(&original.source),
            campaign_id: original.campaign_id.clone(),
            automation_id: original.automation_id.clone(),
            reminder_id: original.reminder_id.clone(),
            fallback_of: original.fallback_of.clone(),
            actor: original.actor.clone(),
        },
    }
}

/// A stored message's source as one of the names [`origin_columns`] writes.
fn known_source(s: &str) -> &'static str {
    [
        "campaign",
        "inbox",
        "fallback",
        "compliance",
        "optin",
        "reminder",
        "schedule",
        "api",
    ]
    .into_iter()
    .find(|k| *k == s)
    .unwrap_or("api")
}

/// Accept a message: write it, evaluate the gates, write the audit row and
/// the resulting state, and enqueue it when it passed (or was deferred).
pub async fn accept(core: &Core, req: SendRequest) -> Result<Outcome, AcceptError> {
    if let Some(existing) = by_idempotency_key(core, req.idempotency_key.as_deref()).await? {
        return Ok(existing);
    }
    let (kind, template_name, variables, parts, media_url) = match &req.content {
        RequestedContent::Template { name, variables } => {
            let name = name.trim().to_lowercase();
            if name.is_empty() {
                return Err(AcceptError::BadRequest(
                    "template_name must not be empty".into(),
                ));
            }
            ("template", Some(name), variables.clone(), vec![], None)
        }
        RequestedContent::Text {
            body,
            media_url,
            format,
            ..
        } => {
            if formatting::whatsapp_len(body) > MAX_TEXT_CHARS {
                return Err(AcceptError::BadRequest(format!(
                    "the message text is too long: at most {MAX_TEXT_CHARS} characters"
                )));
            }
            let destination = destination(core, req.channel);
            if let Some(link) = media_url {
                if destination == Destination::WhatsAppMeta
                    && !crate::channels::MediaKind::of_url(link).takes_caption()
                    && !body.trim().is_empty()
                {
                    return Err(AcceptError::BadRequest(
                        "WhatsApp shows no text with audio: send the text as a message of its own"
                            .into(),
                    ));
                }
            }
            let prepared = formatting::prepare(body, *format, destination, media_url.is_some());
            if prepared.text.trim().is_empty() && media_url.is_none() {
                return Err(AcceptError::BadRequest(
                    "the message text must not be empty".into(),
                ));
            }
            let mut parts: Vec<String> = prepared.parts.into_iter().map(|p| p.text).collect();
            if parts.is_empty() {
                // Media alone.
                parts.push(String::new());
            }
            ("freeform", None, BTreeMap::new(), parts, media_url.clone())
        }
        RequestedContent::Interactive { content, .. } => {
            if req.channel != Channel::WhatsApp {
                return Err(AcceptError::BadRequest(format!(
                    "quick replies and lists go by WhatsApp only, not {}: send text instead",
                    req.channel
                )));
            }
            (
                "interactive",
                None,
                BTreeMap::new(),
                vec![content.body().to_string()],
                None,
            )
        }
    };
    let source_text = match &req.content {
        RequestedContent::Text {
            body,
            format: TextFormat::Markdown,
            ..
        } => Some(body.clone()),
        _ => None,
    };
    let now = core.now();
    // Every row the gates read, in one statement keyed by the recipient.
    let parsed = match &req.recipient {
        Recipient::Contact(_) => None,
        Recipient::Phone(raw) => Some(PhoneNumber::parse(raw, core.settings.default_region)),
    };
    let key = match (&req.recipient, &parsed) {
        (Recipient::Contact(id), _) => ContactKey::Id(id),
        (_, Some(Ok(p))) => ContactKey::Phone(p.as_str()),
        _ => ContactKey::Nobody,
    };
    let rows = read_fact_rows(core, key, req.channel, template_name.as_deref()).await?;
    let to_address = match (&req.recipient, parsed) {
        (Recipient::Contact(id), _) => rows
            .contact
            .as_ref()
            .map(|c| c.phone_e164.clone())
            .ok_or_else(|| AcceptError::ContactNotFound(id.clone()))?,
        (_, Some(Ok(p))) => p.to_string(),
        // Recorded as given (bounded), refused by the invalid_number gate.
        (Recipient::Phone(raw), _) => raw.chars().take(64).collect(),
    };
    let contact_id = rows.contact.as_ref().map(|c| c.id.clone());
    let reply_to = match &req.content {
        RequestedContent::Text {
            reply_to: Some(inbound_id),
            ..
        }
        | RequestedContent::Interactive {
            reply_to: Some(inbound_id),
            ..
        } => Some(reply_context(core, inbound_id, contact_id.as_deref(), req.channel).await?),
        _ => None,
    };
    let interactive = match &req.content {
        RequestedContent::Interactive { content, .. } => Some(content.to_stored()),
        _ => None,
    };
    let template = rows.template.clone().map(Template::from);
    let OriginColumns {
        source,
        campaign_id,
        automation_id,
        reminder_id,
        fallback_of,
        actor,
    } = origin_columns(&req.origin);
    let mut message = outbound_message::Model {
        contact_id,
        channel: req.channel.as_str().into(),
        kind: kind.into(),
        template_id: template.as_ref().map(|t| t.id.clone()),
        template_name,
        variables: serde_json::to_string(&variables).unwrap_or_else(|_| "{}".into()),
        body: parts.first().filter(|b| !b.is_empty()).cloned(),
        media_url,
        source_text,
        source: source.into(),
        campaign_id,
        automation_id,
        reminder_id,
        actor: actor.clone(),
        fallback_of,
        idempotency_key: req.idempotency_key.clone(),
        reply_to,
        interactive,
        ..pending_message(new_id(), to_address, now)
    };
    let authorization = req.origin_authorization(core, template.as_ref()).await?;
    let (facts, loaded, _) =
        facts_from_rows(core, &core.db.conn, &message, rows, template, authorization).await?;
    let decision = gates::evaluate(&facts, &loaded, now, &policy(core));
    let outcome = EvaluationOutcome::of(Stage::Accept, &decision);
    message.state = outcome.state.as_str().into();
    message.block_reason = outcome.reason.map(str::to_string);
    message.defer_until = outcome.until;
    message.in_window = Some(gates::in_window(loaded.window_expires_at, now));
    if outcome.state == MessageState::Queued {
        message.queued_at = Some(now);
    }
    let messages = into_parts(message, parts);
    // The messages, in their evaluated states, and each one's audit row
    // are written together: there is no accepted message without its row.
    let evaluations = messages
        .iter()
        .map(|m| audit::evaluation_row(m, Stage::Accept, &decision, &actor, now).try_into_model())
        .collect::<Result<Vec<_>, _>>()?;
    let message = messages[0].clone();
    let part_ids: Vec<String> = messages.iter().map(|m| m.id.clone()).collect();
    let written = core
        .db
        .write_rows(RowWrite {
            messages,
            tool_calls: evaluations,
            ..Default::default()
        })
        .await;
    if let Err(e) = written {
        // A concurrent request with the same idempotency key won.
        return match by_idempotency_key(core, req.idempotency_key.as_deref()).await? {
            Some(existing) => Ok(existing),
            None => Err(e.into()),
        };
    }
    metrics::counter!("heimdall_messages_accepted_total", "source" => source).increment(1);
    outcome.enqueue(core, &message.id).await;
    let state = outcome.state;
    metrics::counter!("heimdall_gate_decisions_total", "stage" => "accept", "decision" => decision.decision.as_str(), "reason" => decision.decision.reason().map(|g| g.code()).unwrap_or("none")).increment(1);
    Ok(Outcome {
        message_id: message.id,
        parts: part_ids,
        state,
        decision,
        duplicate: false,
    })
}

/// The longest free-form text accepted (as [`formatting::whatsapp_len`] counts): four of
/// Meta's messages, eleven of Twilio's.
pub const MAX_TEXT_CHARS: usize = 4 * formatting::WHATSAPP_MAX_CHARS;

/// Where a free-form text on `channel` goes, for its formatting and its limit.
pub fn destination(core: &Core, channel: Channel) -> Destination {
    match (channel, core.settings.whatsapp_provider) {
        (Channel::Sms, _) => Destination::Sms,
        (Channel::WhatsApp, crate::settings::WhatsAppProvider::Meta) => Destination::WhatsAppMeta,
        (Channel::WhatsApp, _) => Destination::WhatsAppTwilio,
    }
}

/// The provider's id of the inbound message a reply quotes (named by Heimdall's id or the
/// provider's): it must be a message from the recipient on the channel the reply goes by
/// (a reply never quotes someone else's words).
async fn reply_context(
    core: &Core,
    inbound_id: &str,
    contact_id: Option<&str>,
    channel: Channel,
) -> Result<String, AcceptError> {
    use crate::entities::inbound_message;
    let inbound = inbound_message::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(inbound_message::Column::Id.eq(inbound_id))
                .add(inbound_message::Column::ProviderMessageId.eq(inbound_id)),
        )
        .one(&core.db.conn)
        .await?;
    match inbound {
        Some(m) if Some(m.contact_id.as_str()) == contact_id && m.channel == channel.as_str() => {
            Ok(m.provider_message_id)
        }
        _ => Err(AcceptError::BadRequest(format!(
            "reply_to: no {channel} message {inbound_id} from this person"
        ))),
    }
}

/// The evaluated first message as the rows of its parts: one for a message in one part;
/// otherwise each part its own message with its text, linked to the first and numbered,
/// the media and the idempotency key on the first only. Later parts are `held` (a worker
/// takes each once the one before has been handed to the provider) unless the gates
/// blocked the message, which blocks them all.
fn into_parts(first: outbound_message::Model, parts: Vec<String>) -> Vec<outbound_message::Model> {
    let count = parts.len();
    if count <= 1 {
        return vec![first];
    }
    let count32 = i32::try_from(count).unwrap_or(i32::MAX);
    let blocked = first.state == MessageState::Blocked.as_str();
    let mut out = Vec::with_capacity(count);
    for (i, text) in parts.into_iter().enumerate() {
        let index = i32::try_from(i + 1).unwrap_or(i32::MAX);
        let mut m = first.clone();
        if i > 0 {
            m.id = new_id();
            m.media_url = None;
            m.idempotency_key = None;
            m.source_text = None;
            m.reply_to = None;
            if !blocked {
                m.state = MessageState::Held.as_str().into();
                m.block_reason = None;
                m.defer_until = None;
                m.queued_at = None;
            }
        }
        m.body = Some(text);
        m.part_of = Some(first.id.clone());
        m.part_index = Some(index);
        m.part_count = Some(count32);
        out.push(m);
    }
    out
}

/// A message in state `pending` with nothing recorded yet; callers set
/// what they know with struct update syntax.
pub fn pending_message(
    id: String,
    to_address: String,
    now: DateTime<Utc>,
) -> outbound_message::Model {
    outbound_message::Model {
        id,
        contact_id: None,
        to_address,
        channel: Channel::WhatsApp.as_str().into(),
        kind: "template".into(),
        template_id: None,
        template_name: None,
        variables: "{}".into(),
        body: None,
        media_url: None,
        source: "api".into(),
        campaign_id: None,
        automation_id: None,
        reminder_id: None,
        actor: String::new(),
        state: MessageState::Pending.as_str().into(),
        block_reason: None,
        defer_until: None,
        provider: None,
        provider_sid: None,
        error_code: None,
        error_message: None,
        attempts: 0,
        price: None,
        price_unit: None,
        fallback_of: None,
        in_window: None,
        idempotency_key: None,
        created_at: now,
        updated_at: now,
        queued_at: None,
        sent_at: None,
        delivered_at: None,
        read_at: None,
        failed_at: None,
        part_of: None,
        part_index: None,
        part_count: None,
        source_text: None,
        reply_to: None,
        interactive: None,
    }
}

/// The outcome of the message already accepted under this idempotency key.
async fn by_idempotency_key(
    core: &Core,
    key: Option<&str>,
) -> Result<Option<Outcome>, AcceptError> {
    let Some(key) = key else {
        return Ok(None);
    };
    match outbound_message::Entity::find()
        .filter(outbound_message::Column::IdempotencyKey.eq(key))
        .one(&core.db.conn)
        .await?
    {
        Some(existing) => Ok(Some(existing_outcome(core, existing).await?)),
        None => Ok(None),
    }
}

impl SendRequest {
    /// The authorization known from the request itself (saves a lookup for
    /// the common cases; the worker rebuilds it from the stored row).
    async fn origin_authorization(
        &self,
        core: &Core,
        template: Option<&Template>,
    ) -> Result<Option<Authorization>, sea_orm::DbErr> {
        Ok(match &self.origin {
            Origin::Automation { principal, .. } => Some(
                authz::automation_authorization_for(
                    &core.db.conn,
                    &core.settings,
                    principal,
                    template,
                )
                .await?,
            ),
            Origin::Inbox { staff } => Some(Authorization::Staff {
                user: staff.email.clone(),
                may_reply: staff.active && staff.role.allows(Role::Operator),
            }),
            Origin::ComplianceReply | Origin::OptInConfirmation => Some(Authorization::System),
            Origin::Campaign { .. } | Origin::Fallback { .. } | Origin::Resend { .. } => None,
        })
    }
}

async fn existing_outcome(
    core: &Core,
    m: outbound_message::Model,
) -> Result<Outcome, sea_orm::DbErr> {
    let decision = latest_decision(&core.db.conn, &m.id)
        .await?
        .unwrap_or(GateDecision {
            decision: Decision::Pass,
            verdicts: vec![],
        });
    let parts = match &m.part_of {
        Some(first) => parts_of(&core.db.conn, first)
            .await?
            .into_iter()
            .map(|p| p.id)
            .collect(),
        None => vec![m.id.clone()],
    };
    Ok(Outcome {
        state: MessageState::parse(&m.state).unwrap_or(MessageState::Pending),
        message_id: m.id,
        parts,
        decision,
        duplicate: true,
    })
}

/// Every part of the text whose first part is `first`, in order.
pub async fn parts_of(
    db: &impl ConnectionTrait,
    first: &str,
) -> Result<Vec<outbound_message::Model>, sea_orm::DbErr> {
    outbound_message::Entity::find()
        .filter(outbound_message::Column::PartOf.eq(first))
        .order_by_asc(outbound_message::Column::PartIndex)
        .all(db)
        .await
}

/// The most recent gate evaluation of a message.
pub async fn latest_decision(
    db: &impl ConnectionTrait,
    message_id: &str,
) -> Result<Option<GateDecision>, sea_orm::DbErr> {
    use crate::entities::tool_call;
    let row = tool_call::Entity::find()
        .filter(tool_call::Column::MessageId.eq(message_id))
        .filter(tool_call::Column::Kind.eq("gate_evaluation"))
        .order_by_desc(tool_call::Column::CreatedAt)
        .order_by_desc(tool_call::Column::Id)
        .one(db)
        .await?;
    Ok(row.map(|r| decision_from_row(&r)))
}

pub fn decision_from_row(r: &crate::entities::tool_call::Model) -> GateDecision {
    let verdicts: Vec<gates::GateVerdict> = serde_json::from_str(&r.verdicts).unwrap_or_default();
    let reason = r.reason_code.as_deref().and_then(gates::Gate::parse);
    let decision = match (r.decision.as_str(), reason) {
        ("block", Some(reason)) => Decision::Block { reason },
        ("defer", Some(reason)) => Decision::Defer {
            reason,
            until: verdicts
                .iter()
                .find_map(|v| match &v.verdict {
                    gates::Verdict::Defer { until, .. } if v.gate == reason => Some(*until),
                    _ => None,
                })
                .unwrap_or(r.created_at),
        },
        _ => Decision::Pass,
    };
    GateDecision { decision, verdicts }
}

/// The gates' rules as every process sees them now.
pub fn policy(core: &Core) -> Policy {
    core.live.get().policy()
}

fn purpose_of(source: &str) -> Purpose {
    match source {
        "campaign" => Purpose::Campaign,
        "inbox" => Purpose::InboxReply,
        "fallback" => Purpose::Fallback,
        "compliance" => Purpose::ComplianceReply,
        "optin" => Purpose::OptInConfirmation,
        _ => Purpose::Automation,
    }
}

/// Rebuild the authorization behind a stored message.
fn authorization_for<'a>(
    core: &'a Core,
    db: &'a impl ConnectionTrait,
    m: &'a outbound_message::Model,
    template: Option<&'a Template>,
) -> futures::future::BoxFuture<'a, Result<Authorization, sea_orm::DbErr>> {
    Box::pin(async move {
        Ok(match m.source.as_str() {
            "campaign" => {
                let Some(cid) = &m.campaign_id else {
                    return Ok(Authorization::None {
                        why: "campaign message without a campaign".into(),
                    });
                };
                match campaign::Entity::find_by_id(cid.as_str()).one(db).await? {
                    Some(c) => crate::access::authz::campaign_authorization(&c),
                    None => Authorization::None {
                        why: format!("campaign {cid} does not exist"),
                    },
                }
            }
            "inbox" => {
                let user_id = m.actor.strip_prefix("staff:").unwrap_or_default();
                match staff_user::Entity::find_by_id(user_id).one(db).await? {
                    Some(u) => {
                        let user = StaffUser::from(u);
                        Authorization::Staff {
                            may_reply: user.active && user.role.allows(Role::Operator),
                            user: user.email,
                        }
                    }
                    None => Authorization::None {
                        why: "the staff member who wrote the reply no longer exists".into(),
                    },
                }
            }
            "compliance" | "optin" => Authorization::System,
            "fallback" => {
                let Some(of) = &m.fallback_of else {
                    return Ok(Authorization::None {
                        why: "fallback without an original message".into(),
                    });
                };
                match outbound_message::Entity::find_by_id(of.as_str())
                    .one(db)
                    .await?
                {
                    Some(original) if original.source != "fallback" => {
                        authorization_for(core, db, &original, None).await?
                    }
                    _ => Authorization::None {
                        why: "the original message of this fallback is missing".into(),
                    },
                }
            }
            _ => {
                let principal = match m.automation_id.as_deref() {
                    Some("bootstrap") | None => ApiPrincipal {
                        key_id: None,
                        name: "bootstrap".into(),
                    },
                    Some(id) => ApiPrincipal {
                        key_id: Some(id.to_string()),
                        name: String::new(),
                    },
                };
                if principal.key_id.is_none() && core.settings.api_key.is_none() {
                    Authorization::None {
                        why: "the bootstrap API key is no longer configured".into(),
                    }
                } else {
                    authz::automation_authorization_for(db, &core.settings, &principal, template)
                        .await?
                }
            }
        })
    })
}

/// What loading the facts found besides the facts themselves, so the send
/// path does not read it twice.
struct Loaded {
    template: Option<Template>,
    sender_rate: Option<i32>,
}

/// The rows the gates read for a message to `key` on `channel`, in one
/// statement: on PostgreSQL merged with concurrent callers' reads
/// ([`FactReads`]), on SQLite alone ([`facts::fact_rows`]).
async fn read_fact_rows(
    core: &Core,
    key: ContactKey<'_>,
    channel: Channel,
    template_name: Option<&str>,
) -> Result<FactRows, sea_orm::DbErr> {
    if let Some(pool) = core.db.postgres_pool() {
        let read = facts::FactRead::new(key, channel, template_name);
        return core.fact_reads.read(core, pool, read).await;
    }
    let sender = authz::sender_key(core, channel);
    facts::fact_rows(
        &core.db.conn,
        key,
        channel,
        template_name,
        sender.as_ref().map(|(k, a)| (*k, a.as_str())),
    )
    .await
}

/// [`read_fact_rows`] for a stored message.
async fn read_fact_rows_for(
    core: &Core,
    m: &outbound_message::Model,
) -> Result<FactRows, sea_orm::DbErr> {
    let channel: Channel = m.channel.parse().unwrap_or(Channel::WhatsApp);
    let key = m
        .contact_id
        .as_deref()
        .map_or(ContactKey::Nobody, ContactKey::Id);
    read_fact_rows(core, key, channel, m.template_name.as_deref()).await
}

/// Load every fact the gates need for a stored message.
async fn load_facts(
    core: &Core,
    db: &impl ConnectionTrait,
    m: &outbound_message::Model,
    template: Option<&Template>,
    authorization: Option<Authorization>,
) -> Result<(MessageFacts, LoadedFacts, Loaded), sea_orm::DbErr> {
    let mut rows = read_fact_rows_for(core, m).await?;
    let template = match template {
        Some(t) => Some(t.clone()),
        None => rows.template.take().map(Template::from),
    };
    facts_from_rows(core, db, m, rows, template, authorization).await
}

/// The gates' facts for a message from the rows read for it and its
/// template.
async fn facts_from_rows(
    core: &Core,
    db: &impl ConnectionTrait,
    m: &outbound_message::Model,
    rows: FactRows,
    template: Option<Template>,
    authorization: Option<Authorization>,
) -> Result<(MessageFacts, LoadedFacts, Loaded), sea_orm::DbErr> {
    let now = core.now();
    let channel: Channel = m.channel.parse().unwrap_or(Channel::WhatsApp);
    let recipient = PhoneNumber::parse_e164(&m.to_address).ok();
    let variables: BTreeMap<String, String> =
        serde_json::from_str(&m.variables).unwrap_or_default();
    let content = match &m.template_name {
        Some(name) if m.kind == "template" => MessageContent::Template {
            name: name.clone(),
            supplied: variables.keys().cloned().collect(),
        },
        _ => MessageContent::FreeForm,
    };
    let purpose = purpose_of(&m.source);
    let facts = MessageFacts {
        channel,
        raw_to: m.to_address.clone(),
        recipient: recipient.clone(),
        content: content.clone(),
        purpose,
    };
    let FactRows {
        contact,
        gate: state,
        sender: sender_row,
        ..
    } = rows;
    // (With no contact the statement found no consent, suppression or
    // window either.)
    let consent = state
        .consent_status()
        .zip(state.consent)
        .map(|(status, c)| ConsentFact {
            status,
            source: c.source,
            captured_at: c.captured_at,
        });
    let suppression = state.suppression.map(|s| SuppressionFact {
        reason: match s.source_ref {
            Some(r) => format!("{} {r}", s.reason),
            None => s.reason,
        },
        since: s.since,
        marketing_only: s.marketing_only,
    });
    let window_expires_at = state.window_expires_at;
    let authorization = match authorization {
        Some(a) => a,
        None => authorization_for(core, db, m, template.as_ref()).await?,
    };
    let (sender, sender_rate) = authz::sender_fact(
        authz::sender_key(core, channel).as_ref(),
        sender_row.as_ref(),
    );
    let time_zone = local_zones(
        core,
        contact.as_ref().and_then(|c| c.time_zone.as_deref()),
        recipient.as_ref(),
    );
    let business_initiated = channel == Channel::WhatsApp
        && matches!(content, MessageContent::Template { .. })
        && !gates::in_window(window_expires_at, now);
    let tier = match (&recipient, business_initiated) {
        (Some(r), true) => core.limits.tier_fact(r.as_str(), now).await,
        _ => TierFact {
            used: 0,
            limit: core.limits.tier_limit(),
            recipient_counted: false,
            next_free_at: None,
        },
    };
    Ok((
        facts,
        LoadedFacts {
            consent,
            suppression,
            window_expires_at,
            template: template.as_ref().map(|t| t.fact()),
            authorization,
            sender,
            time_zone,
            tier,
            recipient_next_at: None,
        },
        Loaded {
            template,
            sender_rate,
        },
    ))
}

/// A recipient's local time zone(s): the contact's own, else inferred from
/// the number, else the default setting.
pub fn local_zones(
    core: &Core,
    stored: Option<&str>,
    number: Option<&PhoneNumber>,
) -> gates::LocalZones {
    if let Some(tz) = stored.and_then(|tz| tz.parse().ok()) {
        return gates::LocalZones::Contact(tz);
    }
    match number.and_then(|n| crate::time_zones::for_e164(n.as_str())) {
        Some(z) => gates::LocalZones::Inferred {
            zones: z.zones(),
            prefix: z.prefix(),
        },
        None => gates::LocalZones::Default(core.settings.default_time_zone),
    }
}

/// The facts the gates would see for `m`, a message that is NOT stored (a
/// campaign review's dry run), loaded exactly as the send path loads them.
/// Reads only: no row is written and no limit is reserved.
pub async fn dry_run_facts(
    core: &Core,
    m: &outbound_message::Model,
    template: Option<&Template>,
    authorization: Authorization,
) -> Result<(MessageFacts, LoadedFacts), sea_orm::DbErr> {
    load_facts(core, &core.db.conn, m, template, Some(authorization))
        .await
        .map(|(f, l, _)| (f, l))
}

/// Write the evaluation's audit row and the state it leads to, and enqueue.
/// With `claim_due_by` the write is also the claim
/// ([`crate::store::db::Db::write_claiming`]): `None` when the message was no
/// longer waiting (another worker has it), and nothing was written.
#[allow(clippy::too_many_arguments)]
async fn finish_evaluation(
    core: &Core,
    m: &outbound_message::Model,
    stage: Stage,
    decision: &GateDecision,
    actor: &str,
    now: DateTime<Utc>,
    window: Option<DateTime<Utc>>,
    claim_due_by: Option<DateTime<Utc>>,
) -> Result<Option<MessageState>, sea_orm::DbErr> {
    let outcome = EvaluationOutcome::of(stage, decision);
    let (state, reason, until) = (outcome.state, outcome.reason, outcome.until);
    let update = EvaluationUpdate {
        id: m.id.clone(),
        state: state.as_str().into(),
        block_reason: reason.map(str::to_string),
        defer_until: until,
        in_window: gates::in_window(window, now),
        updated_at: now,
        queued_at: (state == MessageState::Queued).then_some(now),
        // The worker calls the provider next: count the attempt with this
        // write, so a crash during the call still shows it.
        attempts_inc: i32::from(state == MessageState::Sending),
        claim_due_by,
    };
    let rows = RowWrite {
        tool_calls: vec![audit::evaluation_row(m, stage, decision, actor, now).try_into_model()?],
        evaluations: vec![update],
        ..Default::default()
    };
    if claim_due_by.is_some() {
        if !core.db.write_claiming(rows).await? {
            return Ok(None);
        }
    } else {
        core.db.write_rows(rows).await?;
    }
    outcome.enqueue(core, &m.id).await;
    Ok(Some(state))
}

/// The state an evaluation leads to.
struct EvaluationOutcome {
    state: MessageState,
    reason: Option<&'static str>,
    until: Option<DateTime<Utc>>,
}

impl EvaluationOutcome {
    fn of(stage: Stage, decision: &GateDecision) -> Self {
        let (state, reason, until) = match decision.decision {
            Decision::Pass => (
                if stage == Stage::Worker {
                    MessageState::Sending
                } else {
                    MessageState::Queued
                },
                None,
                None,
            ),
            Decision::Block { reason } => (MessageState::Blocked, Some(reason.code()), None),
            Decision::Defer { reason, until } => {
                (MessageState::Deferred, Some(reason.code()), Some(until))
            }
        };
        EvaluationOutcome {
            state,
            reason,
            until,
        }
    }

    async fn enqueue(&self, core: &Core, id: &str) {
        match self.state {
            MessageState::Queued => enqueue(core, id, None).await,
            MessageState::Deferred => enqueue(core, id, self.until).await,
            _ => {}
        }
    }
}

async fn enqueue(core: &Core, id: &str, at: Option<DateTime<Utc>>) {
    // The message's state is the record: if the queue is down, housekeeping
    // re-enqueues waiting messages, so this failure is logged, not raised.
    if let Err(e) = core.queue.enqueue_send(id.to_string(), at).await {
        tracing::error!(message_id = %id, error = %e, "could not enqueue; housekeeping will retry");
    }
}

// ---------------------------------------------------------------------------
// The worker's side

/// What the worker did with one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendResult {
    /// Someone else has it or it is no longer waiting.
    NotClaimed,
    /// Not due yet; re-enqueued.
    NotDue,
    Blocked(gates::Gate),
    Deferred(gates::Gate),
    Sent {
        sid: String,
    },
    Failed {
        action: ErrorAction,
        code: Option<i64>,
    },
}

/// Send one message: the whole worker path.
pub async fn process_send(core: &Core, message_id: &str) -> Result<SendResult, sea_orm::DbErr> {
    let now = core.now();
    // Webhook events wait in the local spool (the database was away): one
    // of them may be a STOP, so hold sends until they are replayed.
    if crate::store::spool::spool_pending(core) {
        enqueue(core, message_id, Some(now + Duration::seconds(5))).await;
        return Ok(SendResult::NotDue);
    }
    // Exactly one worker takes a waiting, due message: a compare-and-set
    // on its state. PostgreSQL: read the message and its facts (one
    // statement shared with other workers' reads), and claim with the
    // evaluation's write. SQLite: claim, then read.
    let due_by = now + Duration::milliseconds(CLAIM_SLACK_MS);
    let (m, mut rows, claim_due_by) = match core.db.postgres_pool() {
        Some(pool) => match core.message_reads.read(core, pool, message_id).await? {
            Some((m, rows)) if claimable(&m, due_by) => (m, rows, Some(due_by)),
            Some((m, _)) => return Ok(not_claimed(core, &m, now).await),
            None => return Ok(SendResult::NotClaimed),
        },
        None => match claim_on_sqlite(core, message_id, now, due_by).await? {
            Some(m) => {
                let rows = read_fact_rows_for(core, &m).await?;
                (m, rows, None)
            }
            None => {
                return Ok(
                    match outbound_message::Entity::find_by_id(message_id)
                        .one(&core.db.conn)
                        .await?
                    {
                        Some(m) => not_claimed(core, &m, now).await,
                        None => SendResult::NotClaimed,
                    },
                )
            }
        },
    };
    let actor = "worker";
    let template = rows.template.take().map(Template::from);
    let (facts, mut loaded, extras) =
        facts_from_rows(core, &core.db.conn, &m, rows, template, None).await?;
    let mut decision = gates::evaluate(&facts, &loaded, now, &policy(core));
    if decision.decision == Decision::Pass {
        // Reserve the limits only for a message that may otherwise go, and
        // evaluate again if a reservation was refused, so the audit row
        // holds the final verdicts.
        if let Some(recipient) = &facts.recipient {
            if facts.channel == Channel::WhatsApp {
                if let Err(next) = core.limits.reserve_pace(recipient.as_str(), now).await {
                    loaded.recipient_next_at = Some(next);
                }
            }
            if loaded.recipient_next_at.is_none() && loaded.tier.limit.is_some() {
                let business_initiated = facts.channel == Channel::WhatsApp
                    && matches!(facts.content, MessageContent::Template { .. })
                    && !gates::in_window(loaded.window_expires_at, now);
                if business_initiated {
                    match core
                        .limits
                        .reserve_tier(&core.db, recipient.as_str(), &m.id, now)
                        .await?
                    {
                        TierReservation::Full(f) => loaded.tier = f,
                        TierReservation::Counted { used, newly } => {
                            if newly {
                                tier_threshold_alert(core, used).await;
                            }
                        }
                    }
                }
            }
        }
        decision = gates::evaluate(&facts, &loaded, now, &policy(core));
    }
    let Some(state) = finish_evaluation(
        core,
        &m,
        Stage::Worker,
        &decision,
        actor,
        now,
        loaded.window_expires_at,
        claim_due_by,
    )
    .await?
    else {
        // Another worker claimed it between the read and the write.
        return Ok(SendResult::NotClaimed);
    };
    metrics::counter!("heimdall_gate_decisions_total", "stage" => "worker", "decision" => decision.decision.as_str(), "reason" => decision.decision.reason().map(|g| g.code()).unwrap_or("none")).increment(1);
    match decision.decision {
        Decision::Block { reason } => return blocked(core, &m, reason, now).await,
        Decision::Defer { reason, .. } => return Ok(SendResult::Deferred(reason)),
        Decision::Pass => {}
    }
    debug_assert_eq!(state, MessageState::Sending);
    call_provider(core, &m, &facts, &loaded, extras).await
}

/// How late a deferred message may be claimed early.
const CLAIM_SLACK_MS: i64 = 500;

/// May a worker claim `m` now: waiting, not yet handed to a provider, and
/// due by `due_by`? (The claim's compare-and-set asks the same.)
fn claimable(m: &outbound_message::Model, due_by: DateTime<Utc>) -> bool {
    MessageState::parse(&m.state).is_some_and(MessageState::is_waiting)
        && m.provider_sid.is_none()
        && m.defer_until.is_none_or(|until| until <= due_by)
}

/// A message the worker did not claim: re-enqueued for its time if it is
/// still waiting but not yet due; otherwise gone, taken or finished.
async fn not_claimed(core: &Core, m: &outbound_message::Model, now: DateTime<Utc>) -> SendResult {
    match m.defer_until {
        Some(until) if until > now && claimable(m, until) => {
            enqueue(core, &m.id, Some(until)).await;
            SendResult::NotDue
        }
        _ => SendResult::NotClaimed,
    }
}

/// SQLite: claim a message (move it from waiting and due to `sending`, a
/// compare-and-set only one worker can win). `None` when nothing was
/// claimed.
async fn claim_on_sqlite(
    core: &Core,
    message_id: &str,
    now: DateTime<Utc>,
    due_by: DateTime<Utc>,
) -> Result<Option<outbound_message::Model>, sea_orm::DbErr> {
    let claim = moving(
        &[MessageState::Queued, MessageState::Deferred],
        MessageState::Sending,
    )
    .col_expr(outbound_message::Column::UpdatedAt, Expr::value(now))
    .filter(outbound_message::Column::Id.eq(message_id))
    .filter(outbound_message::Column::ProviderSid.is_null())
    .filter(
        sea_orm::Condition::any()
            .add(outbound_message::Column::DeferUntil.is_null())
            .add(outbound_message::Column::DeferUntil.lte(due_by)),
    );
    Ok(claim
        .exec_with_returning(&core.db.conn)
        .await?
        .into_iter()
        .next())
}

/// Each channel's sender (kind, address): the same for every merged
/// read of one [`Core`] (they come from its settings).
type Senders = Vec<(Channel, Option<(&'static str, String)>)>;

fn senders(core: &Core) -> Senders {
    [Channel::WhatsApp, Channel::Sms]
        .map(|c| (c, authz::sender_key(core, c)))
        .to_vec()
}

/// At most this many reads share one statement.
const MAX_BATCH: usize = 64;
/// Statements of one kind (workers' reads, acceptance reads) in flight
/// at once (one, for the reason and the figures at
/// `db::PG_GROUPS_IN_FLIGHT`).
const BATCHES_IN_FLIGHT: usize = 1;

/// PostgreSQL: the workers' reads of their messages, merged like
/// [`FactReads`]: a read made while [`BATCHES_IN_FLIGHT`] statements are
/// running waits for the next one, which reads every waiting id's message
/// and facts at once ([`facts::messages_with_fact_rows`]). `None` for a
/// message that does not exist.
#[derive(Debug, Default)]
pub struct MessageReads(
    crate::store::db::Batcher<String, Option<(outbound_message::Model, FactRows)>>,
);

impl MessageReads {
    async fn read(
        &self,
        core: &Core,
        pool: &sqlx::PgPool,
        id: &str,
    ) -> Result<Option<(outbound_message::Model, FactRows)>, sea_orm::DbErr> {
        batched(
            &self.0,
            core,
            pool,
            id.to_string(),
            |pool, senders, ids| async move {
                facts::messages_with_fact_rows(&pool, &ids, &senders).await
            },
        )
        .await
    }
}

/// Send `request` to `batcher`, whose batches run `run` with the pool and
/// the core's senders (computed once, when the batcher starts).
async fn batched<Q, A, F, Fut>(
    batcher: &crate::store::db::Batcher<Q, A>,
    core: &Core,
    pool: &sqlx::PgPool,
    request: Q,
    run: F,
) -> Result<A, sea_orm::DbErr>
where
    Q: Send + 'static,
    A: Send + 'static,
    F: Fn(sqlx::PgPool, std::sync::Arc<Senders>, Vec<Q>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Vec<A>, sea_orm::DbErr>> + Send + 'static,
{
    let start = || {
        let (pool, senders) = (pool.clone(), std::sync::Arc::new(senders(core)));
        move |batch| run(pool.clone(), senders.clone(), batch)
    };
    batcher
        .call(request, BATCHES_IN_FLIGHT, MAX_BATCH, start)
        .await
}

/// PostgreSQL: the acceptance reads of concurrent callers, merged into
/// one statement per batch ([`facts::fact_rows_many`]), like
/// [`MessageReads`]. Each caller gets exactly what [`facts::fact_rows`]
/// would have read for it.
#[derive(Debug, Default)]
pub struct FactReads(crate::store::db::Batcher<facts::FactRead, FactRows>);

impl FactReads {
    async fn read(
        &self,
        core: &Core,
        pool: &sqlx::PgPool,
        read: facts::FactRead,
    ) -> Result<FactRows, sea_orm::DbErr> {
        batched(
            &self.0,
            core,
            pool,
            read,
            |pool, senders, batch| async move {
                facts::fact_rows_many(&pool, &batch, &senders).await
            },
        )
        .await
    }
}

async fn tier_threshold_alert(core: &Core, used: u64) {
    if let Some(limit) = core.limits.tier_limit() {
        if limit > 0 && used * 5 >= limit * 4 && (used - 1) * 5 < limit * 4 {
            alerts::raise(
                core,
                Alert {
                    key: "tier:80".into(),
                    title: "Messaging tier at 80 %".into(),
                    description: format!(
                        "{used} of {limit} unique people reached in the moving 24 hours; further business-initiated WhatsApp messages will be deferred at the limit."
                    ),
                    error_code: None,
                    meaning: None,
                    message_id: None,
                    campaign_id: None,
                },
            )
            .await;
        }
    }
}

fn status_callback(core: &Core, message_id: &str) -> Option<url::Url> {
    let mut url = core.settings.public_base();
    url.set_path(STATUS_PATH);
    url.query_pairs_mut().append_pair("mid", message_id);
    Some(url)
}

/// A message that cannot be handed to a provider at all (its content no
/// longer builds, no provider for its channel): a permanent failure with an
/// alert, recorded as a send attempt by Heimdall itself.
async fn fail_before_call(
    core: &Core,
    m: &outbound_message::Model,
    why: String,
    now: DateTime<Utc>,
) -> Result<SendResult, sea_orm::DbErr> {
    audit::send_attempt_row(m, false, "heimdall", &why, None, "worker", now)
        .insert(&core.db.conn)
        .await?;
    let class = ErrorClass {
        code: None,
        http_status: None,
        meaning: why,
        action: ErrorAction::Permanent,
        alert: true,
    };
    handle_failure(core, m, class, false).await
}

async fn call_provider(
    core: &Core,
    m: &outbound_message::Model,
    facts: &MessageFacts,
    loaded: &LoadedFacts,
    extras: Loaded,
) -> Result<SendResult, sea_orm::DbErr> {
    let now = core.now();
    let channel = facts.channel;
    let Some(recipient) = facts.recipient.clone() else {
        return Ok(SendResult::Blocked(gates::Gate::InvalidNumber));
    };
    let rate = extras.sender_rate;
    let from = loaded.sender.address.clone().unwrap_or_default();
    let content = match build_content(m, extras.template.as_ref()) {
        Ok(c) => c,
        Err(why) => {
            // The template changed under the message (variables no longer
            // match): a permanent failure for this message, recorded.
            return fail_before_call(core, m, why, now).await;
        }
    };
    let Some(provider) = core.providers.for_channel(channel).cloned() else {
        let why = format!("no provider is configured for {channel}");
        return fail_before_call(core, m, why, now).await;
    };
    let request = OutboundRequest {
        message_id: m.id.clone(),
        channel,
        to: recipient,
        from,
        content,
        status_callback: status_callback(core, &m.id),
        reply_to: m.reply_to.clone(),
    };
    // (The attempt was counted when the worker's evaluation passed.)
    // The rate limit is taken last, right before the call, so nothing
    // between the permit and the request can bunch requests together.
    let waiting = std::time::Instant::now();
    core.limits
        .until_sender_ready(&request.from, rate.and_then(|r| u32::try_from(r).ok()))
        .await;
    // The limiter may have held the message for a while: a STOP (or a revoked consent)
    // that came meanwhile must still stop it, so judge it again before the call. (Without
    // a wait, the last check is the worker's evaluation a few writes ago.)
    if waiting.elapsed() > RECHECK_AFTER_WAIT && facts.purpose != Purpose::ComplianceReply {
        if let Some(stopped) = stopped_while_waiting(core, m).await? {
            return Ok(stopped);
        }
    }
    let started = std::time::Instant::now();
    let result = provider.send(&request).await;
    metrics::histogram!("heimdall_provider_call_seconds", "channel" => channel.as_str())
        .record(started.elapsed().as_secs_f64());
    let now = core.now();
    match result {
        Ok(accepted) => {
            let status = ProviderStatus::parse(&accepted.status).unwrap_or(ProviderStatus::Queued);
            let state = MessageState::Sending
                .apply_provider_status(status)
                .unwrap_or(MessageState::Sending);
            // The audit row and the sid written together. The
            // state moves only if no callback moved it further already; the
            // sid is recorded either way.
            let attempt = audit::send_attempt_row(
                m,
                true,
                accepted.provider,
                &accepted.sid,
                None,
                "worker",
                now,
            )
            .try_into_model()?;
            core.db
                .write_rows(RowWrite {
                    tool_calls: vec![attempt],
                    sends: vec![SentUpdate {
                        id: m.id.clone(),
                        provider_sid: accepted.sid.clone(),
                        provider: accepted.provider.to_string(),
                        price: accepted.price.clone(),
                        price_unit: accepted.price_unit.clone(),
                        state: state.as_str().into(),
                        updated_at: now,
                    }],
                    ..Default::default()
                })
                .await?;
            metrics::counter!("heimdall_sends_total", "channel" => channel.as_str(), "result" => "accepted").increment(1);
            if let Some(next) = release_next_part(&core.db.conn, m, now).await? {
                enqueue(core, &next, None).await;
            }
            Ok(SendResult::Sent { sid: accepted.sid })
        }
        Err(rejected) => {
            let code = match &rejected.failure {
                ProviderFailure::Code { code, .. } => Some(*code),
                _ => None,
            };
            audit::send_attempt_row(
                m,
                false,
                provider_name(core, channel),
                &rejected.message,
                code,
                "worker",
                now,
            )
            .insert(&core.db.conn)
            .await?;
            let mut class = core.live.get().errors.classify(&rejected.failure, channel);
            if !rejected.message.is_empty() {
                class.meaning = format!("{} ({})", class.meaning, rejected.message);
            }
            metrics::counter!("heimdall_sends_total", "channel" => channel.as_str(), "result" => "rejected").increment(1);
            handle_failure(core, m, class, false).await
        }
    }
}

/// A wait at the sender's rate limiter longer than this is followed by a fresh look at
/// the person's consent and opt-outs before the provider call.
const RECHECK_AFTER_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// After a wait at the limiter: if the person opted out (or their consent was revoked)
/// since the worker's evaluation, the message is blocked as the gates block it, with the
/// fresh evaluation as its audit row, and never reaches the provider.
async fn stopped_while_waiting(
    core: &Core,
    m: &outbound_message::Model,
) -> Result<Option<SendResult>, sea_orm::DbErr> {
    let Some(contact_id) = m.contact_id.as_deref() else {
        return Ok(None);
    };
    let channel: Channel = m.channel.parse().unwrap_or(Channel::WhatsApp);
    if crate::consent::opted_out(&core.db.conn, contact_id, channel)
        .await?
        .is_none()
    {
        return Ok(None);
    }
    let now = core.now();
    let mut rows = read_fact_rows_for(core, m).await?;
    let template = rows.template.take().map(Template::from);
    let (facts, loaded, _) = facts_from_rows(core, &core.db.conn, m, rows, template, None).await?;
    let decision = gates::evaluate(&facts, &loaded, now, &policy(core));
    let Decision::Block { reason } = decision.decision else {
        return Ok(None);
    };
    finish_evaluation(
        core,
        m,
        Stage::Worker,
        &decision,
        "worker",
        now,
        loaded.window_expires_at,
        None,
    )
    .await?;
    tracing::info!(message_id = %m.id, reason = reason.code(), "stopped after waiting for the sender's rate");
    blocked(core, m, reason, now).await.map(Some)
}

/// A message the worker's gates blocked: the parts after it stop too.
async fn blocked(
    core: &Core,
    m: &outbound_message::Model,
    reason: gates::Gate,
    now: DateTime<Utc>,
) -> Result<SendResult, sea_orm::DbErr> {
    stop_later_parts(
        &core.db.conn,
        m,
        &format!("blocked ({})", reason.code()),
        now,
    )
    .await?;
    Ok(SendResult::Blocked(reason))
}

fn provider_name(core: &Core, channel: Channel) -> &'static str {
    match (channel, core.settings.whatsapp_provider) {
        (Channel::WhatsApp, crate::settings::WhatsAppProvider::Meta) => "meta",
        _ => "twilio",
    }
}

/// The provider content for a stored message (`template`: the message's
/// template as loaded for the gates).
fn build_content(
    m: &outbound_message::Model,
    template: Option<&Template>,
) -> Result<Content, String> {
    if m.kind == "interactive" {
        return Interactive::from_stored(m.interactive.as_deref())
            .map(Content::Interactive)
            .map_err(|e| e.to_string());
    }
    if m.kind != "template" {
        return Ok(Content::Text {
            body: m.body.clone().unwrap_or_default(),
            media_url: m.media_url.clone(),
        });
    }
    let Some(name) = &m.template_name else {
        return Err("template message without a template name".into());
    };
    let Some(t) = template else {
        return Err(format!("template '{name}' is no longer registered"));
    };
    let values: BTreeMap<String, String> = serde_json::from_str(&m.variables).unwrap_or_default();
    let positional =
        crate::channels::positional_variables(&t.variables, &values).map_err(|e| e.to_string())?;
    let Some(provider_id) = t.provider_id.clone() else {
        return Err(format!("template '{name}' has no provider id"));
    };
    Ok(Content::Template {
        name: t.name.clone(),
        provider_id,
        language: t.language.clone(),
        positional,
    })
}

/// Act on a classified failure, synchronous or reported by a callback.
pub async fn handle_failure(
    core: &Core,
    m: &outbound_message::Model,
    class: ErrorClass,
    from_callback: bool,
) -> Result<SendResult, sea_orm::DbErr> {
    let now = core.now();
    let channel: Channel = m.channel.parse().unwrap_or(Channel::WhatsApp);
    let code32 = class.code.and_then(|c| i32::try_from(c).ok());
    let fresh = outbound_message::Entity::find_by_id(m.id.as_str())
        .one(&core.db.conn)
        .await?
        .unwrap_or_else(|| m.clone());
    let attempts = u32::try_from(fresh.attempts).unwrap_or(u32::MAX);
    // A callback already set the reported failure state; a synchronous
    // failure takes the state its action implies.
    let final_state = from_callback
        .then(|| MessageState::parse(&fresh.state))
        .flatten();
    // From the worker's claim, or the failure state a callback just wrote.
    let set_failed = |state: MessageState| {
        moving(&[MessageState::Sending, state], state)
            .col_expr(outbound_message::Column::ErrorCode, Expr::value(code32))
            .col_expr(
                outbound_message::Column::ErrorMessage,
                Expr::value(Some(class.meaning.clone())),
            )
            .col_expr(outbound_message::Column::FailedAt, Expr::value(Some(now)))
            .col_expr(outbound_message::Column::UpdatedAt, Expr::value(now))
            .filter(outbound_message::Column::Id.eq(&m.id))
    };
    let alert_for = |title: &str| Alert {
        key: format!(
            "{}:{}",
            title.to_lowercase().replace(' ', "_"),
            class.code.map(|c| c.to_string()).unwrap_or_else(|| class
                .http_status
                .map(|s| format!("http{s}"))
                .unwrap_or_else(|| "none".into()))
        ),
        title: title.to_string(),
        description: format!(
            "Message {} to {} on {channel}: {}",
            m.id,
            mask(&m.to_address),
            class.meaning
        ),
        error_code: class.code,
        meaning: Some(class.meaning.clone()),
        message_id: Some(m.id.clone()),
        campaign_id: m.campaign_id.clone(),
    };
    // A part that ends here without reaching the person stops the parts after it (a
    // fallback takes them along instead, below); a retry keeps them waiting.
    let retrying =
        class.action == ErrorAction::Retry && provider_errors::retry_delay(attempts).is_some();
    let falls_back = class.action == ErrorAction::Fallback && channel == Channel::WhatsApp;
    if !retrying && !falls_back {
        let state = if class.action == ErrorAction::Fallback {
            "undelivered"
        } else {
            "failed"
        };
        stop_later_parts(&core.db.conn, &fresh, state, now).await?;
    }
    match class.action {
        ErrorAction::Retry => {
            if let Some(delay) = provider_errors::retry_delay(attempts) {
                let until = now + Duration::from_std(delay).unwrap_or(Duration::seconds(1));
                // From the worker's claim, or a failure a callback reported.
                moving(
                    &[
                        MessageState::Sending,
                        MessageState::Failed,
                        MessageState::Undelivered,
                    ],
                    MessageState::Deferred,
                )
                .col_expr(
                    outbound_message::Column::DeferUntil,
                    Expr::value(Some(until)),
                )
                .col_expr(
                    outbound_message::Column::ProviderSid,
                    Expr::value(Option::<String>::None),
                )
                .col_expr(outbound_message::Column::ErrorCode, Expr::value(code32))
                .col_expr(
                    outbound_message::Column::ErrorMessage,
                    Expr::value(Some(class.meaning.clone())),
                )
                .col_expr(outbound_message::Column::UpdatedAt, Expr::value(now))
                .filter(outbound_message::Column::Id.eq(&m.id))
                .exec(&core.db.conn)
                .await?;
                enqueue(core, &m.id, Some(until)).await;
                return Ok(SendResult::Failed {
                    action: ErrorAction::Retry,
                    code: class.code,
                });
            }
            set_failed(MessageState::Failed).exec(&core.db.conn).await?;
            alerts::raise(core, alert_for("Retries exhausted")).await;
        }
        ErrorAction::Permanent => {
            set_failed(final_state_or(final_state, MessageState::Failed))
                .exec(&core.db.conn)
                .await?;
            if let Some(cid) = &m.contact_id {
                contacts::flag_manual_outreach(&core.db.conn, cid, &class.meaning, now).await?;
            }
            alerts::raise(core, alert_for("Send failed")).await;
        }
        ErrorAction::OptOut | ErrorAction::StopMarketing => {
            set_failed(final_state_or(final_state, MessageState::Failed))
                .exec(&core.db.conn)
                .await?;
            if let Some(cid) = &m.contact_id {
                let reference = class.code.map(|c| c.to_string());
                let scope = if class.action == ErrorAction::StopMarketing {
                    crate::consent::Scope::Marketing
                } else {
                    crate::consent::Scope::All
                };
                crate::consent::opt_out(
                    &core.db.conn,
                    cid,
                    Some(channel),
                    scope,
                    crate::consent::OptOutSource::Provider,
                    reference.as_deref(),
                    "provider",
                    now,
                )
                .await?;
            }
        }
        ErrorAction::PauseSender => {
            set_failed(final_state_or(final_state, MessageState::Failed))
                .exec(&core.db.conn)
                .await?;
            crate::sending::senders::pause(core, channel, &class).await?;
        }
        ErrorAction::WindowClosed => {
            set_failed(final_state_or(final_state, MessageState::Failed))
                .exec(&core.db.conn)
                .await?;
        }
        ErrorAction::Fallback => {
            set_failed(final_state_or(final_state, MessageState::Undelivered))
                .exec(&core.db.conn)
                .await?;
            if channel == Channel::WhatsApp {
                fall_back_to_sms(core, &fresh).await?;
                // Every fallback is told (throttled by code: a burst is
                // one alert with a count), so a fault of ours that turns
                // WhatsApp into SMS cannot go unnoticed.
                alerts::raise(core, alert_for("Fell back to SMS")).await;
            }
        }
    }
    Ok(SendResult::Failed {
        action: class.action,
        code: class.code,
    })
}

fn final_state_or(reported: Option<MessageState>, default: MessageState) -> MessageState {
    match reported {
        Some(s @ (MessageState::Failed | MessageState::Undelivered)) => s,
        _ => default,
    }
}

/// A part handed to the provider releases the next one (`held` to `queued`, only while it is
/// still held): its id, for the caller to enqueue. `None` for the last part, a message in
/// one part, or a next part already released or stopped.
pub async fn release_next_part(
    db: &impl ConnectionTrait,
    m: &outbound_message::Model,
    now: DateTime<Utc>,
) -> Result<Option<String>, sea_orm::DbErr> {
    let (Some(first), Some(index)) = (&m.part_of, m.part_index) else {
        return Ok(None);
    };
    let released = moving(&[MessageState::Held], MessageState::Queued)
        .col_expr(outbound_message::Column::QueuedAt, Expr::value(Some(now)))
        .col_expr(outbound_message::Column::UpdatedAt, Expr::value(now))
        .filter(outbound_message::Column::PartOf.eq(first))
        .filter(outbound_message::Column::PartIndex.eq(index + 1))
        .exec_with_returning(db)
        .await?;
    Ok(released.into_iter().next().map(|n| n.id))
}

/// A part that will not reach the person (`how`: blocked, failed, ...) stops every later
/// part not yet handed to the provider (held, or released but not taken by a worker: the
/// worker's claim is a compare-and-set on the same states): they are cancelled, saying
/// which part ended them and how. Returns them, in order (an SMS fallback takes their text
/// along).
pub async fn stop_later_parts(
    db: &impl ConnectionTrait,
    m: &outbound_message::Model,
    how: &str,
    now: DateTime<Utc>,
) -> Result<Vec<outbound_message::Model>, sea_orm::DbErr> {
    let (Some(first), Some(index), Some(count)) = (&m.part_of, m.part_index, m.part_count) else {
        return Ok(vec![]);
    };
    let why = format!("not sent: part {index} of {count} was {how}");
    let mut stopped = moving(
        &[
            MessageState::Held,
            MessageState::Queued,
            MessageState::Deferred,
        ],
        MessageState::Cancelled,
    )
    .col_expr(
        outbound_message::Column::ErrorMessage,
        Expr::value(Some(why)),
    )
    .col_expr(outbound_message::Column::UpdatedAt, Expr::value(now))
    .filter(outbound_message::Column::PartOf.eq(first))
    .filter(outbound_message::Column::PartIndex.gt(index))
    .filter(outbound_message::Column::ProviderSid.is_null())
    .exec_with_returning(db)
    .await?;
    stopped.sort_by_key(|p| p.part_index);
    Ok(stopped)
}

/// Held parts whose release was lost (the process stopped between the provider's answer to
/// the part before and the release) are released now, or stopped if the part before ended
/// without being handed over; held parts whose part before is still on its way stay held.
/// Looks at parts held for longer than `grace`. Returns how many were released or stopped.
pub async fn reconcile_held_parts(core: &Core, grace: Duration) -> Result<u64, sea_orm::DbErr> {
    let now = core.now();
    let held = outbound_message::Entity::find()
        .filter(outbound_message::Column::State.eq(MessageState::Held.as_str()))
        .filter(outbound_message::Column::UpdatedAt.lt(now - grace))
        .order_by_asc(outbound_message::Column::UpdatedAt)
        .limit(1000)
        .all(&core.db.conn)
        .await?;
    let mut n = 0;
    for part in held {
        let (Some(first), Some(index)) = (&part.part_of, part.part_index) else {
            continue;
        };
        let Some(before) = outbound_message::Entity::find()
            .filter(outbound_message::Column::PartOf.eq(first))
            .filter(outbound_message::Column::PartIndex.eq(index - 1))
            .one(&core.db.conn)
            .await?
        else {
            continue;
        };
        let state = MessageState::parse(&before.state).unwrap_or(MessageState::Pending);
        let delivered = matches!(
            state,
            MessageState::Sent | MessageState::Delivered | MessageState::Read
        );
        if state.is_final() && !delivered {
            n += stop_later_parts(&core.db.conn, &before, state.as_str(), now)
                .await?
                .len() as u64;
        } else if before.provider_sid.is_some() || delivered {
            if let Some(next) = release_next_part(&core.db.conn, &before, now).await? {
                enqueue(core, &next, None).await;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Release messages held back (deferred and marked `reason`: a paused
/// campaign, a paused sender) so that a worker takes them at once: their
/// hold is cleared (only while they are still so held). The caller enqueues
/// them once its transaction has committed.
pub async fn release_held(
    db: &impl ConnectionTrait,
    ids: &[String],
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    for chunk in ids.chunks(500) {
        outbound_message::Entity::update_many()
            .col_expr(
                outbound_message::Column::DeferUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                outbound_message::Column::BlockReason,
                Expr::value(Option::<String>::None),
            )
            .col_expr(outbound_message::Column::UpdatedAt, Expr::value(now))
            .filter(outbound_message::Column::Id.is_in(chunk.to_vec()))
            .filter(outbound_message::Column::State.eq(MessageState::Deferred.as_str()))
            .filter(outbound_message::Column::BlockReason.eq(reason))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Mask a phone number for alerts and logs: keep the country code and the
/// last two digits.
pub fn mask(phone: &str) -> String {
    let n = phone.chars().count();
    if n <= 6 {
        return "***".into();
    }
    phone
        .chars()
        .enumerate()
        .map(|(i, c)| if i >= 3 && i < n - 2 { '•' } else { c })
        .collect()
}

/// Create the SMS twin of a WhatsApp message that cannot be delivered. It
/// goes through the gates again for SMS (its own consent, quiet hours), or
/// is blocked and recorded.
async fn fall_back_to_sms(
    core: &Core,
    original: &outbound_message::Model,
) -> Result<(), sea_orm::DbErr> {
    let now = core.now();
    // The WhatsApp parts after this one that have not gone yet go along in the SMS; the
    // ones already handed over stay with WhatsApp (each falls back on its own if it fails).
    let later = stop_later_parts(
        &core.db.conn,
        original,
        "undelivered on WhatsApp; the text went by SMS instead",
        now,
    )
    .await?;
    let whatsapp_text = match (&original.kind[..], &original.template_name) {
        ("template", Some(name)) => match templates::find_by_name(&core.db.conn, name).await? {
            Some(t) => t.render(&serde_json::from_str(&original.variables).unwrap_or_default()),
            None => return Ok(()),
        },
        // The choices as numbered lines: SMS has no buttons.
        ("interactive", _) => match Interactive::from_stored(original.interactive.as_deref()) {
            Ok(content) => content.plain_text(),
            Err(e) => {
                tracing::warn!(message_id = %original.id, error = %e, "SMS fallback not created");
                return Ok(());
            }
        },
        _ => std::iter::once(original)
            .chain(&later)
            .filter_map(|p| p.body.as_deref())
            .collect(),
    };
    // What WhatsApp would have shown, without WhatsApp's markers.
    let body = formatting::plain_text(&whatsapp_text);
    let recipient = match &original.contact_id {
        Some(id) => Recipient::Contact(id.clone()),
        None => Recipient::Phone(original.to_address.clone()),
    };
    let res = accept(
        core,
        SendRequest {
            recipient,
            channel: Channel::Sms,
            content: RequestedContent::Text {
                body,
                media_url: None,
                format: TextFormat::AsIs,
                reply_to: None,
            },
            origin: Origin::Fallback {
                of: original.id.clone(),
            },
            idempotency_key: Some(format!("fallback:{}", original.id)),
        },
    )
    .await;
    match res {
        Ok(o) => {
            tracing::info!(message_id = %original.id, fallback_id = %o.message_id, state = %o.state, "SMS fallback created")
        }
        Err(AcceptError::Db(e)) => return Err(e),
        Err(e) => tracing::warn!(message_id = %original.id, error = %e, "SMS fallback not created"),
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Status reports

/// A delivery status from Twilio's callback or Meta's webhook.
#[derive(Debug, Clone, Deserialize)]
pub struct StatusReport {
    /// Heimdall's own id, from the callback URL (Twilio).
    pub message_id: Option<String>,
    pub provider_sid: Option<String>,
    pub status: String,
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
    pub price: Option<String>,
    pub price_unit: Option<String>,
    /// `twilio` or `meta`, for the history.
    pub source: String,
}

/// Apply a status report: forward only; failures go to the error table.
/// Returns the message id it matched, if any.
pub async fn apply_status(
    core: &Core,
    report: StatusReport,
) -> Result<Option<String>, sea_orm::DbErr> {
    let Some(status) = ProviderStatus::parse(&report.status) else {
        return Ok(None);
    };
    let mut m = None;
    if let Some(id) = &report.message_id {
        m = outbound_message::Entity::find_by_id(id.as_str())
            .one(&core.db.conn)
            .await?;
    }
    if m.is_none() {
        if let Some(sid) = &report.provider_sid {
            m = outbound_message::Entity::find()
                .filter(outbound_message::Column::ProviderSid.eq(sid))
                .one(&core.db.conn)
                .await?;
        }
    }
    let Some(mut m) = m else {
        return Ok(None);
    };
    let now = core.now();
    // The worker may have died before recording the sid: take it from here.
    if m.provider_sid.is_none() {
        if let Some(sid) = &report.provider_sid {
            outbound_message::Entity::update_many()
                .col_expr(
                    outbound_message::Column::ProviderSid,
                    Expr::value(Some(sid.clone())),
                )
                .filter(outbound_message::Column::Id.eq(&m.id))
                .filter(outbound_message::Column::ProviderSid.is_null())
                .exec(&core.db.conn)
                .await?;
            m.provider_sid = Some(sid.clone());
        }
    }
    message_status_event::ActiveModel {
        id: Set(new_id()),
        message_id: Set(m.id.clone()),
        status: Set(status.as_str().into()),
        error_code: Set(report.error_code.and_then(|c| i32::try_from(c).ok())),
        source: Set(report.source.clone()),
        occurred_at: Set(now),
    }
    .insert(&core.db.conn)
    .await?;
    // Compare-and-set, retried when another report moved it meanwhile.
    for _ in 0..5 {
        let current = MessageState::parse(&m.state).unwrap_or(MessageState::Pending);
        let Some(next) = current.apply_provider_status(status) else {
            return Ok(Some(m.id));
        };
        let mut update = moving(&[current], next)
            .col_expr(outbound_message::Column::UpdatedAt, Expr::value(now))
            .filter(outbound_message::Column::Id.eq(&m.id));
        update = match next {
            MessageState::Sent => {
                update.col_expr(outbound_message::Column::SentAt, Expr::value(Some(now)))
            }
            MessageState::Delivered => update.col_expr(
                outbound_message::Column::DeliveredAt,
                Expr::value(Some(now)),
            ),
            MessageState::Read => {
                update.col_expr(outbound_message::Column::ReadAt, Expr::value(Some(now)))
            }
            _ => update,
        };
        if report.price.is_some() {
            update = update
                .col_expr(
                    outbound_message::Column::Price,
                    Expr::value(report.price.clone()),
                )
                .col_expr(
                    outbound_message::Column::PriceUnit,
                    Expr::value(report.price_unit.clone()),
                );
        }
        if update.exec(&core.db.conn).await?.rows_affected == 1 {
            metrics::counter!("heimdall_status_updates_total", "status" => next.as_str())
                .increment(1);
            if status.is_failure() {
                let channel: Channel = m.channel.parse().unwrap_or(Channel::WhatsApp);
                let failure = match report.error_code {
                    Some(code) => ProviderFailure::Code {
                        code,
                        http_status: None,
                    },
                    None => ProviderFailure::Code {
                        code: 0,
                        http_status: None,
                    },
                };
                let mut class = core.live.get().errors.classify(&failure, channel);
                if let Some(msg) = &report.error_message {
                    class.meaning = format!("{} ({msg})", class.meaning);
                }
                m.state = next.as_str().into();
                handle_failure(core, &m, class, true).await?;
            }
            return Ok(Some(m.id));
        }
        match outbound_message::Entity::find_by_id(m.id.as_str())
            .one(&core.db.conn)
            .await?
        {
            Some(fresh) => m = fresh,
            None => return Ok(None),
        }
    }
    Ok(Some(m.id))
}

// ---------------------------------------------------------------------------
// Reading

/// A message with its verdicts and history, for the API and the console.
#[derive(Debug, Clone, Serialize)]
pub struct MessageView {
    pub id: String,
    pub contact_id: Option<String>,
    pub to: String,
    pub channel: String,
    pub kind: String,
    pub template_name: Option<String>,
    pub body: Option<String>,
    pub source: String,
    pub campaign_id: Option<String>,
    pub actor: String,
    pub state: String,
    pub block_reason: Option<String>,
    pub defer_until: Option<DateTime<Utc>>,
    pub provider: Option<String>,
    pub provider_sid: Option<String>,
    pub error_code: Option<i32>,
    pub error_message: Option<String>,
    pub attempts: i32,
    pub price: Option<String>,
    pub fallback_of: Option<String>,
    pub fallback_message_id: Option<String>,
    pub in_window: Option<bool>,
    /// A text sent in parts: this part's number of how many, and every part in order.
    pub part_index: Option<i32>,
    pub part_count: Option<i32>,
    pub parts: Vec<PartView>,
    /// The text as written, before it was converted and split (the first part only).
    pub source_text: Option<String>,
    /// An SMS body's encoding and the segments the carrier bills.
    pub sms: Option<formatting::SmsSegments>,
    /// The buttons or list, for kind `interactive` (as requested: body, choices and ids).
    pub interactive: Option<crate::channels::interactive::InteractiveSpec>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub evaluations: Vec<EvaluationView>,
    pub status_history: Vec<StatusEventView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvaluationView {
    pub kind: String,
    pub stage: String,
    pub decision: String,
    pub reason_code: Option<String>,
    pub result_ok: bool,
    pub error_code: Option<i32>,
    pub detail: Option<String>,
    pub verdicts: serde_json::Value,
    pub actor: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PartView {
    pub id: String,
    pub index: i32,
    pub state: String,
    pub error_message: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusEventView {
    pub status: String,
    pub error_code: Option<i32>,
    pub source: String,
    pub at: DateTime<Utc>,
}

pub async fn view(core: &Core, id: &str) -> Result<Option<MessageView>, sea_orm::DbErr> {
    use crate::entities::tool_call;
    let Some(m) = outbound_message::Entity::find_by_id(id)
        .one(&core.db.conn)
        .await?
    else {
        return Ok(None);
    };
    let evaluations = tool_call::Entity::find()
        .filter(tool_call::Column::MessageId.eq(id))
        .order_by_asc(tool_call::Column::CreatedAt)
        .order_by_asc(tool_call::Column::Id)
        .all(&core.db.conn)
        .await?
        .into_iter()
        .map(|t| EvaluationView {
            kind: t.kind,
            stage: t.stage,
            decision: t.decision,
            reason_code: t.reason_code,
            result_ok: t.result_ok,
            error_code: t.error_code,
            detail: t.detail,
            verdicts: serde_json::from_str(&t.verdicts).unwrap_or(serde_json::Value::Null),
            actor: t.actor,
            at: t.created_at,
        })
        .collect();
    let status_history = message_status_event::Entity::find()
        .filter(message_status_event::Column::MessageId.eq(id))
        .order_by_asc(message_status_event::Column::OccurredAt)
        .order_by_asc(message_status_event::Column::Id)
        .all(&core.db.conn)
        .await?
        .into_iter()
        .map(|e| StatusEventView {
            status: e.status,
            error_code: e.error_code,
            source: e.source,
            at: e.occurred_at,
        })
        .collect();
    let fallback_message_id = outbound_message::Entity::find()
        .filter(outbound_message::Column::FallbackOf.eq(id))
        .one(&core.db.conn)
        .await?
        .map(|f| f.id);
    let parts = match &m.part_of {
        Some(first) => parts_of(&core.db.conn, first)
            .await?
            .into_iter()
            .map(|p| PartView {
                id: p.id,
                index: p.part_index.unwrap_or_default(),
                state: p.state,
                error_message: p.error_message,
            })
            .collect(),
        None => vec![],
    };
    let sms = (m.channel == Channel::Sms.as_str())
        .then(|| m.body.as_deref().map(formatting::sms_segments))
        .flatten();
    Ok(Some(MessageView {
        id: m.id,
        contact_id: m.contact_id,
        to: m.to_address,
        channel: m.channel,
        kind: m.kind,
        template_name: m.template_name,
        body: m.body,
        source: m.source,
        campaign_id: m.campaign_id,
        actor: m.actor,
        state: m.state,
        block_reason: m.block_reason,
        defer_until: m.defer_until,
        provider: m.provider,
        provider_sid: m.provider_sid,
        error_code: m.error_code,
        error_message: m.error_message,
        attempts: m.attempts,
        price: m.price,
        fallback_of: m.fallback_of,
        fallback_message_id,
        in_window: m.in_window,
        part_index: m.part_index,
        part_count: m.part_count,
        parts,
        source_text: m.source_text,
        sms,
        interactive: Interactive::from_stored(m.interactive.as_deref())
            .ok()
            .map(|c| c.spec()),
        created_at: m.created_at,
        updated_at: m.updated_at,
        evaluations,
        status_history,
    }))
}

/// Messages claimed by a worker that died before calling the provider (no
/// sid, no callback) are not re-sent (a provider may have accepted them):
/// they are failed for a person to check.
pub async fn resolve_stuck_sending(
    core: &Core,
    older_than: Duration,
) -> Result<u64, sea_orm::DbErr> {
    let now = core.now();
    let stuck = outbound_message::Entity::find()
        .filter(outbound_message::Column::State.eq(MessageState::Sending.as_str()))
        .filter(outbound_message::Column::ProviderSid.is_null())
        .filter(outbound_message::Column::UpdatedAt.lt(now - older_than))
        .all(&core.db.conn)
        .await?;
    let mut n = 0;
    for m in stuck {
        let res = moving(&[MessageState::Sending], MessageState::Failed)
            .col_expr(outbound_message::Column::ErrorMessage, Expr::value(Some("the worker stopped during the send; outcome unknown, not re-sent (check the provider's log)".to_string())))
            .col_expr(outbound_message::Column::FailedAt, Expr::value(Some(now)))
            .col_expr(outbound_message::Column::UpdatedAt, Expr::value(now))
            .filter(outbound_message::Column::Id.eq(&m.id))
            .filter(outbound_message::Column::ProviderSid.is_null())
            .exec(&core.db.conn)
            .await?;
        if res.rows_affected == 1 {
            n += 1;
            alerts::raise(
                core,
                Alert {
                    key: "stuck_sending".into(),
                    title: "Send outcome unknown".into(),
                    description: format!("Message {} was claimed by a worker that stopped before recording the provider's answer; it was not re-sent.", m.id),
                    error_code: None,
                    meaning: None,
                    message_id: Some(m.id.clone()),
                    campaign_id: m.campaign_id.clone(),
                },
            )
            .await;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_numbers() {
        assert_eq!(mask("+4791234567"), "+47••••••67");
        assert_eq!(mask("+1"), "***");
    }
}
