//! A session's readings and alarms as read back, and the alarm lifecycle: raised → acknowledged
//! (who) → resolved (who, and the action taken). Raising is the vital-sign writer's
//! ([`crate::vitals`]).

pub use ketaflow_store::AlarmState;
use ketaflow_store::{NewAuditEntry, NewEvent, StoredVital};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use ketaflow_clinic::vitals::{Alarm, Priority};

use crate::policy::{Action, Caller};
use crate::records::{SESSION, SessionDoc};
use crate::vitals::{AlarmOut, RaiseOutcome, alarm_out, raise_or_update};
use crate::{App, AppError};

/// A stored reading.
#[derive(Serialize, ToSchema, Debug)]
pub struct VitalOut {
    /// Id.
    pub id: i64,
    /// manual or device.
    pub source: String,
    /// Who recorded it.
    pub recorded_by: String,
    /// When received.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub received_at: OffsetDateTime,
    /// The reading (with its NEWS2 total when complete).
    #[schema(value_type = Object)]
    pub reading: serde_json::Value,
    /// Marked as an artefact: why, by whom, when (absent for a reading that stands).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artefact: Option<crate::records::ArtefactDoc>,
}

impl App {
    /// The session's latest reading that is not marked as an artefact.
    pub async fn latest_standing_vital(
        &self,
        session_id: Uuid,
        session: &SessionDoc,
    ) -> Result<Option<StoredVital>, AppError> {
        if session.artefacts.is_empty() {
            return Ok(self.store.latest_vital(session_id).await?);
        }
        // Artefacts are few; the last readings hold the latest that stands.
        Ok(self
            .store
            .recent_vitals(session_id, 100)
            .await?
            .into_iter()
            .find(|v| session.artefact(v.id).is_none()))
    }
}

/// A stored reading as shown, with its artefact mark from the session.
pub fn with_artefact(session: &SessionDoc, v: StoredVital) -> VitalOut {
    let artefact = session.artefact(v.id).cloned();
    VitalOut {
        artefact,
        ..vital_out(v)
    }
}

/// A stored reading as shown.
pub fn vital_out(v: StoredVital) -> VitalOut {
    VitalOut {
        id: v.id,
        source: v.source,
        recorded_by: v.recorded_by,
        received_at: v.received_at,
        reading: v.data,
        artefact: None,
    }
}

/// Actions recorded when an alarm is resolved.
pub const ALARM_ACTIONS: [&str; 7] = [
    "none_needed",
    "observation",
    "pause",
    "rate_reduction",
    "medication_given",
    "physician_called",
    "infusion_stopped",
];

/// The shortest reason for acknowledging every alarm of a chair at once.
pub const MIN_ACK_REASON_CHARS: usize = 3;

/// Acknowledging every raised alarm of a chair.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgeAllIn {
    /// Why, 3–500 characters ("at the bedside, artefact from movement").
    pub reason: String,
}

/// Open alarms first, by priority (high first) then time raised; resolved ones after, newest first.
pub fn sort_alarms(alarms: &mut [AlarmOut]) {
    alarms.sort_by_key(|a| {
        let open = a.is_open();
        (
            std::cmp::Reverse(open),
            std::cmp::Reverse(if open { a.priority() } else { Priority::Low }),
            if open {
                a.raised_at
            } else {
                OffsetDateTime::UNIX_EPOCH
            },
            std::cmp::Reverse(a.resolved_at),
        )
    });
}

/// How an alarm was dealt with.
#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct AlarmResolveIn {
    /// One of none_needed, observation, pause, rate_reduction, medication_given, physician_called,
    /// infusion_stopped.
    pub action: String,
    /// A note (required for medication_given: what and how much), ≤ 2000 characters.
    #[serde(default)]
    pub note: Option<String>,
}

impl App {
    /// A session's readings in the order taken.
    pub async fn vitals(&self, caller: &Caller, session_id: Uuid) -> Result<Vec<VitalOut>, AppError> {
        caller.require(Action::ReadClinical)?;
        let session = self.load::<SessionDoc>(SESSION, session_id).await?.doc;
        Ok(self
            .store
            .list_vitals(session_id)
            .await?
            .into_iter()
            .map(|v| with_artefact(&session, v))
            .collect())
    }

    /// Marks a reading as an artefact, with the reason (3–500 characters): it stays stored and
    /// shown, and is left out of the board's latest values, the abnormal marks and the discharge
    /// criteria. An open alarm that this reading alone raised (seen once) is resolved as
    /// `artefact` with the reason; an alarm later readings saw again stays open. Audited
    /// (`vitals.artefact` on the session, `alarm.resolve` on each alarm).
    pub async fn mark_artefact(
        &self,
        caller: &Caller,
        session_id: Uuid,
        vital_id: i64,
        reason: &str,
    ) -> Result<Vec<AlarmOut>, AppError> {
        caller.require(Action::RunSession)?;
        let reason = reason.trim();
        if !(3..=500).contains(&reason.chars().count()) || reason.chars().any(char::is_control) {
            return Err(AppError::field("reason", reason, "3–500 printable characters"));
        }
        let loaded = self.load::<SessionDoc>(SESSION, session_id).await?;
        if !self
            .store
            .list_vitals(session_id)
            .await?
            .iter()
            .any(|v| v.id == vital_id)
        {
            return Err(AppError::NotFound {
                what: "reading of this session".into(),
                id: vital_id.to_string(),
            });
        }
        if loaded.doc.artefact(vital_id).is_some() {
            return Err(AppError::Conflict(format!(
                "reading {vital_id} is already marked as an artefact"
            )));
        }
        let now = self.now();
        let by = caller.user.id.to_string();
        let mut doc = loaded.doc;
        doc.artefacts.push(crate::records::ArtefactDoc {
            vital_id,
            reason: reason.to_string(),
            by: by.clone(),
            at: now,
        });
        let data = serde_json::to_value(&doc)?;
        let mut tx = self.store.begin().await?;
        tx.update_record_audited(
            &caller.actor(),
            "vitals.artefact",
            &ketaflow_store::RecordChange {
                kind: SESSION,
                id: session_id,
                expected_version: loaded.record.version,
                label: &loaded.record.label,
                data: &data,
                lock: false,
            },
            now,
        )
        .await?;
        let mut resolved = Vec::new();
        let mut events = Vec::new();
        for alarm in self.store.list_alarms(Some(session_id), true).await? {
            if alarm.vital_id != Some(vital_id) || alarm.occurrences > 1 {
                continue;
            }
            let before = serde_json::to_value(alarm_out(alarm.clone()))?;
            let changed = tx
                .resolve_alarm(alarm.id, &by, now, "artefact", Some(reason))
                .await?;
            let out = alarm_out(changed);
            let after = serde_json::to_value(&out)?;
            tx.append_audit(
                &NewAuditEntry::new(
                    now,
                    caller.actor(),
                    "alarm.resolve",
                    "alarm",
                    alarm.id.to_string(),
                )
                .before(before)
                .after(after.clone()),
            )
            .await?;
            events.push(
                tx.append_event(&NewEvent {
                    session_id,
                    kind: "alarm.resolved",
                    at: now,
                    data: &after,
                })
                .await?,
            );
            resolved.push(out);
        }
        tx.commit().await?;
        self.live.publish(events);
        Ok(resolved)
    }

    /// A session's alarms: open ones first, by priority (high first) then time raised; then the
    /// resolved, newest first.
    pub async fn alarms(&self, caller: &Caller, session_id: Uuid) -> Result<Vec<AlarmOut>, AppError> {
        caller.require(Action::ReadClinical)?;
        self.record(SESSION, session_id).await?;
        let mut alarms: Vec<AlarmOut> = self
            .store
            .list_alarms(Some(session_id), false)
            .await?
            .into_iter()
            .map(alarm_out)
            .collect();
        sort_alarms(&mut alarms);
        Ok(alarms)
    }

    /// Acknowledges every raised alarm of a session (one chair) with one reason, each audited on
    /// its own (who, when, the reason) and announced. Acknowledging changes no infusion and
    /// resolves nothing. Returns the alarms acknowledged, in priority order; none raised is no
    /// error (an empty list).
    pub async fn acknowledge_all(
        &self,
        caller: &Caller,
        session_id: Uuid,
        body: AcknowledgeAllIn,
    ) -> Result<Vec<AlarmOut>, AppError> {
        caller.require(Action::RunSession)?;
        let reason = body.reason.trim().to_string();
        if reason.chars().count() < MIN_ACK_REASON_CHARS || reason.chars().count() > 500 {
            return Err(AppError::field(
                "reason",
                body.reason.clone(),
                format!(
                    "why every alarm of the chair is acknowledged at once, {MIN_ACK_REASON_CHARS}–500 characters"
                ),
            ));
        }
        self.record(SESSION, session_id).await?;
        let now = self.now();
        let by = caller.user.id.to_string();
        let mut tx = self.store.begin().await?;
        let mut raised: Vec<AlarmOut> = tx
            .open_alarms_of(session_id)
            .await?
            .into_iter()
            .filter(|a| a.state == ketaflow_store::AlarmState::Raised)
            .map(alarm_out)
            .collect();
        sort_alarms(&mut raised);
        let mut done = Vec::with_capacity(raised.len());
        let mut events = Vec::with_capacity(raised.len());
        for before in raised {
            let mut changed = tx.acknowledge_alarm(before.id, &by, now).await?;
            if let Some(d) = changed.data.as_object_mut() {
                d.insert("acknowledged_with".into(), serde_json::json!(reason));
            }
            let out = alarm_out(tx.set_alarm_data(changed.id, &changed.data).await?);
            let data = serde_json::to_value(&out)?;
            tx.append_audit(
                &NewAuditEntry::new(
                    now,
                    caller.actor(),
                    "alarm.acknowledge",
                    "alarm",
                    out.id.to_string(),
                )
                .before(serde_json::to_value(&before)?)
                .after(serde_json::json!({"alarm": data, "reason": reason, "all_of_session": session_id})),
            )
            .await?;
            events.push(
                tx.append_event(&NewEvent {
                    session_id,
                    kind: "alarm.acknowledged",
                    at: now,
                    data: &data,
                })
                .await?,
            );
            done.push(out);
        }
        tx.commit().await?;
        self.live.publish(events);
        Ok(done)
    }

    /// Acknowledges an alarm (raised → acknowledged, recording who).
    pub async fn acknowledge_alarm(&self, caller: &Caller, alarm_id: Uuid) -> Result<AlarmOut, AppError> {
        caller.require(Action::RunSession)?;
        self.change_alarm(caller, alarm_id, None).await
    }

    /// Resolves an alarm with the action taken (raised or acknowledged → resolved).
    pub async fn resolve_alarm(
        &self,
        caller: &Caller,
        alarm_id: Uuid,
        resolution: AlarmResolveIn,
    ) -> Result<AlarmOut, AppError> {
        caller.require(Action::RunSession)?;
        self.change_alarm(caller, alarm_id, Some(resolution)).await
    }

    async fn change_alarm(
        &self,
        caller: &Caller,
        id: Uuid,
        resolve: Option<AlarmResolveIn>,
    ) -> Result<AlarmOut, AppError> {
        let now = self.now();
        let by = caller.user.id.to_string();
        let mut tx = self.store.begin().await?;
        let before = tx.get_alarm(id).await?;
        let (changed, verb) = match &resolve {
            None => (tx.acknowledge_alarm(id, &by, now).await, "acknowledged"),
            Some(r) => {
                if !ALARM_ACTIONS.contains(&r.action.as_str()) {
                    return Err(AppError::field(
                        "action",
                        r.action.clone(),
                        ALARM_ACTIONS.join(", "),
                    ));
                }
                let note = r.note.as_deref().map(str::trim).filter(|n| !n.is_empty());
                if note.is_some_and(|n| n.chars().count() > 2000) {
                    return Err(AppError::field("note", "(too long)", "at most 2000 characters"));
                }
                if r.action == "medication_given" && note.is_none() {
                    return Err(AppError::field(
                        "note",
                        serde_json::Value::Null,
                        "the medication and dose given",
                    ));
                }
                (tx.resolve_alarm(id, &by, now, &r.action, note).await, "resolved")
            }
        };
        let changed = changed.map_err(|e| match e {
            ketaflow_store::StoreError::Invalid { reason, .. } => AppError::Conflict(reason),
            other => other.into(),
        })?;
        let out = alarm_out(changed);
        let data = serde_json::to_value(&out)?;
        tx.append_audit(
            &NewAuditEntry::new(
                now,
                caller.actor(),
                format!("alarm.{}", &verb[..verb.len() - 1]),
                "alarm",
                id.to_string(),
            )
            .before(serde_json::to_value(alarm_out(before))?)
            .after(data.clone()),
        )
        .await?;
        let event = tx
            .append_event(&NewEvent {
                session_id: out.session_id,
                kind: if verb == "acknowledged" {
                    "alarm.acknowledged"
                } else {
                    "alarm.resolved"
                },
                at: now,
                data: &data,
            })
            .await?;
        tx.commit().await?;
        self.live.publish([event]);
        Ok(out)
    }
}

// ---- The watch ------------------------------------------------------------------------------------

impl App {
    /// Looks at every open session on the clinic clock, whether or not a reading arrives, and
    /// raises what a bedside monitor or pump would: the dose of a running infusion against its plan
    /// and the protocol's hard limit per session (planned dose given, past the plan by more than the
    /// tolerance, past the hard limit), as a pump alarms when its volume to be infused is complete;
    /// and a set of vitals overdue by the protocol's monitoring schedule, from check-in to
    /// discharge. Each alarm is raised once while it is open and escalated when its stage or
    /// priority changes; it recommends and never changes the infusion. `serve` runs it every 15 s of
    /// clinic time. Returns the alarms raised or escalated.
    pub async fn watch_running_sessions(&self) -> Result<Vec<AlarmOut>, AppError> {
        use ketaflow_clinic::delivery::{dose_alarm, dose_progress};
        use ketaflow_clinic::plan::LimitName;
        use ketaflow_clinic::vitals::{overdue_alarm, vitals_overdue};
        use ketaflow_units::Milligrams;

        let now = self.now();
        let tolerance = self.settings.dose_tolerance;
        // Read once per round, as the API shows them (priority, stage), not once per session.
        let open: Vec<AlarmOut> = self
            .store
            .list_alarms(None, true)
            .await?
            .into_iter()
            .map(alarm_out)
            .collect();
        let mut raised = Vec::new();
        for record in self.store.list_in_progress(SESSION).await? {
            let s = crate::sessions::session_out(record, now)?;
            let schedule = self.monitoring_schedule(&s.protocol_id)?;
            if schedule.interval(&s.phase).is_none() {
                continue;
            }
            let mut due = Vec::new();
            if s.phase.is_infusing() {
                let plan = self
                    .load::<crate::records::PlanDoc>(crate::records::PLAN, s.plan_id)
                    .await?;
                let mg = |v: f64| Milligrams::new(v).map_err(|e| AppError::internal(&e));
                let (given, planned) = (mg(s.given_mg)?, plan.doc.dose_mg);
                let hard = plan
                    .doc
                    .checks
                    .iter()
                    .find(|c| c.limit == LimitName::MgPerSession.code())
                    .map(|c| mg(c.hard))
                    .transpose()?;
                let progress = dose_progress(given, planned, tolerance, hard);
                if let Some(alarm) = dose_alarm(progress, given, planned, tolerance, hard) {
                    let facts =
                        serde_json::json!({"given_mg": s.given_mg, "planned_dose_mg": plan.doc.dose_mg});
                    due.push((alarm, facts));
                }
            }
            let since = s.state_since.unwrap_or(s.scheduled_for);
            let last = self.store.latest_vital(s.id).await?.map(|v| v.taken_at);
            if let Some(overdue) = vitals_overdue(&s.phase, since, last, now, &schedule) {
                let facts = serde_json::json!({"due_at": crate::vitals::rfc3339(overdue.due_at), "minutes_late": overdue.minutes_late});
                due.push((overdue_alarm(&overdue, &schedule, &s.phase), facts));
            }
            for (alarm, facts) in due {
                // An open alarm of the condition is updated only when its stage or priority
                // changes (the dose passing the plan, then the hard limit): the watch does not
                // rewrite it every round as minutes and milligrams creep up.
                let unchanged = open.iter().any(|a| {
                    a.session_id == s.id
                        && a.code == alarm.code
                        && a.priority() >= alarm.level
                        && a.detail.get("stage").and_then(|v| v.as_str()).unwrap_or("") == alarm.stage
                });
                if unchanged {
                    continue;
                }
                raised.push(self.raise_watched(s.id, &alarm, facts, now).await?);
            }
        }
        Ok(raised)
    }

    /// The monitoring schedule of a session's protocol.
    pub fn monitoring_schedule(
        &self,
        protocol_id: &str,
    ) -> Result<ketaflow_clinic::vitals::MonitoringSchedule, AppError> {
        let protocol = self.library.get(protocol_id).ok_or_else(|| {
            AppError::Internal(format!(
                "the session's protocol {protocol_id:?} is not in the library"
            ))
        })?;
        Ok(ketaflow_clinic::vitals::MonitoringSchedule::of(
            &protocol.monitoring,
        ))
    }

    /// Raises (or escalates) one alarm of the watch: stored, audited as `system:watch`, published
    /// after commit.
    async fn raise_watched(
        &self,
        session_id: Uuid,
        alarm: &Alarm,
        facts: serde_json::Value,
        now: OffsetDateTime,
    ) -> Result<AlarmOut, AppError> {
        let mut tx = self.store.begin().await?;
        let (out, outcome) = raise_or_update(&mut tx, session_id, alarm, facts, now, None).await?;
        let data = serde_json::to_value(&out)?;
        tx.append_audit(
            &NewAuditEntry::new(
                now,
                ketaflow_store::Actor::system("watch"),
                if outcome == RaiseOutcome::Raised {
                    "alarm.raise"
                } else {
                    "alarm.update"
                },
                "alarm",
                out.id.to_string(),
            )
            .after(data.clone()),
        )
        .await?;
        let mut events = Vec::new();
        if let Some(kind) = outcome.event_kind() {
            events.push(
                tx.append_event(&NewEvent {
                    session_id,
                    kind,
                    at: now,
                    data: &data,
                })
                .await?,
            );
        }
        tx.commit().await?;
        self.live.publish(events);
        Ok(out)
    }
}

impl App {
    /// Runs [`App::watch_running_sessions`] every `every` of real time until the runtime ends. A
    /// failed round is logged with its cause and the next round tries again.
    pub fn start_watch(&self, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let app = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match app.watch_running_sessions().await {
                    Ok(raised) if !raised.is_empty() => {
                        tracing::info!(alarms = raised.len(), "the watch raised alarms")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "a round of the watch failed"),
                }
            }
        })
    }
}
