//! The rules every message is held to, as pure code: the gate pipeline
//! ([`gates`]), the inbound keyword table ([`keywords`]), the provider error
//! table ([`provider_errors`]) and the life of a message ([`message_state`]).
//!
//! Nothing here reads the database, the network or the system clock, and
//! nothing here sends: the send path loads the facts and acts on what these
//! modules decide. Each rule is written here once; code elsewhere asks these
//! modules rather than restating a rule.

pub mod gates;
pub mod keywords;
pub mod message_source;
pub mod message_state;
pub mod provider_errors;
