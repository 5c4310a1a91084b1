//! The life of an outbound message, as one state machine: the states, the
//! moves between them ([`MessageState::may_become`]) and how a provider's
//! status report moves a message ([`MessageState::apply_provider_status`]).
//! Written in `heimdall-codes` (`codes/src/message_state.rs`), so the
//! console's browser build shows the same states; every write of a
//! message's state is checked against it (`sending::state`).

pub use heimdall_codes::message_state::*;
