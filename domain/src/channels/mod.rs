//! The providers Heimdall sends through (Twilio for WhatsApp and SMS, Meta's
//! WhatsApp Cloud API) and the operators' alert channel (Discord).
//!
//! The send worker talks to a [`MessageProvider`]; it never builds HTTP
//! requests itself. A provider call happens only after the gate pipeline
//! has passed the message and its audit row is written: nothing in this
//! module decides whether a message may go.
//!
//! Also here: what a message looks like on the way out ([`formatting`]:
//! Markdown to WhatsApp, parts, SMS segments; [`interactive`]: buttons and
//! lists; [`attachments`]: files staff attach). Every request to a URL
//! someone other than the operator chose obeys [`crate::outbound_http`].

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use serde::Serialize;

use crate::channel::Channel;
use crate::compliance::provider_errors::ProviderFailure;
use crate::phone::PhoneNumber;

pub mod attachments;
pub mod discord;
pub mod formatting;
pub mod interactive;
pub mod meta;
pub mod twilio;

/// What a media link holds, as WhatsApp's Cloud API types it: decided from the link's
/// file extension (the path, without its query), a document when it says nothing else
/// (a document takes any file and is shown as one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Image,
    Video,
    Audio,
    Document,
}

impl MediaKind {
    pub fn of_url(url: &str) -> MediaKind {
        let name = last_segment(url);
        let ext = name
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "jpg" | "jpeg" | "png" | "webp" => MediaKind::Image,
            "mp4" | "3gp" | "3gpp" => MediaKind::Video,
            "mp3" | "ogg" | "oga" | "opus" | "aac" | "amr" | "m4a" => MediaKind::Audio,
            _ => MediaKind::Document,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Video => "video",
            MediaKind::Audio => "audio",
            MediaKind::Document => "document",
        }
    }

    /// Whether WhatsApp shows a caption with it (audio has none).
    pub fn takes_caption(self) -> bool {
        self != MediaKind::Audio
    }

    /// The file name a document is shown with: the link's last path segment.
    pub fn file_name(url: &str) -> Option<String> {
        Some(last_segment(url))
            .filter(|n| !n.is_empty() && !n.contains(':'))
            .map(str::to_string)
    }
}

/// A link's last path segment, without its query or fragment.
fn last_segment(url: &str) -> &str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.rsplit('/').next().unwrap_or(path)
}

/// What to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// Free-form text (WhatsApp only inside the 24-hour window), optionally with media.
    Text {
        body: String,
        media_url: Option<String>,
    },
    /// An approved template.
    Template {
        /// Heimdall's name for it (`task_reminder`).
        name: String,
        /// The provider's id: a Twilio ContentSid (`HX...`) or, for Meta, the
        /// template name as registered with Meta.
        provider_id: String,
        /// Language code (`en`, `en_US`).
        language: String,
        /// Values in the order of the template's positional placeholders
        /// `{{1}}`, `{{2}}`, ... (already mapped from Heimdall's named variables).
        positional: Vec<String>,
    },
    /// Quick-reply buttons or a list (WhatsApp, only inside the window).
    Interactive(crate::channels::interactive::Interactive),
}

/// One request to a provider.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    /// Heimdall's own message id, carried in the status callback URL.
    pub message_id: String,
    pub channel: Channel,
    pub to: PhoneNumber,
    /// The sender: an E.164 number for Twilio, the phone number id for Meta.
    pub from: String,
    pub content: Content,
    /// Where status callbacks go (Twilio); `None` when no public URL is known.
    pub status_callback: Option<url::Url>,
    /// Quote an earlier message (Meta's reply context).
    pub reply_to: Option<String>,
}

/// The provider took the message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Accepted {
    /// `twilio` or `meta`.
    pub provider: &'static str,
    /// `SM...` (Twilio) or `wamid....` (Meta).
    pub sid: String,
    /// The provider's status at acceptance (`queued`, `accepted`, ...).
    pub status: String,
    pub price: Option<String>,
    pub price_unit: Option<String>,
}

/// The provider refused or could not be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejected {
    pub failure: ProviderFailure,
    /// The provider's own message, for the record (never includes credentials).
    pub message: String,
}

/// Something that can send a message.
pub trait MessageProvider: Send + Sync + std::fmt::Debug {
    fn send<'a>(
        &'a self,
        request: &'a OutboundRequest,
    ) -> BoxFuture<'a, Result<Accepted, Rejected>>;
}

/// Map Heimdall's named variables onto a template's positional placeholders.
/// `names` are the template's variable names in placeholder order. Every
/// name must have a value and every value must belong to a name.
pub fn positional_variables(
    names: &[String],
    values: &BTreeMap<String, String>,
) -> Result<Vec<String>, VariableError> {
    let missing: Vec<String> = names
        .iter()
        .filter(|n| !values.contains_key(n.as_str()))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(VariableError::Missing(missing));
    }
    let unknown: Vec<String> = values
        .keys()
        .filter(|k| !names.iter().any(|n| n == *k))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(VariableError::Unknown(unknown));
    }
    Ok(names.iter().map(|n| values[n.as_str()].clone()).collect())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VariableError {
    #[error("missing template variable(s): {}", .0.join(", "))]
    Missing(Vec<String>),
    #[error("unknown template variable(s): {}", .0.join(", "))]
    Unknown(Vec<String>),
}

/// Twilio's `ContentVariables`: `{"1": "...", "2": "..."}`.
pub fn content_variables_json(positional: &[String]) -> String {
    let map: BTreeMap<String, &String> = positional
        .iter()
        .enumerate()
        .map(|(i, v)| ((i + 1).to_string(), v))
        .collect();
    serde_json::to_string(&map).unwrap_or_else(|_| "{}".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_named_to_positional() {
        let names = vec!["task_name".to_string(), "due_time".to_string()];
        let mut values = BTreeMap::new();
        values.insert("due_time".to_string(), "17:00".to_string());
        values.insert("task_name".to_string(), "Call Bob".to_string());
        let p = positional_variables(&names, &values).unwrap();
        assert_eq!(p, vec!["Call Bob", "17:00"]);
        assert_eq!(
            content_variables_json(&p),
            r#"{"1":"Call Bob","2":"17:00"}"#
        );
    }

    #[test]
    fn missing_and_unknown_are_named() {
        let names = vec!["a".to_string(), "b".to_string()];
        let mut values = BTreeMap::new();
        values.insert("a".to_string(), "1".to_string());
        assert_eq!(
            positional_variables(&names, &values)
                .unwrap_err()
                .to_string(),
            "missing template variable(s): b"
        );
        values.insert("b".to_string(), "2".to_string());
        values.insert("c".to_string(), "3".to_string());
        assert_eq!(
            positional_variables(&names, &values)
                .unwrap_err()
                .to_string(),
            "unknown template variable(s): c"
        );
    }
}
