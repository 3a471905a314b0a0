//! Live updates as server-sent events: one session's stream and the clinic board's (every session).
//!
//! Every session write appends an event in its own transaction (gap-free, commit-ordered ids; see
//! `ketaflow_store::sessions`) and, after the commit, hands it to the [`LiveHub`]. A subscriber
//! follows the global id sequence: the next id is sent straight from the hub; a jump (a later
//! commit published first) or a lagging receiver is filled from the database, so nothing is ever
//! skipped. A reconnecting `EventSource` sends `Last-Event-ID` and gets everything after it.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use crate::extract::{Path, Query};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use ketaflow_store::{Store, StoredEvent};
use serde::Deserialize;
use tokio::sync::broadcast;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::api::sessions::{load_session, rfc3339};
use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::policy::Action;
use crate::state::AppState;

/// Hands committed events to every live subscriber.
#[derive(Debug, Clone)]
pub struct LiveHub {
    sender: broadcast::Sender<Arc<StoredEvent>>,
}

impl Default for LiveHub {
    fn default() -> Self {
        LiveHub::new()
    }
}

impl LiveHub {
    /// A hub that buffers 4096 events per subscriber before it lags (lagging is recovered from the
    /// database, never lost).
    pub fn new() -> LiveHub {
        LiveHub {
            sender: broadcast::channel(4096).0,
        }
    }

    /// Publishes a committed event.
    pub fn publish(&self, event: StoredEvent) {
        // No subscriber is not an error: the event is in the database for whoever comes later.
        let _ = self.sender.send(Arc::new(event));
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<StoredEvent>> {
        self.sender.subscribe()
    }
}

/// Where to resume.
#[derive(Debug, Deserialize, IntoParams)]
pub struct StreamQuery {
    /// Resume after this event id (the `Last-Event-ID` header takes precedence).
    pub after: Option<i64>,
}

/// How often a stream re-checks that its viewer's credentials are still valid.
const RECHECK: Duration = Duration::from_secs(60);

struct Follow {
    store: Store,
    state: AppState,
    token_hash: String,
    rx: broadcast::Receiver<Arc<StoredEvent>>,
    last_global: i64,
    session: Option<Uuid>,
    queue: VecDeque<StoredEvent>,
    next_check: tokio::time::Instant,
}

impl Follow {
    fn wanted(&self, e: &StoredEvent) -> bool {
        self.session.is_none_or(|s| s == e.session_id)
    }

    /// Reads every event after `last_global` up to `upto` (or to the end) from the database.
    async fn fill(&mut self, upto: Option<i64>) -> Result<(), ApiError> {
        loop {
            let page = self.store.events_after(self.last_global, None, 1000).await?;
            let full = page.len() == 1000;
            for e in page {
                if upto.is_some_and(|u| e.id > u) {
                    return Ok(());
                }
                self.last_global = e.id;
                if self.wanted(&e) {
                    self.queue.push_back(e);
                }
            }
            if !full || upto.is_some_and(|u| self.last_global >= u) {
                return Ok(());
            }
        }
    }

    async fn next(&mut self) -> Option<StoredEvent> {
        loop {
            if let Some(e) = self.queue.pop_front() {
                return Some(e);
            }
            tokio::select! {
                received = self.rx.recv() => match received {
                    Ok(e) if e.id <= self.last_global => {}
                    Ok(e) if e.id == self.last_global + 1 => {
                        self.last_global = e.id;
                        if self.wanted(&e) {
                            self.queue.push_back((*e).clone());
                        }
                    }
                    // A jump: the missing ids are committed (ids follow commit order); fetch them.
                    Ok(e) => {
                        if self.fill(Some(e.id)).await.is_err() {
                            return None;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if self.fill(None).await.is_err() {
                            return None;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                () = tokio::time::sleep_until(self.next_check) => {
                    // A revoked token, a disabled user or a removed role ends the stream.
                    let still = self.state.store.find_active_token(&self.token_hash, self.state.now()).await;
                    match still {
                        Ok(Some(active)) if crate::policy::allowed(active.user.role, Action::ReadClinical) => {
                            self.next_check = tokio::time::Instant::now() + RECHECK;
                        }
                        _ => return None,
                    }
                }
            }
        }
    }
}

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
    // Subscribe before reading the head, so nothing committed in between is missed.
    let rx = state.live.subscribe();
    let head = state.store.last_event_id().await?;
    let mut follow = Follow {
        store: state.store.clone(),
        state: state.clone(),
        token_hash: me.token_hash.clone(),
        rx,
        last_global: head,
        session,
        queue: VecDeque::new(),
        next_check: tokio::time::Instant::now() + RECHECK,
    };
    if let Some(after) = after.filter(|a| *a < head) {
        let mut cursor = after.max(0);
        loop {
            let page = state.store.events_after(cursor, session, 1000).await?;
            let full = page.len() == 1000;
            for e in page {
                if e.id > head {
                    break;
                }
                cursor = e.id;
                follow.queue.push_back(e);
            }
            if !full || cursor >= head {
                break;
            }
        }
    }
    let stream = futures_util::stream::unfold(follow, |mut follow| async move {
        let e = follow.next().await?;
        Some((Ok(to_sse(&e)), follow))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Server-sent events of one session: state changes, rates, readings, alarms, side effects,
/// assessments. Resume with `Last-Event-ID`.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/stream", tag = "sessions", params(("id" = Uuid, Path, description = "session id"), StreamQuery),
    responses((status = 200, description = "text/event-stream"), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn session_stream(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    Query(query): Query<StreamQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    me.require(Action::ReadClinical)?;
    load_session(&state, id).await?;
    open(state, me, &headers, query, Some(id)).await
}

/// Server-sent events of every session, for the clinic board. Take `GET /api/v1/board` first and
/// pass its `last_event_id` as `Last-Event-ID` (or `?after=`) to miss nothing in between.
#[utoipa::path(get, path = "/api/v1/board/stream", tag = "sessions", params(StreamQuery),
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
