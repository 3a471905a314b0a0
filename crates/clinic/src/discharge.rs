//! Post-infusion discharge criteria (`shared/domain/clinical.md` §4; the protocol's
//! [`DischargeRules`]): each criterion evaluated with what was seen, what is required and its
//! source; the earliest time discharge can be considered; the instructions the patient leaves with;
//! and the rule that lets a discharge proceed (every criterion met, or a physician's override with a
//! reason).
//!
//! The assessment recommends; it changes nothing. The caller applies
//! [`crate::session::SessionEvent::Discharge`] only after [`discharge_basis`] says yes.

/// Characters an override reason needs: the same as a plan override's.
pub use crate::plan::MIN_OVERRIDE_REASON_CHARS;
use time::{Duration, OffsetDateTime};

use crate::news2::Aldrete;
use crate::patient::BloodPressure;
use crate::protocol::DischargeRules;
use crate::vitals::{Threshold, VitalSigns};

/// Source of the ±20 mmHg blood-pressure tolerance: the circulation item of the modified Aldrete
/// score scores 2 for a BP within ±20 mmHg of the pre-anaesthetic level.
const ALDRETE_CIRCULATION: &str = "modified Aldrete circulation item: BP within ±20 mmHg of the pre-anaesthetic level (Aldrete JA, J Clin Anesth 1995;7:89-91, citation UNVERIFIED; clinical.md section 4.1)";
/// The Aldrete item says "BP" without naming systolic or diastolic; applying it to the diastolic
/// too is this clinic's reading.
const ALDRETE_CIRCULATION_DIASTOLIC: &str = "modified Aldrete circulation item: BP within ±20 mmHg of the pre-anaesthetic level (Aldrete JA, J Clin Anesth 1995;7:89-91, citation UNVERIFIED; clinical.md section 4.1); the item says BP, applying it to the diastolic is a clinic setting";
/// No source gives a heart-rate band for discharge after ketamine.
const HR_TOLERANCE: &str = "clinic setting: no published heart-rate discharge band for subanaesthetic ketamine (PADSS uses within 20 % of the pre-operative value for all vital signs, Chung 1995, clinical.md section 4.2)";

const ALDRETE_SOURCE: &str = "modified Aldrete score (Aldrete JA, J Clin Anesth 1995;7:89-91, citation UNVERIFIED; clinical.md section 4.1)";
const MOAAS_SOURCE: &str =
    "MOAA/S (Chernik DA et al. J Clin Psychopharmacol 1990;10:244-251; clinical.md section 5.3)";
const ESCORT_SOURCE: &str = "Spravato PI (someone must drive the patient home); Ketamine HCl injection label, Mylan: accompanied by a responsible adult (clinical.md section 4)";
const ALARM_SOURCE: &str =
    "clinic setting: every alarm raised during the session is resolved or acknowledged before discharge";
const PK_SOURCE: &str = "PK prediction with the protocol's model and recovery threshold (informative: the threshold is the protocol's, see its prediction source)";

/// Told when `no_driving_until_next_day` is set. Sources: Spravato PI (esketamine: not until the
/// next day after restful sleep); Micromedex patient information for ketamine, "Do not drive or do
/// anything else that could be dangerous within 24 hours" (mayoclinic.org; clinical.md §4).
pub const NO_DRIVING_INSTRUCTION: &str = "No driving until the next day, after a restful sleep: do not drive or do anything else that could be dangerous within 24 hours.";
/// Told when an escort is required. Sources: Spravato PI; Ketamine HCl injection label, Mylan
/// ("accompanied by a responsible adult"); clinical.md §4.
pub const ESCORT_INSTRUCTION: &str =
    "Leave with a responsible adult who takes you home; do not travel home alone or by driving yourself.";
/// Always told. Source: Ketalar PI special note: emergence reactions can recur up to 24 h after
/// ketamine (reported at anaesthetic doses; clinical.md §4).
pub const RECURRENCE_INSTRUCTION: &str = "Dream-like feelings or confusion can come back within the next 24 hours; if they do, or if you feel unwell, call the clinic.";

/// How far the latest vitals may be from the patient's baseline for discharge, each side.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BaselineTolerance {
    /// Systolic, ± mmHg.
    pub systolic_mmhg: Threshold,
    /// Diastolic, ± mmHg.
    pub diastolic_mmhg: Threshold,
    /// Heart rate, ± beats/min.
    pub heart_rate_per_min: Threshold,
}

impl Default for BaselineTolerance {
    /// ±20 mmHg systolic and diastolic (Aldrete 1995 circulation item); ±20 /min heart rate
    /// (clinic setting).
    fn default() -> Self {
        BaselineTolerance {
            systolic_mmhg: Threshold {
                value: 20.0,
                source: ALDRETE_CIRCULATION,
                clinic_setting: false,
            },
            diastolic_mmhg: Threshold {
                value: 20.0,
                source: ALDRETE_CIRCULATION_DIASTOLIC,
                clinic_setting: true,
            },
            heart_rate_per_min: Threshold {
                value: 20.0,
                source: HR_TOLERANCE,
                clinic_setting: true,
            },
        }
    }
}

/// A set of vital signs with the time it was taken.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TakenVitals {
    /// The readings.
    pub vitals: VitalSigns,
    /// When they were taken.
    pub taken_at: OffsetDateTime,
}

/// Everything the discharge decision looks at.
#[derive(Clone, Debug, PartialEq)]
pub struct DischargeInput<'a> {
    /// The protocol's discharge rules.
    pub rules: &'a DischargeRules,
    /// When the infusion ended.
    pub infusion_ended_at: OffsetDateTime,
    /// The time of the assessment.
    pub now: OffsetDateTime,
    /// The latest vital signs (needs systolic, diastolic and heart rate), taken after the infusion
    /// ended.
    pub latest_vitals: Option<TakenVitals>,
    /// Baseline blood pressure (intake or pre-infusion).
    pub baseline_bp: Option<BloodPressure>,
    /// Baseline heart rate, beats/min.
    pub baseline_heart_rate_per_min: Option<f64>,
    /// The latest modified Aldrete score.
    pub aldrete: Option<Aldrete>,
    /// The latest MOAA/S, 0–5.
    pub moaas: Option<u8>,
    /// Alarms raised and not yet resolved or acknowledged.
    pub unresolved_alarms: usize,
    /// Whether the escort is present.
    pub escort_present: bool,
    /// When the PK-predicted effect-site concentration falls below the protocol's recovery
    /// threshold for good; `None` if it is predicted never to be above it.
    pub pk_ce_below_threshold_at: Option<OffsetDateTime>,
    /// The tolerance around the baseline.
    pub tolerance: BaselineTolerance,
}

/// One criterion evaluated.
#[derive(Clone, Debug, PartialEq)]
pub struct Criterion {
    /// Stable code: `min_observation`, `aldrete`, `vitals_near_baseline`, `no_unresolved_alarm`,
    /// `moaas`, `escort`, `pk_recovery`.
    pub code: &'static str,
    /// Whether it is met.
    pub met: bool,
    /// What was seen against what is required.
    pub detail: String,
    /// Where the requirement comes from.
    pub source: String,
}

/// The discharge assessment.
#[derive(Clone, Debug, PartialEq)]
pub struct DischargeAssessment {
    /// Every criterion, in a fixed order.
    pub criteria: Vec<Criterion>,
    /// The earliest time discharge can be considered: the later of the end of the minimum
    /// observation and the PK-predicted recovery time. The other criteria may still be unmet then.
    pub earliest_at: OffsetDateTime,
    /// Whether every criterion is met.
    pub all_met: bool,
    /// What the patient is told on leaving.
    pub instructions: Vec<String>,
}

impl DischargeAssessment {
    /// The codes of the criteria not met.
    pub fn unmet(&self) -> Vec<&'static str> {
        self.criteria.iter().filter(|c| !c.met).map(|c| c.code).collect()
    }

    /// The criteria not met, in words.
    pub fn unmet_names(&self) -> Vec<&'static str> {
        self.criteria
            .iter()
            .filter(|c| !c.met)
            .map(|c| criterion_name(c.code))
            .collect()
    }
}

/// A criterion in words, as a discharge checklist names it.
pub fn criterion_name(code: &str) -> &'static str {
    match code {
        "min_observation" => "minimum observation time",
        "aldrete" => "modified Aldrete score",
        "vitals_near_baseline" => "vital signs near baseline",
        "no_unresolved_alarm" => "no open alarm",
        "moaas" => "responsiveness (MOAA/S)",
        "escort" => "escort present",
        "pk_recovery" => "predicted recovery from the patient's concentrations",
        _ => "another criterion",
    }
}

fn minutes(d: Duration) -> f64 {
    d.as_seconds_f64() / 60.0
}

fn observation_end(input: &DischargeInput<'_>) -> OffsetDateTime {
    input.infusion_ended_at + Duration::seconds_f64(input.rules.min_observation_min * 60.0)
}

fn vitals_criterion(input: &DischargeInput<'_>) -> Criterion {
    let tol = &input.tolerance;
    let source = format!(
        "systolic ±{} mmHg: {}; diastolic ±{} mmHg: {}; heart rate ±{} /min: {}",
        tol.systolic_mmhg.value,
        tol.systolic_mmhg.source,
        tol.diastolic_mmhg.value,
        tol.diastolic_mmhg.source,
        tol.heart_rate_per_min.value,
        tol.heart_rate_per_min.source
    );
    let not_met = |detail: String| Criterion {
        code: "vitals_near_baseline",
        met: false,
        detail,
        source: source.clone(),
    };
    let Some(taken) = input.latest_vitals else {
        return not_met("no vital signs recorded after the infusion".into());
    };
    if taken.taken_at < input.infusion_ended_at {
        return not_met(format!(
            "the latest vital signs ({}) were taken before the infusion ended ({}); take a set now",
            taken.taken_at, input.infusion_ended_at
        ));
    }
    if taken.taken_at > input.now {
        return not_met(format!(
            "the latest vital signs are dated {}, after the assessment time {}",
            taken.taken_at, input.now
        ));
    }
    if let Err(e) = taken.vitals.check() {
        return not_met(format!("the latest vital signs are not plausible: {e}"));
    }
    let v = taken.vitals;
    let mut missing = Vec::new();
    let pairs = [
        (
            "systolic",
            "mmHg",
            v.systolic_mmhg,
            input.baseline_bp.map(|b| b.systolic_mmhg),
            tol.systolic_mmhg.value,
        ),
        (
            "diastolic",
            "mmHg",
            v.diastolic_mmhg,
            input.baseline_bp.map(|b| b.diastolic_mmhg),
            tol.diastolic_mmhg.value,
        ),
        (
            "heart rate",
            "/min",
            v.heart_rate_per_min,
            input.baseline_heart_rate_per_min,
            tol.heart_rate_per_min.value,
        ),
    ];
    let mut seen = Vec::new();
    let mut met = true;
    for (name, unit, now, baseline, within) in pairs {
        match (now, baseline) {
            (Some(now), Some(baseline)) => {
                let ok = (now - baseline).abs() <= within;
                met &= ok;
                seen.push(format!(
                    "{name} {now} {unit} vs baseline {baseline} (difference {:+}, allowed ±{within}){}",
                    now - baseline,
                    if ok { "" } else { " OUT OF RANGE" }
                ));
            }
            (now, baseline) => {
                if now.is_none() {
                    missing.push(format!("latest {name}"));
                }
                if baseline.is_none() {
                    missing.push(format!("baseline {name}"));
                }
            }
        }
    }
    if !missing.is_empty() {
        return not_met(format!(
            "cannot compare with baseline: missing {}",
            missing.join(", ")
        ));
    }
    Criterion {
        code: "vitals_near_baseline",
        met,
        detail: seen.join("; "),
        source,
    }
}

/// Evaluates every discharge criterion at `input.now`.
pub fn assess_discharge(input: &DischargeInput<'_>) -> DischargeAssessment {
    let rules = input.rules;
    let observed_until = observation_end(input);
    let mut criteria = Vec::new();

    let observed = input.now - input.infusion_ended_at;
    criteria.push(Criterion {
        code: "min_observation",
        met: input.now >= observed_until,
        detail: format!(
            "{:.2} min since the infusion ended at {}; required ≥ {} min (until {observed_until})",
            minutes(observed),
            input.infusion_ended_at,
            rules.min_observation_min
        ),
        source: rules.source.clone(),
    });

    let (met, detail) = match input.aldrete {
        None => (
            false,
            format!("no Aldrete score recorded; required ≥ {}", rules.aldrete_min),
        ),
        Some(a) => match a.total() {
            None => (
                false,
                format!("the Aldrete score has an item outside 0–2 ({a:?}); rescore"),
            ),
            Some(total) => (
                total >= rules.aldrete_min,
                format!("Aldrete {total}; required ≥ {}", rules.aldrete_min),
            ),
        },
    };
    criteria.push(Criterion {
        code: "aldrete",
        met,
        detail,
        source: format!("{ALDRETE_SOURCE}; minimum: {}", rules.source),
    });

    criteria.push(vitals_criterion(input));

    criteria.push(Criterion {
        code: "no_unresolved_alarm",
        met: input.unresolved_alarms == 0,
        detail: format!("{} unresolved alarm(s); required 0", input.unresolved_alarms),
        source: ALARM_SOURCE.into(),
    });

    let (met, detail) = match input.moaas {
        None => (
            false,
            format!("no MOAA/S recorded; required {}", rules.moaas_required),
        ),
        Some(m) => (
            m == rules.moaas_required,
            format!("MOAA/S {m}; required {}", rules.moaas_required),
        ),
    };
    criteria.push(Criterion {
        code: "moaas",
        met,
        detail,
        source: format!("{MOAAS_SOURCE}; required level: {}", rules.source),
    });

    if rules.escort_required {
        criteria.push(Criterion {
            code: "escort",
            met: input.escort_present,
            detail: if input.escort_present {
                "escort present; required".into()
            } else {
                "no escort present; required".into()
            },
            source: ESCORT_SOURCE.into(),
        });
    }

    let (met, detail) = match input.pk_ce_below_threshold_at {
        None => (
            true,
            "predicted effect-site concentration never above the recovery threshold".to_string(),
        ),
        Some(at) => (
            input.now >= at,
            format!(
                "predicted effect-site concentration below the recovery threshold from {at}; now {}",
                input.now
            ),
        ),
    };
    criteria.push(Criterion {
        code: "pk_recovery",
        met,
        detail,
        source: PK_SOURCE.into(),
    });

    let earliest_at = match input.pk_ce_below_threshold_at {
        Some(at) => observed_until.max(at),
        None => observed_until,
    };
    let mut instructions = Vec::new();
    if rules.no_driving_until_next_day {
        instructions.push(NO_DRIVING_INSTRUCTION.to_string());
    }
    if rules.escort_required {
        instructions.push(ESCORT_INSTRUCTION.to_string());
    }
    instructions.push(RECURRENCE_INSTRUCTION.to_string());
    DischargeAssessment {
        all_met: criteria.iter().all(|c| c.met),
        criteria,
        earliest_at,
        instructions,
    }
}

/// Why a patient is discharged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DischargeBasis {
    /// Every criterion is met.
    CriteriaMet,
    /// A physician discharged before every criterion was met, with this reason.
    PhysicianOverride {
        /// The reason, trimmed.
        reason: String,
        /// The criteria that were unmet.
        unmet: Vec<&'static str>,
    },
}

/// Why a discharge is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DischargeRefusal {
    /// Criteria are unmet and no override was asked for.
    CriteriaUnmet(Vec<&'static str>),
    /// An override was asked for by someone who is not a physician.
    OverrideNotPermitted,
    /// An override needs a reason of [`MIN_OVERRIDE_REASON_CHARS`]–1000 characters, as a plan's
    /// override does.
    OverrideNeedsReason,
    /// An urgent alarm is still unacknowledged: someone must look at it before the patient leaves.
    UrgentAlarmUnacknowledged(Vec<String>),
}

/// A request to discharge before every criterion is met.
#[derive(Clone, Copy, Debug)]
pub struct OverrideRequest<'a> {
    /// Whether the person asking may make physician decisions.
    pub by_physician: bool,
    /// Their reason.
    pub reason: Option<&'a str>,
}

/// An open alarm as the discharge rule sees it.
#[derive(Clone, Copy, Debug)]
pub struct OpenAlarm<'a> {
    /// Its code.
    pub code: &'a str,
    /// Whether it is urgent (act now).
    pub urgent: bool,
    /// Whether someone has acknowledged it.
    pub acknowledged: bool,
}

/// The discharge rule: no patient leaves while an urgent alarm is unacknowledged; discharge when
/// every criterion is met; otherwise only a physician, with a reason as long as a plan override's,
/// may discharge, and the unmet criteria stay on the record beside the reason.
pub fn discharge_basis(
    assessment: &DischargeAssessment,
    open_alarms: &[OpenAlarm<'_>],
    override_request: Option<OverrideRequest<'_>>,
) -> Result<DischargeBasis, DischargeRefusal> {
    let unacknowledged: Vec<String> = open_alarms
        .iter()
        .filter(|a| a.urgent && !a.acknowledged)
        .map(|a| a.code.to_string())
        .collect();
    if !unacknowledged.is_empty() {
        return Err(DischargeRefusal::UrgentAlarmUnacknowledged(unacknowledged));
    }
    if assessment.all_met {
        return Ok(DischargeBasis::CriteriaMet);
    }
    let Some(request) = override_request else {
        return Err(DischargeRefusal::CriteriaUnmet(assessment.unmet()));
    };
    if !request.by_physician {
        return Err(DischargeRefusal::OverrideNotPermitted);
    }
    let reason = request.reason.map(str::trim).unwrap_or_default();
    if !(MIN_OVERRIDE_REASON_CHARS..=1000).contains(&reason.chars().count()) {
        return Err(DischargeRefusal::OverrideNeedsReason);
    }
    Ok(DischargeBasis::PhysicianOverride {
        reason: reason.to_string(),
        unmet: assessment.unmet(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ProtocolLibrary;
    use time::macros::datetime;

    const END: OffsetDateTime = datetime!(2026-11-26 10:00 UTC);

    fn full_aldrete() -> Aldrete {
        Aldrete {
            activity: 2,
            respiration: 2,
            circulation: 2,
            consciousness: 2,
            spo2: 2,
        }
    }

    fn vitals(sys: f64, dia: f64, hr: f64) -> VitalSigns {
        VitalSigns {
            systolic_mmhg: Some(sys),
            diastolic_mmhg: Some(dia),
            heart_rate_per_min: Some(hr),
            spo2_percent: Some(98.0),
            respiratory_rate_per_min: Some(14.0),
            ..VitalSigns::default()
        }
    }

    /// trd rules (90 min, Aldrete ≥ 9, MOAA/S 5, escort, no driving); everything fine at 11:45.
    fn ready(rules: &DischargeRules) -> DischargeInput<'_> {
        DischargeInput {
            rules,
            infusion_ended_at: END,
            now: datetime!(2026-11-26 11:45 UTC),
            latest_vitals: Some(TakenVitals {
                vitals: vitals(125.0, 80.0, 75.0),
                taken_at: datetime!(2026-11-26 11:40 UTC),
            }),
            baseline_bp: Some(BloodPressure {
                systolic_mmhg: 120.0,
                diastolic_mmhg: 78.0,
            }),
            baseline_heart_rate_per_min: Some(70.0),
            aldrete: Some(full_aldrete()),
            moaas: Some(5),
            unresolved_alarms: 0,
            escort_present: true,
            pk_ce_below_threshold_at: Some(datetime!(2026-11-26 10:40 UTC)),
            tolerance: BaselineTolerance::default(),
        }
    }

    fn trd_rules() -> DischargeRules {
        ProtocolLibrary::embedded().get("trd").unwrap().discharge.clone()
    }

    fn met(a: &DischargeAssessment, code: &str) -> bool {
        a.criteria.iter().find(|c| c.code == code).unwrap().met
    }

    #[test]
    fn all_met_with_the_trd_rules() {
        let rules = trd_rules();
        assert_eq!(
            (rules.min_observation_min, rules.aldrete_min, rules.moaas_required),
            (90.0, 9, 5)
        );
        let a = assess_discharge(&ready(&rules));
        let codes: Vec<_> = a.criteria.iter().map(|c| c.code).collect();
        assert_eq!(
            codes,
            vec![
                "min_observation",
                "aldrete",
                "vitals_near_baseline",
                "no_unresolved_alarm",
                "moaas",
                "escort",
                "pk_recovery"
            ]
        );
        assert!(a.all_met, "{:?}", a.unmet());
        // 10:00 + 90 min = 11:30, later than the PK time 10:40.
        assert_eq!(a.earliest_at, datetime!(2026-11-26 11:30 UTC));
        assert_eq!(
            a.instructions,
            vec![NO_DRIVING_INSTRUCTION, ESCORT_INSTRUCTION, RECURRENCE_INSTRUCTION]
        );
        assert_eq!(discharge_basis(&a, &[], None), Ok(DischargeBasis::CriteriaMet));
    }

    #[test]
    fn minimum_observation_is_met_exactly_at_its_end() {
        let rules = trd_rules();
        let at_end = DischargeInput {
            now: datetime!(2026-11-26 11:30 UTC),
            latest_vitals: Some(TakenVitals {
                vitals: vitals(125.0, 80.0, 75.0),
                taken_at: datetime!(2026-11-26 11:25 UTC),
            }),
            ..ready(&rules)
        };
        let a = assess_discharge(&at_end);
        assert!(met(&a, "min_observation") && a.all_met);
        let before = DischargeInput {
            now: datetime!(2026-11-26 11:29:59 UTC),
            ..at_end
        };
        let b = assess_discharge(&before);
        assert!(!met(&b, "min_observation"));
        assert_eq!(b.unmet(), vec!["min_observation"]);
        assert!(
            b.criteria[0].detail.starts_with("89.98 min since"),
            "{}",
            b.criteria[0].detail
        );
    }

    #[test]
    fn aldrete_eight_fails_nine_passes_and_missing_fails() {
        let rules = trd_rules();
        let nine = Aldrete {
            consciousness: 1,
            ..full_aldrete()
        };
        let eight = Aldrete {
            consciousness: 1,
            activity: 1,
            ..full_aldrete()
        };
        let with = |a| {
            assess_discharge(&DischargeInput {
                aldrete: a,
                ..ready(&rules)
            })
        };
        assert!(met(&with(Some(nine)), "aldrete"));
        let failed = with(Some(eight));
        assert!(!met(&failed, "aldrete"));
        assert_eq!(failed.criteria[1].detail, "Aldrete 8; required ≥ 9");
        assert!(!met(&with(None), "aldrete"));
        assert!(
            !met(
                &with(Some(Aldrete {
                    spo2: 3,
                    ..full_aldrete()
                })),
                "aldrete"
            ),
            "an invalid item never passes"
        );
    }

    #[test]
    fn vitals_tolerance_edges() {
        let rules = trd_rules();
        // Baseline 120/78, HR 70. ±20 exactly is met, 21 is not, on either side, for each reading.
        let with = |sys, dia, hr| {
            met(
                &assess_discharge(&DischargeInput {
                    latest_vitals: Some(TakenVitals {
                        vitals: vitals(sys, dia, hr),
                        taken_at: datetime!(2026-11-26 11:40 UTC),
                    }),
                    ..ready(&rules)
                }),
                "vitals_near_baseline",
            )
        };
        assert!(with(140.0, 78.0, 70.0));
        assert!(with(100.0, 78.0, 70.0));
        assert!(!with(141.0, 78.0, 70.0));
        assert!(!with(99.0, 78.0, 70.0));
        assert!(with(120.0, 98.0, 70.0));
        assert!(with(120.0, 58.0, 70.0));
        assert!(!with(120.0, 99.0, 70.0));
        assert!(!with(120.0, 57.0, 70.0));
        assert!(with(120.0, 78.0, 90.0));
        assert!(with(120.0, 78.0, 50.0));
        assert!(!with(120.0, 78.0, 91.0));
        assert!(!with(120.0, 78.0, 49.0));
        let t = BaselineTolerance::default();
        assert!(!t.systolic_mmhg.clinic_setting && t.heart_rate_per_min.clinic_setting);
        assert!(t.systolic_mmhg.source.contains("Aldrete"));
    }

    #[test]
    fn missing_or_stale_data_is_not_met_and_says_why() {
        let rules = trd_rules();
        let detail = |input: DischargeInput<'_>| {
            let a = assess_discharge(&input);
            let c = a
                .criteria
                .iter()
                .find(|c| c.code == "vitals_near_baseline")
                .unwrap();
            assert!(!c.met && !a.all_met);
            c.detail.clone()
        };
        assert_eq!(
            detail(DischargeInput {
                latest_vitals: None,
                ..ready(&rules)
            }),
            "no vital signs recorded after the infusion"
        );
        assert_eq!(
            detail(DischargeInput {
                baseline_bp: None,
                baseline_heart_rate_per_min: None,
                ..ready(&rules)
            }),
            "cannot compare with baseline: missing baseline systolic, baseline diastolic, baseline heart rate"
        );
        assert_eq!(
            detail(DischargeInput {
                latest_vitals: Some(TakenVitals {
                    vitals: VitalSigns {
                        heart_rate_per_min: None,
                        ..vitals(120.0, 78.0, 70.0)
                    },
                    taken_at: datetime!(2026-11-26 11:40 UTC),
                }),
                ..ready(&rules)
            }),
            "cannot compare with baseline: missing latest heart rate"
        );
        assert!(
            detail(DischargeInput {
                latest_vitals: Some(TakenVitals {
                    vitals: vitals(120.0, 78.0, 70.0),
                    taken_at: datetime!(2026-11-26 09:55 UTC),
                }),
                ..ready(&rules)
            })
            .contains("before the infusion ended")
        );
        // MOAA/S: missing or 4 fails, 5 passes. Alarms: one unresolved fails. Escort absent fails.
        for (input, code) in [
            (
                DischargeInput {
                    moaas: None,
                    ..ready(&rules)
                },
                "moaas",
            ),
            (
                DischargeInput {
                    moaas: Some(4),
                    ..ready(&rules)
                },
                "moaas",
            ),
            (
                DischargeInput {
                    unresolved_alarms: 1,
                    ..ready(&rules)
                },
                "no_unresolved_alarm",
            ),
            (
                DischargeInput {
                    escort_present: false,
                    ..ready(&rules)
                },
                "escort",
            ),
        ] {
            assert_eq!(assess_discharge(&input).unmet(), vec![code]);
        }
    }

    #[test]
    fn the_pk_time_can_set_the_earliest_time() {
        let rules = trd_rules();
        let late_pk = DischargeInput {
            pk_ce_below_threshold_at: Some(datetime!(2026-11-26 12:00 UTC)),
            ..ready(&rules)
        };
        let a = assess_discharge(&late_pk);
        assert_eq!(a.earliest_at, datetime!(2026-11-26 12:00 UTC));
        assert_eq!(a.unmet(), vec!["pk_recovery"]);
        let never = DischargeInput {
            pk_ce_below_threshold_at: None,
            ..ready(&rules)
        };
        let b = assess_discharge(&never);
        assert!(met(&b, "pk_recovery"));
        assert_eq!(b.earliest_at, datetime!(2026-11-26 11:30 UTC));
    }

    #[test]
    fn no_escort_criterion_or_instruction_when_the_rules_do_not_ask() {
        let rules = DischargeRules {
            escort_required: false,
            no_driving_until_next_day: false,
            ..trd_rules()
        };
        let a = assess_discharge(&DischargeInput {
            escort_present: false,
            ..ready(&rules)
        });
        assert!(a.criteria.iter().all(|c| c.code != "escort"));
        assert!(a.all_met);
        assert_eq!(a.instructions, vec![RECURRENCE_INSTRUCTION]);
    }

    #[test]
    fn override_needs_a_physician_and_a_reason() {
        let rules = trd_rules();
        let a = assess_discharge(&DischargeInput {
            moaas: Some(4),
            unresolved_alarms: 2,
            ..ready(&rules)
        });
        let unmet = vec!["no_unresolved_alarm", "moaas"];
        assert_eq!(a.unmet(), unmet);
        assert_eq!(
            discharge_basis(&a, &[], None),
            Err(DischargeRefusal::CriteriaUnmet(unmet.clone()))
        );
        let nurse = OverrideRequest {
            by_physician: false,
            reason: Some("patient is fine"),
        };
        assert_eq!(
            discharge_basis(&a, &[], Some(nurse)),
            Err(DischargeRefusal::OverrideNotPermitted)
        );
        for short in ["", "   ", "a b", " ok ", "  abc "] {
            let o = OverrideRequest {
                by_physician: true,
                reason: Some(short),
            };
            assert_eq!(
                discharge_basis(&a, &[], Some(o)),
                Err(DischargeRefusal::OverrideNeedsReason),
                "{short:?}"
            );
        }
        let ok = OverrideRequest {
            by_physician: true,
            reason: Some("  MOAA/S 4, alert to voice, escorted  "),
        };
        assert_eq!(
            discharge_basis(&a, &[], Some(ok)),
            Ok(DischargeBasis::PhysicianOverride {
                reason: "MOAA/S 4, alert to voice, escorted".into(),
                unmet
            })
        );
    }

    #[test]
    fn an_unmet_discharge_needs_a_physician_and_a_reason() {
        let at = datetime!(2026-03-02 10:00 UTC);
        let assessment = |met: bool| DischargeAssessment {
            criteria: vec![Criterion {
                code: "min_observation",
                met,
                detail: String::new(),
                source: String::new(),
            }],
            earliest_at: at,
            all_met: met,
            instructions: vec![],
        };
        let physician = |reason| OverrideRequest {
            by_physician: true,
            reason,
        };
        assert_eq!(
            discharge_basis(&assessment(true), &[], None),
            Ok(DischargeBasis::CriteriaMet)
        );
        assert_eq!(
            discharge_basis(&assessment(false), &[], None),
            Err(DischargeRefusal::CriteriaUnmet(vec!["min_observation"]))
        );
        assert_eq!(
            discharge_basis(
                &assessment(false),
                &[],
                Some(OverrideRequest {
                    by_physician: false,
                    reason: Some("family waiting")
                })
            ),
            Err(DischargeRefusal::OverrideNotPermitted)
        );
        let too_long = "x".repeat(1001);
        // As long as a plan override's reason: 10 characters at least ("  ok " and "escorted" are not).
        for bad in [
            None,
            Some(""),
            Some("  ok "),
            Some("escorted"),
            Some(too_long.as_str()),
        ] {
            assert_eq!(
                discharge_basis(&assessment(false), &[], Some(physician(bad))),
                Err(DischargeRefusal::OverrideNeedsReason),
                "{bad:?}"
            );
        }
        assert_eq!(
            discharge_basis(
                &assessment(false),
                &[],
                Some(physician(Some("  alert, escorted  ")))
            ),
            Ok(DischargeBasis::PhysicianOverride {
                reason: "alert, escorted".into(),
                unmet: vec!["min_observation"]
            })
        );
        // No one leaves while an urgent alarm is unacknowledged, override or not; an acknowledged
        // one or a warning does not hold the discharge.
        let alarm = |code, urgent, acknowledged| OpenAlarm {
            code,
            urgent,
            acknowledged,
        };
        assert_eq!(
            discharge_basis(
                &assessment(true),
                &[
                    alarm("spo2_low", true, false),
                    alarm("heart_rate_high", false, false),
                    alarm("systolic_high", true, true)
                ],
                None
            ),
            Err(DischargeRefusal::UrgentAlarmUnacknowledged(vec![
                "spo2_low".into()
            ]))
        );
        assert_eq!(
            discharge_basis(
                &assessment(false),
                &[alarm("sedation_deep", true, false)],
                Some(physician(Some("alert, escorted home by her husband")))
            ),
            Err(DischargeRefusal::UrgentAlarmUnacknowledged(vec![
                "sedation_deep".into()
            ]))
        );
        assert_eq!(
            discharge_basis(
                &assessment(true),
                &[
                    alarm("heart_rate_high", false, false),
                    alarm("systolic_high", true, true)
                ],
                None
            ),
            Ok(DischargeBasis::CriteriaMet)
        );
    }
}
