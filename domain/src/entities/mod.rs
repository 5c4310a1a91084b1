//! sea-orm entities, one per table. Services in the parent modules use
//! these; handlers and server functions never do.

pub mod alert;
pub mod api_key;
pub mod app_setting;
pub mod attachment;
pub mod automation;
pub mod campaign;
pub mod campaign_approval;
pub mod canned_reply;
pub mod channel_config;
pub mod consent;
pub mod consent_text;
pub mod contact;
pub mod conversation_assignment;
pub mod inbound_message;
pub mod infra_config_change;
pub mod job_run;
pub mod message_status_event;
pub mod optin_form;
pub mod outbound_message;
pub mod processed_webhook_event;
pub mod qr_code;
pub mod reminder;
pub mod schedule;
pub mod schedule_occurrence;
pub mod service_window;
pub mod staff_audit;
pub mod staff_session;
pub mod staff_user;
pub mod suppression;
pub mod template;
pub mod tier_usage;
pub mod tier_usage_daily;
pub mod tool_call;
pub mod webhook_audit;
