//! The `templates` table.

use heimdall_codes::TemplateApproval;
use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "templates")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub provider: String,
    pub provider_id: Option<String>,
    pub category: String,
    pub language: String,
    pub body: String,
    pub variables: String,
    pub approval_status: TemplateApproval,
    pub rejection_reason: Option<String>,
    pub source: String,
    pub synced_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// What its messages are sent for (`purposes.name`).
    pub purpose: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
