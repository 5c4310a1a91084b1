//! Opting out, from any origin: consents revoked and the contact
//! suppressed, in the caller's transaction.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use super::records::Scope;
use crate::channel::Channel;
use crate::clock::new_id;
use crate::compliance::gates::ConsentStatus;
use crate::entities::{consent, purpose, suppression};

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
    /// The person, on their preference page (`/p/{token}`).
    PreferencePage,
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
            OptOutSource::PreferencePage => "preference_page",
            OptOutSource::Erasure => "erasure",
        }
    }
}

/// An opt-out from any origin: every live consent (active or pending) on
/// the channel is revoked and the contact suppressed there, in the
/// caller's transaction, before the caller answers. `channel` `None` is
/// every channel. A [`Scope::Marketing`] opt-out ("STOP PROMOTIONS",
/// Meta's 131050) revokes the consents for marketing purposes only and
/// suppresses marketing (a consent recorded before purposes, which covers
/// marketing and the rest alike, stays: the suppression stops its
/// marketing). Returns whether anything changed (a second STOP changes
/// nothing).
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
    {
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
        if scope == Scope::Marketing {
            revoke = revoke.filter(
                consent::Column::Purpose.in_subquery(
                    sea_orm::sea_query::Query::select()
                        .column(purpose::Column::Name)
                        .from(purpose::Entity)
                        .and_where(purpose::Column::Marketing.eq(true))
                        .to_owned(),
                ),
            );
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
    // Covered by one that stops at least as much (a purpose's own does not
    // cover marketing).
    existing = match scope {
        Scope::All => existing.filter(suppression::Column::Scope.eq(Scope::All.as_str())),
        Scope::Marketing => existing.filter(
            suppression::Column::Scope.is_in([Scope::All.as_str(), Scope::Marketing.as_str()]),
        ),
    };
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

/// Withdraw one purpose on one channel: the consents for it revoked and a
/// suppression of that purpose alone (`purpose:<name>`), which also stops
/// it under a consent recorded before purposes (that one covers the other
/// purposes still, so it is not revoked). Other purposes still go. In the
/// caller's transaction; returns whether anything changed.
#[allow(clippy::too_many_arguments)]
pub async fn withdraw_purpose(
    db: &impl ConnectionTrait,
    contact_id: &str,
    channel: Channel,
    purpose: &str,
    source: OptOutSource,
    reference: Option<&str>,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<bool, sea_orm::DbErr> {
    let revoked = consent::Entity::update_many()
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
        .filter(consent::Column::Channel.eq(channel.as_str()))
        .filter(consent::Column::Purpose.eq(purpose))
        .filter(consent::Column::RevokedAt.is_null())
        .exec(db)
        .await?
        .rows_affected;
    let scope = Scope::purpose(purpose);
    let existing = suppression::Entity::find()
        .filter(suppression::Column::ContactId.eq(contact_id))
        .filter(suppression::Column::LiftedAt.is_null())
        .filter(suppression::Column::Channel.is_in([channel.as_str(), "all"]))
        .filter(suppression::Column::Scope.is_in([scope.clone(), Scope::All.as_str().into()]))
        .one(db)
        .await?;
    if existing.is_some() {
        return Ok(revoked > 0);
    }
    suppression::ActiveModel {
        id: Set(new_id()),
        contact_id: Set(contact_id.to_string()),
        channel: Set(channel.as_str().to_string()),
        scope: Set(scope),
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
    Ok(true)
}
