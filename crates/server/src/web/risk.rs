//! Suicide-risk alerts and the patient's questionnaire link.
//!
//! `/risk-alerts` lists the open alerts, oldest first and styled as urgent, each with its patient,
//! what raised it and the documented follow-up form that closes it (the API's
//! [`App::follow_up`](ketaflow_app::App::follow_up)); recently closed alerts are listed with their follow-up.
//!
//! `/q/{token}` is the page a patient opens from home, with no account: the single-use, expiring
//! token in the path is the credential, so these two routes take no login and no CSRF token (there
//! is no session to ride on). It asks what the link is for ([`App::open_link`](ketaflow_app::App::open_link)), one labelled
//! input per item with its allowed range, and submits through [`App::submit_link`](ketaflow_app::App::submit_link). When an
//! answer shows suicide risk the API says so and the answer page shows its crisis information
//! first and prominently. The page sends no referrer, so the token does not leak to a link the
//! patient follows.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use ketaflow_app::AppError;
use time::OffsetDateTime;
use uuid::Uuid;

use super::words::for_readers;
use super::{Chrome, FormData, FormState, PageResult, Posted, WebUser, page_err};
use super::{render_with_status, see_other};
use crate::error::ApiError;
use crate::policy::Action;
use crate::state::AppState;
use ketaflow_app::outcomes::{
    AnswersIn, CRISIS_HELP, CssrsIn, FOLLOW_UP_ACTIONS, FollowUpIn, LinkAnswersIn, RiskAlertOut,
};

/// Closed alerts listed under the open ones.
const RECENTLY_CLOSED: usize = 20;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/risk-alerts", get(alerts_page))
        .route("/outcomes/due", get(due_page))
        .route("/risk-alerts/{id}/follow-up", post(follow_up))
        .route("/q/{token}", get(questionnaire_page).post(questionnaire_submit))
}

/// A follow-up action in words.
fn action_label(code: &str) -> &str {
    match code {
        "cssrs_assessment" => "C-SSRS assessment done",
        "safety_plan" => "Safety plan made or reviewed",
        "clinician_contact" => "Clinician contacted the patient",
        "crisis_team" => "Crisis team involved",
        "emergency_services" => "Emergency services called",
        "physician_review" => "Physician reviewed",
        other => other,
    }
}

/// "2 h 05 min" since `t`.
fn since(t: OffsetDateTime, now: OffsetDateTime) -> String {
    let minutes = (now - t).whole_minutes().max(0);
    match minutes {
        m if m < 60 => format!("{m} min"),
        m if m < 48 * 60 => format!("{} h {:02} min", m / 60, m % 60),
        m => format!("{} days", m / (24 * 60)),
    }
}

// ---- Risk alerts ----------------------------------------------------------------------------------

/// An open alert.
#[derive(Debug)]
struct OpenAlert {
    id: String,
    patient_id: String,
    patient_name: String,
    reason: String,
    raised_at: String,
    open_for: String,
    /// The name of its follow-up form.
    form: String,
}

/// A closed alert with its follow-up.
#[derive(Debug)]
struct ClosedAlert {
    patient_id: String,
    patient_name: String,
    reason: String,
    raised_at: String,
    action: String,
    note: String,
    at: String,
}

#[derive(Template)]
#[template(path = "risk_alerts.html")]
struct AlertsPage {
    chrome: Chrome,
    open: Vec<OpenAlert>,
    closed: Vec<ClosedAlert>,
    actions: Vec<(&'static str, &'static str)>,
    can_follow_up: bool,
    form: FormState,
}

async fn alerts_view(state: &AppState, user: &WebUser, form: FormState, status: StatusCode) -> PageResult {
    let all = state
        .risk_alerts(&user.me.caller(), false)
        .await
        .map_err(page_err)?;
    let (zone, now) = (&user.zone, user.now);
    let (open, mut closed): (Vec<RiskAlertOut>, Vec<RiskAlertOut>) = all
        .into_iter()
        .partition(|a| a.doc.state == ketaflow_app::outcomes::RiskAlertState::Open);
    closed.sort_by_key(|a| std::cmp::Reverse(a.doc.follow_up.as_ref().map(|f| f.at)));
    Ok(render_with_status(
        status,
        &AlertsPage {
            chrome: user.chrome("risk", "Suicide-risk alerts"),
            open: open
                .into_iter()
                .map(|a| OpenAlert {
                    id: a.id.to_string(),
                    patient_id: a.doc.patient_id.to_string(),
                    patient_name: a.doc.patient_name,
                    reason: a.doc.reason,
                    raised_at: zone.clock(a.doc.raised_at),
                    open_for: since(a.doc.raised_at, now),
                    form: format!("follow-up-{}", a.id),
                })
                .collect(),
            closed: closed
                .into_iter()
                .take(RECENTLY_CLOSED)
                .map(|a| {
                    let f = a.doc.follow_up;
                    ClosedAlert {
                        patient_id: a.doc.patient_id.to_string(),
                        patient_name: a.doc.patient_name,
                        reason: a.doc.reason,
                        raised_at: zone.clock(a.doc.raised_at),
                        action: f
                            .as_ref()
                            .map(|f| action_label(&f.action).to_string())
                            .unwrap_or_default(),
                        note: f.as_ref().map(|f| f.note.clone()).unwrap_or_default(),
                        at: f.map(|f| zone.clock(f.at)).unwrap_or_default(),
                    }
                })
                .collect(),
            actions: FOLLOW_UP_ACTIONS.iter().map(|a| (*a, action_label(a))).collect(),
            can_follow_up: user.may(Action::WriteIntake),
            form,
        },
    ))
}

async fn alerts_page(State(state): State<AppState>, user: WebUser) -> PageResult {
    alerts_view(&state, &user, FormState::default(), StatusCode::OK).await
}

async fn follow_up(State(state): State<AppState>, Path(id): Path<Uuid>, posted: Posted) -> PageResult {
    let Posted { user, form } = posted;
    let body = FollowUpIn {
        action: form.text("action"),
        note: form.text("note"),
    };
    match state
        .follow_up(&user.me.caller(), id, body)
        .await
        .map_err(ApiError::from)
    {
        Ok(_) => Ok(see_other("/risk-alerts")),
        Err(e) => {
            let refused = FormState::refused_named(&format!("follow-up-{id}"), form, &e);
            alerts_view(&state, &user, refused, e.status()).await
        }
    }
}

// ---- The reminder list of questionnaires due ----------------------------------------------------------

/// One due or overdue measurement on the reminder list.
#[derive(Debug)]
struct DueRow {
    patient_id: String,
    patient_name: String,
    row: super::patients::ScheduleRow,
}

#[derive(Template)]
#[template(path = "outcomes_due.html")]
struct DuePage {
    chrome: Chrome,
    rows: Vec<DueRow>,
}

/// Every due or overdue questionnaire across patients with an open course, oldest first
/// ([`App::due_measurements`](ketaflow_app::App::due_measurements)); each links to the patient's chart, where the link is created.
async fn due_page(State(state): State<AppState>, user: WebUser) -> PageResult {
    let due = state
        .due_measurements(&user.me.caller())
        .await
        .map_err(page_err)?;
    Ok(render_with_status(
        StatusCode::OK,
        &DuePage {
            chrome: user.chrome("due", "Questionnaires due"),
            rows: due
                .iter()
                .map(|d| DueRow {
                    patient_id: d.patient_id.to_string(),
                    patient_name: d.patient_name.clone(),
                    row: super::patients::schedule_row(&user.zone, &d.measurement),
                })
                .collect(),
        },
    ))
}

// ---- The patient's questionnaire link ----------------------------------------------------------------

/// Instrument names as a patient reads them.
fn instrument_title(code: &str) -> &str {
    match code {
        "phq9" => "PHQ-9 (Patient Health Questionnaire)",
        "gad7" => "GAD-7 (anxiety)",
        "pcl5" => "PCL-5 (PTSD checklist)",
        "madrs" => "MADRS (depression rating)",
        "qids_sr16" => "QIDS-SR16 (depressive symptoms)",
        "pain_nrs" => "Pain rating (0–10)",
        "bpi_sf" => "Brief Pain Inventory",
        "fiqr" => "FIQR (fibromyalgia impact)",
        "crps_css" => "CRPS severity",
        "cssrs_screener" => "C-SSRS screener",
        other => other,
    }
}

/// The C-SSRS screener's questions: the API's field, the question as `ketaflow_clinic::instruments`
/// describes it, and whether it must be answered (Q3–Q5 only after a yes to Q2, the follow-up only
/// after a yes to Q6).
const CSSRS: [(&str, &str, bool); 7] = [
    (
        "wish_to_be_dead",
        "1. In the past month, have you wished you were dead or that you would not wake up?",
        true,
    ),
    (
        "suicidal_thoughts",
        "2. In the past month, have you had actual thoughts of killing yourself?",
        true,
    ),
    (
        "method",
        "3. Have you thought about how you might do this? (answer only if you said yes to question 2)",
        false,
    ),
    (
        "intent",
        "4. Have you had any intention of acting on these thoughts? (only if yes to question 2)",
        false,
    ),
    (
        "plan",
        "5. Have you started to work out the details of how to do it, and do you intend to carry it out? (only if yes to question 2)",
        false,
    ),
    (
        "behaviour",
        "6. Have you ever done anything, started to do anything, or prepared to do anything to end your life?",
        true,
    ),
    (
        "behaviour_within_3_months",
        "6b. If yes to question 6: was this within the past 3 months?",
        false,
    ),
];

/// One question on the patient's form.
#[derive(Debug)]
struct Question {
    /// The field name: `<instrument>.items[<i>]` or `cssrs_screener.cssrs.<answer>`.
    name: String,
    label: String,
    /// The answers to tap: (value, words). Yes/no questions: yes and no.
    choices: Vec<(String, String)>,
    /// The lowest answer that means the patient may be at risk (the form then shows where to get
    /// help before they send it); `"yes"` for a C-SSRS question. Empty: not a risk item.
    risk_from: String,
    required: bool,
    value: String,
    error: String,
}

/// One instrument on the patient's form.
#[derive(Debug)]
struct QuestionSet {
    code: String,
    title: String,
    /// How to answer, where the instrument's wording is reproduced.
    scale: String,
    /// Why the items are shown by number (their wording is licensed), if so.
    licence_note: String,
    /// Where the wording comes from.
    source: String,
    questions: Vec<Question>,
}

#[derive(Template)]
#[template(path = "questionnaire_form.html")]
struct QuestionnairePage {
    token: String,
    sets: Vec<QuestionSet>,
    expires_at: String,
    message: String,
    crisis_information: &'static str,
}

#[derive(Template)]
#[template(path = "questionnaire_done.html")]
struct DonePage {
    message: &'static str,
    crisis_information: Option<&'static str>,
    /// Telephone numbers named in the crisis information, for tap-to-call links.
    numbers: Vec<String>,
}

#[derive(Template)]
#[template(path = "questionnaire_gone.html")]
struct GonePage {
    title: &'static str,
    message: String,
    crisis_information: &'static str,
}

/// A patient page: never cached, never framed, and the token in its address is not sent on as a
/// referrer.
fn patient_page<T: Template>(status: StatusCode, page: &T) -> Response {
    let mut response = render_with_status(status, page);
    response
        .headers_mut()
        .insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// The page for a link that cannot be used: unknown, used or expired, in words.
fn gone(e: &ApiError) -> Response {
    let (title, message) = match e.app() {
        Some(AppError::NotFound { .. }) => (
            "This link is not valid",
            "Check that you opened the whole link from your clinic's message, or ask your clinic for a new one."
                .to_string(),
        ),
        Some(AppError::Conflict(m)) if m.contains("expired") => ("This link has expired", capitalised(m)),
        Some(AppError::Conflict(m)) => ("This link has already been used", capitalised(m)),
        _ => ("This link cannot be used", capitalised(&e.to_string())),
    };
    patient_page(
        e.status(),
        &GonePage {
            title,
            message,
            crisis_information: CRISIS_HELP,
        },
    )
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => format!(
            "{}{}.",
            first.to_uppercase(),
            chars.as_str().trim_end_matches('.')
        ),
        None => String::new(),
    }
}

/// The questions a link asks, with what was typed and the errors by field.
fn question_sets(
    instruments: &[(String, usize, u8)],
    form: &FormState,
    wording: &ketaflow_app::wording::WordingLibrary,
) -> Vec<QuestionSet> {
    let yes_no = || {
        vec![
            ("yes".to_string(), "Yes".to_string()),
            ("no".to_string(), "No".to_string()),
        ]
    };
    instruments
        .iter()
        .map(|(code, n, max)| {
            let text = wording.get(code);
            let questions = if code == "cssrs_screener" {
                CSSRS
                    .iter()
                    .map(|(field, label, required)| {
                        let name = format!("{code}.cssrs.{field}");
                        Question {
                            label: (*label).to_string(),
                            choices: yes_no(),
                            // Any yes to the screener's ideation or behaviour questions.
                            risk_from: "yes".into(),
                            required: *required,
                            value: form.value(&name),
                            error: form.error(&name),
                            name,
                        }
                    })
                    .collect()
            } else {
                let risk = ketaflow_app::wording::risk_item(code);
                (0..*n)
                    .map(|i| {
                        let name = format!("{code}.items[{i}]");
                        let anchors = text.map(|w| w.anchors_of(i)).unwrap_or_default();
                        let choices = (0..=*max)
                            .map(|score| {
                                let words = anchors.get(usize::from(score)).map_or_else(
                                    || score.to_string(),
                                    |a| {
                                        if a.starts_with(&score.to_string()) {
                                            a.clone()
                                        } else {
                                            format!("{a} ({score})")
                                        }
                                    },
                                );
                                (score.to_string(), words)
                            })
                            .collect();
                        Question {
                            label: match (text.and_then(|w| w.items.get(i)), *n) {
                                (Some(item), 1) => item.clone(),
                                (Some(item), _) => format!("{}. {item}", i + 1),
                                (None, 1) => "Your answer".to_string(),
                                (None, _) => format!("Item {} of {n}", i + 1),
                            },
                            choices,
                            risk_from: risk
                                .filter(|(item, _)| *item == i)
                                .map(|(_, from)| from.to_string())
                                .unwrap_or_default(),
                            required: true,
                            value: form.value(&name),
                            error: form.error(&name),
                            name,
                        }
                    })
                    .collect()
            };
            QuestionSet {
                scale: text.map(|w| w.instruction.clone()).unwrap_or_default(),
                licence_note: if text.is_none() {
                    ketaflow_app::wording::licence_note(code)
                        .unwrap_or_default()
                        .to_string()
                } else {
                    String::new()
                },
                source: text.map(|w| for_readers(&w.source)).unwrap_or_default(),
                title: instrument_title(code).to_string(),
                code: code.clone(),
                questions,
            }
        })
        .collect()
}

async fn questionnaire_view(state: &AppState, token: &str, form: FormState, status: StatusCode) -> Response {
    match state.open_link(token).await.map_err(ApiError::from) {
        Ok(link) => patient_page(
            status,
            &QuestionnairePage {
                token: token.to_string(),
                sets: question_sets(&link.instruments, &form, &state.settings.wording),
                // The patient's page has no header: it names the clinic's zone itself.
                expires_at: {
                    let zone = state.zone();
                    format!("{} {}", zone.clock(link.expires_at), zone.label(link.expires_at))
                },
                message: form.message.clone().unwrap_or_default(),
                crisis_information: link.crisis_information,
            },
        ),
        Err(e) => gone(&e),
    }
}

async fn questionnaire_page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    questionnaire_view(&state, &token, FormState::default(), StatusCode::OK).await
}

/// The answers as the API takes them, or the fields that are not answers, each with what is
/// allowed.
fn answers(instruments: &[(String, usize, u8)], form: &FormData) -> Result<Vec<AnswersIn>, Vec<ApiError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (code, n, max) in instruments {
        if code == "cssrs_screener" {
            let mut yes_no = |field: &str, required: bool| -> Option<bool> {
                let name = format!("{code}.cssrs.{field}");
                match form.text(&name).as_str() {
                    "yes" => Some(true),
                    "no" => Some(false),
                    "" if !required => None,
                    other => {
                        errors.push(ApiError::field(&name, other, "yes or no (required)"));
                        None
                    }
                }
            };
            let cssrs = CssrsIn {
                wish_to_be_dead: yes_no("wish_to_be_dead", true).unwrap_or_default(),
                suicidal_thoughts: yes_no("suicidal_thoughts", true).unwrap_or_default(),
                method: yes_no("method", false),
                intent: yes_no("intent", false),
                plan: yes_no("plan", false),
                behaviour: yes_no("behaviour", true).unwrap_or_default(),
                behaviour_within_3_months: yes_no("behaviour_within_3_months", false),
            };
            out.push(AnswersIn {
                instrument: code.clone(),
                items: None,
                cssrs: Some(cssrs),
            });
        } else {
            let mut items = Vec::with_capacity(*n);
            for i in 0..*n {
                let name = format!("{code}.items[{i}]");
                let allowed = format!("a whole number 0–{max}");
                match form.small(&name, &allowed) {
                    Ok(Some(v)) if v <= *max => items.push(Some(v)),
                    Ok(Some(v)) => errors.push(ApiError::field(&name, v, allowed)),
                    Ok(None) => items.push(None),
                    Err(e) => errors.push(e),
                }
            }
            out.push(AnswersIn {
                instrument: code.clone(),
                items: Some(items),
                cssrs: None,
            });
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

async fn questionnaire_submit(
    State(state): State<AppState>,
    Path(token): Path<String>,
    form: axum::Form<FormData>,
) -> Response {
    let form = form.0;
    // What the link asks (and whether it can still be used) decides which fields are answers.
    let link = match state.open_link(&token).await.map_err(ApiError::from) {
        Ok(link) => link,
        Err(e) => return gone(&e),
    };
    let answers = match answers(&link.instruments, &form) {
        Ok(answers) => answers,
        Err(errors) => {
            let mut refused = FormState::refused_named("q", form, &errors[0]);
            for e in &errors {
                if let Some(AppError::InvalidField { field, allowed, .. }) = e.app() {
                    refused
                        .errors
                        .insert(field.clone(), format!("allowed: {allowed}"));
                }
            }
            refused.message = Some(match errors.len() {
                1 => "One answer needs a look: see the question marked below.".into(),
                k => format!("{k} answers need a look: see the questions marked below."),
            });
            return questionnaire_view(&state, &token, refused, StatusCode::BAD_REQUEST).await;
        }
    };
    let body = LinkAnswersIn { answers };
    match state.submit_link(&token, body).await.map_err(ApiError::from) {
        Ok(done) => patient_page(
            StatusCode::OK,
            &DonePage {
                message: done.message,
                crisis_information: done.crisis_information,
                numbers: done.crisis_information.map(phone_numbers).unwrap_or_default(),
            },
        ),
        Err(e @ ApiError::App(AppError::NotFound { .. } | AppError::Conflict(_))) => gone(&e),
        Err(e) => {
            let refused = FormState::refused_named("q", form, &e);
            questionnaire_view(&state, &token, refused, e.status()).await
        }
    }
}

/// The telephone numbers a crisis text names (words of 3 or more digits), in order, once each.
fn phone_numbers(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in text.split(|c: char| !c.is_ascii_digit()) {
        if word.len() >= 3 && !out.iter().any(|w| w == word) {
            out.push(word.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crisis_numbers_are_read_from_the_text() {
        assert_eq!(
            phone_numbers(ketaflow_app::outcomes::CRISIS_INFORMATION),
            vec!["988", "911"]
        );
        assert_eq!(phone_numbers(CRISIS_HELP), vec!["988", "911"]);
        assert_eq!(phone_numbers("call 12 or 112, 112"), vec!["112"]);
    }

    #[test]
    fn answers_are_read_per_item_with_their_range() {
        let instruments = vec![("phq9".to_string(), 3, 3), ("cssrs_screener".to_string(), 7, 1)];
        let form = FormData(
            [
                ("phq9.items[0]", "1"),
                ("phq9.items[1]", ""),
                ("phq9.items[2]", "3"),
                ("cssrs_screener.cssrs.wish_to_be_dead", "yes"),
                ("cssrs_screener.cssrs.suicidal_thoughts", "no"),
                ("cssrs_screener.cssrs.behaviour", "no"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        );
        let a = answers(&instruments, &form).unwrap();
        assert_eq!(a[0].items, Some(vec![Some(1), None, Some(3)]));
        let c = a[1].cssrs.unwrap();
        assert!(c.wish_to_be_dead && !c.suicidal_thoughts && c.method.is_none());
        let mut bad = form.clone();
        bad.0.insert("phq9.items[1]".into(), "4".into());
        bad.0.remove("cssrs_screener.cssrs.behaviour");
        let errors = answers(&instruments, &bad).unwrap_err();
        assert_eq!(errors.len(), 2);
        assert!(errors[0].to_string().contains("0–3"));
    }
}
