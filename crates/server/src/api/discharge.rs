//! What was given, what it predicts, and whether the patient may go home: the session's
//! re-prediction from the recorded rates, the post-infusion assessments and the discharge criteria.
//! The decisions are `ketaflow_clinic::discharge`'s; this module gathers their inputs.

use crate::extract::Path;
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::clinical::{self, PredictionOut};
use crate::api::sessions::{load_session, session_out};
use crate::auth::CurrentUser;
use crate::error::{ApiError, ErrorBody};
use crate::policy::Action;
use crate::state::AppState;

pub use ketaflow_app::records::{AldreteDoc, AssessmentDoc};
pub use ketaflow_app::sessions::{CriterionOut, DischargeOut};

/// The session's prediction as the API returns it.
#[derive(Serialize, ToSchema, Debug)]
pub struct SessionPredictionOut {
    /// The first start of the infusion: time 0 of the curves.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub origin: OffsetDateTime,
    /// When Ce stays below the recovery threshold.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ce_below_threshold_at: Option<OffsetDateTime>,
    /// The curves.
    pub prediction: PredictionOut,
}

/// Cp and Ce re-predicted from the rates actually given (pauses and rate changes included).
#[utoipa::path(get, path = "/api/v1/sessions/{id}/prediction", tag = "sessions", params(("id" = Uuid, Path, description = "session id")),
    responses((status = 200, body = SessionPredictionOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn get_prediction(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<SessionPredictionOut>, ApiError> {
    me.require(Action::ReadClinical)?;
    let now = state.now();
    let doc = session_out(load_session(&state, id).await?, now)?.doc;
    let (origin, p) = state.predict_session(id, &doc, now).await?.ok_or_else(|| {
        ApiError::Conflict("the infusion has not started; the plan holds the prediction".into())
    })?;
    Ok(Json(SessionPredictionOut {
        origin,
        ce_below_threshold_at: p
            .ce_below_threshold_from_s
            .map(|s| origin + time::Duration::seconds_f64(s)),
        prediction: clinical::prediction_out(&p),
    }))
}

/// Which discharge criteria are met, which are not, and the PK-predicted earliest time.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/discharge", tag = "sessions", params(("id" = Uuid, Path, description = "session id")),
    responses((status = 200, body = DischargeOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn get_discharge(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<DischargeOut>, ApiError> {
    me.require(Action::ReadClinical)?;
    let now = state.now();
    let doc = session_out(load_session(&state, id).await?, now)?.doc;
    Ok(Json(state.assess_discharge(id, &doc, now).await?.0))
}
