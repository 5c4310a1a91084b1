//! Read models for the console: the dashboard of one day, the audit log
//! (and its CSV export), the inbox with its conversations, and a contact's
//! timeline.
//!
//! Everything here only reads; it must never write or send. Phone numbers
//! in lists of messages (audit log, CSV, failures) are masked; only the
//! views of one contact (inbox thread, timeline) carry the contact's own
//! number, as the contact page does. The CSV export neutralises cells a
//! spreadsheet would run as formulas.
//!
//! One file per read model: `dashboard`, `audit_log` (the log and its CSV
//! export), `conversations` (the inbox's threads and one conversation) and
//! `timeline` (a contact's page), `receipt` (one message's receipt: what
//! justified its send, for the API and the console's printable page).

mod audit_log;
mod conversations;
mod dashboard;
mod receipt;
mod timeline;

pub use crate::campaigns::FailureRow;
pub use audit_log::{audit_csv, audit_log, compact_verdicts, csv_safe, AuditFilter, AuditRow};
pub(crate) use conversations::NOT_OUT;
pub use conversations::{conversation, inbox, ConversationItem, InboxThread};
pub use dashboard::{dashboard, Dashboard, TierUsage, WindowCoverage};
pub use receipt::{
    receipt, Approval, AutomationRef, ConsentInForce, ConsentRecord, Evaluation, GateVerdictRow,
    HumanAuthorization, MessageFacts, ProviderAnswer, Receipt, RegisteredText, StaffRef,
    StatusEvent, SuppressionInForce, TemplateRef,
};
pub use timeline::{
    contact_timeline, ChannelStanding, ChannelWindow, ContactTimeline, SuppressionView,
};
