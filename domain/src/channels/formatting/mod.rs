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
//!
//! One file per part: `markdown`, `split`, `destination` (parts, plain
//! text, SMS segments), `choices` (buttons and lists); used as
//! `formatting::name`.

use std::collections::HashMap;
use std::ops::Range;

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
use serde::Serialize;
use unicode_segmentation::UnicodeSegmentation;

mod choices;
mod destination;
mod markdown;
mod split;

pub use choices::*;
pub use destination::*;
pub use markdown::*;
pub use split::*;

/// WhatsApp's limit for a text message body.
pub const WHATSAPP_MAX_CHARS: usize = 4096;

/// Smallest `max` that [`split_message`] works with. Any character fits in 2 UTF-16 units, so
/// 8 leaves room for a few of them and for short grapheme clusters such as flags.
const MIN_SPLIT_MAX: usize = 8;

#[cfg(test)]
mod tests;
