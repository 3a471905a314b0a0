//! The JSON API under `/api/v1`: one module per area; `router` mounts them all.

pub mod accounts;
pub mod clinical;
pub mod library;
