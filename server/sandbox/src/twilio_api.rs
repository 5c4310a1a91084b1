//! Twilio's Messages API (2010-04-01): create, fetch and list Message
//! resources, with Twilio's authentication, validation errors, test-number
//! errors and fault injection.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::Utc;
use heimdall_domain::PhoneNumber;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::magic::{self, Behaviour, FAULT_REPEAT};
use crate::state::{SandboxMessage, Shared, StatusEvent};
use crate::walk;

pub(crate) const API_VERSION: &str = "2010-04-01";

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/2010-04-01/Accounts/{account_sid}/Messages.json",
        web::post().to(create_message),
    )
    .route(
        "/2010-04-01/Accounts/{account_sid}/Messages.json",
        web::get().to(list_messages),
    )
    .route(
        "/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json",
        web::get().to(fetch_message),
    );
}

/// Twilio's REST error body with its HTTP status.
pub(crate) fn twilio_error(status: u16, code: i64, message: impl Into<String>) -> HttpResponse {
    let status_code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    HttpResponse::build(status_code).json(json!({
        "code": code,
        "message": message.into(),
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    }))
}

fn not_found(path: &str) -> HttpResponse {
    twilio_error(
        404,
        20404,
        format!("The requested resource {path} was not found"),
    )
}

/// HTTP Basic with the account SID and auth token; 401/20003 otherwise.
pub(crate) fn authenticate(req: &HttpRequest, shared: &Shared) -> Result<(), HttpResponse> {
    let credentials = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then_some(rest.trim())
        })
        .and_then(|b64| BASE64.decode(b64).ok())
        .and_then(|raw| String::from_utf8(raw).ok());
    let ok = credentials
        .as_deref()
        .and_then(|c| c.split_once(':'))
        .is_some_and(|(user, pass)| {
            user == shared.config.account_sid && pass == shared.config.auth_token.expose_secret()
        });
    if ok {
        Ok(())
    } else {
        let mut response = twilio_error(401, 20003, "Authenticate");
        response.headers_mut().insert(
            actix_web::http::header::WWW_AUTHENTICATE,
            actix_web::http::header::HeaderValue::from_static("Basic realm=\"Twilio API\""),
        );
        Err(response)
    }
}

/// Authentication plus the account in the path.
fn authorize(req: &HttpRequest, shared: &Shared, account_sid: &str) -> Result<(), HttpResponse> {
    authenticate(req, shared)?;
    if account_sid != shared.config.account_sid {
        return Err(not_found(req.path()));
    }
    Ok(())
}

/// Parse a form body, keeping repeated keys in order.
pub(crate) fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn first<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// The number behind an address, and whether it was a WhatsApp address.
fn split_address(address: &str) -> (&str, bool) {
    match address.strip_prefix("whatsapp:") {
        Some(rest) => (rest.trim(), true),
        None => (address.trim(), false),
    }
}

fn is_alphanumeric_sender(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 11
        && s.chars().any(|c| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ')
}

/// SMS segments as Twilio bills them (GSM-7 or UCS-2, counted by Heimdall's own counter,
/// which follows Twilio's segment calculator).
pub(crate) fn sms_segments(body: &str) -> u32 {
    let segments = heimdall_domain::channels::formatting::sms_segments(body).segments;
    u32::try_from(segments).unwrap_or(u32::MAX)
}

fn message_uri(account_sid: &str, sid: &str) -> String {
    format!("/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json")
}

/// A Message resource as Twilio returns it.
pub(crate) fn message_json(m: &SandboxMessage, account_sid: &str) -> Value {
    let uri = message_uri(account_sid, &m.sid);
    let base = uri.trim_end_matches(".json");
    json!({
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "body": m.body.clone().unwrap_or_default(),
        "date_created": m.date_created.to_rfc2822(),
        "date_sent": m.date_sent.map(|d| d.to_rfc2822()),
        "date_updated": m.date_updated.to_rfc2822(),
        "direction": m.direction,
        "error_code": m.error_code,
        "error_message": m.error_message,
        "from": m.from,
        "messaging_service_sid": m.messaging_service_sid,
        "num_media": m.media_urls.len().to_string(),
        "num_segments": m.num_segments.to_string(),
        "price": m.price,
        "price_unit": "USD",
        "sid": m.sid,
        "status": m.status,
        "subresource_uris": {
            "media": format!("{base}/Media.json"),
            "feedback": format!("{base}/Feedback.json"),
        },
        "to": m.to,
        "uri": uri,
    })
}

pub(crate) fn new_sid(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

fn substitute(template: &str, to: &str, from: &str) -> String {
    template.replace("{to}", to).replace("{from}", from)
}

async fn create_message(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    // When the request arrived: a slow answer (the latency fault) is slow on the way
    // back, as a provider's would be; the message was taken when it came.
    let received = Utc::now();
    let shared = shared.get_ref().clone();
    if let Err(response) = authorize(&req, &shared, &path) {
        return response;
    }
    let form = parse_form(&body);
    let Some(to_raw) = first(&form, "To") else {
        return twilio_error(400, 21604, "A 'To' phone number is required.");
    };
    let from_raw = first(&form, "From");
    let service = first(&form, "MessagingServiceSid");
    if from_raw.is_none() && service.is_none() {
        return twilio_error(400, 21603, "A 'From' phone number is required.");
    }
    let body_text = first(&form, "Body");
    let content_sid = first(&form, "ContentSid");
    let media_urls: Vec<String> = form
        .iter()
        .filter(|(k, v)| k == "MediaUrl" && !v.trim().is_empty())
        .map(|(_, v)| v.trim().to_string())
        .collect();
    if body_text.is_none() && content_sid.is_none() && media_urls.is_empty() {
        return twilio_error(400, 21602, "Message body is required.");
    }
    if body_text.is_some_and(|b| b.chars().count() > 1600) {
        return twilio_error(
            400,
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        );
    }

    let (to_bare, to_whatsapp) = split_address(to_raw);
    let from_parts = from_raw.map(split_address);
    if let Some((_, from_whatsapp)) = from_parts {
        if from_whatsapp != to_whatsapp {
            return twilio_error(
                400,
                21910,
                "Invalid From and To pair. From and To should be of the same channel",
            );
        }
    }
    let channel = if to_whatsapp { "whatsapp" } else { "sms" };
    let prefix = if to_whatsapp { "whatsapp:" } else { "" };

    // The sender: Twilio's test senders first, then validity.
    let from = match from_parts {
        None => None,
        Some((bare, _)) => {
            if let Some((code, message)) = magic::sender(bare) {
                return twilio_error(400, code, substitute(message, to_raw, bare));
            }
            if !to_whatsapp && is_alphanumeric_sender(bare) {
                Some(bare.to_string())
            } else {
                match PhoneNumber::parse(bare, phonenumber::country::Id::US) {
                    Ok(n) => Some(format!("{prefix}{n}")),
                    Err(_) => {
                        return twilio_error(
                            400,
                            21212,
                            format!("The 'From' number {bare} is not a valid phone number, shortcode, or alphanumeric sender ID."),
                        )
                    }
                }
            }
        }
    };

    // The recipient: magic numbers first (they are valid numbers too).
    let to_number = match PhoneNumber::parse(to_bare, phonenumber::country::Id::US) {
        Ok(n) => n,
        Err(_) => {
            return twilio_error(
                400,
                21211,
                format!("The 'To' number {to_raw} is not a valid phone number."),
            )
        }
    };
    let behaviour = magic::recipient(to_number.as_str());
    if let Some(Behaviour::Reject {
        code,
        http_status,
        message,
    }) = behaviour
    {
        return twilio_error(
            http_status,
            code,
            substitute(message, to_raw, from_raw.unwrap_or("")),
        );
    }

    if let Some(callback) = first(&form, "StatusCallback") {
        let ok = url::Url::parse(callback)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !ok {
            return twilio_error(
                400,
                21609,
                format!("Invalid StatusCallback url: {callback}"),
            );
        }
    }
    for media in &media_urls {
        if url::Url::parse(media).map_or(true, |u| !matches!(u.scheme(), "http" | "https")) {
            return twilio_error(400, 21620, format!("Invalid media URL(s): {media}"));
        }
    }

    // Template: it must exist; the variables must be a JSON object of strings.
    let mut variables = BTreeMap::new();
    if let Some(raw) = first(&form, "ContentVariables") {
        match serde_json::from_str::<serde_json::Map<String, Value>>(raw) {
            Ok(map) => {
                for (k, v) in map {
                    let value = match v {
                        Value::String(s) => s,
                        Value::Number(n) => n.to_string(),
                        _ => {
                            return twilio_error(
                                400,
                                21656,
                                "The ContentVariables Parameter is invalid.",
                            )
                        }
                    };
                    variables.insert(k, value);
                }
            }
            Err(_) => {
                return twilio_error(400, 21656, "The ContentVariables Parameter is invalid.")
            }
        }
    }
    let (rendered, template_name) = match content_sid {
        None => (body_text.map(str::to_string), None),
        Some(sid) => {
            let inner = shared.lock();
            match inner.templates.get(sid) {
                Some(t) => (Some(t.render(&variables)), Some(t.friendly_name.clone())),
                None => {
                    return twilio_error(400, 21655, format!("The Content SID {sid} is invalid."))
                }
            }
        }
    };

    // Fault injection.
    match behaviour {
        Some(Behaviour::Latency(delay)) => tokio::time::sleep(delay).await,
        Some(Behaviour::Throttled) | Some(Behaviour::ServerError) => {
            let seen = {
                let mut inner = shared.lock();
                let n = inner
                    .faults
                    .entry(format!("twilio:{}", to_number.as_str()))
                    .or_insert(0);
                *n += 1;
                *n
            };
            if seen <= FAULT_REPEAT {
                return if behaviour == Some(Behaviour::Throttled) {
                    twilio_error(429, 20429, "Too Many Requests")
                } else {
                    twilio_error(500, 20500, "An internal server error has occurred")
                };
            }
        }
        _ => {}
    }

    let now = Utc::now();
    let status = if service.is_some() {
        "accepted"
    } else {
        "queued"
    };
    let num_segments = if to_whatsapp {
        1
    } else {
        rendered.as_deref().map(sms_segments).unwrap_or(1)
    };
    let message = SandboxMessage {
        sid: new_sid("SM"),
        provider: "twilio".into(),
        direction: "outbound-api".into(),
        channel: channel.into(),
        to: format!("{prefix}{to_number}"),
        from,
        messaging_service_sid: service.map(str::to_string),
        body: rendered,
        content_sid: content_sid.map(str::to_string),
        template_name,
        language: None,
        variables,
        media_urls,
        status_callback: first(&form, "StatusCallback").map(str::to_string),
        reply_to: None,
        request: None,
        status: status.into(),
        error_code: None,
        error_message: None,
        price: None,
        num_segments,
        history: vec![StatusEvent {
            status: status.into(),
            at: now,
        }],
        callbacks: Vec::new(),
        date_created: received,
        date_updated: now,
        date_sent: None,
    };
    let json = message_json(&message, &shared.config.account_sid);
    let sid = message.sid.clone();
    shared.lock().insert(message);
    tracing::info!(sid = %sid, channel, "sandbox accepted a Twilio message");
    walk::spawn_twilio(
        shared.clone(),
        sid,
        walk::twilio_plan(to_whatsapp, behaviour, service.is_some()),
    );
    if behaviour == Some(Behaviour::ResetAfterAccept) {
        // The head goes out, then the body fails: actix drops the connection,
        // and the client is left with a broken answer to a request Twilio took.
        let broken = futures::stream::once(async {
            Err::<web::Bytes, std::io::Error>(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "sandbox: the connection breaks after the message was accepted",
            ))
        });
        return HttpResponse::Created()
            .content_type("application/json")
            .streaming(broken);
    }
    HttpResponse::Created().json(json)
}

async fn fetch_message(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let (account_sid, sid) = path.into_inner();
    if let Err(response) = authorize(&req, &shared, &account_sid) {
        return response;
    }
    let inner = shared.lock();
    match inner.get(&sid).filter(|m| m.provider == "twilio") {
        Some(m) => HttpResponse::Ok().json(message_json(m, &shared.config.account_sid)),
        None => not_found(req.path()),
    }
}

#[derive(Debug, serde::Deserialize)]
struct ListQuery {
    #[serde(rename = "PageSize")]
    page_size: Option<usize>,
    #[serde(rename = "Page")]
    page: Option<usize>,
    #[serde(rename = "To")]
    to: Option<String>,
    #[serde(rename = "From")]
    from: Option<String>,
}

async fn list_messages(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    if let Err(response) = authorize(&req, &shared, &path) {
        return response;
    }
    let query = match web::Query::<ListQuery>::from_query(req.query_string()) {
        Ok(q) => q.into_inner(),
        Err(_) => return twilio_error(400, 20001, "Invalid query parameters"),
    };
    let page_size = query.page_size.unwrap_or(50).clamp(1, 1000);
    let page = query.page.unwrap_or(0);
    let account_sid = shared.config.account_sid.clone();
    let all: Vec<Value> = {
        let inner = shared.lock();
        inner
            .messages
            .iter()
            .rev()
            .filter(|m| m.provider == "twilio")
            .filter(|m| query.to.as_deref().is_none_or(|t| m.to == t))
            .filter(|m| {
                query
                    .from
                    .as_deref()
                    .is_none_or(|f| m.from.as_deref() == Some(f))
            })
            .map(|m| message_json(m, &account_sid))
            .collect()
    };
    let start = page.saturating_mul(page_size);
    let items: Vec<Value> = all.iter().skip(start).take(page_size).cloned().collect();
    let base = format!("/{API_VERSION}/Accounts/{account_sid}/Messages.json");
    let page_uri = |p: usize| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        if let Some(t) = &query.to {
            q.append_pair("To", t);
        }
        if let Some(f) = &query.from {
            q.append_pair("From", f);
        }
        q.append_pair("PageSize", &page_size.to_string());
        q.append_pair("Page", &p.to_string());
        format!("{base}?{}", q.finish())
    };
    let has_next = start + items.len() < all.len();
    let end = if items.is_empty() {
        start
    } else {
        start + items.len() - 1
    };
    HttpResponse::Ok().json(json!({
        "messages": items,
        "end": end,
        "first_page_uri": page_uri(0),
        "next_page_uri": has_next.then(|| page_uri(page + 1)),
        "page": page,
        "page_size": page_size,
        "previous_page_uri": (page > 0).then(|| page_uri(page - 1)),
        "start": start,
        "uri": page_uri(page),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments() {
        assert_eq!(sms_segments("hello"), 1);
        assert_eq!(sms_segments(&"a".repeat(160)), 1);
        assert_eq!(sms_segments(&"a".repeat(161)), 2);
        // é is in the GSM alphabet; ж is not.
        assert_eq!(sms_segments(&"é".repeat(160)), 1);
        assert_eq!(sms_segments(&"ж".repeat(70)), 1);
        assert_eq!(sms_segments(&"ж".repeat(71)), 2);
    }

    #[test]
    fn alphanumeric_senders() {
        assert!(is_alphanumeric_sender("Heimdall"));
        assert!(!is_alphanumeric_sender("+15005550006"));
        assert!(!is_alphanumeric_sender("WayTooLongSender"));
    }
}
