//! A contact's timeline, for the contact page: consents with their
//! evidence, suppressions with their origin, windows, and the newest
//! messages with their gate evaluations and status history.

use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;

use crate::channel::Channel;
use crate::compliance::gates::ConsentStatus;
use crate::consent::{ConsentRecord, Suppression};
use crate::contacts::{self, Contact, WindowState};
use crate::entities::{contact, outbound_message, suppression};
use crate::sending::facts::{self, ContactKey};
use crate::sending::outbound::{self, MessageView};
use crate::Core;

/// A suppression with where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct SuppressionView {
    #[serde(flatten)]
    pub suppression: Suppression,
    /// `keyword` (the person replied STOP or similar), `provider` (an
    /// opt-out error code), `api`, `import`, or `staff`.
    pub origin: String,
    /// Not lifted.
    pub active: bool,
}

/// The consent and suppression the gates read on one channel for one
/// purpose.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelStanding {
    pub channel: Channel,
    /// The purpose (`purposes.name`) a message would be sent for.
    pub purpose: String,
    /// The latest consent's status (revoked once it has a revocation
    /// time); none without a consent.
    pub consent: Option<ConsentStatus>,
    /// The suppression the gates read: one that stops everything first,
    /// else a marketing-only one.
    pub suppression: Option<SuppressionView>,
}

/// A contact's window on one channel.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelWindow {
    pub channel: Channel,
    #[serde(flatten)]
    pub window: WindowState,
}

/// Everything about one person, for the contact page.
#[derive(Debug, Clone, Serialize)]
pub struct ContactTimeline {
    pub contact: Contact,
    /// What the gates read for the contact on each channel, by their own
    /// statement (`sending::facts`), so the console never restates which
    /// consent and which suppression count.
    pub standing: Vec<ChannelStanding>,
    /// Newest first, with their evidence.
    pub consents: Vec<ConsentRecord>,
    /// Newest first.
    pub suppressions: Vec<SuppressionView>,
    pub windows: Vec<ChannelWindow>,
    /// The newest 100 outbound messages, newest first, each with every gate
    /// evaluation and its status history.
    pub messages: Vec<MessageView>,
}

fn suppression_origin(reason: &str) -> &'static str {
    match reason {
        "keyword" => "keyword",
        "provider" => "provider",
        "api" => "api",
        "import" => "import",
        "preference_page" => "preference_page",
        _ => "staff",
    }
}

pub async fn contact_timeline(core: &Core, contact_id: &str) -> Result<ContactTimeline, DbErr> {
    let db = &core.db.conn;
    let c = contact::Entity::find_by_id(contact_id)
        .one(db)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("no contact with id {contact_id}")))?;
    let consents = crate::consent::consent_history(core, contact_id).await?;
    let suppressions: Vec<SuppressionView> = suppression::Entity::find()
        .filter(suppression::Column::ContactId.eq(contact_id))
        .order_by_desc(suppression::Column::CreatedAt)
        .all(db)
        .await?
        .into_iter()
        .map(|s| SuppressionView {
            origin: suppression_origin(&s.reason).to_string(),
            active: s.lifted_at.is_none(),
            suppression: Suppression::from(s),
        })
        .collect();
    let mut standing = Vec::new();
    let purposes = crate::consent::purposes::list(db).await?;
    for (channel, purpose) in Channel::ALL
        .into_iter()
        .flat_map(|c| purposes.iter().map(move |p| (c, p)))
    {
        let gate = facts::fact_rows(
            db,
            ContactKey::Id(contact_id),
            channel,
            None,
            Some(&purpose.name),
            None,
        )
        .await?
        .gate;
        let suppression = gate.suppression.as_ref().and_then(|read| {
            suppressions
                .iter()
                .find(|v| {
                    v.active
                        && v.suppression.reason == read.reason
                        && v.suppression.created_at == read.since
                        && [channel.as_str(), "all"].contains(&v.suppression.channel.as_str())
                })
                .cloned()
        });
        standing.push(ChannelStanding {
            channel,
            purpose: purpose.name.clone(),
            consent: gate.consent_status(),
            suppression,
        });
    }
    let now = core.now();
    let mut windows = Vec::new();
    for channel in Channel::ALL {
        windows.push(ChannelWindow {
            channel,
            window: contacts::window(db, contact_id, channel, now).await?,
        });
    }
    let ids: Vec<String> = outbound_message::Entity::find()
        .select_only()
        .column(outbound_message::Column::Id)
        .filter(outbound_message::Column::ContactId.eq(contact_id))
        .order_by_desc(outbound_message::Column::CreatedAt)
        .order_by_desc(outbound_message::Column::Id)
        .limit(100)
        .into_tuple()
        .all(db)
        .await?;
    let mut messages = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(v) = outbound::view(core, &id).await? {
            messages.push(v);
        }
    }
    Ok(ContactTimeline {
        contact: Contact::from(c),
        standing,
        consents,
        suppressions,
        windows,
        messages,
    })
}
