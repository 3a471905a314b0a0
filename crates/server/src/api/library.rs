//! `/protocols` (the protocol library, read-only) and `/audit` (the audit chain): the HTTP edge
//! over `ketaflow_app::library`.

use crate::extract::{Path, Query};
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::CurrentUser;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use ketaflow_app::library::{AuditOut, AuditSelection, LimitOut, ProtocolOut, VerifyOut, protocol_out};

/// The protocol library.
#[utoipa::path(get, path = "/protocols", tag = "protocols", responses((status = 200, body = [ProtocolOut]), (status = 401, body = ErrorBody)))]
pub async fn list_protocols(
    State(state): State<AppState>,
    me: CurrentUser,
) -> Result<Json<Vec<ProtocolOut>>, ApiError> {
    Ok(Json(state.protocols(&me.caller())?))
}

/// One protocol.
#[utoipa::path(get, path = "/protocols/{id}", tag = "protocols", params(("id" = String, Path, description = "protocol id")),
    responses((status = 200, body = ProtocolOut), (status = 404, body = ErrorBody)))]
pub async fn get_protocol(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<ProtocolOut>, ApiError> {
    Ok(Json(state.protocol(&me.caller(), &id)?))
}

/// Audit listing filter.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this record type.
    pub record_type: Option<String>,
    /// Only this record id.
    pub record_id: Option<String>,
    /// Only entries after this seq.
    pub after_seq: Option<i64>,
    /// At most this many (1–1000).
    pub limit: Option<u32>,
}

/// List audit entries.
#[utoipa::path(get, path = "/audit", tag = "audit", params(AuditQuery), responses((status = 200, body = [AuditOut]), (status = 403, body = ErrorBody)))]
pub async fn list_audit(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<AuditOut>>, ApiError> {
    let selection = AuditSelection {
        record_type: q.record_type,
        record_id: q.record_id,
        after_seq: q.after_seq,
        limit: q.limit,
    };
    Ok(Json(state.audit_entries(&me.caller(), selection).await?))
}

/// Verify the whole audit chain.
#[utoipa::path(get, path = "/audit/verify", tag = "audit", responses((status = 200, body = VerifyOut), (status = 403, body = ErrorBody)))]
pub async fn verify_audit(
    State(state): State<AppState>,
    me: CurrentUser,
) -> Result<Json<VerifyOut>, ApiError> {
    Ok(Json(state.verify_audit(&me.caller()).await?))
}

/// This area's routes, each with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_protocols))
        .routes(routes!(get_protocol))
        .routes(routes!(list_audit))
        .routes(routes!(verify_audit))
}
