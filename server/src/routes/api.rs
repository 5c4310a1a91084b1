//! The internal API for automations: `X-API-Key` or `Authorization: Bearer`.
//! Handlers parse input into domain types, call the domain, map errors. A
//! message refused by a gate is HTTP 422 with the gate's reason code, and
//! it is still recorded.

use heimdall_domain::compliance::message_source::MessageSource;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use heimdall_domain::access::authz::{self, ApiPrincipal};
use heimdall_domain::channels::formatting::TextFormat;
use heimdall_domain::compliance::gates::Decision;
use heimdall_domain::compliance::message_state::MessageState;
use heimdall_domain::contacts::{self, ContactInput};
use heimdall_domain::entities::api_key::{Scope, Scopes};

use heimdall_domain::consent::{ConsentEvidence, ConsentSource};
use heimdall_domain::entities::outbound_message;
use heimdall_domain::sending::outbound::{
    self, AcceptError, Origin, Outcome, Recipient, RequestedContent, SendRequest,
};
use heimdall_domain::{templates, Channel, Core, PhoneNumber};

use crate::error::ApiError;

/// An authenticated API caller whose key has the scope its route needs
/// ([`scope_for`]): extracted before the request's body, so a key without
/// the scope learns nothing about the route but that (403, the scope named).
pub struct ApiAuth(pub ApiPrincipal, pub Scopes);

/// The scope every API route needs: the one table of them. A route that is
/// missing here is refused to every key (and a test lists every route).
pub const ROUTE_SCOPES: &[(&str, &str, Scope)] = &[
    ("POST", "/api/whatsapp/send", Scope::Send),
    ("GET", "/api/whatsapp/templates", Scope::Send),
    ("GET", "/api/whatsapp/session/{phone}", Scope::Send),
    ("POST", "/api/v1/contacts", Scope::ContactsWrite),
    ("GET", "/api/v1/contacts", Scope::ContactsRead),
    ("GET", "/api/v1/contacts/{id}", Scope::ContactsRead),
    ("DELETE", "/api/v1/contacts/{id}", Scope::ContactsErase),
    (
        "POST",
        "/api/v1/contacts/{id}/consents",
        Scope::ConsentsWrite,
    ),
    ("GET", "/api/v1/contacts/{id}/consents", Scope::ConsentsRead),
    (
        "POST",
        "/api/v1/contacts/{id}/consents/revoke",
        Scope::ConsentsWrite,
    ),
    (
        "GET",
        "/api/v1/contacts/{id}/consents/export",
        Scope::ConsentsRead,
    ),
    ("POST", "/api/v1/consents/import", Scope::ConsentsWrite),
    ("POST", "/api/v1/messages", Scope::Send),
    ("GET", "/api/v1/messages/{id}", Scope::Send),
    ("GET", "/api/v1/messages/{id}/receipt", Scope::Send),
    ("POST", "/api/v1/preview", Scope::Send),
    ("POST", "/api/v1/reminders", Scope::Reminders),
    ("GET", "/api/v1/reminders", Scope::Reminders),
    ("GET", "/api/v1/reminders/{id}", Scope::Reminders),
    ("DELETE", "/api/v1/reminders/{id}", Scope::Reminders),
    ("POST", "/api/v1/schedules", Scope::Schedules),
    ("GET", "/api/v1/schedules", Scope::Schedules),
    ("GET", "/api/v1/schedules/{id}", Scope::Schedules),
    ("DELETE", "/api/v1/schedules/{id}", Scope::Schedules),
    ("POST", "/api/v1/schedules/{id}/pause", Scope::Schedules),
    ("POST", "/api/v1/schedules/{id}/resume", Scope::Schedules),
    ("POST", "/api/v1/forms", Scope::FormsWrite),
    ("GET", "/api/v1/forms", Scope::FormsRead),
    ("GET", "/api/v1/forms/{id}", Scope::FormsRead),
    ("PATCH", "/api/v1/forms/{id}", Scope::FormsWrite),
    (
        "POST",
        "/api/v1/forms/{id}/consent-texts",
        Scope::FormsWrite,
    ),
    ("POST", "/api/v1/forms/{id}/qr-codes", Scope::FormsWrite),
];

/// The scope a request (method and path) needs: the table's row whose
/// pattern the path matches (`{x}` is one path segment).
pub fn scope_for(method: &str, path: &str) -> Option<Scope> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    ROUTE_SCOPES
        .iter()
        .find(|(m, p, _)| {
            let pattern: Vec<&str> = p.split('/').collect();
            *m == method
                && pattern.len() == segments.len()
                && pattern
                    .iter()
                    .zip(&segments)
                    .all(|(p, s)| (p.starts_with('{') && !s.is_empty()) || p == s)
        })
        .map(|(_, _, s)| *s)
}

/// The API key presented with a request (`X-API-Key`, or a bearer token).
fn presented_key(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get("X-API-Key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            req.headers()
                .get("Authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .map(str::to_string)
        })
}

/// Every request under `/api/`: its key authenticated and its route's
/// scope checked before anything else (before the body is read), the
/// caller left for [`ApiAuth`]. 401 without a valid key, 403 naming the
/// scope the key lacks, 403 for a route that has no scope (fail closed).
pub async fn guard(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<
    actix_web::dev::ServiceResponse<actix_web::body::EitherBody<impl actix_web::body::MessageBody>>,
    actix_web::Error,
> {
    use actix_web::HttpMessage;
    let path = req.path().to_string();
    let guarded = path.starts_with("/api/") && !path.starts_with("/api/openapi");
    if !guarded {
        return next.call(req).await.map(|r| r.map_into_left_body());
    }
    let refuse = |req: actix_web::dev::ServiceRequest, e: ApiError| {
        let res = actix_web::ResponseError::error_response(&e);
        Ok(req.into_response(res).map_into_right_body())
    };
    let Some(core) = req.app_data::<web::Data<Arc<Core>>>().cloned() else {
        return refuse(req, ApiError::Unauthorized);
    };
    // No route by that method and path: the router answers (404/405),
    // with or without a key.
    let Some(needed) = scope_for(req.method().as_str(), &path) else {
        return next.call(req).await.map(|r| r.map_into_left_body());
    };
    let Some(key) = presented_key(req.request()) else {
        return refuse(req, ApiError::Unauthorized);
    };
    let caller = match authz::authenticate_api_key(&core, &key).await {
        Ok(Some(c)) => c,
        Ok(None) => return refuse(req, ApiError::Unauthorized),
        Err(e) => return refuse(req, e.into()),
    };
    if !caller.scopes.contains(needed) {
        return refuse(req, ApiError::MissingScope(needed));
    }
    req.extensions_mut().insert(caller);
    next.call(req).await.map(|r| r.map_into_left_body())
}

impl FromRequest for ApiAuth {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    /// The caller [`guard`] authenticated and checked; a handler reached
    /// without it (a route outside the guard) refuses (fail closed).
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        use actix_web::HttpMessage;
        let caller = req.extensions().get::<authz::ApiCaller>().cloned();
        std::future::ready(match caller {
            Some(c) => Ok(ApiAuth(c.principal, c.scopes)),
            None => {
                tracing::error!(path = %req.path(), "an API route is not covered by the API guard; refused");
                Err(ApiError::Forbidden(
                    "this route is not open to API keys".into(),
                ))
            }
        })
    }
}

/// This module's operations in the OpenAPI document ([`crate::openapi`]).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    whatsapp_send,
    whatsapp_templates,
    whatsapp_session,
    create_contact,
    find_contacts,
    get_contact,
    erase_contact,
    record_consent,
    list_consents,
    revoke_consent,
    send_message,
    get_message,
    message_receipt,
    preview
))]
pub struct Docs;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/whatsapp/send", web::post().to(whatsapp_send))
        .route("/api/whatsapp/templates", web::get().to(whatsapp_templates))
        .route(
            "/api/whatsapp/session/{phone}",
            web::get().to(whatsapp_session),
        )
        .route("/api/v1/contacts", web::post().to(create_contact))
        .route("/api/v1/contacts", web::get().to(find_contacts))
        .route("/api/v1/contacts/{id}", web::get().to(get_contact))
        .route("/api/v1/contacts/{id}", web::delete().to(erase_contact))
        .route(
            "/api/v1/contacts/{id}/consents",
            web::post().to(record_consent),
        )
        .route(
            "/api/v1/contacts/{id}/consents",
            web::get().to(list_consents),
        )
        .route(
            "/api/v1/contacts/{id}/consents/revoke",
            web::post().to(revoke_consent),
        )
        .route("/api/v1/messages", web::post().to(send_message))
        .route("/api/v1/messages/{id}", web::get().to(get_message))
        .route(
            "/api/v1/messages/{id}/receipt",
            web::get().to(message_receipt),
        )
        .route("/api/v1/preview", web::post().to(preview));
}

fn core_err(e: AcceptError) -> ApiError {
    match e {
        AcceptError::BadRequest(m) => ApiError::bad(m),
        AcceptError::ContactNotFound(id) => ApiError::NotFound(format!("no contact with id {id}")),
        AcceptError::Db(e) => e.into(),
    }
}

fn refused(outcome: &Outcome) -> Option<ApiError> {
    match outcome.decision.decision {
        Decision::Block { reason } => Some(ApiError::Refused {
            code: reason.code().to_string(),
            message: outcome.decision.explanation(),
            extra: json!({
                "success": false,
                "message_id": outcome.message_id,
                "state": outcome.state,
                "decision": outcome.decision,
            }),
        }),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Seed-compatible endpoints

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct WhatsAppSend {
    /// The contact's id (or give `to`).
    user_id: Option<String>,
    /// The number (or give `user_id`).
    to: Option<String>,
    /// A registered, approved template.
    template_name: String,
    /// The template's variables by name: strings or numbers.
    #[serde(default)]
    variables: BTreeMap<String, serde_json::Value>,
    /// A repeated request with the same key sends nothing again.
    idempotency_key: Option<String>,
}

fn stringify(
    vars: BTreeMap<String, serde_json::Value>,
) -> Result<BTreeMap<String, String>, ApiError> {
    vars.into_iter()
        .map(|(k, v)| {
            let s = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                other => {
                    return Err(ApiError::bad(format!(
                        "variables.{k} must be a string or number, not {other}"
                    )))
                }
            };
            Ok((k, s))
        })
        .collect()
}

/// `POST /api/whatsapp/send`: accept, then wait briefly for the provider's
/// sid so the answer carries it (as the seed's synchronous API did).
#[utoipa::path(
    post,
    path = "/api/whatsapp/send",
    tag = "WhatsApp (first version)",
    summary = "Send a WhatsApp template and wait briefly for the provider's id",
    description = "The first version's synchronous send: the message is accepted as by `POST /api/v1/messages`, then the answer waits up to 10 seconds for the provider's message id (`message_sid`).",
    request_body = WhatsAppSend,
    responses(
        (status = 200, description = "Taken by the provider (or held for later): `success`, `message_sid`, `message_id`, `state`.", body = Object),
        (status = 400, description = "`bad_request`: the body is not valid JSON, or names neither or both of `user_id` and `to`, or a variable is not a string or number.", body = crate::error::ErrorBody),
        (status = 404, description = "`not_found`: no contact with that `user_id`.", body = crate::error::ErrorBody),
        (status = 422, description = "Refused by a gate: the code is the gate's reason; the message is recorded.", body = crate::openapi::GateRefusal),
        (status = 502, description = "`provider_error`: the provider refused the message (with `provider_code`, `message_id`, `state`).", body = crate::error::ErrorBody,
            extensions(("x-heimdall-untested" = json!("needs a provider that refuses the message; the send path's provider tests cover it")))),
    )
)]
async fn whatsapp_send(
    core: web::Data<Arc<Core>>,
    auth: ApiAuth,
    body: web::Json<WhatsAppSend>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let recipient = match (body.user_id, body.to) {
        (Some(id), None) => Recipient::Contact(id),
        (None, Some(to)) => Recipient::Phone(to),
        (Some(_), Some(_)) => return Err(ApiError::bad("give either user_id or to, not both")),
        (None, None) => return Err(ApiError::bad("user_id or to is required")),
    };
    let outcome = outbound::accept(
        &core,
        SendRequest {
            recipient,
            channel: Channel::WhatsApp,
            content: RequestedContent::Template {
                name: body.template_name,
                variables: stringify(body.variables)?,
            },
            origin: Origin::Automation {
                principal: auth.0,
                source: MessageSource::Api,
                reminder_id: None,
            },
            idempotency_key: body.idempotency_key,
            purpose: None,
        },
    )
    .await
    .map_err(core_err)?;
    if let Some(e) = refused(&outcome) {
        return Err(e);
    }
    let m = wait_for_sid(&core, &outcome.message_id, Duration::from_secs(10)).await?;
    let state = m.state;
    if matches!(state, MessageState::Failed | MessageState::Undelivered) {
        // The provider refused it: say so, with its code (502: the request
        // was fine, the provider's answer was not).
        return Ok(HttpResponse::BadGateway().json(json!({
            "success": false,
            "message_sid": m.provider_sid,
            "message_id": m.id,
            "state": m.state,
            "error": {
                "code": "provider_error",
                "provider_code": m.error_code,
                "message": m.error_message.unwrap_or_else(|| "the provider refused the message".into()),
            },
        })));
    }
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "message_sid": m.provider_sid,
        "message_id": m.id,
        "state": m.state,
    })))
}

/// The message once a provider took it, it ended, or it waits for later
/// (or when `max` has passed).
async fn wait_for_sid(
    core: &Core,
    id: &str,
    max: Duration,
) -> Result<outbound_message::Model, ApiError> {
    use sea_orm::EntityTrait;
    let deadline = tokio::time::Instant::now() + max;
    loop {
        let m = outbound_message::Entity::find_by_id(id)
            .one(&core.db.conn)
            .await?
            .ok_or_else(|| ApiError::NotFound(id.to_string()))?;
        let state = m.state;
        let settled = m.provider_sid.is_some()
            || state.is_final()
            || (state == MessageState::Deferred
                && m.defer_until
                    .is_some_and(|u| u > core.now() + chrono::Duration::seconds(2)));
        if settled || tokio::time::Instant::now() >= deadline {
            return Ok(m);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[utoipa::path(
    get,
    path = "/api/whatsapp/templates",
    tag = "WhatsApp (first version)",
    summary = "The registered templates with their approval status",
    responses(
        (status = 200, description = "`templates`: each with `name`, `sid`, `provider`, `status`, `approved`, `category`, `language`, `variables`, `body`, `rejection_reason`, `synced_at`.", body = Object),
    )
)]
async fn whatsapp_templates(
    core: web::Data<Arc<Core>>,
    _auth: ApiAuth,
) -> Result<HttpResponse, ApiError> {
    let list = templates::list(&core).await?;
    Ok(HttpResponse::Ok().json(json!({
        "templates": list.iter().map(|t| json!({
            "name": t.name,
            "sid": t.provider_id,
            "provider": t.provider,
            "status": t.approval_status,
            "approved": t.approval_status.is_approved(),
            "category": t.category,
            "language": t.language,
            "variables": t.variables,
            "body": t.body,
            "rejection_reason": t.rejection_reason,
            "synced_at": t.synced_at,
        })).collect::<Vec<_>>()
    })))
}

#[utoipa::path(
    get,
    path = "/api/whatsapp/session/{phone}",
    tag = "WhatsApp (first version)",
    summary = "Whether the 24-hour service window with a number is open",
    params(("phone" = String, Path, description = "The number, E.164 or national in the default region.")),
    responses(
        (status = 200, description = "`phone`, `in_window`, `expires_at`, `time_remaining` (seconds), `last_inbound`.", body = Object),
        (status = 400, description = "`bad_request`: the number cannot be read.", body = crate::error::ErrorBody),
    )
)]
async fn whatsapp_session(
    core: web::Data<Arc<Core>>,
    _auth: ApiAuth,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let phone = PhoneNumber::parse(&path.into_inner(), core.settings.default_region)
        .map_err(|e| ApiError::bad(e.to_string()))?;
    let now = core.now();
    // An open window cached in Redis answers without the database; a
    // closed or unknown one is read from the database (the record).
    let state = match contacts::cached_window(&core, phone.as_str(), Channel::WhatsApp, now).await {
        Some(w) => w,
        None => match contacts::find_by_phone(&core.db.conn, &phone).await? {
            Some(c) => contacts::window(&core.db.conn, &c.id, Channel::WhatsApp, now).await?,
            None => contacts::WindowState::default(),
        },
    };
    Ok(HttpResponse::Ok().json(json!({
        "phone": phone.as_str(),
        "in_window": state.in_window,
        "expires_at": state.expires_at,
        "time_remaining": state.seconds_remaining,
        "last_inbound": state.last_inbound,
    })))
}

// ---------------------------------------------------------------------------
// /api/v1

#[utoipa::path(
    post,
    path = "/api/v1/contacts",
    tag = "Contacts",
    summary = "Create a contact, or update the one with that number",
    request_body = ContactInput,
    responses(
        (status = 201, description = "Created: the contact.", body = contacts::Contact),
        (status = 200, description = "A contact with that number existed and was updated: the contact.", body = contacts::Contact),
        (status = 400, description = "`bad_request`: the body is not valid JSON, or the number or time zone cannot be read.", body = crate::error::ErrorBody),
    )
)]
async fn create_contact(
    core: web::Data<Arc<Core>>,
    _auth: ApiAuth,
    body: web::Json<ContactInput>,
) -> Result<HttpResponse, ApiError> {
    match contacts::upsert(&core, &body).await {
        Ok((c, true)) => Ok(HttpResponse::Created().json(c)),
        Ok((c, false)) => Ok(HttpResponse::Ok().json(c)),
        Err(contacts::ContactError::Db(e)) => Err(e.into()),
        Err(e) => Err(ApiError::bad(e.to_string())),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct FindContacts {
    /// A number: answers the one contact with it (404 when none).
    phone: Option<String>,
    /// Words to look for in names, numbers and tags.
    q: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/contacts",
    tag = "Contacts",
    summary = "Find the contact with a number, or search contacts",
    params(FindContacts),
    responses(
        (status = 200, description = "With `phone`: the contact. Otherwise `contacts`: up to 100 matches of `q`.", body = Object),
        (status = 400, description = "`bad_request`: `phone` cannot be read.", body = crate::error::ErrorBody),
        (status = 404, description = "`not_found`: no contact with that `phone`.", body = crate::error::ErrorBody),
    )
)]
async fn find_contacts(
    core: web::Data<Arc<Core>>,
    _auth: ApiAuth,
    q: web::Query<FindContacts>,
) -> Result<HttpResponse, ApiError> {
    if let Some(phone) = &q.phone {
        let p = PhoneNumber::parse(phone, core.settings.default_region)
            .map_err(|e| ApiError::bad(e.to_string()))?;
        return match contacts::find_by_phone(&core.db.conn, &p).await? {
            Some(c) => Ok(HttpResponse::Ok().json(contacts::Contact::from(c))),
            None => Err(ApiError::NotFound(format!("no contact with phone {p}"))),
        };
    }
    let list = contacts::search(&core, q.q.as_deref().unwrap_or(""), 100).await?;
    Ok(HttpResponse::Ok().json(json!({"contacts": list})))
}

#[utoipa::path(
    get,
    path = "/api/v1/contacts/{id}",
    tag = "Contacts",
    summary = "One contact with its service windows and suppressions per channel",
    params(("id" = String, Path, description = "The contact's id.")),
    responses(
        (status = 200, description = "`contact`, `windows` and `suppressed`, each by channel.", body = Object),
        (status = 404, description = "`not_found`: no contact with that id.", body = crate::error::ErrorBody),
    )
)]
async fn get_contact(
    core: web::Data<Arc<Core>>,
    _auth: ApiAuth,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    match contacts::get(&core, &id).await {
        Ok(c) => {
            let now = core.now();
            let mut windows = serde_json::Map::new();
            let mut suppressed = serde_json::Map::new();
            for ch in Channel::ALL {
                windows.insert(
                    ch.to_string(),
                    json!(contacts::window(&core.db.conn, &id, ch, now).await?),
                );
                suppressed.insert(
                    ch.to_string(),
                    json!(
                        heimdall_domain::consent::active_suppression(&core.db.conn, &id, ch)
                            .await?
                            .is_some()
                    ),
                );
            }
            Ok(HttpResponse::Ok().json(json!({
                "contact": c,
                "windows": windows,
                "suppressed": suppressed,
            })))
        }
        Err(contacts::ContactError::NotFound(id)) => {
            Err(ApiError::NotFound(format!("no contact with id {id}")))
        }
        Err(contacts::ContactError::Db(e)) => Err(e.into()),
        Err(e) => Err(ApiError::bad(e.to_string())),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ConsentBody {
    channel: Channel,
    source: ConsentSource,
    /// The proof: what is required depends on `source`.
    evidence: ConsentEvidence,
    /// Double opt-in: recorded as pending until the person confirms.
    #[serde(default)]
    pending: bool,
    /// The purposes the person agreed to (`purposes` names, e.g.
    /// `["service"]`): one consent row each. Omitted or empty: every
    /// purpose defined now, each named in its row.
    #[serde(default)]
    purposes: Vec<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/contacts/{id}/consents",
    tag = "Consents",
    summary = "Record a consent with its evidence",
    description = "An API client's word never lifts an opt-out: for a number that opted out, the consent is recorded as pending (202) and only the person's own START makes it count.",
    params(("id" = String, Path, description = "The contact's id.")),
    request_body = ConsentBody,
    responses(
        (status = 201, description = "Recorded: the consent, with `note` and `needs_proof_from_number` false.", body = Object),
        (status = 202, description = "Recorded as pending: the number opted out and must send START itself (`needs_proof_from_number` true).", body = Object),
        (status = 400, description = "`bad_request`: the body is not valid JSON or has unknown fields. `invalid_evidence`: the evidence does not prove what the source claims.", body = crate::error::ErrorBody),
        (status = 404, description = "`not_found`: no contact with that id.", body = crate::error::ErrorBody),
    )
)]
async fn record_consent(
    core: web::Data<Arc<Core>>,
    auth: ApiAuth,
    path: web::Path<String>,
    body: web::Json<ConsentBody>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    contact_exists(&core, &id).await?;
    let body = body.into_inner();
    // An API client's word never lifts an opt-out: for an opted-out number
    // the consent is recorded as pending (202) and only the person's own
    // number (START) can make it count.
    use heimdall_domain::consent::OptInOutcome;
    let txn = core.db.begin_write().await?;
    // An erased person's number counts as opted out (the tombstone).
    heimdall_domain::consent::tombstone::carry_over_by_id(&core, &txn, &id, core.now()).await?;
    let recorded = heimdall_domain::consent::record_opt_ins(
        &txn,
        &id,
        body.channel,
        &body.purposes,
        body.source,
        &body.evidence,
        &auth.0.actor(),
        body.pending,
        core.now(),
    )
    .await;
    match recorded {
        Ok(outcomes) if !outcomes.is_empty() => {
            txn.commit().await?;
            // The answer is the first purpose's consent (as before
            // purposes), every purpose's in `consents`, and the note of
            // the one that counts least (held for proof, then pending).
            let weakest = outcomes
                .iter()
                .find(|o| matches!(o, OptInOutcome::NeedsProofFromNumber { .. }))
                .or_else(|| {
                    outcomes
                        .iter()
                        .find(|o| matches!(o, OptInOutcome::Pending { .. }))
                })
                .unwrap_or(&outcomes[0]);
            let needs_proof = matches!(weakest, OptInOutcome::NeedsProofFromNumber { .. });
            let status = if needs_proof {
                actix_web::http::StatusCode::ACCEPTED
            } else {
                actix_web::http::StatusCode::CREATED
            };
            let mut body = json!(outcomes[0].consent());
            body["note"] = json!(weakest.explanation());
            body["needs_proof_from_number"] = json!(needs_proof);
            body["consents"] = json!(outcomes.iter().map(|o| o.consent()).collect::<Vec<_>>());
            Ok(HttpResponse::build(status).json(body))
        }
        Ok(_) => Err(ApiError::BadRequest {
            code: "invalid_evidence",
            message: "no purpose is defined: define one before recording consents".into(),
        }),
        Err(contacts::ContactError::Db(e)) => Err(e.into()),
        Err(e) => Err(ApiError::BadRequest {
            code: "invalid_evidence",
            message: e.to_string(),
        }),
    }
}

/// Why a person is erased.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct EraseBody {
    /// Why (required, kept in the staff audit and the audit chain's
    /// redaction entries; the person's number and name are removed from it).
    reason: Option<String>,
}

#[utoipa::path(
    delete,
    path = "/api/v1/contacts/{id}",
    tag = "Contacts",
    summary = "Erase a person, keeping their opt-out",
    description = "Erases the contact's personal data (name, fields, message texts, inbound texts, consent evidence, webhook payloads, stored media; the number wherever it is stored) and keeps what honouring their opt-out needs: a keyed hash of the number (HMAC-SHA256 with `HEIMDALL_ERASURE_KEY`) in a tombstone every gate checks, and the audit rows with the number replaced by that hash (through recorded redactions, so `heimdall audit verify` still passes). A later opt-in for the number needs proof from the number (START). Needs the `contacts:erase` scope, which no key has by default.",
    params(("id" = String, Path, description = "The contact's id.")),
    request_body = EraseBody,
    responses(
        (status = 200, description = "Erased: the contact id, the number's hash, when, and how many rows of each kind were erased or changed.", body = heimdall_domain::privacy::Erased),
        (status = 400, description = "`bad_request`: no reason, or the body is not `{\"reason\": \"...\"}`.", body = crate::error::ErrorBody),
        (status = 404, description = "`not_found`: no contact with that id.", body = crate::error::ErrorBody),
        (status = 410, description = "`gone`: the contact was erased already.", body = crate::error::ErrorBody),
        (status = 503, description = "`not_configured`: `HEIMDALL_ERASURE_KEY` is not set (or is not the key of earlier erasures).", body = crate::error::ErrorBody),
    )
)]
async fn erase_contact(
    core: web::Data<Arc<Core>>,
    auth: ApiAuth,
    path: web::Path<String>,
    body: web::Json<EraseBody>,
) -> Result<HttpResponse, ApiError> {
    use heimdall_domain::privacy::{self, ErasureError};
    let id = path.into_inner();
    let reason = body.into_inner().reason.unwrap_or_default();
    match privacy::erase(&core, &id, &reason, &auth.0.actor()).await {
        Ok(erased) => Ok(HttpResponse::Ok().json(erased)),
        Err(e @ ErasureError::NoReason) => Err(ApiError::bad(e.to_string())),
        Err(e @ ErasureError::NotFound(_)) => Err(ApiError::NotFound(e.to_string())),
        Err(e @ ErasureError::AlreadyErased(_)) => Err(ApiError::Gone(e.to_string())),
        Err(e @ (ErasureError::NoKey | ErasureError::KeyChanged)) => {
            Err(ApiError::NotConfigured(e.to_string()))
        }
        Err(ErasureError::Db(e)) => Err(e.into()),
        Err(e @ ErasureError::Redaction(_)) => Err(ApiError::Internal(anyhow::Error::new(e))),
    }
}

/// 404 for an unknown contact; a database outage stays an outage (500),
/// never a "not found".
async fn contact_exists(core: &Core, id: &str) -> Result<(), ApiError> {
    match contacts::get(core, id).await {
        Ok(_) => Ok(()),
        Err(contacts::ContactError::NotFound(_)) => {
            Err(ApiError::NotFound(format!("no contact with id {id}")))
        }
        Err(contacts::ContactError::Db(e)) => Err(e.into()),
        Err(e) => Err(ApiError::bad(e.to_string())),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/contacts/{id}/consents",
    tag = "Consents",
    summary = "A contact's consent history and suppressions",
    params(("id" = String, Path, description = "The contact's id.")),
    responses(
        (status = 200, description = "`consents` and `suppressions`, oldest first.", body = Object),
        (status = 404, description = "`not_found`: no contact with that id.", body = crate::error::ErrorBody),
    )
)]
async fn list_consents(
    core: web::Data<Arc<Core>>,
    _auth: ApiAuth,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    contact_exists(&core, &id).await?;
    Ok(HttpResponse::Ok().json(json!({
        "consents": heimdall_domain::consent::consent_history(&core, &id).await?,
        "suppressions": heimdall_domain::consent::suppressions(&core, &id).await?,
    })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    channel: Channel,
    /// Kept with the opt-out.
    reason: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/contacts/{id}/consents/revoke",
    tag = "Consents",
    summary = "Record that a contact withdrew consent on a channel",
    params(("id" = String, Path, description = "The contact's id.")),
    request_body = RevokeBody,
    responses(
        (status = 200, description = "`revoked` true and the `channel`.", body = Object),
        (status = 400, description = "`bad_request`: the body is not valid JSON, has unknown fields or no valid `channel`.", body = crate::error::ErrorBody),
        (status = 404, description = "`not_found`: no contact with that id.", body = crate::error::ErrorBody),
    )
)]
async fn revoke_consent(
    core: web::Data<Arc<Core>>,
    auth: ApiAuth,
    path: web::Path<String>,
    body: web::Json<RevokeBody>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    contact_exists(&core, &id).await?;
    heimdall_domain::consent::opt_out(
        &core.db.conn,
        &id,
        Some(body.channel),
        heimdall_domain::consent::Scope::All,
        heimdall_domain::consent::OptOutSource::Api,
        body.reason.as_deref(),
        &auth.0.actor(),
        core.now(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({"revoked": true, "channel": body.channel})))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct MessageBody {
    /// The number (or give `contact_id`).
    to: Option<String>,
    /// The contact's id (or give `to`).
    contact_id: Option<String>,
    /// Default `whatsapp`.
    #[serde(default = "default_channel")]
    channel: Channel,
    /// A registered, approved template (or give `text`).
    template_name: Option<String>,
    /// The template's variables by name: strings or numbers.
    #[serde(default)]
    variables: BTreeMap<String, serde_json::Value>,
    /// Markdown, sent formatted and in parts (or give `template_name`).
    text: Option<String>,
    /// Quick-reply buttons or a list (WhatsApp, inside the 24-hour window; or give
    /// `text` or `template_name`).
    interactive: Option<heimdall_domain::channels::interactive::InteractiveSpec>,
    /// An https link to an attachment sent with `text`.
    media_url: Option<String>,
    /// Heimdall's id of the person's message this text answers (quoted on WhatsApp
    /// through Meta).
    reply_to: Option<String>,
    /// A repeated request with the same key sends nothing again.
    idempotency_key: Option<String>,
    /// What the message is sent for (a `purposes` name): the consent gate
    /// looks for a consent to it. A template goes for its own purpose
    /// (naming another is refused); a text that names none is for
    /// `HEIMDALL_DEFAULT_PURPOSE` (`service`).
    purpose: Option<String>,
}

fn default_channel() -> Channel {
    Channel::WhatsApp
}

#[utoipa::path(
    post,
    path = "/api/v1/messages",
    tag = "Messages",
    summary = "Send a template or a text through the gates",
    description = "Accepted messages go out from the queue; the decision of every gate is recorded before any provider call. A refused message is recorded too.",
    request_body = MessageBody,
    responses(
        (status = 202, description = "Accepted: `message_id`, `parts`, `state`, `decision`, `duplicate` (true when the `idempotency_key` was seen before).", body = Object),
        (status = 400, description = "`bad_request`: the body is not valid JSON or has unknown fields, names neither or both of `contact_id` and `to`, or not exactly one of `template_name`, `text` and `interactive`; `interactive` breaks WhatsApp's limits, has an id that reads as a keyword under another title, goes by SMS or with `media_url`; a text is empty or too long; `reply_to` is not a message from this person.", body = crate::error::ErrorBody),
        (status = 404, description = "`not_found`: no contact with that `contact_id`.", body = crate::error::ErrorBody),
        (status = 422, description = "Refused by a gate: the code is the gate's reason; the message is recorded.", body = crate::openapi::GateRefusal),
    )
)]
async fn send_message(
    core: web::Data<Arc<Core>>,
    auth: ApiAuth,
    body: web::Json<MessageBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let recipient = match (b.contact_id, b.to) {
        (Some(id), None) => Recipient::Contact(id),
        (None, Some(to)) => Recipient::Phone(to),
        (Some(_), Some(_)) => return Err(ApiError::bad("give either contact_id or to, not both")),
        (None, None) => return Err(ApiError::bad("contact_id or to is required")),
    };
    let content = match (b.template_name, b.text, b.interactive) {
        (Some(name), None, None) => RequestedContent::Template {
            name,
            variables: stringify(b.variables)?,
        },
        (None, Some(text), None) => RequestedContent::Text {
            body: text,
            media_url: b.media_url,
            format: TextFormat::Markdown,
            reply_to: b.reply_to.clone(),
        },
        (None, None, Some(spec)) if b.media_url.is_none() => RequestedContent::Interactive {
            content: spec
                .parse()
                .map_err(|e| ApiError::bad(format!("interactive: {e}")))?,
            reply_to: b.reply_to.clone(),
        },
        (None, None, Some(_)) => {
            return Err(ApiError::bad(
                "media_url goes with text, not with interactive",
            ))
        }
        _ => {
            return Err(ApiError::bad(
                "give one of template_name (with variables), text or interactive",
            ))
        }
    };
    let outcome = outbound::accept(
        &core,
        SendRequest {
            recipient,
            channel: b.channel,
            content,
            origin: Origin::Automation {
                principal: auth.0,
                source: MessageSource::Api,
                reminder_id: None,
            },
            idempotency_key: b.idempotency_key,
            purpose: b.purpose,
        },
    )
    .await
    .map_err(core_err)?;
    if let Some(e) = refused(&outcome) {
        return Err(e);
    }
    Ok(HttpResponse::Accepted().json(json!({
        "message_id": outcome.message_id,
        "parts": outcome.parts,
        "state": outcome.state,
        "decision": outcome.decision,
        "duplicate": outcome.duplicate,
    })))
}

#[utoipa::path(
    get,
    path = "/api/v1/messages/{id}",
    tag = "Messages",
    summary = "A message with its state, parts and gate decision",
    params(("id" = String, Path, description = "The message's id.")),
    responses(
        (status = 200, description = "The message.", body = Object),
        (status = 404, description = "`not_found`: no message with that id.", body = crate::error::ErrorBody),
    )
)]
async fn get_message(
    core: web::Data<Arc<Core>>,
    _auth: ApiAuth,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    match outbound::view(&core, &id).await? {
        Some(v) => Ok(HttpResponse::Ok().json(v)),
        None => Err(ApiError::NotFound(format!("no message with id {id}"))),
    }
}

#[derive(Debug, Deserialize)]
struct ReceiptQuery {
    format: Option<String>,
}

/// The receipt's format: `?format=` when given, else HTML when the caller
/// accepts it (a browser), else JSON.
fn receipt_format(req: &HttpRequest, asked: Option<&str>) -> Result<bool, ApiError> {
    match asked.map(str::to_ascii_lowercase).as_deref() {
        Some("html") => Ok(true),
        Some("json") => Ok(false),
        Some(other) => Err(ApiError::bad(format!(
            "format '{}' is not json or html",
            other.chars().take(40).collect::<String>()
        ))),
        None => Ok(req
            .headers()
            .get(actix_web::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))),
    }
}

/// The receipt as a printable page: a whole document with no script, which
/// loads nothing (its style is inline).
pub fn receipt_html_response(html: String) -> HttpResponse {
    use actix_web::http::header;
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html)
}

/// `GET /api/v1/messages/{id}/receipt`: everything that justified the send.
#[utoipa::path(
    get,
    path = "/api/v1/messages/{id}/receipt",
    tag = "Messages",
    summary = "A message's receipt: consent, authorization, verdicts, provider answers and their audit chain",
    description = "One document with everything that justified the send: the message, the consent in force when it was accepted (with its evidence and consent text), the human authorization (a campaign's approval, an automation, a staff reply), every gate verdict, the provider's answers and status reports, and for each chained record its audit chain entries and whether it still matches them (`intact`, `changed_since_chained`, `not_chained_yet`). JSON by default; a printable HTML page with `?format=html` or `Accept: text/html`.",
    params(
        ("id" = String, Path, description = "The message's id."),
        ("format" = Option<String>, Query, description = "`json` (default) or `html`; without it, HTML when the request accepts `text/html`.")
    ),
    responses(
        (status = 200, description = "The receipt.", content((Object = "application/json"), (String = "text/html"))),
        (status = 400, description = "`bad_request`: `format` is not `json` or `html`.", body = crate::error::ErrorBody),
        (status = 404, description = "`not_found`: no message with that id.", body = crate::error::ErrorBody),
    )
)]
async fn message_receipt(
    core: web::Data<Arc<Core>>,
    _auth: ApiAuth,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<ReceiptQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let html = receipt_format(&req, q.format.as_deref())?;
    let Some(receipt) = heimdall_domain::reports::receipt(&core, &id).await? else {
        return Err(ApiError::NotFound(format!("no message with id {id}")));
    };
    if html {
        let links = heimdall_app::receipt::ReceiptLinks {
            json: Some(format!(
                "/api/v1/messages/{}/receipt?format=json",
                receipt.message.id
            )),
            back: None,
        };
        return Ok(receipt_html_response(
            heimdall_app::receipt::receipt_page_html(&receipt, &links),
        ));
    }
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(receipt))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PreviewBody {
    /// At most 200,000 bytes.
    markdown: String,
    /// Where it would go (default WhatsApp through the configured provider).
    #[serde(default = "default_channel")]
    channel: Channel,
    /// Whether media would ride on the first part (a shorter limit on Meta).
    #[serde(default)]
    with_media: bool,
}

/// `POST /api/v1/preview`: the text as it would go, part by part (`chunks` are the parts'
/// texts, kept for callers of the first version of this endpoint).
#[utoipa::path(
    post,
    path = "/api/v1/preview",
    tag = "Messages",
    summary = "The text as it would go, part by part",
    request_body = PreviewBody,
    responses(
        (status = 200, description = "`text`, `chunks` (the parts' texts), `channel`, `destination`, `max_chars`, `parts`.", body = Object),
        (status = 400, description = "`bad_request`: the body is not valid JSON or has unknown fields.", body = crate::error::ErrorBody),
        (status = 413, description = "`payload_too_large`: `markdown` is over 200,000 bytes.", body = crate::error::ErrorBody),
    )
)]
async fn preview(
    core: web::Data<Arc<Core>>,
    _auth: ApiAuth,
    body: web::Json<PreviewBody>,
) -> Result<HttpResponse, ApiError> {
    if body.markdown.len() > 200_000 {
        return Err(ApiError::TooLarge);
    }
    let prepared = heimdall_domain::channels::formatting::prepare(
        &body.markdown,
        TextFormat::Markdown,
        outbound::destination(&core, body.channel),
        body.with_media,
    );
    let chunks: Vec<&str> = prepared.parts.iter().map(|p| p.text.as_str()).collect();
    Ok(HttpResponse::Ok().json(json!({
        "text": prepared.text,
        "chunks": chunks,
        "channel": body.channel,
        "destination": prepared.destination,
        "max_chars": prepared.max_chars,
        "parts": prepared.parts,
    })))
}

/// Unknown API paths answer in the API's error shape.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no such endpoint: {} {}",
        req.method(),
        req.path()
    )))
}
