//! The `purposes` table: what messages are sent for, as staff define it.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "purposes")]
pub struct Model {
    /// The purpose's stable name (`marketing`, `service`, `reminders`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub label: String,
    pub description: String,
    /// Marketing: stopped by a marketing opt-out ("STOP PROMOTIONS", Meta's 131050).
    pub marketing: bool,
    /// Covered by the consents recorded before purposes existed (those
    /// have no purpose of their own).
    pub legacy: bool,
    pub created_by: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
