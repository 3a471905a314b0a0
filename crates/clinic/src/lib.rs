//! The clinical domain of Ketaflow: patients and intake facts, eligibility screening, dosing
//! weight, the protocol library with its limits, and dose plans with their approval.
//!
//! **Invariant:** no SQL, HTTP, JSON or async, no clock: dates come in as arguments. Every clinical
//! number used here names its source beside it, in this crate or in the protocol files it embeds.
#![deny(missing_docs)]

pub mod eligibility;
pub mod instruments;
pub mod mme;
pub mod news2;
pub mod patient;
pub mod plan;
pub mod protocol;
pub mod session;
pub mod vitals;
pub mod weight;
