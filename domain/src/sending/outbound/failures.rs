//! A provider's failure classified by the one error table and acted on (retry,
//! fail, suppress, pause the sender, fall back to SMS), and the parts of a text
//! sent in parts released or stopped.

use super::*;

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
    let final_state = from_callback.then_some(fresh.state);
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
    // An unconfirmed send may yet be reported delivered: its later parts wait with it.
    let unconfirmed = class.action == ErrorAction::Unconfirmed;
    if !retrying && !falls_back && !unconfirmed {
        let state = if class.action == ErrorAction::Fallback {
            "undelivered"
        } else {
            "failed"
        };
        stop_later_parts(&core.db.conn, &fresh, state, now).await?;
    }
    match class.action {
        ErrorAction::Unconfirmed => {
            // The provider may have the message: it stays `sending` (and is never claimed
            // again) with the reason noted, for the provider's status report to settle it
            // (`apply_status` takes the sid from the report); if none comes, housekeeping
            // fails it for a person to check (`resolve_stuck_sending`), with an alert.
            moving(&[MessageState::Sending], MessageState::Sending)
                .col_expr(
                    outbound_message::Column::ErrorMessage,
                    Expr::value(Some(format!("{UNCONFIRMED}{}", class.meaning))),
                )
                .col_expr(outbound_message::Column::ErrorCode, Expr::value(code32))
                .col_expr(outbound_message::Column::UpdatedAt, Expr::value(now))
                .filter(outbound_message::Column::Id.eq(&m.id))
                .filter(outbound_message::Column::ProviderSid.is_null())
                .exec(&core.db.conn)
                .await?;
            tracing::warn!(message_id = %m.id, "send unconfirmed: waiting for the provider's status report, not re-sent");
        }
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

pub(super) fn final_state_or(
    reported: Option<MessageState>,
    default: MessageState,
) -> MessageState {
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
        let state = before.state;
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
pub(super) async fn fall_back_to_sms(
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
            // The SMS goes for what the WhatsApp message went for.
            purpose: original.purpose.clone(),
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
