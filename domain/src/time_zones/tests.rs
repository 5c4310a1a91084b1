//! The time-zone inference and the quiet-hours window, tested against the
//! shipped table and real zones (DST changes included).

use super::*;
use chrono::{DateTime, NaiveTime, Utc};
use chrono_tz::America::{Los_Angeles, New_York, Regina};
use chrono_tz::Asia::Dhaka;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("bad test instant {s}: {e}"))
        .with_timezone(&Utc)
}

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap()
}

fn zones_of(e164: &str) -> Vec<&'static str> {
    infer(e164)
        .unwrap_or_else(|| panic!("{e164} should map to zones"))
        .zones()
        .iter()
        .map(|tz| tz.name())
        .collect()
}

#[test]
fn every_zone_in_the_file_is_known_to_chrono_tz() {
    let mut unknown = Vec::new();
    let mut entries = 0;
    for line in DATA
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (prefix, zones) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("malformed line {line:?}"));
        entries += 1;
        for name in zones.split('&') {
            if Tz::from_str(name).is_err() {
                unknown.push(format!("{prefix}: {name}"));
            }
        }
    }
    assert!(entries > 3000, "table looks truncated: {entries} entries");
    assert!(
        unknown.is_empty(),
        "zones chrono-tz 0.10 does not know: {unknown:?}"
    );
    assert!(skipped_zones().is_empty(), "{:?}", skipped_zones());
    assert_eq!(TABLE.by_prefix.len(), entries);
}

#[test]
fn data_file_is_sorted_unique_digit_prefixes() {
    let prefixes: Vec<&str> = DATA
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split_once('\t').map_or(l, |(p, _)| p))
        .collect();
    assert!(prefixes
        .iter()
        .all(|p| p.bytes().all(|b| b.is_ascii_digit())));
    assert!(
        prefixes.windows(2).all(|w| w[0] < w[1]),
        "not sorted or duplicated"
    );
    assert!(DATA
        .lines()
        .filter(|l| !l.starts_with('#'))
        .all(|l| !l.contains("Etc/Unknown")));
    assert!(DATA.starts_with("# "));
    assert!(DATA.contains("Apache License, Version 2.0"));
    assert!(DATA.contains("Copyright (C) The Libphonenumber Authors"));
}

#[test]
fn parse_skips_unknown_zones_and_bad_lines() {
    let t = parse("# c\n\n1\tAmerica/New_York\n12\tMars/Olympus&Europe/Oslo\n13\tNope/Nope\nbad line\n1x\tEurope/Oslo\n");
    assert_eq!(t.by_prefix.len(), 2);
    assert_eq!(&*t.by_prefix["12"], &[chrono_tz::Europe::Oslo]);
    assert!(!t.by_prefix.contains_key("13"));
    assert_eq!(
        t.unknown_zones,
        vec![("12", "Mars/Olympus"), ("13", "Nope/Nope")]
    );
    assert_eq!(t.max_len, 2);
}

#[test]
fn nanp_area_codes() {
    let ny = infer("+12125550100").unwrap();
    assert_eq!(ny.prefix(), "1212");
    assert_eq!(ny.zones(), &[New_York]);
    assert!(ny.is_single());
    assert_eq!(ny.primary(), New_York);

    assert_eq!(zones_of("+14155550100"), ["America/Los_Angeles"]);
    assert_eq!(zones_of("+14165550100"), ["America/Toronto"]);
    assert_eq!(zones_of("+18085550100"), ["Pacific/Honolulu"]);
    assert!(zones_of("+19075550100").contains(&"America/Anchorage"));
}

#[test]
fn nanp_prefixes_spanning_zones() {
    // Idaho's 208 straddles Mountain and Pacific time.
    let idaho = infer("+12085550100").unwrap();
    assert!(!idaho.is_single());
    assert_eq!(
        zones_of("+12085550100"),
        ["America/Boise", "America/Los_Angeles"]
    );
    // South Dakota's 605: Mountain and Central.
    assert_eq!(
        zones_of("+16055550100"),
        ["America/Denver", "America/North_Dakota/Center"]
    );
    // Toll-free 800 has no entry of its own: the bare "1" entry covers all of NANP.
    let toll_free = infer("+18005550100").unwrap();
    assert_eq!(toll_free.prefix(), "1");
    assert!(toll_free.zones().len() > 30, "{:?}", toll_free.zones());
    assert!(toll_free.zones().contains(&chrono_tz::Pacific::Guam));
    assert!(toll_free.zones().contains(&New_York));
}

#[test]
fn other_countries() {
    assert!(zones_of("+4722000000").contains(&"Europe/Oslo"));
    assert!(zones_of("+4791234567").contains(&"Europe/Oslo"));
    assert_eq!(zones_of("+442071234567"), ["Europe/London"]);

    // Australia spans several zones; the national prefix picks the region.
    let perth = zones_of("+61892221234");
    let sydney = zones_of("+61292221234");
    assert!(perth.contains(&"Australia/Perth"), "{perth:?}");
    assert!(!perth.contains(&"Australia/Sydney"), "{perth:?}");
    assert_eq!(sydney, ["Australia/Sydney"]);
    assert_ne!(perth, sydney);
    // The country as a whole has many.
    assert!(infer("+61").unwrap().zones().len() >= 6);
}

#[test]
fn absent_or_malformed_numbers_give_none() {
    assert_eq!(infer("+80012345678"), None); // international freephone: no zone
    assert_eq!(infer("+99912345"), None);
    assert_eq!(infer("12125550100"), None); // no '+'
    assert_eq!(infer("+1-212-555-0100"), None);
    assert_eq!(infer("+"), None);
    assert_eq!(infer(""), None);
    assert_eq!(infer("+١٢١٢"), None); // non-ASCII digits
}

#[test]
fn within_hours_across_new_york_and_los_angeles() {
    let zones = [New_York, Los_Angeles];
    let (start, end) = (hm(8, 0), hm(21, 0));
    // 07:00 New York, 04:00 Los Angeles.
    assert!(!within_hours_everywhere(
        &zones,
        utc("2025-11-05T12:00:00Z"),
        start,
        end
    ));
    // 13:00 / 10:00.
    assert!(within_hours_everywhere(
        &zones,
        utc("2025-11-05T18:00:00Z"),
        start,
        end
    ));
    // 20:59 / 17:59 ok; 21:00 New York is out (end exclusive).
    assert!(within_hours_everywhere(
        &zones,
        utc("2025-11-06T01:59:00Z"),
        start,
        end
    ));
    assert!(!within_hours_everywhere(
        &zones,
        utc("2025-11-06T02:00:00Z"),
        start,
        end
    ));
    // Each zone alone.
    assert!(within_hours_everywhere(
        &[New_York],
        utc("2025-11-05T13:00:00Z"),
        start,
        end
    ));
    assert!(!within_hours_everywhere(
        &[Los_Angeles],
        utc("2025-11-05T13:00:00Z"),
        start,
        end
    ));
}

#[test]
fn next_window_across_new_york_and_los_angeles() {
    let zones = [New_York, Los_Angeles];
    let (start, end) = (hm(8, 0), hm(21, 0));
    // Wednesday 5 November 2025, 12:00 UTC: 08:00 in Los Angeles is 16:00 UTC.
    let next = next_within_hours_everywhere(&zones, utc("2025-11-05T12:00:00Z"), start, end);
    assert_eq!(next, Some(utc("2025-11-05T16:00:00Z")));
    // Already inside: now itself.
    let now = utc("2025-11-05T18:30:00Z");
    assert_eq!(
        next_within_hours_everywhere(&zones, now, start, end),
        Some(now)
    );
    // After New York's 21:00: next day 16:00 UTC.
    let next = next_within_hours_everywhere(&zones, utc("2025-11-06T02:00:00Z"), start, end);
    assert_eq!(next, Some(utc("2025-11-06T16:00:00Z")));
    // Summer (both on DST): 08:00 PDT is 15:00 UTC.
    let next = next_within_hours_everywhere(&zones, utc("2025-07-02T12:00:00Z"), start, end);
    assert_eq!(next, Some(utc("2025-07-02T15:00:00Z")));
}

#[test]
fn dst_spring_forward() {
    // New York, Sunday 9 March 2025: 02:00 EST jumps to 03:00 EDT at 07:00 UTC.
    let from = utc("2025-03-09T05:00:00Z"); // 00:00 EST
                                            // 08:00 is already EDT that day: 12:00 UTC, not 13:00.
    assert_eq!(
        next_within_hours_everywhere(&[New_York], from, hm(8, 0), hm(21, 0)),
        Some(utc("2025-03-09T12:00:00Z"))
    );
    // A 02:30 start does not exist that day: it moves forward to the jump, 03:00 EDT.
    assert_eq!(
        next_within_hours_everywhere(&[New_York], from, hm(2, 30), hm(4, 0)),
        Some(utc("2025-03-09T07:00:00Z"))
    );
    assert!(!within_hours_everywhere(
        &[New_York],
        utc("2025-03-09T06:59:59Z"),
        hm(2, 30),
        hm(4, 0)
    ));
}

#[test]
fn dst_fall_back() {
    // New York, Sunday 2 November 2025: 02:00 EDT goes back to 01:00 EST at 06:00 UTC,
    // so 01:00-02:00 happens twice.
    // An ambiguous start takes the earlier occurrence: 01:30 EDT = 05:30 UTC.
    assert_eq!(
        next_within_hours_everywhere(
            &[New_York],
            utc("2025-11-02T04:00:00Z"),
            hm(1, 30),
            hm(3, 0)
        ),
        Some(utc("2025-11-02T05:30:00Z"))
    );
    // After leaving a short window, the repeated hour enters it again at 01:00 EST.
    assert_eq!(
        next_within_hours_everywhere(
            &[New_York],
            utc("2025-11-02T05:45:00Z"),
            hm(1, 0),
            hm(1, 30)
        ),
        Some(utc("2025-11-02T06:00:00Z"))
    );
    // Re-entry where the clock jumps back into the window past its start (00:30):
    // only the offset-change candidate catches this one.
    assert_eq!(
        next_within_hours_everywhere(
            &[New_York],
            utc("2025-11-02T05:45:00Z"),
            hm(0, 30),
            hm(1, 30)
        ),
        Some(utc("2025-11-02T06:00:00Z"))
    );
}

#[test]
fn zones_twelve_hours_apart() {
    // Regina (UTC-6) and Dhaka (UTC+6), neither observing DST: exactly 12 hours apart.
    let zones = [Regina, Dhaka];
    let from = utc("2025-11-05T12:00:00Z"); // 06:00 Regina, 18:00 Dhaka
                                            // 08:00-21:00 overlaps for one hour, twice a day; the first is 08:00 Regina / 20:00 Dhaka.
    let next = next_within_hours_everywhere(&zones, from, hm(8, 0), hm(21, 0));
    assert_eq!(next, Some(utc("2025-11-05T14:00:00Z")));
    assert!(within_hours_everywhere(
        &zones,
        utc("2025-11-05T14:59:59Z"),
        hm(8, 0),
        hm(21, 0)
    ));
    assert!(!within_hours_everywhere(
        &zones,
        utc("2025-11-05T15:00:00Z"),
        hm(8, 0),
        hm(21, 0)
    ));
    // From just after that hour, the other one: 20:00 Regina / 08:00 Dhaka = 02:00 UTC.
    let next =
        next_within_hours_everywhere(&zones, utc("2025-11-05T15:00:00Z"), hm(8, 0), hm(21, 0));
    assert_eq!(next, Some(utc("2025-11-06T02:00:00Z")));
    // A one-hour window 08:00-09:00 can never hold in both.
    assert_eq!(
        next_within_hours_everywhere(&zones, from, hm(8, 0), hm(9, 0)),
        None
    );
}

#[test]
fn whole_nanp_has_a_narrow_window() {
    // A number that only matches the bare "1" entry must satisfy Guam (UTC+10) through
    // St John's (UTC-3:30 in November): 08:00 Guam is 22:00 UTC, 21:00 St John's is 00:30 UTC.
    let zones = infer("+18005550100").unwrap().zones();
    let (start, end) = (hm(8, 0), hm(21, 0));
    let next = next_within_hours_everywhere(zones, utc("2025-11-05T12:00:00Z"), start, end);
    assert_eq!(next, Some(utc("2025-11-05T22:00:00Z")));
    assert!(within_hours_everywhere(
        zones,
        utc("2025-11-06T00:29:59Z"),
        start,
        end
    ));
    assert!(!within_hours_everywhere(
        zones,
        utc("2025-11-06T00:30:00Z"),
        start,
        end
    ));
}

fn parsed(e164: &str) -> phonenumber::PhoneNumber {
    phonenumber::parse(None, e164).unwrap_or_else(|e| panic!("{e164}: {e}"))
}

#[test]
fn infer_number_follows_libphonenumber_number_types() {
    // Fixed lines and NANP numbers: by prefix, as `infer`.
    assert_eq!(infer_number(&parsed("+12125550100")), infer("+12125550100"));
    assert_eq!(
        infer_number(&parsed("+61892221234")).unwrap().prefix(),
        "6189"
    );
    // A Jamaican mobile: by its area code (libphonenumber itself would say all NANP).
    assert_eq!(
        infer_number(&parsed("+18765550100")).unwrap().zones(),
        &[chrono_tz::America::Jamaica]
    );
    // Italian numbers: the phonenumber crate calls them unknown (it drops the
    // leading 0 when classifying), so they get Italy's zones.
    let rome = infer_number(&parsed("+390612345678")).unwrap();
    assert_eq!(rome.prefix(), "39");
    assert!(rome.zones().contains(&chrono_tz::Europe::Rome));
    // An Australian mobile says nothing about where it is: all of Australia,
    // not the Sydney that the bare prefix "614" gives.
    assert_eq!(
        infer("+61412345678").unwrap().zones(),
        &[chrono_tz::Australia::Sydney]
    );
    let mobile = infer_number(&parsed("+61412345678")).unwrap();
    assert_eq!(mobile.prefix(), "61");
    assert!(mobile.zones().contains(&chrono_tz::Australia::Perth));
    // Brazil assigns mobiles by region: the prefix still counts.
    assert_eq!(
        infer_number(&parsed("+5511987654321")).unwrap().zones(),
        &[chrono_tz::America::Sao_Paulo]
    );
    // UK mobile: country level.
    assert_eq!(
        infer_number(&parsed("+447911123456")).unwrap().prefix(),
        "44"
    );
    // Toll-free: the whole of NANP.
    assert_eq!(infer_number(&parsed("+18005550100")).unwrap().prefix(), "1");
    // International freephone has no zone at all.
    assert_eq!(infer_number(&parsed("+80012345678")), None);
}

#[test]
fn push_decimal_writes_digits() {
    let mut buf = [0u8; 8];
    let end = push_decimal(&mut buf, 0, 61);
    let end = push_decimal(&mut buf, end, 0);
    let end = push_decimal(&mut buf, end, 412);
    assert_eq!(&buf[..end], b"610412");
    // Truncates rather than panicking when the buffer is full.
    assert_eq!(push_decimal(&mut buf, 6, 12345), 8);
}

#[test]
fn degenerate_inputs() {
    let now = utc("2025-11-05T12:00:00Z");
    // No zones: no constraint.
    assert_eq!(
        next_within_hours_everywhere(&[], now, hm(8, 0), hm(21, 0)),
        Some(now)
    );
    // Empty window.
    assert_eq!(
        next_within_hours_everywhere(&[New_York], now, hm(9, 0), hm(9, 0)),
        None
    );
    assert!(!within_hours_everywhere(
        &[New_York],
        now,
        hm(9, 0),
        hm(9, 0)
    ));
}
