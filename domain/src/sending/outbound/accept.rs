//! Accepting a message from any origin: its row, its parts, the gates at
//! acceptance and the audit row, in one write, then the queue.

use super::*;

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
    // The purpose the consent gate checks: a template's own, else the one
    // named, else the default.
    let named_purpose = match (&template_name, &req.purpose) {
        (_, Some(p)) => {
            Some(crate::consent::purposes::check_name(p).map_err(AcceptError::BadRequest)?)
        }
        (Some(_), None) => None,
        (None, None) => Some(core.settings.default_purpose.clone()),
    };
    let rows = read_fact_rows(
        core,
        key,
        req.channel,
        template_name.as_deref(),
        named_purpose.as_deref(),
    )
    .await?;
    // (An opt-in confirmation names the purpose of the consent it asks the
    // person to confirm, whatever its template's own: the consent gate then
    // looks for that pending consent.)
    if let (Some(named), Some(t), false) = (
        &req.purpose,
        &rows.template,
        matches!(req.origin, Origin::OptInConfirmation),
    ) {
        if t.purpose.as_deref().is_some_and(|own| own != named.trim()) {
            return Err(AcceptError::BadRequest(format!(
                "template {} is for {}, not {}: a template is sent for its own purpose",
                t.name,
                t.purpose.as_deref().unwrap_or_default(),
                named.trim()
            )));
        }
    }
    // A purpose the caller named must exist (the default's absence is the
    // gate's to report: a reply to a STOP still goes).
    if let (Some(named), None) = (&req.purpose, &rows.purpose) {
        return Err(AcceptError::BadRequest(format!(
            "purpose: '{named}' is not a defined purpose"
        )));
    }
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
        source,
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
    message.purpose = facts.consent_purpose.clone();
    message.state = outcome.state;
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
    // A staff member's reply and its staff audit row stand or fall together.
    let staff_actions = match &req.origin {
        Origin::Inbox { staff, ip } => vec![audit::inbox_reply_row(
            &staff.email,
            ip.as_deref(),
            &message,
            &decision.decision,
            now,
        )],
        _ => vec![],
    };
    let written = core
        .db
        .write_rows(RowWrite {
            messages,
            tool_calls: evaluations,
            staff_actions,
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
    metrics::counter!("heimdall_messages_accepted_total", "source" => source.as_str()).increment(1);
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
pub(super) async fn reply_context(
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
pub(super) fn into_parts(
    first: outbound_message::Model,
    parts: Vec<String>,
) -> Vec<outbound_message::Model> {
    let count = parts.len();
    if count <= 1 {
        return vec![first];
    }
    let count32 = i32::try_from(count).unwrap_or(i32::MAX);
    let blocked = first.state == MessageState::Blocked;
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
                m.state = MessageState::Held;
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
        source: MessageSource::Api,
        campaign_id: None,
        automation_id: None,
        reminder_id: None,
        actor: String::new(),
        state: MessageState::Pending,
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
        purpose: None,
    }
}

/// The outcome of the message already accepted under this idempotency key.
pub(super) async fn by_idempotency_key(
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
    pub(super) async fn origin_authorization(
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
            Origin::Inbox { staff, .. } => Some(Authorization::Staff {
                user: staff.email.clone(),
                may_reply: staff.active && staff.role.allows(Role::Operator),
            }),
            Origin::ComplianceReply | Origin::OptInConfirmation => Some(Authorization::System),
            Origin::Campaign { .. } | Origin::Fallback { .. } | Origin::Resend { .. } => None,
        })
    }
}

pub(super) async fn existing_outcome(
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
        state: m.state,
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

/// Rebuild the authorization behind a stored message.
pub(super) fn authorization_for<'a>(
    core: &'a Core,
    db: &'a impl ConnectionTrait,
    m: &'a outbound_message::Model,
    template: Option<&'a Template>,
) -> futures::future::BoxFuture<'a, Result<Authorization, sea_orm::DbErr>> {
    Box::pin(async move {
        Ok(match m.source {
            MessageSource::Campaign => {
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
            MessageSource::Inbox => {
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
            MessageSource::Compliance | MessageSource::Optin => Authorization::System,
            MessageSource::Fallback => {
                let Some(of) = &m.fallback_of else {
                    return Ok(Authorization::None {
                        why: "fallback without an original message".into(),
                    });
                };
                match outbound_message::Entity::find_by_id(of.as_str())
                    .one(db)
                    .await?
                {
                    Some(original) if original.source != MessageSource::Fallback => {
                        authorization_for(core, db, &original, None).await?
                    }
                    _ => Authorization::None {
                        why: "the original message of this fallback is missing".into(),
                    },
                }
            }
            MessageSource::Api | MessageSource::Reminder | MessageSource::Schedule => {
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
