//! Markdown to WhatsApp formatting, with the real Markdown parser: what is not
//! Markdown syntax comes out as written.

use super::*;

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
pub(super) enum Style {
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
pub(super) struct OpenStyle {
    style: Style,
    /// Byte offset just past the opening marker in the output, or `None` when the marker was
    /// suppressed (nested in the same style, or inside an image's alt text).
    emitted: Option<usize>,
}

#[derive(Debug)]
pub(super) enum Container {
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
pub(super) struct Capture {
    start: usize,
    url: String,
    image: bool,
}

/// Block content collected whole before it is written.
#[derive(Debug)]
pub(super) enum Buffered {
    Code(String),
    Html(String),
}

#[derive(Debug, Default)]
pub(super) struct Renderer<'a> {
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
pub(super) fn written_marker(item_source: &str) -> Option<String> {
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
