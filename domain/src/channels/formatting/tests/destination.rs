//! What goes to each destination: plain text for SMS, SMS segments, and
//! prepared parts.

use super::*;

// --- Plain text for SMS -------------------------------------------------------------------

fn plain(markdown: &str) -> String {
    plain_text(&markdown_to_whatsapp(markdown))
}

#[test]
fn plain_text_drops_the_markers_whatsapp_would_style() {
    assert_eq!(
        plain("**Bold** and _it_ and ~~gone~~"),
        "Bold and it and gone"
    );
    assert_eq!(plain("***both***"), "both");
    assert_eq!(plain("# Title\ntext"), "Title\ntext");
    assert_eq!(plain("> **quoted**"), "> quoted");
    assert_eq!(plain("- **a**\n- b"), "- a\n- b");
    assert_eq!(plain("**a\nb**"), "a\nb");
}

#[test]
fn plain_text_keeps_what_whatsapp_shows_literally() {
    for text in [
        "2 * 3 * 4",
        "snake_case_name",
        "a*b*c",
        "* item",
        "~ 5 km",
        "file_name_v2",
    ] {
        assert_eq!(plain_text(text), text);
    }
    // An unpaired fence stays.
    assert_eq!(plain_text("a ``` b"), "a ``` b");
    assert_eq!(plain_text("```x``` and ```"), "x and ```");
}

#[test]
fn plain_text_keeps_code_verbatim_without_fences() {
    assert_eq!(plain("run `x_y *z*` now"), "run x_y *z* now");
    assert_eq!(plain("**`code`**"), "code");
    assert_eq!(
        plain("Look:\n\n```\nlet *a* = b_c;\n\n  more\n```\nafter"),
        "Look:\n\nlet *a* = b_c;\n\n  more\nafter"
    );
    assert_eq!(plain("> ```\n> *x*\n> ```"), "> *x*");
}

// --- SMS segments ----------------------------------------------------------------------

#[test]
fn gsm7_segments() {
    let seg = |t: &str| sms_segments(t);
    assert_eq!(
        seg("hello"),
        SmsSegments {
            encoding: SmsEncoding::Gsm7,
            units: 5,
            segments: 1
        }
    );
    assert_eq!(seg(&"a".repeat(160)).segments, 1);
    assert_eq!(seg(&"a".repeat(161)).segments, 2);
    assert_eq!(seg(&"a".repeat(306)).segments, 2);
    assert_eq!(seg(&"a".repeat(307)).segments, 3);
    assert_eq!(seg("").segments, 1);
    // Accented letters of the GSM alphabet keep GSM-7.
    assert_eq!(seg("Café à Malmö, £5 @ 3pm").encoding, SmsEncoding::Gsm7);
}

#[test]
fn gsm7_extension_characters_take_two_septets_and_are_not_split() {
    assert_eq!(sms_segments("{}").units, 4);
    assert_eq!(sms_segments(&"€".repeat(80)).segments, 1);
    let s = sms_segments(&"€".repeat(81));
    assert_eq!((s.units, s.segments), (162, 2));
    // 152 septets, then a two-septet character: it goes to the next segment.
    let text = format!("{}€{}", "a".repeat(152), "a".repeat(152));
    let s = sms_segments(&text);
    assert_eq!((s.units, s.segments), (306, 3));
}

#[test]
fn ucs2_segments() {
    let s = sms_segments("Привет");
    assert_eq!(
        s,
        SmsSegments {
            encoding: SmsEncoding::Ucs2,
            units: 6,
            segments: 1
        }
    );
    assert_eq!(sms_segments(&"ж".repeat(70)).segments, 1);
    assert_eq!(sms_segments(&"ж".repeat(71)).segments, 2);
    assert_eq!(sms_segments(&"ж".repeat(134)).segments, 2);
    assert_eq!(sms_segments(&"ж".repeat(135)).segments, 3);
    // One emoji makes the whole message UCS-2; a surrogate pair is never split.
    assert_eq!(sms_segments("ok 👍").encoding, SmsEncoding::Ucs2);
    assert_eq!(sms_segments(&"😀".repeat(35)).segments, 1);
    assert_eq!(sms_segments(&"😀".repeat(36)).segments, 2);
    assert_eq!(sms_segments(&"😀".repeat(67)).segments, 3);
}

#[test]
fn sms_segments_serialize_with_the_encodings_names() {
    assert_eq!(
        serde_json::to_value(sms_segments("hi")).unwrap(),
        serde_json::json!({"encoding": "GSM-7", "units": 2, "segments": 1})
    );
}

// --- Prepared parts ----------------------------------------------------------------------

#[test]
fn prepare_converts_and_splits_per_destination() {
    let long = format!("**Hello**\n\n{}", "word ".repeat(700));
    let twilio = prepare(
        &long,
        TextFormat::Markdown,
        Destination::WhatsAppTwilio,
        false,
    );
    assert_eq!(twilio.max_chars, 1600);
    assert!(twilio.text.starts_with("*Hello*\n\nword"));
    assert_eq!(twilio.parts.len(), 3);
    assert!(twilio
        .parts
        .iter()
        .all(|p| p.chars <= 1600 && p.sms.is_none()));
    let meta = prepare(
        &long,
        TextFormat::Markdown,
        Destination::WhatsAppMeta,
        false,
    );
    assert_eq!(meta.parts.len(), 1);
    assert_eq!(
        prepare(&long, TextFormat::Markdown, Destination::WhatsAppMeta, true).max_chars,
        1024
    );
    let sms = prepare(&long, TextFormat::Markdown, Destination::Sms, false);
    assert!(sms.text.starts_with("Hello\n\nword"));
    assert_eq!(sms.parts.len(), 3);
    let first = sms.parts[0].sms.unwrap();
    assert_eq!(first.encoding, SmsEncoding::Gsm7);
    assert_eq!(first.segments, sms_segments(&sms.parts[0].text).segments);
    assert!(first.segments > 1);
}

#[test]
fn prepare_as_is_only_splits() {
    let p = prepare(
        "*already* formatted",
        TextFormat::AsIs,
        Destination::Sms,
        false,
    );
    assert_eq!(p.text, "*already* formatted");
    assert!(prepare("", TextFormat::Markdown, Destination::Sms, false)
        .parts
        .is_empty());
}

proptest! {
    #[test]
    fn prepared_parts_are_lossless_and_within_the_limit(
        text in "[*_a-zж😀 \n#`-]{0,5000}",
        dest in prop::sample::select(vec![Destination::WhatsAppTwilio, Destination::WhatsAppMeta, Destination::Sms]),
    ) {
        let p = prepare(&text, TextFormat::Markdown, dest, false);
        // The parts are the text in order, with only the whitespace they were cut at
        // between them, and none ends in whitespace.
        let mut rest = p.text.as_str();
        for part in &p.parts {
            let at = rest.find(part.text.as_str());
            prop_assert!(at.is_some(), "part not found in order: {:?}", part.text);
            let at = at.unwrap_or_default();
            prop_assert!(rest[..at].chars().all(char::is_whitespace));
            rest = &rest[at + part.text.len()..];
            prop_assert_eq!(part.text.trim_end(), part.text.as_str());
        }
        prop_assert!(rest.chars().all(char::is_whitespace));
        for part in &p.parts {
            prop_assert!(part.chars <= p.max_chars);
            prop_assert!(!part.text.is_empty());
            if let Some(s) = part.sms {
                // One segment holds 160 (GSM-7) or 70 (UCS-2) units; several hold 153
                // or 67 each (less when a character may not be split).
                let (single, per) = match s.encoding {
                    SmsEncoding::Gsm7 => (160, 153),
                    SmsEncoding::Ucs2 => (70, 67),
                };
                if s.segments == 1 {
                    prop_assert!(s.units <= single, "{s:?}");
                } else {
                    prop_assert!(s.units > single && s.segments * per >= s.units, "{s:?}");
                }
            }
        }
    }

    #[test]
    fn plain_text_never_adds_characters(text in "[*_~`a-z >\n-]{0,300}") {
        let out = plain_text(&text);
        prop_assert!(out.chars().count() <= text.chars().count());
    }
}
