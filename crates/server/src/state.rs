//! What every handler shares: the application ([`App`]: store, protocol library, clock, settings,
//! live hub, vital-sign writer, password throttle).

use std::ops::Deref;

use ketaflow_app::App;
use ketaflow_clinic::protocol::ProtocolLibrary;
use ketaflow_store::Store;

pub use ketaflow_app::{Clock, Settings};

/// Shared state of the server: the application, and what only the HTTP edge needs.
#[derive(Clone)]
pub struct AppState {
    /// The clinic's use cases; every front door goes through it.
    pub app: App,
    /// The reverse proxies whose forwarded-for headers name the client (none by default).
    pub proxies: std::sync::Arc<crate::proxy::TrustedProxies>,
    /// Who may read `/metrics` (this machine only by default).
    pub metrics_access: std::sync::Arc<crate::proxy::MetricsAccess>,
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
    /// State over a new application. Starts the vital-sign writer task, so call it inside a
    /// Tokio runtime.
    pub fn new(store: Store, library: ProtocolLibrary, clock: Clock, settings: Settings) -> AppState {
        AppState::over(App::new(store, library, clock, settings))
    }

    /// The HTTP edge over an application already running.
    pub fn over(app: App) -> AppState {
        AppState {
            app,
            proxies: std::sync::Arc::new(crate::proxy::TrustedProxies::none()),
            metrics_access: std::sync::Arc::new(crate::proxy::MetricsAccess::default()),
        }
    }

    /// The same state, believing these proxies' forwarded-for headers.
    pub fn with_trusted_proxies(mut self, proxies: crate::proxy::TrustedProxies) -> AppState {
        self.proxies = std::sync::Arc::new(proxies);
        self
    }

    /// The same state, serving `/metrics` to these clients instead of this machine only.
    pub fn with_metrics_access(mut self, access: crate::proxy::MetricsAccess) -> AppState {
        self.metrics_access = std::sync::Arc::new(access);
        self
    }
}
