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
pub mod state;
pub mod web;

use axum::Router;
use axum::routing::{get, post};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

pub use ketaflow_app::policy;
pub use state::{AppState, Clock, Settings};

/// The OpenAPI document of the API.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "Ketaflow API", description = "Ketamine infusion clinic: intake, eligibility, protocols, dose plans, audit."),
    paths(
        api::accounts::login, api::accounts::logout, api::accounts::me, api::accounts::create_token, api::accounts::change_password,
        api::accounts::list_users, api::accounts::create_user, api::accounts::set_disabled, api::accounts::reset_password,
        api::library::list_protocols, api::library::get_protocol, api::library::list_audit, api::library::verify_audit,
        api::clinical::create_patient, api::clinical::list_patients, api::clinical::get_patient,
        api::clinical::add_weight, api::clinical::add_height, api::clinical::add_indication, api::clinical::add_medication,
        api::clinical::add_condition, api::clinical::set_baseline_bp, api::clinical::get_eligibility,
        api::clinical::acknowledge, api::clinical::create_plan, api::clinical::list_plans, api::clinical::get_plan,
        api::clinical::approve_plan,
        api::sessions::create_session, api::sessions::list_sessions, api::sessions::get_session, api::sessions::transition,
        api::sessions::record_vitals, api::sessions::list_vitals, api::sessions::create_device_token, api::sessions::list_alarms,
        api::sessions::acknowledge_alarm, api::sessions::resolve_alarm, api::sessions::board,
        api::bedside::change_rate, api::bedside::add_side_effect, api::bedside::add_assessment,
        api::discharge::get_prediction, api::discharge::get_discharge,
        api::ledger::receive_vials, api::ledger::list_vials, api::ledger::get_vial, api::ledger::draw,
        api::ledger::administer, api::ledger::waste, api::ledger::destroy, api::ledger::record_count,
        api::ledger::list_discrepancies, api::ledger::resolve_discrepancy, api::ledger::inventory_report,
        api::ledger::session_ledger, api::ledger::export,
        api::live::session_stream, api::live::board_stream, api::record::get_record,
        api::outcomes::record_outcome, api::outcomes::list_outcomes, api::outcomes::list_risk_alerts, api::outcomes::follow_up,
        api::outcomes::create_link, api::outcomes::open_link, api::outcomes::submit_link,
        api::outcomes::export_patient, api::outcomes::export_clinic, api::outcomes::get_schedule, api::outcomes::list_due,
        api::safety::add_safety_check, api::safety::add_opioid_use, api::safety::get_safety,
    ),
    tags((name = "auth"), (name = "users"), (name = "protocols"), (name = "patients"), (name = "plans"), (name = "sessions"), (name = "outcomes"), (name = "ledger"), (name = "audit"))
)]
pub struct ApiDoc;

async fn openapi() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    use api::{accounts, bedside, clinical, discharge, library, live, outcomes, record, safety, sessions};
    let max_body = state.settings.max_body_bytes;
    let v1 = Router::new()
        .route("/openapi.json", get(openapi))
        .route("/auth/login", post(accounts::login))
        .route("/auth/logout", post(accounts::logout))
        .route("/auth/me", get(accounts::me))
        .route("/auth/tokens", post(accounts::create_token))
        .route("/auth/password", post(accounts::change_password))
        .route("/users", get(accounts::list_users).post(accounts::create_user))
        .route("/users/{id}/disabled", post(accounts::set_disabled))
        .route("/users/{id}/password", post(accounts::reset_password))
        .route("/protocols", get(library::list_protocols))
        .route("/protocols/{id}", get(library::get_protocol))
        .route("/audit", get(library::list_audit))
        .route("/audit/verify", get(library::verify_audit))
        .route(
            "/patients",
            get(clinical::list_patients).post(clinical::create_patient),
        )
        .route("/patients/{id}", get(clinical::get_patient))
        .route("/patients/{id}/weights", post(clinical::add_weight))
        .route("/patients/{id}/heights", post(clinical::add_height))
        .route("/patients/{id}/indications", post(clinical::add_indication))
        .route("/patients/{id}/medications", post(clinical::add_medication))
        .route("/patients/{id}/conditions", post(clinical::add_condition))
        .route("/patients/{id}/baseline-bp", post(clinical::set_baseline_bp))
        .route("/patients/{id}/eligibility", get(clinical::get_eligibility))
        .route(
            "/patients/{id}/eligibility/acknowledgements",
            post(clinical::acknowledge),
        )
        .route(
            "/patients/{id}/plans",
            get(clinical::list_plans).post(clinical::create_plan),
        )
        .route("/plans/{id}", get(clinical::get_plan))
        .route("/plans/{id}/approve", post(clinical::approve_plan))
        .route("/patients/{id}/sessions", post(sessions::create_session))
        .route("/sessions", get(sessions::list_sessions))
        .route("/sessions/{id}", get(sessions::get_session))
        .route("/sessions/{id}/transitions", post(sessions::transition))
        .route(
            "/sessions/{id}/vitals",
            get(sessions::list_vitals).post(sessions::record_vitals),
        )
        .route(
            "/sessions/{id}/device-tokens",
            post(sessions::create_device_token),
        )
        .route("/sessions/{id}/alarms", get(sessions::list_alarms))
        .route("/sessions/{id}/rate", post(bedside::change_rate))
        .route("/sessions/{id}/side-effects", post(bedside::add_side_effect))
        .route("/sessions/{id}/assessments", post(bedside::add_assessment))
        .route("/sessions/{id}/prediction", get(discharge::get_prediction))
        .route("/sessions/{id}/discharge", get(discharge::get_discharge))
        .route("/sessions/{id}/stream", get(live::session_stream))
        .route("/sessions/{id}/record", get(record::get_record))
        .route("/alarms/{id}/acknowledge", post(sessions::acknowledge_alarm))
        .route("/alarms/{id}/resolve", post(sessions::resolve_alarm))
        .route(
            "/patients/{id}/outcomes",
            get(outcomes::list_outcomes).post(outcomes::record_outcome),
        )
        .route("/patients/{id}/questionnaire-links", post(outcomes::create_link))
        .route("/patients/{id}/safety", get(safety::get_safety))
        .route("/patients/{id}/safety-checks", post(safety::add_safety_check))
        .route("/patients/{id}/opioid-use", post(safety::add_opioid_use))
        .route("/patients/{id}/outcomes/export", get(outcomes::export_patient))
        .route("/outcomes/export", get(outcomes::export_clinic))
        .route("/patients/{id}/outcomes/schedule", get(outcomes::get_schedule))
        .route("/outcomes/due", get(outcomes::list_due))
        .route("/risk-alerts", get(outcomes::list_risk_alerts))
        .route("/risk-alerts/{id}/follow-up", post(outcomes::follow_up))
        .route("/q/{token}", get(outcomes::open_link).post(outcomes::submit_link))
        .route("/board", get(sessions::board))
        .route("/board/stream", get(live::board_stream));
    // The controlled-substance ledger.
    let v1 = v1
        .route(
            "/ledger/vials",
            get(api::ledger::list_vials).post(api::ledger::receive_vials),
        )
        .route("/ledger/vials/{id}", get(api::ledger::get_vial))
        .route("/ledger/vials/{id}/draws", post(api::ledger::draw))
        .route("/ledger/vials/{id}/destruction", post(api::ledger::destroy))
        .route(
            "/ledger/draws/{id}/administrations",
            post(api::ledger::administer),
        )
        .route("/ledger/draws/{id}/waste", post(api::ledger::waste))
        .route("/ledger/counts", post(api::ledger::record_count))
        .route("/ledger/discrepancies", get(api::ledger::list_discrepancies))
        .route(
            "/ledger/discrepancies/{id}/resolve",
            post(api::ledger::resolve_discrepancy),
        )
        .route("/ledger/inventory", get(api::ledger::inventory_report))
        .route("/ledger/sessions/{id}", get(api::ledger::session_ledger))
        .route("/ledger/export", get(api::ledger::export));
    Router::new()
        .nest("/api/v1", v1)
        .merge(web::router())
        .layer(RequestBodyLimitLayer::new(max_body))
        .layer(axum::middleware::from_fn(extract::json_errors))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
