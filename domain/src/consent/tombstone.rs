//! The erasure tombstone: what is kept of a person who asked to be erased
//! so that their STOP is still honoured. Only a keyed hash of their number
//! (HMAC-SHA256 with `HEIMDALL_ERASURE_KEY`, hex) stays, in
//! `erased_numbers`; it counts as an opt-out on every channel for any
//! contact with that number, including one created after the erasure:
//!
//! - the gates: the facts read for a message look the recipient's number up
//!   (one lookup per batch of reads) and a tombstoned number is suppressed
//!   ([`mark_erased`]);
//! - the ledger: a contact with a tombstoned number is given an opt-out
//!   (source `erasure`) before a claim is recorded for it ([`carry_over`]),
//!   so a form, the API, an import or staff only record a pending claim
//!   that the number must confirm;
//! - a START / UNSTOP / YES from the number lifts both ([`lift`]), like any
//!   STOP.
//!
//! Without a key nothing is looked up: no tombstone can exist then (start-up
//! refuses tombstones without their key, `privacy::check_key`).
//!
//! This module never stores or logs a number or the key.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use secrecy::ExposeSecret;
use sha2::Sha256;

use super::opt_out::{opt_out, OptOutSource};
use super::records::Scope;
use crate::entities::erased_number;
use crate::Core;

/// The label whose HMAC is stored at the first erasure (`app_settings`
/// [`KEY_CHECK_SETTING`]), so a changed key is noticed at start-up.
const CHECK_LABEL: &str = "heimdall erasure key check v1";
/// The `app_settings` key of the key's check value.
pub const KEY_CHECK_SETTING: &str = "erasure_key_check";
/// How a number is written where it was replaced by its hash.
pub const HASH_PREFIX: &str = "hash:";

/// `HEIMDALL_ERASURE_KEY`, keyed into an HMAC once. Never printed.
#[derive(Clone)]
pub struct ErasureKey(Hmac<Sha256>);

impl std::fmt::Debug for ErasureKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ErasureKey(..)")
    }
}

impl ErasureKey {
    pub fn new(secret: &str) -> ErasureKey {
        ErasureKey(
            Hmac::<Sha256>::new_from_slice(secret.trim().as_bytes())
                .expect("HMAC takes a key of any length"),
        )
    }

    /// The key `settings` configure, if any (made once, into [`Core`]).
    pub fn configured(settings: &crate::settings::Settings) -> Option<ErasureKey> {
        settings
            .erasure_key
            .as_ref()
            .map(|k| ErasureKey::new(k.expose_secret()))
    }

    /// The configured key, if any.
    pub fn of(core: &Core) -> Option<ErasureKey> {
        core.erasure_key.clone()
    }

    fn mac(&self, text: &str) -> String {
        let mut m = self.0.clone();
        m.update(text.as_bytes());
        hex::encode(m.finalize().into_bytes())
    }

    /// The hex HMAC of an E.164 number: the tombstone's key.
    pub fn number_hash(&self, e164: &str) -> String {
        self.mac(e164.trim())
    }

    /// The value stored at the first erasure to recognise this key later.
    pub fn check_value(&self) -> String {
        self.mac(CHECK_LABEL)
    }
}

/// The detail the `suppressed` gate gives for an erased number.
pub fn erased_reason(erased_at: DateTime<Utc>) -> String {
    format!(
        "this number's owner asked to be erased on {} and opted out; only a message from the number lifts it",
        erased_at.format("%Y-%m-%d")
    )
}

/// The active tombstones among `hashes`: hash -> when it was erased. One
/// lookup by primary key.
pub async fn active(
    db: &impl ConnectionTrait,
    hashes: &[String],
) -> Result<HashMap<String, DateTime<Utc>>, sea_orm::DbErr> {
    if hashes.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(erased_number::Entity::find()
        .filter(erased_number::Column::NumberHash.is_in(hashes.iter().cloned()))
        .filter(erased_number::Column::LiftedAt.is_null())
        .all(db)
        .await?
        .into_iter()
        .map(|t| (t.number_hash, t.erased_at))
        .collect())
}

/// [`active`] on PostgreSQL's pool (the merged reads of the send path): each
/// hash a lookup by key (`LATERAL`), so the plan never becomes a scan.
pub async fn active_pg(
    pool: &sqlx::PgPool,
    hashes: &[String],
) -> Result<HashMap<String, DateTime<Utc>>, sea_orm::DbErr> {
    use sqlx::Row;
    if hashes.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query(
        "SELECT r.h, e.erased_at FROM unnest($1::varchar[]) AS r(h) \
         JOIN LATERAL (SELECT erased_at FROM erased_numbers \
           WHERE number_hash = r.h AND lifted_at IS NULL) e ON TRUE",
    )
    .bind(hashes)
    .fetch_all(pool)
    .await
    .map_err(crate::store::db::sqlx_err)?;
    rows.into_iter()
        .map(|r| {
            Ok((
                r.try_get::<String, _>(0)
                    .map_err(crate::store::db::sqlx_err)?,
                r.try_get::<DateTime<Utc>, _>(1)
                    .map_err(crate::store::db::sqlx_err)?,
            ))
        })
        .collect()
}

/// Give a contact whose number is tombstoned the opt-out it stands for
/// (every channel, source `erasure`), unless it has one: then the ledger
/// treats it as opted out ([`super::opted_out`]) and only the number can
/// lift it. Call it before recording a claim for a contact found or
/// created by number. Returns whether the number is tombstoned.
pub async fn carry_over(
    core: &Core,
    db: &impl ConnectionTrait,
    contact_id: &str,
    phone_e164: &str,
    now: DateTime<Utc>,
) -> Result<bool, sea_orm::DbErr> {
    let Some(key) = ErasureKey::of(core) else {
        return Ok(false);
    };
    let hash = key.number_hash(phone_e164);
    let Some(erased_at) = active(db, std::slice::from_ref(&hash)).await?.remove(&hash) else {
        return Ok(false);
    };
    opt_out(
        db,
        contact_id,
        None,
        Scope::All,
        OptOutSource::Erasure,
        Some(&erased_reason(erased_at)),
        "erasure",
        now,
    )
    .await?;
    Ok(true)
}

/// [`carry_over`] for a contact by id (nothing for an unknown id).
pub async fn carry_over_by_id(
    core: &Core,
    db: &impl ConnectionTrait,
    contact_id: &str,
    now: DateTime<Utc>,
) -> Result<bool, sea_orm::DbErr> {
    if core.settings.erasure_key.is_none() {
        return Ok(false);
    }
    match crate::entities::contact::Entity::find_by_id(contact_id)
        .one(db)
        .await?
    {
        Some(c) => carry_over(core, db, &c.id, &c.phone_e164, now).await,
        None => Ok(false),
    }
}

/// Lift the tombstone of `phone_e164` with the inbound message from the
/// number that proves it (`lift_ref`). Returns whether one was lifted.
pub async fn lift(
    core: &Core,
    db: &impl ConnectionTrait,
    phone_e164: &str,
    inbound_ref: &str,
    now: DateTime<Utc>,
) -> Result<bool, sea_orm::DbErr> {
    let Some(key) = ErasureKey::of(core) else {
        return Ok(false);
    };
    let res = erased_number::Entity::update_many()
        .col_expr(erased_number::Column::LiftedAt, Expr::value(Some(now)))
        .col_expr(
            erased_number::Column::LiftRef,
            Expr::value(Some(inbound_ref.to_string())),
        )
        .filter(erased_number::Column::NumberHash.eq(key.number_hash(phone_e164)))
        .filter(erased_number::Column::LiftedAt.is_null())
        .exec(db)
        .await?;
    Ok(res.rows_affected > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_keyed_and_stable() {
        let a = ErasureKey::new("k".repeat(32).as_str());
        let b = ErasureKey::new("j".repeat(32).as_str());
        assert_eq!(a.number_hash("+15551230000"), a.number_hash("+15551230000"));
        assert_ne!(a.number_hash("+15551230000"), b.number_hash("+15551230000"));
        assert_ne!(a.number_hash("+15551230000"), a.number_hash("+15551230001"));
        assert_eq!(a.number_hash("+15551230000").len(), 64);
        assert_ne!(a.check_value(), b.check_value());
        assert_eq!(format!("{a:?}"), "ErasureKey(..)");
    }
}
