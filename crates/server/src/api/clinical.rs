//! Patients, intake, eligibility and dose plans.
//!
//! Records are stored as versioned JSON documents whose shape is defined here (`PatientDoc`,
//! `PlanDoc`); every write is validated first and audited with the document before and after.
//! Domain decisions (eligibility, limits, approval) are made by `ketaflow-clinic` on domain types
//! converted from the documents.

use crate::extract::{JsonBody, Path, Query};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::error::{ApiError, ErrorBody};
use crate::policy::Action;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use ketaflow_app::plans::{ApproveIn, PlanIn, PlanOut, parse_date, plan_doc, plan_out, prediction_out};
pub use ketaflow_app::records::{CheckOut, OverrideDoc, PATIENT, PLAN, PlanDoc, PredictionOut};

pub use ketaflow_app::intake::{
    AckOut, AcknowledgeIn, AllergyIn, AllergyOut, BpIn, BpOut, CodeIn, DatedOut, EligibilityOut, FindingOut,
    HeightIn, IndicationOut, MedicationIn, MedicationOut, PatientIn, PatientOut, WeightIn,
};

// ---- Patients ------------------------------------------------------------------------------------

/// Register a patient.
#[utoipa::path(post, path = "/patients", tag = "patients", request_body = PatientIn,
    responses((status = 201, body = PatientOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_patient(
    State(state): State<AppState>,
    me: CurrentUser,
    body: JsonBody<PatientIn>,
) -> Result<(StatusCode, Json<PatientOut>), ApiError> {
    me.require(Action::WriteIntake)?;
    let body = body.value()?;
    Ok((
        StatusCode::CREATED,
        Json(state.create_patient(&me.caller(), body).await?),
    ))
}

/// Patient search.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PatientQuery {
    /// Part of the name or MRN.
    pub search: Option<String>,
    /// At most this many (1–500, default 100).
    pub limit: Option<u32>,
}

/// List or search patients.
#[utoipa::path(get, path = "/patients", tag = "patients", params(PatientQuery),
    responses((status = 200, body = [PatientOut]), (status = 401, body = ErrorBody)))]
pub async fn list_patients(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(q): Query<PatientQuery>,
) -> Result<Json<Vec<PatientOut>>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    Ok(Json(
        state.patients(&me.caller(), q.search.as_deref(), limit).await?,
    ))
}

/// One patient.
#[utoipa::path(get, path = "/patients/{id}", tag = "patients", params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 200, body = PatientOut), (status = 404, body = ErrorBody)))]
pub async fn get_patient(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<PatientOut>, ApiError> {
    Ok(Json(state.patient(&me.caller(), id).await?))
}

/// An intake change: a POST of one body to a patient's sub-resource, answered with the patient as
/// it now is. Each is the same adapter over its use case, with its own path and body in the
/// OpenAPI document.
macro_rules! intake_change {
    ($(#[doc = $doc:literal])* $handler:ident, $path:literal, $body:ty) => {
        $(#[doc = $doc])*
        #[utoipa::path(post, path = $path, tag = "patients", request_body = $body,
            params(("id" = Uuid, Path, description = "patient id")),
            responses((status = 200, body = PatientOut), (status = 400, body = ErrorBody),
                (status = 404, body = ErrorBody)))]
        pub async fn $handler(
            State(state): State<AppState>,
            me: CurrentUser,
            Path(id): Path<Uuid>,
            body: JsonBody<$body>,
        ) -> Result<Json<PatientOut>, ApiError> {
            me.require(Action::WriteIntake)?;
            let body = body.value()?;
            Ok(Json(state.$handler(&me.caller(), id, body).await?))
        }
    };
}

intake_change!(
    /// Record a weight.
    add_weight, "/patients/{id}/weights", WeightIn
);
intake_change!(
    /// Record a height.
    add_height, "/patients/{id}/heights", HeightIn
);
intake_change!(
    /// Add an indication (with its evidence grade, shown on the patient).
    add_indication, "/patients/{id}/indications", CodeIn
);
intake_change!(
    /// Add a current medication.
    add_medication, "/patients/{id}/medications", MedicationIn
);
intake_change!(
    /// Add a history condition.
    add_condition, "/patients/{id}/conditions", CodeIn
);
intake_change!(
    /// Record an allergy (substance, reaction, severity). One to ketamine under any of its names
    /// is an absolute contraindication.
    add_allergy, "/patients/{id}/allergies", AllergyIn
);
intake_change!(
    /// Set the baseline blood pressure.
    set_baseline_bp, "/patients/{id}/baseline-bp", BpIn
);

// ---- Eligibility ---------------------------------------------------------------------------------

/// Screen the patient.
#[utoipa::path(get, path = "/patients/{id}/eligibility", tag = "patients", params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 200, body = EligibilityOut), (status = 404, body = ErrorBody)))]
pub async fn get_eligibility(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<EligibilityOut>, ApiError> {
    Ok(Json(state.eligibility(&me.caller(), id).await?))
}

/// Acknowledge a relative contraindication (physicians).
#[utoipa::path(post, path = "/patients/{id}/eligibility/acknowledgements", tag = "patients", request_body = AcknowledgeIn,
    params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 200, body = EligibilityOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn acknowledge(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: JsonBody<AcknowledgeIn>,
) -> Result<Json<EligibilityOut>, ApiError> {
    me.require(Action::AcknowledgeContraindication)?;
    let body = body.value()?;
    Ok(Json(state.acknowledge(&me.caller(), id, body).await?))
}

// ---- Dose plans ----------------------------------------------------------------------------------

/// Compute and save a draft dose plan. The patient must be eligible (relative contraindications
/// acknowledged, no absolute one).
#[utoipa::path(post, path = "/patients/{id}/plans", tag = "plans", request_body = PlanIn, params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 201, body = PlanOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_plan(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: JsonBody<PlanIn>,
) -> Result<(StatusCode, Json<PlanOut>), ApiError> {
    let body = body.value()?;
    Ok((
        StatusCode::CREATED,
        Json(state.create_plan(&me.caller(), id, body).await?),
    ))
}

/// A patient's plans.
#[utoipa::path(get, path = "/patients/{id}/plans", tag = "plans", params(("id" = Uuid, Path, description = "patient id")),
    responses((status = 200, body = [PlanOut]), (status = 404, body = ErrorBody)))]
pub async fn list_plans(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<PlanOut>>, ApiError> {
    Ok(Json(state.plans(&me.caller(), id).await?))
}

/// One plan.
#[utoipa::path(get, path = "/plans/{id}", tag = "plans", params(("id" = Uuid, Path, description = "plan id")),
    responses((status = 200, body = PlanOut), (status = 404, body = ErrorBody)))]
pub async fn get_plan(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<PlanOut>, ApiError> {
    Ok(Json(state.plan(&me.caller(), id).await?))
}

/// Approve a plan (physicians). Soft-limit breaches need an override each; hard limits never pass.
/// The approved plan is locked and never changes.
#[utoipa::path(post, path = "/plans/{id}/approve", tag = "plans", request_body = ApproveIn, params(("id" = Uuid, Path, description = "plan id")),
    responses((status = 200, body = PlanOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn approve_plan(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: JsonBody<ApproveIn>,
) -> Result<Json<PlanOut>, ApiError> {
    let body = body.value()?;
    Ok(Json(state.approve_plan(&me.caller(), id, body).await?))
}

/// This area's routes, each with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_patient, list_patients))
        .routes(routes!(get_patient))
        .routes(routes!(add_weight))
        .routes(routes!(add_height))
        .routes(routes!(add_indication))
        .routes(routes!(add_medication))
        .routes(routes!(add_condition))
        .routes(routes!(add_allergy))
        .routes(routes!(set_baseline_bp))
        .routes(routes!(get_eligibility))
        .routes(routes!(acknowledge))
        .routes(routes!(create_plan, list_plans))
        .routes(routes!(get_plan))
        .routes(routes!(approve_plan))
}
