//! The sandbox's own endpoints under `/sandbox/`: inspection, control, and
//! playing the person (inbound messages to Heimdall, signed as the provider
//! would sign them).

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::Utc;
use heimdall_domain::signature::twilio_signature;
use heimdall_domain::{Channel, PhoneNumber};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::magic::{MAGIC_RECIPIENTS, MAGIC_SENDERS};
use crate::meta_api::new_wamid;
use crate::state::{SandboxMessage, SandboxState, Shared, StatusEvent};
use crate::templates::TemplateSpec;
use crate::twilio_api::{new_sid, sms_segments, API_VERSION};
use crate::walk::{display_number, post_meta_webhook, WABA_ID};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/sandbox", web::get().to(info))
        .route("/sandbox/messages", web::get().to(messages))
        .route("/sandbox/messages/{sid}", web::get().to(message))
        .route("/sandbox/alerts", web::get().to(alerts))
        .route("/sandbox/reset", web::post().to(reset))
        .route("/sandbox/templates", web::get().to(templates))
        .route("/sandbox/templates", web::post().to(upsert_template))
        .route("/sandbox/discord/rate-limit", web::post().to(rate_limit))
        .route("/sandbox/inbound", web::post().to(inbound));
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": {"code": code, "message": message.into()}}))
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, HttpResponse> {
    serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("invalid JSON: {e}"),
        )
    })
}

async fn info(shared: web::Data<Arc<Shared>>) -> HttpResponse {
    let recipients: Vec<Value> = MAGIC_RECIPIENTS
        .iter()
        .map(|(n, what)| json!({"number": n, "behaviour": what}))
        .collect();
    let senders: Vec<Value> = MAGIC_SENDERS
        .iter()
        .map(|(n, what)| json!({"number": n, "behaviour": what}))
        .collect();
    HttpResponse::Ok().json(json!({
        "sandbox": true,
        "warning": "This is Heimdall's sandbox: nothing sent here reaches a person. Never use it in production.",
        "account_sid": shared.config.account_sid,
        "meta_phone_number_id": shared.config.meta_phone_number_id,
        "whatsapp_number": shared.config.whatsapp_number,
        "sms_number": shared.config.sms_number,
        "status_step_ms": u64::try_from(shared.config.status_step.as_millis()).unwrap_or(u64::MAX),
        "heimdall_url": shared.heimdall_url().map(|u| u.to_string()),
        "magic_recipients": recipients,
        "magic_senders": senders,
    }))
}

async fn messages(shared: web::Data<Arc<Shared>>) -> HttpResponse {
    HttpResponse::Ok().json(SandboxState(shared.get_ref().clone()).messages())
}

async fn message(path: web::Path<String>, shared: web::Data<Arc<Shared>>) -> HttpResponse {
    match SandboxState(shared.get_ref().clone()).message(&path) {
        Some(m) => HttpResponse::Ok().json(m),
        None => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no message {}", path.as_str()),
        ),
    }
}

async fn alerts(shared: web::Data<Arc<Shared>>) -> HttpResponse {
    HttpResponse::Ok().json(SandboxState(shared.get_ref().clone()).alerts())
}

async fn reset(shared: web::Data<Arc<Shared>>) -> HttpResponse {
    shared.reset();
    HttpResponse::Ok().json(json!({"reset": true}))
}

async fn templates(shared: web::Data<Arc<Shared>>) -> HttpResponse {
    HttpResponse::Ok().json(SandboxState(shared.get_ref().clone()).templates())
}

async fn upsert_template(body: web::Bytes, shared: web::Data<Arc<Shared>>) -> HttpResponse {
    let spec: TemplateSpec = match parse_json(&body) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match SandboxState(shared.get_ref().clone()).apply_template(spec) {
        Ok(t) => HttpResponse::Ok().json(t),
        Err(message) => error(StatusCode::BAD_REQUEST, "bad_request", message),
    }
}

#[derive(Debug, Deserialize)]
struct RateLimit {
    #[serde(default = "one")]
    times: u32,
    #[serde(default = "default_retry_after")]
    retry_after: f64,
}

fn one() -> u32 {
    1
}

fn default_retry_after() -> f64 {
    0.2
}

async fn rate_limit(body: web::Bytes, shared: web::Data<Arc<Shared>>) -> HttpResponse {
    let spec: RateLimit = if body.iter().all(u8::is_ascii_whitespace) {
        RateLimit {
            times: one(),
            retry_after: default_retry_after(),
        }
    } else {
        match parse_json(&body) {
            Ok(s) => s,
            Err(r) => return r,
        }
    };
    if !spec.retry_after.is_finite() || spec.retry_after < 0.0 || spec.retry_after > 60.0 {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "retry_after must be between 0 and 60 seconds",
        );
    }
    SandboxState(shared.get_ref().clone()).set_discord_rate_limit(spec.times, spec.retry_after);
    HttpResponse::Ok().json(json!({"times": spec.times, "retry_after": spec.retry_after}))
}

/// `POST /sandbox/inbound`: a person writes to Heimdall.
#[derive(Debug, Deserialize)]
struct Inbound {
    from: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    profile_name: Option<String>,
    #[serde(default)]
    button_text: Option<String>,
    #[serde(default)]
    button_payload: Option<String>,
    /// `twilio` (default) or `meta`.
    #[serde(default)]
    provider: Option<String>,
}

fn country_of(number: &str) -> &'static str {
    if number.starts_with("+1") {
        "US"
    } else if number.starts_with("+44") {
        "GB"
    } else if number.starts_with("+47") {
        "NO"
    } else {
        ""
    }
}

async fn inbound(body: web::Bytes, shared: web::Data<Arc<Shared>>) -> HttpResponse {
    let shared = shared.get_ref().clone();
    let request: Inbound = match parse_json(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let channel = match request.channel.as_deref().map(str::parse::<Channel>) {
        None => Channel::WhatsApp,
        Some(Ok(c)) => c,
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, "bad_request", e),
    };
    let from = match PhoneNumber::parse(&request.from, phonenumber::country::Id::US) {
        Ok(n) => n,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_number", e.to_string()),
    };
    let meta = match request
        .provider
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("twilio") => false,
        Some("meta") if channel == Channel::WhatsApp => true,
        Some("meta") => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Meta carries WhatsApp only",
            )
        }
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("unknown provider '{other}': use twilio or meta"),
            )
        }
    };
    let Some(heimdall) = shared.heimdall_url() else {
        return error(
            StatusCode::BAD_GATEWAY,
            "heimdall_unknown",
            "the sandbox does not know Heimdall's URL (set heimdall_url)",
        );
    };
    let base = heimdall.as_str().trim_end_matches('/').to_string();
    if meta {
        meta_inbound(shared, request, from, base).await
    } else {
        twilio_inbound(shared, request, channel, from, base).await
    }
}

async fn twilio_inbound(
    shared: Arc<Shared>,
    request: Inbound,
    channel: Channel,
    from: PhoneNumber,
    base: String,
) -> HttpResponse {
    let whatsapp = channel == Channel::WhatsApp;
    let prefix = if whatsapp { "whatsapp:" } else { "" };
    let default_to = if whatsapp {
        &shared.config.whatsapp_number
    } else {
        &shared.config.sms_number
    };
    let to_number = request
        .to
        .as_deref()
        .map(|t| t.trim().trim_start_matches("whatsapp:").to_string())
        .unwrap_or_else(|| default_to.clone());
    let sid = new_sid("SM");
    let account_sid = shared.config.account_sid.clone();
    let from_address = format!("{prefix}{from}");
    let to_address = format!("{prefix}{to_number}");
    let button = request.button_text.is_some() || request.button_payload.is_some();
    let mut params: Vec<(String, String)> = Vec::new();
    let mut add = |k: &str, v: String| params.push((k.to_string(), v));
    add("SmsMessageSid", sid.clone());
    add("NumMedia", "0".into());
    if whatsapp {
        add(
            "ProfileName",
            request
                .profile_name
                .clone()
                .unwrap_or_else(|| "Sandbox Person".into()),
        );
        add("MessageType", if button { "button" } else { "text" }.into());
        add("WaId", from.as_str().trim_start_matches('+').to_string());
        add("ReferralNumMedia", "0".into());
    } else {
        add("ToCountry", country_of(&to_number).into());
        add("ToState", String::new());
        add("ToCity", String::new());
        add("ToZip", String::new());
        add("FromCountry", country_of(from.as_str()).into());
        add("FromState", String::new());
        add("FromCity", String::new());
        add("FromZip", String::new());
    }
    add("SmsSid", sid.clone());
    add("SmsStatus", "received".into());
    add("Body", request.body.clone());
    add("To", to_address.clone());
    let segments = if whatsapp {
        1
    } else {
        sms_segments(&request.body)
    };
    add("NumSegments", segments.to_string());
    add("MessageSid", sid.clone());
    add("AccountSid", account_sid);
    add("From", from_address.clone());
    add("ApiVersion", API_VERSION.into());
    if let Some(t) = &request.button_text {
        add("ButtonText", t.clone());
    }
    if let Some(p) = &request.button_payload {
        add("ButtonPayload", p.clone());
    }

    let url = format!("{base}/webhooks/twilio/inbound");
    let signature = twilio_signature(shared.config.auth_token.expose_secret(), &url, &params);
    record_inbound(
        &shared,
        &sid,
        "twilio",
        channel,
        &to_address,
        &from_address,
        &request.body,
    );
    let http = shared.http.clone();
    let post_url = url.clone();
    // Outgoing requests run on the runtime the sandbox was started on.
    let sent = shared
        .runtime
        .spawn(async move {
            let response = http
                .post(&post_url)
                .timeout(std::time::Duration::from_secs(15))
                .header("X-Twilio-Signature", signature)
                .header(
                    "I-Twilio-Idempotency-Token",
                    uuid::Uuid::new_v4().to_string(),
                )
                .header(reqwest::header::USER_AGENT, "TwilioProxy/1.1")
                .form(&params)
                .send()
                .await?;
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            Ok::<_, reqwest::Error>((status, text))
        })
        .await;
    answer(sent, &sid, &url)
}

async fn meta_inbound(
    shared: Arc<Shared>,
    request: Inbound,
    from: PhoneNumber,
    base: String,
) -> HttpResponse {
    let digits = from.as_str().trim_start_matches('+').to_string();
    let wamid = new_wamid(&digits);
    let now = Utc::now();
    let mut message = json!({
        "from": digits,
        "id": wamid,
        "timestamp": now.timestamp().to_string(),
    });
    if request.button_text.is_some() || request.button_payload.is_some() {
        message["type"] = json!("button");
        message["button"] = json!({
            "payload": request.button_payload.clone().unwrap_or_default(),
            "text": request.button_text.clone().unwrap_or_default(),
        });
    } else {
        message["type"] = json!("text");
        message["text"] = json!({"body": request.body});
    }
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": WABA_ID,
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {
                        "display_phone_number": display_number(&shared),
                        "phone_number_id": shared.config.meta_phone_number_id,
                    },
                    "contacts": [{
                        "profile": {"name": request.profile_name.clone().unwrap_or_else(|| "Sandbox Person".into())},
                        "wa_id": digits,
                    }],
                    "messages": [message],
                },
            }],
        }],
    });
    let url = format!("{base}/webhooks/meta");
    record_inbound(
        &shared,
        &wamid,
        "meta",
        Channel::WhatsApp,
        &shared.config.meta_phone_number_id,
        from.as_str(),
        &request.body,
    );
    let task_shared = shared.clone();
    let post_url = url.clone();
    let sent = shared
        .runtime
        .spawn(async move {
            let record = post_meta_webhook(&task_shared, &post_url, &body, "received").await;
            Ok::<_, String>((record.http_status, record.error))
        })
        .await;
    match sent {
        Ok(Ok((Some(status), _))) => HttpResponse::Ok().json(json!({
            "status": status,
            "message_sid": wamid,
            "response_body": "",
        })),
        Ok(Ok((None, e))) => error(
            StatusCode::BAD_GATEWAY,
            "heimdall_unreachable",
            format!("could not reach {url}: {}", e.unwrap_or_default()),
        ),
        Ok(Err(e)) => error(StatusCode::BAD_GATEWAY, "heimdall_unreachable", e),
        Err(e) => error(
            StatusCode::BAD_GATEWAY,
            "heimdall_unreachable",
            e.to_string(),
        ),
    }
}

fn answer(
    sent: Result<Result<(u16, String), reqwest::Error>, tokio::task::JoinError>,
    sid: &str,
    url: &str,
) -> HttpResponse {
    match sent {
        Ok(Ok((status, text))) => HttpResponse::Ok().json(json!({
            "status": status,
            "message_sid": sid,
            "response_body": text,
        })),
        Ok(Err(e)) => error(
            StatusCode::BAD_GATEWAY,
            "heimdall_unreachable",
            format!("could not reach {url}: {}", e.without_url()),
        ),
        Err(e) => error(
            StatusCode::BAD_GATEWAY,
            "heimdall_unreachable",
            e.to_string(),
        ),
    }
}

fn record_inbound(
    shared: &Shared,
    sid: &str,
    provider: &str,
    channel: Channel,
    to: &str,
    from: &str,
    body: &str,
) {
    let now = Utc::now();
    shared.lock().insert(SandboxMessage {
        sid: sid.to_string(),
        provider: provider.to_string(),
        direction: "inbound".into(),
        channel: channel.as_str().to_string(),
        to: to.to_string(),
        from: Some(from.to_string()),
        messaging_service_sid: None,
        body: Some(body.to_string()),
        content_sid: None,
        template_name: None,
        language: None,
        variables: Default::default(),
        media_urls: Vec::new(),
        status_callback: None,
        reply_to: None,
        request: None,
        status: "received".into(),
        error_code: None,
        error_message: None,
        price: None,
        num_segments: 1,
        history: vec![StatusEvent {
            status: "received".into(),
            at: now,
        }],
        callbacks: Vec::new(),
        date_created: now,
        date_updated: now,
        date_sent: Some(now),
    });
}
