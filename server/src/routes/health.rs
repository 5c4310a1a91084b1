//! Liveness, readiness and metrics.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use heimdall_domain::Core;

/// The process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The process can do its work: the database answers and, when configured,
/// Redis answers. 503 otherwise, naming what is down (never how to reach it).
pub async fn readyz(core: web::Data<Arc<Core>>) -> HttpResponse {
    let database = match core.db.ping().await {
        Ok(()) => "ok",
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database not answering");
            "down"
        }
    };
    let redis = if core.redis.is_none() {
        "not configured"
    } else {
        match core.ping_redis().await {
            Ok(()) => "ok",
            Err(e) => {
                tracing::warn!(error = %e, "readiness: redis not answering");
                "down"
            }
        }
    };
    let ready = database == "ok" && redis != "down";
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "database": database,
        "database_backend": if core.db.is_sqlite() { "sqlite" } else { "postgres" },
        "redis": redis,
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus text exposition.
/// Prometheus metrics: with `HEIMDALL_METRICS_TOKEN` set, for a bearer of
/// that token only (401 otherwise); without it, only while Heimdall is
/// reachable from this machine alone (403 otherwise, saying what to set).
pub async fn metrics(core: web::Data<Arc<Core>>, req: HttpRequest) -> HttpResponse {
    use secrecy::ExposeSecret;
    use subtle::ConstantTimeEq;
    match &core.settings.metrics_token {
        Some(token) => {
            let presented = req
                .headers()
                .get("Authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            let expected = token.expose_secret().as_bytes();
            let ok = presented.len() == expected.len()
                && bool::from(presented.as_bytes().ct_eq(expected));
            if !ok {
                return HttpResponse::Unauthorized()
                    .insert_header(("WWW-Authenticate", "Bearer"))
                    .json(serde_json::json!({"error": {"code": "unauthorized", "message": "the metrics need HEIMDALL_METRICS_TOKEN as a bearer token"}}));
            }
        }
        None if !core.settings.only_this_machine() => {
            return HttpResponse::Forbidden().json(serde_json::json!({"error": {"code": "forbidden", "message": "set HEIMDALL_METRICS_TOKEN to read the metrics of a Heimdall reachable from elsewhere"}}));
        }
        None => {}
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::metrics::handle().render())
}
