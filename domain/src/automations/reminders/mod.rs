//! One-off reminders: an automation asks for a template message to one
//! contact at a given time, and [`deliver_due`] sends it once, when it is
//! due, through [`outbound::accept`] (gates and audit) with the
//! authorization of the API key that created it, checked again at send time.
//!
//! States (`reminders.state`):
//!
//! ```text
//! scheduled ──due, claimed──> sending ──accepted──> sent     (handed to the send path;
//!     │                          │                            the message has its own state)
//!     │                          ├──gate refused──> blocked  (reason recorded)
//!     │                          ├──too late──────> missed   (audit row, never sent)
//!     │                          └──cannot send───> failed   (contact gone, ...)
//!     └──DELETE──> cancelled
//! ```
//!
//! Exactly once: a worker claims a reminder with a compare-and-set
//! (`scheduled -> sending`), and the message is accepted with the
//! idempotency key `reminder:{id}`, so a claim left behind by a worker that
//! stopped is taken up again later without sending twice.
//!
//! After downtime, a reminder that came due more than its tolerance ago is
//! recorded as `missed` with a `tool_calls` row (kind `reminder_missed`) and
//! is not sent: no burst of stale reminders.
//!
//! This module never calls a provider: every message goes through the gates.
//!
//! One file per part: `checks` (reading and checking a request, shared
//! with schedules), `manage` (create, read, list, cancel), `delivery` (due
//! reminders, and the send-time pieces schedules share); used as
//! `reminders::name`.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, Utc};
use chrono_tz::Tz;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::Serialize;

use crate::access::authz::{self, ApiPrincipal};
use crate::automations::schedules::local_instant;
use crate::channel::Channel;
use crate::clock::new_id;
use crate::compliance::gates::{self, Decision, Gate, TemplateProblem, Verdict};
use crate::contacts;
use crate::entities::{api_key, contact, outbound_message, reminder, tool_call};
use crate::phone::PhoneNumber;
use crate::sending::outbound::{self, AcceptError, Origin, Outcome, Recipient, RequestedContent};
use crate::templates;
use crate::Core;

mod checks;
mod delivery;
mod manage;

pub use checks::*;
pub use delivery::*;
pub use manage::*;

/// How late a reminder may still be sent when no tolerance is given.
pub const DEFAULT_TOLERANCE_SECS: i64 = 15 * 60;
/// The smallest tolerance accepted: the delivery job runs every 15 seconds.
pub const MIN_TOLERANCE_SECS: i64 = 60;
/// The largest tolerance accepted (a week).
pub const MAX_TOLERANCE_SECS: i64 = 7 * 24 * 3600;
/// How far ahead a reminder may be set.
pub const MAX_AHEAD: Duration = Duration::days(2 * 366);
/// A claim older than this was left by a worker that stopped.
pub const STALE_CLAIM: Duration = Duration::minutes(5);
/// Template values longer than this are refused (WhatsApp's own limit).
pub const MAX_VALUE_CHARS: usize = 1024;

/// Where a reminder is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReminderState {
    Scheduled,
    Sending,
    Sent,
    Blocked,
    Missed,
    Cancelled,
    Failed,
}

impl ReminderState {
    pub const ALL: [ReminderState; 7] = [
        ReminderState::Scheduled,
        ReminderState::Sending,
        ReminderState::Sent,
        ReminderState::Blocked,
        ReminderState::Missed,
        ReminderState::Cancelled,
        ReminderState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReminderState::Scheduled => "scheduled",
            ReminderState::Sending => "sending",
            ReminderState::Sent => "sent",
            ReminderState::Blocked => "blocked",
            ReminderState::Missed => "missed",
            ReminderState::Cancelled => "cancelled",
            ReminderState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<ReminderState> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl std::fmt::Display for ReminderState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a reminder or schedule is for, as the caller names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Contact(String),
    /// A phone number of an existing contact.
    Phone(String),
}

/// Why a request to create or change a reminder or schedule was refused.
/// Nothing is changed when one of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Bad input (HTTP 400), with a stable code.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// The contact does not exist (HTTP 404).
    #[error("{0}")]
    ContactNotFound(String),
    /// The reminder or schedule does not exist (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// A gate would refuse every send (HTTP 422, with the gate's code).
    #[error("{message}")]
    Refused { gate: Gate, message: String },
    /// The request conflicts with the current state (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

impl RequestError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        RequestError::Invalid {
            code,
            message: message.into(),
        }
    }
}

/// A reminder as the caller asks for it.
#[derive(Debug, Clone)]
pub struct NewReminder {
    pub target: Target,
    pub template_name: String,
    /// Named template values: strings, numbers or booleans.
    pub variables: BTreeMap<String, serde_json::Value>,
    /// RFC 3339 (`2026-11-20T07:00:00+01:00`), or a local time without an
    /// offset (`2026-11-20T07:00`) read in the contact's time zone.
    pub send_at: String,
    /// Seconds after `send_at` it may still be sent; default 15 minutes.
    pub tolerance_secs: Option<i64>,
}

/// A reminder as the API and console show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reminder {
    pub id: String,
    pub contact_id: String,
    pub to: String,
    pub template_name: String,
    pub variables: BTreeMap<String, String>,
    pub send_at: DateTime<Utc>,
    pub tolerance_secs: i64,
    pub state: String,
    /// What happened when it came due (gate reason, lateness, ...).
    pub outcome: Option<String>,
    pub message_id: Option<String>,
    /// The message's own state (queued, sent, delivered, ...), when there is one.
    pub message_state: Option<crate::compliance::message_state::MessageState>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What one delivery run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryReport {
    pub sent: usize,
    pub blocked: usize,
    pub missed: usize,
    pub failed: usize,
    /// Claims left by a stopped worker that this run took up again.
    pub recovered: usize,
}

impl std::fmt::Display for DeliveryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} sent, {} blocked, {} missed, {} failed",
            self.sent, self.blocked, self.missed, self.failed
        )?;
        if self.recovered > 0 {
            write!(f, " ({} recovered)", self.recovered)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        for s in ReminderState::ALL {
            assert_eq!(ReminderState::parse(s.as_str()), Some(s));
        }
        assert_eq!(ReminderState::parse("done"), None);
    }

    #[test]
    fn tolerance_bounds() {
        assert_eq!(tolerance(None).unwrap(), DEFAULT_TOLERANCE_SECS);
        assert_eq!(tolerance(Some(60)).unwrap(), 60);
        assert!(tolerance(Some(59)).is_err());
        assert!(tolerance(Some(-5)).is_err());
        assert!(tolerance(Some(MAX_TOLERANCE_SECS + 1)).is_err());
    }

    #[test]
    fn variables_accept_strings_numbers_and_booleans_only() {
        let ok: BTreeMap<String, serde_json::Value> = serde_json::from_value(
            serde_json::json!({"task_name": "Call Bob", "count": 3, "flag": true}),
        )
        .unwrap();
        let v = variables_from_json(&ok).unwrap();
        assert_eq!(v["count"], "3");
        assert_eq!(v["flag"], "true");
        for bad in [
            serde_json::json!({"a": null}),
            serde_json::json!({"a": [1]}),
            serde_json::json!({"a": {"b": 1}}),
            serde_json::json!({"  ": "x"}),
            serde_json::json!({"a": "x".repeat(MAX_VALUE_CHARS + 1)}),
        ] {
            let m: BTreeMap<String, serde_json::Value> = serde_json::from_value(bad).unwrap();
            assert!(variables_from_json(&m).is_err());
        }
    }

    #[test]
    fn send_at_takes_offsets_or_local_times() {
        let oslo: Tz = "Europe/Oslo".parse().unwrap();
        let a = parse_send_at("2026-11-20T07:00:00+01:00", oslo).unwrap();
        assert_eq!(a.to_rfc3339(), "2026-11-20T06:00:00+00:00");
        let b = parse_send_at("2026-11-20T07:00", oslo).unwrap();
        assert_eq!(a, b);
        // Summer time: 07:00 in Oslo is 05:00 UTC.
        let c = parse_send_at("2026-06-20 07:00", oslo).unwrap();
        assert_eq!(c.to_rfc3339(), "2026-06-20T05:00:00+00:00");
        assert!(parse_send_at("tomorrow", oslo).is_err());
        assert!(parse_send_at("2026-13-01T07:00", oslo).is_err());
        assert!(parse_send_at("+262000-01-01T07:00", oslo).is_err());
        assert!(parse_send_at("-262000-01-01T07:00", oslo).is_err());
    }
}
