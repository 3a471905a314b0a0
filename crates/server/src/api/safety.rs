//! Long-term safety and opioid use over HTTP: safety checks (liver tests, the urinary checklist,
//! cognitive screens, psychiatric events), the surveillance picture (`ketaflow_clinic::surveillance`)
//! computed from what the patient's sessions actually gave, and opioid use in morphine milligram
//! equivalents (`ketaflow_clinic::mme`, CDC 2022, the table named with every figure) over the course.

use crate::extract::Path;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use ketaflow_clinic::mme::{MME_TABLE, Opioid, mme_per_day};
use ketaflow_clinic::surveillance::{
    InfusionGiven, SafetyCheck, SurveillanceSettings, URINARY_SYMPTOMS, surveil,
};
use serde::{Deserialize, Serialize};
use time::Date;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::clinical;
use crate::api::sessions::{SESSION, session_out};
use crate::auth::CurrentUser;
use crate::error::{ApiError, ErrorBody, json_rejection};
use crate::policy::Action;
use crate::state::AppState;

const SAFETY_CHECK: &str = "safety_check";
const OPIOID_USE: &str = "opioid_use";

/// A safety check as recorded.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SafetyCheckDoc {
    /// liver_tests, urinary_checklist, cognitive_screen, psychiatric_event.
    pub kind: String,
    /// YYYY-MM-DD.
    pub on: String,
    /// liver_tests: any of ALT, AST, ALP, GGT, bilirubin ≥ 3× the upper limit of normal.
    #[serde(default)]
    pub above_3x_uln: Option<bool>,
    /// urinary_checklist: the symptoms present (dysuria, urgency, frequency, haematuria,
    /// suprapubic_pain); empty when none.
    #[serde(default)]
    pub symptoms: Option<Vec<String>>,
    /// cognitive_screen: the tool and score as written (e.g. "MoCA 27/30"); psychiatric_event:
    /// what was seen.
    #[serde(default)]
    pub description: Option<String>,
}

fn parse_date(field: &str, text: &str) -> Result<Date, ApiError> {
    Date::parse(text, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|_| ApiError::field(field, text, "a date YYYY-MM-DD"))
}

fn to_check(doc: &SafetyCheckDoc) -> Result<SafetyCheck, ApiError> {
    let on = parse_date("on", &doc.on)?;
    Ok(match doc.kind.as_str() {
        "liver_tests" => SafetyCheck::LiverTests {
            on,
            above_3x_uln: doc
                .above_3x_uln
                .ok_or_else(|| ApiError::field("above_3x_uln", serde_json::Value::Null, "true or false"))?,
        },
        "urinary_checklist" => {
            let symptoms = doc.symptoms.clone().ok_or_else(|| {
                ApiError::field("symptoms", serde_json::Value::Null, "a list (empty when none)")
            })?;
            if let Some(bad) = symptoms.iter().find(|s| !URINARY_SYMPTOMS.contains(&s.as_str())) {
                return Err(ApiError::field(
                    "symptoms",
                    bad.clone(),
                    URINARY_SYMPTOMS.join(", "),
                ));
            }
            SafetyCheck::UrinaryChecklist { on, symptoms }
        }
        "cognitive_screen" => SafetyCheck::CognitiveScreen { on },
        "psychiatric_event" => SafetyCheck::PsychiatricEvent {
            on,
            description: doc
                .description
                .clone()
                .filter(|d| d.trim().chars().count() >= 3)
                .ok_or_else(|| ApiError::field("description", serde_json::Value::Null, "what was seen"))?,
        },
        other => {
            return Err(ApiError::field(
                "kind",
                other,
                "liver_tests, urinary_checklist, cognitive_screen, psychiatric_event",
            ));
        }
    })
}

/// Record a safety check.
#[utoipa::path(post, path = "/api/v1/patients/{id}/safety-checks", tag = "outcomes", request_body = SafetyCheckDoc, params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 201, body = SafetyCheckDoc), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn add_safety_check(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: Result<Json<SafetyCheckDoc>, JsonRejection>,
) -> Result<(StatusCode, Json<SafetyCheckDoc>), ApiError> {
    me.require(Action::WriteIntake)?;
    let Json(body) = body.map_err(json_rejection)?;
    let check = to_check(&body)?;
    let on = match &check {
        SafetyCheck::LiverTests { on, .. }
        | SafetyCheck::UrinaryChecklist { on, .. }
        | SafetyCheck::CognitiveScreen { on }
        | SafetyCheck::PsychiatricEvent { on, .. } => *on,
    };
    if on > state.now().date() {
        return Err(ApiError::field(
            "on",
            body.on.clone(),
            "a date no later than today",
        ));
    }
    clinical::load_patient(&state, id).await?;
    let data = serde_json::to_value(&body).map_err(|e| ApiError::Internal(e.to_string()))?;
    state
        .store
        .insert_record_audited(
            &me.actor(),
            "safety_check.record",
            &ketaflow_store::NewRecord {
                kind: SAFETY_CHECK,
                parent_id: Some(id),
                label: &body.kind,
                data: &data,
            },
            state.now(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(body)))
}

/// Opioid doses on one day.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OpioidDoseDoc {
    /// codeine, fentanyl_transdermal, hydrocodone, hydromorphone, methadone, morphine, oxycodone,
    /// oxymorphone, tapentadol, tramadol.
    pub opioid: String,
    /// mg per day; µg/h for transdermal fentanyl.
    pub dose: f64,
}

/// Opioid use as reported on a day.
#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct OpioidUseIn {
    /// YYYY-MM-DD.
    pub on: String,
    /// Every opioid taken (empty: none).
    pub doses: Vec<OpioidDoseDoc>,
}

/// Opioid use with its MME, as stored.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
pub struct OpioidUseDoc {
    /// YYYY-MM-DD.
    pub on: String,
    /// The doses.
    pub doses: Vec<OpioidDoseDoc>,
    /// Morphine milligram equivalents per day.
    pub mme_per_day: f64,
    /// The conversion table used.
    pub table: String,
    /// The CDC's cautions that apply.
    pub cautions: Vec<String>,
}

/// Record opioid use; the MME per day is computed and stored with the table's name.
#[utoipa::path(post, path = "/api/v1/patients/{id}/opioid-use", tag = "outcomes", request_body = OpioidUseIn, params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 201, body = OpioidUseDoc), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn add_opioid_use(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: Result<Json<OpioidUseIn>, JsonRejection>,
) -> Result<(StatusCode, Json<OpioidUseDoc>), ApiError> {
    me.require(Action::WriteIntake)?;
    let Json(body) = body.map_err(json_rejection)?;
    let on = parse_date("on", &body.on)?;
    if on > state.now().date() {
        return Err(ApiError::field(
            "on",
            body.on.clone(),
            "a date no later than today",
        ));
    }
    let mut doses = Vec::new();
    for d in &body.doses {
        let opioid = Opioid::ALL
            .into_iter()
            .find(|o| o.code() == d.opioid)
            .ok_or_else(|| {
                ApiError::field(
                    "doses.opioid",
                    d.opioid.clone(),
                    Opioid::ALL.map(Opioid::code).join(", "),
                )
            })?;
        doses.push((opioid, d.dose));
    }
    let total = mme_per_day(&doses).map_err(|e| ApiError::field("doses.dose", e.dose, e.to_string()))?;
    clinical::load_patient(&state, id).await?;
    let doc = OpioidUseDoc {
        on: on.to_string(),
        doses: body.doses.clone(),
        mme_per_day: total.mme_per_day,
        table: total.table.to_string(),
        cautions: total.cautions.iter().map(|c| (*c).to_string()).collect(),
    };
    let data = serde_json::to_value(&doc).map_err(|e| ApiError::Internal(e.to_string()))?;
    state
        .store
        .insert_record_audited(
            &me.actor(),
            "opioid_use.record",
            &ketaflow_store::NewRecord {
                kind: OPIOID_USE,
                parent_id: Some(id),
                label: &doc.on,
                data: &data,
            },
            state.now(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(doc)))
}

/// Exposure over a window.
#[derive(Serialize, ToSchema, Debug)]
pub struct ExposureOut {
    /// Infusions.
    pub infusions: usize,
    /// Ketamine given, mg.
    pub mg: f64,
    /// Ketamine given per kg of dosing weight, mg/kg.
    pub mg_per_kg: f64,
}

/// A surveillance flag.
#[derive(Serialize, ToSchema, Debug)]
pub struct FlagOut {
    /// Code.
    pub code: &'static str,
    /// What and what to do.
    pub detail: String,
    /// Due (YYYY-MM-DD).
    pub due: String,
    /// Source.
    pub source: &'static str,
    /// Whether the timing is a clinic setting.
    pub clinic_setting: bool,
}

/// The opioid trend.
#[derive(Serialize, ToSchema, Debug)]
pub struct MmeTrendOut {
    /// The conversion table.
    pub table: &'static str,
    /// (date, MME/day), in date order.
    pub series: Vec<(String, f64)>,
    /// The first recorded MME/day.
    pub baseline: Option<f64>,
    /// The latest.
    pub latest: Option<f64>,
    /// latest − baseline.
    pub change: Option<f64>,
}

/// A patient's safety picture.
#[derive(Serialize, ToSchema, Debug)]
pub struct SafetyOut {
    /// Last 30 days.
    pub last_30_days: ExposureOut,
    /// Last 12 months.
    pub last_12_months: ExposureOut,
    /// Lifetime (as recorded here).
    pub lifetime: ExposureOut,
    /// Flags, earliest due first.
    pub flags: Vec<FlagOut>,
    /// Opioid use over the course.
    pub opioids: MmeTrendOut,
}

fn exposure_out(e: ketaflow_clinic::surveillance::Exposure) -> ExposureOut {
    ExposureOut {
        infusions: e.infusions,
        mg: e.mg,
        mg_per_kg: e.mg_per_kg,
    }
}

/// Cumulative ketamine, surveillance flags with due dates, and opioid MME over the course.
#[utoipa::path(get, path = "/api/v1/patients/{id}/safety", tag = "outcomes", params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 200, body = SafetyOut), (status = 404, body = ErrorBody)))]
pub async fn get_safety(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<SafetyOut>, ApiError> {
    me.require(Action::ReadClinical)?;
    let patient = clinical::patient_out(clinical::load_patient(&state, id).await?)?;
    let now = state.now();
    let mut infusions = Vec::new();
    for record in state.store.list_children(SESSION, id).await? {
        let s = session_out(record, now)?;
        let Some(started) = s.doc.rates.first().map(|r| r.at) else {
            continue;
        };
        if s.given_mg <= 0.0 {
            continue;
        }
        let plan = clinical::plan_out(clinical::load_plan(&state, s.doc.plan_id).await?)?;
        infusions.push(InfusionGiven {
            on: started.date(),
            given_mg: s.given_mg,
            dosing_weight_kg: plan.doc.dosing_weight_kg,
            planned_dose_per_kg: plan.doc.dose_per_kg,
        });
    }
    let mut checks = Vec::new();
    for record in state
        .store
        .list_records(SAFETY_CHECK, Some(id), None, 500)
        .await?
    {
        let doc: SafetyCheckDoc =
            serde_json::from_value(record.data).map_err(|e| ApiError::Internal(e.to_string()))?;
        checks.push(to_check(&doc)?);
    }
    let at_risk_liver = patient.doc.conditions.iter().any(|c| c.contains("hepatic"));
    let s = surveil(
        now.date(),
        &infusions,
        &checks,
        at_risk_liver,
        &SurveillanceSettings::default(),
    );
    let mut uses: Vec<OpioidUseDoc> = state
        .store
        .list_records(OPIOID_USE, Some(id), None, 500)
        .await?
        .into_iter()
        .map(|r| serde_json::from_value(r.data).map_err(|e| ApiError::Internal(e.to_string())))
        .collect::<Result<_, _>>()?;
    uses.sort_by(|a, b| a.on.cmp(&b.on));
    let series: Vec<(String, f64)> = uses.iter().map(|u| (u.on.clone(), u.mme_per_day)).collect();
    let (baseline, latest) = (series.first().map(|x| x.1), series.last().map(|x| x.1));
    Ok(Json(SafetyOut {
        last_30_days: exposure_out(s.last_30_days),
        last_12_months: exposure_out(s.last_12_months),
        lifetime: exposure_out(s.lifetime),
        flags: s
            .flags
            .into_iter()
            .map(|f| FlagOut {
                code: f.code,
                detail: f.detail,
                due: f.due.to_string(),
                source: f.source,
                clinic_setting: f.clinic_setting,
            })
            .collect(),
        opioids: MmeTrendOut {
            table: MME_TABLE,
            change: baseline.zip(latest).map(|(b, l)| l - b),
            baseline,
            latest,
            series,
        },
    }))
}
