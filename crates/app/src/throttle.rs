//! Password guessing slowed without handing an attacker a way to lock a real user out.
//!
//! Each failed password check counts against a key (a client and the username it tried; a client
//! on its own; a signed-in user re-entering their password) and, past a few free failures, the next
//! attempt on that key must wait a delay that doubles with each further failure, up to a ceiling.
//! A success clears the key. Because the key names the client, an attacker's failures slow the
//! attacker, not the account's owner signing in from elsewhere; the account-wide lockout in the
//! store only follows NIST SP 800-63B §5.2.2's "no more than 100 consecutive failed attempts on a
//! single account" (`LockoutPolicy`).
//!
//! Memory is bounded: keys are built from a length-capped username, entries no longer delaying
//! anything are pruned, and past [`BackoffPolicy::max_keys`] the stalest entry goes.
//!
//! Why not `governor`, which this replaced: a GCRA rate limiter allows so many attempts per
//! minute but cannot make each further failure wait longer, forget a key on success, or bound the
//! size of its keys; those three are the point here, and they fit in one small map.

use std::collections::HashMap;
use std::sync::Mutex;

use time::{Duration, OffsetDateTime};

/// How failures turn into delays (clinic settings; the shape follows OWASP's Authentication Cheat
/// Sheet: throttle per account and client with growing delays rather than lock accounts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Failures on a key before any delay.
    pub free_failures: u32,
    /// The first delay; each further failure doubles it.
    pub first_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
    /// A key with no failure for this long is forgotten.
    pub forget_after: Duration,
    /// Most keys kept at once.
    pub max_keys: usize,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            free_failures: 3,
            first_delay: Duration::seconds(1),
            max_delay: Duration::minutes(15),
            forget_after: Duration::hours(1),
            max_keys: 10_000,
        }
    }
}

impl BackoffPolicy {
    /// The wait after `failures` failures on one key.
    pub fn delay_after(&self, failures: u32) -> Duration {
        let Some(over) = failures.checked_sub(self.free_failures).filter(|n| *n > 0) else {
            return Duration::ZERO;
        };
        // 1 s, 2 s, 4 s, ... capped (2^20 s is far past any ceiling a clinic would set).
        let factor = 1_i32 << (over - 1).min(20);
        (self.first_delay * factor).min(self.max_delay)
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    failures: u32,
    not_before: OffsetDateTime,
    last_failure: OffsetDateTime,
}

/// Failed password checks per key, with growing delays.
#[derive(Debug, Default)]
pub struct PasswordThrottle {
    policy: BackoffPolicy,
    entries: Mutex<HashMap<String, Entry>>,
}

/// Longest username kept in a key: longer ones cannot exist (usernames are at most 40 characters)
/// and are cut before they reach the map.
pub const MAX_KEY_USERNAME: usize = 64;

/// The key of a client trying a username.
pub fn login_key(client: Option<std::net::IpAddr>, username: &str) -> String {
    format!("login:{}:{}", client_part(client), capped(username))
}

/// The key of a client, whatever usernames it tries.
pub fn client_key(client: Option<std::net::IpAddr>) -> String {
    format!("client:{}", client_part(client))
}

fn client_part(client: Option<std::net::IpAddr>) -> String {
    client.map_or_else(|| "unknown".to_string(), |ip| ip.to_string())
}

/// At most [`MAX_KEY_USERNAME`] bytes of `username`, cut at a character boundary.
pub fn capped(username: &str) -> &str {
    let mut end = username.len().min(MAX_KEY_USERNAME);
    while !username.is_char_boundary(end) {
        end -= 1;
    }
    &username[..end]
}

impl PasswordThrottle {
    /// A throttle with this policy.
    pub fn new(policy: BackoffPolicy) -> Self {
        Self {
            policy,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` while the key must wait before its next attempt.
    pub fn check(&self, key: &str, now: OffsetDateTime) -> Result<(), Duration> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match entries.get(key) {
            Some(e) if e.not_before > now => Err(e.not_before - now),
            _ => Ok(()),
        }
    }

    /// Counts a failure on the key; returns the wait it now has before its next attempt.
    pub fn failed(&self, key: &str, now: OffsetDateTime) -> Duration {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= self.policy.max_keys && !entries.contains_key(key) {
            let forget = self.policy.forget_after;
            entries.retain(|_, e| e.not_before > now || now - e.last_failure < forget);
            if entries.len() >= self.policy.max_keys
                && let Some(stalest) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.last_failure)
                    .map(|(k, _)| k.clone())
            {
                entries.remove(&stalest);
            }
        }
        let entry = entries.entry(key.to_string()).or_insert(Entry {
            failures: 0,
            not_before: now,
            last_failure: now,
        });
        if now - entry.last_failure >= self.policy.forget_after {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
        let wait = self.policy.delay_after(entry.failures);
        entry.not_before = now + wait;
        wait
    }

    /// Clears the key after a success.
    pub fn succeeded(&self, key: &str) {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }

    /// How many keys are held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T: OffsetDateTime = datetime!(2026-12-06 09:00 UTC);

    #[test]
    fn delays_double_after_the_free_failures_up_to_the_ceiling() {
        let p = BackoffPolicy::default();
        let secs: Vec<i64> = (1..=16).map(|n| p.delay_after(n).whole_seconds()).collect();
        assert_eq!(
            secs,
            [0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900]
        );
        assert_eq!(p.delay_after(u32::MAX), Duration::minutes(15));
    }

    #[test]
    fn a_key_waits_its_delay_and_a_success_clears_it() {
        let t = PasswordThrottle::new(BackoffPolicy::default());
        for _ in 0..3 {
            assert!(t.check("k", T).is_ok());
            assert_eq!(t.failed("k", T), Duration::ZERO);
        }
        assert_eq!(t.failed("k", T), Duration::seconds(1));
        assert_eq!(t.check("k", T), Err(Duration::seconds(1)));
        assert!(t.check("other", T).is_ok(), "another key is not slowed");
        assert!(t.check("k", T + Duration::seconds(1)).is_ok());
        assert_eq!(t.failed("k", T + Duration::seconds(1)), Duration::seconds(2));
        t.succeeded("k");
        assert!(t.check("k", T + Duration::seconds(1)).is_ok());
        // An hour without failures forgets the count.
        for _ in 0..5 {
            t.failed("old", T);
        }
        assert_eq!(t.failed("old", T + Duration::hours(2)), Duration::ZERO);
    }

    #[test]
    fn memory_stays_bounded_whatever_is_sent() {
        let t = PasswordThrottle::new(BackoffPolicy {
            max_keys: 100,
            ..BackoffPolicy::default()
        });
        let huge = "u".repeat(200_000);
        for i in 0..1_000 {
            let username = format!("{i}{huge}");
            t.failed(&login_key(None, &username), T + Duration::seconds(i));
        }
        assert!(t.len() <= 100, "{}", t.len());
        let held = t.entries.lock().unwrap();
        assert!(
            held.keys()
                .all(|k| k.len() <= "login:unknown:".len() + MAX_KEY_USERNAME)
        );
        drop(held);
        // A multi-byte name is cut on a character boundary.
        assert_eq!(capped(&"é".repeat(40)).len(), 64);
    }
}
