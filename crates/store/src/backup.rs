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

/// What [`Store::restore`] read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreReport {
    /// The backup read.
    pub path: PathBuf,
    /// Rows written, every table together.
    pub rows: u64,
}

/// Tables a restore never writes: the migration bookkeeping (the target's own migrations ran).
const NOT_RESTORED: [&str; 2] = ["_sqlx_migrations", "sqlite_sequence"];

impl Store {
    /// Loads a backup made by [`Store::backup`] into this store, which must be empty (freshly
    /// created: no user and no audit entry), in one transaction: all of it or nothing. A SQLite
    /// backup file restores into SQLite, a PostgreSQL JSON-lines backup into PostgreSQL. The
    /// caller then verifies the audit chain (`ketaflow restore` does).
    pub async fn restore(&self, path: &Path) -> Result<RestoreReport, StoreError> {
        if self.count_users().await? > 0 || self.verify_audit_chain().await?.checked > 0 {
            return Err(StoreError::Invalid {
                what: "restore target",
                reason: "the database is not empty; restore into a new database".into(),
            });
        }
        match self.backend() {
            Backend::Sqlite => self.restore_sqlite(path).await,
            Backend::Postgres => self.restore_postgres(path).await,
        }
    }

    async fn restore_sqlite(&self, path: &Path) -> Result<RestoreReport, StoreError> {
        let source = path.to_str().ok_or_else(|| StoreError::Invalid {
            what: "backup path",
            reason: format!("{} is not valid UTF-8", path.display()),
        })?;
        if !tokio::fs::try_exists(path).await.unwrap_or(false) {
            return Err(StoreError::Invalid {
                what: "backup",
                reason: format!("{} does not exist", path.display()),
            });
        }
        let pool = self.sqlite_pool().ok_or_else(|| StoreError::Invalid {
            what: "restore",
            reason: "not a SQLite store".into(),
        })?;
        let mut conn = pool.acquire().await?;
        sqlx::query("ATTACH DATABASE $1 AS backup")
            .bind(source)
            .execute(&mut *conn)
            .await?;
        let copied = async {
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM backup.sqlite_master WHERE type = 'table' ORDER BY name",
            )
            .fetch_all(&mut *conn)
            .await?;
            sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
            let mut rows = 0;
            let result: Result<u64, StoreError> = async {
                for table in tables.iter().filter(|t| !NOT_RESTORED.contains(&t.as_str())) {
                    // Table names come from the backup's own catalogue; quoted as identifiers.
                    let quoted = format!("\"{}\"", table.replace('"', "\"\""));
                    if table == "audit_head" {
                        sqlx::query("DELETE FROM main.audit_head")
                            .execute(&mut *conn)
                            .await?;
                    }
                    rows += sqlx::query(&format!(
                        "INSERT INTO main.{quoted} SELECT * FROM backup.{quoted}"
                    ))
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                }
                Ok(rows)
            }
            .await;
            match result {
                Ok(rows) => {
                    sqlx::query("COMMIT").execute(&mut *conn).await?;
                    Ok(rows)
                }
                Err(e) => {
                    let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                    Err(e)
                }
            }
        }
        .await;
        let _ = sqlx::query("DETACH DATABASE backup").execute(&mut *conn).await;
        Ok(RestoreReport {
            path: path.to_owned(),
            rows: copied?,
        })
    }

    async fn restore_postgres(&self, path: &Path) -> Result<RestoreReport, StoreError> {
        use tokio::io::AsyncBufReadExt;
        let io = |source| StoreError::Io {
            path: path.to_owned(),
            source,
        };
        let bad = |line: u64, why: String| StoreError::Invalid {
            what: "backup file",
            reason: format!("line {line}: {why}"),
        };
        let file = tokio::fs::File::open(path).await.map_err(io)?;
        let mut lines = tokio::io::BufReader::new(file).lines();
        let header: serde_json::Value = match lines.next_line().await.map_err(io)? {
            Some(first) => serde_json::from_str(&first).map_err(|e| bad(1, e.to_string()))?,
            None => return Err(bad(1, "the file is empty".into())),
        };
        if header["ketaflow_backup"] != 1 || header["backend"] != "postgres" {
            return Err(bad(1, "not a Ketaflow PostgreSQL backup".into()));
        }
        let mut tx = self.begin().await?;
        let known: Vec<String> = with_conn!(tx.conn(), c => {
            sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
            )
            .fetch_all(&mut *c)
            .await?
        });
        // Rows in dependency order: every table a row refers to is loaded before it (the backup
        // lists tables by name); a row refers to others of its own table only by a lower id.
        let mut by_table: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        let mut number = 1;
        while let Some(line) = lines.next_line().await.map_err(io)? {
            number += 1;
            let entry: serde_json::Value =
                serde_json::from_str(&line).map_err(|e| bad(number, e.to_string()))?;
            let table = entry["table"]
                .as_str()
                .ok_or_else(|| bad(number, "no table".into()))?;
            if NOT_RESTORED.contains(&table) {
                continue;
            }
            if !known.iter().any(|k| k == table) {
                return Err(bad(
                    number,
                    format!("table {table:?} is not in this database's schema"),
                ));
            }
            by_table
                .entry(table.to_string())
                .or_default()
                .push(entry["row"].to_string());
        }
        let order = load_order(&mut tx, by_table.keys().cloned().collect()).await?;
        let mut rows = 0;
        for table in order {
            let Some(table_rows) = by_table.get(&table) else {
                continue;
            };
            let quoted: String = with_conn!(tx.conn(), c => {
                sqlx::query_scalar("SELECT quote_ident($1)").bind(&table).fetch_one(&mut *c).await?
            });
            if table == "audit_head" {
                with_conn!(tx.conn(), c => { sqlx::query("DELETE FROM audit_head").execute(&mut *c).await?; });
            }
            let sql = format!(
                "INSERT INTO {quoted} OVERRIDING SYSTEM VALUE SELECT * FROM json_populate_record(NULL::{quoted}, $1::json)"
            );
            let mut sorted: Vec<&String> = table_rows.iter().collect();
            // Each row's id parsed once, not once per comparison.
            sorted.sort_by_cached_key(|r| {
                serde_json::from_str::<serde_json::Value>(r)
                    .ok()
                    .and_then(|v| v["id"].as_i64())
            });
            for row in sorted {
                with_conn!(tx.conn(), c => { sqlx::query(&sql).bind(row).execute(&mut *c).await?; });
                rows += 1;
            }
            // Identity columns continue after the restored rows.
            reset_identities(&mut tx, &table, &quoted).await?;
        }
        tx.commit().await?;
        Ok(RestoreReport {
            path: path.to_owned(),
            rows,
        })
    }
}

/// Tables ordered so that each comes after every table its foreign keys refer to.
async fn load_order(tx: &mut crate::Tx, tables: Vec<String>) -> Result<Vec<String>, StoreError> {
    let edges: Vec<(String, String)> = with_conn!(tx.conn(), c => {
        sqlx::query_as(
            "SELECT tc.table_name::text, ccu.table_name::text \
             FROM information_schema.table_constraints tc \
             JOIN information_schema.constraint_column_usage ccu \
               ON tc.constraint_name = ccu.constraint_name AND tc.table_schema = ccu.table_schema \
             WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = current_schema()",
        )
        .fetch_all(&mut *c)
        .await?
    });
    let mut order = Vec::with_capacity(tables.len());
    let mut left = tables;
    while !left.is_empty() {
        let ready: Vec<String> = left
            .iter()
            .filter(|t| {
                edges
                    .iter()
                    .filter(|(from, to)| from == *t && to != *t)
                    .all(|(_, to)| !left.contains(to))
            })
            .cloned()
            .collect();
        if ready.is_empty() {
            return Err(StoreError::Invalid {
                what: "restore",
                reason: format!("the foreign keys among {left:?} form a cycle"),
            });
        }
        left.retain(|t| !ready.contains(t));
        order.extend(ready);
    }
    Ok(order)
}

/// Moves each identity column's sequence past the highest restored value.
async fn reset_identities(tx: &mut crate::Tx, table: &str, quoted: &str) -> Result<(), StoreError> {
    let columns: Vec<String> = with_conn!(tx.conn(), c => {
        sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 AND is_identity = 'YES'",
        )
        .bind(table)
        .fetch_all(&mut *c)
        .await?
    });
    for column in columns {
        let sql = format!(
            "SELECT setval(pg_get_serial_sequence($1, $2), COALESCE((SELECT max({col}) FROM {quoted}), 0) + 1, false)",
            col = format_args!("\"{}\"", column.replace('"', "\"\"")),
        );
        with_conn!(tx.conn(), c => {
            sqlx::query(&sql).bind(quoted).bind(&column).execute(&mut *c).await?;
        });
    }
    Ok(())
}
