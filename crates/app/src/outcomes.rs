//! Measurement-based care: questionnaires scored by `ketaflow_clinic::instruments`, outcomes over
//! the course (`ketaflow_clinic::outcomes`), suicide-risk alerts that are raised at once (live, on
//! the board's event stream) and stay open until a clinician documents the follow-up, and
//! single-use expiring links through which a patient answers from home without an account.
//!
//! A suicide-risk answer is never hidden behind a total: PHQ-9 item 9 > 0, QIDS-SR16 item 12 > 0
//! or a moderate/high C-SSRS screener raises an urgent alert, and the patient-facing answer shows
//! crisis information.

use ketaflow_clinic::instruments::{
    CssrsAnswers, CssrsRisk, Flag, Instrument, cssrs_needs_alert, score, score_cssrs,
};
use ketaflow_clinic::measurements::{self, Occasion, Status};
use ketaflow_clinic::outcomes::{BaselineWindow, Observation, trajectory};
use ketaflow_clinic::patient::Indication;
use ketaflow_store::{
    Actor, NewAuditEntry, NewEvent, NewQuestionnaireLink, NewRecord, Record, RecordChange, StoredEvent, Tx,
    hash_token,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::export::csv_text;
use crate::policy::{Action, Caller};
use crate::records::{Loaded, PatientDoc};
use crate::records::{PATIENT, SESSION, SessionDoc};
use crate::sessions::session_out;
use crate::vitals::rfc3339;
use crate::{App, AppError};

/// The record kind of a questionnaire.
pub const OUTCOME: &str = "outcome";
/// The record kind of a suicide-risk alert.
pub const RISK_ALERT: &str = "risk_alert";

/// What a patient in crisis is told, beside every suicide-risk result shown to them. 988 is the US
/// Suicide & Crisis Lifeline (SAMHSA, 988lifeline.org, since July 2022); 911 for immediate danger.
/// A clinic outside the US must replace these numbers (clinic setting).
pub const CRISIS_INFORMATION: &str = "If you are thinking about harming yourself, you are not alone. \
Call or text 988 (Suicide & Crisis Lifeline, 24/7) to talk to someone now. If you are in immediate \
danger, call 911 or go to the nearest emergency department. Your care team has been alerted.";

/// Where to get help, for a patient who has not (yet) sent an answer that alerts anyone: the same
/// numbers, without saying the care team knows (988: US Suicide & Crisis Lifeline, 988lifeline.org).
pub const CRISIS_HELP: &str = "If you are thinking about harming yourself, you are not alone. \
Call or text 988 (Suicide & Crisis Lifeline, 24/7) to talk to someone now. If you are in immediate \
danger, call 911 or go to the nearest emergency department.";

const INSTRUMENTS: [(&str, Option<Instrument>); 10] = [
    ("phq9", Some(Instrument::Phq9)),
    ("gad7", Some(Instrument::Gad7)),
    ("pcl5", Some(Instrument::Pcl5)),
    ("madrs", Some(Instrument::Madrs)),
    ("qids_sr16", Some(Instrument::QidsSr16)),
    ("pain_nrs", Some(Instrument::PainNrs)),
    ("bpi_sf", Some(Instrument::BpiShortForm)),
    ("fiqr", Some(Instrument::Fiqr)),
    ("crps_css", Some(Instrument::CrpsSeverityScore)),
    ("cssrs_screener", None),
];

fn instrument_codes() -> String {
    INSTRUMENTS.map(|(c, _)| c).join(", ")
}

/// Where a questionnaire was answered; the last is only for patient links.
pub const CONTEXTS: [&str; 5] = ["screening", "baseline", "pre_infusion", "follow_up", "home"];

/// C-SSRS screener answers as sent (Q3–Q5 only when Q2 is yes; the 3-month follow-up only when
/// Q6 is yes).
#[derive(Serialize, Deserialize, ToSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CssrsIn {
    /// Q1.
    pub wish_to_be_dead: bool,
    /// Q2.
    pub suicidal_thoughts: bool,
    /// Q3.
    #[serde(default)]
    pub method: Option<bool>,
    /// Q4.
    #[serde(default)]
    pub intent: Option<bool>,
    /// Q5.
    #[serde(default)]
    pub plan: Option<bool>,
    /// Q6.
    pub behaviour: bool,
    /// Q6 follow-up.
    #[serde(default)]
    pub behaviour_within_3_months: Option<bool>,
}

/// One questionnaire's answers.
#[derive(Debug, Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct AnswersIn {
    /// phq9, gad7, pcl5, madrs, qids_sr16, pain_nrs, bpi_sf, fiqr, crps_css, cssrs_screener.
    pub instrument: String,
    /// Item scores in order (null = unanswered); not for the C-SSRS.
    #[serde(default)]
    pub items: Option<Vec<Option<u8>>>,
    /// The C-SSRS screener's answers.
    #[serde(default)]
    pub cssrs: Option<CssrsIn>,
}

/// A questionnaire recorded by a clinician.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeIn {
    /// phq9, gad7, pcl5, madrs, qids_sr16, pain_nrs, bpi_sf, fiqr, crps_css, cssrs_screener.
    pub instrument: String,
    /// Item scores in order (null = unanswered); not for the C-SSRS.
    #[serde(default)]
    pub items: Option<Vec<Option<u8>>>,
    /// The C-SSRS screener's answers.
    #[serde(default)]
    pub cssrs: Option<CssrsIn>,
    /// screening, baseline, pre_infusion, follow_up.
    pub context: String,
    /// When answered (RFC 3339; default now).
    #[serde(default)]
    pub answered_at: Option<String>,
    /// The infusion session it belongs to, if any.
    #[serde(default)]
    pub session_id: Option<Uuid>,
}

/// A scored questionnaire as stored.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
pub struct OutcomeDoc {
    /// Instrument code.
    pub instrument: String,
    /// LOINC code of the total, where one exists (clinical.md §6.3).
    pub loinc: Option<String>,
    /// The items as answered.
    pub items: Option<Vec<Option<u8>>>,
    /// The C-SSRS answers.
    pub cssrs: Option<CssrsIn>,
    /// The total (for the C-SSRS: the risk level 0 none, 1 low, 2 moderate, 3 high).
    pub total: f64,
    /// Severity band or risk level.
    pub band: Option<String>,
    /// Subscores.
    pub subscores: Vec<(String, f64)>,
    /// Flags to act on.
    pub flags: Vec<String>,
    /// screening, baseline, pre_infusion, follow_up, home.
    pub context: String,
    /// When answered.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub answered_at: OffsetDateTime,
    /// The session, if any.
    pub session_id: Option<Uuid>,
    /// Who recorded it (a user id, or `patient-link`).
    pub recorded_by: String,
    /// The suicide-risk alert it raised.
    pub risk_alert_id: Option<Uuid>,
}

/// Where a suicide-risk alert is: open until a clinician documents the follow-up.
#[derive(Serialize, Deserialize, ToSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RiskAlertState {
    /// Raised; nobody has documented a follow-up yet.
    Open,
    /// A clinician documented the follow-up.
    FollowedUp,
}

/// A suicide-risk alert as stored.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
pub struct RiskAlertDoc {
    /// The patient.
    pub patient_id: Uuid,
    /// The patient's name (alerts are shown to the care team).
    pub patient_name: String,
    /// The questionnaire that raised it.
    pub outcome_id: Uuid,
    /// Why, in words.
    pub reason: String,
    /// urgent.
    pub level: String,
    /// open or followed_up.
    pub state: RiskAlertState,
    /// Raised.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub raised_at: OffsetDateTime,
    /// The documented follow-up.
    pub follow_up: Option<FollowUpDoc>,
}

/// The documented follow-up of a risk alert.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
pub struct FollowUpDoc {
    /// What was done.
    pub action: String,
    /// Details (at least 10 characters).
    pub note: String,
    /// Who.
    pub by: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
}

/// The follow-up actions.
pub const FOLLOW_UP_ACTIONS: [&str; 6] = [
    "cssrs_assessment",
    "safety_plan",
    "clinician_contact",
    "crisis_team",
    "emergency_services",
    "physician_review",
];

/// A questionnaire's score: LOINC code, total, band, subscores, flags.
type Scored = (
    Option<&'static str>,
    f64,
    Option<String>,
    Vec<(String, f64)>,
    Vec<Flag>,
);

fn score_answers(a: &AnswersIn) -> Result<Scored, AppError> {
    let (_, instrument) = INSTRUMENTS
        .iter()
        .find(|(c, _)| *c == a.instrument)
        .ok_or_else(|| AppError::field("instrument", a.instrument.clone(), instrument_codes()))?;
    match instrument {
        Some(i) => {
            if a.cssrs.is_some() {
                return Err(AppError::BadInput(format!(
                    "{} takes items, not cssrs answers",
                    a.instrument
                )));
            }
            let items = a.items.as_ref().ok_or_else(|| {
                AppError::field(
                    "items",
                    serde_json::Value::Null,
                    format!("{} item scores", i.items().0),
                )
            })?;
            let s = score(*i, items).map_err(|e| AppError::Refused {
                code: "cannot_score",
                message: e.to_string(),
            })?;
            Ok((
                i.loinc(),
                s.total,
                s.band.map(str::to_string),
                s.subscores.iter().map(|(n, v)| ((*n).to_string(), *v)).collect(),
                s.flags,
            ))
        }
        None => {
            let c = a.cssrs.ok_or_else(|| {
                AppError::field("cssrs", serde_json::Value::Null, "the C-SSRS screener answers")
            })?;
            if a.items.is_some() {
                return Err(AppError::BadInput(
                    "cssrs_screener takes cssrs answers, not items".into(),
                ));
            }
            let risk = score_cssrs(&CssrsAnswers {
                wish_to_be_dead: c.wish_to_be_dead,
                suicidal_thoughts: c.suicidal_thoughts,
                method: c.method,
                intent: c.intent,
                plan: c.plan,
                behaviour: c.behaviour,
                behaviour_within_3_months: c.behaviour_within_3_months,
            })
            .map_err(|e| AppError::Refused {
                code: "cannot_score",
                message: e.to_string(),
            })?;
            let (level, name) = match risk {
                CssrsRisk::None => (0.0, "none"),
                CssrsRisk::Low => (1.0, "low"),
                CssrsRisk::Moderate => (2.0, "moderate"),
                CssrsRisk::High => (3.0, "high"),
            };
            Ok((
                None,
                level,
                Some(name.to_string()),
                vec![],
                vec![Flag::SuicideRisk(risk)],
            ))
        }
    }
}

fn flag_text(f: &Flag) -> String {
    match f {
        Flag::SuicideItemPositive { item_score } => {
            format!("PHQ-9 item 9 (thoughts of death or self-harm) = {item_score}")
        }
        Flag::QidsSuicideItemPositive { item_score } => {
            format!("QIDS-SR16 item 12 (suicidal ideation) = {item_score}")
        }
        Flag::ProvisionalPtsd => "PCL-5 meets the DSM-5 provisional PTSD rule".into(),
        Flag::SuicideRisk(r) => format!("C-SSRS screener risk {r:?}")
            .to_lowercase()
            .replace("c-ssrs", "C-SSRS"),
    }
}

/// The flags that must raise an urgent alert.
fn alarming(flags: &[Flag]) -> Vec<String> {
    flags
        .iter()
        .filter(|f| match f {
            Flag::SuicideItemPositive { .. } | Flag::QidsSuicideItemPositive { .. } => true,
            Flag::SuicideRisk(r) => cssrs_needs_alert(*r),
            Flag::ProvisionalPtsd => false,
        })
        .map(flag_text)
        .collect()
}

/// Stores a scored questionnaire, and its alert if it raises one, in `tx`; returns the stored
/// outcome, its alert and the live event to publish after commit.
async fn store_outcome(
    tx: &mut Tx,
    actor: &Actor,
    patient: &Record,
    patient_name: &str,
    mut doc: OutcomeDoc,
    reasons: Vec<String>,
    now: OffsetDateTime,
) -> Result<(Record, Option<Record>, Vec<StoredEvent>), AppError> {
    let mut events = Vec::new();
    let alert_id = if reasons.is_empty() {
        None
    } else {
        Some(Uuid::now_v7())
    };
    // The outcome is inserted first so the alert can name it.
    let data = serde_json::to_value(&doc)?;
    let new = NewRecord {
        kind: OUTCOME,
        parent_id: Some(patient.id),
        label: &doc.instrument,
        data: &data,
    };
    let outcome = tx
        .insert_record_audited(actor, "outcome.record", &new, now)
        .await?;
    let mut alert = None;
    if alert_id.is_some() {
        let a = RiskAlertDoc {
            patient_id: patient.id,
            patient_name: patient_name.to_string(),
            outcome_id: outcome.id,
            reason: reasons.join("; "),
            level: "urgent".into(),
            state: RiskAlertState::Open,
            raised_at: now,
            follow_up: None,
        };
        let data = serde_json::to_value(&a)?;
        let new = NewRecord {
            kind: RISK_ALERT,
            parent_id: Some(patient.id),
            label: patient_name,
            data: &data,
        };
        let stored = tx
            .insert_record_audited(actor, "risk_alert.raise", &new, now)
            .await?;
        // Open alerts are read through the in-progress index, whatever their age.
        tx.set_in_progress(RISK_ALERT, stored.id, true).await?;
        // The live stream is keyed by subject: a patient-level alert goes out under the patient's
        // id, on the same board stream the clinicians already watch.
        events.push(
            tx.append_event(&NewEvent {
                session_id: patient.id,
                kind: "risk.alert",
                at: now,
                data: &serde_json::json!({ "alert_id": stored.id, "alert": data }),
            })
            .await?,
        );
        doc.risk_alert_id = Some(stored.id);
        let data = serde_json::to_value(&doc)?;
        // The link to its alert is a change of the outcome like any other: audited.
        let outcome = tx
            .update_record_audited(
                actor,
                "outcome.link_risk_alert",
                &RecordChange {
                    kind: OUTCOME,
                    id: outcome.id,
                    expected_version: outcome.version,
                    label: &doc.instrument,
                    data: &data,
                    lock: true,
                },
                now,
            )
            .await?;
        alert = Some(stored);
        return Ok((outcome, alert, events));
    }
    Ok((outcome, alert, events))
}

/// A stored questionnaire as returned.
#[derive(Serialize, ToSchema, Debug)]
pub struct OutcomeOut {
    /// Id.
    pub id: Uuid,
    /// The questionnaire.
    #[serde(flatten)]
    pub doc: OutcomeDoc,
    /// Shown whenever a suicide-risk flag is present.
    pub crisis_information: Option<&'static str>,
}

fn outcome_out(r: Record) -> Result<OutcomeOut, AppError> {
    let doc: OutcomeDoc = crate::records::parse(OUTCOME, &r)?;
    Ok(OutcomeOut {
        id: r.id,
        crisis_information: doc.risk_alert_id.map(|_| CRISIS_INFORMATION),
        doc,
    })
}

fn parse_time(field: &str, text: &str) -> Result<OffsetDateTime, AppError> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| AppError::field(field, text, "an RFC 3339 date-time"))
}

fn outcome_doc(
    a: &AnswersIn,
    context: &str,
    answered_at: OffsetDateTime,
    session_id: Option<Uuid>,
    by: String,
) -> Result<(OutcomeDoc, Vec<String>), AppError> {
    let (loinc, total, band, subscores, flags) = score_answers(a)?;
    let reasons = alarming(&flags);
    Ok((
        OutcomeDoc {
            instrument: a.instrument.clone(),
            loinc: loinc.map(str::to_string),
            items: a.items.clone(),
            cssrs: a.cssrs,
            total,
            band,
            subscores,
            flags: flags.iter().map(flag_text).collect(),
            context: context.to_string(),
            answered_at,
            session_id,
            recorded_by: by,
            risk_alert_id: None,
        },
        reasons,
    ))
}

impl App {
    /// Record a questionnaire: scored exactly; a suicide-risk answer raises an urgent alert at once.
    pub async fn record_outcome(
        &self,
        caller: &Caller,
        id: Uuid,
        body: OutcomeIn,
    ) -> Result<OutcomeOut, AppError> {
        let state = self;
        caller.require(Action::WriteIntake)?;
        if !CONTEXTS[..4].contains(&body.context.as_str()) {
            return Err(AppError::field(
                "context",
                body.context.clone(),
                CONTEXTS[..4].join(", "),
            ));
        }
        let now = state.now();
        let answered_at = match &body.answered_at {
            Some(t) => parse_time("answered_at", t)?,
            None => now,
        };
        if answered_at > now + time::Duration::minutes(1) {
            return Err(AppError::field(
                "answered_at",
                body.answered_at.clone().unwrap_or_default(),
                "a time no later than now",
            ));
        }
        let patient = state.record(PATIENT, id).await?;
        let name = crate::records::parse::<PatientDoc>(PATIENT, &patient)?.display_name;
        if let Some(s) = body.session_id {
            let session = state
                .store
                .get_record(SESSION, s)
                .await
                .map_err(|_| AppError::field("session_id", s.to_string(), "a session of this patient"))?;
            if session.parent_id != Some(id) {
                return Err(AppError::field(
                    "session_id",
                    s.to_string(),
                    "a session of this patient",
                ));
            }
        }
        let answers = AnswersIn {
            instrument: body.instrument.clone(),
            items: body.items.clone(),
            cssrs: body.cssrs,
        };
        let (doc, reasons) = outcome_doc(
            &answers,
            &body.context,
            answered_at,
            body.session_id,
            caller.user.id.to_string(),
        )?;
        let mut tx = state.store.begin().await?;
        let (outcome, _, events) =
            store_outcome(&mut tx, &caller.actor(), &patient, &name, doc, reasons, now).await?;
        tx.commit().await?;
        state.live.publish(events);
        outcome_out(outcome)
    }
}

/// One instrument's course.
#[derive(Serialize, ToSchema, Debug)]
pub struct TrajectoryOut {
    /// Instrument code.
    pub instrument: &'static str,
    /// Baseline total: the last score in the protocol's baseline window before the first
    /// infusion; null when there is none (see `baseline_basis`).
    pub baseline: Option<f64>,
    /// When the baseline was answered.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub baseline_at: Option<OffsetDateTime>,
    /// in_window, no_infusion (no window yet) or none_in_window.
    pub baseline_basis: &'static str,
    /// Which score is the baseline and why, in words.
    pub baseline_why: String,
    /// Latest total.
    pub latest: f64,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub latest_at: OffsetDateTime,
    /// latest − baseline; null without a baseline.
    pub change: Option<f64>,
    /// Change, % of baseline.
    pub change_percent: Option<f64>,
    /// Response (≥ 50 % reduction), depression scales; null without a baseline.
    pub response: Option<bool>,
    /// Remission (PHQ-9 < 5, MADRS < 10, QIDS-SR16 ≤ 5).
    pub remission: Option<bool>,
    /// Pain: clinically important change (≥ 2 points or ≥ 30 %); null without a baseline.
    pub clinically_important: Option<bool>,
    /// Hours from the first infusion to the first response.
    pub hours_to_first_response: Option<f64>,
    /// Every total in time order, for the plot.
    pub series: Vec<(String, f64)>,
}

/// A patient's outcomes.
#[derive(Serialize, ToSchema, Debug)]
pub struct OutcomesOut {
    /// The first infusion's start, if any.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub first_infusion_at: Option<OffsetDateTime>,
    /// Every questionnaire, newest first.
    pub outcomes: Vec<OutcomeOut>,
    /// Per instrument.
    pub trajectories: Vec<TrajectoryOut>,
}

impl App {
    /// A patient's questionnaires and their course: response, remission, rapid relief.
    pub async fn outcomes(&self, caller: &Caller, id: Uuid) -> Result<OutcomesOut, AppError> {
        let state = self;
        caller.require(Action::ReadClinical)?;
        state.record(PATIENT, id).await?;
        let outcomes: Vec<OutcomeOut> = state
            .store
            .list_records(OUTCOME, Some(id), None, 500)
            .await?
            .into_iter()
            .map(outcome_out)
            .collect::<Result<_, _>>()?;
        let sessions = state.store.list_children(SESSION, id).await?;
        let first_infusion_at = sessions
            .iter()
            .filter_map(|r| serde_json::from_value::<SessionDoc>(r.data.clone()).ok())
            .filter_map(|d| d.rates.first().map(|r| r.at))
            .min();
        let window = baseline_window(state, sessions, state.now())?;
        let mut trajectories = Vec::new();
        for (code, instrument) in INSTRUMENTS {
            let Some(instrument) = instrument else { continue };
            let obs: Vec<Observation> = outcomes
                .iter()
                .filter(|o| o.doc.instrument == code)
                .map(|o| Observation {
                    at: o.doc.answered_at,
                    total: o.doc.total,
                })
                .collect();
            if let Some(t) = trajectory(instrument, &obs, window) {
                let mut series: Vec<&Observation> = obs.iter().collect();
                series.sort_by_key(|o| o.at);
                let baseline = t.baseline.observation();
                trajectories.push(TrajectoryOut {
                    instrument: code,
                    baseline: baseline.map(|b| b.total),
                    baseline_at: baseline.map(|b| b.at),
                    baseline_basis: t.baseline.code(),
                    baseline_why: t.baseline.explain(instrument),
                    latest: t.latest.total,
                    latest_at: t.latest.at,
                    change: t.change,
                    change_percent: t.change_percent,
                    response: t.response,
                    remission: t.remission,
                    clinically_important: t.clinically_important,
                    hours_to_first_response: t.first_response.map(|(_, h)| h),
                    series: series.iter().map(|o| (rfc3339(o.at), o.total)).collect(),
                });
            }
        }
        Ok(OutcomesOut {
            first_infusion_at,
            outcomes,
            trajectories,
        })
    }
}

/// A risk alert as returned.
#[derive(Serialize, ToSchema, Debug)]
pub struct RiskAlertOut {
    /// Id.
    pub id: Uuid,
    /// Record version.
    pub version: i64,
    /// The alert.
    #[serde(flatten)]
    pub doc: RiskAlertDoc,
}

fn alert_out(r: Record) -> Result<RiskAlertOut, AppError> {
    Ok(RiskAlertOut {
        id: r.id,
        version: r.version,
        doc: crate::records::parse(RISK_ALERT, &r)?,
    })
}

impl App {
    /// Suicide-risk alerts across the clinic, oldest open first.
    pub async fn risk_alerts(&self, caller: &Caller, open_only: bool) -> Result<Vec<RiskAlertOut>, AppError> {
        let state = self;
        caller.require(Action::ReadClinical)?;
        // Open alerts come from the in-progress index (every one, however old); the history is
        // the newest 500.
        let records = if open_only {
            state.store.list_in_progress(RISK_ALERT).await?
        } else {
            state.store.list_records(RISK_ALERT, None, None, 500).await?
        };
        let mut alerts: Vec<RiskAlertOut> = records.into_iter().map(alert_out).collect::<Result<_, _>>()?;
        if open_only {
            alerts.retain(|a| a.doc.state == RiskAlertState::Open);
        }
        alerts.sort_by_key(|a| a.doc.raised_at);
        Ok(alerts)
    }

    /// How many suicide-risk alerts are open (for the menu and the board's banner).
    pub async fn open_risk_alert_count(&self, caller: &Caller) -> Result<usize, AppError> {
        Ok(self.risk_alerts(caller, true).await?.len())
    }

    /// Clears the in-progress mark of alerts already followed up (a database migrated to the index
    /// has every alert marked); run once at start-up with the sessions' reconcile.
    pub async fn reconcile_open_risk_alerts(&self) -> Result<usize, AppError> {
        let mut cleared = 0;
        for record in self.store.list_in_progress(RISK_ALERT).await? {
            if alert_out(record.clone())?.doc.state != RiskAlertState::Open {
                let mut tx = self.store.begin().await?;
                tx.set_in_progress(RISK_ALERT, record.id, false).await?;
                tx.commit().await?;
                cleared += 1;
            }
        }
        Ok(cleared)
    }
}

/// A documented follow-up.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FollowUpIn {
    /// cssrs_assessment, safety_plan, clinician_contact, crisis_team, emergency_services,
    /// physician_review.
    pub action: String,
    /// What was found and done (10–4000 characters).
    pub note: String,
}

impl App {
    /// Document the follow-up of a suicide-risk alert; it closes the alert.
    pub async fn follow_up(
        &self,
        caller: &Caller,
        id: Uuid,
        body: FollowUpIn,
    ) -> Result<RiskAlertOut, AppError> {
        let state = self;
        caller.require(Action::WriteIntake)?;
        if !FOLLOW_UP_ACTIONS.contains(&body.action.as_str()) {
            return Err(AppError::field(
                "action",
                body.action.clone(),
                FOLLOW_UP_ACTIONS.join(", "),
            ));
        }
        let note = body.note.trim();
        if !(10..=4000).contains(&note.chars().count()) {
            return Err(AppError::field(
                "note",
                note,
                "10–4000 characters saying what was found and done",
            ));
        }
        let now = state.now();
        let record = state
            .store
            .get_record(RISK_ALERT, id)
            .await
            .map_err(|e| match e {
                ketaflow_store::StoreError::NotFound { .. } => AppError::NotFound {
                    what: "risk alert".into(),
                    id: id.to_string(),
                },
                other => other.into(),
            })?;
        let mut doc = alert_out(record.clone())?.doc;
        if doc.state != RiskAlertState::Open {
            return Err(AppError::Conflict(
                "the alert's follow-up is already documented".into(),
            ));
        }
        doc.state = RiskAlertState::FollowedUp;
        doc.follow_up = Some(FollowUpDoc {
            action: body.action.clone(),
            note: note.to_string(),
            by: caller.user.id.to_string(),
            at: now,
        });
        let data = serde_json::to_value(&doc)?;
        let mut tx = state.store.begin().await?;
        let change = RecordChange {
            kind: RISK_ALERT,
            id,
            expected_version: record.version,
            label: &doc.patient_name,
            data: &data,
            lock: true,
        };
        let updated = tx
            .update_record_audited(&caller.actor(), "risk_alert.follow_up", &change, now)
            .await?;
        tx.set_in_progress(RISK_ALERT, id, false).await?;
        let event = tx
            .append_event(&NewEvent {
                session_id: doc.patient_id,
                kind: "risk.followed_up",
                at: now,
                data: &serde_json::json!({ "alert_id": id, "alert": data }),
            })
            .await?;
        tx.commit().await?;
        state.live.publish([event]);
        alert_out(updated)
    }
}

// ---- Patient links -------------------------------------------------------------------------------

/// A link to send.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkIn {
    /// Instrument codes to ask (1–5, no duplicates).
    pub instruments: Vec<String>,
    /// Hours until it expires (1–168; default 72).
    #[serde(default)]
    pub expires_in_hours: Option<i64>,
}

/// A new link: shown once.
#[derive(Serialize, ToSchema, Debug)]
pub struct LinkOut {
    /// The path the patient opens (GET to see what is asked, POST the answers), once.
    pub path: String,
    /// When it expires.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

impl App {
    /// Create a single-use, expiring link through which the patient answers from home, no account.
    pub async fn create_link(&self, caller: &Caller, id: Uuid, body: LinkIn) -> Result<LinkOut, AppError> {
        let state = self;
        caller.require(Action::WriteIntake)?;
        if body.instruments.is_empty() || body.instruments.len() > 5 {
            return Err(AppError::field(
                "instruments",
                body.instruments.len(),
                "1–5 instruments",
            ));
        }
        for (i, code) in body.instruments.iter().enumerate() {
            if !INSTRUMENTS.iter().any(|(c, _)| c == code) || body.instruments[..i].contains(code) {
                return Err(AppError::field(
                    "instruments",
                    code.clone(),
                    format!("distinct codes of: {}", instrument_codes()),
                ));
            }
        }
        let hours = body.expires_in_hours.unwrap_or(72);
        if !(1..=168).contains(&hours) {
            return Err(AppError::field("expires_in_hours", hours, "1–168"));
        }
        state.record(PATIENT, id).await?;
        let raw = crate::new_token();
        let now = state.now();
        let expires_at = now + time::Duration::hours(hours);
        let mut tx = state.store.begin().await?;
        tx.insert_questionnaire_link(&NewQuestionnaireLink {
            token_hash: hash_token(&raw),
            patient_id: id,
            instruments: body.instruments.clone(),
            created_by: caller.user.id,
            created_at: now,
            expires_at,
        })
        .await?;
        tx.append_audit(
            &NewAuditEntry::new(
                now,
                caller.actor(),
                "questionnaire_link.create",
                "patient",
                id.to_string(),
            )
            .after(serde_json::json!({ "instruments": body.instruments, "expires_at": rfc3339(expires_at) })),
        )
        .await?;
        tx.commit().await?;
        Ok(LinkOut {
            path: format!("/api/v1/q/{raw}"),
            expires_at,
        })
    }
}

/// What a link asks.
#[derive(Serialize, ToSchema, Debug)]
pub struct LinkFormOut {
    /// Per instrument: its code, how many items, the highest item score.
    pub instruments: Vec<(String, usize, u8)>,
    /// When the link expires.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    /// Always shown on the patient's side.
    pub crisis_information: &'static str,
}

async fn usable_link(state: &App, token: &str) -> Result<ketaflow_store::QuestionnaireLink, AppError> {
    let gone = || AppError::NotFound {
        what: "questionnaire link".into(),
        id: "(this link)".into(),
    };
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(gone());
    }
    let link = state
        .store
        .find_questionnaire_link(&hash_token(token))
        .await?
        .ok_or_else(gone)?;
    if link.used_at.is_some() {
        return Err(AppError::Conflict(
            "this link has been used; ask your clinic for a new one".into(),
        ));
    }
    if state.now() >= link.expires_at {
        return Err(AppError::Conflict(
            "this link has expired; ask your clinic for a new one".into(),
        ));
    }
    Ok(link)
}

impl App {
    /// What the link asks (no account needed).
    pub async fn open_link(&self, token: &str) -> Result<LinkFormOut, AppError> {
        let link = usable_link(self, token).await?;
        Ok(LinkFormOut {
            instruments: link
                .instruments
                .iter()
                .map(|code| {
                    let (n, max) = INSTRUMENTS
                        .iter()
                        .find(|(c, _)| c == code)
                        .and_then(|(_, i)| *i)
                        .map_or((7, 1), Instrument::items);
                    (code.clone(), n, max)
                })
                .collect(),
            expires_at: link.expires_at,
            // Not "alerted": nothing is sent until the patient sends it.
            crisis_information: CRISIS_HELP,
        })
    }
}

/// The patient's answers through a link.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkAnswersIn {
    /// One entry per instrument the link asks, each exactly once.
    pub answers: Vec<AnswersIn>,
}

/// What the patient sees after sending.
#[derive(Serialize, ToSchema, Debug)]
pub struct LinkDoneOut {
    /// Thanks.
    pub message: &'static str,
    /// Present when an answer raised a suicide-risk alert; shown prominently.
    pub crisis_information: Option<&'static str>,
}

impl App {
    /// Send the answers (once). Scores are stored for the care team; a suicide-risk answer alerts them
    /// at once and shows the patient crisis information.
    pub async fn submit_link(&self, token: &str, body: LinkAnswersIn) -> Result<LinkDoneOut, AppError> {
        let state = self;
        let link = usable_link(state, token).await?;
        let mut asked: Vec<&String> = link.instruments.iter().collect();
        let mut given: Vec<&String> = body.answers.iter().map(|a| &a.instrument).collect();
        asked.sort();
        given.sort();
        if asked != given {
            return Err(AppError::field(
                "answers",
                given.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                format!(
                    "exactly one answer set for each of: {}",
                    link.instruments.join(", ")
                ),
            ));
        }
        let now = state.now();
        let mut docs = Vec::new();
        for a in &body.answers {
            docs.push(outcome_doc(a, "home", now, None, "patient-link".into())?);
        }
        let patient = state.record(PATIENT, link.patient_id).await?;
        let name = crate::records::parse::<PatientDoc>(PATIENT, &patient)?.display_name;
        let actor = Actor::system(&format!("patient-link:{}", &link.token_hash[..12]));
        let mut tx = state.store.begin().await?;
        if !tx.use_questionnaire_link(&link.token_hash, now).await? {
            return Err(AppError::Conflict(
                "this link has been used; ask your clinic for a new one".into(),
            ));
        }
        let mut events = Vec::new();
        let mut alerted = false;
        for (doc, reasons) in docs {
            alerted |= !reasons.is_empty();
            let (_, _, e) = store_outcome(&mut tx, &actor, &patient, &name, doc, reasons, now).await?;
            events.extend(e);
        }
        tx.commit().await?;
        state.live.publish(events);
        Ok(LinkDoneOut {
            message: "Thank you. Your answers were sent to your care team.",
            crisis_information: alerted.then_some(CRISIS_INFORMATION),
        })
    }
}

// ---- Exports -------------------------------------------------------------------------------------

impl App {
    /// One patient's questionnaire history as CSV (identified: for the chart). Audited.
    pub async fn export_patient_outcomes(&self, caller: &Caller, id: Uuid) -> Result<String, AppError> {
        let state = self;
        caller.require(Action::ReadClinical)?;
        state.record(PATIENT, id).await?;
        let mut outcomes: Vec<OutcomeOut> = state
            .store
            .list_records(OUTCOME, Some(id), None, 500)
            .await?
            .into_iter()
            .map(outcome_out)
            .collect::<Result<_, _>>()?;
        outcomes.sort_by_key(|o| o.doc.answered_at);
        let mut rows = vec![
            [
                "answered_at",
                "instrument",
                "loinc",
                "context",
                "total",
                "band",
                "flags",
                "recorded_by",
            ]
            .map(str::to_string)
            .to_vec(),
        ];
        for o in &outcomes {
            rows.push(vec![
                rfc3339(o.doc.answered_at),
                o.doc.instrument.clone(),
                o.doc.loinc.clone().unwrap_or_default(),
                o.doc.context.clone(),
                o.doc.total.to_string(),
                o.doc.band.clone().unwrap_or_default(),
                o.doc.flags.join("; "),
                o.doc.recorded_by.clone(),
            ]);
        }
        let now = state.now();
        state
            .store
            .append_audit(
                &NewAuditEntry::new(now, caller.actor(), "outcomes.export", "patient", id.to_string())
                    .after(serde_json::json!({ "rows": outcomes.len() })),
            )
            .await?;
        csv_text(rows)
    }
}

impl App {
    /// Every patient's questionnaires, de-identified, as CSV for research and quality review: no
    /// names, record numbers, ids or dates. Patients appear under a key that is stable within this
    /// export only (a hash with a fresh random salt), ages in 10-year bands (90 and over together),
    /// and time as days since the patient's first infusion. Audited.
    pub async fn export_clinic_outcomes(&self, caller: &Caller) -> Result<String, AppError> {
        let state = self;
        caller.require(Action::ReadClinical)?;
        use rand::RngCore;
        use sha2::Digest;
        let mut salt = [0u8; 32];
        rand::rng().fill_bytes(&mut salt);
        let now = state.now();
        let mut rows = vec![
            [
                "patient_key",
                "age_band",
                "sex",
                "indications",
                "instrument",
                "context",
                "days_from_first_infusion",
                "total",
                "band",
                "response_so_far",
                "remission",
            ]
            .map(str::to_string)
            .to_vec(),
        ];
        let patients = state.store.list_records(PATIENT, None, None, 500).await?;
        for record in patients {
            let pid = record.id;
            let p = crate::records::parse::<PatientDoc>(PATIENT, &record)?;
            let facts = p.facts();
            let key = hex::encode(
                &sha2::Sha256::new_with_prefix(salt)
                    .chain_update(pid.as_bytes())
                    .finalize()[..8],
            );
            let age = facts.age_on(now.date()).get();
            let decade = ((age / 10.0).floor() * 10.0).min(90.0) as u32;
            let age_band = if decade >= 90 {
                "90+".to_string()
            } else {
                format!("{decade}-{}", decade + 9)
            };
            let indications = p
                .indications
                .iter()
                .map(|i| i.code.code().to_string())
                .collect::<Vec<_>>()
                .join(" ");
            let sessions = state.store.list_children(SESSION, pid).await?;
            let first_infusion = sessions
                .iter()
                .filter_map(|r| serde_json::from_value::<SessionDoc>(r.data.clone()).ok())
                .filter_map(|d| d.rates.first().map(|r| r.at))
                .min();
            let window = baseline_window(state, sessions, now)?;
            let mut outcomes: Vec<OutcomeOut> = state
                .store
                .list_records(OUTCOME, Some(pid), None, 500)
                .await?
                .into_iter()
                .map(outcome_out)
                .collect::<Result<_, _>>()?;
            outcomes.sort_by_key(|o| o.doc.answered_at);
            for o in &outcomes {
                let instrument = INSTRUMENTS
                    .iter()
                    .find(|(c, _)| *c == o.doc.instrument)
                    .and_then(|(_, i)| *i);
                let obs: Vec<Observation> = outcomes
                    .iter()
                    .filter(|x| {
                        x.doc.instrument == o.doc.instrument && x.doc.answered_at <= o.doc.answered_at
                    })
                    .map(|x| Observation {
                        at: x.doc.answered_at,
                        total: x.doc.total,
                    })
                    .collect();
                let t = instrument.and_then(|i| trajectory(i, &obs, window));
                rows.push(vec![
                    key.clone(),
                    age_band.clone(),
                    p.sex.code().to_string(),
                    indications.clone(),
                    o.doc.instrument.clone(),
                    o.doc.context.clone(),
                    first_infusion
                        .map(|f| format!("{:.1}", (o.doc.answered_at - f).as_seconds_f64() / 86_400.0))
                        .unwrap_or_default(),
                    o.doc.total.to_string(),
                    o.doc.band.clone().unwrap_or_default(),
                    t.as_ref()
                        .and_then(|t| t.response)
                        .map(|b| b.to_string())
                        .unwrap_or_default(),
                    t.as_ref()
                        .and_then(|t| t.remission)
                        .map(|b| b.to_string())
                        .unwrap_or_default(),
                ]);
            }
        }
        state
            .store
            .append_audit(
                &NewAuditEntry::new(
                    now,
                    caller.actor(),
                    "outcomes.export_deidentified",
                    "clinic",
                    "all",
                )
                .after(serde_json::json!({ "rows": rows.len() - 1 })),
            )
            .await?;
        csv_text(rows)
    }
}

// ---- The measurement schedule --------------------------------------------------------------------

/// The questionnaire that satisfied a measurement.
#[derive(Serialize, ToSchema, Debug, Clone)]
pub struct SatisfiedByOut {
    /// The outcome's id.
    pub outcome_id: Uuid,
    /// Its instrument code.
    pub instrument: String,
    /// Its total.
    pub total: f64,
    /// When it was answered.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub answered_at: OffsetDateTime,
}

/// One scheduled measurement (`ketaflow_clinic::measurements`).
#[derive(Serialize, ToSchema, Debug, Clone)]
pub struct MeasurementOut {
    /// baseline, pre_infusion or follow_up.
    pub occasion: &'static str,
    /// pre_infusion: the infusion's number in the course (1 is the first).
    pub infusion: Option<usize>,
    /// follow_up: days after the last infusion.
    pub follow_up_days: Option<u32>,
    /// Instrument codes; any one of them satisfies the measurement.
    pub instruments: Vec<&'static str>,
    /// Those the patient answers alone, so they may be sent as a questionnaire link (MADRS and
    /// the CRPS Severity Score need a clinician).
    pub self_report: Vec<&'static str>,
    /// When it is due.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub due_at: OffsetDateTime,
    /// A score counts from this time (inclusive) ...
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub opens_at: OffsetDateTime,
    /// ... if strictly after this one (the previous infusion), when given ...
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub after: Option<OffsetDateTime>,
    /// ... until this time (inclusive); null while the infusion it precedes has not started.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub closes_at: Option<OffsetDateTime>,
    /// done, due, overdue (past due, a score still counts), upcoming or missed (the window closed).
    pub status: &'static str,
    /// The questionnaire that satisfied it (done only).
    pub done_by: Option<SatisfiedByOut>,
}

/// A patient's measurement schedule.
#[derive(Serialize, ToSchema, Debug)]
pub struct ScheduleOut {
    /// The patient.
    pub patient_id: Uuid,
    /// The protocol of the course (of the patient's latest infusion); null without a session.
    pub protocol_id: Option<String>,
    /// Follow-ups, days after the last infusion.
    pub follow_up_days: Vec<u32>,
    /// How many days before its due time a score counts.
    pub window_early_days: u32,
    /// How many days after a follow-up's due time a score counts.
    pub window_late_days: u32,
    /// Where the follow-up days and the window come from.
    pub source: String,
    /// Whether they are clinic settings.
    pub clinic_setting: bool,
    /// Every measurement, in due order.
    pub measurements: Vec<MeasurementOut>,
}

/// A due or overdue measurement on the clinic's reminder list.
#[derive(Serialize, ToSchema, Debug)]
pub struct DueOut {
    /// The patient.
    pub patient_id: Uuid,
    /// The patient's name.
    pub patient_name: String,
    /// The protocol of the course.
    pub protocol_id: String,
    /// The measurement.
    #[serde(flatten)]
    pub measurement: MeasurementOut,
}

/// The infusions of a course from its session records: started ones at their start, and booked
/// ones not yet started (scheduled or checked in) at their booked time; sessions closed without
/// starting are left out. Returns the protocol of the latest one with them.
/// A session as an infusion of the course: started (its first rate), or booked and not yet
/// started; `None` for one closed without an infusion.
fn infusion_of(s: &crate::sessions::SessionOut) -> Option<measurements::Infusion> {
    match s.rates.first() {
        Some(r) => Some(measurements::Infusion {
            at: r.at,
            started: true,
        }),
        None if s.phase.before_infusion() => Some(measurements::Infusion {
            at: s.scheduled_for,
            started: false,
        }),
        None => None,
    }
}

fn course_infusions(
    sessions: Vec<Record>,
    now: OffsetDateTime,
) -> Result<(Option<String>, Vec<measurements::Infusion>), AppError> {
    let mut latest: Option<(OffsetDateTime, String)> = None;
    let mut infusions = Vec::new();
    for record in sessions {
        let s = session_out(record, now)?;
        let Some(infusion) = infusion_of(&s) else { continue };
        if latest.as_ref().is_none_or(|(at, _)| infusion.at >= *at) {
            latest = Some((infusion.at, s.protocol_id.clone()));
        }
        infusions.push(infusion);
    }
    Ok((latest.map(|(_, p)| p), infusions))
}

/// The protocol's baseline window before the patient's first infusion (started, or booked while
/// none has started), from the protocol of that infusion's session; `None` without one.
fn baseline_window(
    state: &App,
    sessions: Vec<Record>,
    now: OffsetDateTime,
) -> Result<Option<BaselineWindow>, AppError> {
    let mut first: Option<(measurements::Infusion, String)> = None;
    for record in sessions {
        let s = session_out(record, now)?;
        let Some(infusion) = infusion_of(&s) else { continue };
        // A started infusion comes first whatever is booked; among the same kind, the earliest.
        let earlier = first
            .as_ref()
            .is_none_or(|(f, _)| (!infusion.started, infusion.at) < (!f.started, f.at));
        if earlier {
            first = Some((infusion, s.protocol_id.clone()));
        }
    }
    let Some((infusion, protocol_id)) = first else {
        return Ok(None);
    };
    let protocol = state.library.get(&protocol_id).ok_or_else(|| {
        AppError::Internal(format!(
            "the course's protocol {protocol_id:?} is not in the library"
        ))
    })?;
    Ok(Some(BaselineWindow::before(infusion, protocol.outcomes.window)))
}

/// The schedule of one patient from their record and session records (one page of outcomes is
/// read here).
async fn patient_schedule(
    state: &App,
    patient: &Loaded<PatientDoc>,
    sessions: Vec<Record>,
    now: OffsetDateTime,
) -> Result<ScheduleOut, AppError> {
    let (protocol_id, infusions) = course_infusions(sessions, now)?;
    let protocol = match &protocol_id {
        Some(p) => Some(state.library.get(p).ok_or_else(|| {
            AppError::Internal(format!("the course's protocol {p:?} is not in the library"))
        })?),
        None => None,
    };
    let Some(protocol) = protocol else {
        return Ok(ScheduleOut {
            patient_id: patient.record.id,
            protocol_id: None,
            follow_up_days: vec![],
            window_early_days: 0,
            window_late_days: 0,
            source: String::new(),
            clinic_setting: false,
            measurements: vec![],
        });
    };
    let recorded: Vec<(Uuid, OutcomeDoc)> = state
        .store
        .list_records(
            OUTCOME,
            Some(patient.record.id),
            None,
            ketaflow_store::MAX_RECORD_PAGE,
        )
        .await?
        .into_iter()
        .map(|r| outcome_out(r).map(|o| (o.id, o.doc)))
        .collect::<Result<_, _>>()?;
    let (ids, scores): (Vec<Uuid>, Vec<measurements::RecordedScore>) = recorded
        .iter()
        .filter_map(|(id, d)| {
            measurements::instrument_by_code(&d.instrument).map(|instrument| {
                (
                    *id,
                    measurements::RecordedScore {
                        instrument,
                        at: d.answered_at,
                        total: d.total,
                    },
                )
            })
        })
        .unzip();
    let indications: Vec<Indication> = patient.doc.indications.iter().map(|i| i.code).collect();
    let plan = &protocol.outcomes;
    let measurements = measurements::schedule(plan, &indications, &infusions, &scores, now)
        .into_iter()
        .map(|m| MeasurementOut {
            occasion: m.occasion.code(),
            infusion: match m.occasion {
                Occasion::PreInfusion { infusion } => Some(infusion),
                _ => None,
            },
            follow_up_days: match m.occasion {
                Occasion::FollowUp { days } => Some(days),
                _ => None,
            },
            instruments: m.instruments.iter().map(|i| i.code()).collect(),
            self_report: m
                .instruments
                .iter()
                .filter(|i| measurements::is_self_report(**i))
                .map(|i| i.code())
                .collect(),
            due_at: m.due_at,
            opens_at: m.opens_at,
            after: m.after,
            closes_at: m.closes_at,
            status: m.status.code(),
            done_by: match m.status {
                Status::Done { index, score } => Some(SatisfiedByOut {
                    outcome_id: ids[index],
                    instrument: score.instrument.code().to_string(),
                    total: score.total,
                    answered_at: score.at,
                }),
                _ => None,
            },
        })
        .collect();
    Ok(ScheduleOut {
        patient_id: patient.record.id,
        protocol_id: Some(protocol.id.clone()),
        follow_up_days: plan.follow_up_days.clone(),
        window_early_days: plan.window.early_days,
        window_late_days: plan.window.late_days,
        source: plan.source.clone(),
        clinic_setting: plan.clinic_setting,
        measurements,
    })
}

impl App {
    /// A patient's measurement schedule: baseline, before each infusion (started or booked) and the
    /// follow-ups after the last, each with its window and status (done with the questionnaire that
    /// satisfied it, due, overdue, upcoming or missed), from the protocol of the course.
    pub async fn schedule(&self, caller: &Caller, id: Uuid) -> Result<ScheduleOut, AppError> {
        let state = self;
        caller.require(Action::ReadClinical)?;
        let patient = state.load::<PatientDoc>(PATIENT, id).await?;
        let sessions = state.store.list_children(SESSION, id).await?;
        patient_schedule(state, &patient, sessions, state.now()).await
    }
}

impl App {
    /// The reminder list: every due or overdue measurement of every patient with an open course,
    /// oldest due first.
    ///
    /// A course is open while the patient has an open session (booked, checked in, infusing, ...) or
    /// the window of the last follow-up after their last infusion has not closed.
    ///
    /// Cost: two listings (the in-progress index of open sessions; and every session changed within
    /// the library's longest follow-up horizon, 84 + 3 days in the shipped protocols — a session is
    /// changed when its infusion starts, so this holds every session that can still anchor a
    /// follow-up), then, for each patient with an open course, three reads (the patient, their
    /// sessions, their questionnaires): 2 + 3 × patients queries, bounded by the clinic's activity
    /// over the horizon, not by the size of its history, and no patient is dropped by a page limit.
    pub async fn due_measurements(&self, caller: &Caller) -> Result<Vec<DueOut>, AppError> {
        let state = self;
        caller.require(Action::ReadClinical)?;
        let now = state.now();
        let open = state.store.list_in_progress(SESSION).await?;
        let horizon_days = state
            .library
            .protocols
            .values()
            .map(|p| p.outcomes.follow_up_days.last().copied().unwrap_or(0) + p.outcomes.window.late_days)
            .max()
            .unwrap_or(0);
        let recent = state
            .store
            .list_updated_since(SESSION, now - time::Duration::days(i64::from(horizon_days)))
            .await?;
        let mut candidates: Vec<Uuid> = open.iter().filter_map(|r| r.parent_id).collect();
        // Patients with no open session: only while the last follow-up window after the latest of
        // their recent sessions can still be open.
        for record in &recent {
            let Some(pid) = record.parent_id else { continue };
            if candidates.contains(&pid) {
                continue;
            }
            let Ok(doc) = serde_json::from_value::<SessionDoc>(record.data.clone()) else {
                continue;
            };
            let Some(protocol) = state.library.get(&doc.protocol_id) else {
                continue;
            };
            let plan = &protocol.outcomes;
            let anchor = doc.rates.first().map_or(doc.scheduled_for, |r| r.at);
            let horizon_days = plan.follow_up_days.last().copied().unwrap_or(0) + plan.window.late_days;
            if anchor + time::Duration::days(i64::from(horizon_days)) >= now {
                candidates.push(pid);
            }
        }
        let mut due = Vec::new();
        for pid in candidates {
            let patient = state.load::<PatientDoc>(PATIENT, pid).await?;
            let sessions = state.store.list_children(SESSION, pid).await?;
            let schedule = patient_schedule(state, &patient, sessions, now).await?;
            let Some(protocol_id) = schedule.protocol_id else {
                continue;
            };
            for m in schedule.measurements {
                if matches!(m.status, "due" | "overdue") {
                    due.push(DueOut {
                        patient_id: pid,
                        patient_name: patient.doc.display_name.clone(),
                        protocol_id: protocol_id.clone(),
                        measurement: m,
                    });
                }
            }
        }
        due.sort_by_key(|d| (d.measurement.due_at, d.patient_id));
        Ok(due)
    }
}
