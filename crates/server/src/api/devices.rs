//! Bedside monitors over HTTP (`/api/v1/devices`): registered by an administrator, put at a chair
//! by a nurse; their readings arrive over MLLP (`serve --mllp`), the edge over
//! `ketaflow_app::monitors`.

use crate::extract::{JsonBody, Path};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use ketaflow_app::monitors::{DeviceDoc, DeviceIn, DeviceOut};

/// Where a monitor is.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChairIn {
    /// The chair (1–40 characters), or null to take the monitor away from its chair.
    pub chair: Option<String>,
}

/// Register a monitor: the identifier its messages carry (OBX-18 or MSH-3), model, serial and
/// where it is kept. Audited (`device.register`).
#[utoipa::path(post, path = "/devices", tag = "devices", request_body = DeviceIn,
    responses((status = 201, body = DeviceOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn register_device(
    State(state): State<AppState>,
    me: CurrentUser,
    body: JsonBody<DeviceIn>,
) -> Result<(StatusCode, Json<DeviceOut>), ApiError> {
    let body = body.value()?;
    Ok((
        StatusCode::CREATED,
        Json(state.register_device(&me.caller(), body).await?),
    ))
}

/// Every registered monitor, with its chair.
#[utoipa::path(get, path = "/devices", tag = "devices",
    responses((status = 200, body = [DeviceOut]), (status = 403, body = ErrorBody)))]
pub async fn list_devices(
    State(state): State<AppState>,
    me: CurrentUser,
) -> Result<Json<Vec<DeviceOut>>, ApiError> {
    Ok(Json(state.devices(&me.caller()).await?))
}

/// Put a monitor at a chair (or take it away): from then on its messages go to the session of the
/// patient checked in there. Audited (`device.associate`, `device.dissociate`).
#[utoipa::path(post, path = "/devices/{id}/chair", tag = "devices", request_body = ChairIn, params(("id" = Uuid, Path, description = "device id")),
    responses((status = 200, body = DeviceOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn set_chair(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: JsonBody<ChairIn>,
) -> Result<Json<DeviceOut>, ApiError> {
    let body = body.value()?;
    Ok(Json(state.associate_device(&me.caller(), id, body.chair).await?))
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register_device, list_devices))
        .routes(routes!(set_chair))
}
