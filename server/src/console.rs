//! The actix side of the staff console: the state its server functions
//! share, the one-time first-admin link announced in the log while no staff
//! account exists, the status of server-function requests the framework
//! itself could not read, the audit log's CSV download, and a message's
//! printable receipt.
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
use heimdall_domain::access::sessions;

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
            .route("/audit/export.csv", web::get().to(audit_csv))
            .route(
                "/inbox/{contact_id}/attachment",
                web::post().to(inbox_attachment),
            )
            .route("/media/{token}/{name}", web::get().to(attachment_file))
            .route("/messages/{id}/receipt", web::get().to(message_receipt));
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

/// `POST /inbox/{contact_id}/attachment` (multipart: `csrf`, then `file`): keep a file
/// for the reply to that contact (operator), and go back to the conversation with the
/// file's link in the reply form; an error goes back the same way, beside the field. A
/// plain form, so it works without JavaScript.
async fn inbox_attachment(
    req: HttpRequest,
    state: web::Data<ConsoleState>,
    path: web::Path<String>,
    mut payload: actix_multipart::Multipart,
) -> HttpResponse {
    use futures::TryStreamExt;
    use heimdall_app::model::Role;
    use heimdall_domain::channels::attachments;

    let contact_id = path.into_inner();
    let back = |query: (&str, &str)| {
        let id: String = contact_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let q = serde_urlencoded::to_string([query]).unwrap_or_default();
        HttpResponse::SeeOther()
            .insert_header((header::LOCATION, format!("/inbox/{id}?{q}#reply-box")))
            .finish()
    };
    let refuse = |message: String| back(("attachment_error", &message));
    // Who asks is settled before a byte of the body is read: nobody else makes this
    // process buffer a file.
    let ctx = match heimdall_app::server::staff_from_request(
        state.get_ref().clone(),
        &req,
        Role::Operator,
    )
    .await
    {
        Ok(ctx) => ctx,
        Err(heimdall_app::error::AppError::Unauthorized) => {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/login?next=/inbox"))
                .finish()
        }
        Err(e) => return refuse(e.to_string()),
    };
    let mut csrf = String::new();
    let mut file: Option<(String, Vec<u8>)> = None;
    loop {
        let field = match payload.try_next().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return refuse(format!("The upload could not be read: {e}")),
        };
        let name = field.name().unwrap_or_default().to_string();
        let file_name = field
            .content_disposition()
            .and_then(|d| d.get_filename())
            .unwrap_or_default()
            .to_string();
        let limit = if name == "file" {
            attachments::MAX_BYTES
        } else {
            4096
        };
        let mut bytes = Vec::new();
        let mut field = field;
        loop {
            match field.try_next().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > limit {
                        return refuse(format!(
                            "The file is larger than WhatsApp takes ({} MB at most).",
                            limit / (1024 * 1024)
                        ));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return refuse(format!("The upload could not be read: {e}")),
            }
        }
        match name.as_str() {
            "csrf" => csrf = String::from_utf8_lossy(&bytes).into_owned(),
            "file" => file = Some((file_name, bytes)),
            _ => {}
        }
    }
    if let Err(e) = heimdall_app::server::check_csrf(&ctx, &csrf) {
        return refuse(e.to_string());
    }
    let Some((file_name, bytes)) = file.filter(|(_, b)| !b.is_empty()) else {
        return refuse("Choose a file to attach.".into());
    };
    match attachments::store(ctx.core(), &file_name, &bytes, &ctx.actor()).await {
        Ok(stored) => {
            let url = stored.url(state.core.settings.public_base().as_str());
            if let Err(e) = ctx
                .audit(
                    "attachment_uploaded",
                    Some(&format!("attachment:{}", stored.id)),
                    Some(serde_json::json!({
                        "contact_id": contact_id,
                        "file_name": stored.file_name,
                        "content_type": stored.content_type,
                        "size": stored.size,
                        "sha256": stored.sha256,
                    })),
                )
                .await
            {
                tracing::error!(error = %e, "attachment upload: audit failed");
                return refuse("The upload could not be recorded; try again.".into());
            }
            back(("attachment", &url))
        }
        Err(attachments::AttachmentError::Db(e)) => {
            tracing::error!(error = %e, "attachment upload failed");
            refuse("The file could not be kept; try again.".into())
        }
        Err(e) => refuse(heimdall_app::server::capitalise(&e.to_string())),
    }
}

/// `GET /media/{token}/{name}`: an attachment, for the provider that sends it (and staff).
/// The token is the secret; the file is served as what its bytes are, never as a page.
async fn attachment_file(
    state: web::Data<ConsoleState>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (token, _name) = path.into_inner();
    match heimdall_domain::channels::attachments::open(&state.core, &token).await {
        Ok(Some((a, bytes))) => HttpResponse::Ok()
            .content_type(a.content_type.as_str())
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .insert_header((
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; sandbox",
            ))
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"{}\"", a.file_name),
            ))
            .insert_header((header::CACHE_CONTROL, "private, max-age=3600"))
            .body(bytes),
        Ok(None) => HttpResponse::NotFound().body("no such file"),
        Err(e) => {
            tracing::error!(error = %e, "attachment lookup failed");
            HttpResponse::ServiceUnavailable().body("try again later")
        }
    }
}

#[derive(Debug, serde::Deserialize)]
struct ReceiptQuery {
    format: Option<String>,
}

/// `GET /messages/{id}/receipt`: a message's receipt as a printable page
/// (`?format=json`: as JSON), for any signed-in staff member (every role
/// may read a contact's page, where the messages are listed).
async fn message_receipt(
    req: HttpRequest,
    state: web::Data<ConsoleState>,
    path: web::Path<String>,
    query: web::Query<ReceiptQuery>,
) -> HttpResponse {
    use heimdall_app::error::AppError;
    use heimdall_app::model::Role;

    let id = path.into_inner();
    // Message ids are UUIDs; anything else is named nowhere.
    let safe_id: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(64)
        .collect();
    let json = match query.format.as_deref() {
        None | Some("html") => false,
        Some("json") => true,
        Some(_) => return HttpResponse::BadRequest().body("format is json or html"),
    };
    match heimdall_app::server::staff_reading(state.get_ref().clone(), &req, Role::Viewer).await {
        Ok(_) => {}
        Err(AppError::Unauthorized) => {
            let next = format!("/messages/{safe_id}/receipt");
            let q = serde_urlencoded::to_string([("next", next.as_str())]).unwrap_or_default();
            return HttpResponse::Found()
                .insert_header((header::LOCATION, format!("/login?{q}")))
                .finish();
        }
        Err(AppError::Forbidden(m)) => return HttpResponse::Forbidden().body(m),
        Err(e) => {
            tracing::error!(error = %e, "receipt: session lookup failed");
            return HttpResponse::InternalServerError().body("internal error");
        }
    }
    let receipt = match heimdall_domain::reports::receipt(&state.core, &id).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return HttpResponse::NotFound()
                .content_type("text/plain; charset=utf-8")
                .body("No message has this id.")
        }
        Err(e) => {
            tracing::error!(error = %e, "receipt failed");
            return HttpResponse::ServiceUnavailable().body("try again later");
        }
    };
    if json {
        return HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(receipt);
    }
    let links = heimdall_app::receipt::ReceiptLinks {
        json: Some(format!("/messages/{safe_id}/receipt?format=json")),
        back: receipt
            .message
            .contact_id
            .as_ref()
            .map(|c| (format!("/contacts/{c}"), "Back to the contact".to_string())),
    };
    crate::routes::api::receipt_html_response(heimdall_app::receipt::receipt_page_html(
        &receipt, &links,
    ))
}
