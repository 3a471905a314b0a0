//! The store's error type.

use std::path::PathBuf;

/// Everything that can go wrong in the store. Messages name the value and what was expected; they
/// never contain a password hash, a token or a database password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The record does not exist.
    #[error("{what} {id} not found")]
    NotFound {
        /// The kind of record, e.g. "user".
        what: &'static str,
        /// The id or key that was looked up.
        id: String,
    },
    /// A uniqueness rule was violated (e.g. the username is taken).
    #[error("{what} already exists")]
    Conflict {
        /// What collided, e.g. "user with this username".
        what: &'static str,
    },
    /// The database URL's scheme is neither `sqlite:` nor `postgres:`/`postgresql:`.
    #[error("unsupported database URL scheme {scheme:?}: expected sqlite://PATH or postgres://...")]
    UnsupportedUrl {
        /// The scheme found (the rest of the URL is withheld: it may hold a password).
        scheme: String,
    },
    /// An argument was rejected before reaching the database.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// The argument, e.g. "token hash".
        what: &'static str,
        /// What was wrong and what is allowed.
        reason: String,
    },
    /// A stored value could not be understood (e.g. an unknown role name).
    #[error("corrupt {what} in the database: {detail}")]
    Corrupt {
        /// The column or record.
        what: &'static str,
        /// The offending value.
        detail: String,
    },
    /// `backup` refuses to overwrite an existing file.
    #[error("backup target {} already exists", path.display())]
    BackupTargetExists {
        /// The path given to `backup`.
        path: PathBuf,
    },
    /// A file operation failed (backup).
    #[error("i/o error on {}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Applying the embedded migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The record is locked (e.g. an approved plan) and never changes again.
    #[error("{what} {id} is locked and cannot change")]
    Locked {
        /// The kind of record.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// Someone changed the record since the caller read it (optimistic concurrency).
    #[error(
        "record {id} changed since it was read (version {expected} expected, {found} found); reload and retry"
    )]
    StaleVersion {
        /// The record.
        id: String,
        /// The version the caller read.
        expected: i64,
        /// The version stored now.
        found: i64,
    },
    /// A rule of the data refused the write (e.g. a controlled-substance balance would go
    /// negative, or a witness is the actor); nothing was written.
    #[error("{message}")]
    Refused {
        /// Stable code, e.g. `insufficient_balance`.
        code: &'static str,
        /// What was refused and why, naming the values.
        message: String,
    },
    /// Text the database cannot hold: PostgreSQL's `text` and `jsonb` refuse U+0000 (SQLSTATE
    /// 22021 and 22P05). The doors refuse it first with the field's name; this is the net under
    /// every door, so such text is a refusal of the input, never a server error.
    #[error("text contains a character the database cannot store (U+0000, NUL); remove it")]
    UnstorableText,
    /// Any other database error.
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> StoreError {
        if let sqlx::Error::Database(db) = &err
            && matches!(db.code().as_deref(), Some("22021" | "22P05"))
        {
            return StoreError::UnstorableText;
        }
        StoreError::Database(err)
    }
}

impl StoreError {
    /// Maps a unique-constraint violation to [`StoreError::Conflict`], a foreign-key violation to
    /// [`StoreError::NotFound`] of `parent`, anything else as [`From<sqlx::Error>`] does.
    pub(crate) fn from_write(
        err: sqlx::Error,
        what: &'static str,
        parent: Option<(&'static str, String)>,
    ) -> StoreError {
        if let sqlx::Error::Database(db) = &err {
            if db.is_unique_violation() {
                return StoreError::Conflict { what };
            }
            if db.is_foreign_key_violation()
                && let Some((what, id)) = parent
            {
                return StoreError::NotFound { what, id };
            }
        }
        StoreError::from(err)
    }
}
