//! The send path: accepting a message from any origin, the worker that
//! sends it ([`outbound`]), the
//! queue that carries "send this" between them ([`queue`]), the sender's
//! rate and the messaging tier ([`limits`]) and pausing a sender after a
//! fault of ours ([`senders`]).
//!
//! It owns every outbound message's row and state changes (through
//! [`crate::compliance::message_state`]). It never decides on its own
//! whether a message may go: that is [`crate::compliance::gates`], evaluated
//! at acceptance and again in the worker, with an audit row each time.

pub mod facts;
pub mod limits;
pub mod outbound;
pub mod queue;
pub mod senders;
pub mod state;
