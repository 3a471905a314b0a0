//! Vital signs: the checked batch, its write (readings, NEWS2, alarms, events and one audit entry
//! per batch) and the group-commit writer every front door submits through.
//!
//! A commit is durable only after the database syncs its log to disk (SQLite `synchronous=FULL`;
//! PostgreSQL's WAL flush), and on this class of machine a sync costs milliseconds, which would cap
//! one-commit-per-request at a few hundred readings per second. One writer task therefore takes
//! every batch waiting at that moment, writes them in one transaction with one sync, and only then
//! acknowledges each: throughput scales with the number of monitors, and nothing is acknowledged
//! before it is durable.
//!
//! Each batch keeps its own audit entry and events; the group's readings, events and audit entries
//! each go in as multi-row statements, so a group costs a few statements whatever its size. If the
//! shared transaction fails, every batch of the group is retried in its own transaction, so one bad
//! batch cannot fail another.

use std::collections::HashSet;

use ketaflow_clinic::news2::news2;
use ketaflow_clinic::patient::BloodPressure;
use ketaflow_clinic::vitals::{self, Alarm, AlarmRules, Priority, VitalSigns};
use ketaflow_store::{
    Actor, AlarmState, NewAuditEntry, NewEvent, NewVital, Store, StoredAlarm, StoredEvent, Tx, VitalInsert,
    batch_digest,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppError;
use crate::live::LiveHub;
use crate::records::{ReadingDoc, SESSION, stored_reading};

/// An alarm as the API returns it.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
pub struct AlarmOut {
    /// Id.
    pub id: Uuid,
    /// The session.
    pub session_id: Uuid,
    /// Rule code, e.g. systolic_high, news2_high.
    pub code: String,
    /// Priority after IEC 60601-1-8: high, medium or low. It only goes up while the alarm is open.
    #[schema(value_type = String)]
    pub level: Priority,
    /// raised, acknowledged, resolved.
    #[schema(value_type = String)]
    pub state: AlarmState,
    /// What was seen, the threshold's source, whether it is a clinic setting, and whether the rule
    /// recommends pausing (an alarm never changes the infusion by itself).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// First raised.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub raised_at: OffsetDateTime,
    /// Last seen while open.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_seen_at: OffsetDateTime,
    /// Times the condition was seen while open.
    pub occurrences: i64,
    /// Who acknowledged.
    pub acknowledged_by: Option<String>,
    /// When.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub acknowledged_at: Option<OffsetDateTime>,
    /// Who resolved.
    pub resolved_by: Option<String>,
    /// When.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resolved_at: Option<OffsetDateTime>,
    /// The action taken.
    pub action: Option<String>,
    /// A note.
    pub note: Option<String>,
}

impl AlarmOut {
    /// What was seen, in words (from the rule that raised it); the code when no message was stored.
    pub fn message(&self) -> String {
        self.detail
            .get("message")
            .and_then(serde_json::Value::as_str)
            .map_or_else(|| self.code.replace('_', " "), str::to_string)
    }

    /// The priority.
    pub fn priority(&self) -> Priority {
        self.level
    }

    /// Still open (raised or acknowledged).
    pub fn is_open(&self) -> bool {
        self.state != AlarmState::Resolved
    }

    /// The worst value's message since the alarm was raised, when it differs from the current.
    pub fn worst_message(&self) -> Option<String> {
        self.detail
            .get("worst_message")
            .and_then(serde_json::Value::as_str)
            .filter(|w| *w != self.message())
            .map(str::to_string)
    }

    /// Whether the rule recommends pausing the infusion.
    pub fn recommends_pause(&self) -> bool {
        self.detail
            .get("recommend_pause")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false)
    }
}

/// A stored alarm as shown.
pub fn alarm_out(a: StoredAlarm) -> AlarmOut {
    AlarmOut {
        id: a.id,
        session_id: a.session_id,
        code: a.code,
        // Stored before priorities were named: "warning" is medium, "urgent" high. A level no
        // version wrote reads as high, never lower.
        level: Priority::from_stored(&a.level).unwrap_or(Priority::High),
        state: a.state,
        detail: a.data,
        raised_at: a.raised_at,
        last_seen_at: a.last_seen_at,
        occurrences: a.occurrences,
        acknowledged_by: a.acknowledged_by,
        acknowledged_at: a.acknowledged_at,
        resolved_by: a.resolved_by,
        resolved_at: a.resolved_at,
        action: a.action,
        note: a.note,
    }
}

/// What raising an alarm did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RaiseOutcome {
    /// A new alarm.
    Raised,
    /// An open alarm's priority went up (an acknowledged one is raised again).
    Escalated,
    /// An open alarm's value got worse.
    Worsened,
    /// An open alarm seen again, no worse.
    Repeated,
}

impl RaiseOutcome {
    /// The live-stream event to announce it with, if any.
    pub fn event_kind(self) -> Option<&'static str> {
        match self {
            RaiseOutcome::Raised => Some("alarm.raised"),
            RaiseOutcome::Escalated => Some("alarm.escalated"),
            RaiseOutcome::Worsened => Some("alarm.updated"),
            RaiseOutcome::Repeated => None,
        }
    }
}

/// The stored details of an alarm: what was seen, its source and recommendation, the value and
/// stage, and `facts` (the dose given, when vitals were due...).
pub fn alarm_detail(alarm: &Alarm, facts: serde_json::Value) -> serde_json::Value {
    let mut detail = serde_json::json!({
        "message": alarm.message,
        "recommend_pause": alarm.recommend_pause,
        "source": alarm.source,
        "clinic_setting": alarm.clinic_setting,
        "value": alarm.value,
        "stage": alarm.stage,
        "worst_value": alarm.value,
        "worst_message": alarm.message,
    });
    if let (Some(d), serde_json::Value::Object(f)) = (detail.as_object_mut(), facts) {
        d.extend(f);
    }
    detail
}

/// Raises `alarm` for a session inside `tx`, or, when its condition's alarm is open, updates it:
/// the current value and message, the worst since it was raised, a priority that only goes up
/// (an escalated alarm that was acknowledged is raised again, keeping the earlier
/// acknowledgement in its details). The caller commits and publishes.
pub async fn raise_or_update(
    tx: &mut ketaflow_store::Tx,
    session_id: Uuid,
    alarm: &Alarm,
    facts: serde_json::Value,
    at: OffsetDateTime,
    vital_id: Option<i64>,
) -> Result<(AlarmOut, RaiseOutcome), AppError> {
    let mut detail = alarm_detail(alarm, facts);
    let Some(open) = tx.open_alarm(session_id, alarm.code).await? else {
        let stored = tx
            .raise_alarm(&ketaflow_store::NewAlarm {
                session_id,
                code: alarm.code,
                level: alarm.level.code(),
                at,
                vital_id,
                data: &detail,
            })
            .await?;
        let (ketaflow_store::AlarmRaise::Raised(a) | ketaflow_store::AlarmRaise::Repeated(a)) = stored;
        return Ok((alarm_out(a), RaiseOutcome::Raised));
    };
    let before = alarm_out(open.clone());
    let open_worst = before
        .detail
        .get("worst_value")
        .or_else(|| before.detail.get("value"))
        .and_then(serde_json::Value::as_f64)
        .map(|v| {
            (
                v,
                before
                    .detail
                    .get("worst_message")
                    .and_then(|m| m.as_str())
                    .map_or_else(|| before.message(), str::to_string),
            )
        });
    let update = alarm.update_open(before.priority(), open_worst);
    if let Some(d) = detail.as_object_mut() {
        d.insert("worst_value".into(), serde_json::json!(update.worst_value));
        d.insert("worst_message".into(), serde_json::json!(update.worst_message));
        d.insert(
            "first_message".into(),
            serde_json::json!(
                before
                    .detail
                    .get("first_message")
                    .cloned()
                    .unwrap_or_else(|| serde_json::json!(before.message()))
            ),
        );
        d.insert(
            "raised_priority".into(),
            serde_json::json!(
                before
                    .detail
                    .get("raised_priority")
                    .cloned()
                    .unwrap_or_else(|| serde_json::json!(before.level))
            ),
        );
        let re_raise = update.escalated && open.state == ketaflow_store::AlarmState::Acknowledged;
        if re_raise {
            d.insert(
                "previous_acknowledgement".into(),
                serde_json::json!({"by": before.acknowledged_by, "at": before.acknowledged_at.map(crate::vitals::rfc3339)}),
            );
        } else if let Some(previous) = before.detail.get("previous_acknowledgement") {
            d.insert("previous_acknowledgement".into(), previous.clone());
        }
    }
    let re_raise = update.escalated && open.state == ketaflow_store::AlarmState::Acknowledged;
    let stored = tx
        .update_open_alarm(open.id, update.level.code(), &detail, at, re_raise)
        .await?;
    let outcome = if update.escalated {
        RaiseOutcome::Escalated
    } else if update.worsened {
        RaiseOutcome::Worsened
    } else {
        RaiseOutcome::Repeated
    };
    Ok((alarm_out(stored), outcome))
}

/// The acknowledgement of one reading.
#[derive(Serialize, ToSchema, Debug)]
pub struct ReadingAck {
    /// The client's key.
    pub idempotency_key: String,
    /// The stored reading's id.
    pub id: i64,
    /// True when this key was stored before (a retry): nothing new was written.
    pub duplicate: bool,
    /// NEWS2 total when the set was complete.
    pub news2: Option<u8>,
    /// Alarms this reading raised or repeated.
    pub alarms: Vec<AlarmOut>,
}

/// A value of a reading marked abnormal.
#[derive(Serialize, ToSchema, Debug, Clone, PartialEq)]
pub struct FlagOut {
    /// Which value: blood_pressure, heart_rate, spo2, respiratory_rate, temperature, moaas,
    /// consciousness or news2.
    pub measure: &'static str,
    /// `high` or `low`.
    pub direction: &'static str,
    /// The priority of the condition it meets: high, medium or low.
    pub priority: &'static str,
    /// The condition, in words.
    pub reason: String,
}

impl crate::App {
    /// The values of a stored reading of `session` to mark as abnormal (the clinic's alarm rules
    /// with the session's baseline, and NEWS2). A stored reading was checked when written; one that
    /// cannot be read now marks nothing rather than failing a whole screen.
    pub fn reading_flags(
        &self,
        session: &crate::records::SessionDoc,
        data: &serde_json::Value,
    ) -> Vec<FlagOut> {
        let Ok(signs) = crate::records::stored_reading(data).and_then(|r| r.vital_signs(0)) else {
            return Vec::new();
        };
        vitals::flagged_values(&self.settings.alarm_rules, session.baseline_pressure(), &signs)
            .into_iter()
            .map(|f| FlagOut {
                measure: f.measure.code(),
                direction: match f.direction {
                    vitals::Worse::Higher => "high",
                    vitals::Worse::Lower => "low",
                },
                priority: f.level.code(),
                reason: f.reason,
            })
            .collect()
    }
}

/// The acknowledgement of a batch: everything in it is durable when this is returned.
#[derive(Serialize, ToSchema, Debug)]
pub struct VitalsAck {
    /// Per reading, in request order.
    pub readings: Vec<ReadingAck>,
    /// Newly stored.
    pub stored: usize,
    /// Already stored before (retries).
    pub duplicates: usize,
}

/// A checked batch of readings for one session, ready to write.
#[derive(Debug)]
pub struct VitalsJob {
    /// The session.
    pub session_id: Uuid,
    /// Who writes, for the audit entry.
    pub actor: Actor,
    /// `manual` or `device`.
    pub source: &'static str,
    /// Who recorded it, stored beside each reading.
    pub recorded_by: String,
    /// Each reading with its checked vital signs and the time it was taken.
    pub readings: Vec<(ReadingDoc, VitalSigns, OffsetDateTime)>,
    /// The session's baseline blood pressure (for the rise-from-baseline alarm).
    pub baseline: Option<BloodPressure>,
    /// When the batch arrived.
    pub received_at: OffsetDateTime,
}

/// What writing a batch produced: the acknowledgement and the events to publish after commit.
#[derive(Debug)]
pub struct VitalsWritten {
    /// What the writer is told.
    pub ack: VitalsAck,
    /// The committed events, to publish.
    pub events: Vec<StoredEvent>,
}

/// Writes one batch inside `tx` (the caller commits, having made the session itself or checked
/// it); see [`write_vitals_many`].
pub async fn write_vitals(
    tx: &mut Tx,
    rules: &vitals::AlarmRules,
    job: &VitalsJob,
) -> Result<VitalsWritten, AppError> {
    Ok(write_vitals_many(tx, rules, &[job]).await?.remove(0))
}

/// Writes a group of batches inside `tx` (the caller commits): each new reading is stored once per
/// key, evaluated against the alarm rules and NEWS2, and reported as events; one audit entry per
/// batch with a digest of its readings. The readings of the whole group go in one multi-row
/// statement, then its events, then its audit entries, so a group costs a few statements whatever
/// its size (alarms, which are rare, are raised one by one). The sessions are not checked here:
/// a caller that queued the batches checks them with [`sessions_still_open`] before committing.
pub async fn write_vitals_many(
    tx: &mut Tx,
    rules: &vitals::AlarmRules,
    jobs: &[&VitalsJob],
) -> Result<Vec<VitalsWritten>, AppError> {
    // The stored document of each reading: what was sent, its NEWS2 and when it was taken.
    let mut documents = Vec::new();
    for job in jobs {
        for (reading, v, taken_at) in &job.readings {
            let mut data = serde_json::to_value(reading)?;
            data["news2"] = serde_json::json!(v.observations().map(|o| news2(&o).total));
            data["taken_at"] = serde_json::json!(rfc3339(*taken_at));
            documents.push(data);
        }
    }
    let mut new_vitals = Vec::with_capacity(documents.len());
    let mut documents_iter = documents.iter();
    for job in jobs {
        for (reading, _, taken_at) in &job.readings {
            new_vitals.push(NewVital {
                session_id: job.session_id,
                idempotency_key: &reading.idempotency_key,
                taken_at: *taken_at,
                received_at: job.received_at,
                source: job.source,
                recorded_by: &job.recorded_by,
                data: documents_iter.next().expect("one document per reading"),
            });
        }
    }
    let mut inserted = tx.insert_vitals(&new_vitals).await?.into_iter();

    // Per batch: acknowledgements, alarms, and the events to append (in order).
    let mut acks_per_job = Vec::with_capacity(jobs.len());
    let mut event_rows: Vec<(Uuid, &'static str, OffsetDateTime, serde_json::Value)> = Vec::new();
    let mut events_per_job = Vec::with_capacity(jobs.len());
    let mut audits = Vec::new();
    for job in jobs {
        let (id, now, source) = (job.session_id, job.received_at, job.source);
        let events_before = event_rows.len();
        let mut acks = Vec::with_capacity(job.readings.len());
        let mut stored_rows: Vec<serde_json::Value> = Vec::new();
        let (mut stored, mut duplicates) = (0, 0);
        for (index, (reading, v, taken_at)) in job.readings.iter().enumerate() {
            let vital = match inserted.next().expect("one answer per reading") {
                VitalInsert::Duplicate(existing) => {
                    // The same key with other values is not a retry: refuse the batch (the
                    // transaction is not committed, so none of it is stored).
                    if !reading.is_same_reading(&stored_reading(&existing.data)?, existing.taken_at) {
                        return Err(AppError::RefusedAt {
                            code: "idempotency_key_reused",
                            message: format!(
                                "idempotency key {:?} was already used for a different reading (id {}); \
                                 a retry must resend the same values, and a new reading needs a new key",
                                existing.idempotency_key, existing.id
                            ),
                            field: format!("readings[{index}].idempotency_key"),
                        });
                    }
                    duplicates += 1;
                    acks.push(ReadingAck {
                        idempotency_key: existing.idempotency_key.clone(),
                        id: existing.id,
                        duplicate: true,
                        news2: stored_news2(&existing.data),
                        alarms: vec![],
                    });
                    continue;
                }
                VitalInsert::Inserted(v) => v,
            };
            stored += 1;
            stored_rows.push(
                serde_json::json!({ "id": vital.id, "key": vital.idempotency_key, "data": vital.data }),
            );
            let mut alarms = Vec::new();
            for alarm in vitals::evaluate(rules, job.baseline, v) {
                let (out, outcome) =
                    raise_or_update(tx, id, &alarm, serde_json::Value::Null, *taken_at, Some(vital.id))
                        .await?;
                if let Some(kind) = outcome.event_kind() {
                    event_rows.push((id, kind, now, serde_json::to_value(&out)?));
                }
                alarms.push(out);
            }
            event_rows.push((
                id,
                "vitals",
                now,
                serde_json::json!({ "id": vital.id, "reading": vital.data, "source": source }),
            ));
            acks.push(ReadingAck {
                idempotency_key: vital.idempotency_key,
                id: vital.id,
                duplicate: false,
                news2: stored_news2(&vital.data),
                alarms,
            });
        }
        if stored > 0 {
            let digest = batch_digest(stored_rows.iter());
            audits.push(
                NewAuditEntry::new(
                    now,
                    job.actor.clone(),
                    ketaflow_store::VITALS_ACTION,
                    SESSION,
                    id.to_string(),
                )
                .after(serde_json::json!({ "readings": stored, "source": source, "digest": digest })),
            );
        }
        events_per_job.push(events_before..event_rows.len());
        acks_per_job.push(VitalsAck {
            readings: acks,
            stored,
            duplicates,
        });
    }
    let new_events: Vec<NewEvent> = event_rows
        .iter()
        .map(|(session_id, kind, at, data)| NewEvent {
            session_id: *session_id,
            kind,
            at: *at,
            data,
        })
        .collect();
    let events = tx.append_events(&new_events).await?;
    tx.append_audits(&audits).await?;
    Ok(acks_per_job
        .into_iter()
        .zip(events_per_job)
        .map(|(ack, range)| VitalsWritten {
            ack,
            events: events[range].to_vec(),
        })
        .collect())
}

/// Which of the batches' sessions are still open, read inside `tx` after its writes. The request
/// handler checked each session before queueing its batch, but a session can be discharged or
/// aborted while the batch waits for the writer. On SQLite the transaction has held the write lock
/// since it began; on PostgreSQL the writes have taken the audit head's row lock (which every
/// audited change, closing a session included, takes before it commits) and the read takes it if
/// they did not, in the same order as every other writer (rows first, audit head last), so the
/// answer holds until commit.
pub async fn sessions_still_open(tx: &mut Tx, jobs: &[&VitalsJob]) -> Result<HashSet<Uuid>, AppError> {
    let mut asked: Vec<Uuid> = jobs.iter().map(|j| j.session_id).collect();
    asked.sort_unstable();
    asked.dedup();
    Ok(tx.in_progress_among(SESSION, &asked).await?)
}

/// The refusal of a batch whose session closed while it waited for the writer.
pub fn closed_while_waiting() -> AppError {
    AppError::Conflict(
        "the session was closed before this batch was stored; it takes no more readings".into(),
    )
}

/// The NEWS2 total stored with a reading (absent for an incomplete set).
fn stored_news2(data: &serde_json::Value) -> Option<u8> {
    data.get("news2")
        .and_then(serde_json::Value::as_u64)
        .map(|n| n as u8)
}

/// A time as RFC 3339 text (UTC as stored).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

// ---- Recording a batch -----------------------------------------------------------------------------

/// Who a batch of readings comes from, as the front door established it: a signed-in clinician
/// (whose role the door has checked) or a monitor with a device token for this one session.
#[derive(Debug, Clone)]
pub struct ReadingsAuthor {
    /// The audit actor.
    pub actor: Actor,
    /// `manual` (typed) or `device` (a monitor).
    pub source: &'static str,
    /// Who recorded it, as stored beside each reading (a user id, or `device:<label>`).
    pub recorded_by: String,
}

/// The most readings one batch takes.
pub const MAX_BATCH: usize = 500;

/// A device token writes to its own session only. Doors may ask before they read the body, so a
/// device pointed at the wrong chair learns nothing else; `record_device_vitals` asks again.
pub fn device_may_write(token: &ketaflow_store::DeviceToken, session_id: Uuid) -> Result<(), AppError> {
    if token.session_id == session_id {
        Ok(())
    } else {
        Err(AppError::Forbidden {
            role: "device",
            action: "write to a session other than its own",
        })
    }
}

impl crate::App {
    /// Records readings a signed-in clinician typed or sent: [`App::record_vitals`] after the role
    /// check, with the clinician as author.
    ///
    /// [`App::record_vitals`]: crate::App::record_vitals
    pub async fn record_clinician_vitals(
        &self,
        caller: &crate::policy::Caller,
        session_id: Uuid,
        readings: Vec<ReadingDoc>,
    ) -> Result<VitalsAck, AppError> {
        caller.require(crate::policy::Action::RunSession)?;
        let author = ReadingsAuthor {
            actor: caller.actor(),
            source: "manual",
            recorded_by: caller.user.id.to_string(),
        };
        self.record_vitals(author, session_id, readings).await
    }

    /// Records readings a monitor streamed with a device token: it writes to its own session only.
    pub async fn record_device_vitals(
        &self,
        token: &ketaflow_store::DeviceToken,
        session_id: Uuid,
        readings: Vec<ReadingDoc>,
    ) -> Result<VitalsAck, AppError> {
        device_may_write(token, session_id)?;
        let author = ReadingsAuthor {
            actor: Actor::device(&token.token_hash, token.created_by),
            source: "device",
            recorded_by: format!("device:{}", token.label.clone().unwrap_or_default()),
        };
        self.record_vitals(author, session_id, readings).await
    }

    /// Records a batch of readings for a session: every reading is checked first (an impossible
    /// value refuses the whole batch and stores nothing); each is stored once per idempotency key;
    /// the alarm rules and NEWS2 run on every new reading. Returns when everything is committed.
    pub async fn record_vitals(
        &self,
        author: ReadingsAuthor,
        session_id: Uuid,
        readings: Vec<ReadingDoc>,
    ) -> Result<VitalsAck, AppError> {
        if readings.is_empty() || readings.len() > MAX_BATCH {
            return Err(AppError::field("readings", readings.len(), "1–500 readings"));
        }
        let now = self.now();
        let mut checked = Vec::with_capacity(readings.len());
        for (i, r) in readings.into_iter().enumerate() {
            let v = r.vital_signs(i)?;
            let taken_at = match &r.taken_at {
                Some(t) => OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).map_err(
                    |_| {
                        AppError::field(
                            &format!("readings[{i}].taken_at"),
                            t.as_str(),
                            "an RFC 3339 date-time, e.g. 2026-11-27T09:30:00Z",
                        )
                    },
                )?,
                None => now,
            };
            // A reading from the future is a clock or typing error (a minute of clock skew is allowed).
            if taken_at > now + time::Duration::minutes(1) {
                return Err(AppError::field(
                    &format!("readings[{i}].taken_at"),
                    r.taken_at.clone().unwrap_or_default(),
                    "a time no later than now",
                ));
            }
            if r.idempotency_key.is_empty()
                || r.idempotency_key.len() > ketaflow_store::MAX_IDEMPOTENCY_KEY_LEN
                || r.idempotency_key.chars().any(char::is_control)
            {
                return Err(AppError::field(
                    &format!("readings[{i}].idempotency_key"),
                    r.idempotency_key.clone(),
                    "1–100 bytes of printable text",
                ));
            }
            checked.push((r, v, taken_at));
        }
        let session = self
            .load::<crate::records::SessionDoc>(SESSION, session_id)
            .await?;
        let state = session.doc.replay()?;
        if !state.state().is_open() {
            return Err(AppError::Conflict(format!(
                "the session is {}; it takes no more readings",
                state.state().name()
            )));
        }
        let baseline = session.doc.baseline_pressure();
        let job = VitalsJob {
            session_id,
            actor: author.actor,
            source: author.source,
            recorded_by: author.recorded_by,
            readings: checked,
            baseline,
            received_at: now,
        };
        Ok(self.ingest.submit(job).await?.ack)
    }
}

// ---- The writer ----------------------------------------------------------------------------------

/// The most batches one transaction takes.
const MAX_GROUP: usize = 256;

type Reply = oneshot::Sender<Result<VitalsWritten, AppError>>;

/// The handle request handlers submit batches through.
#[derive(Debug, Clone)]
pub struct VitalsIngest {
    sender: mpsc::Sender<(VitalsJob, Reply)>,
}

impl VitalsIngest {
    /// Starts the writer task on the current Tokio runtime.
    pub fn start(store: Store, rules: AlarmRules, live: LiveHub) -> VitalsIngest {
        let (sender, receiver) = mpsc::channel(4096);
        tokio::spawn(run(store, rules, live, receiver));
        VitalsIngest { sender }
    }

    /// Writes a batch; returns when it is committed (or failed).
    pub async fn submit(&self, job: VitalsJob) -> Result<VitalsWritten, AppError> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send((job, reply))
            .await
            .map_err(|_| AppError::Internal("the vital-sign writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| AppError::Internal("the vital-sign writer dropped a batch".into()))?
    }
}

async fn run(
    store: Store,
    rules: AlarmRules,
    live: LiveHub,
    mut receiver: mpsc::Receiver<(VitalsJob, Reply)>,
) {
    while let Some(first) = receiver.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let (jobs, replies): (Vec<VitalsJob>, Vec<Reply>) = group.into_iter().unzip();
        let outcomes = write_group(&store, &rules, &jobs).await;
        for (outcome, reply) in outcomes.into_iter().zip(replies) {
            if let Ok(written) = &outcome {
                for e in &written.events {
                    live.publish([e.clone()]);
                }
            }
            // The client may have gone; its readings are stored all the same.
            let _ = reply.send(outcome);
        }
    }
}

async fn write_group(
    store: &Store,
    rules: &AlarmRules,
    jobs: &[VitalsJob],
) -> Vec<Result<VitalsWritten, AppError>> {
    if jobs.len() > 1 {
        match write_together(store, rules, jobs).await {
            Ok(outcomes) => return outcomes,
            Err(e) => {
                tracing::warn!(error = %e, batches = jobs.len(), "group write failed; retrying each batch alone")
            }
        }
    }
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        outcomes.push(
            write_together(store, rules, std::slice::from_ref(job))
                .await
                .and_then(|mut outcome| outcome.remove(0)),
        );
    }
    outcomes
}

/// One transaction for the group: the outer error is the transaction's, the inner ones are
/// batches refused on their own. A batch whose session was closed while it waited stores nothing:
/// the group is written, the sessions are checked under the write lock (see
/// [`sessions_still_open`]), and if any has closed the transaction is rolled back and the group
/// written again without it (rare: a discharge racing a monitor's last readings).
async fn write_together(
    store: &Store,
    rules: &AlarmRules,
    jobs: &[VitalsJob],
) -> Result<Vec<Result<VitalsWritten, AppError>>, AppError> {
    let mut candidates: Vec<&VitalsJob> = jobs.iter().collect();
    loop {
        if candidates.is_empty() {
            return Ok(jobs.iter().map(|_| Err(closed_while_waiting())).collect());
        }
        let mut tx = store.begin().await?;
        let written = write_vitals_many(&mut tx, rules, &candidates).await?;
        let open = sessions_still_open(&mut tx, &candidates).await?;
        if candidates.iter().all(|job| open.contains(&job.session_id)) {
            tx.commit().await?;
            let mut written = written.into_iter();
            return Ok(jobs
                .iter()
                .map(|job| match open.contains(&job.session_id) {
                    true => Ok(written.next().expect("one result per written batch")),
                    false => Err(closed_while_waiting()),
                })
                .collect());
        }
        tx.rollback().await?;
        candidates.retain(|job| open.contains(&job.session_id));
    }
}

#[cfg(test)]
mod tests {
    use ketaflow_store::{Actor, NewRecord};
    use time::macros::datetime;

    use super::*;
    use crate::records::ReadingDoc;

    fn job(session_id: uuid::Uuid, key: &str) -> VitalsJob {
        let reading: ReadingDoc = serde_json::from_value(serde_json::json!({
            "idempotency_key": key,
            "systolic_mmhg": 124.0, "diastolic_mmhg": 78.0, "heart_rate_per_min": 72.0,
            "spo2_percent": 98.0, "respiratory_rate_per_min": 14.0,
        }))
        .unwrap();
        let signs = reading.vital_signs(0).unwrap();
        let at = datetime!(2026-03-02 09:00:00 UTC);
        VitalsJob {
            session_id,
            actor: Actor::system("test monitor"),
            source: "device",
            recorded_by: "device:test".into(),
            readings: vec![(reading, signs, at)],
            baseline: None,
            received_at: at,
        }
    }

    /// The handler checks that the session is open, but a session can be discharged while its
    /// batch waits for the writer: the writer checks again in its transaction, refuses that batch
    /// with a conflict and stores nothing for it, and still writes the rest of the group.
    #[tokio::test]
    async fn a_batch_for_a_session_closed_while_it_waited_is_refused_and_the_group_written() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ketaflow.db").display());
        let store = Store::connect(&url).await.unwrap();
        let data = serde_json::json!({});
        let mut tx = store.begin().await.unwrap();
        let mut sessions = Vec::new();
        for label in ["open", "closed"] {
            let new = NewRecord {
                kind: "session",
                parent_id: None,
                label,
                data: &data,
            };
            let id = tx
                .insert_record(&new, datetime!(2026-03-02 08:00:00 UTC))
                .await
                .unwrap()
                .id;
            tx.set_in_progress("session", id, true).await.unwrap();
            sessions.push(id);
        }
        tx.commit().await.unwrap();
        // The second session is discharged after its batch was checked and queued.
        let mut tx = store.begin().await.unwrap();
        tx.set_in_progress("session", sessions[1], false).await.unwrap();
        tx.commit().await.unwrap();

        let group = [job(sessions[0], "a-1"), job(sessions[1], "b-1")];
        let outcomes = write_group(&store, &AlarmRules::default(), &group).await;
        let stored = outcomes[0].as_ref().expect("the open session's batch is written");
        assert_eq!(stored.ack.stored, 1);
        match &outcomes[1] {
            Err(AppError::Conflict(message)) => assert!(message.contains("closed"), "{message}"),
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert_eq!(store.list_vitals(sessions[0]).await.unwrap().len(), 1);
        assert!(store.list_vitals(sessions[1]).await.unwrap().is_empty());

        // Alone (the path a failed group falls back to), the same batch is refused the same way.
        let alone = write_group(&store, &AlarmRules::default(), &group[1..]).await;
        assert!(matches!(alone[0], Err(AppError::Conflict(_))));
        assert!(store.list_vitals(sessions[1]).await.unwrap().is_empty());
    }
}
