//! The session record for printing and export over HTTP: the edge over
//! `ketaflow_app::session_record`.

use crate::extract::{Path, Query};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use ketaflow_app::session_record::{RecordExport, RecordFormat};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::error::{ApiError, ErrorBody};
use crate::policy::Action;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use ketaflow_app::session_record::{RemsSummary, SessionRecordOut, TimedBp, TimelineRow};

/// json (default) or csv.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecordQuery {
    /// json or csv.
    pub format: Option<String>,
}

/// The session record: timeline, total dose, REMS-style summary; `?format=csv` for a spreadsheet.
/// Every export is audited.
#[utoipa::path(get, path = "/sessions/{id}/record", tag = "sessions", params(("id" = Uuid, Path, description = "session id"), RecordQuery),
    responses((status = 200, description = "the record as JSON, or as CSV with `?format=csv`", content((SessionRecordOut = "application/json"), (String = "text/csv"))), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_record(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    Query(q): Query<RecordQuery>,
) -> Result<Response, ApiError> {
    me.require(Action::ReadClinical)?;
    let format = RecordFormat::parse(q.format.as_deref().unwrap_or("json"))?;
    Ok(match state.session_record(&me.caller(), id, format).await? {
        RecordExport::Csv(csv) => crate::api::outcomes::csv_response(&format!("session-{id}.csv"), csv),
        RecordExport::Json(record) => axum::Json(*record).into_response(),
    })
}

/// This area's routes, each with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_record))
}
