use std::collections::BTreeSet;

use super::content::{canonical_time, content_hash, digest, link_hash};
use super::*;

#[test]
fn every_column_of_a_chained_table_is_covered_once() {
    for stream in Stream::ALL {
        let table = stream.table();
        let mut covered = BTreeSet::new();
        for event in table.events {
            for field in event.fields {
                assert!(
                    covered.insert(*field),
                    "{}.{field} is covered by two events",
                    table.name
                );
                assert!(table.kind(field).is_some(), "{}.{field}", table.name);
            }
            if let Some(t) = event.trigger {
                assert!(event.fields.contains(&t), "{}: {}", table.name, event.name);
            }
        }
        for field in table.recorded {
            assert!(covered.insert(*field), "{}.{field}", table.name);
        }
        for (event, field) in table.appended {
            assert!(table.event(event).is_some(), "{}: {event}", table.name);
            assert!(covered.insert(*field), "{}.{field}", table.name);
        }
        let columns: BTreeSet<&str> = table.columns.iter().map(|(c, _)| *c).collect();
        assert_eq!(covered, columns, "{}", table.name);
        assert_eq!(table.created().name, "created");
        assert_eq!(table.created().fields[0], "id");
        // Ranks rise in the order the events are listed.
        assert!(table.events.windows(2).all(|w| w[0].rank < w[1].rank));
        // Only columns fixed at creation may be redacted.
        for (field, _) in table.personal {
            assert!(
                table.created().fields.contains(field),
                "{}.{field}",
                table.name
            );
        }
        assert_eq!(Stream::parse(stream.as_str()), Some(stream));
    }
}

#[test]
fn null_and_empty_hash_apart() {
    assert_ne!(digest(None), digest(Some("")));
    assert_ne!(digest(Some("a")), digest(Some("b")));
}

#[test]
fn the_link_hash_frames_its_parts() {
    let a = link_hash(GENESIS, "consents", 1, "consents", "ab", "c", "x");
    let b = link_hash(GENESIS, "consents", 1, "consents", "a", "bc", "x");
    assert_ne!(a, b);
    // Pinned: a verifier written elsewhere must get the same value.
    assert_eq!(
        link_hash(
            GENESIS,
            "tool_calls",
            1,
            "tool_calls",
            "row-1",
            "created",
            "c0ffee"
        ),
        PINNED_LINK
    );
}

const PINNED_LINK: &str = "6f1309f87f231cb20ce479c254307fcbb63d76dd58a379f0a915c964f5368e47";

#[test]
fn content_hashes_follow_each_field_and_its_name() {
    let base = vec![("ip".to_string(), digest(Some("203.0.113.7")))];
    let other_value = vec![("ip".to_string(), digest(Some("203.0.113.8")))];
    let other_name = vec![("user_agent".to_string(), digest(Some("203.0.113.7")))];
    assert_ne!(content_hash(&base), content_hash(&other_value));
    assert_ne!(content_hash(&base), content_hash(&other_name));
    // Pinned (computed independently: SHA-256 of the prefix and each
    // length-prefixed name with its 32-byte digest).
    assert_eq!(
        content_hash(&[
            ("ip".to_string(), digest(Some("203.0.113.7"))),
            ("user_agent".to_string(), digest(None)),
        ]),
        "a8f49945b2b6ba4695dcf40e1388d52aa31b9f286d1a02c8168bf384c200be65"
    );
}

#[test]
fn timestamps_hash_as_microseconds_in_utc() {
    let t = chrono::DateTime::parse_from_rfc3339("2026-11-17T12:00:00.123456789+02:00")
        .unwrap()
        .with_timezone(&chrono::Utc);
    assert_eq!(canonical_time(t), "2026-11-17T10:00:00.123456Z");
}

#[test]
fn personal_fields_are_listed_per_table() {
    assert_eq!(
        personal_fields("consents"),
        ["ip", "user_agent", "page_url", "consent_text"]
    );
    assert_eq!(personal_fields("tool_calls"), ["verdicts", "detail"]);
    assert!(personal_fields("suppressions").is_empty());
    assert!(personal_fields("contacts").is_empty());
}
