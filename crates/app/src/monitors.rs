//! Bedside monitors: registered by an administrator, associated with a chair by a nurse, and the
//! readings their messages carry recorded against the open session in that chair, through the same
//! vital-sign writer (checks, alarms, NEWS2, live events, audit) as a typed reading.
//!
//! A monitor is a `device` record (audited like every record). Its messages are read by the HL7
//! edge (`ketaflow-hl7`) and given here; this module answers with what to acknowledge, so the edge
//! only frames and sends.

use ketaflow_hl7::ack::{AckCode, AckError};
use ketaflow_hl7::{ErrorCode, Location, Measure, MonitorMessage, MonitorReading};
use ketaflow_store::{Actor, NewRecord, RecordChange};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::policy::{Action, Caller};
use crate::records::{ReadingDoc, SESSION};
use crate::sessions::session_out;
use crate::vitals::{ReadingsAuthor, rfc3339};
use crate::{App, AppError};

/// The record kind of a registered monitor.
pub const DEVICE: &str = "device";

/// A monitor as stored.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeviceDoc {
    /// The identifier its messages carry (OBX-18 or MSH-3): an EUI-64 in upper case, or the
    /// gateway's own id.
    pub identifier: String,
    /// Model, e.g. "Vital-signs monitor VS-3".
    pub model: String,
    /// Serial number.
    pub serial: String,
    /// Where it is kept.
    pub location: String,
    /// The chair it is at, if associated.
    pub chair: Option<String>,
}

/// A monitor to register.
#[derive(Deserialize, ToSchema, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct DeviceIn {
    /// The identifier its messages carry (1–64 printable characters; case does not matter).
    pub identifier: String,
    /// Model (1–120 characters).
    pub model: String,
    /// Serial number (1–64 characters).
    pub serial: String,
    /// Where it is kept (0–120 characters).
    #[serde(default)]
    pub location: String,
}

/// A registered monitor as the API shows it.
#[derive(Serialize, ToSchema, Clone, Debug)]
pub struct DeviceOut {
    /// Id.
    pub id: Uuid,
    /// Record version.
    pub version: i64,
    /// The identifier its messages carry, in upper case.
    pub identifier: String,
    /// Model.
    pub model: String,
    /// Serial number.
    pub serial: String,
    /// Where it is kept.
    pub location: String,
    /// The chair it is at, if any.
    pub chair: Option<String>,
    /// The stored document (not serialised: the fields above are the API's).
    #[serde(skip)]
    #[schema(ignore)]
    pub doc: DeviceDoc,
}

impl DeviceOut {
    fn new(id: Uuid, version: i64, doc: DeviceDoc) -> DeviceOut {
        DeviceOut {
            id,
            version,
            identifier: doc.identifier.clone(),
            model: doc.model.clone(),
            serial: doc.serial.clone(),
            location: doc.location.clone(),
            chair: doc.chair.clone(),
            doc,
        }
    }
}

/// The identifier as messages are matched on: trimmed, upper case (an EUI-64's hex digits are
/// sent in either case).
pub fn normal_identifier(identifier: &str) -> String {
    identifier.trim().to_ascii_uppercase()
}

fn text(field: &str, value: &str, min: usize, max: usize) -> Result<String, AppError> {
    let v = value.trim();
    let n = v.chars().count();
    if n < min || n > max || v.chars().any(char::is_control) {
        return Err(AppError::field(
            field,
            value,
            format!("{min}–{max} printable characters"),
        ));
    }
    Ok(v.to_string())
}

/// What a monitor's messages came to since the server started (the monitors page; the log has
/// each one).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MonitorSeen {
    /// Messages answered.
    pub messages: u64,
    /// Of those, answered AE or AR.
    pub refused: u64,
    /// When the last one was answered, and how (AA, AE, AR).
    pub last: Option<(time::OffsetDateTime, &'static str)>,
}

/// Per monitor identifier, what its messages came to (in memory: a restart starts again).
#[derive(Debug, Clone, Default)]
pub struct MonitorStats(std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, MonitorSeen>>>);

impl MonitorStats {
    fn note(&self, identifier: &str, at: time::OffsetDateTime, code: AckCode) {
        let mut seen = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Bounded: identifiers nobody registered do not grow the map without end.
        if seen.len() >= 10_000 && !seen.contains_key(identifier) {
            return;
        }
        let entry = seen.entry(identifier.to_string()).or_default();
        entry.messages += 1;
        if code != AckCode::Accept {
            entry.refused += 1;
        }
        entry.last = Some((at, code.code()));
    }

    /// A copy of what is known.
    pub fn snapshot(&self) -> std::collections::HashMap<String, MonitorSeen> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// What a monitor's message comes to: the acknowledgement to send.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorAnswer {
    /// AA, AE or AR.
    pub code: AckCode,
    /// The error, for AE and AR.
    pub error: Option<AckError>,
    /// Readings newly stored (0 for a resent message).
    pub stored: usize,
}

impl MonitorAnswer {
    fn refused(
        code: ErrorCode,
        location: Location,
        application_code: &'static str,
        message: String,
    ) -> MonitorAnswer {
        MonitorAnswer {
            code: AckCode::Error,
            error: Some(AckError {
                code,
                location: Some(location),
                application_code: Some(application_code),
                message,
            }),
            stored: 0,
        }
    }
}

impl App {
    /// Registers a monitor (administrators). Its identifier must be new.
    pub async fn register_device(&self, caller: &Caller, body: DeviceIn) -> Result<DeviceOut, AppError> {
        caller.require(Action::ManageDevices)?;
        let identifier = normal_identifier(&text("identifier", &body.identifier, 1, 64)?);
        if self.device_by_identifier(&identifier).await?.is_some() {
            return Err(AppError::Conflict(format!(
                "a monitor with identifier {identifier} is already registered"
            )));
        }
        let doc = DeviceDoc {
            identifier: identifier.clone(),
            model: text("model", &body.model, 1, 120)?,
            serial: text("serial", &body.serial, 1, 64)?,
            location: text("location", &body.location, 0, 120)?,
            chair: None,
        };
        let data = serde_json::to_value(&doc)?;
        let record = self
            .store
            .insert_record_audited(
                &caller.actor(),
                "device.register",
                &NewRecord {
                    kind: DEVICE,
                    parent_id: None,
                    label: &identifier.to_lowercase(),
                    data: &data,
                },
                self.now(),
            )
            .await?;
        Ok(DeviceOut::new(record.id, record.version, doc))
    }

    /// Every registered monitor.
    pub async fn devices(&self, caller: &Caller) -> Result<Vec<DeviceOut>, AppError> {
        caller.require(Action::ReadClinical)?;
        let mut out = Vec::new();
        for record in self.store.list_records(DEVICE, None, None, 500).await? {
            let doc: DeviceDoc = crate::records::parse(DEVICE, &record)?;
            out.push(DeviceOut::new(record.id, record.version, doc));
        }
        out.sort_by(|a, b| a.doc.identifier.cmp(&b.doc.identifier));
        Ok(out)
    }

    /// Puts a monitor at a chair, or takes it away (`None`): from then on its messages go to the
    /// open session in that chair (nurses and physicians; audited).
    pub async fn associate_device(
        &self,
        caller: &Caller,
        id: Uuid,
        chair: Option<String>,
    ) -> Result<DeviceOut, AppError> {
        caller.require(Action::RunSession)?;
        let chair = chair.map(|c| text("chair", &c, 1, 40)).transpose()?;
        let loaded = self.load::<DeviceDoc>(DEVICE, id).await?;
        let mut doc = loaded.doc;
        if let Some(c) = &chair {
            for other in self.devices(caller).await? {
                if other.id != id && other.doc.chair.as_deref() == Some(c.as_str()) {
                    return Err(AppError::Conflict(format!(
                        "monitor {} is already at {c}; take it away first",
                        other.doc.identifier
                    )));
                }
            }
        }
        doc.chair = chair;
        let data = serde_json::to_value(&doc)?;
        let updated = self
            .store
            .update_record_audited(
                &caller.actor(),
                if doc.chair.is_some() {
                    "device.associate"
                } else {
                    "device.dissociate"
                },
                &RecordChange {
                    kind: DEVICE,
                    id,
                    expected_version: loaded.record.version,
                    label: &doc.identifier.to_lowercase(),
                    data: &data,
                    lock: false,
                },
                self.now(),
            )
            .await?;
        Ok(DeviceOut::new(id, updated.version, doc))
    }

    async fn device_by_identifier(&self, identifier: &str) -> Result<Option<(Uuid, DeviceDoc)>, AppError> {
        let wanted = normal_identifier(identifier);
        for record in self
            .store
            .list_records(DEVICE, None, Some(&wanted.to_lowercase()), 50)
            .await?
        {
            let doc: DeviceDoc = crate::records::parse(DEVICE, &record)?;
            if doc.identifier == wanted {
                return Ok(Some((record.id, doc)));
            }
        }
        Ok(None)
    }

    /// Records what a monitor's message says. The readings go to the open session (checked in,
    /// not yet discharged) in the chair the monitor is associated with, keyed by device and
    /// message control id, so a resent message is acknowledged again and stored once; the same
    /// control id with other values is refused, as a reused reading key is. Answers AA only once
    /// everything is committed.
    pub async fn record_monitor_message(&self, message: &MonitorMessage) -> Result<MonitorAnswer, AppError> {
        let answer = self.monitor_message_answer(message).await;
        let code = match &answer {
            Ok(a) => a.code,
            Err(_) => AckCode::Error,
        };
        self.monitors_seen
            .note(&normal_identifier(&message.device), self.now(), code);
        answer
    }

    /// What each monitor's messages came to since the server started, by identifier.
    pub fn monitor_stats(&self) -> std::collections::HashMap<String, MonitorSeen> {
        self.monitors_seen.snapshot()
    }

    async fn monitor_message_answer(&self, message: &MonitorMessage) -> Result<MonitorAnswer, AppError> {
        let Some((_, device)) = self.device_by_identifier(&message.device).await? else {
            return Ok(MonitorAnswer::refused(
                ErrorCode::Application,
                message.device_location,
                "UNKNOWN_DEVICE",
                format!(
                    "monitor {} is not registered; an administrator registers it on the Devices page",
                    normal_identifier(&message.device)
                ),
            ));
        };
        let no_session = |why: String| {
            MonitorAnswer::refused(ErrorCode::Application, message.device_location, "NO_SESSION", why)
        };
        let Some(chair) = device.chair.clone() else {
            return Ok(no_session(format!(
                "monitor {} is not at a chair; a nurse associates it with one",
                device.identifier
            )));
        };
        let now = self.now();
        let mut session = None;
        // Only the sessions booked in this chair are replayed (the chair is read straight from
        // the stored document); the rest of the open sessions are passed over unread.
        for record in self.store.list_in_progress(SESSION).await? {
            if record.data.get("chair").and_then(serde_json::Value::as_str) != Some(chair.as_str()) {
                continue;
            }
            let s = session_out(record, now)?;
            if s.phase.patient_present() {
                session = Some(s);
                break;
            }
        }
        let Some(session) = session else {
            return Ok(no_session(format!(
                "no patient is checked in at {chair}; nothing was stored against a patient"
            )));
        };
        let readings = message.readings();
        if readings.is_empty() {
            return Ok(MonitorAnswer {
                code: AckCode::Accept,
                error: None,
                stored: 0,
            });
        }
        let docs: Vec<ReadingDoc> = readings
            .iter()
            .enumerate()
            .map(|(i, r)| reading_doc(&device.identifier, &message.header.control_id, i, r))
            .collect();
        let author = ReadingsAuthor {
            actor: Actor::system(&format!("monitor:{}", device.identifier)),
            source: "device",
            recorded_by: format!("device:{}", device.identifier),
        };
        match self.record_vitals(author, session.id, docs).await {
            Ok(ack) => Ok(MonitorAnswer {
                code: AckCode::Accept,
                error: None,
                stored: ack.stored,
            }),
            Err(AppError::InvalidField {
                field,
                value,
                allowed,
            }) => {
                // `readings[i].spo2_percent`: back to the OBX row the value came from.
                let (index, leaf) = field_of(&field);
                let measure = leaf.and_then(measure_of_field);
                let row = index.and_then(|i| readings.get(i)).and_then(|r| {
                    let m = measure?;
                    // A heart rate may have come from the oximeter's pulse rate.
                    r.row_of(m).or_else(|| {
                        (m == Measure::HeartRate)
                            .then(|| r.row_of(Measure::PulseRate))
                            .flatten()
                    })
                });
                let location = match row {
                    Some(n) => Location {
                        segment: "OBX",
                        occurrence: n,
                        field: 5,
                    },
                    None => message.device_location,
                };
                Ok(MonitorAnswer::refused(
                    ErrorCode::Application,
                    location,
                    "VALUE_OUT_OF_RANGE",
                    format!(
                        "{} {} is not a plausible reading; allowed: {allowed}; nothing in this message was stored",
                        measure.map_or("a value", Measure::label),
                        crate::error::display_value(&value)
                    ),
                ))
            }
            Err(AppError::RefusedAt {
                code: "idempotency_key_reused",
                message: why,
                ..
            }) => Ok(MonitorAnswer::refused(
                ErrorCode::Application,
                Location {
                    segment: "MSH",
                    occurrence: 1,
                    field: 10,
                },
                "DUPLICATE_CONTROL_ID",
                why,
            )),
            Err(other) => Err(other),
        }
    }
}

/// A reading as the vital-sign writer takes it, keyed by device, control id and its place in the
/// message.
fn reading_doc(device: &str, control_id: &str, index: usize, r: &MonitorReading) -> ReadingDoc {
    ReadingDoc {
        idempotency_key: format!("hl7:{device}:{control_id}:{index}"),
        taken_at: r.taken_at.map(rfc3339),
        systolic_mmhg: r.systolic_mmhg,
        diastolic_mmhg: r.diastolic_mmhg,
        heart_rate_per_min: r.heart_rate_per_min,
        spo2_percent: r.spo2_percent,
        respiratory_rate_per_min: r.respiratory_rate_per_min,
        temperature_c: r.temperature_c,
        consciousness: None,
        moaas: None,
        on_oxygen: None,
    }
}

/// `readings[2].spo2_percent` → (Some(2), Some("spo2_percent")).
fn field_of(path: &str) -> (Option<usize>, Option<&str>) {
    let index = path
        .strip_prefix("readings[")
        .and_then(|rest| rest.split(']').next())
        .and_then(|n| n.parse().ok());
    (index, path.rsplit_once('.').map(|(_, leaf)| leaf))
}

fn measure_of_field(leaf: &str) -> Option<Measure> {
    Some(match leaf {
        "systolic_mmhg" => Measure::Systolic,
        "diastolic_mmhg" => Measure::Diastolic,
        "heart_rate_per_min" => Measure::HeartRate,
        "spo2_percent" => Measure::Spo2,
        "respiratory_rate_per_min" => Measure::RespiratoryRate,
        "temperature_c" => Measure::Temperature,
        _ => return None,
    })
}
