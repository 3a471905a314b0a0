//! Patients and intake: registration, dated measurements, indications, medications, history, the
//! baseline blood pressure, and the eligibility screen with physicians' acknowledgements of
//! relative contraindications. The screen itself is `ketaflow_clinic::eligibility`'s; this module
//! checks the input, appends it to the patient's record and saves it audited.

use ketaflow_clinic::eligibility::{self, AcknowledgementError, EligibilityReport};
use ketaflow_clinic::patient::{Condition, Indication, Measurement, MedicationClass, Sex};
use ketaflow_store::{NewRecord, Record, RecordChange};
use ketaflow_units::{Centimetres, Kilograms, Milligrams};
use serde::{Deserialize, Serialize};
use time::Date;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::plans::parse_date;
use crate::policy::{Action, Caller};
use crate::records::{AckDoc, BpDoc, Loaded, MedicationDoc, PATIENT, PatientDoc, RecordedIndication};
use crate::{App, AppError};

/// A patient as the API returns it: the wire form, built from the stored record at the edge.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct PatientOut {
    /// Id.
    pub id: Uuid,
    /// Record version (send it back as `expected_version`? not needed: each intake call appends).
    pub version: i64,
    /// Name as the clinic shows it.
    pub display_name: String,
    /// Medical record number, if the clinic uses one.
    pub mrn: Option<String>,
    /// YYYY-MM-DD.
    pub date_of_birth: String,
    /// male or female.
    pub sex: String,
    /// Heights, cm.
    pub heights: Vec<DatedOut>,
    /// Weights, kg.
    pub weights: Vec<DatedOut>,
    /// Indications, each with the evidence grade stored when it was recorded.
    pub indications: Vec<IndicationOut>,
    /// Current medications.
    pub medications: Vec<MedicationOut>,
    /// Screened history condition codes.
    pub conditions: Vec<String>,
    /// Baseline blood pressure.
    pub baseline_bp: Option<BpOut>,
    /// Acknowledged relative contraindications.
    pub acknowledgements: Vec<AckOut>,
    /// Recorded allergies; an empty list means none has been recorded, not that there are none.
    pub allergies: Vec<AllergyOut>,
}

/// A recorded allergy.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
pub struct AllergyOut {
    /// The substance.
    pub substance: String,
    /// The reaction.
    pub reaction: String,
    /// mild, moderate, severe or unknown.
    pub severity: String,
    /// Whether it is an allergy to ketamine (an absolute contraindication).
    pub ketamine: bool,
    /// The day recorded, YYYY-MM-DD.
    pub recorded_on: String,
}

/// A dated value.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
pub struct DatedOut {
    /// The value (kg for weights, cm for heights).
    pub value: f64,
    /// Date measured, YYYY-MM-DD.
    pub on: String,
}

/// A current medication.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
pub struct MedicationOut {
    /// Name.
    pub name: String,
    /// Screening class code.
    pub class: String,
    /// Daily dose, mg.
    pub daily_dose_mg: Option<f64>,
}

/// A baseline blood pressure.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
pub struct BpOut {
    /// Systolic, mmHg.
    pub systolic_mmhg: f64,
    /// Diastolic, mmHg.
    pub diastolic_mmhg: f64,
    /// Date, YYYY-MM-DD.
    pub on: String,
}

/// A physician's acknowledgement of a relative contraindication.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
pub struct AckOut {
    /// Finding code.
    pub code: String,
    /// Physician's user id.
    pub physician: String,
    /// The physician's name as it was when they acknowledged ("Display Name (username)"); absent in
    /// records written before names were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physician_name: Option<String>,
    /// Reason.
    pub reason: String,
}

/// An indication with its evidence.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
pub struct IndicationOut {
    /// Code.
    pub code: String,
    /// Evidence grade.
    pub evidence_grade: String,
    /// Its source.
    pub evidence_source: String,
}

impl From<&RecordedIndication> for IndicationOut {
    fn from(i: &RecordedIndication) -> IndicationOut {
        IndicationOut {
            code: i.code.code().into(),
            evidence_grade: i.evidence_grade.clone(),
            evidence_source: i.evidence_source.clone(),
        }
    }
}

fn dated<T: Copy + Into<f64>>(list: &[Measurement<T>]) -> Vec<DatedOut> {
    list.iter()
        .map(|m| DatedOut {
            value: m.value.into(),
            on: m.on.to_string(),
        })
        .collect()
}

impl PatientOut {
    /// The wire form of a stored patient.
    pub fn new(id: Uuid, version: i64, doc: &PatientDoc) -> PatientOut {
        PatientOut {
            id,
            version,
            display_name: doc.display_name.clone(),
            mrn: doc.mrn.clone(),
            date_of_birth: doc.date_of_birth.to_string(),
            sex: doc.sex.code().into(),
            heights: dated(&doc.heights),
            weights: dated(&doc.weights),
            indications: doc.indications.iter().map(IndicationOut::from).collect(),
            medications: doc
                .medications
                .iter()
                .map(|m| MedicationOut {
                    name: m.name.clone(),
                    class: m.class.code().into(),
                    daily_dose_mg: m.daily_dose_mg.map(f64::from),
                })
                .collect(),
            conditions: doc.conditions.iter().map(|c| c.code().to_string()).collect(),
            baseline_bp: doc.baseline_bp.as_ref().map(|b| BpOut {
                systolic_mmhg: b.systolic_mmhg,
                diastolic_mmhg: b.diastolic_mmhg,
                on: b.on.to_string(),
            }),
            allergies: doc
                .allergies
                .iter()
                .map(|a| AllergyOut {
                    substance: a.substance.clone(),
                    reaction: a.reaction.clone(),
                    severity: a.severity.code().into(),
                    ketamine: ketaflow_clinic::patient::Allergy {
                        substance: a.substance.clone(),
                        reaction: String::new(),
                        severity: a.severity,
                    }
                    .is_to_ketamine(),
                    recorded_on: a.recorded_on.to_string(),
                })
                .collect(),
            acknowledgements: doc
                .acknowledgements
                .iter()
                .map(|a| AckOut {
                    code: a.code.clone(),
                    physician: a.physician.clone(),
                    physician_name: a.physician_name.clone(),
                    reason: a.reason.clone(),
                })
                .collect(),
        }
    }
}

/// A stored patient as shown; data that cannot be read names the record.
pub fn patient_out(record: Record) -> Result<PatientOut, AppError> {
    let doc: PatientDoc = crate::records::parse(PATIENT, &record)?;
    Ok(PatientOut::new(record.id, record.version, &doc))
}

/// A new patient.
#[derive(Debug, Deserialize, ToSchema, Clone)]
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

/// A dated measurement.
#[derive(Debug, Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct WeightIn {
    /// Weight, kg (2–350).
    pub weight_kg: f64,
    /// Date measured, YYYY-MM-DD, not in the future.
    pub on: String,
}

/// A dated height.
#[derive(Debug, Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct HeightIn {
    /// Height, cm (40–250).
    pub height_cm: f64,
    /// Date measured, YYYY-MM-DD.
    pub on: String,
}

/// A code to add.
#[derive(Debug, Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct CodeIn {
    /// The code.
    pub code: String,
}

/// A current medication.
#[derive(Debug, Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct MedicationIn {
    /// Drug name, 1–80 characters.
    pub name: String,
    /// Screening class code.
    pub class: String,
    /// Daily dose, mg (0–100000).
    pub daily_dose_mg: Option<f64>,
}

/// An allergy to record.
#[derive(Debug, Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct AllergyIn {
    /// The substance, 1–80 characters (`penicillin`, `ketamine`).
    pub substance: String,
    /// The reaction, 1–200 characters (`hives`, `anaphylaxis`).
    pub reaction: String,
    /// mild, moderate, severe or unknown.
    pub severity: String,
}

/// A baseline blood pressure.
#[derive(Debug, Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct BpIn {
    /// Systolic, mmHg (50–300).
    pub systolic_mmhg: f64,
    /// Diastolic, mmHg (20–200), below systolic.
    pub diastolic_mmhg: f64,
    /// YYYY-MM-DD.
    pub on: String,
}

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

/// An acknowledgement of a relative contraindication.
#[derive(Debug, Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgeIn {
    /// The finding's code, e.g. `condition.pregnancy`.
    pub code: String,
    /// Why treatment goes ahead (at least 10 characters).
    pub reason: String,
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
        indications: doc.indications.iter().map(IndicationOut::from).collect(),
    }
}

fn check_range(field: &str, value: f64, min: f64, max: f64) -> Result<f64, AppError> {
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(AppError::field(field, value, format!("{min}–{max}")))
    }
}

fn label(doc: &PatientDoc) -> String {
    format!("{} {}", doc.display_name, doc.mrn.clone().unwrap_or_default())
}

/// Which list of a patient's dated measurements an entry goes to, with its field name, the
/// clinic's plausibility range and the audit action.
struct MeasurementKind {
    field: &'static str,
    min: f64,
    max: f64,
    action: &'static str,
    list: fn(&mut PatientDoc, f64, Date) -> Result<(), AppError>,
}

// 2–350 kg: a clinic plausibility range (the unit type allows 0.3–500 kg for any use).
const WEIGHT: MeasurementKind = MeasurementKind {
    field: "weight_kg",
    min: 2.0,
    max: 350.0,
    action: "patient.weight.add",
    list: |doc, value, on| {
        let value = Kilograms::new(value).map_err(|e| AppError::field("weight_kg", value, e.to_string()))?;
        doc.weights.push(Measurement { value, on });
        Ok(())
    },
};

const HEIGHT: MeasurementKind = MeasurementKind {
    field: "height_cm",
    min: 40.0,
    max: 250.0,
    action: "patient.height.add",
    list: |doc, value, on| {
        let value =
            Centimetres::new(value).map_err(|e| AppError::field("height_cm", value, e.to_string()))?;
        doc.heights.push(Measurement { value, on });
        Ok(())
    },
};

impl App {
    fn not_in_future(&self, field: &str, date: Date) -> Result<Date, AppError> {
        if date > self.today() {
            return Err(AppError::field(
                field,
                date.to_string(),
                "a date not in the future",
            ));
        }
        Ok(date)
    }

    /// Applies `edit` to the patient's document and stores it, audited as `action`. Nothing is
    /// saved when `edit` refuses.
    async fn change_patient(
        &self,
        caller: &Caller,
        id: Uuid,
        action: &str,
        edit: impl FnOnce(&mut PatientDoc) -> Result<(), AppError>,
    ) -> Result<PatientOut, AppError> {
        let changed = self.change_patient_doc(caller, id, action, edit).await?;
        Ok(PatientOut::new(id, changed.record.version, &changed.doc))
    }

    /// The same, giving back the stored record and its document.
    async fn change_patient_doc(
        &self,
        caller: &Caller,
        id: Uuid,
        action: &str,
        edit: impl FnOnce(&mut PatientDoc) -> Result<(), AppError>,
    ) -> Result<Loaded<PatientDoc>, AppError> {
        let loaded = self.load::<PatientDoc>(PATIENT, id).await?;
        let mut doc = loaded.doc;
        edit(&mut doc)?;
        let data = serde_json::to_value(&doc)?;
        let change = RecordChange {
            kind: PATIENT,
            id,
            expected_version: loaded.record.version,
            label: &label(&doc),
            data: &data,
            lock: false,
        };
        let updated = self
            .store
            .update_record_audited(&caller.actor(), action, &change, self.now())
            .await?;
        Ok(Loaded { record: updated, doc })
    }

    /// Registers a patient.
    pub async fn create_patient(&self, caller: &Caller, body: PatientIn) -> Result<PatientOut, AppError> {
        caller.require(Action::WriteIntake)?;
        let name = body.display_name.trim();
        if name.is_empty() || name.chars().count() > 120 {
            return Err(AppError::field(
                "display_name",
                body.display_name.clone(),
                "1–120 characters",
            ));
        }
        if let Some(mrn) = &body.mrn
            && (mrn.trim().is_empty() || mrn.chars().count() > 40)
        {
            return Err(AppError::field("mrn", mrn.clone(), "1–40 characters"));
        }
        let dob = self.not_in_future("date_of_birth", parse_date("date_of_birth", &body.date_of_birth)?)?;
        if dob.year() < 1900 {
            return Err(AppError::field(
                "date_of_birth",
                body.date_of_birth.clone(),
                "a date from 1900-01-01 to today",
            ));
        }
        let sex = body
            .sex
            .parse::<Sex>()
            .map_err(|_| AppError::field("sex", body.sex.clone(), "male, female"))?;
        let doc = PatientDoc {
            display_name: name.to_string(),
            mrn: body.mrn.map(|m| m.trim().to_string()),
            date_of_birth: dob,
            sex,
            heights: vec![],
            weights: vec![],
            indications: vec![],
            medications: vec![],
            conditions: vec![],
            baseline_bp: None,
            acknowledgements: vec![],
            allergies: vec![],
        };
        let data = serde_json::to_value(&doc)?;
        let new = NewRecord {
            kind: PATIENT,
            parent_id: None,
            label: &label(&doc),
            data: &data,
        };
        let record = self
            .store
            .insert_record_audited(&caller.actor(), "patient.create", &new, self.now())
            .await?;
        patient_out(record)
    }

    /// Patients whose name or record number contains `search` (all when `None`), at most `limit`
    /// (1–500).
    pub async fn patients(
        &self,
        caller: &Caller,
        search: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PatientOut>, AppError> {
        caller.require(Action::ReadClinical)?;
        if !(1..=500).contains(&limit) {
            return Err(AppError::field("limit", limit, "1–500"));
        }
        let search = search.filter(|s| !s.is_empty());
        // SQLite's LIKE stops reading a pattern at a NUL, so such a search matched everyone.
        if let Some(text) = search.filter(|s| s.contains('\0')) {
            return Err(AppError::field(
                "search",
                text.replace('\0', "␀"),
                "text without NUL (U+0000) characters",
            ));
        }
        let records = self.store.list_records(PATIENT, None, search, limit).await?;
        records.into_iter().map(patient_out).collect()
    }

    /// One patient.
    pub async fn patient(&self, caller: &Caller, id: Uuid) -> Result<PatientOut, AppError> {
        caller.require(Action::ReadClinical)?;
        patient_out(self.record(PATIENT, id).await?)
    }

    async fn add_measurement(
        &self,
        caller: &Caller,
        id: Uuid,
        kind: &MeasurementKind,
        value: f64,
        on: &str,
    ) -> Result<PatientOut, AppError> {
        caller.require(Action::WriteIntake)?;
        let value = check_range(kind.field, value, kind.min, kind.max)?;
        let on = self.not_in_future("on", parse_date("on", on)?)?;
        self.change_patient(caller, id, kind.action, |doc| (kind.list)(doc, value, on))
            .await
    }

    /// Records a weight.
    pub async fn add_weight(
        &self,
        caller: &Caller,
        id: Uuid,
        body: WeightIn,
    ) -> Result<PatientOut, AppError> {
        self.add_measurement(caller, id, &WEIGHT, body.weight_kg, &body.on)
            .await
    }

    /// Records a height.
    pub async fn add_height(
        &self,
        caller: &Caller,
        id: Uuid,
        body: HeightIn,
    ) -> Result<PatientOut, AppError> {
        self.add_measurement(caller, id, &HEIGHT, body.height_cm, &body.on)
            .await
    }

    /// Adds an indication (kept once, with the evidence grade in force now).
    pub async fn add_indication(
        &self,
        caller: &Caller,
        id: Uuid,
        body: CodeIn,
    ) -> Result<PatientOut, AppError> {
        caller.require(Action::WriteIntake)?;
        let indication = body
            .code
            .parse::<Indication>()
            .map_err(|e| AppError::field("code", body.code.clone(), e.allowed))?;
        self.change_patient(caller, id, "patient.indication.add", |doc| {
            if !doc.indications.iter().any(|i| i.code == indication) {
                doc.indications.push(RecordedIndication::now(indication));
            }
            Ok(())
        })
        .await
    }

    /// Adds a current medication.
    pub async fn add_medication(
        &self,
        caller: &Caller,
        id: Uuid,
        body: MedicationIn,
    ) -> Result<PatientOut, AppError> {
        caller.require(Action::WriteIntake)?;
        let name = body.name.trim().to_string();
        if name.is_empty() || name.chars().count() > 80 {
            return Err(AppError::field("name", body.name.clone(), "1–80 characters"));
        }
        let class = body
            .class
            .parse::<MedicationClass>()
            .map_err(|e| AppError::field("class", body.class.clone(), e.allowed))?;
        let daily_dose_mg = body
            .daily_dose_mg
            .map(|dose| {
                check_range("daily_dose_mg", dose, 0.0, 100_000.0)?;
                Milligrams::new(dose).map_err(|e| AppError::field("daily_dose_mg", dose, e.to_string()))
            })
            .transpose()?;
        self.change_patient(caller, id, "patient.medication.add", |doc| {
            doc.medications.push(MedicationDoc {
                name,
                class,
                daily_dose_mg,
            });
            Ok(())
        })
        .await
    }

    /// Records an allergy. One to ketamine under any of its names makes the patient ineligible
    /// (an absolute contraindication; see `clinic::eligibility`).
    pub async fn add_allergy(
        &self,
        caller: &Caller,
        id: Uuid,
        body: AllergyIn,
    ) -> Result<PatientOut, AppError> {
        caller.require(Action::WriteIntake)?;
        let substance = body.substance.trim().to_string();
        if substance.is_empty() || substance.chars().count() > 80 {
            return Err(AppError::field(
                "substance",
                body.substance.clone(),
                "1–80 characters",
            ));
        }
        let reaction = body.reaction.trim().to_string();
        if reaction.is_empty() || reaction.chars().count() > 200 {
            return Err(AppError::field(
                "reaction",
                body.reaction.clone(),
                "1–200 characters",
            ));
        }
        let severity = body
            .severity
            .parse::<ketaflow_clinic::patient::AllergySeverity>()
            .map_err(|e| AppError::field("severity", body.severity.clone(), e.allowed))?;
        let recorded_on = self.today();
        self.change_patient(caller, id, "patient.allergy.add", |doc| {
            doc.allergies.push(crate::records::AllergyDoc {
                substance,
                reaction,
                severity,
                recorded_on,
            });
            Ok(())
        })
        .await
    }

    /// Adds a history condition (kept once).
    pub async fn add_condition(
        &self,
        caller: &Caller,
        id: Uuid,
        body: CodeIn,
    ) -> Result<PatientOut, AppError> {
        caller.require(Action::WriteIntake)?;
        let condition = body
            .code
            .parse::<Condition>()
            .map_err(|e| AppError::field("code", body.code.clone(), e.allowed))?;
        self.change_patient(caller, id, "patient.condition.add", |doc| {
            if !doc.conditions.contains(&condition) {
                doc.conditions.push(condition);
            }
            Ok(())
        })
        .await
    }

    /// Sets the baseline blood pressure.
    pub async fn set_baseline_bp(
        &self,
        caller: &Caller,
        id: Uuid,
        body: BpIn,
    ) -> Result<PatientOut, AppError> {
        caller.require(Action::WriteIntake)?;
        let systolic = check_range("systolic_mmhg", body.systolic_mmhg, 50.0, 300.0)?;
        let diastolic = check_range("diastolic_mmhg", body.diastolic_mmhg, 20.0, 200.0)?;
        if diastolic >= systolic {
            return Err(AppError::field(
                "diastolic_mmhg",
                diastolic,
                format!("below the systolic {systolic}"),
            ));
        }
        let on = self.not_in_future("on", parse_date("on", &body.on)?)?;
        self.change_patient(caller, id, "patient.baseline_bp.set", |doc| {
            doc.baseline_bp = Some(BpDoc {
                systolic_mmhg: systolic,
                diastolic_mmhg: diastolic,
                on,
            });
            Ok(())
        })
        .await
    }

    /// The patient's eligibility screen.
    pub async fn eligibility(&self, caller: &Caller, id: Uuid) -> Result<EligibilityOut, AppError> {
        caller.require(Action::ReadClinical)?;
        let doc = self.load::<PatientDoc>(PATIENT, id).await?.doc;
        let report = self.screen(id, &doc)?;
        Ok(eligibility_out(&report, &doc))
    }

    /// A physician acknowledges a relative contraindication with a reason; the screen checks it
    /// before anything is stored (an absolute contraindication is never acknowledged).
    pub async fn acknowledge(
        &self,
        caller: &Caller,
        id: Uuid,
        body: AcknowledgeIn,
    ) -> Result<EligibilityOut, AppError> {
        caller.require(Action::AcknowledgeContraindication)?;
        let physician = caller.user.id.to_string();
        let physician_name = caller.signature();
        let bp_threshold = self.settings.bp_threshold;
        let out = self
            .change_patient_doc(caller, id, "patient.contraindication.acknowledge", |doc| {
                doc.acknowledgements.retain(|a| a.code != body.code);
                doc.acknowledgements.push(AckDoc {
                    code: body.code.clone(),
                    physician,
                    physician_name: Some(physician_name),
                    reason: body.reason.trim().to_string(),
                });
                eligibility::screen(&doc.facts(), bp_threshold, &doc.acknowledgements()).map_err(
                    |e| match e {
                        AcknowledgementError::ReasonTooShort { .. } => {
                            AppError::field("reason", body.reason.clone(), "at least 10 characters")
                        }
                        AcknowledgementError::NotRelative { .. } => AppError::Refused {
                            code: "not_relative",
                            message: e.to_string(),
                        },
                    },
                )?;
                Ok(())
            })
            .await?;
        let report = self.screen(id, &out.doc)?;
        Ok(eligibility_out(&report, &out.doc))
    }
}
