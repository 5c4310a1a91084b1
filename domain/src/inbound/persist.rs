//! An inbound message stored: the common case (no keyword) in one write
//! with its dedup entry, service window and audit row; the general path with
//! what its keyword changes (consent, the window) in one transaction with
//! its dedup record; and the reply the keyword calls for, queued after the
//! commit.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};

use crate::clock::new_id;
use crate::compliance::keywords::{self, KeywordAction};
use crate::consent::{self, FromNumber, NumberOptIn, OptOutSource, Scope};
use crate::contacts;
use crate::entities::{inbound_message, processed_webhook_event, webhook_audit};
use crate::phone::PhoneNumber;
use crate::sending::outbound::{self, Origin, Recipient, RequestedContent, SendRequest};
use crate::Core;

use super::audit_log::audit_row;
use super::dedup::{claim_db, dedup_entry};
use super::{InboundError, InboundMessage, InboundOutcome, WebhookRecord};

/// The common case, a message with no keyword, in two round trips: the
/// contact (found, or created on a first message), then the dedup entry,
/// the message, the service window and the audit row written together (one
/// statement on PostgreSQL, one batch on SQLite). `None` when a unique key
/// was taken (a redelivery, or an expired dedup entry still present): the
/// caller then takes the general path, which handles both.
pub(super) async fn store_plain_message(
    core: &Core,
    msg: &InboundMessage,
    phone: &PhoneNumber,
    key: &str,
    audit: Option<&WebhookRecord>,
) -> Result<Option<InboundOutcome>, InboundError> {
    use sea_orm::QueryTrait;
    let now = core.now();
    let contact_id = core
        .contact_ids
        .find_or_create(&core.db.conn, phone, msg.profile_name.clone(), now)
        .await?;
    let backend = core.db.backend();
    let inbound_id = new_id();
    let mut statements = vec![
        processed_webhook_event::Entity::insert(dedup_entry(key, &msg.provider, now))
            .build(backend),
        inbound_message::Entity::insert(inbound_row(
            msg,
            phone,
            &contact_id,
            &inbound_id,
            None,
            now,
        ))
        .build(backend),
        contacts::window_upsert(&contact_id, msg.channel, msg.received_at, now).build(backend),
    ];
    if let Some(rec) = audit {
        statements.push(webhook_audit::Entity::insert(audit_row(rec, false, now)).build(backend));
    }
    match core.db.write_together(statements).await {
        Ok(()) => {}
        Err(e) if is_unique_violation(&e) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    contacts::cache_window(core, phone.as_str(), msg.channel, msg.received_at).await;
    metrics::counter!("heimdall_inbound_messages_total", "channel" => msg.channel.as_str(), "keyword" => "none").increment(1);
    Ok(Some(InboundOutcome::Stored {
        inbound_id,
        contact_id,
        keyword: None,
        reply_message_id: None,
    }))
}

/// Did this fail on a unique key?
fn is_unique_violation(e: &sea_orm::DbErr) -> bool {
    matches!(
        e.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// The inbox row for an inbound message.
fn inbound_row(
    msg: &InboundMessage,
    phone: &PhoneNumber,
    contact_id: &str,
    inbound_id: &str,
    matched: Option<&keywords::KeywordMatch>,
    now: DateTime<Utc>,
) -> inbound_message::ActiveModel {
    inbound_message::ActiveModel {
        id: Set(inbound_id.to_string()),
        contact_id: Set(contact_id.to_string()),
        channel: Set(msg.channel.as_str().into()),
        provider: Set(msg.provider.clone()),
        provider_message_id: Set(msg.provider_message_id.clone()),
        from_address: Set(phone.to_string()),
        to_address: Set(msg.to.clone()),
        body: Set(msg.body.clone()),
        media: Set(serde_json::to_string(&msg.media).unwrap_or_else(|_| "[]".into())),
        button_text: Set(msg.button_text.clone()),
        button_payload: Set(msg.button_payload.clone()),
        profile_name: Set(msg.profile_name.clone()),
        keyword_action: Set(matched.map(|k| keyword_action(k.action).to_string())),
        needs_review: Set(matched.is_some_and(|k| !k.exact)),
        reviewed_at: Set(None),
        reviewed_by: Set(None),
        review_outcome: Set(None),
        received_at: Set(msg.received_at),
        created_at: Set(now),
    }
}

/// What storing an inbound message did, for the reply that follows.
pub(super) struct Stored {
    inbound_id: String,
    contact_id: String,
    matched: Option<keywords::KeywordMatch>,
    changed: bool,
}

/// Everything an inbound message changes, in one transaction with its
/// dedup record: `None` when it was a duplicate.
pub(super) async fn store_message(
    core: &Core,
    msg: &InboundMessage,
    phone: &PhoneNumber,
    key: &str,
    matched: Option<keywords::KeywordMatch>,
) -> Result<Option<Stored>, InboundError> {
    let now = core.now();
    let txn = core.db.begin_write().await?;
    if !claim_db(&txn, key, &msg.provider, now).await? {
        txn.rollback().await?;
        return Ok(None);
    }
    // Already in the inbox: a redelivery after its dedup entry expired
    // (24 h). A duplicate: the renewed dedup entry is kept, nothing else
    // changes (no keyword acts twice).
    let stored_before = inbound_message::Entity::find()
        .filter(inbound_message::Column::Provider.eq(&msg.provider))
        .filter(inbound_message::Column::ProviderMessageId.eq(&msg.provider_message_id))
        .one(&txn)
        .await?
        .is_some();
    if stored_before {
        txn.commit().await?;
        return Ok(None);
    }
    let contact =
        contacts::find_or_create_by_phone(&txn, phone, msg.profile_name.clone(), now).await?;
    let inbound_id = new_id();
    let mut changed = false;
    if matched.is_some() {
        // An erased person's number is opted out (the keyword below may
        // be the START that lifts it).
        consent::tombstone::carry_over(core, &txn, &contact.id, &contact.phone_e164, now).await?;
    }
    if let Some(k) = &matched {
        match k.action {
            KeywordAction::OptOut => {
                changed = consent::opt_out(
                    &txn,
                    &contact.id,
                    Some(msg.channel),
                    Scope::All,
                    OptOutSource::Keyword,
                    Some(&format!("{} ({})", k.keyword, msg.provider_message_id)),
                    "inbound",
                    now,
                )
                .await?;
            }
            KeywordAction::OptOutMarketing => {
                changed = consent::opt_out(
                    &txn,
                    &contact.id,
                    Some(msg.channel),
                    Scope::Marketing,
                    OptOutSource::Keyword,
                    Some(&format!("{} ({})", k.keyword, msg.provider_message_id)),
                    "inbound",
                    now,
                )
                .await?;
            }
            KeywordAction::OptIn => {
                // Proof from the number: it confirms what is pending and
                // lifts an opt-out; a YES to nothing changes nothing.
                let from = FromNumber {
                    provider_message_id: &msg.provider_message_id,
                    received_at: msg.received_at,
                    keyword: k.keyword,
                    body: msg.body.as_deref(),
                };
                changed = consent::opt_in_from_number(&txn, &contact.id, msg.channel, &from, now)
                    .await?
                    != NumberOptIn::NothingToConfirm;
                if changed {
                    consent::tombstone::lift(
                        core,
                        &txn,
                        &contact.phone_e164,
                        &msg.provider_message_id,
                        now,
                    )
                    .await?;
                }
            }
            KeywordAction::Help => changed = true,
        }
    }
    inbound_row(msg, phone, &contact.id, &inbound_id, matched.as_ref(), now)
        .insert(&txn)
        .await?;
    contacts::open_window(&txn, &contact.id, msg.channel, msg.received_at, now).await?;
    txn.commit().await?;
    contacts::cache_window(core, phone.as_str(), msg.channel, msg.received_at).await;
    metrics::counter!("heimdall_inbound_messages_total", "channel" => msg.channel.as_str(), "keyword" => matched.as_ref().map(|k| k.action.as_str()).unwrap_or("none")).increment(1);
    Ok(Some(Stored {
        inbound_id,
        contact_id: contact.id,
        matched,
        changed,
    }))
}

/// Queue the reply a keyword calls for (after the effects are committed).
pub(super) async fn reply_to_keyword(
    core: &Core,
    msg: &InboundMessage,
    stored: Stored,
) -> InboundOutcome {
    let Stored {
        inbound_id,
        contact_id,
        matched,
        changed,
    } = stored;
    // HELP carries a link to the person's preference page.
    let help = match &matched {
        Some(k) if k.action == KeywordAction::Help => {
            let text = core.live.get().help_reply(&core.settings.program_name);
            match consent::preferences::new_link(&core.db.conn, &contact_id, core.now()).await {
                Ok(token) => Some(format!(
                    "{text} See or change what you receive: {}",
                    consent::preferences::link_url(core, &token)
                )),
                Err(e) => {
                    tracing::error!(error = %e, "could not make a preference link; HELP goes without it");
                    Some(text)
                }
            }
        }
        _ => None,
    };
    let reply = match (&matched, changed) {
        (Some(k), true) => Some(match k.action {
            KeywordAction::OptOut => format!(
                "{}: you are unsubscribed and will receive no more messages on this number. Reply START to resubscribe.",
                core.settings.program_name
            ),
            KeywordAction::OptOutMarketing => format!(
                "{}: you will receive no more offers or promotions on this number; reminders and account messages still come. Reply STOP to stop everything.",
                core.settings.program_name
            ),
            KeywordAction::OptIn => format!(
                "{}: you are subscribed. Msg frequency varies. Msg & data rates may apply. Reply HELP for help, STOP to unsubscribe.",
                core.settings.program_name
            ),
            KeywordAction::Help => help.unwrap_or_default(),
        }),
        _ => None,
    };
    let reply_message_id = match reply {
        Some(body) => {
            let out = outbound::accept(
                core,
                SendRequest {
                    recipient: Recipient::Contact(contact_id.clone()),
                    channel: msg.channel,
                    // Heimdall's own text, written for the channel: only split.
                    content: RequestedContent::Text {
                        body,
                        media_url: None,
                        format: crate::channels::formatting::TextFormat::AsIs,
                        reply_to: None,
                    },
                    origin: Origin::ComplianceReply,
                    idempotency_key: Some(format!("reply:{}", msg.provider_message_id)),
                    purpose: None,
                },
            )
            .await;
            match out {
                Ok(o) => Some(o.message_id),
                Err(e) => {
                    tracing::error!(error = %e, "could not queue the keyword reply");
                    None
                }
            }
        }
        None => None,
    };
    InboundOutcome::Stored {
        inbound_id,
        contact_id,
        keyword: matched.map(|k| k.keyword.to_string()),
        reply_message_id,
    }
}

/// How the inbox row names a keyword's action: as it always did
/// (`optout`, `optin`, `help`), and `optoutmarketing` for the
/// marketing-only opt-out.
fn keyword_action(action: KeywordAction) -> &'static str {
    match action {
        KeywordAction::OptOut => "optout",
        KeywordAction::OptOutMarketing => "optoutmarketing",
        KeywordAction::OptIn => "optin",
        KeywordAction::Help => "help",
    }
}
