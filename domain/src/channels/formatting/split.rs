//! A message's length as WhatsApp counts it, and splitting a long text into
//! parts at the best places.

use super::*;

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

pub(super) fn is_newline(grapheme: &str) -> bool {
    matches!(grapheme, "\n" | "\r\n" | "\r")
}

pub(super) fn is_whitespace(grapheme: &str) -> bool {
    grapheme.chars().all(char::is_whitespace)
}

/// How many graphemes of `window` to take: up to the last paragraph break, else the last line
/// break, else the last whitespace, looking first beyond the window's first quarter (so that
/// a heading or a short first paragraph does not go as a message of its own) and then in all
/// of it. `None` means hard-cut at the end of the window.
pub(super) fn best_cut(window: &[&str]) -> Option<usize> {
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

pub(super) fn split_oversized_grapheme(grapheme: &str, max: usize, chunks: &mut Vec<String>) {
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
