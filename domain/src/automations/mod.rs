//! Messages no one sends by hand: one-off [`reminders`] and recurring
//! [`schedules`], each created by an API key and sent with that key's
//! authorization, checked again at send time.
//!
//! They only ever hand a message to [`crate::sending::outbound::accept`];
//! they never call a provider and never bypass a gate.

pub mod reminders;
pub mod schedules;
