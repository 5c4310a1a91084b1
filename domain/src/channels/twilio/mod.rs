//! Twilio: the Programmable Messaging API (WhatsApp through Twilio as BSP,
//! and SMS) and the Content API (templates and their WhatsApp approval).
//!
//! Requests authenticate with HTTP Basic (account SID, auth token). The auth
//! token lives in a [`SecretString`]: it is never logged, never part of an
//! error message and never shown by `Debug`. Errors are reported as
//! [`Rejected`] with a [`ProviderFailure`] the error table can classify:
//! Twilio's own `code` when the body says one, the bare HTTP status
//! otherwise, `Network` when Twilio could not be reached, and `Timeout` or
//! `Broken` when the request went out but its answer was lost.
//!
//! One file per part: `transport` (the HTTP client, endpoint URLs and
//! failures, shared with Meta and Discord), `messages` (sending and fetching
//! Message resources), `content` (Content API templates, their WhatsApp
//! approval, and the contents made for interactive messages), `tests`; used
//! as `twilio::name`.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};
use url::Url;

use super::{
    content_variables_json, Accepted, Content, MessageProvider, OutboundRequest, Rejected,
};
use crate::channel::Channel;
use crate::compliance::provider_errors::ProviderFailure;
use crate::settings::TwilioSettings;

mod content;
mod messages;
mod transport;

pub use content::*;
pub use messages::*;
pub use transport::*;

/// A Twilio REST client for one account.
#[derive(Clone)]
pub struct TwilioClient {
    http: reqwest::Client,
    account_sid: String,
    auth_token: SecretString,
    api_base: Url,
    content_base: Url,
    /// Content resources made for interactive session messages, by the SHA-256 of their
    /// types: the same buttons are created once per process, not once per message.
    session_contents: std::sync::Arc<std::sync::Mutex<lru::LruCache<String, String>>>,
}

/// How many interactive contents a client remembers.
const SESSION_CONTENTS: usize = 1024;

/// The friendly-name prefix of the Content resources made for interactive session
/// messages (not templates: a sync of templates passes them by).
pub const SESSION_CONTENT_PREFIX: &str = "heimdall-session-";

impl std::fmt::Debug for TwilioClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioClient")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"[redacted]")
            .field("api_base", &self.api_base.as_str())
            .field("content_base", &self.content_base.as_str())
            .finish()
    }
}

impl TwilioClient {
    pub fn new(settings: &TwilioSettings, http: reqwest::Client) -> Self {
        Self {
            http,
            account_sid: settings.account_sid.clone(),
            auth_token: settings.auth_token.clone(),
            api_base: settings.api_base.clone(),
            content_base: settings.content_base.clone(),
            session_contents: std::sync::Arc::new(std::sync::Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(SESSION_CONTENTS).expect("non-zero"),
            ))),
        }
    }

    pub fn account_sid(&self) -> &str {
        &self.account_sid
    }
}

#[cfg(test)]
mod tests;
