//! Heimdall's rules, shared by the HTTP server, the background jobs and the
//! console's server functions: entities and services, the gate pipeline,
//! channel clients, formatting and phone numbers.
//!
//! This crate knows nothing of HTTP frameworks or Leptos. It must never send
//! a message except through the gate pipeline with an audit row written first.
//!
//! Where things are (one folder per concept; `docs/ARCHITECTURE.md` has the
//! map and the flow of one message through it):
//!
//! - [`compliance`]: the gate pipeline, the keyword table, the provider error
//!   table and the message state machine: the rules, pure.
//! - [`consent`]: the consent ledger (consents, suppressions, evidence).
//! - [`sending`]: the send path (accept, worker, status), its writes, the
//!   queue, rate limits and the tier, paused senders.
//! - [`inbound`]: what people send us: parse, dedup, keywords acted on, spool.
//! - [`campaigns`], [`automations`] (reminders, schedules), [`optin`] (forms,
//!   QR codes, import and export), [`templates`].
//! - [`access`]: staff accounts, API keys, sessions, authorization.
//! - [`channels`]: provider clients, formatting, interactive content and
//!   attachments; [`outbound_http`]: the policy for every request to a URL
//!   someone else chose (SSRF).
//! - [`store`]: connecting to the database and writing to it in groups.
//! - [`settings`]: start-up settings, the runtime settings and their store.

pub mod channel;
pub mod clock;
pub mod entities;
pub mod phone;
pub mod settings;
pub mod store;

pub use channel::Channel;
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use phone::PhoneNumber;
pub use settings::Settings;
pub use store::db::Db;
pub mod core;
pub mod signature;

pub use crate::core::Core;
pub mod access;
pub mod alerts;
pub mod audit;
pub mod automations;
pub mod campaigns;
pub mod channels;
pub mod compliance;
pub mod consent;
pub mod contacts;
pub mod housekeeping;
pub mod inbound;
pub mod inbox;
pub mod optin;
pub mod outbound_http;
pub mod privacy;
pub mod reports;
pub mod sending;
pub mod templates;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time_zones;
