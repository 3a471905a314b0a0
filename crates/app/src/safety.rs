//! Long-term safety and opioid use: safety checks (liver tests, the urinary checklist,
//! cognitive screens, psychiatric events), the surveillance picture (`ketaflow_clinic::surveillance`)
//! computed from what the patient's sessions actually gave, and opioid use in morphine milligram
//! equivalents (`ketaflow_clinic::mme`, CDC 2022, the table named with every figure) over the course.

use ketaflow_clinic::mme::{
    DoseEntryError, EVERY_HOURS_RANGE, MME_TABLE, MmeFlag, NotConverted, Opioid, OpioidDose, Regimen, Route,
    TIMES_DAILY_RANGE, assess, naloxone_flag,
};
use ketaflow_clinic::surveillance::{
    InfusionGiven, SafetyCheck, SurveillanceSettings, URINARY_SYMPTOMS, surveil,
};
use ketaflow_units::{Hours, MicrogramsPerHour, Milligrams};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::plans::parse_date;
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
        if on > state.today() {
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

/// One opioid as entered: what, how, how much and how often ("10 mg every 6 h, oral").
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OpioidDoseIn {
    /// buprenorphine, codeine, fentanyl_transdermal, hydrocodone, hydromorphone, methadone,
    /// morphine, oxycodone, oxymorphone, tapentadol, tramadol.
    pub opioid: String,
    /// oral, transdermal, sublingual, buccal, intravenous, subcutaneous, intramuscular, intranasal.
    pub route: String,
    /// Each dose in mg (every opioid but the fentanyl patch); with `every_hours` or `times_per_day`.
    #[serde(default)]
    pub dose_mg: Option<f64>,
    /// Hours between doses, 1–72 ("every 6 h" is 6).
    #[serde(default)]
    pub every_hours: Option<f64>,
    /// Doses per day, 1–24 ("twice a day" is 2).
    #[serde(default)]
    pub times_per_day: Option<u32>,
    /// The fentanyl patch's labelled rate in µg/h (instead of a dose and frequency).
    #[serde(default)]
    pub patch_ug_per_h: Option<f64>,
}

/// Opioid use as reported on a day.
#[derive(Deserialize, ToSchema, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct OpioidUseIn {
    /// YYYY-MM-DD.
    pub on: String,
    /// Every opioid taken (empty: none).
    pub doses: Vec<OpioidDoseIn>,
}

/// One opioid with what the CDC 2022 table makes of it.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
pub struct OpioidDoseOut {
    /// As entered.
    #[serde(flatten)]
    pub entered: OpioidDoseIn,
    /// As a clinician writes it ("10 mg every 6 h, oral").
    pub described: String,
    /// The amount per day, in `per_day_unit`.
    pub per_day: f64,
    /// mg/day, or µg/h for a patch.
    pub per_day_unit: String,
    /// MME per day; null when the table cannot convert it (see `not_converted`).
    pub mme_per_day: Option<f64>,
    /// no_factor (buprenorphine) or route_not_in_table; null when converted.
    pub not_converted: Option<String>,
}

/// A flag beside the MME total.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
pub struct MmeFlagOut {
    /// naloxone, buprenorphine, methadone or route_not_in_table.
    pub code: String,
    /// What it means and what to do.
    pub detail: String,
    /// Where the rule comes from.
    pub source: String,
}

impl From<MmeFlag> for MmeFlagOut {
    fn from(f: MmeFlag) -> Self {
        Self {
            code: f.code.to_string(),
            detail: f.detail,
            source: f.source.to_string(),
        }
    }
}

/// Opioid use with its MME, as stored.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
pub struct OpioidUseDoc {
    /// YYYY-MM-DD.
    pub on: String,
    /// The doses.
    pub doses: Vec<OpioidDoseOut>,
    /// Morphine milligram equivalents per day of the doses the table converts.
    pub mme_per_day: f64,
    /// False when a dose could not be converted: the total then understates the opioid load.
    pub complete: bool,
    /// The conversion table used.
    pub table: String,
    /// The CDC's cautions that apply.
    pub cautions: Vec<String>,
    /// naloxone (≥ 50 MME/day), buprenorphine, methadone, route_not_in_table.
    pub flags: Vec<MmeFlagOut>,
}

/// What the trend needs of a stored day: records written before doses carried a frequency and a
/// route (`{opioid, dose}` in mg/day) read as well.
#[derive(Deserialize)]
struct StoredOpioidDay {
    on: String,
    mme_per_day: f64,
    #[serde(default = "complete_by_default")]
    complete: bool,
    #[serde(default)]
    flags: Vec<MmeFlagOut>,
}

fn complete_by_default() -> bool {
    true
}

/// The domain dose an entry stands for; the field at fault is named `doses[i].<field>`.
fn to_dose(i: usize, d: &OpioidDoseIn) -> Result<OpioidDose, AppError> {
    let at = |leaf: &str| format!("doses[{i}].{leaf}");
    let opioid: Opioid = d
        .opioid
        .parse()
        .map_err(|e: ketaflow_clinic::patient::UnknownCode| {
            AppError::field(&at("opioid"), d.opioid.as_str(), e.allowed)
        })?;
    let route: Route = d
        .route
        .parse()
        .map_err(|e: ketaflow_clinic::patient::UnknownCode| {
            AppError::field(&at("route"), d.route.as_str(), e.allowed)
        })?;
    let milligrams = |mg: f64| {
        Milligrams::new(mg)
            .ok()
            .filter(|m| m.get() > 0.0)
            .ok_or_else(|| AppError::field(&at("dose_mg"), mg, "a dose in mg above 0 and up to 100000"))
    };
    let regimen = match (d.dose_mg, d.every_hours, d.times_per_day, d.patch_ug_per_h) {
        (Some(mg), Some(hours), None, None) => {
            let (lo, hi) = EVERY_HOURS_RANGE;
            if !(lo..=hi).contains(&hours) {
                return Err(AppError::field(
                    &at("every_hours"),
                    hours,
                    format!("hours between doses, {lo}–{hi}"),
                ));
            }
            Regimen::EveryHours {
                dose: milligrams(mg)?,
                every: Hours::new(hours)
                    .map_err(|e| AppError::field(&at("every_hours"), hours, e.to_string()))?,
            }
        }
        (Some(mg), None, Some(times), None) => {
            let (lo, hi) = TIMES_DAILY_RANGE;
            if !(lo..=hi).contains(&times) {
                return Err(AppError::field(
                    &at("times_per_day"),
                    times,
                    format!("doses per day, {lo}–{hi}"),
                ));
            }
            Regimen::TimesDaily {
                dose: milligrams(mg)?,
                times,
            }
        }
        (None, None, None, Some(rate)) => Regimen::Continuous {
            rate: MicrogramsPerHour::new(rate)
                .ok()
                .filter(|r| r.get() > 0.0)
                .ok_or_else(|| {
                    AppError::field(
                        &at("patch_ug_per_h"),
                        rate,
                        "a patch rate in µg/h above 0 and up to 10000",
                    )
                })?,
        },
        _ => {
            return Err(AppError::field(
                &at("dose_mg"),
                serde_json::to_value(d)?,
                "either dose_mg with exactly one of every_hours or times_per_day, or patch_ug_per_h alone",
            ));
        }
    };
    OpioidDose::new(opioid, route, regimen).map_err(|e| {
        let field = if matches!(e, DoseEntryError::PatchRoute { .. }) {
            "route"
        } else {
            "dose_mg"
        };
        AppError::field(
            &at(field),
            serde_json::to_value(d).unwrap_or_default(),
            e.to_string(),
        )
    })
}

impl App {
    /// Records a day's opioid use: each dose's MME per day is derived from dose, frequency and
    /// route with the CDC 2022 table and stored with the table's name, its cautions and flags.
    pub async fn add_opioid_use(
        &self,
        caller: &Caller,
        id: Uuid,
        body: OpioidUseIn,
    ) -> Result<OpioidUseDoc, AppError> {
        let state = self;
        caller.require(Action::WriteIntake)?;
        let on = parse_date("on", &body.on)?;
        if on > state.today() {
            return Err(AppError::field(
                "on",
                body.on.clone(),
                "a date no later than today",
            ));
        }
        let doses = body
            .doses
            .iter()
            .enumerate()
            .map(|(i, d)| to_dose(i, d))
            .collect::<Result<Vec<_>, _>>()?;
        let assessment = assess(&doses);
        state.record(PATIENT, id).await?;
        let doc = OpioidUseDoc {
            on: on.to_string(),
            doses: body
                .doses
                .iter()
                .zip(&assessment.doses)
                .map(|(entered, c)| OpioidDoseOut {
                    entered: entered.clone(),
                    described: format!("{}, {}", c.dose.regimen.describe(), c.dose.route.code()),
                    per_day: c.dose.regimen.per_day(),
                    per_day_unit: c.dose.regimen.per_day_unit().to_string(),
                    mme_per_day: c.mme_per_day.ok(),
                    not_converted: c.mme_per_day.err().map(|n| {
                        match n {
                            NotConverted::NoFactor => "no_factor",
                            NotConverted::RouteNotInTable => "route_not_in_table",
                        }
                        .to_string()
                    }),
                })
                .collect(),
            mme_per_day: assessment.mme_per_day,
            complete: assessment.complete,
            table: assessment.table.to_string(),
            cautions: assessment.cautions.iter().map(|c| (*c).to_string()).collect(),
            flags: assessment.flags.into_iter().map(MmeFlagOut::from).collect(),
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
    /// False when the latest day holds a dose the table could not convert.
    pub latest_complete: bool,
    /// The latest day's flags (naloxone at ≥ 50 MME/day, buprenorphine, methadone, route).
    pub latest_flags: Vec<MmeFlagOut>,
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
            let Some(started) = s.rates.first().map(|r| r.at) else {
                continue;
            };
            if s.given_mg <= 0.0 {
                continue;
            }
            let plan = state.load::<crate::records::PlanDoc>(PLAN, s.plan_id).await?;
            infusions.push(InfusionGiven {
                on: started.date(),
                given_mg: s.given_mg,
                dosing_weight_kg: plan.doc.dosing_weight_kg.get(),
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
        let at_risk_liver = patient
            .doc
            .conditions
            .iter()
            .any(|c| c.code().contains("hepatic"));
        let s = surveil(
            now.date(),
            &infusions,
            &checks,
            at_risk_liver,
            &SurveillanceSettings::default(),
        );
        let mut uses: Vec<StoredOpioidDay> = state
            .store
            .list_records(OPIOID_USE, Some(id), None, 500)
            .await?
            .into_iter()
            .map(|r| crate::records::parse(OPIOID_USE, &r))
            .collect::<Result<_, _>>()?;
        uses.sort_by(|a, b| a.on.cmp(&b.on));
        let series: Vec<(String, f64)> = uses.iter().map(|u| (u.on.clone(), u.mme_per_day)).collect();
        let (baseline, latest) = (series.first().map(|x| x.1), series.last().map(|x| x.1));
        let latest_day = uses.last();
        let mut latest_flags = latest_day.map(|d| d.flags.clone()).unwrap_or_default();
        // Days stored before flags were kept still show the naloxone flag their total earns.
        if let Some(day) = latest_day
            && !latest_flags.iter().any(|f| f.code == "naloxone")
            && let Some(flag) = naloxone_flag(day.mme_per_day)
        {
            latest_flags.insert(0, flag.into());
        }
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
                latest_complete: latest_day.is_none_or(|d| d.complete),
                latest_flags,
                series,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_stored_before_frequency_and_route_still_reads() {
        // The shape written before doses carried a frequency and a route: mg/day, no flags.
        let legacy = serde_json::json!({"on": "2026-11-20", "doses": [{"opioid": "oxycodone", "dose": 40}],
            "mme_per_day": 60.0, "table": MME_TABLE, "cautions": []});
        let day: StoredOpioidDay = serde_json::from_value(legacy).unwrap();
        assert_eq!(
            (day.on.as_str(), day.mme_per_day, day.complete),
            ("2026-11-20", 60.0, true)
        );
        assert!(day.flags.is_empty());
    }

    #[test]
    fn an_entry_names_its_row_and_field() {
        let entry = OpioidDoseIn {
            opioid: "morphine".into(),
            route: "oral".into(),
            dose_mg: Some(10.0),
            every_hours: Some(4.0),
            times_per_day: Some(6),
            patch_ug_per_h: None,
        };
        let AppError::InvalidField { field, .. } = to_dose(2, &entry).unwrap_err() else {
            panic!("not a field error");
        };
        assert_eq!(field, "doses[2].dose_mg");
        let ok = OpioidDoseIn {
            times_per_day: None,
            ..entry
        };
        // 10 mg every 4 h = 60 mg/day of oral morphine.
        assert_eq!(to_dose(0, &ok).unwrap().regimen.per_day(), 60.0);
    }
}
