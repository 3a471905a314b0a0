//! What a use case answers besides success. Each variant says what was wrong in words a clinician
//! can act on and carries what an edge needs to place it (the field, the limit, the version); the
//! edges map variants to their own answers (an HTTP status, a form error, an HL7 ACK) in one place
//! each.

use ketaflow_store::StoreError;

/// A refused or failed use case.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A field has a value outside what is allowed.
    #[error("{field} {} is outside {allowed}", display_value(value))]
    InvalidField {
        /// The field, as the caller named it.
        field: String,
        /// The value given.
        value: serde_json::Value,
        /// What is allowed, e.g. "2–350".
        allowed: String,
    },
    /// The input as a whole is not understood.
    #[error("{0}")]
    BadInput(String),
    /// The caller's role may not do this.
    #[error("your role ({role}) may not {action}")]
    Forbidden {
        /// The caller's role.
        role: &'static str,
        /// What was attempted.
        action: &'static str,
    },
    /// No valid credentials.
    #[error("authentication required")]
    Unauthenticated,
    /// Wrong username or password, or an account that cannot sign in now (disabled, or locked
    /// after 100 consecutive failures): one answer for all, so it never says which.
    #[error(
        "wrong username or password, or the account cannot sign in now; if this persists, ask an administrator"
    )]
    BadCredentials,
    /// Too many failed password checks from this client for this account (or from this client):
    /// the next attempt must wait.
    #[error("too many failed password attempts; wait {retry_after_s} s and try again")]
    Throttled {
        /// Seconds to wait.
        retry_after_s: i64,
    },
    /// The caller's password was set by someone else and must be changed first.
    #[error("change your password first")]
    PasswordChangeRequired,
    /// No such record.
    #[error("{what} {id} not found")]
    NotFound {
        /// The kind of record.
        what: String,
        /// The id.
        id: String,
    },
    /// The request conflicts with the record's state (a closed session, a used link).
    #[error("{0}")]
    Conflict(String),
    /// Someone changed the record since it was read.
    #[error("{message}")]
    StaleVersion {
        /// What changed, naming both versions.
        message: String,
        /// The version stored now.
        current_version: i64,
    },
    /// The record is locked (an approved plan) and never changes again.
    #[error("{0}")]
    Locked(String),
    /// The clinical rules refuse the request.
    #[error("{message}")]
    Refused {
        /// Stable code, e.g. `hard_limit`.
        code: &'static str,
        /// Why.
        message: String,
    },
    /// The clinical rules refuse the request because of one thing in it, named by `field` so
    /// that a front door can put the message beside it: a witness (`witness.username`,
    /// `witnesses[1].username`) or a limit whose override is missing (`overrides.<limit>`).
    #[error("{message}")]
    RefusedAt {
        /// Stable code, e.g. `witness_locked`.
        code: &'static str,
        /// Why.
        message: String,
        /// What in the request it is about.
        field: String,
    },
    /// A stored record cannot be read as what it should be; the record is named, its data is not
    /// repeated.
    #[error("stored {kind} {id} cannot be read: {reason}")]
    CorruptRecord {
        /// The kind of record.
        kind: &'static str,
        /// Its id.
        id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Something failed inside: the cause with its source chain, for the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A JSON value as a person writes it: 700 rather than 700.0, text without quotes.
pub fn display_value(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), |f| f.to_string()),
        other => other.to_string(),
    }
}

impl AppError {
    /// A field error.
    pub fn field(field: &str, value: impl Into<serde_json::Value>, allowed: impl Into<String>) -> AppError {
        AppError::InvalidField {
            field: field.to_string(),
            value: value.into(),
            allowed: allowed.into(),
        }
    }

    /// An internal failure, with every cause under `error`.
    pub fn internal(error: &dyn std::error::Error) -> AppError {
        AppError::Internal(error_chain(error))
    }
}

/// An error with every cause under it, outermost first ("a: b: c"), for the log.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        // Many errors repeat their source in their own message; say each cause once.
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> AppError {
        match e {
            StoreError::NotFound { what, id } => AppError::NotFound {
                what: what.to_string(),
                id,
            },
            StoreError::Conflict { what } => AppError::Conflict(format!("{what} already exists")),
            StoreError::Invalid { what, reason } => AppError::BadInput(format!("invalid {what}: {reason}")),
            StoreError::Refused { code, message } => AppError::Refused { code, message },
            StoreError::StaleVersion { found, .. } => AppError::StaleVersion {
                message: e.to_string(),
                current_version: found,
            },
            StoreError::Locked { .. } => AppError::Locked(e.to_string()),
            StoreError::UnstorableText => AppError::BadInput(e.to_string()),
            other => AppError::internal(&other),
        }
    }
}

impl From<serde_json::Error> for AppError {
    fn from(e: serde_json::Error) -> AppError {
        AppError::internal(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_version_carries_the_version_stored_now_and_a_lock_is_a_conflict() {
        let stale = AppError::from(StoreError::StaleVersion {
            id: "r1".into(),
            expected: 3,
            found: 5,
        });
        match stale {
            AppError::StaleVersion {
                current_version,
                message,
            } => {
                assert_eq!(current_version, 5);
                assert!(message.contains("version 3 expected, 5 found"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            AppError::from(StoreError::Locked {
                what: "record",
                id: "r1".into()
            }),
            AppError::Locked(_)
        ));
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn an_internal_error_keeps_its_whole_source_chain() {
        let e = Outer(std::io::Error::other("disk full"));
        assert_eq!(error_chain(&e), "outer: disk full");
        assert_eq!(
            AppError::internal(&e).to_string(),
            "internal error: outer: disk full"
        );
    }
}
