//! Live updates as server-sent events: one session's stream and the clinic board's (every session).
//!
//! The following itself (gap-free, resumable, ended when the viewer's token is revoked) is
//! [`ketaflow_app::App::follow`]; this module only turns its events into SSE frames. A
//! reconnecting `EventSource` sends `Last-Event-ID` and gets everything after it.

use std::convert::Infallible;
use std::time::Duration;

use crate::extract::{Path, Query};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, Sse};
use futures_util::{Stream, StreamExt};
use ketaflow_store::StoredEvent;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::api::sessions::{SESSION, rfc3339};
use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::policy::Action;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Where to resume.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Resume after this event id (the `Last-Event-ID` header takes precedence).
    pub after: Option<i64>,
}

/// How often every stream says the server is there (a named `heartbeat` event, no id). Pages
/// call a stream disconnected after 12 s without one.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

fn to_sse(e: &StoredEvent) -> Event {
    let body = serde_json::json!({
        "id": e.id,
        "session_id": e.session_id,
        "kind": e.kind,
        "at": rfc3339(e.at),
        "data": e.data,
    });
    Event::default()
        .id(e.id.to_string())
        .event(e.kind.clone())
        .data(body.to_string())
}

async fn open(
    state: AppState,
    me: CurrentUser,
    headers: &HeaderMap,
    query: StreamQuery,
    session: Option<Uuid>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>> + use<>>, ApiError> {
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .or(query.after);
    let follow = state.follow(me.token_hash.clone(), after, session).await?;
    let events = futures_util::stream::unfold(follow, |mut follow| async move {
        let e = follow.next().await?;
        Some((Ok(to_sse(&e)), follow))
    });
    // A named heartbeat, unlike an SSE comment, reaches the page's script: a page that misses
    // two says "disconnected" instead of showing old values as live.
    let clock = state.clock.clone();
    let beats = futures_util::stream::unfold(tokio::time::interval(HEARTBEAT), move |mut every| {
        let clock = clock.clone();
        async move {
            every.tick().await;
            let beat = Event::default()
                .event("heartbeat")
                .data(serde_json::json!({ "at": rfc3339(clock()) }).to_string());
            Some((Ok(beat), every))
        }
    });
    let stream = futures_util::stream::select(events, beats).take_until(state.live.closed());
    Ok(Sse::new(stream))
}

/// Server-sent events of one session: state changes, rates, readings, alarms, side effects,
/// assessments. Resume with `Last-Event-ID`.
#[utoipa::path(get, path = "/sessions/{id}/stream", tag = "sessions", params(("id" = Uuid, Path, description = "session id"), StreamQuery),
    responses((status = 200, description = "text/event-stream"), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn session_stream(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    Query(query): Query<StreamQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    me.require(Action::ReadClinical)?;
    state.record(SESSION, id).await?;
    open(state, me, &headers, query, Some(id)).await
}

/// Server-sent events of every session, for the clinic board. Take `GET /api/v1/board` first and
/// pass its `last_event_id` as `Last-Event-ID` (or `?after=`) to miss nothing in between.
#[utoipa::path(get, path = "/board/stream", tag = "sessions", params(StreamQuery),
    responses((status = 200, description = "text/event-stream"), (status = 403, body = crate::error::ErrorBody)))]
pub async fn board_stream(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(query): Query<StreamQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    me.require(Action::ReadClinical)?;
    open(state, me, &headers, query, None).await
}

/// This area's routes, each with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(session_stream))
        .routes(routes!(board_stream))
}
