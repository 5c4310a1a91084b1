//! Messages: the form a send takes, sending it, and fetching a Message
//! resource back for reconciliation.

use super::*;

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

impl TwilioClient {
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
}

impl MessageProvider for TwilioClient {
    fn send<'a>(
        &'a self,
        request: &'a OutboundRequest,
    ) -> BoxFuture<'a, Result<Accepted, Rejected>> {
        Box::pin(self.send_message(request))
    }
}

/// The form Twilio's Messages API takes for one request.
/// The form of a Messages request; `session_content` is the ContentSid made for
/// interactive content.
pub(super) fn message_form(
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
