//! `/api/v1/reminders` and `/api/v1/schedules` for automations (API key).
//! Handlers parse the body, call [`heimdall_domain::reminders`] and
//! [`heimdall_domain::schedules`], and map their errors: 400 bad input,
//! 404 unknown contact or id, 409 a state that no longer allows it, 422 a
//! request the gates would always refuse (with the gate's reason code).
//! Nothing is stored when a request is refused.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use heimdall_domain::reminders::{self, NewReminder, ReminderFilter, RequestError, Target};
use heimdall_domain::schedules::{self, NewSchedule, ScheduleFilter};
use heimdall_domain::Core;

use crate::error::ApiError;
use crate::routes::api::ApiAuth;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/reminders", web::post().to(create_reminder))
        .route("/api/v1/reminders", web::get().to(list_reminders))
        .route("/api/v1/reminders/{id}", web::get().to(get_reminder))
        .route("/api/v1/reminders/{id}", web::delete().to(cancel_reminder))
        .route("/api/v1/schedules", web::post().to(create_schedule))
        .route("/api/v1/schedules", web::get().to(list_schedules))
        .route("/api/v1/schedules/{id}", web::get().to(get_schedule))
        .route("/api/v1/schedules/{id}", web::delete().to(pause_schedule))
        .route(
            "/api/v1/schedules/{id}/pause",
            web::post().to(pause_schedule),
        )
        .route(
            "/api/v1/schedules/{id}/resume",
            web::post().to(resume_schedule),
        );
}

fn request_err(e: RequestError) -> ApiError {
    match e {
        RequestError::Invalid { code, message } => ApiError::BadRequest { code, message },
        RequestError::ContactNotFound(m) | RequestError::NotFound(m) => ApiError::NotFound(m),
        RequestError::Refused { gate, message } => ApiError::Refused {
            code: gate.code().to_string(),
            message,
            extra: json!({}),
        },
        RequestError::Conflict(m) => ApiError::Conflict(m),
        RequestError::Db(e) => e.into(),
    }
}

fn target(contact_id: Option<String>, to: Option<String>) -> Result<Target, ApiError> {
    match (contact_id, to) {
        (Some(id), None) => Ok(Target::Contact(id)),
        (None, Some(to)) => Ok(Target::Phone(to)),
        (Some(_), Some(_)) => Err(ApiError::bad("give either contact_id or to, not both")),
        (None, None) => Err(ApiError::bad("contact_id or to is required")),
    }
}

// ---------------------------------------------------------------------------
// Reminders

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReminderBody {
    to: Option<String>,
    contact_id: Option<String>,
    template_name: String,
    #[serde(default)]
    variables: BTreeMap<String, serde_json::Value>,
    /// RFC 3339, or a local time (no offset) in the contact's time zone.
    send_at: String,
    /// Seconds it may still be sent after `send_at` (60 to 604800; default 900).
    tolerance: Option<i64>,
}

/// `POST /api/v1/reminders` -> 201 with the reminder.
async fn create_reminder(
    core: web::Data<Arc<Core>>,
    auth: ApiAuth,
    body: web::Json<ReminderBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let input = NewReminder {
        target: target(b.contact_id, b.to)?,
        template_name: b.template_name,
        variables: b.variables,
        send_at: b.send_at,
        tolerance_secs: b.tolerance,
    };
    let r = reminders::create(&core, &auth.0, input)
        .await
        .map_err(request_err)?;
    Ok(HttpResponse::Created().json(r))
}

#[derive(Debug, Deserialize)]
struct ReminderQuery {
    contact_id: Option<String>,
    state: Option<String>,
    limit: Option<u64>,
}

/// `GET /api/v1/reminders?contact_id=&state=&limit=` -> `{reminders: [...]}`.
async fn list_reminders(
    core: web::Data<Arc<Core>>,
    _auth: ApiAuth,
    q: web::Query<ReminderQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let list = reminders::list(
        &core,
        &ReminderFilter {
            contact_id: q.contact_id,
            state: q.state,
            limit: q.limit,
        },
    )
    .await
    .map_err(request_err)?;
    Ok(HttpResponse::Ok().json(json!({ "reminders": list })))
}

async fn get_reminder(
    core: web::Data<Arc<Core>>,
    _auth: ApiAuth,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let r = reminders::get(&core, &path.into_inner())
        .await
        .map_err(request_err)?;
    Ok(HttpResponse::Ok().json(r))
}

/// `DELETE /api/v1/reminders/{id}`: cancel (409 once it is sent or being sent).
async fn cancel_reminder(
    core: web::Data<Arc<Core>>,
    auth: ApiAuth,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let r = reminders::cancel(&core, &path.into_inner(), &auth.0.actor())
        .await
        .map_err(request_err)?;
    Ok(HttpResponse::Ok().json(r))
}

// ---------------------------------------------------------------------------
// Schedules

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleBody {
    name: String,
    to: Option<String>,
    contact_id: Option<String>,
    /// Five fields (crontab), or six/seven with seconds; in the contact's time zone.
    cron: String,
    template_name: String,
    #[serde(default)]
    variables: BTreeMap<String, serde_json::Value>,
    variables_url: Option<String>,
    /// Seconds an occurrence may be late after downtime (default 900).
    tolerance: Option<i64>,
}

/// `POST /api/v1/schedules` -> 201 with the schedule.
async fn create_schedule(
    core: web::Data<Arc<Core>>,
    auth: ApiAuth,
    body: web::Json<ScheduleBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let input = NewSchedule {
        name: b.name,
        target: target(b.contact_id, b.to)?,
        cron: b.cron,
        template_name: b.template_name,
        variables: b.variables,
        variables_url: b.variables_url,
        tolerance_secs: b.tolerance,
    };
    let s = schedules::create(&core, &auth.0, input)
        .await
        .map_err(request_err)?;
    Ok(HttpResponse::Created().json(s))
}

#[derive(Debug, Deserialize)]
struct ScheduleQuery {
    contact_id: Option<String>,
    active: Option<bool>,
}

/// `GET /api/v1/schedules?contact_id=&active=` -> `{schedules: [...]}`.
async fn list_schedules(
    core: web::Data<Arc<Core>>,
    _auth: ApiAuth,
    q: web::Query<ScheduleQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let list = schedules::list(
        &core,
        &ScheduleFilter {
            contact_id: q.contact_id,
            active: q.active,
        },
    )
    .await
    .map_err(request_err)?;
    Ok(HttpResponse::Ok().json(json!({ "schedules": list })))
}

/// One schedule with its latest occurrences.
async fn get_schedule(
    core: web::Data<Arc<Core>>,
    _auth: ApiAuth,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let s = schedules::get(&core, &path.into_inner())
        .await
        .map_err(request_err)?;
    Ok(HttpResponse::Ok().json(s))
}

/// `DELETE /api/v1/schedules/{id}` (or `POST .../pause`): stop it; its
/// history is kept and it can be resumed.
async fn pause_schedule(
    core: web::Data<Arc<Core>>,
    auth: ApiAuth,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let s = schedules::set_active(&core, &path.into_inner(), false, &auth.0.actor())
        .await
        .map_err(request_err)?;
    Ok(HttpResponse::Ok().json(s))
}

/// `POST /api/v1/schedules/{id}/resume`: from the next occurrence on.
async fn resume_schedule(
    core: web::Data<Arc<Core>>,
    auth: ApiAuth,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let s = schedules::set_active(&core, &path.into_inner(), true, &auth.0.actor())
        .await
        .map_err(request_err)?;
    Ok(HttpResponse::Ok().json(s))
}
