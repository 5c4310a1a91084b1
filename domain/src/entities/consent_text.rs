//! The `consent_texts` table.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "consent_texts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub form_id: String,
    pub channel: String,
    pub version: i32,
    pub text: String,
    pub hash: String,
    pub current: bool,
    pub created_by: String,
    pub created_at: DateTimeUtc,
    /// The purpose this text asks consent for; NULL: the form's one
    /// consent text, for every purpose the form asks for.
    pub purpose: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
