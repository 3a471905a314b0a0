//! The live parts of an infusion session: the event stream (what server-sent events replay),
//! vital-sign sets with idempotency keys, alarms with their lifecycle, and device tokens scoped to
//! one session. The session's own state is a versioned record (`records`, kind `session`).
//!
//! Event ids are assigned as last + 1 while the writer holds the database's write lock (SQLite's
//! `BEGIN IMMEDIATE`; on PostgreSQL the audit head row lock), so they are gap-free and follow
//! commit order. A reader that has seen id n can always fetch everything after n.

use std::collections::HashMap;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::{Backend, Conn, normalize, parse_uuid, with_conn};
use crate::{Store, StoreError, Tx};

/// An event to append to a session's stream.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NewEvent<'a> {
    /// The session.
    pub session_id: Uuid,
    /// What happened, e.g. `state`, `vitals`, `alarm.raised`.
    pub kind: &'a str,
    /// When.
    pub at: OffsetDateTime,
    /// Details (the server owns the shape).
    pub data: &'a serde_json::Value,
}

/// A stored event.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    /// Gap-free, commit-ordered id (the server-sent event id).
    pub id: i64,
    /// The session.
    pub session_id: Uuid,
    /// What happened.
    pub kind: String,
    /// When.
    pub at: OffsetDateTime,
    /// Details.
    pub data: serde_json::Value,
}

/// A vital-sign set to store.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NewVital<'a> {
    /// The session.
    pub session_id: Uuid,
    /// The client's key for this reading; a second insert with the same key is a duplicate.
    pub idempotency_key: &'a str,
    /// When the reading was taken.
    pub taken_at: OffsetDateTime,
    /// When the server received it.
    pub received_at: OffsetDateTime,
    /// `manual` or `device`.
    pub source: &'a str,
    /// The user or device token label that recorded it.
    pub recorded_by: &'a str,
    /// The readings (the server owns the shape).
    pub data: &'a serde_json::Value,
}

/// A stored vital-sign set.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredVital {
    /// Row id.
    pub id: i64,
    /// The session.
    pub session_id: Uuid,
    /// The client's key.
    pub idempotency_key: String,
    /// When taken.
    pub taken_at: OffsetDateTime,
    /// When received.
    pub received_at: OffsetDateTime,
    /// `manual` or `device`.
    pub source: String,
    /// Who recorded it.
    pub recorded_by: String,
    /// The readings.
    pub data: serde_json::Value,
}

/// The outcome of storing a reading.
#[derive(Clone, Debug, PartialEq)]
pub enum VitalInsert {
    /// Stored now.
    Inserted(StoredVital),
    /// Stored before under the same key; nothing was written.
    Duplicate(StoredVital),
}

/// Where an alarm is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlarmState {
    /// Raised, nobody has acknowledged it.
    Raised,
    /// Someone has seen it.
    Acknowledged,
    /// Dealt with, with the action taken.
    Resolved,
}

impl AlarmState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Raised => "raised",
            AlarmState::Acknowledged => "acknowledged",
            AlarmState::Resolved => "resolved",
        }
    }

    fn parse(text: &str) -> Result<AlarmState, StoreError> {
        match text {
            "raised" => Ok(AlarmState::Raised),
            "acknowledged" => Ok(AlarmState::Acknowledged),
            "resolved" => Ok(AlarmState::Resolved),
            other => Err(StoreError::Corrupt {
                what: "alarms.state",
                detail: other.to_string(),
            }),
        }
    }
}

/// An alarm to raise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NewAlarm<'a> {
    /// The session.
    pub session_id: Uuid,
    /// The rule's code, e.g. `systolic_high`.
    pub code: &'a str,
    /// `warning` or `urgent`.
    pub level: &'a str,
    /// When.
    pub at: OffsetDateTime,
    /// The reading that raised it, if any.
    pub vital_id: Option<i64>,
    /// Details (message, threshold source, recommendation).
    pub data: &'a serde_json::Value,
}

/// A stored alarm.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredAlarm {
    /// Id.
    pub id: Uuid,
    /// The session.
    pub session_id: Uuid,
    /// The rule's code.
    pub code: String,
    /// `warning` or `urgent`.
    pub level: String,
    /// Lifecycle state.
    pub state: AlarmState,
    /// First raised.
    pub raised_at: OffsetDateTime,
    /// Last time the rule fired while the alarm was open.
    pub last_seen_at: OffsetDateTime,
    /// How often the rule fired while the alarm was open.
    pub occurrences: i64,
    /// The reading that first raised it.
    pub vital_id: Option<i64>,
    /// Details.
    pub data: serde_json::Value,
    /// Who acknowledged it.
    pub acknowledged_by: Option<String>,
    /// When.
    pub acknowledged_at: Option<OffsetDateTime>,
    /// Who resolved it.
    pub resolved_by: Option<String>,
    /// When.
    pub resolved_at: Option<OffsetDateTime>,
    /// The action taken (pause, rate reduction, medication given, physician called, …).
    pub action: Option<String>,
    /// A note.
    pub note: Option<String>,
}

/// The outcome of raising an alarm.
#[derive(Clone, Debug, PartialEq)]
pub enum AlarmRaise {
    /// A new alarm.
    Raised(StoredAlarm),
    /// The same rule's alarm was still open; its occurrence count went up.
    Repeated(StoredAlarm),
}

/// A device token to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDeviceToken {
    /// `hash_token` of the raw token.
    pub token_hash: String,
    /// The one session it may write vitals to.
    pub session_id: Uuid,
    /// The user who issued it.
    pub created_by: Uuid,
    /// A name (e.g. the monitor's serial number).
    pub label: Option<String>,
    /// Issued.
    pub created_at: OffsetDateTime,
    /// Not honoured after.
    pub expires_at: OffsetDateTime,
}

/// A stored device token (its hash only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceToken {
    /// Hash.
    pub token_hash: String,
    /// Its session.
    pub session_id: Uuid,
    /// Issuer.
    pub created_by: Uuid,
    /// Name.
    pub label: Option<String>,
    /// Issued.
    pub created_at: OffsetDateTime,
    /// Expires.
    pub expires_at: OffsetDateTime,
    /// Revoked.
    pub revoked_at: Option<OffsetDateTime>,
}

fn corrupt_json(what: &'static str) -> impl Fn(serde_json::Error) -> StoreError {
    move |e| StoreError::Corrupt {
        what,
        detail: e.to_string(),
    }
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: i64,
    session_id: String,
    kind: String,
    at: OffsetDateTime,
    data: String,
}

impl TryFrom<EventRow> for StoredEvent {
    type Error = StoreError;
    fn try_from(row: EventRow) -> Result<StoredEvent, StoreError> {
        Ok(StoredEvent {
            id: row.id,
            session_id: parse_uuid("session_events.session_id", &row.session_id)?,
            kind: row.kind,
            at: row.at,
            data: serde_json::from_str(&row.data).map_err(corrupt_json("session_events.data"))?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct VitalRow {
    id: i64,
    session_id: String,
    idempotency_key: String,
    taken_at: OffsetDateTime,
    received_at: OffsetDateTime,
    source: String,
    recorded_by: String,
    data: String,
}

impl TryFrom<VitalRow> for StoredVital {
    type Error = StoreError;
    fn try_from(row: VitalRow) -> Result<StoredVital, StoreError> {
        Ok(StoredVital {
            id: row.id,
            session_id: parse_uuid("vital_signs.session_id", &row.session_id)?,
            idempotency_key: row.idempotency_key,
            taken_at: row.taken_at,
            received_at: row.received_at,
            source: row.source,
            recorded_by: row.recorded_by,
            data: serde_json::from_str(&row.data).map_err(corrupt_json("vital_signs.data"))?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct AlarmRow {
    id: String,
    session_id: String,
    code: String,
    level: String,
    state: String,
    raised_at: OffsetDateTime,
    last_seen_at: OffsetDateTime,
    occurrences: i64,
    vital_id: Option<i64>,
    data: String,
    acknowledged_by: Option<String>,
    acknowledged_at: Option<OffsetDateTime>,
    resolved_by: Option<String>,
    resolved_at: Option<OffsetDateTime>,
    action: Option<String>,
    note: Option<String>,
}

impl TryFrom<AlarmRow> for StoredAlarm {
    type Error = StoreError;
    fn try_from(row: AlarmRow) -> Result<StoredAlarm, StoreError> {
        Ok(StoredAlarm {
            id: parse_uuid("alarms.id", &row.id)?,
            session_id: parse_uuid("alarms.session_id", &row.session_id)?,
            code: row.code,
            level: row.level,
            state: AlarmState::parse(&row.state)?,
            raised_at: row.raised_at,
            last_seen_at: row.last_seen_at,
            occurrences: row.occurrences,
            vital_id: row.vital_id,
            data: serde_json::from_str(&row.data).map_err(corrupt_json("alarms.data"))?,
            acknowledged_by: row.acknowledged_by,
            acknowledged_at: row.acknowledged_at,
            resolved_by: row.resolved_by,
            resolved_at: row.resolved_at,
            action: row.action,
            note: row.note,
        })
    }
}

#[derive(sqlx::FromRow)]
struct DeviceTokenRow {
    token_hash: String,
    session_id: String,
    created_by: String,
    label: Option<String>,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    revoked_at: Option<OffsetDateTime>,
}

impl TryFrom<DeviceTokenRow> for DeviceToken {
    type Error = StoreError;
    fn try_from(row: DeviceTokenRow) -> Result<DeviceToken, StoreError> {
        Ok(DeviceToken {
            session_id: parse_uuid("device_tokens.session_id", &row.session_id)?,
            created_by: parse_uuid("device_tokens.created_by", &row.created_by)?,
            token_hash: row.token_hash,
            label: row.label,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
        })
    }
}

const EVENT_COLUMNS: &str = "SELECT id, session_id, kind, at, data FROM session_events";
/// A group of consecutive readings as [`Store::vitals_trend`] summarises it.
#[derive(Debug, Clone, PartialEq)]
pub struct VitalsBucket {
    /// When the group's first reading was taken.
    pub first_at: OffsetDateTime,
    /// When its last reading was taken.
    pub last_at: OffsetDateTime,
    /// How many readings it holds.
    pub readings: i64,
    /// Per field asked for, in that order: the lowest value.
    pub min: Vec<Option<f64>>,
    /// The mean.
    pub mean: Vec<Option<f64>>,
    /// The highest value.
    pub max: Vec<Option<f64>>,
}

const VITAL_COLUMNS: &str = "SELECT id, session_id, idempotency_key, taken_at, received_at, source, \
     recorded_by, data FROM vital_signs";
const ALARM_COLUMNS: &str = "SELECT id, session_id, code, level, state, raised_at, last_seen_at, \
     occurrences, vital_id, data, acknowledged_by, acknowledged_at, resolved_by, resolved_at, action, \
     note FROM alarms";

/// Largest page of events [`Store::events_after`] returns.
pub const MAX_EVENT_PAGE: i64 = 1000;

/// Longest idempotency key accepted.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 100;

/// Rows per multi-row insert: well under SQLite's and PostgreSQL's bound-parameter limits
/// (32 766 and 65 535) for the widest row written this way (7 columns).
pub const ROWS_PER_STATEMENT: usize = 500;

fn check_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN || key.chars().any(char::is_control) {
        return Err(StoreError::Invalid {
            what: "idempotency key",
            reason: format!("must be 1–{MAX_IDEMPOTENCY_KEY_LEN} bytes of printable text"),
        });
    }
    Ok(())
}

async fn vital_by_key(
    conn: Conn<'_>,
    session_id: Uuid,
    key: &str,
) -> Result<Option<StoredVital>, StoreError> {
    let sql = format!("{VITAL_COLUMNS} WHERE session_id = $1 AND idempotency_key = $2");
    let row: Option<VitalRow> = with_conn!(conn, c => {
        sqlx::query_as(&sql).bind(session_id.to_string()).bind(key).fetch_optional(&mut *c).await?
    });
    row.map(StoredVital::try_from).transpose()
}

async fn alarm_in(conn: Conn<'_>, id: Uuid) -> Result<StoredAlarm, StoreError> {
    let sql = format!("{ALARM_COLUMNS} WHERE id = $1");
    let row: Option<AlarmRow> = with_conn!(conn, c => {
        sqlx::query_as(&sql).bind(id.to_string()).fetch_optional(&mut *c).await?
    });
    row.map(StoredAlarm::try_from)
        .transpose()?
        .ok_or_else(|| StoreError::NotFound {
            what: "alarm",
            id: id.to_string(),
        })
}

/// A refused alarm transition: the alarm is not in a state that allows it.
fn alarm_conflict(alarm: &StoredAlarm, wanted: &str) -> StoreError {
    StoreError::Invalid {
        what: "alarm transition",
        reason: format!(
            "alarm {} is {}; it can be {wanted} only when {}",
            alarm.id,
            alarm.state.as_str(),
            if wanted == "acknowledged" {
                "raised"
            } else {
                "raised or acknowledged"
            }
        ),
    }
}

impl Tx {
    /// Appends an event to the session stream and returns it with its id. Call it inside the
    /// transaction of the write it reports, so the event exists exactly when the write does.
    pub async fn append_event(&mut self, event: &NewEvent<'_>) -> Result<StoredEvent, StoreError> {
        if event.kind.is_empty() || event.kind.len() > 40 {
            return Err(StoreError::Invalid {
                what: "event kind",
                reason: "must be 1–40 characters".into(),
            });
        }
        if self.backend() == Backend::Postgres {
            // Ids must follow commit order: hold the chain head's row lock (taken anyway by the
            // audit entry every clinical write appends) before reading the last id.
            self.lock_audit_head().await?;
        }
        let at = normalize(event.at);
        let id: i64 = with_conn!(self.conn(), c => {
            sqlx::query_scalar(
                "INSERT INTO session_events (id, session_id, kind, at, data) \
                 SELECT COALESCE(MAX(id), 0) + 1, $1, $2, $3, $4 FROM session_events RETURNING id",
            )
            .bind(event.session_id.to_string())
            .bind(event.kind)
            .bind(at)
            .bind(event.data.to_string())
            .fetch_one(&mut *c)
            .await?
        });
        Ok(StoredEvent {
            id,
            session_id: event.session_id,
            kind: event.kind.to_string(),
            at,
            data: event.data.clone(),
        })
    }

    /// Stores a reading unless one with the same session and key exists; says which.
    pub async fn insert_vital(&mut self, vital: &NewVital<'_>) -> Result<VitalInsert, StoreError> {
        check_key(vital.idempotency_key)?;
        if !matches!(vital.source, "manual" | "device") {
            return Err(StoreError::Invalid {
                what: "vital-sign source",
                reason: format!("{:?} is not manual or device", vital.source),
            });
        }
        let taken_at = normalize(vital.taken_at);
        let received_at = normalize(vital.received_at);
        let id: Option<i64> = with_conn!(self.conn(), c => {
            sqlx::query_scalar(
                "INSERT INTO vital_signs (session_id, idempotency_key, taken_at, received_at, source, \
                 recorded_by, data) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (session_id, idempotency_key) DO NOTHING RETURNING id",
            )
            .bind(vital.session_id.to_string())
            .bind(vital.idempotency_key)
            .bind(taken_at)
            .bind(received_at)
            .bind(vital.source)
            .bind(vital.recorded_by)
            .bind(vital.data.to_string())
            .fetch_optional(&mut *c)
            .await?
        });
        match id {
            Some(id) => Ok(VitalInsert::Inserted(StoredVital {
                id,
                session_id: vital.session_id,
                idempotency_key: vital.idempotency_key.to_string(),
                taken_at,
                received_at,
                source: vital.source.to_string(),
                recorded_by: vital.recorded_by.to_string(),
                data: vital.data.clone(),
            })),
            None => vital_by_key(self.conn(), vital.session_id, vital.idempotency_key)
                .await?
                .map(VitalInsert::Duplicate)
                .ok_or_else(|| StoreError::Corrupt {
                    what: "vital_signs",
                    detail: "insert conflicted but no row has the key".into(),
                }),
        }
    }

    /// Stores many readings (PostgreSQL: one statement per [`ROWS_PER_STATEMENT`] rows); answers, in input
    /// order, which were stored and which were duplicates of a reading already stored under the
    /// same session and key (also one given twice in the same call). The group-commit writer's path:
    /// the cost of a group is a few statements, not a few per reading.
    pub async fn insert_vitals(&mut self, vitals: &[NewVital<'_>]) -> Result<Vec<VitalInsert>, StoreError> {
        if self.backend() == Backend::Sqlite {
            // In-process: a statement costs no round trip, and one cached statement per row beats
            // preparing a new multi-row statement for every group size (measured: docs/benchmarks.md).
            let mut out = Vec::with_capacity(vitals.len());
            for vital in vitals {
                out.push(self.insert_vital(vital).await?);
            }
            return Ok(out);
        }
        for vital in vitals {
            check_key(vital.idempotency_key)?;
            if !matches!(vital.source, "manual" | "device") {
                return Err(StoreError::Invalid {
                    what: "vital-sign source",
                    reason: format!("{:?} is not manual or device", vital.source),
                });
            }
        }
        let mut inserted: HashMap<(String, String), i64> = HashMap::new();
        for chunk in vitals.chunks(ROWS_PER_STATEMENT) {
            let rows = (0..chunk.len())
                .map(|i| {
                    let b = i * 7;
                    format!(
                        "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                        b + 1,
                        b + 2,
                        b + 3,
                        b + 4,
                        b + 5,
                        b + 6,
                        b + 7
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO vital_signs (session_id, idempotency_key, taken_at, received_at, source, \
                 recorded_by, data) VALUES {rows} \
                 ON CONFLICT (session_id, idempotency_key) DO NOTHING RETURNING id, session_id, idempotency_key"
            );
            let returned: Vec<(i64, String, String)> = with_conn!(self.conn(), c => {
                let mut query = sqlx::query_as(&sql);
                for v in chunk {
                    query = query
                        .bind(v.session_id.to_string())
                        .bind(v.idempotency_key)
                        .bind(normalize(v.taken_at))
                        .bind(normalize(v.received_at))
                        .bind(v.source)
                        .bind(v.recorded_by)
                        .bind(v.data.to_string());
                }
                query.fetch_all(&mut *c).await?
            });
            for (id, session, key) in returned {
                inserted.insert((session, key), id);
            }
        }
        let mut out = Vec::with_capacity(vitals.len());
        for vital in vitals {
            let key = (vital.session_id.to_string(), vital.idempotency_key.to_string());
            // The first occurrence of a key takes the inserted row; any later one is a duplicate.
            match inserted.remove(&key) {
                Some(id) => out.push(VitalInsert::Inserted(StoredVital {
                    id,
                    session_id: vital.session_id,
                    idempotency_key: vital.idempotency_key.to_string(),
                    taken_at: normalize(vital.taken_at),
                    received_at: normalize(vital.received_at),
                    source: vital.source.to_string(),
                    recorded_by: vital.recorded_by.to_string(),
                    data: vital.data.clone(),
                })),
                None => out.push(
                    vital_by_key(self.conn(), vital.session_id, vital.idempotency_key)
                        .await?
                        .map(VitalInsert::Duplicate)
                        .ok_or_else(|| StoreError::Corrupt {
                            what: "vital_signs",
                            detail: "insert conflicted but no row has the key".into(),
                        })?,
                ),
            }
        }
        Ok(out)
    }

    /// Appends many events, in order (PostgreSQL: one id read and one statement per
    /// [`ROWS_PER_STATEMENT`] rows); the ids are contiguous and follow commit order like
    /// [`Tx::append_event`]'s.
    pub async fn append_events(&mut self, events: &[NewEvent<'_>]) -> Result<Vec<StoredEvent>, StoreError> {
        if events.is_empty() {
            return Ok(vec![]);
        }
        if self.backend() == Backend::Sqlite {
            // In-process: one cached statement per row (see insert_vitals).
            let mut out = Vec::with_capacity(events.len());
            for event in events {
                out.push(self.append_event(event).await?);
            }
            return Ok(out);
        }
        for event in events {
            if event.kind.is_empty() || event.kind.len() > 40 {
                return Err(StoreError::Invalid {
                    what: "event kind",
                    reason: "must be 1–40 characters".into(),
                });
            }
        }
        if self.backend() == Backend::Postgres {
            self.lock_audit_head().await?;
        }
        let last: i64 = with_conn!(self.conn(), c => {
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM session_events").fetch_one(&mut *c).await?
        });
        let stored: Vec<StoredEvent> = events
            .iter()
            .zip(1..)
            .map(|(e, n)| StoredEvent {
                id: last + n,
                session_id: e.session_id,
                kind: e.kind.to_string(),
                at: normalize(e.at),
                data: e.data.clone(),
            })
            .collect();
        for chunk in stored.chunks(ROWS_PER_STATEMENT) {
            let rows = (0..chunk.len())
                .map(|i| {
                    let b = i * 5;
                    format!("(${}, ${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4, b + 5)
                })
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!("INSERT INTO session_events (id, session_id, kind, at, data) VALUES {rows}");
            with_conn!(self.conn(), c => {
                let mut query = sqlx::query(&sql);
                for e in chunk {
                    query = query
                        .bind(e.id)
                        .bind(e.session_id.to_string())
                        .bind(&e.kind)
                        .bind(e.at)
                        .bind(e.data.to_string());
                }
                query.execute(&mut *c).await?;
            });
        }
        Ok(stored)
    }

    /// Raises an alarm, or, if the same rule's alarm is still open (not resolved) for the
    /// session, counts one more occurrence on it.
    pub async fn raise_alarm(&mut self, alarm: &NewAlarm<'_>) -> Result<AlarmRaise, StoreError> {
        let at = normalize(alarm.at);
        let sql = format!("{ALARM_COLUMNS} WHERE session_id = $1 AND code = $2 AND state <> 'resolved'");
        let open: Option<AlarmRow> = with_conn!(self.conn(), c => {
            sqlx::query_as(&sql)
                .bind(alarm.session_id.to_string())
                .bind(alarm.code)
                .fetch_optional(&mut *c)
                .await?
        });
        if let Some(open) = open {
            let open = StoredAlarm::try_from(open)?;
            with_conn!(self.conn(), c => {
                sqlx::query("UPDATE alarms SET occurrences = occurrences + 1, last_seen_at = $1 WHERE id = $2")
                    .bind(at)
                    .bind(open.id.to_string())
                    .execute(&mut *c)
                    .await?;
            });
            return Ok(AlarmRaise::Repeated(StoredAlarm {
                occurrences: open.occurrences + 1,
                last_seen_at: at,
                ..open
            }));
        }
        let stored = StoredAlarm {
            id: Uuid::now_v7(),
            session_id: alarm.session_id,
            code: alarm.code.to_string(),
            level: alarm.level.to_string(),
            state: AlarmState::Raised,
            raised_at: at,
            last_seen_at: at,
            occurrences: 1,
            vital_id: alarm.vital_id,
            data: alarm.data.clone(),
            acknowledged_by: None,
            acknowledged_at: None,
            resolved_by: None,
            resolved_at: None,
            action: None,
            note: None,
        };
        with_conn!(self.conn(), c => {
            sqlx::query(
                "INSERT INTO alarms (id, session_id, code, level, state, raised_at, last_seen_at, \
                 occurrences, vital_id, data) VALUES ($1, $2, $3, $4, 'raised', $5, $6, 1, $7, $8)",
            )
            .bind(stored.id.to_string())
            .bind(stored.session_id.to_string())
            .bind(&stored.code)
            .bind(&stored.level)
            .bind(at)
            .bind(at)
            .bind(stored.vital_id)
            .bind(alarm.data.to_string())
            .execute(&mut *c)
            .await?;
        });
        Ok(AlarmRaise::Raised(stored))
    }

    /// The open (not resolved) alarm of this condition for the session, if any.
    pub async fn open_alarm(
        &mut self,
        session_id: Uuid,
        code: &str,
    ) -> Result<Option<StoredAlarm>, StoreError> {
        let sql = format!("{ALARM_COLUMNS} WHERE session_id = $1 AND code = $2 AND state <> 'resolved'");
        let open: Option<AlarmRow> = with_conn!(self.conn(), c => {
            sqlx::query_as(&sql)
                .bind(session_id.to_string())
                .bind(code)
                .fetch_optional(&mut *c)
                .await?
        });
        open.map(StoredAlarm::try_from).transpose()
    }

    /// Replaces an alarm's details (e.g. to keep the reason it was acknowledged with).
    pub async fn set_alarm_data(
        &mut self,
        id: Uuid,
        data: &serde_json::Value,
    ) -> Result<StoredAlarm, StoreError> {
        with_conn!(self.conn(), c => {
            sqlx::query("UPDATE alarms SET data = $1 WHERE id = $2")
                .bind(data.to_string())
                .bind(id.to_string())
                .execute(&mut *c)
                .await?;
        });
        self.get_alarm(id).await
    }

    /// The session's open (not resolved) alarms, read inside the transaction, oldest first.
    pub async fn open_alarms_of(&mut self, session_id: Uuid) -> Result<Vec<StoredAlarm>, StoreError> {
        let sql =
            format!("{ALARM_COLUMNS} WHERE session_id = $1 AND state <> 'resolved' ORDER BY raised_at, id");
        let rows: Vec<AlarmRow> = with_conn!(self.conn(), c => {
            sqlx::query_as(&sql).bind(session_id.to_string()).fetch_all(&mut *c).await?
        });
        rows.into_iter().map(StoredAlarm::try_from).collect()
    }

    /// Records one more occurrence of an open alarm with its new level and details. With
    /// `re_raise`, an acknowledged alarm goes back to raised (its priority went up, so it must be
    /// seen and acknowledged again); the earlier acknowledgement stays in the audit log and the
    /// caller keeps it in the details.
    pub async fn update_open_alarm(
        &mut self,
        id: Uuid,
        level: &str,
        data: &serde_json::Value,
        at: OffsetDateTime,
        re_raise: bool,
    ) -> Result<StoredAlarm, StoreError> {
        let sql = if re_raise {
            "UPDATE alarms SET occurrences = occurrences + 1, last_seen_at = $1, level = $2, data = $3, \
             state = 'raised', acknowledged_by = NULL, acknowledged_at = NULL \
             WHERE id = $4 AND state <> 'resolved'"
        } else {
            "UPDATE alarms SET occurrences = occurrences + 1, last_seen_at = $1, level = $2, data = $3 \
             WHERE id = $4 AND state <> 'resolved'"
        };
        let current = self.get_alarm(id).await?;
        let done = with_conn!(self.conn(), c => {
            sqlx::query(sql)
                .bind(normalize(at))
                .bind(level)
                .bind(data.to_string())
                .bind(id.to_string())
                .execute(&mut *c)
                .await?
                .rows_affected()
        });
        if done == 0 {
            return Err(alarm_conflict(&current, "updated"));
        }
        self.get_alarm(id).await
    }

    /// Reads an alarm inside the transaction.
    pub async fn get_alarm(&mut self, id: Uuid) -> Result<StoredAlarm, StoreError> {
        alarm_in(self.conn(), id).await
    }

    /// raised → acknowledged. [`StoreError::Invalid`] (saying the current state) otherwise.
    pub async fn acknowledge_alarm(
        &mut self,
        id: Uuid,
        by: &str,
        at: OffsetDateTime,
    ) -> Result<StoredAlarm, StoreError> {
        let current = self.get_alarm(id).await?;
        let done = with_conn!(self.conn(), c => {
            sqlx::query(
                "UPDATE alarms SET state = 'acknowledged', acknowledged_by = $1, acknowledged_at = $2 \
                 WHERE id = $3 AND state = 'raised'",
            )
            .bind(by)
            .bind(normalize(at))
            .bind(id.to_string())
            .execute(&mut *c)
            .await?
            .rows_affected()
        });
        if done == 0 {
            return Err(alarm_conflict(&current, "acknowledged"));
        }
        self.get_alarm(id).await
    }

    /// raised or acknowledged → resolved, with the action taken. Resolving an alarm nobody
    /// acknowledged records the resolver as the acknowledger too: resolving implies having seen it.
    pub async fn resolve_alarm(
        &mut self,
        id: Uuid,
        by: &str,
        at: OffsetDateTime,
        action: &str,
        note: Option<&str>,
    ) -> Result<StoredAlarm, StoreError> {
        let current = self.get_alarm(id).await?;
        let at = normalize(at);
        let done = with_conn!(self.conn(), c => {
            sqlx::query(
                "UPDATE alarms SET state = 'resolved', resolved_by = $1, resolved_at = $2, action = $3, \
                 note = $4, acknowledged_by = COALESCE(acknowledged_by, $1), \
                 acknowledged_at = COALESCE(acknowledged_at, $2) \
                 WHERE id = $5 AND state <> 'resolved'",
            )
            .bind(by)
            .bind(at)
            .bind(action)
            .bind(note)
            .bind(id.to_string())
            .execute(&mut *c)
            .await?
            .rows_affected()
        });
        if done == 0 {
            return Err(alarm_conflict(&current, "resolved"));
        }
        self.get_alarm(id).await
    }

    /// Stores a device token.
    pub async fn insert_device_token(&mut self, token: &NewDeviceToken) -> Result<(), StoreError> {
        crate::tokens::check_token_hash(&token.token_hash)?;
        with_conn!(self.conn(), c => {
            sqlx::query(
                "INSERT INTO device_tokens (token_hash, session_id, created_by, label, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&token.token_hash)
            .bind(token.session_id.to_string())
            .bind(token.created_by.to_string())
            .bind(&token.label)
            .bind(normalize(token.created_at))
            .bind(normalize(token.expires_at))
            .execute(&mut *c)
            .await
            .map_err(|e| StoreError::from_write(e, "device token", Some(("user", token.created_by.to_string()))))?;
        });
        Ok(())
    }

    /// Revokes every device token of a session (when it closes); returns how many.
    pub async fn revoke_device_tokens(
        &mut self,
        session_id: Uuid,
        at: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        Ok(with_conn!(self.conn(), c => {
            sqlx::query("UPDATE device_tokens SET revoked_at = $1 WHERE session_id = $2 AND revoked_at IS NULL")
                .bind(normalize(at))
                .bind(session_id.to_string())
                .execute(&mut *c)
                .await?
                .rows_affected()
        }))
    }
}

impl Store {
    /// Events with id > `after`, of one session or all, in id order, at most `limit`
    /// (≤ [`MAX_EVENT_PAGE`]).
    pub async fn events_after(
        &self,
        after: i64,
        session_id: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let limit = limit.clamp(1, MAX_EVENT_PAGE);
        let mut pooled = self.acquire().await?;
        let rows: Vec<EventRow> = match session_id {
            Some(s) => {
                let sql = format!("{EVENT_COLUMNS} WHERE session_id = $1 AND id > $2 ORDER BY id LIMIT $3");
                with_conn!(pooled.conn(), c => {
                    sqlx::query_as(&sql).bind(s.to_string()).bind(after).bind(limit).fetch_all(&mut *c).await?
                })
            }
            None => {
                let sql = format!("{EVENT_COLUMNS} WHERE id > $1 ORDER BY id LIMIT $2");
                with_conn!(pooled.conn(), c => {
                    sqlx::query_as(&sql).bind(after).bind(limit).fetch_all(&mut *c).await?
                })
            }
        };
        rows.into_iter().map(StoredEvent::try_from).collect()
    }

    /// The id of the last committed event (0 when there is none).
    pub async fn last_event_id(&self) -> Result<i64, StoreError> {
        let mut pooled = self.acquire().await?;
        Ok(with_conn!(pooled.conn(), c => {
            sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(id) FROM session_events")
                .fetch_one(&mut *c)
                .await?
                .unwrap_or(0)
        }))
    }

    /// A session's readings in the order taken.
    pub async fn list_vitals(&self, session_id: Uuid) -> Result<Vec<StoredVital>, StoreError> {
        let sql = format!("{VITAL_COLUMNS} WHERE session_id = $1 ORDER BY taken_at, id");
        let mut pooled = self.acquire().await?;
        let rows: Vec<VitalRow> = with_conn!(pooled.conn(), c => {
            sqlx::query_as(&sql).bind(session_id.to_string()).fetch_all(&mut *c).await?
        });
        rows.into_iter().map(StoredVital::try_from).collect()
    }

    /// How many readings are stored, for one session or all.
    pub async fn count_vitals(&self, session_id: Option<Uuid>) -> Result<i64, StoreError> {
        let mut pooled = self.acquire().await?;
        Ok(with_conn!(pooled.conn(), c => {
            match session_id {
                Some(s) => sqlx::query_scalar("SELECT COUNT(*) FROM vital_signs WHERE session_id = $1")
                    .bind(s.to_string())
                    .fetch_one(&mut *c)
                    .await?,
                None => sqlx::query_scalar("SELECT COUNT(*) FROM vital_signs").fetch_one(&mut *c).await?,
            }
        }))
    }

    /// The `limit` latest readings of a session, newest first.
    pub async fn recent_vitals(&self, session_id: Uuid, limit: u32) -> Result<Vec<StoredVital>, StoreError> {
        let sql = format!("{VITAL_COLUMNS} WHERE session_id = $1 ORDER BY taken_at DESC, id DESC LIMIT $2");
        let mut pooled = self.acquire().await?;
        let rows: Vec<VitalRow> = with_conn!(pooled.conn(), c => {
            sqlx::query_as(&sql).bind(session_id.to_string()).bind(i64::from(limit)).fetch_all(&mut *c).await?
        });
        rows.into_iter().map(StoredVital::try_from).collect()
    }

    /// A session's readings summarised in at most `buckets` consecutive groups of equal count, in
    /// time order: per group its first and last time, how many readings, and the minimum, mean and
    /// maximum of each numeric field of the readings' JSON named in `fields` (`None` where no
    /// reading of the group has it). One query; what it returns is bounded by `buckets`, however
    /// long the session. The extremes are kept, so a short desaturation still shows in a long
    /// session's history.
    pub async fn vitals_trend(
        &self,
        session_id: Uuid,
        buckets: u32,
        fields: &[&str],
    ) -> Result<Vec<VitalsBucket>, StoreError> {
        if buckets == 0 || fields.is_empty() {
            return Ok(vec![]);
        }
        if let Some(bad) = fields.iter().find(|f| {
            f.is_empty()
                || !f
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        }) {
            // The names are written into the SQL (a JSON path cannot be bound), so only plain ones.
            return Err(StoreError::Invalid {
                what: "vital-sign field name",
                reason: format!("{bad:?} is not a lower-case identifier"),
            });
        }
        let value = |f: &str| match self.backend() {
            Backend::Sqlite => format!("CAST(json_extract(data, '$.{f}') AS REAL)"),
            Backend::Postgres => format!("(data::jsonb ->> '{f}')::float8"),
        };
        let aggregates: Vec<String> = fields
            .iter()
            .map(|f| {
                let v = value(f);
                format!("MIN({v}), AVG({v}), MAX({v})")
            })
            .collect();
        let sql = format!(
            "SELECT MIN(taken_at) AS first_at, MAX(taken_at) AS last_at, COUNT(*) AS readings, {} \
             FROM (SELECT taken_at, data, \
                          ((ROW_NUMBER() OVER (ORDER BY taken_at, id) - 1) * $2) / COUNT(*) OVER () AS bucket \
                   FROM vital_signs WHERE session_id = $1) grouped \
             GROUP BY bucket ORDER BY bucket",
            aggregates.join(", ")
        );
        let mut pooled = self.acquire().await?;
        let buckets = i64::from(buckets);
        let n = fields.len();
        let out = with_conn!(pooled.conn(), c => {
            let rows = sqlx::query(&sql).bind(session_id.to_string()).bind(buckets).fetch_all(&mut *c).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                use sqlx::Row;
                let at = |i: usize| -> Result<Option<f64>, StoreError> { Ok(row.try_get::<Option<f64>, _>(i)?) };
                let (mut min, mut mean, mut max) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
                for k in 0..n {
                    min.push(at(3 + 3 * k)?);
                    mean.push(at(4 + 3 * k)?);
                    max.push(at(5 + 3 * k)?);
                }
                out.push(VitalsBucket {
                    first_at: row.try_get::<OffsetDateTime, _>(0)?,
                    last_at: row.try_get::<OffsetDateTime, _>(1)?,
                    readings: row.try_get::<i64, _>(2)?,
                    min,
                    mean,
                    max,
                });
            }
            out
        });
        Ok(out)
    }

    /// The latest reading of a session (by time taken).
    pub async fn latest_vital(&self, session_id: Uuid) -> Result<Option<StoredVital>, StoreError> {
        let sql = format!("{VITAL_COLUMNS} WHERE session_id = $1 ORDER BY taken_at DESC, id DESC LIMIT 1");
        let mut pooled = self.acquire().await?;
        let row: Option<VitalRow> = with_conn!(pooled.conn(), c => {
            sqlx::query_as(&sql).bind(session_id.to_string()).fetch_optional(&mut *c).await?
        });
        row.map(StoredVital::try_from).transpose()
    }

    /// A session's alarms (or every session's), optionally only those not resolved, oldest first.
    pub async fn list_alarms(
        &self,
        session_id: Option<Uuid>,
        open_only: bool,
    ) -> Result<Vec<StoredAlarm>, StoreError> {
        let open = if open_only { " AND state <> 'resolved'" } else { "" };
        let mut pooled = self.acquire().await?;
        let rows: Vec<AlarmRow> = match session_id {
            Some(s) => {
                let sql = format!("{ALARM_COLUMNS} WHERE session_id = $1{open} ORDER BY raised_at, id");
                with_conn!(pooled.conn(), c => {
                    sqlx::query_as(&sql).bind(s.to_string()).fetch_all(&mut *c).await?
                })
            }
            None => {
                let sql = format!("{ALARM_COLUMNS} WHERE 1 = 1{open} ORDER BY raised_at, id");
                with_conn!(pooled.conn(), c => { sqlx::query_as(&sql).fetch_all(&mut *c).await? })
            }
        };
        rows.into_iter().map(StoredAlarm::try_from).collect()
    }

    /// One alarm.
    pub async fn get_alarm(&self, id: Uuid) -> Result<StoredAlarm, StoreError> {
        alarm_in(self.acquire().await?.conn(), id).await
    }

    /// The device token with this hash if it is honoured at `now` (not revoked, not expired).
    pub async fn find_device_token(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<DeviceToken>, StoreError> {
        let mut pooled = self.acquire().await?;
        let row: Option<DeviceTokenRow> = with_conn!(pooled.conn(), c => {
            sqlx::query_as(
                "SELECT token_hash, session_id, created_by, label, created_at, expires_at, revoked_at \
                 FROM device_tokens WHERE token_hash = $1",
            )
            .bind(token_hash)
            .fetch_optional(&mut *c)
            .await?
        });
        let token = row.map(DeviceToken::try_from).transpose()?;
        // Compared in Rust: SQLite stores timestamps as text.
        Ok(token.filter(|t| t.revoked_at.is_none() && now < t.expires_at))
    }
}
