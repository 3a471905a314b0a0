//! Online backups that are consistent while the clinic keeps writing.

use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;
use tokio::io::AsyncWriteExt;

use crate::db::{Backend, with_conn};
use crate::{Store, StoreError};

/// What [`Store::backup`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupReport {
    /// The file written.
    pub path: PathBuf,
    /// SQLite: a database file; PostgreSQL: JSON lines.
    pub format: BackupFormat,
    /// Rows exported (PostgreSQL JSON lines only; `None` for a SQLite copy).
    pub rows: Option<u64>,
}

/// The format of a backup file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackupFormat {
    /// A complete SQLite database; open it with `Store::connect("sqlite://PATH")`.
    SqliteFile,
    /// One JSON object per line: first `{"ketaflow_backup":1,"backend":"postgres","tables":[..]}`,
    /// then `{"table":NAME,"row":{column: value, ...}}` for every row of every table in the
    /// store's schema (as PostgreSQL's `row_to_json` renders it), all from one snapshot.
    PostgresJsonLines,
}

impl Store {
    /// Writes a consistent copy of the whole database to `path`, which must not exist yet.
    ///
    /// - SQLite: `VACUUM INTO`, a transactionally consistent, compacted database file taken
    ///   online; it opens as a `Store` and verifies like the original.
    /// - PostgreSQL: a `REPEATABLE READ READ ONLY` snapshot of every table in the store's schema
    ///   exported as JSON lines ([`BackupFormat::PostgresJsonLines`]). This does not need
    ///   `pg_dump`; for disaster recovery of a large installation prefer `pg_dump` or
    ///   continuous archiving, which also keep indexes, constraints and sequences.
    pub async fn backup(&self, path: &Path) -> Result<BackupReport, StoreError> {
        if tokio::fs::try_exists(path).await.unwrap_or(true) {
            return Err(StoreError::BackupTargetExists {
                path: path.to_owned(),
            });
        }
        match self.backend() {
            Backend::Sqlite => self.backup_sqlite(path).await,
            Backend::Postgres => self.backup_postgres(path).await,
        }
    }

    async fn backup_sqlite(&self, path: &Path) -> Result<BackupReport, StoreError> {
        let target = path.to_str().ok_or_else(|| StoreError::Invalid {
            what: "backup path",
            reason: format!("{} is not valid UTF-8", path.display()),
        })?;
        let pool = self.sqlite_pool().ok_or_else(|| StoreError::Invalid {
            what: "backup",
            reason: "not a SQLite store".into(),
        })?;
        // The copy is made readable by its owner only: SQLite would create it with the process's
        // umask (often world-readable). VACUUM INTO accepts an empty file that already exists.
        private_file(path).map_err(|source| StoreError::Io {
            path: path.to_owned(),
            source,
        })?;
        // VACUUM INTO takes an expression, so the file name is bound, not spliced into SQL.
        sqlx::query("VACUUM INTO $1").bind(target).execute(pool).await?;
        Ok(BackupReport {
            path: path.to_owned(),
            format: BackupFormat::SqliteFile,
            rows: None,
        })
    }

    async fn backup_postgres(&self, path: &Path) -> Result<BackupReport, StoreError> {
        let io = |source| StoreError::Io {
            path: path.to_owned(),
            source,
        };
        let mut tx = self.begin_snapshot().await?;
        // quote_ident makes each name safe to splice: table names cannot be bound as parameters.
        let tables: Vec<(String, String)> = with_conn!(tx.conn(), c => {
            sqlx::query_as(
                "SELECT table_name::text, quote_ident(table_name::text) \
                 FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
                 ORDER BY table_name",
            )
            .fetch_all(&mut *c)
            .await?
        });
        let file = tokio::fs::File::from_std(private_file(path).map_err(io)?);
        let mut out = tokio::io::BufWriter::new(file);
        let names: Vec<&str> = tables.iter().map(|(name, _)| name.as_str()).collect();
        let header = serde_json::json!({ "ketaflow_backup": 1, "backend": "postgres", "tables": names });
        out.write_all(format!("{header}\n").as_bytes())
            .await
            .map_err(io)?;
        let mut rows: u64 = 0;
        for (name, quoted) in &tables {
            let sql = format!("SELECT row_to_json(t)::text FROM {quoted} AS t");
            let table = serde_json::Value::String(name.clone());
            // Streamed row by row: a table may not fit in memory.
            with_conn!(tx.conn(), c => {
                let mut stream = sqlx::query_scalar::<_, String>(&sql).fetch(&mut *c);
                while let Some(row) = stream.try_next().await? {
                    // `row` is already JSON text from PostgreSQL; embed it without re-parsing.
                    out.write_all(format!("{{\"table\":{table},\"row\":{row}}}\n").as_bytes())
                        .await
                        .map_err(io)?;
                    rows += 1;
                }
            });
        }
        out.flush().await.map_err(io)?;
        out.get_ref().sync_all().await.map_err(io)?;
        tx.rollback().await?;
        Ok(BackupReport {
            path: path.to_owned(),
            format: BackupFormat::PostgresJsonLines,
            rows: Some(rows),
        })
    }
}

/// Creates a new, empty file that only its owner may read or write (mode 0600 on Unix); an
/// existing file is an error, so nothing is overwritten.
pub(crate) fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}
