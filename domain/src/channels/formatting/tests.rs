//! Formatting, splitting, SMS segments and interactive limits, case by case
//! (the regression cases of the formatter included).

use super::*;
use proptest::prelude::*;

fn md(input: &str) -> String {
    markdown_to_whatsapp(input)
}

// --- Markdown: block structure ---------------------------------------------------------

#[test]
fn headings_of_every_level_become_a_bold_line() {
    for level in 1..=6 {
        let input = format!("{} Heading\n\nText after", "#".repeat(level));
        assert_eq!(md(&input), "*Heading*\n\nText after", "level {level}");
        // Right under its heading, as written.
        let input = format!("{} Heading\nText after", "#".repeat(level));
        assert_eq!(md(&input), "*Heading*\nText after", "level {level}");
    }
    assert_eq!(md("Setext\n======\n\nbody"), "*Setext*\n\nbody");
    assert_eq!(
        md("intro\n\n## Section\n\nbody"),
        "intro\n\n*Section*\n\nbody"
    );
}

#[test]
fn empty_heading_leaves_no_markers() {
    assert_eq!(md("#\n\ntext"), "text");
}

#[test]
fn paragraphs_are_separated_by_exactly_one_blank_line() {
    assert_eq!(md("one\n\ntwo"), "one\n\ntwo");
    assert_eq!(md("one\n\n\n\n\ntwo"), "one\n\ntwo");
}

#[test]
fn soft_and_hard_breaks_keep_the_line_structure() {
    assert_eq!(md("line one\nline two"), "line one\nline two");
    assert_eq!(md("a  \nb"), "a\nb");
    assert_eq!(md("a\\\nb"), "a\nb");
}

#[test]
fn result_is_trimmed() {
    assert_eq!(md("\n\n   hello   \n\n\n"), "hello");
    assert_eq!(md(""), "");
    assert_eq!(md("   \n\n  "), "");
}

#[test]
fn unordered_lists_keep_their_bullets_and_nest_by_two_spaces() {
    assert_eq!(md("- a\n- b"), "- a\n- b");
    assert_eq!(md("* a\n* b"), "* a\n* b");
    assert_eq!(md("+ a\n+ b"), "+ a\n+ b");
    assert_eq!(md("- a\n  - b\n    - c\n- d"), "- a\n  - b\n    - c\n- d");
    assert_eq!(md("* a\n    + b"), "* a\n  + b");
}

// Regressions: the formatter changed what people wrote.

#[test]
fn ordered_list_numbers_come_out_as_written() {
    // `10.` after `2.` used to become `3.`.
    assert_eq!(md("1. one\n2. two\n10. tenth"), "1. one\n2. two\n10. tenth");
    assert_eq!(md("1. a\n1. b\n1. c"), "1. a\n1. b\n1. c");
    assert_eq!(md("1) a\n2) b"), "1) a\n2) b");
    assert_eq!(md("> 5. five\n> 9. nine"), "> 5. five\n> 9. nine");
    assert_eq!(
        md("- x\n  3. three\n  7. seven"),
        "- x\n  3. three\n  7. seven"
    );
}

#[test]
fn a_lone_star_stays_a_star() {
    // Used to become `-`.
    assert_eq!(md("*"), "*");
    assert_eq!(md("Note\n\n*\n\nmore"), "Note\n\n*\n\nmore");
    assert_eq!(md("+"), "+");
}

#[test]
fn a_list_right_under_a_paragraph_gains_no_blank_line() {
    assert_eq!(md("Intro:\n- a\n- b"), "Intro:\n- a\n- b");
    assert_eq!(
        md("Steps:\n1. a\n2. b\n\nDone"),
        "Steps:\n1. a\n2. b\n\nDone"
    );
    assert_eq!(md("> Intro:\n> - a"), "> Intro:\n> - a");
    // With a blank line it keeps one.
    assert_eq!(md("Intro:\n\n- a"), "Intro:\n\n- a");
}

#[test]
fn ordered_lists_keep_their_numbers_and_start() {
    assert_eq!(md("1. one\n2. two"), "1. one\n2. two");
    assert_eq!(md("3. three\n4. four"), "3. three\n4. four");
    assert_eq!(md("10. ten\n11. eleven"), "10. ten\n11. eleven");
    assert_eq!(md("1. one\n   - sub\n2. two"), "1. one\n  - sub\n2. two");
}

#[test]
fn list_is_separated_from_paragraphs_but_items_are_not() {
    assert_eq!(
        md("Intro:\n\n- a\n\n- b\n\nOutro"),
        "Intro:\n\n- a\n- b\n\nOutro"
    );
    assert_eq!(md("- a\n\n  more about a\n- b"), "- a\n  more about a\n- b");
}

#[test]
fn empty_list_item_keeps_its_bullet() {
    assert_eq!(md("-\n- b"), "-\n- b");
}

#[test]
fn block_quotes_prefix_every_line() {
    assert_eq!(md("> quoted\n> more"), "> quoted\n> more");
    assert_eq!(md("> **bold** quote"), "> *bold* quote");
    assert_eq!(md("> - a\n> - b"), "> - a\n> - b");
    // A blank line between quoted paragraphs stays empty rather than a lone ">".
    assert_eq!(md("> one\n>\n> two"), "> one\n\n> two");
}

#[test]
fn horizontal_rule_stays_as_written() {
    // Regression: `---` used to become `———`.
    assert_eq!(md("a\n\n---\n\nb"), "a\n\n---\n\nb");
    assert_eq!(md("a\n\n***\n\nb"), "a\n\n***\n\nb");
    assert_eq!(md("a\n\n  _ _ _  \n\nb"), "a\n\n_ _ _\n\nb");
    assert_eq!(md("---"), "---");
}

// --- Markdown: inline styles -----------------------------------------------------------

#[test]
fn strong_emphasis_and_strikethrough() {
    assert_eq!(md("**bold**"), "*bold*");
    assert_eq!(md("__bold__"), "*bold*");
    assert_eq!(md("*italic*"), "_italic_");
    assert_eq!(md("_italic_"), "_italic_");
    assert_eq!(md("~~gone~~"), "~gone~");
    assert_eq!(md("a **b** c *d* e ~~f~~ g"), "a *b* c _d_ e ~f~ g");
}

#[test]
fn nesting_is_preserved() {
    assert_eq!(md("**bold _and italic_**"), "*bold _and italic_*");
    assert_eq!(md("*italic **and bold***"), "_italic *and bold*_");
    assert_eq!(md("~~struck **bold**~~"), "~struck *bold*~");
    // pulldown-cmark reads *** as emphasis around strong.
    assert_eq!(md("***x***"), "_*x*_");
}

#[test]
fn same_style_nested_in_itself_is_emitted_once() {
    assert_eq!(md("**a __b__ c**"), "*a b c*");
    assert_eq!(md("# **Big** news"), "*Big news*");
}

#[test]
fn styles_are_closed_and_reopened_around_line_breaks() {
    assert_eq!(md("**a\nb**"), "*a*\n*b*");
    assert_eq!(md("**a _b\nc_ d**"), "*a _b_*\n*_c_ d*");
}

// --- Markdown: code ----------------------------------------------------------------------

#[test]
fn inline_code_uses_triple_backticks_and_is_not_converted() {
    assert_eq!(md("run `cargo test`"), "run ```cargo test```");
    assert_eq!(md("`**not bold** _x_`"), "```**not bold** _x_```");
    assert_eq!(md("**`code`**"), "*```code```*");
}

#[test]
fn fenced_code_block_is_verbatim_without_language() {
    assert_eq!(
        md("```rust\nlet a_b = 2 * 3; // **x**\n```"),
        "```\nlet a_b = 2 * 3; // **x**\n```"
    );
    assert_eq!(md("~~~\n# not a heading\n~~~"), "```\n# not a heading\n```");
}

#[test]
fn code_keeps_its_blank_lines_and_indentation() {
    assert_eq!(
        md("```\nfn main() {\n\n\n    body();\n}\n```"),
        "```\nfn main() {\n\n\n    body();\n}\n```"
    );
}

#[test]
fn indented_code_block() {
    assert_eq!(
        md("Look:\n\n    a * b\n    c_d"),
        "Look:\n\n```\na * b\nc_d\n```"
    );
}

#[test]
fn code_block_inside_a_list_item_is_indented() {
    assert_eq!(
        md("* a\n\n  ```\n  code\n  ```\n* b"),
        "* a\n  ```\n  code\n  ```\n* b"
    );
}

// --- Markdown: links and images --------------------------------------------------------

#[test]
fn links_show_label_and_url() {
    assert_eq!(
        md("[Heimdall](https://h.example)"),
        "Heimdall (https://h.example)"
    );
    assert_eq!(
        md("see [**docs**](https://d.example)."),
        "see *docs* (https://d.example)."
    );
    assert_eq!(
        md("[a][r]\n\n[r]: https://r.example"),
        "a (https://r.example)"
    );
}

#[test]
fn autolinks_show_the_url_once() {
    assert_eq!(md("<https://x.example/a_b>"), "https://x.example/a_b");
    assert_eq!(
        md("[https://x.example](https://x.example)"),
        "https://x.example"
    );
    assert_eq!(md("<someone@example.com>"), "someone@example.com");
}

#[test]
fn links_without_label_or_url() {
    assert_eq!(md("[](https://x.example)"), "https://x.example");
    assert_eq!(md("[label]()"), "label");
}

#[test]
fn images_show_alt_and_source() {
    assert_eq!(
        md("![a chart](https://i.example/c.png)"),
        "a chart (https://i.example/c.png)"
    );
    assert_eq!(
        md("![](https://i.example/c.png)"),
        "https://i.example/c.png"
    );
    // Alt text is plain text: no markers inside it.
    assert_eq!(md("![**x**](s.png)"), "x (s.png)");
}

// --- Markdown: text that is not Markdown -----------------------------------------------

#[test]
fn plain_text_with_markdown_characters_is_unchanged() {
    for input in [
        "5 * 3 = 15",
        "2 * 3 * 4",
        "snake_case_name",
        "file_name.rs",
        "a*b",
        "$5 * 2",
        "Prices: $5 * 2 = $10",
        "john_doe@example.com",
        "mail first.last_name@example.co.uk",
        "https://example.com/a_b_c?x=1*2",
        "see https://example.com/path_(x)",
        "under_score and more_under_scores",
        "~/config and a~b",
        "100 % sure",
    ] {
        assert_eq!(md(input), input, "input {input:?}");
    }
}

#[test]
fn html_passes_through_as_text() {
    assert_eq!(md("a <b>bold</b> c"), "a <b>bold</b> c");
    assert_eq!(
        md("<div>\nhi\n</div>\n\nafter"),
        "<div>\nhi\n</div>\n\nafter"
    );
}

#[test]
fn entities_are_decoded() {
    assert_eq!(md("Tom &amp; Jerry &lt;3"), "Tom & Jerry <3");
}

#[test]
fn a_typical_llm_reply() {
    let input = "## Your booking\n\nHere is what I found:\n\n1. **Date:** Monday\n2. **Time:** 10:00\n\n\
                 > Please arrive _10 minutes_ early.\n\nReply with `YES` to confirm or see [our FAQ](https://f.example).";
    let expected = "*Your booking*\n\nHere is what I found:\n\n1. *Date:* Monday\n2. *Time:* 10:00\n\n\
                    > Please arrive _10 minutes_ early.\n\nReply with ```YES``` to confirm or see our FAQ (https://f.example).";
    assert_eq!(md(input), expected);
}

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

/// Markdown-like text without code or raw HTML (where blank lines are kept as written):
/// no backticks, no `~~~` fences, no tabs or four-space indents, no `<`.
fn text_without_code() -> impl Strategy<Value = String> {
    "[*_~#>\\-+\\[\\]()!a-z0-9 .:|\n]{0,300}".prop_map(|mut text| {
        while text.contains("~~~") || text.contains("    ") {
            text = text.replace("~~~", "~~").replace("    ", "  ");
        }
        text
    })
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
    fn markdown_to_whatsapp_never_panics_on_arbitrary_input(text in any::<String>()) {
        let _ = markdown_to_whatsapp(&text);
    }

    #[test]
    fn markdown_to_whatsapp_never_panics_on_markdownish_input(
        text in "[*_~`#>\\-+\\[\\]()!<>a-z0-9 .:|\\\\\n\t]{0,300}"
    ) {
        let out = markdown_to_whatsapp(&text);
        prop_assert_eq!(out.trim(), out.as_str());
    }

    /// Text without Markdown syntax, numbered lines and `+` bullets included, comes out
    /// with every visible character as written: nothing added, lost or changed.
    #[test]
    fn characters_that_are_not_markdown_syntax_come_out_as_written(
        lines in prop::collection::vec(
            prop::collection::vec("[a-zA-Z0-9.,:;!?%@/()'\"+]{1,6}|[0-9]{1,3}[.)]", 1..6),
            1..12,
        ),
        breaks in prop::collection::vec(prop::bool::ANY, 12),
    ) {
        let mut text = String::new();
        for (i, words) in lines.iter().enumerate() {
            if i > 0 {
                text.push_str(if breaks[i] { "\n\n" } else { "\n" });
            }
            text.push_str(&words.join(" "));
        }
        let visible = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
        let out = markdown_to_whatsapp(&text);
        prop_assert_eq!(visible(&out), visible(&text), "{:?} -> {:?}", text, out);
    }

    #[test]
    fn no_more_than_one_blank_line_outside_code(text in text_without_code()) {
        let out = markdown_to_whatsapp(&text);
        prop_assert!(!out.contains("\n\n\n"), "{:?} -> {:?}", text, out);
    }

    #[test]
    fn render_for_whatsapp_chunks_fit(text in "[*_a-z \n#-]{0,400}") {
        let rendered = render_for_whatsapp(&text);
        prop_assert_eq!(rendered.chunks.concat(), rendered.text);
    }
}

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

// --- Quick replies -----------------------------------------------------------------------

fn buttons(titles: &[&str]) -> Vec<(String, String)> {
    titles
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("id-{i}"), (*t).to_string()))
        .collect()
}

#[test]
fn quick_replies_accepts_one_to_three_buttons() {
    let one = QuickReplies::new("Confirm?", buttons(&["Yes"])).unwrap();
    assert_eq!(one.body(), "Confirm?");
    assert_eq!(one.buttons().len(), 1);
    assert_eq!(one.buttons()[0].id(), "id-0");
    assert_eq!(one.buttons()[0].title(), "Yes");
    let three = QuickReplies::new("Pick", buttons(&["A", "B", "C"])).unwrap();
    assert_eq!(three.buttons().len(), 3);
}

#[test]
fn quick_replies_rejects_zero_or_four_buttons() {
    let err = QuickReplies::new("Pick", vec![]).unwrap_err();
    assert_eq!(err, InteractiveError::ButtonCount { count: 0, max: 3 });
    let err = QuickReplies::new("Pick", buttons(&["A", "B", "C", "D"])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "quick replies have 4 buttons; WhatsApp allows 1 to 3"
    );
}

#[test]
fn quick_reply_title_limit() {
    let twenty = "t".repeat(20);
    assert!(QuickReplies::new("b", buttons(&[&twenty])).is_ok());
    // Emoji count as one character each here.
    assert!(QuickReplies::new("b", buttons(&[&"👍".repeat(20)])).is_ok());
    let long = "t".repeat(23);
    let err = QuickReplies::new("b", buttons(&["ok", &long])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "button 2 title is 23 characters; WhatsApp allows at most 20"
    );
}

#[test]
fn quick_reply_title_must_not_be_blank() {
    let err = QuickReplies::new("b", buttons(&["  "])).unwrap_err();
    assert_eq!(
        err,
        InteractiveError::EmptyButtonTitle { button: 1, max: 20 }
    );
    assert!(err.to_string().contains("1 to 20 characters"));
}

#[test]
fn quick_reply_titles_are_unique_ignoring_case() {
    let err = QuickReplies::new("b", buttons(&["Yes", "No", "YES"])).unwrap_err();
    assert!(matches!(
        err,
        InteractiveError::DuplicateButtonTitle {
            button: 3,
            first: 1,
            ..
        }
    ));
    assert!(err.to_string().contains("unique"));
    assert!(QuickReplies::new("b", buttons(&["Yes", "Yes please"])).is_ok());
}

#[test]
fn quick_reply_id_limits() {
    let ok = vec![("i".repeat(256), "A".to_string())];
    assert!(QuickReplies::new("b", ok).is_ok());
    let long = vec![("i".repeat(257), "A".to_string())];
    let err = QuickReplies::new("b", long).unwrap_err();
    assert_eq!(
        err.to_string(),
        "button 1 id is 257 characters; WhatsApp allows at most 256"
    );
    let empty = vec![(String::new(), "A".to_string())];
    let err = QuickReplies::new("b", empty).unwrap_err();
    assert_eq!(
        err,
        InteractiveError::EmptyButtonId {
            button: 1,
            max: 256
        }
    );
    assert!(err.to_string().contains("1 to 256"));
}

#[test]
fn quick_reply_ids_are_unique() {
    let dup = vec![
        ("same".to_string(), "A".to_string()),
        ("same".to_string(), "B".to_string()),
    ];
    let err = QuickReplies::new("b", dup).unwrap_err();
    assert_eq!(
        err.to_string(),
        "button 2 id \"same\" is already used by button 1; WhatsApp requires unique button ids"
    );
    // Ids are compared exactly: case differences are different ids.
    let case = vec![
        ("same".to_string(), "A".to_string()),
        ("SAME".to_string(), "B".to_string()),
    ];
    assert!(QuickReplies::new("b", case).is_ok());
}

#[test]
fn quick_reply_body_limits() {
    assert!(QuickReplies::new("x".repeat(1024), buttons(&["A"])).is_ok());
    let err = QuickReplies::new("x".repeat(1025), buttons(&["A"])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "body is 1025 characters; WhatsApp allows at most 1024"
    );
    let err = QuickReplies::new(" \n", buttons(&["A"])).unwrap_err();
    assert_eq!(err, InteractiveError::EmptyBody { max: 1024 });
    assert!(err.to_string().contains("1 to 1024"));
}

#[test]
fn quick_replies_serialize() {
    let q = QuickReplies::new("Confirm?", buttons(&["Yes"])).unwrap();
    assert_eq!(
        serde_json::to_value(&q).unwrap(),
        serde_json::json!({"body": "Confirm?", "buttons": [{"id": "id-0", "title": "Yes"}]})
    );
}

// --- Lists -------------------------------------------------------------------------------

fn row(id: &str) -> ListRow {
    ListRow::new(id, format!("Title {id}"), None)
}

fn rows(prefix: &str, n: usize) -> Vec<ListRow> {
    (0..n).map(|i| row(&format!("{prefix}{i}"))).collect()
}

fn list(sections: Vec<ListSection>) -> Result<ListMessage, InteractiveError> {
    ListMessage::new("Choose a slot", "Slots", sections)
}

#[test]
fn list_with_one_untitled_section_is_accepted() {
    let msg = list(vec![ListSection::new(None, rows("r", 3))]).unwrap();
    assert_eq!(msg.body(), "Choose a slot");
    assert_eq!(msg.button_text(), "Slots");
    assert_eq!(msg.sections().len(), 1);
    assert_eq!(msg.sections()[0].title(), None);
    assert_eq!(msg.sections()[0].rows()[1].id(), "r1");
    assert_eq!(msg.sections()[0].rows()[1].title(), "Title r1");
    assert_eq!(msg.sections()[0].rows()[1].description(), None);
}

#[test]
fn list_section_count_limits() {
    let err = list(vec![]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "list has 0 sections; WhatsApp allows 1 to 10"
    );
    let ten: Vec<ListSection> = (0..10)
        .map(|i| ListSection::new(Some(format!("S{i}")), rows(&format!("s{i}r"), 1)))
        .collect();
    assert!(list(ten.clone()).is_ok());
    let mut eleven = ten;
    eleven.push(ListSection::new(Some("S10".into()), rows("s10r", 1)));
    let err = list(eleven).unwrap_err();
    assert_eq!(err, InteractiveError::SectionCount { count: 11, max: 10 });
}

#[test]
fn list_row_total_limit_spans_sections() {
    assert!(list(vec![ListSection::new(None, rows("r", 10))]).is_ok());
    let err = list(vec![
        ListSection::new(Some("A".into()), rows("a", 6)),
        ListSection::new(Some("B".into()), rows("b", 5)),
    ])
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "list has 11 rows in total; WhatsApp allows at most 10"
    );
}

#[test]
fn list_sections_need_rows() {
    let err = list(vec![
        ListSection::new(Some("A".into()), rows("a", 1)),
        ListSection::new(Some("B".into()), vec![]),
    ])
    .unwrap_err();
    assert_eq!(err, InteractiveError::EmptySection { section: 2 });
    assert!(err.to_string().contains("at least 1 row"));
}

#[test]
fn several_sections_each_need_a_title() {
    let err = list(vec![
        ListSection::new(Some("A".into()), rows("a", 1)),
        ListSection::new(None, rows("b", 1)),
    ])
    .unwrap_err();
    assert_eq!(
        err,
        InteractiveError::MissingSectionTitle {
            section: 2,
            max: 24
        }
    );
    assert!(err.to_string().contains("1 to 24 characters"));
    // A blank title is no title.
    let err = list(vec![
        ListSection::new(Some("  ".into()), rows("a", 1)),
        ListSection::new(Some("B".into()), rows("b", 1)),
    ])
    .unwrap_err();
    assert_eq!(
        err,
        InteractiveError::MissingSectionTitle {
            section: 1,
            max: 24
        }
    );
}

#[test]
fn section_title_limit() {
    assert!(list(vec![ListSection::new(Some("s".repeat(24)), rows("r", 1))]).is_ok());
    let err = list(vec![ListSection::new(Some("s".repeat(25)), rows("r", 1))]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "section 1 title is 25 characters; WhatsApp allows at most 24"
    );
}

#[test]
fn row_title_limits() {
    let ok = ListRow::new("r", "t".repeat(24), None);
    assert!(list(vec![ListSection::new(None, vec![ok])]).is_ok());
    let long = ListRow::new("r2", "t".repeat(25), None);
    let err = list(vec![ListSection::new(None, vec![row("r1"), long])]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "section 1 row 2 title is 25 characters; WhatsApp allows at most 24"
    );
    let blank = ListRow::new("r", " ", None);
    let err = list(vec![ListSection::new(None, vec![blank])]).unwrap_err();
    assert_eq!(
        err,
        InteractiveError::EmptyRowTitle {
            section: 1,
            row: 1,
            max: 24
        }
    );
    assert!(err.to_string().contains("1 to 24"));
}

#[test]
fn row_description_limit() {
    let ok = ListRow::new("r", "t", Some("d".repeat(72)));
    let msg = list(vec![ListSection::new(None, vec![ok])]).unwrap();
    assert_eq!(
        msg.sections()[0].rows()[0].description(),
        Some("d".repeat(72).as_str())
    );
    let long = ListRow::new("r", "t", Some("d".repeat(73)));
    let err = list(vec![ListSection::new(None, vec![long])]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "section 1 row 1 description is 73 characters; WhatsApp allows at most 72"
    );
    assert_eq!(
        ListRow::new("r", "t", Some("  ".into())).description(),
        None
    );
}

#[test]
fn row_id_limits() {
    let ok = ListRow::new("i".repeat(200), "t", None);
    assert!(list(vec![ListSection::new(None, vec![ok])]).is_ok());
    let long = ListRow::new("i".repeat(201), "t", None);
    let err = list(vec![ListSection::new(None, vec![long])]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "section 1 row 1 id is 201 characters; WhatsApp allows at most 200"
    );
    let empty = ListRow::new("", "t", None);
    let err = list(vec![ListSection::new(None, vec![empty])]).unwrap_err();
    assert_eq!(
        err,
        InteractiveError::EmptyRowId {
            section: 1,
            row: 1,
            max: 200
        }
    );
    assert!(err.to_string().contains("1 to 200"));
}

#[test]
fn row_ids_are_unique_across_sections() {
    let err = list(vec![
        ListSection::new(Some("A".into()), vec![row("x"), row("y")]),
        ListSection::new(Some("B".into()), vec![row("z"), row("y")]),
    ])
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "section 2 row 2 id \"y\" is already used by section 1 row 2; WhatsApp requires row ids unique across the list"
    );
}

#[test]
fn list_button_text_limits() {
    let one = || vec![ListSection::new(None, rows("r", 1))];
    assert!(ListMessage::new("b", "x".repeat(20), one()).is_ok());
    let err = ListMessage::new("b", "x".repeat(21), one()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "list button text is 21 characters; WhatsApp allows at most 20"
    );
    let err = ListMessage::new("b", "", one()).unwrap_err();
    assert_eq!(err, InteractiveError::EmptyListButtonText { max: 20 });
    assert!(err.to_string().contains("1 to 20"));
}

#[test]
fn list_body_limits() {
    let one = || vec![ListSection::new(None, rows("r", 1))];
    assert!(ListMessage::new("x".repeat(4096), "Open", one()).is_ok());
    let err = ListMessage::new("x".repeat(4097), "Open", one()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "body is 4097 characters; WhatsApp allows at most 4096"
    );
    let err = ListMessage::new("", "Open", one()).unwrap_err();
    assert_eq!(err, InteractiveError::EmptyBody { max: 4096 });
}

#[test]
fn list_serializes_without_absent_optionals() {
    let msg = ListMessage::new(
        "Body",
        "Open",
        vec![ListSection::new(
            None,
            vec![
                ListRow::new("a", "A", Some("first".into())),
                ListRow::new("b", "B", None),
            ],
        )],
    )
    .unwrap();
    assert_eq!(
        serde_json::to_value(&msg).unwrap(),
        serde_json::json!({
            "body": "Body",
            "button_text": "Open",
            "sections": [{"rows": [
                {"id": "a", "title": "A", "description": "first"},
                {"id": "b", "title": "B"}
            ]}]
        })
    );
}
