//! The send path: accept a message (write it, evaluate the gates, audit,
//! enqueue), send it from a worker (claim, evaluate again, wait for the
//! limits, call the provider, record), and move it forward on status
//! reports, classifying failures with the one error table.
//!
//! Every outbound message from every source comes through [`accept`]; no
//! other code calls a provider to send a message.
//!
//! One file per step: `accept`, `evaluate` (facts and the gates' verdict),
//! `worker`, `failures` (with parts and the SMS fallback), `status`,
//! `reading`; used as `outbound::name`.

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
pub use crate::compliance::message_source::MessageSource;
use crate::compliance::message_state::{MessageState, ProviderStatus};
use crate::compliance::provider_errors::{self, ErrorAction, ErrorClass, ProviderFailure};
use crate::contacts;
use crate::entities::{campaign, message_status_event, outbound_message, staff_user};
use crate::phone::PhoneNumber;
use crate::sending::facts::{self, ContactKey, FactRows};
use crate::sending::limits::{LimitsUnavailable, TierReservation};
use crate::sending::state::moving;
use crate::store::message_writes::{EvaluationUpdate, RowWrite, SentUpdate};
use crate::templates::{self, Template};
use crate::Core;

mod accept;
mod evaluate;
mod failures;
mod reading;
mod status;
mod worker;

pub use accept::*;
pub use evaluate::*;
pub use failures::*;
pub use reading::*;
pub use status::*;
pub use worker::*;

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
        /// `Api`, `Reminder` or `Schedule`.
        source: MessageSource,
        reminder_id: Option<String>,
    },
    Campaign {
        campaign_id: String,
    },
    Inbox {
        staff: StaffUser,
        /// Their address, for the staff audit row written with the reply.
        ip: Option<String>,
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
    /// What it is sent for (`purposes.name`), checked by the consent gate:
    /// a template's is its own (naming another is refused); a text that
    /// names none is for `HEIMDALL_DEFAULT_PURPOSE`.
    pub purpose: Option<String>,
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
    source: MessageSource,
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
            ..base(*source, principal.actor())
        },
        Origin::Campaign { campaign_id } => OriginColumns {
            campaign_id: Some(campaign_id.clone()),
            ..base(MessageSource::Campaign, format!("campaign:{campaign_id}"))
        },
        Origin::Inbox { staff, .. } => base(MessageSource::Inbox, format!("staff:{}", staff.id)),
        Origin::Fallback { of } => OriginColumns {
            fallback_of: Some(of.clone()),
            ..base(MessageSource::Fallback, "system:fallback".into())
        },
        Origin::ComplianceReply => base(MessageSource::Compliance, "system:keyword".into()),
        Origin::OptInConfirmation => base(MessageSource::Optin, "system:optin".into()),
        Origin::Resend { original } => OriginColumns {
            source: original.source,
            campaign_id: original.campaign_id.clone(),
            automation_id: original.automation_id.clone(),
            reminder_id: original.reminder_id.clone(),
            fallback_of: original.fallback_of.clone(),
            actor: original.actor.clone(),
        },
    }
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
