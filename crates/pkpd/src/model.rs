//! The published ketamine pharmacokinetic parameter sets, with their provenance.
//!
//! Every model says where its numbers come from, on whom they were fitted, where blood was
//! sampled, which drug (racemic or S-ketamine) it describes, the covariate ranges it was validated
//! on, and where its effect-site rate constant (ke0) comes from. Covariates outside the validated
//! range produce [`CovariateWarning`] values next to the parameters; they never fail silently and
//! never panic.

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

use ketaflow_units::{Centimetres, Kilograms, PerMinute, Years};

use crate::params::Mammillary;

/// Sex as a covariate. None of the six ketamine models uses it; it is carried for the models that will.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sex {
    /// Male.
    Male,
    /// Female.
    Female,
}

impl FromStr for Sex {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "male" | "m" => Ok(Sex::Male),
            "female" | "f" => Ok(Sex::Female),
            other => Err(format!("sex {other:?} is not recognised; use male or female")),
        }
    }
}

impl fmt::Display for Sex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Sex::Male => "male",
            Sex::Female => "female",
        })
    }
}

/// The patient characteristics a model may use. Each field is already range-checked by its type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Covariates {
    /// Total body weight.
    pub weight: Kilograms,
    /// Age.
    pub age: Years,
    /// Height.
    pub height: Centimetres,
    /// Sex.
    pub sex: Sex,
}

impl Covariates {
    /// A 70-kg, 40-year-old, 170-cm man: the one reference case the engine's tests, reference
    /// curves and benchmarks share. Not a clinical default; a patient's own covariates always come
    /// from their record.
    pub fn reference_adult() -> Covariates {
        Covariates {
            weight: Kilograms::new(70.0).expect("in range"),
            age: Years::new(40.0).expect("in range"),
            height: Centimetres::new(170.0).expect("in range"),
            sex: Sex::Male,
        }
    }
}

/// A published source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reference {
    /// Short citation: authors, year, journal, volume and page.
    pub citation: &'static str,
    /// PubMed id, where one is known.
    pub pmid: Option<&'static str>,
    /// DOI, where one is known.
    pub doi: Option<&'static str>,
}

/// Where the concentrations the model was fitted on were sampled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SamplingSite {
    /// Arterial blood: higher than venous during an infusion, lower after it stops.
    Arterial,
    /// Venous blood.
    Venous,
    /// Not confirmed from the paper.
    Unconfirmed,
}

/// Which drug the concentrations describe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enantiomer {
    /// Racemic ketamine (R + S), the usual clinical product.
    Racemic,
    /// S-ketamine (esketamine) only.
    SKetamine,
}

/// Which covariate an out-of-range warning is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Covariate {
    /// Body weight, kg.
    Weight,
    /// Age, years.
    Age,
}

/// A covariate outside the range the model was developed on. Predictions are still made, but the
/// caller must show this to the user.
#[derive(Clone, Debug, PartialEq)]
pub struct CovariateWarning {
    /// The model that warns.
    pub model: ModelId,
    /// Which covariate.
    pub covariate: Covariate,
    /// The value given.
    pub value: f64,
    /// The validated range.
    pub validated: RangeInclusive<f64>,
}

impl fmt::Display for CovariateWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, unit) = match self.covariate {
            Covariate::Weight => ("weight", "kg"),
            Covariate::Age => ("age", "years"),
        };
        write!(
            f,
            "{} {} {} is outside the range {}–{} {} that {} was developed on",
            name,
            self.value,
            unit,
            self.validated.start(),
            self.validated.end(),
            unit,
            self.model.id()
        )
    }
}

/// Where a model's effect-site rate constant comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Ke0Source {
    /// opentiva's own value, derived by assuming a 1-minute time to peak effect after a bolus; not
    /// published pharmacology (opentiva 1.1.2, `opentiva/ketamine.py`, comment "from tpeak 1 min").
    OpentivaTimeToPeakOneMinute,
    /// A published blood–effect-site equilibration.
    Published(Reference),
    /// Given by the user on the command line or in a file.
    UserOverride,
}

impl fmt::Display for Ke0Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ke0Source::OpentivaTimeToPeakOneMinute => {
                f.write_str("opentiva 1.1.2, derived from an assumed 1-min time to peak effect (not published pharmacology)")
            }
            Ke0Source::Published(reference) => write!(f, "{}", reference.citation),
            Ke0Source::UserOverride => f.write_str("user override"),
        }
    }
}

/// Inter-individual variability of one parameter, as published or as assumed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PublishedVariability {
    /// Clearance (elimination).
    pub cl_cv: f64,
    /// Central volume.
    pub v1_cv: f64,
    /// Intercompartmental clearance to compartment 2.
    pub q2_cv: f64,
    /// Volume of compartment 2.
    pub v2_cv: f64,
    /// What the numbers are and where they come from.
    pub note: &'static str,
}

/// The published ketamine models Ketaflow ships.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModelId {
    /// Clements & Nimmo 1981.
    Clements1981,
    /// Domino et al. 1982.
    Domino1982,
    /// Hijazi et al. 2003.
    Hijazi2003,
    /// Herd, Anderson & Holford 2007.
    Herd2007,
    /// Hornik et al. 2018.
    Hornik2018,
    /// Kamp et al. 2020.
    Kamp2020,
    /// Otto et al. 2021: S-ketamine (Fanta 2015 parameters) with S-norketamine.
    Otto2021,
}

/// Everything a user needs to know about a model before trusting its numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    /// The model.
    pub id: ModelId,
    /// Human name.
    pub name: &'static str,
    /// The paper.
    pub reference: Reference,
    /// Who the parameters were fitted on.
    pub population: &'static str,
    /// Where blood was sampled.
    pub sampling_site: SamplingSite,
    /// Racemic or S-ketamine.
    pub enantiomer: Enantiomer,
    /// Number of compartments (1–3).
    pub compartments: usize,
    /// The covariate formulas, in words.
    pub covariate_formulas: &'static str,
    /// Validated weight range (kg), if published.
    pub weight_range_kg: Option<RangeInclusive<f64>>,
    /// Validated age range (years), if published.
    pub age_range_years: Option<RangeInclusive<f64>>,
    /// Default effect-site rate constant.
    pub ke0: PerMinute,
    /// Where that ke0 comes from.
    pub ke0_source: Ke0Source,
    /// Published inter-individual variability, if any.
    pub variability: Option<PublishedVariability>,
    /// The metabolite the model carries, if any, in words.
    pub metabolite: Option<&'static str>,
    /// Caveats a reader must know (unconfirmed values, corrected peer bugs).
    pub caveats: &'static str,
}

/// Parameters evaluated for one set of covariates, with any range warnings.
#[derive(Clone, Debug, PartialEq)]
pub struct EvaluatedModel {
    /// The compartmental parameters.
    pub parameters: Mammillary,
    /// The default effect-site rate constant of the model.
    pub ke0: PerMinute,
    /// Covariates outside the validated range.
    pub warnings: Vec<CovariateWarning>,
    /// The metabolite, if the model has one: fraction of parent clearance forming it, and its own
    /// disposition (volumes in L, rate constants per minute).
    pub metabolite: Option<MetaboliteParameters>,
}

/// A metabolite's formation and disposition.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetaboliteParameters {
    /// Fraction of parent clearance that forms the metabolite.
    pub fm: f64,
    /// The metabolite's own compartments.
    pub disposition: Mammillary,
}

impl ModelId {
    /// Every shipped model, in publication order.
    pub const ALL: [ModelId; 7] = [
        ModelId::Clements1981,
        ModelId::Domino1982,
        ModelId::Hijazi2003,
        ModelId::Herd2007,
        ModelId::Hornik2018,
        ModelId::Kamp2020,
        ModelId::Otto2021,
    ];

    /// The identifier used on the command line and in files.
    pub fn id(self) -> &'static str {
        match self {
            ModelId::Clements1981 => "clements1981",
            ModelId::Domino1982 => "domino1982",
            ModelId::Hijazi2003 => "hijazi2003",
            ModelId::Herd2007 => "herd2007",
            ModelId::Hornik2018 => "hornik2018",
            ModelId::Kamp2020 => "kamp2020",
            ModelId::Otto2021 => "otto2021",
        }
    }

    /// Provenance and validity of the model.
    pub fn info(self) -> ModelInfo {
        match self {
            ModelId::Clements1981 => ModelInfo {
                id: self,
                name: "Clements & Nimmo 1981 (250 µg/kg bolus data)",
                reference: Reference {
                    citation: "Clements JA, Nimmo WS. Pharmacokinetics and analgesic effect of ketamine in man. Br J Anaesth 1981;53:27-30",
                    pmid: Some("7459184"),
                    doi: Some("10.1093/bja/53.1.27"),
                },
                population: "adult volunteers (as encoded by opentiva; population size not confirmed)",
                sampling_site: SamplingSite::Unconfirmed,
                enantiomer: Enantiomer::Racemic,
                compartments: 2,
                covariate_formulas: "V1 = 1.7522 L/kg × WT; k10 0.0109, k12 0.0186, k21 0.0137 /min",
                weight_range_kg: None,
                age_range_years: None,
                ke0: PerMinute::new(5.2).expect("constant in range"),
                ke0_source: Ke0Source::OpentivaTimeToPeakOneMinute,
                variability: None,
                metabolite: None,
                caveats: "parameter origin not checked against the paper (UNVERIFIED); V1 of 1.75 L/kg is unusually large for a central volume",
            },
            ModelId::Domino1982 => ModelInfo {
                id: self,
                name: "Domino et al. 1982",
                reference: Reference {
                    citation: "Domino EF et al. 1982 (as cited by opentiva)",
                    pmid: Some("7198883"),
                    doi: None,
                },
                population: "surgical patients (as encoded by opentiva; not confirmed against the paper)",
                sampling_site: SamplingSite::Unconfirmed,
                enantiomer: Enantiomer::Racemic,
                compartments: 3,
                covariate_formulas: "V1 = 0.063 L/kg × WT; k10 0.4381, k12 0.5921, k13 0.5900, k21 0.2470, k31 0.0146 /min",
                weight_range_kg: None,
                age_range_years: None,
                ke0: PerMinute::new(0.652).expect("constant in range"),
                ke0_source: Ke0Source::OpentivaTimeToPeakOneMinute,
                variability: None,
                metabolite: None,
                caveats: "parameters not verified against the paper (UNVERIFIED); very small V1 gives high early peaks",
            },
            ModelId::Hijazi2003 => ModelInfo {
                id: self,
                name: "Hijazi et al. 2003",
                reference: Reference {
                    citation: "Hijazi Y et al. Pharmacokinetics and haemodynamics of ketamine in intensive care patients with brain or spinal cord injury. Br J Anaesth 2003;90:155-160",
                    pmid: Some("12538370"),
                    doi: Some("10.1093/bja/aeg028"),
                },
                population: "12 adult intensive-care patients with brain or spinal-cord injury; CL 36.0 (SD 13.3) mL/min/kg, t½ 4.9 h (abstract)",
                sampling_site: SamplingSite::Unconfirmed,
                enantiomer: Enantiomer::Racemic,
                compartments: 2,
                covariate_formulas: "V1 = 1.08 L/kg × WT; k10 0.0333, k12 0.0088, k21 0.0030 /min",
                weight_range_kg: None,
                // The paper studied adults. opentiva warns for any age above 18, which is a bug; the
                // validated range here is adulthood (exact ages not retrieved).
                age_range_years: Some(18.0..=Years::MAX),
                ke0: PerMinute::new(4.773).expect("constant in range"),
                ke0_source: Ke0Source::OpentivaTimeToPeakOneMinute,
                variability: None,
                metabolite: None,
                caveats: "adult model: opentiva's age ≤ 18 check is inverted and is corrected here; ICU patients on sedation, not clinic outpatients",
            },
            ModelId::Herd2007 => ModelInfo {
                id: self,
                name: "Herd, Anderson & Holford 2007",
                reference: Reference {
                    citation: "Herd DW, Anderson BJ, Holford NHG. Paediatr Anaesth 2007;17:622 (as cited by opentiva; PubMed 17564643 abstract matches the parameters)",
                    pmid: Some("17564643"),
                    doi: Some("10.1111/j.1460-9592.2006.02145.x"),
                },
                population: "54 children, 8.3 ± 3.5 years, 32.5 ± 15.6 kg, 1–1.5 mg/kg IV in the emergency department (abstract)",
                sampling_site: SamplingSite::Venous,
                enantiomer: Enantiomer::Racemic,
                compartments: 2,
                covariate_formulas: "V1 = 38.7 L × (WT/70); V2 = 102 L × (WT/70); CL = 90 L/h × (WT/70)^0.75; Q = 215 L/h × (WT/70)^0.75",
                weight_range_kg: Some(10.8..=74.8),
                age_range_years: Some(1.0..=14.0),
                ke0: PerMinute::new(2.995).expect("constant in range"),
                ke0_source: Ke0Source::OpentivaTimeToPeakOneMinute,
                variability: Some(PublishedVariability {
                    cl_cv: 0.381,
                    v1_cv: 0.64,
                    q2_cv: 0.19,
                    v2_cv: 0.517,
                    note: "between-subject variability as published (abstract, PMID 17564643): V1 64 %, V2 51.7 %, CL 38.1 %, Q 19 %; read as CVs and converted with ω² = ln(1 + CV²) (whether the paper reports CV or ω is UNVERIFIED)",
                }),
                metabolite: None,
                caveats: "paediatric model; adults are outside its range",
            },
            ModelId::Hornik2018 => ModelInfo {
                id: self,
                name: "Hornik et al. 2018 (Pediatric Trials Network)",
                reference: Reference {
                    citation: "Hornik CP et al. J Clin Pharmacol 2018 (Pediatric Trials Network; as cited by opentiva)",
                    pmid: Some("29677389"),
                    doi: Some("10.1002/jcph.1116"),
                },
                population: "113 children, 0.02–17.6 years, 2.4–176 kg (abstract)",
                sampling_site: SamplingSite::Unconfirmed,
                enantiomer: Enantiomer::Racemic,
                compartments: 2,
                covariate_formulas: "V1 = 32.8 L × (WT/70); V2 = 152 L × (WT/70); CL = 38.9 L/h × (WT/70)^0.75; Q = 54.9 L/h × (WT/70)^0.75",
                weight_range_kg: Some(2.0..=176.0),
                age_range_years: Some(1.0..=18.0),
                ke0: PerMinute::new(4.212).expect("constant in range"),
                ke0_source: Ke0Source::OpentivaTimeToPeakOneMinute,
                variability: None,
                metabolite: None,
                caveats: "typical values as encoded in opentiva could not be confirmed against the paper (UNVERIFIED); CL is about half the Kamp 2020 meta-analytic value, so predictions run high",
            },
            ModelId::Kamp2020 => ModelInfo {
                id: self,
                name: "Kamp et al. 2020 (meta-analysis and pooled population analysis)",
                reference: Reference {
                    citation: "Kamp J et al. Ketamine pharmacokinetics: a systematic review of the literature, meta-analysis, and population analysis. Anesthesiology 2020;133:1192-1213",
                    pmid: Some("32997732"),
                    doi: Some("10.1097/ALN.0000000000003577"),
                },
                population: "14 pooled raw datasets (healthy adults, adult patients, children); meta-analytic V 252 L and CL 79 L/h at 70 kg (abstract)",
                sampling_site: SamplingSite::Arterial,
                enantiomer: Enantiomer::Racemic,
                compartments: 3,
                covariate_formulas: "V1 = 25 L, V2 = 56 L, V3 = 157 L, CL = 84 L/h, Q2 = 161 L/h, Q3 = 79 L/h, all × (WT/70) (linear)",
                weight_range_kg: None,
                age_range_years: None,
                ke0: PerMinute::new(2.791).expect("constant in range"),
                ke0_source: Ke0Source::OpentivaTimeToPeakOneMinute,
                variability: None,
                metabolite: None,
                caveats: "arterial central compartment; the paper's two venous-delay compartments are omitted (as in opentiva), so venous samples after an infusion stops run higher than this Cp; parameter table not seen (UNVERIFIED)",
            },
            ModelId::Otto2021 => ModelInfo {
                id: self,
                name: "Otto et al. 2021 (S-ketamine after Fanta 2015, with S-norketamine)",
                reference: Reference {
                    citation: "Otto ME, Bergmann KR, Jacobs G, van Esdonk MJ. Predictive performance of parent-metabolite population pharmacokinetic models of (S)-ketamine in healthy volunteers. Eur J Clin Pharmacol 2021;77:1181-1192; parent parameters fixed to Fanta S et al. Eur J Clin Pharmacol 2015;71:441-447 (doi 10.1007/s00228-015-1826-y, PMID 25724645). Values as encoded in nlmixr2lib Otto_2021_s_ketamine (Table 3)",
                    pmid: None,
                    doi: Some("10.1007/s00228-021-03104-1"),
                },
                population: "48 healthy adults (two CHDR studies), IV S-ketamine 10 mg over 30 min or a 2-h stepped infusion",
                sampling_site: SamplingSite::Venous,
                enantiomer: Enantiomer::SKetamine,
                compartments: 3,
                covariate_formulas: "S-ketamine: V1 = 133 L × (WT/70), CL = 95.2 L/h × (WT/70)^0.75, V2 = 187 L, Q2 = 23.2 L/h, V3 = 98.8 L, Q3 = 157 L/h; S-norketamine (fm = 1): V = 98.6 L × (WT/70), CL = 57.7 L/h × (WT/70)^0.75, Vp = 160 L, Q = 42.8 L/h (peripheral terms not weight-scaled)",
                weight_range_kg: None,
                age_range_years: Some(18.0..=Years::MAX),
                ke0: PerMinute::new(std::f64::consts::LN_2 / 8.3).expect("constant in range"),
                ke0_source: Ke0Source::Published(Reference {
                    citation: "Olofsen E et al. Anesthesiology 2022;136:792 (t½ke0 8.3 min, S-ketamine psychedelic and antinociceptive effect; a PD ke0, not part of the Otto PK model)",
                    pmid: None,
                    doi: Some("10.1097/ALN.0000000000004176"),
                }),
                variability: Some(PublishedVariability {
                    cl_cv: 0.162,
                    v1_cv: 0.296,
                    q2_cv: 0.0,
                    v2_cv: 0.0,
                    note: "Otto 2021 Table 3 as encoded in nlmixr2lib: ω² 0.026 (CL) and 0.084 (V1), shown here as CV = √(e^{ω²} − 1); the V1–CL covariance (0.0226) is not applied; no variability on peripheral terms",
                }),
                metabolite: Some(
                    "S-norketamine, 2 compartments, formed from all of S-ketamine clearance (fm = 1 fixed in the paper); concentrations in S-ketamine mass equivalents, as the model was fitted (× 223.70/237.73 for norketamine mass)",
                ),
                caveats: "an S-ketamine model: doses are S-ketamine; racemic ketamine is half S-ketamine by composition, and treating R-ketamine as having the same kinetics is an assumption (S clears ~20 % faster, Henthorn 2018)",
            },
        }
    }

    /// Evaluates the model's parameters for `covariates`, with range warnings.
    pub fn evaluate(self, covariates: &Covariates) -> EvaluatedModel {
        let weight_kg = covariates.weight.get();
        let per_70kg = weight_kg / 70.0;
        let allometric = per_70kg.powf(0.75);
        let per_hour = |litres_per_hour: f64| litres_per_hour / 60.0;
        let parameters = match self {
            ModelId::Clements1981 => {
                Mammillary::from_micro_constants(1.7522 * weight_kg, 0.0109, &[(0.0186, 0.0137)])
            }
            ModelId::Domino1982 => Mammillary::from_micro_constants(
                0.063 * weight_kg,
                0.4381,
                &[(0.5921, 0.2470), (0.5900, 0.0146)],
            ),
            ModelId::Hijazi2003 => {
                Mammillary::from_micro_constants(1.08 * weight_kg, 0.0333, &[(0.0088, 0.0030)])
            }
            ModelId::Herd2007 => Mammillary::from_volumes_and_clearances(
                38.7 * per_70kg,
                per_hour(90.0) * allometric,
                &[(per_hour(215.0) * allometric, 102.0 * per_70kg)],
            ),
            ModelId::Hornik2018 => Mammillary::from_volumes_and_clearances(
                32.8 * per_70kg,
                per_hour(38.9) * allometric,
                &[(per_hour(54.9) * allometric, 152.0 * per_70kg)],
            ),
            ModelId::Kamp2020 => Mammillary::from_volumes_and_clearances(
                25.0 * per_70kg,
                per_hour(84.0) * per_70kg,
                &[
                    (per_hour(161.0) * per_70kg, 56.0 * per_70kg),
                    (per_hour(79.0) * per_70kg, 157.0 * per_70kg),
                ],
            ),
            ModelId::Otto2021 => Mammillary::from_volumes_and_clearances(
                133.0 * per_70kg,
                per_hour(95.2) * allometric,
                &[(per_hour(23.2), 187.0), (per_hour(157.0), 98.8)],
            ),
        };
        let metabolite = (self == ModelId::Otto2021).then(|| MetaboliteParameters {
            fm: 1.0,
            disposition: Mammillary::from_volumes_and_clearances(
                98.6 * per_70kg,
                per_hour(57.7) * allometric,
                &[(per_hour(42.8), 160.0)],
            ),
        });
        let info = self.info();
        let mut warnings = Vec::new();
        if let Some(range) = info.weight_range_kg.filter(|r| !r.contains(&weight_kg)) {
            warnings.push(CovariateWarning {
                model: self,
                covariate: Covariate::Weight,
                value: weight_kg,
                validated: range,
            });
        }
        let age = covariates.age.get();
        if let Some(range) = info.age_range_years.filter(|r| !r.contains(&age)) {
            warnings.push(CovariateWarning {
                model: self,
                covariate: Covariate::Age,
                value: age,
                validated: range,
            });
        }
        EvaluatedModel {
            parameters,
            ke0: info.ke0,
            warnings,
            metabolite,
        }
    }

    /// Where the parameter values were read.
    pub fn parameter_source_note(self) -> &'static str {
        match self {
            ModelId::Otto2021 => "nlmixr2lib model file Otto_2021_s_ketamine (Table 3 of the paper)",
            _ => "opentiva 1.1.2, opentiva/ketamine.py",
        }
    }

    /// Whether opentiva 1.1.2 ships this model (the reference curves and peer benchmark cover these).
    pub fn in_opentiva(self) -> bool {
        self != ModelId::Otto2021
    }
}

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// A model id that is not one of the shipped models.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown model {given:?}; known models: clements1981, domino1982, hijazi2003, herd2007, hornik2018, kamp2020, otto2021"
)]
pub struct UnknownModel {
    /// What was given.
    pub given: String,
}

impl FromStr for ModelId {
    type Err = UnknownModel;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.trim().to_ascii_lowercase();
        ModelId::ALL
            .into_iter()
            .find(|m| m.id() == wanted || (wanted == "klamp" && *m == ModelId::Kamp2020))
            .ok_or_else(|| UnknownModel {
                given: text.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hijazi_warns_for_children_not_adults() {
        assert!(
            ModelId::Hijazi2003
                .evaluate(&Covariates::reference_adult())
                .warnings
                .is_empty()
        );
        let child = Covariates {
            age: Years::new(6.0).unwrap(),
            ..Covariates::reference_adult()
        };
        let warnings = ModelId::Hijazi2003.evaluate(&child).warnings;
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].covariate, Covariate::Age);
    }

    #[test]
    fn paediatric_models_warn_for_an_adult_with_a_readable_message() {
        let warnings = ModelId::Herd2007
            .evaluate(&Covariates::reference_adult())
            .warnings;
        assert_eq!(warnings.len(), 1);
        assert_eq!(
            warnings[0].to_string(),
            "age 40 years is outside the range 1–14 years that herd2007 was developed on"
        );
        assert_eq!(
            ModelId::Hornik2018
                .evaluate(&Covariates::reference_adult())
                .warnings
                .len(),
            1
        );
    }

    #[test]
    fn kamp_parameters_scale_linearly_with_weight() {
        let p = ModelId::Kamp2020
            .evaluate(&Covariates::reference_adult())
            .parameters;
        assert!((p.v1_l() - 25.0).abs() < 1e-12);
        assert!((p.cl_l_per_min() - 84.0 / 60.0).abs() < 1e-12);
        assert!((p.volume_of_distribution_at_steady_state_l() - 238.0).abs() < 1e-9);
    }

    #[test]
    fn model_ids_round_trip_and_unknown_ids_list_the_known_ones() {
        for m in ModelId::ALL {
            assert_eq!(m.id().parse::<ModelId>().unwrap(), m);
        }
        let err = "propofol".parse::<ModelId>().unwrap_err();
        assert!(err.to_string().contains("known models: clements1981"));
    }
}
