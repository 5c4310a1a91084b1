//! Public opt-in pages and the staff API for forms and consent records.
//!
//! Public (no login): `/optin/{slug}` (the form; POST submits),
//! `/optin/confirm/{token}` (double opt-in: GET shows a button, POST
//! confirms, so a link preview cannot confirm for the person), `/q/{code}`
//! (QR landing: counts the scan, offers the form and a WhatsApp link;
//! POST submits through the code), `/q/{code}.svg`, `/q/{code}.png`,
//! `/q/{code}/print`, and `/optin-assets/optin.css`. The pages are
//! rendered on the server by [`heimdall_app::public`] (Leptos components,
//! never hydrated): HTML that needs no JavaScript, every value escaped.
//!
//! API (API key): `/api/v1/forms...`, `/api/v1/consents/import` (CSV) and
//! `/api/v1/contacts/{id}/consents/export`.
//!
//! Handlers parse the request, call `heimdall_domain::optin`, choose the
//! status code and headers, and send the page `heimdall_app::public`
//! renders; the rules live in the domain. The client address is the
//! peer's, or the `X-Forwarded-For` entry added by a proxy named in the
//! admin setting `optin_trusted_proxies` (none by default).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;

use heimdall_app::public::{self, FormPage};
use heimdall_domain::consent::preferences::{self, PreferenceError, Withdrawal};
use heimdall_domain::contacts::ContactError;
use heimdall_domain::optin::{
    self, ConfirmationStatus, ConfirmationView, FieldErrors, Form, FormError, FormInput,
    FormUpdate, QrCode, QrInput, RequestEvidence, SubmissionInput, SubmitError, SubmitOutcome,
    SubmitReceipt,
};
use heimdall_domain::{Channel, Core};

use crate::error::{ApiError, ErrorBody, ErrorDetail};
use crate::routes::api::ApiAuth;

/// The largest CSV import accepted.
const MAX_IMPORT_BYTES: usize = 5 * 1024 * 1024;

/// This module's API operations in the OpenAPI document
/// ([`crate::openapi`]); the public pages are HTML for people, not API.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    api_create_form,
    api_list_forms,
    api_get_form,
    api_update_form,
    api_add_consent_text,
    api_create_qr,
    api_import,
    api_export
))]
pub struct Docs;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/optin-assets/optin.css", web::get().to(stylesheet))
        .route("/optin/confirm/{token}", web::get().to(confirm_page))
        .route("/optin/confirm/{token}", web::post().to(confirm_submit))
        .route("/p/{token}", web::get().to(preferences_page))
        .route("/p/{token}", web::post().to(preferences_submit))
        .route("/optin/{slug}", web::get().to(form_page))
        .route("/optin/{slug}", web::post().to(form_submit))
        .route("/q/{code:[A-Za-z0-9]{4,32}}.svg", web::get().to(qr_svg))
        .route("/q/{code:[A-Za-z0-9]{4,32}}.png", web::get().to(qr_png))
        .route("/q/{code:[A-Za-z0-9]{4,32}}/print", web::get().to(qr_print))
        .route("/q/{code}", web::get().to(qr_landing))
        .route("/q/{code}", web::post().to(qr_submit))
        .route("/api/v1/forms", web::post().to(api_create_form))
        .route("/api/v1/forms", web::get().to(api_list_forms))
        .route("/api/v1/forms/{id}", web::get().to(api_get_form))
        .route("/api/v1/forms/{id}", web::patch().to(api_update_form))
        .route(
            "/api/v1/forms/{id}/consent-texts",
            web::post().to(api_add_consent_text),
        )
        .route("/api/v1/forms/{id}/qr-codes", web::post().to(api_create_qr))
        .route("/api/v1/consents/import", web::post().to(api_import))
        .route(
            "/api/v1/contacts/{id}/consents/export",
            web::get().to(api_export),
        );
}

// ---------------------------------------------------------------------------
// HTML

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(public::STYLESHEET)
}

fn html_headers(status: StatusCode) -> HttpResponseBuilder {
    let mut b = HttpResponse::build(status);
    b.content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ));
    b
}

/// A whole page, rendered by [`heimdall_app::public`].
fn page(status: StatusCode, html: String) -> HttpResponse {
    html_headers(status).body(html)
}

fn not_found_page() -> HttpResponse {
    page(StatusCode::NOT_FOUND, public::not_found_page_html())
}

fn error_page() -> HttpResponse {
    page(StatusCode::INTERNAL_SERVER_ERROR, public::error_page_html())
}

fn form_response(status: StatusCode, p: &FormPage<'_>) -> HttpResponse {
    page(status, public::form_page_html(p))
}

fn receipt_page(form: &Form, receipt: Option<&SubmitReceipt>, core: &Core) -> HttpResponse {
    page(
        StatusCode::OK,
        public::receipt_page_html(form, receipt, |c| core.settings.sender_for(c)),
    )
}

// ---------------------------------------------------------------------------
// Public handlers

fn user_agent(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The client's address: the peer, or `X-Forwarded-For` from a trusted
/// proxy.
pub async fn client_address(core: &Core, req: &HttpRequest) -> IpAddr {
    let peer = req
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let trusted = match optin::trusted_proxies(core).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the trusted proxies; using the peer address");
            vec![]
        }
    };
    let xff = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    optin::client_ip(peer, xff, &trusted)
}

fn parse_body(body: &[u8]) -> Option<SubmissionInput> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()
        .map(SubmissionInput::from_pairs)
}

async fn form_page(core: web::Data<Arc<Core>>, slug: web::Path<String>) -> HttpResponse {
    match optin::form_by_slug(&core, &slug).await {
        Ok(Some(form)) => form_response(
            if form.active {
                StatusCode::OK
            } else {
                StatusCode::GONE
            },
            &FormPage {
                action: format!("/optin/{}", form.slug),
                form: &form,
                input: None,
                errors: &FieldErrors::new(),
                notice: None,
                qr: None,
                whatsapp_link: None,
            },
        ),
        Ok(None) => not_found_page(),
        Err(e) => {
            tracing::error!(error = %e, "could not load an opt-in form");
            error_page()
        }
    }
}

async fn form_submit(
    req: HttpRequest,
    core: web::Data<Arc<Core>>,
    slug: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let form = match optin::form_by_slug(&core, &slug).await {
        Ok(Some(f)) => f,
        Ok(None) => return not_found_page(),
        Err(e) => {
            tracing::error!(error = %e, "could not load an opt-in form");
            return error_page();
        }
    };
    let action = format!("/optin/{}", form.slug);
    submit(&req, &core, &form, None, None, action, &body).await
}

/// The shared POST path of `/optin/{slug}` and `/q/{code}`.
async fn submit(
    req: &HttpRequest,
    core: &Core,
    form: &Form,
    qr: Option<&QrCode>,
    whatsapp_link: Option<String>,
    action: String,
    body: &[u8],
) -> HttpResponse {
    let ip = client_address(core, req).await;
    let input = parse_body(body);
    let render = |status, input: Option<&SubmissionInput>, errors: &FieldErrors, notice| {
        form_response(
            status,
            &FormPage {
                form,
                action: action.clone(),
                input,
                errors,
                notice,
                qr,
                whatsapp_link: whatsapp_link.clone(),
            },
        )
    };
    if let Err(wait) = core.optin_limiter.check(core, ip).await {
        tracing::warn!(%ip, form = %form.slug, "opt-in submissions from this address are over the limit");
        let minutes = wait.as_secs().div_ceil(60).max(1);
        let mut res = render(
            StatusCode::TOO_MANY_REQUESTS,
            input.as_ref(),
            &FieldErrors::new(),
            Some(format!(
                "We've had too many sign-ups from your network. Nothing was saved. Please try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            )),
        );
        if let Ok(v) = header::HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return res;
    }
    let Some(input) = input else {
        let mut errors = FieldErrors::new();
        errors.insert(
            "form".into(),
            "We couldn't read what your browser sent. Please fill in the form again.".into(),
        );
        return render(StatusCode::BAD_REQUEST, None, &errors, None);
    };
    let path = match qr {
        Some(q) => format!("/q/{}", q.code),
        None => format!("/optin/{}", form.slug),
    };
    let evidence = RequestEvidence {
        ip,
        user_agent: user_agent(req),
        page_url: optin::public_url(core, &path),
    };
    match optin::submit(core, form, qr, &input, &evidence).await {
        Ok(SubmitOutcome::Discarded) => receipt_page(form, None, core),
        Ok(SubmitOutcome::Recorded(r)) => receipt_page(form, Some(&r), core),
        Err(SubmitError::Invalid(errors)) => {
            render(StatusCode::BAD_REQUEST, Some(&input), &errors, None)
        }
        Err(SubmitError::Closed) => page(StatusCode::GONE, public::form_closed_page_html(form)),
        Err(SubmitError::Db(e)) => {
            tracing::error!(error = %e, form = %form.slug, "could not record an opt-in");
            error_page()
        }
    }
}

async fn qr_landing(core: web::Data<Arc<Core>>, code: web::Path<String>) -> HttpResponse {
    match optin::record_scan(&core, &code).await {
        Ok(Some((qr, form))) => {
            let link = optin::whatsapp_link(&core, &qr);
            form_response(
                StatusCode::OK,
                &FormPage {
                    action: format!("/q/{}", qr.code),
                    form: &form,
                    input: None,
                    errors: &FieldErrors::new(),
                    notice: None,
                    qr: Some(&qr),
                    whatsapp_link: link,
                },
            )
        }
        Ok(None) => not_found_page(),
        Err(e) => {
            tracing::error!(error = %e, "could not load a QR code");
            error_page()
        }
    }
}

async fn qr_submit(
    req: HttpRequest,
    core: web::Data<Arc<Core>>,
    code: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let (qr, form) = match optin::find_qr_code(&core, &code).await {
        Ok(Some(found)) => found,
        Ok(None) => return not_found_page(),
        Err(e) => {
            tracing::error!(error = %e, "could not load a QR code");
            return error_page();
        }
    };
    let link = optin::whatsapp_link(&core, &qr);
    let action = format!("/q/{}", qr.code);
    submit(&req, &core, &form, Some(&qr), link, action, &body).await
}

fn image_response(content_type: &str, body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(body)
}

async fn qr_svg(core: web::Data<Arc<Core>>, code: web::Path<String>) -> HttpResponse {
    match optin::find_qr_code(&core, &code).await {
        Ok(Some((qr, _))) => match optin::qr_svg(&qr.url) {
            Ok(svg) => image_response("image/svg+xml", svg.into_bytes()),
            Err(e) => {
                tracing::error!(error = %e, "QR SVG");
                HttpResponse::InternalServerError().finish()
            }
        },
        Ok(None) => HttpResponse::NotFound().finish(),
        Err(e) => {
            tracing::error!(error = %e, "could not load a QR code");
            HttpResponse::InternalServerError().finish()
        }
    }
}

#[derive(Debug, Deserialize)]
struct PngQuery {
    size: Option<u32>,
}

async fn qr_png(
    core: web::Data<Arc<Core>>,
    code: web::Path<String>,
    q: web::Query<PngQuery>,
) -> HttpResponse {
    match optin::find_qr_code(&core, &code).await {
        Ok(Some((qr, _))) => match optin::qr_png(&qr.url, q.size.unwrap_or(512)) {
            Ok(png) => image_response("image/png", png),
            Err(e) => {
                tracing::error!(error = %e, "QR PNG");
                HttpResponse::InternalServerError().finish()
            }
        },
        Ok(None) => HttpResponse::NotFound().finish(),
        Err(e) => {
            tracing::error!(error = %e, "could not load a QR code");
            HttpResponse::InternalServerError().finish()
        }
    }
}

async fn qr_print(core: web::Data<Arc<Core>>, code: web::Path<String>) -> HttpResponse {
    let (qr, form) = match optin::find_qr_code(&core, &code).await {
        Ok(Some(found)) => found,
        Ok(None) => return not_found_page(),
        Err(e) => {
            tracing::error!(error = %e, "could not load a QR code");
            return error_page();
        }
    };
    let svg = match optin::qr_svg(&qr.url) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "QR SVG");
            return error_page();
        }
    };
    page(StatusCode::OK, public::qr_print_page_html(&form, &qr, &svg))
}

fn confirmation_response(
    view: &ConfirmationView,
    token: &str,
    just_confirmed: bool,
) -> HttpResponse {
    let status = match view.status {
        ConfirmationStatus::Pending | ConfirmationStatus::Confirmed => StatusCode::OK,
        ConfirmationStatus::Expired | ConfirmationStatus::Revoked => StatusCode::GONE,
    };
    page(
        status,
        public::confirmation_page_html(view, token, just_confirmed),
    )
}

async fn confirm_page(core: web::Data<Arc<Core>>, token: web::Path<String>) -> HttpResponse {
    match optin::confirmation_view(&core, &token).await {
        Ok(Some(v)) => confirmation_response(&v, &token, false),
        Ok(None) => page(StatusCode::NOT_FOUND, public::invalid_link_page_html()),
        Err(e) => {
            tracing::error!(error = %e, "could not look up a confirmation");
            error_page()
        }
    }
}

async fn confirm_submit(core: web::Data<Arc<Core>>, token: web::Path<String>) -> HttpResponse {
    match optin::confirm(&core, &token).await {
        Ok(Some(v)) => confirmation_response(&v, &token, true),
        Ok(None) => page(StatusCode::NOT_FOUND, public::invalid_link_page_html()),
        Err(e) => {
            tracing::error!(error = %e, "could not confirm");
            error_page()
        }
    }
}

// ---------------------------------------------------------------------------
// The preference page (`/p/{token}`, from the HELP reply)

async fn preferences_page(core: web::Data<Arc<Core>>, token: web::Path<String>) -> HttpResponse {
    match preferences::view(&core, &token).await {
        Ok(Some(v)) => page(
            StatusCode::OK,
            public::preferences_page_html(&v, &token, None),
        ),
        Ok(None) => page(StatusCode::NOT_FOUND, public::invalid_link_page_html()),
        Err(e) => {
            tracing::error!(error = %e, "could not read a preference page");
            error_page()
        }
    }
}

/// What the page's buttons post: `what=everything`, or
/// `what=purpose&channel=...&purpose=...`.
fn withdrawal(body: &[u8]) -> Option<Withdrawal> {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match get("what")? {
        "everything" => Some(Withdrawal::Everything),
        "purpose" => Some(Withdrawal::Purpose {
            channel: get("channel")?.parse().ok()?,
            purpose: get("purpose")?.trim().to_string(),
        }),
        _ => None,
    }
}

async fn preferences_submit(
    core: web::Data<Arc<Core>>,
    req: HttpRequest,
    token: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let ip = client_address(&core, &req).await;
    if let Err(wait) = core.preference_limiter.check(&core, ip).await {
        tracing::warn!(%ip, "preference page posts from this address are over the limit");
        let mut res = page(
            StatusCode::TOO_MANY_REQUESTS,
            public::message_page_html(
                "Too many requests",
                "Nothing was changed. Please try again in a minute, or reply STOP to our message: that always works.",
            ),
        );
        if let Ok(v) = header::HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return res;
    }
    let Some(what) = withdrawal(&body) else {
        return match preferences::view(&core, &token).await {
            Ok(Some(v)) => page(
                StatusCode::BAD_REQUEST,
                public::preferences_page_html(
                    &v,
                    &token,
                    Some("Nothing was changed: choose one of the buttons below."),
                ),
            ),
            Ok(None) => page(StatusCode::NOT_FOUND, public::invalid_link_page_html()),
            Err(e) => {
                tracing::error!(error = %e, "could not read a preference page");
                error_page()
            }
        };
    };
    match preferences::withdraw(&core, &token, &what).await {
        Ok(Some(v)) => {
            let done = match &what {
                Withdrawal::Everything => {
                    "Done: you will receive nothing more from us, on any channel.".to_string()
                }
                Withdrawal::Purpose { channel, purpose } => format!(
                    "Done: you will receive no more {} messages by {}.",
                    v.channels
                        .iter()
                        .flat_map(|c| &c.purposes)
                        .find(|p| &p.purpose.name == purpose)
                        .map(|p| p.purpose.label.to_lowercase())
                        .unwrap_or_else(|| purpose.clone()),
                    public::channel_name(*channel)
                ),
            };
            page(
                StatusCode::OK,
                public::preferences_page_html(&v, &token, Some(&done)),
            )
        }
        Ok(None) => page(StatusCode::NOT_FOUND, public::invalid_link_page_html()),
        Err(PreferenceError::UnknownPurpose(_)) => match preferences::view(&core, &token).await {
            Ok(Some(v)) => page(
                StatusCode::BAD_REQUEST,
                public::preferences_page_html(
                    &v,
                    &token,
                    Some("Nothing was changed: that is not one of the kinds of message listed below."),
                ),
            ),
            _ => page(StatusCode::NOT_FOUND, public::invalid_link_page_html()),
        },
        Err(PreferenceError::Db(e)) => {
            tracing::error!(error = %e, "could not record a withdrawal");
            error_page()
        }
    }
}

// ---------------------------------------------------------------------------
// API

fn form_error(e: FormError) -> Result<HttpResponse, ApiError> {
    match e {
        FormError::Invalid(fields) => Ok(HttpResponse::BadRequest().json(ErrorBody {
            error: ErrorDetail {
                code: "invalid_form".into(),
                message: FormError::Invalid(fields.clone()).to_string(),
                scope: None,
                fields: Some(fields),
            },
        })),
        FormError::SlugTaken(s) => Err(ApiError::Conflict(format!(
            "a form with the slug '{s}' already exists"
        ))),
        FormError::NotFound(id) => Err(ApiError::NotFound(format!("no form with id {id}"))),
        FormError::Db(e) => Err(e.into()),
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/forms",
    tag = "Forms",
    summary = "Create a public opt-in form",
    request_body = FormInput,
    responses(
        (status = 201, description = "Created: the form.", body = optin::Form),
        (status = 400, description = "`bad_request`: the body is not valid JSON or has unknown fields. `invalid_form`: a field is wrong (`fields` says which and why).", body = crate::error::ErrorBody),
        (status = 409, description = "`conflict`: a form with that slug exists.", body = crate::error::ErrorBody),
    )
)]
async fn api_create_form(
    core: web::Data<Arc<Core>>,
    auth: ApiAuth,
    body: web::Json<FormInput>,
) -> Result<HttpResponse, ApiError> {
    match optin::create_form(&core, &body, &auth.0.actor()).await {
        Ok(f) => Ok(HttpResponse::Created().json(f)),
        Err(e) => form_error(e),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/forms",
    tag = "Forms",
    summary = "List the opt-in forms",
    responses(
        (status = 200, description = "`forms`.", body = Object),
    )
)]
async fn api_list_forms(
    core: web::Data<Arc<Core>>,
    _auth: ApiAuth,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(json!({"forms": optin::list_forms(&core).await?})))
}

#[utoipa::path(
    get,
    path = "/api/v1/forms/{id}",
    tag = "Forms",
    summary = "One form with its statistics, consent text versions and QR codes",
    params(("id" = String, Path, description = "The form's id.")),
    responses(
        (status = 200, description = "`form`, `stats`, `consent_texts`, `qr_codes` (each with its `whatsapp_link`).", body = Object),
        (status = 404, description = "`not_found`: no form with that id.", body = crate::error::ErrorBody),
    )
)]
async fn api_get_form(
    core: web::Data<Arc<Core>>,
    _auth: ApiAuth,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let form = match optin::get_form(&core, &id).await {
        Ok(f) => f,
        Err(e) => return form_error(e),
    };
    let qr_codes: Vec<serde_json::Value> = optin::list_qr_codes(&core, &form.id)
        .await?
        .into_iter()
        .map(|q| {
            let link = optin::whatsapp_link(&core, &q);
            let mut v = json!(q);
            v["whatsapp_link"] = json!(link);
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "stats": optin::form_stats(&core, &form.id).await?,
        "consent_texts": optin::consent_text_history(&core, &form.id).await?,
        "qr_codes": qr_codes,
        "form": form,
    })))
}

#[utoipa::path(
    patch,
    path = "/api/v1/forms/{id}",
    tag = "Forms",
    summary = "Change a form (what is left out stays)",
    params(("id" = String, Path, description = "The form's id.")),
    request_body = FormUpdate,
    responses(
        (status = 200, description = "The form.", body = optin::Form),
        (status = 400, description = "`bad_request`: the body is not valid JSON or has unknown fields. `invalid_form`: a field is wrong (`fields` says which and why).", body = crate::error::ErrorBody),
        (status = 404, description = "`not_found`: no form with that id.", body = crate::error::ErrorBody),
    )
)]
async fn api_update_form(
    core: web::Data<Arc<Core>>,
    auth: ApiAuth,
    id: web::Path<String>,
    body: web::Json<FormUpdate>,
) -> Result<HttpResponse, ApiError> {
    match optin::update_form(&core, &id, &body, &auth.0.actor()).await {
        Ok(f) => Ok(HttpResponse::Ok().json(f)),
        Err(e) => form_error(e),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ConsentTextBody {
    channel: Channel,
    /// The purpose the checkbox asks about (a defined purpose); without
    /// one, the channel is asked once. A form asks for a channel either
    /// once or per purpose.
    #[serde(default)]
    purpose: Option<String>,
    /// The text shown beside the checkbox.
    text: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/forms/{id}/consent-texts",
    tag = "Forms",
    summary = "A new version of a checkbox's consent text (a channel's, or a channel's for one purpose)",
    params(("id" = String, Path, description = "The form's id.")),
    request_body = ConsentTextBody,
    responses(
        (status = 201, description = "The new version (now current).", body = optin::ConsentTextVersion),
        (status = 400, description = "`bad_request`: the body is not valid JSON or has unknown fields. `invalid_form`: a field is wrong (`fields` says which and why).", body = crate::error::ErrorBody),
        (status = 404, description = "`not_found`: no form with that id.", body = crate::error::ErrorBody),
    )
)]
async fn api_add_consent_text(
    core: web::Data<Arc<Core>>,
    auth: ApiAuth,
    id: web::Path<String>,
    body: web::Json<ConsentTextBody>,
) -> Result<HttpResponse, ApiError> {
    match optin::add_consent_text(
        &core,
        &id,
        body.channel,
        body.purpose.as_deref(),
        &body.text,
        &auth.0.actor(),
    )
    .await
    {
        Ok(v) => Ok(HttpResponse::Created().json(v)),
        Err(e) => form_error(e),
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/forms/{id}/qr-codes",
    tag = "Forms",
    summary = "A QR code for a form, with where it is put up",
    params(("id" = String, Path, description = "The form's id.")),
    request_body = QrInput,
    responses(
        (status = 201, description = "The QR code with its `whatsapp_link`.", body = optin::QrCode),
        (status = 400, description = "`bad_request`: the body is not valid JSON or has unknown fields. `invalid_form`: a field is wrong (`fields` says which and why).", body = crate::error::ErrorBody),
        (status = 404, description = "`not_found`: no form with that id.", body = crate::error::ErrorBody),
    )
)]
async fn api_create_qr(
    core: web::Data<Arc<Core>>,
    auth: ApiAuth,
    id: web::Path<String>,
    body: web::Json<QrInput>,
) -> Result<HttpResponse, ApiError> {
    match optin::create_qr_code(&core, &id, &body, &auth.0.actor()).await {
        Ok(q) => {
            let link = optin::whatsapp_link(&core, &q);
            let mut v = json!(q);
            v["whatsapp_link"] = json!(link);
            Ok(HttpResponse::Created().json(v))
        }
        Err(e) => form_error(e),
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/consents/import",
    tag = "Consents",
    summary = "Import consent records from a CSV file",
    request_body(content = String, content_type = "text/csv", description = "UTF-8 CSV with a header row, at most 5 MiB."),
    responses(
        (status = 200, description = "The import report: rows imported and each row refused with why.", body = optin::ImportReport),
        (status = 400, description = "`invalid_csv`: the body is empty, not UTF-8 or not a CSV file this import reads.", body = crate::error::ErrorBody),
        (status = 413, description = "`payload_too_large`: the file is over 5 MiB.", body = crate::error::ErrorBody),
    )
)]
async fn api_import(
    core: web::Data<Arc<Core>>,
    auth: ApiAuth,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad(format!("could not read the body: {e}")))?;
        if body.len() + chunk.len() > MAX_IMPORT_BYTES {
            return Err(ApiError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::BadRequest {
        code: "invalid_csv",
        message: "the CSV must be UTF-8 text".into(),
    })?;
    if text.trim().is_empty() {
        return Err(ApiError::BadRequest {
            code: "invalid_csv",
            message: "the body is empty: send the CSV file (text/csv)".into(),
        });
    }
    match optin::import_consents(&core, text, &auth.0.actor()).await {
        Ok(report) => Ok(HttpResponse::Ok().json(report)),
        Err(optin::ImportError::File(m)) => Err(ApiError::BadRequest {
            code: "invalid_csv",
            message: m,
        }),
        Err(optin::ImportError::Db(e)) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
struct ExportQuery {
    format: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/contacts/{id}/consents/export",
    tag = "Consents",
    summary = "A contact's consent records as a file",
    params(
        ("id" = String, Path, description = "The contact's id."),
        ("format" = Option<String>, Query, description = "`json` (default) or `csv`.")
    ),
    responses(
        (status = 200, description = "The records, as an attachment.", content(("application/json"), ("text/csv"))),
        (status = 400, description = "`bad_request`: `format` is not `json` or `csv`.", body = crate::error::ErrorBody),
        (status = 404, description = "`not_found`: no contact with that id.", body = crate::error::ErrorBody),
    )
)]
async fn api_export(
    core: web::Data<Arc<Core>>,
    _auth: ApiAuth,
    id: web::Path<String>,
    q: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let format = q.format.as_deref().unwrap_or("json").to_ascii_lowercase();
    let map = |e: ContactError| match e {
        ContactError::NotFound(id) => ApiError::NotFound(format!("no contact with id {id}")),
        ContactError::Db(e) => e.into(),
        other => ApiError::bad(other.to_string()),
    };
    // Contact ids are UUIDs; anything else cannot name a file safely.
    let safe_id: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    match format.as_str() {
        "json" => {
            let body = optin::export_consents_json(&core, &id).await.map_err(map)?;
            Ok(HttpResponse::Ok()
                .content_type("application/json")
                .insert_header((
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"consents-{safe_id}.json\""),
                ))
                .body(body))
        }
        "csv" => {
            let body = optin::export_consents_csv(&core, &id).await.map_err(map)?;
            Ok(HttpResponse::Ok()
                .content_type("text/csv; charset=utf-8")
                .insert_header((
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"consents-{safe_id}.csv\""),
                ))
                .body(body))
        }
        other => Err(ApiError::bad(format!(
            "format '{other}' is not json or csv"
        ))),
    }
}
