//! The clinical domain of Ketaflow: patients and intake facts, eligibility screening, dosing
//! weight, the protocol library with its limits, dose plans with their approval, and the session:
//!
//! - `patient`, `eligibility`, `weight`: intake facts, screening, dosing weight;
//! - `protocol`: the protocol library with its limits, monitoring and discharge rules;
//! - `plan`: dose plans, limit checks, the Cp/Ce prediction for any infusion, approval;
//! - `session`: the infusion session state machine;
//! - `delivery`: what the pump actually gave (rate changes, pauses), checks of a proposed rate
//!   change against the limits, and re-prediction from what was given;
//! - `vitals`, `news2`: plausibility checks, alarm rules, NEWS2 and the modified Aldrete score;
//! - `side_effects`: side effects with severity and action, CADSS-6 and MOAA/S;
//! - `discharge`: post-infusion discharge criteria, instructions and physician override;
//! - `instruments`, `mme`: outcome questionnaires and morphine milligram equivalents;
//! - `measurements`: the measurement schedule (baseline, before each infusion, follow-ups).
//!
//! **Invariant:** no SQL, HTTP, JSON or async, no clock: dates come in as arguments. Every clinical
//! number used here names its source beside it, in this crate or in the protocol files it embeds.
#![deny(missing_docs)]

pub mod controlled;
pub mod delivery;
pub mod discharge;
pub mod eligibility;
pub mod instruments;
pub mod measurements;
pub mod mme;
pub mod news2;
pub mod outcomes;
pub mod patient;
pub mod plan;
pub mod protocol;
pub mod session;
pub mod side_effects;
pub mod surveillance;
pub mod vitals;
pub mod weight;
