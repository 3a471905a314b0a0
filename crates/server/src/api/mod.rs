//! The JSON API under `/api/v1`: one module per area; `router` mounts them all.

pub mod accounts;
pub mod bedside;
pub mod clinical;
pub mod discharge;
pub mod ledger;
pub mod library;
pub mod live;
pub mod outcomes;
pub mod record;
pub mod safety;
pub mod sessions;
