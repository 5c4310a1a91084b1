//! Liveness, readiness and metrics.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use heimdall_domain::Core;

/// This module's operations in the OpenAPI document ([`crate::openapi`]).
#[derive(utoipa::OpenApi)]
#[openapi(paths(healthz, readyz, metrics))]
pub struct Docs;

/// The process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "Health",
    summary = "The process is up",
    responses(
        (status = 200, description = "`status`: `ok`.", body = Object),
    )
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The process can do its work: the database answers and, when configured,
/// Redis answers. 503 otherwise, naming what is down (never how to reach it).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "Health",
    summary = "The process can do its work (database and Redis answer)",
    responses(
        (status = 200, description = "`status` `ready`, `database`, `database_backend`, `redis`.", body = Object),
        (status = 503, description = "`status` `not ready`, naming what is down.", body = Object, extensions(("x-heimdall-untested" = json!("needs the database to stop answering")))),
    )
)]
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

/// Prometheus metrics: with `HEIMDALL_METRICS_TOKEN` set, for a bearer of
/// that token only (401 otherwise); without it, only while Heimdall is
/// reachable from this machine alone (403 otherwise, saying what to set).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "Health",
    summary = "Prometheus metrics",
    security(("metrics_token" = [])),
    description = "With `HEIMDALL_METRICS_TOKEN` set, for a bearer of that token only; without it, only while Heimdall is reachable from this machine alone.",
    responses(
        (status = 200, description = "The Prometheus text exposition.", content_type = "text/plain; version=0.0.4", body = String),
        (status = 401, description = "`unauthorized`: `HEIMDALL_METRICS_TOKEN` is set and was not presented as a bearer token.", body = crate::error::ErrorBody),
        (status = 403, description = "`forbidden`: no `HEIMDALL_METRICS_TOKEN` is set and Heimdall is reachable from elsewhere.", body = crate::error::ErrorBody),
    )
)]
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
                let mut answer = crate::error::error_answer(
                    actix_web::http::StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "the metrics need HEIMDALL_METRICS_TOKEN as a bearer token",
                );
                answer.headers_mut().insert(
                    actix_web::http::header::WWW_AUTHENTICATE,
                    actix_web::http::header::HeaderValue::from_static("Bearer"),
                );
                return answer;
            }
        }
        None if !core.settings.only_this_machine() => {
            return crate::error::error_answer(actix_web::http::StatusCode::FORBIDDEN, "forbidden", "set HEIMDALL_METRICS_TOKEN to read the metrics of a Heimdall reachable from elsewhere");
        }
        None => {}
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::metrics::handle().render())
}
