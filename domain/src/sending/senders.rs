//! Pausing a sender after a fault of ours, and what re-activating it does.
//!
//! Some provider errors say nothing about the recipient and everything
//! about the sender (63007: our From is not a WhatsApp sender; 131048:
//! Meta's spam rate limit; a locked or unregistered account). Every further
//! message would fail the same way, so the sender is paused at the first
//! one: one alert (not one per message), its waiting messages held by the
//! `sender_paused` gate, the ones that failed kept for resend. When an
//! admin fixes the sender and re-activates it, the held messages are
//! released and the failed ones sent again, each through the gates afresh
//! (a STOP since then blocks it).
//!
//! This module never sends by itself: a resend is a new message through
//! [`outbound::accept`] with the original's origin and an idempotency key
//! (`resend:<id>`), so re-activating twice resends nothing twice.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QuerySelect, Set};

use crate::access::accounts::Role;
use crate::access::authz::Sender;
use crate::alerts::{self, Alert};
use crate::channel::Channel;
use crate::compliance::message_source::MessageSource;
use crate::compliance::message_state::MessageState;
use crate::compliance::provider_errors::{ErrorAction, ErrorClass, ProviderFailure};
use crate::entities::{channel_config, outbound_message};
use crate::sending::outbound::{self, Origin, Recipient, RequestedContent, SendRequest};
use crate::Core;

/// What a held message is marked with (`block_reason`) while its sender is
/// paused.
pub const HELD_REASON: &str = "sender_paused";

/// Pause the channel's sender after `class` (a [`ErrorAction::PauseSender`]
/// failure). The first failure pauses it and raises one alert; later ones
/// while it is paused change nothing.
pub async fn pause(
    core: &Core,
    channel: Channel,
    class: &ErrorClass,
) -> Result<(), sea_orm::DbErr> {
    let Some((kind, address)) = crate::access::authz::sender_key(core, channel) else {
        return Ok(());
    };
    let now = core.now();
    let reason = match class.code {
        Some(code) => format!("error {code}: {}", class.meaning),
        None => class.meaning.clone(),
    };
    let paused = channel_config::Entity::update_many()
        .col_expr(channel_config::Column::PausedAt, Expr::value(Some(now)))
        .col_expr(
            channel_config::Column::PausedReason,
            Expr::value(Some(reason.clone())),
        )
        .col_expr(channel_config::Column::UpdatedAt, Expr::value(now))
        .filter(channel_config::Column::Kind.eq(kind))
        .filter(channel_config::Column::Address.eq(&address))
        .filter(channel_config::Column::PausedAt.is_null())
        .exec(&core.db.conn)
        .await?
        .rows_affected
        > 0;
    if !paused {
        return Ok(());
    }
    crate::audit::record_infra_change(
        &core.db.conn,
        "system (provider error)",
        &format!("sender:{kind}:{address}"),
        "paused",
        None,
        Some(serde_json::json!({"paused_reason": reason})),
        now,
    )
    .await?;
    tracing::error!(%channel, sender = %address, %reason, "sender paused: its messages wait until an admin re-activates it");
    alerts::raise(
        core,
        Alert {
            key: format!("sender_paused:{kind}:{address}"),
            title: "Sender paused".into(),
            description: format!(
                "The {channel} sender {address} was paused after {reason}. This is a fault of the sender, not of the recipients: nothing more goes out from it, and its messages wait. Fix the sender, then re-activate it under Settings → Senders; the waiting messages go then, each through the gates again."
            ),
            error_code: class.code,
            meaning: Some(class.meaning.clone()),
            message_id: None,
            campaign_id: None,
        },
    )
    .await;
    Ok(())
}

/// What re-activating a sender released.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Released {
    /// Held messages sent on their way again.
    pub held: usize,
    /// Failed messages sent again as new messages.
    pub resent: usize,
}

/// An admin re-activated a sender that was paused since `paused_at`:
/// release its held messages and resend those that failed with a
/// pausing error since shortly before the pause.
pub async fn release(
    core: &Core,
    row: &channel_config::Model,
    paused_at: DateTime<Utc>,
) -> Result<Released, sea_orm::DbErr> {
    let Some(channel) = channel_of(core, row) else {
        return Ok(Released::default());
    };
    let now = core.now();
    let held: Vec<String> = outbound_message::Entity::find()
        .select_only()
        .column(outbound_message::Column::Id)
        .filter(outbound_message::Column::Channel.eq(channel.as_str()))
        .filter(outbound_message::Column::State.eq(MessageState::Deferred.as_str()))
        .filter(outbound_message::Column::BlockReason.eq(HELD_REASON))
        .into_tuple()
        .all(&core.db.conn)
        .await?;
    outbound::release_held(&core.db.conn, &held, HELD_REASON, now).await?;
    for id in &held {
        if let Err(e) = core.queue.enqueue_send(id.clone(), None).await {
            tracing::error!(message_id = %id, error = %e, "could not enqueue a released message; housekeeping will retry");
        }
    }
    // The message whose failure paused the sender failed just before the
    // pause; others in flight at that moment failed just after.
    let failed = outbound_message::Entity::find()
        .filter(outbound_message::Column::Channel.eq(channel.as_str()))
        .filter(outbound_message::Column::State.is_in([
            MessageState::Failed.as_str(),
            MessageState::Undelivered.as_str(),
        ]))
        .filter(outbound_message::Column::FailedAt.gte(paused_at - Duration::minutes(5)))
        .filter(outbound_message::Column::ErrorCode.is_not_null())
        .all(&core.db.conn)
        .await?;
    let errors = core.live.get().errors.clone();
    let mut resent = 0;
    for m in failed {
        let pausing = m.error_code.is_some_and(|code| {
            errors
                .classify(
                    &ProviderFailure::Code {
                        code: i64::from(code),
                        http_status: None,
                    },
                    channel,
                )
                .action
                == ErrorAction::PauseSender
        });
        if !pausing || m.source == MessageSource::Compliance {
            continue;
        }
        let content = match (&m.kind[..], &m.template_name) {
            ("template", Some(name)) => RequestedContent::Template {
                name: name.clone(),
                variables: serde_json::from_str(&m.variables).unwrap_or_default(),
            },
            ("interactive", _) => {
                match crate::channels::interactive::Interactive::from_stored(
                    m.interactive.as_deref(),
                ) {
                    Ok(content) => RequestedContent::Interactive {
                        content,
                        reply_to: None,
                    },
                    Err(e) => {
                        tracing::warn!(message_id = %m.id, error = %e, "not resent");
                        continue;
                    }
                }
            }
            _ => RequestedContent::Text {
                body: text_from(&core.db.conn, &m).await?,
                media_url: m.media_url.clone(),
                format: crate::channels::formatting::TextFormat::AsIs,
                reply_to: None,
            },
        };
        let recipient = match &m.contact_id {
            Some(id) => Recipient::Contact(id.clone()),
            None => Recipient::Phone(m.to_address.clone()),
        };
        let res = outbound::accept(
            core,
            SendRequest {
                recipient,
                channel,
                content,
                idempotency_key: Some(format!("resend:{}", m.id)),
                purpose: None,
                origin: Origin::Resend {
                    original: Box::new(m.clone()),
                },
            },
        )
        .await;
        match res {
            Ok(o) if !o.duplicate => resent += 1,
            Ok(_) => {}
            Err(outbound::AcceptError::Db(e)) => return Err(e),
            Err(e) => tracing::warn!(message_id = %m.id, error = %e, "could not resend a message"),
        }
    }
    tracing::info!(sender = %row.address, held = held.len(), resent, "sender re-activated: waiting messages released");
    Ok(Released {
        held: held.len(),
        resent,
    })
}

/// The text to send again for a failed message: its body, and for a part of a longer text
/// the later parts its failure stopped (cancelled, never sent) after it, in order. (Already
/// converted for the channel; it is split again as it goes.)
async fn text_from(
    db: &impl sea_orm::ConnectionTrait,
    m: &outbound_message::Model,
) -> Result<String, sea_orm::DbErr> {
    let mut text = m.body.clone().unwrap_or_default();
    if let (Some(first), Some(index)) = (&m.part_of, m.part_index) {
        for later in outbound::parts_of(db, first).await? {
            if later.part_index > Some(index)
                && later.state == MessageState::Cancelled
                && later.provider_sid.is_none()
            {
                text.push_str(later.body.as_deref().unwrap_or_default());
            }
        }
    }
    Ok(text)
}

/// The channel a sender row sends on, under the current settings.
fn channel_of(core: &Core, row: &channel_config::Model) -> Option<Channel> {
    Channel::ALL.into_iter().find(|c| {
        crate::access::authz::sender_key(core, *c)
            .is_some_and(|(kind, address)| kind == row.kind && address == row.address)
    })
}

#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error("no sender with id {0}")]
    NotFound(String),
    #[error("only an admin may activate or change a sender")]
    Forbidden,
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

/// Activate or deactivate a sender: admins only, always recorded.
pub async fn set_sender_active(
    core: &Core,
    id: &str,
    active: bool,
    actor: &str,
    role: Role,
) -> Result<Sender, SenderError> {
    if role != Role::Admin {
        return Err(SenderError::Forbidden);
    }
    let m = channel_config::Entity::find_by_id(id)
        .one(&core.db.conn)
        .await?
        .ok_or_else(|| SenderError::NotFound(id.to_string()))?;
    let now = core.clock.now();
    let before = serde_json::json!({
        "active": m.active,
        "activated_by": m.activated_by,
        "paused_reason": m.paused_reason,
    });
    let target = format!("sender:{}:{}", m.kind, m.address);
    // Activating a paused sender is the admin saying it is fixed.
    let was_paused = m.paused_at.filter(|_| active);
    let mut am: channel_config::ActiveModel = m.into();
    am.active = Set(active);
    am.activated_by = Set(active.then(|| actor.to_string()));
    am.activated_at = Set(active.then_some(now));
    if was_paused.is_some() {
        am.paused_at = Set(None);
        am.paused_reason = Set(None);
    }
    am.updated_at = Set(now);
    let updated = am.update(&core.db.conn).await?;
    crate::audit::record_infra_change(
        &core.db.conn,
        actor,
        &target,
        match (active, was_paused.is_some()) {
            (true, true) => "re-activated after a pause",
            (true, false) => "activated",
            (false, _) => "deactivated",
        },
        Some(before),
        Some(serde_json::json!({"active": active, "activated_by": actor})),
        now,
    )
    .await?;
    if let Some(paused_at) = was_paused {
        release(core, &updated, paused_at).await?;
    }
    Ok(updated.into())
}
