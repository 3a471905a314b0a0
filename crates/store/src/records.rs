//! Clinical records as versioned JSON documents (patients, dose plans, …), in the manner of FHIR
//! resources: the server owns each document's shape and validates it; the store owns identity,
//! versions (optimistic concurrency), locking (an approved plan never changes) and a simple search,
//! and writes each change together with its audit entry.

use std::collections::HashSet;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{Actor, NewAuditEntry};
use crate::db::{Conn, normalize, parse_uuid, with_conn};
use crate::{Backend, Store, StoreError, Tx};

/// A stored record.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// UUID v7.
    pub id: Uuid,
    /// Kind, e.g. `patient`, `plan`.
    pub kind: String,
    /// The record it belongs to (a plan's patient), if any.
    pub parent_id: Option<Uuid>,
    /// 1 on creation, +1 per change.
    pub version: i64,
    /// Searchable text (stored lower-case).
    pub label: String,
    /// The document.
    pub data: serde_json::Value,
    /// Whether the record is locked against change.
    pub locked: bool,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last changed.
    pub updated_at: OffsetDateTime,
}

/// A record to create.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NewRecord<'a> {
    /// Kind.
    pub kind: &'a str,
    /// Parent record, if any.
    pub parent_id: Option<Uuid>,
    /// Searchable text.
    pub label: &'a str,
    /// The document.
    pub data: &'a serde_json::Value,
}

/// A change to a record.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RecordChange<'a> {
    /// Kind (checked against the stored record).
    pub kind: &'a str,
    /// Which record.
    pub id: Uuid,
    /// The version the caller read; a different stored version means someone else changed it.
    pub expected_version: i64,
    /// New searchable text.
    pub label: &'a str,
    /// New document.
    pub data: &'a serde_json::Value,
    /// Lock the record after this change (it can never change again).
    pub lock: bool,
}

#[derive(sqlx::FromRow)]
struct RecordRow {
    id: String,
    kind: String,
    parent_id: Option<String>,
    version: i64,
    label: String,
    data: String,
    locked: bool,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl TryFrom<RecordRow> for Record {
    type Error = StoreError;
    fn try_from(row: RecordRow) -> Result<Record, StoreError> {
        Ok(Record {
            id: parse_uuid("record id", &row.id)?,
            kind: row.kind,
            parent_id: row
                .parent_id
                .as_deref()
                .map(|p| parse_uuid("record parent id", p))
                .transpose()?,
            version: row.version,
            label: row.label,
            data: serde_json::from_str(&row.data).map_err(|e| StoreError::Corrupt {
                what: "record data",
                detail: e.to_string(),
            })?,
            locked: row.locked,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

const SELECT: &str =
    "SELECT id, kind, parent_id, version, label, data, locked, created_at, updated_at FROM records";

/// Largest page `list_records` returns.
pub const MAX_RECORD_PAGE: u32 = 500;

fn check_kind(kind: &str) -> Result<(), StoreError> {
    if kind.is_empty() || kind.len() > 40 || !kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(StoreError::Invalid {
            what: "record kind",
            reason: format!("{kind:?} must be 1–40 of a-z and '_'"),
        });
    }
    Ok(())
}

async fn get_in(conn: Conn<'_>, kind: &str, id: Uuid) -> Result<Record, StoreError> {
    let sql = format!("{SELECT} WHERE id = $1 AND kind = $2");
    let row: Option<RecordRow> = with_conn!(conn, c => {
        sqlx::query_as(&sql).bind(id.to_string()).bind(kind).fetch_optional(&mut *c).await?
    });
    row.map(Record::try_from)
        .transpose()?
        .ok_or_else(|| StoreError::NotFound {
            what: "record",
            id: format!("{kind} {id}"),
        })
}

impl Tx {
    /// Inserts a record and its audit entry (`action`, the record as created), in this
    /// transaction.
    pub async fn insert_record_audited(
        &mut self,
        actor: &Actor,
        action: &str,
        new: &NewRecord<'_>,
        now: OffsetDateTime,
    ) -> Result<Record, StoreError> {
        let record = self.insert_record(new, now).await?;
        self.append_audit(
            &NewAuditEntry::new(
                now,
                actor.clone(),
                action,
                record.kind.clone(),
                record.id.to_string(),
            )
            .after(record.data.clone()),
        )
        .await?;
        Ok(record)
    }

    /// Changes a record and writes its audit entry (`action`, before and after), in this
    /// transaction.
    pub async fn update_record_audited(
        &mut self,
        actor: &Actor,
        action: &str,
        change: &RecordChange<'_>,
        now: OffsetDateTime,
    ) -> Result<Record, StoreError> {
        let before = self.get_record(change.kind, change.id).await?;
        let after = self.update_record(change, now).await?;
        self.append_audit(
            &NewAuditEntry::new(
                now,
                actor.clone(),
                action,
                after.kind.clone(),
                after.id.to_string(),
            )
            .before(before.data)
            .after(after.data.clone()),
        )
        .await?;
        Ok(after)
    }

    /// Creates a record (version 1). Not audited by itself.
    pub async fn insert_record(
        &mut self,
        new: &NewRecord<'_>,
        now: OffsetDateTime,
    ) -> Result<Record, StoreError> {
        check_kind(new.kind)?;
        let now = normalize(now);
        let record = Record {
            id: Uuid::now_v7(),
            kind: new.kind.to_string(),
            parent_id: new.parent_id,
            version: 1,
            label: new.label.to_lowercase(),
            data: new.data.clone(),
            locked: false,
            created_at: now,
            updated_at: now,
        };
        with_conn!(self.conn(), c => {
            sqlx::query(
                "INSERT INTO records (id, kind, parent_id, version, label, data, locked, created_at, updated_at) \
                 VALUES ($1, $2, $3, 1, $4, $5, FALSE, $6, $7)",
            )
            .bind(record.id.to_string())
            .bind(&record.kind)
            .bind(record.parent_id.map(|p| p.to_string()))
            .bind(&record.label)
            .bind(record.data.to_string())
            .bind(now)
            .bind(now)
            .execute(&mut *c)
            .await?;
        });
        Ok(record)
    }

    /// Reads a record inside the transaction.
    pub async fn get_record(&mut self, kind: &str, id: Uuid) -> Result<Record, StoreError> {
        get_in(self.conn(), kind, id).await
    }

    /// Applies a change if the stored version is still `expected_version` and the record is not
    /// locked; returns the new record. Not audited by itself.
    pub async fn update_record(
        &mut self,
        change: &RecordChange<'_>,
        now: OffsetDateTime,
    ) -> Result<Record, StoreError> {
        let current = self.get_record(change.kind, change.id).await?;
        if current.locked {
            return Err(StoreError::Locked {
                what: "record",
                id: change.id.to_string(),
            });
        }
        if current.version != change.expected_version {
            return Err(StoreError::StaleVersion {
                id: change.id.to_string(),
                expected: change.expected_version,
                found: current.version,
            });
        }
        let now = normalize(now);
        let done = with_conn!(self.conn(), c => {
            sqlx::query(
                "UPDATE records SET version = version + 1, label = $1, data = $2, locked = $3, updated_at = $4 \
                 WHERE id = $5 AND version = $6 AND locked = FALSE",
            )
            .bind(change.label.to_lowercase())
            .bind(change.data.to_string())
            .bind(change.lock)
            .bind(now)
            .bind(change.id.to_string())
            .bind(change.expected_version)
            .execute(&mut *c)
            .await?
            .rows_affected()
        });
        if done == 0 {
            return Err(StoreError::StaleVersion {
                id: change.id.to_string(),
                expected: change.expected_version,
                found: current.version,
            });
        }
        self.get_record(change.kind, change.id).await
    }

    /// Marks a record as in progress or finished (for sessions: open until discharged or
    /// aborted). The flag only speeds up [`Store::list_in_progress`]; it is set by the writer in
    /// the same transaction as the change it follows from.
    pub async fn set_in_progress(
        &mut self,
        kind: &str,
        id: Uuid,
        in_progress: bool,
    ) -> Result<(), StoreError> {
        check_kind(kind)?;
        let done = with_conn!(self.conn(), c => {
            sqlx::query("UPDATE records SET in_progress = $1 WHERE id = $2 AND kind = $3")
                .bind(in_progress)
                .bind(id.to_string())
                .bind(kind)
                .execute(&mut *c)
                .await?
                .rows_affected()
        });
        if done == 0 {
            return Err(StoreError::NotFound {
                what: "record",
                id: format!("{kind} {id}"),
            });
        }
        Ok(())
    }

    /// Which of `ids` are records of `kind` marked in progress, read so that the answer holds until
    /// this transaction ends: a change that finishes one of them either committed before this read
    /// (and is seen) or waits for this transaction. SQLite: every `Tx` holds the write lock from its
    /// `BEGIN IMMEDIATE`. PostgreSQL: this takes the audit head's row lock (if the transaction does
    /// not hold it yet), which every audited change (finishing a session is one) takes before it
    /// commits. Every writer takes that lock after its row locks, so call this after the
    /// transaction's own writes: taken first, it would invert the order against a writer that
    /// locks a row (an alarm, say) and then the audit head, and the two could deadlock.
    pub async fn in_progress_among(&mut self, kind: &str, ids: &[Uuid]) -> Result<HashSet<Uuid>, StoreError> {
        check_kind(kind)?;
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let sql = match self.backend() {
            Backend::Sqlite => {
                "SELECT id FROM records WHERE kind = $1 AND in_progress \
                 AND id IN (SELECT value FROM json_each($2))"
            }
            Backend::Postgres => {
                self.lock_audit_head().await?;
                "SELECT id FROM records WHERE kind = $1 AND in_progress \
                 AND id IN (SELECT jsonb_array_elements_text($2::jsonb))"
            }
        };
        let wanted = serde_json::Value::from(ids.iter().map(Uuid::to_string).collect::<Vec<_>>()).to_string();
        let rows: Vec<(String,)> = with_conn!(self.conn(), c => {
            sqlx::query_as(sql).bind(kind).bind(&wanted).fetch_all(&mut *c).await?
        });
        rows.iter().map(|(id,)| parse_uuid("record id", id)).collect()
    }
}

impl Store {
    /// Every record of a kind under one parent (e.g. all of a patient's sessions), newest first, with
    /// no page limit: for figures that must count everything (lifetime exposure, the first
    /// infusion), where a page would silently undercount.
    pub async fn list_children(&self, kind: &str, parent_id: Uuid) -> Result<Vec<Record>, StoreError> {
        check_kind(kind)?;
        let sql = format!("{SELECT} WHERE kind = $1 AND parent_id = $2 ORDER BY id DESC");
        let mut pooled = self.acquire().await?;
        let rows: Vec<RecordRow> = with_conn!(pooled.conn(), c => {
            sqlx::query_as(&sql).bind(kind).bind(parent_id.to_string()).fetch_all(&mut *c).await?
        });
        rows.into_iter().map(Record::try_from).collect()
    }

    /// Every record of a kind changed at or after `since`, newest first, with no page limit (e.g.
    /// the sessions that can still anchor a follow-up).
    pub async fn list_updated_since(
        &self,
        kind: &str,
        since: OffsetDateTime,
    ) -> Result<Vec<Record>, StoreError> {
        check_kind(kind)?;
        let sql = format!("{SELECT} WHERE kind = $1 AND updated_at >= $2 ORDER BY id DESC");
        let mut pooled = self.acquire().await?;
        let rows: Vec<RecordRow> = with_conn!(pooled.conn(), c => {
            sqlx::query_as(&sql).bind(kind).bind(normalize(since)).fetch_all(&mut *c).await?
        });
        rows.into_iter().map(Record::try_from).collect()
    }

    /// Every record of a kind marked in progress, oldest first (no page limit: these are the open
    /// ones, e.g. the sessions on the clinic board).
    pub async fn list_in_progress(&self, kind: &str) -> Result<Vec<Record>, StoreError> {
        check_kind(kind)?;
        let sql = format!("{SELECT} WHERE kind = $1 AND in_progress ORDER BY id");
        let mut pooled = self.acquire().await?;
        let rows: Vec<RecordRow> = with_conn!(pooled.conn(), c => {
            sqlx::query_as(&sql).bind(kind).fetch_all(&mut *c).await?
        });
        rows.into_iter().map(Record::try_from).collect()
    }

    /// A record by kind and id.
    pub async fn get_record(&self, kind: &str, id: Uuid) -> Result<Record, StoreError> {
        get_in(self.acquire().await?.conn(), kind, id).await
    }

    /// Records of a kind, optionally of one parent and whose label contains `search`
    /// (case-insensitive), newest first, at most `limit` (≤ [`MAX_RECORD_PAGE`]).
    pub async fn list_records(
        &self,
        kind: &str,
        parent_id: Option<Uuid>,
        search: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Record>, StoreError> {
        check_kind(kind)?;
        let limit = i64::from(limit.clamp(1, MAX_RECORD_PAGE));
        // LIKE with an escaped pattern: the user's % and _ are matched literally.
        let pattern = search.map(|s| {
            let escaped = s
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{escaped}%")
        });
        let sql = format!(
            "{SELECT} WHERE kind = $1 AND ($2 IS NULL OR parent_id = $2) AND ($3 IS NULL OR label LIKE $3 ESCAPE '\\') \
             ORDER BY id DESC LIMIT $4"
        );
        let mut pooled = self.acquire().await?;
        let rows: Vec<RecordRow> = with_conn!(pooled.conn(), c => {
            sqlx::query_as(&sql)
                .bind(kind)
                .bind(parent_id.map(|p| p.to_string()))
                .bind(pattern.clone())
                .bind(limit)
                .fetch_all(&mut *c)
                .await?
        });
        rows.into_iter().map(Record::try_from).collect()
    }

    /// Creates a record and its audit entry (`action`, after = the document) in one transaction.
    pub async fn insert_record_audited(
        &self,
        actor: &Actor,
        action: &str,
        new: &NewRecord<'_>,
        now: OffsetDateTime,
    ) -> Result<Record, StoreError> {
        let mut tx = self.begin().await?;
        let record = tx.insert_record_audited(actor, action, new, now).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Changes a record and writes its audit entry (`action`, before and after) in one transaction.
    pub async fn update_record_audited(
        &self,
        actor: &Actor,
        action: &str,
        change: &RecordChange<'_>,
        now: OffsetDateTime,
    ) -> Result<Record, StoreError> {
        let mut tx = self.begin().await?;
        let after = tx.update_record_audited(actor, action, change, now).await?;
        tx.commit().await?;
        Ok(after)
    }
}
