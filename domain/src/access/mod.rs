//! Who may do what: staff accounts and API keys ([`accounts`]), console
//! sessions and sign-in ([`sessions`]), and the authorization behind
//! messages no one sends by hand: approved automations and activated
//! senders ([`authz`]).
//!
//! Never stores, logs or returns a password, key or token in clear after
//! the moment it is created (only hashes are kept).

pub mod accounts;
pub mod authz;
pub mod sessions;
