//! What was given, what it predicts, and whether the patient may go home: the session's
//! re-prediction from the recorded rates, the post-infusion assessments and the discharge criteria.
//! The decisions are `ketaflow_clinic::discharge`'s; this module gathers their inputs.

use crate::extract::Path;
use axum::Json;
use axum::extract::State;
use ketaflow_clinic::delivery::{Delivery, RateChange};
use ketaflow_clinic::discharge::{DischargeInput, TakenVitals, assess_discharge};
use ketaflow_clinic::news2::Aldrete;
use ketaflow_clinic::patient::BloodPressure;
use ketaflow_clinic::plan::{PREDICTION_TAIL_S, Prediction, covariates_on, predict_delivery};
use ketaflow_units::MgPerHour;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::clinical::{self, PredictionOut};
use crate::api::sessions::{SessionDoc, load_session, session_out, stored_reading};
use crate::auth::CurrentUser;
use crate::error::{ApiError, ErrorBody};
use crate::policy::Action;
use crate::state::AppState;

/// The recorded rates as a delivery.
pub(crate) fn delivery(doc: &SessionDoc) -> Result<Delivery, ApiError> {
    let changes = doc
        .rates
        .iter()
        .map(|r| {
            Ok(RateChange {
                at: r.at,
                rate: MgPerHour::new(r.rate_mg_per_h).map_err(|e| ApiError::Internal(e.to_string()))?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Delivery::new(changes).map_err(|e| ApiError::Internal(format!("stored rates: {e}")))
}

/// The session's prediction from what was actually given, with its origin (the first start).
/// While the infusion runs, the rate in force is assumed to continue for the rest of the planned
/// infusing time; that assumption is stated in the prediction's warnings.
pub(crate) async fn predict_session(
    state: &AppState,
    doc: &SessionDoc,
    now: OffsetDateTime,
) -> Result<Option<(OffsetDateTime, Prediction)>, ApiError> {
    let delivery = delivery(doc)?;
    let Some(origin) = delivery.first_started_at() else {
        return Ok(None);
    };
    let protocol = state
        .library
        .get(&doc.protocol_id)
        .ok_or_else(|| ApiError::Internal(format!("protocol {} is not in the library", doc.protocol_id)))?;
    let plan = clinical::plan_out(clinical::load_plan(state, doc.plan_id).await?)?;
    let patient = clinical::patient_out(clinical::load_patient(state, doc.patient_id).await?)?;
    let facts = clinical::facts(&patient.doc)?;
    let covariates = covariates_on(&facts, origin.date()).map_err(|e| ApiError::Refused {
        code: "prediction_unavailable",
        message: e.to_string(),
    })?;
    let (until, projected) = match delivery.ended_at() {
        Some(end) => (end, None),
        None => {
            let infused = delivery
                .infusing_seconds_until(now)
                .map_err(|e| ApiError::Internal(e.to_string()))?
                .get();
            let remaining = (plan.doc.duration_min * 60.0 - infused).max(0.0);
            (now + time::Duration::seconds_f64(remaining), Some(remaining))
        }
    };
    let mut segments = delivery.segments(origin, until);
    // The running rate extends to `until`; `segments` stops the last open piece there.
    if let (Some(last), Some(_)) = (segments.last_mut(), projected) {
        last.end_s = (until - origin).as_seconds_f64();
    }
    let end_s = (until - origin).as_seconds_f64();
    let mut prediction = predict_delivery(protocol, covariates, segments, end_s + PREDICTION_TAIL_S)
        .map_err(|e| ApiError::Refused {
            code: "prediction_unavailable",
            message: e.to_string(),
        })?;
    if let Some(remaining) = projected {
        prediction.warnings.push(format!(
            "the infusion is running: the current rate is assumed to continue for the remaining {:.0} min of the planned infusing time",
            remaining / 60.0
        ));
    }
    Ok(Some((origin, prediction)))
}

/// When Ce is predicted to stay below the protocol's recovery threshold, from what was given.
pub(crate) async fn predicted_recovery(
    state: &AppState,
    doc: &SessionDoc,
    now: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, ApiError> {
    Ok(predict_session(state, doc, now).await?.and_then(|(origin, p)| {
        p.ce_below_threshold_from_s
            .map(|s| origin + time::Duration::seconds_f64(s))
    }))
}

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
    let (origin, p) = predict_session(&state, &doc, now).await?.ok_or_else(|| {
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

/// One discharge criterion.
#[derive(Serialize, ToSchema, Debug, Clone)]
pub struct CriterionOut {
    /// min_observation, aldrete, vitals_near_baseline, no_unresolved_alarm, moaas, escort,
    /// pk_recovery.
    pub code: &'static str,
    /// Met?
    pub met: bool,
    /// What was seen against what is required.
    pub detail: String,
    /// Where the requirement comes from.
    pub source: String,
}

/// The discharge assessment.
#[derive(Serialize, ToSchema, Debug, Clone)]
pub struct DischargeOut {
    /// Every criterion.
    pub criteria: Vec<CriterionOut>,
    /// The codes not met.
    pub unmet: Vec<&'static str>,
    /// Whether all are met.
    pub all_met: bool,
    /// The earliest time discharge can be considered: the later of the minimum observation and the
    /// PK-predicted recovery.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub earliest_at: OffsetDateTime,
    /// The PK-predicted time Ce stays below the protocol's recovery threshold.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub predicted_recovery_at: Option<OffsetDateTime>,
    /// What the patient is told on leaving.
    pub instructions: Vec<String>,
}

/// Evaluates the discharge criteria of a session whose infusion has ended.
pub(crate) async fn assess(
    state: &AppState,
    id: Uuid,
    doc: &SessionDoc,
    now: OffsetDateTime,
) -> Result<DischargeOut, ApiError> {
    let protocol = state
        .library
        .get(&doc.protocol_id)
        .ok_or_else(|| ApiError::Internal(format!("protocol {} is not in the library", doc.protocol_id)))?;
    let ended = doc
        .transitions
        .iter()
        .rev()
        .find(|t| t.event == "stop")
        .map(|t| t.at)
        .ok_or_else(|| {
            ApiError::Conflict("the infusion has not ended; discharge criteria apply after it".into())
        })?;
    let latest = state.store.latest_vital(id).await?;
    let latest_vitals = match latest {
        Some(v) => {
            let reading = stored_reading(&v.data)?;
            Some((
                TakenVitals {
                    vitals: reading.vital_signs(0)?,
                    taken_at: v.taken_at,
                },
                reading,
            ))
        }
        None => None,
    };
    let last_assessment = |pick: fn(&AssessmentDoc) -> bool| doc.assessments.iter().rev().find(|a| pick(a));
    let aldrete = last_assessment(|a| a.aldrete.is_some())
        .and_then(|a| a.aldrete.as_ref())
        .map(|a| Aldrete {
            activity: a.activity,
            respiration: a.respiration,
            circulation: a.circulation,
            consciousness: a.consciousness,
            spo2: a.spo2,
        });
    // The most recent MOAA/S, from an assessment or a reading, whichever was later.
    let moaas_assessed = last_assessment(|a| a.moaas.is_some()).map(|a| (a.at, a.moaas.unwrap_or_default()));
    let moaas_read = latest_vitals
        .as_ref()
        .and_then(|(t, r)| r.moaas.map(|m| (t.taken_at, m)));
    let moaas = match (moaas_assessed, moaas_read) {
        (Some(a), Some(r)) => Some(if r.0 > a.0 { r.1 } else { a.1 }),
        (a, r) => a.or(r).map(|x| x.1),
    };
    let escort_present = last_assessment(|a| a.escort_present.is_some())
        .and_then(|a| a.escort_present)
        .unwrap_or(false);
    let unresolved = state.store.list_alarms(Some(id), true).await?.len();
    let predicted = predicted_recovery(state, doc, now).await?;
    let input = DischargeInput {
        rules: &protocol.discharge,
        infusion_ended_at: ended,
        now,
        latest_vitals: latest_vitals.map(|(t, _)| t),
        baseline_bp: doc.baseline.as_ref().map(|b| BloodPressure {
            systolic_mmhg: b.systolic_mmhg,
            diastolic_mmhg: b.diastolic_mmhg,
        }),
        baseline_heart_rate_per_min: doc.baseline.as_ref().and_then(|b| b.heart_rate_per_min),
        aldrete,
        moaas,
        unresolved_alarms: unresolved,
        escort_present,
        pk_ce_below_threshold_at: predicted,
        tolerance: state.settings.discharge_tolerance,
    };
    let a = assess_discharge(&input);
    Ok(DischargeOut {
        unmet: a.unmet(),
        all_met: a.all_met,
        earliest_at: a.earliest_at,
        predicted_recovery_at: predicted,
        instructions: a.instructions.clone(),
        criteria: a
            .criteria
            .into_iter()
            .map(|c| CriterionOut {
                code: c.code,
                met: c.met,
                detail: c.detail,
                source: c.source,
            })
            .collect(),
    })
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
    Ok(Json(assess(&state, id, &doc, now).await?))
}

/// A modified Aldrete score as recorded (Aldrete 1995; items 0–2).
#[derive(serde::Serialize, serde::Deserialize, ToSchema, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AldreteDoc {
    /// Activity 0–2.
    pub activity: u8,
    /// Respiration 0–2.
    pub respiration: u8,
    /// Circulation 0–2.
    pub circulation: u8,
    /// Consciousness 0–2.
    pub consciousness: u8,
    /// SpO2 0–2.
    pub spo2: u8,
}

/// A bedside assessment: Aldrete, MOAA/S, escort present.
#[derive(serde::Serialize, serde::Deserialize, ToSchema, Clone, Debug, PartialEq)]
pub struct AssessmentDoc {
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// Who.
    pub by: String,
    /// Modified Aldrete.
    pub aldrete: Option<AldreteDoc>,
    /// Its total.
    pub aldrete_total: Option<u8>,
    /// MOAA/S 0–5.
    pub moaas: Option<u8>,
    /// The escort is here.
    pub escort_present: Option<bool>,
}
