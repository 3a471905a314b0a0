//! Ketaflow's HTTP server: authentication and roles, the JSON API under `/api/v1` with its OpenAPI
//! document at `/api/v1/openapi.json`.
//!
//! **Invariant:** the only crate that knows HTTP and JSON. Wire types (`*In`, `*Out`) are defined
//! here and converted explicitly to and from the domain types of `ketaflow-clinic`, so the API
//! changes only on purpose. Every handler checks the caller's role through [`policy::allowed`]
//! (deny by default) before it touches anything.
#![deny(missing_docs)]

pub mod api;
pub mod auth;
pub mod demo;
pub mod error;
pub mod extract;
pub mod mllp;
pub mod ops;
pub mod proxy;
pub mod state;
pub mod web;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::get;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use ketaflow_app::policy;
pub use state::{AppState, Clock, Settings};

/// The OpenAPI document's frame: title, description and tags. The paths come from the routes
/// themselves (see [`openapi`]).
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "Ketaflow API", description = "Ketamine infusion clinic: intake, eligibility, protocols, dose plans, audit."),
    tags((name = "auth"), (name = "users"), (name = "protocols"), (name = "patients"), (name = "plans"), (name = "sessions"), (name = "outcomes"), (name = "ledger"), (name = "devices"), (name = "audit"))
)]
pub struct ApiDoc;

/// The API's routes under `/api/v1` and its OpenAPI document, generated together.
fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut document) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", api::routes())
        .split_for_parts();
    api::document_common_answers(&mut document);
    (router, document)
}

/// The OpenAPI document of the API, as served at `/api/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().1
}

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    let max_body = state.settings.max_body_bytes;
    let (v1, document) = api();
    let document = std::sync::Arc::new(document);
    let v1 = v1.route(
        "/api/v1/openapi.json",
        get(move || {
            let document = document.clone();
            async move { axum::Json((*document).clone()) }
        }),
    );
    // Patient data in JSON and CSV is never kept by a browser or proxy cache (pages set it too).
    let v1 = v1.layer(SetResponseHeaderLayer::if_not_present(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    ));
    // Installed before the first request, so the first request is counted.
    ops::recorder();
    let operators = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics));
    v1.merge(web::router())
        .merge(operators)
        // Only routed requests are timed: their route template is the label (bounded).
        .route_layer(axum::middleware::from_fn(ops::track_requests))
        .layer(RequestBodyLimitLayer::new(max_body))
        // Every answer: no referrer leaks a patient URL to another site, and no browser guesses a
        // content type other than the one sent (OWASP Secure Headers Project).
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(axum::middleware::from_fn(extract::json_errors))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
