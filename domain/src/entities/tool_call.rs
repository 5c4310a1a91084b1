//! The `tool_calls` table.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "tool_calls")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub message_id: Option<String>,
    pub kind: String,
    pub stage: String,
    pub channel: Option<String>,
    pub contact_id: Option<String>,
    pub campaign_id: Option<String>,
    pub verdicts: String,
    pub decision: String,
    pub reason_code: Option<String>,
    pub result_ok: bool,
    pub error_code: Option<i32>,
    pub detail: Option<String>,
    pub actor: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
