//! The monitors page: every registered bedside monitor, where it is, and what its messages came
//! to; administrators register monitors, nurses and physicians put them at a chair.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use uuid::Uuid;

use super::forms::{FormState, Posted};
use super::{Chrome, PageResult, WebUser, page_err, render_with_status, see_other};
use crate::error::ApiError;
use crate::state::AppState;
use ketaflow_app::monitors::DeviceIn;
use ketaflow_app::policy::Action;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/devices", get(devices_page).post(register))
        .route("/devices/{id}/chair", post(place))
}

/// A monitor as the page lists it.
#[derive(Debug)]
struct DeviceRow {
    id: String,
    identifier: String,
    model: String,
    serial: String,
    location: String,
    chair: String,
    /// "10:42 (AA)", or "none since the server started".
    last: String,
    messages: u64,
    refused: u64,
    /// The form's name on the page.
    form: String,
}

#[derive(Template)]
#[template(path = "devices.html")]
struct DevicesPage {
    chrome: Chrome,
    devices: Vec<DeviceRow>,
    can_register: bool,
    can_place: bool,
    form: FormState,
}

async fn page(state: &AppState, user: &WebUser, form: FormState, status: StatusCode) -> PageResult {
    let stats = state.monitor_stats();
    let devices = state
        .devices(&user.me.caller())
        .await
        .map_err(page_err)?
        .into_iter()
        .map(|d| {
            let seen = stats.get(&d.doc.identifier);
            DeviceRow {
                id: d.id.to_string(),
                identifier: d.doc.identifier.clone(),
                model: d.doc.model,
                serial: d.doc.serial,
                location: d.doc.location,
                chair: d.doc.chair.unwrap_or_default(),
                last: seen
                    .and_then(|s| {
                        s.last
                            .map(|(at, code)| format!("{} ({code})", user.zone.clock(at)))
                    })
                    .unwrap_or_else(|| "none since the server started".into()),
                messages: seen.map_or(0, |s| s.messages),
                refused: seen.map_or(0, |s| s.refused),
                form: format!("place-{}", d.id),
            }
        })
        .collect();
    Ok(render_with_status(
        status,
        &DevicesPage {
            chrome: user.chrome("devices", "Monitors"),
            devices,
            can_register: user.may(Action::ManageDevices),
            can_place: user.may(Action::RunSession),
            form,
        },
    ))
}

async fn devices_page(State(state): State<AppState>, user: WebUser) -> PageResult {
    page(&state, &user, FormState::default(), StatusCode::OK).await
}

/// After a form: back to the list on success; the list with the form as typed on refusal.
async fn answer(
    state: &AppState,
    user: &WebUser,
    name: &str,
    form: super::forms::FormData,
    result: Result<(), ketaflow_app::AppError>,
) -> PageResult {
    match result {
        Ok(()) => Ok(see_other("/devices")),
        Err(e) => {
            let e = ApiError::from(e);
            let status = e.status();
            page(state, user, FormState::refused_named(name, form, &e), status).await
        }
    }
}

async fn register(State(state): State<AppState>, posted: Posted) -> PageResult {
    let Posted { user, form } = posted;
    let body = DeviceIn {
        identifier: form.text("identifier"),
        model: form.text("model"),
        serial: form.text("serial"),
        location: form.text("location"),
    };
    let result = state.register_device(&user.me.caller(), body).await.map(|_| ());
    answer(&state, &user, "register", form, result).await
}

async fn place(State(state): State<AppState>, Path(id): Path<Uuid>, posted: Posted) -> PageResult {
    let Posted { user, form } = posted;
    let chair = form.optional("chair");
    let result = state
        .associate_device(&user.me.caller(), id, chair)
        .await
        .map(|_| ());
    answer(&state, &user, &format!("place-{id}"), form, result).await
}
