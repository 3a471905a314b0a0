//! Signed checkpoints catch what the hash chain alone cannot (issue 15): an attacker with the
//! database's credentials who cuts the newest entries, or rewrites one and re-hashes the rest.

use ketaflow_app::checkpoints::{CheckpointVerdict, load_or_create_key, verify_against, write_checkpoint};
use ketaflow_store::{Actor, NewAuditEntry, Store};
use time::macros::datetime;

/// A clinic database with six audited changes: a SQLite file in `dir`, or a fresh PostgreSQL
/// schema when `KETAFLOW_TEST_BACKEND=postgres` and `KETAFLOW_TEST_POSTGRES_URL` are set.
async fn clinic(dir: &std::path::Path, name: &str) -> Store {
    let store = match (
        std::env::var("KETAFLOW_TEST_BACKEND").as_deref(),
        std::env::var("KETAFLOW_TEST_POSTGRES_URL"),
    ) {
        (Ok("postgres"), Ok(url)) => {
            let schema = format!("checkpoints_{}", uuid::Uuid::now_v7().simple());
            let options = ketaflow_store::StoreOptions::default().postgres_schema(schema);
            Store::connect_with(&url, &options).await.unwrap()
        }
        _ => Store::connect(&format!("sqlite://{}", dir.join(name).display()))
            .await
            .unwrap(),
    };
    for i in 0..6 {
        store
            .append_audit(
                &NewAuditEntry::new(
                    datetime!(2026-12-06 09:00 UTC) + time::Duration::minutes(i),
                    Actor::system("test"),
                    "patient.update",
                    "patient",
                    format!("p{i}"),
                )
                .after(serde_json::json!({"weight_kg": 70 + i})),
            )
            .await
            .unwrap();
    }
    store
}

#[tokio::test]
async fn truncation_and_rehashing_are_caught_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("checkpoint.key");
    let key = load_or_create_key(&key_file).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert_eq!(
        load_or_create_key(&key_file).unwrap().to_bytes(),
        key.to_bytes(),
        "the same key is read back"
    );
    let log = dir.path().join("checkpoints.jsonl");
    let now = datetime!(2026-12-06 10:00 UTC);

    // Intact, and more entries after the checkpoint are fine.
    let store = clinic(dir.path(), "a.db").await;
    let cp = write_checkpoint(&store, &key, &log, now).await.unwrap();
    assert_eq!(cp.seq, 6);
    let public = cp.public_key.clone();
    assert!(matches!(
        verify_against(&store, &log, Some(&public)).await.unwrap(),
        CheckpointVerdict::Holds { entries: 6, .. }
    ));

    // Cut to 4 entries and the head moved back: the chain verifies, the checkpoint does not.
    ketaflow_store::conformance::tamper_truncate(&store, 4).await;
    assert!(
        store.verify_audit_chain().await.unwrap().is_ok(),
        "the chain alone sees nothing"
    );
    assert_eq!(
        verify_against(&store, &log, Some(&public)).await.unwrap(),
        CheckpointVerdict::Truncated {
            checkpoint_seq: 6,
            entries: 4
        }
    );

    // Entry 3 rewritten and everything re-hashed: caught as a rewrite at the checkpoint.
    let store = clinic(dir.path(), "b.db").await;
    let log_b = dir.path().join("b.jsonl");
    write_checkpoint(&store, &key, &log_b, now).await.unwrap();
    ketaflow_store::conformance::tamper_rewrite_and_rehash(&store, 3, r#"{"weight_kg":7}"#).await;
    assert!(
        store.verify_audit_chain().await.unwrap().is_ok(),
        "the chain alone sees nothing"
    );
    assert_eq!(
        verify_against(&store, &log_b, None).await.unwrap(),
        CheckpointVerdict::Rewritten { seq: 6 }
    );

    // A forged or edited checkpoint line, or another key, is not trusted.
    let text = std::fs::read_to_string(&log_b)
        .unwrap()
        .replace("\"seq\":6", "\"seq\":5");
    std::fs::write(&log_b, text).unwrap();
    assert!(matches!(
        verify_against(&store, &log_b, None).await.unwrap(),
        CheckpointVerdict::BadCheckpoint(_)
    ));
    let other = dir.path().join("other.key");
    let stranger = load_or_create_key(&other).unwrap();
    let store = clinic(dir.path(), "c.db").await;
    let log_c = dir.path().join("c.jsonl");
    write_checkpoint(&store, &stranger, &log_c, now).await.unwrap();
    assert!(matches!(
        verify_against(&store, &log_c, Some(&public)).await.unwrap(),
        CheckpointVerdict::BadCheckpoint(why) if why.contains("another key")
    ));
}
