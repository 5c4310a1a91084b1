//! The length WhatsApp counts, and splitting long text into parts.

use super::*;

// --- Length ------------------------------------------------------------------------------

#[test]
fn whatsapp_len_counts_utf16_units() {
    assert_eq!(whatsapp_len(""), 0);
    assert_eq!(whatsapp_len("abc"), 3);
    assert_eq!(whatsapp_len("é"), 1);
    assert_eq!(whatsapp_len("e\u{301}"), 2);
    assert_eq!(whatsapp_len("日本"), 2);
    assert_eq!(whatsapp_len("😀"), 2);
    assert_eq!(whatsapp_len("🇳🇴"), 4);
    assert_eq!(whatsapp_len("👨‍👩‍👧‍👦"), 11);
}

// --- Splitting ---------------------------------------------------------------------------

fn assert_valid_split(text: &str, max: usize, chunks: &[String]) {
    assert_eq!(chunks.concat(), text);
    for chunk in chunks {
        assert!(!chunk.is_empty());
        assert!(
            whatsapp_len(chunk) <= max.max(8),
            "{chunk:?} longer than {max}"
        );
    }
}

#[test]
fn empty_input_gives_no_chunks() {
    assert!(split_message("", 100).is_empty());
}

#[test]
fn text_that_fits_is_one_chunk() {
    assert_eq!(split_message("hello", 100), vec!["hello"]);
    let exact = "a".repeat(50);
    assert_eq!(split_message(&exact, 50), vec![exact.clone()]);
}

#[test]
fn one_unit_over_the_limit_gives_two_chunks() {
    let text = "a".repeat(51);
    let chunks = split_message(&text, 50);
    assert_eq!(chunks, vec!["a".repeat(50), "a".to_string()]);
}

#[test]
fn paragraph_break_is_preferred_over_line_break_and_spaces() {
    let text = "para one\n\npara two\nline three more words";
    let chunks = split_message(text, 30);
    assert_eq!(chunks[0], "para one\n\n");
    assert_valid_split(text, 30, &chunks);
}

#[test]
fn a_short_heading_does_not_go_alone() {
    // The paragraph break after the heading is within the first quarter: the split
    // comes at the last paragraph break, line break or space after it.
    let text = format!("*Title*\n\n{}", "word ".repeat(30));
    let chunks = split_message(&text, 100);
    assert!(chunks[0].starts_with("*Title*\n\nword"), "{chunks:?}");
    assert!(chunks[0].ends_with(' '));
    assert_valid_split(&text, 100, &chunks);
}

#[test]
fn whole_paragraph_break_run_stays_with_the_first_chunk() {
    let text = "aaaa\n\n\nbbbbbbbbbbbb";
    assert_eq!(
        split_message(text, 10),
        vec!["aaaa\n\n\n", "bbbbbbbbbb", "bb"]
    );
}

#[test]
fn line_break_is_preferred_over_spaces() {
    let text = "first line\nsecond line words";
    let chunks = split_message(text, 20);
    assert_eq!(chunks[0], "first line\n");
    assert_valid_split(text, 20, &chunks);
}

#[test]
fn crlf_is_a_line_break_and_never_split() {
    let text = "first line\r\nsecond line words";
    let chunks = split_message(text, 20);
    assert_eq!(chunks[0], "first line\r\n");
    assert_valid_split(text, 20, &chunks);
}

#[test]
fn long_line_splits_between_words_then_hard_splits_long_words() {
    let text = "alpha beta gamma delta";
    assert_eq!(split_message(text, 12), vec!["alpha beta ", "gamma delta"]);
    let text = "tiny abcdefghijklmnopqrstuvwxyz end";
    assert_eq!(
        split_message(text, 10),
        vec!["tiny ", "abcdefghij", "klmnopqrst", "uvwxyz end"]
    );
}

#[test]
fn zwj_family_emoji_is_never_split() {
    let family = "👨‍👩‍👧‍👦";
    let text = family.repeat(5);
    let chunks = split_message(&text, 24);
    assert_valid_split(&text, 24, &chunks);
    for chunk in &chunks {
        assert_eq!(
            chunk.replace(family, ""),
            "",
            "split inside a family: {chunk:?}"
        );
    }
    assert_eq!(chunks.len(), 3); // 2 + 2 + 1 families of 11 units each
}

#[test]
fn flags_are_never_split() {
    let text = "🇳🇴".repeat(5);
    let chunks = split_message(&text, 9);
    assert_eq!(chunks, vec!["🇳🇴🇳🇴", "🇳🇴🇳🇴", "🇳🇴"]);
    // An odd max would fit half a flag; the whole flag moves on instead.
    let chunks = split_message("ab🇳🇴🇳🇴", 9);
    assert_eq!(chunks, vec!["ab🇳🇴", "🇳🇴"]);
}

#[test]
fn combining_marks_stay_with_their_letter() {
    let text = "e\u{301}".repeat(10);
    let chunks = split_message(&text, 9);
    assert_valid_split(&text, 9, &chunks);
    for chunk in &chunks {
        assert!(chunk.starts_with('e'));
    }
}

#[test]
fn cjk_text_without_spaces_is_hard_split_by_character() {
    let text = "日本語のテキストを分割します";
    let chunks = split_message(text, 8);
    assert_eq!(chunks, vec!["日本語のテキスト", "を分割します"]);
}

#[test]
fn max_below_eight_is_treated_as_eight() {
    let chunks = split_message("abcdefghijklmnopq", 0);
    assert_eq!(chunks, vec!["abcdefgh", "ijklmnop", "q"]);
    assert_eq!(
        split_message("abcdefghij", 3),
        split_message("abcdefghij", 8)
    );
}

#[test]
fn a_grapheme_longer_than_max_is_cut_between_its_characters() {
    let zalgo = format!("a{}", "\u{301}".repeat(20));
    let chunks = split_message(&zalgo, 8);
    assert_valid_split(&zalgo, 8, &chunks);
    assert_eq!(chunks.len(), 3);
}

#[test]
fn render_for_whatsapp_converts_then_splits() {
    let paragraph = format!("**{}**", "word ".repeat(300).trim_end());
    let markdown = vec![paragraph; 5].join("\n\n");
    let rendered = render_for_whatsapp(&markdown);
    assert_eq!(rendered.text, markdown_to_whatsapp(&markdown));
    assert!(rendered.chunks.len() > 1);
    assert_valid_split(&rendered.text, WHATSAPP_MAX_CHARS, &rendered.chunks);
    // Paragraph boundaries were preferred: every chunk but the last ends with one.
    for chunk in &rendered.chunks[..rendered.chunks.len() - 1] {
        assert!(chunk.ends_with("*\n\n"), "{chunk:?}");
    }
    let json = serde_json::to_value(render_for_whatsapp("**hi**")).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"text": "*hi*", "chunks": ["*hi*"]})
    );
}

// --- Properties --------------------------------------------------------------------------

fn text_pieces() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-z]{1,8}",
        Just(" ".to_string()),
        Just("\n".to_string()),
        Just("\n\n".to_string()),
        Just("\r\n".to_string()),
        Just("👨‍👩‍👧‍👦".to_string()),
        Just("🇳🇴".to_string()),
        Just("👍🏽".to_string()),
        Just("e\u{301}".to_string()),
        Just("\u{302}".to_string()),
        Just("日本語".to_string()),
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..120).prop_map(|pieces| pieces.concat())
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![text_pieces(), any::<String>()]
}

fn check_split_properties(text: &str, max: usize) -> Result<(), TestCaseError> {
    let chunks = split_message(text, max);
    prop_assert_eq!(chunks.concat(), text);
    prop_assert_eq!(chunks.is_empty(), text.is_empty());
    let graphemes: Vec<(usize, &str)> = text.grapheme_indices(true).collect();
    let mut offset = 0;
    for chunk in &chunks {
        prop_assert!(!chunk.is_empty());
        prop_assert!(whatsapp_len(chunk) <= max, "chunk {:?} over {}", chunk, max);
        offset += chunk.len();
        if offset == text.len() {
            continue;
        }
        // A boundary is a grapheme boundary, unless it falls inside a single grapheme
        // that is itself longer than max (the documented exception).
        let at_boundary = graphemes.iter().any(|&(start, _)| start == offset);
        let inside_oversized = graphemes
            .iter()
            .any(|&(start, g)| start < offset && offset < start + g.len() && whatsapp_len(g) > max);
        prop_assert!(
            at_boundary || inside_oversized,
            "cut inside a grapheme at {}",
            offset
        );
    }
    Ok(())
}

proptest! {
    #[test]
    fn split_message_is_lossless_bounded_and_grapheme_safe(text in any_text(), max in 8usize..200) {
        check_split_properties(&text, max)?;
    }

    #[test]
    fn render_for_whatsapp_chunks_fit(text in "[*_a-z \n#-]{0,400}") {
        let rendered = render_for_whatsapp(&text);
        prop_assert_eq!(rendered.chunks.concat(), rendered.text);
    }
}
