//! The database: connecting (SQLite by default, PostgreSQL when the URL says
//! so), applying the migrations, and the writers that commit the send
//! path's rows in groups ([`db`]); those rows, as data rather than
//! statements ([`message_writes`]), so one statement can carry many callers'.
//!
//! The local spool of webhook events kept while the database is away is
//! here too ([`spool`]).
//!
//! Holds no business rule: it stores what the other modules decided.

pub mod db;
pub mod message_writes;
pub mod spool;
