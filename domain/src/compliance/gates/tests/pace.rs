//! Quiet hours, the messaging tier and the pace per recipient.

use super::*;

#[test]
fn quiet_hours_defer_sms_until_eight_local() {
    let m = msg(Channel::Sms, template("task_reminder"), Purpose::Automation);
    let mut f = facts();
    // 15:00 UTC is 16:00 in Oslo: fine.
    assert_eq!(run(&m, &f).decision, Decision::Pass);
    // 15:00 UTC is 04:00 next day in Auckland (UTC+13): defer to 08:00 local.
    f.time_zone = LocalZones::Contact(chrono_tz::Pacific::Auckland);
    match run(&m, &f).decision {
        Decision::Defer { reason, until } => {
            assert_eq!(reason, Gate::QuietHours);
            assert_eq!(until, Utc.with_ymd_and_hms(2026, 11, 17, 19, 0, 0).unwrap());
        }
        other => panic!("expected defer, got {other:?}"),
    }
    // 15:00 UTC is 10:00 in New York: fine; 22:00 New York defers to next 08:00.
    f.time_zone = LocalZones::Contact(chrono_tz::America::New_York);
    assert_eq!(run(&m, &f).decision, Decision::Pass);
    let late = Utc.with_ymd_and_hms(2026, 11, 18, 3, 0, 0).unwrap();
    match evaluate(&m, &f, late, &Policy::default()).decision {
        Decision::Defer { until, .. } => {
            assert_eq!(until, Utc.with_ymd_and_hms(2026, 11, 18, 13, 0, 0).unwrap())
        }
        other => panic!("expected defer, got {other:?}"),
    }
    // WhatsApp at the same hour is not subject to quiet hours.
    let wa = automation_template();
    assert_eq!(
        evaluate(&wa, &f, late, &Policy::default()).decision,
        Decision::Pass
    );
}

#[test]
fn tier_limit_defers_new_people_but_not_counted_ones() {
    let m = automation_template();
    let mut f = facts();
    f.tier = TierFact {
        used: 250,
        limit: Some(250),
        recipient_counted: false,
        next_free_at: Some(now() + Duration::hours(3)),
    };
    assert_eq!(
        run(&m, &f).decision,
        Decision::Defer {
            reason: Gate::TierLimit,
            until: now() + Duration::hours(3)
        }
    );
    f.tier.recipient_counted = true;
    assert_eq!(run(&m, &f).decision, Decision::Pass);
    f.tier.recipient_counted = false;
    f.tier.limit = None;
    assert_eq!(run(&m, &f).decision, Decision::Pass);
    // Inside the window the conversation is not business-initiated.
    f.tier.limit = Some(250);
    f.window_expires_at = Some(now() + Duration::hours(1));
    assert_eq!(run(&m, &f).decision, Decision::Pass);
}

#[test]
fn rate_limited_defers_until_the_recipient_may_be_messaged() {
    let m = automation_template();
    let mut f = facts();
    f.recipient_next_at = Some(now() + Duration::seconds(4));
    assert_eq!(
        run(&m, &f).decision,
        Decision::Defer {
            reason: Gate::RateLimited,
            until: now() + Duration::seconds(4)
        }
    );
    f.recipient_next_at = Some(now() - Duration::seconds(1));
    assert_eq!(run(&m, &f).decision, Decision::Pass);
}

#[test]
fn next_local_time_handles_daylight_saving_gaps() {
    // Europe/Oslo springs forward at 02:00 on 2026-03-29: 02:30 does not exist.
    let t = next_local_time(
        chrono_tz::Europe::Oslo,
        chrono::NaiveDate::from_ymd_opt(2026, 3, 29).unwrap(),
        NaiveTime::from_hms_opt(2, 30, 0).unwrap(),
    )
    .unwrap();
    assert_eq!(t, Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap());
}

#[test]
fn quiet_hours_name_the_zone_and_take_every_inferred_zone() {
    let m = msg(Channel::Sms, template("task_reminder"), Purpose::Automation);
    let mut f = facts();
    static ZONES: [chrono_tz::Tz; 2] = [
        chrono_tz::America::New_York,
        chrono_tz::America::Los_Angeles,
    ];
    f.time_zone = LocalZones::Inferred {
        zones: &ZONES,
        prefix: "1",
    };
    // 15:00 UTC: 10:00 in New York, 07:00 in Los Angeles: held.
    let d = run(&m, &f);
    match d.decision {
        Decision::Defer { reason, until } => {
            assert_eq!(reason, Gate::QuietHours);
            // Until 08:00 in Los Angeles (16:00 UTC in November).
            assert_eq!(until, Utc.with_ymd_and_hms(2026, 11, 17, 16, 0, 0).unwrap());
        }
        other => panic!("{other:?}"),
    }
    let detail = d.explanation();
    assert!(detail.contains("America/Los_Angeles"), "{detail}");
    assert!(detail.contains("inferred from +1"), "{detail}");
    // One zone only (New York): it may go.
    f.time_zone = LocalZones::Contact(chrono_tz::America::New_York);
    assert_eq!(run(&m, &f).decision, Decision::Pass);
}
