//! Live updates: committed session events handed to whoever follows a session or the whole clinic.
//!
//! Every session write appends an event in its own transaction (gap-free, commit-ordered ids; see
//! `ketaflow_store::sessions`) and, after the commit, hands it to the [`LiveHub`]. A
//! [`Subscription`] follows the global id sequence: the next id comes straight from the hub; a
//! jump (a later commit published first) or a lagging receiver is filled from the database, so
//! nothing is ever skipped. A follower that resumes after event n gets everything after n.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use ketaflow_store::StoredEvent;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::policy::{Action, allowed};
use crate::{App, AppError};

/// Hands committed events to every live subscriber, and tells every stream when the server is
/// shutting down so each can end at once rather than hold the shutdown open.
#[derive(Debug, Clone)]
pub struct LiveHub {
    sender: broadcast::Sender<Arc<StoredEvent>>,
    closing: Arc<tokio::sync::watch::Sender<bool>>,
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
            closing: Arc::new(tokio::sync::watch::channel(false).0),
        }
    }

    /// Ends every live stream: the server is shutting down. Viewers see the stream end and
    /// reconnect (with `Last-Event-ID`) to whichever server answers next.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once [`LiveHub::close`] has been called (at once if it already has).
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + use<> {
        let mut rx = self.closing.subscribe();
        async move {
            // An error means the hub itself is gone, which ends the streams as well.
            let _ = rx.wait_for(|closing| *closing).await;
        }
    }

    /// Publishes committed events, in order.
    pub fn publish(&self, events: impl IntoIterator<Item = StoredEvent>) {
        for event in events {
            crate::metrics::count_event(&event);
            // No subscriber is not an error: the event is in the database for whoever comes later.
            let _ = self.sender.send(Arc::new(event));
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<StoredEvent>> {
        self.sender.subscribe()
    }
}

/// How often a subscription re-checks that its viewer's credentials are still valid.
const RECHECK: Duration = Duration::from_secs(60);

/// Events for one viewer, in id order, from a starting point on.
#[derive(Debug)]
pub struct Subscription {
    app: App,
    token_hash: String,
    rx: broadcast::Receiver<Arc<StoredEvent>>,
    last_global: i64,
    session: Option<Uuid>,
    queue: VecDeque<StoredEvent>,
    next_check: tokio::time::Instant,
    /// Counts this stream among the open ones while it lives.
    _client: crate::metrics::LiveClient,
}

impl App {
    /// Follows one session's events (`session`), or every session's, for the viewer whose token
    /// hash is `token_hash`; events after `after` are replayed from the database first. The
    /// subscription ends when the token is revoked or expires, or the viewer loses the right to
    /// read clinical records.
    pub async fn follow(
        &self,
        token_hash: String,
        after: Option<i64>,
        session: Option<Uuid>,
    ) -> Result<Subscription, AppError> {
        // Subscribe before reading the head, so nothing committed in between is missed.
        let rx = self.live.subscribe();
        let head = self.store.last_event_id().await?;
        let mut follow = Subscription {
            app: self.clone(),
            token_hash,
            rx,
            last_global: head,
            session,
            queue: VecDeque::new(),
            next_check: tokio::time::Instant::now() + RECHECK,
            _client: crate::metrics::LiveClient::open(),
        };
        if let Some(after) = after.filter(|a| *a < head) {
            let mut cursor = after.max(0);
            loop {
                let page = self.store.events_after(cursor, session, 1000).await?;
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
        Ok(follow)
    }
}

impl Subscription {
    fn wanted(&self, e: &StoredEvent) -> bool {
        self.session.is_none_or(|s| s == e.session_id)
    }

    /// Reads every event after `last_global` up to `upto` (or to the end) from the database.
    async fn fill(&mut self, upto: Option<i64>) -> Result<(), AppError> {
        loop {
            let page = self.app.store.events_after(self.last_global, None, 1000).await?;
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

    /// The next event; `None` when the subscription has ended.
    pub async fn next(&mut self) -> Option<StoredEvent> {
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
                    // A revoked token, a disabled user or a removed role ends the subscription.
                    let still = self.app.store.find_active_token(&self.token_hash, self.app.now()).await;
                    match still {
                        Ok(Some(active)) if allowed(active.user.role, Action::ReadClinical) => {
                            self.next_check = tokio::time::Instant::now() + RECHECK;
                        }
                        _ => return None,
                    }
                }
            }
        }
    }
}
