//! Opting out, from any origin: consents revoked and the contact
//! suppressed, in the caller's transaction.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use super::records::Scope;
use crate::channel::Channel;
use crate::clock::new_id;
use crate::compliance::gates::ConsentStatus;
use crate::entities::{consent, suppression};

/// Who or what opted the contact out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptOutSource {
    /// A revocation keyword from the number (STOP, ...).
    Keyword,
    /// The provider reported an opt-out (21610, 63014, 131050).
    Provider,
    /// A staff member in the console.
    Staff,
    /// An API client.
    Api,
    /// The person was erased: their number's tombstone (`tombstone`).
    Erasure,
}

impl OptOutSource {
    pub fn as_str(self) -> &'static str {
        match self {
            OptOutSource::Keyword => "keyword",
            OptOutSource::Provider => "provider",
            OptOutSource::Staff => "staff",
            OptOutSource::Api => "api",
            OptOutSource::Erasure => "erasure",
        }
    }
}

/// An opt-out from any origin: every live consent (active or pending) on
/// the channel is revoked and the contact suppressed there, in the
/// caller's transaction, before the caller answers. `channel` `None` is
/// every channel. A [`Scope::Marketing`] opt-out stops marketing
/// templates only and revokes no consent. Returns whether anything
/// changed (a second STOP changes nothing).
#[allow(clippy::too_many_arguments)]
pub async fn opt_out(
    db: &impl ConnectionTrait,
    contact_id: &str,
    channel: Option<Channel>,
    scope: Scope,
    source: OptOutSource,
    reference: Option<&str>,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<bool, sea_orm::DbErr> {
    let mut changed = false;
    if scope == Scope::All {
        let mut revoke = consent::Entity::update_many()
            .col_expr(consent::Column::Status, Expr::value(ConsentStatus::Revoked))
            .col_expr(consent::Column::RevokedAt, Expr::value(Some(now)))
            .col_expr(
                consent::Column::RevocationSource,
                Expr::value(Some(source.as_str())),
            )
            .col_expr(
                consent::Column::RevocationRef,
                Expr::value(reference.map(str::to_string)),
            )
            .filter(consent::Column::ContactId.eq(contact_id))
            .filter(consent::Column::RevokedAt.is_null());
        if let Some(ch) = channel {
            revoke = revoke.filter(consent::Column::Channel.eq(ch.as_str()));
        }
        changed |= revoke.exec(db).await?.rows_affected > 0;
    }
    let channel_name = channel.map(|c| c.as_str()).unwrap_or("all");
    let mut existing = suppression::Entity::find()
        .filter(suppression::Column::ContactId.eq(contact_id))
        .filter(suppression::Column::LiftedAt.is_null());
    existing = match channel {
        // Covered by one on this channel or on every channel.
        Some(ch) => existing.filter(suppression::Column::Channel.is_in([ch.as_str(), "all"])),
        None => existing.filter(suppression::Column::Channel.eq("all")),
    };
    if scope == Scope::All {
        existing = existing.filter(suppression::Column::Scope.eq(Scope::All.as_str()));
    }
    if existing.one(db).await?.is_none() {
        suppression::ActiveModel {
            id: Set(new_id()),
            contact_id: Set(contact_id.to_string()),
            channel: Set(channel_name.to_string()),
            scope: Set(scope.as_str().to_string()),
            reason: Set(source.as_str().to_string()),
            source_ref: Set(reference.map(str::to_string)),
            created_by: Set(actor.to_string()),
            created_at: Set(now),
            lifted_at: Set(None),
            lifted_by: Set(None),
            lift_ref: Set(None),
        }
        .insert(db)
        .await?;
        changed = true;
    }
    Ok(changed)
}
