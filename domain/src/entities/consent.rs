//! The `consents` table.

use heimdall_codes::ConsentStatus;
use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "consents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub contact_id: String,
    pub channel: String,
    pub status: ConsentStatus,
    pub source: String,
    pub captured_at: DateTimeUtc,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub page_url: Option<String>,
    pub form_id: Option<String>,
    pub qr_code: Option<String>,
    pub inbound_message_id: Option<String>,
    pub consent_text_version: Option<String>,
    pub consent_text_hash: Option<String>,
    pub consent_text: Option<String>,
    pub recorded_by: String,
    pub confirmed_at: Option<DateTimeUtc>,
    pub confirmation_token_hash: Option<String>,
    pub revoked_at: Option<DateTimeUtc>,
    pub revocation_source: Option<String>,
    pub revocation_ref: Option<String>,
    pub created_at: DateTimeUtc,
    /// How strong the proof is: `number`, `confirmed`, `declared` or
    /// `attested` (see [`crate::consent::Strength`]).
    pub strength: String,
    /// The purpose it covers (`purposes.name`); NULL for a consent
    /// recorded before purposes existed, which covers the `legacy` ones.
    pub purpose: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
