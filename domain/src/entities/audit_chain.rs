//! The `audit_chain` table: one hash-chained entry per event of a chained
//! row (see [`crate::audit::chain`]).

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "audit_chain")]
pub struct Model {
    /// The chain: one per chained table.
    #[sea_orm(primary_key, auto_increment = false)]
    pub stream: String,
    /// The position in the chain, from 1, without gaps.
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    pub row_table: String,
    pub row_id: String,
    /// `created`, `confirmed`, `revoked`, `lifted`, `redacted` (`redacted.2`...).
    pub event: String,
    /// SHA-256 (hex) of the event's content: its fields' digests.
    pub content_hash: String,
    /// The previous entry's `hash` (64 zeros for the first).
    pub prev_hash: String,
    /// SHA-256 (hex) of the previous hash and this entry.
    pub hash: String,
    /// JSON: what the entry records besides the row's columns.
    pub detail: Option<String>,
    /// When it was chained (not hashed: informational).
    pub sealed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
