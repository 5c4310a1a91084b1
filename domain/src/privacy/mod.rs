//! Erasure that keeps the STOP: a person's personal data is erased on
//! request ([`erase`]), and only what Heimdall needs to keep honouring their
//! opt-out stays: a keyed hash of their number in a suppression tombstone
//! (`erased_numbers`, [`crate::consent::tombstone`]) that every gate checks,
//! and the audit rows, with the number replaced by that hash.
//!
//! What [`erase`] does, in order (each step can be run again: an erasure
//! cut off half-way is finished by asking again):
//!
//! 1. In one transaction: the tombstone, the erasure's opt-out on the
//!    contact (every channel), every message still waiting for it
//!    cancelled (or blocked), its reminders cancelled and schedules paused.
//!    From its commit on nothing can be sent to the number: a message a
//!    worker already holds is blocked by the gates (`suppressed`).
//! 2. The audit chain sealed, then the chained rows' personal fields
//!    redacted through [`crate::audit::chain::redact_to`] (each a recorded
//!    `redacted` entry: reason `erasure: <reason>`, actor), so `heimdall
//!    audit verify` still passes: a tool call's verdicts and detail with the
//!    number replaced by `hash:<hex>` and the name by `[erased]`; a
//!    consent's IP, user agent, page URL (and the text of a keyword
//!    consent).
//! 3. In one transaction: the rest (message texts, variables, media links
//!    and their stored attachments, inbound texts, raw webhook payloads,
//!    windows, assignments, tier usage, staff audit details), the contact
//!    left as an anonymised shell (number `hash:<hex>#<id>`, no name,
//!    fields or tags), and the staff audit row of the erasure (who, why,
//!    the contact, the hash, the counts; never the number or name).
//! 4. The chain sealed once more and any tool call written meanwhile
//!    redacted (a send asked for while the erasure ran).
//!
//! The key (`HEIMDALL_ERASURE_KEY`) must never change once used: its check
//! value is stored at the first erasure, and [`check_key`] refuses to start
//! with tombstones and a missing or different key.
//!
//! This module never writes the number, the name or the key anywhere.

mod erase;

pub use erase::{erase, Erased, ErasureError};

use crate::consent::tombstone::{ErasureKey, KEY_CHECK_SETTING};
use crate::entities::{app_setting, erased_number};
use crate::Core;
use sea_orm::{EntityTrait, PaginatorTrait};

/// Why Heimdall must not start.
#[derive(Debug, thiserror::Error)]
pub enum KeyProblem {
    #[error("{0} erased people's numbers are kept as keyed hashes, but HEIMDALL_ERASURE_KEY is not set: without the key used to erase them their STOP would no longer be honoured. Set HEIMDALL_ERASURE_KEY to that key")]
    Missing(u64),
    #[error("HEIMDALL_ERASURE_KEY is not the key erased people's numbers were hashed with ({0} tombstones): a changed key would silently stop honouring every erased person's STOP. Set it back to the key used at the first erasure")]
    Changed(u64),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

/// At start-up: with tombstones, the key must be set and be the one they
/// were made with (its check value, stored at the first erasure).
pub async fn check_key(core: &Core) -> Result<(), KeyProblem> {
    let stored = app_setting::Entity::find_by_id(KEY_CHECK_SETTING)
        .one(&core.db.conn)
        .await?;
    let tombstones = erased_number::Entity::find().count(&core.db.conn).await?;
    if tombstones == 0 && stored.is_none() {
        return Ok(());
    }
    let Some(key) = ErasureKey::of(core) else {
        return Err(KeyProblem::Missing(tombstones));
    };
    match stored {
        Some(s) if check_matches(&s.value, &key) => Ok(()),
        // Tombstones but no check value: written by hand; refuse too.
        _ => Err(KeyProblem::Changed(tombstones)),
    }
}

/// Whether a stored check value (JSON text) is `key`'s.
fn check_matches(stored: &str, key: &ErasureKey) -> bool {
    serde_json::from_str::<String>(stored).is_ok_and(|v| v == key.check_value())
}
