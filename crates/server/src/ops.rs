//! The operators' door: `GET /healthz` (the process answers), `GET /readyz` (it can serve: the
//! database answers, its migrations are this build's, the audit head reads) and `GET /metrics`
//! (Prometheus text format, readable from loopback only unless the operator widens it).
//!
//! None of them needs a login, since a load balancer or a supervisor has none, and none says
//! anything about patients: the readiness answer names only what was checked and the build.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;

use crate::extract::ClientAddr;
pub use crate::proxy::MetricsAccess;
use crate::state::AppState;

/// Request latency by route template (`/api/v1/sessions/{id}`), method and status.
pub const HTTP_DURATION: &str = "ketaflow_http_request_duration_seconds";
/// Connections in the database pool now, and how many of them are idle.
pub const POOL_CONNECTIONS: &str = "ketaflow_db_pool_connections";
/// Idle connections in the database pool now.
pub const POOL_IDLE: &str = "ketaflow_db_pool_idle_connections";

/// Histogram buckets in seconds: 1 ms to 10 s, around the clinic's targets (an ACK in 50 ms, an
/// alarm on the board in 100 ms).
const BUCKETS_S: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How long `/readyz` waits for the database before it says not ready: a supervisor polls it, so
/// it must answer well within a typical 5-s probe timeout rather than wait out the pool's 30 s.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The build this process runs: the version and the commit, set once by the binary at start-up
/// (`ketaflow serve`); the package version alone for a library user that never sets it.
static BUILD: OnceLock<String> = OnceLock::new();

/// Names the build, e.g. `0.1.0 (commit 8e33fc8aa1b2)`; the first call wins.
pub fn set_build(label: impl Into<String>) {
    let _ = BUILD.set(label.into());
}

/// The build this process runs (shown by `/readyz` and at the foot of every page).
pub fn build() -> &'static str {
    BUILD.get().map_or(env!("CARGO_PKG_VERSION"), String::as_str)
}

/// The process's metrics recorder, installed the first time it is asked for. If some other
/// recorder was installed first (an embedding program's), Ketaflow's metrics go there and this
/// handle renders an empty page, which the log says.
pub fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS_S)
            .expect("the bucket list is not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics will be empty");
        }
        ketaflow_app::metrics::describe();
        metrics::describe_histogram!(
            HTTP_DURATION,
            metrics::Unit::Seconds,
            "HTTP request latency by route, method and status"
        );
        metrics::describe_gauge!(POOL_CONNECTIONS, "Connections in the database pool");
        metrics::describe_gauge!(POOL_IDLE, "Idle connections in the database pool");
        handle
    })
}

/// Middleware: times every routed request into [`HTTP_DURATION`], labelled by its route template
/// (never the concrete path, which would carry patient ids and grow without bound).
pub async fn track_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!(HTTP_DURATION, "route" => route, "method" => method, "status" => status)
        .record(started.elapsed().as_secs_f64());
    response
}

/// `GET /healthz`: the process is up and answering. Checks nothing else, so a supervisor does not
/// restart a healthy server because its database is briefly away (that is `/readyz`).
pub async fn healthz() -> Response {
    no_store(axum::Json(json!({ "status": "up" })).into_response())
}

/// `GET /readyz`: 200 when the database answers within 2 s, every migration of this build is
/// applied (and no newer one), and the audit chain's head reads; otherwise 503 naming what failed.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let checked = tokio::time::timeout(READY_TIMEOUT, state.store.readiness()).await;
    let (status, body) = match checked {
        Ok(Ok(ready)) if ready.migrations_current => (
            StatusCode::OK,
            json!({
                "status": "ready",
                "version": build(),
                "database": "reachable",
                "migrations": "current",
                "audit_head": "readable",
            }),
        ),
        Ok(Ok(ready)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({
                "status": "not ready",
                "version": build(),
                "database": "reachable",
                "migrations": format!(
                    "not current: the database has applied migration {} and this build's newest is {}",
                    ready.applied_migration, ready.expected_migration
                ),
                "audit_head": "readable",
            }),
        ),
        Ok(Err(error)) => {
            tracing::warn!(%error, "not ready: the database check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "status": "not ready", "version": build(), "database": "unreachable or failing (see the server log)" }),
            )
        }
        Err(_) => {
            tracing::warn!("not ready: the database did not answer within 2 s");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "status": "not ready", "version": build(), "database": "no answer within 2 s" }),
            )
        }
    };
    no_store((status, axum::Json(body)).into_response())
}

/// `GET /metrics`: every metric in the Prometheus text exposition format (version 0.0.4), for a
/// client the operator allows; 403 saying how to allow it otherwise.
pub async fn metrics(State(state): State<AppState>, client: ClientAddr) -> Response {
    if !state.metrics_access.allows(client.0) {
        let who = client
            .0
            .map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string());
        return no_store(
            (
                StatusCode::FORBIDDEN,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!(
                    "metrics are not served to {who}; by default only this machine may read them \
                     (serve --metrics-from ADDR[/PREFIX] allows others)\n"
                ),
            )
                .into_response(),
        );
    }
    let (size, idle) = state.store.pool_size();
    metrics::gauge!(POOL_CONNECTIONS).set(f64::from(size));
    metrics::gauge!(POOL_IDLE).set(idle as f64);
    no_store(
        (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            recorder().render(),
        )
            .into_response(),
    )
}

fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}
