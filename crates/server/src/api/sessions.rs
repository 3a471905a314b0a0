//! The infusion session over HTTP: scheduling, the state machine's transitions, vital signs from
//! people and monitors, alarms with their lifecycle, and the clinic board.
//!
//! The session is a versioned record (`SessionDoc`) whose state is never stored as such: it is the
//! replay of the recorded transitions through `ketaflow_clinic::session::Session::apply`, the one
//! door of the state machine, so a stored session can only be in a state reachable by legal
//! transitions. Every write commits with its audit entry and its live event (see `live`).

use crate::extract::{Path, Query};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use ketaflow_store::{DeviceToken, NewAuditEntry, NewDeviceToken, NewEvent, NewRecord, Record, hash_token};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::api::clinical::{self, PlanOut};
use crate::auth::{CurrentUser, presented_token};
use crate::error::{ApiError, ErrorBody, json_rejection};
use crate::policy::Action;
use crate::state::AppState;

pub use ketaflow_app::alarms::{ALARM_ACTIONS, AlarmResolveIn, VitalOut, vital_out};
pub use ketaflow_app::board::{BoardOut, ChairOut, planned_dose_reached};
pub use ketaflow_app::records::{
    BaselineDoc, PreChecksDoc, RateDoc, ReadingDoc, SESSION, SessionDoc, TransitionDoc, is_open, pre_checks,
    stored_reading,
};
pub use ketaflow_app::sessions::{EVENTS, SessionOut, TransitionIn, is_open_state, session_out};
pub use ketaflow_app::vitals::{
    AlarmOut, ReadingAck, ReadingsAuthor, VitalsAck, VitalsJob, VitalsWritten, alarm_out, rfc3339,
    write_vitals,
};

/// Device tokens start with this, so neither kind of token can be mistaken for the other.
pub const DEVICE_TOKEN_PREFIX: &str = "dev_";

// ---- Documents -----------------------------------------------------------------------------------

// ---- Output --------------------------------------------------------------------------------------

pub(crate) async fn load_session(state: &AppState, id: Uuid) -> Result<Record, ApiError> {
    state.store.get_record(SESSION, id).await.map_err(|e| match e {
        ketaflow_store::StoreError::NotFound { .. } => ApiError::NotFound {
            what: "session".into(),
            id: id.to_string(),
        },
        other => other.into(),
    })
}

fn parse_time(field: &str, text: &str) -> Result<OffsetDateTime, ApiError> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| ApiError::field(field, text, "an RFC 3339 date-time, e.g. 2026-11-27T09:30:00Z"))
}

// ---- Writing a session with its audit entry and live events -------------------------------------

// ---- Scheduling ----------------------------------------------------------------------------------

/// A session to book.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionIn {
    /// The dose plan (the patient's; it must be approved before the infusion can start).
    pub plan_id: Uuid,
    /// Chair or bay, 1–40 characters.
    pub chair: String,
    /// When (RFC 3339).
    pub scheduled_for: String,
}

/// Book a session for a patient with one of their plans.
#[utoipa::path(post, path = "/api/v1/patients/{id}/sessions", tag = "sessions", request_body = SessionIn, params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 201, body = SessionOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create_session(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(patient_id): Path<Uuid>,
    body: Result<Json<SessionIn>, JsonRejection>,
) -> Result<(StatusCode, Json<SessionOut>), ApiError> {
    me.require(Action::RunSession)?;
    let Json(body) = body.map_err(json_rejection)?;
    let chair = body.chair.trim();
    if chair.is_empty() || chair.chars().count() > 40 {
        return Err(ApiError::field("chair", chair, "1–40 characters"));
    }
    let scheduled_for = parse_time("scheduled_for", &body.scheduled_for)?;
    let patient = clinical::patient_out(clinical::load_patient(&state, patient_id).await?)?;
    let plan: PlanOut = clinical::plan_out(clinical::load_plan(&state, body.plan_id).await?)?;
    if plan.doc.patient_id != patient_id {
        return Err(ApiError::field(
            "plan_id",
            body.plan_id.to_string(),
            "a plan of this patient",
        ));
    }
    let doc = SessionDoc {
        patient_id,
        patient_name: patient.doc.display_name.clone(),
        plan_id: body.plan_id,
        protocol_id: plan.doc.protocol_id.clone(),
        chair: chair.to_string(),
        scheduled_for,
        created_by: me.user.id.to_string(),
        baseline: patient.doc.baseline_bp.as_ref().map(|b| BaselineDoc {
            systolic_mmhg: b.systolic_mmhg,
            diastolic_mmhg: b.diastolic_mmhg,
            heart_rate_per_min: None,
            origin: "intake".into(),
        }),
        transitions: vec![],
        rates: vec![],
        side_effects: vec![],
        assessments: vec![],
    };
    let now = state.now();
    let data = serde_json::to_value(&doc).map_err(|e| ApiError::Internal(e.to_string()))?;
    let label = format!("{} {}", doc.chair, doc.patient_name);
    let mut tx = state.store.begin().await?;
    let record = tx
        .insert_record(
            &NewRecord {
                kind: SESSION,
                parent_id: Some(patient_id),
                label: &label,
                data: &data,
            },
            now,
        )
        .await?;
    tx.append_audit(
        &NewAuditEntry::new(now, me.actor(), "session.create", SESSION, record.id.to_string()).after(data),
    )
    .await?;
    tx.set_in_progress(SESSION, record.id, true).await?;
    let event = tx
        .append_event(&NewEvent {
            session_id: record.id,
            kind: "session.created",
            at: now,
            data: &serde_json::json!({ "chair": doc.chair, "state": "scheduled" }),
        })
        .await?;
    tx.commit().await?;
    state.live.publish([event]);
    Ok((StatusCode::CREATED, Json(session_out(record, now)?)))
}

/// Which sessions to list.
#[derive(Debug, Deserialize, IntoParams)]
pub struct SessionQuery {
    /// Only sessions not yet discharged or aborted (default true).
    pub active: Option<bool>,
    /// Only this patient's sessions.
    pub patient_id: Option<Uuid>,
}

/// Sessions, newest first.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "sessions", params(SessionQuery),
    responses((status = 200, body = [SessionOut]), (status = 403, body = ErrorBody)))]
pub async fn list_sessions(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(q): Query<SessionQuery>,
) -> Result<Json<Vec<SessionOut>>, ApiError> {
    me.require(Action::ReadClinical)?;
    let now = state.now();
    let active = q.active.unwrap_or(true);
    // Open sessions come from the in-progress index, all of them; closed ones are paged.
    let records = if active {
        let mut open = state.store.list_in_progress(SESSION).await?;
        open.retain(|r| q.patient_id.is_none() || r.parent_id == q.patient_id);
        open.reverse();
        open
    } else {
        state
            .store
            .list_records(SESSION, q.patient_id, None, ketaflow_store::MAX_RECORD_PAGE)
            .await?
    };
    let mut out = Vec::new();
    for r in records {
        let s = session_out(r, now)?;
        if active && !is_open_state(s.state) {
            continue;
        }
        out.push(s);
    }
    Ok(Json(out))
}

/// One session.
#[utoipa::path(get, path = "/api/v1/sessions/{id}", tag = "sessions", params(("id" = Uuid, Path, description = "session id")),
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
#[utoipa::path(post, path = "/api/v1/sessions/{id}/transitions", tag = "sessions", request_body = TransitionIn, params(("id" = Uuid, Path, description = "session id")),
    responses((status = 200, body = SessionOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn transition(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: Result<Json<TransitionIn>, JsonRejection>,
) -> Result<Json<SessionOut>, ApiError> {
    let Json(body) = body.map_err(json_rejection)?;
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
        let raw = presented_token(&parts.headers).ok_or(ApiError::Unauthenticated)?;
        if let Some(device) = raw.strip_prefix(DEVICE_TOKEN_PREFIX) {
            if device.len() != 64 || !device.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ApiError::Unauthenticated);
            }
            let token = state
                .store
                .find_device_token(&hash_token(&raw), state.now())
                .await?
                .ok_or(ApiError::Unauthenticated)?;
            return Ok(VitalsWriter::Device(token));
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
#[utoipa::path(post, path = "/api/v1/sessions/{id}/vitals", tag = "sessions", request_body = VitalsIn, params(("id" = Uuid, Path, description = "session id")),
    responses((status = 200, body = VitalsAck), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn record_vitals(
    State(state): State<AppState>,
    writer: VitalsWriter,
    Path(id): Path<Uuid>,
    body: Result<Json<VitalsIn>, JsonRejection>,
) -> Result<Json<VitalsAck>, ApiError> {
    let ack = match writer {
        VitalsWriter::User(me) => {
            // The role is checked before the body is looked at.
            me.require(Action::RunSession)?;
            let Json(body) = body.map_err(json_rejection)?;
            state
                .record_clinician_vitals(&me.caller(), id, body.readings)
                .await?
        }
        VitalsWriter::Device(token) => {
            if token.session_id != id {
                return Err(ApiError::Forbidden {
                    role: "device",
                    action: "write to a session other than its own",
                });
            }
            let Json(body) = body.map_err(json_rejection)?;
            state.record_device_vitals(&token, id, body.readings).await?
        }
    };
    Ok(Json(ack))
}

/// A session's readings in the order taken.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/vitals", tag = "sessions", params(("id" = Uuid, Path, description = "session id")),
    responses((status = 200, body = [VitalOut]), (status = 404, body = ErrorBody)))]
pub async fn list_vitals(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<VitalOut>>, ApiError> {
    Ok(Json(state.vitals(&me.caller(), id).await?))
}

// ---- Device tokens -------------------------------------------------------------------------------

/// A monitor to connect.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceTokenIn {
    /// A name for the monitor (1–80 characters), e.g. its serial number.
    pub label: String,
}

/// A new device token: shown once.
#[derive(Serialize, ToSchema, Debug)]
pub struct DeviceTokenOut {
    /// Send as `Authorization: Bearer <token>` to `POST /api/v1/sessions/{id}/vitals`. It works
    /// for this session only and ends when the session closes (12 h at most).
    pub token: String,
    /// When it expires.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

/// Issue a token a monitor uses to stream this session's vital signs (and nothing else).
#[utoipa::path(post, path = "/api/v1/sessions/{id}/device-tokens", tag = "sessions", request_body = DeviceTokenIn, params(("id" = Uuid, Path, description = "session id")),
    responses((status = 201, body = DeviceTokenOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_device_token(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: Result<Json<DeviceTokenIn>, JsonRejection>,
) -> Result<(StatusCode, Json<DeviceTokenOut>), ApiError> {
    me.require(Action::RunSession)?;
    let Json(body) = body.map_err(json_rejection)?;
    let label = body.label.trim();
    if label.is_empty() || label.chars().count() > 80 {
        return Err(ApiError::field("label", label, "1–80 characters"));
    }
    let record = load_session(&state, id).await?;
    let session = session_out(record, state.now())?;
    if matches!(session.state, "discharged" | "aborted") {
        return Err(ApiError::Conflict(format!("the session is {}", session.state)));
    }
    let raw = format!("{DEVICE_TOKEN_PREFIX}{}", crate::auth::new_token());
    let now = state.now();
    // A clinic day: a monitor token never outlives a shift, and ends earlier when the session closes.
    let expires_at = now + time::Duration::hours(12);
    let mut tx = state.store.begin().await?;
    tx.insert_device_token(&NewDeviceToken {
        token_hash: hash_token(&raw),
        session_id: id,
        created_by: me.user.id,
        label: Some(label.to_string()),
        created_at: now,
        expires_at,
    })
    .await?;
    tx.append_audit(
        &NewAuditEntry::new(now, me.actor(), "session.device_token", SESSION, id.to_string())
            .after(serde_json::json!({ "label": label, "expires_at": rfc3339(expires_at) })),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(DeviceTokenOut {
            token: raw,
            expires_at,
        }),
    ))
}

// ---- Alarms --------------------------------------------------------------------------------------

/// A session's alarms, oldest first.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/alarms", tag = "sessions", params(("id" = Uuid, Path, description = "session id")),
    responses((status = 200, body = [AlarmOut]), (status = 404, body = ErrorBody)))]
pub async fn list_alarms(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<AlarmOut>>, ApiError> {
    Ok(Json(state.alarms(&me.caller(), id).await?))
}

/// Acknowledge an alarm (raised → acknowledged, recording who).
#[utoipa::path(post, path = "/api/v1/alarms/{id}/acknowledge", tag = "sessions", params(("id" = Uuid, Path, description = "alarm id")),
    responses((status = 200, body = AlarmOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn acknowledge_alarm(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<AlarmOut>, ApiError> {
    Ok(Json(state.acknowledge_alarm(&me.caller(), id).await?))
}

/// Resolve an alarm with the action taken (raised or acknowledged → resolved).
#[utoipa::path(post, path = "/api/v1/alarms/{id}/resolve", tag = "sessions", request_body = AlarmResolveIn, params(("id" = Uuid, Path, description = "alarm id")),
    responses((status = 200, body = AlarmOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn resolve_alarm(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: Result<Json<AlarmResolveIn>, JsonRejection>,
) -> Result<Json<AlarmOut>, ApiError> {
    let Json(body) = body.map_err(json_rejection)?;
    Ok(Json(state.resolve_alarm(&me.caller(), id, body).await?))
}

// ---- The clinic board ----------------------------------------------------------------------------

/// Every active session: state, latest vitals, active alarms, elapsed time, predicted recovery.
#[utoipa::path(get, path = "/api/v1/board", tag = "sessions",
    responses((status = 200, body = BoardOut), (status = 403, body = ErrorBody)))]
pub async fn board(State(state): State<AppState>, me: CurrentUser) -> Result<Json<BoardOut>, ApiError> {
    Ok(Json(state.board(&me.caller()).await?))
}
