//! What goes to each destination: the parts a provider takes, plain text for
//! SMS, and SMS segments (GSM-7 or UCS-2).

use super::*;

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
pub(super) fn plain_line(line: &str) -> String {
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
pub(super) fn strip_marker(chars: &mut Vec<(char, bool)>, marker: char) {
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
pub(super) const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// The GSM 03.38 extension table (an escape septet plus one each).
pub(super) const GSM7_EXTENSION: &str = "\u{c}^{}\\[~]|€";

pub(super) fn gsm7_septets(c: char) -> Option<usize> {
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
