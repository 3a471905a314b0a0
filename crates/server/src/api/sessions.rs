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
use ketaflow_store::{
    Actor, DeviceToken, NewAuditEntry, NewDeviceToken, NewEvent, NewRecord, Record, StoredVital, hash_token,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::api::clinical::{self, PlanOut};
use crate::auth::{CurrentUser, presented_token};
use crate::error::{ApiError, ErrorBody, json_rejection};
use crate::policy::Action;
use crate::state::AppState;

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

/// Whether an infusion still runs although the plan's dose has been given (to 0.1 mg: the pump
/// stops at its volume to be infused, so a running session past it means a stop was not recorded
/// or the infusion was extended).
pub fn planned_dose_reached(s: &SessionOut, planned_dose_mg: f64) -> bool {
    s.state == "infusing" && s.given_mg + 0.05 >= planned_dose_mg
}

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
    me.require(Action::ReadClinical)?;
    Ok(Json(session_out(load_session(&state, id).await?, state.now())?))
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
    let (actor, source, recorded_by) = match &writer {
        VitalsWriter::User(me) => {
            me.require(Action::RunSession)?;
            (me.actor(), "manual", me.user.id.to_string())
        }
        VitalsWriter::Device(token) => {
            if token.session_id != id {
                return Err(ApiError::Forbidden {
                    role: "device",
                    action: "write to a session other than its own",
                });
            }
            (
                Actor::device(&token.token_hash, token.created_by),
                "device",
                format!("device:{}", token.label.clone().unwrap_or_default()),
            )
        }
    };
    let Json(body) = body.map_err(json_rejection)?;
    let author = ReadingsAuthor {
        actor,
        source,
        recorded_by,
    };
    Ok(Json(state.record_vitals(author, id, body.readings).await?))
}

/// A stored reading.
#[derive(Serialize, ToSchema, Debug)]
pub struct VitalOut {
    /// Id.
    pub id: i64,
    /// manual or device.
    pub source: String,
    /// Who recorded it.
    pub recorded_by: String,
    /// When received.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub received_at: OffsetDateTime,
    /// The reading (with its NEWS2 total when complete).
    #[schema(value_type = Object)]
    pub reading: serde_json::Value,
}

pub(crate) fn vital_out(v: StoredVital) -> VitalOut {
    VitalOut {
        id: v.id,
        source: v.source,
        recorded_by: v.recorded_by,
        received_at: v.received_at,
        reading: v.data,
    }
}

/// A session's readings in the order taken.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/vitals", tag = "sessions", params(("id" = Uuid, Path, description = "session id")),
    responses((status = 200, body = [VitalOut]), (status = 404, body = ErrorBody)))]
pub async fn list_vitals(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<VitalOut>>, ApiError> {
    me.require(Action::ReadClinical)?;
    load_session(&state, id).await?;
    Ok(Json(
        state
            .store
            .list_vitals(id)
            .await?
            .into_iter()
            .map(vital_out)
            .collect(),
    ))
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
    me.require(Action::ReadClinical)?;
    load_session(&state, id).await?;
    Ok(Json(
        state
            .store
            .list_alarms(Some(id), false)
            .await?
            .into_iter()
            .map(alarm_out)
            .collect(),
    ))
}

/// Actions recorded when an alarm is resolved.
pub const ALARM_ACTIONS: [&str; 7] = [
    "none_needed",
    "observation",
    "pause",
    "rate_reduction",
    "medication_given",
    "physician_called",
    "infusion_stopped",
];

/// How an alarm was dealt with.
#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct AlarmResolveIn {
    /// One of none_needed, observation, pause, rate_reduction, medication_given, physician_called,
    /// infusion_stopped.
    pub action: String,
    /// A note (required for medication_given: what and how much), ≤ 2000 characters.
    #[serde(default)]
    pub note: Option<String>,
}

async fn change_alarm(
    state: &AppState,
    me: &CurrentUser,
    id: Uuid,
    resolve: Option<AlarmResolveIn>,
) -> Result<AlarmOut, ApiError> {
    let now = state.now();
    let mut tx = state.store.begin().await?;
    let before = tx.get_alarm(id).await?;
    let (changed, verb) = match &resolve {
        None => (
            tx.acknowledge_alarm(id, &me.user.id.to_string(), now).await,
            "acknowledged",
        ),
        Some(r) => {
            if !ALARM_ACTIONS.contains(&r.action.as_str()) {
                return Err(ApiError::field(
                    "action",
                    r.action.clone(),
                    ALARM_ACTIONS.join(", "),
                ));
            }
            let note = r.note.as_deref().map(str::trim).filter(|n| !n.is_empty());
            if note.is_some_and(|n| n.chars().count() > 2000) {
                return Err(ApiError::field("note", "(too long)", "at most 2000 characters"));
            }
            if r.action == "medication_given" && note.is_none() {
                return Err(ApiError::field(
                    "note",
                    serde_json::Value::Null,
                    "the medication and dose given",
                ));
            }
            (
                tx.resolve_alarm(id, &me.user.id.to_string(), now, &r.action, note)
                    .await,
                "resolved",
            )
        }
    };
    let changed = changed.map_err(|e| match e {
        ketaflow_store::StoreError::Invalid { reason, .. } => ApiError::Conflict(reason),
        other => other.into(),
    })?;
    let out = alarm_out(changed);
    let data = serde_json::to_value(&out).map_err(|e| ApiError::Internal(e.to_string()))?;
    tx.append_audit(
        &NewAuditEntry::new(
            now,
            me.actor(),
            format!("alarm.{}", &verb[..verb.len() - 1]),
            "alarm",
            id.to_string(),
        )
        .before(serde_json::to_value(alarm_out(before)).map_err(|e| ApiError::Internal(e.to_string()))?)
        .after(data.clone()),
    )
    .await?;
    let event = tx
        .append_event(&NewEvent {
            session_id: out.session_id,
            kind: if verb == "acknowledged" {
                "alarm.acknowledged"
            } else {
                "alarm.resolved"
            },
            at: now,
            data: &data,
        })
        .await?;
    tx.commit().await?;
    state.live.publish([event]);
    Ok(out)
}

/// Acknowledge an alarm (raised → acknowledged, recording who).
#[utoipa::path(post, path = "/api/v1/alarms/{id}/acknowledge", tag = "sessions", params(("id" = Uuid, Path, description = "alarm id")),
    responses((status = 200, body = AlarmOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn acknowledge_alarm(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<AlarmOut>, ApiError> {
    me.require(Action::RunSession)?;
    Ok(Json(change_alarm(&state, &me, id, None).await?))
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
    me.require(Action::RunSession)?;
    let Json(body) = body.map_err(json_rejection)?;
    Ok(Json(change_alarm(&state, &me, id, Some(body)).await?))
}

// ---- The clinic board ----------------------------------------------------------------------------

/// One chair on the board.
#[derive(Serialize, ToSchema, Debug)]
pub struct ChairOut {
    /// Session id.
    pub session_id: Uuid,
    /// Chair.
    pub chair: String,
    /// Patient.
    pub patient_name: String,
    /// State.
    pub state: &'static str,
    /// Minutes since the infusion first started (None before the start).
    pub elapsed_min: Option<f64>,
    /// Rate in force, mL/h.
    pub pump_ml_per_h: f64,
    /// Given so far, mg.
    pub given_mg: f64,
    /// The plan's dose for the session, mg.
    pub planned_dose_mg: f64,
    /// The plan's infusion time, minutes.
    pub planned_duration_min: f64,
    /// Whether the infusion is still running although the plan's dose has been given (the pump
    /// should have finished: stop the infusion, or record why it continues).
    pub planned_dose_reached: bool,
    /// The latest reading.
    #[schema(value_type = Option<Object>)]
    pub latest_vitals: Option<serde_json::Value>,
    /// Alarms not yet resolved.
    pub active_alarms: Vec<AlarmOut>,
    /// When Ce is predicted to stay below the protocol's recovery threshold (from what was given).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub predicted_recovery_at: Option<OffsetDateTime>,
}

/// The clinic board: every active chair.
#[derive(Serialize, ToSchema, Debug)]
pub struct BoardOut {
    /// The last event id included: subscribe to `/api/v1/board/stream` with `Last-Event-ID` set to
    /// it to receive every change after this snapshot.
    pub last_event_id: i64,
    /// Chairs, by chair name.
    pub chairs: Vec<ChairOut>,
}

/// Every active session: state, latest vitals, active alarms, elapsed time, predicted recovery.
#[utoipa::path(get, path = "/api/v1/board", tag = "sessions",
    responses((status = 200, body = BoardOut), (status = 403, body = ErrorBody)))]
pub async fn board(State(state): State<AppState>, me: CurrentUser) -> Result<Json<BoardOut>, ApiError> {
    me.require(Action::ReadClinical)?;
    let last_event_id = state.store.last_event_id().await?;
    let now = state.now();
    let mut chairs = Vec::new();
    let open_alarms = state.store.list_alarms(None, true).await?;
    for record in state.store.list_in_progress(SESSION).await? {
        let s = session_out(record, now)?;
        if !is_open_state(s.state) {
            continue;
        }
        let first_start = s.doc.rates.first().map(|r| r.at);
        let latest = state.store.latest_vital(s.id).await?.map(|v| v.data);
        let plan = clinical::plan_out(clinical::load_plan(&state, s.doc.plan_id).await?)?;
        let predicted_recovery_at = state.predicted_recovery(s.id, &s.doc, now).await.ok().flatten();
        chairs.push(ChairOut {
            session_id: s.id,
            chair: s.doc.chair.clone(),
            patient_name: s.doc.patient_name.clone(),
            state: s.state,
            elapsed_min: first_start.map(|t| (now - t).as_seconds_f64() / 60.0),
            pump_ml_per_h: s.doc.rates.last().map_or(0.0, |r| r.pump_ml_per_h),
            given_mg: s.given_mg,
            planned_dose_mg: plan.doc.dose_mg,
            planned_duration_min: plan.doc.duration_min,
            planned_dose_reached: planned_dose_reached(&s, plan.doc.dose_mg),
            latest_vitals: latest,
            active_alarms: open_alarms
                .iter()
                .filter(|a| a.session_id == s.id)
                .cloned()
                .map(alarm_out)
                .collect(),
            predicted_recovery_at,
        });
    }
    chairs.sort_by(|a, b| a.chair.cmp(&b.chair));
    Ok(Json(BoardOut {
        last_event_id,
        chairs,
    }))
}
