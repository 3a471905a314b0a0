//! Patients, intake, eligibility and dose plans.
//!
//! Records are stored as versioned JSON documents whose shape is defined here (`PatientDoc`,
//! `PlanDoc`); every write is validated first and audited with the document before and after.
//! Domain decisions (eligibility, limits, approval) are made by `ketaflow-clinic` on domain types
//! converted from the documents.

use crate::extract::{Path, Query};
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use ketaflow_clinic::eligibility::{self, AcknowledgementError, EligibilityReport};
use ketaflow_clinic::patient::{Condition, Indication, MedicationClass, Sex};
use ketaflow_store::{NewRecord, Record, RecordChange};
use serde::{Deserialize, Serialize};
use time::Date;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::error::{ApiError, ErrorBody, json_rejection};
use crate::policy::Action;
use crate::state::AppState;

pub use ketaflow_app::plans::{ApproveIn, PlanIn, PlanOut, parse_date, plan_doc, plan_out, prediction_out};
pub use ketaflow_app::records::{
    AckDoc, BpDoc, CheckOut, Dated, IndicationOut, MedicationDoc, OverrideDoc, PATIENT, PLAN, PatientDoc,
    PlanDoc, PredictionOut,
};

// ---- Documents -----------------------------------------------------------------------------------

/// A patient as the API returns it.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct PatientOut {
    /// Id.
    pub id: Uuid,
    /// Record version (send it back as `expected_version`? not needed: each intake call appends).
    pub version: i64,
    /// The record.
    #[serde(flatten)]
    pub doc: PatientDoc,
}

pub(crate) fn patient_out(record: Record) -> Result<PatientOut, ApiError> {
    let doc: PatientDoc = serde_json::from_value(record.data)
        .map_err(|e| ApiError::Internal(format!("stored patient: {e}")))?;
    Ok(PatientOut {
        id: record.id,
        version: record.version,
        doc,
    })
}

// ---- Validation helpers ------------------------------------------------------------------------

fn check_range(field: &str, value: f64, min: f64, max: f64) -> Result<f64, ApiError> {
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::field(field, value, format!("{min}–{max}")))
    }
}

fn not_in_future(field: &str, date: Date, state: &AppState) -> Result<Date, ApiError> {
    if date > state.now().date() {
        return Err(ApiError::field(
            field,
            date.to_string(),
            "a date not in the future",
        ));
    }
    Ok(date)
}

fn label(doc: &PatientDoc) -> String {
    format!("{} {}", doc.display_name, doc.mrn.clone().unwrap_or_default())
}

pub(crate) async fn load_patient(state: &AppState, id: Uuid) -> Result<Record, ApiError> {
    state.store.get_record(PATIENT, id).await.map_err(|e| match e {
        ketaflow_store::StoreError::NotFound { .. } => ApiError::NotFound {
            what: "patient".into(),
            id: id.to_string(),
        },
        other => other.into(),
    })
}

/// Applies `edit` to the patient's document and stores it, audited as `action`.
async fn change_patient(
    state: &AppState,
    me: &CurrentUser,
    id: Uuid,
    action: &str,
    edit: impl FnOnce(&mut PatientDoc) -> Result<(), ApiError>,
) -> Result<PatientOut, ApiError> {
    let record = load_patient(state, id).await?;
    let mut doc: PatientDoc =
        serde_json::from_value(record.data.clone()).map_err(|e| ApiError::Internal(e.to_string()))?;
    edit(&mut doc)?;
    let data = serde_json::to_value(&doc).map_err(|e| ApiError::Internal(e.to_string()))?;
    let change = RecordChange {
        kind: PATIENT,
        id,
        expected_version: record.version,
        label: &label(&doc),
        data: &data,
        lock: false,
    };
    let updated = state
        .store
        .update_record_audited(&me.actor(), action, &change, state.now())
        .await?;
    patient_out(updated)
}

// ---- Patients ------------------------------------------------------------------------------------

/// A new patient.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatientIn {
    /// Name as the clinic shows it, 1–120 characters.
    pub display_name: String,
    /// Medical record number, up to 40 characters.
    pub mrn: Option<String>,
    /// YYYY-MM-DD, not in the future.
    pub date_of_birth: String,
    /// male or female.
    pub sex: String,
}

/// Register a patient.
#[utoipa::path(post, path = "/api/v1/patients", tag = "patients", request_body = PatientIn,
    responses((status = 201, body = PatientOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_patient(
    State(state): State<AppState>,
    me: CurrentUser,
    body: Result<Json<PatientIn>, JsonRejection>,
) -> Result<(StatusCode, Json<PatientOut>), ApiError> {
    me.require(Action::WriteIntake)?;
    let Json(body) = body.map_err(json_rejection)?;
    let name = body.display_name.trim();
    if name.is_empty() || name.chars().count() > 120 {
        return Err(ApiError::field(
            "display_name",
            body.display_name.clone(),
            "1–120 characters",
        ));
    }
    if let Some(mrn) = &body.mrn
        && (mrn.trim().is_empty() || mrn.chars().count() > 40)
    {
        return Err(ApiError::field("mrn", mrn.clone(), "1–40 characters"));
    }
    let dob = not_in_future(
        "date_of_birth",
        parse_date("date_of_birth", &body.date_of_birth)?,
        &state,
    )?;
    if dob.year() < 1900 {
        return Err(ApiError::field(
            "date_of_birth",
            body.date_of_birth.clone(),
            "a date from 1900-01-01 to today",
        ));
    }
    body.sex
        .parse::<Sex>()
        .map_err(|_| ApiError::field("sex", body.sex.clone(), "male, female"))?;
    let doc = PatientDoc {
        display_name: name.to_string(),
        mrn: body.mrn.map(|m| m.trim().to_string()),
        date_of_birth: dob.to_string(),
        sex: body.sex,
        heights: vec![],
        weights: vec![],
        indications: vec![],
        medications: vec![],
        conditions: vec![],
        baseline_bp: None,
        acknowledgements: vec![],
    };
    let data = serde_json::to_value(&doc).map_err(|e| ApiError::Internal(e.to_string()))?;
    let new = NewRecord {
        kind: PATIENT,
        parent_id: None,
        label: &label(&doc),
        data: &data,
    };
    let record = state
        .store
        .insert_record_audited(&me.actor(), "patient.create", &new, state.now())
        .await?;
    Ok((StatusCode::CREATED, Json(patient_out(record)?)))
}

/// Patient search.
#[derive(Debug, Deserialize, IntoParams)]
pub struct PatientQuery {
    /// Part of the name or MRN.
    pub search: Option<String>,
    /// At most this many (1–500, default 100).
    pub limit: Option<u32>,
}

/// List or search patients.
#[utoipa::path(get, path = "/api/v1/patients", tag = "patients", params(PatientQuery),
    responses((status = 200, body = [PatientOut]), (status = 401, body = ErrorBody)))]
pub async fn list_patients(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(q): Query<PatientQuery>,
) -> Result<Json<Vec<PatientOut>>, ApiError> {
    me.require(Action::ReadClinical)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::field("limit", limit, "1–500"));
    }
    let records = state
        .store
        .list_records(
            PATIENT,
            None,
            q.search.as_deref().filter(|s| !s.is_empty()),
            limit,
        )
        .await?;
    Ok(Json(
        records.into_iter().map(patient_out).collect::<Result<_, _>>()?,
    ))
}

/// One patient.
#[utoipa::path(get, path = "/api/v1/patients/{id}", tag = "patients", params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 200, body = PatientOut), (status = 404, body = ErrorBody)))]
pub async fn get_patient(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<PatientOut>, ApiError> {
    me.require(Action::ReadClinical)?;
    Ok(Json(patient_out(load_patient(&state, id).await?)?))
}

/// A dated measurement.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightIn {
    /// Weight, kg (2–350).
    pub weight_kg: f64,
    /// Date measured, YYYY-MM-DD, not in the future.
    pub on: String,
}

/// Record a weight.
#[utoipa::path(post, path = "/api/v1/patients/{id}/weights", tag = "patients", request_body = WeightIn, params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 200, body = PatientOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn add_weight(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: Result<Json<WeightIn>, JsonRejection>,
) -> Result<Json<PatientOut>, ApiError> {
    me.require(Action::WriteIntake)?;
    let Json(body) = body.map_err(json_rejection)?;
    // 2–350 kg: a clinic plausibility range (the unit type allows 0.3–500 kg for any use).
    let measured = ("weight_kg", body.weight_kg, 2.0, 350.0);
    add_measurement(&state, &me, id, "patient.weight.add", measured, &body.on, |doc| {
        &mut doc.weights
    })
    .await
}

/// Checks a dated measurement and appends it to one of the patient's lists, audited as `action`.
async fn add_measurement(
    state: &AppState,
    me: &CurrentUser,
    id: Uuid,
    action: &str,
    (field, value, min, max): (&str, f64, f64, f64),
    on: &str,
    list: fn(&mut PatientDoc) -> &mut Vec<Dated>,
) -> Result<Json<PatientOut>, ApiError> {
    let value = check_range(field, value, min, max)?;
    let on = not_in_future("on", parse_date("on", on)?, state)?.to_string();
    let out = change_patient(state, me, id, action, |doc| {
        list(doc).push(Dated { value, on });
        Ok(())
    })
    .await?;
    Ok(Json(out))
}

/// A dated height.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeightIn {
    /// Height, cm (40–250).
    pub height_cm: f64,
    /// Date measured, YYYY-MM-DD.
    pub on: String,
}

/// Record a height.
#[utoipa::path(post, path = "/api/v1/patients/{id}/heights", tag = "patients", request_body = HeightIn, params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 200, body = PatientOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn add_height(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: Result<Json<HeightIn>, JsonRejection>,
) -> Result<Json<PatientOut>, ApiError> {
    me.require(Action::WriteIntake)?;
    let Json(body) = body.map_err(json_rejection)?;
    let measured = ("height_cm", body.height_cm, 40.0, 250.0);
    add_measurement(&state, &me, id, "patient.height.add", measured, &body.on, |doc| {
        &mut doc.heights
    })
    .await
}

/// A code to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeIn {
    /// The code.
    pub code: String,
}

/// Add an indication (with its evidence grade, shown on the patient).
#[utoipa::path(post, path = "/api/v1/patients/{id}/indications", tag = "patients", request_body = CodeIn, params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 200, body = PatientOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn add_indication(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: Result<Json<CodeIn>, JsonRejection>,
) -> Result<Json<PatientOut>, ApiError> {
    me.require(Action::WriteIntake)?;
    let Json(body) = body.map_err(json_rejection)?;
    let indication = body
        .code
        .parse::<Indication>()
        .map_err(|e| ApiError::field("code", body.code.clone(), e.allowed))?;
    Ok(Json(
        change_patient(&state, &me, id, "patient.indication.add", |doc| {
            if !doc.indications.iter().any(|i| i.code == indication.code()) {
                doc.indications.push(indication_doc(indication));
            }
            Ok(())
        })
        .await?,
    ))
}

/// A current medication.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MedicationIn {
    /// Drug name, 1–80 characters.
    pub name: String,
    /// Screening class code.
    pub class: String,
    /// Daily dose, mg (0–100000).
    pub daily_dose_mg: Option<f64>,
}

/// Add a current medication.
#[utoipa::path(post, path = "/api/v1/patients/{id}/medications", tag = "patients", request_body = MedicationIn, params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 200, body = PatientOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn add_medication(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: Result<Json<MedicationIn>, JsonRejection>,
) -> Result<Json<PatientOut>, ApiError> {
    me.require(Action::WriteIntake)?;
    let Json(body) = body.map_err(json_rejection)?;
    let name = body.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 80 {
        return Err(ApiError::field("name", body.name.clone(), "1–80 characters"));
    }
    let class = body
        .class
        .parse::<MedicationClass>()
        .map_err(|e| ApiError::field("class", body.class.clone(), e.allowed))?;
    if let Some(dose) = body.daily_dose_mg {
        check_range("daily_dose_mg", dose, 0.0, 100_000.0)?;
    }
    Ok(Json(
        change_patient(&state, &me, id, "patient.medication.add", |doc| {
            doc.medications.push(MedicationDoc {
                name,
                class: class.code().into(),
                daily_dose_mg: body.daily_dose_mg,
            });
            Ok(())
        })
        .await?,
    ))
}

/// Add a history condition.
#[utoipa::path(post, path = "/api/v1/patients/{id}/conditions", tag = "patients", request_body = CodeIn, params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 200, body = PatientOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn add_condition(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: Result<Json<CodeIn>, JsonRejection>,
) -> Result<Json<PatientOut>, ApiError> {
    me.require(Action::WriteIntake)?;
    let Json(body) = body.map_err(json_rejection)?;
    let condition = body
        .code
        .parse::<Condition>()
        .map_err(|e| ApiError::field("code", body.code.clone(), e.allowed))?;
    Ok(Json(
        change_patient(&state, &me, id, "patient.condition.add", |doc| {
            if !doc.conditions.contains(&condition.code().to_string()) {
                doc.conditions.push(condition.code().into());
            }
            Ok(())
        })
        .await?,
    ))
}

/// A baseline blood pressure.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BpIn {
    /// Systolic, mmHg (50–300).
    pub systolic_mmhg: f64,
    /// Diastolic, mmHg (20–200), below systolic.
    pub diastolic_mmhg: f64,
    /// YYYY-MM-DD.
    pub on: String,
}

/// Set the baseline blood pressure.
#[utoipa::path(post, path = "/api/v1/patients/{id}/baseline-bp", tag = "patients", request_body = BpIn, params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 200, body = PatientOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn set_baseline_bp(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: Result<Json<BpIn>, JsonRejection>,
) -> Result<Json<PatientOut>, ApiError> {
    me.require(Action::WriteIntake)?;
    let Json(body) = body.map_err(json_rejection)?;
    let systolic = check_range("systolic_mmhg", body.systolic_mmhg, 50.0, 300.0)?;
    let diastolic = check_range("diastolic_mmhg", body.diastolic_mmhg, 20.0, 200.0)?;
    if diastolic >= systolic {
        return Err(ApiError::field(
            "diastolic_mmhg",
            diastolic,
            format!("below the systolic {systolic}"),
        ));
    }
    let on = not_in_future("on", parse_date("on", &body.on)?, &state)?;
    Ok(Json(
        change_patient(&state, &me, id, "patient.baseline_bp.set", |doc| {
            doc.baseline_bp = Some(BpDoc {
                systolic_mmhg: systolic,
                diastolic_mmhg: diastolic,
                on: on.to_string(),
            });
            Ok(())
        })
        .await?,
    ))
}

// ---- Eligibility ---------------------------------------------------------------------------------

/// One screening finding.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug)]
pub struct FindingOut {
    /// Code.
    pub code: String,
    /// absolute, relative or warning.
    pub severity: String,
    /// Meaning.
    pub message: String,
    /// Source of the rule.
    pub source: String,
    /// Whether the classification is a clinic setting.
    pub clinic_setting: bool,
    /// The acknowledgement, for relative findings that have one: the physician's user id.
    pub acknowledged_by: Option<String>,
    /// The physician's name as it was when they acknowledged, where the record keeps it.
    pub acknowledged_by_name: Option<String>,
    /// Its reason.
    pub acknowledgement_reason: Option<String>,
}

/// The eligibility report.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug)]
pub struct EligibilityOut {
    /// eligible, needs_acknowledgement or ineligible.
    pub status: String,
    /// Findings, most severe first.
    pub findings: Vec<FindingOut>,
    /// Relative findings still to acknowledge.
    pub unacknowledged: Vec<String>,
    /// The indications with their evidence grades.
    pub indications: Vec<IndicationOut>,
}

/// The stored form of an indication: its code and the evidence grade in force when recorded.
pub(crate) fn indication_doc(indication: Indication) -> IndicationOut {
    IndicationOut {
        code: indication.code().into(),
        evidence_grade: indication.evidence().grade.into(),
        evidence_source: indication.evidence().source.into(),
    }
}

fn eligibility_out(report: &EligibilityReport, doc: &PatientDoc) -> EligibilityOut {
    EligibilityOut {
        status: report.status.code().into(),
        findings: report
            .findings
            .iter()
            .map(|f| {
                let ack = doc.acknowledgements.iter().find(|a| a.code == f.code);
                FindingOut {
                    code: f.code.clone(),
                    severity: f.severity.code().into(),
                    message: f.message.clone(),
                    source: f.source.into(),
                    clinic_setting: f.clinic_setting,
                    acknowledged_by: ack.map(|a| a.physician.clone()),
                    acknowledged_by_name: ack.and_then(|a| a.physician_name.clone()),
                    acknowledgement_reason: ack.map(|a| a.reason.clone()),
                }
            })
            .collect(),
        unacknowledged: report.unacknowledged.clone(),
        indications: doc.indications.clone(),
    }
}

/// Screen the patient.
#[utoipa::path(get, path = "/api/v1/patients/{id}/eligibility", tag = "patients", params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 200, body = EligibilityOut), (status = 404, body = ErrorBody)))]
pub async fn get_eligibility(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<EligibilityOut>, ApiError> {
    me.require(Action::ReadClinical)?;
    let doc = patient_out(load_patient(&state, id).await?)?.doc;
    let report = state.screen(id, &doc)?;
    Ok(Json(eligibility_out(&report, &doc)))
}

/// An acknowledgement of a relative contraindication.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgeIn {
    /// The finding's code, e.g. `condition.pregnancy`.
    pub code: String,
    /// Why treatment goes ahead (at least 10 characters).
    pub reason: String,
}

/// Acknowledge a relative contraindication (physicians).
#[utoipa::path(post, path = "/api/v1/patients/{id}/eligibility/acknowledgements", tag = "patients", request_body = AcknowledgeIn,
    params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 200, body = EligibilityOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn acknowledge(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: Result<Json<AcknowledgeIn>, JsonRejection>,
) -> Result<Json<EligibilityOut>, ApiError> {
    me.require(Action::AcknowledgeContraindication)?;
    let Json(body) = body.map_err(json_rejection)?;
    let physician = me.user.id.to_string();
    let physician_name = me.signature();
    let state_ref = &state;
    let out = change_patient(&state, &me, id, "patient.contraindication.acknowledge", |doc| {
        doc.acknowledgements.retain(|a| a.code != body.code);
        doc.acknowledgements.push(AckDoc {
            code: body.code.clone(),
            physician,
            physician_name: Some(physician_name),
            reason: body.reason.trim().to_string(),
        });
        // Validate with the domain rules before anything is stored.
        eligibility::screen(
            &doc.facts(id)?,
            state_ref.settings.bp_threshold,
            &doc.acknowledgements(),
        )
        .map_err(|e| match e {
            AcknowledgementError::ReasonTooShort { .. } => {
                ApiError::field("reason", body.reason.clone(), "at least 10 characters")
            }
            AcknowledgementError::NotRelative { .. } => ApiError::Refused {
                code: "not_relative",
                message: e.to_string(),
            },
        })?;
        Ok(())
    })
    .await?;
    let report = state.screen(id, &out.doc)?;
    Ok(Json(eligibility_out(&report, &out.doc)))
}

// ---- Dose plans ----------------------------------------------------------------------------------

/// Compute and save a draft dose plan. The patient must be eligible (relative contraindications
/// acknowledged, no absolute one).
#[utoipa::path(post, path = "/api/v1/patients/{id}/plans", tag = "plans", request_body = PlanIn, params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 201, body = PlanOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_plan(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: Result<Json<PlanIn>, JsonRejection>,
) -> Result<(StatusCode, Json<PlanOut>), ApiError> {
    let Json(body) = body.map_err(json_rejection)?;
    Ok((
        StatusCode::CREATED,
        Json(state.create_plan(&me.caller(), id, body).await?),
    ))
}

/// A patient's plans.
#[utoipa::path(get, path = "/api/v1/patients/{id}/plans", tag = "plans", params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 200, body = [PlanOut]), (status = 404, body = ErrorBody)))]
pub async fn list_plans(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<PlanOut>>, ApiError> {
    Ok(Json(state.plans(&me.caller(), id).await?))
}

pub(crate) async fn load_plan(state: &AppState, id: Uuid) -> Result<Record, ApiError> {
    state.store.get_record(PLAN, id).await.map_err(|e| match e {
        ketaflow_store::StoreError::NotFound { .. } => ApiError::NotFound {
            what: "plan".into(),
            id: id.to_string(),
        },
        other => other.into(),
    })
}

/// One plan.
#[utoipa::path(get, path = "/api/v1/plans/{id}", tag = "plans", params(("id" = Uuid, Path, description = "plan id")),
    responses((status = 200, body = PlanOut), (status = 404, body = ErrorBody)))]
pub async fn get_plan(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<PlanOut>, ApiError> {
    Ok(Json(state.plan(&me.caller(), id).await?))
}

/// Approve a plan (physicians). Soft-limit breaches need an override each; hard limits never pass.
/// The approved plan is locked and never changes.
#[utoipa::path(post, path = "/api/v1/plans/{id}/approve", tag = "plans", request_body = ApproveIn, params(("id" = Uuid, Path, description = "plan id")),
    responses((status = 200, body = PlanOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn approve_plan(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: Result<Json<ApproveIn>, JsonRejection>,
) -> Result<Json<PlanOut>, ApiError> {
    let Json(body) = body.map_err(json_rejection)?;
    Ok(Json(state.approve_plan(&me.caller(), id, body).await?))
}
