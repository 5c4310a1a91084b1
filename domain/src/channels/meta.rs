//! Meta's WhatsApp Cloud API: text, media, templates, interactive messages
//! and read receipts, sent to `POST {graph_base}/{version}/{phone_number_id}/messages`.
//!
//! The access token goes only in the `Authorization` header. It is held in a
//! [`SecretString`], never logged, never part of an error and never shown by
//! `Debug`.

use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};
use url::Url;

use super::twilio::{endpoint, snippet, transport_failure};
use super::{Accepted, Content, MessageProvider, OutboundRequest, Rejected};
use crate::channel::Channel;
use crate::channels::formatting::{ListMessage, QuickReplies};
use crate::compliance::provider_errors::ProviderFailure;
use crate::phone::PhoneNumber;
use crate::settings::MetaSettings;

pub mod templates;

/// An interactive WhatsApp message (only inside the customer-service window).
#[derive(Debug, Clone, Copy)]
pub enum Interactive<'a> {
    /// Up to three quick-reply buttons.
    Buttons(&'a QuickReplies),
    /// A button that opens a list of rows.
    List(&'a ListMessage),
}

impl<'a> From<&'a crate::channels::interactive::Interactive> for Interactive<'a> {
    fn from(content: &'a crate::channels::interactive::Interactive) -> Self {
        match content {
            crate::channels::interactive::Interactive::Buttons(q) => Interactive::Buttons(q),
            crate::channels::interactive::Interactive::List(l) => Interactive::List(l),
        }
    }
}

/// A Cloud API client for one business phone number.
#[derive(Clone)]
pub struct MetaClient {
    http: reqwest::Client,
    access_token: SecretString,
    phone_number_id: String,
    graph_base: Url,
    graph_version: String,
    /// `WHATSAPP_BUSINESS_ACCOUNT_ID`: the account whose templates these are.
    business_account_id: Option<String>,
}

impl std::fmt::Debug for MetaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaClient")
            .field("phone_number_id", &self.phone_number_id)
            .field("access_token", &"[redacted]")
            .field("graph_base", &self.graph_base.as_str())
            .field("graph_version", &self.graph_version)
            .finish()
    }
}

#[derive(Debug, Deserialize)]
struct SendResponse {
    #[serde(default)]
    messages: Vec<SentMessage>,
}

#[derive(Debug, Deserialize)]
struct SentMessage {
    id: String,
    #[serde(default)]
    message_status: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ErrorEnvelope {
    error: GraphError,
}

#[derive(Debug, Deserialize)]
struct GraphError {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    error_subcode: Option<i64>,
    #[serde(default)]
    error_data: Option<ErrorData>,
    #[serde(default)]
    fbtrace_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ErrorData {
    #[serde(default)]
    details: Option<String>,
}

impl MetaClient {
    pub fn new(settings: &MetaSettings, http: reqwest::Client) -> Self {
        Self {
            http,
            access_token: settings.access_token.clone(),
            phone_number_id: settings.phone_number_id.clone(),
            graph_base: settings.graph_base.clone(),
            graph_version: settings.graph_version.clone(),
            business_account_id: settings.business_account_id.clone(),
        }
    }

    pub fn phone_number_id(&self) -> &str {
        &self.phone_number_id
    }

    /// Send text, media or a template.
    pub async fn send_message(&self, request: &OutboundRequest) -> Result<Accepted, Rejected> {
        if request.channel != Channel::WhatsApp {
            return Err(Rejected {
                failure: ProviderFailure::Code {
                    code: 100,
                    http_status: None,
                },
                message: format!(
                    "Meta's Cloud API sends WhatsApp only, not {}",
                    request.channel
                ),
            });
        }
        let body = message_body(request);
        self.post_message(&body).await
    }

    /// Send quick-reply buttons or a list.
    pub async fn send_interactive(
        &self,
        to: &PhoneNumber,
        message: Interactive<'_>,
        reply_to: Option<&str>,
    ) -> Result<Accepted, Rejected> {
        let body = interactive_body(to, message, reply_to);
        self.post_message(&body).await
    }

    /// Mark an inbound message read (blue ticks).
    pub async fn mark_as_read(&self, wamid: &str) -> Result<(), Rejected> {
        let body = json!({
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": wamid,
        });
        let (status, bytes) = self.post(&body).await?;
        if status.is_success() {
            return Ok(());
        }
        Err(graph_error(status.as_u16(), &bytes))
    }

    async fn post_message(&self, body: &Value) -> Result<Accepted, Rejected> {
        let (status, bytes) = self.post(body).await?;
        if !status.is_success() {
            return Err(graph_error(status.as_u16(), &bytes));
        }
        let parsed: SendResponse = serde_json::from_slice(&bytes).map_err(|e| Rejected {
            failure: ProviderFailure::Http(status.as_u16()),
            message: format!("Meta: unexpected response body (HTTP {status}): {e}"),
        })?;
        let first = parsed.messages.into_iter().next().ok_or_else(|| Rejected {
            failure: ProviderFailure::Http(status.as_u16()),
            message: format!("Meta: response (HTTP {status}) names no message id"),
        })?;
        Ok(Accepted {
            provider: "meta",
            sid: first.id,
            status: first.message_status.unwrap_or_else(|| "accepted".into()),
            price: None,
            price_unit: None,
        })
    }

    async fn post(&self, body: &Value) -> Result<(reqwest::StatusCode, Vec<u8>), Rejected> {
        let url = endpoint(
            &self.graph_base,
            &[&self.graph_version, &self.phone_number_id, "messages"],
        )?;
        self.exchange(self.http.post(url).json(body)).await
    }

    /// Send a Graph API request with the access token: its status and body.
    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), Rejected> {
        let response = request
            .bearer_auth(self.access_token.expose_secret())
            .send()
            .await
            .map_err(|e| transport_failure("Meta", e))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_failure("Meta", e))?;
        Ok((status, bytes.to_vec()))
    }
}

impl MessageProvider for MetaClient {
    fn send<'a>(
        &'a self,
        request: &'a OutboundRequest,
    ) -> BoxFuture<'a, Result<Accepted, Rejected>> {
        Box::pin(self.send_message(request))
    }
}

/// Meta's `to`: the international number as digits, without `+`.
fn wa_digits(to: &PhoneNumber) -> String {
    to.as_str().trim_start_matches('+').to_owned()
}

fn base_body(to: &PhoneNumber, reply_to: Option<&str>) -> serde_json::Map<String, Value> {
    let mut body = serde_json::Map::new();
    body.insert("messaging_product".into(), json!("whatsapp"));
    body.insert("recipient_type".into(), json!("individual"));
    body.insert("to".into(), json!(wa_digits(to)));
    if let Some(id) = reply_to.map(str::trim).filter(|s| !s.is_empty()) {
        body.insert("context".into(), json!({ "message_id": id }));
    }
    body
}

/// The JSON for text, media, a template or an interactive message.
fn message_body(request: &OutboundRequest) -> Value {
    let mut body = base_body(&request.to, request.reply_to.as_deref());
    match &request.content {
        Content::Interactive(content) => {
            body.insert("type".into(), json!("interactive"));
            body.insert("interactive".into(), interactive_object(content.into()));
        }
        Content::Text {
            body: text,
            media_url: None,
        } => {
            body.insert("type".into(), json!("text"));
            body.insert("text".into(), json!({ "body": text, "preview_url": false }));
        }
        Content::Text {
            body: text,
            media_url: Some(link),
        } => {
            // Image, video, audio or document, as the link says; the text as its caption
            // (audio takes none: the send path refuses audio with text for Meta).
            let kind = super::MediaKind::of_url(link);
            body.insert("type".into(), json!(kind.as_str()));
            let mut media = serde_json::Map::new();
            media.insert("link".into(), json!(link));
            if kind.takes_caption() && !text.trim().is_empty() {
                media.insert("caption".into(), json!(text));
            }
            if kind == super::MediaKind::Document {
                if let Some(name) = super::MediaKind::file_name(link) {
                    media.insert("filename".into(), json!(name));
                }
            }
            body.insert(kind.as_str().into(), Value::Object(media));
        }
        Content::Template {
            provider_id,
            language,
            positional,
            ..
        } => {
            body.insert("type".into(), json!("template"));
            let mut template = serde_json::Map::new();
            template.insert("name".into(), json!(provider_id));
            template.insert("language".into(), json!({ "code": language }));
            if !positional.is_empty() {
                let parameters: Vec<Value> = positional
                    .iter()
                    .map(|v| json!({ "type": "text", "text": v }))
                    .collect();
                template.insert(
                    "components".into(),
                    json!([{ "type": "body", "parameters": parameters }]),
                );
            }
            body.insert("template".into(), Value::Object(template));
        }
    }
    Value::Object(body)
}

/// The JSON for an interactive message.
fn interactive_body(to: &PhoneNumber, message: Interactive<'_>, reply_to: Option<&str>) -> Value {
    let mut body = base_body(to, reply_to);
    body.insert("type".into(), json!("interactive"));
    body.insert("interactive".into(), interactive_object(message));
    Value::Object(body)
}

/// Meta's `interactive` object.
fn interactive_object(message: Interactive<'_>) -> Value {
    match message {
        Interactive::Buttons(q) => {
            let buttons: Vec<Value> = q
                .buttons()
                .iter()
                .map(|b| json!({ "type": "reply", "reply": { "id": b.id(), "title": b.title() } }))
                .collect();
            json!({
                "type": "button",
                "body": { "text": q.body() },
                "action": { "buttons": buttons },
            })
        }
        Interactive::List(l) => {
            let sections: Vec<Value> = l
                .sections()
                .iter()
                .map(|s| {
                    let rows: Vec<Value> = s
                        .rows()
                        .iter()
                        .map(|r| {
                            let mut row = serde_json::Map::new();
                            row.insert("id".into(), json!(r.id()));
                            row.insert("title".into(), json!(r.title()));
                            if let Some(d) = r.description() {
                                row.insert("description".into(), json!(d));
                            }
                            Value::Object(row)
                        })
                        .collect();
                    let mut section = serde_json::Map::new();
                    if let Some(t) = s.title() {
                        section.insert("title".into(), json!(t));
                    }
                    section.insert("rows".into(), Value::Array(rows));
                    Value::Object(section)
                })
                .collect();
            json!({
                "type": "list",
                "body": { "text": l.body() },
                "action": { "button": l.button_text(), "sections": sections },
            })
        }
    }
}

/// A Graph API error body as a [`Rejected`]; anything else is a bare HTTP failure.
fn graph_error(status: u16, body: &[u8]) -> Rejected {
    match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(ErrorEnvelope {
            error:
                GraphError {
                    code: Some(code),
                    message,
                    error_subcode,
                    error_data,
                    fbtrace_id,
                },
        }) => {
            let mut text = message
                .filter(|m| !m.trim().is_empty())
                .unwrap_or_else(|| format!("Meta error {code}"));
            if let Some(details) = error_data
                .and_then(|d| d.details)
                .filter(|d| !d.trim().is_empty())
            {
                text.push_str(": ");
                text.push_str(&details);
            }
            if let Some(sub) = error_subcode {
                text.push_str(&format!(" (subcode {sub})"));
            }
            if let Some(trace) = fbtrace_id.filter(|t| !t.is_empty()) {
                text.push_str(&format!(" [fbtrace_id {trace}]"));
            }
            Rejected {
                failure: ProviderFailure::Code {
                    code,
                    http_status: Some(status),
                },
                message: text,
            }
        }
        _ => Rejected {
            failure: ProviderFailure::Http(status),
            message: format!("Meta: HTTP {status}{}", snippet(body)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::formatting::{ListRow, ListSection};

    fn to() -> PhoneNumber {
        PhoneNumber::parse_e164("+14155550101").unwrap()
    }

    fn request(content: Content, reply_to: Option<&str>) -> OutboundRequest {
        OutboundRequest {
            message_id: "m1".into(),
            channel: Channel::WhatsApp,
            to: to(),
            from: "100000000000001".into(),
            content,
            status_callback: None,
            reply_to: reply_to.map(str::to_owned),
        }
    }

    #[test]
    fn text_body_shape() {
        let b = message_body(&request(
            Content::Text {
                body: "hello".into(),
                media_url: None,
            },
            Some("wamid.ABC"),
        ));
        assert_eq!(
            b,
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "14155550101",
                "type": "text",
                "text": {"body": "hello", "preview_url": false},
                "context": {"message_id": "wamid.ABC"}
            })
        );
    }

    #[test]
    fn media_becomes_image_with_caption() {
        let b = message_body(&request(
            Content::Text {
                body: "look".into(),
                media_url: Some("https://x.example/p.jpg".into()),
            },
            None,
        ));
        assert_eq!(b["type"], "image");
        assert_eq!(b["image"]["link"], "https://x.example/p.jpg");
        assert_eq!(b["image"]["caption"], "look");
        assert!(b.get("context").is_none());
    }

    #[test]
    fn media_goes_as_the_kind_its_link_names() {
        let media = |link: &str, text: &str| {
            message_body(&request(
                Content::Text {
                    body: text.into(),
                    media_url: Some(link.into()),
                },
                None,
            ))
        };
        let d = media(
            "https://x.example/files/Invoice%2012.pdf?sig=abc",
            "your invoice",
        );
        assert_eq!(d["type"], "document");
        assert_eq!(
            d["document"]["link"],
            "https://x.example/files/Invoice%2012.pdf?sig=abc"
        );
        assert_eq!(d["document"]["caption"], "your invoice");
        assert_eq!(d["document"]["filename"], "Invoice%2012.pdf");
        let v = media("https://x.example/clip.MP4", "watch");
        assert_eq!(v["type"], "video");
        assert_eq!(v["video"]["caption"], "watch");
        let a = media("https://x.example/note.ogg", "");
        assert_eq!(a["type"], "audio");
        assert!(a["audio"].get("caption").is_none());
        assert_eq!(media("https://x.example/p.webp", "")["type"], "image");
        // A link that names no type goes as a document (any file may be one).
        assert_eq!(
            media("https://x.example/download?id=7", "")["type"],
            "document"
        );
    }

    #[test]
    fn template_components_only_with_variables() {
        let b = message_body(&request(
            Content::Template {
                name: "task_reminder".into(),
                provider_id: "task_reminder".into(),
                language: "en_US".into(),
                positional: vec!["Call Bob".into(), "17:00".into()],
            },
            None,
        ));
        assert_eq!(b["template"]["name"], "task_reminder");
        assert_eq!(b["template"]["language"]["code"], "en_US");
        assert_eq!(
            b["template"]["components"],
            json!([{"type": "body", "parameters": [
                {"type": "text", "text": "Call Bob"}, {"type": "text", "text": "17:00"}]}])
        );
        let b = message_body(&request(
            Content::Template {
                name: "hello".into(),
                provider_id: "hello_world".into(),
                language: "en".into(),
                positional: vec![],
            },
            None,
        ));
        assert!(b["template"].get("components").is_none());
    }

    #[test]
    fn interactive_shapes() {
        let q = QuickReplies::new(
            "Done?",
            vec![("yes".into(), "Yes".into()), ("no".into(), "No".into())],
        )
        .unwrap();
        let b = interactive_body(&to(), Interactive::Buttons(&q), None);
        assert_eq!(b["type"], "interactive");
        assert_eq!(b["interactive"]["type"], "button");
        assert_eq!(b["interactive"]["body"]["text"], "Done?");
        assert_eq!(
            b["interactive"]["action"]["buttons"][1],
            json!({"type": "reply", "reply": {"id": "no", "title": "No"}})
        );

        let l = ListMessage::new(
            "Pick one",
            "Options",
            vec![ListSection::new(
                Some("Tasks".into()),
                vec![
                    ListRow::new("t1", "First", Some("the first".into())),
                    ListRow::new("t2", "Second", None),
                ],
            )],
        )
        .unwrap();
        let b = interactive_body(&to(), Interactive::List(&l), Some("wamid.X"));
        assert_eq!(b["interactive"]["type"], "list");
        assert_eq!(b["interactive"]["action"]["button"], "Options");
        assert_eq!(
            b["interactive"]["action"]["sections"][0],
            json!({"title": "Tasks", "rows": [
                {"id": "t1", "title": "First", "description": "the first"},
                {"id": "t2", "title": "Second"}]})
        );
        assert_eq!(b["context"]["message_id"], "wamid.X");
    }

    #[test]
    fn graph_errors() {
        let r = graph_error(
            400,
            br#"{"error":{"message":"(#131009) Parameter value is not valid","type":"OAuthException","code":131009,
                "error_data":{"messaging_product":"whatsapp","details":"Recipient is not valid"},"fbtrace_id":"Abc"}}"#,
        );
        assert_eq!(
            r.failure,
            ProviderFailure::Code {
                code: 131009,
                http_status: Some(400)
            }
        );
        assert!(r.message.contains("Parameter value is not valid"));
        assert!(r.message.contains("Recipient is not valid"));
        let r = graph_error(500, b"oops");
        assert_eq!(r.failure, ProviderFailure::Http(500));
    }

    #[test]
    fn debug_hides_token() {
        let settings = MetaSettings {
            access_token: SecretString::from("EAAG-very-secret".to_string()),
            phone_number_id: "100000000000001".into(),
            app_secret: SecretString::from("app-secret".to_string()),
            verify_token: SecretString::from("verify".to_string()),
            graph_base: Url::parse("https://graph.facebook.com").unwrap(),
            graph_version: "v21.0".into(),
            business_account_id: None,
        };
        let c = MetaClient::new(&settings, reqwest::Client::new());
        let dbg = format!("{c:?}");
        assert!(dbg.contains("100000000000001"));
        assert!(!dbg.contains("EAAG-very-secret"));
        assert!(!dbg.contains("app-secret"));
    }
}
