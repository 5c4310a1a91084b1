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

/// Who opted out and how, as each revocation and suppression records it.
struct Origin<'a> {
    source: OptOutSource,
    reference: Option<&'a str>,
    actor: &'a str,
    now: DateTime<Utc>,
}

impl Origin<'_> {
    /// The update that revokes the contact's live consents (active or
    /// pending); the caller narrows it.
    fn revocation(&self, contact_id: &str) -> sea_orm::UpdateMany<consent::Entity> {
        consent::Entity::update_many()
            .col_expr(consent::Column::Status, Expr::value(ConsentStatus::Revoked))
            .col_expr(consent::Column::RevokedAt, Expr::value(Some(self.now)))
            .col_expr(
                consent::Column::RevocationSource,
                Expr::value(Some(self.source.as_str())),
            )
            .col_expr(
                consent::Column::RevocationRef,
                Expr::value(self.reference.map(str::to_string)),
            )
            .filter(consent::Column::ContactId.eq(contact_id))
            .filter(consent::Column::RevokedAt.is_null())
    }

    /// Suppress the contact on `channel` (`all`: every channel) with
    /// `scope`, unless an active suppression of one of `covering` scopes
    /// on the channels in `covering_channels` already does. Whether one
    /// was added.
    async fn suppress(
        &self,
        db: &impl ConnectionTrait,
        contact_id: &str,
        channel: &str,
        covering_channels: &[&str],
        scope: String,
        covering: Vec<String>,
    ) -> Result<bool, sea_orm::DbErr> {
        let existing = suppression::Entity::find()
            .filter(suppression::Column::ContactId.eq(contact_id))
            .filter(suppression::Column::LiftedAt.is_null())
            .filter(suppression::Column::Channel.is_in(covering_channels.iter().copied()))
            .filter(suppression::Column::Scope.is_in(covering))
            .one(db)
            .await?;
        if existing.is_some() {
            return Ok(false);
        }
        suppression::ActiveModel {
            id: Set(new_id()),
            contact_id: Set(contact_id.to_string()),
            channel: Set(channel.to_string()),
            scope: Set(scope),
            reason: Set(self.source.as_str().to_string()),
            source_ref: Set(self.reference.map(str::to_string)),
            created_by: Set(self.actor.to_string()),
            created_at: Set(self.now),
            lifted_at: Set(None),
            lifted_by: Set(None),
            lift_ref: Set(None),
        }
        .insert(db)
        .await?;
        Ok(true)
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
    let origin = Origin {
        source,
        reference,
        actor,
        now,
    };
    let mut revoke = origin.revocation(contact_id);
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
    let revoked = revoke.exec(db).await?.rows_affected > 0;
    // Covered by one on this channel or on every channel, that stops at
    // least as much (a purpose's own does not cover marketing).
    let channels: &[&str] = match channel {
        Some(ch) => &[ch.as_str(), "all"],
        None => &["all"],
    };
    let covering = match scope {
        Scope::All => vec![Scope::All.as_str().to_string()],
        Scope::Marketing => vec![
            Scope::All.as_str().to_string(),
            Scope::Marketing.as_str().to_string(),
        ],
    };
    let suppressed = origin
        .suppress(
            db,
            contact_id,
            channel.map(|c| c.as_str()).unwrap_or("all"),
            channels,
            scope.as_str().to_string(),
            covering,
        )
        .await?;
    Ok(revoked || suppressed)
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
    let origin = Origin {
        source,
        reference,
        actor,
        now,
    };
    let revoked = origin
        .revocation(contact_id)
        .filter(consent::Column::Channel.eq(channel.as_str()))
        .filter(consent::Column::Purpose.eq(purpose))
        .exec(db)
        .await?
        .rows_affected
        > 0;
    let scope = Scope::purpose(purpose);
    let suppressed = origin
        .suppress(
            db,
            contact_id,
            channel.as_str(),
            &[channel.as_str(), "all"],
            scope.clone(),
            vec![scope, Scope::All.as_str().to_string()],
        )
        .await?;
    Ok(revoked || suppressed)
}
