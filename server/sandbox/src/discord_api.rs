//! A Discord webhook: `POST /api/webhooks/{id}/{token}` (and the same under
//! `/discord/webhooks/...`) records what it receives and answers 204, or 429
//! with Discord's rate-limit body when told to.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde_json::{json, Value};

use crate::state::{DiscordPost, Shared};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/discord/webhooks/{id}/{token}", web::post().to(post))
        .route("/api/webhooks/{id}/{token}", web::post().to(post));
}

async fn post(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let (id, _token) = path.into_inner();
    let limited = {
        let mut inner = shared.lock();
        match inner.discord_rate_limit {
            Some((times, retry_after)) if times > 0 => {
                inner.discord_rate_limit = (times > 1).then_some((times - 1, retry_after));
                inner.discord_rate_limited += 1;
                Some(retry_after)
            }
            _ => None,
        }
    };
    if let Some(retry_after) = limited {
        return HttpResponse::build(StatusCode::TOO_MANY_REQUESTS)
            .insert_header(("Retry-After", format!("{}", retry_after.ceil() as u64)))
            .insert_header(("X-RateLimit-Limit", "5"))
            .insert_header(("X-RateLimit-Remaining", "0"))
            .insert_header(("X-RateLimit-Reset-After", format!("{retry_after:.3}")))
            .insert_header(("X-RateLimit-Scope", "user"))
            .json(json!({
                "message": "You are being rate limited.",
                "retry_after": retry_after,
                "global": false,
            }));
    }
    let payload: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return HttpResponse::BadRequest()
                .json(json!({"message": "Cannot send an empty message", "code": 50006}))
        }
    };
    let has_content = payload
        .get("content")
        .and_then(Value::as_str)
        .is_some_and(|c| !c.trim().is_empty());
    let embeds = payload.get("embeds").and_then(Value::as_array);
    if !has_content && embeds.is_none_or(|e| e.is_empty()) {
        return HttpResponse::BadRequest()
            .json(json!({"message": "Cannot send an empty message", "code": 50006}));
    }
    if embeds.is_some_and(|e| e.len() > 10) {
        return HttpResponse::BadRequest().json(json!({
            "message": "Invalid Form Body",
            "code": 50035,
            "errors": {"embeds": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 10 or fewer in length."}]}},
        }));
    }
    let received_at = Utc::now();
    shared.lock().alerts.push(DiscordPost {
        webhook_id: id.clone(),
        received_at,
        payload: payload.clone(),
    });
    tracing::info!(webhook_id = %id, "sandbox Discord webhook received an alert");
    let wait = req.query_string().split('&').any(|p| p == "wait=true");
    if wait {
        return HttpResponse::Ok().json(json!({
            "id": uuid::Uuid::new_v4().as_u128().to_string(),
            "webhook_id": id,
            "content": payload.get("content").cloned().unwrap_or(Value::String(String::new())),
            "embeds": payload.get("embeds").cloned().unwrap_or(json!([])),
            "timestamp": received_at.to_rfc3339(),
        }));
    }
    HttpResponse::NoContent().finish()
}
