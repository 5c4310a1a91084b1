//! The actix side of the staff console: the state its server functions
//! share, the one-time first-admin link announced in the log while no staff
//! account exists, the status of server-function requests the framework
//! itself could not read, and the audit log's CSV download.
//!
//! The console's rules live in `heimdall-app` (session and role checks) and
//! `heimdall-domain` (sessions); this module only wires them to HTTP. It
//! must never log a session token or a password; the first-admin link is
//! the one secret it logs, on purpose, once, while nobody can sign in.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use secrecy::ExposeSecret;

use heimdall_app::api::audit::AuditQuery;
use heimdall_app::server::{ConsoleState, ErrorAnswered};
use heimdall_domain::sessions;

/// The largest console form accepted (a pasted list of phone numbers).
pub const MAX_FORM_BYTES: usize = 1024 * 1024;

/// While no staff account exists, log a one-time link that creates the
/// first admin. Runs once at start-up, in the background.
/// The first-admin set-up page for a token.
pub fn setup_url(core: &heimdall_domain::Core, token: &secrecy::SecretString) -> String {
    let base = core.settings.public_base();
    format!(
        "{}/setup/{}",
        base.as_str().trim_end_matches('/'),
        token.expose_secret()
    )
}

pub async fn announce_first_admin_link(state: ConsoleState) {
    match state.first_admin.arm_if_needed(&state.core).await {
        Ok(Some((token, expires_at))) => {
            tracing::warn!(
                "no staff account exists yet: create the first admin at {} (this link works once, until {}; `heimdall user setup-link` prints a new one)",
                setup_url(&state.core, &token),
                expires_at.format("%H:%M UTC")
            );
        }
        Ok(None) => {}
        Err(e) => {
            tracing::error!(error = %e, "could not check for staff accounts; no first-admin link")
        }
    }
}

/// Server-function requests the framework could not read (missing or
/// malformed arguments) are the client's fault: 400, not 500. Errors the
/// console answered itself keep their status.
pub async fn server_fn_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    let answered = res.request().extensions().get::<ErrorAnswered>().is_some();
    if res.status() == StatusCode::INTERNAL_SERVER_ERROR
        && !answered
        && res.headers().contains_key("serverfnerror")
    {
        *res.response_mut().status_mut() = StatusCode::BAD_REQUEST;
    }
    Ok(res)
}

/// The console's own actix routes (besides the pages and server functions).
pub fn routes(state: ConsoleState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(state))
            .route("/audit/export.csv", web::get().to(audit_csv));
    }
}

/// The audit log as CSV, with the audit page's filters (any staff member).
async fn audit_csv(
    req: HttpRequest,
    state: web::Data<ConsoleState>,
    query: web::Query<AuditQuery>,
) -> HttpResponse {
    let token = req
        .cookie(state.cookie_name())
        .map(|c| c.value().to_string());
    let session = match token {
        Some(t) => match sessions::authenticate(&state.core, &t).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "audit export: session lookup failed");
                return HttpResponse::InternalServerError().body("internal error");
            }
        },
        None => None,
    };
    if session.is_none() {
        let html = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
        return if html {
            HttpResponse::Found()
                .insert_header((header::LOCATION, "/login?next=/audit"))
                .finish()
        } else {
            HttpResponse::Unauthorized().body("sign in first")
        };
    }
    let filter = match heimdall_app::api::audit::ssr::filter(&state.core, &query, 10_000) {
        Ok(f) => f,
        Err(e) => return HttpResponse::BadRequest().body(e.to_string()),
    };
    match heimdall_domain::reports::audit_csv(&state.core, &filter).await {
        Ok(csv) => {
            let name = format!(
                "heimdall-audit-{}.csv",
                state.core.now().format("%Y%m%d-%H%M")
            );
            HttpResponse::Ok()
                .content_type("text/csv; charset=utf-8")
                .insert_header((
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}\""),
                ))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .body(csv)
        }
        Err(e) => {
            tracing::error!(error = %e, "audit export failed");
            HttpResponse::InternalServerError().body("internal error")
        }
    }
}
