//! Webhooks from Twilio (form-encoded, `X-Twilio-Signature`) and Meta (JSON,
//! `X-Hub-Signature-256`, GET handshake). A request whose signature fails
//! gets 403 and changes nothing but the audit log. Every request is
//! written to `webhook_audit_log`; when the database is away, the event goes
//! to the local spool and the webhook still answers.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::ExposeSecret;

use heimdall_domain::inbound::{
    self, InboundMessage, InboundOutcome, SpooledPayload, Taken, WebhookRecord,
};
use heimdall_domain::signature;
use heimdall_domain::Core;

const TWIML_EMPTY: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#;

/// This module's operations in the OpenAPI document ([`crate::openapi`]);
/// the first version's addresses are documented there as the same as these.
#[derive(utoipa::OpenApi)]
#[openapi(paths(twilio_inbound, twilio_status, meta_verify, meta_events))]
pub struct Docs;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/webhooks/twilio/inbound", web::post().to(twilio_inbound))
        .route("/whatsapp/webhook", web::post().to(twilio_inbound))
        .route("/webhooks/twilio/status", web::post().to(twilio_status))
        .route("/whatsapp/status", web::post().to(twilio_status))
        .route("/webhooks/meta", web::get().to(meta_verify))
        .route("/webhooks/meta", web::post().to(meta_events))
        .route("/webhooks/whatsapp", web::get().to(meta_verify))
        .route("/webhooks/whatsapp", web::post().to(meta_events));
}

/// The headers worth keeping (signatures shortened: enough to match a
/// provider's log, useless to forge with).
fn kept_headers(req: &HttpRequest) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for name in [
        "content-type",
        "user-agent",
        "x-twilio-signature",
        "x-hub-signature-256",
        "i-twilio-idempotency-token",
        "x-forwarded-for",
    ] {
        if let Some(v) = req.headers().get(name).and_then(|v| v.to_str().ok()) {
            let v = if name.contains("signature") {
                format!("{}…", v.chars().take(12).collect::<String>())
            } else {
                v.chars().take(300).collect()
            };
            out.insert(name.to_string(), v);
        }
    }
    out
}

fn record(
    req: &HttpRequest,
    provider: &str,
    verdict: &str,
    body: &[u8],
    event_id: Option<String>,
    core: &Core,
) -> WebhookRecord {
    WebhookRecord {
        provider: provider.into(),
        path: req.path().to_string(),
        verdict: verdict.into(),
        headers: kept_headers(req),
        body: inbound::redact_body(&String::from_utf8_lossy(body)),
        event_id,
        received_at: core.now(),
    }
}

/// Record a refused request: bounded per address, a few KiB of its body
/// with its hash, never spooled.
async fn refused(core: &Core, req: &HttpRequest, rec: WebhookRecord, body: &[u8]) {
    let ip = crate::routes::optin::client_address(core, req).await;
    inbound::record_refused(core, ip, rec, body).await;
}

/// A request that does not parse: recorded (or spooled), answered 400.
async fn malformed(
    core: &Core,
    req: &HttpRequest,
    provider: &str,
    body: &[u8],
    event_id: Option<String>,
    why: impl std::fmt::Display,
) -> HttpResponse {
    inbound::record_or_spool(
        core,
        record(req, provider, "malformed", body, event_id, core),
        SpooledPayload::None,
    )
    .await;
    crate::error::error_answer(actix_web::http::StatusCode::BAD_REQUEST, "malformed", why)
}

/// The URL Twilio signed: the public base plus this request's path and query.
fn public_url(core: &Core, req: &HttpRequest) -> String {
    let base = core.settings.public_base();
    let mut url = base.as_str().trim_end_matches('/').to_string();
    url.push_str(req.path());
    if !req.query_string().is_empty() {
        url.push('?');
        url.push_str(req.query_string());
    }
    url
}

enum TwilioBody {
    Form(Vec<(String, String)>),
    Json,
}

/// Check Twilio's signature: 403 (and an audit row) when it fails.
async fn verify_twilio(
    core: &Core,
    req: &HttpRequest,
    body: &web::Bytes,
) -> Result<TwilioBody, HttpResponse> {
    let Some(twilio) = &core.settings.twilio else {
        return Err(crate::error::error_answer(
            actix_web::http::StatusCode::NOT_FOUND,
            "not_configured",
            "Twilio is not configured",
        ));
    };
    let token = twilio.auth_token.expose_secret();
    let sig = req
        .headers()
        .get("X-Twilio-Signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let url = public_url(core, req);
    let is_json = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    let (ok, parsed) = if is_json {
        (
            signature::verify_twilio_json(token, &url, body, sig),
            Some(TwilioBody::Json),
        )
    } else {
        match serde_urlencoded::from_bytes::<Vec<(String, String)>>(body) {
            Ok(params) => (
                signature::verify_twilio_signature(token, &url, &params, sig),
                Some(TwilioBody::Form(params)),
            ),
            Err(_) => (false, None),
        }
    };
    if !ok {
        let verdict = if parsed.is_none() && !sig.is_empty() {
            "malformed"
        } else {
            "bad_signature"
        };
        metrics::counter!("heimdall_webhooks_total", "provider" => "twilio", "verdict" => verdict)
            .increment(1);
        tracing::warn!(path = %req.path(), verdict, "twilio webhook refused");
        refused(
            core,
            req,
            record(req, "twilio", verdict, &[], None, core),
            body,
        )
        .await;
        return Err(if verdict == "malformed" {
            crate::error::error_answer(
                actix_web::http::StatusCode::BAD_REQUEST,
                "malformed",
                "the body is not form-encoded",
            )
        } else {
            crate::error::error_answer(
                actix_web::http::StatusCode::FORBIDDEN,
                "bad_signature",
                "missing or invalid X-Twilio-Signature",
            )
        });
    }
    Ok(parsed.unwrap_or(TwilioBody::Json))
}

#[utoipa::path(
    post,
    path = "/webhooks/twilio/inbound",
    tag = "Webhooks",
    summary = "An incoming message from Twilio (SMS or WhatsApp)",
    description = "Also served at `/whatsapp/webhook` (the first version's address).",
    params(("X-Twilio-Signature" = String, Header, description = "Twilio's signature of the public URL and the form parameters (HMAC-SHA1 with the auth token, base64).")),
    request_body(content = Object, content_type = "application/x-www-form-urlencoded", description = "Twilio's webhook parameters."),
    responses(
        (status = 200, description = "Taken (stored, a duplicate, or ignored): an empty TwiML answer.", content_type = "text/xml", body = String),
        (status = 400, description = "`malformed`: the body is not form-encoded or lacks what a message needs (recorded in the webhook audit log).", body = crate::error::ErrorBody),
        (status = 403, description = "`bad_signature`: the signature is missing or wrong (recorded, nothing else changes).", body = crate::error::ErrorBody),
        (status = 404, description = "`not_configured`: Twilio is not configured.", body = crate::error::ErrorBody),
        (status = 503, description = "Neither the database nor the local spool could take the event: Twilio retries.", extensions(("x-heimdall-untested" = json!("needs the database and the local spool both unwritable")))),
    )
)]
async fn twilio_inbound(
    core: web::Data<Arc<Core>>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let params = match verify_twilio(&core, &req, &body).await {
        Ok(TwilioBody::Form(p)) => p,
        Ok(TwilioBody::Json) => {
            return crate::error::error_answer(
                actix_web::http::StatusCode::BAD_REQUEST,
                "malformed",
                "inbound messages are form-encoded",
            )
        }
        Err(resp) => return resp,
    };
    let map: BTreeMap<String, String> = params.into_iter().collect();
    let msg = match InboundMessage::from_twilio(&map, core.now()) {
        Ok(m) => m,
        Err(why) => {
            return malformed(&core, &req, "twilio", &body, None, why).await;
        }
    };
    let event_id = Some(msg.provider_message_id.clone());
    // On the common path the audit row goes in with the message (one write).
    let accepted = record(&req, "twilio", "accepted", &body, event_id.clone(), &core);
    match inbound::handle_message_audited(&core, msg.clone(), Some(&accepted)).await {
        Ok(handled) => {
            let verdict = match &handled.outcome {
                InboundOutcome::Duplicate => "duplicate",
                InboundOutcome::Ignored => "ignored",
                InboundOutcome::Stored { .. } => "accepted",
            };
            metrics::counter!("heimdall_webhooks_total", "provider" => "twilio", "verdict" => verdict).increment(1);
            if !handled.audited {
                inbound::record_or_spool(
                    &core,
                    record(&req, "twilio", verdict, &body, event_id, &core),
                    SpooledPayload::None,
                )
                .await;
            }
            twiml()
        }
        Err(inbound::InboundError::Malformed(why)) => {
            malformed(&core, &req, "twilio", &body, event_id, why).await
        }
        Err(inbound::InboundError::Db(e)) => {
            tracing::error!(error = %e, "inbound message: database unavailable, spooling");
            if inbound::spool_logged(
                &core,
                record(&req, "twilio", "accepted", &body, event_id, &core),
                SpooledPayload::Message(msg),
            )
            .await
            {
                twiml()
            } else {
                // Twilio retries on a 5xx: better than losing the event.
                HttpResponse::ServiceUnavailable().finish()
            }
        }
    }
}

fn twiml() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(TWIML_EMPTY)
}

#[utoipa::path(
    post,
    path = "/webhooks/twilio/status",
    tag = "Webhooks",
    summary = "A delivery status callback from Twilio",
    description = "Also served at `/whatsapp/status` (the first version's address). The query may carry `mid`, Heimdall's message id.",
    params(("X-Twilio-Signature" = String, Header, description = "Twilio's signature of the public URL and the form parameters (HMAC-SHA1 with the auth token, base64).")),
    request_body(content = Object, content_type = "application/x-www-form-urlencoded", description = "Twilio's webhook parameters."),
    responses(
        (status = 204, description = "Taken (or a duplicate)."),
        (status = 400, description = "`malformed`: the body is not form-encoded or lacks `MessageSid` and `MessageStatus`.", body = crate::error::ErrorBody),
        (status = 403, description = "`bad_signature`: the signature is missing or wrong (recorded, nothing else changes).", body = crate::error::ErrorBody),
        (status = 404, description = "`not_configured`: Twilio is not configured.", body = crate::error::ErrorBody),
        (status = 503, description = "Neither the database nor the local spool could take the event: Twilio retries.", extensions(("x-heimdall-untested" = json!("needs the database and the local spool both unwritable")))),
    )
)]
async fn twilio_status(
    core: web::Data<Arc<Core>>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let params = match verify_twilio(&core, &req, &body).await {
        Ok(TwilioBody::Form(p)) => p,
        Ok(TwilioBody::Json) => {
            return crate::error::error_answer(
                actix_web::http::StatusCode::BAD_REQUEST,
                "malformed",
                "status callbacks are form-encoded",
            )
        }
        Err(resp) => return resp,
    };
    let map: BTreeMap<String, String> = params.into_iter().collect();
    let mid = req
        .query_string()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "mid")
        .map(|(_, v)| v.to_string());
    let Some(report) = inbound::twilio_status_report(&map, mid) else {
        return malformed(
            &core,
            &req,
            "twilio",
            &body,
            None,
            "MessageSid and MessageStatus are required",
        )
        .await;
    };
    let sid = report.provider_sid.clone();
    let taken = inbound::take_status(&core, report, |verdict| {
        record(&req, "twilio", verdict, &body, sid.clone(), &core)
    })
    .await;
    // Counted when handled (a spooled one is counted when replayed).
    let verdict = match taken {
        Taken::Accepted => Some("accepted"),
        Taken::Duplicate => Some("duplicate"),
        Taken::Spooled | Taken::Lost => None,
    };
    if let Some(verdict) = verdict {
        metrics::counter!("heimdall_webhooks_total", "provider" => "twilio", "verdict" => verdict)
            .increment(1);
    }
    match taken {
        Taken::Lost => HttpResponse::ServiceUnavailable().finish(),
        _ => HttpResponse::NoContent().finish(),
    }
}

#[derive(Debug, serde::Deserialize)]
struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

#[utoipa::path(
    get,
    path = "/webhooks/meta",
    tag = "Webhooks",
    summary = "Meta's subscription handshake",
    description = "Also served at `/webhooks/whatsapp`.",
    params(("hub.mode" = Option<String>, Query, description = "`subscribe`."), ("hub.verify_token" = Option<String>, Query, description = "Must equal `WHATSAPP_VERIFY_TOKEN`."), ("hub.challenge" = Option<String>, Query, description = "Echoed back.")),
    responses(
        (status = 200, description = "The challenge, echoed.", content_type = "text/plain", body = String),
        (status = 400, description = "The token is right but there is no challenge (empty body)."),
        (status = 403, description = "Wrong mode or token (empty body; recorded)."),
        (status = 404, description = "Meta is not configured (empty body)."),
    )
)]
async fn meta_verify(core: web::Data<Arc<Core>>, req: HttpRequest) -> HttpResponse {
    let Some(meta) = &core.settings.meta else {
        return HttpResponse::NotFound().finish();
    };
    let q: Handshake = serde_urlencoded::from_str(req.query_string()).unwrap_or(Handshake {
        mode: None,
        verify_token: None,
        challenge: None,
    });
    let expected = meta.verify_token.expose_secret();
    let ok = q.mode.as_deref() == Some("subscribe")
        && !expected.is_empty()
        && q.verify_token.as_deref().is_some_and(|t| {
            use subtle::ConstantTimeEq;
            t.len() == expected.len() && bool::from(t.as_bytes().ct_eq(expected.as_bytes()))
        });
    if ok {
        inbound::record_or_spool(
            &core,
            record(
                &req,
                "meta",
                "accepted",
                req.query_string().as_bytes(),
                None,
                &core,
            ),
            SpooledPayload::None,
        )
        .await;
    } else {
        refused(
            &core,
            &req,
            record(&req, "meta", "bad_signature", &[], None, &core),
            req.query_string().as_bytes(),
        )
        .await;
    }
    match (ok, q.challenge) {
        (true, Some(c)) => HttpResponse::Ok().content_type("text/plain").body(c),
        (true, None) => HttpResponse::BadRequest().finish(),
        (false, _) => HttpResponse::Forbidden().finish(),
    }
}

#[utoipa::path(
    post,
    path = "/webhooks/meta",
    tag = "Webhooks",
    summary = "Messages, statuses and account updates from Meta",
    description = "Also served at `/webhooks/whatsapp`.",
    params(("X-Hub-Signature-256" = String, Header, description = "`sha256=` and the HMAC-SHA256 of the raw body with the app secret, hex.")),
    request_body(content = Object, description = "Meta's webhook payload (`object`, `entry[].changes[]`)."),
    responses(
        (status = 200, description = "Taken (empty body)."),
        (status = 400, description = "`malformed`: the body is not JSON or not a webhook payload.", body = crate::error::ErrorBody),
        (status = 403, description = "`bad_signature`: the signature is missing or wrong (recorded, nothing else changes).", body = crate::error::ErrorBody),
        (status = 404, description = "Meta is not configured (empty body)."),
        (status = 503, description = "Some event could be neither stored nor spooled: Meta retries.", extensions(("x-heimdall-untested" = json!("needs the database and the local spool both unwritable")))),
    )
)]
async fn meta_events(
    core: web::Data<Arc<Core>>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let Some(meta) = &core.settings.meta else {
        return HttpResponse::NotFound().finish();
    };
    let sig = req
        .headers()
        .get("X-Hub-Signature-256")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !signature::verify_meta_signature(meta.app_secret.expose_secret(), &body, sig) {
        metrics::counter!("heimdall_webhooks_total", "provider" => "meta", "verdict" => "bad_signature").increment(1);
        refused(
            &core,
            &req,
            record(&req, "meta", "bad_signature", &[], None, &core),
            &body,
        )
        .await;
        return crate::error::error_answer(
            actix_web::http::StatusCode::FORBIDDEN,
            "bad_signature",
            "missing or invalid X-Hub-Signature-256",
        );
    }
    let parsed = serde_json::from_slice::<serde_json::Value>(&body)
        .map_err(|e| e.to_string())
        .and_then(|v| inbound::parse_meta(&v, core.now()));
    let events = match parsed {
        Ok(e) => e,
        Err(why) => {
            return malformed(&core, &req, "meta", &body, None, why).await;
        }
    };
    metrics::counter!("heimdall_webhooks_total", "provider" => "meta", "verdict" => "accepted")
        .increment(1);
    let spooled_all = inbound::take_meta_events(&core, events, |verdict, event_id| {
        record(&req, "meta", verdict, &body, event_id, &core)
    })
    .await;
    if spooled_all {
        HttpResponse::Ok().finish()
    } else {
        HttpResponse::ServiceUnavailable().finish()
    }
}
