//! Measurement-based care over HTTP: the edge over `ketaflow_app::outcomes` (questionnaires and
//! their scores, suicide-risk alerts and their follow-up, patient links, the measurement schedule
//! and the exports).

use crate::extract::{JsonBody, Path, Query};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::error::{ApiError, ErrorBody};
use crate::policy::Action;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use ketaflow_app::outcomes::{
    AnswersIn, CONTEXTS, CRISIS_INFORMATION, CssrsIn, DueOut, FOLLOW_UP_ACTIONS, FollowUpDoc, FollowUpIn,
    LinkAnswersIn, LinkDoneOut, LinkFormOut, LinkIn, LinkOut, MeasurementOut, OutcomeDoc, OutcomeIn,
    OutcomeOut, OutcomesOut, RiskAlertDoc, RiskAlertOut, SatisfiedByOut, ScheduleOut, TrajectoryOut,
};

/// Which alerts.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// Only open alerts (default true).
    pub open: Option<bool>,
}

/// A CSV download.
pub(crate) fn csv_response(filename: &str, body: String) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/csv; charset=utf-8".to_string(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// Record a questionnaire: scored exactly; a suicide-risk answer raises an urgent alert at once.
#[utoipa::path(post, path = "/patients/{id}/outcomes", tag = "outcomes", request_body = OutcomeIn, params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 201, body = OutcomeOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn record_outcome(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: JsonBody<OutcomeIn>,
) -> Result<(StatusCode, Json<OutcomeOut>), ApiError> {
    me.require(Action::WriteIntake)?;
    let body = body.value()?;
    Ok((
        StatusCode::CREATED,
        Json(state.record_outcome(&me.caller(), id, body).await?),
    ))
}

/// A patient's questionnaires and their course: response, remission, rapid relief.
#[utoipa::path(get, path = "/patients/{id}/outcomes", tag = "outcomes", params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 200, body = OutcomesOut), (status = 404, body = ErrorBody)))]
pub async fn list_outcomes(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<OutcomesOut>, ApiError> {
    Ok(Json(state.outcomes(&me.caller(), id).await?))
}

/// Suicide-risk alerts across the clinic, oldest open first.
#[utoipa::path(get, path = "/risk-alerts", tag = "outcomes", params(AlertQuery),
    responses((status = 200, body = [RiskAlertOut]), (status = 403, body = ErrorBody)))]
pub async fn list_risk_alerts(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(q): Query<AlertQuery>,
) -> Result<Json<Vec<RiskAlertOut>>, ApiError> {
    Ok(Json(
        state.risk_alerts(&me.caller(), q.open.unwrap_or(true)).await?,
    ))
}

/// Document the follow-up of a suicide-risk alert; it closes the alert.
#[utoipa::path(post, path = "/risk-alerts/{id}/follow-up", tag = "outcomes", request_body = FollowUpIn, params(("id" = Uuid, Path, description = "alert id")),
    responses((status = 200, body = RiskAlertOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn follow_up(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: JsonBody<FollowUpIn>,
) -> Result<Json<RiskAlertOut>, ApiError> {
    me.require(Action::WriteIntake)?;
    let body = body.value()?;
    Ok(Json(state.follow_up(&me.caller(), id, body).await?))
}

/// Create a single-use, expiring link through which the patient answers from home, no account.
#[utoipa::path(post, path = "/patients/{id}/questionnaire-links", tag = "outcomes", request_body = LinkIn, params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 201, body = LinkOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create_link(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: JsonBody<LinkIn>,
) -> Result<(StatusCode, Json<LinkOut>), ApiError> {
    me.require(Action::WriteIntake)?;
    let body = body.value()?;
    Ok((
        StatusCode::CREATED,
        Json(state.create_link(&me.caller(), id, body).await?),
    ))
}

/// What the link asks (no account needed).
#[utoipa::path(get, path = "/q/{token}", tag = "outcomes", params(("token" = String, Path, description = "the link's token")),
    responses((status = 200, body = LinkFormOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn open_link(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Json<LinkFormOut>, ApiError> {
    Ok(Json(state.open_link(&token).await?))
}

/// Send the answers (once). Scores are stored for the care team; a suicide-risk answer alerts them
/// at once and shows the patient crisis information.
#[utoipa::path(post, path = "/q/{token}", tag = "outcomes", request_body = LinkAnswersIn, params(("token" = String, Path, description = "the link's token")),
    responses((status = 201, body = LinkDoneOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn submit_link(
    State(state): State<AppState>,
    Path(token): Path<String>,
    body: JsonBody<LinkAnswersIn>,
) -> Result<(StatusCode, Json<LinkDoneOut>), ApiError> {
    let body = body.value()?;
    Ok((StatusCode::CREATED, Json(state.submit_link(&token, body).await?)))
}

/// One patient's questionnaire history as CSV (identified: for the chart). Audited.
#[utoipa::path(get, path = "/patients/{id}/outcomes/export", tag = "outcomes", params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 200, description = "the outcomes as CSV", body = String, content_type = "text/csv"), (status = 404, body = ErrorBody)))]
pub async fn export_patient(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<axum::response::Response, ApiError> {
    let csv = state.export_patient_outcomes(&me.caller(), id).await?;
    Ok(csv_response(&format!("outcomes-{id}.csv"), csv))
}

/// Every patient's questionnaires, de-identified, as CSV for research and quality review: no
/// names, record numbers, ids or dates. Patients appear under a key that is stable within this
/// export only (a hash with a fresh random salt), ages in 10-year bands (90 and over together),
/// and time as days since the patient's first infusion. Audited.
#[utoipa::path(get, path = "/outcomes/export", tag = "outcomes",
    responses((status = 200, description = "the outcomes as CSV", body = String, content_type = "text/csv"), (status = 403, body = ErrorBody)))]
pub async fn export_clinic(
    State(state): State<AppState>,
    me: CurrentUser,
) -> Result<axum::response::Response, ApiError> {
    let csv = state.export_clinic_outcomes(&me.caller()).await?;
    Ok(csv_response("outcomes-deidentified.csv", csv))
}

/// A patient's measurement schedule: baseline, before each infusion (started or booked) and the
/// follow-ups after the last, each with its window and status (done with the questionnaire that
/// satisfied it, due, overdue, upcoming or missed), from the protocol of the course.
#[utoipa::path(get, path = "/patients/{id}/outcomes/schedule", tag = "outcomes", params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 200, body = ScheduleOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_schedule(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<ScheduleOut>, ApiError> {
    Ok(Json(state.schedule(&me.caller(), id).await?))
}

/// The reminder list: every due or overdue measurement of every patient with an open course,
/// oldest due first.
///
/// A course is open while the patient has an open session (booked, checked in, infusing, ...) or
/// the window of the last follow-up after their last infusion has not closed.
///
/// Cost: two listings (the in-progress index of open sessions; and every session changed within
/// the library's longest follow-up horizon, 84 + 3 days in the shipped protocols — a session is
/// changed when its infusion starts, so this holds every session that can still anchor a
/// follow-up), then, for each patient with an open course, three reads (the patient, their
/// sessions, their questionnaires): 2 + 3 × patients queries, bounded by the clinic's activity
/// over the horizon, not by the size of its history, and no patient is dropped by a page limit.
#[utoipa::path(get, path = "/outcomes/due", tag = "outcomes",
    responses((status = 200, body = [DueOut]), (status = 403, body = ErrorBody)))]
pub async fn list_due(State(state): State<AppState>, me: CurrentUser) -> Result<Json<Vec<DueOut>>, ApiError> {
    Ok(Json(state.due_measurements(&me.caller()).await?))
}

/// This area's routes, each with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(record_outcome, list_outcomes))
        .routes(routes!(list_risk_alerts))
        .routes(routes!(follow_up))
        .routes(routes!(create_link))
        .routes(routes!(open_link, submit_link))
        .routes(routes!(export_patient))
        .routes(routes!(export_clinic))
        .routes(routes!(get_schedule))
        .routes(routes!(list_due))
}
