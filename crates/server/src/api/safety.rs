//! Long-term safety and opioid use over HTTP: the edge over `ketaflow_app::safety`.

use crate::extract::{JsonBody, Path};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::error::{ApiError, ErrorBody};
use crate::policy::Action;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use ketaflow_app::safety::{
    ExposureOut, FlagOut, MmeFlagOut, MmeTrendOut, OpioidDoseIn, OpioidDoseOut, OpioidUseDoc, OpioidUseIn,
    SafetyCheckDoc, SafetyOut,
};

/// Record a safety check.
#[utoipa::path(post, path = "/patients/{id}/safety-checks", tag = "outcomes", request_body = SafetyCheckDoc, params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 201, body = SafetyCheckDoc), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn add_safety_check(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: JsonBody<SafetyCheckDoc>,
) -> Result<(StatusCode, Json<SafetyCheckDoc>), ApiError> {
    me.require(Action::WriteIntake)?;
    let body = body.value()?;
    Ok((
        StatusCode::CREATED,
        Json(state.add_safety_check(&me.caller(), id, body).await?),
    ))
}

/// Record opioid use; the MME per day is computed and stored with the table's name.
#[utoipa::path(post, path = "/patients/{id}/opioid-use", tag = "outcomes", request_body = OpioidUseIn, params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 201, body = OpioidUseDoc), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn add_opioid_use(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: JsonBody<OpioidUseIn>,
) -> Result<(StatusCode, Json<OpioidUseDoc>), ApiError> {
    me.require(Action::WriteIntake)?;
    let body = body.value()?;
    Ok((
        StatusCode::CREATED,
        Json(state.add_opioid_use(&me.caller(), id, body).await?),
    ))
}

/// Cumulative ketamine, surveillance flags with due dates, and opioid MME over the course.
#[utoipa::path(get, path = "/patients/{id}/safety", tag = "outcomes", params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 200, body = SafetyOut), (status = 404, body = ErrorBody)))]
pub async fn get_safety(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<SafetyOut>, ApiError> {
    Ok(Json(state.safety(&me.caller(), id).await?))
}

/// This area's routes, each with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(add_safety_check))
        .routes(routes!(add_opioid_use))
        .routes(routes!(get_safety))
}
