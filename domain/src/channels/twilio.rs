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

/// `Messages` list and Content pages: Twilio's default and maximum useful size.
const CONTENT_PAGE_SIZE: u32 = 50;
/// A guard against a server that keeps handing out next pages.
const MAX_CONTENT_PAGES: usize = 1000;

/// The HTTP client Heimdall uses for provider calls: rustls, a 5 s connect
/// timeout, a 15 s overall timeout and a `heimdall/<version>` user agent.
///
/// Idle pooled connections are dropped after [`POOL_IDLE`], before a
/// server's keep-alive closes them (5 s is common, actix-web's default
/// among them): a request sent on a connection the server is closing at
/// that moment fails as a network error and is retried, and a send retried
/// after a network failure is the one place a message could reach a
/// provider twice (neither Twilio nor Meta takes an idempotency key).
pub fn default_http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(POOL_IDLE)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .user_agent(concat!("heimdall/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "could not build the configured HTTP client; using reqwest's defaults");
            reqwest::Client::new()
        })
}

/// How long an idle provider connection is kept for reuse.
const POOL_IDLE: Duration = Duration::from_secs(4);

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

/// A Message resource as Twilio returns it (create, fetch).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct TwilioMessage {
    pub sid: String,
    #[serde(default)]
    pub account_sid: Option<String>,
    pub status: String,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default, deserialize_with = "string_or_number")]
    pub price: Option<String>,
    #[serde(default)]
    pub price_unit: Option<String>,
    #[serde(default, deserialize_with = "integer_or_string")]
    pub error_code: Option<i64>,
    #[serde(default)]
    pub error_message: Option<String>,
    #[serde(default)]
    pub date_created: Option<String>,
    #[serde(default)]
    pub date_updated: Option<String>,
    #[serde(default)]
    pub date_sent: Option<String>,
    #[serde(default, deserialize_with = "string_or_number")]
    pub num_segments: Option<String>,
    #[serde(default, deserialize_with = "string_or_number")]
    pub num_media: Option<String>,
    #[serde(default)]
    pub direction: Option<String>,
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub uri: Option<String>,
}

/// A Content API template.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContentTemplate {
    /// `HX...`
    pub sid: String,
    pub friendly_name: String,
    pub language: String,
    /// Twilio's sample values, keyed `"1"`, `"2"`, ...
    pub variables: BTreeMap<String, String>,
    /// The text of the first content type that has one (`twilio/text`,
    /// `twilio/quick-reply`, ...).
    pub body: Option<String>,
    /// Every content type as Twilio returned it.
    pub types: serde_json::Value,
}

/// A template's WhatsApp approval, from `GET /v1/Content/{sid}/ApprovalRequests`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalStatus {
    /// Lower case: `approved`, `pending`, `rejected`, `paused`, `disabled`,
    /// `unsubmitted`, `received`.
    pub status: String,
    /// `UTILITY`, `MARKETING` or `AUTHENTICATION`.
    pub category: Option<String>,
    pub rejection_reason: Option<String>,
    /// The template name as submitted to WhatsApp.
    pub name: Option<String>,
}

/// Twilio's REST error body.
#[derive(Debug, Deserialize)]
struct TwilioError {
    code: Option<i64>,
    message: Option<String>,
    #[serde(default)]
    status: Option<u16>,
}

#[derive(Debug, Deserialize)]
struct ContentPage {
    #[serde(default)]
    contents: Vec<RawContent>,
    #[serde(default)]
    meta: Option<ContentPageMeta>,
}

#[derive(Debug, Deserialize)]
struct ContentPageMeta {
    #[serde(default)]
    next_page_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawContent {
    sid: String,
    #[serde(default)]
    friendly_name: Option<String>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    variables: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    types: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct RawApproval {
    #[serde(default)]
    whatsapp: Option<RawWhatsAppApproval>,
}

#[derive(Debug, Deserialize)]
struct RawWhatsAppApproval {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    rejection_reason: Option<String>,
    #[serde(default)]
    name: Option<String>,
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

    /// Create a Message resource: `POST /2010-04-01/Accounts/{sid}/Messages.json`.
    /// Quick replies and lists go as Content API resources (`twilio/quick-reply`,
    /// `twilio/list-picker`) made for the session, then sent by their ContentSid.
    pub async fn send_message(&self, request: &OutboundRequest) -> Result<Accepted, Rejected> {
        let url = self.messages_url(None)?;
        let session_content = match &request.content {
            Content::Interactive(content) => Some(self.session_content(content).await?),
            _ => None,
        };
        let form = message_form(request, session_content.as_deref());
        let response = self
            .http
            .post(url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| transport_failure("Twilio", e))?;
        let message: TwilioMessage = read_json(response).await?;
        Ok(Accepted {
            provider: "twilio",
            sid: message.sid,
            status: message.status,
            price: message.price,
            price_unit: message.price_unit,
        })
    }

    /// The ContentSid of a Content resource holding `content`, made on first use.
    async fn session_content(
        &self,
        content: &crate::channels::interactive::Interactive,
    ) -> Result<String, Rejected> {
        use sha2::Digest;
        let types = content.twilio_types();
        let key = hex::encode(sha2::Sha256::digest(types.to_string().as_bytes()));
        if let Some(sid) = self.cached_session_content(&key) {
            return Ok(sid);
        }
        let name = format!("{SESSION_CONTENT_PREFIX}{}", &key[..16]);
        let created = self
            .create_content(&name, "en", &BTreeMap::new(), types)
            .await?;
        if let Ok(mut cache) = self.session_contents.lock() {
            cache.put(key, created.sid.clone());
        }
        Ok(created.sid)
    }

    fn cached_session_content(&self, key: &str) -> Option<String> {
        self.session_contents.lock().ok()?.get(key).cloned()
    }

    /// Fetch a Message resource by SID, for reconciliation.
    pub async fn fetch_message(&self, sid: &str) -> Result<TwilioMessage, Rejected> {
        let url = self.messages_url(Some(sid))?;
        let response = self
            .http
            .get(url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| transport_failure("Twilio", e))?;
        read_json(response).await
    }

    /// Every Content API template, following `meta.next_page_url`.
    pub async fn list_content(&self) -> Result<Vec<ContentTemplate>, Rejected> {
        self.list_content_paged(CONTENT_PAGE_SIZE).await
    }

    /// [`list_content`](Self::list_content) with a chosen page size (1 to 500).
    pub async fn list_content_paged(
        &self,
        page_size: u32,
    ) -> Result<Vec<ContentTemplate>, Rejected> {
        let mut url = endpoint(&self.content_base, &["v1", "Content"])?;
        url.query_pairs_mut()
            .append_pair("PageSize", &page_size.clamp(1, 500).to_string());
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut next = Some(url);
        while let Some(url) = next.take() {
            if !seen.insert(url.to_string()) || seen.len() > MAX_CONTENT_PAGES {
                return Err(Rejected {
                    failure: ProviderFailure::Http(200),
                    message: "Twilio Content API paging did not end".into(),
                });
            }
            let response = self
                .http
                .get(url)
                .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
                .header(reqwest::header::ACCEPT, "application/json")
                .send()
                .await
                .map_err(|e| transport_failure("Twilio", e))?;
            let page: ContentPage = read_json(response).await?;
            out.extend(page.contents.into_iter().map(ContentTemplate::from_raw));
            if let Some(link) = page
                .meta
                .and_then(|m| m.next_page_url)
                .filter(|s| !s.trim().is_empty())
            {
                next = Some(self.same_origin_page(&link)?);
            }
        }
        Ok(out)
    }

    /// A template's WhatsApp approval status.
    pub async fn approval_status(&self, content_sid: &str) -> Result<ApprovalStatus, Rejected> {
        let url = endpoint(
            &self.content_base,
            &["v1", "Content", content_sid, "ApprovalRequests"],
        )?;
        let response = self
            .http
            .get(url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| transport_failure("Twilio", e))?;
        let raw: RawApproval = read_json(response).await?;
        Ok(match raw.whatsapp {
            None => ApprovalStatus {
                status: "unsubmitted".into(),
                category: None,
                rejection_reason: None,
                name: None,
            },
            Some(w) => ApprovalStatus {
                status: w
                    .status
                    .map(|s| s.trim().to_ascii_lowercase())
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "unsubmitted".into()),
                category: non_empty(w.category).map(|c| c.to_ascii_uppercase()),
                rejection_reason: non_empty(w.rejection_reason),
                name: non_empty(w.name),
            },
        })
    }

    /// Create a Content resource: `POST /v1/Content` with a JSON body.
    /// `variables` are the sample values keyed `"1"`, `"2"`, ...; `types` is
    /// Twilio's `types` object as is, e.g. `{"twilio/text": {"body": ...}}`
    /// for a template, or `twilio/quick-reply` / `twilio/list-picker` for
    /// interactive content made for one conversation.
    pub async fn create_content(
        &self,
        friendly_name: &str,
        language: &str,
        variables: &BTreeMap<String, String>,
        types: serde_json::Value,
    ) -> Result<ContentTemplate, Rejected> {
        let url = endpoint(&self.content_base, &["v1", "Content"])?;
        let body = serde_json::json!({
            "friendly_name": friendly_name,
            "language": language,
            "variables": variables,
            "types": types,
        });
        let response = self
            .http
            .post(url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&body)
            .send()
            .await
            .map_err(|e| transport_failure("Twilio", e))?;
        let raw: RawContent = read_json(response).await?;
        Ok(ContentTemplate::from_raw(raw))
    }

    /// Submit content for WhatsApp approval under `name` (lower case,
    /// digits, underscores) in `category` (`UTILITY`, `MARKETING`,
    /// `AUTHENTICATION`): `POST /v1/Content/{sid}/ApprovalRequests/whatsapp`.
    pub async fn submit_whatsapp_approval(
        &self,
        content_sid: &str,
        name: &str,
        category: &str,
    ) -> Result<ApprovalStatus, Rejected> {
        let url = endpoint(
            &self.content_base,
            &["v1", "Content", content_sid, "ApprovalRequests", "whatsapp"],
        )?;
        let response = self
            .http
            .post(url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&serde_json::json!({"name": name, "category": category}))
            .send()
            .await
            .map_err(|e| transport_failure("Twilio", e))?;
        let w: RawWhatsAppApproval = read_json(response).await?;
        Ok(ApprovalStatus {
            status: w
                .status
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "received".into()),
            category: non_empty(w.category).map(|c| c.to_ascii_uppercase()),
            rejection_reason: non_empty(w.rejection_reason),
            name: non_empty(w.name),
        })
    }

    /// Delete a Content resource: `DELETE /v1/Content/{sid}` (204).
    pub async fn delete_content(&self, content_sid: &str) -> Result<(), Rejected> {
        let url = endpoint(&self.content_base, &["v1", "Content", content_sid])?;
        let response = self
            .http
            .delete(url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| transport_failure("Twilio", e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_failure("Twilio", e))?;
        Err(twilio_error(status.as_u16(), &bytes))
    }

    fn messages_url(&self, sid: Option<&str>) -> Result<Url, Rejected> {
        match sid {
            None => endpoint(
                &self.api_base,
                &["2010-04-01", "Accounts", &self.account_sid, "Messages.json"],
            ),
            Some(sid) => {
                let leaf = format!("{sid}.json");
                endpoint(
                    &self.api_base,
                    &[
                        "2010-04-01",
                        "Accounts",
                        &self.account_sid,
                        "Messages",
                        &leaf,
                    ],
                )
            }
        }
    }

    /// The credentials go only to the host we were configured with: a next
    /// page on another origin is refused, not followed.
    fn same_origin_page(&self, link: &str) -> Result<Url, Rejected> {
        let url = self.content_base.join(link).map_err(|_| Rejected {
            failure: ProviderFailure::Http(200),
            message: "Twilio Content API returned an invalid next_page_url".into(),
        })?;
        if url.origin() != self.content_base.origin() {
            return Err(Rejected {
                failure: ProviderFailure::Http(200),
                message: "Twilio Content API next_page_url points at another host; not followed"
                    .into(),
            });
        }
        Ok(url)
    }
}

impl MessageProvider for TwilioClient {
    fn send<'a>(
        &'a self,
        request: &'a OutboundRequest,
    ) -> BoxFuture<'a, Result<Accepted, Rejected>> {
        Box::pin(self.send_message(request))
    }
}

impl ContentTemplate {
    fn from_raw(raw: RawContent) -> Self {
        let variables = raw
            .variables
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| {
                let value = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, value)
            })
            .collect();
        let body = template_body(&raw.types);
        ContentTemplate {
            sid: raw.sid,
            friendly_name: raw.friendly_name.unwrap_or_default(),
            language: raw.language.unwrap_or_default(),
            variables,
            body,
            types: raw.types,
        }
    }
}

/// The text of a template: the preferred content types first, then any type
/// with a `body`.
fn template_body(types: &serde_json::Value) -> Option<String> {
    const PREFERRED: &[&str] = &[
        "twilio/text",
        "twilio/quick-reply",
        "twilio/list-picker",
        "twilio/call-to-action",
        "twilio/media",
        "twilio/card",
        "whatsapp/card",
        "whatsapp/authentication",
    ];
    let map = types.as_object()?;
    let body_of = |v: &serde_json::Value| v.get("body").and_then(|b| b.as_str()).map(str::to_owned);
    PREFERRED
        .iter()
        .filter_map(|t| map.get(*t))
        .find_map(body_of)
        .or_else(|| map.values().find_map(body_of))
}

/// The form Twilio's Messages API takes for one request.
/// The form of a Messages request; `session_content` is the ContentSid made for
/// interactive content.
fn message_form(
    request: &OutboundRequest,
    session_content: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut form: Vec<(&'static str, String)> = Vec::new();
    let whatsapp = request.channel == Channel::WhatsApp;
    let address = |raw: &str| {
        let bare = raw.trim().trim_start_matches("whatsapp:");
        if whatsapp {
            format!("whatsapp:{bare}")
        } else {
            bare.to_owned()
        }
    };
    form.push(("To", address(request.to.as_str())));
    let from = request.from.trim();
    if is_messaging_service_sid(from) {
        form.push(("MessagingServiceSid", from.to_owned()));
    } else {
        form.push(("From", address(from)));
    }
    match &request.content {
        Content::Text { body, media_url } => {
            form.push(("Body", body.clone()));
            if let Some(media) = media_url {
                form.push(("MediaUrl", media.clone()));
            }
        }
        Content::Template {
            provider_id,
            positional,
            ..
        } => {
            form.push(("ContentSid", provider_id.clone()));
            if !positional.is_empty() {
                form.push(("ContentVariables", content_variables_json(positional)));
            }
        }
        Content::Interactive(_) => {
            form.push(("ContentSid", session_content.unwrap_or_default().to_owned()));
        }
    }
    if let Some(callback) = &request.status_callback {
        form.push(("StatusCallback", callback.as_str().to_owned()));
    }
    form
}

fn is_messaging_service_sid(s: &str) -> bool {
    s.len() == 34 && s.starts_with("MG") && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// `base` plus path segments, each percent-encoded as needed.
pub(crate) fn endpoint(base: &Url, segments: &[&str]) -> Result<Url, Rejected> {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    {
        let mut path = url.path_segments_mut().map_err(|_| Rejected {
            failure: ProviderFailure::Network,
            message: "the provider base URL cannot take a path".into(),
        })?;
        path.pop_if_empty();
        path.extend(segments);
    }
    Ok(url)
}

/// A reqwest failure as a [`Rejected`], with a message that carries neither
/// the URL nor any header. Whether the request may have reached the provider
/// decides what happens next, so the three are kept apart: no connection
/// (`Network`: it never left), no answer in time (`Timeout`) and a connection
/// that broke after the request was sent (`Broken`): the last two may have
/// been taken by the provider, and are never sent again.
pub(crate) fn transport_failure(provider: &str, error: reqwest::Error) -> Rejected {
    let (failure, what) = if error.is_connect() || error.is_builder() {
        (ProviderFailure::Network, "could not connect")
    } else if error.is_timeout() {
        (ProviderFailure::Timeout, "timed out")
    } else {
        (ProviderFailure::Broken, "request failed")
    };
    Rejected {
        failure,
        message: format!("{provider}: {what}: {}", describe_error(error)),
    }
}

/// The error and its causes, without the request URL.
pub(crate) fn describe_error(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let piece = cause.to_string();
        if !text.contains(&piece) {
            text.push_str(": ");
            text.push_str(&piece);
        }
        source = cause.source();
    }
    text
}

/// Read a Twilio response: 2xx JSON into `T`, errors into [`Rejected`].
async fn read_json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, Rejected> {
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| transport_failure("Twilio", e))?;
    if status.is_success() {
        return serde_json::from_slice(&bytes).map_err(|e| Rejected {
            failure: ProviderFailure::Http(status.as_u16()),
            message: format!("Twilio: unexpected response body (HTTP {status}): {e}"),
        });
    }
    Err(twilio_error(status.as_u16(), &bytes))
}

/// Twilio's error JSON as a [`Rejected`]; anything else is a bare HTTP failure.
fn twilio_error(status: u16, body: &[u8]) -> Rejected {
    match serde_json::from_slice::<TwilioError>(body) {
        Ok(TwilioError {
            code: Some(code),
            message,
            status: body_status,
        }) => Rejected {
            failure: ProviderFailure::Code {
                code,
                http_status: Some(body_status.unwrap_or(status)),
            },
            message: message
                .filter(|m| !m.trim().is_empty())
                .unwrap_or_else(|| format!("Twilio error {code}")),
        },
        _ => Rejected {
            failure: ProviderFailure::Http(status),
            message: format!("Twilio: HTTP {status}{}", snippet(body)),
        },
    }
}

/// A short, printable excerpt of a non-JSON error body.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let short: String = text.chars().take(200).collect();
    format!(": {short}")
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

fn integer_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::PhoneNumber;

    fn settings() -> TwilioSettings {
        TwilioSettings {
            account_sid: "ACtestaccount000000000000000000001".into(),
            auth_token: SecretString::from("super-secret-token".to_string()),
            whatsapp_number: None,
            sms_number: None,
            api_base: Url::parse("https://api.twilio.com").unwrap(),
            content_base: Url::parse("https://content.twilio.com").unwrap(),
        }
    }

    fn request(channel: Channel, content: Content) -> OutboundRequest {
        OutboundRequest {
            message_id: "msg-1".into(),
            channel,
            to: PhoneNumber::parse_e164("+14155550101").unwrap(),
            from: "+15005550006".into(),
            content,
            status_callback: Some(
                Url::parse("https://heimdall.example/webhooks/twilio/status?message_id=msg-1")
                    .unwrap(),
            ),
            reply_to: None,
        }
    }

    fn get<'a>(form: &'a [(&'static str, String)], key: &str) -> Vec<&'a str> {
        form.iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    #[test]
    fn whatsapp_text_form_has_prefixes_media_and_callback() {
        let r = request(
            Channel::WhatsApp,
            Content::Text {
                body: "hi".into(),
                media_url: Some("https://x.example/a.png".into()),
            },
        );
        let form = message_form(&r, None);
        assert_eq!(get(&form, "To"), ["whatsapp:+14155550101"]);
        assert_eq!(get(&form, "From"), ["whatsapp:+15005550006"]);
        assert_eq!(get(&form, "Body"), ["hi"]);
        assert_eq!(get(&form, "MediaUrl"), ["https://x.example/a.png"]);
        assert_eq!(
            get(&form, "StatusCallback"),
            ["https://heimdall.example/webhooks/twilio/status?message_id=msg-1"]
        );
        assert!(get(&form, "ContentSid").is_empty());
    }

    #[test]
    fn sms_form_is_plain_e164_even_when_from_has_prefix() {
        let mut r = request(
            Channel::Sms,
            Content::Text {
                body: "hi".into(),
                media_url: None,
            },
        );
        r.from = "whatsapp:+15005550006".into();
        r.status_callback = None;
        let form = message_form(&r, None);
        assert_eq!(get(&form, "To"), ["+14155550101"]);
        assert_eq!(get(&form, "From"), ["+15005550006"]);
        assert!(get(&form, "StatusCallback").is_empty());
        assert!(get(&form, "MediaUrl").is_empty());
    }

    #[test]
    fn template_form_maps_positional_variables() {
        let r = request(
            Channel::WhatsApp,
            Content::Template {
                name: "task_reminder".into(),
                provider_id: "HX0123".into(),
                language: "en".into(),
                positional: vec!["Call Bob".into(), "17:00".into()],
            },
        );
        let form = message_form(&r, None);
        assert_eq!(get(&form, "ContentSid"), ["HX0123"]);
        assert_eq!(
            get(&form, "ContentVariables"),
            [r#"{"1":"Call Bob","2":"17:00"}"#]
        );
        assert!(get(&form, "Body").is_empty());
    }

    #[test]
    fn messaging_service_sender_goes_as_messaging_service_sid() {
        let mut r = request(
            Channel::Sms,
            Content::Text {
                body: "x".into(),
                media_url: None,
            },
        );
        r.from = "MG0123456789abcdef0123456789abcdef".into();
        let form = message_form(&r, None);
        assert_eq!(
            get(&form, "MessagingServiceSid"),
            ["MG0123456789abcdef0123456789abcdef"]
        );
        assert!(get(&form, "From").is_empty());
    }

    #[test]
    fn error_json_becomes_code_and_other_bodies_http() {
        let r = twilio_error(
            400,
            br#"{"code": 21211, "message": "The 'To' number is not valid", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}"#,
        );
        assert_eq!(
            r.failure,
            ProviderFailure::Code {
                code: 21211,
                http_status: Some(400)
            }
        );
        assert_eq!(r.message, "The 'To' number is not valid");
        let r = twilio_error(502, b"<html>Bad gateway</html>");
        assert_eq!(r.failure, ProviderFailure::Http(502));
        assert!(r.message.contains("502"));
        let r = twilio_error(503, b"");
        assert_eq!(r.failure, ProviderFailure::Http(503));
    }

    #[test]
    fn message_json_parses_with_nulls_and_numbers() {
        let m: TwilioMessage = serde_json::from_str(
            r#"{"sid":"SM1","status":"queued","price":null,"price_unit":"USD","error_code":null,
                "num_segments":"1","num_media":0,"to":"whatsapp:+1","from":"whatsapp:+2","extra":true}"#,
        )
        .unwrap();
        assert_eq!(m.sid, "SM1");
        assert_eq!(m.price, None);
        assert_eq!(m.num_media.as_deref(), Some("0"));
        let m: TwilioMessage = serde_json::from_str(
            r#"{"sid":"SM2","status":"undelivered","error_code":"63016","price":-0.005}"#,
        )
        .unwrap();
        assert_eq!(m.error_code, Some(63016));
        assert_eq!(m.price.as_deref(), Some("-0.005"));
    }

    #[test]
    fn template_body_prefers_text_then_any_body() {
        let t = serde_json::json!({"twilio/quick-reply": {"body": "qr"}, "twilio/text": {"body": "text"}});
        assert_eq!(template_body(&t).as_deref(), Some("text"));
        let t = serde_json::json!({"twilio/location": {"latitude": 1}, "custom/x": {"body": "c"}});
        assert_eq!(template_body(&t).as_deref(), Some("c"));
        assert_eq!(template_body(&serde_json::json!({})), None);
    }

    #[test]
    fn endpoint_keeps_base_path_and_encodes_segments() {
        let base = Url::parse("http://127.0.0.1:9/prefix/").unwrap();
        let u = endpoint(&base, &["v1", "Content", "HX 1/2"]).unwrap();
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:9/prefix/v1/Content/HX%201%2F2"
        );
        let base = Url::parse("https://api.twilio.com").unwrap();
        let u = endpoint(&base, &["2010-04-01", "Accounts", "AC1", "Messages.json"]).unwrap();
        assert_eq!(
            u.as_str(),
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json"
        );
    }

    #[test]
    fn debug_shows_sid_not_token() {
        let c = TwilioClient::new(&settings(), reqwest::Client::new());
        let dbg = format!("{c:?}");
        assert!(dbg.contains("ACtestaccount000000000000000000001"));
        assert!(!dbg.contains("super-secret-token"));
    }

    #[test]
    fn foreign_next_page_is_refused() {
        let c = TwilioClient::new(&settings(), reqwest::Client::new());
        assert!(c
            .same_origin_page("https://content.twilio.com/v1/Content?Page=1")
            .is_ok());
        assert!(c.same_origin_page("/v1/Content?Page=2").is_ok());
        let err = c
            .same_origin_page("https://evil.example/v1/Content?Page=1")
            .unwrap_err();
        assert!(err.message.contains("another host"));
    }
}
