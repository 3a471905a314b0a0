//! Backend plumbing: the connection enum every query function takes, the dispatch macro, and the
//! timestamp normalisation both backends share.

use sqlx::{PgConnection, SqliteConnection};
use time::{OffsetDateTime, UtcOffset};

/// Which database engine a [`Store`](crate::Store) talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Embedded SQLite (the default; one file, WAL journal).
    Sqlite,
    /// PostgreSQL (several server nodes may share it).
    Postgres,
}

/// A borrowed connection of either backend: a pooled connection or the one inside a transaction.
/// Every query function in this crate takes one, so pool reads and transactional writes share code.
pub(crate) enum Conn<'a> {
    Sqlite(&'a mut SqliteConnection),
    Postgres(&'a mut PgConnection),
}

/// Runs `$body` once per backend with `$c` bound to `&mut SqliteConnection` or `&mut PgConnection`.
/// The body is written once (same SQL text, `$1` placeholders, same binds) and type-checked
/// against each backend; use `&mut *$c` as the executor.
macro_rules! with_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::db::Conn::Sqlite($c) => $body,
            $crate::db::Conn::Postgres($c) => $body,
        }
    };
}
pub(crate) use with_conn;

/// Brings a caller's timestamp to what both backends store exactly: UTC, microsecond precision
/// (PostgreSQL's `TIMESTAMPTZ` resolution). Without this a nanosecond timestamp would read back
/// differently on PostgreSQL, and an audit hash computed before storing would not verify.
pub(crate) fn normalize(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(UtcOffset::UTC);
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000).unwrap_or(t)
}

/// Parses a UUID read from a TEXT column.
pub(crate) fn parse_uuid(what: &'static str, text: &str) -> Result<uuid::Uuid, crate::StoreError> {
    uuid::Uuid::parse_str(text).map_err(|_| crate::StoreError::Corrupt {
        what,
        detail: format!("{text:?} is not a UUID"),
    })
}
