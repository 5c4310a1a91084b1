//! Public opt-in pages and the staff API for forms and consent records.
//!
//! Public (no login): `/optin/{slug}` (the form; POST submits),
//! `/optin/confirm/{token}` (double opt-in: GET shows a button, POST
//! confirms, so a link preview cannot confirm for the person), `/q/{code}`
//! (QR landing: counts the scan, offers the form and a WhatsApp link;
//! POST submits through the code), `/q/{code}.svg`, `/q/{code}.png`,
//! `/q/{code}/print`, and `/optin-assets/optin.css`. Server-rendered HTML
//! that needs no JavaScript; every value is escaped by [`esc`].
//!
//! API (API key): `/api/v1/forms...`, `/api/v1/consents/import` (CSV) and
//! `/api/v1/contacts/{id}/consents/export`.
//!
//! Handlers parse the request, call `heimdall_domain::optin` and render;
//! the rules live there. The client address is the peer's, or the
//! `X-Forwarded-For` entry added by a proxy named in the admin setting
//! `optin_trusted_proxies` (none by default).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, LazyLock};

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;

use heimdall_domain::compliance::message_state::MessageState;
use heimdall_domain::contacts::ContactError;
use heimdall_domain::optin::{
    self, ChannelStatus, ConfirmationStatus, ConfirmationView, FieldErrors, Form, FormError,
    FormInput, FormUpdate, QrCode, QrInput, RequestEvidence, SubmissionInput, SubmissionLimiter,
    SubmitError, SubmitOutcome, SubmitReceipt, HONEYPOT_FIELD,
};
use heimdall_domain::{Channel, Core};

use crate::error::{ApiError, ErrorBody, ErrorDetail};
use crate::routes::api::ApiAuth;

/// One limiter per process (per address; shared through Redis when set).
static LIMITER: LazyLock<SubmissionLimiter> = LazyLock::new(SubmissionLimiter::default);

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

/// Escape text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Plain text as paragraphs: blank lines separate them, single newlines
/// break lines.
fn paragraphs(text: &str) -> String {
    text.split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            format!(
                "<p>{}</p>",
                p.lines().map(esc).collect::<Vec<_>>().join("<br>")
            )
        })
        .collect()
}

const CSS: &str = r#"*,*::before,*::after{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;font-size:1.0625rem;line-height:1.5;color:#1b1f24;background:#f3f4f6}
main{max-width:36rem;margin:0 auto;padding:1rem;background:#fff;min-height:100vh}
@media (min-width:40rem){main{margin:2rem auto;min-height:0;border-radius:12px;padding:2rem;box-shadow:0 1px 4px rgba(0,0,0,.12)}}
h1{font-size:1.6rem;line-height:1.25;margin:.25rem 0 1rem}
h2{font-size:1.15rem;margin:1.5rem 0 .5rem}
p{margin:0 0 1rem}
a{color:#0b57d0}
a:focus,button:focus,input:focus{outline:3px solid #f5b400;outline-offset:2px}
.field{margin:0 0 1.25rem}
label,legend{display:block;font-weight:600;margin-bottom:.25rem}
.hint{color:#4b5563;font-size:.95rem;margin:0 0 .35rem}
input[type=text],input[type=tel],input[type=email]{display:block;width:100%;font:inherit;padding:.7rem .75rem;border:2px solid #6b7280;border-radius:6px;background:#fff;color:inherit;min-height:48px}
.invalid input[type=text],.invalid input[type=tel],.invalid input[type=email]{border-color:#b3261e}
.error{color:#b3261e;font-weight:600;margin:.35rem 0 0}
fieldset{border:0;padding:0;margin:0 0 1.25rem;min-width:0}
fieldset.invalid{border-left:4px solid #b3261e;padding-left:.75rem}
.choice{display:flex;gap:.75rem;align-items:flex-start;padding:.75rem;border:2px solid #d1d5db;border-radius:8px;margin-top:.5rem}
.choice input{width:1.6rem;height:1.6rem;margin:.1rem 0 0;flex:none;accent-color:#0b57d0}
.choice label{font-weight:400;margin:0}
.choice strong{display:block}
.consent{display:block;color:#374151;font-size:.95rem}
button,.button{display:inline-block;width:100%;font:inherit;font-weight:700;padding:.85rem 1rem;border:0;border-radius:8px;background:#0b57d0;color:#fff;text-align:center;text-decoration:none;cursor:pointer;min-height:48px}
.button.whatsapp{background:#1a7f37}
.fine{color:#4b5563;font-size:.9rem;margin-top:1rem}
.summary{border:3px solid #b3261e;border-radius:8px;padding:1rem;margin:0 0 1.5rem}
.summary h2{margin-top:0;color:#b3261e}
.summary ul{margin:0;padding-left:1.25rem}
.notice{border-left:4px solid #0b57d0;background:#eef4ff;padding:.75rem 1rem;margin:0 0 1.25rem}
.status{list-style:none;padding:0}
.status li{padding:.6rem 0;border-bottom:1px solid #e5e7eb}
.or{text-align:center;color:#4b5563;margin:1.5rem 0 .75rem}
.visually-hidden{position:absolute!important;width:1px!important;height:1px!important;padding:0!important;margin:-1px!important;overflow:hidden!important;clip:rect(0,0,0,0)!important;white-space:nowrap!important;border:0!important}
.hp{position:absolute!important;left:-10000px!important;top:auto!important;width:1px!important;height:1px!important;overflow:hidden!important}
.print{text-align:center}
.print svg{width:100%;max-width:18cm;height:auto}
.print .url{font-family:ui-monospace,monospace;word-break:break-all;font-size:1.1rem}
.print .label{font-size:1.3rem;font-weight:700}
@media print{body{background:#fff}main{box-shadow:none;margin:0;max-width:none}.noprint{display:none}@page{margin:1.5cm}}
"#;

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(CSS)
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

/// A whole page.
fn page(status: StatusCode, title: &str, body: &str) -> HttpResponse {
    html_headers(status).body(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><link rel=\"stylesheet\" href=\"/optin-assets/optin.css\">\
         <meta name=\"robots\" content=\"noindex\"></head><body><main>{body}</main></body></html>",
        esc(title)
    ))
}

fn message_page(status: StatusCode, title: &str, text: &str) -> HttpResponse {
    page(
        status,
        title,
        &format!("<h1>{}</h1>{}", esc(title), paragraphs(text)),
    )
}

fn not_found_page() -> HttpResponse {
    message_page(
        StatusCode::NOT_FOUND,
        "Page not found",
        "We couldn't find this sign-up page. Check the address, or ask the person who gave it to you.",
    )
}

fn error_page() -> HttpResponse {
    message_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "We couldn't save your answer because of a problem on our side. Nothing was recorded. Please try again in a few minutes.",
    )
}

fn channel_name(c: Channel) -> &'static str {
    match c {
        Channel::WhatsApp => "WhatsApp",
        Channel::Sms => "Text message (SMS)",
    }
}

/// What the form page shows besides the form itself.
struct FormPage<'a> {
    form: &'a Form,
    action: String,
    input: Option<&'a SubmissionInput>,
    errors: &'a FieldErrors,
    /// A general message above the form (rate limit).
    notice: Option<String>,
    qr: Option<&'a QrCode>,
    whatsapp_link: Option<String>,
}

fn error_id(field: &str) -> String {
    format!("{}-error", field.replace('_', "-"))
}

/// The input for a text field, with its label, hint and error.
#[allow(clippy::too_many_arguments)]
fn text_field(
    out: &mut String,
    errors: &FieldErrors,
    name: &str,
    id: &str,
    label: &str,
    hint: Option<&str>,
    kind: &str,
    autocomplete: &str,
    value: &str,
    required: bool,
) {
    let err = errors.get(name);
    let mut described = Vec::new();
    if hint.is_some() {
        described.push(format!("{id}-hint"));
    }
    if err.is_some() {
        described.push(error_id(name));
    }
    let _ = write!(
        out,
        "<div class=\"field{}\"><label for=\"{id}\">{}{}</label>",
        if err.is_some() { " invalid" } else { "" },
        esc(label),
        if required { "" } else { " (optional)" }
    );
    if let Some(h) = hint {
        let _ = write!(out, "<p class=\"hint\" id=\"{id}-hint\">{}</p>", esc(h));
    }
    let _ = write!(
        out,
        "<input type=\"{kind}\" id=\"{id}\" name=\"{}\" value=\"{}\" autocomplete=\"{autocomplete}\"{}{}{}{}>",
        esc(name),
        esc(value),
        if kind == "tel" { " inputmode=\"tel\"" } else { "" },
        if required { " required" } else { "" },
        if described.is_empty() {
            String::new()
        } else {
            format!(" aria-describedby=\"{}\"", described.join(" "))
        },
        if err.is_some() {
            " aria-invalid=\"true\""
        } else {
            ""
        },
    );
    if let Some(e) = err {
        let _ = write!(
            out,
            "<p class=\"error\" id=\"{}\"><span class=\"visually-hidden\">Error: </span>{}</p>",
            error_id(name),
            esc(e)
        );
    }
    out.push_str("</div>");
}

/// Where each error's field is, for the summary's links.
fn anchor_for(form: &Form, field: &str) -> String {
    match field {
        "channels" => form
            .channels
            .first()
            .map(|c| format!("channel-{}", c.channel.as_str()))
            .unwrap_or_else(|| "submit".into()),
        "form" => "submit".into(),
        f => f.replace('_', "-"),
    }
}

fn render_form(p: &FormPage<'_>) -> String {
    let form = p.form;
    let mut out = String::new();
    let value = |f: fn(&SubmissionInput) -> &str| p.input.map(f).unwrap_or("").to_string();
    let _ = write!(out, "<h1>{}</h1>", esc(&form.title));
    if let Some(q) = p.qr {
        let _ = write!(
            out,
            "<p class=\"hint\">You scanned our code at {}.</p>",
            esc(&q.source_label)
        );
    }
    out.push_str(&paragraphs(&form.intro));
    if !p.errors.is_empty() {
        out.push_str("<div class=\"summary\" role=\"alert\" tabindex=\"-1\" id=\"error-summary\" autofocus><h2>There is a problem</h2><ul>");
        let mut order: Vec<&String> = p.errors.keys().collect();
        let rank = |k: &str| match k {
            "form" => 0,
            "name" => 1,
            "phone" => 2,
            "channels" => 9,
            _ => 5,
        };
        order.sort_by_key(|k| rank(k));
        for k in order {
            let _ = write!(
                out,
                "<li><a href=\"#{}\">{}</a></li>",
                anchor_for(form, k),
                esc(&p.errors[k])
            );
        }
        out.push_str("</ul></div>");
    }
    if let Some(n) = &p.notice {
        let _ = write!(out, "<p class=\"notice\" role=\"status\">{}</p>", esc(n));
    }
    if !form.active {
        out.push_str("<p class=\"notice\">This sign-up form is closed.</p>");
    } else {
        let _ = write!(
            out,
            "<form method=\"post\" action=\"{}\" accept-charset=\"utf-8\">",
            esc(&p.action)
        );
        if let Some(e) = p.errors.get("form") {
            let _ = write!(out, "<p class=\"error\" id=\"form-error\">{}</p>", esc(e));
        }
        text_field(
            &mut out,
            p.errors,
            "name",
            "name",
            "Your name",
            None,
            "text",
            "name",
            &value(|i| &i.name),
            true,
        );
        text_field(
            &mut out,
            p.errors,
            "phone",
            "phone",
            "Mobile number",
            Some("Include the country code if your number is from another country, like +1 415 555 2671."),
            "tel",
            "tel",
            &value(|i| &i.phone),
            true,
        );
        for f in &form.fields {
            let name = format!("field_{}", f.key);
            let kind = if f.key.contains("email") {
                "email"
            } else {
                "text"
            };
            let auto = if f.key.contains("email") {
                "email"
            } else {
                "off"
            };
            let v = p
                .input
                .and_then(|i| i.fields.get(&f.key))
                .cloned()
                .unwrap_or_default();
            text_field(
                &mut out,
                p.errors,
                &name,
                &name.replace('_', "-"),
                &f.label,
                None,
                kind,
                auto,
                &v,
                f.required,
            );
        }
        let ch_err = p.errors.get("channels");
        let _ = write!(
            out,
            "<fieldset{}{}><legend>How may we message you?</legend><p class=\"hint\" id=\"channels-hint\">Tick each one you agree to. You can opt out at any time by replying STOP.</p>",
            if ch_err.is_some() { " class=\"invalid\"" } else { "" },
            if ch_err.is_some() {
                " aria-describedby=\"channels-hint channels-error\""
            } else {
                " aria-describedby=\"channels-hint\""
            }
        );
        if let Some(e) = ch_err {
            let _ = write!(
                out,
                "<p class=\"error\" id=\"channels-error\"><span class=\"visually-hidden\">Error: </span>{}</p>",
                esc(e)
            );
        }
        for text in &form.channels {
            let id = format!("channel-{}", text.channel.as_str());
            // The version beside each box is what the consent records.
            let ticked = p.input.is_some_and(|inp| inp.ticked(text.channel)) && ch_err.is_none();
            let _ = write!(
                out,
                "<div class=\"choice\"><input type=\"checkbox\" id=\"{id}\" name=\"channel\" value=\"{}\"{}><label for=\"{id}\"><strong>{}</strong><span class=\"consent\">{}</span></label><input type=\"hidden\" name=\"text_version_{}\" value=\"{}\"></div>",
                text.channel.as_str(),
                if ticked { " checked" } else { "" },
                esc(channel_name(text.channel)),
                esc(&text.text),
                text.channel.as_str(),
                text.version
            );
        }
        out.push_str("</fieldset>");
        let _ = write!(
            out,
            "<div class=\"hp\" aria-hidden=\"true\"><label for=\"{HONEYPOT_FIELD}\">Leave this field empty</label><input type=\"text\" id=\"{HONEYPOT_FIELD}\" name=\"{HONEYPOT_FIELD}\" value=\"\" tabindex=\"-1\" autocomplete=\"off\"></div>"
        );
        out.push_str("<button type=\"submit\" id=\"submit\">Sign up</button>");
        let _ = write!(
            out,
            "<p class=\"fine\">{}By signing up you agree to receive the messages you ticked. Reply STOP to opt out, HELP for help. Msg &amp; data rates may apply.</p>",
            if form.double_opt_in {
                "We'll send you a message to confirm. "
            } else {
                ""
            }
        );
        out.push_str("</form>");
    }
    if let Some(link) = &p.whatsapp_link {
        let _ = write!(
            out,
            "<p class=\"or\">or</p><a class=\"button whatsapp\" href=\"{}\" rel=\"noopener\">Message us on WhatsApp</a><p class=\"fine\">Writing to us lets us reply to you for 24 hours. It does not sign you up for messages.</p>",
            esc(link)
        );
    }
    out
}

fn form_response(status: StatusCode, p: &FormPage<'_>) -> HttpResponse {
    let title = if p.errors.is_empty() {
        p.form.title.clone()
    } else {
        format!("Error: {}", p.form.title)
    };
    page(status, &title, &render_form(p))
}

fn receipt_page(form: &Form, receipt: Option<&SubmitReceipt>, core: &Core) -> HttpResponse {
    let mut out = String::new();
    let _ = write!(out, "<h1>{}</h1>", esc(&form.title));
    out.push_str(&paragraphs(&form.thank_you));
    if let Some(r) = receipt {
        out.push_str("<ul class=\"status\">");
        for c in &r.channels {
            let name = channel_name(c.channel);
            let reply_to = core
                .settings
                .sender_for(c.channel)
                .filter(|s| s.starts_with('+'))
                .map(|s| format!(" to {s}"))
                .unwrap_or_default();
            let text = match c.status {
                ChannelStatus::Subscribed => "you're signed up.".to_string(),
                ChannelStatus::AlreadySubscribed => "you were already signed up.".to_string(),
                ChannelStatus::NeedsProofFromNumber => format!(
                    "this number opted out of our messages earlier, so a form cannot sign it up again. To receive messages again, send START{reply_to} from that phone on {}.",
                    match c.channel {
                        Channel::WhatsApp => "WhatsApp",
                        Channel::Sms => "SMS",
                    }
                ),
                ChannelStatus::AlreadyAwaitingConfirmation => {
                    "we already sent you a message to confirm. Reply YES to it, or open the link in it.".to_string()
                }
                ChannelStatus::AwaitingConfirmation => match &c.confirmation {
                    Some(m) if m.state == MessageState::Deferred => format!(
                        "we'll send you a message to confirm shortly ({}). Reply YES to it, or open the link in it.",
                        if m.gate.as_deref() == Some("quiet_hours") {
                            "we don't send texts at night"
                        } else {
                            "we're sending many messages right now"
                        }
                    ),
                    Some(m) if m.state == MessageState::Blocked => format!(
                        "we couldn't send you a confirmation message right now. To confirm, send YES{reply_to} on {}.",
                        match c.channel {
                            Channel::WhatsApp => "WhatsApp",
                            Channel::Sms => "SMS",
                        }
                    ),
                    Some(_) => "we've sent you a message to confirm. Reply YES to it, or open the link in it.".to_string(),
                    None => format!("please confirm by sending YES{reply_to}."),
                },
            };
            let _ = write!(
                out,
                "<li><strong>{}:</strong> {}</li>",
                esc(name),
                esc(&text)
            );
        }
        out.push_str("</ul>");
    }
    out.push_str("<p class=\"fine\">You can opt out at any time by replying STOP to any of our messages.</p>");
    page(StatusCode::OK, &form.title, &out)
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
    if let Err(wait) = LIMITER.check(core, ip).await {
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
        Err(SubmitError::Closed) => message_page(
            StatusCode::GONE,
            &form.title,
            "This sign-up form is closed. Nothing was saved.",
        ),
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
    // Inline the SVG element (without its XML declaration).
    let svg = svg
        .find("<svg")
        .map(|i| svg[i..].to_string())
        .unwrap_or_default();
    let body = format!(
        "<div class=\"print\"><h1>{}</h1><p>Scan with your phone's camera to sign up.</p>\
         <div role=\"img\" aria-label=\"QR code for {}\">{svg}</div>\
         <p class=\"url\">{}</p><p class=\"label\">{}</p>\
         <p class=\"noprint hint\">Print this page from your browser's menu. <a href=\"{}\">Download PNG</a> · <a href=\"{}\">Download SVG</a></p></div>",
        esc(&form.title),
        esc(&qr.url),
        esc(&qr.url),
        esc(&qr.source_label),
        esc(&format!("/q/{}.png?size=1200", qr.code)),
        esc(&format!("/q/{}.svg", qr.code)),
    );
    page(
        StatusCode::OK,
        &format!("{} — {}", form.title, qr.source_label),
        &body,
    )
}

fn confirmation_response(
    view: &ConfirmationView,
    token: &str,
    just_confirmed: bool,
) -> HttpResponse {
    let what = view.form_title.clone().unwrap_or_else(|| "our".to_string());
    let channel = channel_name(view.channel);
    match view.status {
        ConfirmationStatus::Pending => page(
            StatusCode::OK,
            "Confirm your sign-up",
            &format!(
                "<h1>Confirm your sign-up</h1><p>Press the button to confirm that you want {} messages by {}.</p>\
                 <form method=\"post\" action=\"/optin/confirm/{}\"><button type=\"submit\" id=\"confirm\">Yes, confirm</button></form>\
                 <p class=\"fine\">If you didn't ask for this, ignore the message: nothing will be sent to you. You can opt out at any time by replying STOP.</p>",
                esc(&what),
                esc(channel),
                esc(token)
            ),
        ),
        ConfirmationStatus::Confirmed => message_page(
            StatusCode::OK,
            if just_confirmed {
                "Thank you, you're confirmed"
            } else {
                "You're already confirmed"
            },
            &format!(
                "You'll receive {what} messages by {channel}. You can opt out at any time by replying STOP."
            ),
        ),
        ConfirmationStatus::Expired => message_page(
            StatusCode::GONE,
            "This link has expired",
            "Confirmation links work for 7 days. Reply YES to our message, or sign up again on the form.",
        ),
        ConfirmationStatus::Revoked => message_page(
            StatusCode::GONE,
            "You've opted out",
            "You opted out of these messages, so this link no longer confirms anything. To receive messages again, send START from your phone to the number that messaged you.",
        ),
    }
}

async fn confirm_page(core: web::Data<Arc<Core>>, token: web::Path<String>) -> HttpResponse {
    match optin::confirmation_view(&core, &token).await {
        Ok(Some(v)) => confirmation_response(&v, &token, false),
        Ok(None) => message_page(
            StatusCode::NOT_FOUND,
            "This link is not valid",
            "Check that you opened the whole link from our message.",
        ),
        Err(e) => {
            tracing::error!(error = %e, "could not look up a confirmation");
            error_page()
        }
    }
}

async fn confirm_submit(core: web::Data<Arc<Core>>, token: web::Path<String>) -> HttpResponse {
    match optin::confirm(&core, &token).await {
        Ok(Some(v)) => confirmation_response(&v, &token, true),
        Ok(None) => message_page(
            StatusCode::NOT_FOUND,
            "This link is not valid",
            "Check that you opened the whole link from our message.",
        ),
        Err(e) => {
            tracing::error!(error = %e, "could not confirm");
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
    /// The text shown beside the channel's checkbox.
    text: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/forms/{id}/consent-texts",
    tag = "Forms",
    summary = "A new version of a channel's consent text",
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
    match optin::add_consent_text(&core, &id, body.channel, &body.text, &auth.0.actor()).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(paragraphs("a\nb\n\n<c>"), "<p>a<br>b</p><p>&lt;c&gt;</p>");
    }
}
