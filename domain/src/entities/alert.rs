//! The `alerts` table.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "alerts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub key: String,
    pub title: String,
    pub description: String,
    pub error_code: Option<i32>,
    pub message_id: Option<String>,
    pub campaign_id: Option<String>,
    pub count: i32,
    pub delivery: String,
    pub first_at: DateTimeUtc,
    pub last_at: DateTimeUtc,
    pub sent_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
