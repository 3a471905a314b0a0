//! What every handler shares: the store, the protocol library, the clock and the settings.

use std::sync::Arc;

use ketaflow_clinic::eligibility::BaselineBpThreshold;
use ketaflow_clinic::protocol::ProtocolLibrary;
use ketaflow_store::{LockoutPolicy, Store};
use time::OffsetDateTime;

/// The time source. The binary passes the system clock; tests pass a fixed or stepping one.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// Clinic settings the server applies.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Failed logins before an account locks, and for how long (clinic setting: 5 failures lock for
    /// 15 minutes, in line with common practice; OWASP recommends lockout or throttling without
    /// fixing numbers).
    pub lockout: LockoutPolicy,
    /// How long a browser session lasts (a clinic shift: 12 h).
    pub session_ttl: time::Duration,
    /// How long an API token lasts unless asked otherwise (90 days).
    pub api_token_ttl: time::Duration,
    /// Baseline blood pressure above which screening flags the patient.
    pub bp_threshold: BaselineBpThreshold,
    /// Largest request body accepted, bytes.
    pub max_body_bytes: usize,
    /// Vital-sign alarm thresholds (clinic settings, except the label's rise from baseline and
    /// NEWS2; each carries its source).
    pub alarm_rules: ketaflow_clinic::vitals::AlarmRules,
    /// How close to baseline the vitals must be for discharge.
    pub discharge_tolerance: ketaflow_clinic::discharge::BaselineTolerance,
    /// A notice on every page (a demo clinic, a simulated clock).
    pub banner: Option<String>,
    /// How fast the clinic clock runs against real time (1 except in a demo); running timers on
    /// pages tick at this rate.
    pub clock_speed: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            lockout: LockoutPolicy {
                threshold: 5,
                lock_for: time::Duration::minutes(15),
            },
            session_ttl: time::Duration::hours(12),
            api_token_ttl: time::Duration::days(90),
            bp_threshold: BaselineBpThreshold::default(),
            max_body_bytes: 256 * 1024,
            alarm_rules: ketaflow_clinic::vitals::AlarmRules::default(),
            discharge_tolerance: ketaflow_clinic::discharge::BaselineTolerance::default(),
            banner: None,
            clock_speed: 1.0,
        }
    }
}

/// Login attempts per username and minute before further attempts are refused with 429 (a clinic
/// setting; it slows password guessing further before the account lockout applies).
pub const LOGIN_ATTEMPTS_PER_MINUTE: u32 = 10;

/// A rate limiter keyed by username.
pub type LoginLimiter = governor::DefaultKeyedRateLimiter<String>;

/// Shared state of the server.
#[derive(Clone)]
pub struct AppState {
    /// Persistence.
    pub store: Store,
    /// The protocol library in force.
    pub library: Arc<ProtocolLibrary>,
    /// The clock.
    pub clock: Clock,
    /// Settings.
    pub settings: Arc<Settings>,
    /// Throttles login attempts per username.
    pub login_limiter: Arc<LoginLimiter>,
    /// Hands committed session events to live subscribers.
    pub live: crate::api::live::LiveHub,
    /// Writes vital signs with group commit.
    pub ingest: crate::ingest::VitalsIngest,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("library_version", &self.library.version)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State with a fresh login throttle. Starts the vital-sign writer task, so call it inside a
    /// Tokio runtime.
    pub fn new(store: Store, library: ProtocolLibrary, clock: Clock, settings: Settings) -> AppState {
        let live = crate::api::live::LiveHub::new();
        let ingest = crate::ingest::VitalsIngest::start(store.clone(), settings.alarm_rules, live.clone());
        let per_minute =
            std::num::NonZeroU32::new(LOGIN_ATTEMPTS_PER_MINUTE).unwrap_or(std::num::NonZeroU32::MIN);
        AppState {
            store,
            library: Arc::new(library),
            clock,
            settings: Arc::new(settings),
            login_limiter: Arc::new(governor::RateLimiter::keyed(governor::Quota::per_minute(
                per_minute,
            ))),
            live,
            ingest,
        }
    }

    /// Now, from the injected clock.
    pub fn now(&self) -> OffsetDateTime {
        (self.clock)()
    }
}
