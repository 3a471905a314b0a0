//! Persistence for Ketaflow: one [`Store`] API over SQLite (embedded default) and PostgreSQL,
//! migrations for both, and the hash-chained audit log. This crate is the only code in the
//! project that knows SQL.
//!
//! # Design
//!
//! - **Runtime-checked queries.** Every statement is `sqlx::query`/`query_as`/`query_scalar`
//!   with bound values; SQL text is never built from values with `format!` (the only spliced
//!   texts are identifiers: a validated schema name and `quote_ident`-quoted table names in the
//!   PostgreSQL backup). The compile-time `query!` macros are not used: they bind a build to one
//!   database and need `DATABASE_URL` at build time (sqlx #964, #224). What those macros would
//!   check is checked instead by the `conformance` suite (cargo feature `conformance`), run
//!   against both backends.
//! - **One migration directory per backend**: `migrations/sqlite` and `migrations/postgres`,
//!   embedded with `sqlx::migrate!` and applied by [`Store::connect`]. A migration is added to
//!   both, with the same number and name.
//! - **One code path for both backends.** [`Store`] wraps a `SqlitePool` or a `PgPool`;
//!   [`Tx`] wraps a transaction of either. Query functions take an internal `Conn` (a borrowed
//!   connection of either backend) and run through the `with_conn!` macro, which expands the same
//!   body (same SQL text with `$1` placeholders, which SQLite accepts too; same binds) once per
//!   backend. Only where the dialects differ (locking the audit head, backups) is there a
//!   `match` on [`Backend`].
//! - **Portable column types.** Ids are TEXT UUIDs (v7), booleans BOOLEAN, counters BIGINT
//!   (`i64`), timestamps `TIMESTAMPTZ` on PostgreSQL and RFC 3339 TEXT on SQLite, always UTC and
//!   truncated to microseconds by the store so both backends read back exactly what was written.
//!   Because SQLite compares such text lexically, time comparisons (token expiry, lockout) are
//!   done in Rust, not in SQL.
//! - **Time is an argument.** Every method that needs "now" takes it; the store never reads the
//!   clock.
//! - **Every write that matters is audited in the same transaction.** Writes live on [`Tx`];
//!   [`Tx::append_audit`] adds the audit entry; [`Tx::commit`] makes both durable or neither.
//!   `Store::*_audited` methods wrap that for the user administration operations.
//!
//! # Adding an audited table (the pattern)
//!
//! 1. Add `migrations/sqlite/000N_<name>.sql` and `migrations/postgres/000N_<name>.sql` with the
//!    same columns (TEXT ids, BOOLEAN, BIGINT, timestamps as above). High-volume rows (vital-sign
//!    samples) go in their own append-only table.
//! 2. Add a module like `users.rs`: a public domain type (or reuse `ketaflow-clinic`'s), a
//!    private `#[derive(sqlx::FromRow)]` row struct with a checked `TryFrom` into the domain
//!    type, and SQL as `const` strings.
//! 3. Put writes on `impl Tx` (`tx.create_patient(..)`), reads on `impl Store` (and on `Tx`
//!    when a write needs to read its own changes). Inside, `with_conn!(self.conn(), c => ...)`.
//!    Map unique and foreign-key violations with `StoreError::from_write`.
//! 4. The caller (or a `Store::*_audited` wrapper) opens `store.begin()`, performs the write,
//!    appends `NewAuditEntry::new(now, actor, "patient.create", "patient", id).after(json)`
//!    (with `.before(..)` for updates), and commits. For batches of high-volume rows append one
//!    entry whose `after` is [`batch_digest`] of the rows.
//! 5. Add the table to the conformance suite; both `tests/sqlite.rs` and `tests/postgres.rs`
//!    pick the new test up from the one list in `conformance_tests!`.

mod audit;
mod backup;
mod db;
mod error;
mod integrity;
mod ledger;
mod links;
mod records;
mod sessions;
mod store;
mod tokens;
mod users;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use audit::{
    Actor, AuditEntry, AuditFilter, AuditProblem, AuditProblemKind, AuditReport, GENESIS_HASH,
    MAX_AUDIT_PAGE, NewAuditEntry, batch_digest,
};
pub use backup::{BackupFormat, BackupReport, RestoreReport};
pub use db::Backend;
pub use error::StoreError;
pub use integrity::{TableProblem, TableProblemKind, TablesReport, VITALS_ACTION};
pub use ledger::{
    BusinessTime, CountKind, CountLine, CountRecorded, Discrepancy, DiscrepancyResolution, DiscrepancyStatus,
    EntryKind, LedgerCount, LedgerEntry, LedgerFilter, LedgerPerson, LedgerReport, MAX_FRACTION_DIGITS,
    MAX_LEDGER_PAGE, MAX_LEDGER_TEXT, MAX_QUANTITY, NewAdministration, NewCount, NewDestruction, NewDraw,
    NewVial, NewWaste, Vial, VialStatus, canonical, check_quantity, iso_date, parse_quantity, round_mg,
};
pub use links::{NewQuestionnaireLink, QuestionnaireLink};
pub use records::{MAX_RECORD_PAGE, NewRecord, Record, RecordChange};
pub use sessions::{
    AlarmRaise, AlarmState, DeviceToken, MAX_EVENT_PAGE, MAX_IDEMPOTENCY_KEY_LEN, NewAlarm, NewDeviceToken,
    NewEvent, NewVital, ROWS_PER_STATEMENT, StoredAlarm, StoredEvent, StoredVital, VitalInsert, VitalsBucket,
};
pub use store::{POOL_WAIT, Readiness, Store, StoreOptions, Tx, describe_metrics};
pub use tokens::{ActiveToken, AuthToken, NewToken, TokenKind, hash_token};
pub use users::{LockoutPolicy, NewUser, Role, User};
