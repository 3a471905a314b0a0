//! The infusion session over HTTP: scheduling, the state machine's transitions, vital signs from
//! people and monitors, alarms with their lifecycle, and the clinic board.
//!
//! The session is a versioned record (`SessionDoc`) whose state is never stored as such: it is the
//! replay of the recorded transitions through `ketaflow_clinic::session::Session::apply`, the one
//! door of the state machine, so a stored session can only be in a state reachable by legal
//! transitions. Every write commits with its audit entry and its live event (see `live`).

use crate::extract::{JsonBody, Path, Query};
use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use ketaflow_app::AppError;
use ketaflow_store::DeviceToken;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{CurrentUser, presented_token};
use crate::error::{ApiError, ErrorBody};
use crate::policy::Action;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use ketaflow_app::alarms::{ALARM_ACTIONS, AcknowledgeAllIn, AlarmResolveIn, VitalOut, vital_out};
pub use ketaflow_app::board::{BoardOut, ChairOut, planned_dose_reached};
pub use ketaflow_app::booking::{DEVICE_TOKEN_PREFIX, DeviceTokenIn, DeviceTokenOut, SessionIn};
pub use ketaflow_app::records::{
    BaselineDoc, PreChecksDoc, RateDoc, ReadingDoc, SESSION, SessionDoc, TransitionDoc, pre_checks,
    stored_reading,
};
pub use ketaflow_app::sessions::{EVENTS, SessionOut, TransitionIn, session_now, session_out};
pub use ketaflow_app::vitals::{
    AlarmOut, ReadingAck, ReadingsAuthor, VitalsAck, VitalsJob, VitalsWritten, alarm_out, rfc3339,
    write_vitals,
};

// ---- Documents -----------------------------------------------------------------------------------

// ---- Output --------------------------------------------------------------------------------------

// ---- Writing a session with its audit entry and live events -------------------------------------

// ---- Scheduling ----------------------------------------------------------------------------------

/// Book a session for a patient with one of their plans.
#[utoipa::path(post, path = "/patients/{id}/sessions", tag = "sessions", request_body = SessionIn, params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 201, body = SessionOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create_session(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(patient_id): Path<Uuid>,
    body: JsonBody<SessionIn>,
) -> Result<(StatusCode, Json<SessionOut>), ApiError> {
    me.require(Action::RunSession)?;
    let body = body.value()?;
    Ok((
        StatusCode::CREATED,
        Json(state.book_session(&me.caller(), patient_id, body).await?),
    ))
}

/// Which sessions to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionQuery {
    /// Only sessions not yet discharged or aborted (default true).
    pub active: Option<bool>,
    /// Only this patient's sessions.
    pub patient_id: Option<Uuid>,
}

/// Sessions, newest first.
#[utoipa::path(get, path = "/sessions", tag = "sessions", params(SessionQuery),
    responses((status = 200, body = [SessionOut]), (status = 403, body = ErrorBody)))]
pub async fn list_sessions(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(q): Query<SessionQuery>,
) -> Result<Json<Vec<SessionOut>>, ApiError> {
    let sessions = state
        .sessions(&me.caller(), q.active.unwrap_or(true), q.patient_id)
        .await?;
    Ok(Json(sessions))
}

/// One session.
#[utoipa::path(get, path = "/sessions/{id}", tag = "sessions", params(("id" = Uuid, Path, description = "session id")),
    responses((status = 200, body = SessionOut), (status = 404, body = ErrorBody)))]
pub async fn get_session(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<SessionOut>, ApiError> {
    Ok(Json(state.session(&me.caller(), id).await?))
}

// ---- Transitions ---------------------------------------------------------------------------------

/// Apply one event to the session's state machine. An event that is not legal now is a 409 that
/// lists the legal ones; an event whose content is refused (missing checks, no reason, plan not
/// approved, discharge criteria unmet) is a 422 that says why. Nothing changes on refusal.
#[utoipa::path(post, path = "/sessions/{id}/transitions", tag = "sessions", request_body = TransitionIn, params(("id" = Uuid, Path, description = "session id")),
    responses((status = 200, body = SessionOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn transition(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: JsonBody<TransitionIn>,
) -> Result<Json<SessionOut>, ApiError> {
    let body = body.value()?;
    Ok(Json(state.transition(&me.caller(), id, body).await?))
}

// ---- Vital signs ---------------------------------------------------------------------------------

/// A batch of readings (a monitor's, or one a nurse typed).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VitalsIn {
    /// 1–500 readings.
    pub readings: Vec<ReadingDoc>,
}

/// Who is writing vitals: a clinician, or a monitor with a device token for this one session.
#[derive(Debug)]
pub enum VitalsWriter {
    /// A signed-in user.
    User(CurrentUser),
    /// A monitor.
    Device(DeviceToken),
}

impl FromRequestParts<AppState> for VitalsWriter {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<VitalsWriter, ApiError> {
        let raw = presented_token(&parts.headers).ok_or(ApiError::App(AppError::Unauthenticated))?;
        if raw.starts_with(DEVICE_TOKEN_PREFIX) {
            return Ok(VitalsWriter::Device(state.authenticate_device(&raw).await?));
        }
        Ok(VitalsWriter::User(
            CurrentUser::from_request_parts(parts, state).await?,
        ))
    }
}

/// Record vital signs: one reading typed by a nurse or a batch streamed by a monitor with a
/// device token for this session. Every reading is checked first (an impossible value refuses the
/// whole batch and stores nothing); each is stored once per idempotency key; alarm rules and NEWS2
/// run on every new reading. The response is sent only after everything is committed.
#[utoipa::path(post, path = "/sessions/{id}/vitals", tag = "sessions", request_body = VitalsIn, params(("id" = Uuid, Path, description = "session id")),
    responses((status = 200, body = VitalsAck), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn record_vitals(
    State(state): State<AppState>,
    writer: VitalsWriter,
    Path(id): Path<Uuid>,
    body: JsonBody<VitalsIn>,
) -> Result<Json<VitalsAck>, ApiError> {
    let ack = match writer {
        VitalsWriter::User(me) => {
            // The role is checked before the body is looked at.
            me.require(Action::RunSession)?;
            let body = body.value()?;
            state
                .record_clinician_vitals(&me.caller(), id, body.readings)
                .await?
        }
        VitalsWriter::Device(token) => {
            ketaflow_app::vitals::device_may_write(&token, id)?;
            let body = body.value()?;
            state.record_device_vitals(&token, id, body.readings).await?
        }
    };
    Ok(Json(ack))
}

/// A session's readings in the order taken.
#[utoipa::path(get, path = "/sessions/{id}/vitals", tag = "sessions", params(("id" = Uuid, Path, description = "session id")),
    responses((status = 200, body = [VitalOut]), (status = 404, body = ErrorBody)))]
pub async fn list_vitals(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<VitalOut>>, ApiError> {
    Ok(Json(state.vitals(&me.caller(), id).await?))
}

/// Why a reading is an artefact.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArtefactIn {
    /// What happened (3–500 characters), e.g. "cuff slipped while the patient moved".
    pub reason: String,
}

/// What marking an artefact changed.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ArtefactOut {
    /// The open alarms this reading alone had raised, now resolved as `artefact`.
    pub resolved_alarms: Vec<AlarmOut>,
}

/// Mark a reading as an artefact (a moved cuff, a probe off the finger): it stays stored and shown
/// as such, and is left out of the board's latest values, the abnormal marks and the discharge
/// criteria; an open alarm it alone raised is resolved as `artefact`. Audited.
#[utoipa::path(post, path = "/sessions/{id}/vitals/{vital_id}/artefact", tag = "sessions", request_body = ArtefactIn,
    params(("id" = Uuid, Path, description = "session id"), ("vital_id" = i64, Path, description = "reading id")),
    responses((status = 200, body = ArtefactOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn mark_artefact(
    State(state): State<AppState>,
    me: CurrentUser,
    Path((id, vital_id)): Path<(Uuid, i64)>,
    body: JsonBody<ArtefactIn>,
) -> Result<Json<ArtefactOut>, ApiError> {
    me.require(Action::RunSession)?;
    let body = body.value()?;
    Ok(Json(ArtefactOut {
        resolved_alarms: state
            .mark_artefact(&me.caller(), id, vital_id, &body.reason)
            .await?,
    }))
}

// ---- Device tokens -------------------------------------------------------------------------------

/// Issue a token a monitor uses to stream this session's vital signs (and nothing else).
#[utoipa::path(post, path = "/sessions/{id}/device-tokens", tag = "sessions", request_body = DeviceTokenIn, params(("id" = Uuid, Path, description = "session id")),
    responses((status = 201, body = DeviceTokenOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_device_token(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: JsonBody<DeviceTokenIn>,
) -> Result<(StatusCode, Json<DeviceTokenOut>), ApiError> {
    me.require(Action::RunSession)?;
    let body = body.value()?;
    Ok((
        StatusCode::CREATED,
        Json(state.issue_device_token(&me.caller(), id, body).await?),
    ))
}

// ---- Alarms --------------------------------------------------------------------------------------

/// A session's alarms, oldest first.
#[utoipa::path(get, path = "/sessions/{id}/alarms", tag = "sessions", params(("id" = Uuid, Path, description = "session id")),
    responses((status = 200, body = [AlarmOut]), (status = 404, body = ErrorBody)))]
pub async fn list_alarms(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<AlarmOut>>, ApiError> {
    Ok(Json(state.alarms(&me.caller(), id).await?))
}

/// Acknowledge an alarm (raised → acknowledged, recording who).
#[utoipa::path(post, path = "/alarms/{id}/acknowledge", tag = "sessions", params(("id" = Uuid, Path, description = "alarm id")),
    responses((status = 200, body = AlarmOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn acknowledge_alarm(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<AlarmOut>, ApiError> {
    Ok(Json(state.acknowledge_alarm(&me.caller(), id).await?))
}

/// Acknowledge every raised alarm of a session (one chair) with one reason; each is audited on its
/// own. Returns those acknowledged, highest priority first (empty when none was raised).
#[utoipa::path(post, path = "/sessions/{id}/alarms/acknowledge-all", tag = "sessions", request_body = AcknowledgeAllIn, params(("id" = Uuid, Path, description = "session id")),
    responses((status = 200, body = Vec<AlarmOut>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn acknowledge_all_alarms(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: JsonBody<AcknowledgeAllIn>,
) -> Result<Json<Vec<AlarmOut>>, ApiError> {
    me.require(Action::RunSession)?;
    let body = body.value()?;
    Ok(Json(state.acknowledge_all(&me.caller(), id, body).await?))
}

/// Resolve an alarm with the action taken (raised or acknowledged → resolved).
#[utoipa::path(post, path = "/alarms/{id}/resolve", tag = "sessions", request_body = AlarmResolveIn, params(("id" = Uuid, Path, description = "alarm id")),
    responses((status = 200, body = AlarmOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn resolve_alarm(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: JsonBody<AlarmResolveIn>,
) -> Result<Json<AlarmOut>, ApiError> {
    let body = body.value()?;
    Ok(Json(state.resolve_alarm(&me.caller(), id, body).await?))
}

// ---- The clinic board ----------------------------------------------------------------------------

/// Every active session: state, latest vitals, active alarms, elapsed time, predicted recovery.
#[utoipa::path(get, path = "/board", tag = "sessions",
    responses((status = 200, body = BoardOut), (status = 403, body = ErrorBody)))]
pub async fn board(State(state): State<AppState>, me: CurrentUser) -> Result<Json<BoardOut>, ApiError> {
    Ok(Json(state.board(&me.caller()).await?))
}

/// This area's routes, each with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_session))
        .routes(routes!(list_sessions))
        .routes(routes!(get_session))
        .routes(routes!(transition))
        .routes(routes!(record_vitals, list_vitals))
        .routes(routes!(mark_artefact))
        .routes(routes!(create_device_token))
        .routes(routes!(list_alarms))
        .routes(routes!(acknowledge_alarm))
        .routes(routes!(acknowledge_all_alarms))
        .routes(routes!(resolve_alarm))
        .routes(routes!(board))
}
