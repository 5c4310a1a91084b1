//! The `reminders` table.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "reminders")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub contact_id: String,
    pub to_address: String,
    pub template_name: String,
    pub variables: String,
    pub send_at: DateTimeUtc,
    pub tolerance_secs: i64,
    pub state: String,
    pub automation_id: Option<String>,
    pub api_key_id: Option<String>,
    pub message_id: Option<String>,
    pub outcome: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
