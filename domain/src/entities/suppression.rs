//! The `suppressions` table.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "suppressions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub contact_id: String,
    pub channel: String,
    pub reason: String,
    pub source_ref: Option<String>,
    pub created_by: String,
    pub created_at: DateTimeUtc,
    pub lifted_at: Option<DateTimeUtc>,
    pub lifted_by: Option<String>,
    /// `all`, or `marketing` (only marketing templates are stopped).
    pub scope: String,
    /// The inbound message (from the person's own number) that lifted it.
    pub lift_ref: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
