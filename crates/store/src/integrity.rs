//! The mutable tables checked against the audit log, so that editing a row directly in the database
//! is found even when the hash chain itself is intact.
//!
//! The chain (with signed checkpoints outside the database) proves what was audited; this module
//! proves the tables still say what the chain says:
//!
//! - **Records** (`records`): every change goes through `Tx::insert_record_audited` /
//!   `update_record_audited` (or writes its own entry with the record before and after), so the
//!   entries about a record are its history. Version 1 is the first entry's `after`; each later
//!   version is one entry whose `before` is the previous `after`; the stored data must be the last
//!   `after`, and the stored version the number of those entries. Entries about the record that
//!   carry no `before` after the first are not versions (a batch of vital signs, a device token,
//!   an export).
//! - **Vital signs** (`vital_signs`): each `vitals.record` entry carries, in `after.digest`, the
//!   [`crate::batch_digest`] of the rows it stored, as
//!   `{id, key, data}` in insertion order. The rows of a session, in id order, are split into the
//!   entries' batches in seq order and each batch's digest recomputed. A changed, deleted or added
//!   row breaks it.
//! - **Users** (`users`): the latest entry about a user that carries their snapshot (username,
//!   display name, role, disabled; never the password hash) must match the row.
//!
//! What it cannot see is said in the README: a row rewritten together with a forged, re-hashed
//! chain is caught only by a signed checkpoint.

use crate::db::with_conn;
use crate::{Store, StoreError, Tx};

/// What is wrong with a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TableProblemKind {
    /// The row differs from what its last audit entry says it became.
    Changed,
    /// The row has no audit entry at all (inserted behind the application's back).
    Unaudited,
    /// The entries about the row do not form its history: a version without its entry, or an
    /// entry whose `before` is not the previous `after`.
    HistoryBroken,
    /// An audited batch of rows is missing rows.
    Missing,
}

impl TableProblemKind {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            TableProblemKind::Changed => "changed",
            TableProblemKind::Unaudited => "unaudited",
            TableProblemKind::HistoryBroken => "history_broken",
            TableProblemKind::Missing => "missing",
        }
    }
}

/// One row, or one audited batch, that does not agree with the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableProblem {
    /// The table.
    pub table: &'static str,
    /// The row (a record's or user's id; for vital signs, the session and the audit entry).
    pub id: String,
    /// What is wrong.
    pub kind: TableProblemKind,
    /// In words, naming the versions, counts or fields involved.
    pub detail: String,
}

/// What [`Store::verify_tables`] checked and found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TablesReport {
    /// Records checked.
    pub records: u64,
    /// Vital-sign rows checked.
    pub vitals: u64,
    /// Audited batches of vital signs checked.
    pub vital_batches: u64,
    /// Users checked.
    pub users: u64,
    /// Every disagreement found, in table order.
    pub problems: Vec<TableProblem>,
}

impl TablesReport {
    /// Nothing found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The audit action of a batch of vital signs; its `after.digest` is the batch's digest.
pub const VITALS_ACTION: &str = "vitals.record";

#[derive(sqlx::FromRow)]
struct EntryRow {
    seq: i64,
    action: String,
    before_json: Option<String>,
    after_json: Option<String>,
}

fn json(text: &Option<String>) -> Option<serde_json::Value> {
    text.as_deref().and_then(|t| serde_json::from_str(t).ok())
}

impl Store {
    /// Checks records, vital signs and users against the audit log inside one read snapshot (see
    /// the module documentation) and lists every disagreement. The chain itself is checked by
    /// [`Store::verify_audit_chain`].
    pub async fn verify_tables(&self) -> Result<TablesReport, StoreError> {
        let mut tx = self.begin_snapshot().await?;
        let mut report = TablesReport::default();
        verify_records(&mut tx, &mut report).await?;
        verify_vitals(&mut tx, &mut report).await?;
        verify_users(&mut tx, &mut report).await?;
        tx.rollback().await?;
        Ok(report)
    }
}

async fn entries_about(tx: &mut Tx, record_type: &str, id: &str) -> Result<Vec<EntryRow>, StoreError> {
    Ok(with_conn!(tx.conn(), c => {
        sqlx::query_as(
            "SELECT seq, action, before_json, after_json FROM audit_log \
             WHERE record_type = $1 AND record_id = $2 ORDER BY seq",
        )
        .bind(record_type)
        .bind(id)
        .fetch_all(&mut *c)
        .await?
    }))
}

async fn verify_records(tx: &mut Tx, report: &mut TablesReport) -> Result<(), StoreError> {
    let rows: Vec<(String, String, i64, String)> = with_conn!(tx.conn(), c => {
        sqlx::query_as("SELECT id, kind, version, data FROM records ORDER BY id")
            .fetch_all(&mut *c)
            .await?
    });
    for (id, kind, version, data) in rows {
        report.records += 1;
        let entries = entries_about(tx, &kind, &id).await?;
        let problem = |kind_of: TableProblemKind, detail: String| TableProblem {
            table: "records",
            id: id.clone(),
            kind: kind_of,
            detail,
        };
        let Some(first) = entries.first() else {
            report.problems.push(problem(
                TableProblemKind::Unaudited,
                format!("{kind} version {version} has no audit entry"),
            ));
            continue;
        };
        // The versions: the creation, then each entry that carries the record before it.
        let mut history = vec![first];
        history.extend(entries.iter().skip(1).filter(|e| e.before_json.is_some()));
        for pair in history.windows(2) {
            if json(&pair[1].before_json) != json(&pair[0].after_json) {
                report.problems.push(problem(
                    TableProblemKind::HistoryBroken,
                    format!(
                        "audit entry {} ({}) changes {kind} from something other than what entry {} left",
                        pair[1].seq, pair[1].action, pair[0].seq
                    ),
                ));
            }
        }
        if history.len() as i64 != version {
            report.problems.push(problem(
                TableProblemKind::HistoryBroken,
                format!(
                    "{kind} is at version {version} but the audit log records {} version(s)",
                    history.len()
                ),
            ));
        }
        let stored = serde_json::from_str::<serde_json::Value>(&data).ok();
        let last = history.last().expect("at least the first entry");
        if stored.is_none() || stored != json(&last.after_json) {
            report.problems.push(problem(
                TableProblemKind::Changed,
                format!(
                    "{kind} data differs from what audit entry {} ({}) recorded",
                    last.seq, last.action
                ),
            ));
        }
    }
    Ok(())
}

async fn verify_vitals(tx: &mut Tx, report: &mut TablesReport) -> Result<(), StoreError> {
    // Every session that has readings or an audited batch.
    let sessions: Vec<(String,)> = with_conn!(tx.conn(), c => {
        sqlx::query_as(
            "SELECT session_id FROM vital_signs UNION \
             SELECT record_id FROM audit_log WHERE action = $1 ORDER BY 1",
        )
        .bind(VITALS_ACTION)
        .fetch_all(&mut *c)
        .await?
    });
    for (session,) in sessions {
        let rows: Vec<(i64, String, String)> = with_conn!(tx.conn(), c => {
            sqlx::query_as(
                "SELECT id, idempotency_key, data FROM vital_signs WHERE session_id = $1 ORDER BY id",
            )
            .bind(&session)
            .fetch_all(&mut *c)
            .await?
        });
        report.vitals += rows.len() as u64;
        let batches: Vec<EntryRow> = entries_about(tx, "session", &session)
            .await?
            .into_iter()
            .filter(|e| e.action == VITALS_ACTION)
            .collect();
        let mut rows = rows.into_iter().map(|(id, key, data)| {
            let data =
                serde_json::from_str::<serde_json::Value>(&data).unwrap_or(serde_json::Value::String(data));
            (id, serde_json::json!({ "id": id, "key": key, "data": data }))
        });
        for batch in &batches {
            report.vital_batches += 1;
            let after = json(&batch.after_json).unwrap_or_default();
            let digest = after.get("digest").cloned().unwrap_or_default();
            let count = digest
                .get("count")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0);
            let taken: Vec<(i64, serde_json::Value)> = rows.by_ref().take(count as usize).collect();
            let problem = |kind: TableProblemKind, detail: String| TableProblem {
                table: "vital_signs",
                id: format!("session {session}, audit entry {}", batch.seq),
                kind,
                detail,
            };
            if (taken.len() as u64) < count {
                report.problems.push(problem(
                    TableProblemKind::Missing,
                    format!("the entry records {count} reading(s); {} remain", taken.len()),
                ));
                continue;
            }
            let recomputed = crate::batch_digest(taken.iter().map(|(_, v)| v));
            if recomputed.get("batch_sha256") != digest.get("batch_sha256") {
                let ids: Vec<String> = taken.iter().map(|(id, _)| id.to_string()).collect();
                report.problems.push(problem(
                    TableProblemKind::Changed,
                    format!(
                        "readings {} differ from the digest the entry recorded",
                        ids.join(", ")
                    ),
                ));
            }
        }
        let extra: Vec<String> = rows.map(|(id, _)| id.to_string()).collect();
        if !extra.is_empty() {
            report.problems.push(TableProblem {
                table: "vital_signs",
                id: format!("session {session}"),
                kind: TableProblemKind::Unaudited,
                detail: format!("readings {} are in no audited batch", extra.join(", ")),
            });
        }
    }
    Ok(())
}

async fn verify_users(tx: &mut Tx, report: &mut TablesReport) -> Result<(), StoreError> {
    let users: Vec<(String, String, String, String, bool)> = with_conn!(tx.conn(), c => {
        sqlx::query_as("SELECT id, username, display_name, role, disabled FROM users ORDER BY id")
            .fetch_all(&mut *c)
            .await?
    });
    for (id, username, display_name, role, disabled) in users {
        report.users += 1;
        let now = serde_json::json!({
            "id": id, "username": username, "display_name": display_name, "role": role, "disabled": disabled,
        });
        // The latest snapshot: entries that record the user as they are after the change.
        let snapshot = entries_about(tx, "user", &id)
            .await?
            .into_iter()
            .rev()
            .find_map(|e| {
                let after = json(&e.after_json)?;
                (after.get("role").is_some() && after.get("username").is_some()).then_some((e.seq, after))
            });
        let problem = |kind: TableProblemKind, detail: String| TableProblem {
            table: "users",
            id: id.clone(),
            kind,
            detail,
        };
        match snapshot {
            None => report.problems.push(problem(
                TableProblemKind::Unaudited,
                format!("user {username} has no audit entry recording them"),
            )),
            Some((seq, recorded)) if recorded != now => {
                let fields: Vec<&str> = ["username", "display_name", "role", "disabled"]
                    .into_iter()
                    .filter(|f| recorded.get(*f) != now.get(*f))
                    .collect();
                report.problems.push(problem(
                    TableProblemKind::Changed,
                    format!(
                        "user {username}: {} differ(s) from audit entry {seq}",
                        fields.join(", ")
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}
