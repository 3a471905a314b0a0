//! Patient pages: the list and its POSTed search, registration, and the patient's chart (intake,
//! eligibility with physicians' acknowledgements, plans, sessions, outcomes with their course,
//! long-term safety and opioid use, and the crisis information while a suicide-risk alert is open).
//!
//! Every write is a use case of the application layer, the one the JSON API calls, so the rules
//! and the audit trail are the same. A refused form is shown again with what was typed and the error next to its field; form
//! fields are named as the API's JSON fields so that the API's field errors land beside them.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use ketaflow_app::AppError;
use ketaflow_clinic::instruments::{Instrument, is_remission, is_response};
use ketaflow_clinic::mme::{NALOXONE_OFFER_MME_PER_DAY, Opioid, Route};
use ketaflow_clinic::patient::{Condition, Indication, MedicationClass};
use ketaflow_clinic::session::PlanStatus;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::words::for_readers;
use super::{Chrome, FormData, FormState, PageResult, Posted, WebUser, error_page, fixed, page_err};
use super::{render, render_with_status, see_other};
use crate::error::ApiError;
use crate::policy::Action;
use crate::state::AppState;
use ketaflow_app::booking::SessionIn;
use ketaflow_app::clinic_time::ClinicZone;
use ketaflow_app::intake::{
    AcknowledgeIn, AllergyIn, BpIn, CodeIn, HeightIn, MedicationIn, PatientIn, PatientOut, WeightIn,
};
use ketaflow_app::outcomes::{self, CRISIS_INFORMATION, LinkIn, MeasurementOut, OutcomeIn};
use ketaflow_app::safety::{OpioidDoseIn, OpioidUseIn};
use ketaflow_app::wording::WordingLibrary;
use ketaflow_charts::{Chart, Curve, Level, TimeAxis};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/patients", get(list_page))
        .route("/patients/search", post(search))
        .route("/patients/new", get(new_page).post(create))
        .route("/patients/{id}", get(chart_page))
        .route("/patients/{id}/weights", post(add_weight))
        .route("/patients/{id}/heights", post(add_height))
        .route("/patients/{id}/indications", post(add_indication))
        .route("/patients/{id}/medications", post(add_medication))
        .route("/patients/{id}/conditions", post(add_condition))
        .route("/patients/{id}/allergies", post(add_allergy))
        .route("/patients/{id}/baseline-bp", post(set_baseline_bp))
        .route("/patients/{id}/acknowledgements", post(acknowledge))
        .route("/patients/{id}/outcomes", post(record_outcome))
        .route("/patients/{id}/opioid-use", post(add_opioid_use))
        .route("/patients/{id}/sessions", post(book_session))
        .route("/patients/{id}/questionnaire-links", post(send_link))
}

// ---- Forms as data ---------------------------------------------------------------------------------

/// One choice of a select.
#[derive(Debug, Clone)]
pub(super) struct Choice {
    /// The value posted.
    pub(super) value: String,
    /// What the user reads.
    pub(super) text: String,
    /// Whether it is the current value.
    pub(super) selected: bool,
}

/// One input of a form, as `patient_form.html` renders it: a label tied to the input, the hint
/// (unit and allowed range), the typed value, and the server's error next to it.
#[derive(Debug, Clone, Default)]
pub(super) struct Field {
    /// The element id (unique on the page).
    pub(super) id: String,
    /// The posted name (the API's JSON field name).
    pub(super) name: String,
    /// The label.
    pub(super) label: String,
    /// Unit and allowed range, shown beside the label.
    pub(super) hint: String,
    /// text, number, date, datetime-local, select, textarea or hidden.
    pub(super) kind: &'static str,
    /// The value shown.
    pub(super) value: String,
    /// A select's choices.
    pub(super) options: Vec<Choice>,
    /// The lowest value the browser offers (empty: none).
    pub(super) min: String,
    /// The highest value the browser offers (empty: none).
    pub(super) max: String,
    /// The step (empty: none).
    pub(super) step: String,
    /// Whether the field is required.
    pub(super) required: bool,
    /// The server's error for this field (empty: none).
    pub(super) error: String,
}

impl Field {
    /// The hint beside the label.
    pub(super) fn hint(mut self, hint: impl Into<String>) -> Field {
        self.hint = hint.into();
        self
    }

    /// The range the browser offers (the server checks again).
    pub(super) fn range(mut self, min: impl ToString, max: impl ToString) -> Field {
        self.min = min.to_string();
        self.max = max.to_string();
        self
    }

    /// The step of a number input.
    pub(super) fn step(mut self, step: &str) -> Field {
        self.step = step.into();
        self
    }

    /// Marks the field required.
    pub(super) fn required(mut self) -> Field {
        self.required = true;
        self
    }

    /// A select's choices, (value, text); the current value is selected.
    pub(super) fn choices(mut self, choices: impl IntoIterator<Item = (String, String)>) -> Field {
        self.kind = "select";
        self.options = choices
            .into_iter()
            .map(|(value, text)| Choice {
                selected: value == self.value,
                value,
                text,
            })
            .collect();
        self
    }
}

/// A form on a page: where it posts, its fields, and the server's message when it was refused.
#[derive(Debug, Clone, Default)]
pub(super) struct FormView {
    /// The form's name on the page.
    pub(super) name: String,
    /// Heading (empty: none).
    pub(super) heading: String,
    /// Text above the fields (empty: none).
    pub(super) intro: String,
    /// Where it posts.
    pub(super) action: String,
    /// The submit button's text.
    pub(super) submit: String,
    /// The server's answer when the form was refused (empty: none).
    pub(super) message: String,
    /// The fields.
    pub(super) fields: Vec<Field>,
    /// CSS class of the fields' container: row, grid or empty.
    pub(super) layout: &'static str,
    /// A question asked before an irreversible action (empty: none).
    pub(super) confirm: String,
    /// Whether the submit button is styled as a dangerous action.
    pub(super) danger: bool,
    /// Whether the form starts open (it was refused, or it is the page's only form).
    pub(super) open: bool,
}

/// Builds the fields of one named form from the page's form state (what was typed, errors).
pub(super) struct Builder<'a> {
    state: &'a FormState,
    name: String,
}

impl<'a> Builder<'a> {
    /// A builder for the form `name`.
    pub(super) fn new(state: &'a FormState, name: &str) -> Builder<'a> {
        Builder {
            state,
            name: name.to_string(),
        }
    }

    /// A field of kind `kind`, with `default` shown unless this form was refused.
    pub(super) fn field(&self, name: &str, label: &str, kind: &'static str, default: &str) -> Field {
        let id: String = format!("{}-{name}", self.name)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        Field {
            id,
            name: name.to_string(),
            label: label.to_string(),
            kind,
            value: self.state.value_in(&self.name, name, default),
            error: self.state.error_in(&self.name, name),
            ..Field::default()
        }
    }

    /// The form around `fields`.
    pub(super) fn form(&self, action: String, heading: &str, submit: &str, fields: Vec<Field>) -> FormView {
        FormView {
            name: self.name.clone(),
            heading: heading.to_string(),
            action,
            submit: submit.to_string(),
            message: self.state.message_in(&self.name),
            open: self.state.is(&self.name),
            fields,
            layout: "row",
            ..FormView::default()
        }
    }
}

/// A `datetime-local` value (`2026-11-26T09:05`), read as the clinic's wall-clock time, as the
/// RFC 3339 UTC instant the use case takes; a time that cannot be read, or that a daylight-saving
/// change skips or repeats, is refused on its field.
pub(super) fn utc_from_form(zone: &ClinicZone, field: &str, text: &str) -> Result<String, ApiError> {
    let at = zone.parse_local(field, text)?;
    Ok(ketaflow_app::vitals::rfc3339(at))
}

fn code_choices(codes: impl IntoIterator<Item = &'static str>) -> Vec<(String, String)> {
    codes
        .into_iter()
        .map(|c| (c.to_string(), c.replace('_', " ")))
        .collect()
}

fn with_blank(text: &str, mut choices: Vec<(String, String)>) -> Vec<(String, String)> {
    choices.insert(0, (String::new(), text.to_string()));
    choices
}

/// A number with at most `decimals` decimals and no trailing zeros: 0.5, 35, 52.5.
pub(super) fn num(value: f64, decimals: usize) -> String {
    let text = fixed(value, decimals);
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

fn yes_no(value: Option<bool>) -> &'static str {
    match value {
        Some(true) => "yes",
        Some(false) => "no",
        None => "—",
    }
}

// ---- The list and search -------------------------------------------------------------------------

/// A patient in the list.
#[derive(Debug)]
struct PatientRow {
    id: String,
    name: String,
    mrn: String,
    date_of_birth: String,
    sex: String,
    latest_weight: String,
}

fn patient_row(p: &PatientOut) -> PatientRow {
    let latest = p.weights.iter().max_by(|a, b| a.on.cmp(&b.on));
    PatientRow {
        id: p.id.to_string(),
        name: p.display_name.clone(),
        mrn: p.mrn.clone().unwrap_or_else(|| "—".into()),
        date_of_birth: p.date_of_birth.clone(),
        sex: p.sex.clone(),
        latest_weight: latest.map_or_else(|| "—".into(), |w| format!("{} kg ({})", num(w.value, 1), w.on)),
    }
}

#[derive(Template)]
#[template(path = "patient_list.html")]
struct ListPage {
    chrome: Chrome,
    search: String,
    searched: bool,
    message: String,
    patients: Vec<PatientRow>,
    can_register: bool,
}

async fn list(state: AppState, user: WebUser, search: Option<String>) -> Response {
    let searched = search.is_some();
    let term = search.unwrap_or_default();
    let (status, patients, message) = match state
        .patients(&user.me.caller(), Some(term.as_str()), 200)
        .await
        .map_err(ApiError::from)
    {
        Ok(found) => (
            StatusCode::OK,
            found.iter().map(patient_row).collect(),
            String::new(),
        ),
        Err(e) if matches!(e.app(), Some(AppError::InvalidField { .. })) => {
            (e.status(), vec![], e.to_string())
        }
        Err(e) => return error_page(&e),
    };
    render_with_status(
        status,
        &ListPage {
            can_register: user.may(Action::WriteIntake),
            chrome: user.chrome("patients", "Patients"),
            search: term,
            searched,
            message,
            patients,
        },
    )
}

async fn list_page(State(state): State<AppState>, user: WebUser) -> Response {
    list(state, user, None).await
}

/// The search is a POSTed form: a name or MRN never appears in a URL, a log line or the history.
async fn search(State(state): State<AppState>, posted: Posted) -> Response {
    let term = posted.form.text("search");
    list(state, posted.user, Some(term)).await
}

// ---- Registration -------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "patient_new.html")]
struct NewPage {
    chrome: Chrome,
    f: FormView,
}

fn new_form(form: &FormState, today: Date) -> FormView {
    let b = Builder::new(form, "patient");
    let mut view = b.form(
        "/patients/new".into(),
        "",
        "Register patient",
        vec![
            b.field("display_name", "Name", "text", "")
                .hint("as the clinic shows it, 1–120 characters")
                .required(),
            b.field("mrn", "Medical record number", "text", "")
                .hint("optional, up to 40 characters"),
            b.field("date_of_birth", "Date of birth", "date", "")
                .hint("YYYY-MM-DD")
                .range("1900-01-01", today)
                .required(),
            b.field("sex", "Sex", "select", "")
                .hint("used by the pharmacokinetic models")
                .choices(with_blank(
                    "choose…",
                    vec![("female".into(), "female".into()), ("male".into(), "male".into())],
                ))
                .required(),
        ],
    );
    view.layout = "";
    view.open = true;
    view
}

async fn new_page(user: WebUser) -> PageResult {
    user.me.require(Action::WriteIntake).map_err(page_err)?;
    Ok(render(&NewPage {
        f: new_form(&FormState::default(), user.zone.date(user.now)),
        chrome: user.chrome("patients", "Register a patient"),
    }))
}

async fn create(State(state): State<AppState>, posted: Posted) -> Response {
    let Posted { user, form } = posted;
    let body = PatientIn {
        display_name: form.text("display_name"),
        mrn: form.optional("mrn"),
        date_of_birth: form.text("date_of_birth"),
        sex: form.text("sex"),
    };
    match state
        .create_patient(&user.me.caller(), body)
        .await
        .map_err(ApiError::from)
    {
        Ok(p) => see_other(&format!("/patients/{}", p.id)),
        Err(e) if is_page_error(&e) => error_page(&e),
        Err(e) => render_with_status(
            e.status(),
            &NewPage {
                f: new_form(
                    &FormState::refused_named("patient", form, &e),
                    user.zone.date(user.now),
                ),
                chrome: user.chrome("patients", "Register a patient"),
            },
        ),
    }
}

/// Errors that are not about the form (not allowed, no such record, a failure inside): an error
/// page rather than the form again.
pub(super) fn is_page_error(e: &ApiError) -> bool {
    matches!(
        e.app(),
        Some(
            AppError::Forbidden { .. }
                | AppError::NotFound { .. }
                | AppError::Unauthenticated
                | AppError::PasswordChangeRequired
                | AppError::Internal(_)
                | AppError::CorruptRecord { .. }
        )
    )
}

// ---- The chart ----------------------------------------------------------------------------------

/// A finding of the eligibility screen.
#[derive(Debug)]
struct FindingRow {
    severity: String,
    /// CSS class for the severity: error, warn or okay.
    class: &'static str,
    code: String,
    message: String,
    source: String,
    clinic_setting: bool,
    acknowledgement: String,
}

#[derive(Debug)]
struct PlanRow {
    id: String,
    planned_on: String,
    protocol: String,
    dose: String,
    pump: String,
    status: String,
    approved: bool,
}

#[derive(Debug)]
struct SessionRow {
    id: String,
    scheduled_for: String,
    chair: String,
    state: &'static str,
    given: String,
}

#[derive(Debug)]
struct OutcomeRow {
    answered_at: String,
    instrument: String,
    context: String,
    total: String,
    band: String,
    subscores: String,
    flags: String,
    alarming: bool,
}

#[derive(Debug)]
struct TrajectoryView {
    instrument: String,
    baseline: String,
    /// Which score is the baseline and why.
    baseline_why: String,
    latest: String,
    change: String,
    response: &'static str,
    remission: &'static str,
    clinically_important: &'static str,
    first_response: String,
    svg: String,
}

#[derive(Debug)]
struct ExposureRow {
    window: &'static str,
    infusions: usize,
    mg: String,
    mg_per_kg: String,
}

#[derive(Debug)]
struct FlagRow {
    code: String,
    detail: String,
    due: String,
    overdue: bool,
    source: String,
    clinic_setting: bool,
}

/// One measurement of the schedule as the chart shows it.
#[derive(Debug)]
pub(super) struct ScheduleRow {
    pub(super) occasion: String,
    pub(super) instruments: String,
    pub(super) due: String,
    pub(super) window: String,
    pub(super) status: &'static str,
    /// CSS class of the status badge.
    pub(super) class: &'static str,
    pub(super) done: String,
    /// The instrument a link may be sent for (due or overdue, self-report), if any.
    pub(super) send: Option<String>,
}

/// A measurement as a chart or worklist row.
pub(super) fn schedule_row(zone: &ClinicZone, m: &MeasurementOut) -> ScheduleRow {
    ScheduleRow {
        occasion: match (m.occasion, m.infusion, m.follow_up_days) {
            ("pre_infusion", Some(n), _) => format!("Before infusion {n}"),
            ("follow_up", _, Some(d)) => format!("Follow-up, day {d} after the last infusion"),
            _ => "Baseline (before the first infusion)".into(),
        },
        instruments: m
            .instruments
            .iter()
            .map(|c| instrument_name(c))
            .collect::<Vec<_>>()
            .join(" or "),
        due: zone.clock(m.due_at),
        window: format!(
            "{} to {}",
            zone.clock(m.opens_at),
            m.closes_at
                .map_or_else(|| "the infusion's start".to_string(), |t| zone.clock(t))
        ),
        status: m.status,
        class: match m.status {
            "done" => "okay",
            "due" => "warn",
            "overdue" | "missed" => "error",
            _ => "",
        },
        done: m
            .done_by
            .as_ref()
            .map(|d| {
                format!(
                    "{} {} points, {}",
                    instrument_name(&d.instrument),
                    num(d.total, 1),
                    zone.clock(d.answered_at)
                )
            })
            .unwrap_or_default(),
        send: matches!(m.status, "due" | "overdue")
            .then(|| m.self_report.first().map(|c| (*c).to_string()))
            .flatten(),
    }
}

#[derive(Debug)]
struct AlertRow {
    raised_at: String,
    reason: String,
}

#[derive(Template)]
#[template(path = "patient_chart.html")]
struct ChartPage {
    chrome: Chrome,
    banner: super::banner::PatientBanner,
    /// (substance, reaction, severity, recorded on).
    allergies: Vec<(String, String, String, String)>,
    id: String,
    name: String,
    mrn: String,
    date_of_birth: String,
    age: String,
    sex: String,
    weights: Vec<(String, String)>,
    heights: Vec<(String, String)>,
    indications: Vec<(String, String, String)>,
    medications: Vec<(String, String, String)>,
    conditions: Vec<String>,
    baseline_bp: String,
    eligibility_status: String,
    eligibility_class: &'static str,
    findings: Vec<FindingRow>,
    ack_forms: Vec<FormView>,
    plans: Vec<PlanRow>,
    can_plan: bool,
    sessions: Vec<SessionRow>,
    outcomes: Vec<OutcomeRow>,
    trajectories: Vec<TrajectoryView>,
    exposures: Vec<ExposureRow>,
    flags: Vec<FlagRow>,
    mme_table: String,
    mme_rows: Vec<(String, String)>,
    mme_summary: String,
    /// The latest day's MME flags: (code, detail, source).
    mme_flags: Vec<(String, String, String)>,
    mme_svg: String,
    open_alerts: Vec<AlertRow>,
    schedule: Vec<ScheduleRow>,
    schedule_note: String,
    can_send: bool,
    /// A questionnaire link just created: (path, expiry), shown once.
    new_link: Option<(String, String)>,
    /// Why a link was refused.
    link_error: String,
    crisis_information: &'static str,
    intake_forms: Vec<FormView>,
    outcome_forms: Vec<FormView>,
    opioid_form: Option<FormView>,
    session_form: Option<FormView>,
}

/// The instruments recorded through item-by-item forms, in the order the chart offers them.
const ITEM_INSTRUMENTS: [Instrument; 9] = [
    Instrument::Phq9,
    Instrument::Gad7,
    Instrument::PainNrs,
    Instrument::Pcl5,
    Instrument::Madrs,
    Instrument::QidsSr16,
    Instrument::BpiShortForm,
    Instrument::Fiqr,
    Instrument::CrpsSeverityScore,
];

fn instrument_name(code: &str) -> &'static str {
    match code {
        "phq9" => "PHQ-9 (depression)",
        "gad7" => "GAD-7 (anxiety)",
        "pain_nrs" => "Pain NRS",
        "pcl5" => "PCL-5 (PTSD)",
        "madrs" => "MADRS (depression, clinician-rated)",
        "qids_sr16" => "QIDS-SR16 (depression)",
        "bpi_sf" => "BPI short form (pain)",
        "fiqr" => "FIQR (fibromyalgia)",
        "crps_css" => "CRPS Severity Score",
        "cssrs_screener" => "C-SSRS screener",
        _ => "unknown instrument",
    }
}

fn item_label(wording: &WordingLibrary, instrument: Instrument, item: usize) -> String {
    match wording.get(instrument.code()).and_then(|w| w.items.get(item - 1)) {
        Some(t) => format!("{item}. {t}"),
        None => format!("Item {item}"),
    }
}

fn outcome_form(form: &FormState, id: Uuid, instrument: Instrument, wording: &WordingLibrary) -> FormView {
    let code = instrument.code();
    let b = Builder::new(form, &format!("outcome_{code}"));
    let (items, max) = instrument.items();
    let mut fields = vec![
        b.field("instrument", "Instrument", "hidden", code),
        b.field("context", "Context", "select", "follow_up")
            .choices(code_choices([
                "screening",
                "baseline",
                "pre_infusion",
                "follow_up",
            ]))
            .required(),
        b.field("answered_at", "Answered at", "datetime-local", "")
            .hint("clinic time; blank = now"),
    ];
    for i in 1..=items {
        fields.push(
            b.field(
                &format!("item{i}"),
                &item_label(wording, instrument, i),
                "number",
                "",
            )
            .hint(format!("0–{max}"))
            .range(0, max)
            .step("1")
            .required(),
        );
    }
    let mut view = b.form(
        format!("/patients/{id}/outcomes"),
        instrument_name(code),
        &format!("Record {}", instrument_name(code)),
        fields,
    );
    view.layout = "grid";
    view.intro = match wording.get(code) {
        Some(w) if !w.anchors.is_empty() => {
            let answers: Vec<String> = w
                .anchors
                .iter()
                .enumerate()
                .map(|(n, a)| format!("{n} = {a}"))
                .collect();
            format!(
                "{} Score each item as the patient answered: {}.",
                w.instruction,
                answers.join(", ")
            )
        }
        Some(w) => w.instruction.clone(),
        None => ketaflow_app::wording::licence_note(code).map_or_else(
            || format!("{items} items, each scored 0–{max}; the total is computed by the server."),
            |note| format!("{note} {items} items, each scored 0–{max}; the total is computed by the server."),
        ),
    };
    view
}

#[allow(clippy::too_many_lines)]
fn intake_forms(form: &FormState, id: Uuid, today: &str) -> Vec<FormView> {
    let action = |thing: &str| format!("/patients/{id}/{thing}");
    let mut forms = Vec::new();

    let b = Builder::new(form, "weight");
    forms.push(b.form(
        action("weights"),
        "Add a weight",
        "Add weight",
        vec![
            b.field("weight_kg", "Weight", "number", "")
                .hint("kg, 2–350")
                .range(2, 350)
                .step("0.1")
                .required(),
            b.field("on", "Measured on", "date", today).range("1900-01-01", today).required(),
        ],
    ));

    let b = Builder::new(form, "height");
    forms.push(b.form(
        action("heights"),
        "Add a height",
        "Add height",
        vec![
            b.field("height_cm", "Height", "number", "")
                .hint("cm, 40–250")
                .range(40, 250)
                .step("0.1")
                .required(),
            b.field("on", "Measured on", "date", today).range("1900-01-01", today).required(),
        ],
    ));

    let b = Builder::new(form, "indication");
    forms.push(b.form(
        action("indications"),
        "Add an indication",
        "Add indication",
        vec![
                b.field("code", "Indication", "select", "")
                    .choices(with_blank(
                        "choose…",
                        code_choices(Indication::ALL.map(Indication::code)),
                    ))
                    .required(),
            ],
    ));

    let b = Builder::new(form, "medication");
    forms.push(b.form(
        action("medications"),
        "Add a current medication",
        "Add medication",
        vec![
            b.field("name", "Drug", "text", "").hint("1–80 characters").required(),
            b.field("class", "Screening class", "select", "")
                .choices(with_blank(
                    "choose…",
                    code_choices(MedicationClass::ALL.map(MedicationClass::code)),
                ))
                .required(),
            b.field("daily_dose_mg", "Daily dose", "number", "")
                .hint("mg/day, 0–100000; needed for opioids")
                .range(0, 100_000)
                .step("any"),
        ],
    ));

    let b = Builder::new(form, "condition");
    forms.push(b.form(
        action("conditions"),
        "Add a history condition",
        "Add condition",
        vec![
            b.field("code", "Condition", "select", "")
                .choices(with_blank(
                    "choose…",
                    code_choices(Condition::ALL.map(Condition::code)),
                ))
                .required(),
        ],
    ));

    let b = Builder::new(form, "allergy");
    forms.push(b.form(
        action("allergies"),
        "Add an allergy",
        "Add allergy",
        vec![
            b.field("substance", "Substance", "text", "")
                .hint("1–80 characters, as the patient or their record names it")
                .required(),
            b.field("reaction", "Reaction", "text", "")
                .hint("1–200 characters, e.g. hives, anaphylaxis")
                .required(),
            b.field("severity", "Severity", "select", "")
                .choices(with_blank(
                    "choose…",
                    code_choices(ketaflow_clinic::patient::AllergySeverity::ALL.map(|s| s.code())),
                ))
                .required(),
        ],
    ));

    let b = Builder::new(form, "bp");
    forms.push(b.form(
        action("baseline-bp"),
        "Set the baseline blood pressure",
        "Set baseline BP",
        vec![
            b.field("systolic_mmhg", "Systolic", "number", "")
                .hint("mmHg, 50–300")
                .range(50, 300)
                .step("1")
                .required(),
            b.field("diastolic_mmhg", "Diastolic", "number", "")
                .hint("mmHg, 20–200, below systolic")
                .range(20, 200)
                .step("1")
                .required(),
            b.field("on", "Measured on", "date", today).range("1900-01-01", today).required(),
        ],
    ));
    forms
}

/// How many opioid rows the opioid-use form offers (a day with more is rare; record them all).
const OPIOID_ROWS: usize = 3;

/// How often, as the form offers it: (value, label). `tN` is N times a day, `hN` every N hours.
const OPIOID_FREQUENCIES: [(&str, &str); 10] = [
    ("t1", "once a day"),
    ("t2", "twice a day"),
    ("t3", "3 times a day"),
    ("t4", "4 times a day"),
    ("h4", "every 4 h"),
    ("h6", "every 6 h"),
    ("h8", "every 8 h"),
    ("h12", "every 12 h"),
    ("h72", "every 72 h"),
    ("patch", "patch (dose in µg/h)"),
];

fn opioid_form(form: &FormState, id: Uuid, today: &str) -> FormView {
    let b = Builder::new(form, "opioid");
    let mut fields = vec![
        b.field("on", "Day", "date", today)
            .range("1900-01-01", today)
            .required(),
    ];
    let opioids = with_blank("none", code_choices(Opioid::ALL.map(Opioid::code)));
    let routes = code_choices(Route::ALL.map(Route::code));
    let frequencies: Vec<(String, String)> = OPIOID_FREQUENCIES
        .iter()
        .map(|(v, t)| ((*v).to_string(), (*t).to_string()))
        .collect();
    for i in 1..=OPIOID_ROWS {
        fields.push(
            b.field(&format!("opioid_{i}"), &format!("Opioid {i}"), "select", "")
                .choices(opioids.clone()),
        );
        fields.push(
            b.field(&format!("dose_{i}"), &format!("Dose {i}"), "number", "")
                .hint("mg per dose; µg/h for a patch")
                .range(0, 100_000)
                .step("any"),
        );
        fields.push(
            b.field(
                &format!("frequency_{i}"),
                &format!("How often {i}"),
                "select",
                "t1",
            )
            .choices(frequencies.clone()),
        );
        fields.push(
            b.field(&format!("route_{i}"), &format!("Route {i}"), "select", "oral")
                .choices(routes.clone()),
        );
    }
    let mut view = b.form(
        format!("/patients/{id}/opioid-use"),
        "Record opioid use",
        "Record opioid use",
        fields,
    );
    view.intro = "Every opioid taken that day, as prescribed (\"10 mg every 6 h, oral\"); leave all rows at \
                  \"none\" to record a day without opioids. The server converts to morphine milligram \
                  equivalents per day (CDC 2022) and flags naloxone at 50 MME/day or more, buprenorphine \
                  and methadone."
        .into();
    view.layout = "grid";
    view
}

/// The API names a dose's fault `doses[k].<field>`, k counting only the rows filled in; the form
/// shows it under that row's own field (`dose_2`, `route_3`).
fn opioid_error_on_row(error: ApiError, rows: &[usize]) -> ApiError {
    let ApiError::App(AppError::InvalidField {
        field,
        value,
        allowed,
    }) = error
    else {
        return error;
    };
    let placed = field
        .strip_prefix("doses[")
        .and_then(|rest| rest.split_once("]."))
        .and_then(|(k, leaf)| Some((rows.get(k.parse::<usize>().ok()?)?, leaf)))
        .map(|(row, leaf)| {
            let name = match leaf {
                "dose_mg" | "patch_ug_per_h" => "dose",
                "every_hours" | "times_per_day" => "frequency",
                other => other,
            };
            format!("{name}_{row}")
        });
    ApiError::App(AppError::InvalidField {
        field: placed.unwrap_or(field),
        value,
        allowed,
    })
}

fn session_form(
    form: &FormState,
    id: Uuid,
    plans: &[PlanRow],
    zone: &ClinicZone,
    now: OffsetDateTime,
) -> FormView {
    let b = Builder::new(form, "session");
    let default_plan = plans
        .iter()
        .find(|p| p.approved)
        .or(plans.first())
        .map(|p| p.id.clone())
        .unwrap_or_default();
    let default_time = zone.input_value(now + time::Duration::minutes(30));
    b.form(
        format!("/patients/{id}/sessions"),
        "Book a session",
        "Book session",
        vec![
            b.field("plan_id", "Dose plan", "select", &default_plan)
                .hint("it must be approved before the infusion starts")
                .choices(plans.iter().map(|p| {
                    (
                        p.id.clone(),
                        format!("{} · {} · {} · {}", p.planned_on, p.protocol, p.dose, p.status),
                    )
                }))
                .required(),
            b.field("chair", "Chair", "text", "")
                .hint("1–40 characters")
                .required(),
            b.field("scheduled_for", "Scheduled for", "datetime-local", &default_time)
                .hint(format!("clinic time, {}", zone.name()))
                .required(),
        ],
    )
}

fn ack_form(form: &FormState, id: Uuid, code: &str, message: &str) -> FormView {
    let b = Builder::new(form, &format!("ack_{code}"));
    let mut view = b.form(
        format!("/patients/{id}/acknowledgements"),
        &format!("Acknowledge {code}"),
        "Acknowledge",
        vec![
            b.field("code", "Finding", "hidden", code),
            b.field("reason", "Why treatment goes ahead", "textarea", "")
                .hint("at least 10 characters; recorded with your name")
                .required(),
        ],
    );
    view.intro = message.to_string();
    view.layout = "";
    view.confirm = format!("Acknowledge {code} under your name? This is recorded in the audit log.");
    view
}

/// Days from `from` to `to`, in seconds (for a chart's time axis).
fn seconds_between(from: OffsetDateTime, to: OffsetDateTime) -> f64 {
    (to - from).as_seconds_f64()
}

fn trajectory_view(zone: &ClinicZone, t: &outcomes::TrajectoryOut) -> TrajectoryView {
    let instrument = ITEM_INSTRUMENTS.into_iter().find(|i| i.code() == t.instrument);
    let points: Vec<(OffsetDateTime, f64)> = t
        .series
        .iter()
        .filter_map(|(at, total)| {
            OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                .ok()
                .map(|at| (at, *total))
        })
        .collect();
    let origin = points.first().map_or(t.latest_at, |p| p.0);
    let mut levels = Vec::new();
    if let Some(baseline) = t.baseline.filter(|_| t.response.is_some()) {
        // The highest whole total that is a response (totals of these scales are whole numbers).
        let mut at = baseline.floor();
        while at >= 0.0 && !is_response(baseline, at) {
            at -= 1.0;
        }
        if at >= 0.0 {
            levels.push(Level {
                label: format!(
                    "response ≤ {} (≥ 50 % below baseline {})",
                    num(at, 1),
                    num(baseline, 1)
                ),
                colour: "#1e7a3c",
                value: at,
            });
        }
    }
    let baseline = match t.baseline.zip(t.baseline_at) {
        Some((total, at)) => format!("{} points ({})", num(total, 1), zone.clock(at)),
        None => "none".to_string(),
    };
    if let Some(i) = instrument
        && is_remission(i, 0.0).is_some()
    {
        // The highest whole total that is a remission for this instrument.
        let (items, max) = i.items();
        let top = (items as u32 * u32::from(max)) as f64;
        let mut at = 0.0;
        while at < top && is_remission(i, at + 1.0) == Some(true) {
            at += 1.0;
        }
        levels.push(Level {
            label: format!("remission ≤ {}", num(at, 1)),
            colour: "#5a3fa0",
            value: at,
        });
    }
    let name = instrument_name(t.instrument);
    let chart = Chart {
        title: format!("{name}: total over the course"),
        subtitle: format!(
            "baseline {baseline}, latest {} on {}",
            num(t.latest, 1),
            zone.clock(t.latest_at)
        ),
        y_label: format!("{name} total (points)"),
        times_s: points.iter().map(|p| seconds_between(origin, p.0)).collect(),
        time_axis: TimeAxis::Days,
        curves: vec![Curve {
            label: "total".into(),
            colour: "#1f5fa8",
            points: true,
            values: points.iter().map(|p| p.1).collect(),
            ..Curve::default()
        }],
        bands: vec![],
        levels,
    };
    TrajectoryView {
        instrument: name.to_string(),
        baseline,
        baseline_why: t.baseline_why.clone(),
        latest: format!("{} points ({})", num(t.latest, 1), zone.clock(t.latest_at)),
        change: match (t.change, t.change_percent) {
            (Some(c), Some(p)) => format!("{} points ({} %)", num(c, 1), num(p, 1)),
            (Some(c), None) => format!("{} points", num(c, 1)),
            (None, _) => "—".to_string(),
        },
        response: yes_no(t.response),
        remission: yes_no(t.remission),
        clinically_important: yes_no(t.clinically_important),
        first_response: t
            .hours_to_first_response
            .map_or_else(|| "—".into(), |h| format!("{} h", num(h, 1))),
        svg: chart.to_svg(),
    }
}

fn mme_chart(series: &[(String, f64)], table: &str) -> String {
    let dates: Vec<(Date, f64)> = series
        .iter()
        .filter_map(|(on, v)| {
            Date::parse(on, time::macros::format_description!("[year]-[month]-[day]"))
                .ok()
                .map(|d| (d, *v))
        })
        .collect();
    let Some(first) = dates.first().map(|d| d.0) else {
        return String::new();
    };
    Chart {
        title: "Opioid use: morphine milligram equivalents per day".into(),
        subtitle: format!("conversion: {table}"),
        y_label: "MME (mg/day)".into(),
        times_s: dates.iter().map(|d| (d.0 - first).as_seconds_f64()).collect(),
        time_axis: TimeAxis::Days,
        curves: vec![Curve {
            label: "MME/day".into(),
            colour: "#9a6400",
            points: true,
            values: dates.iter().map(|d| d.1).collect(),
            ..Curve::default()
        }],
        bands: vec![],
        levels: vec![Level {
            label: format!("{NALOXONE_OFFER_MME_PER_DAY} MME/day: offer naloxone (CDC 2022 Rec. 8)"),
            colour: "#b3261e",
            value: NALOXONE_OFFER_MME_PER_DAY,
        }],
    }
    .to_svg()
}

async fn chart(state: &AppState, user: &WebUser, id: Uuid, form: FormState, status: StatusCode) -> Response {
    match load_chart(state, user, id, form).await {
        Ok(page) => render_with_status(status, &page),
        Err(e) => error_page(&e),
    }
}

#[allow(clippy::too_many_lines)]
async fn load_chart(
    state: &AppState,
    user: &WebUser,
    id: Uuid,
    form: FormState,
) -> Result<ChartPage, ApiError> {
    let caller = user.me.caller();
    let patient = state.patient(&caller, id).await?;
    let eligibility = state.eligibility(&caller, id).await?;
    let plans = state.plans(&caller, id).await?;
    let session_list = state.sessions(&caller, false, Some(id)).await?;
    let outcome_list = state.outcomes(&caller, id).await?;
    let schedule = state.schedule(&caller, id).await?;
    let safety_out = state.safety(&caller, id).await?;
    let alerts = state.risk_alerts(&caller, true).await?;

    let (zone, now) = (&user.zone, user.now);
    let today = zone.date(now).to_string();
    let doc = &patient;
    let born = ketaflow_app::plans::parse_date("date_of_birth", &doc.date_of_birth)?;
    let age = ketaflow_clinic::patient::age_on(born, zone.date(now)).get();

    let mut weights: Vec<_> = doc.weights.clone();
    weights.sort_by(|a, b| b.on.cmp(&a.on));
    let mut heights: Vec<_> = doc.heights.clone();
    heights.sort_by(|a, b| b.on.cmp(&a.on));

    let findings = eligibility
        .findings
        .iter()
        .map(|f| FindingRow {
            class: match f.severity.as_str() {
                "absolute" => "error",
                "relative" if f.acknowledged_by.is_none() => "warn",
                "relative" => "okay",
                _ => "warn",
            },
            severity: f.severity.clone(),
            code: f.code.clone(),
            message: f.message.clone(),
            source: for_readers(&f.source),
            clinic_setting: f.clinic_setting,
            acknowledgement: match (&f.acknowledged_by, &f.acknowledgement_reason) {
                (Some(by), Some(reason)) => format!(
                    "acknowledged by {}: {reason}",
                    f.acknowledged_by_name.as_deref().unwrap_or(by)
                ),
                _ => String::new(),
            },
        })
        .collect();
    let ack_forms = if user.may(Action::AcknowledgeContraindication) {
        eligibility
            .findings
            .iter()
            .filter(|f| f.severity == "relative" && f.acknowledged_by.is_none())
            .map(|f| ack_form(&form, id, &f.code, &f.message))
            .collect()
    } else {
        vec![]
    };

    let plan_rows: Vec<PlanRow> = plans
        .iter()
        .map(|p| PlanRow {
            id: p.id.to_string(),
            planned_on: p.planned_on.clone(),
            protocol: p.protocol_id.clone(),
            dose: format!(
                "{} mg ({} mg/kg)",
                num(p.dose_mg, 1),
                num(p.dose_mg / p.dosing_weight_kg, 3)
            ),
            pump: format!("{} mL/h", num(p.pump_ml_per_h, 1)),
            status: p.status.code().to_string(),
            approved: p.status == PlanStatus::Approved,
        })
        .collect();

    let session_rows = session_list
        .iter()
        .map(|s| SessionRow {
            id: s.id.to_string(),
            scheduled_for: zone.clock(s.scheduled_for),
            chair: s.chair.clone(),
            state: s.state,
            given: format!("{} mg", num(s.given_mg, 1)),
        })
        .collect();

    let outcome_rows = outcome_list
        .outcomes
        .iter()
        .map(|o| OutcomeRow {
            answered_at: zone.clock(o.doc.answered_at),
            instrument: instrument_name(&o.doc.instrument).to_string(),
            context: o.doc.context.replace('_', " "),
            total: if o.doc.instrument == "cssrs_screener" {
                format!("risk level {} of 3", num(o.doc.total, 0))
            } else {
                format!("{} points", num(o.doc.total, 1))
            },
            band: o.doc.band.clone().unwrap_or_else(|| "—".into()),
            subscores: o
                .doc
                .subscores
                .iter()
                .map(|(n, v)| format!("{n} {}", num(*v, 1)))
                .collect::<Vec<_>>()
                .join(", "),
            flags: o.doc.flags.join("; "),
            alarming: o.doc.risk_alert_id.is_some(),
        })
        .collect();
    let trajectories = outcome_list
        .trajectories
        .iter()
        .map(|t| trajectory_view(zone, t))
        .collect();

    let exposures = [
        ("last 30 days", &safety_out.last_30_days),
        ("last 12 months", &safety_out.last_12_months),
        ("lifetime (recorded here)", &safety_out.lifetime),
    ]
    .into_iter()
    .map(|(window, e)| ExposureRow {
        window,
        infusions: e.infusions,
        mg: format!("{} mg", num(e.mg, 1)),
        mg_per_kg: format!("{} mg/kg", num(e.mg_per_kg, 2)),
    })
    .collect();
    let flags = safety_out
        .flags
        .iter()
        .map(|f| FlagRow {
            code: f.code.to_string(),
            detail: f.detail.clone(),
            overdue: f.due <= today,
            due: f.due.clone(),
            source: for_readers(f.source),
            clinic_setting: f.clinic_setting,
        })
        .collect();
    let o = &safety_out.opioids;
    let mut mme_summary = match (o.baseline, o.latest, o.change) {
        (Some(b), Some(l), Some(c)) => format!(
            "first recorded {} MME/day, latest {} MME/day, change {} MME/day",
            num(b, 1),
            num(l, 1),
            num(c, 1)
        ),
        _ => String::new(),
    };
    if !o.latest_complete {
        mme_summary
            .push_str("; the latest day holds a dose the table cannot convert, so its total is too low");
    }

    let open_alerts: Vec<AlertRow> = alerts
        .iter()
        .filter(|a| a.doc.patient_id == id)
        .map(|a| AlertRow {
            raised_at: zone.clock(a.doc.raised_at),
            reason: a.doc.reason.clone(),
        })
        .collect();

    let writes = user.may(Action::WriteIntake);
    Ok(ChartPage {
        banner: super::banner::patient_banner(zone, now, &patient, &alerts),
        allergies: patient
            .allergies
            .iter()
            .map(|a| {
                (
                    a.substance.clone(),
                    a.reaction.clone(),
                    a.severity.clone(),
                    a.recorded_on.clone(),
                )
            })
            .collect(),
        chrome: user.chrome("patients", doc.display_name.clone()),
        id: id.to_string(),
        name: doc.display_name.clone(),
        mrn: doc.mrn.clone().unwrap_or_else(|| "—".into()),
        date_of_birth: doc.date_of_birth.clone(),
        age: format!("{} years", num(age, 0)),
        sex: doc.sex.clone(),
        weights: weights
            .iter()
            .map(|w| (w.on.clone(), format!("{} kg", num(w.value, 1))))
            .collect(),
        heights: heights
            .iter()
            .map(|h| (h.on.clone(), format!("{} cm", num(h.value, 1))))
            .collect(),
        indications: doc
            .indications
            .iter()
            .map(|i| {
                (
                    i.code.replace('_', " "),
                    i.evidence_grade.clone(),
                    for_readers(&i.evidence_source),
                )
            })
            .collect(),
        medications: doc
            .medications
            .iter()
            .map(|m| {
                (
                    m.name.clone(),
                    m.class.replace('_', " "),
                    m.daily_dose_mg
                        .map_or_else(|| "—".into(), |d| format!("{} mg/day", num(d, 2))),
                )
            })
            .collect(),
        conditions: doc.conditions.iter().map(|c| c.replace('_', " ")).collect(),
        baseline_bp: doc.baseline_bp.as_ref().map_or_else(
            || "not recorded".into(),
            |b| {
                format!(
                    "{}/{} mmHg ({})",
                    num(b.systolic_mmhg, 0),
                    num(b.diastolic_mmhg, 0),
                    b.on
                )
            },
        ),
        eligibility_class: match eligibility.status.as_str() {
            "eligible" => "okay",
            "needs_acknowledgement" => "warn",
            _ => "error",
        },
        eligibility_status: eligibility.status.replace('_', " "),
        findings,
        ack_forms,
        can_plan: user.may(Action::CreatePlan),
        sessions: session_rows,
        outcomes: outcome_rows,
        trajectories,
        exposures,
        flags,
        mme_table: o.table.to_string(),
        mme_rows: o
            .series
            .iter()
            .rev()
            .map(|(on, v)| (on.clone(), format!("{} MME/day", num(*v, 1))))
            .collect(),
        mme_summary,
        mme_flags: o
            .latest_flags
            .iter()
            .map(|f| (f.code.replace('_', " "), f.detail.clone(), for_readers(&f.source)))
            .collect(),
        mme_svg: mme_chart(&o.series, o.table),
        crisis_information: CRISIS_INFORMATION,
        open_alerts,
        schedule: schedule
            .measurements
            .iter()
            .map(|m| schedule_row(zone, m))
            .collect(),
        schedule_note: match &schedule.protocol_id {
            Some(p) => format!(
                "Protocol {p}: follow-ups {} days after the last infusion; a score counts from {} days before its due time ({} days after, for follow-ups){}.",
                schedule
                    .follow_up_days
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                schedule.window_early_days,
                schedule.window_late_days,
                if schedule.clinic_setting {
                    " (clinic settings)"
                } else {
                    ""
                }
            ),
            None => "Nothing is scheduled until a session is booked.".into(),
        },
        can_send: writes,
        new_link: None,
        link_error: form.message_in("link"),
        intake_forms: if writes {
            intake_forms(&form, id, &today)
        } else {
            vec![]
        },
        outcome_forms: if writes {
            ITEM_INSTRUMENTS
                .into_iter()
                .map(|i| outcome_form(&form, id, i, &state.settings.wording))
                .collect()
        } else {
            vec![]
        },
        opioid_form: writes.then(|| opioid_form(&form, id, &today)),
        session_form: (user.may(Action::RunSession) && !plan_rows.is_empty())
            .then(|| session_form(&form, id, &plan_rows, zone, now)),
        plans: plan_rows,
    })
}

async fn chart_page(State(state): State<AppState>, user: WebUser, Path(id): Path<Uuid>) -> Response {
    chart(&state, &user, id, FormState::default(), StatusCode::OK).await
}

/// Answers a chart form's post: back to the chart on success; the chart again with the form as
/// typed and the error next to its field when the API refused.
async fn answer(
    state: &AppState,
    user: &WebUser,
    id: Uuid,
    name: &str,
    anchor: &str,
    form: FormData,
    result: Result<(), ApiError>,
) -> Response {
    match result {
        Ok(()) => see_other(&format!("/patients/{id}#{anchor}")),
        Err(e) if is_page_error(&e) => error_page(&e),
        Err(e) => {
            chart(
                state,
                user,
                id,
                FormState::refused_named(name, form, &e),
                e.status(),
            )
            .await
        }
    }
}

async fn add_weight(State(state): State<AppState>, Path(id): Path<Uuid>, posted: Posted) -> Response {
    let Posted { user, form } = posted;
    let result = async {
        let body = WeightIn {
            weight_kg: form.required_number("weight_kg")?,
            on: form.text("on"),
        };
        state.add_weight(&user.me.caller(), id, body).await?;
        Ok(())
    }
    .await;
    answer(&state, &user, id, "weight", "intake", form, result).await
}

async fn add_height(State(state): State<AppState>, Path(id): Path<Uuid>, posted: Posted) -> Response {
    let Posted { user, form } = posted;
    let result = async {
        let body = HeightIn {
            height_cm: form.required_number("height_cm")?,
            on: form.text("on"),
        };
        state.add_height(&user.me.caller(), id, body).await?;
        Ok(())
    }
    .await;
    answer(&state, &user, id, "height", "intake", form, result).await
}

async fn add_indication(State(state): State<AppState>, Path(id): Path<Uuid>, posted: Posted) -> Response {
    let Posted { user, form } = posted;
    let body = CodeIn {
        code: form.text("code"),
    };
    let result = state
        .add_indication(&user.me.caller(), id, body)
        .await
        .map(|_| ())
        .map_err(ApiError::from);
    answer(&state, &user, id, "indication", "intake", form, result).await
}

async fn add_medication(State(state): State<AppState>, Path(id): Path<Uuid>, posted: Posted) -> Response {
    let Posted { user, form } = posted;
    let result = async {
        let body = MedicationIn {
            name: form.text("name"),
            class: form.text("class"),
            daily_dose_mg: form.number("daily_dose_mg")?,
        };
        state.add_medication(&user.me.caller(), id, body).await?;
        Ok(())
    }
    .await;
    answer(&state, &user, id, "medication", "intake", form, result).await
}

async fn add_allergy(State(state): State<AppState>, Path(id): Path<Uuid>, posted: Posted) -> Response {
    let Posted { user, form } = posted;
    let body = AllergyIn {
        substance: form.text("substance"),
        reaction: form.text("reaction"),
        severity: form.text("severity"),
    };
    let result = state
        .add_allergy(&user.me.caller(), id, body)
        .await
        .map(|_| ())
        .map_err(ApiError::from);
    answer(&state, &user, id, "allergy", "intake", form, result).await
}

async fn add_condition(State(state): State<AppState>, Path(id): Path<Uuid>, posted: Posted) -> Response {
    let Posted { user, form } = posted;
    let body = CodeIn {
        code: form.text("code"),
    };
    let result = state
        .add_condition(&user.me.caller(), id, body)
        .await
        .map(|_| ())
        .map_err(ApiError::from);
    answer(&state, &user, id, "condition", "intake", form, result).await
}

async fn set_baseline_bp(State(state): State<AppState>, Path(id): Path<Uuid>, posted: Posted) -> Response {
    let Posted { user, form } = posted;
    let result = async {
        let body = BpIn {
            systolic_mmhg: form.required_number("systolic_mmhg")?,
            diastolic_mmhg: form.required_number("diastolic_mmhg")?,
            on: form.text("on"),
        };
        state.set_baseline_bp(&user.me.caller(), id, body).await?;
        Ok(())
    }
    .await;
    answer(&state, &user, id, "bp", "intake", form, result).await
}

async fn acknowledge(State(state): State<AppState>, Path(id): Path<Uuid>, posted: Posted) -> Response {
    let Posted { user, form } = posted;
    let code = form.text("code");
    let body = AcknowledgeIn {
        code: code.clone(),
        reason: form.text("reason"),
    };
    let result = state
        .acknowledge(&user.me.caller(), id, body)
        .await
        .map(|_| ())
        .map_err(ApiError::from);
    answer(
        &state,
        &user,
        id,
        &format!("ack_{code}"),
        "eligibility",
        form,
        result,
    )
    .await
}

async fn record_outcome(State(state): State<AppState>, Path(id): Path<Uuid>, posted: Posted) -> Response {
    let Posted { user, form } = posted;
    let code = form.text("instrument");
    let result = async {
        let instrument = ITEM_INSTRUMENTS
            .into_iter()
            .find(|i| i.code() == code)
            .ok_or_else(|| {
                ApiError::field(
                    "instrument",
                    code.clone(),
                    ITEM_INSTRUMENTS.map(Instrument::code).join(", "),
                )
            })?;
        let (n, max) = instrument.items();
        let items = (1..=n)
            .map(|i| form.small(&format!("item{i}"), &format!("a whole number 0–{max}")))
            .collect::<Result<Vec<_>, _>>()?;
        let body = OutcomeIn {
            instrument: code.clone(),
            items: Some(items),
            cssrs: None,
            context: form.text("context"),
            answered_at: form
                .optional("answered_at")
                .map(|t| utc_from_form(&user.zone, "answered_at", &t))
                .transpose()?,
            session_id: None,
        };
        state.record_outcome(&user.me.caller(), id, body).await?;
        Ok(())
    }
    .await;
    answer(
        &state,
        &user,
        id,
        &format!("outcome_{code}"),
        "outcomes",
        form,
        result,
    )
    .await
}

/// Creates a single-use questionnaire link through the API and shows it once on the chart, for the
/// nurse to send to the patient.
async fn send_link(State(state): State<AppState>, Path(id): Path<Uuid>, posted: Posted) -> Response {
    let Posted { user, form } = posted;
    let body = LinkIn {
        instruments: vec![form.text("instrument")],
        expires_in_hours: None,
    };
    match state
        .create_link(&user.me.caller(), id, body)
        .await
        .map_err(ApiError::from)
    {
        Ok(link) => match load_chart(&state, &user, id, FormState::default()).await {
            Ok(mut page) => {
                // The patient's page is the API path without its prefix (web::risk serves it).
                let path = link.path.replacen("/api/v1", "", 1);
                page.new_link = Some((path, user.zone.clock(link.expires_at)));
                render_with_status(StatusCode::CREATED, &page)
            }
            Err(e) => error_page(&e),
        },
        Err(e) if is_page_error(&e) => error_page(&e),
        Err(e) => {
            chart(
                &state,
                &user,
                id,
                FormState::refused_named("link", form, &e),
                e.status(),
            )
            .await
        }
    }
}

async fn add_opioid_use(State(state): State<AppState>, Path(id): Path<Uuid>, posted: Posted) -> Response {
    let Posted { user, form } = posted;
    let mut rows = Vec::new();
    let result = async {
        let mut doses = Vec::new();
        for i in 1..=OPIOID_ROWS {
            let Some(opioid) = form.optional(&format!("opioid_{i}")) else {
                continue;
            };
            let dose_field = format!("dose_{i}");
            let amount = form
                .number(&dose_field)?
                .ok_or_else(|| ApiError::field(&dose_field, "", "the dose of the opioid chosen"))?;
            let frequency = form.text(&format!("frequency_{i}"));
            let (mut dose_mg, mut every_hours, mut times_per_day, mut patch_ug_per_h) =
                (None, None, None, None);
            match frequency.split_at_checked(1) {
                Some(("t", n)) if n.parse::<u32>().is_ok() => {
                    dose_mg = Some(amount);
                    times_per_day = n.parse().ok();
                }
                Some(("h", n)) if n.parse::<f64>().is_ok() => {
                    dose_mg = Some(amount);
                    every_hours = n.parse().ok();
                }
                _ if frequency == "patch" => patch_ug_per_h = Some(amount),
                _ => {
                    let allowed = OPIOID_FREQUENCIES.map(|(_, t)| t).join(", ");
                    return Err(ApiError::field(
                        &format!("frequency_{i}"),
                        frequency.as_str(),
                        &allowed,
                    ));
                }
            }
            rows.push(i);
            doses.push(OpioidDoseIn {
                opioid,
                route: form.text(&format!("route_{i}")),
                dose_mg,
                every_hours,
                times_per_day,
                patch_ug_per_h,
            });
        }
        let body = OpioidUseIn {
            on: form.text("on"),
            doses,
        };
        state
            .add_opioid_use(&user.me.caller(), id, body)
            .await
            .map_err(|e| opioid_error_on_row(e.into(), &rows))?;
        Ok(())
    }
    .await;
    answer(&state, &user, id, "opioid", "safety", form, result).await
}

async fn book_session(State(state): State<AppState>, Path(id): Path<Uuid>, posted: Posted) -> Response {
    let Posted { user, form } = posted;
    let result = async {
        let plan = form.text("plan_id");
        let plan_id =
            Uuid::parse_str(&plan).map_err(|_| ApiError::field("plan_id", plan, "a plan of this patient"))?;
        let body = SessionIn {
            plan_id,
            chair: form.text("chair"),
            scheduled_for: utc_from_form(&user.zone, "scheduled_for", &form.text("scheduled_for"))?,
        };
        let session = state.book_session(&user.me.caller(), id, body).await?;
        Ok(session.id)
    }
    .await;
    match result {
        Ok(session) => see_other(&format!("/sessions/{session}")),
        Err(e) => answer(&state, &user, id, "session", "sessions", form, Err(e)).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_lose_trailing_zeros_only() {
        assert_eq!(num(35.0, 1), "35");
        assert_eq!(num(52.5, 1), "52.5");
        assert_eq!(num(0.125, 3), "0.125");
        assert_eq!(num(100.0, 0), "100");
        assert_eq!(num(0.0004, 3), "0");
    }

    #[test]
    fn datetime_local_becomes_rfc3339_utc() {
        let ny = ClinicZone::named("America/New_York").unwrap();
        assert_eq!(
            utc_from_form(&ny, "scheduled_for", "2026-11-26T09:05").unwrap(),
            "2026-11-26T14:05:00Z"
        );
        assert_eq!(
            utc_from_form(&ny, "scheduled_for", "2026-07-01T09:05:30").unwrap(),
            "2026-07-01T13:05:30Z"
        );
        let refused = utc_from_form(&ny, "scheduled_for", "tomorrow").unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("YYYY-MM-DD HH:MM in America/New_York"),
            "{refused}"
        );
    }

    #[test]
    fn every_item_instrument_has_a_name_and_labels() {
        for i in ITEM_INSTRUMENTS {
            assert_ne!(instrument_name(i.code()), "unknown instrument");
            let (n, _) = i.items();
            let shipped = WordingLibrary::shipped();
            let label = item_label(&shipped, i, n);
            assert!(
                label.starts_with(&n.to_string()) || label.starts_with("Item"),
                "{label}"
            );
        }
    }
}
