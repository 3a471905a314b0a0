//! Side effects during and after an infusion: what, how severe, when it began, what was done, and
//! the rating scales that go with dissociation (CADSS-6) and sedation (MOAA/S).
//!
//! Codes are stable snake_case strings (stored and sent over the API); the text form of a value
//! with a payload is `code:payload` (`other:<description>`, `medication_given:<name>:<dose>`), and
//! `Display` and `FromStr` round-trip.

use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;

/// A code that is not one of the allowed ones, or a value whose payload is missing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// Not an allowed code.
    #[error("{what} {given:?} is not allowed; allowed: {allowed}")]
    Unknown {
        /// What was being parsed.
        what: &'static str,
        /// The text given.
        given: String,
        /// The allowed codes.
        allowed: &'static str,
    },
    /// The code needs a payload that is missing or blank.
    #[error("{what} {given:?} needs {needs}")]
    MissingDetail {
        /// What was being parsed.
        what: &'static str,
        /// The text given.
        given: String,
        /// The expected form.
        needs: &'static str,
    },
}

/// Stored and sent in their text form (`Display`), read back through `FromStr`, so a stored code
/// that no longer parses is an error naming it rather than a string each reader re-checks.
macro_rules! serde_as_text {
    ($($ty:ty),*) => {$(
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

serde_as_text!(SideEffectKind, Severity, ActionTaken);

fn non_blank(s: &str) -> Option<&str> {
    let t = s.trim();
    (!t.is_empty()).then_some(t)
}

/// What kind of side effect.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SideEffectKind {
    /// Dissociation (depersonalisation, derealisation); may carry a CADSS-6.
    Dissociation,
    /// Sedation; may carry a MOAA/S.
    Sedation,
    /// Nausea.
    Nausea,
    /// Vomiting.
    Vomiting,
    /// Dizziness.
    Dizziness,
    /// Blurred vision.
    BlurredVision,
    /// Dream-like state or emergence reaction.
    DreamLikeOrEmergence,
    /// Blood-pressure rise.
    BloodPressureRise,
    /// Heart-rate rise.
    HeartRateRise,
    /// Headache.
    Headache,
    /// Anxiety.
    Anxiety,
    /// Anything else, described.
    Other(String),
}

const KIND_CODES: &str = "dissociation, sedation, nausea, vomiting, dizziness, blurred_vision, dream_like_or_emergence, blood_pressure_rise, heart_rate_rise, headache, anxiety, other:<description>";

impl SideEffectKind {
    /// The kinds without a payload, in code order.
    pub const FIXED: [SideEffectKind; 11] = [
        SideEffectKind::Dissociation,
        SideEffectKind::Sedation,
        SideEffectKind::Nausea,
        SideEffectKind::Vomiting,
        SideEffectKind::Dizziness,
        SideEffectKind::BlurredVision,
        SideEffectKind::DreamLikeOrEmergence,
        SideEffectKind::BloodPressureRise,
        SideEffectKind::HeartRateRise,
        SideEffectKind::Headache,
        SideEffectKind::Anxiety,
    ];

    /// Stable code (`other` for [`SideEffectKind::Other`], without its description).
    pub fn code(&self) -> &'static str {
        match self {
            SideEffectKind::Dissociation => "dissociation",
            SideEffectKind::Sedation => "sedation",
            SideEffectKind::Nausea => "nausea",
            SideEffectKind::Vomiting => "vomiting",
            SideEffectKind::Dizziness => "dizziness",
            SideEffectKind::BlurredVision => "blurred_vision",
            SideEffectKind::DreamLikeOrEmergence => "dream_like_or_emergence",
            SideEffectKind::BloodPressureRise => "blood_pressure_rise",
            SideEffectKind::HeartRateRise => "heart_rate_rise",
            SideEffectKind::Headache => "headache",
            SideEffectKind::Anxiety => "anxiety",
            SideEffectKind::Other(_) => "other",
        }
    }
}

impl fmt::Display for SideEffectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SideEffectKind::Other(description) => write!(f, "other:{description}"),
            kind => f.write_str(kind.code()),
        }
    }
}

impl FromStr for SideEffectKind {
    type Err = CodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (code, detail) = match s.split_once(':') {
            Some((code, detail)) => (code.trim(), Some(detail)),
            None => (s.trim(), None),
        };
        if code == "other" {
            return match detail.and_then(non_blank) {
                Some(d) => Ok(SideEffectKind::Other(d.to_string())),
                None => Err(CodeError::MissingDetail {
                    what: "side-effect kind",
                    given: s.to_string(),
                    needs: "a description: other:<description>",
                }),
            };
        }
        SideEffectKind::FIXED
            .into_iter()
            .find(|k| detail.is_none() && k.code() == code)
            .ok_or_else(|| CodeError::Unknown {
                what: "side-effect kind",
                given: s.to_string(),
                allowed: KIND_CODES,
            })
    }
}

/// How severe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Mild.
    Mild,
    /// Moderate.
    Moderate,
    /// Severe.
    Severe,
}

impl Severity {
    /// All severities, mildest first.
    pub const ALL: [Severity; 3] = [Severity::Mild, Severity::Moderate, Severity::Severe];

    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            Severity::Mild => "mild",
            Severity::Moderate => "moderate",
            Severity::Severe => "severe",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Severity {
    type Err = CodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|v| v.code() == s.trim())
            .ok_or_else(|| CodeError::Unknown {
                what: "severity",
                given: s.to_string(),
                allowed: "mild, moderate, severe",
            })
    }
}

/// What was done about a side effect.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ActionTaken {
    /// Nothing.
    None,
    /// Observed.
    Observation,
    /// Reassured the patient.
    Reassurance,
    /// Paused the infusion.
    Pause,
    /// Reduced the rate.
    RateReduction,
    /// Gave a medication.
    MedicationGiven {
        /// Which (no `:` in it, so that the text form parses back).
        name: String,
        /// Dose and route as the clinician wrote them (free text).
        dose: String,
    },
    /// Called the physician.
    PhysicianCalled,
    /// Stopped the infusion.
    InfusionStopped,
}

const ACTION_CODES: &str = "none, observation, reassurance, pause, rate_reduction, medication_given:<name>:<dose>, physician_called, infusion_stopped";

impl ActionTaken {
    /// The actions without a payload, in code order.
    pub const FIXED: [ActionTaken; 7] = [
        ActionTaken::None,
        ActionTaken::Observation,
        ActionTaken::Reassurance,
        ActionTaken::Pause,
        ActionTaken::RateReduction,
        ActionTaken::PhysicianCalled,
        ActionTaken::InfusionStopped,
    ];

    /// Stable code (`medication_given` without its name and dose).
    pub fn code(&self) -> &'static str {
        match self {
            ActionTaken::None => "none",
            ActionTaken::Observation => "observation",
            ActionTaken::Reassurance => "reassurance",
            ActionTaken::Pause => "pause",
            ActionTaken::RateReduction => "rate_reduction",
            ActionTaken::MedicationGiven { .. } => "medication_given",
            ActionTaken::PhysicianCalled => "physician_called",
            ActionTaken::InfusionStopped => "infusion_stopped",
        }
    }
}

impl fmt::Display for ActionTaken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActionTaken::MedicationGiven { name, dose } => write!(f, "medication_given:{name}:{dose}"),
            action => f.write_str(action.code()),
        }
    }
}

impl FromStr for ActionTaken {
    type Err = CodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (code, detail) = match s.split_once(':') {
            Some((code, detail)) => (code.trim(), Some(detail)),
            None => (s.trim(), None),
        };
        if code == "medication_given" {
            let parts = detail
                .and_then(|d| d.split_once(':'))
                .and_then(|(name, dose)| Some((non_blank(name)?, non_blank(dose)?)));
            return match parts {
                Some((name, dose)) => Ok(ActionTaken::MedicationGiven {
                    name: name.to_string(),
                    dose: dose.to_string(),
                }),
                None => Err(CodeError::MissingDetail {
                    what: "action",
                    given: s.to_string(),
                    needs: "a medication name and dose: medication_given:<name>:<dose>",
                }),
            };
        }
        ActionTaken::FIXED
            .into_iter()
            .find(|a| detail.is_none() && a.code() == code)
            .ok_or_else(|| CodeError::Unknown {
                what: "action",
                given: s.to_string(),
                allowed: ACTION_CODES,
            })
    }
}

/// CADSS-6: the six-item short form of the 23-item Clinician-Administered Dissociative States
/// Scale used in ketamine research, items 1, 2, 6, 7, 15 and 22 (Rodrigues NB, McIntyre RS, et al.
/// J Affect Disord 2021; DOI UNVERIFIED; correlates with the full scale at rs = 0.91–0.95 but is not
/// yet validated; `shared/domain/clinical.md` §5.1).
///
/// Each item is scored 0–4, so the total is 0–24. The 0–4 item scale is **UNVERIFIED**
/// (clinical.md §5.1 gives it without a source).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cadss6 {
    items: [u8; 6],
}

/// A CADSS-6 item outside its range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "CADSS item {item} (CADSS-6 position {position}) is {value}; allowed {min}–{max}",
    min = Cadss6::ITEM_MIN,
    max = Cadss6::ITEM_MAX
)]
pub struct CadssError {
    /// The item number in the 23-item CADSS.
    pub item: u8,
    /// The position in the CADSS-6, 1–6.
    pub position: u8,
    /// The value given.
    pub value: u8,
}

impl Cadss6 {
    /// The items of the 23-item CADSS that form the CADSS-6, in order (Rodrigues et al. 2021).
    pub const ITEMS: [u8; 6] = [1, 2, 6, 7, 15, 22];
    /// Lowest item score (UNVERIFIED, clinical.md §5.1).
    pub const ITEM_MIN: u8 = 0;
    /// Highest item score (UNVERIFIED, clinical.md §5.1).
    pub const ITEM_MAX: u8 = 4;

    /// Checks the scores of items 1, 2, 6, 7, 15 and 22, in that order.
    pub fn new(items: [u8; 6]) -> Result<Cadss6, CadssError> {
        for (i, value) in items.iter().enumerate() {
            if *value > Self::ITEM_MAX {
                return Err(CadssError {
                    item: Self::ITEMS[i],
                    position: i as u8 + 1,
                    value: *value,
                });
            }
        }
        Ok(Cadss6 { items })
    }

    /// The item scores, in the order of [`Cadss6::ITEMS`].
    pub fn items(&self) -> [u8; 6] {
        self.items
    }

    /// The total, 0–24.
    pub fn total(&self) -> u8 {
        self.items.iter().sum()
    }
}

/// The Modified Observer's Assessment of Alertness/Sedation, 0 (no response to a painful trapezius
/// squeeze) to 5 (alert). Original: Chernik DA et al. J Clin Psychopharmacol 1990;10:244–251;
/// descriptions worded as in BMC Anesthesiol 2022 (s12871-022-01788-1) Table 2
/// (`shared/domain/clinical.md` §5.3; the wording in use is [`Moaas::WORDING`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Moaas(u8);

/// A MOAA/S above 5.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("MOAA/S {0} is not a level of the scale; allowed 0–5")]
pub struct MoaasError(pub u8);

impl Moaas {
    /// Which wording of the levels is used (clinical.md §5.3 asks to record it; variants word
    /// levels 1 and 0 differently).
    pub const WORDING: &'static str =
        "Chernik 1990 (J Clin Psychopharmacol 10:244-251), wording of BMC Anesthesiol 2022 Table 2";

    /// Checks the level, 0–5.
    pub fn new(level: u8) -> Result<Moaas, MoaasError> {
        if level > 5 {
            return Err(MoaasError(level));
        }
        Ok(Moaas(level))
    }

    /// The level, 0–5.
    pub fn get(self) -> u8 {
        self.0
    }

    /// What the level means.
    pub fn description(self) -> &'static str {
        match self.0 {
            5 => "Responds readily to name spoken in normal tone",
            4 => "Lethargic response to name spoken in normal tone",
            3 => "Responds only after name is called loudly and/or repeatedly",
            2 => "Responds only after mild prodding or shaking",
            1 => "Responds only after painful trapezius squeeze",
            _ => "Does not respond to painful trapezius squeeze",
        }
    }

    /// Whether the level is 0, which the Spravato label equates with loss of consciousness
    /// (clinical.md §5.3).
    pub fn loss_of_consciousness(self) -> bool {
        self.0 == 0
    }
}

/// Longest note, characters (a data-entry limit, clinic setting).
pub const MAX_NOTE_CHARS: usize = 2000;

/// A side effect as entered, before it is checked.
#[derive(Clone, Debug, PartialEq)]
pub struct SideEffectEntry {
    /// What.
    pub kind: SideEffectKind,
    /// How severe.
    pub severity: Severity,
    /// When it began.
    pub onset: OffsetDateTime,
    /// CADSS-6, for dissociation only.
    pub cadss6: Option<Cadss6>,
    /// MOAA/S, for sedation only.
    pub moaas: Option<Moaas>,
    /// What was done.
    pub action: ActionTaken,
    /// Free text, at most [`MAX_NOTE_CHARS`] characters.
    pub note: String,
}

/// Why a side effect cannot be recorded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SideEffectError {
    /// A CADSS-6 on something other than dissociation.
    #[error("a CADSS-6 can be recorded only with dissociation, not with {0}")]
    CadssNotDissociation(&'static str),
    /// A MOAA/S on something other than sedation.
    #[error("a MOAA/S can be recorded only with sedation, not with {0}")]
    MoaasNotSedation(&'static str),
    /// A severe effect with no action.
    #[error("a severe side effect needs the action taken (anything but none)")]
    SevereWithoutAction,
    /// The note is too long.
    #[error("the note has {0} characters; allowed at most {MAX_NOTE_CHARS}")]
    NoteTooLong(usize),
    /// A blank description or medication.
    #[error("{0} must not be blank")]
    Blank(&'static str),
    /// A medication name containing `:`.
    #[error("the medication name {0:?} must not contain ':'")]
    ColonInMedication(String),
}

/// A checked side effect. Only [`SideEffect::new`] makes one.
#[derive(Clone, Debug, PartialEq)]
pub struct SideEffect {
    entry: SideEffectEntry,
}

impl SideEffect {
    /// Checks an entry: a CADSS-6 only with dissociation, a MOAA/S only with sedation, an action
    /// for every severe effect, a note of at most [`MAX_NOTE_CHARS`] characters, and non-blank
    /// descriptions and medication details. Text is trimmed.
    pub fn new(mut entry: SideEffectEntry) -> Result<SideEffect, SideEffectError> {
        if entry.cadss6.is_some() && entry.kind != SideEffectKind::Dissociation {
            return Err(SideEffectError::CadssNotDissociation(entry.kind.code()));
        }
        if entry.moaas.is_some() && entry.kind != SideEffectKind::Sedation {
            return Err(SideEffectError::MoaasNotSedation(entry.kind.code()));
        }
        // A severe effect with no action recorded is a documentation gap: either something was
        // done (observation, reassurance, a pause…) and must be written down, or the severity is wrong.
        if entry.severity == Severity::Severe && entry.action == ActionTaken::None {
            return Err(SideEffectError::SevereWithoutAction);
        }
        let chars = entry.note.chars().count();
        if chars > MAX_NOTE_CHARS {
            return Err(SideEffectError::NoteTooLong(chars));
        }
        if let SideEffectKind::Other(description) = &mut entry.kind {
            *description = non_blank(description)
                .ok_or(SideEffectError::Blank("the description of an other side effect"))?
                .to_string();
        }
        if let ActionTaken::MedicationGiven { name, dose } = &mut entry.action {
            *name = non_blank(name)
                .ok_or(SideEffectError::Blank("the medication name"))?
                .to_string();
            if name.contains(':') {
                return Err(SideEffectError::ColonInMedication(name.clone()));
            }
            *dose = non_blank(dose)
                .ok_or(SideEffectError::Blank("the medication dose"))?
                .to_string();
        }
        entry.note = entry.note.trim().to_string();
        Ok(SideEffect { entry })
    }

    /// The checked entry.
    pub fn entry(&self) -> &SideEffectEntry {
        &self.entry
    }

    /// What.
    pub fn kind(&self) -> &SideEffectKind {
        &self.entry.kind
    }

    /// How severe.
    pub fn severity(&self) -> Severity {
        self.entry.severity
    }

    /// When it began.
    pub fn onset(&self) -> OffsetDateTime {
        self.entry.onset
    }

    /// CADSS-6, if recorded.
    pub fn cadss6(&self) -> Option<Cadss6> {
        self.entry.cadss6
    }

    /// MOAA/S, if recorded.
    pub fn moaas(&self) -> Option<Moaas> {
        self.entry.moaas
    }

    /// What was done.
    pub fn action(&self) -> &ActionTaken {
        &self.entry.action
    }

    /// The note.
    pub fn note(&self) -> &str {
        &self.entry.note
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn every_kind_code_round_trips() {
        let codes: Vec<&str> = SideEffectKind::FIXED.iter().map(|k| k.code()).collect();
        assert_eq!(
            codes,
            vec![
                "dissociation",
                "sedation",
                "nausea",
                "vomiting",
                "dizziness",
                "blurred_vision",
                "dream_like_or_emergence",
                "blood_pressure_rise",
                "heart_rate_rise",
                "headache",
                "anxiety"
            ]
        );
        for k in SideEffectKind::FIXED {
            assert_eq!(k.to_string().parse::<SideEffectKind>().unwrap(), k);
        }
        let other = SideEffectKind::Other("tingling lips".into());
        assert_eq!(other.code(), "other");
        assert_eq!(other.to_string(), "other:tingling lips");
        assert_eq!("other:tingling lips".parse::<SideEffectKind>().unwrap(), other);
        assert_eq!(
            " other : tingling lips ".parse::<SideEffectKind>().unwrap(),
            other
        );
        let err = "hiccups".parse::<SideEffectKind>().unwrap_err().to_string();
        assert_eq!(
            err,
            "side-effect kind \"hiccups\" is not allowed; allowed: dissociation, sedation, nausea, vomiting, dizziness, blurred_vision, dream_like_or_emergence, blood_pressure_rise, heart_rate_rise, headache, anxiety, other:<description>"
        );
        for bad in ["other", "other:", "other:   "] {
            assert!(matches!(
                bad.parse::<SideEffectKind>(),
                Err(CodeError::MissingDetail { .. })
            ));
        }
        assert!("nausea:x".parse::<SideEffectKind>().is_err());
    }

    #[test]
    fn every_severity_and_action_code_round_trips() {
        for s in Severity::ALL {
            assert_eq!(s.to_string().parse::<Severity>().unwrap(), s);
        }
        assert_eq!(Severity::ALL.map(Severity::code), ["mild", "moderate", "severe"]);
        assert!(
            "critical"
                .parse::<Severity>()
                .unwrap_err()
                .to_string()
                .ends_with("allowed: mild, moderate, severe")
        );
        let codes: Vec<&str> = ActionTaken::FIXED.iter().map(|a| a.code()).collect();
        assert_eq!(
            codes,
            vec![
                "none",
                "observation",
                "reassurance",
                "pause",
                "rate_reduction",
                "physician_called",
                "infusion_stopped"
            ]
        );
        for a in ActionTaken::FIXED {
            assert_eq!(a.to_string().parse::<ActionTaken>().unwrap(), a);
        }
        let med = ActionTaken::MedicationGiven {
            name: "ondansetron".into(),
            dose: "4 mg IV".into(),
        };
        assert_eq!(med.code(), "medication_given");
        assert_eq!(med.to_string(), "medication_given:ondansetron:4 mg IV");
        assert_eq!(med.to_string().parse::<ActionTaken>().unwrap(), med);
        for bad in [
            "medication_given",
            "medication_given:ondansetron",
            "medication_given: :4 mg",
        ] {
            assert!(matches!(
                bad.parse::<ActionTaken>(),
                Err(CodeError::MissingDetail { .. })
            ));
        }
        assert!(
            "sedated"
                .parse::<ActionTaken>()
                .unwrap_err()
                .to_string()
                .contains("allowed: none, observation,")
        );
    }

    #[test]
    fn cadss6_edges() {
        assert_eq!(Cadss6::new([0; 6]).unwrap().total(), 0);
        assert_eq!(Cadss6::new([4; 6]).unwrap().total(), 24);
        assert_eq!(Cadss6::new([1, 0, 2, 3, 4, 0]).unwrap().total(), 10);
        let err = Cadss6::new([0, 0, 5, 0, 0, 0]).unwrap_err();
        assert_eq!(
            err,
            CadssError {
                item: 6,
                position: 3,
                value: 5
            }
        );
        assert_eq!(
            err.to_string(),
            "CADSS item 6 (CADSS-6 position 3) is 5; allowed 0–4"
        );
        assert_eq!(Cadss6::new([0, 0, 0, 0, 0, 9]).unwrap_err().item, 22);
    }

    #[test]
    fn moaas_levels_and_descriptions() {
        let d = |l| Moaas::new(l).unwrap().description();
        assert_eq!(d(5), "Responds readily to name spoken in normal tone");
        assert_eq!(d(4), "Lethargic response to name spoken in normal tone");
        assert_eq!(
            d(3),
            "Responds only after name is called loudly and/or repeatedly"
        );
        assert_eq!(d(2), "Responds only after mild prodding or shaking");
        assert_eq!(d(1), "Responds only after painful trapezius squeeze");
        assert_eq!(d(0), "Does not respond to painful trapezius squeeze");
        assert!(Moaas::new(0).unwrap().loss_of_consciousness());
        assert!(!Moaas::new(1).unwrap().loss_of_consciousness());
        assert_eq!(Moaas::new(6), Err(MoaasError(6)));
        assert_eq!(
            MoaasError(6).to_string(),
            "MOAA/S 6 is not a level of the scale; allowed 0–5"
        );
    }

    fn entry(kind: SideEffectKind, severity: Severity, action: ActionTaken) -> SideEffectEntry {
        SideEffectEntry {
            kind,
            severity,
            onset: datetime!(2026-11-26 09:15 UTC),
            cadss6: None,
            moaas: None,
            action,
            note: String::new(),
        }
    }

    #[test]
    fn scales_belong_to_their_effect_and_severe_needs_an_action() {
        let cadss = Cadss6::new([2, 1, 0, 0, 1, 0]).unwrap();
        let dissociation = SideEffect::new(SideEffectEntry {
            cadss6: Some(cadss),
            ..entry(
                SideEffectKind::Dissociation,
                Severity::Moderate,
                ActionTaken::Reassurance,
            )
        })
        .unwrap();
        assert_eq!(dissociation.cadss6().unwrap().total(), 4);
        assert_eq!(
            SideEffect::new(SideEffectEntry {
                cadss6: Some(cadss),
                ..entry(SideEffectKind::Nausea, Severity::Mild, ActionTaken::None)
            }),
            Err(SideEffectError::CadssNotDissociation("nausea"))
        );
        let moaas = Moaas::new(3).unwrap();
        assert!(
            SideEffect::new(SideEffectEntry {
                moaas: Some(moaas),
                ..entry(SideEffectKind::Sedation, Severity::Moderate, ActionTaken::Pause)
            })
            .is_ok()
        );
        assert_eq!(
            SideEffect::new(SideEffectEntry {
                moaas: Some(moaas),
                ..entry(SideEffectKind::Dissociation, Severity::Mild, ActionTaken::None)
            }),
            Err(SideEffectError::MoaasNotSedation("dissociation"))
        );
        // Severe: none is refused; anything else passes. Mild and moderate may have no action.
        assert_eq!(
            SideEffect::new(entry(
                SideEffectKind::Vomiting,
                Severity::Severe,
                ActionTaken::None
            )),
            Err(SideEffectError::SevereWithoutAction)
        );
        for action in ActionTaken::FIXED.into_iter().skip(1) {
            assert!(SideEffect::new(entry(SideEffectKind::Vomiting, Severity::Severe, action)).is_ok());
        }
        for severity in [Severity::Mild, Severity::Moderate] {
            assert!(SideEffect::new(entry(SideEffectKind::Headache, severity, ActionTaken::None)).is_ok());
        }
    }

    #[test]
    fn notes_and_details_are_checked() {
        let ok = SideEffect::new(SideEffectEntry {
            note: "x".repeat(MAX_NOTE_CHARS),
            ..entry(SideEffectKind::Nausea, Severity::Mild, ActionTaken::None)
        });
        assert!(ok.is_ok());
        // Characters, not bytes: 2000 'é' (4000 bytes) pass, 2001 do not.
        assert!(
            SideEffect::new(SideEffectEntry {
                note: "é".repeat(MAX_NOTE_CHARS),
                ..entry(SideEffectKind::Nausea, Severity::Mild, ActionTaken::None)
            })
            .is_ok()
        );
        assert_eq!(
            SideEffect::new(SideEffectEntry {
                note: "é".repeat(MAX_NOTE_CHARS + 1),
                ..entry(SideEffectKind::Nausea, Severity::Mild, ActionTaken::None)
            }),
            Err(SideEffectError::NoteTooLong(2001))
        );
        assert_eq!(
            SideEffect::new(entry(
                SideEffectKind::Other("  ".into()),
                Severity::Mild,
                ActionTaken::None
            )),
            Err(SideEffectError::Blank("the description of an other side effect"))
        );
        let med = SideEffect::new(entry(
            SideEffectKind::Nausea,
            Severity::Severe,
            ActionTaken::MedicationGiven {
                name: " ondansetron ".into(),
                dose: "4 mg IV".into(),
            },
        ))
        .unwrap();
        assert_eq!(
            med.action(),
            &ActionTaken::MedicationGiven {
                name: "ondansetron".into(),
                dose: "4 mg IV".into()
            }
        );
        assert_eq!(
            SideEffect::new(entry(
                SideEffectKind::Nausea,
                Severity::Mild,
                ActionTaken::MedicationGiven {
                    name: "a:b".into(),
                    dose: "1 mg".into()
                },
            )),
            Err(SideEffectError::ColonInMedication("a:b".into()))
        );
    }
}
