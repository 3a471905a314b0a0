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

/// Everything a handler can answer with besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: a field has a value outside what is allowed.
    #[error("{field} {} is outside {allowed}", display_value(value))]
    InvalidField {
        /// The field, as named on the wire.
        field: String,
        /// The value given.
        value: serde_json::Value,
        /// What is allowed, e.g. "2–350".
        allowed: String,
    },
    /// 400: the body is not valid JSON of the expected shape.
    #[error("{0}")]
    BadBody(String),
    /// 401: no valid credentials.
    #[error("authentication required")]
    Unauthenticated,
    /// 401: wrong username or password, or an account that cannot sign in now (never says which).
    #[error(
        "wrong username or password, or the account cannot sign in now; if this persists, ask an administrator"
    )]
    BadCredentials,
    /// 403: the password was set by someone else and must be changed first.
    #[error("change your password first (POST /api/v1/auth/password)")]
    PasswordChangeRequired,
    /// 429: too many failed password attempts from this client for this account.
    #[error("too many failed password attempts; wait {retry_after_s} s and try again")]
    Throttled {
        /// Seconds to wait (also in `Retry-After`).
        retry_after_s: i64,
    },
    /// 403: the role may not do this.
    #[error("your role ({role}) may not {action}")]
    Forbidden {
        /// The caller's role.
        role: &'static str,
        /// What was attempted.
        action: &'static str,
    },
    /// 404: no such record.
    #[error("{what} {id} not found")]
    NotFound {
        /// The kind of record.
        what: String,
        /// The id.
        id: String,
    },
    /// 409: the request conflicts with the record's state (e.g. a plan already approved).
    #[error("{0}")]
    Conflict(String),
    /// 409: someone changed the record since it was read; the body carries the version stored
    /// now, so a client can reload and retry.
    #[error("{message}")]
    StaleVersion {
        /// What changed, naming both versions.
        message: String,
        /// The version stored now.
        current_version: i64,
    },
    /// 409: the record is locked (an approved plan) and never changes again.
    #[error("{0}")]
    RecordLocked(String),
    /// 422: the request is well formed but the clinical rules refuse it.
    #[error("{message}")]
    Refused {
        /// Stable code, e.g. `hard_limit`.
        code: &'static str,
        /// Why.
        message: String,
    },
    /// 422: the clinical rules refuse the request because of one thing in it, which the body
    /// names in `field` (a witness, or the limit whose override is missing).
    #[error("{message}")]
    RefusedAt {
        /// Stable code, e.g. `witness_locked`.
        code: &'static str,
        /// Why.
        message: String,
        /// What in the request it is about.
        field: String,
    },
    /// 404: no route answers this path under `/api/v1`.
    #[error("no such endpoint; the API's paths are listed in /api/v1/openapi.json")]
    NoRoute,
    /// 405: the path exists but not with this method.
    #[error("this endpoint does not take this method; the Allow header lists the ones it takes")]
    MethodNotAllowed,
    /// 415: the body is not sent as `application/json`.
    #[error("send the body as JSON with Content-Type: application/json")]
    NotJson,
    /// 413: the body is over the server's limit.
    #[error("the request body is larger than the server accepts")]
    TooLarge,
    /// 500: a stored record cannot be read as what it should be. The message names the record
    /// (kind and id) so it can be found and repaired; the cause is logged, the data never returned.
    #[error("stored {kind} {id} cannot be read; the cause is logged")]
    CorruptRecord {
        /// The kind of record.
        kind: &'static str,
        /// Its id.
        id: String,
        /// What is wrong with it (logged only).
        reason: String,
    },
    /// 500: something failed inside; the cause with its whole source chain is logged, never
    /// returned.
    #[error("internal error")]
    Internal(String),
}

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
        ApiError::InvalidField {
            field: field.to_string(),
            value: value.into(),
            allowed: allowed.into(),
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::InvalidField { .. } => (StatusCode::BAD_REQUEST, "invalid_field"),
            ApiError::BadBody(_) => (StatusCode::BAD_REQUEST, "bad_body"),
            ApiError::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ApiError::BadCredentials => (StatusCode::UNAUTHORIZED, "bad_credentials"),
            ApiError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, "throttled"),
            ApiError::PasswordChangeRequired => (StatusCode::FORBIDDEN, "password_change_required"),
            ApiError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::StaleVersion { .. } => (StatusCode::CONFLICT, "stale_version"),
            ApiError::RecordLocked(_) => (StatusCode::CONFLICT, "locked"),
            ApiError::Refused { code, .. } | ApiError::RefusedAt { code, .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, code)
            }
            ApiError::NoRoute => (StatusCode::NOT_FOUND, "no_route"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::NotJson => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "not_json"),
            ApiError::CorruptRecord { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "corrupt_record"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        match &self {
            ApiError::Internal(cause) => tracing::error!(%cause, "internal error"),
            ApiError::CorruptRecord { kind, id, reason } => {
                tracing::error!(kind, id, reason, "stored record cannot be read")
            }
            _ => {}
        }
        let (field, value, allowed) = match &self {
            ApiError::InvalidField {
                field,
                value,
                allowed,
            } => (Some(field.clone()), Some(value.clone()), Some(allowed.clone())),
            ApiError::RefusedAt { field, .. } => (Some(field.clone()), None, None),
            _ => (None, None, None),
        };
        let current_version = match &self {
            ApiError::StaleVersion { current_version, .. } => Some(*current_version),
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
        if let ApiError::Throttled { retry_after_s } = &self
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

/// One place where the application's answers become HTTP ones.
impl From<AppError> for ApiError {
    fn from(e: AppError) -> ApiError {
        match e {
            AppError::InvalidField {
                field,
                value,
                allowed,
            } => ApiError::InvalidField {
                field,
                value,
                allowed,
            },
            AppError::BadInput(message) => ApiError::BadBody(message),
            AppError::Forbidden { role, action } => ApiError::Forbidden { role, action },
            AppError::PasswordChangeRequired => ApiError::PasswordChangeRequired,
            AppError::Unauthenticated => ApiError::Unauthenticated,
            AppError::BadCredentials => ApiError::BadCredentials,
            AppError::Throttled { retry_after_s } => ApiError::Throttled { retry_after_s },
            AppError::NotFound { what, id } => ApiError::NotFound { what, id },
            AppError::Conflict(message) => ApiError::Conflict(message),
            AppError::StaleVersion {
                message,
                current_version,
            } => ApiError::StaleVersion {
                message,
                current_version,
            },
            AppError::Locked(message) => ApiError::RecordLocked(message),
            AppError::Refused { code, message } => ApiError::Refused { code, message },
            AppError::RefusedAt { code, message, field } => ApiError::RefusedAt { code, message, field },
            AppError::CorruptRecord { kind, id, reason } => ApiError::CorruptRecord { kind, id, reason },
            AppError::Internal(cause) => ApiError::Internal(cause),
        }
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
