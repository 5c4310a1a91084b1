//! Meta's Graph API for the WhatsApp Cloud API:
//! `POST /{version}/{phone_number_id}/messages` (text, media, templates,
//! interactive messages, read receipts), with Graph-style errors.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::Utc;
use heimdall_domain::PhoneNumber;
use rand::RngCore;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::magic::{self, Behaviour, FAULT_REPEAT};
use crate::state::{SandboxMessage, Shared, StatusEvent};
use crate::walk;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/{version}/{phone_number_id}/messages",
        web::post().to(send),
    );
}

fn fbtrace_id() -> String {
    let mut bytes = [0u8; 9];
    rand::thread_rng().fill_bytes(&mut bytes);
    BASE64.encode(bytes).replace(['+', '/'], "A")
}

/// A Graph API error response.
pub(crate) fn graph_error(
    status: u16,
    code: i64,
    kind: &str,
    message: &str,
    details: Option<String>,
) -> HttpResponse {
    let mut error = json!({
        "message": message,
        "type": kind,
        "code": code,
        "fbtrace_id": fbtrace_id(),
    });
    if let Some(details) = details {
        error["error_data"] = json!({"messaging_product": "whatsapp", "details": details});
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    HttpResponse::build(status).json(json!({ "error": error }))
}

fn param_error(message: &str) -> HttpResponse {
    graph_error(400, 100, "OAuthException", message, None)
}

fn missing(details: impl Into<String>) -> HttpResponse {
    graph_error(
        400,
        131008,
        "OAuthException",
        "(#131008) Required parameter is missing",
        Some(details.into()),
    )
}

fn invalid(details: impl Into<String>) -> HttpResponse {
    graph_error(
        400,
        131009,
        "OAuthException",
        "(#131009) Parameter value is not valid",
        Some(details.into()),
    )
}

/// A new message id in Meta's shape: `wamid.` and base64.
pub(crate) fn new_wamid(digits: &str) -> String {
    let mut raw = vec![0x18, u8::try_from(digits.len()).unwrap_or(0)];
    raw.extend_from_slice(digits.as_bytes());
    raw.extend_from_slice(&[0x15, 0x02, 0x00, 0x11, 0x18, 0x12]);
    let mut tail = [0u8; 9];
    rand::thread_rng().fill_bytes(&mut tail);
    raw.extend_from_slice(hex::encode_upper(tail).as_bytes());
    raw.push(0x00);
    format!("wamid.{}", BASE64.encode(raw))
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// What a valid request sends.
struct Parsed {
    body: Option<String>,
    template_name: Option<String>,
    language: Option<String>,
    variables: BTreeMap<String, String>,
    media_urls: Vec<String>,
}

async fn send(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    // When the request arrived: a slow answer (the latency fault) is slow on the way
    // back, as a provider's would be; the message was taken when it came.
    let received = Utc::now();
    let shared = shared.get_ref().clone();
    let token = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
        });
    if token != Some(shared.config.meta_access_token.expose_secret()) {
        return graph_error(
            401,
            190,
            "OAuthException",
            "Invalid OAuth access token.",
            None,
        );
    }
    let (_version, phone_number_id) = path.into_inner();
    if phone_number_id != shared.config.meta_phone_number_id {
        return graph_error(
            400,
            100,
            "GraphMethodException",
            &format!("Unsupported post request. Object with ID '{phone_number_id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."),
            None,
        );
    }
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return param_error("(#100) The request body is not a JSON object."),
    };
    if str_at(&request, "/messaging_product") != Some("whatsapp") {
        return param_error("(#100) The parameter messaging_product is required.");
    }

    // Read receipts.
    if str_at(&request, "/status") == Some("read") {
        let Some(id) = str_at(&request, "/message_id") else {
            return param_error("(#100) The parameter message_id is required.");
        };
        shared.lock().read_receipts.push(id.to_string());
        return HttpResponse::Ok().json(json!({"success": true}));
    }

    let Some(to_raw) = str_at(&request, "/to").map(str::to_string) else {
        return param_error("(#100) The parameter to is required.");
    };
    let to = match PhoneNumber::from_wa_id(&to_raw) {
        Ok(n) => n,
        Err(_) => return invalid(format!("Recipient phone number {to_raw} is not valid")),
    };
    let digits = to.as_str().trim_start_matches('+').to_string();
    let kind = str_at(&request, "/type").unwrap_or("text").to_string();

    let parsed = match kind.as_str() {
        "text" => match parse_text(&request) {
            Ok(p) => p,
            Err(r) => return r,
        },
        "image" | "document" | "video" | "audio" | "sticker" => {
            let link = str_at(&request, &format!("/{kind}/link"))
                .or_else(|| str_at(&request, &format!("/{kind}/id")));
            let Some(link) = link else {
                return missing(format!("The parameter {kind}['link'] or {kind}['id'] is required."));
            };
            Parsed {
                body: str_at(&request, &format!("/{kind}/caption")).map(str::to_string),
                template_name: None,
                language: None,
                variables: BTreeMap::new(),
                media_urls: vec![link.to_string()],
            }
        }
        "template" => match parse_template(&request, &shared) {
            Ok(p) => p,
            Err(r) => return r,
        },
        "interactive" => match parse_interactive(&request) {
            Ok(p) => p,
            Err(r) => return r,
        },
        other => {
            return param_error(&format!(
                "(#100) Param type must be one of {{TEXT, IMAGE, DOCUMENT, VIDEO, AUDIO, STICKER, TEMPLATE, INTERACTIVE}} - got \"{other}\"."
            ))
        }
    };

    // Fault injection, as on the Twilio side.
    let behaviour = magic::recipient(to.as_str());
    match behaviour {
        Some(Behaviour::Latency(delay)) => tokio::time::sleep(delay).await,
        Some(Behaviour::Throttled) | Some(Behaviour::ServerError) => {
            let seen = {
                let mut inner = shared.lock();
                let n = inner
                    .faults
                    .entry(format!("meta:{}", to.as_str()))
                    .or_insert(0);
                *n += 1;
                *n
            };
            if seen <= FAULT_REPEAT {
                return if behaviour == Some(Behaviour::Throttled) {
                    graph_error(
                        429,
                        130429,
                        "OAuthException",
                        "(#130429) Rate limit hit",
                        None,
                    )
                } else {
                    graph_error(
                        500,
                        131000,
                        "OAuthException",
                        "(#131000) Something went wrong",
                        None,
                    )
                };
            }
        }
        _ => {}
    }

    let wamid = new_wamid(&digits);
    let now = Utc::now();
    let is_template = parsed.template_name.is_some();
    let message = SandboxMessage {
        sid: wamid.clone(),
        provider: "meta".into(),
        direction: "outbound-api".into(),
        channel: "whatsapp".into(),
        to: to.as_str().to_string(),
        from: Some(phone_number_id),
        messaging_service_sid: None,
        body: parsed.body,
        content_sid: None,
        template_name: parsed.template_name,
        language: parsed.language,
        variables: parsed.variables,
        media_urls: parsed.media_urls,
        status_callback: None,
        reply_to: str_at(&request, "/context/message_id").map(str::to_string),
        request: Some(request.clone()),
        status: "accepted".into(),
        error_code: None,
        error_message: None,
        price: None,
        num_segments: 1,
        history: vec![StatusEvent {
            status: "accepted".into(),
            at: now,
        }],
        callbacks: Vec::new(),
        date_created: received,
        date_updated: now,
        date_sent: None,
    };
    shared.lock().insert(message);
    tracing::info!(wamid = %wamid, kind = %kind, "sandbox accepted a Meta message");
    walk::spawn_meta(shared.clone(), wamid.clone(), walk::meta_plan(behaviour));
    let mut sent = json!({"id": wamid});
    if is_template {
        sent["message_status"] = json!("accepted");
    }
    HttpResponse::Ok().json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": to_raw, "wa_id": digits}],
        "messages": [sent],
    }))
}

fn parse_text(request: &Value) -> Result<Parsed, HttpResponse> {
    let Some(text) = request.pointer("/text/body").and_then(Value::as_str) else {
        return Err(param_error(
            "(#100) The parameter text['body'] is required.",
        ));
    };
    if text.trim().is_empty() {
        return Err(param_error(
            "(#100) The parameter text['body'] is required.",
        ));
    }
    if text.chars().count() > 4096 {
        return Err(param_error(
            "(#100) Param text['body'] must be at most 4096 characters long.",
        ));
    }
    Ok(Parsed {
        body: Some(text.to_string()),
        template_name: None,
        language: None,
        variables: BTreeMap::new(),
        media_urls: Vec::new(),
    })
}

fn parse_template(request: &Value, shared: &Shared) -> Result<Parsed, HttpResponse> {
    let Some(name) = str_at(request, "/template/name") else {
        return Err(missing("The parameter template['name'] is required."));
    };
    let Some(language) = str_at(request, "/template/language/code") else {
        return Err(missing(
            "The parameter template['language']['code'] is required.",
        ));
    };
    let mut values = Vec::new();
    if let Some(components) = request
        .pointer("/template/components")
        .and_then(Value::as_array)
    {
        for component in components {
            if component.get("type").and_then(Value::as_str) != Some("body") {
                continue;
            }
            for p in component
                .get("parameters")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                match p.get("text").and_then(Value::as_str) {
                    Some(t) if p.get("type").and_then(Value::as_str) == Some("text") => {
                        values.push(t.to_string())
                    }
                    _ => {
                        return Err(invalid(
                            "body parameters must be of type text with a text value",
                        ))
                    }
                }
            }
        }
    }
    let inner = shared.lock();
    let not_found = || {
        graph_error(
            404,
            132001,
            "OAuthException",
            "(#132001) Template name does not exist in the translation",
            Some(format!(
                "template name ({name}) does not exist in {language}"
            )),
        )
    };
    let Some(template) = inner.template_by_name(name) else {
        return Err(not_found());
    };
    if template.language != language {
        return Err(not_found());
    }
    match template.status.as_str() {
        "approved" => {}
        "paused" => {
            return Err(graph_error(
                400,
                132015,
                "OAuthException",
                "(#132015) Template is paused",
                Some(format!("Template {name} is paused due to low quality")),
            ))
        }
        "disabled" => {
            return Err(graph_error(
                400,
                132016,
                "OAuthException",
                "(#132016) Template is disabled",
                Some(format!("Template {name} is disabled")),
            ))
        }
        _ => return Err(not_found()),
    }
    let expected = template.placeholder_count();
    if values.len() != expected {
        return Err(graph_error(
            400,
            132000,
            "OAuthException",
            "(#132000) Number of parameters does not match the expected number of params",
            Some(format!(
                "body: number of localizable_params ({}) does not match the expected number of params ({expected})",
                values.len()
            )),
        ));
    }
    let variables: BTreeMap<String, String> = values
        .into_iter()
        .enumerate()
        .map(|(i, v)| ((i + 1).to_string(), v))
        .collect();
    Ok(Parsed {
        body: Some(template.render(&variables)),
        template_name: Some(name.to_string()),
        language: Some(language.to_string()),
        variables,
        media_urls: Vec::new(),
    })
}

fn parse_interactive(request: &Value) -> Result<Parsed, HttpResponse> {
    let Some(body) = str_at(request, "/interactive/body/text") else {
        return Err(missing(
            "The parameter interactive['body']['text'] is required.",
        ));
    };
    match str_at(request, "/interactive/type") {
        Some("button") => {
            let buttons = request
                .pointer("/interactive/action/buttons")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if buttons.is_empty() || buttons.len() > 3 {
                return Err(invalid(
                    "interactive['action']['buttons'] must have 1 to 3 buttons",
                ));
            }
            for b in &buttons {
                let ok = b.get("type").and_then(Value::as_str) == Some("reply")
                    && str_at(b, "/reply/id").is_some()
                    && str_at(b, "/reply/title").is_some_and(|t| t.chars().count() <= 20);
                if !ok {
                    return Err(invalid(
                        "each button needs type 'reply', a reply id and a title of at most 20 characters",
                    ));
                }
            }
        }
        Some("list") => {
            if str_at(request, "/interactive/action/button").is_none() {
                return Err(missing(
                    "The parameter interactive['action']['button'] is required.",
                ));
            }
            let sections = request
                .pointer("/interactive/action/sections")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let rows: usize = sections
                .iter()
                .map(|s| s.get("rows").and_then(Value::as_array).map_or(0, Vec::len))
                .sum();
            if sections.is_empty() || rows == 0 || rows > 10 {
                return Err(invalid("a list needs 1 to 10 rows in its sections"));
            }
            let rows_ok = sections
                .iter()
                .filter_map(|s| s.get("rows").and_then(Value::as_array))
                .flatten()
                .all(|r| str_at(r, "/id").is_some() && str_at(r, "/title").is_some());
            if !rows_ok {
                return Err(invalid("every row needs an id and a title"));
            }
        }
        _ => return Err(invalid("interactive['type'] must be button or list")),
    }
    Ok(Parsed {
        body: Some(body.to_string()),
        template_name: None,
        language: None,
        variables: BTreeMap::new(),
        media_urls: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wamids_look_like_meta_ones() {
        let a = new_wamid("14155550101");
        let b = new_wamid("14155550101");
        assert!(a.starts_with("wamid."));
        assert_ne!(a, b);
        assert!(BASE64.decode(a.trim_start_matches("wamid.")).is_ok());
    }
}
