//! Outcome instruments, scored exactly (`shared/domain/clinical.md` §6): PHQ-9, GAD-7, PCL-5,
//! MADRS, QIDS-SR16, the C-SSRS screener, pain NRS, BPI short form, FIQR and the CRPS Severity
//! Score. Incomplete or out-of-range answers are errors; nothing is guessed, except where the
//! instrument's own missing-item rule says how (BPI interference, FIQR domains).
//!
//! A positive PHQ-9 item 9 and a moderate or high C-SSRS risk are returned as [`Flag`]s that the
//! caller must act on (urgent alert, documented follow-up); they never hide behind a total score.

/// The instruments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Instrument {
    /// Patient Health Questionnaire-9 (Kroenke, Spitzer & Williams 2001).
    Phq9,
    /// Generalised Anxiety Disorder-7 (Spitzer et al. 2006).
    Gad7,
    /// PTSD Checklist for DSM-5 (Bovin et al. 2016).
    Pcl5,
    /// Montgomery–Åsberg Depression Rating Scale (1979).
    Madrs,
    /// Quick Inventory of Depressive Symptomatology, self-report, 16 items (Rush et al. 2003).
    QidsSr16,
    /// Numeric rating scale for pain, 0–10.
    PainNrs,
    /// Brief Pain Inventory, short form (Cleeland).
    BpiShortForm,
    /// Revised Fibromyalgia Impact Questionnaire (Bennett et al. 2009).
    Fiqr,
    /// CRPS Severity Score (Harden et al. 2010).
    CrpsSeverityScore,
}

impl Instrument {
    /// Every instrument.
    pub const ALL: [Instrument; 9] = [
        Instrument::Phq9,
        Instrument::Gad7,
        Instrument::Pcl5,
        Instrument::Madrs,
        Instrument::QidsSr16,
        Instrument::PainNrs,
        Instrument::BpiShortForm,
        Instrument::Fiqr,
        Instrument::CrpsSeverityScore,
    ];

    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            Instrument::Phq9 => "phq9",
            Instrument::Gad7 => "gad7",
            Instrument::Pcl5 => "pcl5",
            Instrument::Madrs => "madrs",
            Instrument::QidsSr16 => "qids_sr16",
            Instrument::PainNrs => "pain_nrs",
            Instrument::BpiShortForm => "bpi_sf",
            Instrument::Fiqr => "fiqr",
            Instrument::CrpsSeverityScore => "crps_css",
        }
    }

    /// Number of items and the highest score of one item.
    pub fn items(self) -> (usize, u8) {
        match self {
            Instrument::Phq9 => (9, 3),
            Instrument::Gad7 => (7, 3),
            Instrument::Pcl5 => (20, 4),
            Instrument::Madrs => (10, 6),
            Instrument::QidsSr16 => (16, 3),
            Instrument::PainNrs => (1, 10),
            Instrument::BpiShortForm => (11, 10),
            Instrument::Fiqr => (21, 10),
            Instrument::CrpsSeverityScore => (17, 1),
        }
    }

    /// LOINC code of the total, where one is known (clinical.md §6.3).
    pub fn loinc(self) -> Option<&'static str> {
        match self {
            // HL7 PHR IG value set; CMS159.
            Instrument::Phq9 => Some("44261-6"),
            // HL7 PHR IG value set.
            Instrument::Gad7 => Some("70274-6"),
            // Third-party check against tx.fhir.org (to verify).
            Instrument::Pcl5 => Some("101698-9"),
            // CMS157.
            Instrument::PainNrs => Some("72514-3"),
            // BPI-SF pain interference score, CMS157.
            Instrument::BpiShortForm => Some("77565-0"),
            // Not found (UNVERIFIED): local codes.
            Instrument::Madrs | Instrument::QidsSr16 | Instrument::Fiqr | Instrument::CrpsSeverityScore => {
                None
            }
        }
    }
}

/// Something the clinician must act on, whatever the total.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    /// PHQ-9 item 9 (thoughts of death or self-harm) scored above 0: needs prompt suicide-risk
    /// assessment (clinical convention; calcipedia.org, secondary), e.g. with the C-SSRS.
    SuicideItemPositive {
        /// The item's score, 1–3.
        item_score: u8,
    },
    /// QIDS-SR16 item 12 (suicidal ideation) scored above 0 (same convention as PHQ-9 item 9).
    QidsSuicideItemPositive {
        /// The item's score, 1–3.
        item_score: u8,
    },
    /// PCL-5 meets the DSM-5 provisional-diagnosis rule.
    ProvisionalPtsd,
    /// C-SSRS screener risk.
    SuicideRisk(CssrsRisk),
}

/// A scored questionnaire.
#[derive(Clone, Debug, PartialEq)]
pub struct Score {
    /// Which instrument.
    pub instrument: Instrument,
    /// The total.
    pub total: f64,
    /// The severity band, where the instrument has bands.
    pub band: Option<&'static str>,
    /// Subscores (clusters, domains), where defined.
    pub subscores: Vec<(&'static str, f64)>,
    /// Flags to act on.
    pub flags: Vec<Flag>,
}

/// Answers that cannot be scored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InstrumentError {
    /// Wrong number of items.
    #[error("{instrument} has {expected} items; {given} were given")]
    ItemCount {
        /// Instrument code.
        instrument: &'static str,
        /// Items expected.
        expected: usize,
        /// Items given.
        given: usize,
    },
    /// An item outside its range.
    #[error("{instrument} item {item} = {value} is outside 0–{max}")]
    OutOfRange {
        /// Instrument code.
        instrument: &'static str,
        /// 1-based item number.
        item: usize,
        /// The value.
        value: u8,
        /// The item's maximum.
        max: u8,
    },
    /// Items missing where the instrument has no missing-item rule, or too many missing.
    #[error("{instrument}: {problem}")]
    Incomplete {
        /// Instrument code.
        instrument: &'static str,
        /// What is missing.
        problem: String,
    },
}

fn band(total: f64, bands: &[(f64, &'static str)]) -> Option<&'static str> {
    bands
        .iter()
        .rev()
        .find(|(from, _)| total >= *from)
        .map(|(_, name)| *name)
}

/// Checks count and ranges; returns the items with `None` for unanswered ones.
fn check(instrument: Instrument, items: &[Option<u8>]) -> Result<(), InstrumentError> {
    let (n, max) = instrument.items();
    if items.len() != n {
        return Err(InstrumentError::ItemCount {
            instrument: instrument.code(),
            expected: n,
            given: items.len(),
        });
    }
    for (i, item) in items.iter().enumerate() {
        if let Some(v) = *item
            && v > max
        {
            return Err(InstrumentError::OutOfRange {
                instrument: instrument.code(),
                item: i + 1,
                value: v,
                max,
            });
        }
    }
    Ok(())
}

fn all_answered(instrument: Instrument, items: &[Option<u8>]) -> Result<Vec<u8>, InstrumentError> {
    let missing: Vec<String> = items
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_none())
        .map(|(i, _)| (i + 1).to_string())
        .collect();
    if !missing.is_empty() {
        return Err(InstrumentError::Incomplete {
            instrument: instrument.code(),
            problem: format!(
                "items {} are unanswered; every item is needed",
                missing.join(", ")
            ),
        });
    }
    Ok(items.iter().map(|v| v.unwrap_or_default()).collect())
}

fn sum(values: &[u8]) -> f64 {
    values.iter().map(|v| f64::from(*v)).sum()
}

/// Scores an item-based instrument. `items[i]` is item i+1; `None` is unanswered.
pub fn score(instrument: Instrument, items: &[Option<u8>]) -> Result<Score, InstrumentError> {
    check(instrument, items)?;
    let code = instrument.code();
    let mut flags = Vec::new();
    let mut subscores = Vec::new();
    let (total, band) = match instrument {
        Instrument::Phq9 => {
            let v = all_answered(instrument, items)?;
            if v[8] > 0 {
                flags.push(Flag::SuicideItemPositive { item_score: v[8] });
            }
            // Kroenke 2001: 0–4 minimal, 5–9 mild, 10–14 moderate, 15–19 moderately severe, 20–27 severe.
            let t = sum(&v);
            (
                t,
                band(
                    t,
                    &[
                        (0.0, "none-minimal"),
                        (5.0, "mild"),
                        (10.0, "moderate"),
                        (15.0, "moderately severe"),
                        (20.0, "severe"),
                    ],
                ),
            )
        }
        Instrument::Gad7 => {
            let v = all_answered(instrument, items)?;
            // Spitzer 2006: 0–4 minimal, 5–9 mild, 10–14 moderate, 15–21 severe.
            let t = sum(&v);
            (
                t,
                band(
                    t,
                    &[
                        (0.0, "minimal"),
                        (5.0, "mild"),
                        (10.0, "moderate"),
                        (15.0, "severe"),
                    ],
                ),
            )
        }
        Instrument::Pcl5 => {
            let v = all_answered(instrument, items)?;
            // Clusters (Bovin 2016): B 1–5, C 6–7, D 8–14, E 15–20.
            let clusters = [("B", 0..5, 1), ("C", 5..7, 1), ("D", 7..14, 2), ("E", 14..20, 2)];
            let mut provisional = true;
            for (name, range, needed) in clusters {
                subscores.push((name, sum(&v[range.clone()])));
                // DSM-5 provisional diagnosis: an item rated ≥ 2 counts as endorsed.
                if v[range].iter().filter(|x| **x >= 2).count() < needed {
                    provisional = false;
                }
            }
            if provisional {
                flags.push(Flag::ProvisionalPtsd);
            }
            // Probable PTSD at 31–33; 33 is used here (Bovin 2016's upper cut-off).
            let t = sum(&v);
            (
                t,
                band(
                    t,
                    &[
                        (0.0, "below probable-PTSD cut-off"),
                        (33.0, "probable PTSD (≥ 33)"),
                    ],
                ),
            )
        }
        Instrument::Madrs => {
            let v = all_answered(instrument, items)?;
            // Snaith 1986: 0–6 absent, 7–19 mild, 20–34 moderate, 35–60 severe.
            let t = sum(&v);
            (
                t,
                band(
                    t,
                    &[
                        (0.0, "absent"),
                        (7.0, "mild"),
                        (20.0, "moderate"),
                        (35.0, "severe"),
                    ],
                ),
            )
        }
        Instrument::QidsSr16 => {
            let v = all_answered(instrument, items)?;
            // Rush 2003: highest of sleep 1–4, item 5, highest of appetite/weight 6–9, items 10–14,
            // highest of psychomotor 15–16.
            let max_of = |r: std::ops::Range<usize>| f64::from(v[r].iter().copied().max().unwrap_or(0));
            let t = max_of(0..4)
                + f64::from(v[4])
                + max_of(5..9)
                + v[9..14].iter().map(|x| f64::from(*x)).sum::<f64>()
                + max_of(14..16);
            if v[11] > 0 {
                flags.push(Flag::QidsSuicideItemPositive { item_score: v[11] });
            }
            (
                t,
                band(
                    t,
                    &[
                        (0.0, "none"),
                        (6.0, "mild"),
                        (11.0, "moderate"),
                        (16.0, "severe"),
                        (21.0, "very severe"),
                    ],
                ),
            )
        }
        Instrument::PainNrs => {
            let v = all_answered(instrument, items)?;
            // Common bands (ePPOC usage): 0–4 mild, 5–6 moderate, 7–10 severe.
            let t = f64::from(v[0]);
            (t, band(t, &[(0.0, "mild"), (5.0, "moderate"), (7.0, "severe")]))
        }
        Instrument::BpiShortForm => {
            // Items 1–4: worst, least, average, now (all needed). Items 5–11: interference, valid
            // when at least 4 of 7 are answered (ePPOC).
            let severity =
                all_answered(instrument, &items[..4]).map_err(|_| InstrumentError::Incomplete {
                    instrument: code,
                    problem: "the four severity items (worst, least, average, now) are all needed".into(),
                })?;
            let interference: Vec<u8> = items[4..].iter().flatten().copied().collect();
            if interference.len() < 4 {
                return Err(InstrumentError::Incomplete {
                    instrument: code,
                    problem: format!(
                        "interference needs at least 4 of 7 items; {} answered",
                        interference.len()
                    ),
                });
            }
            let severity_mean = sum(&severity) / 4.0;
            let interference_mean = sum(&interference) / interference.len() as f64;
            subscores.push(("severity", severity_mean));
            subscores.push(("interference", interference_mean));
            // The total reported is the interference mean (LOINC 77565-0); no bands.
            (interference_mean, None)
        }
        Instrument::Fiqr => {
            // Function items 1–9 (sum ÷ 3), overall impact 10–11 (sum ÷ 1), symptoms 12–21 (sum ÷ 2);
            // a domain with missing items is scaled by n/answered (Bennett 2009).
            let mut total = 0.0;
            for (name, range, divisor) in [
                ("function", 0..9, 3.0),
                ("overall impact", 9..11, 1.0),
                ("symptoms", 11..21, 2.0),
            ] {
                let n = range.len();
                let answered: Vec<u8> = items[range].iter().flatten().copied().collect();
                if answered.is_empty() {
                    return Err(InstrumentError::Incomplete {
                        instrument: code,
                        problem: format!("the {name} domain has no answered item"),
                    });
                }
                let domain = sum(&answered) * n as f64 / answered.len() as f64 / divisor;
                subscores.push((name, domain));
                total += domain;
            }
            (total, None)
        }
        Instrument::CrpsSeverityScore => {
            let v = all_answered(instrument, items)?;
            // Harden 2010: 17 signs and symptoms present (1) or absent (0); no bands.
            (sum(&v), None)
        }
    };
    Ok(Score {
        instrument,
        total,
        band,
        subscores,
        flags,
    })
}

/// C-SSRS screener risk level (Columbia triage guidelines).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CssrsRisk {
    /// No to every question.
    None,
    /// Yes to Q1 or Q2 only.
    Low,
    /// Yes to Q3, or suicidal behaviour more than 3 months ago.
    Moderate,
    /// Yes to Q4 or Q5, or suicidal behaviour within the past 3 months: immediate evaluation.
    High,
}

/// C-SSRS screener answers, with its skip logic: Q3–Q5 are asked only when Q2 is yes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CssrsAnswers {
    /// Q1: wished to be dead or not wake up (past month).
    pub wish_to_be_dead: bool,
    /// Q2: actual thoughts of killing oneself (past month).
    pub suicidal_thoughts: bool,
    /// Q3: thought about how (method).
    pub method: Option<bool>,
    /// Q4: intention of acting on the thoughts.
    pub intent: Option<bool>,
    /// Q5: started to work out details (plan) with intent.
    pub plan: Option<bool>,
    /// Q6: ever done, started or prepared to do anything to end one's life.
    pub behaviour: bool,
    /// Q6 follow-up: within the past 3 months (asked when Q6 is yes).
    pub behaviour_within_3_months: Option<bool>,
}

/// Scores the C-SSRS screener; refuses answers that break its skip logic.
pub fn score_cssrs(a: &CssrsAnswers) -> Result<CssrsRisk, InstrumentError> {
    let incomplete = |problem: &str| InstrumentError::Incomplete {
        instrument: "cssrs_screener",
        problem: problem.into(),
    };
    let asked = [a.method, a.intent, a.plan];
    if a.suicidal_thoughts && asked.iter().any(Option::is_none) {
        return Err(incomplete("Q2 is yes, so Q3, Q4 and Q5 must be answered"));
    }
    if !a.suicidal_thoughts && asked.iter().any(Option::is_some) {
        return Err(incomplete(
            "Q2 is no, so Q3, Q4 and Q5 are skipped and must be left unanswered",
        ));
    }
    if a.behaviour != a.behaviour_within_3_months.is_some() {
        return Err(incomplete(
            "the 'within the past 3 months' follow-up is answered exactly when Q6 is yes",
        ));
    }
    let yes = |v: Option<bool>| v == Some(true);
    let recent_behaviour = a.behaviour && yes(a.behaviour_within_3_months);
    Ok(if yes(a.intent) || yes(a.plan) || recent_behaviour {
        CssrsRisk::High
    } else if yes(a.method) || a.behaviour {
        CssrsRisk::Moderate
    } else if a.wish_to_be_dead || a.suicidal_thoughts {
        CssrsRisk::Low
    } else {
        CssrsRisk::None
    })
}

/// Whether a C-SSRS result must raise an urgent alert (moderate or high risk).
pub fn cssrs_needs_alert(risk: CssrsRisk) -> bool {
    risk >= CssrsRisk::Moderate
}

/// Depression response: at least 50 % reduction from baseline (MADRS or HDRS; Murrough 2013).
pub fn is_response(baseline: f64, now: f64) -> bool {
    baseline > 0.0 && now <= 0.5 * baseline
}

/// Depression remission for an instrument, where defined (clinical.md §6.2): MADRS < 10
/// (Hawley 2002), QIDS-SR16 ≤ 5 (Trivedi 2006), PHQ-9 < 5 (HEDIS DRR-E).
pub fn is_remission(instrument: Instrument, total: f64) -> Option<bool> {
    match instrument {
        Instrument::Madrs => Some(total < 10.0),
        Instrument::QidsSr16 => Some(total <= 5.0),
        Instrument::Phq9 => Some(total < 5.0),
        _ => None,
    }
}

/// Pain: clinically important change, a fall of at least 2 points or 30 % on the 0–10 NRS
/// (Farrar 2001, PMID 11690728).
pub fn is_clinically_important_pain_change(baseline: f64, now: f64) -> bool {
    baseline - now >= 2.0 || (baseline > 0.0 && (baseline - now) / baseline >= 0.30)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(values: &[u8]) -> Vec<Option<u8>> {
        values.iter().map(|v| Some(*v)).collect()
    }

    #[test]
    fn phq9_bands_are_exact_at_every_boundary() {
        let cases = [
            (0, "none-minimal"),
            (4, "none-minimal"),
            (5, "mild"),
            (9, "mild"),
            (10, "moderate"),
            (14, "moderate"),
            (15, "moderately severe"),
            (19, "moderately severe"),
            (20, "severe"),
            (27, "severe"),
        ];
        for (total, expected) in cases {
            // Spread the total over items 1–8 (item 9 at 0).
            let mut v = [0u8; 9];
            let mut left = total;
            for slot in v.iter_mut().take(8) {
                let take = left.min(3);
                *slot = take;
                left -= take;
            }
            if left > 0 {
                v[8] = left;
            }
            let s = score(Instrument::Phq9, &items(&v)).unwrap();
            assert_eq!((s.total, s.band), (f64::from(total), Some(expected)), "{total}");
        }
    }

    #[test]
    fn phq9_item_nine_flags_whatever_the_total() {
        let s = score(Instrument::Phq9, &items(&[0, 0, 0, 0, 0, 0, 0, 0, 1])).unwrap();
        assert_eq!(s.total, 1.0);
        assert_eq!(s.band, Some("none-minimal"));
        assert_eq!(s.flags, vec![Flag::SuicideItemPositive { item_score: 1 }]);
        assert_eq!(Instrument::Phq9.loinc(), Some("44261-6"));
    }

    #[test]
    fn incomplete_or_out_of_range_answers_are_refused() {
        assert_eq!(
            score(Instrument::Phq9, &items(&[0; 8])).unwrap_err().to_string(),
            "phq9 has 9 items; 8 were given"
        );
        assert_eq!(
            score(Instrument::Gad7, &items(&[0, 0, 4, 0, 0, 0, 0]))
                .unwrap_err()
                .to_string(),
            "gad7 item 3 = 4 is outside 0–3"
        );
        let mut v = items(&[1; 9]);
        v[4] = None;
        assert!(
            score(Instrument::Phq9, &v)
                .unwrap_err()
                .to_string()
                .contains("items 5 are unanswered")
        );
    }

    #[test]
    fn gad7_and_madrs_bands() {
        for (t, b) in [
            (4, "minimal"),
            (5, "mild"),
            (10, "moderate"),
            (15, "severe"),
            (21, "severe"),
        ] {
            let mut v = [0u8; 7];
            let mut left = t;
            for slot in v.iter_mut() {
                let take = left.min(3);
                *slot = take;
                left -= take;
            }
            assert_eq!(score(Instrument::Gad7, &items(&v)).unwrap().band, Some(b), "{t}");
        }
        for (t, b) in [
            (6, "absent"),
            (7, "mild"),
            (19, "mild"),
            (20, "moderate"),
            (34, "moderate"),
            (35, "severe"),
        ] {
            let mut v = [0u8; 10];
            let mut left = t;
            for slot in v.iter_mut() {
                let take = left.min(6);
                *slot = take;
                left -= take;
            }
            assert_eq!(score(Instrument::Madrs, &items(&v)).unwrap().band, Some(b), "{t}");
        }
    }

    #[test]
    fn pcl5_clusters_and_the_provisional_diagnosis_rule() {
        // B1=2, C6=2, D8=2, D9=2, E15=2, E16=2: meets the rule; total 12.
        let mut v = [0u8; 20];
        for i in [0, 5, 7, 8, 14, 15] {
            v[i] = 2;
        }
        let s = score(Instrument::Pcl5, &items(&v)).unwrap();
        assert_eq!(s.total, 12.0);
        assert_eq!(s.subscores, vec![("B", 2.0), ("C", 2.0), ("D", 4.0), ("E", 4.0)]);
        assert_eq!(s.flags, vec![Flag::ProvisionalPtsd]);
        // One D item at 1 instead of 2: the rule fails although the total barely changes.
        v[8] = 1;
        assert!(score(Instrument::Pcl5, &items(&v)).unwrap().flags.is_empty());
        assert_eq!(
            score(Instrument::Pcl5, &items(&[2; 20])).unwrap().band,
            Some("probable PTSD (≥ 33)")
        );
    }

    #[test]
    fn qids_takes_the_highest_item_of_each_multi_item_domain() {
        // Sleep items 1–4 = 1,3,0,2 → 3; mood 2; appetite/weight 6–9 = 0,1,2,0 → 2; items 10–14 = 1,0,1,1,1;
        // psychomotor 15–16 = 0,2 → 2. Total 3+2+2+4+2 = 13, moderate; item 12 = 1 flags.
        let v = [1, 3, 0, 2, 2, 0, 1, 2, 0, 1, 0, 1, 1, 1, 0, 2];
        let s = score(Instrument::QidsSr16, &items(&v)).unwrap();
        assert_eq!((s.total, s.band), (13.0, Some("moderate")));
        assert_eq!(s.flags, vec![Flag::QidsSuicideItemPositive { item_score: 1 }]);
        assert_eq!(is_remission(Instrument::QidsSr16, 5.0), Some(true));
    }

    #[test]
    fn bpi_interference_needs_four_of_seven_and_fiqr_scales_missing_items() {
        let mut v: Vec<Option<u8>> = items(&[8, 2, 5, 5, 6, 4, 2, 8, 0, 0, 0]);
        let s = score(Instrument::BpiShortForm, &v).unwrap();
        assert_eq!(s.subscores, vec![("severity", 5.0), ("interference", 20.0 / 7.0)]);
        for slot in v.iter_mut().skip(8) {
            *slot = None;
        }
        // Items 5–8 answered (6, 4, 2, 8): mean 5.
        assert_eq!(score(Instrument::BpiShortForm, &v).unwrap().total, 5.0);
        v[7] = None;
        assert!(
            score(Instrument::BpiShortForm, &v)
                .unwrap_err()
                .to_string()
                .contains("at least 4 of 7")
        );

        // FIQR: function all 6 (54/3 = 18), impact 10 and 10 (20), symptoms all 5 (50/2 = 25): 63.
        let mut f = vec![Some(6u8); 9];
        f.extend([Some(10), Some(10)]);
        f.extend(vec![Some(5u8); 10]);
        let s = score(Instrument::Fiqr, &f).unwrap();
        assert_eq!(s.total, 63.0);
        // Three function items missing: the six answered sum 36, scaled 9/6 → 54, ÷ 3 → 18 again.
        f[0] = None;
        f[1] = None;
        f[2] = None;
        assert_eq!(
            score(Instrument::Fiqr, &f).unwrap().subscores[0],
            ("function", 18.0)
        );
    }

    #[test]
    fn cssrs_risk_levels_and_skip_logic() {
        let none = CssrsAnswers {
            wish_to_be_dead: false,
            suicidal_thoughts: false,
            method: None,
            intent: None,
            plan: None,
            behaviour: false,
            behaviour_within_3_months: None,
        };
        assert_eq!(score_cssrs(&none).unwrap(), CssrsRisk::None);
        assert_eq!(
            score_cssrs(&CssrsAnswers {
                wish_to_be_dead: true,
                ..none
            })
            .unwrap(),
            CssrsRisk::Low
        );
        let thoughts = CssrsAnswers {
            suicidal_thoughts: true,
            method: Some(false),
            intent: Some(false),
            plan: Some(false),
            ..none
        };
        assert_eq!(score_cssrs(&thoughts).unwrap(), CssrsRisk::Low);
        assert_eq!(
            score_cssrs(&CssrsAnswers {
                method: Some(true),
                ..thoughts
            })
            .unwrap(),
            CssrsRisk::Moderate
        );
        assert_eq!(
            score_cssrs(&CssrsAnswers {
                intent: Some(true),
                ..thoughts
            })
            .unwrap(),
            CssrsRisk::High
        );
        assert_eq!(
            score_cssrs(&CssrsAnswers {
                plan: Some(true),
                ..thoughts
            })
            .unwrap(),
            CssrsRisk::High
        );
        let old = CssrsAnswers {
            behaviour: true,
            behaviour_within_3_months: Some(false),
            ..none
        };
        assert_eq!(score_cssrs(&old).unwrap(), CssrsRisk::Moderate);
        let recent = CssrsAnswers {
            behaviour_within_3_months: Some(true),
            ..old
        };
        assert_eq!(score_cssrs(&recent).unwrap(), CssrsRisk::High);
        assert!(cssrs_needs_alert(CssrsRisk::Moderate) && !cssrs_needs_alert(CssrsRisk::Low));
        // Skip logic.
        assert!(
            score_cssrs(&CssrsAnswers {
                method: Some(false),
                ..none
            })
            .is_err()
        );
        assert!(
            score_cssrs(&CssrsAnswers {
                suicidal_thoughts: true,
                ..none
            })
            .is_err()
        );
        assert!(
            score_cssrs(&CssrsAnswers {
                behaviour: true,
                ..none
            })
            .is_err()
        );
    }

    #[test]
    fn response_remission_and_pain_change() {
        assert!(is_response(30.0, 15.0));
        assert!(!is_response(30.0, 16.0));
        assert_eq!(is_remission(Instrument::Madrs, 9.0), Some(true));
        assert_eq!(is_remission(Instrument::Madrs, 10.0), Some(false));
        assert_eq!(is_remission(Instrument::Phq9, 5.0), Some(false));
        assert!(is_clinically_important_pain_change(8.0, 6.0));
        assert!(is_clinically_important_pain_change(5.0, 3.5));
        assert!(!is_clinically_important_pain_change(8.0, 6.5));
        let css = score(
            Instrument::CrpsSeverityScore,
            &items(&[1, 0, 1, 1, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1]),
        )
        .unwrap();
        assert_eq!((css.total, css.band), (8.0, None));
        assert!(score(Instrument::CrpsSeverityScore, &items(&[2; 17])).is_err());
    }
}
