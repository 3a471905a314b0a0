//! At the bedside over HTTP: rate changes, side effects and assessments. The rules are in
//! `ketaflow_app::bedside` (and `clinic`); these handlers only parse and answer.

use crate::extract::{JsonBody, Path};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use uuid::Uuid;

use crate::api::sessions::SessionOut;
use crate::auth::CurrentUser;
use crate::error::{ApiError, ErrorBody};
use crate::policy::Action;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use ketaflow_app::bedside::{AssessmentIn, RateIn, RateOut, SideEffectIn};
pub use ketaflow_app::records::SideEffectDoc;

/// Change the rate of a running infusion. The new rate is checked against the protocol's limits
/// exactly as the plan was (rate, pump rate, and the projected session dose if it runs for the rest
/// of the planned time): beyond a hard limit it is refused; beyond a soft limit only a physician may
/// set it, with a reason per limit. Cp/Ce are re-predicted from what was actually given.
#[utoipa::path(post, path = "/sessions/{id}/rate", tag = "sessions", request_body = RateIn, params(("id" = Uuid, Path, description = "session id")),
    responses((status = 200, body = RateOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn change_rate(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: JsonBody<RateIn>,
) -> Result<Json<RateOut>, ApiError> {
    // The role is checked before the body is looked at.
    me.require(Action::RunSession)?;
    let body = body.value()?;
    Ok(Json(state.change_rate(&me.caller(), id, body).await?))
}

/// Record a side effect during or after the infusion, with its severity and the action taken.
#[utoipa::path(post, path = "/sessions/{id}/side-effects", tag = "sessions", request_body = SideEffectIn, params(("id" = Uuid, Path, description = "session id")),
    responses((status = 201, body = SessionOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn add_side_effect(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: JsonBody<SideEffectIn>,
) -> Result<(StatusCode, Json<SessionOut>), ApiError> {
    // The role is checked before the body is looked at.
    me.require(Action::RunSession)?;
    let body = body.value()?;
    Ok((
        StatusCode::CREATED,
        Json(state.add_side_effect(&me.caller(), id, body).await?),
    ))
}

/// Record a post-infusion assessment (modified Aldrete, MOAA/S, escort present).
#[utoipa::path(post, path = "/sessions/{id}/assessments", tag = "sessions", request_body = AssessmentIn, params(("id" = Uuid, Path, description = "session id")),
    responses((status = 201, body = SessionOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn add_assessment(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: JsonBody<AssessmentIn>,
) -> Result<(StatusCode, Json<SessionOut>), ApiError> {
    // The role is checked before the body is looked at.
    me.require(Action::RunSession)?;
    let body = body.value()?;
    Ok((
        StatusCode::CREATED,
        Json(state.add_assessment(&me.caller(), id, body).await?),
    ))
}

/// This area's routes, each with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(change_rate))
        .routes(routes!(add_side_effect))
        .routes(routes!(add_assessment))
}
