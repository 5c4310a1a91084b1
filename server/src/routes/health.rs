//! Liveness, readiness and metrics.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
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
pub async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::metrics::handle().render())
}
