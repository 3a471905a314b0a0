//! What every handler shares: the application ([`App`]: store, protocol library, clock, settings,
//! live hub, vital-sign writer) and the HTTP edge's own login throttle.

use std::ops::Deref;
use std::sync::Arc;

use ketaflow_app::App;
use ketaflow_clinic::protocol::ProtocolLibrary;
use ketaflow_store::Store;

pub use ketaflow_app::{Clock, Settings};

/// Login attempts per username and minute before further attempts are refused with 429 (a clinic
/// setting; it slows password guessing further before the account lockout applies).
pub const LOGIN_ATTEMPTS_PER_MINUTE: u32 = 10;

/// A rate limiter keyed by username.
pub type LoginLimiter = governor::DefaultKeyedRateLimiter<String>;

/// Shared state of the server: the application, and what only the HTTP edge needs.
#[derive(Clone)]
pub struct AppState {
    /// The clinic's use cases; every front door goes through it.
    pub app: App,
    /// Throttles login attempts per username.
    pub login_limiter: Arc<LoginLimiter>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("app", &self.app)
            .finish_non_exhaustive()
    }
}

impl Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.app
    }
}

impl AppState {
    /// State with a fresh login throttle. Starts the vital-sign writer task, so call it inside a
    /// Tokio runtime.
    pub fn new(store: Store, library: ProtocolLibrary, clock: Clock, settings: Settings) -> AppState {
        AppState::over(App::new(store, library, clock, settings))
    }

    /// The HTTP edge over an application already running.
    pub fn over(app: App) -> AppState {
        let per_minute =
            std::num::NonZeroU32::new(LOGIN_ATTEMPTS_PER_MINUTE).unwrap_or(std::num::NonZeroU32::MIN);
        AppState {
            app,
            login_limiter: Arc::new(governor::RateLimiter::keyed(governor::Quota::per_minute(
                per_minute,
            ))),
        }
    }
}
