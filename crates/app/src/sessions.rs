//! The infusion session's use cases: reading a session with what was given so far, the state
//! machine's transitions, saving a changed session with its audit entry and live event, the
//! re-prediction from the recorded rates, and the discharge assessment.
//!
//! The session is a versioned record ([`SessionDoc`]) whose state is never stored as such: it is
//! the replay of the recorded transitions through `ketaflow_clinic::session::Session::apply`, the
//! one door of the state machine. The decisions (which plan may start, the resume rate, who may
//! discharge early) are `ketaflow_clinic`'s; this module loads their inputs and saves the result.

use ketaflow_clinic::delivery::check_completed_as_planned;
use ketaflow_clinic::delivery::{Delivery, RateChange};
use ketaflow_clinic::discharge::{
    DischargeAssessment, DischargeBasis, DischargeInput, DischargeRefusal, OpenAlarm, OverrideRequest,
    TakenVitals, assess_discharge, discharge_basis,
};
use ketaflow_clinic::news2::Aldrete;
use ketaflow_clinic::plan::MIN_OVERRIDE_REASON_CHARS;
use ketaflow_clinic::plan::{PREDICTION_TAIL_S, Prediction, covariates_on, predict_delivery};
use ketaflow_clinic::protocol::Protocol;
use ketaflow_clinic::session::{
    SessionEvent, SessionState, StopKind, TransitionError, plan_may_start, resume_rate,
};
use ketaflow_store::{Actor, NewAuditEntry, NewEvent, Record, RecordChange};
use ketaflow_units::MgPerHour;
use ketaflow_units::Milligrams;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::policy::{Action, Caller};
use crate::records::{
    AssessmentDoc, BaselineDoc, BaselineOrigin, PATIENT, PLAN, PatientDoc, PlanDoc, PreChecksDoc,
    RateChangeKind, RateDoc, SESSION, SessionDoc, SideEffectDoc, StopCode, TransitionDoc, TransitionKind,
    pre_checks, stored_reading,
};
use crate::{App, AppError};

// ---- Reading -------------------------------------------------------------------------------------

/// A session as the API returns it.
#[derive(Serialize, ToSchema, Debug)]
pub struct SessionOut {
    /// Id.
    pub id: Uuid,
    /// Record version (send it back as `expected_version` to detect concurrent changes).
    pub version: i64,
    /// scheduled, checked_in, infusing, paused, stopped, recovering, discharged, aborted.
    pub state: &'static str,
    /// The same state, typed, replayed from the record: what the rules read (`state` is its
    /// name on the wire).
    #[serde(skip)]
    #[schema(ignore)]
    pub phase: SessionState,
    /// The events legal now.
    pub legal_events: Vec<&'static str>,
    /// Since when the session is in its state.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub state_since: Option<OffsetDateTime>,
    /// Rate in force, mg/h.
    pub current_rate_mg_per_h: f64,
    /// Ketamine given so far, mg (exact integral of the recorded rates).
    pub given_mg: f64,
    /// Infusing time so far, minutes.
    pub infusing_min: f64,
    /// The patient.
    pub patient_id: Uuid,
    /// The patient's name as the clinic shows it (for the board).
    pub patient_name: String,
    /// The dose plan (must be approved before the infusion starts).
    pub plan_id: Uuid,
    /// The plan's protocol.
    pub protocol_id: String,
    /// Chair or bay.
    pub chair: String,
    /// When it is booked.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub scheduled_for: OffsetDateTime,
    /// Who booked it.
    pub created_by: String,
    /// Baseline BP: from intake until check-in, then the pre-infusion reading.
    pub baseline: Option<BaselineDoc>,
    /// Every applied transition, in order.
    pub transitions: Vec<TransitionDoc>,
    /// What the pump delivered, in order.
    pub rates: Vec<RateDoc>,
    /// Side effects, in the order recorded.
    pub side_effects: Vec<SideEffectDoc>,
    /// Bedside assessments (Aldrete, MOAA/S, escort), in order.
    pub assessments: Vec<AssessmentDoc>,
}

/// The exact amount given by piecewise-constant rates up to `until`, mg, and the time spent at a
/// non-zero rate, s.
fn given_until(rates: &[RateDoc], until: OffsetDateTime) -> (f64, f64) {
    let mut mg = 0.0;
    let mut seconds = 0.0;
    for (i, r) in rates.iter().enumerate() {
        let end = rates.get(i + 1).map_or(until, |n| n.at).min(until);
        if end > r.at {
            let dt = (end - r.at).as_seconds_f64();
            mg += r.rate_mg_per_h.get() * dt / 3600.0;
            if r.is_delivering() {
                seconds += dt;
            }
        }
    }
    (mg, seconds)
}

/// A stored session read for a use case: its record, its document and its replayed state, with
/// what was given up to `now`. [`SessionNow::out`] is its wire form.
#[derive(Debug, Clone)]
pub struct SessionNow {
    /// The record as stored.
    pub record: Record,
    /// Its document.
    pub doc: SessionDoc,
    /// The state replayed from its transitions.
    pub phase: SessionState,
    /// The state's name.
    pub state: &'static str,
    /// Ketamine given up to `now`, mg.
    pub given_mg: f64,
    /// Infusing time up to `now`, minutes.
    pub infusing_min: f64,
}

/// A stored session read with its state and what was given up to `now`; data that cannot be read
/// names the record.
pub fn session_now(record: Record, now: OffsetDateTime) -> Result<SessionNow, AppError> {
    let doc: SessionDoc = crate::records::parse(SESSION, &record)?;
    let session = doc.replay()?;
    let (given_mg, infusing_s) = given_until(&doc.rates, now);
    Ok(SessionNow {
        record,
        phase: session.state().clone(),
        state: session.state().name(),
        doc,
        given_mg,
        infusing_min: infusing_s / 60.0,
    })
}

impl SessionNow {
    /// The wire form.
    pub fn out(self) -> SessionOut {
        let doc = self.doc;
        SessionOut {
            id: self.record.id,
            version: self.record.version,
            state: self.state,
            legal_events: self.phase.legal_events().to_vec(),
            phase: self.phase,
            state_since: doc.transitions.last().map(|t| t.at),
            current_rate_mg_per_h: doc.current_rate().get(),
            given_mg: self.given_mg,
            infusing_min: self.infusing_min,
            patient_id: doc.patient_id,
            patient_name: doc.patient_name,
            plan_id: doc.plan_id,
            protocol_id: doc.protocol_id,
            chair: doc.chair,
            scheduled_for: doc.scheduled_for,
            created_by: doc.created_by,
            baseline: doc.baseline,
            transitions: doc.transitions,
            rates: doc.rates,
            side_effects: doc.side_effects,
            assessments: doc.assessments,
        }
    }
}

/// A stored session as the API shows it, with what was given up to `now`.
pub fn session_out(record: Record, now: OffsetDateTime) -> Result<SessionOut, AppError> {
    Ok(session_now(record, now)?.out())
}

impl App {
    /// A session as people name it: "Robin Hale, Chair 2, booked 2026-11-26 10:00" (the clinic's
    /// time).
    pub fn session_name(&self, s: &SessionOut) -> String {
        format!(
            "{}, {}, booked {}",
            s.patient_name,
            s.chair,
            self.zone().clock(s.scheduled_for)
        )
    }
}

impl App {
    /// A session, read with its state and what was given so far.
    pub async fn session(&self, caller: &Caller, id: Uuid) -> Result<SessionOut, AppError> {
        caller.require(Action::ReadClinical)?;
        session_out(self.record(SESSION, id).await?, self.now())
    }

    /// Clears the in-progress mark of sessions that are closed (a database written before the mark
    /// existed has every session marked); run once at start-up. Returns how many were cleared.
    pub async fn reconcile_in_progress(&self) -> Result<usize, AppError> {
        let now = self.now();
        let mut cleared = 0;
        for record in self.store.list_in_progress(SESSION).await? {
            let id = record.id;
            if !session_out(record, now)?.phase.is_open() {
                let mut tx = self.store.begin().await?;
                tx.set_in_progress(SESSION, id, false).await?;
                tx.commit().await?;
                cleared += 1;
            }
        }
        Ok(cleared)
    }

    /// Stores a changed session document with its audit entry and one event, in one transaction,
    /// and hands the event to live followers after the commit. The version the caller read is
    /// checked inside the transaction: a concurrent change is a stale version, never lost. When
    /// the change closes the session, its device tokens are revoked in the same transaction.
    pub async fn save_session(&self, change: SessionChange<'_>) -> Result<Record, AppError> {
        let SessionChange {
            actor,
            action,
            record,
            doc,
            event_kind,
            event_data,
            now,
        } = change;
        let data = serde_json::to_value(doc)?;
        let label = format!("{} {}", doc.chair, doc.patient_name);
        let closes = !doc.replay()?.state().is_open();
        let mut tx = self.store.begin().await?;
        let updated = tx
            .update_record(
                &RecordChange {
                    kind: SESSION,
                    id: record.id,
                    expected_version: record.version,
                    label: &label,
                    data: &data,
                    lock: false,
                },
                now,
            )
            .await?;
        tx.append_audit(
            &NewAuditEntry::new(now, actor.clone(), action, SESSION, record.id.to_string())
                .before(record.data.clone())
                .after(data),
        )
        .await?;
        let event = tx
            .append_event(&NewEvent {
                session_id: record.id,
                kind: event_kind,
                at: now,
                data: &event_data,
            })
            .await?;
        if closes {
            tx.revoke_device_tokens(record.id, now).await?;
            tx.set_in_progress(SESSION, record.id, false).await?;
        }
        tx.commit().await?;
        self.live.publish([event]);
        Ok(updated)
    }
}

/// A change to a session, as [`App::save_session`] stores it.
#[derive(Debug)]
pub struct SessionChange<'a> {
    /// Who made it.
    pub actor: &'a Actor,
    /// The audit action, e.g. `session.pause`.
    pub action: &'a str,
    /// The record as read (its version is checked, its data is the audit's "before").
    pub record: &'a Record,
    /// The changed document.
    pub doc: &'a SessionDoc,
    /// The live event's kind, e.g. `session.state`.
    pub event_kind: &'a str,
    /// The live event's data.
    pub event_data: serde_json::Value,
    /// When.
    pub now: OffsetDateTime,
}

// ---- Transitions ---------------------------------------------------------------------------------

/// A transition of the session's state machine.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionIn {
    /// check_in, start, pause, resume, stop, begin_recovery, discharge, abort.
    pub event: String,
    /// The pre-checks (check_in).
    #[serde(default)]
    pub checks: Option<PreChecksDoc>,
    /// Reason: pause, early stop, abort, and a physician's discharge override.
    #[serde(default)]
    pub reason: Option<String>,
    /// stop: completed (as planned; refused unless the dose given is within the tolerance of the
    /// plan) or early (with its reason). Required: there is no default.
    #[serde(default)]
    pub stop: Option<String>,
    /// Discharge before every criterion is met (physicians, with a reason).
    #[serde(default)]
    pub override_discharge: bool,
    /// Optional: the record version the client last saw; a different one is a 409.
    #[serde(default)]
    pub expected_version: Option<i64>,
}

/// The events of the state machine, as named on the wire.
pub const EVENTS: [&str; 8] = [
    "check_in",
    "start",
    "pause",
    "resume",
    "stop",
    "begin_recovery",
    "discharge",
    "abort",
];

impl App {
    /// Applies one event to a session's state machine. An event that is not legal now is a
    /// conflict that lists the legal ones; an event whose content is refused (missing checks, no
    /// reason, plan not approved, discharge criteria unmet) is refused with the reason. Nothing
    /// changes on refusal.
    pub async fn transition(
        &self,
        caller: &Caller,
        id: Uuid,
        request: TransitionIn,
    ) -> Result<SessionOut, AppError> {
        caller.require(Action::RunSession)?;
        let event = request
            .event
            .parse::<TransitionKind>()
            .map_err(|allowed| AppError::field("event", request.event.clone(), allowed))?;
        let now = self.now();
        let record = self.record(SESSION, id).await?;
        if let Some(v) = request.expected_version
            && v != record.version
        {
            return Err(AppError::StaleVersion {
                message: format!(
                    "the session changed since version {v} (now {}); reload and retry",
                    record.version
                ),
                current_version: record.version,
            });
        }
        let mut doc: SessionDoc = crate::records::parse(SESSION, &record)?;
        let mut session = doc.replay()?;
        let current = session.state().clone();
        // Refuse an illegal event before looking at its content.
        if !current.legal_events().contains(&request.event.as_str()) {
            let legal = current.legal_events();
            return Err(AppError::Conflict(format!(
                "cannot {} a session that is {}; legal now: {}",
                request.event,
                current.name(),
                if legal.is_empty() {
                    "nothing (the session is closed)".to_string()
                } else {
                    legal.join(", ")
                }
            )));
        }
        let by = caller.user.id.to_string();
        let mut t = TransitionDoc {
            event,
            at: now,
            by: by.clone(),
            reason: request
                .reason
                .as_deref()
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty()),
            checks: None,
            stop: None,
        };
        let mut rate: Option<RateDoc> = None;
        let mut extra: Option<serde_json::Value> = None;
        let plan = self.load::<PlanDoc>(PLAN, doc.plan_id).await?;
        let rate_doc = |kind: RateChangeKind, rate: MgPerHour| {
            let (concentration, weight) = (plan.doc.concentration_mg_per_ml, plan.doc.dosing_weight_kg);
            RateDoc::delivering(kind, now, rate, concentration, weight, by.clone())
        };
        match event {
            TransitionKind::CheckIn => {
                let checks = request.checks.clone().ok_or_else(|| {
                    AppError::field("checks", serde_json::Value::Null, "the pre-checks object")
                })?;
                // Baseline vitals are not a checkbox: a reading with BP must be on file for this
                // session.
                let baseline = self.store.list_vitals(id).await?.into_iter().rev().find_map(|v| {
                    let r = stored_reading(&v.data).ok()?;
                    Some(BaselineDoc {
                        systolic_mmhg: r.systolic_mmhg?,
                        diastolic_mmhg: r.diastolic_mmhg?,
                        heart_rate_per_min: r.heart_rate_per_min,
                        origin: BaselineOrigin::Session,
                    })
                });
                session
                    .apply(
                        SessionEvent::CheckIn(pre_checks(&checks, baseline.is_some())),
                        now,
                    )
                    .map_err(refused)?;
                doc.baseline = baseline;
                t.checks = Some(checks);
            }
            TransitionKind::Start => {
                plan_may_start(plan.doc.status, plan.record.locked).map_err(|e| AppError::Refused {
                    code: "plan_not_approved",
                    message: format!("plan {}: {e}", doc.plan_id),
                })?;
                session
                    .apply(
                        SessionEvent::Start {
                            plan_id: doc.plan_id.to_string(),
                        },
                        now,
                    )
                    .map_err(refused)?;
                rate = Some(rate_doc(RateChangeKind::Start, plan.doc.rate_mg_per_h));
            }
            TransitionKind::Pause => {
                session
                    .apply(
                        SessionEvent::Pause {
                            reason: t.reason.clone().unwrap_or_default(),
                        },
                        now,
                    )
                    .map_err(refused)?;
                rate = Some(rate_doc(RateChangeKind::Pause, MgPerHour::ZERO));
            }
            TransitionKind::Resume => {
                session.apply(SessionEvent::Resume, now).map_err(refused)?;
                let recorded: Vec<MgPerHour> = doc.rates.iter().map(|r| r.rate_mg_per_h).collect();
                rate = Some(rate_doc(
                    RateChangeKind::Resume,
                    resume_rate(&recorded, plan.doc.rate_mg_per_h),
                ));
            }
            TransitionKind::Stop => {
                // No default: "completed as planned" is a claim the clinician makes, never assumed.
                let kind = match request.stop.as_deref() {
                    Some("completed") => StopKind::Completed,
                    Some("early") => StopKind::Early(t.reason.clone().unwrap_or_default()),
                    other => {
                        return Err(AppError::field(
                            "stop",
                            other.map_or(serde_json::Value::Null, serde_json::Value::from),
                            "completed (as planned) or early (with its reason)",
                        ));
                    }
                };
                // "Completed as planned" must be true of the dose given.
                if kind == StopKind::Completed {
                    let (given_mg, _) = given_until(&doc.rates, now);
                    let as_mg = |v: f64| Milligrams::new(v).map_err(|e| AppError::internal(&e));
                    check_completed_as_planned(
                        as_mg(given_mg)?,
                        plan.doc.dose_mg,
                        self.settings.dose_tolerance,
                    )
                    .map_err(|e| AppError::RefusedAt {
                        code: "not_as_planned",
                        message: e.to_string(),
                        field: "stop".into(),
                    })?;
                }
                t.stop = Some(if matches!(kind, StopKind::Early(_)) {
                    StopCode::Early
                } else {
                    StopCode::Completed
                });
                session.apply(SessionEvent::Stop(kind), now).map_err(refused)?;
                rate = Some(rate_doc(RateChangeKind::Stop, MgPerHour::ZERO));
            }
            TransitionKind::BeginRecovery => {
                session.apply(SessionEvent::BeginRecovery, now).map_err(refused)?;
            }
            TransitionKind::Discharge => {
                let (assessment, decided) = self.assess_discharge(id, &doc, now).await?;
                let request_override = request.override_discharge.then_some(OverrideRequest {
                    by_physician: caller.may(Action::OverrideSession),
                    reason: request.reason.as_deref(),
                });
                let open_alarms = self.store.list_alarms(Some(id), true).await?;
                let open: Vec<OpenAlarm> = open_alarms
                    .iter()
                    .map(|a| OpenAlarm {
                        code: &a.code,
                        // Alarms stored before priorities were named say "urgent" for high.
                        urgent: ketaflow_clinic::vitals::Priority::from_stored(&a.level)
                            .is_none_or(|p| p == ketaflow_clinic::vitals::Priority::High),
                        acknowledged: a.state != ketaflow_store::AlarmState::Raised,
                    })
                    .collect();
                match discharge_basis(&decided, &open, request_override) {
                    Ok(DischargeBasis::CriteriaMet) => {}
                    Ok(DischargeBasis::PhysicianOverride { reason, .. }) => t.reason = Some(reason),
                    Err(DischargeRefusal::CriteriaUnmet(unmet)) => {
                        return Err(AppError::Refused {
                            code: "discharge_criteria_unmet",
                            message: format!(
                                "discharge criteria not met: {}; a physician may override with a reason",
                                unmet
                                    .iter()
                                    .map(|code| ketaflow_clinic::discharge::criterion_name(code))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        });
                    }
                    Err(DischargeRefusal::OverrideNotPermitted) => {
                        // The role check names the role and the action, as every refusal does.
                        caller.require(Action::OverrideSession)?;
                        return Err(AppError::Forbidden {
                            role: caller.user.role.as_str(),
                            action: Action::OverrideSession.describe(),
                        });
                    }
                    Err(DischargeRefusal::OverrideNeedsReason) => {
                        return Err(AppError::field(
                            "reason",
                            request.reason.as_deref().map(str::trim).unwrap_or_default(),
                            format!(
                                "a reason of {MIN_OVERRIDE_REASON_CHARS}–1000 characters, as for a plan override"
                            ),
                        ));
                    }
                    Err(DischargeRefusal::UrgentAlarmUnacknowledged(codes)) => {
                        return Err(AppError::Refused {
                            code: "urgent_alarm_unacknowledged",
                            message: format!(
                                "an urgent alarm is unacknowledged ({}); acknowledge it, and see to the patient, before discharge",
                                codes.join(", ")
                            ),
                        });
                    }
                }
                session.apply(SessionEvent::Discharge, now).map_err(refused)?;
                extra = Some(serde_json::to_value(&assessment)?);
            }
            TransitionKind::Abort => {
                session
                    .apply(
                        SessionEvent::Abort {
                            reason: t.reason.clone().unwrap_or_default(),
                        },
                        now,
                    )
                    .map_err(refused)?;
                if doc.current_rate().get() > 0.0 {
                    rate = Some(rate_doc(RateChangeKind::Abort, MgPerHour::ZERO));
                }
            }
        }
        doc.transitions.push(t.clone());
        if let Some(r) = rate {
            doc.rates.push(r);
        }
        let state_name = session.state().name();
        let event_data = serde_json::json!({
            "event": t.event, "state": state_name, "by": t.by, "reason": t.reason,
            "rate_mg_per_h": doc.current_rate(), "discharge": extra,
        });
        let updated = self
            .save_session(SessionChange {
                actor: &caller.actor(),
                action: &format!("session.{}", t.event.code()),
                record: &record,
                doc: &doc,
                event_kind: "session.state",
                event_data,
                now,
            })
            .await?;
        session_out(updated, now)
    }
}

fn corrupt_session(id: Uuid, e: impl std::fmt::Display) -> AppError {
    AppError::CorruptRecord {
        kind: SESSION,
        id: id.to_string(),
        reason: e.to_string(),
    }
}

/// A state-machine refusal as the application answers it.
pub fn refused(e: TransitionError) -> AppError {
    match e {
        TransitionError::Illegal { .. } => AppError::Conflict(e.to_string()),
        TransitionError::Refused(message) => AppError::Refused {
            code: "transition_refused",
            message,
        },
    }
}

// ---- What was given and what it predicts ---------------------------------------------------------

/// The recorded rates as a delivery.
pub fn delivery(id: Uuid, doc: &SessionDoc) -> Result<Delivery, AppError> {
    let changes = doc
        .rates
        .iter()
        .map(|r| {
            Ok(RateChange {
                at: r.at,
                rate: r.rate_mg_per_h,
            })
        })
        .collect::<Result<Vec<_>, AppError>>()?;
    Delivery::new(changes).map_err(|e| corrupt_session(id, format!("stored rates: {e}")))
}

impl App {
    /// The session's protocol from the library in force.
    fn protocol_of(&self, id: Uuid, doc: &SessionDoc) -> Result<&Protocol, AppError> {
        self.library.get(&doc.protocol_id).ok_or_else(|| {
            corrupt_session(
                id,
                format!("its protocol {} is not in the library", doc.protocol_id),
            )
        })
    }

    /// The session's prediction from what was actually given, with its origin (the first start).
    /// While the infusion runs, the rate in force is assumed to continue for the rest of the
    /// planned infusing time; that assumption is stated in the prediction's warnings.
    pub async fn predict_session(
        &self,
        id: Uuid,
        doc: &SessionDoc,
        now: OffsetDateTime,
    ) -> Result<Option<(OffsetDateTime, Prediction)>, AppError> {
        if delivery(id, doc)?.first_started_at().is_none() {
            return Ok(None);
        }
        let plan = self.load::<PlanDoc>(PLAN, doc.plan_id).await?;
        let patient = self.load::<PatientDoc>(PATIENT, doc.patient_id).await?;
        self.predict_with(id, doc, &plan.doc, &patient.doc, now)
    }

    /// [`App::predict_session`] with the plan and the patient already loaded.
    pub fn predict_with(
        &self,
        id: Uuid,
        doc: &SessionDoc,
        plan: &PlanDoc,
        patient: &PatientDoc,
        now: OffsetDateTime,
    ) -> Result<Option<(OffsetDateTime, Prediction)>, AppError> {
        let delivery = delivery(id, doc)?;
        let Some(origin) = delivery.first_started_at() else {
            return Ok(None);
        };
        let protocol = self.protocol_of(id, doc)?;
        let facts = patient.facts();
        let covariates = covariates_on(&facts, origin.date()).map_err(|e| AppError::Refused {
            code: "prediction_unavailable",
            message: e.to_string(),
        })?;
        let (until, projected) = match delivery.ended_at() {
            Some(end) => (end, None),
            None => {
                let infused = delivery
                    .infusing_seconds_until(now)
                    .map_err(|e| corrupt_session(id, e))?
                    .get();
                let remaining = (plan.duration_min.get() * 60.0 - infused).max(0.0);
                (now + time::Duration::seconds_f64(remaining), Some(remaining))
            }
        };
        let mut segments = delivery.segments(origin, until);
        // The running rate extends to `until`; `segments` stops the last open piece there.
        if let (Some(last), Some(_)) = (segments.last_mut(), projected) {
            last.end_s = (until - origin).as_seconds_f64();
        }
        let end_s = (until - origin).as_seconds_f64();
        let mut prediction = predict_delivery(protocol, covariates, segments, end_s + PREDICTION_TAIL_S)
            .map_err(|e| AppError::Refused {
                code: "prediction_unavailable",
                message: e.to_string(),
            })?;
        if let Some(remaining) = projected {
            prediction.warnings.push(format!(
            "the infusion is running: the current rate is assumed to continue for the remaining {:.0} min of the planned infusing time",
            remaining / 60.0
        ));
        }
        Ok(Some((origin, prediction)))
    }

    /// When Ce is predicted to stay below the protocol's recovery threshold, from what was given.
    pub async fn predicted_recovery(
        &self,
        id: Uuid,
        doc: &SessionDoc,
        now: OffsetDateTime,
    ) -> Result<Option<OffsetDateTime>, AppError> {
        Ok(self.predict_session(id, doc, now).await?.and_then(|(origin, p)| {
            p.ce_below_threshold_from_s
                .map(|s| origin + time::Duration::seconds_f64(s))
        }))
    }

    /// Evaluates the discharge criteria of a session whose infusion has ended: the answer as shown,
    /// and the clinic's assessment the discharge rule decides on.
    pub async fn assess_discharge(
        &self,
        id: Uuid,
        doc: &SessionDoc,
        now: OffsetDateTime,
    ) -> Result<(DischargeOut, DischargeAssessment), AppError> {
        let protocol = self.protocol_of(id, doc)?;
        let ended = doc
            .transitions
            .iter()
            .rev()
            .find(|t| t.event == TransitionKind::Stop)
            .map(|t| t.at)
            .ok_or_else(|| {
                AppError::Conflict("the infusion has not ended; discharge criteria apply after it".into())
            })?;
        let latest = self.latest_standing_vital(id, doc).await?;
        let latest_vitals = match latest {
            Some(v) => {
                let reading = stored_reading(&v.data)?;
                Some((
                    TakenVitals {
                        vitals: reading.vital_signs(0)?,
                        taken_at: v.taken_at,
                    },
                    reading,
                ))
            }
            None => None,
        };
        let last_assessment =
            |pick: fn(&AssessmentDoc) -> bool| doc.assessments.iter().rev().find(|a| pick(a));
        let aldrete = last_assessment(|a| a.aldrete.is_some())
            .and_then(|a| a.aldrete.as_ref())
            .map(|a| Aldrete {
                activity: a.activity,
                respiration: a.respiration,
                circulation: a.circulation,
                consciousness: a.consciousness,
                spo2: a.spo2,
            });
        // The most recent MOAA/S, from an assessment or a reading, whichever was later.
        let moaas_assessed =
            last_assessment(|a| a.moaas.is_some()).map(|a| (a.at, a.moaas.unwrap_or_default()));
        let moaas_read = latest_vitals
            .as_ref()
            .and_then(|(t, r)| r.moaas.map(|m| (t.taken_at, m)));
        let moaas = match (moaas_assessed, moaas_read) {
            (Some(a), Some(r)) => Some(if r.0 > a.0 { r.1 } else { a.1 }),
            (a, r) => a.or(r).map(|x| x.1),
        };
        let escort_present = last_assessment(|a| a.escort_present.is_some())
            .and_then(|a| a.escort_present)
            .unwrap_or(false);
        let unresolved = self.store.list_alarms(Some(id), true).await?.len();
        let predicted = self.predicted_recovery(id, doc, now).await?;
        let input = DischargeInput {
            rules: &protocol.discharge,
            infusion_ended_at: ended,
            now,
            latest_vitals: latest_vitals.map(|(t, _)| t),
            baseline_bp: doc.baseline_pressure(),
            baseline_heart_rate_per_min: doc.baseline.as_ref().and_then(|b| b.heart_rate_per_min),
            aldrete,
            moaas,
            unresolved_alarms: unresolved,
            escort_present,
            pk_ce_below_threshold_at: predicted,
            tolerance: self.settings.discharge_tolerance,
        };
        let a = assess_discharge(&input);
        let out = DischargeOut {
            unmet: a.unmet(),
            all_met: a.all_met,
            earliest_at: a.earliest_at,
            predicted_recovery_at: predicted,
            instructions: a.instructions.clone(),
            criteria: a
                .criteria
                .iter()
                .map(|c| CriterionOut {
                    code: c.code,
                    name: ketaflow_clinic::discharge::criterion_name(c.code),
                    met: c.met,
                    detail: c.detail.clone(),
                    source: c.source.clone(),
                })
                .collect(),
        };
        Ok((out, a))
    }
}

// ---- Discharge -------------------------------------------------------------------------------------

/// One discharge criterion.
#[derive(Serialize, ToSchema, Debug, Clone)]
pub struct CriterionOut {
    /// min_observation, aldrete, vitals_near_baseline, no_unresolved_alarm, moaas, escort,
    /// pk_recovery.
    pub code: &'static str,
    /// The criterion in words ("minimum observation time").
    pub name: &'static str,
    /// Met?
    pub met: bool,
    /// What was seen against what is required.
    pub detail: String,
    /// Where the requirement comes from.
    pub source: String,
}

/// The discharge assessment.
#[derive(Serialize, ToSchema, Debug, Clone)]
pub struct DischargeOut {
    /// Every criterion.
    pub criteria: Vec<CriterionOut>,
    /// The codes not met.
    pub unmet: Vec<&'static str>,
    /// Whether all are met.
    pub all_met: bool,
    /// The earliest time discharge can be considered: the later of the minimum observation and the
    /// PK-predicted recovery.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub earliest_at: OffsetDateTime,
    /// The PK-predicted time Ce stays below the protocol's recovery threshold.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub predicted_recovery_at: Option<OffsetDateTime>,
    /// What the patient is told on leaving.
    pub instructions: Vec<String>,
}
