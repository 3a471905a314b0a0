//! The `Store` handle, its connection options, and the transaction handle `Tx`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Connection, PgPool, Postgres, Sqlite, SqlitePool};

use crate::StoreError;
use crate::db::{Backend, Conn};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// The database: a connection pool to SQLite or PostgreSQL. Cheap to clone (clones share the pool).
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    /// Connections and transactions taken from the pool since connecting: a store operation's
    /// round trips to the database, counted so that a test can show what a read costs.
    operations: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Clone, Debug)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Tuning for [`Store::connect_with`]. The defaults suit one clinic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    max_connections: u32,
    busy_timeout: Duration,
    postgres_schema: Option<String>,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            max_connections: 8,
            busy_timeout: Duration::from_secs(30),
            postgres_schema: None,
        }
    }
}

impl StoreOptions {
    /// Pool size (default 8).
    #[must_use]
    pub fn max_connections(mut self, n: u32) -> StoreOptions {
        self.max_connections = n.max(1);
        self
    }

    /// How long a SQLite writer waits for another writer's lock before failing (default 30 s).
    #[must_use]
    pub fn busy_timeout(mut self, timeout: Duration) -> StoreOptions {
        self.busy_timeout = timeout;
        self
    }

    /// On PostgreSQL, keep all tables in this schema (created if missing; lowercase letters,
    /// digits and `_`, not starting with a digit). Lets several clinics, or tests, share one
    /// database.
    #[must_use]
    pub fn postgres_schema(mut self, schema: impl Into<String>) -> StoreOptions {
        self.postgres_schema = Some(schema.into());
        self
    }
}

/// A schema name we can put into SQL text without quoting (identifiers cannot be bound).
fn check_schema_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
        && !name.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            what: "PostgreSQL schema name",
            reason: format!("{name:?}: use 1–63 of a–z, 0–9, _ and do not start with a digit"),
        })
    }
}

impl Store {
    /// Opens the database at `url` with default options and applies pending migrations.
    ///
    /// - `sqlite://PATH` (also `sqlite:PATH`, `sqlite::memory:`): the file is created if missing;
    ///   WAL journal, foreign keys on, busy timeout 30 s, `synchronous = FULL` (a committed audit
    ///   entry survives power loss).
    /// - `postgres://...` or `postgresql://...`.
    ///
    /// Anything else is [`StoreError::UnsupportedUrl`].
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Store::connect_with(url, &StoreOptions::default()).await
    }

    /// [`Store::connect`] with explicit options.
    pub async fn connect_with(url: &str, options: &StoreOptions) -> Result<Store, StoreError> {
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        match scheme {
            "sqlite" => Store::connect_sqlite(url, options).await,
            "postgres" | "postgresql" => Store::connect_postgres(url, options).await,
            _ => Err(StoreError::UnsupportedUrl {
                scheme: scheme.to_owned(),
            }),
        }
    }

    async fn connect_sqlite(url: &str, options: &StoreOptions) -> Result<Store, StoreError> {
        let parsed = SqliteConnectOptions::from_str(url)?;
        // A new database file is readable by its owner only (mode 0600): SQLite would create it
        // with the process's umask, often world-readable. Its WAL and shared-memory files take
        // the database file's mode.
        let file = parsed.get_filename();
        if file.as_os_str() != ":memory:" && !file.as_os_str().is_empty() && !file.exists() {
            match crate::backup::private_file(file) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(source) => {
                    return Err(StoreError::Io {
                        path: file.to_owned(),
                        source,
                    });
                }
            }
        }
        let connect = parsed
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(options.busy_timeout);
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.busy_timeout)
            .connect_with(connect)
            .await?;
        SQLITE_MIGRATIONS.run(&pool).await?;
        Ok(Store {
            pool: Pool::Sqlite(pool),
            operations: Default::default(),
        })
    }

    async fn connect_postgres(url: &str, options: &StoreOptions) -> Result<Store, StoreError> {
        let connect = PgConnectOptions::from_str(url)?;
        let mut pool_options = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.busy_timeout);
        if let Some(schema) = options.postgres_schema.clone() {
            check_schema_name(&schema)?;
            let mut conn = sqlx::PgConnection::connect_with(&connect).await?;
            // The name was checked above to be a plain identifier; identifiers cannot be bound.
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .execute(&mut conn)
                .await?;
            conn.close().await?;
            pool_options = pool_options.after_connect(move |conn, _meta| {
                let schema = schema.clone();
                Box::pin(async move {
                    sqlx::query("SELECT set_config('search_path', $1, false)")
                        .bind(schema)
                        .execute(conn)
                        .await?;
                    Ok(())
                })
            });
        }
        let pool = pool_options.connect_with(connect).await?;
        POSTGRES_MIGRATIONS.run(&pool).await?;
        Ok(Store {
            pool: Pool::Postgres(pool),
            operations: Default::default(),
        })
    }

    fn count_operation(&self) {
        self.operations.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many store operations (a pooled connection or a transaction each) this store and its
    /// clones have run since connecting. Tests compare it before and after a use case to show what
    /// the use case costs.
    pub fn operations(&self) -> u64 {
        self.operations.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Which engine this store talks to.
    pub fn backend(&self) -> Backend {
        match &self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Starts a write transaction. Do every write of one clinical action and its audit entry
    /// through the returned [`Tx`], then [`Tx::commit`]; dropping it rolls back.
    ///
    /// On SQLite this is `BEGIN IMMEDIATE`: the write lock is taken now, so two writers never
    /// both read and then fail to upgrade. While a `Tx` is open, do not write through the
    /// `Store` from the same task: that write would wait for the lock the `Tx` holds.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        self.count_operation();
        let waited = std::time::Instant::now();
        let inner = match &self.pool {
            Pool::Sqlite(pool) => TxInner::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(pool) => TxInner::Postgres(pool.begin().await?),
        };
        pool_waited("write", waited);
        Ok(Tx {
            inner,
            audit_head: None,
        })
    }

    /// A read-only transaction that sees one consistent snapshot (verification, backup).
    pub(crate) async fn begin_snapshot(&self) -> Result<Tx, StoreError> {
        self.count_operation();
        let inner = match &self.pool {
            // A deferred transaction reads one WAL snapshot from its first read to its end.
            Pool::Sqlite(pool) => TxInner::Sqlite(pool.begin().await?),
            Pool::Postgres(pool) => TxInner::Postgres(
                pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?,
            ),
        };
        Ok(Tx {
            inner,
            audit_head: None,
        })
    }

    /// A pooled connection for reads and single-statement writes.
    pub(crate) async fn acquire(&self) -> Result<Pooled, StoreError> {
        self.count_operation();
        let waited = std::time::Instant::now();
        let pooled = match &self.pool {
            Pool::Sqlite(pool) => Pooled::Sqlite(pool.acquire().await?),
            Pool::Postgres(pool) => Pooled::Postgres(pool.acquire().await?),
        };
        pool_waited("read", waited);
        Ok(pooled)
    }

    /// Connections in the pool now, and how many of them are idle (for the pool gauges).
    pub fn pool_size(&self) -> (u32, usize) {
        match &self.pool {
            Pool::Sqlite(pool) => (pool.size(), pool.num_idle()),
            Pool::Postgres(pool) => (pool.size(), pool.num_idle()),
        }
    }

    /// The SQLite pool, for operations with no PostgreSQL counterpart (e.g. `VACUUM INTO`).
    pub(crate) fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match &self.pool {
            Pool::Sqlite(pool) => Some(pool),
            Pool::Postgres(_) => None,
        }
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }
}

/// How long a caller waited for a pooled connection (`read`) or for a transaction to begin
/// (`write`: on SQLite this includes waiting for the write lock), in seconds.
pub const POOL_WAIT: &str = "ketaflow_db_pool_wait_seconds";

fn pool_waited(kind: &'static str, since: std::time::Instant) {
    metrics::histogram!(POOL_WAIT, "kind" => kind).record(since.elapsed().as_secs_f64());
}

/// Describes the store's metrics to whichever recorder is installed.
pub fn describe_metrics() {
    metrics::describe_histogram!(
        POOL_WAIT,
        metrics::Unit::Seconds,
        "Time waited for a database connection (read) or a transaction's start (write)"
    );
}

/// A connection checked out of the pool.
pub(crate) enum Pooled {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

impl Pooled {
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            Pooled::Sqlite(c) => Conn::Sqlite(c),
            Pooled::Postgres(c) => Conn::Postgres(c),
        }
    }
}

/// An open database transaction on either backend, from [`Store::begin`]. Writes made through it
/// and the audit entries appended with [`Tx::append_audit`] commit together with [`Tx::commit`];
/// dropping the `Tx` or calling [`Tx::rollback`] discards them all.
pub struct Tx {
    inner: TxInner,
    /// The audit chain's head as this transaction last wrote it (seq, hash), once read under the
    /// head's lock (PostgreSQL: `FOR UPDATE`; SQLite: the `BEGIN IMMEDIATE` write lock). Nobody
    /// else can move the head while this transaction holds the lock, so later appends need not read
    /// it again, and the head row is written once, at commit.
    pub(crate) audit_head: Option<AuditHead>,
}

/// The audit chain's head inside a transaction.
#[derive(Debug, Clone)]
pub(crate) struct AuditHead {
    pub(crate) seq: i64,
    pub(crate) hash: String,
    /// Whether entries were appended since the head row was read (it must be written at commit).
    pub(crate) moved: bool,
}

enum TxInner {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl fmt::Debug for Tx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tx")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl Tx {
    /// Which engine the transaction runs on.
    pub fn backend(&self) -> Backend {
        match &self.inner {
            TxInner::Sqlite(_) => Backend::Sqlite,
            TxInner::Postgres(_) => Backend::Postgres,
        }
    }

    /// Makes every write of this transaction durable.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        self.write_audit_head().await?;
        match self.inner {
            TxInner::Sqlite(tx) => tx.commit().await?,
            TxInner::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }

    /// Discards every write of this transaction (dropping the `Tx` does the same).
    pub async fn rollback(self) -> Result<(), StoreError> {
        match self.inner {
            TxInner::Sqlite(tx) => tx.rollback().await?,
            TxInner::Postgres(tx) => tx.rollback().await?,
        }
        Ok(())
    }

    /// The transaction's connection, for the query functions.
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match &mut self.inner {
            TxInner::Sqlite(tx) => Conn::Sqlite(tx),
            TxInner::Postgres(tx) => Conn::Postgres(tx),
        }
    }
}

/// What [`Store::readiness`] found: the database answered, its schema is the one this build
/// expects, and the audit chain's head can be read. Carries no clinical data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readiness {
    /// Migrations this build carries (the newest version).
    pub expected_migration: i64,
    /// The newest migration the database has applied successfully (0 when none).
    pub applied_migration: i64,
    /// Whether every migration this build carries is applied, none failed, and the database has
    /// none this build does not know (a newer build ran against it).
    pub migrations_current: bool,
    /// The audit chain's length: the head's sequence number.
    pub audit_head_seq: i64,
}

impl Store {
    /// Checks that the database can serve requests: a round trip, the migrations applied against
    /// the ones embedded in this build, and the audit head. Fails (does not wait for the pool's
    /// long acquire timeout) when the database is unreachable; the caller bounds it in time.
    pub async fn readiness(&self) -> Result<Readiness, StoreError> {
        let migrator = match self.backend() {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        let expected: Vec<i64> = migrator
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .map(|m| m.version)
            .collect();
        let mut pooled = self.acquire().await?;
        let (applied, audit_head_seq): (Vec<(i64, bool)>, i64) = crate::db::with_conn!(pooled.conn(), c => {
            let applied = sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&mut *c)
                .await?;
            let (seq,): (i64,) = sqlx::query_as("SELECT seq FROM audit_head WHERE id = 1")
                .fetch_one(&mut *c)
                .await?;
            (applied, seq)
        });
        let applied_versions: Vec<i64> = applied.iter().map(|(v, _)| *v).collect();
        let all_succeeded = applied.iter().all(|(_, ok)| *ok);
        Ok(Readiness {
            expected_migration: expected.last().copied().unwrap_or(0),
            applied_migration: applied_versions.last().copied().unwrap_or(0),
            migrations_current: all_succeeded && applied_versions == expected,
            audit_head_seq,
        })
    }
}
