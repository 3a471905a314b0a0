//! The controlled-substance ledger over HTTP (`/api/v1/ledger/...`): the edge over
//! `ketaflow_app::ledger`, where the rules, their sources and the decisions are described.

use crate::extract::{JsonBody, Path, Query};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::error::{ApiError, ErrorBody};
use crate::policy::Action;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use ketaflow_app::ledger::{
    ADMINISTRATION_TOLERANCE_MG, AdministrationIn, CountIn, CountLineIn, CountOut, DestructionIn,
    DiscrepancyOut, DrawIn, EXPORT_COLUMNS, EntryOut, INVENTORY_DUE_SOON_DAYS, InventoryReportOut, PersonOut,
    ReceiptIn, ResolveIn, ResolveOut, SessionLedgerOut, SupplierDoc, VialDetailOut, VialOut, WasteIn,
    WitnessIn,
};

/// Which vials to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VialQuery {
    /// Only vials with this status: sealed, open, empty or destroyed.
    pub status: Option<String>,
}

/// Which discrepancies to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiscrepancyQuery {
    /// Only open ones (default false).
    pub open: Option<bool>,
}

/// The period to export.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// First day included (YYYY-MM-DD, UTC); default: the beginning.
    pub from: Option<String>,
    /// Last day included (YYYY-MM-DD, UTC); default: today.
    pub to: Option<String>,
}

/// Receive vials: one vial and one receipt entry per container, audited (21 CFR 1304.22(c)).
#[utoipa::path(post, path = "/ledger/vials", tag = "ledger", request_body = ReceiptIn,
    responses((status = 201, body = [VialOut]), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn receive_vials(
    State(state): State<AppState>,
    me: CurrentUser,
    body: JsonBody<ReceiptIn>,
) -> Result<(StatusCode, Json<Vec<VialOut>>), ApiError> {
    me.require(Action::ManageLedger)?;
    let body = body.value()?;
    Ok((
        StatusCode::CREATED,
        Json(state.receive_vials(&me.caller(), body).await?),
    ))
}

/// Vials in the order received, with their balances.
#[utoipa::path(get, path = "/ledger/vials", tag = "ledger", params(VialQuery),
    responses((status = 200, body = [VialOut]), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_vials(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(q): Query<VialQuery>,
) -> Result<Json<Vec<VialOut>>, ApiError> {
    Ok(Json(state.vials(&me.caller(), q.status.as_deref()).await?))
}

/// One vial with every entry: its running balance.
#[utoipa::path(get, path = "/ledger/vials/{id}", tag = "ledger", params(("id" = Uuid, Path, description = "vial id")),
    responses((status = 200, body = VialDetailOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_vial(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<VialDetailOut>, ApiError> {
    Ok(Json(state.vial(&me.caller(), id).await?))
}

/// Draw from a vial for a session. More than the balance is a 422 (`insufficient_balance`) and
/// writes nothing; so is a draw from an expired or destroyed vial, or one with an open count
/// discrepancy.
#[utoipa::path(post, path = "/ledger/vials/{id}/draws", tag = "ledger", request_body = DrawIn, params(("id" = Uuid, Path, description = "vial id")),
    responses((status = 201, body = EntryOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn draw(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(vial_id): Path<Uuid>,
    body: JsonBody<DrawIn>,
) -> Result<(StatusCode, Json<EntryOut>), ApiError> {
    me.require(Action::WriteLedger)?;
    let body = body.value()?;
    Ok((
        StatusCode::CREATED,
        Json(state.draw(&me.caller(), vial_id, body).await?),
    ))
}

/// Record drawn drug as administered, once the session's pump has stopped. The entry stores the
/// session's recorded dose given and the difference of its total administered from it; a total
/// above the recorded dose by more than 0.1 mg needs a `difference_reason` (422
/// `administered_exceeds_given` otherwise). More than the draw's outstanding amount is a 422.
#[utoipa::path(post, path = "/ledger/draws/{id}/administrations", tag = "ledger", request_body = AdministrationIn, params(("id" = i64, Path, description = "draw entry id")),
    responses((status = 201, body = EntryOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn administer(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(draw_id): Path<i64>,
    body: JsonBody<AdministrationIn>,
) -> Result<(StatusCode, Json<EntryOut>), ApiError> {
    me.require(Action::WriteLedger)?;
    let body = body.value()?;
    Ok((
        StatusCode::CREATED,
        Json(state.administer(&me.caller(), draw_id, body).await?),
    ))
}

/// Record drawn drug as wasted (the unused remainder of a dose: not destruction of inventory, so
/// not DEA Form 41; recorded with the administration record, §9) with a witness who confirms with
/// their own password.
#[utoipa::path(post, path = "/ledger/draws/{id}/waste", tag = "ledger", request_body = WasteIn, params(("id" = i64, Path, description = "draw entry id")),
    responses((status = 201, body = EntryOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn waste(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(draw_id): Path<i64>,
    body: JsonBody<WasteIn>,
) -> Result<(StatusCode, Json<EntryOut>), ApiError> {
    me.require(Action::WriteLedger)?;
    let body = body.value()?;
    Ok((
        StatusCode::CREATED,
        Json(state.waste(&me.caller(), draw_id, body).await?),
    ))
}

/// Destroy a vial's remaining content (DEA Form 41: NDC, name, strength, form, quantity, date,
/// method, location, two authorised employee witnesses).
#[utoipa::path(post, path = "/ledger/vials/{id}/destruction", tag = "ledger", request_body = DestructionIn, params(("id" = Uuid, Path, description = "vial id")),
    responses((status = 201, body = EntryOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn destroy(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(vial_id): Path<Uuid>,
    body: JsonBody<DestructionIn>,
) -> Result<(StatusCode, Json<EntryOut>), ApiError> {
    me.require(Action::ManageLedger)?;
    let body = body.value()?;
    Ok((
        StatusCode::CREATED,
        Json(state.destroy(&me.caller(), vial_id, body).await?),
    ))
}

/// Record a physical count or inventory. A vial whose count differs from its book balance gets a
/// discrepancy to resolve; the book balance does not move until then.
#[utoipa::path(post, path = "/ledger/counts", tag = "ledger", request_body = CountIn,
    responses((status = 201, body = CountOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn record_count(
    State(state): State<AppState>,
    me: CurrentUser,
    body: JsonBody<CountIn>,
) -> Result<(StatusCode, Json<CountOut>), ApiError> {
    me.require(Action::ManageLedger)?;
    let body = body.value()?;
    Ok((
        StatusCode::CREATED,
        Json(state.record_count(&me.caller(), body).await?),
    ))
}

/// Count discrepancies, oldest first.
#[utoipa::path(get, path = "/ledger/discrepancies", tag = "ledger", params(DiscrepancyQuery),
    responses((status = 200, body = [DiscrepancyOut]), (status = 403, body = ErrorBody)))]
pub async fn list_discrepancies(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(q): Query<DiscrepancyQuery>,
) -> Result<Json<Vec<DiscrepancyOut>>, ApiError> {
    Ok(Json(
        state.discrepancies(&me.caller(), q.open.unwrap_or(false)).await?,
    ))
}

/// Resolve a count discrepancy with a note (and, with `adjust`, correct the book balance by the
/// variance; refused if that would make it negative).
#[utoipa::path(post, path = "/ledger/discrepancies/{id}/resolve", tag = "ledger", request_body = ResolveIn, params(("id" = Uuid, Path, description = "discrepancy id")),
    responses((status = 200, body = ResolveOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn resolve_discrepancy(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: JsonBody<ResolveIn>,
) -> Result<Json<ResolveOut>, ApiError> {
    me.require(Action::ManageLedger)?;
    let body = body.value()?;
    Ok(Json(state.resolve_discrepancy(&me.caller(), id, body).await?))
}

/// When the last inventory was and whether one is due (21 U.S.C. 827(a): initial, then at least
/// every 2 years), the stock on hand, open discrepancies, and whether the ledger's balances
/// recompute.
#[utoipa::path(get, path = "/ledger/inventory", tag = "ledger",
    responses((status = 200, body = InventoryReportOut), (status = 403, body = ErrorBody)))]
pub async fn inventory_report(
    State(state): State<AppState>,
    me: CurrentUser,
) -> Result<Json<InventoryReportOut>, ApiError> {
    Ok(Json(state.inventory_report(&me.caller()).await?))
}

/// What was drawn, administered and wasted for a session, against its recorded dose.
#[utoipa::path(get, path = "/ledger/sessions/{id}", tag = "ledger", params(("id" = Uuid, Path, description = "session id")),
    responses((status = 200, body = SessionLedgerOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn session_ledger(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<SessionLedgerOut>, ApiError> {
    Ok(Json(state.session_ledger(&me.caller(), id).await?))
}

/// The ledger for an inspector, as CSV: every entry in order with its vial's NDC, product,
/// strength, lot and expiry, the quantities and running balance, who made it and who witnessed
/// it, and (on receipts) the supplier and invoice. The export is audited.
#[utoipa::path(get, path = "/ledger/export", tag = "ledger", params(ExportQuery),
    responses((status = 200, description = "the ledger entries as CSV", body = String, content_type = "text/csv"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn export(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let export = state
        .export_ledger(&me.caller(), q.from.as_deref(), q.to.as_deref())
        .await?;
    Ok(crate::api::outcomes::csv_response(&export.filename, export.csv))
}

/// This area's routes, each with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(receive_vials, list_vials))
        .routes(routes!(get_vial))
        .routes(routes!(draw))
        .routes(routes!(administer))
        .routes(routes!(waste))
        .routes(routes!(destroy))
        .routes(routes!(record_count))
        .routes(routes!(list_discrepancies))
        .routes(routes!(resolve_discrepancy))
        .routes(routes!(inventory_report))
        .routes(routes!(session_ledger))
        .routes(routes!(export))
}
