//! What was given, what it predicts, and whether the patient may go home: the session's
//! re-prediction from the recorded rates, the post-infusion assessments and the discharge criteria.
//! The decisions are `ketaflow_clinic::discharge`'s; this module gathers their inputs.

use crate::extract::Path;
use axum::Json;
use axum::extract::State;
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use ketaflow_app::booking::SessionPredictionOut;
pub use ketaflow_app::records::{AldreteDoc, AssessmentDoc};
pub use ketaflow_app::sessions::{CriterionOut, DischargeOut};

/// Cp and Ce re-predicted from the rates actually given (pauses and rate changes included).
#[utoipa::path(get, path = "/sessions/{id}/prediction", tag = "sessions", params(("id" = Uuid, Path, description = "session id")),
    responses((status = 200, body = SessionPredictionOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn get_prediction(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<SessionPredictionOut>, ApiError> {
    Ok(Json(state.session_prediction(&me.caller(), id).await?))
}

/// Which discharge criteria are met, which are not, and the PK-predicted earliest time.
#[utoipa::path(get, path = "/sessions/{id}/discharge", tag = "sessions", params(("id" = Uuid, Path, description = "session id")),
    responses((status = 200, body = DischargeOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn get_discharge(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<DischargeOut>, ApiError> {
    Ok(Json(state.discharge(&me.caller(), id).await?))
}

/// This area's routes, each with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_prediction))
        .routes(routes!(get_discharge))
}
