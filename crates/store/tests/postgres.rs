//! The conformance suite on PostgreSQL, when `KETAFLOW_TEST_POSTGRES_URL` is set (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`); otherwise each test prints that it is skipped.
//! Each test runs in a fresh schema `kf_test_<uuid>`, dropped when the test ends (even if it
//! fails).

use ketaflow_store::{Backend, Store, StoreOptions};
use sqlx::Connection;

const URL_VAR: &str = "KETAFLOW_TEST_POSTGRES_URL";

struct Fixture {
    store: Store,
    url: String,
    schema: String,
}

impl Fixture {
    fn store(&self) -> Store {
        self.store.clone()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot be blocked on: clean up from a
        // thread with a runtime of its own.
        let (url, schema) = (self.url.clone(), self.schema.clone());
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                // The schema name is generated below from a UUID: a plain identifier.
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            });
        });
        let _ = cleanup.join();
    }
}

async fn fixture() -> Option<Fixture> {
    let Ok(url) = std::env::var(URL_VAR) else {
        eprintln!("{URL_VAR} is not set: PostgreSQL conformance test skipped");
        return None;
    };
    let schema = format!("kf_test_{}", uuid::Uuid::now_v7().simple());
    let options = StoreOptions::default()
        .postgres_schema(schema.clone())
        .max_connections(10);
    let store = Store::connect_with(&url, &options)
        .await
        .expect("connect to PostgreSQL");
    assert_eq!(store.backend(), Backend::Postgres);
    Some(Fixture { store, url, schema })
}

ketaflow_store::conformance_tests!(fixture);

#[tokio::test]
async fn schema_option_isolates_stores() {
    let Some(a) = fixture().await else { return };
    let Some(b) = fixture().await else { return };
    let entry = ketaflow_store::NewAuditEntry::new(
        time::macros::datetime!(2026-03-02 08:00 UTC),
        ketaflow_store::Actor::system("test"),
        "clinic.open",
        "clinic",
        "a",
    );
    a.store().append_audit(&entry).await.unwrap();
    assert_eq!(a.store().verify_audit_chain().await.unwrap().checked, 1);
    assert_eq!(b.store().verify_audit_chain().await.unwrap().checked, 0);

    let Ok(url) = std::env::var(URL_VAR) else { return };
    let bad = Store::connect_with(&url, &StoreOptions::default().postgres_schema("x; DROP TABLE y")).await;
    assert!(
        matches!(bad, Err(ketaflow_store::StoreError::Invalid { .. })),
        "{bad:?}"
    );
}

#[tokio::test]
async fn a_backup_taken_during_writes_restores_into_a_new_database() {
    let (Some(a), Some(b)) = (fixture().await, fixture().await) else {
        return;
    };
    ketaflow_store::conformance::restore_drill(a.store(), b.store()).await;
}
