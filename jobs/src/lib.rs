//! Heimdall's background work: the apalis workers that send messages and
//! fan out campaigns, and the schedules (reminders, briefings,
//! housekeeping). One job per file; every job is registered in
//! [`runner`]; apalis itself is kept behind [`queue`] and [`runner`] so an
//! upgrade touches those two files.

pub mod deferred;
pub mod deliver_reminders;
pub mod fan_out_campaign;
pub mod housekeeping;
pub mod poll;
pub mod queue;
pub mod run_schedules;
pub mod runner;
pub mod schedules;
pub mod send_message;

pub use queue::Queue;
