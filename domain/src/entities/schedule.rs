//! The `schedules` table.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "schedules")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub contact_id: String,
    pub cron: String,
    pub template_name: String,
    pub variables: String,
    pub variables_url: Option<String>,
    pub automation_id: Option<String>,
    /// The API key whose automation sends it; `None` is the bootstrap key.
    pub api_key_id: Option<String>,
    /// How late (seconds) an occurrence may still go after downtime.
    pub tolerance_secs: i64,
    pub active: bool,
    pub last_run_at: Option<DateTimeUtc>,
    pub next_run_at: Option<DateTimeUtc>,
    pub last_outcome: Option<String>,
    pub created_by: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
