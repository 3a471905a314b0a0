//! Long-term safety and opioid use: safety checks (liver tests, the urinary checklist,
//! cognitive screens, psychiatric events), the surveillance picture (`ketaflow_clinic::surveillance`)
//! computed from what the patient's sessions actually gave, and opioid use in morphine milligram
//! equivalents (`ketaflow_clinic::mme`, CDC 2022, the table named with every figure) over the course.

use ketaflow_clinic::mme::{MME_TABLE, Opioid, mme_per_day};
use ketaflow_clinic::surveillance::{
    InfusionGiven, SafetyCheck, SurveillanceSettings, URINARY_SYMPTOMS, surveil,
};
use serde::{Deserialize, Serialize};
use time::Date;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::plans::plan_out;
use crate::policy::{Action, Caller};
use crate::records::{PATIENT, PLAN, PatientDoc, SESSION};
use crate::sessions::session_out;
use crate::{App, AppError};

/// The record kind of a safety check.
pub const SAFETY_CHECK: &str = "safety_check";
/// The record kind of a day's opioid use.
pub const OPIOID_USE: &str = "opioid_use";

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

fn parse_date(field: &str, text: &str) -> Result<Date, AppError> {
    Date::parse(text, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|_| AppError::field(field, text, "a date YYYY-MM-DD"))
}

/// The domain check a recorded one stands for; a field that does not fit is named.
pub fn to_check(doc: &SafetyCheckDoc) -> Result<SafetyCheck, AppError> {
    let on = parse_date("on", &doc.on)?;
    Ok(match doc.kind.as_str() {
        "liver_tests" => SafetyCheck::LiverTests {
            on,
            above_3x_uln: doc
                .above_3x_uln
                .ok_or_else(|| AppError::field("above_3x_uln", serde_json::Value::Null, "true or false"))?,
        },
        "urinary_checklist" => {
            let symptoms = doc.symptoms.clone().ok_or_else(|| {
                AppError::field("symptoms", serde_json::Value::Null, "a list (empty when none)")
            })?;
            if let Some(bad) = symptoms.iter().find(|s| !URINARY_SYMPTOMS.contains(&s.as_str())) {
                return Err(AppError::field(
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
                .ok_or_else(|| AppError::field("description", serde_json::Value::Null, "what was seen"))?,
        },
        other => {
            return Err(AppError::field(
                "kind",
                other,
                "liver_tests, urinary_checklist, cognitive_screen, psychiatric_event",
            ));
        }
    })
}

impl App {
    /// Records a safety check.
    pub async fn add_safety_check(
        &self,
        caller: &Caller,
        id: Uuid,
        body: SafetyCheckDoc,
    ) -> Result<SafetyCheckDoc, AppError> {
        let state = self;
        caller.require(Action::WriteIntake)?;
        let check = to_check(&body)?;
        let on = match &check {
            SafetyCheck::LiverTests { on, .. }
            | SafetyCheck::UrinaryChecklist { on, .. }
            | SafetyCheck::CognitiveScreen { on }
            | SafetyCheck::PsychiatricEvent { on, .. } => *on,
        };
        if on > state.now().date() {
            return Err(AppError::field(
                "on",
                body.on.clone(),
                "a date no later than today",
            ));
        }
        state.record(PATIENT, id).await?;
        let data = serde_json::to_value(&body)?;
        state
            .store
            .insert_record_audited(
                &caller.actor(),
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
        Ok(body)
    }
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
#[derive(Deserialize, ToSchema, Debug, Clone)]
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

impl App {
    /// Records opioid use; the MME per day is computed and stored with the table's name.
    pub async fn add_opioid_use(
        &self,
        caller: &Caller,
        id: Uuid,
        body: OpioidUseIn,
    ) -> Result<OpioidUseDoc, AppError> {
        let state = self;
        caller.require(Action::WriteIntake)?;
        let on = parse_date("on", &body.on)?;
        if on > state.now().date() {
            return Err(AppError::field(
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
                    AppError::field(
                        "doses.opioid",
                        d.opioid.clone(),
                        Opioid::ALL.map(Opioid::code).join(", "),
                    )
                })?;
            doses.push((opioid, d.dose));
        }
        let total = mme_per_day(&doses).map_err(|e| AppError::field("doses.dose", e.dose, e.to_string()))?;
        state.record(PATIENT, id).await?;
        let doc = OpioidUseDoc {
            on: on.to_string(),
            doses: body.doses.clone(),
            mme_per_day: total.mme_per_day,
            table: total.table.to_string(),
            cautions: total.cautions.iter().map(|c| (*c).to_string()).collect(),
        };
        let data = serde_json::to_value(&doc)?;
        state
            .store
            .insert_record_audited(
                &caller.actor(),
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
        Ok(doc)
    }
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

impl App {
    /// Cumulative ketamine, surveillance flags with due dates, and opioid MME over the course.
    pub async fn safety(&self, caller: &Caller, id: Uuid) -> Result<SafetyOut, AppError> {
        let state = self;
        caller.require(Action::ReadClinical)?;
        let patient = state.load::<PatientDoc>(PATIENT, id).await?;
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
            let plan = plan_out(state.record(PLAN, s.doc.plan_id).await?)?;
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
            let doc: SafetyCheckDoc = crate::records::parse(SAFETY_CHECK, &record)?;
            checks.push(to_check(&doc).map_err(|e| AppError::CorruptRecord {
                kind: SAFETY_CHECK,
                id: record.id.to_string(),
                reason: e.to_string(),
            })?);
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
            .map(|r| crate::records::parse(OPIOID_USE, &r))
            .collect::<Result<_, _>>()?;
        uses.sort_by(|a, b| a.on.cmp(&b.on));
        let series: Vec<(String, f64)> = uses.iter().map(|u| (u.on.clone(), u.mme_per_day)).collect();
        let (baseline, latest) = (series.first().map(|x| x.1), series.last().map(|x| x.1));
        Ok(SafetyOut {
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
        })
    }
}
