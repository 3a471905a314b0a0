//! The infusion session over HTTP: scheduling, the state machine's transitions, vital signs from
//! people and monitors, alarms with their lifecycle, and the clinic board.
//!
//! The session is a versioned record (`SessionDoc`) whose state is never stored as such: it is the
//! replay of the recorded transitions through `ketaflow_clinic::session::Session::apply`, the one
//! door of the state machine, so a stored session can only be in a state reachable by legal
//! transitions. Every write commits with its audit entry and its live event (see `live`).

use std::collections::HashSet;

use crate::extract::{Path, Query};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use ketaflow_clinic::news2::{Consciousness, news2};
use ketaflow_clinic::patient::BloodPressure;
use ketaflow_clinic::session::{PreChecks, Questionnaire, Session, SessionEvent, SessionState, StopKind};
use ketaflow_clinic::vitals::{self, VitalSigns};
use ketaflow_store::{
    Actor, AlarmRaise, DeviceToken, NewAlarm, NewAuditEntry, NewDeviceToken, NewEvent, NewRecord, NewVital,
    Record, RecordChange, StoredAlarm, StoredEvent, StoredVital, Tx, VitalInsert, batch_digest, hash_token,
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

pub(crate) const SESSION: &str = "session";

/// Device tokens start with this, so neither kind of token can be mistaken for the other.
pub const DEVICE_TOKEN_PREFIX: &str = "dev_";

// ---- Documents -----------------------------------------------------------------------------------

/// Pre-infusion checks as recorded at check-in.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PreChecksDoc {
    /// The patient fasted as instructed.
    pub fasting_confirmed: bool,
    /// An escort or ride home is confirmed.
    pub escort_confirmed: bool,
    /// Consent for this course is on file.
    pub consent_on_file: bool,
    /// The pre-session questionnaire was answered.
    pub questionnaire_answered: bool,
    /// Why the questionnaire was waived (required when it was not answered).
    #[serde(default)]
    pub questionnaire_waived_reason: Option<String>,
}

/// One applied transition. Replaying these through the state machine gives the session's state.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
pub struct TransitionDoc {
    /// check_in, start, pause, resume, stop, begin_recovery, discharge, abort.
    pub event: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// Who (user id).
    pub by: String,
    /// Reason (pause, early stop, abort, discharge override).
    pub reason: Option<String>,
    /// The checks (check_in).
    pub checks: Option<PreChecksDoc>,
    /// completed or early (stop).
    pub stop: Option<String>,
}

/// A change of what the pump delivers: start, pause (0), resume, a rate change, stop (0).
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
pub struct RateDoc {
    /// start, pause, resume, change, stop, abort.
    pub kind: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// Ketamine delivered from now on, mg/h (0 when paused or stopped).
    pub rate_mg_per_h: f64,
    /// The same as a pump rate, mL/h.
    pub pump_ml_per_h: f64,
    /// Per kg of dosing weight, mg/kg/h.
    pub rate_mg_per_kg_per_h: f64,
    /// Who.
    pub by: String,
    /// Why (rate changes).
    pub reason: Option<String>,
    /// Soft-limit overrides with reasons (physician rate changes above a soft limit).
    #[serde(default)]
    pub overrides: Vec<clinical::OverrideDoc>,
}

/// The blood pressure and heart rate the session compares against.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
pub struct BaselineDoc {
    /// Systolic, mmHg.
    pub systolic_mmhg: f64,
    /// Diastolic, mmHg.
    pub diastolic_mmhg: f64,
    /// Heart rate, /min, when known.
    pub heart_rate_per_min: Option<f64>,
    /// `session` (the pre-infusion reading at check-in) or `intake` (the patient's record).
    pub origin: String,
}

/// A session record.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
pub struct SessionDoc {
    /// The patient.
    pub patient_id: Uuid,
    /// The patient's name as the clinic shows it (for the board).
    pub patient_name: String,
    /// The dose plan (must be approved before the infusion starts).
    pub plan_id: Uuid,
    /// The plan's protocol.
    pub protocol_id: String,
    /// Chair or bay.
    pub chair: String,
    /// When it is booked.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub scheduled_for: OffsetDateTime,
    /// Who booked it.
    pub created_by: String,
    /// Baseline BP: from intake until check-in, then the pre-infusion reading.
    pub baseline: Option<BaselineDoc>,
    /// Every applied transition, in order.
    pub transitions: Vec<TransitionDoc>,
    /// What the pump delivered, in order.
    pub rates: Vec<RateDoc>,
    /// Side effects, in the order recorded.
    #[serde(default)]
    pub side_effects: Vec<crate::api::bedside::SideEffectDoc>,
    /// Bedside assessments (Aldrete, MOAA/S, escort), in order.
    #[serde(default)]
    pub assessments: Vec<crate::api::discharge::AssessmentDoc>,
}

impl SessionDoc {
    /// The state machine, replayed from the recorded transitions.
    pub fn replay(&self) -> Result<Session, ApiError> {
        let mut session = Session::new();
        for t in &self.transitions {
            session
                .apply(to_event(t, self.plan_id)?, t.at)
                .map_err(|e| ApiError::Internal(format!("stored session does not replay: {e}")))?;
        }
        Ok(session)
    }

    /// The rate in force now, mg/h.
    pub fn current_rate_mg_per_h(&self) -> f64 {
        self.rates.last().map_or(0.0, |r| r.rate_mg_per_h)
    }
}

fn to_event(t: &TransitionDoc, plan_id: Uuid) -> Result<SessionEvent, ApiError> {
    let reason = || t.reason.clone().unwrap_or_default();
    Ok(match t.event.as_str() {
        "check_in" => {
            let c = t
                .checks
                .as_ref()
                .ok_or_else(|| ApiError::Internal("check_in without checks".into()))?;
            SessionEvent::CheckIn(pre_checks(c, true))
        }
        "start" => SessionEvent::Start {
            plan_id: plan_id.to_string(),
        },
        "pause" => SessionEvent::Pause { reason: reason() },
        "resume" => SessionEvent::Resume,
        "stop" => SessionEvent::Stop(if t.stop.as_deref() == Some("early") {
            StopKind::Early(reason())
        } else {
            StopKind::Completed
        }),
        "begin_recovery" => SessionEvent::BeginRecovery,
        "discharge" => SessionEvent::Discharge,
        "abort" => SessionEvent::Abort { reason: reason() },
        other => return Err(ApiError::Internal(format!("unknown stored event {other}"))),
    })
}

fn pre_checks(c: &PreChecksDoc, baseline_vitals_taken: bool) -> PreChecks {
    PreChecks {
        fasting_confirmed: c.fasting_confirmed,
        escort_confirmed: c.escort_confirmed,
        consent_on_file: c.consent_on_file,
        baseline_vitals_taken,
        questionnaire: if c.questionnaire_answered {
            Questionnaire::Answered
        } else {
            Questionnaire::Waived(c.questionnaire_waived_reason.clone().unwrap_or_default())
        },
    }
}

/// Whether an infusion still runs although the plan's dose has been given (to 0.1 mg: the pump
/// stops at its volume to be infused, so a running session past it means a stop was not recorded
/// or the infusion was extended).
pub fn planned_dose_reached(s: &SessionOut, planned_dose_mg: f64) -> bool {
    s.state == "infusing" && s.given_mg + 0.05 >= planned_dose_mg
}

/// Whether a state (by name) is one of an open session.
fn is_open_state(state: &str) -> bool {
    matches!(
        state,
        "scheduled" | "checked_in" | "infusing" | "paused" | "stopped" | "recovering"
    )
}

/// Clears the in-progress mark of sessions that are closed (a database written before the mark
/// existed has every session marked); run once at start-up. Returns how many were cleared.
pub async fn reconcile_in_progress(state: &AppState) -> Result<usize, ApiError> {
    let now = state.now();
    let mut cleared = 0;
    for record in state.store.list_in_progress(SESSION).await? {
        let id = record.id;
        if !is_open_state(session_out(record, now)?.state) {
            let mut tx = state.store.begin().await?;
            tx.set_in_progress(SESSION, id, false).await?;
            tx.commit().await?;
            cleared += 1;
        }
    }
    Ok(cleared)
}

/// Whether the session still accepts readings and events.
fn is_open(state: &SessionState) -> bool {
    !matches!(
        state,
        SessionState::Discharged { .. } | SessionState::Aborted { .. }
    )
}

// ---- Output --------------------------------------------------------------------------------------

/// A session as the API returns it.
#[derive(Serialize, ToSchema, Debug)]
pub struct SessionOut {
    /// Id.
    pub id: Uuid,
    /// Record version (send it back as `expected_version` to detect concurrent changes).
    pub version: i64,
    /// scheduled, checked_in, infusing, paused, stopped, recovering, discharged, aborted.
    pub state: &'static str,
    /// The events legal now.
    pub legal_events: Vec<&'static str>,
    /// Since when the session is in its state.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub state_since: Option<OffsetDateTime>,
    /// Rate in force, mg/h.
    pub current_rate_mg_per_h: f64,
    /// Ketamine given so far, mg (exact integral of the recorded rates).
    pub given_mg: f64,
    /// Infusing time so far, minutes.
    pub infusing_min: f64,
    /// The record.
    #[serde(flatten)]
    pub doc: SessionDoc,
}

/// The exact amount given by piecewise-constant rates up to `until`, mg, and the time spent at a
/// non-zero rate, s.
fn given_until(rates: &[RateDoc], until: OffsetDateTime) -> (f64, f64) {
    let mut mg = 0.0;
    let mut seconds = 0.0;
    for (i, r) in rates.iter().enumerate() {
        let end = rates.get(i + 1).map_or(until, |n| n.at).min(until);
        if end > r.at {
            let dt = (end - r.at).as_seconds_f64();
            mg += r.rate_mg_per_h * dt / 3600.0;
            if r.rate_mg_per_h > 0.0 {
                seconds += dt;
            }
        }
    }
    (mg, seconds)
}

pub(crate) fn session_out(record: Record, now: OffsetDateTime) -> Result<SessionOut, ApiError> {
    let doc: SessionDoc = serde_json::from_value(record.data)
        .map_err(|e| ApiError::Internal(format!("stored session: {e}")))?;
    let session = doc.replay()?;
    let (given_mg, infusing_s) = given_until(&doc.rates, now);
    Ok(SessionOut {
        id: record.id,
        version: record.version,
        state: session.state().name(),
        legal_events: session.state().legal_events().to_vec(),
        state_since: doc.transitions.last().map(|t| t.at),
        current_rate_mg_per_h: doc.current_rate_mg_per_h(),
        given_mg,
        infusing_min: infusing_s / 60.0,
        doc,
    })
}

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

fn reason_field(field: &str, reason: Option<&str>) -> Result<String, ApiError> {
    let r = reason.map(str::trim).unwrap_or_default();
    if r.chars().count() < 3 || r.chars().count() > 1000 {
        return Err(ApiError::field(field, r, "a reason of 3–1000 characters"));
    }
    Ok(r.to_string())
}

// ---- Writing a session with its audit entry and live events -------------------------------------

/// The events of a committed write, handed to live subscribers after the commit.
pub(crate) async fn publish(state: &AppState, events: Vec<StoredEvent>) {
    for e in events {
        state.live.publish(e);
    }
}

/// Stores a changed session document with its audit entry and one event, in one transaction. The
/// version read by the caller is checked inside it: a concurrent change is a 409, never lost.
/// When the change closes the session, its device tokens are revoked in the same transaction.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn save_session(
    state: &AppState,
    actor: &Actor,
    action: &str,
    record: &Record,
    doc: &SessionDoc,
    event_kind: &str,
    event_data: serde_json::Value,
    now: OffsetDateTime,
) -> Result<(Record, Vec<StoredEvent>), ApiError> {
    let data = serde_json::to_value(doc).map_err(|e| ApiError::Internal(e.to_string()))?;
    let label = format!("{} {}", doc.chair, doc.patient_name);
    let closes = !is_open(doc.replay()?.state());
    let mut tx = state.store.begin().await?;
    let updated = tx
        .update_record(
            &RecordChange {
                kind: SESSION,
                id: record.id,
                expected_version: record.version,
                label: &label,
                data: &data,
                lock: false,
            },
            now,
        )
        .await?;
    tx.append_audit(
        &NewAuditEntry::new(now, actor.clone(), action, SESSION, record.id.to_string())
            .before(record.data.clone())
            .after(data),
    )
    .await?;
    let event = tx
        .append_event(&NewEvent {
            session_id: record.id,
            kind: event_kind,
            at: now,
            data: &event_data,
        })
        .await?;
    if closes {
        tx.revoke_device_tokens(record.id, now).await?;
        tx.set_in_progress(SESSION, record.id, false).await?;
    }
    tx.commit().await?;
    Ok((updated, vec![event]))
}

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
    publish(&state, vec![event]).await;
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

/// A transition of the session's state machine.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionIn {
    /// check_in, start, pause, resume, stop, begin_recovery, discharge, abort.
    pub event: String,
    /// The pre-checks (check_in).
    #[serde(default)]
    pub checks: Option<PreChecksDoc>,
    /// Reason: pause, early stop, abort, and a physician's discharge override.
    #[serde(default)]
    pub reason: Option<String>,
    /// completed or early (stop).
    #[serde(default)]
    pub stop: Option<String>,
    /// Discharge before every criterion is met (physicians, with a reason).
    #[serde(default)]
    pub override_discharge: bool,
    /// Optional: the record version the client last saw; a different one is a 409.
    #[serde(default)]
    pub expected_version: Option<i64>,
}

const EVENTS: [&str; 8] = [
    "check_in",
    "start",
    "pause",
    "resume",
    "stop",
    "begin_recovery",
    "discharge",
    "abort",
];

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
    me.require(Action::RunSession)?;
    let Json(body) = body.map_err(json_rejection)?;
    if !EVENTS.contains(&body.event.as_str()) {
        return Err(ApiError::field("event", body.event.clone(), EVENTS.join(", ")));
    }
    let now = state.now();
    let record = load_session(&state, id).await?;
    if let Some(v) = body.expected_version
        && v != record.version
    {
        return Err(ApiError::StaleVersion {
            message: format!(
                "the session changed since version {v} (now {}); reload and retry",
                record.version
            ),
            current_version: record.version,
        });
    }
    let mut doc: SessionDoc = session_out(record.clone(), now)?.doc;
    let mut session = doc.replay()?;
    let current = session.state().clone();
    // Refuse an illegal event before looking at its content.
    if !current.legal_events().contains(&body.event.as_str()) {
        let legal = current.legal_events();
        return Err(ApiError::Conflict(format!(
            "cannot {} a session that is {}; legal now: {}",
            body.event,
            current.name(),
            if legal.is_empty() {
                "nothing (the session is closed)".to_string()
            } else {
                legal.join(", ")
            }
        )));
    }
    let mut t = TransitionDoc {
        event: body.event.clone(),
        at: now,
        by: me.user.id.to_string(),
        reason: body
            .reason
            .as_deref()
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty()),
        checks: None,
        stop: None,
    };
    let mut rate: Option<RateDoc> = None;
    let mut extra: Option<serde_json::Value> = None;
    let plan = clinical::plan_out(clinical::load_plan(&state, doc.plan_id).await?)?;
    let rate_doc = |kind: &str, mg_per_h: f64| RateDoc {
        kind: kind.into(),
        at: now,
        rate_mg_per_h: mg_per_h,
        pump_ml_per_h: mg_per_h / plan.doc.concentration_mg_per_ml,
        rate_mg_per_kg_per_h: mg_per_h / plan.doc.dosing_weight_kg,
        by: me.user.id.to_string(),
        reason: None,
        overrides: vec![],
    };
    match body.event.as_str() {
        "check_in" => {
            let checks = body
                .checks
                .clone()
                .ok_or_else(|| ApiError::field("checks", serde_json::Value::Null, "the pre-checks object"))?;
            // Baseline vitals are not a checkbox: a reading with BP must be on file for this session.
            let baseline = state
                .store
                .list_vitals(id)
                .await?
                .into_iter()
                .rev()
                .find_map(|v| {
                    let r = stored_reading(&v.data).ok()?;
                    Some(BaselineDoc {
                        systolic_mmhg: r.systolic_mmhg?,
                        diastolic_mmhg: r.diastolic_mmhg?,
                        heart_rate_per_min: r.heart_rate_per_min,
                        origin: "session".into(),
                    })
                });
            session
                .apply(
                    SessionEvent::CheckIn(pre_checks(&checks, baseline.is_some())),
                    now,
                )
                .map_err(refused)?;
            doc.baseline = baseline;
            t.checks = Some(checks);
        }
        "start" => {
            if !(plan.locked && plan.doc.status == "approved") {
                return Err(ApiError::Refused {
                    code: "plan_not_approved",
                    message: format!(
                        "plan {} is not approved; only an approved plan starts an infusion",
                        doc.plan_id
                    ),
                });
            }
            session
                .apply(
                    SessionEvent::Start {
                        plan_id: doc.plan_id.to_string(),
                    },
                    now,
                )
                .map_err(refused)?;
            rate = Some(rate_doc("start", plan.doc.rate_mg_per_h));
        }
        "pause" => {
            session
                .apply(
                    SessionEvent::Pause {
                        reason: t.reason.clone().unwrap_or_default(),
                    },
                    now,
                )
                .map_err(refused)?;
            rate = Some(rate_doc("pause", 0.0));
        }
        "resume" => {
            session.apply(SessionEvent::Resume, now).map_err(refused)?;
            // Resume at the last rate that was running before the pause.
            let last = doc
                .rates
                .iter()
                .rev()
                .find(|r| r.rate_mg_per_h > 0.0)
                .map_or(plan.doc.rate_mg_per_h, |r| r.rate_mg_per_h);
            rate = Some(rate_doc("resume", last));
        }
        "stop" => {
            let kind = match body.stop.as_deref() {
                Some("completed") | None => StopKind::Completed,
                Some("early") => StopKind::Early(t.reason.clone().unwrap_or_default()),
                Some(other) => return Err(ApiError::field("stop", other, "completed or early")),
            };
            t.stop = Some(
                if matches!(kind, StopKind::Early(_)) {
                    "early"
                } else {
                    "completed"
                }
                .into(),
            );
            session.apply(SessionEvent::Stop(kind), now).map_err(refused)?;
            rate = Some(rate_doc("stop", 0.0));
        }
        "begin_recovery" => {
            session.apply(SessionEvent::BeginRecovery, now).map_err(refused)?;
        }
        "discharge" => {
            let assessment = crate::api::discharge::assess(&state, id, &doc, now).await?;
            if !assessment.all_met {
                if !body.override_discharge {
                    return Err(ApiError::Refused {
                        code: "discharge_criteria_unmet",
                        message: format!(
                            "discharge criteria not met: {}; a physician may override with a reason",
                            assessment.unmet.join(", ")
                        ),
                    });
                }
                me.require(Action::OverrideSession)?;
                t.reason = Some(reason_field("reason", body.reason.as_deref())?);
            }
            session.apply(SessionEvent::Discharge, now).map_err(refused)?;
            extra = Some(serde_json::to_value(&assessment).map_err(|e| ApiError::Internal(e.to_string()))?);
        }
        "abort" => {
            session
                .apply(
                    SessionEvent::Abort {
                        reason: t.reason.clone().unwrap_or_default(),
                    },
                    now,
                )
                .map_err(refused)?;
            if doc.current_rate_mg_per_h() > 0.0 {
                rate = Some(rate_doc("abort", 0.0));
            }
        }
        _ => unreachable!("checked against EVENTS above"),
    }
    doc.transitions.push(t.clone());
    if let Some(r) = rate.clone() {
        doc.rates.push(r);
    }
    let state_name = session.state().name();
    let event_data = serde_json::json!({
        "event": t.event, "state": state_name, "by": t.by, "reason": t.reason,
        "rate_mg_per_h": doc.current_rate_mg_per_h(), "discharge": extra,
    });
    let (updated, events) = save_session(
        &state,
        &me.actor(),
        &format!("session.{}", t.event),
        &record,
        &doc,
        "session.state",
        event_data,
        now,
    )
    .await?;
    publish(&state, events).await;
    Ok(Json(session_out(updated, now)?))
}

fn refused(e: ketaflow_clinic::session::TransitionError) -> ApiError {
    match e {
        ketaflow_clinic::session::TransitionError::Illegal { .. } => ApiError::Conflict(e.to_string()),
        ketaflow_clinic::session::TransitionError::Refused(message) => ApiError::Refused {
            code: "transition_refused",
            message,
        },
    }
}

// ---- Vital signs ---------------------------------------------------------------------------------

/// One set of readings. Every field but the key is optional (a monitor may send only some).
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReadingDoc {
    /// The client's unique key for this reading (1–100 printable characters); a retry with the
    /// same key is acknowledged again and never stored twice.
    pub idempotency_key: String,
    /// When taken (RFC 3339); default: when received.
    #[serde(default)]
    pub taken_at: Option<String>,
    /// Systolic BP, mmHg.
    #[serde(default)]
    pub systolic_mmhg: Option<f64>,
    /// Diastolic BP, mmHg.
    #[serde(default)]
    pub diastolic_mmhg: Option<f64>,
    /// Heart rate, /min.
    #[serde(default)]
    pub heart_rate_per_min: Option<f64>,
    /// SpO2, %.
    #[serde(default)]
    pub spo2_percent: Option<f64>,
    /// Respiratory rate, /min.
    #[serde(default)]
    pub respiratory_rate_per_min: Option<f64>,
    /// Temperature, °C.
    #[serde(default)]
    pub temperature_c: Option<f64>,
    /// ACVPU: alert, new_confusion, voice, pain, unresponsive.
    #[serde(default)]
    pub consciousness: Option<String>,
    /// MOAA/S 0–5 (Chernik 1990).
    #[serde(default)]
    pub moaas: Option<u8>,
    /// On supplemental oxygen (true) or air (false).
    #[serde(default)]
    pub on_oxygen: Option<bool>,
}

/// A stored reading back as the reading it was (the store adds its NEWS2 total).
pub(crate) fn stored_reading(data: &serde_json::Value) -> Result<ReadingDoc, ApiError> {
    let mut data = data.clone();
    if let Some(map) = data.as_object_mut() {
        map.remove("news2");
    }
    serde_json::from_value(data).map_err(|e| ApiError::Internal(format!("stored reading: {e}")))
}

fn consciousness(text: &str) -> Option<Consciousness> {
    Some(match text {
        "alert" => Consciousness::Alert,
        "new_confusion" => Consciousness::NewConfusion,
        "voice" => Consciousness::Voice,
        "pain" => Consciousness::Pain,
        "unresponsive" => Consciousness::Unresponsive,
        _ => return None,
    })
}

impl ReadingDoc {
    pub(crate) fn vital_signs(&self, index: usize) -> Result<VitalSigns, ApiError> {
        let c = self
            .consciousness
            .as_deref()
            .map(|c| {
                consciousness(c).ok_or_else(|| {
                    ApiError::field(
                        &format!("readings[{index}].consciousness"),
                        c,
                        "alert, new_confusion, voice, pain, unresponsive",
                    )
                })
            })
            .transpose()?;
        let v = VitalSigns {
            systolic_mmhg: self.systolic_mmhg,
            diastolic_mmhg: self.diastolic_mmhg,
            heart_rate_per_min: self.heart_rate_per_min,
            spo2_percent: self.spo2_percent,
            respiratory_rate_per_min: self.respiratory_rate_per_min,
            temperature_c: self.temperature_c,
            consciousness: c,
            moaas: self.moaas,
            on_oxygen: self.on_oxygen,
        };
        v.check()
            .map_err(|e| ApiError::field(&format!("readings[{index}].{}", e.field), e.value, e.allowed))?;
        Ok(v)
    }
}

/// A batch of readings (a monitor's, or one a nurse typed).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VitalsIn {
    /// 1–500 readings.
    pub readings: Vec<ReadingDoc>,
}

/// An alarm as the API returns it.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
pub struct AlarmOut {
    /// Id.
    pub id: Uuid,
    /// The session.
    pub session_id: Uuid,
    /// Rule code, e.g. systolic_high, news2_high.
    pub code: String,
    /// warning or urgent.
    pub level: String,
    /// raised, acknowledged, resolved.
    pub state: String,
    /// What was seen, the threshold's source, whether it is a clinic setting, and whether the rule
    /// recommends pausing (an alarm never changes the infusion by itself).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// First raised.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub raised_at: OffsetDateTime,
    /// Last seen while open.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_seen_at: OffsetDateTime,
    /// Times the rule fired while open.
    pub occurrences: i64,
    /// Who acknowledged.
    pub acknowledged_by: Option<String>,
    /// When.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub acknowledged_at: Option<OffsetDateTime>,
    /// Who resolved.
    pub resolved_by: Option<String>,
    /// When.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resolved_at: Option<OffsetDateTime>,
    /// The action taken.
    pub action: Option<String>,
    /// A note.
    pub note: Option<String>,
}

impl AlarmOut {
    /// What was seen, in words (from the rule that raised it); the code when no message was stored.
    pub fn message(&self) -> String {
        self.detail
            .get("message")
            .and_then(serde_json::Value::as_str)
            .map_or_else(|| self.code.replace('_', " "), str::to_string)
    }

    /// Whether the rule recommends pausing the infusion.
    pub fn recommends_pause(&self) -> bool {
        self.detail
            .get("recommend_pause")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false)
    }
}

pub(crate) fn alarm_out(a: StoredAlarm) -> AlarmOut {
    AlarmOut {
        id: a.id,
        session_id: a.session_id,
        code: a.code,
        level: a.level,
        state: a.state.as_str().into(),
        detail: a.data,
        raised_at: a.raised_at,
        last_seen_at: a.last_seen_at,
        occurrences: a.occurrences,
        acknowledged_by: a.acknowledged_by,
        acknowledged_at: a.acknowledged_at,
        resolved_by: a.resolved_by,
        resolved_at: a.resolved_at,
        action: a.action,
        note: a.note,
    }
}

/// The acknowledgement of one reading.
#[derive(Serialize, ToSchema, Debug)]
pub struct ReadingAck {
    /// The client's key.
    pub idempotency_key: String,
    /// The stored reading's id.
    pub id: i64,
    /// True when this key was stored before (a retry): nothing new was written.
    pub duplicate: bool,
    /// NEWS2 total when the set was complete.
    pub news2: Option<u8>,
    /// Alarms this reading raised or repeated.
    pub alarms: Vec<AlarmOut>,
}

/// The acknowledgement of a batch: everything in it is durable when this is returned.
#[derive(Serialize, ToSchema, Debug)]
pub struct VitalsAck {
    /// Per reading, in request order.
    pub readings: Vec<ReadingAck>,
    /// Newly stored.
    pub stored: usize,
    /// Already stored before (retries).
    pub duplicates: usize,
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
    if body.readings.is_empty() || body.readings.len() > 500 {
        return Err(ApiError::field("readings", body.readings.len(), "1–500 readings"));
    }
    let now = state.now();
    let mut checked = Vec::with_capacity(body.readings.len());
    for (i, r) in body.readings.iter().enumerate() {
        let v = r.vital_signs(i)?;
        let taken_at = match &r.taken_at {
            Some(t) => parse_time(&format!("readings[{i}].taken_at"), t)?,
            None => now,
        };
        // A reading from the future is a clock or typing error (a minute of clock skew is allowed).
        if taken_at > now + time::Duration::minutes(1) {
            return Err(ApiError::field(
                &format!("readings[{i}].taken_at"),
                r.taken_at.clone().unwrap_or_default(),
                "a time no later than now",
            ));
        }
        if r.idempotency_key.is_empty()
            || r.idempotency_key.len() > ketaflow_store::MAX_IDEMPOTENCY_KEY_LEN
            || r.idempotency_key.chars().any(char::is_control)
        {
            return Err(ApiError::field(
                &format!("readings[{i}].idempotency_key"),
                r.idempotency_key.clone(),
                "1–100 bytes of printable text",
            ));
        }
        checked.push((r, v, taken_at));
    }
    let record = load_session(&state, id).await?;
    let doc: SessionDoc =
        serde_json::from_value(record.data.clone()).map_err(|e| ApiError::Internal(e.to_string()))?;
    let session = doc.replay()?;
    if !is_open(session.state()) {
        return Err(ApiError::Conflict(format!(
            "the session is {}; it takes no more readings",
            session.state().name()
        )));
    }
    let baseline = doc.baseline.as_ref().map(|b| BloodPressure {
        systolic_mmhg: b.systolic_mmhg,
        diastolic_mmhg: b.diastolic_mmhg,
    });
    let job = VitalsJob {
        session_id: id,
        actor,
        source,
        recorded_by,
        readings: checked.into_iter().map(|(r, v, t)| (r.clone(), v, t)).collect(),
        baseline,
        received_at: now,
    };
    let written = state.ingest.submit(job).await?;
    Ok(Json(written.ack))
}

/// A checked batch of readings for one session, ready to write.
#[derive(Debug)]
pub(crate) struct VitalsJob {
    pub(crate) session_id: Uuid,
    pub(crate) actor: Actor,
    pub(crate) source: &'static str,
    pub(crate) recorded_by: String,
    pub(crate) readings: Vec<(ReadingDoc, VitalSigns, OffsetDateTime)>,
    pub(crate) baseline: Option<BloodPressure>,
    pub(crate) received_at: OffsetDateTime,
}

/// What writing a batch produced: the acknowledgement and the events to publish after commit.
#[derive(Debug)]
pub(crate) struct VitalsWritten {
    pub(crate) ack: VitalsAck,
    pub(crate) events: Vec<StoredEvent>,
}

/// Writes one batch inside `tx` (the caller commits, having made the session itself or checked
/// it); see [`write_vitals_many`].
pub(crate) async fn write_vitals(
    tx: &mut Tx,
    rules: &vitals::AlarmRules,
    job: &VitalsJob,
) -> Result<VitalsWritten, ApiError> {
    Ok(write_vitals_many(tx, rules, &[job]).await?.remove(0))
}

/// Writes a group of batches inside `tx` (the caller commits): each new reading is stored once per
/// key, evaluated against the alarm rules and NEWS2, and reported as events; one audit entry per
/// batch with a digest of its readings. The readings of the whole group go in one multi-row
/// statement, then its events, then its audit entries, so a group costs a few statements whatever
/// its size (alarms, which are rare, are raised one by one). The sessions are not checked here:
/// a caller that queued the batches checks them with [`sessions_still_open`] before committing.
pub(crate) async fn write_vitals_many(
    tx: &mut Tx,
    rules: &vitals::AlarmRules,
    jobs: &[&VitalsJob],
) -> Result<Vec<VitalsWritten>, ApiError> {
    // The stored document of each reading: what was sent, its NEWS2 and when it was taken.
    let mut documents = Vec::new();
    for job in jobs {
        for (reading, v, taken_at) in &job.readings {
            let mut data = serde_json::to_value(reading).map_err(|e| ApiError::Internal(e.to_string()))?;
            data["news2"] = serde_json::json!(v.observations().map(|o| news2(&o).total));
            data["taken_at"] = serde_json::json!(rfc3339(*taken_at));
            documents.push(data);
        }
    }
    let mut new_vitals = Vec::with_capacity(documents.len());
    let mut documents_iter = documents.iter();
    for job in jobs {
        for (reading, _, taken_at) in &job.readings {
            new_vitals.push(NewVital {
                session_id: job.session_id,
                idempotency_key: &reading.idempotency_key,
                taken_at: *taken_at,
                received_at: job.received_at,
                source: job.source,
                recorded_by: &job.recorded_by,
                data: documents_iter.next().expect("one document per reading"),
            });
        }
    }
    let mut inserted = tx.insert_vitals(&new_vitals).await?.into_iter();

    // Per batch: acknowledgements, alarms, and the events to append (in order).
    let mut acks_per_job = Vec::with_capacity(jobs.len());
    let mut event_rows: Vec<(Uuid, &'static str, OffsetDateTime, serde_json::Value)> = Vec::new();
    let mut events_per_job = Vec::with_capacity(jobs.len());
    let mut audits = Vec::new();
    for job in jobs {
        let (id, now, source) = (job.session_id, job.received_at, job.source);
        let events_before = event_rows.len();
        let mut acks = Vec::with_capacity(job.readings.len());
        let mut stored_rows: Vec<serde_json::Value> = Vec::new();
        let (mut stored, mut duplicates) = (0, 0);
        for (_, v, taken_at) in &job.readings {
            let vital = match inserted.next().expect("one answer per reading") {
                VitalInsert::Duplicate(existing) => {
                    duplicates += 1;
                    acks.push(ReadingAck {
                        idempotency_key: existing.idempotency_key.clone(),
                        id: existing.id,
                        duplicate: true,
                        news2: stored_news2(&existing.data),
                        alarms: vec![],
                    });
                    continue;
                }
                VitalInsert::Inserted(v) => v,
            };
            stored += 1;
            stored_rows.push(
                serde_json::json!({ "id": vital.id, "key": vital.idempotency_key, "data": vital.data }),
            );
            let mut alarms = Vec::new();
            for alarm in vitals::evaluate(rules, job.baseline, v) {
                let level = match alarm.level {
                    vitals::AlarmLevel::Warning => "warning",
                    vitals::AlarmLevel::Urgent => "urgent",
                };
                let detail = serde_json::json!({
                    "message": alarm.message,
                    "recommend_pause": alarm.recommend_pause,
                    "source": alarm.source,
                    "clinic_setting": alarm.clinic_setting,
                });
                let raised = tx
                    .raise_alarm(&NewAlarm {
                        session_id: id,
                        code: alarm.code,
                        level,
                        at: *taken_at,
                        vital_id: Some(vital.id),
                        data: &detail,
                    })
                    .await?;
                match raised {
                    AlarmRaise::Raised(a) => {
                        let out = alarm_out(a);
                        event_rows.push((
                            id,
                            "alarm.raised",
                            now,
                            serde_json::to_value(&out).map_err(|e| ApiError::Internal(e.to_string()))?,
                        ));
                        alarms.push(out);
                    }
                    AlarmRaise::Repeated(a) => alarms.push(alarm_out(a)),
                }
            }
            event_rows.push((
                id,
                "vitals",
                now,
                serde_json::json!({ "id": vital.id, "reading": vital.data, "source": source }),
            ));
            acks.push(ReadingAck {
                idempotency_key: vital.idempotency_key,
                id: vital.id,
                duplicate: false,
                news2: stored_news2(&vital.data),
                alarms,
            });
        }
        if stored > 0 {
            let digest = batch_digest(stored_rows.iter());
            audits.push(
                NewAuditEntry::new(now, job.actor.clone(), "vitals.record", SESSION, id.to_string())
                    .after(serde_json::json!({ "readings": stored, "source": source, "digest": digest })),
            );
        }
        events_per_job.push(events_before..event_rows.len());
        acks_per_job.push(VitalsAck {
            readings: acks,
            stored,
            duplicates,
        });
    }
    let new_events: Vec<NewEvent> = event_rows
        .iter()
        .map(|(session_id, kind, at, data)| NewEvent {
            session_id: *session_id,
            kind,
            at: *at,
            data,
        })
        .collect();
    let events = tx.append_events(&new_events).await?;
    tx.append_audits(&audits).await?;
    Ok(acks_per_job
        .into_iter()
        .zip(events_per_job)
        .map(|(ack, range)| VitalsWritten {
            ack,
            events: events[range].to_vec(),
        })
        .collect())
}

/// Which of the batches' sessions are still open, read inside `tx` after its writes. The request
/// handler checked each session before queueing its batch, but a session can be discharged or
/// aborted while the batch waits for the writer. On SQLite the transaction has held the write lock
/// since it began; on PostgreSQL the writes have taken the audit head's row lock (which every
/// audited change, closing a session included, takes before it commits) and the read takes it if
/// they did not, in the same order as every other writer (rows first, audit head last), so the
/// answer holds until commit.
pub(crate) async fn sessions_still_open(tx: &mut Tx, jobs: &[&VitalsJob]) -> Result<HashSet<Uuid>, ApiError> {
    let mut asked: Vec<Uuid> = jobs.iter().map(|j| j.session_id).collect();
    asked.sort_unstable();
    asked.dedup();
    Ok(tx.in_progress_among(SESSION, &asked).await?)
}

/// The refusal of a batch whose session closed while it waited for the writer.
pub(crate) fn closed_while_waiting() -> ApiError {
    ApiError::Conflict(
        "the session was closed before this batch was stored; it takes no more readings".into(),
    )
}

/// The NEWS2 total stored with a reading (absent for an incomplete set).
fn stored_news2(data: &serde_json::Value) -> Option<u8> {
    data.get("news2")
        .and_then(serde_json::Value::as_u64)
        .map(|n| n as u8)
}

pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
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
    publish(state, vec![event]).await;
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
        let predicted_recovery_at = crate::api::discharge::predicted_recovery(&state, &s.doc, now)
            .await
            .ok()
            .flatten();
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
