//! The `channels` table.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "channels")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub kind: String,
    pub address: String,
    pub active: bool,
    pub activated_by: Option<String>,
    pub activated_at: Option<DateTimeUtc>,
    pub rate_per_sec: Option<i32>,
    pub tier_limit: Option<i64>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Paused after a fault of ours (63007, 131048) until an admin
    /// re-activates the sender; its messages wait.
    pub paused_at: Option<DateTimeUtc>,
    pub paused_reason: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
