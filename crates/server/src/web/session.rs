//! The session screen: state and timer, the rate, vitals entry, alarms with acknowledge and
//! resolve, side effects, assessments, the discharge checklist with the predicted recovery time,
//! and the concentration and vital-sign charts. The status, alarm, vitals and discharge panels
//! refresh live over server-sent events; the forms do not, so nothing typed is lost.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use ketaflow_app::AppError;
use ketaflow_clinic::plan::LimitStatus;
use ketaflow_clinic::side_effects::{ActionTaken, SideEffectKind};
use uuid::Uuid;

use super::board::{VitalCell, vitals_cells};
use super::words::for_readers;
use super::{Chrome, FormData, FormState, PageResult, Posted, WebUser, fixed, page_err};
use super::{render_with_status, see_other};
use crate::error::ApiError;
use crate::policy::Action;
use crate::state::AppState;
use ketaflow_app::alarms::{ALARM_ACTIONS, AcknowledgeAllIn, AlarmResolveIn, AlarmState, VitalOut};
use ketaflow_app::bedside::{AssessmentIn, RateIn, SideEffectIn};
use ketaflow_app::board::planned_dose_reached;
use ketaflow_app::booking::SessionPredictionOut;
use ketaflow_app::clinic_time::ClinicZone;
use ketaflow_app::records::{AldreteDoc, OverrideDoc, PreChecksDoc, ReadingDoc};
use ketaflow_app::screen::SessionScreen;
use ketaflow_app::sessions::{DischargeOut, TransitionIn};
use ketaflow_app::vitals::AlarmOut;
use ketaflow_charts::{Band, Chart, Curve, Level};
use ketaflow_store::VitalsBucket;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/sessions/{id}", get(session_page))
        .route("/sessions/{id}/live", get(session_live))
        // A refused form is answered at its POST address; a reload or bookmark of that address
        // (a GET) goes back to the screen rather than to a 405.
        .route("/sessions/{id}/transition", get(back).post(transition))
        .route("/sessions/{id}/vitals", get(back).post(record_vitals))
        .route(
            "/sessions/{id}/vitals/{vital}/artefact",
            get(back_from_reading).post(mark_artefact),
        )
        .route("/sessions/{id}/rate", get(back).post(change_rate))
        .route("/sessions/{id}/side-effects", get(back).post(add_side_effect))
        .route("/sessions/{id}/assessments", get(back).post(add_assessment))
        .route(
            "/sessions/{id}/alarms/{alarm}/acknowledge",
            post(acknowledge_alarm),
        )
        .route("/sessions/{id}/alarms/{alarm}/resolve", post(resolve_alarm))
        .route(
            "/sessions/{id}/alarms/acknowledge-all",
            post(acknowledge_all_alarms),
        )
}

/// An alarm as the session screen lists it.
#[derive(Debug)]
pub struct AlarmRow {
    /// Alarm id.
    pub id: String,
    /// What was seen.
    pub message: String,
    /// high, medium or low.
    pub level: String,
    /// "!!!", "!!" or "!": priority told by more than colour.
    pub symbol: &'static str,
    /// The worst reading since it was raised, when it differs from the current one.
    pub worst: Option<String>,
    /// Acknowledged before and raised again because it escalated: who and when.
    pub re_raised: Option<String>,
    /// raised or acknowledged.
    pub state: String,
    /// When first raised.
    pub raised_at: String,
    /// Times the rule fired while open.
    pub occurrences: i64,
    /// Whether the rule recommends pausing.
    pub recommend_pause: bool,
    /// The threshold's source, and whether it is a clinic setting.
    pub source: String,
}

fn alarm_row(zone: &ClinicZone, a: &AlarmOut) -> AlarmRow {
    let source = a
        .detail
        .get("source")
        .and_then(|s| s.as_str())
        .unwrap_or("")
        .to_string();
    let clinic_setting = a
        .detail
        .get("clinic_setting")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    let source = for_readers(&source);
    AlarmRow {
        id: a.id.to_string(),
        message: a.message(),
        level: a.level.code().to_string(),
        symbol: super::board::priority_words(a.level).0,
        worst: a.worst_message(),
        re_raised: a
            .detail
            .get("previous_acknowledgement")
            .and_then(|p| p.get("at"))
            .and_then(serde_json::Value::as_str)
            .map(|at| {
                let at = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                    .map_or_else(|_| at.to_string(), |t| zone.hhmm(t));
                format!("escalated after it was acknowledged at {at}")
            }),
        state: a.state.as_str().to_string(),
        raised_at: zone.hhmm(a.raised_at),
        occurrences: a.occurrences,
        recommend_pause: a.recommends_pause(),
        // A clinic-setting source that already says so is not prefixed twice.
        source: if clinic_setting && !source.starts_with("clinic setting") {
            format!("clinic setting — {source}")
        } else {
            source
        },
    }
}

/// One reading in the vitals table.
#[derive(Debug)]
pub struct VitalRow {
    /// When taken.
    pub at: String,
    /// How long ago ("12 min ago").
    pub age: String,
    /// Older than the protocol's interval for the phase.
    pub stale: bool,
    /// manual or device.
    pub source: String,
    /// The values, abnormal ones marked.
    pub values: Vec<VitalCell>,
    /// Reading id (for marking it as an artefact).
    pub id: i64,
    /// Marked as an artefact: "artefact (cuff slipped), marked 10:42".
    pub artefact: Option<String>,
}

/// The parts of the screen that refresh live.
#[derive(Debug)]
pub struct LivePanels {
    /// Session id.
    pub id: String,
    /// State code.
    pub state: &'static str,
    /// Since when in this state (time of day).
    pub state_since: String,
    /// Seconds since the infusion first started, for the running timer; None before the start
    /// and once the infusion has ended.
    pub elapsed_s: Option<i64>,
    /// How fast the clinic clock runs (the timer ticks at this rate).
    pub clock_speed: f64,
    /// Rate in force: mg/h, mg/kg/h and pump mL/h.
    pub rate_mg_per_h: String,
    /// Rate per kg.
    pub rate_mg_per_kg_per_h: String,
    /// Pump rate.
    pub pump_ml_per_h: String,
    /// Given so far, mg.
    pub given_mg: String,
    /// Minutes at a non-zero rate.
    pub infusing_min: String,
    /// The plan: dose in mg over its time in minutes.
    pub planned: String,
    /// Still infusing although the planned dose is given.
    pub planned_dose_reached: bool,
    /// Unresolved alarms, highest priority first.
    pub alarms: Vec<AlarmRow>,
    /// How many of them are raised (not yet acknowledged): "acknowledge all" shows for two or more.
    pub raised_alarms: usize,
    /// Latest readings, newest first (at most 12).
    pub vitals: Vec<VitalRow>,
    /// The protocol's monitoring schedule in words.
    pub monitoring: String,
    /// The vitals chart (SVG), empty without readings.
    pub vitals_svg: String,
    /// The discharge checklist, once the infusion has ended.
    pub discharge: Option<DischargeView>,
    /// Whether the viewer may act on alarms.
    pub can_run: bool,
    /// The CSRF token for the alarm forms.
    pub csrf: String,
    /// What may be recorded as the action taken on an alarm.
    pub alarm_actions: Vec<&'static str>,
}

/// The discharge checklist.
#[derive(Debug)]
pub struct DischargeView {
    /// (met, code, detail, source).
    pub criteria: Vec<(bool, String, String, String)>,
    /// All met.
    pub all_met: bool,
    /// Earliest time discharge can be considered.
    pub earliest_at: String,
    /// PK-predicted recovery.
    pub predicted_recovery_at: String,
    /// What the patient is told.
    pub instructions: Vec<String>,
}

fn discharge_view(zone: &ClinicZone, d: DischargeOut) -> DischargeView {
    DischargeView {
        criteria: d
            .criteria
            .into_iter()
            .map(|c| (c.met, c.name.to_string(), c.detail, for_readers(&c.source)))
            .collect(),
        all_met: d.all_met,
        earliest_at: zone.clock(d.earliest_at),
        predicted_recovery_at: d
            .predicted_recovery_at
            .map(|t| zone.clock(t))
            .unwrap_or_else(|| "—".into()),
        instructions: d.instructions,
    }
}

/// When a reading was taken (stored with it), or when it was received if that is missing.
fn taken(v: &VitalOut) -> time::OffsetDateTime {
    v.reading
        .get("taken_at")
        .and_then(|t| t.as_str())
        .and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
        .unwrap_or(v.received_at)
}

/// The vital-sign history chart: each vital's mean per group of readings, with its lowest and
/// highest value shaded where a group holds more than one reading (so an extreme reading in a long
/// session stays visible).
fn vitals_chart(zone: &ClinicZone, history: &[VitalsBucket]) -> String {
    let Some(first) = history.first() else {
        return String::new();
    };
    let origin = first.first_at;
    let grouped = history.iter().any(|b| b.readings > 1);
    let value = |v: Option<f64>| v.unwrap_or(f64::NAN);
    let styles = [
        ("systolic BP (mmHg)", "#b3261e", false),
        ("diastolic BP (mmHg)", "#b3261e", true),
        ("heart rate (/min)", "#1f5fa8", false),
        ("SpO₂ (%)", "#1e7a3c", false),
        ("resp. rate (/min)", "#7a4fb5", false),
    ];
    let curves = styles
        .iter()
        .enumerate()
        .map(|(k, (label, colour, dashed))| Curve {
            label: (*label).into(),
            colour,
            dashed: *dashed,
            points: history.len() < 30,
            values: history.iter().map(|b| value(b.mean[k])).collect(),
        })
        .collect();
    // A band needs both edges at every point; a vital missing from some group gets none.
    let bands = styles
        .iter()
        .enumerate()
        .filter(|_| grouped)
        .filter(|(k, _)| history.iter().all(|b| b.min[*k].is_some() && b.max[*k].is_some()))
        .map(|(k, (label, colour, _))| Band {
            label: format!("{} range", label.split(" (").next().unwrap_or(label)),
            colour,
            lower: history.iter().map(|b| value(b.min[k])).collect(),
            upper: history.iter().map(|b| value(b.max[k])).collect(),
        })
        .collect();
    let readings: i64 = history.iter().map(|b| b.readings).sum();
    Chart {
        title: "Vital signs".into(),
        subtitle: if grouped {
            format!(
                "from {}; {readings} readings in {} groups: mean, shaded from lowest to highest",
                zone.hhmm(origin),
                history.len()
            )
        } else {
            format!("from {}", zone.hhmm(origin))
        },
        y_label: "mmHg · /min · %".into(),
        times_s: history
            .iter()
            .map(|b| (b.first_at - origin).as_seconds_f64())
            .collect(),
        curves,
        bands,
        ..Chart::default()
    }
    .to_svg()
}

/// The live panels from the screen's one read.
fn live_panels(state: &AppState, user: &WebUser, screen: &SessionScreen) -> LivePanels {
    let zone = &user.zone;
    let s = &screen.session;
    let plan = &screen.plan;
    let last = s.rates.last();
    LivePanels {
        planned: format!(
            "{} mg over {} min ({} mg/kg, pump {} mL/h)",
            fixed(plan.dose_mg.get(), 1),
            fixed(plan.duration_min.get(), 0),
            fixed(plan.dose_per_kg, 3),
            fixed(plan.pump_ml_per_h.get(), 1)
        ),
        planned_dose_reached: planned_dose_reached(s, plan.dose_mg.get()),
        id: s.id.to_string(),
        state: s.state,
        state_since: s.state_since.map(|t| zone.clock(t)).unwrap_or_default(),
        elapsed_s: s
            .rates
            .first()
            .filter(|_| s.phase.infusion_underway())
            .map(|r| (state.now() - r.at).whole_seconds()),
        clock_speed: state.settings.clock_speed,
        rate_mg_per_h: fixed(s.current_rate_mg_per_h, 1),
        rate_mg_per_kg_per_h: fixed(
            if s.current_rate_mg_per_h > 0.0 {
                last.map_or(0.0, |r| r.rate_mg_per_kg_per_h.get())
            } else {
                0.0
            },
            3,
        ),
        pump_ml_per_h: fixed(
            if s.current_rate_mg_per_h > 0.0 {
                last.map_or(0.0, |r| r.pump_ml_per_h.get())
            } else {
                0.0
            },
            1,
        ),
        given_mg: fixed(s.given_mg, 1),
        infusing_min: fixed(s.infusing_min, 0),
        alarms: screen.open_alarms.iter().map(|a| alarm_row(zone, a)).collect(),
        raised_alarms: screen
            .open_alarms
            .iter()
            .filter(|a| a.state == AlarmState::Raised)
            .count(),
        vitals_svg: vitals_chart(zone, &screen.history),
        vitals: screen
            .recent
            .iter()
            .zip(&screen.recent_ages)
            .zip(&screen.recent_flags)
            .map(|((v, age), flags)| VitalRow {
                at: zone.hhmm(taken(v)),
                age: format!("{} min ago", age.minutes),
                stale: age.stale,
                source: v.source.clone(),
                values: vitals_cells(Some(&v.reading), flags),
                id: v.id,
                artefact: v
                    .artefact
                    .as_ref()
                    .map(|a| format!("artefact ({}), marked {}", a.reason, zone.hhmm(a.at))),
            })
            .collect(),
        monitoring: format!(
            "Vitals due every {} min from check-in until the start, every {} min while infusing, every {} min in recovery (the protocol's monitoring schedule).",
            screen.monitoring.before_start.whole_minutes(),
            screen.monitoring.during_infusion.whole_minutes(),
            screen.monitoring.recovery.whole_minutes()
        ),
        discharge: screen.discharge.clone().map(|d| discharge_view(zone, d)),
        can_run: user.may(Action::RunSession),
        csrf: user.csrf.clone(),
        alarm_actions: ALARM_ACTIONS.to_vec(),
    }
}

/// A side-effect entry as the screen lists it.
#[derive(Debug)]
pub struct SideEffectRow {
    /// Onset time.
    pub at: String,
    /// Kind.
    pub kind: String,
    /// Severity.
    pub severity: String,
    /// Action taken.
    pub action: String,
    /// CADSS-6 total, MOAA/S and note.
    pub detail: String,
}

/// A rate entry as the screen lists it.
#[derive(Debug)]
pub struct RateRow {
    /// When.
    pub at: String,
    /// start, change, pause, resume, stop.
    pub kind: String,
    /// mg/h.
    pub mg_per_h: String,
    /// mg/kg/h.
    pub mg_per_kg_per_h: String,
    /// mL/h.
    pub ml_per_h: String,
    /// Why, and any override.
    pub reason: String,
}

#[derive(Template)]
#[template(path = "session.html")]
struct SessionPage {
    chrome: Chrome,
    banner: super::banner::PatientBanner,
    id: String,
    patient_id: String,
    patient_name: String,
    chair: String,
    protocol_id: String,
    legal: Vec<&'static str>,
    live: LivePanels,
    prediction_svg: String,
    predicted_recovery: String,
    rates: Vec<RateRow>,
    side_effects: Vec<SideEffectRow>,
    form: FormState,
    /// A fresh idempotency key for the vitals form: a double submit stores one reading.
    reading_key: String,
    can_run: bool,
    can_override: bool,
    /// Soft limits the last proposed rate breaches (a physician gives a reason for each).
    soft_breaches: Vec<String>,
    side_effect_kinds: Vec<&'static str>,
    side_effect_actions: Vec<&'static str>,
    /// The controlled-substance record of the session, for those who read the ledger.
    drug: Option<DrugRecord>,
    /// When the page was made, in the clinic's time (the printed record says so).
    printed_at: String,
}

/// What the ledger says of a session's ketamine: the vials it came from and what became of it.
#[derive(Debug)]
struct DrugRecord {
    /// (product, NDC, lot, expiry) of each vial drawn from.
    vials: Vec<(String, String, String, String)>,
    drawn_mg: String,
    administered_mg: String,
    wasted_mg: String,
    given_mg: String,
    reconciled: bool,
}

impl SessionPage {
    fn may(&self, event: &str) -> bool {
        self.can_run && self.legal.contains(&event)
    }

    /// Side effects and assessments are recorded from check-in until the session closes.
    fn bedside_open(&self) -> bool {
        !self.legal.is_empty() && !self.legal.contains(&"check_in")
    }
}

#[derive(Template)]
#[template(path = "session_live.html")]
struct LiveFragment {
    live: LivePanels,
}

fn prediction_chart(zone: &ClinicZone, prediction: Option<&SessionPredictionOut>) -> (String, String) {
    // Before the start there is nothing given to predict from; the plan page shows the planned curve.
    let Some(p) = prediction else {
        return (String::new(), "—".into());
    };
    let times_s: Vec<f64> = p.prediction.time_min.iter().map(|m| m * 60.0).collect();
    let chart = Chart {
        title: "Predicted concentrations from what was given".into(),
        subtitle: format!(
            "{} model; time 0 = infusion start {}",
            p.prediction.model,
            zone.hhmm(p.origin)
        ),
        y_label: "concentration (µg/mL)".into(),
        times_s,
        curves: vec![
            Curve {
                label: "Cp (plasma)".into(),
                colour: "#1f5fa8",
                values: p.prediction.cp_ug_per_ml.clone(),
                ..Curve::default()
            },
            Curve {
                label: "Ce (effect site)".into(),
                colour: "#b3261e",
                dashed: true,
                values: p.prediction.ce_ug_per_ml.clone(),
                ..Curve::default()
            },
        ],
        levels: vec![Level {
            label: format!(
                "recovery threshold {} µg/mL",
                p.prediction.recovery_threshold_ug_per_ml
            ),
            colour: "#1e7a3c",
            value: p.prediction.recovery_threshold_ug_per_ml,
        }],
        ..Chart::default()
    };
    (
        chart.to_svg(),
        p.ce_below_threshold_at
            .map(|t| zone.clock(t))
            .unwrap_or_else(|| "—".into()),
    )
}

async fn page(
    state: &AppState,
    user: &WebUser,
    id: Uuid,
    form: FormState,
    soft_breaches: Vec<String>,
    status: StatusCode,
) -> PageResult {
    let screen = state
        .session_screen(&user.me.caller(), id, true)
        .await
        .map_err(page_err)?;
    let live = live_panels(state, user, &screen);
    let (prediction_svg, predicted_recovery) = prediction_chart(&user.zone, screen.prediction.as_ref());
    let s = &screen.session;
    // The full page names the patient in its banner; the live fragment does not re-read them.
    let patient = state
        .patient(&user.me.caller(), s.patient_id)
        .await
        .map_err(page_err)?;
    let banner = super::banner::load_banner(state, user, &patient)
        .await
        .map_err(page_err)?;
    let rates = s
        .rates
        .iter()
        .map(|r| RateRow {
            at: user.zone.hhmm(r.at),
            kind: r.kind.to_string(),
            mg_per_h: fixed(r.rate_mg_per_h.get(), 1),
            mg_per_kg_per_h: fixed(r.rate_mg_per_kg_per_h.get(), 3),
            ml_per_h: fixed(r.pump_ml_per_h.get(), 1),
            reason: std::iter::once(r.reason.clone().unwrap_or_default())
                .chain(
                    r.overrides
                        .iter()
                        .map(|o| format!("override {}: {}", o.limit, o.reason)),
                )
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join("; "),
        })
        .collect();
    let side_effects = s
        .side_effects
        .iter()
        .map(|e| SideEffectRow {
            at: user.zone.hhmm(e.onset),
            kind: e.kind.to_string().replace('_', " "),
            severity: e.severity.to_string(),
            action: e.action.to_string().replace('_', " "),
            detail: [
                e.cadss6_total.map(|t| format!("CADSS-6 {t}/24")),
                e.moaas.map(|m| format!("MOAA/S {m}")),
                Some(e.note.clone()).filter(|n| !n.is_empty()),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" · "),
        })
        .collect();
    let drug = if user.may(Action::ReadLedger) {
        let l = state
            .session_ledger(&user.me.caller(), id)
            .await
            .map_err(page_err)?;
        Some(DrugRecord {
            vials: l
                .vials
                .into_iter()
                .map(|v| (v.product_name, v.ndc, v.lot, v.expiry))
                .collect(),
            drawn_mg: l.drawn_mg,
            administered_mg: l.administered_mg,
            wasted_mg: l.wasted_mg,
            given_mg: l.given_mg,
            reconciled: l.reconciled,
        })
    } else {
        None
    };
    let title = format!("{} — {}", s.chair, s.patient_name);
    Ok(render_with_status(
        status,
        &SessionPage {
            chrome: user.chrome("board", title),
            banner,
            id: s.id.to_string(),
            patient_id: s.patient_id.to_string(),
            patient_name: s.patient_name.clone(),
            chair: s.chair.clone(),
            protocol_id: s.protocol_id.clone(),
            legal: s.legal_events.clone(),
            live,
            prediction_svg,
            predicted_recovery,
            rates,
            side_effects,
            form,
            reading_key: Uuid::now_v7().to_string(),
            can_run: user.may(Action::RunSession),
            can_override: user.may(Action::OverrideSession),
            soft_breaches,
            side_effect_kinds: SideEffectKind::FIXED.iter().map(SideEffectKind::code).collect(),
            side_effect_actions: ActionTaken::FIXED.iter().map(ActionTaken::code).collect(),
            drug,
            printed_at: user.zone.clock(user.now),
        },
    ))
}

async fn session_page(State(state): State<AppState>, user: WebUser, Path(id): Path<Uuid>) -> PageResult {
    page(&state, &user, id, FormState::default(), vec![], StatusCode::OK).await
}

async fn back(Path(id): Path<Uuid>) -> axum::response::Response {
    see_other(&format!("/sessions/{id}"))
}

async fn session_live(State(state): State<AppState>, user: WebUser, Path(id): Path<Uuid>) -> PageResult {
    let screen = state
        .session_screen(&user.me.caller(), id, false)
        .await
        .map_err(page_err)?;
    Ok(super::render(&LiveFragment {
        live: live_panels(&state, &user, &screen),
    }))
}

/// After a form: back to the screen on success; the screen with the form as typed on refusal.
async fn answer(
    state: &AppState,
    user: &WebUser,
    id: Uuid,
    name: &str,
    form: FormData,
    result: Result<(), ApiError>,
) -> PageResult {
    match result {
        Ok(()) => Ok(see_other(&format!("/sessions/{id}"))),
        Err(e) => {
            let status = e.status();
            page(
                state,
                user,
                id,
                FormState::refused_named(name, form, &e),
                vec![],
                status,
            )
            .await
        }
    }
}

async fn transition(State(state): State<AppState>, Path(id): Path<Uuid>, posted: Posted) -> PageResult {
    let Posted { user, form } = posted;
    let event = form.text("event");
    let body = TransitionIn {
        checks: (event == "check_in").then(|| PreChecksDoc {
            fasting_confirmed: form.checked("fasting_confirmed"),
            escort_confirmed: form.checked("escort_confirmed"),
            consent_on_file: form.checked("consent_on_file"),
            questionnaire_answered: form.checked("questionnaire_answered"),
            questionnaire_waived_reason: form.optional("questionnaire_waived_reason"),
        }),
        reason: form.optional("reason"),
        stop: form.optional("stop"),
        override_discharge: form.checked("override_discharge"),
        expected_version: form.text("expected_version").parse().ok(),
        event: event.clone(),
    };
    let result = state
        .transition(&user.me.caller(), id, body)
        .await
        .map(|_| ())
        .map_err(ApiError::from);
    answer(&state, &user, id, &event, form, result).await
}

fn reading(form: &FormData) -> Result<ReadingDoc, ApiError> {
    Ok(ReadingDoc {
        idempotency_key: form.text("idempotency_key"),
        taken_at: None,
        systolic_mmhg: form.number("systolic_mmhg")?,
        diastolic_mmhg: form.number("diastolic_mmhg")?,
        heart_rate_per_min: form.number("heart_rate_per_min")?,
        spo2_percent: form.number("spo2_percent")?,
        respiratory_rate_per_min: form.number("respiratory_rate_per_min")?,
        temperature_c: form.number("temperature_c")?,
        consciousness: form.optional("consciousness"),
        moaas: form.small("moaas", "0–5")?,
        on_oxygen: Some(form.checked("on_oxygen")),
    })
}

async fn record_vitals(State(state): State<AppState>, Path(id): Path<Uuid>, posted: Posted) -> PageResult {
    let Posted { user, form } = posted;
    let result = match reading(&form) {
        Ok(r) => state
            .record_clinician_vitals(&user.me.caller(), id, vec![r])
            .await
            .map(|_| ())
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    answer(&state, &user, id, "vitals", form, result).await
}

async fn change_rate(State(state): State<AppState>, Path(id): Path<Uuid>, posted: Posted) -> PageResult {
    let Posted { user, form } = posted;
    let body = match (form.number("rate_mg_per_kg_per_h"), form.number("pump_ml_per_h")) {
        (Ok(per_kg), Ok(ml)) => RateIn {
            rate_mg_per_kg_per_h: per_kg,
            pump_ml_per_h: ml,
            reason: form.text("reason"),
            // One reason per soft limit, from fields named override.<limit code>.
            overrides: form
                .0
                .iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix("override.")
                        .filter(|_| !v.trim().is_empty())
                        .map(|limit| OverrideDoc {
                            limit: limit.to_string(),
                            reason: v.trim().to_string(),
                        })
                })
                .collect(),
        },
        (Err(e), _) | (_, Err(e)) => return answer(&state, &user, id, "rate", form, Err(e)).await,
    };
    let preview = state.preview_rate(id, &body).await;
    let result = state
        .change_rate(&user.me.caller(), id, body)
        .await
        .map(|_| ())
        .map_err(ApiError::from);
    match result {
        Err(
            e @ ApiError::App(
                AppError::RefusedAt {
                    code: "override_needed",
                    ..
                }
                | AppError::Forbidden { .. },
            ),
        ) => {
            // Show one reason field per breached soft limit (physicians) next to what was typed.
            let breaches = preview
                .map(|checks| {
                    checks
                        .into_iter()
                        .filter(|c| c.status == LimitStatus::SoftBreach)
                        .map(|c| c.limit)
                        .collect()
                })
                .unwrap_or_default();
            let status = e.status();
            page(
                &state,
                &user,
                id,
                FormState::refused_named("rate", form, &e),
                breaches,
                status,
            )
            .await
        }
        other => answer(&state, &user, id, "rate", form, other).await,
    }
}

async fn add_side_effect(State(state): State<AppState>, Path(id): Path<Uuid>, posted: Posted) -> PageResult {
    let Posted { user, form } = posted;
    let parsed = (|| -> Result<SideEffectIn, ApiError> {
        let cadss6 = if form.text("kind") == "dissociation" && form.optional("cadss1").is_some() {
            let mut items = [0u8; 6];
            for (i, item) in items.iter_mut().enumerate() {
                let name = format!("cadss{}", i + 1);
                *item = form
                    .small(&name, "0–4")?
                    .ok_or_else(|| ApiError::field(&name, "", "0–4 (all six items, or none)"))?;
            }
            Some(items)
        } else {
            None
        };
        let kind = match form.text("kind").as_str() {
            "other" => format!("other:{}", form.text("other_kind")),
            k => k.to_string(),
        };
        let action = match form.text("action").as_str() {
            "medication_given" => format!(
                "medication_given:{}:{}",
                form.text("medication_name"),
                form.text("medication_dose")
            ),
            a => a.to_string(),
        };
        Ok(SideEffectIn {
            kind,
            severity: form.text("severity"),
            onset: None,
            cadss6,
            moaas: form.small("moaas", "0–5")?,
            action,
            note: form.text("note"),
        })
    })();
    let result = match parsed {
        Ok(body) => state
            .add_side_effect(&user.me.caller(), id, body)
            .await
            .map(|_| ())
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    answer(&state, &user, id, "side_effect", form, result).await
}

async fn add_assessment(State(state): State<AppState>, Path(id): Path<Uuid>, posted: Posted) -> PageResult {
    let Posted { user, form } = posted;
    let parsed = (|| -> Result<AssessmentIn, ApiError> {
        let items = ["activity", "respiration", "circulation", "consciousness", "spo2"];
        let given: Vec<Option<u8>> = items
            .iter()
            .map(|n| form.small(n, "0, 1 or 2"))
            .collect::<Result<_, _>>()?;
        let aldrete = if given.iter().all(Option::is_none) {
            None
        } else {
            let v = |i: usize| {
                given[i].ok_or_else(|| ApiError::field(items[i], "", "0, 1 or 2 (all five items, or none)"))
            };
            Some(AldreteDoc {
                activity: v(0)?,
                respiration: v(1)?,
                circulation: v(2)?,
                consciousness: v(3)?,
                spo2: v(4)?,
            })
        };
        Ok(AssessmentIn {
            aldrete,
            moaas: form.small("moaas", "0–5")?,
            escort_present: match form.text("escort_present").as_str() {
                "yes" => Some(true),
                "no" => Some(false),
                _ => None,
            },
        })
    })();
    let result = match parsed {
        Ok(body) => state
            .add_assessment(&user.me.caller(), id, body)
            .await
            .map(|_| ())
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    answer(&state, &user, id, "assessment", form, result).await
}

async fn back_from_reading(Path((id, _)): Path<(Uuid, i64)>) -> axum::response::Response {
    see_other(&format!("/sessions/{id}"))
}

async fn mark_artefact(
    State(state): State<AppState>,
    Path((id, vital)): Path<(Uuid, i64)>,
    posted: Posted,
) -> PageResult {
    let Posted { user, form } = posted;
    let result = state
        .mark_artefact(&user.me.caller(), id, vital, &form.text("reason"))
        .await
        .map(|_| ())
        .map_err(ApiError::from);
    answer(&state, &user, id, &format!("artefact-{vital}"), form, result).await
}

async fn acknowledge_alarm(
    State(state): State<AppState>,
    Path((id, alarm)): Path<(Uuid, Uuid)>,
    posted: Posted,
) -> PageResult {
    let Posted { user, form } = posted;
    let result = state
        .acknowledge_alarm(&user.me.caller(), alarm)
        .await
        .map(|_| ())
        .map_err(ApiError::from);
    answer(&state, &user, id, "alarm", form, result).await
}

async fn acknowledge_all_alarms(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    posted: Posted,
) -> PageResult {
    let Posted { user, form } = posted;
    let body = AcknowledgeAllIn {
        reason: form.text("reason"),
    };
    let result = state
        .acknowledge_all(&user.me.caller(), id, body)
        .await
        .map(|_| ())
        .map_err(ApiError::from);
    answer(&state, &user, id, "alarm", form, result).await
}

async fn resolve_alarm(
    State(state): State<AppState>,
    Path((id, alarm)): Path<(Uuid, Uuid)>,
    posted: Posted,
) -> PageResult {
    let Posted { user, form } = posted;
    let body = AlarmResolveIn {
        action: form.text("action"),
        note: form.optional("note"),
    };
    let result = state
        .resolve_alarm(&user.me.caller(), alarm, body)
        .await
        .map(|_| ())
        .map_err(ApiError::from);
    answer(&state, &user, id, "alarm", form, result).await
}
