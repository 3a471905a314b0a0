//! The clinic's records as they are stored: versioned JSON documents (see `ketaflow_store::records`)
//! read into these types, and the loaders that name a record whose stored data cannot be read.
//!
//! The three records (patient, plan, session) are read once into domain types (dates, codes as
//! enums, quantities in their unit types), so stored data that does not parse is an error naming
//! the record, never a string re-parsed by each reader. They are not the API's schema: the wire
//! types (`intake::PatientOut`, `plans::PlanOut`, `sessions::SessionOut`) are built from them.
//! The entries inside a record that are immutable once written (a plan's checks and prediction as
//! the physician approved them, a session's transitions, rates, side effects and assessments as
//! recorded) are values whose stored form is the form the API shows, and derive `ToSchema`.

use ketaflow_clinic::news2::Consciousness;
use ketaflow_clinic::patient::{
    BloodPressure, Condition, Indication, Measurement, Medication, MedicationClass, PatientFacts, Sex, ymd,
};
use ketaflow_clinic::plan::LimitStatus;
use ketaflow_clinic::session::{PlanStatus, PreChecks, Questionnaire, Session, SessionEvent, StopKind};
use ketaflow_clinic::side_effects::{ActionTaken, Severity, SideEffectKind};
use ketaflow_clinic::vitals::VitalSigns;
use ketaflow_clinic::weight::WeightBasis;
use ketaflow_store::Record;
use ketaflow_units::{
    Centimetres, Kilograms, MgPerHour, MgPerKgPerHour, MgPerMl, Milligrams, Millilitres, Minutes, MlPerHour,
};
use serde::{Deserialize, Serialize};
use time::Date;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{App, AppError};

/// The record kind of a patient.
pub const PATIENT: &str = "patient";
/// The record kind of a dose plan.
pub const PLAN: &str = "plan";
/// The record kind of an infusion session.
pub const SESSION: &str = "session";

// ---- Patients ------------------------------------------------------------------------------------

/// A medication as stored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct MedicationDoc {
    /// Name as entered.
    pub name: String,
    /// Screening class.
    pub class: MedicationClass,
    /// Daily dose, when entered.
    pub daily_dose_mg: Option<Milligrams>,
}

/// A baseline blood pressure as stored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct BpDoc {
    /// Systolic, mmHg.
    pub systolic_mmhg: f64,
    /// Diastolic, mmHg.
    pub diastolic_mmhg: f64,
    /// The day measured.
    #[serde(with = "ymd")]
    pub on: Date,
}

/// A physician's acknowledgement as stored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AckDoc {
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

/// An indication with the evidence grade in force when it was recorded.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RecordedIndication {
    /// The indication.
    pub code: Indication,
    /// Its evidence grade then.
    pub evidence_grade: String,
    /// The grade's source.
    pub evidence_source: String,
}

impl RecordedIndication {
    /// An indication recorded now, with the grade in force now.
    pub fn now(indication: Indication) -> RecordedIndication {
        RecordedIndication {
            code: indication,
            evidence_grade: indication.evidence().grade.into(),
            evidence_source: indication.evidence().source.into(),
        }
    }
}

/// A patient record as stored, read once into domain types: a date, sex, condition or unit that
/// does not parse makes the record unreadable, named, rather than a string parsed on every use.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PatientDoc {
    /// Name as the clinic shows it.
    pub display_name: String,
    /// Medical record number, if the clinic uses one.
    pub mrn: Option<String>,
    /// Date of birth.
    #[serde(with = "ymd")]
    pub date_of_birth: Date,
    /// Sex for the dosing formulas.
    pub sex: Sex,
    /// Dated heights.
    pub heights: Vec<Measurement<Centimetres>>,
    /// Dated weights.
    pub weights: Vec<Measurement<Kilograms>>,
    /// Indications.
    pub indications: Vec<RecordedIndication>,
    /// Current medications.
    pub medications: Vec<MedicationDoc>,
    /// Screened history conditions.
    pub conditions: Vec<Condition>,
    /// Baseline blood pressure.
    pub baseline_bp: Option<BpDoc>,
    /// Acknowledged relative contraindications.
    pub acknowledgements: Vec<AckDoc>,
    /// Recorded allergies (absent in records written before allergies were recorded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allergies: Vec<AllergyDoc>,
}

/// An allergy as stored: substance, reaction, severity, and the day it was recorded.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AllergyDoc {
    /// The substance.
    pub substance: String,
    /// The reaction.
    pub reaction: String,
    /// How severe.
    pub severity: ketaflow_clinic::patient::AllergySeverity,
    /// The day recorded.
    #[serde(with = "ymd")]
    pub recorded_on: Date,
}

// ---- Dose plans ----------------------------------------------------------------------------------

/// One limit evaluated.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
pub struct CheckOut {
    /// Limit code.
    pub limit: String,
    /// The plan's value.
    pub value: f64,
    /// Unit.
    pub unit: String,
    /// Soft limit.
    pub soft: f64,
    /// Hard limit.
    pub hard: f64,
    /// True when the limit is a minimum.
    pub is_minimum: bool,
    /// within, soft_breach or hard_breach.
    #[schema(value_type = String, example = "soft_breach")]
    pub status: LimitStatus,
    /// Source.
    pub source: String,
    /// Whether the limit is a clinic setting.
    pub clinic_setting: bool,
}

/// The predicted concentrations.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
pub struct PredictionOut {
    /// PK model id.
    pub model: String,
    /// Minutes from the start, one per minute.
    pub time_min: Vec<f64>,
    /// Plasma concentration, µg/mL.
    pub cp_ug_per_ml: Vec<f64>,
    /// Effect-site concentration, µg/mL.
    pub ce_ug_per_ml: Vec<f64>,
    /// Peak Cp, µg/mL.
    pub peak_cp_ug_per_ml: f64,
    /// When, minutes.
    pub peak_cp_at_min: f64,
    /// Peak Ce, µg/mL.
    pub peak_ce_ug_per_ml: f64,
    /// When, minutes.
    pub peak_ce_at_min: f64,
    /// The protocol's recovery threshold, µg/mL.
    pub recovery_threshold_ug_per_ml: f64,
    /// Minutes from the start after which Ce stays below it (null: never above).
    pub ce_below_threshold_from_min: Option<f64>,
    /// Model warnings.
    pub warnings: Vec<String>,
}

/// A soft-limit override.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
pub struct OverrideDoc {
    /// Limit code.
    pub limit: String,
    /// Reason.
    pub reason: String,
}

/// A dose plan record as stored, its quantities in their units and its dates as dates. The checks
/// and the prediction are kept exactly as the physician saw them when approving (the same types
/// the API shows), so the approved record is what was approved.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PlanDoc {
    /// Draft or approved.
    pub status: PlanStatus,
    /// The patient.
    pub patient_id: Uuid,
    /// The protocol.
    pub protocol_id: String,
    /// Protocol version.
    pub protocol_version: u32,
    /// Library version.
    pub library_version: String,
    /// The day of the session it is for.
    #[serde(with = "ymd")]
    pub planned_on: Date,
    /// The previous session's day.
    #[serde(with = "ymd::option")]
    pub last_session_on: Option<Date>,
    /// An adjusted dose per kg (mg/kg, or mg/kg/h for rate protocols), if any.
    pub adjusted_dose_per_kg: Option<f64>,
    /// Who computed it (user id).
    pub created_by: String,
    /// Total body weight.
    pub total_weight_kg: Kilograms,
    /// Dosing weight.
    pub dosing_weight_kg: Kilograms,
    /// Basis used (actual, ideal, adjusted).
    pub weight_basis: WeightBasis,
    /// Dose.
    pub dose_mg: Milligrams,
    /// Dose per kg (or mg/kg/h for rate protocols) used.
    pub dose_per_kg: f64,
    /// Rate.
    pub rate_mg_per_h: MgPerHour,
    /// Rate per kg of dosing weight.
    pub rate_mg_per_kg_per_h: MgPerKgPerHour,
    /// Syringe or bag concentration.
    pub concentration_mg_per_ml: MgPerMl,
    /// Pump rate.
    pub pump_ml_per_h: MlPerHour,
    /// Volume.
    pub volume_ml: Millilitres,
    /// Duration.
    pub duration_min: Minutes,
    /// Limits evaluated, as shown.
    pub checks: Vec<CheckOut>,
    /// The prediction, as shown.
    pub prediction: PredictionOut,
    /// Warnings.
    pub warnings: Vec<String>,
    /// Who approved it (user id).
    pub approved_by: Option<String>,
    /// The approving physician's name then; absent in plans approved before names were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by_name: Option<String>,
    /// When it was approved.
    #[serde(with = "time::serde::rfc3339::option")]
    pub approved_at: Option<OffsetDateTime>,
    /// Soft-limit overrides with reasons.
    pub overrides: Vec<OverrideDoc>,
    /// The protocol's indications against the patient's; absent in plans made before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indication: Option<IndicationDoc>,
    /// Why a physician approved a protocol for none of the patient's indications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indication_override: Option<String>,
}

/// The protocol's indications against the patient's recorded ones, as checked for the plan.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
pub struct IndicationDoc {
    /// The protocol's indications (codes).
    pub protocol_for: Vec<String>,
    /// The patient's recorded indications (codes) when the plan was computed.
    pub patient: Vec<String>,
    /// Whether the protocol is for one of them; false needs a physician's reasoned override.
    pub matches: bool,
}

// ---- Sessions ------------------------------------------------------------------------------------

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

/// Declares a stored code list: an enum written as its snake_case code, with `ALL`, `code()` and
/// a `FromStr` whose error lists the allowed codes.
macro_rules! stored_codes {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $code:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Serialize, Deserialize, ToSchema, Clone, Copy, Debug, PartialEq, Eq)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every code, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable code, as stored and sent.
            pub fn code(self) -> &'static str {
                match self {
                    $($name::$variant => $code),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.code())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(text: &str) -> Result<$name, String> {
                $name::ALL.iter().copied().find(|k| k.code() == text).ok_or_else(|| {
                    $name::ALL.iter().map(|k| k.code()).collect::<Vec<_>>().join(", ")
                })
            }
        }
    };
}

stored_codes!(
    /// What an applied transition was: the event's name.
    TransitionKind {
        /// Checked in with the pre-infusion checks.
        CheckIn = "check_in",
        /// The infusion started.
        Start = "start",
        /// Paused.
        Pause = "pause",
        /// Resumed.
        Resume = "resume",
        /// Stopped, as planned or early.
        Stop = "stop",
        /// Recovery began.
        BeginRecovery = "begin_recovery",
        /// Discharged.
        Discharge = "discharge",
        /// Abandoned.
        Abort = "abort",
    }
);

stored_codes!(
    /// How an infusion was stopped.
    StopCode {
        /// The planned dose was given.
        Completed = "completed",
        /// Stopped before the plan, with a reason.
        Early = "early",
    }
);

stored_codes!(
    /// What changed the pump's rate.
    RateChangeKind {
        /// The infusion started at the plan's rate.
        Start = "start",
        /// Paused (0).
        Pause = "pause",
        /// Resumed.
        Resume = "resume",
        /// A clinician changed the rate.
        Change = "change",
        /// Stopped (0).
        Stop = "stop",
        /// Abandoned (0).
        Abort = "abort",
    }
);

stored_codes!(
    /// Where a session's baseline came from.
    BaselineOrigin {
        /// The pre-infusion reading at check-in.
        Session = "session",
        /// The patient's intake record.
        Intake = "intake",
    }
);

/// One applied transition. Replaying these through the state machine gives the session's state.
/// An entry of the session's log: its stored form is the form the API shows.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
pub struct TransitionDoc {
    /// check_in, start, pause, resume, stop, begin_recovery, discharge, abort.
    pub event: TransitionKind,
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
    pub stop: Option<StopCode>,
}

/// A change of what the pump delivers: start, pause (0), resume, a rate change, stop (0).
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
pub struct RateDoc {
    /// start, pause, resume, change, stop, abort.
    pub kind: RateChangeKind,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// Ketamine delivered from now on, mg/h (0 when paused or stopped).
    #[schema(value_type = f64)]
    pub rate_mg_per_h: MgPerHour,
    /// The same as a pump rate, mL/h.
    #[schema(value_type = f64)]
    pub pump_ml_per_h: MlPerHour,
    /// Per kg of dosing weight, mg/kg/h.
    #[schema(value_type = f64)]
    pub rate_mg_per_kg_per_h: MgPerKgPerHour,
    /// Who.
    pub by: String,
    /// Why (rate changes).
    pub reason: Option<String>,
    /// Soft-limit overrides with reasons (physician rate changes above a soft limit).
    #[serde(default)]
    pub overrides: Vec<OverrideDoc>,
}

impl RateDoc {
    /// The pump set to `rate` by `by` at `at`, in each unit the clinic reads it in: mg/h, the pump's
    /// mL/h for the plan's concentration, and mg/kg/h of the plan's dosing weight.
    pub fn delivering(
        kind: RateChangeKind,
        at: OffsetDateTime,
        rate: MgPerHour,
        concentration: MgPerMl,
        dosing_weight: Kilograms,
        by: String,
    ) -> RateDoc {
        RateDoc {
            kind,
            at,
            rate_mg_per_h: rate,
            pump_ml_per_h: rate / concentration,
            rate_mg_per_kg_per_h: rate / dosing_weight,
            by,
            reason: None,
            overrides: vec![],
        }
    }

    /// Whether the pump is delivering drug.
    pub fn is_delivering(&self) -> bool {
        self.rate_mg_per_h.get() > 0.0
    }
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
    pub origin: BaselineOrigin,
}

/// A session record as stored (the API's form is `sessions::SessionOut`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
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
    pub side_effects: Vec<SideEffectDoc>,
    /// Bedside assessments (Aldrete, MOAA/S, escort), in order.
    #[serde(default)]
    pub assessments: Vec<AssessmentDoc>,
    /// Readings a nurse marked as artefacts (kept, shown as such, left out of alarms, NEWS2 and
    /// the discharge criteria).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artefacts: Vec<ArtefactDoc>,
}

/// A reading marked as an artefact (a moved cuff, a probe off the finger).
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ArtefactDoc {
    /// The reading's id.
    pub vital_id: i64,
    /// Why it is not the patient's (3–500 characters).
    pub reason: String,
    /// Who marked it (user id).
    pub by: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
}

impl SessionDoc {
    /// The state machine, replayed from the recorded transitions.
    pub fn replay(&self) -> Result<Session, AppError> {
        let mut session = Session::new();
        for t in &self.transitions {
            session
                .apply(to_event(t, self.plan_id)?, t.at)
                .map_err(|e| AppError::Internal(format!("stored session does not replay: {e}")))?;
        }
        Ok(session)
    }

    /// The rate in force now (zero before the start).
    pub fn current_rate(&self) -> MgPerHour {
        self.rates.last().map_or(MgPerHour::ZERO, |r| r.rate_mg_per_h)
    }
}

fn to_event(t: &TransitionDoc, plan_id: Uuid) -> Result<SessionEvent, AppError> {
    let reason = || t.reason.clone().unwrap_or_default();
    Ok(match t.event {
        TransitionKind::CheckIn => {
            let c = t
                .checks
                .as_ref()
                .ok_or_else(|| AppError::Internal("check_in without checks".into()))?;
            SessionEvent::CheckIn(pre_checks(c, true))
        }
        TransitionKind::Start => SessionEvent::Start {
            plan_id: plan_id.to_string(),
        },
        TransitionKind::Pause => SessionEvent::Pause { reason: reason() },
        TransitionKind::Resume => SessionEvent::Resume,
        TransitionKind::Stop => SessionEvent::Stop(if t.stop == Some(StopCode::Early) {
            StopKind::Early(reason())
        } else {
            StopKind::Completed
        }),
        TransitionKind::BeginRecovery => SessionEvent::BeginRecovery,
        TransitionKind::Discharge => SessionEvent::Discharge,
        TransitionKind::Abort => SessionEvent::Abort { reason: reason() },
    })
}

/// The recorded pre-checks as the state machine takes them.
pub fn pre_checks(c: &PreChecksDoc, baseline_vitals_taken: bool) -> PreChecks {
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

/// A side effect as recorded.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
pub struct SideEffectDoc {
    /// dissociation, sedation, nausea, vomiting, dizziness, blurred_vision, dream_like_or_emergence,
    /// blood_pressure_rise, heart_rate_rise, headache, anxiety, other:<description>.
    #[schema(value_type = String)]
    pub kind: SideEffectKind,
    /// mild, moderate, severe.
    #[schema(value_type = String)]
    pub severity: Severity,
    /// When it began.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub onset: OffsetDateTime,
    /// CADSS-6 items (1, 2, 6, 7, 15, 22 of the 23-item CADSS; 0–4 each), dissociation only.
    pub cadss6: Option<[u8; 6]>,
    /// CADSS-6 total 0–24.
    pub cadss6_total: Option<u8>,
    /// MOAA/S 0–5, sedation only.
    pub moaas: Option<u8>,
    /// What was done: none, observation, reassurance, pause, rate_reduction,
    /// medication_given:<name>:<dose>, physician_called, infusion_stopped.
    #[schema(value_type = String)]
    pub action: ActionTaken,
    /// Note.
    pub note: String,
    /// Who recorded it.
    pub recorded_by: String,
    /// When recorded.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: OffsetDateTime,
}

/// A modified Aldrete score as recorded (Aldrete 1995; items 0–2).
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
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
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
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

impl ReadingDoc {
    /// Whether `stored` (the reading kept under this reading's key) is this reading: the same
    /// measurements, and the same time if this one names its time (a retry without a time would
    /// otherwise differ only by when it arrived). A key sent again with other values is refused
    /// rather than silently acknowledged as the first reading.
    pub fn is_same_reading(&self, stored: &ReadingDoc, stored_taken_at: OffsetDateTime) -> bool {
        let measured = |r: &ReadingDoc| {
            (
                r.systolic_mmhg,
                r.diastolic_mmhg,
                r.heart_rate_per_min,
                r.spo2_percent,
                r.respiratory_rate_per_min,
                r.temperature_c,
                r.consciousness.clone(),
                r.moaas,
                r.on_oxygen,
            )
        };
        let same_time = match self.taken_at.as_deref() {
            None => true,
            Some(text) => OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .is_ok_and(|t| (t - stored_taken_at).abs() < time::Duration::milliseconds(1)),
        };
        same_time && measured(self) == measured(stored)
    }
}

/// A stored reading back as the reading it was (the store adds its NEWS2 total).
pub fn stored_reading(data: &serde_json::Value) -> Result<ReadingDoc, AppError> {
    let mut data = data.clone();
    if let Some(map) = data.as_object_mut() {
        map.remove("news2");
    }
    serde_json::from_value(data).map_err(|e| AppError::Internal(format!("stored reading: {e}")))
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

impl SessionDoc {
    /// The artefact mark of a reading, if it has one.
    pub fn artefact(&self, vital_id: i64) -> Option<&ArtefactDoc> {
        self.artefacts.iter().find(|a| a.vital_id == vital_id)
    }

    /// The baseline blood pressure the rise-from-baseline alarm compares with.
    pub fn baseline_pressure(&self) -> Option<ketaflow_clinic::patient::BloodPressure> {
        self.baseline
            .as_ref()
            .map(|b| ketaflow_clinic::patient::BloodPressure {
                systolic_mmhg: b.systolic_mmhg,
                diastolic_mmhg: b.diastolic_mmhg,
            })
    }
}

impl ReadingDoc {
    /// The reading as checked vital signs; an impossible value is an error naming the field of
    /// reading `index` in its batch.
    pub fn vital_signs(&self, index: usize) -> Result<VitalSigns, AppError> {
        let c = self
            .consciousness
            .as_deref()
            .map(|c| {
                consciousness(c).ok_or_else(|| {
                    AppError::field(
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
            .map_err(|e| AppError::field(&format!("readings[{index}].{}", e.field), e.value, e.allowed))?;
        if !v.has_measurement() {
            return Err(AppError::field(
                &format!("readings[{index}]"),
                "a reading with no measurement",
                "at least one of systolic_mmhg, diastolic_mmhg, heart_rate_per_min, spo2_percent, \
                 respiratory_rate_per_min, temperature_c, consciousness, moaas",
            ));
        }
        Ok(v)
    }
}

impl PatientDoc {
    /// The physicians' acknowledgements of relative contraindications, as the screen takes them.
    pub fn acknowledgements(&self) -> Vec<ketaflow_clinic::eligibility::Acknowledgement> {
        self.acknowledgements
            .iter()
            .map(|a| ketaflow_clinic::eligibility::Acknowledgement {
                code: a.code.clone(),
                physician: a.physician.clone(),
                reason: a.reason.clone(),
            })
            .collect()
    }

    /// The clinic's facts about the patient, for eligibility, dosing and prediction.
    pub fn facts(&self) -> PatientFacts {
        PatientFacts {
            date_of_birth: self.date_of_birth,
            sex: self.sex,
            heights: self.heights.clone(),
            weights: self.weights.clone(),
            indications: self.indications.iter().map(|i| i.code).collect(),
            medications: self
                .medications
                .iter()
                .map(|m| Medication {
                    name: m.name.clone(),
                    class: m.class,
                    daily_dose_mg: m.daily_dose_mg.map(Milligrams::get),
                })
                .collect(),
            conditions: self.conditions.clone(),
            baseline_bp: self.baseline_bp.as_ref().map(|b| BloodPressure {
                systolic_mmhg: b.systolic_mmhg,
                diastolic_mmhg: b.diastolic_mmhg,
            }),
            allergies: self
                .allergies
                .iter()
                .map(|a| ketaflow_clinic::patient::Allergy {
                    substance: a.substance.clone(),
                    reaction: a.reaction.clone(),
                    severity: a.severity,
                })
                .collect(),
        }
    }
}

// ---- Loading ---------------------------------------------------------------------------------------

/// A stored record read into its document type, with the store's bookkeeping.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    /// The record as stored (its raw data is kept for audit entries' "before").
    pub record: Record,
    /// The document.
    pub doc: T,
}

/// Reads a stored record's data as `T`; data that does not fit is an error naming the record and
/// the field (`weights[0].value: weight 900 kg is outside 0.3–500 kg`).
pub fn parse<T: serde::de::DeserializeOwned>(kind: &'static str, record: &Record) -> Result<T, AppError> {
    serde_path_to_error::deserialize(&record.data).map_err(|e| AppError::CorruptRecord {
        kind,
        id: record.id.to_string(),
        reason: e.to_string(),
    })
}

impl App {
    /// A record of `kind` by id; a missing one is a not-found naming the kind (e.g. "session").
    pub async fn record(&self, kind: &'static str, id: Uuid) -> Result<Record, AppError> {
        self.store.get_record(kind, id).await.map_err(|e| match e {
            ketaflow_store::StoreError::NotFound { .. } => AppError::NotFound {
                what: kind.into(),
                id: id.to_string(),
            },
            other => other.into(),
        })
    }

    /// A record of `kind` read as its document.
    pub async fn load<T: serde::de::DeserializeOwned>(
        &self,
        kind: &'static str,
        id: Uuid,
    ) -> Result<Loaded<T>, AppError> {
        let record = self.record(kind, id).await?;
        let doc = parse(kind, &record)?;
        Ok(Loaded { record, doc })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(kind: &str, data: serde_json::Value) -> Record {
        let at = time::macros::datetime!(2026-12-06 08:00 UTC);
        Record {
            id: Uuid::nil(),
            kind: kind.into(),
            parent_id: None,
            version: 1,
            label: String::new(),
            data,
            locked: false,
            created_at: at,
            updated_at: at,
        }
    }

    /// A patient document exactly as records were written before they were typed.
    fn stored_patient() -> serde_json::Value {
        json!({
            "display_name": "Ada Example", "mrn": "MRN-1", "date_of_birth": "1980-02-29", "sex": "female",
            "heights": [{"value": 165.0, "on": "2026-11-01"}],
            "weights": [{"value": 70.5, "on": "2026-11-01"}],
            "indications": [{"code": "treatment_resistant_depression", "evidence_grade": "A", "evidence_source": "src"}],
            "medications": [{"name": "sertraline", "class": "other", "daily_dose_mg": 100.0}],
            "conditions": ["pregnancy"],
            "baseline_bp": {"systolic_mmhg": 120.0, "diastolic_mmhg": 80.0, "on": "2026-11-01"},
            "acknowledgements": [{"code": "condition.pregnancy", "physician": "u1", "reason": "ten chars!!"}]
        })
    }

    #[test]
    fn a_stored_patient_reads_into_domain_types_and_writes_back_the_same_json() {
        let doc: PatientDoc = parse(PATIENT, &record(PATIENT, stored_patient())).unwrap();
        assert_eq!(doc.date_of_birth, time::macros::date!(1980 - 02 - 29));
        assert_eq!(doc.sex, Sex::Female);
        assert_eq!(doc.weights[0].value, Kilograms::new(70.5).unwrap());
        assert_eq!(doc.conditions, vec![Condition::Pregnancy]);
        assert_eq!(doc.indications[0].code, Indication::TreatmentResistantDepression);
        assert_eq!(
            doc.medications[0].daily_dose_mg,
            Some(Milligrams::new(100.0).unwrap())
        );
        assert_eq!(serde_json::to_value(&doc).unwrap(), stored_patient());
        let facts = doc.facts();
        assert_eq!(facts.age_on(time::macros::date!(2026 - 02 - 28)).get(), 45.0);
    }

    #[test]
    fn stored_data_that_does_not_parse_names_the_record_and_what_is_wrong() {
        for (field, bad, says) in [
            ("sex", json!("x"), "sex \"x\" is not known; allowed: male, female"),
            ("date_of_birth", json!("1980-02-30"), "date_of_birth: day"),
            (
                "conditions",
                json!(["no_such_condition"]),
                "conditions[0]: condition \"no_such_condition\"",
            ),
            (
                "weights",
                json!([{"value": 900.0, "on": "2026-11-01"}]),
                "weights[0].value: weight",
            ),
        ] {
            let mut data = stored_patient();
            data[field] = bad;
            match parse::<PatientDoc>(PATIENT, &record(PATIENT, data)) {
                Err(AppError::CorruptRecord { kind, id, reason }) => {
                    assert_eq!(
                        (kind, id.as_str()),
                        (PATIENT, "00000000-0000-0000-0000-000000000000")
                    );
                    assert!(reason.contains(says), "{field}: {reason}");
                }
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    /// A session document exactly as sessions were written before their entries were typed.
    fn stored_session() -> serde_json::Value {
        json!({
            "patient_id": Uuid::nil(), "patient_name": "Ada Example", "plan_id": Uuid::nil(),
            "protocol_id": "trd", "chair": "Chair 1", "scheduled_for": "2026-12-06T08:00:00Z",
            "created_by": "u1",
            "baseline": {"systolic_mmhg": 128.0, "diastolic_mmhg": 80.0, "heart_rate_per_min": 74.0, "origin": "session"},
            "transitions": [
                {"event": "check_in", "at": "2026-12-06T08:00:00Z", "by": "u1", "reason": null, "stop": null,
                 "checks": {"fasting_confirmed": true, "escort_confirmed": true, "consent_on_file": true,
                            "questionnaire_answered": true, "questionnaire_waived_reason": null}},
                {"event": "start", "at": "2026-12-06T08:05:00Z", "by": "u1", "reason": null, "checks": null, "stop": null}
            ],
            "rates": [{"kind": "start", "at": "2026-12-06T08:05:00Z", "rate_mg_per_h": 52.5,
                       "pump_ml_per_h": 5.25, "rate_mg_per_kg_per_h": 0.75, "by": "u1", "reason": null,
                       "overrides": []}],
            "side_effects": [{"kind": "other:tingling lips", "severity": "mild", "onset": "2026-12-06T08:20:00Z",
                              "cadss6": null, "cadss6_total": null, "moaas": null,
                              "action": "medication_given:ondansetron:4 mg IV", "note": "",
                              "recorded_by": "u1", "recorded_at": "2026-12-06T08:21:00Z"}],
            "assessments": []
        })
    }

    #[test]
    fn a_stored_session_reads_its_entries_typed_and_writes_back_the_same_json() {
        use ketaflow_clinic::side_effects::{ActionTaken, Severity, SideEffectKind};
        let doc: SessionDoc = parse(SESSION, &record(SESSION, stored_session())).unwrap();
        assert_eq!(doc.current_rate(), MgPerHour::new(52.5).unwrap());
        assert_eq!(doc.rates[0].pump_ml_per_h, MlPerHour::new(5.25).unwrap());
        let effect = &doc.side_effects[0];
        assert_eq!(effect.kind, SideEffectKind::Other("tingling lips".into()));
        assert_eq!(effect.severity, Severity::Mild);
        assert_eq!(
            effect.action,
            ActionTaken::MedicationGiven {
                name: "ondansetron".into(),
                dose: "4 mg IV".into()
            }
        );
        assert_eq!(serde_json::to_value(&doc).unwrap(), stored_session());
        assert!(doc.replay().unwrap().state().is_infusing());
    }

    #[test]
    fn a_stored_session_entry_that_does_not_parse_names_its_path() {
        for (path, bad, says) in [
            (
                "/side_effects/0/kind",
                json!("itching"),
                "side_effects[0].kind: side-effect kind \"itching\"",
            ),
            (
                "/side_effects/0/severity",
                json!("awful"),
                "side_effects[0].severity: severity \"awful\"",
            ),
            (
                "/side_effects/0/action",
                json!("medication_given:x"),
                "side_effects[0].action: action",
            ),
            (
                "/rates/0/rate_mg_per_h",
                json!(-1.0),
                "rates[0].rate_mg_per_h: dose rate",
            ),
            (
                "/rates/0/pump_ml_per_h",
                json!(1e9),
                "rates[0].pump_ml_per_h: pump rate",
            ),
        ] {
            let mut data = stored_session();
            *data.pointer_mut(path).unwrap() = bad;
            match parse::<SessionDoc>(SESSION, &record(SESSION, data)) {
                Err(AppError::CorruptRecord { kind, reason, .. }) => {
                    assert_eq!(kind, SESSION);
                    assert!(reason.contains(says), "{path}: {reason}");
                }
                other => panic!("{path}: {other:?}"),
            }
        }
    }

    #[test]
    fn stored_codes_read_and_write_as_their_codes() {
        for kind in TransitionKind::ALL {
            let text = serde_json::to_value(kind).unwrap();
            assert_eq!(text, json!(kind.code()));
            assert_eq!(serde_json::from_value::<TransitionKind>(text).unwrap(), *kind);
            assert_eq!(kind.code().parse::<TransitionKind>().unwrap(), *kind);
        }
        assert_eq!(
            "resumed".parse::<TransitionKind>().unwrap_err(),
            "check_in, start, pause, resume, stop, begin_recovery, discharge, abort"
        );
        assert_eq!(RateChangeKind::ALL.len(), 6);
        assert_eq!(StopCode::Early.to_string(), "early");
        assert_eq!(BaselineOrigin::Intake.code(), "intake");
    }
}
