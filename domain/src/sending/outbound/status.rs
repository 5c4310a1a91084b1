//! Provider status reports moving a message forward (never back).

use super::*;

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
    // The worker's record of the provider's answer was lost (it stopped mid-call, or the
    // answer never came: an unconfirmed send): take the sid from here. Only a message still
    // `sending` waits for it: one waiting for a retry after a reported failure keeps no sid
    // (a late report of the failed attempt must not make it look handed over, which would
    // keep every worker from claiming it again).
    if m.provider_sid.is_none() && m.state == MessageState::Sending {
        if let Some(sid) = &report.provider_sid {
            let adopted = outbound_message::Entity::update_many()
                .col_expr(
                    outbound_message::Column::ProviderSid,
                    Expr::value(Some(sid.clone())),
                )
                .filter(outbound_message::Column::Id.eq(&m.id))
                .filter(outbound_message::Column::State.eq(MessageState::Sending.as_str()))
                .filter(outbound_message::Column::ProviderSid.is_null())
                .exec(&core.db.conn)
                .await?;
            if adopted.rows_affected == 1 {
                m.provider_sid = Some(sid.clone());
                // No longer unconfirmed: the provider says it has the message.
                outbound_message::Entity::update_many()
                    .col_expr(
                        outbound_message::Column::ErrorMessage,
                        Expr::value(Option::<String>::None),
                    )
                    .col_expr(
                        outbound_message::Column::ErrorCode,
                        Expr::value(Option::<i32>::None),
                    )
                    .filter(outbound_message::Column::Id.eq(&m.id))
                    .filter(outbound_message::Column::ErrorMessage.starts_with(UNCONFIRMED))
                    .exec(&core.db.conn)
                    .await?;
                // Handed over after all: the part after it may go (a failure report
                // stops the later parts instead, below).
                if !status.is_failure() {
                    if let Some(next) = release_next_part(&core.db.conn, &m, now).await? {
                        enqueue(core, &next, None).await;
                    }
                }
            }
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
        let current = m.state;
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
                m.state = next;
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
