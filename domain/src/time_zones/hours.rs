//! The quiet-hours window across every zone a number may be in: whether
//! now is inside it, and the earliest instant it opens (DST changes
//! included).

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

/// How far ahead `next_within_hours_everywhere` looks before giving up.
const HORIZON_DAYS: i64 = 8;

/// Is `now` inside [start, end) local time in EVERY zone? (A number that spans zones takes the most restrictive window.)
///
/// With several candidate zones we do not know which one the recipient is in, so a
/// message may only go when it would be acceptable in all of them. `start` must be
/// before `end` (a same-day window); otherwise the window is empty and this is false.
/// An empty `zones` slice imposes no constraint and gives true.
pub fn within_hours_everywhere(
    zones: &[Tz],
    now: DateTime<Utc>,
    start: NaiveTime,
    end: NaiveTime,
) -> bool {
    zones.iter().all(|tz| {
        let local = now.with_timezone(tz).time();
        start <= local && local < end
    })
}

/// The earliest instant >= now at which within_hours_everywhere holds, searching at most 8 days ahead in steps that cannot miss a window (e.g. candidate instants = each zone's next local `start`, plus now); None if there is none (e.g. zones 12+ hours apart with a short window).
///
/// Why the candidates cannot miss: the set of good instants is an intersection of
/// per-zone windows, so its earliest point after `now` is either `now` or a moment
/// when some zone's local clock enters [start, end). A local clock only enters the
/// window when it reaches `start`, or when it jumps into the window at a DST or
/// offset change. So the candidates are: `now`; every occurrence of local `start`
/// in each zone (both occurrences when it is ambiguous, the earlier first; when it
/// does not exist on a spring-forward day, the moment the clock jumps past it); and
/// every offset change of each zone within the horizon. The first candidate at which
/// all zones are inside the window is the answer.
///
/// Pure: uses no system clock. Allocates a small candidate list; meant for
/// scheduling a deferred message, not for the per-message gate check itself.
pub fn next_within_hours_everywhere(
    zones: &[Tz],
    now: DateTime<Utc>,
    start: NaiveTime,
    end: NaiveTime,
) -> Option<DateTime<Utc>> {
    if within_hours_everywhere(zones, now, start, end) {
        return Some(now);
    }
    if start >= end {
        return None;
    }
    let limit = now + Duration::days(HORIZON_DAYS);
    let mut candidates = Vec::new();
    for &tz in zones {
        // Local dates from the day before now's local date to a day past the horizon,
        // so no occurrence of `start` within [now, limit] is left out.
        let first_day = now.with_timezone(&tz).date_naive().pred_opt()?;
        for day in first_day.iter_days().take(HORIZON_DAYS as usize + 3) {
            push_local_instants(tz, day, start, &mut candidates);
        }
        push_offset_changes(tz, now, limit, &mut candidates);
    }
    candidates.retain(|c| *c >= now && *c <= limit);
    candidates.sort_unstable();
    candidates.dedup();
    candidates
        .into_iter()
        .find(|c| within_hours_everywhere(zones, *c, start, end))
}

/// The UTC instants at which `tz`'s local clock shows `time` on `day`.
///
/// Ambiguous (clocks going back): both instants, the earlier first. Nonexistent
/// (clocks going forward over it): the first instant after the jump, i.e. the start
/// moves forward to the moment the clock skips past it.
fn push_local_instants(tz: Tz, day: NaiveDate, time: NaiveTime, out: &mut Vec<DateTime<Utc>>) {
    let local = day.and_time(time);
    match tz.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => out.push(t.with_timezone(&Utc)),
        chrono::LocalResult::Ambiguous(earlier, later) => {
            out.push(earlier.with_timezone(&Utc));
            out.push(later.with_timezone(&Utc));
        }
        chrono::LocalResult::None => {
            if let Some(t) = first_existing_after_gap(tz, local) {
                out.push(t);
            }
        }
    }
}

/// For a local time inside a gap, the instant the clock jumps to: the first whole
/// local minute after it that exists. Gaps start and end on whole minutes in the tz
/// database and last at most a day (Samoa skipped 30 December 2011).
fn first_existing_after_gap(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    let minute = local.date().and_hms_opt(
        chrono::Timelike::hour(&local),
        chrono::Timelike::minute(&local),
        0,
    )?;
    (1..=25 * 60).find_map(|m| {
        tz.from_local_datetime(&(minute + Duration::minutes(m)))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    })
}

/// The zone's UTC offset at an instant, in seconds.
fn offset_seconds(tz: Tz, at: DateTime<Utc>) -> i32 {
    tz.offset_from_utc_datetime(&at.naive_utc())
        .fix()
        .local_minus_utc()
}

/// Push every instant in (from, to] at which `tz` changes its UTC offset, exact to
/// the second. Scans hourly, which is safe because no zone changes offset twice
/// within an hour, then bisects each change.
fn push_offset_changes(
    tz: Tz,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    out: &mut Vec<DateTime<Utc>>,
) {
    // Work on whole seconds: offset changes happen on whole seconds, so bisection
    // on whole-second bounds lands exactly on them.
    let from = DateTime::<Utc>::from_timestamp(from.timestamp(), 0).unwrap_or(from);
    let step = Duration::hours(1);
    let mut lo = from;
    let mut lo_offset = offset_seconds(tz, lo);
    while lo < to {
        let hi = (lo + step).min(to + Duration::seconds(1));
        let hi_offset = offset_seconds(tz, hi);
        if hi_offset != lo_offset {
            let (mut a, mut b) = (lo, hi);
            while b - a > Duration::seconds(1) {
                let mid = a + Duration::seconds((b - a).num_seconds() / 2);
                if offset_seconds(tz, mid) == lo_offset {
                    a = mid;
                } else {
                    b = mid;
                }
            }
            out.push(b);
        }
        lo = hi;
        lo_offset = hi_offset;
    }
}
