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

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// Every area's routes, relative to `/api/v1`, with their OpenAPI operations: the document is
/// generated from the same list the router serves, so neither can miss a route.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(accounts::routes())
        .merge(library::routes())
        .merge(clinical::routes())
        .merge(sessions::routes())
        .merge(bedside::routes())
        .merge(discharge::routes())
        .merge(live::routes())
        .merge(record::routes())
        .merge(outcomes::routes())
        .merge(safety::routes())
        .merge(ledger::routes())
}
