//! Ketamine pharmacokinetics and pharmacodynamics: the numeric core of Ketaflow.
//!
//! * [`model`]: the published parameter sets, with provenance and validated covariate ranges.
//! * [`params`]: mammillary compartment parameters and their modal decomposition.
//! * [`system`]: the exact state update (plasma modes plus first-order responses such as the
//!   effect site, peripheral amounts, eliminated amount and metabolite).
//! * [`schedule`]: regimens in clinical units and the dose-expression parser.
//! * [`simulate`]: forward simulation on any output grid.
//! * [`recovery`]: when a concentration falls below a threshold for good.
//!
//! **Invariant:** this crate does no I/O, reads no clock and owns no randomness (population runs
//! take a seed); it knows covariates, not patients. Time inside the engine is in seconds, rates in
//! mg/s, concentrations in mg/L (= µg/mL).
#![deny(missing_docs)]

pub mod model;
pub mod params;
pub mod patient;
pub mod pd;
pub mod population;
pub mod recovery;
pub mod schedule;
pub mod simulate;
pub mod system;
pub mod tci;

/// Failures of the engine. Each names the offending value and what is allowed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// A model parameter is not a finite positive number.
    #[error("model parameter {name} = {value} is not allowed: it must be {allowed}")]
    InvalidParameter {
        /// Which parameter.
        name: &'static str,
        /// Its value.
        value: f64,
        /// What is allowed.
        allowed: &'static str,
    },
    /// Two macro rate constants coincide, so the modal form does not exist.
    #[error(
        "the model has (nearly) repeated rate constants {lambda_i} and {lambda_j} /min; perturb a parameter"
    )]
    DegenerateModel {
        /// One rate constant, /min.
        lambda_i: f64,
        /// The other, /min.
        lambda_j: f64,
    },
    /// The output grid is unusable.
    #[error("{0}")]
    InvalidGrid(String),
    /// A threshold is not a positive concentration.
    #[error("threshold {0} µg/mL is not allowed: it must be a finite concentration above 0")]
    InvalidThreshold(f64),
    /// A search did not converge.
    #[error("{0}")]
    NoConvergence(String),
}
