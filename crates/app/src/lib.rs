//! Ketaflow's application layer: what the clinic does, once, for every front door.
//!
//! The JSON API, the web pages, the demo seeding, start-up work and the command line's account
//! commands are edges; so will be the HL7 monitor feed and FHIR. An edge turns its input into a
//! call here and the answer back into its own format. A use case here loads what it needs, asks
//! `ketaflow_clinic` to decide, and saves, audits and publishes through `ketaflow_store` in one
//! transaction.
//!
//! **Invariant:** no HTTP, HTML or wire format: no axum, no askama, no status codes. Errors are
//! [`AppError`] values an edge maps to its own answer.
#![deny(missing_docs)]

pub mod accounts;
pub mod alarms;
pub mod bedside;
pub mod board;
pub mod booking;
pub mod checkpoints;
pub mod clinic_time;
pub mod error;
pub mod export;
pub mod intake;
pub mod ledger;
pub mod library;
pub mod live;
pub mod metrics;
pub mod monitors;
pub mod operations;
pub mod outcomes;
pub mod plans;
pub mod policy;
pub mod records;
pub mod safety;
pub mod screen;
pub mod session_record;
pub mod sessions;
pub mod throttle;
pub mod vitals;
pub mod wording;

use std::sync::Arc;

use ketaflow_clinic::eligibility::BaselineBpThreshold;
use ketaflow_clinic::protocol::ProtocolLibrary;
use ketaflow_store::{LockoutPolicy, Store};
use time::OffsetDateTime;

pub use error::AppError;
pub use live::LiveHub;
pub use vitals::VitalsIngest;

/// A fresh secret token: 32 random bytes from the operating system's generator, as 64 hex digits
/// (questionnaire links, API tokens, browser sessions; only its SHA-256 is stored).
pub fn new_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The time source. The binary passes the system clock; tests pass a fixed or stepping one.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// Clinic settings the application applies.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Consecutive failed logins before an account locks, and for how long: 100, as NIST SP
    /// 800-63B (2017) §5.2.2 allows at most, for 15 minutes (clinic setting). Guessing is slowed
    /// long before by the per-client throttle (`throttle`), which a stranger cannot use to lock
    /// a real user out; a low account-wide count would let anyone do that.
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
    /// A browser session unused this long is signed out (API tokens are not: a script's token
    /// lives to its expiry). Default 30 minutes of inactivity: NIST SP 800-63B (2017) §4.2.3 for
    /// AAL2 and OWASP ASVS 4.0.3 V3.3.2 at level 2 ("12 hours or 30 minutes of inactivity"). A
    /// clinic setting.
    pub browser_idle_timeout: time::Duration,
    /// How far the dose given may be from the plan's for "completed as planned", and past it before
    /// a running infusion's alarm is urgent (clinic setting, default 5 %).
    pub dose_tolerance: ketaflow_clinic::delivery::DoseTolerance,
    /// How close to baseline the vitals must be for discharge.
    pub discharge_tolerance: ketaflow_clinic::discharge::BaselineTolerance,
    /// A notice on every page (a demo clinic, a simulated clock).
    pub banner: Option<String>,
    /// How fast the clinic clock runs against real time (1 except in a demo); running timers on
    /// pages tick at this rate.
    pub clock_speed: f64,
    /// The clinic's time zone until an administrator sets one (`serve --time-zone`, else the
    /// machine's; UTC in tests). Every time a person reads or types is in it.
    pub time_zone: clinic_time::ClinicZone,
    /// The questionnaires' wording: what Ketaflow may ship, and what a clinic has licensed.
    pub wording: Arc<wording::WordingLibrary>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            lockout: LockoutPolicy {
                threshold: 100,
                lock_for: time::Duration::minutes(15),
            },
            session_ttl: time::Duration::hours(12),
            api_token_ttl: time::Duration::days(90),
            bp_threshold: BaselineBpThreshold::default(),
            max_body_bytes: 256 * 1024,
            alarm_rules: ketaflow_clinic::vitals::AlarmRules::default(),
            discharge_tolerance: ketaflow_clinic::discharge::BaselineTolerance::default(),
            dose_tolerance: ketaflow_clinic::delivery::DoseTolerance::default(),
            browser_idle_timeout: time::Duration::minutes(30),
            banner: None,
            clock_speed: 1.0,
            time_zone: clinic_time::ClinicZone::utc(),
            wording: Arc::new(wording::WordingLibrary::shipped()),
        }
    }
}

/// The clinic as every front door sees it: the store, the protocol library, the clock, the
/// settings, the live hub and the vital-sign writer. Cheap to clone.
#[derive(Clone)]
pub struct App {
    /// Persistence.
    pub store: Store,
    /// The protocol library in force.
    pub library: Arc<ProtocolLibrary>,
    /// The clock.
    pub clock: Clock,
    /// Settings.
    pub settings: Arc<Settings>,
    /// Hands committed session events to live subscribers.
    pub live: LiveHub,
    /// Writes vital signs with group commit.
    pub ingest: VitalsIngest,
    /// The board's predicted recovery times, kept per record versions.
    pub recovery_cache: board::RecoveryCache,
    /// Failed password checks per client and username, per signed-in user re-entering theirs and
    /// per witness, with growing delays (logins, password changes and ledger witnesses alike).
    pub password_throttle: Arc<throttle::PasswordThrottle>,
    /// Failed logins per client across every username it tries.
    pub client_throttle: Arc<throttle::PasswordThrottle>,
    /// What each monitor's messages came to since the server started.
    pub monitors_seen: monitors::MonitorStats,
    /// The clinic's time zone in force (the setting's, or an administrator's choice).
    zone: Arc<std::sync::RwLock<Arc<clinic_time::ClinicZone>>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("library_version", &self.library.version)
            .finish_non_exhaustive()
    }
}

impl App {
    /// The clinic over `store`. Starts the vital-sign writer task, so call it inside a Tokio
    /// runtime.
    pub fn new(store: Store, library: ProtocolLibrary, clock: Clock, settings: Settings) -> App {
        let live = LiveHub::new();
        let ingest = VitalsIngest::start(store.clone(), settings.alarm_rules, live.clone());
        App {
            zone: Arc::new(std::sync::RwLock::new(Arc::new(settings.time_zone.clone()))),
            store,
            library: Arc::new(library),
            clock,
            settings: Arc::new(settings),
            live,
            ingest,
            recovery_cache: board::RecoveryCache::default(),
            monitors_seen: monitors::MonitorStats::default(),
            password_throttle: Arc::new(throttle::PasswordThrottle::new(throttle::BackoffPolicy::default())),
            client_throttle: Arc::new(throttle::PasswordThrottle::new(throttle::BackoffPolicy {
                // A clinic's staff may share one address: more room before a client slows down.
                free_failures: 20,
                ..throttle::BackoffPolicy::default()
            })),
        }
    }

    /// Now, from the injected clock.
    pub fn now(&self) -> OffsetDateTime {
        (self.clock)()
    }

    /// Today's date in the clinic (not UTC's: a Tokyo morning is still yesterday in UTC).
    pub fn today(&self) -> time::Date {
        self.zone().date(self.now())
    }

    /// The clinic's time zone in force.
    pub fn zone(&self) -> Arc<clinic_time::ClinicZone> {
        // A poisoned lock only means a writer panicked after its check; the zone it holds is whole.
        self.zone
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_zone(&self, zone: clinic_time::ClinicZone) {
        *self
            .zone
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(zone);
    }
}
