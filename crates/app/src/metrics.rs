//! What the clinic counts for its operators: readings ingested, alarms raised, live viewers,
//! failed logins. Recorded through the `metrics` facade, so the application knows no exporter;
//! the server installs the Prometheus recorder and serves `/metrics`. Without a recorder (tests,
//! the command line) every call is a no-op.
//!
//! Counts are taken from committed work only: events as they are published after their commit
//! ([`crate::LiveHub::publish`]), never inside a transaction that may roll back.

use ketaflow_store::StoredEvent;

/// Readings stored, by where they came from (`source`: manual, device, …).
pub const READINGS_INGESTED: &str = "ketaflow_readings_ingested_total";
/// Alarms raised or escalated, by alarm `code` and `priority` (and `change`: raised, escalated).
pub const ALARMS_RAISED: &str = "ketaflow_alarms_raised_total";
/// Live event streams (boards, session screens) open now.
pub const LIVE_CLIENTS: &str = "ketaflow_live_stream_clients";
/// Failed sign-ins (unknown user, wrong password, locked or disabled account).
pub const LOGIN_FAILURES: &str = "ketaflow_login_failures_total";

/// Counts what a committed event says: a stored reading, a raised or escalated alarm.
pub(crate) fn count_event(event: &StoredEvent) {
    let text = |key: &str| {
        event
            .data
            .get(key)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("unknown")
            .to_owned()
    };
    match event.kind.as_str() {
        "vitals" => metrics::counter!(READINGS_INGESTED, "source" => text("source")).increment(1),
        kind @ ("alarm.raised" | "alarm.escalated") => {
            let change = if kind == "alarm.raised" {
                "raised"
            } else {
                "escalated"
            };
            metrics::counter!(ALARMS_RAISED, "code" => text("code"), "priority" => text("level"), "change" => change)
                .increment(1);
        }
        _ => {}
    }
}

/// Counts a failed sign-in.
pub(crate) fn login_failed() {
    metrics::counter!(LOGIN_FAILURES).increment(1);
}

/// One open live stream, counted while it lives.
#[derive(Debug)]
pub(crate) struct LiveClient(());

impl LiveClient {
    pub(crate) fn open() -> LiveClient {
        metrics::gauge!(LIVE_CLIENTS).increment(1.0);
        LiveClient(())
    }
}

impl Drop for LiveClient {
    fn drop(&mut self) {
        metrics::gauge!(LIVE_CLIENTS).decrement(1.0);
    }
}

/// Describes every metric once, so the exporter prints its help text and unit.
pub fn describe() {
    metrics::describe_counter!(READINGS_INGESTED, "Vital-sign readings stored, by source");
    metrics::describe_counter!(
        ALARMS_RAISED,
        "Alarms raised or escalated, by alarm code, priority and change"
    );
    metrics::describe_gauge!(LIVE_CLIENTS, "Live event streams open now");
    metrics::describe_counter!(LOGIN_FAILURES, "Failed sign-ins");
    ketaflow_store::describe_metrics();
}
