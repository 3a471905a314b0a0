//! The API's own `Path` and `Query` extractors, and the net under every `/api` answer: a request
//! the router or a layer refuses (a bad id in the path, a malformed query, an unknown route, a
//! wrong method, a body over the limit) gets the same JSON error body as a handler's refusal,
//! never axum's `text/plain`.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Path parameters; a value that does not parse (an id that is not a UUID) is a 400 naming the
/// parameter, the value and what is allowed.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(path_error(parts, state, rejection).await),
        }
    }
}

async fn path_error<S: Send + Sync>(parts: &mut Parts, state: &S, rejection: PathRejection) -> ApiError {
    let raw = RawPathParams::from_request_parts(parts, state).await.ok();
    let first = raw
        .as_ref()
        .and_then(|params| params.iter().next().map(|(k, v)| (k.to_string(), v.to_string())));
    match first {
        // Every id in the API's paths is a UUID, or a questionnaire link's token.
        Some((name, value)) => ApiError::field(
            &name,
            value,
            if name == "token" {
                "a questionnaire link's token".to_string()
            } else {
                "a UUID, e.g. 01939c4e-7b1a-7c9e-9f3e-1d2c3b4a5f60".to_string()
            },
        ),
        None => ApiError::BadBody(rejection.body_text()),
    }
}

/// Query parameters; a malformed query is a 400 that names what the parser could not read.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(query_error(parts, &rejection)),
        }
    }
}

fn query_error(parts: &Parts, rejection: &QueryRejection) -> ApiError {
    ApiError::field(
        "query",
        parts.uri.query().unwrap_or_default(),
        format!("parameters this endpoint documents ({})", rejection.body_text()),
    )
}

/// The largest refusal body the net reads to carry its words over (axum's and tower-http's are a
/// line or two).
const MAX_PLAIN_BODY: usize = 16 * 1024;

/// Middleware: an error answer under `/api/` that is not JSON (from the router, a layer or an
/// extractor outside our own) is rewritten as the uniform JSON error body, keeping its status.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let is_api = request.uri().path().starts_with("/api/");
    let response = next.run(request).await;
    let status = response.status();
    if !is_api || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_PLAIN_BODY)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let error = match status {
        StatusCode::NOT_FOUND => ApiError::NoRoute,
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge,
        s if s.is_server_error() => ApiError::Internal(format!("{s}: {text}")),
        _ => ApiError::BadBody(if text.is_empty() {
            status.canonical_reason().unwrap_or("bad request").to_string()
        } else {
            text
        }),
    };
    let mut rewritten = error.into_response();
    *rewritten.status_mut() = status;
    // Keep what the original said about the method (405's Allow) or retrying.
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(value) = parts.headers.get(&name) {
            rewritten.headers_mut().insert(name, value.clone());
        }
    }
    rewritten
}
