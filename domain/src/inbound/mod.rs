//! Inbound traffic from Twilio and Meta, after the signature was checked:
//! dedup, the person's message (keywords first), service windows, and
//! delivery statuses. Also the webhook audit log and the local spool that
//! keeps events when the database is away.
//!
//! A STOP is written to the database (consent revoked, suppression added)
//! before the webhook answers, so no gate evaluated afterwards can pass.
//!
//! It never checks a signature or speaks HTTP (the server's webhook routes
//! do both before calling in here), and never sends: the reply a keyword
//! calls for is queued through [`outbound::accept`] like any other message.
//!
//! The entry points are here ([`handle_message`], [`handle_status`],
//! [`set_tier_limit`]); one file per step behind them, all used as
//! `inbound::name`: `parse` (Twilio's form and Meta's JSON read into
//! messages, statuses and a tier limit; a message's keyword), `dedup` (an
//! event claimed once, in Redis and in the database), `persist` (a message
//! stored with what its keyword changes, and the reply it calls for),
//! `audit_log` (every webhook request recorded, secrets redacted),
//! `spool` (events kept on local disk while the database is away, and
//! replayed) and `take` (a webhook's events taken whole: handled, or
//! spooled, and the request recorded; what the routes call).

use sea_orm::EntityTrait;
use serde::Serialize;

use crate::channel::Channel;
use crate::compliance::keywords::KeywordAction;
use crate::entities::processed_webhook_event;
use crate::phone::PhoneNumber;
use crate::sending::outbound::{self, StatusReport};
use crate::Core;

mod audit_log;
mod dedup;
mod parse;
mod persist;
mod spool;
mod take;

pub use audit_log::{
    prune_webhook_audit, record_refused, record_webhook, redact_body, refused_body,
    RefusedWebhooks, WebhookRecord, REFUSED_BODY_BYTES, REFUSED_PER_MINUTE,
};
pub use dedup::{purge_dedup, DEDUP_TTL};
pub use parse::{parse_meta, parse_meta_limit, InboundMessage, MetaEvents};
pub use spool::{replay_spool, spool, SpooledEvent, SpooledPayload, StatusReportData};
pub use take::{
    record_or_spool, spool_logged, take_meta_events, take_status, twilio_status_report, Taken,
};

use dedup::{claim_db, claim_redis, release_redis};
use persist::{reply_to_keyword, store_message, store_plain_message};

/// What handling an inbound message did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum InboundOutcome {
    Duplicate,
    /// Not on the phone allowlist: recorded in the audit log only.
    Ignored,
    Stored {
        inbound_id: String,
        contact_id: String,
        keyword: Option<String>,
        /// The reply queued (STOP confirmation, HELP), if any.
        reply_message_id: Option<String>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    #[error("{0}")]
    Malformed(String),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

/// Handle one inbound message: dedup, keywords first, store, open the
/// window, and queue the reply a keyword calls for.
pub async fn handle_message(
    core: &Core,
    msg: InboundMessage,
) -> Result<InboundOutcome, InboundError> {
    handle_message_audited(core, msg, None)
        .await
        .map(|h| h.outcome)
}

/// What [`handle_message_audited`] did.
#[derive(Debug)]
pub struct Handled {
    pub outcome: InboundOutcome,
    /// The webhook's audit row was written with the message (verdict
    /// `accepted`); otherwise the caller writes it.
    pub audited: bool,
}

/// Handle an inbound message; when `audit` is given, its audit row (verdict
/// `accepted`) is written in the same transaction as the message, if the
/// message is stored on the common path.
pub async fn handle_message_audited(
    core: &Core,
    msg: InboundMessage,
    audit: Option<&WebhookRecord>,
) -> Result<Handled, InboundError> {
    let phone = match msg.channel {
        Channel::WhatsApp => PhoneNumber::parse(&msg.from, core.settings.default_region)
            .or_else(|_| PhoneNumber::from_wa_id(&msg.from)),
        Channel::Sms => PhoneNumber::parse(&msg.from, core.settings.default_region),
    }
    .map_err(|e| InboundError::Malformed(format!("From: {e}")))?;
    let unaudited = |outcome| Handled {
        outcome,
        audited: false,
    };
    let matched = msg.keyword(&core.settings.marketing_stop_phrases);
    // Outside the phone allowlist a message is only logged, but an opt-out
    // is honoured from every number (nothing is sent to them anyway: the
    // `not_allowlisted` gate refuses it).
    let opt_out = matched.as_ref().is_some_and(|k| {
        matches!(
            k.action,
            KeywordAction::OptOut | KeywordAction::OptOutMarketing
        )
    });
    if !opt_out && !core.live.get().allows(phone.as_str()) {
        return Ok(unaudited(InboundOutcome::Ignored));
    }
    let key = format!("{}:msg:{}", msg.provider, msg.provider_message_id);
    if !claim_redis(core, &key).await {
        return Ok(unaudited(InboundOutcome::Duplicate));
    }
    if matched.is_none() {
        match store_plain_message(core, &msg, &phone, &key, audit).await {
            Ok(Some(outcome)) => {
                return Ok(Handled {
                    outcome,
                    audited: audit.is_some(),
                })
            }
            // A conflict (a redelivery, or a dedup entry to expire first):
            // the general path below sorts it out.
            Ok(None) => {}
            Err(e) => {
                release_redis(core, &key).await;
                return Err(e);
            }
        }
    }
    match store_message(core, &msg, &phone, &key, matched).await {
        Ok(Some(stored)) => Ok(unaudited(reply_to_keyword(core, &msg, stored).await)),
        Ok(None) => Ok(unaudited(InboundOutcome::Duplicate)),
        Err(e) => {
            release_redis(core, &key).await;
            Err(e)
        }
    }
}

/// Apply a delivery status once (dedup by sid and status).
pub async fn handle_status(core: &Core, report: StatusReport) -> Result<bool, sea_orm::DbErr> {
    let sid = report
        .provider_sid
        .clone()
        .or_else(|| report.message_id.clone())
        .unwrap_or_default();
    let key = format!(
        "{}:status:{sid}:{}",
        report.source,
        report.status.to_ascii_lowercase()
    );
    if !claim_redis(core, &key).await {
        return Ok(false);
    }
    let source = report.source.clone();
    let res = async {
        if !claim_db(&core.db.conn, &key, &source, core.now()).await? {
            return Ok(false);
        }
        if let Err(e) = outbound::apply_status(core, report).await {
            // Release the claim so a redelivery or the spool replay applies it.
            let _ = processed_webhook_event::Entity::delete_by_id(
                key.chars().take(200).collect::<String>(),
            )
            .exec(&core.db.conn)
            .await;
            return Err(e);
        }
        Ok(true)
    }
    .await;
    if res.is_err() {
        release_redis(core, &key).await;
    }
    res
}

/// Persist a new tier limit (from Meta or an admin) and apply it, in this
/// process at once and in every other within seconds ([`crate::settings::runtime`]).
pub async fn set_tier_limit(
    core: &Core,
    limit: Option<u64>,
    actor: &str,
) -> Result<(), sea_orm::DbErr> {
    let before = core.limits.tier_limit();
    crate::settings::store::put(
        core,
        crate::settings::runtime::keys::TIER_LIMIT,
        &serde_json::json!(limit),
        actor,
    )
    .await?;
    crate::audit::record_infra_change(
        &core.db.conn,
        actor,
        "tier_limit",
        "messaging limit changed",
        Some(serde_json::json!(before)),
        Some(serde_json::json!(limit)),
        core.now(),
    )
    .await?;
    crate::settings::runtime::refresh(core).await?;
    Ok(())
}
