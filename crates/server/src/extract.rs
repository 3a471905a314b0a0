//! The API's own `Path`, `Query` and `JsonBody` extractors, and the net under every `/api` answer:
//! a request the router or a layer refuses (a bad id in the path, a malformed query, an unknown
//! route, a wrong method, a body over the limit) gets the same JSON error body as a handler's
//! refusal, never axum's `text/plain`.
//!
//! Text holding U+0000 (NUL) is refused here with the field's name: PostgreSQL's `text` and
//! `jsonb` cannot store it, and SQLite's `LIKE` stops reading a pattern at it (a search for it
//! matched every patient). The store refuses it too, as the net under every door.

use std::convert::Infallible;

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, json_rejection};

/// What every refusal of a NUL says is allowed.
const NO_NUL: &str = "text without NUL (U+0000) characters";

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
        Some((name, value)) => ApiError::field(&name, value, path_allowed(&name, &rejection)),
        None => ApiError::BadBody(rejection.body_text()),
    }
}

/// What a path parameter may be. Ids are UUIDs, except a draw's number (a whole number) and a
/// questionnaire link's token.
fn path_allowed(name: &str, rejection: &PathRejection) -> String {
    use axum::extract::path::ErrorKind;
    let expected_number = match rejection {
        PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
            ErrorKind::ParseErrorAtKey { expected_type, .. }
            | ErrorKind::ParseErrorAtIndex { expected_type, .. }
            | ErrorKind::ParseError { expected_type, .. } => {
                ["i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64"].contains(expected_type)
            }
            _ => false,
        },
        _ => false,
    };
    if name == "token" {
        "a questionnaire link's token".to_string()
    } else if expected_number {
        "a whole number, e.g. 42".to_string()
    } else {
        "a UUID, e.g. 01939c4e-7b1a-7c9e-9f3e-1d2c3b4a5f60".to_string()
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
        if let Some(name) = parts.uri.query().and_then(parameter_with_nul) {
            return Err(ApiError::field(&name, "%00", NO_NUL));
        }
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

/// The name of the first query parameter whose name or value holds a percent-encoded NUL.
fn parameter_with_nul(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (name.contains("%00") || value.contains("%00")).then(|| name.replace("%00", ""))
    })
}

/// A JSON request body, read when the handler asks for it, so a handler can check the caller's
/// role before it looks at the body (a refused caller learns nothing about the body's shape).
/// `value()` answers 415 `not_json` for another media type, 413 `too_large` over the limit, 400
/// for a body that does not parse (with the parser's words) or that holds a NUL (naming the field).
#[derive(Debug)]
pub struct JsonBody<T>(Result<T, ApiError>);

impl<T> JsonBody<T> {
    /// The body, or why it was refused.
    pub fn value(self) -> Result<T, ApiError> {
        self.0
    }
}

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Infallible;

    async fn from_request(request: Request, state: &S) -> Result<Self, Infallible> {
        Ok(JsonBody(read_json(request, state).await))
    }
}

async fn read_json<T: DeserializeOwned, S: Send + Sync>(request: Request, state: &S) -> Result<T, ApiError> {
    if !is_json(request.headers()) {
        return Err(ApiError::NotJson);
    }
    let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            ApiError::BadBody(rejection.body_text())
        }
    })?;
    if let Some(field) = field_with_nul(&bytes) {
        return Err(ApiError::field(&field, "text containing U+0000", NO_NUL));
    }
    axum::Json::<T>::from_bytes(&bytes)
        .map(|axum::Json(value)| value)
        .map_err(json_rejection)
}

/// `application/json`, or any `application/…+json`, as axum's own `Json` accepts.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| {
            m.type_() == "application" && (m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"))
        })
}

/// The path (`readings[0].note`) of the first string or key holding a NUL, if the body holds one.
/// In JSON a NUL can only be written `\u0000`; the quick scan finds that escape (not a
/// backslash-escaped backslash before `u0000`), and only then is the body parsed to name the field.
fn field_with_nul(body: &[u8]) -> Option<String> {
    const ESCAPE: &[u8] = b"u0000";
    let escaped_nul = body.windows(ESCAPE.len()).enumerate().any(|(at, window)| {
        window == ESCAPE && body[..at].iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1
    });
    if !escaped_nul {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    nul_path(&value, String::new())
}

fn nul_path(value: &serde_json::Value, at: String) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) if s.contains('\0') => Some(if at.is_empty() { "body".to_string() } else { at }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_path(item, format!("{at}[{i}]"))),
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            let here = if at.is_empty() {
                key.replace('\0', "")
            } else {
                format!("{at}.{}", key.replace('\0', ""))
            };
            if key.contains('\0') {
                Some(here)
            } else {
                nul_path(item, here)
            }
        }),
        _ => None,
    }
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
        s if s.is_server_error() => ApiError::internal(format!("{s}: {text}")),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_is_found_and_named_by_its_path() {
        assert_eq!(
            field_with_nul(br#"{"display_name":"a\u0000b"}"#).as_deref(),
            Some("display_name")
        );
        assert_eq!(
            field_with_nul(br#"{"readings":[{"spo2":97},{"note":"\u0000"}]}"#).as_deref(),
            Some("readings[1].note")
        );
        assert_eq!(field_with_nul(br#"{"a\u0000":1}"#).as_deref(), Some("a"));
        assert_eq!(field_with_nul(br#""\u0000""#).as_deref(), Some("body"));
    }

    #[test]
    fn an_escaped_backslash_before_u0000_is_text_not_a_nul() {
        // The JSON text "\\u0000" is a backslash followed by "u0000".
        assert_eq!(field_with_nul(br#"{"note":"\\u0000"}"#), None);
        assert_eq!(field_with_nul(br#"{"note":"\\\u0000"}"#).as_deref(), Some("note"));
        assert_eq!(field_with_nul(br#"{"note":"u0000 plain"}"#), None);
    }

    #[test]
    fn a_query_parameter_holding_a_nul_is_named() {
        assert_eq!(parameter_with_nul("search=%00").as_deref(), Some("search"));
        assert_eq!(
            parameter_with_nul("limit=5&search=ab%00c").as_deref(),
            Some("search")
        );
        assert_eq!(parameter_with_nul("limit=5&search=abc"), None);
    }

    #[test]
    fn json_media_types_are_those_axum_accepts() {
        let with = |v: &str| {
            let mut h = axum::http::HeaderMap::new();
            h.insert(header::CONTENT_TYPE, v.parse().unwrap());
            is_json(&h)
        };
        assert!(with("application/json"));
        assert!(with("application/json; charset=utf-8"));
        assert!(with("application/fhir+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/x-www-form-urlencoded"));
        assert!(!is_json(&axum::http::HeaderMap::new()));
    }
}

/// The address the request came from, when the server was started with connection info (`serve`
/// does; tests built on the router alone have none): the connection's, or, from a trusted reverse
/// proxy, the client it names (`crate::proxy`). Throttles key on it.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl FromRequestParts<crate::state::AppState> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &crate::state::AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| state.proxies.client(info.0.ip(), &parts.headers)),
        ))
    }
}
