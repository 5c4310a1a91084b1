//! Reading the ledger: the consent that decides, a contact's consents and
//! suppressions, and whether they opted out on a channel.

use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use super::purposes::Purpose;
use super::records::{ConsentRecord, OptedOut, Scope, Suppression};
use crate::channel::Channel;
use crate::compliance::gates::ConsentStatus;
use crate::entities::{consent, suppression};
use crate::Core;

/// The newest consent record for the contact and channel, whatever its
/// purpose (what a person's page shows first; the gates read
/// [`current_consent_for`]).
pub async fn current_consent(
    db: &impl ConnectionTrait,
    contact_id: &str,
    channel: Channel,
) -> Result<Option<consent::Model>, sea_orm::DbErr> {
    consent::Entity::find()
        .filter(consent::Column::ContactId.eq(contact_id))
        .filter(consent::Column::Channel.eq(channel.as_str()))
        .order_by_desc(consent::Column::CreatedAt)
        .order_by_desc(consent::Column::Id)
        .one(db)
        .await
}

/// The consent that decides for a purpose: the newest record for the
/// contact and channel that covers it (its own, or one recorded before
/// purposes when the purpose is a legacy one).
pub async fn current_consent_for(
    db: &impl ConnectionTrait,
    contact_id: &str,
    channel: Channel,
    purpose: &Purpose,
) -> Result<Option<consent::Model>, sea_orm::DbErr> {
    consent::Entity::find()
        .filter(consent::Column::ContactId.eq(contact_id))
        .filter(consent::Column::Channel.eq(channel.as_str()))
        .filter(covering_purpose(purpose))
        .order_by_desc(consent::Column::CreatedAt)
        .order_by_desc(consent::Column::Id)
        .one(db)
        .await
}

/// The consent that decided at `at`: [`current_consent_for`]'s rule (the
/// newest record for the contact and channel that covers the purpose;
/// without one, of any purpose) among the records written by then. A message's receipt cites it for the moment it was accepted.
pub async fn consent_at(
    db: &impl ConnectionTrait,
    contact_id: &str,
    channel: &str,
    purpose: Option<&Purpose>,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Option<consent::Model>, sea_orm::DbErr> {
    consent::Entity::find()
        .filter(consent::Column::ContactId.eq(contact_id))
        .filter(consent::Column::Channel.eq(channel))
        .filter(consent::Column::CreatedAt.lte(at))
        .filter(match purpose {
            Some(p) => covering_purpose(p),
            None => Condition::all(),
        })
        .order_by_desc(consent::Column::CreatedAt)
        .order_by_desc(consent::Column::Id)
        .one(db)
        .await
}

/// The consent rows that cover `purpose`.
pub(super) fn covering_purpose(purpose: &Purpose) -> Condition {
    let mut c = Condition::any().add(consent::Column::Purpose.eq(purpose.name.as_str()));
    if purpose.legacy {
        c = c.add(consent::Column::Purpose.is_null());
    }
    c
}

pub fn consent_status(m: &consent::Model) -> ConsentStatus {
    status_of(m.status, m.revoked_at.is_some())
}

/// A consent row's status: revoked by a revocation time whatever its
/// status says, else its status.
pub(crate) fn status_of(status: ConsentStatus, revoked: bool) -> ConsentStatus {
    if revoked {
        ConsentStatus::Revoked
    } else {
        status
    }
}

pub async fn consent_history(
    core: &Core,
    contact_id: &str,
) -> Result<Vec<ConsentRecord>, sea_orm::DbErr> {
    Ok(consent::Entity::find()
        .filter(consent::Column::ContactId.eq(contact_id))
        .order_by_desc(consent::Column::CreatedAt)
        .all(&core.db.conn)
        .await?
        .into_iter()
        .map(ConsentRecord::from)
        .collect())
}

/// Active suppressions that cover `channel`: on it or on every channel.
pub(super) fn covering(contact_id: &str, channel: Channel) -> Condition {
    Condition::all()
        .add(suppression::Column::ContactId.eq(contact_id))
        .add(suppression::Column::Channel.is_in([channel.as_str(), "all"]))
        .add(suppression::Column::LiftedAt.is_null())
}

/// The oldest active suppression that stops everything on the channel
/// (ties by id): the one the gates' facts statement reads when one stops
/// everything (`sending::facts`).
pub async fn active_suppression(
    db: &impl ConnectionTrait,
    contact_id: &str,
    channel: Channel,
) -> Result<Option<suppression::Model>, sea_orm::DbErr> {
    suppression::Entity::find()
        .filter(covering(contact_id, channel))
        .filter(suppression::Column::Scope.eq(Scope::All.as_str()))
        .order_by_asc(suppression::Column::CreatedAt)
        .order_by_asc(suppression::Column::Id)
        .one(db)
        .await
}

pub async fn suppressions(
    core: &Core,
    contact_id: &str,
) -> Result<Vec<Suppression>, sea_orm::DbErr> {
    Ok(suppression::Entity::find()
        .filter(suppression::Column::ContactId.eq(contact_id))
        .order_by_desc(suppression::Column::CreatedAt)
        .all(&core.db.conn)
        .await?
        .into_iter()
        .map(Suppression::from)
        .collect())
}

/// Has the contact opted out on the channel: an active suppression that
/// stops everything there, or a latest consent that was revoked? For a
/// `purpose`: also a suppression of that purpose (or of marketing, for a
/// marketing purpose), and the latest consent is the latest that covers
/// it. Without one, the latest consent of any purpose.
pub async fn opted_out(
    db: &impl ConnectionTrait,
    contact_id: &str,
    channel: Channel,
    purpose: Option<&Purpose>,
) -> Result<Option<OptedOut>, sea_orm::DbErr> {
    let as_opted_out = |s: suppression::Model| OptedOut {
        reason: match s.source_ref {
            Some(r) => format!("{} ({r})", s.reason),
            None => s.reason,
        },
        since: s.created_at,
    };
    if let Some(s) = active_suppression(db, contact_id, channel).await? {
        return Ok(Some(as_opted_out(s)));
    }
    let Some(purpose) = purpose else {
        return Ok(current_consent(db, contact_id, channel)
            .await?
            .and_then(|c| revoked(&c)));
    };
    let mut scopes = vec![Scope::purpose(&purpose.name)];
    if purpose.marketing {
        scopes.push(Scope::Marketing.as_str().to_string());
    }
    if let Some(s) = suppression::Entity::find()
        .filter(covering(contact_id, channel))
        .filter(suppression::Column::Scope.is_in(scopes))
        .order_by_asc(suppression::Column::CreatedAt)
        .order_by_asc(suppression::Column::Id)
        .one(db)
        .await?
    {
        return Ok(Some(as_opted_out(s)));
    }
    Ok(current_consent_for(db, contact_id, channel, purpose)
        .await?
        .and_then(|c| revoked(&c)))
}

/// A revoked consent as the opt-out it stands for.
pub(super) fn revoked(c: &consent::Model) -> Option<OptedOut> {
    (consent_status(c) == ConsentStatus::Revoked).then(|| OptedOut {
        reason: format!(
            "consent revoked ({})",
            c.revocation_source.as_deref().unwrap_or("unknown")
        ),
        since: c.revoked_at.unwrap_or(c.created_at),
    })
}
