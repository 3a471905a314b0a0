//! The conformance suite on SQLite: each test gets a fresh database file in its own temporary
//! directory (removed when the test ends).

use ketaflow_store::{Backend, Store, StoreError};

struct Fixture {
    store: Store,
    // Keeps the directory (database, WAL and shared-memory files) alive for the test.
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn store(&self) -> Store {
        self.store.clone()
    }
}

async fn fixture() -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}", dir.path().join("ketaflow.db").display());
    let store = Store::connect(&url)
        .await
        .expect("connect to a fresh SQLite file");
    Some(Fixture { store, _dir: dir })
}

ketaflow_store::conformance_tests!(fixture);

#[tokio::test]
async fn connect_creates_file_in_wal_mode_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clinic.db");
    let url = format!("sqlite://{}", path.display());
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    assert!(path.exists());
    // Readable by the clinic's service account only, with its WAL.
    #[cfg(unix)]
    for file in [path.clone(), dir.path().join("clinic.db-wal")] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} mode {mode:o}", file.display());
    }
    store
        .append_audit(&ketaflow_store::NewAuditEntry::new(
            time::macros::datetime!(2026-03-02 08:00 UTC),
            ketaflow_store::Actor::system("test"),
            "clinic.open",
            "clinic",
            "main",
        ))
        .await
        .unwrap();
    store.close().await;
    // A WAL database leaves its -wal file beside it while open.
    let reopened = Store::connect(&url).await.unwrap();
    assert!(dir.path().join("clinic.db-wal").exists());
    let report = reopened.verify_audit_chain().await.unwrap();
    assert!(report.is_ok());
    assert_eq!(
        report.checked, 1,
        "data survives reopening; migrations are not re-applied"
    );
}

#[tokio::test]
async fn unsupported_url_is_a_clear_error() {
    for url in ["mysql://root:secret@db/ketaflow", "ketaflow.db", "http://x"] {
        match Store::connect(url).await {
            Err(err @ StoreError::UnsupportedUrl { .. }) => {
                let message = err.to_string();
                assert!(message.contains("sqlite://"), "{message}");
                assert!(
                    !message.contains("secret"),
                    "the URL's password is withheld: {message}"
                );
            }
            other => panic!("{url}: expected UnsupportedUrl, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_backup_taken_during_writes_restores_into_a_new_database() {
    let (a, b) = (fixture().await.unwrap(), fixture().await.unwrap());
    ketaflow_store::conformance::restore_drill(a.store(), b.store()).await;
}
