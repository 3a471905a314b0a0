//! What an operator does from the command line with the database's own credentials: back up,
//! verify the audit chain, list the accounts. There is no [`Caller`](crate::policy::Caller): whoever
//! can open the database already holds more than any role grants. The signed-in doors reach the
//! same reads through [`App`](crate::App) methods that check the role first.

use std::path::Path;

use ketaflow_store::{BackupReport, Store, StoreError};

use crate::AppError;
pub use crate::accounts::all_accounts;
pub use crate::library::verify_audit_chain;

/// A consistent online copy of the database into `path`, which must not exist yet.
/// Loads a backup into an empty database, then checks its audit chain: a restore that does not
/// verify is reported as the broken chain it is.
pub async fn restore(
    store: &Store,
    path: &Path,
) -> Result<(ketaflow_store::RestoreReport, ketaflow_store::AuditReport), AppError> {
    let report = store.restore(path).await?;
    let chain = store.verify_audit_chain().await?;
    Ok((report, chain))
}

/// Writes a consistent copy of the database to `path` (which must not exist).
pub async fn backup(store: &Store, path: &Path) -> Result<BackupReport, AppError> {
    store.backup(path).await.map_err(|e| match e {
        StoreError::BackupTargetExists { .. } => AppError::Conflict(format!("{e}; choose a new file name")),
        other => AppError::from(other),
    })
}
