//! API errors: one enum, one mapping to HTTP status and a JSON body with a stable code.
//!
//! Body: `{"error": {"code": "...", "message": "...", "field": "...", "value": ..., "allowed": "..."}}`.
//! 5xx bodies say nothing specific; the cause goes to the log.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ketaflow_app::AppError;
pub use ketaflow_app::error::{display_value, error_chain};
use ketaflow_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// Everything a handler can answer with besides success: the application's answer, or one of the
/// refusals that only HTTP has (no such route, wrong method, a body that is not JSON or too large).
#[derive(Debug)]
pub enum ApiError {
    /// What the use case answered (mapped to its status in [`ApiError::status_and_code`]).
    App(AppError),
    /// 400: the body is not valid JSON of the expected shape.
    BadBody(String),
    /// 404: no route answers this path under `/api/v1`.
    NoRoute,
    /// 405: the path exists but not with this method.
    MethodNotAllowed,
    /// 415: the body is not sent as `application/json`.
    NotJson,
    /// 413: the body is over the server's limit.
    TooLarge,
}

/// What a person is told: the application's words, except that a failure inside never shows its
/// cause (it is logged) and a password change names the endpoint that makes it.
impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::App(AppError::Internal(_)) => f.write_str("internal error"),
            ApiError::App(AppError::CorruptRecord { kind, id, .. }) => {
                write!(f, "stored {kind} {id} cannot be read; the cause is logged")
            }
            ApiError::App(AppError::PasswordChangeRequired) => {
                f.write_str("change your password first (POST /api/v1/auth/password)")
            }
            ApiError::App(e) => e.fmt(f),
            ApiError::BadBody(message) => f.write_str(message),
            ApiError::NoRoute => {
                f.write_str("no such endpoint; the API's paths are listed in /api/v1/openapi.json")
            }
            ApiError::MethodNotAllowed => f.write_str(
                "this endpoint does not take this method; the Allow header lists the ones it takes",
            ),
            ApiError::NotJson => f.write_str("send the body as JSON with Content-Type: application/json"),
            ApiError::TooLarge => f.write_str("the request body is larger than the server accepts"),
        }
    }
}

impl std::error::Error for ApiError {}

/// The JSON error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The error detail.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable message naming the value and what is allowed.
    pub message: String,
    /// The offending field, if any; for a refusal about one thing in the request, that thing (a
    /// witness as `witnesses[1].username`, a missing override as `overrides.<limit>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The offending value as it was sent, if any: any JSON value (a number, a text, null, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<serde_json::Value>)]
    pub value: Option<serde_json::Value>,
    /// What is allowed, if relevant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed: Option<String>,
    /// The record's version stored now (`stale_version`): reload, then retry with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<i64>,
}

impl ApiError {
    /// A field error.
    pub fn field(field: &str, value: impl Into<serde_json::Value>, allowed: impl Into<String>) -> ApiError {
        ApiError::App(AppError::field(field, value, allowed))
    }

    /// A failure inside, whose cause is logged and never shown.
    pub fn internal(cause: impl Into<String>) -> ApiError {
        ApiError::App(AppError::Internal(cause.into()))
    }

    /// The application's answer, if this is one.
    pub fn app(&self) -> Option<&AppError> {
        match self {
            ApiError::App(e) => Some(e),
            _ => None,
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    /// The one place where an answer gets its HTTP status and stable code.
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        let app = match self {
            ApiError::App(app) => app,
            ApiError::BadBody(_) => return (StatusCode::BAD_REQUEST, "bad_body"),
            ApiError::NoRoute => return (StatusCode::NOT_FOUND, "no_route"),
            ApiError::MethodNotAllowed => return (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::TooLarge => return (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::NotJson => return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "not_json"),
        };
        match app {
            AppError::InvalidField { .. } => (StatusCode::BAD_REQUEST, "invalid_field"),
            AppError::BadInput(_) => (StatusCode::BAD_REQUEST, "bad_body"),
            AppError::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            AppError::BadCredentials => (StatusCode::UNAUTHORIZED, "bad_credentials"),
            AppError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            AppError::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, "throttled"),
            AppError::PasswordChangeRequired => (StatusCode::FORBIDDEN, "password_change_required"),
            AppError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            AppError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            AppError::StaleVersion { .. } => (StatusCode::CONFLICT, "stale_version"),
            AppError::Locked(_) => (StatusCode::CONFLICT, "locked"),
            AppError::Refused { code, .. } | AppError::RefusedAt { code, .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, code)
            }
            AppError::CorruptRecord { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "corrupt_record"),
            AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        match self.app() {
            Some(AppError::Internal(cause)) => tracing::error!(%cause, "internal error"),
            Some(AppError::CorruptRecord { kind, id, reason }) => {
                tracing::error!(kind, id, reason, "stored record cannot be read")
            }
            _ => {}
        }
        let (field, value, allowed) = match self.app() {
            Some(AppError::InvalidField {
                field,
                value,
                allowed,
            }) => (Some(field.clone()), Some(value.clone()), Some(allowed.clone())),
            Some(AppError::RefusedAt { field, .. }) => (Some(field.clone()), None, None),
            _ => (None, None, None),
        };
        let current_version = match self.app() {
            Some(AppError::StaleVersion { current_version, .. }) => Some(*current_version),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: self.to_string(),
                field,
                value,
                allowed,
                current_version,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(AppError::Throttled { retry_after_s }) = self.app()
            && let Ok(value) = axum::http::HeaderValue::from_str(&retry_after_s.to_string())
        {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, value);
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        AppError::from(e).into()
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> ApiError {
        ApiError::App(e)
    }
}

/// Turns axum's JSON rejections (wrong types, missing fields, bad syntax, too large) into
/// [`ApiError::BadBody`] with the parser's message (a body over the limit is a 413, one not sent
/// as JSON a 415), so every 4xx has the same shape.
pub fn json_rejection(rejection: axum::extract::rejection::JsonRejection) -> ApiError {
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => return ApiError::TooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => return ApiError::NotJson,
        _ => {}
    }
    ApiError::BadBody(rejection.body_text())
}
