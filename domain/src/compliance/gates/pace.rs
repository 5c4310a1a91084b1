//! When a message may go: SMS quiet hours in every zone the person may be
//! in, the WhatsApp messaging tier, and one message per person at a time;
//! each defers, never blocks.

use super::*;

pub(super) fn quiet_hours(
    msg: &MessageFacts,
    facts: &LoadedFacts,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Verdict {
    if msg.channel != Channel::Sms {
        return Verdict::na("quiet hours apply to SMS");
    }
    if msg.purpose == Purpose::ComplianceReply {
        return Verdict::na("immediate reply to the person's own keyword");
    }
    let zones = facts.time_zone.zones();
    let (start, end) = policy.sms_hours;
    // Local times in every zone the person may be in.
    let clocks = zones
        .iter()
        .map(|tz| {
            let t = now.with_timezone(tz).time();
            format!("{:02}:{:02}", t.hour(), t.minute())
        })
        .collect::<Vec<_>>()
        .join(" / ");
    let place = facts.time_zone.describe();
    if crate::time_zones::within_hours_everywhere(zones, now, start, end) {
        return Verdict::pass(format!("{clocks} in {place} is within sending hours"));
    }
    let until = crate::time_zones::next_within_hours_everywhere(zones, now, start, end)
        .unwrap_or(now + Duration::hours(1));
    Verdict::Defer {
        until,
        detail: format!(
            "{clocks} in {place} is outside {}-{}; held until {}",
            start.format("%H:%M"),
            end.format("%H:%M"),
            until.format("%Y-%m-%d %H:%M UTC")
        ),
    }
}

/// The UTC instant of a local wall-clock time, skipping forward over a gap
/// (a daylight-saving spring-forward) and taking the earlier of two
/// instants in an overlap.
pub fn next_local_time(
    tz: chrono_tz::Tz,
    day: chrono::NaiveDate,
    time: NaiveTime,
) -> Option<DateTime<Utc>> {
    let mut naive = day.and_time(time);
    for _ in 0..4 {
        match tz.from_local_datetime(&naive) {
            chrono::LocalResult::Single(t) => return Some(t.with_timezone(&Utc)),
            chrono::LocalResult::Ambiguous(a, _) => return Some(a.with_timezone(&Utc)),
            chrono::LocalResult::None => naive += Duration::minutes(30),
        }
    }
    None
}

pub(super) fn tier_limit(
    msg: &MessageFacts,
    facts: &LoadedFacts,
    window_open: bool,
    now: DateTime<Utc>,
) -> Verdict {
    let business_initiated = msg.channel == Channel::WhatsApp
        && matches!(msg.content, MessageContent::Template { .. })
        && !window_open;
    if !business_initiated {
        return Verdict::na("not a business-initiated WhatsApp conversation");
    }
    let tier = &facts.tier;
    match tier.limit {
        None => Verdict::pass("unlimited messaging tier"),
        Some(_) if tier.recipient_counted => Verdict::pass(format!(
            "recipient already counted in the moving 24 hours ({} of {})",
            tier.used,
            tier.limit.map(|l| l.to_string()).unwrap_or_default()
        )),
        Some(limit) if tier.used < limit => Verdict::pass(format!(
            "{} of {limit} unique people in the moving 24 hours",
            tier.used
        )),
        Some(limit) => Verdict::Defer {
            until: tier.next_free_at.unwrap_or(now + Duration::hours(1)),
            detail: format!(
                "messaging tier reached: {} of {limit} unique people in the moving 24 hours",
                tier.used
            ),
        },
    }
}

pub(super) fn rate_limited(facts: &LoadedFacts, now: DateTime<Utc>) -> Verdict {
    match facts.recipient_next_at {
        Some(at) if at > now => Verdict::Defer {
            until: at,
            detail: format!(
                "one message per person at a time: next at {}",
                at.format("%H:%M:%S UTC")
            ),
        },
        _ => Verdict::pass("within the sender's and the recipient's pace"),
    }
}
