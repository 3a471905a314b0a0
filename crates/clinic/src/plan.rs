//! Dose plans: protocol + patient + concentration → dose, rates, pump rate, volume, the predicted
//! concentration curve and recovery time, and every limit evaluated like a smart pump's drug library.
//!
//! Arithmetic (`shared/domain/clinical.md` §11):
//! dose_mg = mg/kg × dosing weight; rate_mg_per_h = dose_mg ÷ (duration_min ÷ 60);
//! mL/h = rate_mg_per_h ÷ mg/mL; volume_mL = dose_mg ÷ mg/mL; mg/kg/h = rate_mg_per_h ÷ dosing weight.
//!
//! A plan above a **soft** limit can be approved only by a physician who gives a reason for each
//! breach; a plan above a **hard** limit can never be approved. An [`ApprovedPlan`] can only be made
//! by [`DosePlan::approve`] and has no setters: once approved it does not change.

use ketaflow_pkpd::model::{Covariates, ModelId};
use ketaflow_pkpd::patient::{DrugGiven, PatientModel};
use ketaflow_pkpd::recovery::{DEFAULT_BRACKET_S, Quantity, Recovery, time_below};
use ketaflow_pkpd::schedule::{Schedule, Segment};
use ketaflow_pkpd::simulate::{Grid, simulate};
use ketaflow_units::{
    Centimetres, Kilograms, MgPerHour, MgPerKgPerHour, MgPerMl, Milligrams, Millilitres, Minutes, MlPerHour,
    Years,
};
use time::Date;

use crate::patient::{Indication, PatientFacts};
use crate::protocol::{DoseRule, Limit, Protocol};
use crate::weight::{DosingWeight, DosingWeightError, dosing_weight};

/// What the physician asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanRequest<'a> {
    /// The protocol.
    pub protocol: &'a Protocol,
    /// The library version the protocol came from (recorded on the plan).
    pub library_version: &'a str,
    /// The patient.
    pub facts: &'a PatientFacts,
    /// The syringe or bag concentration; must be one of the protocol's standard concentrations.
    pub concentration: MgPerMl,
    /// The session date.
    pub planned_on: Date,
    /// The previous session's date, if any.
    pub last_session_on: Option<Date>,
    /// A dose other than the protocol's: mg/kg for amount-over protocols, mg/kg/h for rate protocols.
    pub adjusted_dose_per_kg: Option<f64>,
}

/// The shortest reason an override of a safety rule takes, in characters: a soft limit of a plan or
/// a discharge before its criteria are met (clinic setting: long enough for a sentence, so a bare
/// "ok" or "yes" is not a reason; ISMP's smart-pump guidance asks that overrides be documented
/// with a reason but sets no length).
pub const MIN_OVERRIDE_REASON_CHARS: usize = 10;

/// Which limit a check is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LimitName {
    /// Dose per session, mg/kg.
    DoseMgPerKg,
    /// Rate, mg/kg/h.
    RateMgPerKgPerHour,
    /// Dose per session, mg.
    MgPerSession,
    /// Pump rate, mL/h.
    PumpMlPerHour,
    /// Days since the previous session.
    DaysBetweenSessions,
}

impl LimitName {
    /// All limits.
    pub const ALL: [LimitName; 5] = [
        LimitName::DoseMgPerKg,
        LimitName::RateMgPerKgPerHour,
        LimitName::MgPerSession,
        LimitName::PumpMlPerHour,
        LimitName::DaysBetweenSessions,
    ];

    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            LimitName::DoseMgPerKg => "dose_mg_per_kg",
            LimitName::RateMgPerKgPerHour => "rate_mg_per_kg_per_h",
            LimitName::MgPerSession => "mg_per_session",
            LimitName::PumpMlPerHour => "pump_ml_per_h",
            LimitName::DaysBetweenSessions => "days_between_sessions",
        }
    }

    /// Unit of the checked value.
    pub fn unit(self) -> &'static str {
        match self {
            LimitName::DoseMgPerKg => "mg/kg",
            LimitName::RateMgPerKgPerHour => "mg/kg/h",
            LimitName::MgPerSession => "mg",
            LimitName::PumpMlPerHour => "mL/h",
            LimitName::DaysBetweenSessions => "days",
        }
    }
}

/// The outcome of one limit check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitStatus {
    /// Within the soft limit.
    Within,
    /// Beyond the soft limit, within the hard one: needs a reasoned physician override.
    SoftBreach,
    /// Beyond the hard limit: the plan cannot be approved.
    HardBreach,
}

impl LimitStatus {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            LimitStatus::Within => "within",
            LimitStatus::SoftBreach => "soft_breach",
            LimitStatus::HardBreach => "hard_breach",
        }
    }
}

/// One limit evaluated.
#[derive(Clone, Debug, PartialEq)]
pub struct LimitCheck {
    /// Which limit.
    pub name: LimitName,
    /// The plan's value.
    pub value: f64,
    /// Soft limit.
    pub soft: f64,
    /// Hard limit.
    pub hard: f64,
    /// True for a minimum (days between sessions), false for a maximum.
    pub is_minimum: bool,
    /// Outcome.
    pub status: LimitStatus,
    /// Source of the limit.
    pub source: String,
    /// Whether the limit is a clinic setting.
    pub clinic_setting: bool,
}

/// Evaluates one value against a soft/hard limit pair (shared by plans and rate changes).
pub(crate) fn check(name: LimitName, value: f64, limit: &Limit, is_minimum: bool) -> LimitCheck {
    let beyond = |bound: f64| if is_minimum { value < bound } else { value > bound };
    let status = if beyond(limit.hard) {
        LimitStatus::HardBreach
    } else if beyond(limit.soft) {
        LimitStatus::SoftBreach
    } else {
        LimitStatus::Within
    };
    LimitCheck {
        name,
        value,
        soft: limit.soft,
        hard: limit.hard,
        is_minimum,
        status,
        source: limit.source.clone(),
        clinic_setting: limit.clinic_setting,
    }
}

/// The predicted concentrations for a planned infusion or for what was actually given
/// ([`predict_delivery`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// The PK model.
    pub model: ModelId,
    /// Output times from the origin (for a plan, the start of the infusion), seconds (every minute).
    pub times_s: Vec<f64>,
    /// Plasma concentration, µg/mL.
    pub cp: Vec<f64>,
    /// Effect-site concentration, µg/mL.
    pub ce: Vec<f64>,
    /// Peak Cp and its time (s).
    pub peak_cp: (f64, f64),
    /// Peak Ce and its time (s).
    pub peak_ce: (f64, f64),
    /// The protocol's recovery threshold, µg/mL.
    pub recovery_threshold_ug_per_ml: f64,
    /// Seconds from the origin after which Ce stays below the threshold (None: never above it).
    pub ce_below_threshold_from_s: Option<f64>,
    /// Model warnings (covariates outside the validated range, ke0 origin).
    pub warnings: Vec<String>,
}

/// A computed, not yet approved, plan.
#[derive(Clone, Debug, PartialEq)]
pub struct DosePlan {
    /// Protocol id.
    pub protocol_id: String,
    /// Protocol version.
    pub protocol_version: u32,
    /// Library version.
    pub library_version: String,
    /// Session date.
    pub planned_on: Date,
    /// Total body weight used, with its date.
    pub total_weight: Kilograms,
    /// Height used, if any.
    pub height: Option<Centimetres>,
    /// Age on the session date.
    pub age: Years,
    /// The dosing weight and its basis.
    pub dosing_weight: DosingWeight,
    /// Dose, mg.
    pub dose: Milligrams,
    /// Rate, mg/h.
    pub rate: MgPerHour,
    /// Rate per kg of dosing weight, mg/kg/h.
    pub rate_per_kg: MgPerKgPerHour,
    /// Concentration, mg/mL.
    pub concentration: MgPerMl,
    /// Pump rate, mL/h.
    pub pump_rate: MlPerHour,
    /// Volume, mL.
    pub volume: Millilitres,
    /// Infusion duration.
    pub duration: Minutes,
    /// The dose per kg the plan uses (the protocol's or an adjusted one).
    pub dose_per_kg: f64,
    /// Whether the dose differs from the protocol's.
    pub dose_adjusted: bool,
    /// Every limit evaluated.
    pub checks: Vec<LimitCheck>,
    /// The prediction.
    pub prediction: Prediction,
    /// Other warnings (short stature for Devine, etc.).
    pub warnings: Vec<String>,
    /// Whether the protocol is for one of the patient's recorded indications.
    pub indication: IndicationCheck,
}

/// The protocol's indications against the patient's recorded ones. A protocol for none of them
/// (a bipolar-depression protocol for a treatment-resistant-depression patient) needs a physician's
/// reasoned override at approval, like a soft limit: the library's protocols are each built on the
/// evidence for their own indications (protocol library, `indications`).
#[derive(Clone, Debug, PartialEq)]
pub struct IndicationCheck {
    /// The protocol's indications.
    pub protocol_for: Vec<Indication>,
    /// The patient's recorded indications.
    pub patient: Vec<Indication>,
}

impl IndicationCheck {
    /// Whether the protocol is for at least one of the patient's indications.
    pub fn matches(&self) -> bool {
        self.protocol_for.iter().any(|i| self.patient.contains(i))
    }

    /// The mismatch in words, or `None` when the protocol fits.
    pub fn mismatch(&self, protocol: &str) -> Option<String> {
        let codes = |list: &[Indication]| {
            if list.is_empty() {
                "none".to_string()
            } else {
                list.iter().map(|i| i.code()).collect::<Vec<_>>().join(", ")
            }
        };
        (!self.matches()).then(|| {
            format!(
                "protocol {protocol} is for {}, and the patient's recorded indications are {}",
                codes(&self.protocol_for),
                codes(&self.patient)
            )
        })
    }
}

/// Why a plan cannot be computed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// The concentration is not one of the protocol's standard concentrations.
    #[error(
        "concentration {given} mg/mL is not a standard concentration of protocol {protocol}; allowed: {allowed} mg/mL"
    )]
    NonStandardConcentration {
        /// Given, mg/mL.
        given: f64,
        /// Protocol id.
        protocol: String,
        /// Allowed values.
        allowed: String,
    },
    /// No weight is recorded on or before the session date.
    #[error("no weight is recorded on or before {date}; record the patient's weight first")]
    NoWeight {
        /// The session date.
        date: Date,
    },
    /// The dosing weight cannot be computed.
    #[error(transparent)]
    DosingWeight(#[from] DosingWeightError),
    /// The adjusted dose is not a positive number.
    #[error("adjusted dose {0} per kg is not allowed: it must be a finite number above 0")]
    BadAdjustedDose(f64),
    /// A computed quantity is out of any plausible range.
    #[error("the plan gives {0}; check the inputs")]
    OutOfRange(String),
    /// The prediction failed.
    #[error("the concentration prediction failed: {0}")]
    Prediction(String),
}

/// A physician's override of one soft-limit breach.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    /// The limit.
    pub limit: LimitName,
    /// Why.
    pub reason: String,
}

/// Who approves.
#[derive(Clone, Debug, PartialEq)]
pub struct Approver {
    /// The user's id.
    pub user_id: String,
    /// Whether the user is a physician (only physicians approve or override).
    pub is_physician: bool,
}

/// Why a plan cannot be approved.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ApprovalError {
    /// Only physicians approve plans.
    #[error("only a physician can approve a dose plan")]
    NotPhysician,
    /// A hard limit is exceeded.
    #[error("{limit} {value:.3} {unit} is beyond the hard limit {hard} {unit}; a hard limit never passes")]
    HardLimit {
        /// The limit code.
        limit: &'static str,
        /// The plan's value.
        value: f64,
        /// The hard limit.
        hard: f64,
        /// Unit.
        unit: &'static str,
    },
    /// A soft-limit breach has no override with a reason.
    #[error(
        "{limit} {value:.3} {unit} is beyond the soft limit {soft} {unit}; approving it needs an override with a reason of at least 10 characters"
    )]
    OverrideNeeded {
        /// The limit code.
        limit: &'static str,
        /// The plan's value.
        value: f64,
        /// The soft limit.
        soft: f64,
        /// Unit.
        unit: &'static str,
    },
    /// The protocol is for none of the patient's indications and no reasoned override was given.
    #[error("{mismatch}; approving it needs an indication override with a reason of at least 10 characters")]
    IndicationOverrideNeeded {
        /// The mismatch in words.
        mismatch: String,
    },
    /// An indication override was given for a protocol that fits the patient's indications.
    #[error("an indication override was given, but the protocol is for one of the patient's indications")]
    NeedlessIndicationOverride,
    /// An override was given for a limit that is not breached.
    #[error("an override was given for {limit}, which is within its soft limit")]
    NeedlessOverride {
        /// The limit code.
        limit: &'static str,
    },
}

/// A plan a physician approved. It can only come from [`DosePlan::approve`] and never changes.
#[derive(Clone, Debug, PartialEq)]
pub struct ApprovedPlan {
    plan: DosePlan,
    approved_by: String,
    overrides: Vec<Override>,
    indication_override: Option<String>,
}

impl ApprovedPlan {
    /// The plan.
    pub fn plan(&self) -> &DosePlan {
        &self.plan
    }
    /// Who approved it.
    pub fn approved_by(&self) -> &str {
        &self.approved_by
    }
    /// The overrides with their reasons.
    pub fn overrides(&self) -> &[Override] {
        &self.overrides
    }
    /// Why the protocol was approved for a patient without its indication, if it was.
    pub fn indication_override(&self) -> Option<&str> {
        self.indication_override.as_deref()
    }
}

/// Computes a plan.
pub fn compute_plan(request: &PlanRequest<'_>) -> Result<DosePlan, PlanError> {
    let protocol = request.protocol;
    let allowed = &protocol.concentrations_mg_per_ml.value;
    let concentration = request.concentration;
    if !allowed.iter().any(|c| (c - concentration.get()).abs() < 1e-9) {
        return Err(PlanError::NonStandardConcentration {
            given: concentration.get(),
            protocol: protocol.id.clone(),
            allowed: allowed.iter().map(f64::to_string).collect::<Vec<_>>().join(", "),
        });
    }
    let facts = request.facts;
    let weight = facts
        .weight_on(request.planned_on)
        .ok_or(PlanError::NoWeight {
            date: request.planned_on,
        })?
        .value;
    let height = facts.height_on(request.planned_on).map(|m| m.value);
    let dosing = dosing_weight(protocol.weight_basis.value, weight, height, facts.sex)?;
    let dw = dosing.weight.get();
    if let Some(adjusted) = request.adjusted_dose_per_kg
        && !(adjusted.is_finite() && adjusted > 0.0)
    {
        return Err(PlanError::BadAdjustedDose(adjusted));
    }
    let duration_min = protocol.dose.value.duration_min();
    let (dose_mg, rate_mg_per_h, dose_per_kg) = match protocol.dose.value {
        DoseRule::AmountOver { mg_per_kg, .. } => {
            let per_kg = request.adjusted_dose_per_kg.unwrap_or(mg_per_kg);
            let dose = per_kg * dw;
            (dose, dose / (duration_min / 60.0), per_kg)
        }
        DoseRule::RateFor { mg_per_kg_per_h, .. } => {
            let per_kg_per_h = request.adjusted_dose_per_kg.unwrap_or(mg_per_kg_per_h);
            let rate = per_kg_per_h * dw;
            (rate * duration_min / 60.0, rate, per_kg_per_h)
        }
    };
    let out_of_range = |e: ketaflow_units::QuantityError| PlanError::OutOfRange(e.to_string());
    let dose = Milligrams::new(dose_mg).map_err(out_of_range)?;
    let rate = MgPerHour::new(rate_mg_per_h).map_err(out_of_range)?;
    let rate_per_kg = rate / dosing.weight;
    let pump_rate = rate / concentration;
    let volume = dose / concentration;
    let duration = Minutes::new(duration_min).map_err(out_of_range)?;

    let limits = &protocol.limits;
    let mut checks = vec![
        check(
            LimitName::DoseMgPerKg,
            dose_mg / dw,
            &limits.dose_mg_per_kg,
            false,
        ),
        check(
            LimitName::RateMgPerKgPerHour,
            rate_per_kg.get(),
            &limits.rate_mg_per_kg_per_h,
            false,
        ),
        check(LimitName::MgPerSession, dose_mg, &limits.mg_per_session, false),
        check(
            LimitName::PumpMlPerHour,
            pump_rate.get(),
            &limits.pump_ml_per_h,
            false,
        ),
    ];
    if let Some(last) = request.last_session_on {
        let days = (request.planned_on - last).whole_days() as f64;
        checks.push(check(
            LimitName::DaysBetweenSessions,
            days,
            &limits.min_days_between_sessions,
            true,
        ));
    }

    let age = facts.age_on(request.planned_on);
    let end_s = duration.to_seconds().get();
    let prediction = predict_delivery(
        protocol,
        covariates(weight, height, age, facts),
        vec![Segment {
            start_s: 0.0,
            end_s,
            rate_mg_per_s: rate.mg_per_second(),
        }],
        end_s + PREDICTION_TAIL_S,
    )?;
    let mut warnings = Vec::new();
    if dosing.short_stature_warning {
        warnings.push("height under 152.4 cm: the Devine ideal-weight formula is unreliable (globalrph); check the dosing weight".into());
    }
    let indication = IndicationCheck {
        protocol_for: protocol.indications.clone(),
        patient: facts.indications.clone(),
    };
    if let Some(mismatch) = indication.mismatch(&protocol.id) {
        warnings.push(format!(
            "{mismatch}: approval needs a physician's override with a reason of at least {MIN_OVERRIDE_REASON_CHARS} characters"
        ));
    }
    Ok(DosePlan {
        protocol_id: protocol.id.clone(),
        protocol_version: protocol.version,
        library_version: request.library_version.to_string(),
        planned_on: request.planned_on,
        total_weight: weight,
        height,
        age,
        dosing_weight: dosing,
        dose,
        rate,
        rate_per_kg,
        concentration,
        pump_rate,
        volume,
        duration,
        dose_per_kg,
        dose_adjusted: request.adjusted_dose_per_kg.is_some(),
        checks,
        prediction,
        warnings,
        indication,
    })
}

/// How far past the end of the planned infusion a plan's prediction runs: six hours, seconds.
pub const PREDICTION_TAIL_S: f64 = 6.0 * 3600.0;

/// Height used when none is recorded on or before the session date, cm.
///
/// A placeholder (clinic setting, no clinical source): none of the ketamine models in
/// `ketaflow-pkpd` uses height as a covariate, so the value changes no prediction; the engine's
/// `Covariates` simply requires one.
const DEFAULT_HEIGHT_CM: f64 = 170.0;

fn covariates(
    weight: Kilograms,
    height: Option<Centimetres>,
    age: Years,
    facts: &PatientFacts,
) -> Covariates {
    Covariates {
        weight,
        age,
        // No height recorded: the placeholder above (no ketamine model uses height).
        height: height.unwrap_or(Centimetres::new(DEFAULT_HEIGHT_CM).expect("constant in range")),
        sex: facts.sex.covariate(),
    }
}

/// The PK covariates of a patient on a date, exactly as [`compute_plan`] builds them: the most
/// recent weight and height on or before `on` (total body weight, the PK models' covariate; height
/// 170 cm when none is recorded, see `DEFAULT_HEIGHT_CM`), age in whole years on `on`, and sex.
pub fn covariates_on(facts: &PatientFacts, on: Date) -> Result<Covariates, PlanError> {
    let weight = facts.weight_on(on).ok_or(PlanError::NoWeight { date: on })?.value;
    let height = facts.height_on(on).map(|m| m.value);
    Ok(covariates(weight, height, facts.age_on(on), facts))
}

/// Predicts Cp and Ce with the protocol's model for any piecewise-constant infusion: the planned
/// constant infusion of a [`DosePlan`] or what a pump actually gave (see
/// [`crate::delivery::Delivery::segments`]).
///
/// `segments` are in seconds from the origin (time 0) with rates in mg/s; outputs are every 60 s
/// from the origin up to `horizon_s`. Peaks are the largest values on that grid (0 at 0 s when
/// nothing was given); the recovery time is exact (`ketaflow_pkpd::recovery::time_below` on the
/// effect site, with the protocol's threshold) and does not depend on the horizon.
pub fn predict_delivery(
    protocol: &Protocol,
    covariates: Covariates,
    segments: Vec<Segment>,
    horizon_s: f64,
) -> Result<Prediction, PlanError> {
    let failed = |e: ketaflow_pkpd::EngineError| PlanError::Prediction(e.to_string());
    let model =
        PatientModel::new(protocol.model, covariates, None, &[], DrugGiven::Racemic).map_err(failed)?;
    let schedule = Schedule::new(segments, vec![]).map_err(|e| PlanError::Prediction(e.to_string()))?;
    let input = model.model_input(&schedule);
    let grid = Grid::uniform(60.0, horizon_s).map_err(failed)?;
    let trajectory = simulate(&model.system, &input, &grid).map_err(failed)?;
    let peak = |values: &[f64]| {
        values.iter().zip(&trajectory.times_s).fold(
            (0.0, 0.0),
            |best, (v, t)| if *v > best.0 { (*v, *t) } else { best },
        )
    };
    let threshold = protocol.recovery_threshold_ug_per_ml.value;
    let recovery = time_below(
        &model.system,
        &input,
        Quantity::Response(0),
        threshold,
        DEFAULT_BRACKET_S,
    )
    .map_err(failed)?;
    let mut warnings: Vec<String> = model.warnings.iter().map(ToString::to_string).collect();
    warnings.push(format!("effect-site ke0: {}", model.ke0_source));
    Ok(Prediction {
        model: protocol.model,
        peak_cp: peak(&trajectory.cp),
        peak_ce: peak(trajectory.ce()),
        ce: trajectory.ce().to_vec(),
        cp: trajectory.cp,
        times_s: trajectory.times_s,
        recovery_threshold_ug_per_ml: threshold,
        ce_below_threshold_from_s: match recovery {
            Recovery::NeverAbove => None,
            Recovery::BelowFrom(t) => Some(t),
        },
        warnings,
    })
}

/// A plan beyond one or more hard limits: refused where it is entered, as a smart pump's drug
/// library refuses a programme beyond a hard limit (ISMP 2020 Guidelines for Optimizing Safe
/// Implementation and Use of Smart Infusion Pumps: hard limits "cannot be overridden"); nothing is
/// saved, not even as a draft.
#[derive(Clone, Debug, PartialEq)]
pub struct HardLimitRefusal {
    /// Every hard breach, in the order the plan checks them.
    pub breaches: Vec<LimitCheck>,
}

impl std::fmt::Display for HardLimitRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a hard limit never passes, so the plan is not saved: ")?;
        for (i, c) in self.breaches.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            let unit = c.name.unit();
            let (side, allowed) = if c.is_minimum {
                ("below", "at least")
            } else {
                ("above", "at most")
            };
            write!(
                f,
                "{} {:.3} {unit} is {side} the hard limit (allowed: {allowed} {} {unit}; source: {})",
                c.name.code(),
                c.value,
                c.hard,
                c.source
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for HardLimitRefusal {}

impl DosePlan {
    /// Refuses a plan beyond any hard limit, naming each limit, its value and the allowed range.
    pub fn refuse_hard_breaches(&self) -> Result<(), HardLimitRefusal> {
        let breaches: Vec<LimitCheck> = self
            .checks
            .iter()
            .filter(|c| c.status == LimitStatus::HardBreach)
            .cloned()
            .collect();
        if breaches.is_empty() {
            Ok(())
        } else {
            Err(HardLimitRefusal { breaches })
        }
    }

    /// The checks beyond their soft limit (but within the hard one).
    pub fn soft_breaches(&self) -> impl Iterator<Item = &LimitCheck> {
        self.checks.iter().filter(|c| c.status == LimitStatus::SoftBreach)
    }

    /// Approves the plan. Every soft breach needs an override with a reason; a hard breach never
    /// passes; a protocol for none of the patient's indications needs `indication_override`, a
    /// reason as long as a limit override's; only a physician approves.
    pub fn approve(
        self,
        approver: &Approver,
        overrides: Vec<Override>,
        indication_override: Option<&str>,
    ) -> Result<ApprovedPlan, ApprovalError> {
        if !approver.is_physician {
            return Err(ApprovalError::NotPhysician);
        }
        if let Some(c) = self.checks.iter().find(|c| c.status == LimitStatus::HardBreach) {
            return Err(ApprovalError::HardLimit {
                limit: c.name.code(),
                value: c.value,
                hard: c.hard,
                unit: c.name.unit(),
            });
        }
        for o in &overrides {
            if !self.soft_breaches().any(|c| c.name == o.limit) {
                return Err(ApprovalError::NeedlessOverride {
                    limit: o.limit.code(),
                });
            }
        }
        for c in self.soft_breaches() {
            let covered = overrides
                .iter()
                .any(|o| o.limit == c.name && o.reason.trim().chars().count() >= MIN_OVERRIDE_REASON_CHARS);
            if !covered {
                return Err(ApprovalError::OverrideNeeded {
                    limit: c.name.code(),
                    value: c.value,
                    soft: c.soft,
                    unit: c.name.unit(),
                });
            }
        }
        let indication_reason = indication_override.map(str::trim).filter(|r| !r.is_empty());
        match (self.indication.mismatch(&self.protocol_id), indication_reason) {
            (None, Some(_)) => return Err(ApprovalError::NeedlessIndicationOverride),
            (Some(mismatch), reason)
                if reason.is_none_or(|r| r.chars().count() < MIN_OVERRIDE_REASON_CHARS) =>
            {
                return Err(ApprovalError::IndicationOverrideNeeded { mismatch });
            }
            _ => {}
        }
        Ok(ApprovedPlan {
            plan: self,
            approved_by: approver.user_id.clone(),
            overrides,
            indication_override: indication_reason.map(str::to_string),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::patient::{Indication, Measurement, Sex};
    use crate::protocol::ProtocolLibrary;
    use time::macros::date;

    /// A 177.8 cm man with treatment-resistant depression and nothing else on record (shared with
    /// the delivery tests).
    pub(crate) fn facts(weight: f64) -> PatientFacts {
        PatientFacts {
            date_of_birth: date!(1986 - 01 - 01),
            sex: Sex::Male,
            heights: vec![Measurement {
                value: Centimetres::new(177.8).unwrap(),
                on: date!(2026 - 11 - 01),
            }],
            weights: vec![Measurement {
                value: Kilograms::new(weight).unwrap(),
                on: date!(2026 - 11 - 01),
            }],
            indications: vec![Indication::TreatmentResistantDepression],
            medications: vec![],
            conditions: vec![],
            baseline_bp: None,
            allergies: vec![],
        }
    }

    fn request<'a>(
        lib: &'a ProtocolLibrary,
        id: &str,
        facts: &'a PatientFacts,
        conc: f64,
    ) -> PlanRequest<'a> {
        PlanRequest {
            protocol: lib.get(id).unwrap(),
            library_version: &lib.version,
            facts,
            concentration: MgPerMl::new(conc).unwrap(),
            planned_on: date!(2026 - 11 - 26),
            last_session_on: None,
            adjusted_dose_per_kg: None,
        }
    }

    fn physician() -> Approver {
        Approver {
            user_id: "dr-house".into(),
            is_physician: true,
        }
    }

    #[test]
    fn the_worked_example_of_clinical_md_section_11() {
        // 70 kg × 0.5 mg/kg = 35 mg over 40 min = 52.5 mg/h; at 1 mg/mL 52.5 mL/h and 35 mL; 0.75 mg/kg/h.
        let lib = ProtocolLibrary::embedded();
        let f = facts(70.0);
        let plan = compute_plan(&request(&lib, "trd", &f, 1.0)).unwrap();
        assert!((plan.dose.get() - 35.0).abs() < 1e-12);
        assert!((plan.rate.get() - 52.5).abs() < 1e-12);
        assert!((plan.pump_rate.get() - 52.5).abs() < 1e-12);
        assert!((plan.volume.get() - 35.0).abs() < 1e-12);
        assert!((plan.rate_per_kg.get() - 0.75).abs() < 1e-12);
        assert_eq!(plan.library_version, "2026.12.1");
        assert!(
            plan.checks.iter().all(|c| c.status == LimitStatus::Within),
            "{:?}",
            plan.checks
        );
        // Prediction: Kamp 2020, Cp peaks at the end of the infusion at 0.253 µg/mL (reference curve).
        assert!((plan.prediction.peak_cp.0 - 0.25305).abs() < 1e-4);
        assert_eq!(plan.prediction.peak_cp.1, 2400.0);
        let recovery = plan.prediction.ce_below_threshold_from_s.unwrap();
        assert!((recovery / 60.0 - 120.1).abs() < 0.2, "{}", recovery / 60.0);
        let approved = plan.approve(&physician(), vec![], None).unwrap();
        assert_eq!(approved.approved_by(), "dr-house");
    }

    #[test]
    fn rate_protocols_use_the_adjusted_weight() {
        // CRPS: 0.35 mg/kg/h × AdjBW for 4 h. 120 kg, 177.8 cm male: AdjBW 91.8 kg → 32.13 mg/h, 128.52 mg.
        let lib = ProtocolLibrary::embedded();
        let f = facts(120.0);
        let plan = compute_plan(&request(&lib, "crps", &f, 1.0)).unwrap();
        assert!((plan.dosing_weight.weight.get() - 91.8).abs() < 1e-9);
        assert!((plan.rate.get() - 32.13).abs() < 1e-9);
        assert!((plan.dose.get() - 128.52).abs() < 1e-9);
        assert!((plan.rate_per_kg.get() - 0.35).abs() < 1e-12);
    }

    #[test]
    fn a_soft_breach_needs_a_reasoned_physician_override() {
        let lib = ProtocolLibrary::embedded();
        let f = facts(100.0);
        // 0.5 mg/kg × 100 kg = 50 mg: within 60 mg soft. 0.8 mg/kg → 80 mg over 40 min (1.2 mg/kg/h):
        // soft breaches of dose, rate and mg per session; none hard.
        let mut r = request(&lib, "trd", &f, 1.0);
        r.adjusted_dose_per_kg = Some(0.8);
        let plan = compute_plan(&r).unwrap();
        let breached: Vec<_> = plan.soft_breaches().map(|c| c.name).collect();
        assert_eq!(
            breached,
            vec![
                LimitName::DoseMgPerKg,
                LimitName::RateMgPerKgPerHour,
                LimitName::MgPerSession
            ]
        );
        let err = plan.clone().approve(&physician(), vec![], None).unwrap_err();
        assert_eq!(
            err,
            ApprovalError::OverrideNeeded {
                limit: "dose_mg_per_kg",
                value: 0.8,
                soft: 0.75,
                unit: "mg/kg"
            }
        );
        let nurse = Approver {
            user_id: "n".into(),
            is_physician: false,
        };
        assert_eq!(
            plan.clone().approve(&nurse, vec![], None).unwrap_err(),
            ApprovalError::NotPhysician
        );
        let short = vec![
            Override {
                limit: LimitName::DoseMgPerKg,
                reason: "ok".into(),
            },
            Override {
                limit: LimitName::MgPerSession,
                reason: "ok".into(),
            },
        ];
        assert!(plan.clone().approve(&physician(), short, None).is_err());
        let reasoned = vec![
            Override {
                limit: LimitName::DoseMgPerKg,
                reason: "partial response at 0.5 mg/kg after 6 sessions".into(),
            },
            Override {
                limit: LimitName::RateMgPerKgPerHour,
                reason: "same 40-min duration as tolerated before".into(),
            },
            Override {
                limit: LimitName::MgPerSession,
                reason: "follows from the dose escalation above".into(),
            },
        ];
        let approved = plan.approve(&physician(), reasoned, None).unwrap();
        assert_eq!(approved.overrides().len(), 3);
    }

    #[test]
    fn a_plan_beyond_hard_limits_is_refused_naming_each_one() {
        let lib = ProtocolLibrary::embedded();
        let f = facts(70.0);
        let within = compute_plan(&request(&lib, "trd", &f, 1.0)).unwrap();
        assert_eq!(within.refuse_hard_breaches(), Ok(()));
        let mut r = request(&lib, "trd", &f, 1.0);
        r.adjusted_dose_per_kg = Some(1.2);
        r.last_session_on = Some(date!(2026 - 11 - 26));
        let refusal = compute_plan(&r).unwrap().refuse_hard_breaches().unwrap_err();
        let names: Vec<_> = refusal.breaches.iter().map(|c| c.name).collect();
        assert!(names.contains(&LimitName::DoseMgPerKg), "{names:?}");
        assert!(names.contains(&LimitName::DaysBetweenSessions), "{names:?}");
        let text = refusal.to_string();
        assert!(
            text.contains("dose_mg_per_kg 1.200 mg/kg is above the hard limit (allowed: at most"),
            "{text}"
        );
        assert!(
            text.contains("days_between_sessions 0.000 days is below the hard limit (allowed: at least"),
            "{text}"
        );
    }

    #[test]
    fn a_hard_breach_never_passes_even_with_an_override() {
        let lib = ProtocolLibrary::embedded();
        let f = facts(70.0);
        let mut r = request(&lib, "trd", &f, 1.0);
        r.adjusted_dose_per_kg = Some(1.2);
        let plan = compute_plan(&r).unwrap();
        assert!(
            plan.checks
                .iter()
                .any(|c| c.name == LimitName::DoseMgPerKg && c.status == LimitStatus::HardBreach)
        );
        let overrides = LimitName::ALL
            .iter()
            .map(|l| Override {
                limit: *l,
                reason: "I insist on this dose".into(),
            })
            .collect();
        assert!(matches!(
            plan.approve(&physician(), overrides, None),
            Err(ApprovalError::HardLimit {
                limit: "dose_mg_per_kg",
                ..
            })
        ));
    }

    #[test]
    fn sessions_too_close_together_breach_the_minimum_spacing() {
        let lib = ProtocolLibrary::embedded();
        let f = facts(70.0);
        for (last, status) in [
            (date!(2026 - 11 - 24), LimitStatus::Within),
            (date!(2026 - 11 - 25), LimitStatus::SoftBreach),
            (date!(2026 - 11 - 26), LimitStatus::HardBreach),
        ] {
            let mut r = request(&lib, "trd", &f, 1.0);
            r.last_session_on = Some(last);
            let plan = compute_plan(&r).unwrap();
            let spacing = plan
                .checks
                .iter()
                .find(|c| c.name == LimitName::DaysBetweenSessions)
                .unwrap();
            assert_eq!(spacing.status, status, "{last}");
        }
    }

    #[test]
    fn bad_requests_are_refused_with_a_reason() {
        let lib = ProtocolLibrary::embedded();
        let f = facts(70.0);
        let err = compute_plan(&request(&lib, "trd", &f, 50.0))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "concentration 50 mg/mL is not a standard concentration of protocol trd; allowed: 1, 10 mg/mL"
        );
        let no_weight = PatientFacts {
            weights: vec![],
            ..facts(70.0)
        };
        assert!(matches!(
            compute_plan(&request(&lib, "trd", &no_weight, 1.0)),
            Err(PlanError::NoWeight { .. })
        ));
        let mut r = request(&lib, "trd", &f, 1.0);
        r.adjusted_dose_per_kg = Some(f64::NAN);
        assert!(matches!(compute_plan(&r), Err(PlanError::BadAdjustedDose(_))));
    }
    #[test]
    fn a_protocol_for_another_indication_needs_a_reasoned_physician_override() {
        let lib = ProtocolLibrary::embedded();
        let f = facts(70.0); // treatment-resistant depression
        let crps = lib.get("crps").unwrap();
        let conc = crps.concentrations_mg_per_ml.value[0];
        let plan = compute_plan(&request(&lib, "crps", &f, conc)).unwrap();
        assert!(!plan.indication.matches());
        assert_eq!(
            plan.indication.mismatch("crps").unwrap(),
            "protocol crps is for crps, and the patient's recorded indications are treatment_resistant_depression"
        );
        assert!(
            plan.warnings
                .iter()
                .any(|w| w.contains("approval needs a physician's override"))
        );
        let needed = plan.clone().approve(&physician(), vec![], None).unwrap_err();
        assert!(
            matches!(needed, ApprovalError::IndicationOverrideNeeded { .. }),
            "{needed}"
        );
        // Nine characters are one short, as for a limit override.
        assert!(matches!(
            plan.clone().approve(&physician(), vec![], Some("  too short ")),
            Err(ApprovalError::IndicationOverrideNeeded { .. })
        ));
        let approved = plan
            .approve(&physician(), vec![], Some("comorbid CRPS, pain team"))
            .unwrap();
        assert_eq!(approved.indication_override(), Some("comorbid CRPS, pain team"));
        // The fitting protocol needs none and refuses one.
        let trd = compute_plan(&request(&lib, "trd", &f, 1.0)).unwrap();
        assert!(trd.indication.matches());
        assert_eq!(
            trd.approve(&physician(), vec![], Some("no reason needed here"))
                .unwrap_err(),
            ApprovalError::NeedlessIndicationOverride
        );
    }
}
