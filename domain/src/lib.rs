//! Heimdall's rules, shared by the HTTP server, the background jobs and the
//! console's server functions: entities and services, the gate pipeline,
//! channel clients, formatting and phone numbers.
//!
//! This crate knows nothing of HTTP frameworks or Leptos. It must never send
//! a message except through the gate pipeline with an audit row written first.

pub mod channel;
pub mod clock;
pub mod db;
pub mod entities;
pub mod phone;
pub mod settings;

pub use channel::Channel;
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use db::Db;
pub use phone::PhoneNumber;
pub use settings::Settings;
pub mod core;
pub mod keywords;
pub mod provider_errors;
pub mod queue;
pub mod signature;

pub use crate::core::Core;
pub mod accounts;
pub mod alerts;
pub mod attachments;
pub mod audit;
pub mod authz;
pub mod campaigns;
pub mod channels;
pub mod consent;
pub mod contacts;
pub mod formatting;
pub mod gates;
pub mod housekeeping;
pub mod inbound;
pub mod inbox;
pub mod interactive;
pub mod limits;
pub mod message_state;
pub mod message_writes;
pub mod optin;
pub mod outbound;
pub mod outbound_http;
pub mod reminders;
pub mod reports;
pub mod runtime;
pub mod schedules;
pub mod senders;
pub mod sessions;
pub mod settings_store;
pub mod templates;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time_zones;
