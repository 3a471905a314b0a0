//! Long-term safety surveillance for repeated infusions (`shared/domain/clinical.md` §8):
//! cumulative exposure, infusion frequency, and flags — liver tests due, urinary symptoms,
//! cognitive screening due, early or escalating requests, emergent psychosis or mania — each with
//! its source and a due date.
//!
//! No published cumulative-dose ceiling or screening interval exists for therapeutic ketamine
//! (§8), so every interval and count below is a **clinic setting** in [`SurveillanceSettings`],
//! marked as such beside the flag it raises.

use time::{Date, Duration};

/// One infusion given.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InfusionGiven {
    /// The day it was given.
    pub on: Date,
    /// Ketamine given, mg (what the pump delivered).
    pub given_mg: f64,
    /// The dosing weight of its plan, kg.
    pub dosing_weight_kg: f64,
    /// The planned dose per kg (mg/kg, or mg/kg/h for rate protocols) of its plan.
    pub planned_dose_per_kg: f64,
}

/// A check the clinic recorded.
#[derive(Clone, Debug, PartialEq)]
pub enum SafetyCheck {
    /// Liver tests (ALT, AST, ALP, GGT, bilirubin) taken; `above_3x_uln` when any was ≥ 3× the
    /// upper limit of normal (the Noppers 2011 injury threshold).
    LiverTests {
        /// Taken on.
        on: Date,
        /// Any value ≥ 3× ULN.
        above_3x_uln: bool,
    },
    /// The urinary symptom checklist.
    UrinaryChecklist {
        /// Asked on.
        on: Date,
        /// Symptoms present: dysuria, urgency, frequency, haematuria, suprapubic_pain.
        symptoms: Vec<String>,
    },
    /// A cognitive screen (e.g. MoCA, LOINC 72172-0).
    CognitiveScreen {
        /// Done on.
        on: Date,
    },
    /// Emergent psychotic or manic symptoms observed (e.g. a BPRS+ rise, a YMRS in mania).
    PsychiatricEvent {
        /// Observed on.
        on: Date,
        /// What was seen.
        description: String,
    },
}

/// The urinary checklist's symptoms (a defensible minimum per clinical.md §8; no validated
/// questionnaire for therapeutic ketamine exists).
pub const URINARY_SYMPTOMS: [&str; 5] = ["dysuria", "urgency", "frequency", "haematuria", "suprapubic_pain"];

/// The clinic's surveillance settings (all clinic settings; clinical.md §8 finds no published
/// numbers).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SurveillanceSettings {
    /// Infusions within 30 days that make a patient a "frequent" recipient (liver tests after
    /// infusions; ASRA 2018: "at-risk patients or frequent high doses").
    pub frequent_infusions_per_30_days: usize,
    /// Days after the last infusion by which post-infusion liver tests are due for frequent or
    /// at-risk patients.
    pub post_infusion_lft_within_days: i64,
    /// Days between urinary checklists for patients with repeated infusions.
    pub urinary_checklist_every_days: i64,
    /// Days between cognitive screens during an ongoing course.
    pub cognitive_screen_every_days: i64,
    /// Fewer days than this between two infusions outside a protocol series is an early request.
    pub early_request_min_days: i64,
    /// This many consecutive rises of the planned dose per kg is an escalating request.
    pub escalation_rises: usize,
}

impl Default for SurveillanceSettings {
    fn default() -> Self {
        SurveillanceSettings {
            frequent_infusions_per_30_days: 4,
            post_infusion_lft_within_days: 7,
            urinary_checklist_every_days: 30,
            cognitive_screen_every_days: 180,
            early_request_min_days: 2,
            escalation_rises: 2,
        }
    }
}

/// Cumulative exposure over a window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Exposure {
    /// Infusions in the window.
    pub infusions: usize,
    /// Ketamine given, mg.
    pub mg: f64,
    /// Ketamine given per kg of each infusion's dosing weight, mg/kg (summed per infusion).
    pub mg_per_kg: f64,
}

/// A surveillance flag.
#[derive(Clone, Debug, PartialEq)]
pub struct SafetyFlag {
    /// liver_tests_due, liver_injury, urinary_checklist_due, urinary_symptoms, cognitive_screen_due,
    /// early_request, escalating_dose, psychiatric_event.
    pub code: &'static str,
    /// What was seen and what to do.
    pub detail: String,
    /// When it is due (today or earlier means now).
    pub due: Date,
    /// Where the concern comes from.
    pub source: &'static str,
    /// Whether the timing is a clinic setting rather than a published rule.
    pub clinic_setting: bool,
}

/// The surveillance picture of one patient on one day.
#[derive(Clone, Debug, PartialEq)]
pub struct Surveillance {
    /// The last 30 days.
    pub last_30_days: Exposure,
    /// The last 12 months.
    pub last_12_months: Exposure,
    /// Lifetime (as recorded here).
    pub lifetime: Exposure,
    /// Flags, most urgent (earliest due) first.
    pub flags: Vec<SafetyFlag>,
}

const LIVER: &str = "Cohen 2018 ASRA/AAPM/ASA (doi 10.1097/AAP.0000000000000808): baseline and post-infusion LFTs for at-risk patients or frequent high doses; Ketalar PI 5.6 (drug-induced liver injury)";
const URINARY: &str = "Ketalar PI 2.1: consider cessation if genitourinary pain continues with other genitourinary symptoms; ketamine cystitis presents as dysuria, urgency, frequency, haematuria (Anderson 2022 review)";
const COGNITIVE: &str = "cognitive effects are a listed risk of repeated ketamine; no guideline interval exists (clinical.md section 8, UNVERIFIED)";
const ABUSE: &str = "Spravato PI 5.3 (assess and monitor abuse and misuse risk); flags suggested in clinical.md section 8 (design suggestion, not a guideline)";
const PSYCH: &str = "Ketalar PI 6: psychiatric adverse events may persist for days to weeks; watch for emergent psychosis (BPRS+) and mania (YMRS)";

fn exposure<'a>(infusions: impl Iterator<Item = &'a InfusionGiven>) -> Exposure {
    infusions.fold(
        Exposure {
            infusions: 0,
            mg: 0.0,
            mg_per_kg: 0.0,
        },
        |e, i| Exposure {
            infusions: e.infusions + 1,
            mg: e.mg + i.given_mg,
            mg_per_kg: e.mg_per_kg + i.given_mg / i.dosing_weight_kg,
        },
    )
}

/// The surveillance picture on `today`. `at_risk_liver` is true when the intake records hepatic
/// disease (or another reason the clinician gave). `infusions` and `checks` may be in any order.
pub fn surveil(
    today: Date,
    infusions: &[InfusionGiven],
    checks: &[SafetyCheck],
    at_risk_liver: bool,
    settings: &SurveillanceSettings,
) -> Surveillance {
    let mut given: Vec<InfusionGiven> = infusions.to_vec();
    given.sort_by_key(|i| i.on);
    let within = |days: i64| move |i: &&InfusionGiven| i.on > today - Duration::days(days) && i.on <= today;
    let last_30_days = exposure(given.iter().filter(within(30)));
    let last_12_months = exposure(given.iter().filter(within(365)));
    let lifetime = exposure(given.iter().filter(|i| i.on <= today));
    let mut flags = Vec::new();
    let (first, last) = (given.first().map(|i| i.on), given.last().map(|i| i.on));

    // Liver.
    let lfts: Vec<(Date, bool)> = checks
        .iter()
        .filter_map(|c| match c {
            SafetyCheck::LiverTests { on, above_3x_uln } => Some((*on, *above_3x_uln)),
            _ => None,
        })
        .collect();
    let frequent = last_30_days.infusions >= settings.frequent_infusions_per_30_days;
    if at_risk_liver || frequent {
        let why = if at_risk_liver {
            "hepatic risk at intake"
        } else {
            "frequent infusions"
        };
        let baseline_done = lfts.iter().any(|(on, _)| first.is_none_or(|f| *on <= f));
        if !baseline_done {
            flags.push(SafetyFlag {
                code: "liver_tests_due",
                detail: format!("baseline liver tests are missing ({why})"),
                due: first.map_or(today, |f| f.min(today)),
                source: LIVER,
                clinic_setting: false,
            });
        } else if let Some(last) = last
            && !lfts.iter().any(|(on, _)| *on > last)
        {
            flags.push(SafetyFlag {
                code: "liver_tests_due",
                detail: format!(
                    "post-infusion liver tests due within {} days of the last infusion ({why})",
                    settings.post_infusion_lft_within_days
                ),
                due: last + Duration::days(settings.post_infusion_lft_within_days),
                source: LIVER,
                clinic_setting: true,
            });
        }
    }
    if let Some((on, _)) = lfts.iter().filter(|(_, high)| *high).max_by_key(|(on, _)| *on) {
        flags.push(SafetyFlag {
            code: "liver_injury",
            detail: format!("liver tests on {on} had a value at or above 3× ULN; review before further infusions"),
            due: today,
            source: "Noppers 2011 (Pain 152:2173, doi 10.1016/j.pain.2011.03.026): liver injury at >= 3x ULN after repeated S-ketamine infusions",
            clinic_setting: false,
        });
    }

    // Urinary.
    let latest_urinary = checks
        .iter()
        .filter_map(|c| match c {
            SafetyCheck::UrinaryChecklist { on, symptoms } => Some((*on, symptoms)),
            _ => None,
        })
        .max_by_key(|(on, _)| *on);
    if let Some((on, symptoms)) = latest_urinary
        && !symptoms.is_empty()
    {
        flags.push(SafetyFlag {
            code: "urinary_symptoms",
            detail: format!(
                "urinary symptoms on {on}: {}; consider urinalysis and review before further infusions",
                symptoms.join(", ")
            ),
            due: today,
            source: URINARY,
            clinic_setting: false,
        });
    }
    if lifetime.infusions >= 2 {
        let due = latest_urinary.map_or(today, |(on, _)| {
            on + Duration::days(settings.urinary_checklist_every_days)
        });
        if due <= today + Duration::days(7) {
            flags.push(SafetyFlag {
                code: "urinary_checklist_due",
                detail: format!(
                    "urinary symptom checklist every {} days during repeated infusions",
                    settings.urinary_checklist_every_days
                ),
                due,
                source: URINARY,
                clinic_setting: true,
            });
        }
    }

    // Cognition.
    if let Some(first) = first {
        let last_screen = checks
            .iter()
            .filter_map(|c| match c {
                SafetyCheck::CognitiveScreen { on } => Some(*on),
                _ => None,
            })
            .max();
        let due = last_screen.unwrap_or(first) + Duration::days(settings.cognitive_screen_every_days);
        if due <= today + Duration::days(14) {
            flags.push(SafetyFlag {
                code: "cognitive_screen_due",
                detail: format!(
                    "cognitive screen (e.g. MoCA) every {} days of an ongoing course",
                    settings.cognitive_screen_every_days
                ),
                due,
                source: COGNITIVE,
                clinic_setting: true,
            });
        }
    }

    // Early and escalating requests.
    for pair in given.windows(2) {
        let gap = (pair[1].on - pair[0].on).whole_days();
        if gap < settings.early_request_min_days && pair[1].on > today - Duration::days(30) {
            flags.push(SafetyFlag {
                code: "early_request",
                detail: format!(
                    "infusions on {} and {} were {gap} day(s) apart",
                    pair[0].on, pair[1].on
                ),
                due: today,
                source: ABUSE,
                clinic_setting: true,
            });
        }
    }
    let n = settings.escalation_rises;
    if n > 0 && given.len() > n {
        let tail = &given[given.len() - n - 1..];
        if tail
            .windows(2)
            .all(|w| w[1].planned_dose_per_kg > w[0].planned_dose_per_kg)
        {
            flags.push(SafetyFlag {
                code: "escalating_dose",
                detail: format!(
                    "the planned dose rose at each of the last {n} infusions ({})",
                    tail.iter()
                        .map(|i| format!("{}", i.planned_dose_per_kg))
                        .collect::<Vec<_>>()
                        .join(" → ")
                ),
                due: today,
                source: ABUSE,
                clinic_setting: true,
            });
        }
    }

    // Psychiatric.
    for c in checks {
        if let SafetyCheck::PsychiatricEvent { on, description } = c {
            flags.push(SafetyFlag {
                code: "psychiatric_event",
                detail: format!("{on}: {description}; review before further infusions"),
                due: today,
                source: PSYCH,
                clinic_setting: false,
            });
        }
    }
    flags.sort_by_key(|f| f.due);
    Surveillance {
        last_30_days,
        last_12_months,
        lifetime,
        flags,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn infusion(on: Date, mg: f64, per_kg: f64) -> InfusionGiven {
        InfusionGiven {
            on,
            given_mg: mg,
            dosing_weight_kg: 70.0,
            planned_dose_per_kg: per_kg,
        }
    }

    fn codes(s: &Surveillance) -> Vec<&'static str> {
        s.flags.iter().map(|f| f.code).collect()
    }

    const TODAY: Date = date!(2026 - 11 - 27);

    #[test]
    fn cumulative_exposure_counts_each_window_exactly() {
        let given = [
            infusion(date!(2025 - 06 - 01), 35.0, 0.5), // lifetime only
            infusion(date!(2026 - 01 - 10), 35.0, 0.5), // 12 months
            infusion(date!(2026 - 10 - 29), 35.0, 0.5), // 29 days ago: inside 30 days
            infusion(date!(2026 - 10 - 28), 42.0, 0.6), // 30 days ago: outside
            infusion(date!(2026 - 11 - 27), 35.0, 0.5), // today
        ];
        let s = surveil(TODAY, &given, &[], false, &SurveillanceSettings::default());
        assert_eq!((s.last_30_days.infusions, s.last_30_days.mg), (2, 70.0));
        assert!((s.last_30_days.mg_per_kg - 1.0).abs() < 1e-12);
        assert_eq!((s.last_12_months.infusions, s.last_12_months.mg), (4, 147.0));
        assert_eq!((s.lifetime.infusions, s.lifetime.mg), (5, 182.0));
    }

    #[test]
    fn liver_tests_are_due_for_at_risk_or_frequent_patients_only() {
        let series: Vec<InfusionGiven> = (0..6)
            .map(|d| infusion(date!(2026 - 11 - 16) + Duration::days(2 * d), 35.0, 0.5))
            .collect();
        let settings = SurveillanceSettings::default();
        // Six infusions in 30 days without a baseline: due from the first infusion.
        let s = surveil(TODAY, &series, &[], false, &settings);
        let liver = s.flags.iter().find(|f| f.code == "liver_tests_due").unwrap();
        assert_eq!(liver.due, date!(2026 - 11 - 16));
        assert!(liver.detail.contains("baseline"));
        // With a baseline, post-infusion tests are due 7 days after the last infusion.
        let checks = [SafetyCheck::LiverTests {
            on: date!(2026 - 11 - 15),
            above_3x_uln: false,
        }];
        let s = surveil(TODAY, &series, &checks, false, &settings);
        let liver = s.flags.iter().find(|f| f.code == "liver_tests_due").unwrap();
        assert_eq!(liver.due, date!(2026 - 11 - 26) + Duration::days(7));
        // Three infusions, no hepatic risk: nothing due.
        let s = surveil(TODAY, &series[..3], &[], false, &settings);
        assert!(!codes(&s).contains(&"liver_tests_due"));
        // Hepatic risk: due even for one infusion.
        let s = surveil(TODAY, &series[..1], &[], true, &settings);
        assert!(codes(&s).contains(&"liver_tests_due"));
        // Baseline and post-infusion tests done, the latter abnormal: injury, nothing more due.
        let done = [
            SafetyCheck::LiverTests {
                on: date!(2026 - 11 - 15),
                above_3x_uln: false,
            },
            SafetyCheck::LiverTests {
                on: TODAY,
                above_3x_uln: true,
            },
        ];
        let s = surveil(TODAY, &series, &done, false, &settings);
        assert!(codes(&s).contains(&"liver_injury"));
        assert!(!codes(&s).contains(&"liver_tests_due"));
    }

    #[test]
    fn urinary_cognitive_early_escalating_and_psychiatric_flags() {
        let settings = SurveillanceSettings::default();
        let given = [
            infusion(date!(2026 - 05 - 01), 35.0, 0.5),
            infusion(date!(2026 - 11 - 20), 35.0, 0.5),
            infusion(date!(2026 - 11 - 21), 40.0, 0.6),
            infusion(date!(2026 - 11 - 25), 45.0, 0.7),
        ];
        let checks = [
            SafetyCheck::UrinaryChecklist {
                on: date!(2026 - 11 - 25),
                symptoms: vec!["dysuria".into(), "urgency".into()],
            },
            SafetyCheck::PsychiatricEvent {
                on: date!(2026 - 11 - 26),
                description: "new grandiosity, reduced sleep".into(),
            },
        ];
        let s = surveil(TODAY, &given, &checks, false, &settings);
        let c = codes(&s);
        for code in [
            "urinary_symptoms",
            "cognitive_screen_due",
            "early_request",
            "escalating_dose",
            "psychiatric_event",
        ] {
            assert!(c.contains(&code), "{code} missing: {c:?}");
        }
        // The checklist was done 2 days ago: the next is not due within a week.
        assert!(!c.contains(&"urinary_checklist_due"));
        // Cognitive screen due 180 days after the first infusion.
        let cog = s.flags.iter().find(|f| f.code == "cognitive_screen_due").unwrap();
        assert_eq!(cog.due, date!(2026 - 05 - 01) + Duration::days(180));
        assert!(cog.clinic_setting);
        // Flags come earliest-due first.
        assert!(s.flags.windows(2).all(|w| w[0].due <= w[1].due));
        // A negative checklist and a screen done recently clear those flags.
        let calm = [
            SafetyCheck::UrinaryChecklist {
                on: TODAY,
                symptoms: vec![],
            },
            SafetyCheck::CognitiveScreen {
                on: date!(2026 - 11 - 01),
            },
        ];
        let s = surveil(TODAY, &given, &calm, false, &settings);
        let c = codes(&s);
        assert!(
            !c.contains(&"urinary_symptoms")
                && !c.contains(&"urinary_checklist_due")
                && !c.contains(&"cognitive_screen_due")
        );
    }
}
