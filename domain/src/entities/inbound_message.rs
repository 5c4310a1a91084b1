//! The `inbound_messages` table.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "inbound_messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub contact_id: String,
    pub channel: String,
    pub provider: String,
    pub provider_message_id: String,
    pub from_address: String,
    pub to_address: Option<String>,
    pub body: Option<String>,
    pub media: String,
    pub button_text: Option<String>,
    pub button_payload: Option<String>,
    pub profile_name: Option<String>,
    pub keyword_action: Option<String>,
    pub needs_review: bool,
    pub reviewed_at: Option<DateTimeUtc>,
    pub reviewed_by: Option<String>,
    /// What the reviewer decided: `opt_out` (suppressed) or `not_opt_out`.
    pub review_outcome: Option<String>,
    pub received_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
