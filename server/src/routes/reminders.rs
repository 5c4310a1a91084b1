//! `/api/v1/reminders` and `/api/v1/schedules` for automations (API key).
//! Handlers parse the body, call [`heimdall_domain::automations::reminders`] and
//! [`heimdall_domain::automations::schedules`], and map their errors: 400 bad input,
//! 404 unknown contact or id, 409 a state that no longer allows it, 422 a
//! request the gates would always refuse (with the gate's reason code).
//! Nothing is stored when a request is refused.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use heimdall_domain::automations::reminders::{
    self, NewReminder, ReminderFilter, RequestError, Target,
};
use heimdall_domain::automations::schedules::{self, NewSchedule, ScheduleFilter};
use heimdall_domain::Core;

use crate::error::ApiError;
use crate::routes::api::ApiAuth;

/// This module's operations in the OpenAPI document ([`crate::openapi`]);
/// `DELETE /api/v1/schedules/{id}` is documented there as the same as
/// `POST /api/v1/schedules/{id}/pause`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    create_reminder,
    list_reminders,
    get_reminder,
    cancel_reminder,
    create_schedule,
    list_schedules,
    get_schedule,
    pause_schedule,
    resume_schedule
))]
pub struct Docs;

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

/// `GET /api/v1/reminders`'s answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct ReminderList {
    reminders: Vec<reminders::Reminder>,
}

/// `GET /api/v1/schedules`'s answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct ScheduleList {
    schedules: Vec<schedules::Schedule>,
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReminderBody {
    /// The number of an existing contact (or give `contact_id`).
    to: Option<String>,
    /// The contact's id (or give `to`).
    contact_id: Option<String>,
    /// A registered, approved template the key's automation may send.
    template_name: String,
    /// The template's variables by name: strings or numbers.
    #[serde(default)]
    variables: BTreeMap<String, serde_json::Value>,
    /// RFC 3339, or a local time (no offset) in the contact's time zone.
    send_at: String,
    /// Seconds it may still be sent after `send_at` (60 to 604800; default 900).
    tolerance: Option<i64>,
}

/// `POST /api/v1/reminders` -> 201 with the reminder.
#[utoipa::path(
    post,
    path = "/api/v1/reminders",
    tag = "Reminders",
    summary = "Schedule one template message at a time",
    request_body = ReminderBody,
    responses(
        (status = 201, description = "Created: the reminder.", body = reminders::Reminder),
        (status = 400, description = "`bad_request`: the body is not valid JSON, has unknown fields, names neither or both of `contact_id` and `to`, or no `template_name`. `invalid_send_at`: `send_at` cannot be read or is past. `invalid_tolerance`: `tolerance` is out of range. `invalid_variables`: a variable is not a string or number. `invalid_number`: `to` cannot be read.", body = crate::error::ErrorBody),
        (status = 404, description = "`not_found`: no such contact (by `contact_id`, or no contact has the number `to`).", body = crate::error::ErrorBody),
        (status = 422, description = "Refused: a gate would refuse every send (`template_not_approved`, `not_authorized`); nothing is stored.", body = crate::openapi::GateRefusal),
    )
)]
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ReminderQuery {
    /// Only this contact's reminders.
    contact_id: Option<String>,
    /// Only reminders in this state (`scheduled`, `sending`, `sent`, ...).
    state: Option<String>,
    /// At most this many (1 to 500, default 100).
    limit: Option<u64>,
}

/// `GET /api/v1/reminders?contact_id=&state=&limit=` -> `{reminders: [...]}`.
#[utoipa::path(
    get,
    path = "/api/v1/reminders",
    tag = "Reminders",
    summary = "List reminders",
    params(ReminderQuery),
    responses(
        (status = 200, description = "The reminders, soonest first.", body = ReminderList),
        (status = 400, description = "`invalid_state`: `state` is not a reminder state. `bad_request`: `limit` is not between 1 and 500, or the query cannot be read.", body = crate::error::ErrorBody),
    )
)]
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
    Ok(HttpResponse::Ok().json(ReminderList { reminders: list }))
}

#[utoipa::path(
    get,
    path = "/api/v1/reminders/{id}",
    tag = "Reminders",
    summary = "One reminder",
    params(("id" = String, Path, description = "The reminder's id.")),
    responses(
        (status = 200, description = "The reminder.", body = reminders::Reminder),
        (status = 404, description = "`not_found`: no reminder with that id.", body = crate::error::ErrorBody),
    )
)]
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
#[utoipa::path(
    delete,
    path = "/api/v1/reminders/{id}",
    tag = "Reminders",
    summary = "Cancel a reminder",
    params(("id" = String, Path, description = "The reminder's id.")),
    responses(
        (status = 200, description = "Cancelled (or it already was): the reminder.", body = reminders::Reminder),
        (status = 404, description = "`not_found`: no reminder with that id.", body = crate::error::ErrorBody),
        (status = 409, description = "`conflict`: it is being sent or was sent, and can no longer be cancelled.", body = crate::error::ErrorBody),
    )
)]
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ScheduleBody {
    /// What it is, for people (at most 200 characters).
    name: String,
    /// The number of an existing contact (or give `contact_id`).
    to: Option<String>,
    /// The contact's id (or give `to`).
    contact_id: Option<String>,
    /// Five fields (crontab), or six/seven with seconds; in the contact's time zone.
    cron: String,
    /// A registered, approved template the key's automation may send.
    template_name: String,
    /// The template's variables by name: strings or numbers.
    #[serde(default)]
    variables: BTreeMap<String, serde_json::Value>,
    /// Where to fetch the variables for each occurrence (JSON object).
    variables_url: Option<String>,
    /// Seconds an occurrence may be late after downtime (default 900).
    tolerance: Option<i64>,
}

/// `POST /api/v1/schedules` -> 201 with the schedule.
#[utoipa::path(
    post,
    path = "/api/v1/schedules",
    tag = "Schedules",
    summary = "Send a template on a cron schedule",
    request_body = ScheduleBody,
    responses(
        (status = 201, description = "Created: the schedule.", body = schedules::Schedule),
        (status = 400, description = "`bad_request`: the body is not valid JSON, has unknown fields, no `name`, names neither or both of `contact_id` and `to`, or no `template_name`. `invalid_cron`: `cron` cannot be read or runs too often. `invalid_tolerance`: `tolerance` is out of range. `invalid_variables`: a variable is not a string or number. `invalid_variables_url`: the URL is not allowed. `invalid_number`: `to` cannot be read.", body = crate::error::ErrorBody),
        (status = 404, description = "`not_found`: no such contact (by `contact_id`, or no contact has the number `to`).", body = crate::error::ErrorBody),
        (status = 422, description = "Refused: a gate would refuse every send (`template_not_approved`, `not_authorized`); nothing is stored.", body = crate::openapi::GateRefusal),
    )
)]
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ScheduleQuery {
    /// Only this contact's schedules.
    contact_id: Option<String>,
    /// Only active (true) or paused (false) schedules.
    active: Option<bool>,
}

/// `GET /api/v1/schedules?contact_id=&active=` -> `{schedules: [...]}`.
#[utoipa::path(
    get,
    path = "/api/v1/schedules",
    tag = "Schedules",
    summary = "List schedules",
    params(ScheduleQuery),
    responses(
        (status = 200, description = "The schedules.", body = ScheduleList),
        (status = 400, description = "`bad_request`: the query cannot be read (`active` is not true or false).", body = crate::error::ErrorBody),
    )
)]
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
    Ok(HttpResponse::Ok().json(ScheduleList { schedules: list }))
}

/// One schedule with its latest occurrences.
#[utoipa::path(
    get,
    path = "/api/v1/schedules/{id}",
    tag = "Schedules",
    summary = "One schedule with its latest occurrences",
    params(("id" = String, Path, description = "The schedule's id.")),
    responses(
        (status = 200, description = "The schedule.", body = schedules::Schedule),
        (status = 404, description = "`not_found`: no schedule with that id.", body = crate::error::ErrorBody),
    )
)]
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
#[utoipa::path(
    post,
    path = "/api/v1/schedules/{id}/pause",
    tag = "Schedules",
    summary = "Pause a schedule",
    params(("id" = String, Path, description = "The schedule's id.")),
    responses(
        (status = 200, description = "Paused (or it already was): the schedule; its history is kept.", body = schedules::Schedule),
        (status = 404, description = "`not_found`: no schedule with that id.", body = crate::error::ErrorBody),
    )
)]
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
#[utoipa::path(
    post,
    path = "/api/v1/schedules/{id}/resume",
    tag = "Schedules",
    summary = "Resume a schedule from its next occurrence",
    params(("id" = String, Path, description = "The schedule's id.")),
    responses(
        (status = 200, description = "Active: the schedule.", body = schedules::Schedule),
        (status = 404, description = "`not_found`: no schedule with that id.", body = crate::error::ErrorBody),
        (status = 409, description = "`conflict`: the schedule cannot run (its contact is gone or its cron cannot be read).", body = crate::error::ErrorBody),
    )
)]
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
