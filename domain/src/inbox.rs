//! The inbox as a team works it: a person reviews a message that read as an
//! opt-out in other words (it suppressed the number on arrival), a
//! conversation is assigned to someone, staff pick canned replies, and the
//! console counts what waits for someone.
//!
//! Never sends anything: replies go through `outbound::accept` like every
//! other message. Every change names who made it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
    Statement, TransactionTrait,
};
use serde::Serialize;

use crate::access::accounts::Role;
use crate::channel::Channel;
use crate::clock::new_id;
use crate::consent;
use crate::entities::{
    canned_reply, contact, conversation_assignment, inbound_message, staff_user,
};
use crate::Core;

#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    #[error("{0}")]
    NotFound(String),
    #[error("this message was not flagged as a possible opt-out")]
    NotFlagged,
    #[error("already reviewed by {by} at {at}")]
    AlreadyReviewed { by: String, at: DateTime<Utc> },
    /// Bad input, with the input it is about (`to`, `title`, `body`).
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

/// What a reviewer decided about a message that read as an opt-out in other words. Such
/// a message suppressed the number when it arrived (a revocation in any reasonable words
/// counts at once); the review never lifts that: only the person's own START does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewOutcome {
    /// It was one: the suppression stands, and the review says so.
    OptOut,
    /// It was not: the suppression still stands (only a START from the number lifts it),
    /// and the contact is flagged for a person to ask them to send START.
    NotOptOut,
}

impl ReviewOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewOutcome::OptOut => "opt_out",
            ReviewOutcome::NotOptOut => "not_opt_out",
        }
    }
}

/// Record a review of a flagged inbound message, once: the reviewer, the time and the
/// outcome on the message; for [`ReviewOutcome::NotOptOut`] while the number is still
/// suppressed, the contact is flagged for manual outreach. A second review, even a
/// concurrent one, is refused and changes nothing.
pub async fn review_possible_opt_out(
    core: &Core,
    inbound_id: &str,
    outcome: ReviewOutcome,
    reviewer: &str,
) -> Result<inbound_message::Model, InboxError> {
    let now = core.now();
    let txn = core.db.conn.begin().await?;
    let m = inbound_message::Entity::find_by_id(inbound_id)
        .one(&txn)
        .await?
        .ok_or_else(|| InboxError::NotFound(format!("no inbound message with id {inbound_id}")))?;
    if !m.needs_review {
        return Err(InboxError::NotFlagged);
    }
    if let (Some(at), by) = (m.reviewed_at, &m.reviewed_by) {
        return Err(InboxError::AlreadyReviewed {
            by: by.clone().unwrap_or_default(),
            at,
        });
    }
    // A compare-and-set: a concurrent review that got there first leaves nothing to update.
    let Some(reviewed) = inbound_message::Entity::update_many()
        .col_expr(inbound_message::Column::ReviewedAt, Expr::value(Some(now)))
        .col_expr(
            inbound_message::Column::ReviewedBy,
            Expr::value(Some(reviewer.to_string())),
        )
        .col_expr(
            inbound_message::Column::ReviewOutcome,
            Expr::value(Some(outcome.as_str().to_string())),
        )
        .filter(inbound_message::Column::Id.eq(inbound_id))
        .filter(inbound_message::Column::ReviewedAt.is_null())
        .exec_with_returning(&txn)
        .await?
        .into_iter()
        .next()
    else {
        return Err(InboxError::AlreadyReviewed {
            by: "someone else".into(),
            at: now,
        });
    };
    let channel: Channel = m.channel.parse().unwrap_or(Channel::WhatsApp);
    if outcome == ReviewOutcome::NotOptOut
        && consent::active_suppression(&txn, &m.contact_id, channel)
            .await?
            .is_some()
    {
        crate::contacts::flag_manual_outreach(
            &txn,
            &m.contact_id,
            &format!(
                "{reviewer} reviewed their message as not an opt-out; it still stopped {channel} messages: ask them to send START"
            ),
            now,
        )
        .await?;
    }
    txn.commit().await?;
    Ok(reviewed)
}

/// Who a conversation is assigned to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assignment {
    pub contact_id: String,
    pub assigned_to: String,
    pub assigned_by: String,
    pub assigned_at: DateTime<Utc>,
}

impl From<conversation_assignment::Model> for Assignment {
    fn from(m: conversation_assignment::Model) -> Self {
        Assignment {
            contact_id: m.contact_id,
            assigned_to: m.assigned_to,
            assigned_by: m.assigned_by,
            assigned_at: m.assigned_at,
        }
    }
}

/// The channel a staff reply to the contact goes on: the one the person
/// last wrote on (their newest message), WhatsApp when they never wrote.
pub async fn reply_channel(
    db: &impl ConnectionTrait,
    contact_id: &str,
) -> Result<Channel, sea_orm::DbErr> {
    let last = inbound_message::Entity::find()
        .filter(inbound_message::Column::ContactId.eq(contact_id))
        .order_by_desc(inbound_message::Column::ReceivedAt)
        .order_by_desc(inbound_message::Column::Id)
        .one(db)
        .await?;
    Ok(last
        .and_then(|m| m.channel.parse().ok())
        .unwrap_or(Channel::WhatsApp))
}

/// Assign a contact's conversation to an active staff member who may reply (operator or
/// above), or unassign it (`to` = `None`).
pub async fn assign(
    core: &Core,
    contact_id: &str,
    to: Option<&str>,
    by: &str,
) -> Result<Option<Assignment>, InboxError> {
    if contact::Entity::find_by_id(contact_id)
        .one(&core.db.conn)
        .await?
        .is_none()
    {
        return Err(InboxError::NotFound(format!(
            "no contact with id {contact_id}"
        )));
    }
    let txn = core.db.conn.begin().await?;
    conversation_assignment::Entity::delete_by_id(contact_id)
        .exec(&txn)
        .await?;
    let Some(to) = to else {
        txn.commit().await?;
        return Ok(None);
    };
    let email = to.trim().to_lowercase();
    let staff = staff_user::Entity::find()
        .filter(staff_user::Column::Email.eq(&email))
        .one(&txn)
        .await?;
    match staff {
        Some(s)
            if s.active
                && s.role
                    .parse::<Role>()
                    .is_ok_and(|r| r.allows(Role::Operator)) => {}
        Some(_) => {
            return Err(InboxError::Invalid {
                field: "to",
                message: format!("{email} may not reply to contacts (inactive, or a viewer)"),
            })
        }
        None => {
            return Err(InboxError::Invalid {
                field: "to",
                message: format!("no staff member {email}"),
            })
        }
    }
    let m = conversation_assignment::ActiveModel {
        contact_id: Set(contact_id.to_string()),
        assigned_to: Set(email),
        assigned_by: Set(by.to_string()),
        assigned_at: Set(core.now()),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(Some(m.into()))
}

/// Who a contact's conversation is assigned to, if anyone.
pub async fn assignment(
    core: &Core,
    contact_id: &str,
) -> Result<Option<Assignment>, sea_orm::DbErr> {
    Ok(conversation_assignment::Entity::find_by_id(contact_id)
        .one(&core.db.conn)
        .await?
        .map(Assignment::from))
}

/// Every assignment, by contact id.
pub async fn assignments(core: &Core) -> Result<HashMap<String, Assignment>, sea_orm::DbErr> {
    Ok(conversation_assignment::Entity::find()
        .all(&core.db.conn)
        .await?
        .into_iter()
        .map(|m| (m.contact_id.clone(), Assignment::from(m)))
        .collect())
}

/// A reply staff keep for reuse.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CannedReply {
    pub id: String,
    pub title: String,
    /// Markdown, as an inbox reply is written.
    pub body: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl From<canned_reply::Model> for CannedReply {
    fn from(m: canned_reply::Model) -> Self {
        CannedReply {
            id: m.id,
            title: m.title,
            body: m.body,
            created_by: m.created_by,
            created_at: m.created_at,
        }
    }
}

pub async fn canned_reply(core: &Core, id: &str) -> Result<Option<CannedReply>, sea_orm::DbErr> {
    Ok(canned_reply::Entity::find_by_id(id)
        .one(&core.db.conn)
        .await?
        .map(CannedReply::from))
}

pub async fn canned_replies(core: &Core) -> Result<Vec<CannedReply>, sea_orm::DbErr> {
    Ok(canned_reply::Entity::find()
        .order_by_asc(canned_reply::Column::Title)
        .all(&core.db.conn)
        .await?
        .into_iter()
        .map(CannedReply::from)
        .collect())
}

/// Keep a reply for reuse: a title (unique, at most 100 characters) and a body (what an
/// inbox reply may be).
pub async fn create_canned_reply(
    core: &Core,
    title: &str,
    body: &str,
    by: &str,
) -> Result<CannedReply, InboxError> {
    let title = title.trim();
    let body = body.trim();
    if title.is_empty() || title.chars().count() > 100 {
        return Err(InboxError::Invalid {
            field: "title",
            message: "a title of 1 to 100 characters is required".into(),
        });
    }
    if body.is_empty() || body.chars().count() > crate::sending::outbound::MAX_TEXT_CHARS {
        return Err(InboxError::Invalid {
            field: "body",
            message: format!(
                "the reply must have 1 to {} characters",
                crate::sending::outbound::MAX_TEXT_CHARS
            ),
        });
    }
    if canned_reply::Entity::find()
        .filter(canned_reply::Column::Title.eq(title))
        .one(&core.db.conn)
        .await?
        .is_some()
    {
        return Err(InboxError::Invalid {
            field: "title",
            message: format!("a canned reply called '{title}' exists"),
        });
    }
    Ok(canned_reply::ActiveModel {
        id: Set(new_id()),
        title: Set(title.to_string()),
        body: Set(body.to_string()),
        created_by: Set(by.to_string()),
        created_at: Set(core.now()),
    }
    .insert(&core.db.conn)
    .await?
    .into())
}

pub async fn delete_canned_reply(core: &Core, id: &str) -> Result<CannedReply, InboxError> {
    let m = canned_reply::Entity::find_by_id(id)
        .one(&core.db.conn)
        .await?
        .ok_or_else(|| InboxError::NotFound(format!("no canned reply with id {id}")))?;
    canned_reply::Entity::delete_by_id(id)
        .exec(&core.db.conn)
        .await?;
    Ok(m.into())
}

/// What waits for someone, for the console's navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct InboxCounts {
    /// Conversations whose person wrote after the last message that went to them.
    pub unread: u64,
    /// Of those, assigned to the asking staff member.
    pub unread_mine: u64,
    /// Messages that may be an opt-out and wait for a person's review.
    pub to_review: u64,
}

/// Counts for the navigation, in three statements whatever the number of conversations
/// (the inbox list itself reads each thread; this runs on every page).
pub async fn counts(core: &Core, me: &str) -> Result<InboxCounts, sea_orm::DbErr> {
    let db = &core.db.conn;
    let backend = db.get_database_backend();
    let not_out = crate::reports::NOT_OUT
        .map(|s| format!("'{}'", s.as_str()))
        .join(", ");
    // A thread is unread while no message that went out is as new as its last inbound.
    let unread_sql = |mine: bool| {
        format!(
            "SELECT COUNT(*) AS n FROM ( \
               SELECT i.contact_id AS contact_id, MAX(i.received_at) AS last_in \
               FROM inbound_messages i GROUP BY i.contact_id) t \
             {join} \
             WHERE NOT EXISTS (SELECT 1 FROM outbound_messages o \
               WHERE o.contact_id = t.contact_id AND o.state NOT IN ({not_out}) \
               AND o.created_at >= t.last_in)",
            join = if mine {
                format!(
                    "JOIN conversation_assignments a ON a.contact_id = t.contact_id AND a.assigned_to = {}",
                    crate::store::db::placeholder(backend, 1)
                )
            } else {
                String::new()
            },
        )
    };
    let count = |row: Option<sea_orm::QueryResult>| -> Result<u64, sea_orm::DbErr> {
        Ok(match row {
            Some(r) => u64::try_from(r.try_get::<i64>("", "n")?).unwrap_or(0),
            None => 0,
        })
    };
    let unread = count(
        db.query_one_raw(Statement::from_string(backend, unread_sql(false)))
            .await?,
    )?;
    let unread_mine = count(
        db.query_one_raw(Statement::from_sql_and_values(
            backend,
            unread_sql(true),
            [me.to_lowercase().into()],
        ))
        .await?,
    )?;
    let to_review = count(
        db.query_one_raw(Statement::from_string(
            backend,
            "SELECT COUNT(*) AS n FROM inbound_messages WHERE needs_review = TRUE AND reviewed_at IS NULL"
                .to_string(),
        ))
        .await?,
    )?;
    Ok(InboxCounts {
        unread,
        unread_mine,
        to_review,
    })
}
