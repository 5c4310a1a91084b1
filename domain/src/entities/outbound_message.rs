//! The `outbound_messages` table.

use sea_orm::entity::prelude::*;

use crate::compliance::message_source::MessageSource;
use crate::compliance::message_state::MessageState;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "outbound_messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub contact_id: Option<String>,
    pub to_address: String,
    pub channel: String,
    pub kind: String,
    pub template_id: Option<String>,
    pub template_name: Option<String>,
    pub variables: String,
    pub body: Option<String>,
    pub media_url: Option<String>,
    pub source: MessageSource,
    pub campaign_id: Option<String>,
    pub automation_id: Option<String>,
    pub reminder_id: Option<String>,
    pub actor: String,
    /// Written only through `sending::state::moving` and the send path's
    /// claim (the one state machine, `MessageState::may_become`).
    pub state: MessageState,
    pub block_reason: Option<String>,
    pub defer_until: Option<DateTimeUtc>,
    pub provider: Option<String>,
    pub provider_sid: Option<String>,
    pub error_code: Option<i32>,
    pub error_message: Option<String>,
    pub attempts: i32,
    pub price: Option<String>,
    pub price_unit: Option<String>,
    pub fallback_of: Option<String>,
    pub in_window: Option<bool>,
    pub idempotency_key: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub queued_at: Option<DateTimeUtc>,
    pub sent_at: Option<DateTimeUtc>,
    pub delivered_at: Option<DateTimeUtc>,
    pub read_at: Option<DateTimeUtc>,
    pub failed_at: Option<DateTimeUtc>,
    /// A text sent in parts: the first part's id, on every part.
    pub part_of: Option<String>,
    /// This part's number, from 1, of `part_count`.
    pub part_index: Option<i32>,
    pub part_count: Option<i32>,
    /// The text as it was written (Markdown), on the first part of a free-form text; `body`
    /// holds what goes to the provider.
    pub source_text: Option<String>,
    /// The provider's id of the person's message this one quotes (WhatsApp's reply
    /// context; Meta sends it, Twilio's API has none).
    pub reply_to: Option<String>,
    /// Quick-reply buttons or a list (kind `interactive`): the JSON of
    /// [`crate::channels::interactive::InteractiveSpec`], checked when accepted.
    pub interactive: Option<String>,
    /// The purpose the consent gate checked it for (`purposes.name`).
    pub purpose: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
