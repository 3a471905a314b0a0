//! The wording of questionnaire items: what a patient reads on a questionnaire link and a clinician
//! reads on the chart's forms, and the answers they tap.
//!
//! Ketaflow ships the text of the instruments whose owners allow it to be reproduced (each entry
//! names its source and licence). The others are scored exactly but shown by item number with a
//! note that their wording is licensed; a clinic that holds a licence loads its text from a file
//! (`serve --instrument-wording FILE`, TOML, one table per instrument), checked against the
//! instrument's item count and answer range before the server starts.

use std::collections::BTreeMap;

use ketaflow_clinic::instruments::Instrument;
use serde::Deserialize;

/// The wording of one instrument.
#[derive(Clone, Debug, PartialEq)]
pub struct InstrumentWording {
    /// How the patient is asked to answer (time frame and scale).
    pub instruction: String,
    /// The item texts, in order.
    pub items: Vec<String>,
    /// The answers every item shares, for scores 0, 1, …; empty when items have their own.
    pub anchors: Vec<String>,
    /// Each item's own answers (QIDS-SR16), when they differ per item.
    pub item_anchors: Vec<Vec<String>>,
    /// Where the text comes from and under what terms.
    pub source: String,
    /// Loaded from the clinic's licensed file rather than shipped.
    pub clinic_licensed: bool,
}

impl InstrumentWording {
    /// The answers of item `index` (0-based) for scores 0, 1, …; empty means "numbers only".
    pub fn anchors_of(&self, index: usize) -> &[String] {
        match self.item_anchors.get(index) {
            Some(own) if !own.is_empty() => own,
            _ => &self.anchors,
        }
    }
}

/// Why an instrument's wording is not shown, in words a clinic can act on.
pub fn licence_note(code: &str) -> Option<&'static str> {
    Some(match code {
        "qids_sr16" => {
            "The QIDS-SR16's authors let clinicians use the paper form without permission; their terms for software, and the exact wording, are not confirmed here, so Ketaflow does not ship it. A clinic can load the text it uses."
        }
        "bpi_sf" => {
            "The Brief Pain Inventory is copyrighted (Charles S. Cleeland, MD Anderson Cancer Center) and used under licence: Ketaflow does not ship its wording. A clinic holding a licence can load its text."
        }
        "fiqr" => {
            "The FIQR's terms for use in software are not confirmed (the original FIQ is licensed through Mapi Research Trust for commercial use), so Ketaflow does not ship its wording. A clinic with permission can load its text."
        }
        "madrs" => {
            "The MADRS is rated by a clinician in an interview and its wording is copyrighted (Royal College of Psychiatrists): shown by item number. A clinic holding a licence can load its text."
        }
        "crps_css" => {
            "The CRPS Severity Score is the examiner's record of signs and symptoms, not answered by the patient; shown by item number."
        }
        _ => return None,
    })
}

/// A clinic's wording file could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WordingError {
    /// Not TOML of the expected shape.
    #[error("the instrument wording file is not valid TOML of the expected shape: {0}")]
    Syntax(String),
    /// An instrument Ketaflow does not score.
    #[error("[{0}] is not an instrument Ketaflow scores; allowed: {1}")]
    UnknownInstrument(String, String),
    /// The wrong number of items or answers.
    #[error("[{code}] {what}: found {found}, the instrument has {expected}")]
    Count {
        /// The instrument.
        code: String,
        /// What was counted.
        what: &'static str,
        /// How many were given.
        found: usize,
        /// How many the instrument has.
        expected: usize,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    instruction: String,
    source: String,
    items: Vec<String>,
    #[serde(default)]
    anchors: Vec<String>,
}

/// Every instrument's wording, shipped and (where a clinic loaded it) licensed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WordingLibrary {
    by_code: BTreeMap<String, InstrumentWording>,
}

fn strings(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|t| (*t).to_string()).collect()
}

impl WordingLibrary {
    /// The wording Ketaflow may reproduce.
    pub fn shipped() -> WordingLibrary {
        let mut by_code = BTreeMap::new();
        by_code.insert(
            "phq9".to_string(),
            InstrumentWording {
                instruction: PHQ_INSTRUCTION.into(),
                items: strings(&PHQ9_ITEMS),
                anchors: strings(&PHQ_ANCHORS),
                item_anchors: vec![],
                source: PHQ_SOURCE.into(),
                clinic_licensed: false,
            },
        );
        by_code.insert(
            "gad7".to_string(),
            InstrumentWording {
                instruction: GAD_INSTRUCTION.into(),
                items: strings(&GAD7_ITEMS),
                anchors: strings(&PHQ_ANCHORS),
                item_anchors: vec![],
                source: PHQ_SOURCE.into(),
                clinic_licensed: false,
            },
        );
        by_code.insert(
            "pcl5".to_string(),
            InstrumentWording {
                instruction: PCL5_INSTRUCTION.into(),
                items: strings(&PCL5_ITEMS),
                anchors: strings(&PCL5_ANCHORS),
                item_anchors: vec![],
                source: PCL5_SOURCE.into(),
                clinic_licensed: false,
            },
        );
        by_code.insert(
            "pain_nrs".to_string(),
            InstrumentWording {
                instruction: "Choose the number that best describes your pain right now.".into(),
                items: vec!["Pain intensity now".into()],
                anchors: (0..=10)
                    .map(|n| match n {
                        0 => "0 — no pain".to_string(),
                        10 => "10 — worst pain imaginable".to_string(),
                        n => n.to_string(),
                    })
                    .collect(),
                item_anchors: vec![],
                source: "0–10 numeric rating scale (public domain; anchors after Dworkin et al. 2005, IMMPACT, Pain 113:9–19)".into(),
                clinic_licensed: false,
            },
        );
        WordingLibrary { by_code }
    }

    /// The shipped wording with a clinic's licensed wording file laid over it.
    pub fn with_clinic_file(text: &str) -> Result<WordingLibrary, WordingError> {
        let mut library = WordingLibrary::shipped();
        let entries: BTreeMap<String, FileEntry> =
            toml::from_str(text).map_err(|e| WordingError::Syntax(e.to_string()))?;
        for (code, entry) in entries {
            let instrument = Instrument::ALL
                .into_iter()
                .find(|i| i.code() == code)
                .ok_or_else(|| {
                    WordingError::UnknownInstrument(
                        code.clone(),
                        Instrument::ALL.map(Instrument::code).join(", "),
                    )
                })?;
            let (items, max) = instrument.items();
            if entry.items.len() != items {
                return Err(WordingError::Count {
                    code,
                    what: "items",
                    found: entry.items.len(),
                    expected: items,
                });
            }
            if !entry.anchors.is_empty() && entry.anchors.len() != usize::from(max) + 1 {
                return Err(WordingError::Count {
                    code,
                    what: "anchors (one per score from 0)",
                    found: entry.anchors.len(),
                    expected: usize::from(max) + 1,
                });
            }
            library.by_code.insert(
                code,
                InstrumentWording {
                    instruction: entry.instruction,
                    items: entry.items,
                    anchors: entry.anchors,
                    item_anchors: vec![],
                    source: entry.source,
                    clinic_licensed: true,
                },
            );
        }
        Ok(library)
    }

    /// The wording of the instrument with this code, if it may be shown.
    pub fn get(&self, code: &str) -> Option<&InstrumentWording> {
        self.by_code.get(code)
    }
}

/// The PHQ-9's question (printed form; the GAD-7's lacks "any of").
const PHQ_INSTRUCTION: &str =
    "Over the last 2 weeks, how often have you been bothered by any of the following problems?";

/// The GAD-7's question (printed form).
const GAD_INSTRUCTION: &str =
    "Over the last 2 weeks, how often have you been bothered by the following problems?";

/// The four answers of the PHQ-9 and GAD-7, scored 0–3.
const PHQ_ANCHORS: [&str; 4] = [
    "Not at all",
    "Several days",
    "More than half the days",
    "Nearly every day",
];

/// The answers LOINC lists for the PHQ-9 items (answer list LL358-3).
const PHQ_SOURCE: &str = "Developed by Drs. Robert L. Spitzer, Janet B.W. Williams, Kurt Kroenke and colleagues, with an educational grant from Pfizer Inc. No permission required to reproduce, translate, display or distribute. (PHQ-9: Kroenke, Spitzer & Williams 2001, J Gen Intern Med 16:606; GAD-7: Spitzer et al. 2006, Arch Intern Med 166:1092.)";

/// The PCL-5's instruction (past-month standard form, 14 August 2013), as a patient taps rather
/// than circles.
const PCL5_INSTRUCTION: &str = "Below is a list of problems that people sometimes have in response to a very stressful experience. Please read each problem carefully and then choose how much you have been bothered by that problem in the past month. In the past month, how much were you bothered by:";

/// The PCL-5's answers, 0–4.
const PCL5_ANCHORS: [&str; 5] = [
    "Not at all",
    "A little bit",
    "Moderately",
    "Quite a bit",
    "Extremely",
];

/// The PCL-5's source. Public domain as a work of the US Government (National Center for PTSD);
/// that status is as CamCOPS (University of Cambridge) records it: the National Center's own
/// statement is UNVERIFIED here (docs/questionnaire-wording.md).
const PCL5_SOURCE: &str = "PTSD Checklist for DSM-5 (PCL-5), Weathers, Litz, Keane, Palmieri, Marx & Schnurr 2013, US Department of Veterans Affairs, National Center for PTSD (www.ptsd.va.gov); a work of the US Government.";

/// PCL-5 items (the VA's standard form; item texts as the VA's VistA Mental Health package holds them).
pub const PCL5_ITEMS: [&str; 20] = [
    "Repeated, disturbing, and unwanted memories of the stressful experience?",
    "Repeated, disturbing dreams of the stressful experience?",
    "Suddenly feeling or acting as if the stressful experience were actually happening again (as if you were actually back there reliving it)?",
    "Feeling very upset when something reminded you of the stressful experience?",
    "Having strong physical reactions when something reminded you of the stressful experience (for example, heart pounding, trouble breathing, sweating)?",
    "Avoiding memories, thoughts, or feelings related to the stressful experience?",
    "Avoiding external reminders of the stressful experience (for example, people, places, conversations, activities, objects, or situations)?",
    "Trouble remembering important parts of the stressful experience?",
    "Having strong negative beliefs about yourself, other people, or the world (for example, having thoughts such as: I am bad, there is something seriously wrong with me, no one can be trusted, the world is completely dangerous)?",
    "Blaming yourself or someone else for the stressful experience or what happened after it?",
    "Having strong negative feelings such as fear, horror, anger, guilt, or shame?",
    "Loss of interest in activities that you used to enjoy?",
    "Feeling distant or cut off from other people?",
    "Trouble experiencing positive feelings (for example, being unable to feel happiness or have loving feelings for people close to you)?",
    "Irritable behavior, angry outbursts, or acting aggressively?",
    "Taking too many risks or doing things that could cause you harm?",
    "Being \u{201c}superalert\u{201d} or watchful or on guard?",
    "Feeling jumpy or easily startled?",
    "Having difficulty concentrating?",
    "Trouble falling or staying asleep?",
];

/// PHQ-9 items (Kroenke, Spitzer & Williams 2001).
pub const PHQ9_ITEMS: [&str; 9] = [
    "Little interest or pleasure in doing things",
    "Feeling down, depressed, or hopeless",
    "Trouble falling or staying asleep, or sleeping too much",
    "Feeling tired or having little energy",
    "Poor appetite or overeating",
    "Feeling bad about yourself, or that you are a failure or have let yourself or your family down",
    "Trouble concentrating on things, such as reading the newspaper or watching television",
    "Moving or speaking so slowly that other people could have noticed? Or the opposite — being so fidgety or restless that you have been moving around a lot more than usual",
    "Thoughts that you would be better off dead, or of hurting yourself in some way",
];

/// GAD-7 items (Spitzer et al. 2006).
pub const GAD7_ITEMS: [&str; 7] = [
    "Feeling nervous, anxious, or on edge",
    "Not being able to stop or control worrying",
    "Worrying too much about different things",
    "Trouble relaxing",
    "Being so restless that it is hard to sit still",
    "Becoming easily annoyed or irritable",
    "Feeling afraid, as if something awful might happen",
];

/// The item whose answer at or above the given score means the patient may be at risk, so the form
/// shows where to get help before they send it (the server raises the alert when they do).
pub fn risk_item(code: &str) -> Option<(usize, u8)> {
    match code {
        // PHQ-9 item 9 and QIDS-SR16 item 12, scored above 0 (ketaflow_clinic::instruments::Flag).
        "phq9" => Some((8, 1)),
        "qids_sr16" => Some((11, 1)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_wording_matches_each_instrument() {
        let library = WordingLibrary::shipped();
        for code in ["phq9", "gad7", "pcl5", "pain_nrs"] {
            let instrument = Instrument::ALL.into_iter().find(|i| i.code() == code).unwrap();
            let (items, max) = instrument.items();
            let w = library.get(code).unwrap();
            assert_eq!(w.items.len(), items, "{code}");
            for i in 0..items {
                assert_eq!(w.anchors_of(i).len(), usize::from(max) + 1, "{code} item {i}");
            }
        }
        assert!(library.get("bpi_sf").is_none());
        assert!(licence_note("bpi_sf").unwrap().contains("Cleeland"));
    }

    #[test]
    fn a_clinic_file_is_checked_against_the_instrument() {
        let items: Vec<String> = (1..=11).map(|i| format!("\"item {i}\"")).collect();
        let good = format!(
            "[bpi_sf]\ninstruction = \"Rate your pain\"\nsource = \"BPI-SF, licensed to Example Clinic\"\nitems = [{}]\n",
            items.join(", ")
        );
        let library = WordingLibrary::with_clinic_file(&good).unwrap();
        let w = library.get("bpi_sf").unwrap();
        assert!(w.clinic_licensed);
        assert_eq!(w.items[10], "item 11");
        assert!(library.get("phq9").is_some(), "the shipped wording stays");

        let short = good.replace(", \"item 11\"", "");
        assert_eq!(
            WordingLibrary::with_clinic_file(&short).unwrap_err().to_string(),
            "[bpi_sf] items: found 10, the instrument has 11"
        );
        let unknown = good.replace("[bpi_sf]", "[hads]");
        assert!(
            WordingLibrary::with_clinic_file(&unknown)
                .unwrap_err()
                .to_string()
                .starts_with("[hads] is not an instrument Ketaflow scores; allowed: phq9")
        );
        let anchors = good.replace("items =", "anchors = [\"none\", \"worst\"]\nitems =");
        assert_eq!(
            WordingLibrary::with_clinic_file(&anchors)
                .unwrap_err()
                .to_string(),
            "[bpi_sf] anchors (one per score from 0): found 2, the instrument has 11"
        );
        assert!(matches!(
            WordingLibrary::with_clinic_file("[phq9\n").unwrap_err(),
            WordingError::Syntax(_)
        ));
    }
}
