//! Turning outbound text into something WhatsApp can show and accept.
//!
//! Replies are written in Markdown, by an LLM or by staff, but WhatsApp has its own small
//! formatting syntax (`*bold*`, `_italic_`, `~strike~`, ```` ```mono``` ````, `> quote`) and
//! shows everything else literally. This module:
//!
//! * converts Markdown to that syntax ([`markdown_to_whatsapp`]), walking pulldown-cmark's
//!   event stream so that text which merely *looks* like Markdown (`2 * 3 * 4`,
//!   `snake_case_name`) comes through untouched;
//! * measures text the way WhatsApp limits it ([`whatsapp_len`]) and splits long text into
//!   messages that each fit ([`split_message`]), losslessly and never inside a grapheme;
//! * builds interactive messages (quick-reply buttons and lists) whose constructors enforce
//!   Meta's documented limits, so an invalid one cannot exist ([`QuickReplies`],
//!   [`ListMessage`]).

use std::collections::HashMap;
use std::ops::Range;

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
use serde::Serialize;
use unicode_segmentation::UnicodeSegmentation;

/// WhatsApp's limit for a text message body.
pub const WHATSAPP_MAX_CHARS: usize = 4096;

/// Smallest `max` that [`split_message`] works with. Any character fits in 2 UTF-16 units, so
/// 8 leaves room for a few of them and for short grapheme clusters such as flags.
const MIN_SPLIT_MAX: usize = 8;

// ---------------------------------------------------------------------------------------------
// Markdown to WhatsApp
// ---------------------------------------------------------------------------------------------

/// Markdown (as an LLM or a staff member writes it) to WhatsApp's formatting syntax.
///
/// * Headings become a bold line; `**strong**`/`__strong__` become `*bold*`;
///   `*em*`/`_em_` become `_italic_`; `~~strike~~` becomes `~strike~`. `***x***` becomes
///   `_*x*_` (pulldown-cmark reads it as emphasis around strong). The same style nested in
///   itself (`**a __b__**`, or bold inside a heading) is emitted once, because WhatsApp cannot
///   nest a marker in itself. Styles spanning a line break are closed before the break and
///   reopened after it, because WhatsApp does not carry formatting across lines.
/// * Inline code becomes ```` ```code``` ````; code blocks become a ```` ``` ```` line, the code
///   verbatim and a ```` ``` ```` line. Nothing inside code is converted, and code is the one
///   place where more than one blank line in a row is kept.
/// * `[label](url)` becomes `label (url)`, or just `url` when the label is the address
///   (autolinks, including `mailto:` ones); `![alt](src)` becomes `alt (src)`, or `src`.
/// * List items keep the marker they were written with (`-`, `*` or `+`; an ordered item's
///   number and `.` or `)` as written, so `1.`, `2.`, `10.` stays `1.`, `2.`, `10.`), and
///   nest by two spaces per level; list items are never separated by blank lines. Block
///   quotes become `> ` lines; a blank line inside a quote is left empty rather than holding
///   a lone `>`. A horizontal rule stays as it was written (`---`, `***`, `___`).
/// * Blocks are separated as they were written: by one blank line where the source had one
///   or more, by a line break where it had none (a paragraph and the list right under it,
///   a heading and its text). Line breaks are kept.
/// * HTML passes through as text. Characters such as `*` and `_` in plain text are emitted as
///   they are, never backslash-escaped: WhatsApp shows backslashes literally and has no escape
///   syntax of its own.
///
/// The result is trimmed and never contains more than one blank line in a row outside code.
pub fn markdown_to_whatsapp(markdown: &str) -> String {
    let mut renderer = Renderer {
        src: markdown,
        ..Renderer::default()
    };
    for (event, range) in
        Parser::new_ext(markdown, Options::ENABLE_STRIKETHROUGH).into_offset_iter()
    {
        renderer.event(event, range);
    }
    renderer.finish()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Bold,
    Italic,
    Strike,
}

impl Style {
    fn marker(self) -> &'static str {
        match self {
            Style::Bold => "*",
            Style::Italic => "_",
            Style::Strike => "~",
        }
    }
}

#[derive(Debug)]
struct OpenStyle {
    style: Style,
    /// Byte offset just past the opening marker in the output, or `None` when the marker was
    /// suppressed (nested in the same style, or inside an image's alt text).
    emitted: Option<usize>,
}

#[derive(Debug)]
enum Container {
    Quote,
    /// `next` is the number of the next item of an ordered list.
    List {
        next: Option<u64>,
    },
    /// `marker` is the item's bullet or number until the item's first line takes it.
    Item {
        marker: Option<String>,
    },
}

/// A link or image whose label is being rendered, so it can be rewritten at its end.
#[derive(Debug)]
struct Capture {
    start: usize,
    url: String,
    image: bool,
}

/// Block content collected whole before it is written.
#[derive(Debug)]
enum Buffered {
    Code(String),
    Html(String),
}

#[derive(Debug, Default)]
struct Renderer<'a> {
    /// The Markdown being rendered: list markers, rules and the spacing between blocks are
    /// taken from it as written.
    src: &'a str,
    /// Source offset just past the last content rendered, to tell whether the source had a
    /// blank line before the next block.
    content_end: usize,
    out: String,
    containers: Vec<Container>,
    styles: Vec<OpenStyle>,
    captures: Vec<Capture>,
    buffer: Option<Buffered>,
    /// Newlines owed before the next content (2 = a blank line); capped at 2 so that at most
    /// one blank line ever appears in a row.
    pending_newlines: usize,
    /// Whether the current line has had its prefix written.
    line_open: bool,
    line_begin: usize,
    prefix_end: usize,
    /// True from the start of a list item until it writes anything: the item's first block
    /// belongs on the marker's line, not after a separator.
    item_fresh: bool,
    /// Styles were closed at a line break and must be reopened on the next line.
    reopen: bool,
}

impl Renderer<'_> {
    fn event(&mut self, event: Event<'_>, range: Range<usize>) {
        let ends_content = matches!(
            event,
            Event::Text(_)
                | Event::Code(_)
                | Event::Html(_)
                | Event::InlineHtml(_)
                | Event::Rule
                | Event::End(
                    TagEnd::Paragraph
                        | TagEnd::Heading(_)
                        | TagEnd::CodeBlock
                        | TagEnd::HtmlBlock
                        | TagEnd::Table
                )
        );
        let source = self.src.get(range.clone()).unwrap_or_default();
        match event {
            Event::Start(tag) => self.start(tag, range.start, source),
            Event::End(tag) => self.end(tag),
            Event::Text(text) => match &mut self.buffer {
                Some(Buffered::Code(buf)) | Some(Buffered::Html(buf)) => buf.push_str(&text),
                None => self.write(&text),
            },
            Event::Html(html) => match &mut self.buffer {
                Some(Buffered::Code(buf)) | Some(Buffered::Html(buf)) => buf.push_str(&html),
                None => self.write(&html),
            },
            Event::InlineHtml(html) => self.write(&html),
            Event::Code(code) => {
                self.start_content();
                self.out.push_str("```");
                self.out.push_str(&code);
                self.out.push_str("```");
            }
            Event::SoftBreak | Event::HardBreak => self.line_break(),
            Event::Rule => {
                self.block_start(range.start);
                self.start_content();
                self.out.push_str(source.trim());
                self.block_end();
            }
            // The extensions that produce these are not enabled; render them as plain text
            // should that ever change.
            Event::TaskListMarker(done) => self.write(if done { "[x] " } else { "[ ] " }),
            Event::FootnoteReference(name) => self.write(&format!("[^{name}]")),
            Event::InlineMath(math) | Event::DisplayMath(math) => self.write(&math),
        }
        if ends_content {
            self.content_end = range.start + source.trim_end().len();
        }
    }

    fn start(&mut self, tag: Tag<'_>, at: usize, source: &str) {
        match tag {
            Tag::Paragraph => self.block_start(at),
            Tag::Heading { .. } => {
                self.block_start(at);
                self.open_style(Style::Bold);
            }
            Tag::BlockQuote(_) => {
                self.block_start(at);
                self.containers.push(Container::Quote);
            }
            Tag::CodeBlock(_) => {
                self.block_start(at);
                self.buffer = Some(Buffered::Code(String::new()));
            }
            Tag::HtmlBlock => {
                self.block_start(at);
                self.buffer = Some(Buffered::Html(String::new()));
            }
            Tag::List(first) => {
                self.block_start(at);
                self.containers.push(Container::List { next: first });
            }
            Tag::Item => {
                // The marker as written; counted only should the source not show one.
                let mut marker = String::from("- ");
                if let Some(Container::List { next: Some(n) }) = self.containers.last_mut() {
                    marker = format!("{n}. ");
                    *n = n.saturating_add(1);
                }
                let marker = written_marker(source).unwrap_or(marker);
                self.containers.push(Container::Item {
                    marker: Some(marker),
                });
                self.item_fresh = true;
            }
            Tag::Emphasis => self.open_style(Style::Italic),
            Tag::Strong => self.open_style(Style::Bold),
            Tag::Strikethrough => self.open_style(Style::Strike),
            Tag::Link { dest_url, .. } => self.open_capture(dest_url.to_string(), false),
            Tag::Image { dest_url, .. } => self.open_capture(dest_url.to_string(), true),
            // Blocks of extensions that are not enabled: keep them apart from their neighbours.
            Tag::FootnoteDefinition(_)
            | Tag::DefinitionList
            | Tag::DefinitionListTitle
            | Tag::DefinitionListDefinition
            | Tag::Table(_)
            | Tag::TableHead
            | Tag::TableRow
            | Tag::MetadataBlock(_) => self.block_start(at),
            Tag::TableCell | Tag::Superscript | Tag::Subscript => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph => self.block_end(),
            TagEnd::Heading(_) => {
                self.close_style();
                self.block_end();
            }
            TagEnd::BlockQuote(_) | TagEnd::List(_) => {
                self.containers.pop();
                self.block_end();
            }
            TagEnd::CodeBlock | TagEnd::HtmlBlock => {
                match self.buffer.take() {
                    Some(Buffered::Code(code)) => self.write_code_block(&code),
                    Some(Buffered::Html(html)) => self.write(html.trim_end_matches(['\n', '\r'])),
                    None => {}
                }
                self.block_end();
            }
            TagEnd::Item => {
                // An empty item still shows its bullet.
                if matches!(
                    self.containers.last(),
                    Some(Container::Item { marker: Some(_) })
                ) {
                    self.start_content();
                }
                self.containers.pop();
                self.request_newlines(1);
            }
            TagEnd::Emphasis | TagEnd::Strong | TagEnd::Strikethrough => self.close_style(),
            TagEnd::Link | TagEnd::Image => self.close_capture(),
            TagEnd::FootnoteDefinition
            | TagEnd::DefinitionList
            | TagEnd::DefinitionListTitle
            | TagEnd::DefinitionListDefinition
            | TagEnd::Table
            | TagEnd::TableHead
            | TagEnd::TableRow
            | TagEnd::MetadataBlock(_) => self.block_end(),
            TagEnd::TableCell | TagEnd::Superscript | TagEnd::Subscript => {}
        }
    }

    fn request_newlines(&mut self, n: usize) {
        self.pending_newlines = self.pending_newlines.max(n);
    }

    /// Inside a list item blocks follow each other on the next line (WhatsApp lists read
    /// better compact); everywhere else a block starting at source offset `at` is separated
    /// from the one before as the source separates them: by a blank line when there was at
    /// least one, else by a line break.
    fn block_start(&mut self, at: usize) {
        if self.item_fresh {
            return;
        }
        let in_item = matches!(self.containers.last(), Some(Container::Item { .. }));
        let gap = self.src.get(self.content_end..at).unwrap_or_default();
        let blank_line_before = gap.matches('\n').count() >= 2;
        self.request_newlines(if in_item || !blank_line_before { 1 } else { 2 });
    }

    fn block_end(&mut self) {
        if !self.item_fresh {
            self.request_newlines(1);
        }
    }

    /// Closes the current line; a line holding nothing but its prefix loses the prefix's
    /// trailing spaces so that no line ends in whitespace.
    fn end_line(&mut self) {
        if self.line_open && self.out.len() == self.prefix_end {
            if let Some(prefix) = self.out.get(self.line_begin..) {
                let kept = prefix.trim_end().len();
                self.out.truncate(self.line_begin + kept);
            }
        }
        self.line_open = false;
    }

    /// Makes the output ready for content: owed newlines, then the line's prefix (quote
    /// markers, list indentation or bullet), then any styles reopened after a line break.
    fn start_content(&mut self) {
        if self.pending_newlines > 0 {
            self.end_line();
            // Nothing before the first content: the result starts trimmed. Newlines already
            // at the end (a line whose only content was removed again, such as an empty
            // heading) count towards the ones owed.
            if !self.out.is_empty() {
                let have = self.out.len() - self.out.trim_end_matches('\n').len();
                for _ in have..self.pending_newlines.min(2) {
                    self.out.push('\n');
                }
            }
            self.pending_newlines = 0;
        }
        if !self.line_open {
            self.line_begin = self.out.len();
            for container in &mut self.containers {
                match container {
                    Container::Quote => self.out.push_str("> "),
                    Container::List { .. } => {}
                    Container::Item { marker } => match marker.take() {
                        Some(marker) => self.out.push_str(&marker),
                        None => self.out.push_str("  "),
                    },
                }
            }
            self.prefix_end = self.out.len();
            self.line_open = true;
            if self.reopen {
                self.reopen = false;
                for open in &mut self.styles {
                    if open.emitted.is_some() {
                        self.out.push_str(open.style.marker());
                        open.emitted = Some(self.out.len());
                    }
                }
            }
        }
        self.item_fresh = false;
    }

    /// Writes text as it is; a `\n` in it is a line break.
    fn write(&mut self, text: &str) {
        for (i, line) in text.split('\n').enumerate() {
            if i > 0 {
                self.line_break();
            }
            if !line.is_empty() {
                self.start_content();
                self.out.push_str(line);
            }
        }
    }

    fn line_break(&mut self) {
        if self.line_open && self.styles.iter().any(|s| s.emitted.is_some()) {
            for i in (0..self.styles.len()).rev() {
                if let Some(pos) = self.styles[i].emitted {
                    let marker = self.styles[i].style.marker();
                    self.close_marker(marker, pos);
                }
            }
            self.reopen = true;
        }
        self.pending_newlines = (self.pending_newlines + 1).min(2);
    }

    /// Writes a closing marker, or removes the opening one when nothing came after it (an
    /// empty `**` pair would show literally in WhatsApp).
    fn close_marker(&mut self, marker: &str, pos: usize) {
        // A link label that started after the marker must not lose its start offset.
        let no_capture_after = self.captures.last().is_none_or(|c| c.start < pos);
        if self.out.len() == pos && self.out.ends_with(marker) && no_capture_after {
            self.out.truncate(pos - marker.len());
        } else {
            self.out.push_str(marker);
        }
    }

    fn open_style(&mut self, style: Style) {
        let in_image = self.captures.iter().any(|c| c.image);
        let nested = self.styles.iter().any(|s| s.style == style);
        let emitted = if in_image || nested {
            None
        } else {
            self.start_content();
            self.out.push_str(style.marker());
            Some(self.out.len())
        };
        self.styles.push(OpenStyle { style, emitted });
    }

    fn close_style(&mut self) {
        let Some(open) = self.styles.pop() else {
            return;
        };
        // When `reopen` is set the style was already closed at a line break.
        if let (Some(pos), false) = (open.emitted, self.reopen) {
            self.close_marker(open.style.marker(), pos);
        }
    }

    fn open_capture(&mut self, url: String, image: bool) {
        // The prefix goes in first so that it is not mistaken for part of the label.
        self.start_content();
        self.captures.push(Capture {
            start: self.out.len(),
            url,
            image,
        });
    }

    fn close_capture(&mut self) {
        let Some(capture) = self.captures.pop() else {
            return;
        };
        let label = self
            .out
            .get(capture.start..)
            .unwrap_or_default()
            .to_string();
        let url = capture.url.as_str();
        let label_is_url = label == url || url.strip_prefix("mailto:") == Some(label.as_str());
        if label.trim().is_empty() {
            if self.out.is_char_boundary(capture.start) {
                self.out.truncate(capture.start);
            }
            self.write(url);
        } else if !url.is_empty() && !label_is_url {
            self.out.push_str(" (");
            self.out.push_str(url);
            self.out.push(')');
        }
    }

    fn write_code_block(&mut self, code: &str) {
        self.start_content();
        self.out.push_str("```");
        if !code.is_empty() {
            // The final newline ends the last line rather than starting an empty one.
            let body = code.strip_suffix('\n').unwrap_or(code);
            for line in body.split('\n') {
                self.verbatim_newline();
                self.start_content();
                self.out.push_str(line);
            }
        }
        self.verbatim_newline();
        self.start_content();
        self.out.push_str("```");
    }

    /// A newline that is not subject to the one-blank-line cap: code keeps its blank lines.
    fn verbatim_newline(&mut self) {
        self.end_line();
        self.out.push('\n');
    }

    fn finish(mut self) -> String {
        self.end_line();
        self.out.trim().to_string()
    }
}

/// A list item's marker as written at the start of its source (`- `, `* `, `+ `, `7. `,
/// `7) `), or `None` when the source does not start with one.
fn written_marker(item_source: &str) -> Option<String> {
    let s = item_source.trim_start_matches([' ', '\t']);
    let digits = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let marker = match s[digits..].chars().next() {
        Some(delim @ ('.' | ')')) if (1..=9).contains(&digits) => {
            format!("{}{delim} ", &s[..digits])
        }
        Some(bullet @ ('-' | '*' | '+')) if digits == 0 => format!("{bullet} "),
        _ => return None,
    };
    Some(marker)
}

// ---------------------------------------------------------------------------------------------
// Length and splitting
// ---------------------------------------------------------------------------------------------

/// Length as WhatsApp counts it. Count UTF-16 code units (conservative: an emoji outside the
/// BMP counts 2).
pub fn whatsapp_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

/// Split into chunks of at most `max` (as [`whatsapp_len`] counts), preferring line boundaries
/// (paragraph break `"\n\n"` first, then `"\n"`, then whitespace between words), never
/// splitting inside a grapheme cluster (so never inside a character, an emoji, a ZWJ sequence
/// or a flag).
///
/// Each chunk is as long as it can be up to its best boundary; separators stay at the end of
/// the chunk they follow and nothing is trimmed, so concatenating the chunks reproduces the
/// input exactly. An empty input yields an empty Vec and no chunk is empty.
///
/// `max` below 8 is treated as 8. The one exception to the grapheme rule is a single grapheme
/// cluster longer than `max` (say, a letter carrying dozens of combining marks): it is cut
/// between its characters, because a chunk WhatsApp would reject is worse than a garbled
/// cluster.
pub fn split_message(text: &str, max: usize) -> Vec<String> {
    let max = max.max(MIN_SPLIT_MAX);
    if text.is_empty() {
        return Vec::new();
    }
    if whatsapp_len(text) <= max {
        return vec![text.to_string()];
    }
    let graphemes: Vec<&str> = text.graphemes(true).collect();
    let mut chunks = Vec::new();
    let mut start = 0;
    while let Some(first) = graphemes.get(start) {
        // The longest run of whole graphemes from `start` that fits.
        let mut end = start;
        let mut len = 0;
        while let Some(g) = graphemes.get(end) {
            let g_len = whatsapp_len(g);
            if len + g_len > max {
                break;
            }
            len += g_len;
            end += 1;
        }
        if end == start {
            split_oversized_grapheme(first, max, &mut chunks);
            start += 1;
            continue;
        }
        let window = &graphemes[start..end];
        let cut = if end == graphemes.len() {
            window.len()
        } else {
            best_cut(window).unwrap_or(window.len())
        };
        chunks.push(window[..cut].concat());
        start += cut;
    }
    chunks
}

fn is_newline(grapheme: &str) -> bool {
    matches!(grapheme, "\n" | "\r\n" | "\r")
}

fn is_whitespace(grapheme: &str) -> bool {
    grapheme.chars().all(char::is_whitespace)
}

/// How many graphemes of `window` to take: up to the last paragraph break, else the last line
/// break, else the last whitespace, looking first beyond the window's first quarter (so that
/// a heading or a short first paragraph does not go as a message of its own) and then in all
/// of it. `None` means hard-cut at the end of the window.
fn best_cut(window: &[&str]) -> Option<usize> {
    let quarter = window.len() / 4;
    let paragraph = window
        .windows(2)
        .rposition(|pair| is_newline(pair[0]) && is_newline(pair[1]))
        .map(|i| i + 2);
    let line = window.iter().rposition(|g| is_newline(g)).map(|i| i + 1);
    let space = window.iter().rposition(|g| is_whitespace(g)).map(|i| i + 1);
    let late = |cut: Option<usize>| cut.filter(|&c| c > quarter);
    late(paragraph)
        .or(late(line))
        .or(late(space))
        .or(paragraph)
        .or(line)
        .or(space)
}

fn split_oversized_grapheme(grapheme: &str, max: usize, chunks: &mut Vec<String>) {
    let mut piece = String::new();
    let mut len = 0;
    for c in grapheme.chars() {
        let c_len = c.len_utf16();
        if len + c_len > max && !piece.is_empty() {
            chunks.push(std::mem::take(&mut piece));
            len = 0;
        }
        piece.push(c);
        len += c_len;
    }
    if !piece.is_empty() {
        chunks.push(piece);
    }
}

/// Convenience: [`markdown_to_whatsapp`] then [`split_message`] with [`WHATSAPP_MAX_CHARS`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendered {
    /// The whole converted text.
    pub text: String,
    /// `text` split into messages WhatsApp accepts, in sending order.
    pub chunks: Vec<String>,
}

/// Converts Markdown and splits it into messages that each fit WhatsApp's limit.
///
/// Splitting does not know about formatting: a bold span that straddles a split ends up
/// open in one message and closed in the next. (Styles never cross a line, and splits come
/// at line breaks first, so this takes a single line longer than the limit.)
pub fn render_for_whatsapp(markdown: &str) -> Rendered {
    let text = markdown_to_whatsapp(markdown);
    let chunks = split_message(&text, WHATSAPP_MAX_CHARS);
    Rendered { text, chunks }
}

// ---------------------------------------------------------------------------------------------
// Per destination: parts, plain text, SMS segments
// ---------------------------------------------------------------------------------------------

/// Twilio's limit for a message `Body`, WhatsApp or SMS (Twilio splits an SMS body into
/// segments itself and the handset joins them).
pub const TWILIO_BODY_MAX_CHARS: usize = 1600;
/// Meta's limit for the caption of an image, video or document.
pub const META_CAPTION_MAX_CHARS: usize = 1024;

/// Where a free-form text goes, which decides its formatting and how long one message may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Destination {
    /// WhatsApp through Twilio: WhatsApp formatting, 1,600 characters a message.
    #[serde(rename = "whatsapp_twilio")]
    WhatsAppTwilio,
    /// WhatsApp through Meta's Cloud API: WhatsApp formatting, 4,096 characters a message
    /// (1,024 for a media caption).
    #[serde(rename = "whatsapp_meta")]
    WhatsAppMeta,
    /// SMS (through Twilio): plain text, 1,600 characters a message, billed by segment.
    #[serde(rename = "sms")]
    Sms,
}

impl Destination {
    /// The longest part (as [`whatsapp_len`] counts) this destination takes, with or without
    /// media riding on it.
    pub fn max_chars(self, with_media: bool) -> usize {
        match (self, with_media) {
            (Destination::WhatsAppMeta, false) => WHATSAPP_MAX_CHARS,
            (Destination::WhatsAppMeta, true) => META_CAPTION_MAX_CHARS,
            (Destination::WhatsAppTwilio | Destination::Sms, _) => TWILIO_BODY_MAX_CHARS,
        }
    }
}

/// How a free-form text was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TextFormat {
    /// Markdown, as staff and automations write it: converted for the destination.
    #[default]
    Markdown,
    /// Already converted for the destination (a stored part sent again, an SMS fallback
    /// made from WhatsApp parts): only split.
    AsIs,
}

/// One message of a text that is sent in parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Part {
    pub text: String,
    /// Length as the destination's limit counts it.
    pub chars: usize,
    /// For SMS: the encoding and how many segments the carrier bills.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sms: Option<SmsSegments>,
}

/// A free-form text as it will go to one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Prepared {
    pub destination: Destination,
    /// The whole converted text.
    pub text: String,
    /// The longest part allowed.
    pub max_chars: usize,
    /// `text` in sending order, each without the whitespace it was cut at (concatenated with
    /// that whitespace, they are `text`). Empty only for a text of whitespace alone.
    pub parts: Vec<Part>,
}

/// Converts (unless [`TextFormat::AsIs`]) and splits a text for `destination`: WhatsApp
/// formatting for WhatsApp, plain text without WhatsApp's markers for SMS ([`plain_text`]),
/// each part within the destination's limit ([`Destination::max_chars`]).
pub fn prepare(
    text: &str,
    format: TextFormat,
    destination: Destination,
    with_media: bool,
) -> Prepared {
    let text = match (format, destination) {
        (TextFormat::AsIs, _) => text.to_string(),
        (TextFormat::Markdown, Destination::Sms) => plain_text(&markdown_to_whatsapp(text)),
        (TextFormat::Markdown, _) => markdown_to_whatsapp(text),
    };
    let max_chars = destination.max_chars(with_media);
    // A part's trailing whitespace (the paragraph break it was cut at) would show as
    // nothing and providers drop it: it is not sent, so the preview shows what goes.
    let parts = split_message(&text, max_chars)
        .into_iter()
        .map(|part| part.trim_end().to_string())
        .filter(|part| !part.is_empty())
        .map(|text| Part {
            chars: whatsapp_len(&text),
            sms: (destination == Destination::Sms).then(|| sms_segments(&text)),
            text,
        })
        .collect();
    Prepared {
        destination,
        text,
        max_chars,
        parts,
    }
}

/// WhatsApp-formatted text as WhatsApp would show it, without the styling: the markers of
/// every span WhatsApp renders (`*bold*`, `_italic_`, `~strike~`, ```` ```mono``` ````) are
/// removed, and a line that holds only a code fence goes with it; code is kept verbatim. A
/// marker WhatsApp shows literally (`2 * 3`, `snake_case`, `a*b*c`) stays, as do quote and
/// list prefixes.
pub fn plain_text(whatsapp: &str) -> String {
    let mut lines = Vec::new();
    let mut in_code_block = false;
    for line in whatsapp.split('\n') {
        if line.trim_start_matches([' ', '>']) == "```" {
            in_code_block = !in_code_block;
            continue;
        }
        lines.push(if in_code_block {
            line.to_string()
        } else {
            plain_line(line)
        });
    }
    lines.join("\n")
}

/// One line outside a code block: inline code spans lose their fences and keep their
/// content; style markers outside them go where WhatsApp would style (styles never span
/// lines).
fn plain_line(line: &str) -> String {
    // (character, inside code), fences of paired spans removed.
    let mut chars: Vec<(char, bool)> = Vec::with_capacity(line.len());
    let pieces: Vec<&str> = line.split("```").collect();
    let paired = if pieces.len() % 2 == 1 {
        pieces.len()
    } else {
        pieces.len() - 1
    };
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 && (i >= paired) {
            chars.extend("```".chars().map(|c| (c, false)));
        }
        let code = i % 2 == 1 && i < paired;
        chars.extend(piece.chars().map(|c| (c, code)));
    }
    for marker in ['*', '_', '~'] {
        strip_marker(&mut chars, marker);
    }
    chars.into_iter().map(|(c, _)| c).collect()
}

/// Removes each pair of `marker` (outside code) that WhatsApp reads as a style: the opening
/// one at the start or after a character that is not a letter or digit and before a
/// non-space, the closing one after a non-space and at the end or before a character that
/// is not a letter or digit, with something between them.
fn strip_marker(chars: &mut Vec<(char, bool)>, marker: char) {
    let is = |c: Option<&(char, bool)>, m: char| c.is_some_and(|&(c, code)| c == m && !code);
    let word = |c: Option<&(char, bool)>| c.is_some_and(|(c, _)| c.is_alphanumeric());
    let space = |c: Option<&(char, bool)>| c.is_none_or(|(c, _)| c.is_whitespace());
    let mut drop = vec![false; chars.len()];
    let mut i = 0;
    while i < chars.len() {
        let before = i.checked_sub(1).and_then(|p| chars.get(p));
        let opens = is(chars.get(i), marker)
            && !word(before)
            && !space(chars.get(i + 1))
            && !is(chars.get(i + 1), marker);
        if opens {
            let close = (i + 2..chars.len()).find(|&j| {
                is(chars.get(j), marker) && !space(chars.get(j - 1)) && !word(chars.get(j + 1))
            });
            if let Some(j) = close {
                drop[i] = true;
                drop[j] = true;
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    let mut keep = drop.into_iter().map(|d| !d);
    chars.retain(|_| keep.next().unwrap_or(true));
}

/// How an SMS is encoded on the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SmsEncoding {
    /// The GSM 03.38 7-bit alphabet: 160 characters in one segment, 153 per segment when
    /// concatenated; the extension characters (`{ } [ ] \ ~ ^ | €` and form feed) take two.
    #[serde(rename = "GSM-7")]
    Gsm7,
    /// Any character outside it makes the whole message UCS-2: 70 UTF-16 units in one
    /// segment, 67 per segment when concatenated.
    #[serde(rename = "UCS-2")]
    Ucs2,
}

/// What an SMS body costs: its encoding, its length in that encoding's units and the number
/// of segments the carrier bills, counted as Twilio's segment calculator counts them (a
/// character is never split across segments).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SmsSegments {
    pub encoding: SmsEncoding,
    /// Septets (GSM-7) or UTF-16 code units (UCS-2).
    pub units: usize,
    pub segments: usize,
}

/// The GSM 03.38 basic character set (one septet each).
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// The GSM 03.38 extension table (an escape septet plus one each).
const GSM7_EXTENSION: &str = "\u{c}^{}\\[~]|€";

fn gsm7_septets(c: char) -> Option<usize> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Counts the segments of an SMS body ([`SmsSegments`]). An empty body is one segment.
pub fn sms_segments(text: &str) -> SmsSegments {
    let septets: Option<Vec<usize>> = text.chars().map(gsm7_septets).collect();
    let (encoding, costs, single, multi) = match septets {
        Some(costs) => (SmsEncoding::Gsm7, costs, 160, 153),
        None => (
            SmsEncoding::Ucs2,
            text.chars().map(char::len_utf16).collect(),
            70,
            67,
        ),
    };
    let units: usize = costs.iter().sum();
    if units <= single {
        return SmsSegments {
            encoding,
            units,
            segments: 1,
        };
    }
    let (mut segments, mut used) = (1, 0);
    for cost in costs {
        if used + cost > multi {
            segments += 1;
            used = 0;
        }
        used += cost;
    }
    SmsSegments {
        encoding,
        units,
        segments,
    }
}

// ---------------------------------------------------------------------------------------------
// Interactive messages
// ---------------------------------------------------------------------------------------------

// Meta Cloud API limits for interactive messages.
const QUICK_REPLY_MAX_BUTTONS: usize = 3;
const QUICK_REPLY_BODY_MAX: usize = 1024;
const BUTTON_TITLE_MAX: usize = 20;
const BUTTON_ID_MAX: usize = 256;
const LIST_BODY_MAX: usize = 4096;
const LIST_BUTTON_TEXT_MAX: usize = 20;
const LIST_MAX_SECTIONS: usize = 10;
const LIST_MAX_ROWS: usize = 10;
const SECTION_TITLE_MAX: usize = 24;
const ROW_TITLE_MAX: usize = 24;
const ROW_DESCRIPTION_MAX: usize = 72;
const ROW_ID_MAX: usize = 200;

/// Why an interactive message was refused. Buttons, sections and rows are numbered from 1,
/// as a person would count them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InteractiveError {
    #[error("body is empty; WhatsApp requires 1 to {max} characters")]
    EmptyBody { max: usize },
    #[error("body is {len} characters; WhatsApp allows at most {max}")]
    BodyTooLong { len: usize, max: usize },
    #[error("quick replies have {count} buttons; WhatsApp allows 1 to {max}")]
    ButtonCount { count: usize, max: usize },
    #[error("button {button} id is empty; WhatsApp requires 1 to {max} characters")]
    EmptyButtonId { button: usize, max: usize },
    #[error("button {button} id is {len} characters; WhatsApp allows at most {max}")]
    ButtonIdTooLong {
        button: usize,
        len: usize,
        max: usize,
    },
    #[error("button {button} id {id:?} is already used by button {first}; WhatsApp requires unique button ids")]
    DuplicateButtonId {
        button: usize,
        first: usize,
        id: String,
    },
    #[error("button {button} title is empty; WhatsApp requires 1 to {max} characters")]
    EmptyButtonTitle { button: usize, max: usize },
    #[error("button {button} title is {len} characters; WhatsApp allows at most {max}")]
    ButtonTitleTooLong {
        button: usize,
        len: usize,
        max: usize,
    },
    #[error("button {button} title {title:?} repeats button {first}'s title; WhatsApp requires unique button titles (ignoring case)")]
    DuplicateButtonTitle {
        button: usize,
        first: usize,
        title: String,
    },
    #[error("list button text is empty; WhatsApp requires 1 to {max} characters")]
    EmptyListButtonText { max: usize },
    #[error("list button text is {len} characters; WhatsApp allows at most {max}")]
    ListButtonTextTooLong { len: usize, max: usize },
    #[error("list has {count} sections; WhatsApp allows 1 to {max}")]
    SectionCount { count: usize, max: usize },
    #[error("section {section} has no rows; WhatsApp requires at least 1 row per section")]
    EmptySection { section: usize },
    #[error("list has {count} rows in total; WhatsApp allows at most {max}")]
    TooManyRows { count: usize, max: usize },
    #[error("section {section} has no title; WhatsApp requires a title of 1 to {max} characters on every section when a list has more than one")]
    MissingSectionTitle { section: usize, max: usize },
    #[error("section {section} title is {len} characters; WhatsApp allows at most {max}")]
    SectionTitleTooLong {
        section: usize,
        len: usize,
        max: usize,
    },
    #[error("section {section} row {row} id is empty; WhatsApp requires 1 to {max} characters")]
    EmptyRowId {
        section: usize,
        row: usize,
        max: usize,
    },
    #[error("section {section} row {row} id is {len} characters; WhatsApp allows at most {max}")]
    RowIdTooLong {
        section: usize,
        row: usize,
        len: usize,
        max: usize,
    },
    #[error("section {section} row {row} id {id:?} is already used by section {first_section} row {first_row}; WhatsApp requires row ids unique across the list")]
    DuplicateRowId {
        section: usize,
        row: usize,
        first_section: usize,
        first_row: usize,
        id: String,
    },
    #[error("section {section} row {row} title is empty; WhatsApp requires 1 to {max} characters")]
    EmptyRowTitle {
        section: usize,
        row: usize,
        max: usize,
    },
    #[error(
        "section {section} row {row} title is {len} characters; WhatsApp allows at most {max}"
    )]
    RowTitleTooLong {
        section: usize,
        row: usize,
        len: usize,
        max: usize,
    },
    #[error("section {section} row {row} description is {len} characters; WhatsApp allows at most {max}")]
    RowDescriptionTooLong {
        section: usize,
        row: usize,
        len: usize,
        max: usize,
    },
}

/// Characters as the limits count them: Unicode scalar values, which is never fewer than the
/// characters a person sees, so the check errs on the strict side.
fn char_len(text: &str) -> usize {
    text.chars().count()
}

fn is_blank(text: &str) -> bool {
    text.trim().is_empty()
}

fn check_body(body: &str, max: usize) -> Result<(), InteractiveError> {
    if is_blank(body) {
        return Err(InteractiveError::EmptyBody { max });
    }
    let len = char_len(body);
    if len > max {
        return Err(InteractiveError::BodyTooLong { len, max });
    }
    Ok(())
}

/// An optional text that is blank carries nothing, and Meta rejects empty strings.
fn non_blank(text: Option<String>) -> Option<String> {
    text.filter(|t| !is_blank(t))
}

/// A message with up to three quick-reply buttons, valid by construction.
///
/// Serializable for storage and logging; not deserializable, so that every value has been
/// through [`QuickReplies::new`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuickReplies {
    body: String,
    buttons: Vec<QuickReplyButton>,
}

/// One quick-reply button: `id` comes back in the reply webhook, `title` is what the user sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuickReplyButton {
    id: String,
    title: String,
}

impl QuickReplies {
    /// Checks Meta's rules: 1 to 3 buttons; each title 1 to 20 characters (not blank) and
    /// unique ignoring case; each id 1 to 256 characters (not blank) and unique; body 1 to
    /// 1024 characters (not blank). Texts are kept exactly as given.
    pub fn new(
        body: impl Into<String>,
        buttons: Vec<(String, String)>,
    ) -> Result<Self, InteractiveError> {
        let body = body.into();
        check_body(&body, QUICK_REPLY_BODY_MAX)?;
        let count = buttons.len();
        if count == 0 || count > QUICK_REPLY_MAX_BUTTONS {
            return Err(InteractiveError::ButtonCount {
                count,
                max: QUICK_REPLY_MAX_BUTTONS,
            });
        }
        let mut ids: HashMap<&str, usize> = HashMap::new();
        let mut titles: HashMap<String, usize> = HashMap::new();
        for (i, (id, title)) in buttons.iter().enumerate() {
            let button = i + 1;
            if is_blank(id) {
                return Err(InteractiveError::EmptyButtonId {
                    button,
                    max: BUTTON_ID_MAX,
                });
            }
            let len = char_len(id);
            if len > BUTTON_ID_MAX {
                return Err(InteractiveError::ButtonIdTooLong {
                    button,
                    len,
                    max: BUTTON_ID_MAX,
                });
            }
            if let Some(&first) = ids.get(id.as_str()) {
                return Err(InteractiveError::DuplicateButtonId {
                    button,
                    first,
                    id: id.clone(),
                });
            }
            ids.insert(id, button);

            if is_blank(title) {
                return Err(InteractiveError::EmptyButtonTitle {
                    button,
                    max: BUTTON_TITLE_MAX,
                });
            }
            let len = char_len(title);
            if len > BUTTON_TITLE_MAX {
                return Err(InteractiveError::ButtonTitleTooLong {
                    button,
                    len,
                    max: BUTTON_TITLE_MAX,
                });
            }
            let key = title.trim().to_lowercase();
            if let Some(&first) = titles.get(&key) {
                return Err(InteractiveError::DuplicateButtonTitle {
                    button,
                    first,
                    title: title.clone(),
                });
            }
            titles.insert(key, button);
        }
        Ok(Self {
            body,
            buttons: buttons
                .into_iter()
                .map(|(id, title)| QuickReplyButton { id, title })
                .collect(),
        })
    }

    pub fn body(&self) -> &str {
        &self.body
    }

    pub fn buttons(&self) -> &[QuickReplyButton] {
        &self.buttons
    }
}

impl QuickReplyButton {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn title(&self) -> &str {
        &self.title
    }
}

/// A list message: a button that opens up to ten rows in sections, valid by construction.
///
/// Serializable for storage and logging; not deserializable, so that every value has been
/// through [`ListMessage::new`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListMessage {
    body: String,
    button_text: String,
    sections: Vec<ListSection>,
}

/// A group of rows in a [`ListMessage`]; checked by [`ListMessage::new`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    rows: Vec<ListRow>,
}

/// One choice in a [`ListMessage`]; checked by [`ListMessage::new`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListRow {
    id: String,
    title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

impl ListMessage {
    /// Checks Meta's rules: body 1 to 4096 characters; button text 1 to 20; 1 to 10 sections,
    /// each with at least one row and at most 10 rows in all; every section titled when there
    /// is more than one, titles at most 24 characters; row titles 1 to 24; descriptions at
    /// most 72; row ids 1 to 200 and unique across the whole list. "Empty" includes blank.
    pub fn new(
        body: impl Into<String>,
        button_text: impl Into<String>,
        sections: Vec<ListSection>,
    ) -> Result<Self, InteractiveError> {
        let body = body.into();
        let button_text = button_text.into();
        check_body(&body, LIST_BODY_MAX)?;
        if is_blank(&button_text) {
            return Err(InteractiveError::EmptyListButtonText {
                max: LIST_BUTTON_TEXT_MAX,
            });
        }
        let len = char_len(&button_text);
        if len > LIST_BUTTON_TEXT_MAX {
            return Err(InteractiveError::ListButtonTextTooLong {
                len,
                max: LIST_BUTTON_TEXT_MAX,
            });
        }
        let count = sections.len();
        if count == 0 || count > LIST_MAX_SECTIONS {
            return Err(InteractiveError::SectionCount {
                count,
                max: LIST_MAX_SECTIONS,
            });
        }
        let mut ids: HashMap<&str, (usize, usize)> = HashMap::new();
        for (s, section_value) in sections.iter().enumerate() {
            let section = s + 1;
            if section_value.rows.is_empty() {
                return Err(InteractiveError::EmptySection { section });
            }
            match &section_value.title {
                None if count > 1 => {
                    return Err(InteractiveError::MissingSectionTitle {
                        section,
                        max: SECTION_TITLE_MAX,
                    })
                }
                Some(title) if char_len(title) > SECTION_TITLE_MAX => {
                    return Err(InteractiveError::SectionTitleTooLong {
                        section,
                        len: char_len(title),
                        max: SECTION_TITLE_MAX,
                    })
                }
                _ => {}
            }
            for (r, row_value) in section_value.rows.iter().enumerate() {
                let row = r + 1;
                check_row(section, row, row_value)?;
                if let Some(&(first_section, first_row)) = ids.get(row_value.id.as_str()) {
                    return Err(InteractiveError::DuplicateRowId {
                        section,
                        row,
                        first_section,
                        first_row,
                        id: row_value.id.clone(),
                    });
                }
                ids.insert(&row_value.id, (section, row));
            }
        }
        let rows: usize = sections.iter().map(|s| s.rows.len()).sum();
        if rows > LIST_MAX_ROWS {
            return Err(InteractiveError::TooManyRows {
                count: rows,
                max: LIST_MAX_ROWS,
            });
        }
        Ok(Self {
            body,
            button_text,
            sections,
        })
    }

    pub fn body(&self) -> &str {
        &self.body
    }

    pub fn button_text(&self) -> &str {
        &self.button_text
    }

    pub fn sections(&self) -> &[ListSection] {
        &self.sections
    }
}

fn check_row(section: usize, row: usize, value: &ListRow) -> Result<(), InteractiveError> {
    if is_blank(&value.id) {
        return Err(InteractiveError::EmptyRowId {
            section,
            row,
            max: ROW_ID_MAX,
        });
    }
    let len = char_len(&value.id);
    if len > ROW_ID_MAX {
        return Err(InteractiveError::RowIdTooLong {
            section,
            row,
            len,
            max: ROW_ID_MAX,
        });
    }
    if is_blank(&value.title) {
        return Err(InteractiveError::EmptyRowTitle {
            section,
            row,
            max: ROW_TITLE_MAX,
        });
    }
    let len = char_len(&value.title);
    if len > ROW_TITLE_MAX {
        return Err(InteractiveError::RowTitleTooLong {
            section,
            row,
            len,
            max: ROW_TITLE_MAX,
        });
    }
    if let Some(description) = &value.description {
        let len = char_len(description);
        if len > ROW_DESCRIPTION_MAX {
            return Err(InteractiveError::RowDescriptionTooLong {
                section,
                row,
                len,
                max: ROW_DESCRIPTION_MAX,
            });
        }
    }
    Ok(())
}

impl ListSection {
    /// A blank title counts as no title.
    pub fn new(title: Option<String>, rows: Vec<ListRow>) -> Self {
        Self {
            title: non_blank(title),
            rows,
        }
    }

    pub fn title(&self) -> Option<&str> {
        self.title.as_deref()
    }

    pub fn rows(&self) -> &[ListRow] {
        &self.rows
    }
}

impl ListRow {
    /// A blank description counts as no description.
    pub fn new(
        id: impl Into<String>,
        title: impl Into<String>,
        description: Option<String>,
    ) -> Self {
        Self {
            id: id.into(),
            title: title.into(),
            description: non_blank(description),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn title(&self) -> &str {
        &self.title
    }

    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
}

#[cfg(test)]
mod tests {
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
            let inside_oversized = graphemes.iter().any(|&(start, g)| {
                start < offset && offset < start + g.len() && whatsapp_len(g) > max
            });
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
}
