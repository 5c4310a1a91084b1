//! The `erased_numbers` table: the suppression tombstone of an erased
//! person, keyed by the HMAC of their number (see [`crate::privacy`]).

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "erased_numbers")]
pub struct Model {
    /// Hex HMAC-SHA256 of the E.164 number, keyed with `HEIMDALL_ERASURE_KEY`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub number_hash: String,
    /// The erased contact (its anonymised shell).
    pub contact_id: String,
    pub erased_at: DateTimeUtc,
    pub erased_by: String,
    pub reason: String,
    /// Set when a message from the number (START, UNSTOP, YES) lifted it.
    pub lifted_at: Option<DateTimeUtc>,
    /// The provider's id of that message.
    pub lift_ref: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
