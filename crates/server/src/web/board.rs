//! The clinic board: every active chair at a glance, updated live over server-sent events.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;

use super::{Chrome, PageResult, WebUser, fixed, page_err, render};
use crate::state::AppState;
use ketaflow_app::alarms::AlarmState;
use ketaflow_app::board::ChairOut;
use ketaflow_app::clinic_time::ClinicZone;
use ketaflow_app::vitals::{AlarmOut, FlagOut};
use ketaflow_clinic::vitals::Priority;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/board", get(board_page))
        .route("/board/chairs", get(board_chairs))
}

/// One chair as the board shows it.
#[derive(Debug)]
pub struct ChairTile {
    /// Session id (the link to the session screen).
    pub session_id: String,
    /// Chair name.
    pub chair: String,
    /// Patient's name.
    pub patient_name: String,
    /// Session state.
    pub state: &'static str,
    /// Minutes since the start.
    pub elapsed_min: String,
    /// Pump rate, mL/h.
    pub pump_ml_per_h: String,
    /// Given so far, mg.
    pub given_mg: String,
    /// The plan's dose, mg.
    pub planned_dose_mg: String,
    /// Still infusing although the planned dose is given.
    pub planned_dose_reached: bool,
    /// Latest vital signs, abnormal ones marked.
    pub vitals: Vec<VitalCell>,
    /// When they were taken and how long ago ("10:42 UTC, 3 min ago").
    pub vitals_age: String,
    /// Older than the protocol's interval for the phase: shown greyed with "overdue".
    pub vitals_stale: bool,
    /// Unresolved alarms, highest priority first.
    pub alarms: Vec<AlarmLine>,
    /// The highest priority of the unresolved alarms (`high`, `medium`, `low`), or empty.
    pub worst: &'static str,
    /// The highest priority of the alarms not yet acknowledged, or empty: what a board with sound
    /// on sounds for.
    pub unacknowledged: &'static str,
    /// Predicted recovery time.
    pub recovery: String,
}

/// One value of a reading as a screen shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct VitalCell {
    /// What it is, with its unit ("BP mmHg").
    pub label: &'static str,
    /// The value.
    pub value: String,
    /// "▲" above or "▼" below where it should be; empty when normal.
    pub mark: &'static str,
    /// The mark in words for screen readers and the tooltip ("high: SpO2 90 % < 92"); empty when
    /// normal.
    pub why: String,
}

/// What priority looks like beside colour: a word, and one to three "!" as patient monitors
/// show it (after IEC 60601-1-8, which sets priorities apart by more than colour).
pub fn priority_words(p: Priority) -> (&'static str, &'static str) {
    match p {
        Priority::High => ("!!!", "HIGH"),
        Priority::Medium => ("!!", "MEDIUM"),
        Priority::Low => ("!", "LOW"),
    }
}

/// An unresolved alarm on a tile.
#[derive(Debug)]
pub struct AlarmLine {
    /// high, medium or low (the CSS class).
    pub priority: &'static str,
    /// "!!!", "!!" or "!".
    pub symbol: &'static str,
    /// HIGH, MEDIUM or LOW.
    pub word: &'static str,
    /// What was seen, with the worst value when it differs.
    pub text: String,
    /// Acknowledged (still open).
    pub acknowledged: bool,
}

/// The latest reading's values a screen shows, with units, marked where `flags` says they meet an
/// alarm condition.
pub fn vitals_cells(reading: Option<&serde_json::Value>, flags: &[FlagOut]) -> Vec<VitalCell> {
    let Some(r) = reading else { return vec![] };
    let num = |k: &str| r.get(k).and_then(serde_json::Value::as_f64);
    let mut out = Vec::new();
    let mut push = |label, value, measure: &str| {
        let flag = flags.iter().find(|f| f.measure == measure);
        out.push(VitalCell {
            label,
            value,
            mark: match flag.map(|f| f.direction) {
                Some("high") => "▲",
                Some(_) => "▼",
                None => "",
            },
            why: flag
                .map(|f| format!("{}: {}", f.direction, f.reason))
                .unwrap_or_default(),
        });
    };
    if let (Some(s), Some(d)) = (num("systolic_mmhg"), num("diastolic_mmhg")) {
        push("BP mmHg", format!("{s:.0}/{d:.0}"), "blood_pressure");
    }
    for (key, label, decimals, measure) in [
        ("heart_rate_per_min", "HR /min", 0, "heart_rate"),
        ("spo2_percent", "SpO₂ %", 0, "spo2"),
        ("respiratory_rate_per_min", "RR /min", 0, "respiratory_rate"),
        ("temperature_c", "Temp °C", 1, "temperature"),
    ] {
        if let Some(v) = num(key) {
            push(label, fixed(v, decimals), measure);
        }
    }
    if let Some(m) = r.get("moaas").and_then(serde_json::Value::as_u64) {
        push("MOAA/S", m.to_string(), "moaas");
    }
    // Stored with the reading as a number (absent for an incomplete set).
    if let Some(n) = r.get("news2").and_then(serde_json::Value::as_u64) {
        push("NEWS2", n.to_string(), "news2");
    }
    out
}

/// The highest priority among the alarms `pick` chooses (`high`, `medium`, `low`), or empty.
fn highest(alarms: &[AlarmOut], pick: impl Fn(&AlarmOut) -> bool) -> &'static str {
    alarms
        .iter()
        .filter(|a| pick(a))
        .map(AlarmOut::priority)
        .max()
        .map_or("", Priority::code)
}

fn alarm_line(a: &AlarmOut) -> AlarmLine {
    let (symbol, word) = priority_words(a.level);
    AlarmLine {
        priority: a.level.code(),
        symbol,
        word,
        text: match a.worst_message() {
            Some(worst) => format!("{} (worst {worst})", a.message()),
            None => a.message(),
        },
        acknowledged: a.state == AlarmState::Acknowledged,
    }
}

fn tile(zone: &ClinicZone, c: ChairOut) -> ChairTile {
    ChairTile {
        session_id: c.session_id.to_string(),
        chair: c.chair,
        patient_name: c.patient_name,
        state: c.state,
        elapsed_min: c
            .elapsed_min
            .map(|m| format!("{m:.0} min"))
            .unwrap_or_else(|| "not started".into()),
        pump_ml_per_h: fixed(c.pump_ml_per_h, 1),
        given_mg: fixed(c.given_mg, 1),
        planned_dose_mg: fixed(c.planned_dose_mg, 1),
        planned_dose_reached: c.planned_dose_reached,
        vitals: vitals_cells(c.latest_vitals.as_ref(), &c.latest_vitals_flags),
        vitals_age: match (c.latest_vitals_taken_at, c.latest_vitals_age_min) {
            (Some(at), Some(min)) => format!("taken {}, {min} min ago", zone.hhmm(at)),
            _ => String::new(),
        },
        vitals_stale: c.latest_vitals_stale,
        worst: highest(&c.active_alarms, AlarmOut::is_open),
        unacknowledged: highest(&c.active_alarms, |a| a.state == AlarmState::Raised),
        alarms: c
            .active_alarms
            .iter()
            .filter(|a| a.is_open())
            .map(alarm_line)
            .collect(),
        recovery: c
            .predicted_recovery_at
            .map(|t| zone.hhmm(t))
            .unwrap_or_else(|| "—".into()),
    }
}

/// An open suicide-risk alert as the board's banner names it.
struct RiskLine {
    patient_id: String,
    patient_name: String,
    raised: String,
    reason: String,
}

#[derive(Template)]
#[template(path = "board.html")]
struct BoardPage {
    chrome: Chrome,
    chairs: Vec<ChairTile>,
    risks: Vec<RiskLine>,
    last_event_id: i64,
}

#[derive(Template)]
#[template(path = "board_chairs.html")]
struct BoardChairs {
    chairs: Vec<ChairTile>,
    risks: Vec<RiskLine>,
}

/// The chairs, the open risk alerts (oldest first: the longest waiting leads) and the event id the
/// live stream resumes after.
async fn load(state: &AppState, user: &WebUser) -> Result<(Vec<ChairTile>, Vec<RiskLine>, i64), Response> {
    let caller = user.me.caller();
    let board = state.board(&caller).await.map_err(page_err)?;
    let risks = state
        .risk_alerts(&caller, true)
        .await
        .map_err(page_err)?
        .into_iter()
        .map(|a| RiskLine {
            patient_id: a.doc.patient_id.to_string(),
            patient_name: a.doc.patient_name,
            raised: user.zone.clock(a.doc.raised_at),
            reason: a.doc.reason,
        })
        .collect();
    Ok((
        board.chairs.into_iter().map(|c| tile(&user.zone, c)).collect(),
        risks,
        board.last_event_id,
    ))
}

async fn board_page(State(state): State<AppState>, user: WebUser) -> PageResult {
    let (chairs, risks, last_event_id) = load(&state, &user).await?;
    Ok(render(&BoardPage {
        chrome: user.chrome("board", "Clinic board"),
        chairs,
        risks,
        last_event_id,
    }))
}

async fn board_chairs(State(state): State<AppState>, user: WebUser) -> PageResult {
    let (chairs, risks, _) = load(&state, &user).await?;
    Ok(render(&BoardChairs { chairs, risks }))
}
