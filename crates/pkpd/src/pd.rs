//! Pharmacodynamic models: an effect site with its own equilibration rate, driven by plasma
//! concentration, and a concentration–effect relation.
//!
//! Both shipped models were fitted on **S-ketamine** concentrations. When the PK model describes
//! racemic ketamine, the S-ketamine concentration is taken as half the racemic one: racemic
//! ketamine is 1:1 by composition, but equal *concentrations* also assume equal kinetics of the two
//! enantiomers, which is only approximately true (S-ketamine clearance is ~20 % higher; Henthorn
//! et al. 2018, Anesthesiology 129:260). This assumption is stated on every PD output.

use ketaflow_units::{KETAMINE_BASE_GRAMS_PER_MOLE, Minutes, NanomolesPerLitre, PerMinute};

use crate::model::{Enantiomer, Reference};

/// Fraction of racemic ketamine that is S-ketamine (by composition: a racemate is 1:1).
pub const S_FRACTION_OF_RACEMIC: f64 = 0.5;

/// The shipped PD models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PdModelId {
    /// Olofsen et al. 2022: psychedelic ("external perception") and antinociceptive effect.
    Olofsen2022,
    /// Dahan et al. 2011: long-term pain relief in CRPS-1.
    Dahan2011,
}

/// A PD model with its provenance.
#[derive(Clone, Debug, PartialEq)]
pub struct PdModel {
    /// Which model.
    pub id: PdModelId,
    /// Short name.
    pub name: &'static str,
    /// What effect it describes.
    pub endpoint: &'static str,
    /// The paper.
    pub reference: Reference,
    /// Blood–effect-site equilibration rate constant.
    pub ke0: PerMinute,
    /// Concentration at half-maximal effect, ng/mL of `concentration_of`.
    pub c50_ng_per_ml: f64,
    /// Which drug the C50 refers to.
    pub concentration_of: Enantiomer,
    /// Hill coefficient, if published. When `None`, [`PdModel::fraction_of_max_effect`] uses 1 and
    /// says so: the shape is then an assumption.
    pub gamma: Option<f64>,
    /// What is assumed or unconfirmed.
    pub caveats: &'static str,
}

impl PdModelId {
    /// All shipped PD models.
    pub const ALL: [PdModelId; 2] = [PdModelId::Olofsen2022, PdModelId::Dahan2011];

    /// The identifier used on the command line.
    pub fn id(self) -> &'static str {
        match self {
            PdModelId::Olofsen2022 => "olofsen2022",
            PdModelId::Dahan2011 => "dahan2011",
        }
    }

    /// The model with its parameters.
    pub fn model(self) -> PdModel {
        match self {
            PdModelId::Olofsen2022 => PdModel {
                id: self,
                name: "Olofsen 2022 psychedelic / antinociceptive effect",
                endpoint: "external perception (drug high) and pressure-pain antinociception, which share one PD in the paper",
                reference: Reference {
                    citation: "Olofsen E et al. Ketamine psychedelic and antinociceptive effects are connected. Anesthesiology 2022;136:792-801 (abstract: 17 healthy men, escalating S- and racemic ketamine)",
                    pmid: None,
                    doi: Some("10.1097/ALN.0000000000004176"),
                },
                // t½ke0 8.3 (95 % CI 5.1–13.0) min.
                ke0: PerMinute::from_half_life(Minutes::new(8.3).expect("constant in range"))
                    .expect("constant in range"),
                // C50 0.51 (0.38–0.66) nmol/mL of S-ketamine = 510 nmol/L.
                c50_ng_per_ml: NanomolesPerLitre::new(510.0)
                    .expect("constant in range")
                    .to_nanograms_per_ml(KETAMINE_BASE_GRAMS_PER_MOLE)
                    .get(),
                concentration_of: Enantiomer::SKetamine,
                gamma: None,
                caveats: "C50 and t½ke0 from the abstract; the Hill coefficient and Emax were not retrieved (UNVERIFIED), so the fractional effect assumes γ = 1; R-ketamine contributes no effect and S-norketamine's small antagonism is not modelled",
            },
            PdModelId::Dahan2011 => PdModel {
                id: self,
                name: "Dahan 2011 CRPS-1 long-term pain relief",
                endpoint: "pain relief in complex regional pain syndrome type 1 over days to weeks after a 100-h S-ketamine infusion",
                reference: Reference {
                    citation: "Dahan A et al. Population pharmacokinetic-pharmacodynamic modeling of ketamine-induced pain relief of chronic pain. Eur J Pain 2011;15:258-267 (abstract: 60 CRPS-1 patients, 100-h S-ketamine infusion; venous sampling per Otto 2021 Table 2)",
                    pmid: Some("20638877"),
                    doi: Some("10.1016/j.ejpain.2010.06.016"),
                },
                // Onset/offset t½ 10.9 ± 4.0 days.
                ke0: PerMinute::from_half_life(Minutes::new(10.9 * 24.0 * 60.0).expect("constant in range"))
                    .expect("constant in range"),
                // C50 10.5 ± 4.8 ng/mL (S-ketamine).
                c50_ng_per_ml: 10.5,
                concentration_of: Enantiomer::SKetamine,
                gamma: None,
                caveats: "C50 and onset/offset half-life from the abstract; that the slow onset/offset is an effect compartment feeding a sigmoid Emax is an interpretation (structure, γ and Emax UNVERIFIED); responder probability 67 ± 10 % vs 23 ± 9 % on placebo",
            },
        }
    }
}

impl std::str::FromStr for PdModelId {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        PdModelId::ALL
            .into_iter()
            .find(|m| m.id() == text.trim().to_ascii_lowercase())
            .ok_or_else(|| format!("unknown PD model {text:?}; known: olofsen2022, dahan2011"))
    }
}

impl PdModel {
    /// The concentration this model's C50 refers to, from a PK concentration of `pk_drug` (µg/mL).
    pub fn relevant_concentration_ug_per_ml(
        &self,
        pk_concentration_ug_per_ml: f64,
        pk_drug: Enantiomer,
    ) -> f64 {
        match (pk_drug, self.concentration_of) {
            (Enantiomer::Racemic, Enantiomer::SKetamine) => {
                pk_concentration_ug_per_ml * S_FRACTION_OF_RACEMIC
            }
            _ => pk_concentration_ug_per_ml,
        }
    }

    /// E/Emax = Cᵞ/(C50ᵞ + Cᵞ) at effect-site concentration `c_ug_per_ml` (already converted with
    /// [`PdModel::relevant_concentration_ug_per_ml`]); γ = 1 when unpublished.
    pub fn fraction_of_max_effect(&self, c_ug_per_ml: f64) -> f64 {
        let gamma = self.gamma.unwrap_or(1.0);
        let c = (c_ug_per_ml * 1000.0).max(0.0);
        let ratio = (c / self.c50_ng_per_ml).powf(gamma);
        ratio / (1.0 + ratio)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn olofsen_constants_convert_from_the_paper_units() {
        let m = PdModelId::Olofsen2022.model();
        // 0.51 nmol/mL × 237.73 g/mol = 121.2 ng/mL.
        assert!((m.c50_ng_per_ml - 121.24).abs() < 0.01);
        assert!((m.ke0.half_life() - 8.3).abs() < 1e-12);
        // At C = C50 the fractional effect is one half.
        assert!((m.fraction_of_max_effect(m.c50_ng_per_ml / 1000.0) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn racemic_concentrations_are_halved_for_s_ketamine_models() {
        let m = PdModelId::Dahan2011.model();
        assert_eq!(m.relevant_concentration_ug_per_ml(0.2, Enantiomer::Racemic), 0.1);
        assert_eq!(
            m.relevant_concentration_ug_per_ml(0.2, Enantiomer::SKetamine),
            0.2
        );
        // t½ 10.9 days.
        assert!((m.ke0.half_life() / (24.0 * 60.0) - 10.9).abs() < 1e-9);
    }
}
