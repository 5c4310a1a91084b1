//! The inbox: one thread per person, newest inbound first, and one
//! conversation with a contact, both ways.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::Serialize;

use crate::channel::Channel;
use crate::compliance::message_state::MessageState;
use crate::contacts::{self, Contact, WindowState};
use crate::entities::{contact, inbound_message, message_status_event, outbound_message};
use crate::sending::outbound::StatusEventView;
use crate::templates::{self, Template};
use crate::Core;

/// One person's conversation as the inbox lists it.
#[derive(Debug, Clone, Serialize)]
pub struct InboxThread {
    pub contact: Contact,
    /// The channel of the last inbound message.
    pub channel: String,
    pub last_inbound_id: String,
    pub last_inbound_text: Option<String>,
    pub last_inbound_at: DateTime<Utc>,
    /// Inbound messages since the last outbound message that went (or is
    /// going) out.
    pub unread: usize,
    pub last_outbound_at: Option<DateTime<Utc>>,
    /// The window on the channel of the last inbound message.
    pub window: WindowState,
    /// Some inbound message looked like an opt-out in other words and waits
    /// for a person to check it.
    pub needs_review: bool,
}

/// Outbound states that did not reach (and will not reach) the person.
pub(crate) const NOT_OUT: [MessageState; 3] = [
    MessageState::Pending,
    MessageState::Blocked,
    MessageState::Cancelled,
];

/// Threads, newest inbound first (one per contact), or only the thread of
/// `contact_id`.
pub async fn inbox(
    core: &Core,
    contact_id: Option<&str>,
    limit: u64,
) -> Result<Vec<InboxThread>, DbErr> {
    let db = &core.db.conn;
    let mut q = inbound_message::Entity::find()
        .select_only()
        .column(inbound_message::Column::ContactId)
        .group_by(inbound_message::Column::ContactId)
        .order_by_desc(Expr::col(inbound_message::Column::ReceivedAt).max())
        .limit(limit.clamp(1, 500));
    if let Some(id) = contact_id {
        q = q.filter(inbound_message::Column::ContactId.eq(id));
    }
    let contact_ids: Vec<String> = q.into_tuple().all(db).await?;
    let now = core.now();
    let mut threads = Vec::with_capacity(contact_ids.len());
    for id in contact_ids {
        let Some(c) = contact::Entity::find_by_id(id.as_str()).one(db).await? else {
            continue;
        };
        let Some(last) = inbound_message::Entity::find()
            .filter(inbound_message::Column::ContactId.eq(&id))
            .order_by_desc(inbound_message::Column::ReceivedAt)
            .order_by_desc(inbound_message::Column::Id)
            .one(db)
            .await?
        else {
            continue;
        };
        let last_outbound_at: Option<DateTime<Utc>> = outbound_message::Entity::find()
            .select_only()
            .column(outbound_message::Column::CreatedAt)
            .filter(outbound_message::Column::ContactId.eq(&id))
            .filter(outbound_message::Column::State.is_not_in(NOT_OUT.map(|s| s.as_str())))
            .order_by_desc(outbound_message::Column::CreatedAt)
            .into_tuple()
            .one(db)
            .await?;
        let mut unread =
            inbound_message::Entity::find().filter(inbound_message::Column::ContactId.eq(&id));
        if let Some(at) = last_outbound_at {
            unread = unread.filter(inbound_message::Column::ReceivedAt.gt(at));
        }
        let unread = unread.count(db).await?;
        let needs_review = inbound_message::Entity::find()
            .filter(inbound_message::Column::ContactId.eq(&id))
            .filter(inbound_message::Column::NeedsReview.eq(true))
            .filter(inbound_message::Column::ReviewedAt.is_null())
            .count(db)
            .await?
            > 0;
        let channel: Channel = last.channel.parse().unwrap_or(Channel::WhatsApp);
        threads.push(InboxThread {
            window: contacts::window(db, &id, channel, now).await?,
            contact: Contact::from(c),
            channel: last.channel,
            last_inbound_id: last.id,
            last_inbound_text: last.body.or(last.button_text),
            last_inbound_at: last.received_at,
            unread: usize::try_from(unread).unwrap_or(usize::MAX),
            last_outbound_at,
            needs_review,
        });
    }
    Ok(threads)
}

/// One message in a conversation.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "direction", rename_all = "snake_case")]
pub enum ConversationItem {
    Inbound {
        id: String,
        channel: String,
        text: Option<String>,
        media: Vec<String>,
        button_text: Option<String>,
        /// opt_out, opt_in or help, when the text was a keyword.
        keyword_action: Option<String>,
        needs_review: bool,
        /// Who reviewed a flagged message, when, and what they decided.
        reviewed_by: Option<String>,
        reviewed_at: Option<DateTime<Utc>>,
        review_outcome: Option<String>,
        at: DateTime<Utc>,
    },
    Outbound {
        id: String,
        channel: String,
        /// `template` or `freeform`.
        kind: String,
        /// The text as sent (a template rendered with its variables).
        text: Option<String>,
        template_name: Option<String>,
        state: MessageState,
        /// The gate that refused or holds it.
        block_reason: Option<String>,
        error_code: Option<i32>,
        /// Why it failed or was not sent (a later part stopped by an earlier one says so).
        error_message: Option<String>,
        /// A text sent in parts: this part's number, of how many.
        part: Option<(i32, i32)>,
        /// The attachment's link, when one went with it.
        media_url: Option<String>,
        source: crate::compliance::message_source::MessageSource,
        actor: String,
        at: DateTime<Utc>,
        status_history: Vec<StatusEventView>,
    },
}

impl ConversationItem {
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            ConversationItem::Inbound { at, .. } | ConversationItem::Outbound { at, .. } => *at,
        }
    }

    /// Where it goes in the conversation: by time, the parts of one text in their order.
    fn order(&self) -> (DateTime<Utc>, i32) {
        match self {
            ConversationItem::Outbound {
                part: Some((i, _)), ..
            } => (self.at(), *i),
            _ => (self.at(), 0),
        }
    }
}

/// The newest `limit` messages with a contact, both ways, oldest first.
pub async fn conversation(
    core: &Core,
    contact_id: &str,
    limit: u64,
) -> Result<Vec<ConversationItem>, DbErr> {
    let db = &core.db.conn;
    let limit = limit.clamp(1, 1_000);
    let inbound = inbound_message::Entity::find()
        .filter(inbound_message::Column::ContactId.eq(contact_id))
        .order_by_desc(inbound_message::Column::ReceivedAt)
        .order_by_desc(inbound_message::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    let outbound = outbound_message::Entity::find()
        .filter(outbound_message::Column::ContactId.eq(contact_id))
        .order_by_desc(outbound_message::Column::CreatedAt)
        .order_by_desc(outbound_message::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    let ids: Vec<String> = outbound.iter().map(|m| m.id.clone()).collect();
    let mut history: HashMap<String, Vec<StatusEventView>> = HashMap::new();
    for chunk in ids.chunks(500) {
        for e in message_status_event::Entity::find()
            .filter(message_status_event::Column::MessageId.is_in(chunk.to_vec()))
            .order_by_asc(message_status_event::Column::OccurredAt)
            .order_by_asc(message_status_event::Column::Id)
            .all(db)
            .await?
        {
            history
                .entry(e.message_id.clone())
                .or_default()
                .push(StatusEventView {
                    status: e.status,
                    error_code: e.error_code,
                    source: e.source,
                    at: e.occurred_at,
                });
        }
    }
    let mut templates_by_name: HashMap<String, Option<Template>> = HashMap::new();
    let mut items: Vec<ConversationItem> = Vec::with_capacity(inbound.len() + outbound.len());
    for m in inbound {
        items.push(ConversationItem::Inbound {
            media: serde_json::from_str(&m.media).unwrap_or_default(),
            id: m.id,
            channel: m.channel,
            text: m.body,
            button_text: m.button_text,
            keyword_action: m.keyword_action,
            needs_review: m.needs_review,
            reviewed_by: m.reviewed_by,
            reviewed_at: m.reviewed_at,
            review_outcome: m.review_outcome,
            at: m.received_at,
        });
    }
    for m in outbound {
        let text = match (&m.kind[..], &m.template_name) {
            ("template", Some(name)) => {
                if !templates_by_name.contains_key(name) {
                    let t = templates::find_by_name(db, name).await?;
                    templates_by_name.insert(name.clone(), t);
                }
                templates_by_name
                    .get(name)
                    .and_then(|t| t.as_ref())
                    .map(|t| t.render(&serde_json::from_str(&m.variables).unwrap_or_default()))
            }
            // The body and its choices, as the person saw them.
            ("interactive", _) => {
                crate::channels::interactive::Interactive::from_stored(m.interactive.as_deref())
                    .ok()
                    .map(|c| c.plain_text())
            }
            .or_else(|| m.body.clone()),
            _ => m.body.clone(),
        };
        items.push(ConversationItem::Outbound {
            status_history: history.remove(&m.id).unwrap_or_default(),
            id: m.id,
            channel: m.channel,
            kind: m.kind,
            text,
            template_name: m.template_name,
            state: m.state,
            block_reason: m.block_reason,
            error_code: m.error_code,
            error_message: m.error_message,
            part: m.part_index.zip(m.part_count),
            media_url: m.media_url,
            source: m.source,
            actor: m.actor,
            at: m.created_at,
        });
    }
    items.sort_by_key(ConversationItem::order);
    let excess = items
        .len()
        .saturating_sub(usize::try_from(limit).unwrap_or(usize::MAX));
    items.drain(..excess);
    Ok(items)
}
