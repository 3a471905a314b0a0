//! The protocol library: infusion protocols as versioned data files (`protocols/*.toml` at the
//! repository root, embedded here), each number with its source, and smart-pump-style soft and
//! hard limits. A clinic may replace the library with its own files in the same format; the loader
//! takes file contents, never paths (this crate does no I/O).

use std::collections::BTreeMap;

use ketaflow_pkpd::model::ModelId;
use serde::Deserialize;

use crate::measurements::{MeasureRule, MeasurementPlan, Window, instrument_by_code};
use crate::patient::Indication;
use crate::weight::WeightBasis;

/// The files shipped with Ketaflow: (file name, contents).
const EMBEDDED: [(&str, &str); 5] = [
    ("trd.toml", include_str!("../../../protocols/trd.toml")),
    (
        "bipolar-depression.toml",
        include_str!("../../../protocols/bipolar-depression.toml"),
    ),
    ("ptsd.toml", include_str!("../../../protocols/ptsd.toml")),
    ("crps.toml", include_str!("../../../protocols/crps.toml")),
    (
        "neuropathic-fibromyalgia.toml",
        include_str!("../../../protocols/neuropathic-fibromyalgia.toml"),
    ),
];
const EMBEDDED_LIBRARY: &str = include_str!("../../../protocols/library.toml");

/// A number with where it comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct Sourced<T> {
    /// The value.
    pub value: T,
    /// The source, or why it is a clinic setting.
    pub source: String,
    /// Whether the clinic chose the value (no consensus number exists).
    pub clinic_setting: bool,
}

/// How the protocol doses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DoseRule {
    /// A total dose spread evenly over the duration.
    AmountOver {
        /// mg per kg of dosing weight.
        mg_per_kg: f64,
        /// Minutes.
        duration_min: f64,
    },
    /// A rate held for the duration.
    RateFor {
        /// mg per kg of dosing weight per hour.
        mg_per_kg_per_h: f64,
        /// Minutes.
        duration_min: f64,
    },
}

impl DoseRule {
    /// The infusion duration, minutes.
    pub fn duration_min(&self) -> f64 {
        match *self {
            DoseRule::AmountOver { duration_min, .. } | DoseRule::RateFor { duration_min, .. } => {
                duration_min
            }
        }
    }

    /// The dose per session, mg/kg.
    pub fn mg_per_kg(&self) -> f64 {
        match *self {
            DoseRule::AmountOver { mg_per_kg, .. } => mg_per_kg,
            DoseRule::RateFor {
                mg_per_kg_per_h,
                duration_min,
            } => mg_per_kg_per_h * duration_min / 60.0,
        }
    }
}

/// A soft/hard limit pair.
#[derive(Clone, Debug, PartialEq)]
pub struct Limit {
    /// Above (or, for minimum spacing, below) this needs a physician's reasoned override.
    pub soft: f64,
    /// Never passes.
    pub hard: f64,
    /// Source.
    pub source: String,
    /// Whether the numbers are clinic settings.
    pub clinic_setting: bool,
}

/// The limits a plan is checked against.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Dose per session, mg/kg (maximum).
    pub dose_mg_per_kg: Limit,
    /// Infusion rate, mg/kg/h (maximum).
    pub rate_mg_per_kg_per_h: Limit,
    /// Dose per session, mg (maximum).
    pub mg_per_session: Limit,
    /// Pump rate, mL/h (maximum).
    pub pump_ml_per_h: Limit,
    /// Days since the previous session (minimum).
    pub min_days_between_sessions: Limit,
}

/// Post-infusion discharge rules.
#[derive(Clone, Debug, PartialEq)]
pub struct DischargeRules {
    /// Minimum observation after the infusion ends, minutes.
    pub min_observation_min: f64,
    /// Minimum modified Aldrete score.
    pub aldrete_min: u8,
    /// Required MOAA/S.
    pub moaas_required: u8,
    /// An escort must be present.
    pub escort_required: bool,
    /// The patient is told not to drive until the next day.
    pub no_driving_until_next_day: bool,
    /// Source.
    pub source: String,
}

/// How often vital signs are due in each phase of a session, and when blood pressure is taken.
#[derive(Clone, Debug, PartialEq)]
pub struct MonitoringRules {
    /// From check-in until the infusion starts: a set at least this often, minutes.
    pub before_start_every_min: f64,
    /// While the infusion runs (or is paused): at least this often, minutes.
    pub vitals_every_min: f64,
    /// From the stop until discharge: at least this often, minutes.
    pub recovery_every_min: f64,
    /// Blood pressure at these minutes after the start.
    pub bp_at_min: Vec<f64>,
    /// Source.
    pub source: String,
}

/// One infusion protocol.
#[derive(Clone, Debug, PartialEq)]
pub struct Protocol {
    /// Stable id, e.g. `trd`.
    pub id: String,
    /// Human name.
    pub name: String,
    /// Protocol version.
    pub version: u32,
    /// Indications it is for.
    pub indications: Vec<Indication>,
    /// Evidence grade and source.
    pub evidence: Sourced<String>,
    /// The dose.
    pub dose: Sourced<DoseRule>,
    /// Infusions in a series and over how many days.
    pub series: Sourced<(u32, u32)>,
    /// Dosing-weight basis.
    pub weight_basis: Sourced<WeightBasis>,
    /// Standard concentrations, mg/mL.
    pub concentrations_mg_per_ml: Sourced<Vec<f64>>,
    /// Limits.
    pub limits: Limits,
    /// The PK model for predictions.
    pub model: ModelId,
    /// Ce below which the effect is taken to have worn off, µg/mL.
    pub recovery_threshold_ug_per_ml: Sourced<f64>,
    /// Monitoring.
    pub monitoring: MonitoringRules,
    /// Discharge.
    pub discharge: DischargeRules,
    /// What is measured when (baseline, before each infusion, follow-ups).
    pub outcomes: MeasurementPlan,
}

/// A library of protocols with its version.
#[derive(Clone, Debug, PartialEq)]
pub struct ProtocolLibrary {
    /// Library version, recorded on every plan.
    pub version: String,
    /// Protocols by id.
    pub protocols: BTreeMap<String, Protocol>,
}

/// A protocol file that cannot be used.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("protocol file {file}: {problem}")]
pub struct ProtocolError {
    /// The file.
    pub file: String,
    /// What is wrong.
    pub problem: String,
}

// ---- File format -------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLibrary {
    version: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileProtocol {
    id: String,
    name: String,
    version: u32,
    indications: Vec<String>,
    evidence: FileEvidence,
    dose: FileDose,
    series: FileSeries,
    weight: FileWeight,
    concentrations: FileConcentrations,
    limits: FileLimits,
    prediction: FilePrediction,
    monitoring: FileMonitoring,
    discharge: FileDischarge,
    outcomes: FileOutcomes,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOutcomes {
    follow_up_days: Vec<u32>,
    early_days: u32,
    late_days: u32,
    source: String,
    #[serde(default)]
    clinic_setting: bool,
    measure: Vec<FileMeasure>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMeasure {
    instruments: Vec<String>,
    baseline: bool,
    pre_infusion: bool,
    follow_up: bool,
    #[serde(default)]
    for_indications: Vec<String>,
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEvidence {
    grade: String,
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDose {
    amount_mg_per_kg: Option<f64>,
    rate_mg_per_kg_per_h: Option<f64>,
    duration_min: f64,
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSeries {
    infusions: u32,
    over_days: u32,
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWeight {
    basis: String,
    source: String,
    #[serde(default)]
    clinic_setting: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConcentrations {
    mg_per_ml: Vec<f64>,
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimit {
    soft: f64,
    hard: f64,
    source: String,
    #[serde(default)]
    clinic_setting: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    dose_mg_per_kg: FileLimit,
    rate_mg_per_kg_per_h: FileLimit,
    mg_per_session: FileLimit,
    pump_ml_per_h: FileLimit,
    min_days_between_sessions: FileLimit,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePrediction {
    model: String,
    recovery_threshold_ug_per_ml: f64,
    source: String,
    #[serde(default)]
    clinic_setting: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMonitoring {
    before_start_every_min: f64,
    vitals_every_min: f64,
    recovery_every_min: f64,
    bp_at_min: Vec<f64>,
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDischarge {
    min_observation_min: f64,
    aldrete_min: u8,
    moaas_required: u8,
    escort_required: bool,
    no_driving_until_next_day: bool,
    source: String,
    #[serde(default)]
    clinic_setting: bool,
}

fn check_positive(file: &str, what: &str, value: f64, max: f64) -> Result<f64, ProtocolError> {
    if value.is_finite() && value > 0.0 && value <= max {
        Ok(value)
    } else {
        Err(ProtocolError {
            file: file.into(),
            problem: format!("{what} = {value} is outside (0, {max}]"),
        })
    }
}

fn limit(file: &str, name: &str, l: FileLimit, minimum: bool, max: f64) -> Result<Limit, ProtocolError> {
    check_positive(file, &format!("limits.{name}.soft"), l.soft, max)?;
    check_positive(file, &format!("limits.{name}.hard"), l.hard, max)?;
    // For maxima the hard limit is the larger; for a minimum spacing it is the smaller.
    let ordered = if minimum {
        l.hard <= l.soft
    } else {
        l.soft <= l.hard
    };
    if !ordered {
        return Err(ProtocolError {
            file: file.into(),
            problem: format!(
                "limits.{name}: soft {} and hard {} are the wrong way round",
                l.soft, l.hard
            ),
        });
    }
    if l.source.trim().is_empty() {
        return Err(ProtocolError {
            file: file.into(),
            problem: format!("limits.{name} has no source"),
        });
    }
    Ok(Limit {
        soft: l.soft,
        hard: l.hard,
        source: l.source,
        clinic_setting: l.clinic_setting,
    })
}

/// Longest follow-up and widest window a protocol may set, days (a year: beyond it a score is not
/// a follow-up of this course).
const MAX_SCHEDULE_DAYS: u32 = 365;

fn outcomes(file: &str, f: FileOutcomes) -> Result<MeasurementPlan, ProtocolError> {
    let err = |problem: String| ProtocolError {
        file: file.into(),
        problem,
    };
    if f.measure.is_empty() {
        return Err(err("outcomes.measure lists no instrument".into()));
    }
    if f.source.trim().is_empty() {
        return Err(err("outcomes has no source".into()));
    }
    for (name, value) in [("early_days", f.early_days), ("late_days", f.late_days)] {
        if value > MAX_SCHEDULE_DAYS {
            return Err(err(format!(
                "outcomes.{name} = {value} is outside 0–{MAX_SCHEDULE_DAYS} days"
            )));
        }
    }
    for (i, d) in f.follow_up_days.iter().enumerate() {
        if *d == 0 || *d > MAX_SCHEDULE_DAYS || (i > 0 && f.follow_up_days[i - 1] >= *d) {
            return Err(err(format!(
                "outcomes.follow_up_days {:?}: each must be 1–{MAX_SCHEDULE_DAYS} days and larger than the one before",
                f.follow_up_days
            )));
        }
    }
    let mut measures = Vec::new();
    for (n, m) in f.measure.into_iter().enumerate() {
        let at = format!("outcomes.measure[{n}]");
        if m.instruments.is_empty() {
            return Err(err(format!("{at}.instruments lists no instrument")));
        }
        let instruments = m
            .instruments
            .iter()
            .map(|code| {
                instrument_by_code(code).ok_or_else(|| {
                    err(format!(
                        "{at}.instruments: {code:?} is not one of {}",
                        crate::instruments::Instrument::ALL.map(|i| i.code()).join(", ")
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let for_indications = m
            .for_indications
            .iter()
            .map(|code| {
                code.parse::<Indication>()
                    .map_err(|e| err(format!("{at}.for_indications: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !(m.baseline || m.pre_infusion || m.follow_up) {
            return Err(err(format!(
                "{at} is taken on no occasion: set baseline, pre_infusion or follow_up"
            )));
        }
        if m.source.trim().is_empty() {
            return Err(err(format!("{at} has no source")));
        }
        measures.push(MeasureRule {
            instruments,
            baseline: m.baseline,
            pre_infusion: m.pre_infusion,
            follow_up: m.follow_up,
            for_indications,
            source: m.source,
        });
    }
    Ok(MeasurementPlan {
        measures,
        follow_up_days: f.follow_up_days,
        window: Window {
            early_days: f.early_days,
            late_days: f.late_days,
        },
        source: f.source,
        clinic_setting: f.clinic_setting,
    })
}

fn sourced<T>(value: T, source: String, clinic_setting: bool) -> Sourced<T> {
    Sourced {
        value,
        source,
        clinic_setting,
    }
}

impl Protocol {
    /// Parses and checks one protocol file.
    pub fn from_toml(file: &str, text: &str) -> Result<Protocol, ProtocolError> {
        let err = |problem: String| ProtocolError {
            file: file.into(),
            problem,
        };
        let f: FileProtocol = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let indications = f
            .indications
            .iter()
            .map(|code| code.parse::<Indication>().map_err(|e| err(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let duration_min = check_positive(file, "dose.duration_min", f.dose.duration_min, 24.0 * 60.0 * 7.0)?;
        let dose = match (f.dose.amount_mg_per_kg, f.dose.rate_mg_per_kg_per_h) {
            (Some(mg_per_kg), None) => DoseRule::AmountOver {
                mg_per_kg: check_positive(file, "dose.amount_mg_per_kg", mg_per_kg, 10.0)?,
                duration_min,
            },
            (None, Some(rate)) => DoseRule::RateFor {
                mg_per_kg_per_h: check_positive(file, "dose.rate_mg_per_kg_per_h", rate, 10.0)?,
                duration_min,
            },
            _ => {
                return Err(err(
                    "dose needs exactly one of amount_mg_per_kg and rate_mg_per_kg_per_h".into(),
                ));
            }
        };
        let weight_basis = match f.weight.basis.as_str() {
            "actual" => WeightBasis::Actual,
            "ideal" => WeightBasis::Ideal,
            "adjusted" => WeightBasis::Adjusted,
            other => {
                return Err(err(format!(
                    "weight.basis {other:?} is not one of actual, ideal, adjusted"
                )));
            }
        };
        if f.concentrations.mg_per_ml.is_empty() {
            return Err(err("concentrations.mg_per_ml lists no concentration".into()));
        }
        for c in &f.concentrations.mg_per_ml {
            check_positive(file, "concentrations.mg_per_ml", *c, 100.0)?;
        }
        let model: ModelId = f
            .prediction
            .model
            .parse()
            .map_err(|e: ketaflow_pkpd::model::UnknownModel| err(e.to_string()))?;
        let threshold = check_positive(
            file,
            "prediction.recovery_threshold_ug_per_ml",
            f.prediction.recovery_threshold_ug_per_ml,
            10.0,
        )?;
        let limits = Limits {
            dose_mg_per_kg: limit(file, "dose_mg_per_kg", f.limits.dose_mg_per_kg, false, 10.0)?,
            rate_mg_per_kg_per_h: limit(
                file,
                "rate_mg_per_kg_per_h",
                f.limits.rate_mg_per_kg_per_h,
                false,
                10.0,
            )?,
            mg_per_session: limit(file, "mg_per_session", f.limits.mg_per_session, false, 5000.0)?,
            pump_ml_per_h: limit(file, "pump_ml_per_h", f.limits.pump_ml_per_h, false, 10_000.0)?,
            min_days_between_sessions: limit(
                file,
                "min_days_between_sessions",
                f.limits.min_days_between_sessions,
                true,
                365.0,
            )?,
        };
        // The protocol's own dose must pass its own hard limits, or every plan would be refused.
        if dose.mg_per_kg() > limits.dose_mg_per_kg.hard {
            return Err(err(format!(
                "the dose {} mg/kg exceeds the protocol's own hard limit {} mg/kg",
                dose.mg_per_kg(),
                limits.dose_mg_per_kg.hard
            )));
        }
        let outcomes = outcomes(file, f.outcomes)?;
        Ok(Protocol {
            outcomes,
            id: f.id,
            name: f.name,
            version: f.version,
            indications,
            evidence: sourced(f.evidence.grade, f.evidence.source, false),
            dose: sourced(dose, f.dose.source, false),
            series: sourced((f.series.infusions, f.series.over_days), f.series.source, false),
            weight_basis: sourced(weight_basis, f.weight.source, f.weight.clinic_setting),
            concentrations_mg_per_ml: sourced(f.concentrations.mg_per_ml, f.concentrations.source, false),
            limits,
            model,
            recovery_threshold_ug_per_ml: sourced(
                threshold,
                f.prediction.source,
                f.prediction.clinic_setting,
            ),
            // A set of vitals at least every 4 hours in any phase: beyond that the schedule would
            // not be a monitoring schedule at all.
            monitoring: MonitoringRules {
                before_start_every_min: check_positive(
                    file,
                    "monitoring.before_start_every_min",
                    f.monitoring.before_start_every_min,
                    240.0,
                )?,
                vitals_every_min: check_positive(
                    file,
                    "monitoring.vitals_every_min",
                    f.monitoring.vitals_every_min,
                    240.0,
                )?,
                recovery_every_min: check_positive(
                    file,
                    "monitoring.recovery_every_min",
                    f.monitoring.recovery_every_min,
                    240.0,
                )?,
                bp_at_min: f.monitoring.bp_at_min,
                source: f.monitoring.source,
            },
            discharge: DischargeRules {
                min_observation_min: f.discharge.min_observation_min,
                aldrete_min: f.discharge.aldrete_min,
                moaas_required: f.discharge.moaas_required,
                escort_required: f.discharge.escort_required,
                no_driving_until_next_day: f.discharge.no_driving_until_next_day,
                source: if f.discharge.clinic_setting {
                    format!("{} (clinic setting)", f.discharge.source)
                } else {
                    f.discharge.source
                },
            },
        })
    }
}

impl ProtocolLibrary {
    /// The library shipped in the binary.
    pub fn embedded() -> ProtocolLibrary {
        Self::from_files(
            EMBEDDED_LIBRARY,
            EMBEDDED.iter().map(|(n, t)| (n.to_string(), t.to_string())),
        )
        .expect("the embedded protocol library is checked by its tests")
    }

    /// A library from a `library.toml` text and (file name, contents) pairs.
    pub fn from_files(
        library: &str,
        files: impl IntoIterator<Item = (String, String)>,
    ) -> Result<ProtocolLibrary, ProtocolError> {
        let lib: FileLibrary = toml::from_str(library).map_err(|e| ProtocolError {
            file: "library.toml".into(),
            problem: e.to_string(),
        })?;
        let mut protocols = BTreeMap::new();
        for (name, text) in files {
            let protocol = Protocol::from_toml(&name, &text)?;
            if protocols.contains_key(&protocol.id) {
                return Err(ProtocolError {
                    file: name,
                    problem: format!("protocol id {:?} is used twice", protocol.id),
                });
            }
            protocols.insert(protocol.id.clone(), protocol);
        }
        Ok(ProtocolLibrary {
            version: lib.version,
            protocols,
        })
    }

    /// A protocol by id.
    pub fn get(&self, id: &str) -> Option<&Protocol> {
        self.protocols.get(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_library_loads_with_every_required_protocol() {
        let lib = ProtocolLibrary::embedded();
        assert_eq!(lib.version, "2026.12.1");
        let trd = lib.get("trd").unwrap();
        assert_eq!(
            trd.dose.value,
            DoseRule::AmountOver {
                mg_per_kg: 0.5,
                duration_min: 40.0
            }
        );
        assert_eq!(trd.series.value, (6, 12));
        let crps = lib.get("crps").unwrap();
        assert_eq!(
            crps.dose.value,
            DoseRule::RateFor {
                mg_per_kg_per_h: 0.35,
                duration_min: 240.0
            }
        );
        assert!((crps.dose.value.mg_per_kg() - 1.4).abs() < 1e-12);
        for id in ["bipolar-depression", "ptsd", "neuropathic-fibromyalgia"] {
            assert!(lib.get(id).is_some(), "{id}");
        }
        let weak = lib.get("neuropathic-fibromyalgia").unwrap();
        assert!(weak.evidence.value.starts_with("D"), "{}", weak.evidence.value);
        assert_eq!(
            weak.indications,
            vec![Indication::NeuropathicPain, Indication::Fibromyalgia]
        );
        // Every protocol names sources for its numbers.
        for p in lib.protocols.values() {
            for l in [
                &p.limits.dose_mg_per_kg,
                &p.limits.rate_mg_per_kg_per_h,
                &p.limits.mg_per_session,
                &p.limits.pump_ml_per_h,
            ] {
                assert!(!l.source.is_empty() && l.soft <= l.hard, "{}", p.id);
            }
            assert!(!p.dose.source.is_empty() && !p.recovery_threshold_ug_per_ml.source.is_empty());
        }
    }

    #[test]
    fn every_protocol_has_a_sourced_measurement_schedule() {
        use crate::instruments::Instrument;
        let lib = ProtocolLibrary::embedded();
        let trd = &lib.get("trd").unwrap().outcomes;
        assert_eq!(trd.follow_up_days, vec![1, 7, 28, 84]);
        assert_eq!(
            trd.window,
            Window {
                early_days: 3,
                late_days: 3
            }
        );
        assert!(trd.clinic_setting);
        assert_eq!(trd.measures[0].instruments, vec![Instrument::Phq9]);
        assert_eq!(
            trd.measures[1].instruments,
            vec![Instrument::QidsSr16, Instrument::Madrs]
        );
        let fm = &lib.get("neuropathic-fibromyalgia").unwrap().outcomes;
        assert_eq!(fm.measures[2].for_indications, vec![Indication::Fibromyalgia]);
        assert_eq!(
            lib.get("ptsd").unwrap().outcomes.measures[0].instruments,
            vec![Instrument::Pcl5]
        );
        assert_eq!(
            lib.get("crps").unwrap().outcomes.measures[1].instruments,
            vec![Instrument::CrpsSeverityScore]
        );
        for p in lib.protocols.values() {
            assert!(!p.outcomes.source.is_empty(), "{}", p.id);
            assert!(
                p.outcomes.measures.iter().all(|m| !m.source.is_empty()),
                "{}",
                p.id
            );
        }
    }

    #[test]
    fn a_bad_measurement_schedule_names_the_value_and_what_is_allowed() {
        let trd = include_str!("../../../protocols/trd.toml");
        let bad = |from: &str, to: &str| {
            assert!(trd.contains(from), "{from}");
            Protocol::from_toml("x.toml", &trd.replacen(from, to, 1))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            bad("instruments = [\"phq9\"]", "instruments = [\"phq10\"]"),
            "protocol file x.toml: outcomes.measure[0].instruments: \"phq10\" is not one of phq9, gad7, \
             pcl5, madrs, qids_sr16, pain_nrs, bpi_sf, fiqr, crps_css"
        );
        assert!(
            bad("[1, 7, 28, 84]", "[7, 1]")
                .contains("outcomes.follow_up_days [7, 1]: each must be 1–365 days"),
        );
        assert_eq!(
            bad("early_days = 3", "early_days = 400"),
            "protocol file x.toml: outcomes.early_days = 400 is outside 0–365 days"
        );
        assert!(
            bad(
                "baseline = true\npre_infusion = true\nfollow_up = true",
                "baseline = false\npre_infusion = false\nfollow_up = false"
            )
            .contains("outcomes.measure[0] is taken on no occasion")
        );
    }

    #[test]
    fn a_bad_file_says_which_file_and_what() {
        let text = include_str!("../../../protocols/trd.toml").replace("hard = 1.0\n", "hard = 0.6\n");
        let err = Protocol::from_toml("mine.toml", &text).unwrap_err().to_string();
        assert!(
            err.starts_with("protocol file mine.toml: limits.dose_mg_per_kg: soft 0.75 and hard 0.6"),
            "{err}"
        );
        let text = include_str!("../../../protocols/trd.toml")
            .replace("model = \"kamp2020\"", "model = \"propofol\"");
        assert!(
            Protocol::from_toml("x.toml", &text)
                .unwrap_err()
                .to_string()
                .contains("unknown model")
        );
        let text = include_str!("../../../protocols/trd.toml")
            .replace("version = 2\n", "version = 2\nsurprise = 2\n");
        assert!(
            Protocol::from_toml("x.toml", &text)
                .unwrap_err()
                .to_string()
                .contains("unknown field")
        );
        let text = include_str!("../../../protocols/trd.toml")
            .replace("recovery_every_min = 15\n", "recovery_every_min = 600\n");
        let err = Protocol::from_toml("x.toml", &text).unwrap_err().to_string();
        assert!(err.contains("monitoring.recovery_every_min"), "{err}");
        let text = include_str!("../../../protocols/trd.toml").replace("recovery_every_min = 15\n", "");
        let err = Protocol::from_toml("x.toml", &text).unwrap_err().to_string();
        assert!(err.contains("missing field `recovery_every_min`"), "{err}");
    }
}
