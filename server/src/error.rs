//! Errors at the HTTP edge: JSON `{"error": {"code", "message"}}` with the
//! right status. The cause chain goes to the log, never into the response.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// The body of every error answer: `{"error": {"code", "message"}}`. The
/// OpenAPI document's `ErrorBody` is this type's schema.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code: each response names the codes it
    /// may carry.
    pub code: String,
    /// What went wrong, for a person to read.
    pub message: String,
    /// With `missing_scope`: the scope the API key lacks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// With `invalid_form`: what is wrong with each field, by field name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("missing or invalid API key")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    /// The API key lacks the scope this route needs.
    #[error("this API key does not have the scope '{0}'")]
    MissingScope(heimdall_domain::entities::api_key::Scope),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The thing existed and is gone for good (an erased contact).
    #[error("{0}")]
    Gone(String),
    /// A feature the operator has not configured (a setting is missing).
    #[error("{0}")]
    NotConfigured(String),
    #[error("request body too large")]
    TooLarge,
    /// Refused by a gate: the reason code and why.
    #[error("{message}")]
    Refused {
        code: String,
        message: String,
        extra: serde_json::Value,
    },
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn bad(message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code: "bad_request",
            message: message.into(),
        }
    }

    pub fn code(&self) -> &str {
        match self {
            ApiError::BadRequest { code, .. } => code,
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::MissingScope(_) => "missing_scope",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::Gone(_) => "gone",
            ApiError::NotConfigured(_) => "not_configured",
            ApiError::TooLarge => "payload_too_large",
            ApiError::Refused { code, .. } => code,
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        ApiError::Internal(anyhow::Error::new(e))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::MissingScope(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::NotConfigured(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Refused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(e) = self {
            tracing::error!(error = ?e, "internal error");
        }
        let mut body = json!(ErrorBody {
            error: ErrorDetail {
                code: self.code().to_string(),
                message: self.to_string(),
                scope: match self {
                    ApiError::MissingScope(scope) => Some(scope.as_str().to_string()),
                    _ => None,
                },
                fields: None,
            },
        });
        if let ApiError::Refused { extra, .. } = self {
            if let (Some(obj), Some(more)) = (body.as_object_mut(), extra.as_object()) {
                for (k, v) in more {
                    obj.insert(k.clone(), v.clone());
                }
            }
        }
        let mut res = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Unauthorized) {
            res.insert_header(("WWW-Authenticate", "Bearer"));
        }
        res.json(body)
    }
}

/// An error answer in the one shape (`{"error": {"code", "message"}}`)
/// for a route that answers a provider or a scraper rather than an API
/// client (webhooks, metrics), whose codes are not [`ApiError`]'s.
pub fn error_answer(
    status: actix_web::http::StatusCode,
    code: &str,
    message: impl std::fmt::Display,
) -> HttpResponse {
    HttpResponse::build(status).json(ErrorBody {
        error: ErrorDetail {
            code: code.to_string(),
            message: message.to_string(),
            scope: None,
            fields: None,
        },
    })
}

/// JSON and query errors from actix's extractors, as our error shape.
pub fn json_config() -> actix_web::web::JsonConfig {
    actix_web::web::JsonConfig::default()
        .limit(256 * 1024)
        .error_handler(|err, _req| {
            let e = match &err {
                actix_web::error::JsonPayloadError::OverflowKnownLength { .. }
                | actix_web::error::JsonPayloadError::Overflow { .. } => ApiError::TooLarge,
                actix_web::error::JsonPayloadError::ContentType => {
                    ApiError::bad("Content-Type must be application/json")
                }
                other => ApiError::bad(format!("invalid JSON body: {other}")),
            };
            actix_web::error::InternalError::from_response(err, e.error_response()).into()
        })
}

pub fn query_config() -> actix_web::web::QueryConfig {
    actix_web::web::QueryConfig::default().error_handler(|err, _req| {
        let e = ApiError::bad(format!("invalid query: {err}"));
        actix_web::error::InternalError::from_response(err, e.error_response()).into()
    })
}

pub fn path_config() -> actix_web::web::PathConfig {
    actix_web::web::PathConfig::default().error_handler(|err, _req| {
        let e = ApiError::bad(format!("invalid path: {err}"));
        actix_web::error::InternalError::from_response(err, e.error_response()).into()
    })
}
