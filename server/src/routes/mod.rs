//! HTTP routes. Handlers parse input into domain types, call the domain and
//! map errors; no business rule lives here.

pub mod api;
pub mod health;
pub mod optin;
pub mod reminders;
pub mod webhooks;
