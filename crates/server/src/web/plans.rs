//! Dose-plan pages: a new plan from the protocol library, and the plan itself with its Cp/Ce
//! prediction chart, every limit checked (value, soft and hard limit, status, source, whether it is
//! a clinic setting), the rate in mg/kg/h, mg/h and pump mL/h, and a physician's approval with one
//! reason per soft-limit breach. Hard limits never pass: the API refuses and the page says why.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use ketaflow_app::AppError;
use ketaflow_clinic::plan::LimitStatus;
use ketaflow_clinic::session::PlanStatus;
use uuid::Uuid;

use super::patients::{Builder, Field, FormView, is_page_error, num};
use super::words::for_readers;
use super::{Chrome, FormData, FormState, Posted, WebUser, error_page};
use super::{render_with_status, see_other};
use crate::error::ApiError;
use crate::policy::Action;
use crate::state::AppState;
use ketaflow_app::library::ProtocolOut;
use ketaflow_app::plans::{ApproveIn, PlanIn, PlanOut};
use ketaflow_app::records::OverrideDoc;
use ketaflow_charts::{Chart, Curve, Level};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/patients/{id}/plans/new", get(new_page).post(create))
        .route("/plans/{id}", get(plan_page))
        .route("/plans/{id}/approve", post(approve))
}

// ---- A new plan -----------------------------------------------------------------------------------

/// A protocol as the new-plan page lists it.
#[derive(Debug)]
struct ProtocolRow {
    id: String,
    name: String,
    version: u32,
    indications: String,
    dose: String,
    series: String,
    weight_basis: String,
    concentrations: String,
    model: String,
    evidence: String,
    recovery_threshold: String,
}

fn protocol_row(p: &ProtocolOut) -> ProtocolRow {
    let dose = match (p.dose_mg_per_kg, p.rate_mg_per_kg_per_h) {
        (Some(d), _) => format!("{} mg/kg over {} min", num(d, 3), num(p.duration_min, 0)),
        (None, Some(r)) => format!("{} mg/kg/h for {} min", num(r, 3), num(p.duration_min, 0)),
        (None, None) => "—".into(),
    };
    ProtocolRow {
        id: p.id.clone(),
        name: p.name.clone(),
        version: p.version,
        indications: p.indications.join(", ").replace('_', " "),
        dose,
        series: format!("{} infusions over {} days", p.series_infusions, p.series_days),
        weight_basis: p.weight_basis.clone(),
        concentrations: p
            .concentrations_mg_per_ml
            .iter()
            .map(|c| format!("{} mg/mL", num(*c, 3)))
            .collect::<Vec<_>>()
            .join(", "),
        model: p.model.clone(),
        evidence: format!("{} ({})", p.evidence_grade, for_readers(&p.evidence_source)),
        recovery_threshold: format!("{} µg/mL", num(p.recovery_threshold_ug_per_ml, 3)),
    }
}

#[derive(Template)]
#[template(path = "plan_new.html")]
struct NewPage {
    chrome: Chrome,
    banner: super::banner::PatientBanner,
    patient_id: String,
    patient_name: String,
    latest_weight: String,
    eligibility: String,
    eligible: bool,
    protocols: Vec<ProtocolRow>,
    f: FormView,
}

fn plan_form(form: &FormState, patient_id: Uuid, protocols: &[ProtocolOut], today: &str) -> FormView {
    let b = Builder::new(form, "plan");
    let mut concentrations: Vec<f64> = protocols
        .iter()
        .flat_map(|p| p.concentrations_mg_per_ml.iter().copied())
        .collect();
    concentrations.sort_by(f64::total_cmp);
    concentrations.dedup();
    let first_concentration = protocols
        .first()
        .and_then(|p| p.concentrations_mg_per_ml.first())
        .map(|c| c.to_string())
        .unwrap_or_default();
    let fields: Vec<Field> = vec![
        // No protocol is preselected: the clinician chooses one for the patient's indication.
        b.field("protocol_id", "Protocol", "select", "")
            .choices(
                std::iter::once((String::new(), "choose a protocol".to_string())).chain(
                    protocols.iter().map(|p| {
                        let for_whom = p
                            .indications
                            .iter()
                            .map(|i| i.replace('_', " "))
                            .collect::<Vec<_>>()
                            .join(", ");
                        (
                            p.id.clone(),
                            format!("{} (v{}), for {for_whom}", p.name, p.version),
                        )
                    }),
                ),
            )
            .required(),
        b.field(
            "concentration_mg_per_ml",
            "Concentration",
            "select",
            &first_concentration,
        )
        .hint("mg/mL; one of the protocol's standard concentrations")
        .choices(
            concentrations
                .iter()
                .map(|c| (c.to_string(), format!("{} mg/mL", num(*c, 3)))),
        )
        .required(),
        b.field("planned_on", "Session date", "date", today)
            .hint("YYYY-MM-DD")
            .required(),
        b.field("last_session_on", "Previous session", "date", "")
            .hint("optional; checks the days between sessions"),
        b.field("adjusted_dose_per_kg", "Adjusted dose", "number", "")
            .hint("optional; mg/kg, or mg/kg/h for rate protocols; blank = the protocol's dose")
            .range(0, 10)
            .step("any"),
    ];
    let mut view = b.form(
        format!("/patients/{patient_id}/plans/new"),
        "",
        "Compute plan",
        fields,
    );
    view.layout = "grid";
    view.open = true;
    view
}

async fn new_plan_page(
    state: &AppState,
    user: &WebUser,
    patient_id: Uuid,
    form: FormState,
    status: StatusCode,
) -> Response {
    let load = async {
        let caller = user.me.caller();
        let patient = state.patient(&caller, patient_id).await?;
        let eligibility = state.eligibility(&caller, patient_id).await?;
        let protocols = state.protocols(&caller)?;
        let banner = super::banner::load_banner(state, user, &patient).await?;
        Ok::<_, ApiError>((patient, eligibility, protocols, banner))
    };
    let (patient, eligibility, protocols, banner) = match load.await {
        Ok(loaded) => loaded,
        Err(e) => return error_page(&e),
    };
    let today = user.zone.date(user.now).to_string();
    let latest = patient.weights.iter().max_by(|a, b| a.on.cmp(&b.on));
    render_with_status(
        status,
        &NewPage {
            chrome: user.chrome("patients", format!("New dose plan · {}", patient.display_name)),
            banner,
            patient_id: patient_id.to_string(),
            patient_name: patient.display_name.clone(),
            latest_weight: latest.map_or_else(
                || "none recorded: add a weight on the chart first".into(),
                |w| format!("{} kg on {}", num(w.value, 1), w.on),
            ),
            eligible: eligibility.status == "eligible",
            eligibility: if eligibility.unacknowledged.is_empty() {
                eligibility.status.replace('_', " ")
            } else {
                format!(
                    "{}: {}",
                    eligibility.status.replace('_', " "),
                    eligibility.unacknowledged.join(", ")
                )
            },
            protocols: protocols.iter().map(protocol_row).collect(),
            f: plan_form(&form, patient_id, &protocols, &today),
        },
    )
}

async fn new_page(State(state): State<AppState>, user: WebUser, Path(id): Path<Uuid>) -> Response {
    if let Err(e) = user.me.require(Action::CreatePlan) {
        return error_page(&e);
    }
    new_plan_page(&state, &user, id, FormState::default(), StatusCode::OK).await
}

async fn create(State(state): State<AppState>, Path(id): Path<Uuid>, posted: Posted) -> Response {
    let Posted { user, form } = posted;
    let result = async {
        let body = PlanIn {
            protocol_id: form.text("protocol_id"),
            concentration_mg_per_ml: form.required_number("concentration_mg_per_ml")?,
            planned_on: form.text("planned_on"),
            last_session_on: form.optional("last_session_on"),
            adjusted_dose_per_kg: form.number("adjusted_dose_per_kg")?,
        };
        let plan = state.create_plan(&user.me.caller(), id, body).await?;
        Ok::<_, ApiError>(plan.id)
    }
    .await;
    match result {
        Ok(plan) => see_other(&format!("/plans/{plan}")),
        Err(e) if is_page_error(&e) => error_page(&e),
        Err(e) => {
            let status = e.status();
            new_plan_page(
                &state,
                &user,
                id,
                FormState::refused_named("plan", form, &e),
                status,
            )
            .await
        }
    }
}

// ---- The plan ---------------------------------------------------------------------------------------

/// One limit check as the plan's table shows it.
#[derive(Debug)]
struct CheckRow {
    limit: String,
    value: String,
    unit: String,
    soft: String,
    hard: String,
    /// "minimum" or "maximum".
    direction: &'static str,
    status: String,
    /// CSS class: okay, warn or error.
    class: &'static str,
    source: String,
    clinic_setting: bool,
}

#[derive(Template)]
#[template(path = "plan_page.html")]
struct PlanPage {
    chrome: Chrome,
    banner: super::banner::PatientBanner,
    patient_id: String,
    patient_name: String,
    status: String,
    approved: bool,
    protocol: String,
    library_version: String,
    planned_on: String,
    last_session_on: String,
    adjusted: String,
    facts: Vec<(&'static str, String)>,
    checks: Vec<CheckRow>,
    hard_breach: bool,
    soft_breaches: usize,
    prediction: Vec<(&'static str, String)>,
    warnings: Vec<String>,
    svg: String,
    approval: String,
    overrides: Vec<(String, String)>,
    approve_form: Option<FormView>,
    can_book: bool,
}

/// The prediction chart: Cp and Ce over time with the protocol's recovery threshold.
fn prediction_chart(plan: &PlanOut) -> String {
    let p = &plan.prediction;
    let recovery = p.ce_below_threshold_from_min.map_or_else(
        || "Ce never reaches it".into(),
        |m| format!("Ce below it from {} min", num(m, 0)),
    );
    Chart {
        title: format!("Predicted ketamine concentrations ({})", p.model),
        subtitle: format!(
            "{} mg over {} min at {} mL/h; peak Cp {} µg/mL at {} min, peak Ce {} µg/mL at {} min; recovery threshold {} µg/mL, {recovery}",
            num(plan.dose_mg, 1),
            num(plan.duration_min, 0),
            num(plan.pump_ml_per_h, 1),
            num(p.peak_cp_ug_per_ml, 3),
            num(p.peak_cp_at_min, 0),
            num(p.peak_ce_ug_per_ml, 3),
            num(p.peak_ce_at_min, 0),
            num(p.recovery_threshold_ug_per_ml, 3),
        ),
        y_label: "concentration (µg/mL)".into(),
        times_s: p.time_min.iter().map(|m| m * 60.0).collect(),
        curves: vec![
            Curve {
                label: "Cp (plasma)".into(),
                colour: "#1f5fa8",
                values: p.cp_ug_per_ml.clone(),
                ..Curve::default()
            },
            Curve {
                label: "Ce (effect site)".into(),
                colour: "#d9480f",
                dashed: true,
                values: p.ce_ug_per_ml.clone(),
                ..Curve::default()
            },
        ],
        levels: vec![Level {
            label: format!("recovery threshold {} µg/mL", num(p.recovery_threshold_ug_per_ml, 3)),
            colour: "#1e7a3c",
            value: p.recovery_threshold_ug_per_ml,
        }],
        ..Chart::default()
    }
    .to_svg()
}

/// The field of the reason for overriding `limit`.
fn reason_field(limit: &str) -> String {
    format!("reason_{limit}")
}

fn approve_form(form: &FormState, plan: &PlanOut) -> FormView {
    let b = Builder::new(form, "approve");
    let mut fields = plan
        .checks
        .iter()
        .filter(|c| c.status == LimitStatus::SoftBreach)
        .map(|c| {
            b.field(
                &reason_field(&c.limit),
                &format!(
                    "Reason to exceed {}: {} {} is beyond the soft limit {} {}",
                    c.limit.replace('_', " "),
                    num(c.value, 3),
                    c.unit,
                    num(c.soft, 3),
                    c.unit
                ),
                "textarea",
                "",
            )
            .hint("at least 10 characters")
            .required()
        })
        .collect::<Vec<_>>();
    if let Some(indication) = plan.indication.as_ref().filter(|i| !i.matches) {
        fields.push(
            b.field(
                "indication_override",
                &format!(
                    "Reason to use this protocol: it is for {}, and the patient's indications are {}",
                    indication.protocol_for.join(", ").replace('_', " "),
                    if indication.patient.is_empty() {
                        "none recorded".to_string()
                    } else {
                        indication.patient.join(", ").replace('_', " ")
                    }
                ),
                "textarea",
                "",
            )
            .hint("at least 10 characters")
            .required(),
        );
    }
    let mut view = b.form(
        format!("/plans/{}/approve", plan.id),
        "Approve",
        "Approve plan",
        fields,
    );
    view.layout = "";
    view.open = true;
    view.confirm = format!(
        "Approve this plan ({} mg at {} mL/h) under your name? An approved plan is locked and cannot change.",
        num(plan.dose_mg, 1),
        num(plan.pump_ml_per_h, 1)
    );
    view.intro = if view.fields.is_empty() {
        "Every limit is within its soft limit. Approval locks the plan.".into()
    } else {
        "Each soft-limit breach, and a protocol for none of the patient's indications, needs its own reason; they are recorded with your name in the audit log. Approval locks the plan."
            .into()
    };
    view
}

#[allow(clippy::too_many_lines)]
async fn show_plan(
    state: &AppState,
    user: &WebUser,
    id: Uuid,
    form: FormState,
    status: StatusCode,
) -> Response {
    let load = async {
        let plan = state.plan(&user.me.caller(), id).await?;
        let patient = state.patient(&user.me.caller(), plan.patient_id).await?;
        let banner = super::banner::load_banner(state, user, &patient).await?;
        Ok::<_, ApiError>((plan, patient, banner))
    };
    let (plan, patient, banner) = match load.await {
        Ok(loaded) => loaded,
        Err(e) => return error_page(&e),
    };
    let d = &plan;
    let p = &d.prediction;
    let approved = d.status == PlanStatus::Approved;
    let facts = vec![
        ("Total body weight", format!("{} kg", num(d.total_weight_kg, 1))),
        (
            "Dosing weight",
            format!(
                "{} kg ({} body weight)",
                num(d.dosing_weight_kg, 1),
                d.weight_basis
            ),
        ),
        (
            "Dose",
            format!(
                "{} mg ({} mg/kg dosing weight)",
                num(d.dose_mg, 1),
                num(d.dose_mg / d.dosing_weight_kg, 3)
            ),
        ),
        ("Duration", format!("{} min", num(d.duration_min, 0))),
        (
            "Rate per kg",
            format!("{} mg/kg/h", num(d.rate_mg_per_kg_per_h, 3)),
        ),
        ("Rate", format!("{} mg/h", num(d.rate_mg_per_h, 1))),
        (
            "Concentration",
            format!("{} mg/mL", num(d.concentration_mg_per_ml, 3)),
        ),
        ("Pump rate", format!("{} mL/h", num(d.pump_ml_per_h, 1))),
        ("Volume to infuse", format!("{} mL", num(d.volume_ml, 1))),
    ];
    let prediction = vec![
        ("PK model", p.model.clone()),
        (
            "Peak Cp (plasma)",
            format!(
                "{} µg/mL at {} min",
                num(p.peak_cp_ug_per_ml, 3),
                num(p.peak_cp_at_min, 0)
            ),
        ),
        (
            "Peak Ce (effect site)",
            format!(
                "{} µg/mL at {} min",
                num(p.peak_ce_ug_per_ml, 3),
                num(p.peak_ce_at_min, 0)
            ),
        ),
        (
            "Recovery threshold",
            format!("{} µg/mL (Ce)", num(p.recovery_threshold_ug_per_ml, 3)),
        ),
        (
            "Ce below the threshold from",
            p.ce_below_threshold_from_min.map_or_else(
                || "never above it".into(),
                |m| format!("{} min after the start", num(m, 0)),
            ),
        ),
    ];
    let checks: Vec<CheckRow> = d
        .checks
        .iter()
        .map(|c| CheckRow {
            limit: c.limit.replace('_', " "),
            value: num(c.value, 3),
            unit: c.unit.clone(),
            soft: num(c.soft, 3),
            hard: num(c.hard, 3),
            direction: if c.is_minimum { "minimum" } else { "maximum" },
            class: match c.status.code() {
                "within" => "okay",
                "soft_breach" => "warn",
                _ => "error",
            },
            status: c.status.code().replace('_', " "),
            source: for_readers(&c.source),
            clinic_setting: c.clinic_setting,
        })
        .collect();
    let approval = match (&d.approved_by, &d.approved_at) {
        (Some(by), Some(at)) => {
            let at = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                .map_or_else(|_| at.clone(), |t| user.zone.clock(t));
            format!(
                "Approved by {} at {at}",
                d.approved_by_name.as_deref().unwrap_or(by)
            )
        }
        _ => String::new(),
    };
    let mut warnings = d.warnings.clone();
    warnings.extend(p.warnings.iter().cloned());
    render_with_status(
        status,
        &PlanPage {
            chrome: user.chrome("patients", format!("Dose plan · {}", patient.display_name)),
            banner,
            patient_id: d.patient_id.to_string(),
            patient_name: patient.display_name.clone(),
            status: d.status.code().to_string(),
            approved,
            protocol: format!("{} (protocol v{})", d.protocol_id, d.protocol_version),
            library_version: d.library_version.clone(),
            planned_on: d.planned_on.clone(),
            last_session_on: d.last_session_on.clone().unwrap_or_else(|| "—".into()),
            adjusted: d.adjusted_dose_per_kg.map_or_else(
                || "the protocol's dose".into(),
                |a| format!("adjusted to {} per kg", num(a, 3)),
            ),
            facts,
            hard_breach: d.checks.iter().any(|c| c.status == LimitStatus::HardBreach),
            soft_breaches: d
                .checks
                .iter()
                .filter(|c| c.status == LimitStatus::SoftBreach)
                .count(),
            checks,
            prediction,
            warnings,
            svg: prediction_chart(&plan),
            approval,
            overrides: d
                .overrides
                .iter()
                .map(|o| (o.limit.replace('_', " "), o.reason.clone()))
                .collect(),
            approve_form: (!approved && !plan.locked && user.may(Action::ApprovePlan))
                .then(|| approve_form(&form, &plan)),
            can_book: user.may(Action::RunSession),
        },
    )
}

async fn plan_page(State(state): State<AppState>, user: WebUser, Path(id): Path<Uuid>) -> Response {
    show_plan(&state, &user, id, FormState::default(), StatusCode::OK).await
}

/// The overrides the approval form carries: one per soft-breached limit whose reason was filled in.
fn overrides(form: &FormData, plan: &PlanOut) -> Vec<OverrideDoc> {
    plan.checks
        .iter()
        .filter(|c| c.status == LimitStatus::SoftBreach)
        .filter_map(|c| {
            form.optional(&reason_field(&c.limit)).map(|reason| OverrideDoc {
                limit: c.limit.clone(),
                reason,
            })
        })
        .collect()
}

async fn approve(State(state): State<AppState>, Path(id): Path<Uuid>, posted: Posted) -> Response {
    let Posted { user, form } = posted;
    let result = async {
        let plan = state.plan(&user.me.caller(), id).await?;
        let body = ApproveIn {
            overrides: overrides(&form, &plan),
            indication_override: form.optional("indication_override"),
        };
        state.approve_plan(&user.me.caller(), id, body).await?;
        Ok::<_, ApiError>(())
    }
    .await;
    match result {
        Ok(()) => see_other(&format!("/plans/{id}")),
        Err(e) if is_page_error(&e) => error_page(&e),
        Err(e) => {
            let status = e.status();
            let mut refused = FormState::refused_named("approve", form, &e);
            // The domain names the limit whose override is missing or too short: put the message
            // beside that limit's reason.
            if let Some(AppError::RefusedAt {
                code: "override_needed",
                message,
                field,
            }) = e.app()
                && let Some(limit) = field.strip_prefix("overrides.")
            {
                refused.errors.insert(reason_field(limit), message.clone());
            }
            if let Some(AppError::RefusedAt { message, field, .. }) = e.app()
                && field == "indication_override"
            {
                refused.errors.insert(field.clone(), message.clone());
            }
            show_plan(&state, &user, id, refused, status).await
        }
    }
}
