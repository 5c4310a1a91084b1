//! Recurring schedules: a cron expression evaluated in the contact's own
//! time zone (a daily briefing at 07:00 local, a weekly review on Monday),
//! a template, and variables that are fixed or fetched at send time from a
//! URL answering JSON (as n8n fed the briefing). [`run_due`] sends each
//! occurrence once, through [`outbound::accept`], with the authorization of
//! the API key that created the schedule, checked again at send time.
//!
//! Exactly once: an occurrence is claimed by inserting its
//! `schedule_occurrences` row, unique on `(schedule_id, occurs_at)`; a
//! worker whose insert collides leaves it to the one that won. The message
//! is accepted with the idempotency key `schedule:{id}:{unix time}`, so an
//! occurrence left `claimed` by a worker that stopped is taken up again
//! without sending twice.
//!
//! Downtime: of the occurrences that came due while nothing ran, only the
//! latest is sent, and only within the schedule's tolerance; the others are
//! recorded as `missed` (with a `schedule_missed` audit row), never sent in
//! a burst.
//!
//! Time zones: occurrences are wall-clock times in the contact's zone, so
//! 07:00 stays 07:00 local across a daylight-saving change. A local time
//! that does not exist (inside a spring-forward gap) is moved forward by the
//! length of the gap (02:30 becomes 03:30); one that exists twice (in a
//! fall-back overlap) happens once, at the earlier instant.
//!
//! Cron expressions: the common five fields (`minute hour day-of-month
//! month day-of-week`, day-of-week 0-7 with 0 and 7 Sunday, or names), or
//! the `cron` crate's six or seven (with seconds first and an optional
//! year; its day-of-week numbers run 1-7 from Sunday, so names are safer),
//! or `@daily`, `@weekly`, `@monthly`, `@yearly`, `@hourly`. When both day
//! fields are restricted, both must match. A schedule may fire at most once
//! a minute.
//!
//! This module never calls a provider: every message goes through the gates.
//!
//! One file per part: `time` (cron in a zone), `manage` (create, read,
//! change), `run` (due occurrences), `variables` (fetched from a URL);
//! used as `schedules::name`.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::Serialize;

use crate::access::authz::ApiPrincipal;
use crate::alerts::{self, Alert};
use crate::automations::reminders::{
    self, actor_of, audit, check_template, contact_time_zone, message_for_key, resolve_contact,
    settle, stored_principal, variables_from_json, RequestError, Settled, Target, STALE_CLAIM,
};
use crate::channel::Channel;
use crate::clock::new_id;
use crate::compliance::gates::Gate;
use crate::entities::{api_key, automation, contact, schedule, schedule_occurrence};
use crate::sending::outbound::{self, Origin, Recipient, RequestedContent};
use crate::Core;

mod manage;
mod run;
mod time;
mod variables;

pub use manage::*;
pub use run::*;
pub use time::*;
pub use variables::*;

/// How long the variables URL has to answer.
pub const DEFAULT_FETCH_TIMEOUT: StdDuration = StdDuration::from_secs(5);
/// The largest variables answer read.
pub const MAX_VARIABLES_BYTES: usize = 256 * 1024;
/// Missed occurrences recorded one by one per run (older ones are counted).
const MAX_MISSED_RECORDED: usize = 50;
/// How far back a run looks for occurrences after downtime.
const LOOK_BACK: Duration = Duration::days(7);
/// Candidates examined per computation (bounds a pathological expression).
const MAX_SCAN: usize = 25_000;
/// The largest daylight-saving shift handled (real ones are 30-60 minutes).
const DST_MARGIN: Duration = Duration::hours(3);
const BATCH: u64 = 200;

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn oslo() -> Tz {
        "Europe/Oslo".parse().unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn five_fields_read_as_crontab() {
        // Monday at 08:00, crontab numbering (1 = Monday).
        let c = CronExpr::parse("0 8 * * 1").unwrap();
        let next = c.next_after(Tz::UTC, utc("2026-11-17T12:00:00Z")).unwrap();
        assert_eq!(next, utc("2026-11-23T08:00:00Z"));
        assert_eq!(next.format("%A").to_string(), "Monday");
        // Sunday as 0 and as 7.
        for e in ["0 8 * * 0", "0 8 * * 7", "0 8 * * sun"] {
            let n = CronExpr::parse(e)
                .unwrap()
                .next_after(Tz::UTC, utc("2026-11-17T12:00:00Z"))
                .unwrap();
            assert_eq!(n, utc("2026-11-22T08:00:00Z"), "{e}");
        }
        assert_eq!(crontab_days_of_week("1-5").unwrap(), "MON,TUE,WED,THU,FRI");
        assert_eq!(crontab_days_of_week("5-7").unwrap(), "SUN,FRI,SAT");
        assert_eq!(crontab_days_of_week("*/2").unwrap(), "SUN,TUE,THU,SAT");
        assert_eq!(crontab_days_of_week("1-5/2").unwrap(), "MON,WED,FRI");
        assert!(crontab_days_of_week("8").is_err());
        assert!(crontab_days_of_week("5-1").is_err());
    }

    #[test]
    fn bad_expressions_are_refused_with_a_reason() {
        for (e, why) in [
            ("", "empty"),
            ("0 7 * *", "fields"),
            ("61 7 * * *", "not a valid"),
            ("* * * * * *", "once a minute"),
            ("0 0 7 * * * 2020", "never fires"),
            ("0 7 * * funday", "day of the week"),
        ] {
            let err = CronExpr::parse_for_schedule(e).unwrap_err();
            assert!(err.contains(why), "{e}: {err}");
        }
        assert!(CronExpr::parse(&"1,".repeat(150))
            .unwrap_err()
            .contains("longer"));
        assert!(CronExpr::parse("@daily").is_ok());
        assert!(CronExpr::parse("0 0 7 * * Mon").is_ok());
        assert!(CronExpr::parse("  0   7 * * *  ").unwrap().as_str() == "0 7 * * *");
    }

    #[test]
    fn daily_local_time_stays_local_across_daylight_saving() {
        let c = CronExpr::parse("0 7 * * *").unwrap();
        // Europe/Oslo springs forward on 29 March 2026.
        let a = c.next_after(oslo(), utc("2026-03-28T12:00:00Z")).unwrap();
        assert_eq!(a, utc("2026-03-29T05:00:00Z"));
        let b = c.next_after(oslo(), utc("2026-03-27T12:00:00Z")).unwrap();
        assert_eq!(b, utc("2026-03-28T06:00:00Z"));
        // And falls back on 25 October 2026.
        let d = c.next_after(oslo(), utc("2026-10-25T00:00:00Z")).unwrap();
        assert_eq!(d, utc("2026-10-25T06:00:00Z"));
    }

    #[test]
    fn gap_times_move_forward_and_overlap_times_happen_once() {
        let c = CronExpr::parse("30 2 * * *").unwrap();
        // 02:30 does not exist on 29 March 2026 in Oslo: 03:30 CEST instead.
        let n = c.next_after(oslo(), utc("2026-03-28T12:00:00Z")).unwrap();
        assert_eq!(n, utc("2026-03-29T01:30:00Z"));
        // 02:30 exists twice on 25 October: once, at the earlier instant.
        let (all, total) = c.occurrences(
            oslo(),
            utc("2026-10-24T12:00:00Z"),
            utc("2026-10-26T12:00:00Z"),
            10,
        );
        assert_eq!(total, 2);
        assert_eq!(
            all,
            vec![utc("2026-10-25T00:30:00Z"), utc("2026-10-26T01:30:00Z")]
        );
        assert_eq!(
            local_instant(
                oslo(),
                NaiveDate::from_ymd_opt(2026, 3, 29)
                    .unwrap()
                    .and_hms_opt(2, 30, 0)
                    .unwrap()
            ),
            utc("2026-03-29T01:30:00Z")
        );
    }

    #[test]
    fn occurrences_keep_the_latest() {
        let c = CronExpr::parse("*/10 * * * *").unwrap();
        let (kept, total) = c.occurrences(
            Tz::UTC,
            utc("2026-11-17T10:00:00Z"),
            utc("2026-11-17T12:00:00Z"),
            3,
        );
        assert_eq!(total, 12);
        assert_eq!(
            kept,
            vec![
                utc("2026-11-17T11:40:00Z"),
                utc("2026-11-17T11:50:00Z"),
                utc("2026-11-17T12:00:00Z")
            ]
        );
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("https://user:pw@n8n.example.com/webhook/briefing?token=abc&x=1"),
            "https://n8n.example.com/webhook/briefing?token=***&x=***"
        );
        assert_eq!(redact_url("nonsense"), "(invalid URL)");
    }
}
