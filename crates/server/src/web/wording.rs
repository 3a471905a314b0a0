//! The wording of questionnaire items that may be reproduced, shared by the clinician's forms on the
//! chart and the patient's questionnaire link. Instruments whose text is not reproduced here show
//! their item numbers.

/// PHQ-9 items, over the last two weeks (Kroenke, Spitzer & Williams 2001; the PHQ-9 is free to
/// reproduce, Pfizer).
pub(crate) const PHQ9_ITEMS: [&str; 9] = [
    "Little interest or pleasure in doing things",
    "Feeling down, depressed, or hopeless",
    "Trouble falling or staying asleep, or sleeping too much",
    "Feeling tired or having little energy",
    "Poor appetite or overeating",
    "Feeling bad about yourself, or that you are a failure or have let yourself or your family down",
    "Trouble concentrating on things, such as reading the newspaper or watching television",
    "Moving or speaking so slowly that other people could have noticed, or being so fidgety or restless that you have been moving around a lot more than usual",
    "Thoughts that you would be better off dead, or of hurting yourself in some way",
];

/// GAD-7 items, over the last two weeks (Spitzer et al. 2006; free to reproduce, Pfizer).
pub(crate) const GAD7_ITEMS: [&str; 7] = [
    "Feeling nervous, anxious, or on edge",
    "Not being able to stop or control worrying",
    "Worrying too much about different things",
    "Trouble relaxing",
    "Being so restless that it is hard to sit still",
    "Becoming easily annoyed or irritable",
    "Feeling afraid, as if something awful might happen",
];

/// The four answers of the PHQ-9 and GAD-7 items, as a clinician records them.
pub(crate) const FREQUENCY_SCALE_CLINICIAN: &str = "Over the last 2 weeks, how often has the patient been bothered by each problem? 0 = not at all, 1 = several days, 2 = more than half the days, 3 = nearly every day.";

/// The same answers as the patient reads them on a questionnaire link.
pub(crate) const FREQUENCY_SCALE_PATIENT: &str = "Over the last 2 weeks, how often have you been bothered by each of these problems? 0 = not at all, 1 = several days, 2 = more than half the days, 3 = nearly every day.";

/// The text of item `item` (1-based) of the instrument with this code, where it is reproduced.
pub(crate) fn item_text(code: &str, item: usize) -> Option<&'static str> {
    match code {
        "phq9" => PHQ9_ITEMS.get(item.checked_sub(1)?).copied(),
        "gad7" => GAD7_ITEMS.get(item.checked_sub(1)?).copied(),
        "pain_nrs" => Some("Pain intensity now (0 = no pain, 10 = worst pain imaginable)"),
        _ => None,
    }
}

/// How the patient answers the items of the instrument with this code, where it is reproduced.
pub(crate) fn patient_scale(code: &str) -> Option<&'static str> {
    matches!(code, "phq9" | "gad7").then_some(FREQUENCY_SCALE_PATIENT)
}
