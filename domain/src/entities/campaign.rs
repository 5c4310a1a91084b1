//! The `campaigns` table.

use heimdall_codes::CampaignStatus;
use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "campaigns")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub channel: String,
    pub template_id: String,
    pub audience: String,
    pub variable_mapping: String,
    pub scheduled_at: Option<DateTimeUtc>,
    pub send_on_approval: bool,
    pub status: CampaignStatus,
    pub created_by: String,
    pub submitted_at: Option<DateTimeUtc>,
    pub approved_by: Option<String>,
    pub approved_at: Option<DateTimeUtc>,
    pub rejection_reason: Option<String>,
    pub fanned_out_at: Option<DateTimeUtc>,
    pub completed_at: Option<DateTimeUtc>,
    /// Set when the fan-out had accepted a message for every recipient.
    pub fan_out_finished_at: Option<DateTimeUtc>,
    /// How many recipients the fan-out found.
    pub recipients: Option<i32>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// What its messages are sent for (`purposes.name`): its template's.
    pub purpose: Option<String>,
    /// JSON array of the staff ids who wrote or changed the content,
    /// audience or schedule: none of them may approve.
    pub authors: String,
    /// The content hash the approver approved.
    pub approved_hash: Option<String>,
    /// What that hash covers, as JSON (to say what changed).
    pub approved_snapshot: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
