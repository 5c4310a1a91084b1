//! The one error type of the console's server functions, shared by the
//! server and the browser. Each variant has its HTTP status (set on the
//! server by [`crate::server::respond`]) and a message fit for staff to
//! read; `Invalid` names the form field the message belongs beside.
//!
//! It must never carry a cause chain, a secret or a database message: those
//! go to the server log and the browser sees [`AppError::Internal`].

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppError {
    /// No session, or it ended: 401.
    Unauthorized,
    /// The session's role does not allow this: 403.
    Forbidden(String),
    /// The request was not valid; `field` is the form field (or empty): 400.
    Invalid { field: String, message: String },
    /// 404.
    NotFound(String),
    /// The thing is not in a state that allows this: 409.
    Conflict(String),
    /// A gate refused the message: 422, with its reason code.
    Refused { reason: String, message: String },
    /// Something failed on the server; the log has the details: 500.
    Internal,
    /// The request could not be made or its answer could not be read.
    Transport(String),
    /// Too many requests (sign-in throttling): 429.
    TooMany(String),
}

impl AppError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        AppError::Invalid {
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            AppError::Unauthorized => 401,
            AppError::Forbidden(_) => 403,
            AppError::Invalid { .. } => 400,
            AppError::NotFound(_) => 404,
            AppError::Conflict(_) => 409,
            AppError::Refused { .. } => 422,
            AppError::Internal => 500,
            AppError::Transport(_) => 502,
            AppError::TooMany(_) => 429,
        }
    }

    /// The message for `field`, when this error belongs beside it.
    pub fn for_field(&self, field: &str) -> Option<String> {
        match self {
            AppError::Invalid { field: f, message } if f == field => Some(message.clone()),
            _ => None,
        }
    }

    /// Is this error shown beside one of `fields` (so not as a banner)?
    pub fn is_field_error(&self, fields: &[&str]) -> bool {
        matches!(self, AppError::Invalid { field, .. } if fields.contains(&field.as_str()))
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::Unauthorized => f.write_str("Please sign in (your session has ended)."),
            AppError::Forbidden(m)
            | AppError::NotFound(m)
            | AppError::Conflict(m)
            | AppError::TooMany(m)
            | AppError::Invalid { message: m, .. } => f.write_str(m),
            AppError::Refused { reason, message } => {
                write!(f, "Refused by the {reason} gate: {message}")
            }
            AppError::Internal => f.write_str(
                "Something went wrong on the server. It has been logged; please try again.",
            ),
            AppError::Transport(m) => write!(f, "Could not reach the server: {m}"),
        }
    }
}

impl std::error::Error for AppError {}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            // Arguments the client sent that could not be read.
            ServerFnErrorErr::Args(m) | ServerFnErrorErr::MissingArg(m) => AppError::Invalid {
                field: String::new(),
                message: format!("The form could not be read: {m}"),
            },
            ServerFnErrorErr::ServerError(_) | ServerFnErrorErr::MiddlewareError(_) => {
                AppError::Internal
            }
            other => AppError::Transport(other.to_string()),
        }
    }
}
