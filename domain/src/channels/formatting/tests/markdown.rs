//! Markdown to WhatsApp: block structure, inline styles, code, links, and
//! text that is not Markdown; the regression cases of the formatter included.

use super::*;

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

// --- Properties --------------------------------------------------------------------------

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

proptest! {
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
}
