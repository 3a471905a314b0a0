//! One patient's model, assembled: the published parameters for their covariates, the effect site
//! (the model's ke0 or an override), the metabolite where the model has one, and any PD effect
//! sites. This is what the command line and the clinic use to predict for a person.

use ketaflow_units::PerMinute;

use crate::EngineError;
use crate::model::{CovariateWarning, Covariates, Enantiomer, Ke0Source, ModelId};
use crate::params::{Disposition, Mammillary};
use crate::pd::{PdModel, PdModelId, S_FRACTION_OF_RACEMIC};
use crate::schedule::{BolusAt, Schedule, Segment};
use crate::system::System;

/// The drug the patient is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrugGiven {
    /// Racemic ketamine (the usual infusion product).
    Racemic,
    /// S-ketamine (esketamine).
    Esketamine,
}

/// A model mismatch the user must see: the drug given and the drug the model describes differ.
#[derive(Clone, Debug, PartialEq)]
pub enum DrugNote {
    /// An S-ketamine model run for racemic doses: the S half of each dose is simulated.
    SHalfOfRacemic,
    /// A racemic model run for esketamine doses: no published basis for the conversion.
    RacemicModelForEsketamine,
}

impl std::fmt::Display for DrugNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DrugNote::SHalfOfRacemic => f.write_str("S-ketamine model: the S-ketamine half of each racemic dose is simulated, and concentrations are S-ketamine"),
            DrugNote::RacemicModelForEsketamine => f.write_str("racemic-ketamine model used for esketamine doses: concentrations are predicted as if the dose were racemic (no published basis)"),
        }
    }
}

/// A patient's assembled model.
#[derive(Clone, Debug)]
pub struct PatientModel {
    /// Which published model.
    pub model: ModelId,
    /// The covariates used.
    pub covariates: Covariates,
    /// Covariates outside the model's validated range.
    pub warnings: Vec<CovariateWarning>,
    /// The compartmental parameters for these covariates.
    pub parameters: Mammillary,
    /// The PK effect-site rate constant in use.
    pub ke0: PerMinute,
    /// Where it comes from.
    pub ke0_source: Ke0Source,
    /// The linear system.
    pub system: System,
    /// PD models with the index of their effect-site response.
    pub pd: Vec<(PdModel, usize)>,
    /// Indices of the metabolite's modes (empty when the model has none).
    pub metabolite_modes: Vec<usize>,
    /// The drug given.
    pub drug: DrugGiven,
}

impl PatientModel {
    /// Assembles `model` for `covariates`.
    pub fn new(
        model: ModelId,
        covariates: Covariates,
        ke0_override: Option<PerMinute>,
        pd: &[PdModelId],
        drug: DrugGiven,
    ) -> Result<PatientModel, EngineError> {
        let evaluated = model.evaluate(&covariates);
        let (ke0, ke0_source) = match ke0_override {
            Some(k) => (k, Ke0Source::UserOverride),
            None => (evaluated.ke0, model.info().ke0_source),
        };
        if ke0.get() <= 0.0 {
            return Err(EngineError::InvalidParameter {
                name: "ke0 (/min)",
                value: ke0.get(),
                allowed: "a rate constant above 0 /min",
            });
        }
        let mut system = System::new(Disposition::new(&evaluated.parameters)?, ke0.per_second());
        let metabolite_modes = match evaluated.metabolite {
            Some(m) => system.add_metabolite(m.fm, &Disposition::new(&m.disposition)?),
            None => Vec::new(),
        };
        let pd = pd
            .iter()
            .map(|id| {
                let pd_model = id.model();
                let index = system.add_effect_site(pd_model.ke0.per_second());
                (pd_model, index)
            })
            .collect();
        Ok(PatientModel {
            model,
            covariates,
            warnings: evaluated.warnings,
            parameters: evaluated.parameters,
            ke0,
            ke0_source,
            system,
            pd,
            metabolite_modes,
            drug,
        })
    }

    /// The drug the model's concentrations describe.
    pub fn concentration_drug(&self) -> Enantiomer {
        self.model.info().enantiomer
    }

    /// What the user must be told about drug versus model, if anything.
    pub fn drug_note(&self) -> Option<DrugNote> {
        match (self.drug, self.concentration_drug()) {
            (DrugGiven::Racemic, Enantiomer::SKetamine) => Some(DrugNote::SHalfOfRacemic),
            (DrugGiven::Esketamine, Enantiomer::Racemic) => Some(DrugNote::RacemicModelForEsketamine),
            _ => None,
        }
    }

    /// The schedule of drug that enters this model: for an S-ketamine model given racemic ketamine,
    /// the S half of each dose (a racemate is 1:1 by composition).
    pub fn model_input(&self, schedule: &Schedule) -> Schedule {
        if self.drug_note() != Some(DrugNote::SHalfOfRacemic) {
            return schedule.clone();
        }
        let f = S_FRACTION_OF_RACEMIC;
        Schedule::new(
            schedule
                .segments()
                .iter()
                .map(|s| Segment {
                    rate_mg_per_s: s.rate_mg_per_s * f,
                    ..*s
                })
                .collect(),
            schedule
                .boluses()
                .iter()
                .map(|b| BolusAt {
                    amount_mg: b.amount_mg * f,
                    ..*b
                })
                .collect(),
        )
        .expect("scaling a valid schedule keeps it valid")
    }
}
