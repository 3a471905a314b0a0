//! What the clinic knows about a patient for screening and dosing: identity kept to the minimum,
//! date of birth, sex, dated height and weight measurements, indications, current medications and
//! history items.

use std::fmt;
use std::str::FromStr;

use ketaflow_units::{Centimetres, Kilograms, Years};
use time::Date;

/// Sex recorded for dosing formulas (Devine ideal body weight differs by sex).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sex {
    /// Male.
    Male,
    /// Female.
    Female,
}

impl Sex {
    /// The engine's covariate.
    pub fn covariate(self) -> ketaflow_pkpd::model::Sex {
        match self {
            Sex::Male => ketaflow_pkpd::model::Sex::Male,
            Sex::Female => ketaflow_pkpd::model::Sex::Female,
        }
    }

    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            Sex::Male => "male",
            Sex::Female => "female",
        }
    }
}

impl FromStr for Sex {
    type Err = UnknownCode;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "male" => Ok(Sex::Male),
            "female" => Ok(Sex::Female),
            _ => Err(UnknownCode {
                what: "sex",
                given: text.to_string(),
                allowed: "male, female".into(),
            }),
        }
    }
}

/// A code that is not one of the allowed values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} {given:?} is not known; allowed: {allowed}")]
pub struct UnknownCode {
    /// What kind of code.
    pub what: &'static str,
    /// The text given.
    pub given: String,
    /// The allowed codes.
    pub allowed: String,
}

/// The indications the clinic treats (the mission's list), with the evidence behind each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Indication {
    /// Mixed neuropathic pain (diabetic neuropathy, post-surgical, post-herpetic).
    NeuropathicPain,
    /// Complex regional pain syndrome.
    Crps,
    /// Fibromyalgia.
    Fibromyalgia,
    /// Treatment-resistant depression.
    TreatmentResistantDepression,
    /// Post-traumatic stress disorder.
    Ptsd,
    /// Anxiety disorders.
    Anxiety,
    /// Bipolar depression.
    BipolarDepression,
    /// Suicidal ideation.
    SuicidalIdeation,
}

/// The strength of evidence for ketamine in an indication, with its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvidenceGrade {
    /// The grade as the source states it.
    pub grade: &'static str,
    /// Where it comes from.
    pub source: &'static str,
}

impl Indication {
    /// All indications.
    pub const ALL: [Indication; 8] = [
        Indication::NeuropathicPain,
        Indication::Crps,
        Indication::Fibromyalgia,
        Indication::TreatmentResistantDepression,
        Indication::Ptsd,
        Indication::Anxiety,
        Indication::BipolarDepression,
        Indication::SuicidalIdeation,
    ];

    /// Stable code used in files, storage and the API.
    pub fn code(self) -> &'static str {
        match self {
            Indication::NeuropathicPain => "neuropathic_pain",
            Indication::Crps => "crps",
            Indication::Fibromyalgia => "fibromyalgia",
            Indication::TreatmentResistantDepression => "treatment_resistant_depression",
            Indication::Ptsd => "ptsd",
            Indication::Anxiety => "anxiety",
            Indication::BipolarDepression => "bipolar_depression",
            Indication::SuicidalIdeation => "suicidal_ideation",
        }
    }

    /// The evidence grade stored with the indication.
    pub fn evidence(self) -> EvidenceGrade {
        const COHEN: &str =
            "Cohen SP et al. Reg Anesth Pain Med 2018;43:521-546, doi 10.1097/AAP.0000000000000808";
        match self {
            Indication::Crps => EvidenceGrade {
                grade: "B: moderate evidence of improvement lasting up to 12 weeks",
                source: COHEN,
            },
            Indication::NeuropathicPain => EvidenceGrade {
                grade: "D: weak or no evidence for immediate improvement",
                source: COHEN,
            },
            Indication::Fibromyalgia => EvidenceGrade {
                grade: "D: weak or no evidence for immediate improvement",
                source: COHEN,
            },
            Indication::TreatmentResistantDepression => EvidenceGrade {
                grade: "CANMAT level 1 (single infusion), level 3 (repeated infusions)",
                source: "Swainson J et al. Can J Psychiatry 2021;66:113-125, PMID 33174760",
            },
            Indication::BipolarDepression => EvidenceGrade {
                grade: "one randomised add-on trial; not graded by a guideline here",
                source: "Diazgranados N et al. Arch Gen Psychiatry 2010 (PMC3000408)",
            },
            Indication::Ptsd => EvidenceGrade {
                grade: "mixed: positive RCT (Feder 2021), negative multicentre RCT in veterans (Abdallah 2022); no guideline grade",
                source: "doi 10.1176/appi.ajp.2020.20050596; doi 10.1038/s41386-022-01266-9",
            },
            Indication::Anxiety => EvidenceGrade {
                grade: "not graded: evidence level not researched (UNVERIFIED)",
                source: "clinical.md Gaps 12",
            },
            Indication::SuicidalIdeation => EvidenceGrade {
                grade: "not graded: evidence level not researched (UNVERIFIED)",
                source: "clinical.md Gaps 12",
            },
        }
    }
}

impl FromStr for Indication {
    type Err = UnknownCode;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Indication::ALL
            .into_iter()
            .find(|i| i.code() == text)
            .ok_or_else(|| UnknownCode {
                what: "indication",
                given: text.to_string(),
                allowed: Indication::ALL.map(Indication::code).join(", "),
            })
    }
}

impl fmt::Display for Indication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The drug classes screening cares about (`clinical.md` §2) and opioids for MME.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MedicationClass {
    /// An opioid (dose kept for morphine milligram equivalents).
    Opioid,
    /// A benzodiazepine.
    Benzodiazepine,
    /// Lamotrigine.
    Lamotrigine,
    /// A monoamine oxidase inhibitor.
    Maoi,
    /// A psychostimulant.
    Stimulant,
    /// A CYP3A4 inhibitor.
    Cyp3a4Inhibitor,
    /// A CYP3A4 inducer.
    Cyp3a4Inducer,
    /// A CYP2B6 inhibitor.
    Cyp2b6Inhibitor,
    /// A CYP2B6 inducer.
    Cyp2b6Inducer,
    /// Theophylline or aminophylline.
    Theophylline,
    /// A sympathomimetic or vasopressin.
    Sympathomimetic,
    /// Another CNS depressant (sedative-hypnotic, gabapentinoid, alcohol…).
    OtherCnsDepressant,
    /// Anything else.
    Other,
}

impl MedicationClass {
    /// All classes.
    pub const ALL: [MedicationClass; 13] = [
        MedicationClass::Opioid,
        MedicationClass::Benzodiazepine,
        MedicationClass::Lamotrigine,
        MedicationClass::Maoi,
        MedicationClass::Stimulant,
        MedicationClass::Cyp3a4Inhibitor,
        MedicationClass::Cyp3a4Inducer,
        MedicationClass::Cyp2b6Inhibitor,
        MedicationClass::Cyp2b6Inducer,
        MedicationClass::Theophylline,
        MedicationClass::Sympathomimetic,
        MedicationClass::OtherCnsDepressant,
        MedicationClass::Other,
    ];

    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            MedicationClass::Opioid => "opioid",
            MedicationClass::Benzodiazepine => "benzodiazepine",
            MedicationClass::Lamotrigine => "lamotrigine",
            MedicationClass::Maoi => "maoi",
            MedicationClass::Stimulant => "stimulant",
            MedicationClass::Cyp3a4Inhibitor => "cyp3a4_inhibitor",
            MedicationClass::Cyp3a4Inducer => "cyp3a4_inducer",
            MedicationClass::Cyp2b6Inhibitor => "cyp2b6_inhibitor",
            MedicationClass::Cyp2b6Inducer => "cyp2b6_inducer",
            MedicationClass::Theophylline => "theophylline",
            MedicationClass::Sympathomimetic => "sympathomimetic",
            MedicationClass::OtherCnsDepressant => "other_cns_depressant",
            MedicationClass::Other => "other",
        }
    }
}

impl FromStr for MedicationClass {
    type Err = UnknownCode;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        MedicationClass::ALL
            .into_iter()
            .find(|c| c.code() == text)
            .ok_or_else(|| UnknownCode {
                what: "medication class",
                given: text.to_string(),
                allowed: MedicationClass::ALL.map(MedicationClass::code).join(", "),
            })
    }
}

/// A current medication.
#[derive(Clone, Debug, PartialEq)]
pub struct Medication {
    /// Drug name as prescribed (e.g. "oxycodone").
    pub name: String,
    /// Its class for screening.
    pub class: MedicationClass,
    /// Total daily dose in mg, where known (needed for opioids' MME).
    pub daily_dose_mg: Option<f64>,
}

/// Conditions in the history that screening looks at (`clinical.md` §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Condition {
    /// Known hypersensitivity to ketamine or esketamine.
    KetamineHypersensitivity,
    /// Currently pregnant.
    Pregnancy,
    /// Active psychosis.
    ActivePsychosis,
    /// Poorly controlled cardiovascular disease (including uncontrolled hypertension).
    PoorlyControlledCardiovascularDisease,
    /// Severe hepatic disease.
    SevereHepaticDisease,
    /// Moderate hepatic disease.
    ModerateHepaticDisease,
    /// Raised intracranial pressure.
    RaisedIntracranialPressure,
    /// Raised intraocular pressure.
    RaisedIntraocularPressure,
    /// Active substance abuse.
    ActiveSubstanceAbuse,
    /// A past substance use disorder, including alcohol.
    SubstanceUseDisorderHistory,
    /// Aneurysmal vascular disease (aorta, intracranial, peripheral arteries).
    AneurysmalVascularDisease,
    /// Arteriovenous malformation.
    ArteriovenousMalformation,
    /// A past intracerebral haemorrhage.
    IntracerebralHaemorrhageHistory,
}

impl Condition {
    /// All screened conditions.
    pub const ALL: [Condition; 13] = [
        Condition::KetamineHypersensitivity,
        Condition::Pregnancy,
        Condition::ActivePsychosis,
        Condition::PoorlyControlledCardiovascularDisease,
        Condition::SevereHepaticDisease,
        Condition::ModerateHepaticDisease,
        Condition::RaisedIntracranialPressure,
        Condition::RaisedIntraocularPressure,
        Condition::ActiveSubstanceAbuse,
        Condition::SubstanceUseDisorderHistory,
        Condition::AneurysmalVascularDisease,
        Condition::ArteriovenousMalformation,
        Condition::IntracerebralHaemorrhageHistory,
    ];

    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            Condition::KetamineHypersensitivity => "ketamine_hypersensitivity",
            Condition::Pregnancy => "pregnancy",
            Condition::ActivePsychosis => "active_psychosis",
            Condition::PoorlyControlledCardiovascularDisease => "poorly_controlled_cardiovascular_disease",
            Condition::SevereHepaticDisease => "severe_hepatic_disease",
            Condition::ModerateHepaticDisease => "moderate_hepatic_disease",
            Condition::RaisedIntracranialPressure => "raised_intracranial_pressure",
            Condition::RaisedIntraocularPressure => "raised_intraocular_pressure",
            Condition::ActiveSubstanceAbuse => "active_substance_abuse",
            Condition::SubstanceUseDisorderHistory => "substance_use_disorder_history",
            Condition::AneurysmalVascularDisease => "aneurysmal_vascular_disease",
            Condition::ArteriovenousMalformation => "arteriovenous_malformation",
            Condition::IntracerebralHaemorrhageHistory => "intracerebral_haemorrhage_history",
        }
    }
}

impl FromStr for Condition {
    type Err = UnknownCode;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Condition::ALL
            .into_iter()
            .find(|c| c.code() == text)
            .ok_or_else(|| UnknownCode {
                what: "condition",
                given: text.to_string(),
                allowed: Condition::ALL.map(Condition::code).join(", "),
            })
    }
}

/// A dated body measurement (stored as `{"value": number, "on": "YYYY-MM-DD"}`).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Measurement<T> {
    /// The value.
    pub value: T,
    /// When it was measured.
    #[serde(with = "ymd")]
    pub on: Date,
}

/// Calendar dates as stored and sent, `YYYY-MM-DD`: `#[serde(with = "ymd")]`, and `ymd::option`
/// for an optional one.
#[allow(missing_docs)] // the functions serde calls, made by `time`'s macro
pub mod ymd {
    time::serde::format_description!(calendar_date, Date, "[year]-[month]-[day]");
    pub use calendar_date::*;
}

/// Serde through a code: each type is written as its stable `code()` and read back with its
/// `FromStr`, so a stored or sent code that is not known is an error naming it and the allowed
/// ones.
macro_rules! serde_as_code {
    ($($kind:ty),* $(,)?) => {$(
        impl serde::Serialize for $kind {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.code())
            }
        }

        impl<'de> serde::Deserialize<'de> for $kind {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

serde_as_code!(Sex, Indication, MedicationClass, Condition);

/// A blood pressure reading, mmHg.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BloodPressure {
    /// Systolic, mmHg.
    pub systolic_mmhg: f64,
    /// Diastolic, mmHg.
    pub diastolic_mmhg: f64,
}

/// Age in whole years on `date` of someone born on `date_of_birth` (zero before birth).
pub fn age_on(date_of_birth: Date, date: Date) -> Years {
    let mut years = date.year() - date_of_birth.year();
    if (date.month() as u8, date.day()) < (date_of_birth.month() as u8, date_of_birth.day()) {
        years -= 1;
    }
    Years::new(f64::from(years.max(0))).unwrap_or(Years::ZERO)
}

/// Everything screening and dosing need about one patient.
#[derive(Clone, Debug, PartialEq)]
pub struct PatientFacts {
    /// Date of birth.
    pub date_of_birth: Date,
    /// Sex.
    pub sex: Sex,
    /// Height measurements, any order.
    pub heights: Vec<Measurement<Centimetres>>,
    /// Weight measurements, any order.
    pub weights: Vec<Measurement<Kilograms>>,
    /// Indications being treated.
    pub indications: Vec<Indication>,
    /// Current medications.
    pub medications: Vec<Medication>,
    /// Screened history conditions present.
    pub conditions: Vec<Condition>,
    /// Baseline blood pressure, if measured.
    pub baseline_bp: Option<BloodPressure>,
    /// Recorded allergies (none recorded is not "no known allergies").
    pub allergies: Vec<Allergy>,
}

/// How severe a recorded allergic reaction was, with FHIR R4 `AllergyIntolerance.reaction.severity`'s
/// codes (mild, moderate, severe) and `unknown` when the patient cannot say.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllergySeverity {
    /// Mild.
    Mild,
    /// Moderate.
    Moderate,
    /// Severe (anaphylaxis, angioedema...).
    Severe,
    /// Not known.
    Unknown,
}

impl AllergySeverity {
    /// All, mildest first, unknown last.
    pub const ALL: [AllergySeverity; 4] = [
        AllergySeverity::Mild,
        AllergySeverity::Moderate,
        AllergySeverity::Severe,
        AllergySeverity::Unknown,
    ];

    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            AllergySeverity::Mild => "mild",
            AllergySeverity::Moderate => "moderate",
            AllergySeverity::Severe => "severe",
            AllergySeverity::Unknown => "unknown",
        }
    }
}

impl FromStr for AllergySeverity {
    type Err = UnknownCode;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        AllergySeverity::ALL
            .into_iter()
            .find(|c| c.code() == text.trim())
            .ok_or_else(|| UnknownCode {
                what: "allergy severity",
                given: text.to_string(),
                allowed: AllergySeverity::ALL.map(AllergySeverity::code).join(", "),
            })
    }
}

/// A recorded allergy: the substance as the patient or their record names it, the reaction, and
/// how severe it was.
#[derive(Clone, Debug, PartialEq)]
pub struct Allergy {
    /// The substance (`penicillin`, `ketamine`, `latex`).
    pub substance: String,
    /// The reaction (`hives`, `anaphylaxis`).
    pub reaction: String,
    /// How severe.
    pub severity: AllergySeverity,
}

/// Names under which ketamine is given: the drug, its S-enantiomer and their brands (Ketalar,
/// Spravato, Ketanest). Matched as whole words, case-insensitively.
const KETAMINE_NAMES: [&str; 5] = ["ketamine", "esketamine", "ketalar", "spravato", "ketanest"];

impl Allergy {
    /// Whether the substance is ketamine under any of its names (`Ketamine HCl`, `esketamine
    /// nasal spray`, `Ketalar`): such an allergy is an absolute contraindication.
    pub fn is_to_ketamine(&self) -> bool {
        self.substance
            .to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .any(|word| KETAMINE_NAMES.contains(&word))
    }
}

impl PatientFacts {
    /// Age in whole years on `date`.
    pub fn age_on(&self, date: Date) -> Years {
        age_on(self.date_of_birth, date)
    }

    /// The most recent weight on or before `date`.
    pub fn weight_on(&self, date: Date) -> Option<Measurement<Kilograms>> {
        self.weights
            .iter()
            .filter(|m| m.on <= date)
            .max_by_key(|m| m.on)
            .copied()
    }

    /// The most recent height on or before `date`.
    pub fn height_on(&self, date: Date) -> Option<Measurement<Centimetres>> {
        self.heights
            .iter()
            .filter(|m| m.on <= date)
            .max_by_key(|m| m.on)
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn facts() -> PatientFacts {
        PatientFacts {
            date_of_birth: date!(1986 - 03 - 15),
            sex: Sex::Female,
            heights: vec![Measurement {
                value: Centimetres::new(165.0).unwrap(),
                on: date!(2026 - 01 - 10),
            }],
            weights: vec![
                Measurement {
                    value: Kilograms::new(70.0).unwrap(),
                    on: date!(2026 - 01 - 10),
                },
                Measurement {
                    value: Kilograms::new(68.0).unwrap(),
                    on: date!(2026 - 11 - 01),
                },
                Measurement {
                    value: Kilograms::new(99.0).unwrap(),
                    on: date!(2026 - 12 - 01),
                },
            ],
            indications: vec![Indication::TreatmentResistantDepression],
            medications: vec![],
            conditions: vec![],
            baseline_bp: None,
            allergies: vec![],
        }
    }

    #[test]
    fn age_counts_whole_years_and_birthdays() {
        let f = facts();
        assert_eq!(f.age_on(date!(2026 - 03 - 14)).get(), 39.0);
        assert_eq!(f.age_on(date!(2026 - 03 - 15)).get(), 40.0);
    }

    #[test]
    fn the_latest_measurement_up_to_the_date_is_used() {
        let f = facts();
        assert_eq!(f.weight_on(date!(2026 - 11 - 26)).unwrap().value.get(), 68.0);
        assert_eq!(f.weight_on(date!(2026 - 06 - 01)).unwrap().value.get(), 70.0);
        assert!(f.weight_on(date!(2025 - 01 - 01)).is_none());
    }

    #[test]
    fn codes_round_trip_and_unknown_codes_list_the_allowed_ones() {
        for i in Indication::ALL {
            assert_eq!(i.code().parse::<Indication>().unwrap(), i);
        }
        for c in Condition::ALL {
            assert_eq!(c.code().parse::<Condition>().unwrap(), c);
        }
        for m in MedicationClass::ALL {
            assert_eq!(m.code().parse::<MedicationClass>().unwrap(), m);
        }
        let err = "depression".parse::<Indication>().unwrap_err().to_string();
        assert!(err.contains("allowed: neuropathic_pain, crps"), "{err}");
        assert_eq!(Indication::Crps.evidence().grade.chars().next(), Some('B'));
    }
}
