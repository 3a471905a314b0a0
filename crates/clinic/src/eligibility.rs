//! Eligibility screening (`shared/domain/clinical.md` §2).
//!
//! Each finding is one of three kinds: an **absolute** contraindication blocks treatment; a
//! **relative** one needs a physician's acknowledgement with a reason; a **warning** (an interaction,
//! a caution, a raised baseline blood pressure) is shown with its source and needs nothing. Which
//! condition is absolute or relative follows the sources cited beside each rule; where the source
//! leaves it to clinical judgement the rule says `clinic_setting: true`.

use crate::patient::{BloodPressure, Condition, MedicationClass, PatientFacts};

/// How a finding affects eligibility.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Shown with its source; needs no action.
    Warning,
    /// Needs a physician's acknowledgement with a reason before treatment.
    Relative,
    /// Blocks treatment.
    Absolute,
}

impl Severity {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Relative => "relative",
            Severity::Absolute => "absolute",
        }
    }
}

/// One screening result.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// Stable code, e.g. `condition.pregnancy` or `medication.theophylline`.
    pub code: String,
    /// How it affects eligibility.
    pub severity: Severity,
    /// What it means, for the clinician.
    pub message: String,
    /// Where the rule comes from.
    pub source: &'static str,
    /// Whether the classification is the clinic's choice rather than the source's.
    pub clinic_setting: bool,
}

/// A rule for a history condition.
struct ConditionRule {
    condition: Condition,
    severity: Severity,
    message: &'static str,
    source: &'static str,
    clinic_setting: bool,
}

const COHEN: &str = "Cohen SP et al. Reg Anesth Pain Med 2018;43:521-546, doi 10.1097/AAP.0000000000000808";

/// The hypersensitivity contraindication of the ketamine labels: Ketalar SmPC (Pfizer Ltd, MHRA,
/// rev. 2019) §4.3 "hypersensitivity to the active substance or to any of the excipients"; Ketalar
/// US prescribing information §4 (Par Pharmaceutical); Spravato PI §4 (esketamine, ketamine).
const KETAMINE_ALLERGY_SOURCE: &str = "Ketalar SmPC (Pfizer, MHRA 2019) §4.3 and US PI §4: hypersensitivity to ketamine or an excipient; Spravato PI §4";

const CONDITION_RULES: [ConditionRule; 13] = [
    ConditionRule {
        condition: Condition::KetamineHypersensitivity,
        severity: Severity::Absolute,
        message: "known hypersensitivity to ketamine or esketamine",
        source: "Ketalar prescribing information (contraindications); Spravato PI",
        clinic_setting: false,
    },
    ConditionRule {
        condition: Condition::SevereHepaticDisease,
        severity: Severity::Absolute,
        message: "severe hepatic disease: avoid ketamine",
        source: "Cohen 2018 (C, low): avoid in severe hepatic disease",
        clinic_setting: false,
    },
    ConditionRule {
        condition: Condition::AneurysmalVascularDisease,
        severity: Severity::Absolute,
        message: "aneurysmal vascular disease: contraindicated for esketamine, applied to IV ketamine by class",
        source: "Spravato PI contraindications; extension to IV ketamine is a clinic decision (clinical.md section 2)",
        clinic_setting: true,
    },
    ConditionRule {
        condition: Condition::ArteriovenousMalformation,
        severity: Severity::Absolute,
        message: "arteriovenous malformation: contraindicated for esketamine, applied to IV ketamine by class",
        source: "Spravato PI contraindications; extension to IV ketamine is a clinic decision (clinical.md section 2)",
        clinic_setting: true,
    },
    ConditionRule {
        condition: Condition::IntracerebralHaemorrhageHistory,
        severity: Severity::Absolute,
        message: "history of intracerebral haemorrhage: contraindicated for esketamine, applied to IV ketamine by class",
        source: "Spravato PI contraindications; extension to IV ketamine is a clinic decision (clinical.md section 2)",
        clinic_setting: true,
    },
    ConditionRule {
        condition: Condition::Pregnancy,
        severity: Severity::Relative,
        message: "pregnancy: relative contraindication",
        source: "Cohen 2018 (B, low); Schwenk ES et al. Reg Anesth Pain Med 2018 (PMID 29870457)",
        clinic_setting: false,
    },
    ConditionRule {
        condition: Condition::ActivePsychosis,
        severity: Severity::Relative,
        message: "active psychosis: avoid in poorly controlled psychosis; start only if benefit outweighs risk",
        source: "Cohen 2018 (B, low); Spravato PI 5.2",
        clinic_setting: false,
    },
    ConditionRule {
        condition: Condition::PoorlyControlledCardiovascularDisease,
        severity: Severity::Relative,
        message: "poorly controlled cardiovascular disease (including uncontrolled hypertension): should not be used",
        source: COHEN,
        clinic_setting: false,
    },
    ConditionRule {
        condition: Condition::RaisedIntracranialPressure,
        severity: Severity::Relative,
        message: "raised intracranial pressure: do not use, or only at lower doses with extreme caution",
        source: "Cohen 2018 (C, low); Ketalar PI (raised CSF pressure)",
        clinic_setting: false,
    },
    ConditionRule {
        condition: Condition::RaisedIntraocularPressure,
        severity: Severity::Relative,
        message: "raised intraocular pressure: do not use, or only at lower doses with extreme caution",
        source: "Cohen 2018 (C, low); Ketalar PI (raised IOP as an adverse reaction)",
        clinic_setting: false,
    },
    ConditionRule {
        condition: Condition::ActiveSubstanceAbuse,
        severity: Severity::Relative,
        message: "active substance abuse: do not give serial infusions; monitor for abuse",
        source: "Cohen 2018 (C, low)",
        clinic_setting: false,
    },
    ConditionRule {
        condition: Condition::ModerateHepaticDisease,
        severity: Severity::Warning,
        message: "moderate hepatic disease: use with caution and monitoring (consider baseline and post-infusion LFTs)",
        source: "Cohen 2018 (C, low)",
        clinic_setting: false,
    },
    ConditionRule {
        condition: Condition::SubstanceUseDisorderHistory,
        severity: Severity::Warning,
        message: "history of substance use disorder: consider carefully, monitor for abuse and dependence",
        source: "spravatohcp.com (esketamine prescribing guidance)",
        clinic_setting: false,
    },
];

/// A rule for a medication class.
struct MedicationRule {
    class: MedicationClass,
    severity: Severity,
    message: &'static str,
    source: &'static str,
}

const MEDICATION_RULES: [MedicationRule; 11] = [
    MedicationRule {
        class: MedicationClass::Theophylline,
        severity: Severity::Absolute,
        message: "theophylline or aminophylline: do not co-administer (lowers the seizure threshold)",
        source: "Ketalar PI 7.1",
    },
    MedicationRule {
        class: MedicationClass::Benzodiazepine,
        severity: Severity::Warning,
        message: "benzodiazepine: may blunt the antidepressant effect (diazepam-equivalent > 8 mg/day predicted non-response in one study) and adds sedation and respiratory depression",
        source: "Andrashko V et al. Front Psychiatry 2020;11:844 (doi 10.3389/fpsyt.2020.00844); Andrade C, J Clin Psychiatry 2017; Ketalar PI 7.3",
    },
    MedicationRule {
        class: MedicationClass::Lamotrigine,
        severity: Severity::Warning,
        message: "lamotrigine: reduces ketamine's neuropsychiatric effects; effect on antidepressant response unknown",
        source: "Anand A et al. Arch Gen Psychiatry 2000;57:270; Andrade 2017",
    },
    MedicationRule {
        class: MedicationClass::Maoi,
        severity: Severity::Warning,
        message: "MAOI: possible blood-pressure rise; monitor BP closely",
        source: "Spravato REMS Patient Monitoring Form",
    },
    MedicationRule {
        class: MedicationClass::Stimulant,
        severity: Severity::Warning,
        message: "psychostimulant: possible blood-pressure rise; monitor BP closely",
        source: "Spravato REMS Patient Monitoring Form",
    },
    MedicationRule {
        class: MedicationClass::Cyp3a4Inhibitor,
        severity: Severity::Warning,
        message: "CYP3A4 inhibitor: may raise ketamine exposure",
        source: "Andrade C, J Clin Psychiatry 2017 (ketamine is metabolised mainly by CYP2B6 and CYP3A4)",
    },
    MedicationRule {
        class: MedicationClass::Cyp2b6Inhibitor,
        severity: Severity::Warning,
        message: "CYP2B6 inhibitor: may raise ketamine exposure",
        source: "Andrade C, J Clin Psychiatry 2017",
    },
    MedicationRule {
        class: MedicationClass::Cyp3a4Inducer,
        severity: Severity::Warning,
        message: "CYP3A4 inducer: may lower ketamine exposure",
        source: "Andrade C, J Clin Psychiatry 2017",
    },
    MedicationRule {
        class: MedicationClass::Cyp2b6Inducer,
        severity: Severity::Warning,
        message: "CYP2B6 inducer: may lower ketamine exposure",
        source: "Andrade C, J Clin Psychiatry 2017",
    },
    MedicationRule {
        class: MedicationClass::Sympathomimetic,
        severity: Severity::Warning,
        message: "sympathomimetic or vasopressin: monitor vital signs closely",
        source: "Ketalar PI 7.2",
    },
    MedicationRule {
        class: MedicationClass::Opioid,
        severity: Severity::Warning,
        message: "opioid: profound sedation or respiratory depression possible; may prolong recovery",
        source: "Ketalar PI 7.3",
    },
];

/// The clinic's baseline blood-pressure threshold: a reading above either number is flagged.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BaselineBpThreshold {
    /// Systolic, mmHg.
    pub systolic_mmhg: f64,
    /// Diastolic, mmHg.
    pub diastolic_mmhg: f64,
}

impl Default for BaselineBpThreshold {
    /// 140/90 mmHg: the esketamine label's pre-existing-hypertension precaution (secondary source;
    /// exact label wording UNVERIFIED, clinical.md §1.6). A clinic setting.
    fn default() -> Self {
        BaselineBpThreshold {
            systolic_mmhg: 140.0,
            diastolic_mmhg: 90.0,
        }
    }
}

/// The overall screening outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EligibilityStatus {
    /// No finding blocks treatment and none awaits acknowledgement.
    Eligible,
    /// Relative contraindications await a physician's acknowledgement.
    NeedsAcknowledgement,
    /// An absolute contraindication is present.
    Ineligible,
}

impl EligibilityStatus {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            EligibilityStatus::Eligible => "eligible",
            EligibilityStatus::NeedsAcknowledgement => "needs_acknowledgement",
            EligibilityStatus::Ineligible => "ineligible",
        }
    }
}

/// A physician's acknowledgement of a relative contraindication.
#[derive(Clone, Debug, PartialEq)]
pub struct Acknowledgement {
    /// The finding's code.
    pub code: String,
    /// Who acknowledged it (a physician's user id).
    pub physician: String,
    /// Why treatment goes ahead.
    pub reason: String,
}

/// Everything screening found, and what it means.
#[derive(Clone, Debug, PartialEq)]
pub struct EligibilityReport {
    /// The findings, most severe first.
    pub findings: Vec<Finding>,
    /// Relative findings not yet acknowledged.
    pub unacknowledged: Vec<String>,
    /// The outcome.
    pub status: EligibilityStatus,
}

/// Why an acknowledgement cannot be accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AcknowledgementError {
    /// The reason is empty or too short to mean anything.
    #[error("an acknowledgement of {code} needs a reason of at least 10 characters")]
    ReasonTooShort {
        /// The finding.
        code: String,
    },
    /// The code is not a relative finding of this patient.
    #[error("{code} is not a relative contraindication of this patient; relative findings: {relative}")]
    NotRelative {
        /// The code given.
        code: String,
        /// The patient's relative findings.
        relative: String,
    },
}

/// Screens `facts` against the rules; `acknowledgements` cover relative findings.
pub fn screen(
    facts: &PatientFacts,
    threshold: BaselineBpThreshold,
    acknowledgements: &[Acknowledgement],
) -> Result<EligibilityReport, AcknowledgementError> {
    let mut findings = Vec::new();
    for rule in &CONDITION_RULES {
        if facts.conditions.contains(&rule.condition) {
            findings.push(Finding {
                code: format!("condition.{}", rule.condition.code()),
                severity: rule.severity,
                message: rule.message.to_string(),
                source: rule.source,
                clinic_setting: rule.clinic_setting,
            });
        }
    }
    // An allergy to ketamine under any of its names is the label's hypersensitivity
    // contraindication, however it was entered.
    for allergy in facts.allergies.iter().filter(|a| a.is_to_ketamine()) {
        findings.push(Finding {
            code: "allergy.ketamine".into(),
            severity: Severity::Absolute,
            message: format!(
                "allergy to ketamine recorded: {} — {} ({})",
                allergy.substance,
                allergy.reaction,
                allergy.severity.code()
            ),
            source: KETAMINE_ALLERGY_SOURCE,
            clinic_setting: false,
        });
    }
    for rule in &MEDICATION_RULES {
        let names: Vec<&str> = facts
            .medications
            .iter()
            .filter(|m| m.class == rule.class)
            .map(|m| m.name.as_str())
            .collect();
        if !names.is_empty() {
            findings.push(Finding {
                code: format!("medication.{}", rule.class.code()),
                severity: rule.severity,
                message: format!("{} ({})", rule.message, names.join(", ")),
                source: rule.source,
                clinic_setting: false,
            });
        }
    }
    if let Some(BloodPressure {
        systolic_mmhg,
        diastolic_mmhg,
    }) = facts.baseline_bp
        && (systolic_mmhg > threshold.systolic_mmhg || diastolic_mmhg > threshold.diastolic_mmhg)
    {
        findings.push(Finding {
            code: "baseline_bp.above_threshold".into(),
            severity: Severity::Warning,
            message: format!(
                "baseline blood pressure {systolic_mmhg:.0}/{diastolic_mmhg:.0} mmHg is above the clinic threshold {:.0}/{:.0} mmHg: weigh the short-term BP rise against the benefit",
                threshold.systolic_mmhg, threshold.diastolic_mmhg
            ),
            source: "Spravato PI (pre-existing hypertension > 140/90 mmHg; secondary source, label wording UNVERIFIED); threshold is a clinic setting",
            clinic_setting: true,
        });
    }
    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.code.cmp(&b.code)));

    let relative: Vec<&str> = findings
        .iter()
        .filter(|f| f.severity == Severity::Relative)
        .map(|f| f.code.as_str())
        .collect();
    for ack in acknowledgements {
        if !relative.contains(&ack.code.as_str()) {
            return Err(AcknowledgementError::NotRelative {
                code: ack.code.clone(),
                relative: relative.join(", "),
            });
        }
        if ack.reason.trim().chars().count() < 10 {
            return Err(AcknowledgementError::ReasonTooShort {
                code: ack.code.clone(),
            });
        }
    }
    let unacknowledged: Vec<String> = relative
        .iter()
        .filter(|code| !acknowledgements.iter().any(|a| a.code == **code))
        .map(|code| code.to_string())
        .collect();
    let status = if findings.iter().any(|f| f.severity == Severity::Absolute) {
        EligibilityStatus::Ineligible
    } else if !unacknowledged.is_empty() {
        EligibilityStatus::NeedsAcknowledgement
    } else {
        EligibilityStatus::Eligible
    };
    Ok(EligibilityReport {
        findings,
        unacknowledged,
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patient::{Medication, Sex};
    use time::macros::date;

    fn facts() -> PatientFacts {
        PatientFacts {
            date_of_birth: date!(1980 - 01 - 01),
            sex: Sex::Male,
            heights: vec![],
            weights: vec![],
            indications: vec![],
            medications: vec![],
            conditions: vec![],
            baseline_bp: Some(BloodPressure {
                systolic_mmhg: 128.0,
                diastolic_mmhg: 82.0,
            }),
            allergies: vec![],
        }
    }

    fn ack(code: &str) -> Acknowledgement {
        Acknowledgement {
            code: code.into(),
            physician: "dr-a".into(),
            reason: "benefit outweighs risk after review".into(),
        }
    }

    #[test]
    fn a_patient_without_findings_is_eligible() {
        let report = screen(&facts(), BaselineBpThreshold::default(), &[]).unwrap();
        assert_eq!(report.status, EligibilityStatus::Eligible);
        assert!(report.findings.is_empty());
    }

    #[test]
    fn every_condition_has_the_sourced_severity() {
        let expected = [
            (Condition::KetamineHypersensitivity, Severity::Absolute),
            (Condition::SevereHepaticDisease, Severity::Absolute),
            (Condition::AneurysmalVascularDisease, Severity::Absolute),
            (Condition::ArteriovenousMalformation, Severity::Absolute),
            (Condition::IntracerebralHaemorrhageHistory, Severity::Absolute),
            (Condition::Pregnancy, Severity::Relative),
            (Condition::ActivePsychosis, Severity::Relative),
            (
                Condition::PoorlyControlledCardiovascularDisease,
                Severity::Relative,
            ),
            (Condition::RaisedIntracranialPressure, Severity::Relative),
            (Condition::RaisedIntraocularPressure, Severity::Relative),
            (Condition::ActiveSubstanceAbuse, Severity::Relative),
            (Condition::ModerateHepaticDisease, Severity::Warning),
            (Condition::SubstanceUseDisorderHistory, Severity::Warning),
        ];
        assert_eq!(expected.len(), Condition::ALL.len());
        for (condition, severity) in expected {
            let f = PatientFacts {
                conditions: vec![condition],
                ..facts()
            };
            let report = screen(&f, BaselineBpThreshold::default(), &[]).unwrap();
            assert_eq!(report.findings.len(), 1, "{condition:?}");
            assert_eq!(report.findings[0].severity, severity, "{condition:?}");
            let status = match severity {
                Severity::Absolute => EligibilityStatus::Ineligible,
                Severity::Relative => EligibilityStatus::NeedsAcknowledgement,
                Severity::Warning => EligibilityStatus::Eligible,
            };
            assert_eq!(report.status, status, "{condition:?}");
            assert!(!report.findings[0].source.is_empty());
        }
    }

    #[test]
    fn relative_contraindications_pass_only_with_a_reasoned_acknowledgement() {
        let f = PatientFacts {
            conditions: vec![Condition::Pregnancy, Condition::ActivePsychosis],
            ..facts()
        };
        let report = screen(&f, BaselineBpThreshold::default(), &[ack("condition.pregnancy")]).unwrap();
        assert_eq!(report.status, EligibilityStatus::NeedsAcknowledgement);
        assert_eq!(report.unacknowledged, vec!["condition.active_psychosis"]);
        let report = screen(
            &f,
            BaselineBpThreshold::default(),
            &[ack("condition.pregnancy"), ack("condition.active_psychosis")],
        )
        .unwrap();
        assert_eq!(report.status, EligibilityStatus::Eligible);
        let short = Acknowledgement {
            reason: "ok".into(),
            ..ack("condition.pregnancy")
        };
        assert!(matches!(
            screen(&f, BaselineBpThreshold::default(), &[short]),
            Err(AcknowledgementError::ReasonTooShort { .. })
        ));
    }

    #[test]
    fn an_absolute_contraindication_cannot_be_acknowledged_away() {
        let f = PatientFacts {
            conditions: vec![Condition::KetamineHypersensitivity],
            ..facts()
        };
        let err = screen(
            &f,
            BaselineBpThreshold::default(),
            &[ack("condition.ketamine_hypersensitivity")],
        )
        .unwrap_err();
        assert!(matches!(err, AcknowledgementError::NotRelative { .. }));
    }

    #[test]
    fn an_allergy_to_ketamine_under_any_name_is_absolute_and_others_are_not() {
        use crate::patient::{Allergy, AllergySeverity};
        let allergy = |substance: &str| Allergy {
            substance: substance.into(),
            reaction: "hives".into(),
            severity: AllergySeverity::Moderate,
        };
        for substance in [
            "Ketamine",
            "ketamine HCl",
            "Esketamine nasal spray",
            "KETALAR",
            "Spravato",
        ] {
            let f = PatientFacts {
                allergies: vec![allergy(substance)],
                ..facts()
            };
            let report = screen(&f, BaselineBpThreshold::default(), &[]).unwrap();
            let found: Vec<_> = report
                .findings
                .iter()
                .filter(|x| x.code == "allergy.ketamine")
                .collect();
            assert_eq!(found.len(), 1, "{substance}");
            assert_eq!(found[0].severity, Severity::Absolute);
            assert_eq!(
                found[0].message,
                format!("allergy to ketamine recorded: {substance} — hives (moderate)")
            );
            assert!(found[0].source.contains("SmPC") && found[0].source.contains("§4.3"));
            assert_eq!(report.status, EligibilityStatus::Ineligible, "{substance}");
            // Absolute: no acknowledgement lets it through.
            assert!(matches!(
                screen(&f, BaselineBpThreshold::default(), &[ack("allergy.ketamine")]).unwrap_err(),
                AcknowledgementError::NotRelative { .. }
            ));
        }
        // Not ketamine: no finding (a word that merely contains the letters does not count).
        for substance in ["penicillin", "latex", "ketorolac", "sketamineral"] {
            let f = PatientFacts {
                allergies: vec![allergy(substance)],
                ..facts()
            };
            let report = screen(&f, BaselineBpThreshold::default(), &[]).unwrap();
            assert!(
                report.findings.iter().all(|x| x.code != "allergy.ketamine"),
                "{substance}"
            );
        }
    }

    #[test]
    fn interactions_warn_with_their_source_and_theophylline_blocks() {
        let f = PatientFacts {
            medications: vec![
                Medication {
                    name: "lorazepam".into(),
                    class: MedicationClass::Benzodiazepine,
                    daily_dose_mg: Some(2.0),
                },
                Medication {
                    name: "theophylline".into(),
                    class: MedicationClass::Theophylline,
                    daily_dose_mg: None,
                },
            ],
            ..facts()
        };
        let report = screen(&f, BaselineBpThreshold::default(), &[]).unwrap();
        assert_eq!(report.status, EligibilityStatus::Ineligible);
        assert_eq!(report.findings[0].code, "medication.theophylline");
        let benzo = report
            .findings
            .iter()
            .find(|x| x.code == "medication.benzodiazepine")
            .unwrap();
        assert_eq!(benzo.severity, Severity::Warning);
        assert!(benzo.message.contains("lorazepam") && benzo.source.contains("Andrashko"));
    }

    #[test]
    fn baseline_bp_above_the_clinic_threshold_is_flagged_as_a_clinic_setting() {
        for (sbp, dbp, flagged) in [(140.0, 90.0, false), (141.0, 80.0, true), (130.0, 91.0, true)] {
            let f = PatientFacts {
                baseline_bp: Some(BloodPressure {
                    systolic_mmhg: sbp,
                    diastolic_mmhg: dbp,
                }),
                ..facts()
            };
            let report = screen(&f, BaselineBpThreshold::default(), &[]).unwrap();
            assert_eq!(
                report
                    .findings
                    .iter()
                    .any(|x| x.code == "baseline_bp.above_threshold"),
                flagged,
                "{sbp}/{dbp}"
            );
            if flagged {
                assert!(report.findings[0].clinic_setting);
                assert_eq!(report.status, EligibilityStatus::Eligible);
            }
        }
        let strict = BaselineBpThreshold {
            systolic_mmhg: 130.0,
            diastolic_mmhg: 85.0,
        };
        assert_eq!(screen(&facts(), strict, &[]).unwrap().findings.len(), 0);
    }
}
