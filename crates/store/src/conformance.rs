//! The conformance suite: backend-independent tests that every backend must pass.
//!
//! Each function takes a fresh, empty, migrated [`Store`] and panics on failure. The test files
//! `tests/sqlite.rs` and `tests/postgres.rs` stamp out one `#[tokio::test]` per function with
//! [`conformance_tests!`](crate::conformance_tests), so both backends always run the same list.
//! Tampering tests reach past the API with raw SQL through private helpers here, as an attacker
//! with database access would.

use std::collections::BTreeMap;

use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::db::with_conn;
use crate::{
    Actor, AuditFilter, AuditProblem, AuditProblemKind, Backend, BackupFormat, GENESIS_HASH, LockoutPolicy,
    MAX_RECORD_PAGE, NewAuditEntry, NewRecord, NewToken, NewUser, RecordChange, Role, Store, StoreError,
    TokenKind, batch_digest, hash_token,
};
use crate::{
    AlarmRaise, AlarmState, NewAlarm, NewDeviceToken, NewEvent, NewVital, TableProblemKind, VitalInsert,
};

mod ledger;
pub use ledger::{
    ledger_concurrent_draws_never_overdraw, ledger_counts_discrepancies_and_inventory,
    ledger_destruction_requires_two_distinct_witnesses, ledger_entries_are_append_only,
    ledger_overdraw_refused_and_nothing_written, ledger_receipt_draw_administer_waste_balances_exactly,
};

/// Stamps out one `#[tokio::test]` per conformance function. `$fixture` is an async function
/// returning `Option<F>` (where `None` means "skip", e.g. no PostgreSQL configured) and `F` has a
/// `store(&self) -> Store` method; after the test the store is closed and `F` is dropped (clean up
/// in `Drop`), then a failure is re-raised.
#[macro_export]
macro_rules! conformance_tests {
    ($fixture:path) => {
        $crate::conformance_tests!(@each $fixture;
            users_create_get_list,
            users_unique_username_conflict,
            users_concurrent_same_username,
            users_reject_invalid_input,
            users_disable_enable_audited,
            users_password_change_audited,
            login_failures_lock_and_success_resets,
            tokens_active_expired_revoked,
            tokens_hash_only_storage,
            tokens_user_disabled_or_missing,
            timestamps_round_trip_utc_micros,
            audit_append_links_and_verifies,
            audit_list_filters,
            audit_log_is_append_only,
            audit_detects_altered_field,
            audit_detects_deleted_entry,
            audit_detects_truncated_tail,
            audit_detects_swapped_entries,
            audit_detects_rehashed_edit,
            audit_concurrent_appends_keep_chain,
            audit_batch_digest_entry,
            tables_verify_against_the_audit_log,
            tx_rollback_discards_write_and_audit,
            tx_failed_write_discards_everything,
            backup_is_consistent_copy,
            users_must_change_password_mark,
            records_create_read_and_audit,
            records_versions_and_stale_writes,
            records_locked_never_change,
            records_list_by_parent_and_search,
            records_rollback_leaves_nothing,
            records_in_progress_listed_beyond_any_page,
            records_in_progress_among_holds_until_commit,
            records_children_listed_beyond_any_page,
            events_gap_free_in_commit_order,
            events_concurrent_appends_stay_contiguous,
            vitals_idempotent_by_session_and_key,
            vitals_recent_and_trend_are_bounded_and_keep_extremes,
            batch_writes_match_single_writes,
            alarms_lifecycle_and_repeats,
            device_tokens_scope_expiry_revocation,
            ledger_receipt_draw_administer_waste_balances_exactly,
            ledger_overdraw_refused_and_nothing_written,
            ledger_concurrent_draws_never_overdraw,
            ledger_destruction_requires_two_distinct_witnesses,
            ledger_entries_are_append_only,
            ledger_counts_discrepancies_and_inventory,
        );
    };
    (@each $fixture:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(fixture) = $fixture().await else {
                    eprintln!("{}: skipped (backend not configured)", stringify!($name));
                    return;
                };
                // Run the test as its own task so that, pass or fail, the pool is closed (every
                // connection returned, open transactions ended) before the fixture cleans up.
                let outcome = tokio::spawn($crate::conformance::$name(fixture.store())).await;
                fixture.store().close().await;
                drop(fixture);
                if let Err(err) = outcome {
                    if let Ok(panic) = err.try_into_panic() {
                        std::panic::resume_unwind(panic);
                    }
                    panic!("{} was cancelled", stringify!($name));
                }
            }
        )*
    };
}

const T0: OffsetDateTime = datetime!(2026-03-02 08:00:00 UTC);
const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

fn new_user(username: &str, role: Role) -> NewUser {
    NewUser {
        username: username.to_owned(),
        display_name: format!("Display {username}"),
        role,
        password_hash: HASH.to_owned(),
    }
}

fn admin() -> Actor {
    Actor::system("conformance")
}

async fn seed_user(store: &Store, username: &str, role: Role) -> crate::User {
    store
        .create_user_audited(&admin(), &new_user(username, role), T0)
        .await
        .unwrap()
}

/// Appends `n` entries about patient `p<i>`, one transaction each, at T0 + i seconds.
async fn seed_audit(store: &Store, n: i64) {
    for i in 1..=n {
        store
            .append_audit(
                &NewAuditEntry::new(
                    T0 + Duration::seconds(i),
                    Actor::user(Uuid::now_v7(), Role::Nurse),
                    "patient.update",
                    "patient",
                    format!("p{i}"),
                )
                .before(serde_json::json!({ "weight_kg": 70 + i }))
                .after(serde_json::json!({ "weight_kg": 71 + i })),
            )
            .await
            .unwrap();
    }
}

async fn problem(store: &Store) -> Option<AuditProblem> {
    store.verify_audit_chain().await.unwrap().problem
}

// ---- raw SQL, for tampering tests only -------------------------------------------------------

enum Bind {
    Int(i64),
    Text(Option<String>),
}

async fn raw_exec(store: &Store, sql: &'static str, binds: Vec<Bind>) -> Result<u64, StoreError> {
    let mut pooled = store.acquire().await?;
    Ok(with_conn!(pooled.conn(), c => {
        let mut q = sqlx::query(sql);
        for bind in binds {
            q = match bind {
                Bind::Int(v) => q.bind(v),
                Bind::Text(v) => q.bind(v),
            };
        }
        q.execute(&mut *c).await?.rows_affected()
    }))
}

/// Drops the append-only triggers, as someone with database access could.
async fn drop_append_only_guard(store: &Store) {
    match store.backend() {
        Backend::Sqlite => {
            raw_exec(store, "DROP TRIGGER audit_log_no_update", vec![])
                .await
                .unwrap();
            raw_exec(store, "DROP TRIGGER audit_log_no_delete", vec![])
                .await
                .unwrap();
        }
        Backend::Postgres => {
            raw_exec(store, "DROP TRIGGER audit_log_append_only ON audit_log", vec![])
                .await
                .unwrap();
        }
    }
}

async fn set_after_json(store: &Store, seq: i64, after: &str) {
    let n = raw_exec(
        store,
        "UPDATE audit_log SET after_json = $1 WHERE seq = $2",
        vec![Bind::Text(Some(after.to_owned())), Bind::Int(seq)],
    )
    .await
    .unwrap();
    assert_eq!(n, 1);
}

async fn entry(store: &Store, seq: i64) -> crate::AuditEntry {
    let filter = AuditFilter {
        after_seq: Some(seq - 1),
        limit: Some(1),
        ..AuditFilter::default()
    };
    let found = store.list_audit(&filter).await.unwrap();
    assert_eq!(found.len(), 1, "entry {seq} exists");
    found.into_iter().next().unwrap()
}

// ---- users -----------------------------------------------------------------------------------

/// Create, read back by id and username, list in username order, count.
pub async fn users_create_get_list(store: Store) {
    assert_eq!(store.count_users().await.unwrap(), 0);
    let nurse = seed_user(&store, "nina", Role::Nurse).await;
    let doc = seed_user(&store, "anna", Role::Physician).await;
    assert_eq!(nurse.id.get_version_num(), 7, "ids are UUID v7");
    assert_eq!(nurse.username, "nina");
    assert_eq!(nurse.display_name, "Display nina");
    assert_eq!(nurse.role, Role::Nurse);
    assert_eq!(nurse.password_hash, HASH);
    assert!(!nurse.disabled);
    assert_eq!(nurse.failed_logins, 0);
    assert_eq!(nurse.locked_until, None);
    assert_eq!(nurse.created_at, T0);

    assert_eq!(store.get_user(nurse.id).await.unwrap(), nurse);
    assert_eq!(
        store.get_user_by_username("anna").await.unwrap(),
        Some(doc.clone())
    );
    assert_eq!(store.get_user_by_username("nobody").await.unwrap(), None);
    let missing = Uuid::now_v7();
    match store.get_user(missing).await {
        Err(StoreError::NotFound { what: "user", id }) => assert_eq!(id, missing.to_string()),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(
        store.list_users().await.unwrap(),
        vec![doc.clone(), nurse.clone()]
    );
    assert_eq!(store.count_users().await.unwrap(), 2);

    // Creation is audited, without the password hash.
    let log = store.list_audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].action, "user.create");
    assert_eq!(log[0].record_type, "user");
    assert_eq!(log[0].record_id, nurse.id.to_string());
    assert_eq!(log[0].actor_user_id, "system:conformance");
    assert_eq!(log[0].actor_role, "system");
    let after: serde_json::Value = serde_json::from_str(log[0].after_json.as_deref().unwrap()).unwrap();
    assert_eq!(after["username"], "nina");
    assert_eq!(after["role"], "nurse");
    assert!(!log[0].after_json.as_deref().unwrap().contains("argon2"));
    assert_eq!(log[0].before_json, None);
}

/// A second user with a taken username is a Conflict and leaves no trace (no audit entry).
pub async fn users_unique_username_conflict(store: Store) {
    seed_user(&store, "sam", Role::Nurse).await;
    let err = store
        .create_user_audited(&admin(), &new_user("sam", Role::Viewer), T0)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert_eq!(store.list_users().await.unwrap().len(), 1);
    assert_eq!(
        store.get_user_by_username("sam").await.unwrap().unwrap().role,
        Role::Nurse
    );
    assert_eq!(store.list_audit(&AuditFilter::default()).await.unwrap().len(), 1);
    assert!(store.verify_audit_chain().await.unwrap().is_ok());
}

/// Eight tasks race to create the same username: exactly one wins, the rest get Conflict.
pub async fn users_concurrent_same_username(store: Store) {
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut user = new_user("race", Role::Viewer);
            user.display_name = format!("racer {i}");
            store.create_user_audited(&admin(), &user, T0).await
        }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::Conflict { .. }) => {}
            Err(other) => panic!("expected Conflict, got {other:?}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(store.count_users().await.unwrap(), 1);
    let report = store.verify_audit_chain().await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.checked, 1);
}

/// Plaintext passwords, blank or padded usernames and unknown role names are refused.
pub async fn users_reject_invalid_input(store: Store) {
    let mut plain = new_user("pat", Role::Nurse);
    plain.password_hash = "correct horse battery staple".into();
    let err = store.create_user_audited(&admin(), &plain, T0).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Invalid {
                what: "password hash",
                ..
            }
        ),
        "{err:?}"
    );
    for bad in ["", " pat", "pat "] {
        let err = store
            .create_user_audited(&admin(), &new_user(bad, Role::Nurse), T0)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Invalid { what: "username", .. }),
            "{err:?}"
        );
    }
    assert!("nurse".parse::<Role>().is_ok());
    assert!("Nurse".parse::<Role>().is_err());
    assert_eq!(store.count_users().await.unwrap(), 0);
    assert!(
        store
            .list_audit(&AuditFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
}

/// Disabling and re-enabling are stored and audited with before and after.
pub async fn users_disable_enable_audited(store: Store) {
    let boss = seed_user(&store, "boss", Role::Administrator).await;
    let nurse = seed_user(&store, "nora", Role::Nurse).await;
    let actor = Actor::user(boss.id, boss.role);
    let t1 = T0 + Duration::hours(1);
    let disabled = store
        .set_disabled_audited(&actor, nurse.id, true, t1)
        .await
        .unwrap();
    assert!(disabled.disabled);
    assert!(store.get_user(nurse.id).await.unwrap().disabled);
    let enabled = store
        .set_disabled_audited(&actor, nurse.id, false, t1)
        .await
        .unwrap();
    assert!(!enabled.disabled);

    let filter = AuditFilter {
        record_type: Some("user".into()),
        record_id: Some(nurse.id.to_string()),
        ..AuditFilter::default()
    };
    let log = store.list_audit(&filter).await.unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["user.create", "user.disable", "user.enable"]);
    assert_eq!(log[1].actor_user_id, boss.id.to_string());
    assert_eq!(log[1].actor_role, "administrator");
    assert_eq!(log[1].at, t1);
    let before: serde_json::Value = serde_json::from_str(log[1].before_json.as_deref().unwrap()).unwrap();
    let after: serde_json::Value = serde_json::from_str(log[1].after_json.as_deref().unwrap()).unwrap();
    assert_eq!(before["disabled"], false);
    assert_eq!(after["disabled"], true);

    let err = store
        .set_disabled_audited(&actor, Uuid::now_v7(), true, t1)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { what: "user", .. }),
        "{err:?}"
    );
    assert_eq!(store.verify_audit_chain().await.unwrap().checked, 4);
}

/// A password change stores the new hash and is audited without either hash.
pub async fn users_password_change_audited(store: Store) {
    let user = seed_user(&store, "pia", Role::Physician).await;
    let new_hash = "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$bmV3aGFzaG5ld2hhc2g";
    store
        .set_password_hash_audited(&Actor::user(user.id, user.role), user.id, new_hash, T0)
        .await
        .unwrap();
    assert_eq!(store.get_user(user.id).await.unwrap().password_hash, new_hash);
    let log = store.list_audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(log.last().unwrap().action, "user.password_change");
    for e in &log {
        for json in [&e.before_json, &e.after_json].into_iter().flatten() {
            assert!(
                !json.contains("argon2"),
                "audit must not hold password hashes: {json}"
            );
        }
    }
    let err = store
        .set_password_hash_audited(&admin(), user.id, "hunter2", T0)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err:?}");
    let err = store
        .set_password_hash_audited(&admin(), Uuid::now_v7(), new_hash, T0)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert_eq!(store.get_user(user.id).await.unwrap().password_hash, new_hash);
}

/// Failures count up; reaching the threshold locks (and is audited); success resets.
pub async fn login_failures_lock_and_success_resets(store: Store) {
    let user = seed_user(&store, "lou", Role::Nurse).await;
    let policy = LockoutPolicy {
        threshold: 3,
        lock_for: Duration::minutes(15),
    };
    let t = |s: i64| T0 + Duration::seconds(s);
    let u = store.record_login_failure(user.id, t(1), policy).await.unwrap();
    assert_eq!((u.failed_logins, u.locked_until), (1, None));
    let u = store.record_login_failure(user.id, t(2), policy).await.unwrap();
    assert_eq!((u.failed_logins, u.locked_until), (2, None));
    assert!(!u.is_locked(t(2)));
    let u = store.record_login_failure(user.id, t(3), policy).await.unwrap();
    assert_eq!(u.failed_logins, 3);
    assert_eq!(u.locked_until, Some(t(3) + Duration::minutes(15)));
    assert!(u.is_locked(t(3) + Duration::minutes(14)));
    assert!(!u.is_locked(t(3) + Duration::minutes(15)));
    assert_eq!(store.get_user(user.id).await.unwrap(), u);

    let locks = store
        .list_audit(&AuditFilter::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "user.lock")
        .collect::<Vec<_>>();
    assert_eq!(locks.len(), 1);
    assert_eq!(locks[0].actor_user_id, "system:auth");
    assert_eq!(locks[0].record_id, user.id.to_string());

    store.record_login_success(user.id).await.unwrap();
    let u = store.get_user(user.id).await.unwrap();
    assert_eq!((u.failed_logins, u.locked_until), (0, None));

    let err = store
        .record_login_failure(Uuid::now_v7(), t(4), policy)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    let err = store.record_login_success(Uuid::now_v7()).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert!(store.verify_audit_chain().await.unwrap().is_ok());
}

// ---- tokens ----------------------------------------------------------------------------------

fn token(raw: &str, user_id: Uuid, kind: TokenKind, hours: i64) -> NewToken {
    NewToken {
        token_hash: hash_token(raw),
        user_id,
        kind,
        created_at: T0,
        expires_at: T0 + Duration::hours(hours),
        label: Some(format!("label for {kind}")),
    }
}

/// A token is honoured until it expires or is revoked; revocation is per token or per user.
pub async fn tokens_active_expired_revoked(store: Store) {
    let user = seed_user(&store, "tom", Role::Nurse).await;
    let browser = token("browser-raw-1", user.id, TokenKind::Browser, 1);
    store.insert_token(&browser).await.unwrap();

    let active = store
        .find_active_token(&browser.token_hash, T0 + Duration::minutes(30))
        .await
        .unwrap()
        .expect("active before expiry");
    assert_eq!(active.user, user);
    assert_eq!(active.token.kind, TokenKind::Browser);
    assert_eq!(active.token.expires_at, T0 + Duration::hours(1));
    assert_eq!(active.token.revoked_at, None);
    assert_eq!(active.token.label.as_deref(), Some("label for browser"));
    assert!(
        store
            .find_active_token(&browser.token_hash, T0 + Duration::hours(1))
            .await
            .unwrap()
            .is_none(),
        "expired at expires_at"
    );
    assert!(
        store
            .find_active_token(&hash_token("unknown"), T0)
            .await
            .unwrap()
            .is_none()
    );

    let t1 = T0 + Duration::minutes(5);
    assert!(store.revoke_token(&browser.token_hash, t1).await.unwrap());
    assert!(
        !store.revoke_token(&browser.token_hash, t1).await.unwrap(),
        "already revoked"
    );
    assert!(
        store
            .find_active_token(&browser.token_hash, t1)
            .await
            .unwrap()
            .is_none()
    );

    let api1 = token("api-raw-1", user.id, TokenKind::Api, 24 * 90);
    let api2 = token("api-raw-2", user.id, TokenKind::Api, 24 * 90);
    store.insert_token(&api1).await.unwrap();
    store.insert_token(&api2).await.unwrap();
    assert!(
        store
            .find_active_token(&api1.token_hash, t1)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.revoke_all_for_user(user.id, t1).await.unwrap(), 2);
    assert_eq!(store.revoke_all_for_user(user.id, t1).await.unwrap(), 0);
    assert!(
        store
            .find_active_token(&api2.token_hash, t1)
            .await
            .unwrap()
            .is_none()
    );

    let listed = store.list_tokens(user.id).await.unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|t| t.revoked_at == Some(t1)));

    let err = store.insert_token(&api1).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
}

/// Only the SHA-256 of a token is stored; anything that is not a hex digest is refused.
pub async fn tokens_hash_only_storage(store: Store) {
    let user = seed_user(&store, "hal", Role::Viewer).await;
    let raw = "k3t4fl0w-raw-secret-token-value-0123456789";
    let tok = token(raw, user.id, TokenKind::Api, 1);
    assert_eq!(tok.token_hash.len(), 64);
    assert_eq!(
        hash_token("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "SHA-256 of \"abc\" (FIPS 180-2 test vector)"
    );
    store.insert_token(&tok).await.unwrap();

    let mut pooled = store.acquire().await.unwrap();
    let rows: Vec<(String, String, String)> = with_conn!(pooled.conn(), c => {
        sqlx::query_as("SELECT token_hash, user_id, COALESCE(label, '') FROM auth_tokens")
            .fetch_all(&mut *c)
            .await
            .unwrap()
    });
    drop(pooled);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, hash_token(raw));
    assert!(
        rows.iter()
            .all(|(a, b, c)| !a.contains(raw) && !b.contains(raw) && !c.contains(raw))
    );

    let mut raw_insert = token(raw, user.id, TokenKind::Api, 1);
    raw_insert.token_hash = raw.to_owned();
    let err = store.insert_token(&raw_insert).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Invalid {
                what: "token hash",
                ..
            }
        ),
        "{err:?}"
    );
    raw_insert.token_hash = hash_token(raw).to_uppercase();
    assert!(
        store.insert_token(&raw_insert).await.is_err(),
        "upper-case hex is refused"
    );
    // Lookup is by hash only: the raw token finds nothing.
    assert!(store.find_active_token(raw, T0).await.unwrap().is_none());
}

/// A disabled user's tokens are not honoured; tokens for unknown users cannot be stored.
pub async fn tokens_user_disabled_or_missing(store: Store) {
    let user = seed_user(&store, "dan", Role::Nurse).await;
    let tok = token("dan-raw", user.id, TokenKind::Browser, 8);
    store.insert_token(&tok).await.unwrap();
    assert!(
        store
            .find_active_token(&tok.token_hash, T0)
            .await
            .unwrap()
            .is_some()
    );
    store
        .set_disabled_audited(&admin(), user.id, true, T0)
        .await
        .unwrap();
    assert!(
        store
            .find_active_token(&tok.token_hash, T0)
            .await
            .unwrap()
            .is_none()
    );
    store
        .set_disabled_audited(&admin(), user.id, false, T0)
        .await
        .unwrap();
    assert!(
        store
            .find_active_token(&tok.token_hash, T0)
            .await
            .unwrap()
            .is_some()
    );

    let ghost = Uuid::now_v7();
    let err = store
        .insert_token(&token("ghost-raw", ghost, TokenKind::Api, 1))
        .await
        .unwrap_err();
    match err {
        StoreError::NotFound { what: "user", id } => assert_eq!(id, ghost.to_string()),
        other => panic!("expected NotFound user, got {other:?}"),
    }
}

/// Timestamps come back in UTC, truncated to microseconds, on both backends; the audit hash
/// is computed over exactly what is stored.
pub async fn timestamps_round_trip_utc_micros(store: Store) {
    let at = datetime!(2026-01-05 09:00:00.123456789 +02:00);
    let stored_at = datetime!(2026-01-05 07:00:00.123456 UTC);
    let mut tx = store.begin().await.unwrap();
    let user = tx.create_user(&new_user("tim", Role::Viewer), at).await.unwrap();
    let e = tx
        .append_audit(&NewAuditEntry::new(
            at,
            admin(),
            "user.create",
            "user",
            user.id.to_string(),
        ))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(user.created_at, stored_at);
    assert_eq!(user.created_at.offset(), time::UtcOffset::UTC);
    assert_eq!(store.get_user(user.id).await.unwrap().created_at, stored_at);
    assert_eq!(e.at, stored_at);
    let read = entry(&store, 1).await;
    assert_eq!(read, e);
    assert_eq!(read.at.offset(), time::UtcOffset::UTC);
    assert!(store.verify_audit_chain().await.unwrap().is_ok());
}

// ---- audit -----------------------------------------------------------------------------------

/// Entries get seq 1, 2, ... and link by hash from the genesis hash; the chain verifies.
pub async fn audit_append_links_and_verifies(store: Store) {
    let empty = store.verify_audit_chain().await.unwrap();
    assert_eq!(
        empty,
        crate::AuditReport {
            checked: 0,
            last_hash: GENESIS_HASH.into(),
            problem: None
        }
    );

    seed_audit(&store, 5).await;
    let log = store.list_audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(log.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert_eq!(log[0].prev_hash, GENESIS_HASH);
    for pair in log.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    for e in &log {
        assert_eq!(e.hash, e.compute_hash());
        assert_eq!(e.hash.len(), 64);
        assert_eq!(e.actor_role, "nurse");
    }
    assert_eq!(log[2].record_id, "p3");
    assert_eq!(log[2].at, T0 + Duration::seconds(3));
    assert_eq!(log[2].before_json.as_deref(), Some(r#"{"weight_kg":73}"#));
    assert_eq!(log[2].after_json.as_deref(), Some(r#"{"weight_kg":74}"#));

    let report = store.verify_audit_chain().await.unwrap();
    assert_eq!(
        report,
        crate::AuditReport {
            checked: 5,
            last_hash: log[4].hash.clone(),
            problem: None
        }
    );

    let err = store
        .append_audit(&NewAuditEntry::new(T0, admin(), "", "patient", "p1"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err:?}");
    assert_eq!(store.verify_audit_chain().await.unwrap().checked, 5);
}

/// Filtering by record type and id, paging by seq, and the limit.
pub async fn audit_list_filters(store: Store) {
    seed_audit(&store, 6).await;
    let user = seed_user(&store, "uma", Role::Viewer).await;
    let by_type = |t: &str| AuditFilter {
        record_type: Some(t.into()),
        ..AuditFilter::default()
    };
    assert_eq!(store.list_audit(&by_type("patient")).await.unwrap().len(), 6);
    let users = store.list_audit(&by_type("user")).await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].record_id, user.id.to_string());
    assert_eq!(users[0].seq, 7);
    let one = AuditFilter {
        record_type: Some("patient".into()),
        record_id: Some("p4".into()),
        ..AuditFilter::default()
    };
    let found = store.list_audit(&one).await.unwrap();
    assert_eq!(found.iter().map(|e| e.seq).collect::<Vec<_>>(), [4]);
    let page = AuditFilter {
        after_seq: Some(2),
        limit: Some(3),
        ..AuditFilter::default()
    };
    let seqs: Vec<i64> = store
        .list_audit(&page)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, [3, 4, 5]);
    assert!(store.list_audit(&by_type("vial")).await.unwrap().is_empty());
}

/// Plain UPDATE and DELETE on the audit log are refused by the database.
pub async fn audit_log_is_append_only(store: Store) {
    seed_audit(&store, 2).await;
    let update = raw_exec(
        &store,
        "UPDATE audit_log SET action = 'x' WHERE seq = $1",
        vec![Bind::Int(1)],
    )
    .await;
    assert!(update.is_err(), "update must be refused: {update:?}");
    let delete = raw_exec(&store, "DELETE FROM audit_log WHERE seq = $1", vec![Bind::Int(2)]).await;
    assert!(delete.is_err(), "delete must be refused: {delete:?}");
    assert_eq!(store.verify_audit_chain().await.unwrap().checked, 2);
}

/// Changing one field of one entry is reported as Altered at that seq.
pub async fn audit_detects_altered_field(store: Store) {
    seed_audit(&store, 6).await;
    drop_append_only_guard(&store).await;
    let original = entry(&store, 4).await.after_json.unwrap();
    set_after_json(&store, 4, r#"{"weight_kg":7}"#).await;
    let report = store.verify_audit_chain().await.unwrap();
    assert_eq!(
        report.problem,
        Some(AuditProblem {
            seq: 4,
            kind: AuditProblemKind::Altered
        })
    );
    assert_eq!(report.checked, 3);
    assert_eq!(report.last_hash, entry(&store, 3).await.hash);

    set_after_json(&store, 4, &original).await;
    assert_eq!(
        problem(&store).await,
        None,
        "restoring the field restores the chain"
    );
    // NULL is not the same as any text, and every field counts.
    raw_exec(
        &store,
        "UPDATE audit_log SET before_json = $1 WHERE seq = $2",
        vec![Bind::Text(None), Bind::Int(2)],
    )
    .await
    .unwrap();
    assert_eq!(
        problem(&store).await,
        Some(AuditProblem {
            seq: 2,
            kind: AuditProblemKind::Altered
        })
    );
    raw_exec(
        &store,
        "UPDATE audit_log SET actor_role = $1 WHERE seq = $2",
        vec![Bind::Text(Some("physician".into())), Bind::Int(1)],
    )
    .await
    .unwrap();
    assert_eq!(
        problem(&store).await,
        Some(AuditProblem {
            seq: 1,
            kind: AuditProblemKind::Altered
        })
    );
}

/// Deleting an entry from the middle is reported as Deleted at the missing seq; deleting the
/// first entry likewise.
pub async fn audit_detects_deleted_entry(store: Store) {
    seed_audit(&store, 6).await;
    drop_append_only_guard(&store).await;
    raw_exec(&store, "DELETE FROM audit_log WHERE seq = $1", vec![Bind::Int(4)])
        .await
        .unwrap();
    let report = store.verify_audit_chain().await.unwrap();
    assert_eq!(
        report.problem,
        Some(AuditProblem {
            seq: 4,
            kind: AuditProblemKind::Deleted
        })
    );
    assert_eq!(report.checked, 3);
    raw_exec(&store, "DELETE FROM audit_log WHERE seq = $1", vec![Bind::Int(1)])
        .await
        .unwrap();
    assert_eq!(
        problem(&store).await,
        Some(AuditProblem {
            seq: 1,
            kind: AuditProblemKind::Deleted
        })
    );
}

/// Deleting the newest entries is caught by the head row (HeadMismatch at the head's seq).
pub async fn audit_detects_truncated_tail(store: Store) {
    seed_audit(&store, 5).await;
    drop_append_only_guard(&store).await;
    raw_exec(
        &store,
        "DELETE FROM audit_log WHERE seq >= $1",
        vec![Bind::Int(4)],
    )
    .await
    .unwrap();
    let report = store.verify_audit_chain().await.unwrap();
    assert_eq!(
        report.problem,
        Some(AuditProblem {
            seq: 5,
            kind: AuditProblemKind::HeadMismatch
        })
    );
    assert_eq!(report.checked, 3);
}

/// Swapping the contents of two entries (with or without their hashes) is detected at the
/// first of them.
pub async fn audit_detects_swapped_entries(store: Store) {
    seed_audit(&store, 6).await;
    drop_append_only_guard(&store).await;
    let (a, b) = (entry(&store, 3).await, entry(&store, 4).await);
    // Move every column but seq: the rows trade places, each keeping its own hashes.
    for (target, source) in [(a.seq, &b), (b.seq, &a)] {
        raw_exec(
            &store,
            "UPDATE audit_log SET record_id = $1, before_json = $2, after_json = $3, \
             prev_hash = $4, hash = $5 WHERE seq = $6",
            vec![
                Bind::Text(Some(source.record_id.clone())),
                Bind::Text(source.before_json.clone()),
                Bind::Text(source.after_json.clone()),
                Bind::Text(Some(source.prev_hash.clone())),
                Bind::Text(Some(source.hash.clone())),
                Bind::Int(target),
            ],
        )
        .await
        .unwrap();
    }
    assert_eq!(entry(&store, 3).await.record_id, "p4");
    assert_eq!(
        problem(&store).await,
        Some(AuditProblem {
            seq: 3,
            kind: AuditProblemKind::Altered
        })
    );
}

/// Editing an entry and recomputing its hash breaks the link from the next entry; rewriting
/// the whole tail consistently is caught by the head.
pub async fn audit_detects_rehashed_edit(store: Store) {
    seed_audit(&store, 6).await;
    drop_append_only_guard(&store).await;
    let rehash = |seq: i64, e: crate::AuditEntry| {
        let store = store.clone();
        async move {
            raw_exec(
                &store,
                "UPDATE audit_log SET after_json = $1, prev_hash = $2, hash = $3 WHERE seq = $4",
                vec![
                    Bind::Text(e.after_json.clone()),
                    Bind::Text(Some(e.prev_hash.clone())),
                    Bind::Text(Some(e.hash.clone())),
                    Bind::Int(seq),
                ],
            )
            .await
            .unwrap();
        }
    };
    let mut forged = entry(&store, 3).await;
    forged.after_json = Some(r#"{"weight_kg":700}"#.into());
    forged.hash = forged.compute_hash();
    rehash(3, forged.clone()).await;
    assert_eq!(
        problem(&store).await,
        Some(AuditProblem {
            seq: 4,
            kind: AuditProblemKind::BrokenLink
        })
    );

    // Re-link and re-hash everything after it: the chain is self-consistent again, but the
    // head still holds the original last hash.
    let mut prev = forged.hash;
    for seq in 4..=6 {
        let mut e = entry(&store, seq).await;
        e.prev_hash = prev.clone();
        e.hash = e.compute_hash();
        prev.clone_from(&e.hash);
        rehash(seq, e).await;
    }
    assert_eq!(
        problem(&store).await,
        Some(AuditProblem {
            seq: 6,
            kind: AuditProblemKind::HeadMismatch
        })
    );
}

/// 8 tasks × 25 appends, each in its own transaction: seq 1..=200 without gaps, a valid chain,
/// and every task's entries present.
pub async fn audit_concurrent_appends_keep_chain(store: Store) {
    const TASKS: usize = 8;
    const EACH: usize = 25;
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..EACH {
                store
                    .append_audit(
                        &NewAuditEntry::new(T0, admin(), "session.note", "session", format!("s{task}"))
                            .after(serde_json::json!({ "i": i })),
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let report = store.verify_audit_chain().await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.checked, (TASKS * EACH) as u64);
    let mut per_task: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut after_seq = 0;
    loop {
        let page = store
            .list_audit(&AuditFilter {
                after_seq: Some(after_seq),
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after_seq = last.seq;
        for e in page {
            let i = serde_json::from_str::<serde_json::Value>(e.after_json.as_deref().unwrap()).unwrap()["i"]
                .as_i64()
                .unwrap();
            per_task.entry(e.record_id).or_default().push(i);
        }
    }
    assert_eq!(after_seq, (TASKS * EACH) as i64);
    assert_eq!(per_task.len(), TASKS);
    for (task, seen) in per_task {
        // Each task's appends are sequential, so they appear in its own order.
        assert_eq!(seen, (0..EACH as i64).collect::<Vec<_>>(), "task {task}");
    }
}

/// A batch of high-volume rows is audited by one entry holding its digest, not the rows.
pub async fn audit_batch_digest_entry(store: Store) {
    let vitals: Vec<serde_json::Value> = (0..120)
        .map(|i| serde_json::json!({ "t_s": i * 5, "spo2": 97, "hr": 70 + i % 7 }))
        .collect();
    let digest = batch_digest(&vitals);
    assert_eq!(digest["count"], 120);
    assert_eq!(digest, batch_digest(vitals.iter()), "deterministic");
    let mut reordered = vitals.clone();
    reordered.swap(0, 1);
    assert_ne!(
        digest["batch_sha256"],
        batch_digest(&reordered)["batch_sha256"],
        "order counts"
    );
    let mut changed = vitals.clone();
    changed[119]["spo2"] = serde_json::json!(88);
    assert_ne!(digest["batch_sha256"], batch_digest(&changed)["batch_sha256"]);

    let e = store
        .append_audit(
            &NewAuditEntry::new(
                T0,
                Actor::user(Uuid::now_v7(), Role::Nurse),
                "session.vitals.append",
                "session",
                "s1",
            )
            .after(digest.clone()),
        )
        .await
        .unwrap();
    let stored: serde_json::Value = serde_json::from_str(e.after_json.as_deref().unwrap()).unwrap();
    assert_eq!(stored, digest);
    assert!(
        e.after_json.unwrap().len() < 120,
        "the entry holds a digest, not the rows"
    );
    assert!(store.verify_audit_chain().await.unwrap().is_ok());
}

/// Records, vital signs and users are checked against the audit log: a clean database verifies,
/// and each edit someone with database access makes behind the application's back is named by
/// table, row and kind (the attacker's edits are plain SQL, as they would be).
pub async fn tables_verify_against_the_audit_log(store: Store) {
    let nurse = seed_user(&store, "tnurse", Role::Nurse).await;
    let actor = Actor::user(nurse.id, Role::Nurse);
    // A patient created and changed twice, through the audited writes.
    let data = serde_json::json!({ "weight_kg": 70 });
    let new = NewRecord {
        kind: "patient",
        parent_id: None,
        label: "p",
        data: &data,
    };
    let patient = store
        .insert_record_audited(&actor, "patient.create", &new, T0)
        .await
        .unwrap();
    let mut version = patient.version;
    for w in [71, 72] {
        let data = serde_json::json!({ "weight_kg": w });
        let change = RecordChange {
            kind: "patient",
            id: patient.id,
            expected_version: version,
            label: "p",
            data: &data,
            lock: false,
        };
        version = store
            .update_record_audited(&actor, "patient.update", &change, T0)
            .await
            .unwrap()
            .version;
    }
    // Two audited batches of readings for a session, as the vital-sign writer writes them.
    let session = Uuid::now_v7();
    for batch in [["k1", "k2"], ["k3", "k4"]] {
        let values: Vec<serde_json::Value> = batch
            .iter()
            .map(|k| serde_json::json!({ "key": k, "hr": 70 }))
            .collect();
        let rows: Vec<NewVital> = batch
            .iter()
            .zip(&values)
            .map(|(k, v)| NewVital {
                session_id: session,
                idempotency_key: k,
                taken_at: T0,
                received_at: T0,
                source: "device",
                recorded_by: "device:m1",
                data: v,
            })
            .collect();
        let mut tx = store.begin().await.unwrap();
        let stored: Vec<serde_json::Value> = tx
            .insert_vitals(&rows)
            .await
            .unwrap()
            .into_iter()
            .map(|r| match r {
                VitalInsert::Inserted(v) => {
                    serde_json::json!({ "id": v.id, "key": v.idempotency_key, "data": v.data })
                }
                VitalInsert::Duplicate(_) => panic!("new keys"),
            })
            .collect();
        tx.append_audit(
            &NewAuditEntry::new(
                T0,
                actor.clone(),
                crate::VITALS_ACTION,
                "session",
                session.to_string(),
            )
            .after(serde_json::json!({ "readings": 2, "source": "device", "digest": batch_digest(&stored) })),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    let clean = store.verify_tables().await.unwrap();
    assert!(clean.is_ok(), "{:?}", clean.problems);
    assert_eq!(
        (clean.records, clean.vitals, clean.vital_batches, clean.users),
        (1, 4, 2, 1)
    );

    // The attacker: a weight edited, a role raised, a reading changed, one deleted from the second
    // batch, one slipped in, and a record inserted with no audit entry.
    let pid = patient.id.to_string();
    raw_exec(
        &store,
        "UPDATE records SET data = $1 WHERE id = $2",
        vec![
            Bind::Text(Some(r#"{"weight_kg":60}"#.into())),
            Bind::Text(Some(pid.clone())),
        ],
    )
    .await
    .unwrap();
    raw_exec(
        &store,
        "UPDATE users SET role = 'administrator' WHERE id = $1",
        vec![Bind::Text(Some(nurse.id.to_string()))],
    )
    .await
    .unwrap();
    raw_exec(
        &store,
        "UPDATE vital_signs SET data = $1 WHERE idempotency_key = 'k1'",
        vec![Bind::Text(Some(r#"{"key":"k1","hr":40}"#.into()))],
    )
    .await
    .unwrap();
    raw_exec(
        &store,
        "DELETE FROM vital_signs WHERE idempotency_key = 'k4'",
        vec![],
    )
    .await
    .unwrap();
    let mut tx = store.begin().await.unwrap();
    let forged = serde_json::json!({ "key": "k9", "hr": 70 });
    tx.insert_vitals(&[NewVital {
        session_id: session,
        idempotency_key: "k9",
        taken_at: T0,
        received_at: T0,
        source: "device",
        recorded_by: "device:m1",
        data: &forged,
    }])
    .await
    .unwrap();
    let ghost = tx
        .insert_record(
            &NewRecord {
                kind: "plan",
                parent_id: None,
                label: "g",
                data: &forged,
            },
            T0,
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let found = store.verify_tables().await.unwrap();
    let mut got: Vec<(&str, TableProblemKind, bool)> = found
        .problems
        .iter()
        .map(|p| {
            (
                p.table,
                p.kind,
                p.id.contains(&pid) || p.id == ghost.id.to_string() || p.id == nurse.id.to_string(),
            )
        })
        .collect();
    got.sort_by_key(|p| (p.0, p.1.code()));
    assert_eq!(
        got,
        [
            ("records", TableProblemKind::Changed, true),
            ("records", TableProblemKind::Unaudited, true),
            ("users", TableProblemKind::Changed, true),
            // k1 changed: the first batch; k4 gone and k9 in its place: the second batch no longer
            // matches its digest.
            ("vital_signs", TableProblemKind::Changed, false),
            ("vital_signs", TableProblemKind::Changed, false),
        ],
        "{:#?}",
        found.problems
    );
    let role = found.problems.iter().find(|p| p.table == "users").unwrap();
    assert!(role.detail.contains("role"), "{}", role.detail);

    // A version bumped with no entry, and a reading beyond every batch.
    raw_exec(
        &store,
        "UPDATE records SET version = version + 1 WHERE id = $1",
        vec![Bind::Text(Some(pid.clone()))],
    )
    .await
    .unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.insert_vitals(&[NewVital {
        session_id: session,
        idempotency_key: "k10",
        taken_at: T0,
        received_at: T0,
        source: "device",
        recorded_by: "device:m1",
        data: &forged,
    }])
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let found = store.verify_tables().await.unwrap();
    let kinds: Vec<(&str, TableProblemKind)> = found.problems.iter().map(|p| (p.table, p.kind)).collect();
    assert!(
        kinds.contains(&("records", TableProblemKind::HistoryBroken)),
        "{:#?}",
        found.problems
    );
    assert!(
        kinds.contains(&("vital_signs", TableProblemKind::Unaudited)),
        "{:#?}",
        found.problems
    );
    let history = found
        .problems
        .iter()
        .find(|p| p.kind == TableProblemKind::HistoryBroken)
        .unwrap();
    assert!(
        history.detail.contains("version 4") && history.detail.contains("3 version"),
        "{}",
        history.detail
    );
}

/// A rolled-back (or dropped) transaction leaves neither its write nor its audit entry, and the
/// next entry still gets seq 1.
pub async fn tx_rollback_discards_write_and_audit(store: Store) {
    for explicit in [true, false] {
        let mut tx = store.begin().await.unwrap();
        let user = tx.create_user(&new_user("ghost", Role::Nurse), T0).await.unwrap();
        assert_eq!(
            tx.get_user(user.id).await.unwrap().username,
            "ghost",
            "visible inside the tx"
        );
        let e = tx
            .append_audit(&NewAuditEntry::new(
                T0,
                admin(),
                "user.create",
                "user",
                user.id.to_string(),
            ))
            .await
            .unwrap();
        assert_eq!(e.seq, 1);
        if explicit {
            tx.rollback().await.unwrap();
        } else {
            drop(tx);
        }
        assert_eq!(store.get_user_by_username("ghost").await.unwrap(), None);
        assert!(
            store
                .list_audit(&AuditFilter::default())
                .await
                .unwrap()
                .is_empty()
        );
    }
    let kept = seed_user(&store, "real", Role::Nurse).await;
    let log = store.list_audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].seq, log[0].record_id.as_str()),
        (1, kept.id.to_string().as_str())
    );
    assert_eq!(log[0].prev_hash, GENESIS_HASH);
    assert!(store.verify_audit_chain().await.unwrap().is_ok());
}

/// When a later write in a transaction fails, dropping the transaction discards the earlier
/// write and the audit entry already appended.
pub async fn tx_failed_write_discards_everything(store: Store) {
    seed_user(&store, "taken", Role::Viewer).await;
    let mut tx = store.begin().await.unwrap();
    let first = tx.create_user(&new_user("fresh", Role::Nurse), T0).await.unwrap();
    tx.append_audit(&NewAuditEntry::new(
        T0,
        admin(),
        "user.create",
        "user",
        first.id.to_string(),
    ))
    .await
    .unwrap();
    let err = tx
        .create_user(&new_user("taken", Role::Nurse), T0)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    drop(tx);
    assert_eq!(store.get_user_by_username("fresh").await.unwrap(), None);
    assert_eq!(store.count_users().await.unwrap(), 1);
    let report = store.verify_audit_chain().await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.checked, 1);
}

// ---- backup ----------------------------------------------------------------------------------

/// The backup holds every user and audit entry; on SQLite it opens as a Store and verifies.
/// An existing target is refused.
pub async fn backup_is_consistent_copy(store: Store) {
    let alice = seed_user(&store, "alice", Role::Administrator).await;
    seed_user(&store, "bob", Role::Nurse).await;
    seed_audit(&store, 10).await;
    let log = store.list_audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(log.len(), 12);

    let dir = std::env::temp_dir().join(format!("ketaflow-backup-test-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("backup.out");
    let report = store.backup(&path).await.unwrap();
    assert_eq!(report.path, path);
    // Only the clinic's service account may read a backup.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "backup file mode {mode:o}");
    }
    match report.format {
        BackupFormat::SqliteFile => {
            assert_eq!(report.rows, None);
            let copy = Store::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            let verified = copy.verify_audit_chain().await.unwrap();
            assert!(verified.is_ok(), "{verified:?}");
            assert_eq!(verified.checked, 12);
            assert_eq!(verified.last_hash, log[11].hash);
            assert_eq!(
                copy.list_users().await.unwrap(),
                store.list_users().await.unwrap()
            );
            assert_eq!(copy.get_user(alice.id).await.unwrap(), alice);
            copy.close().await;
        }
        BackupFormat::PostgresJsonLines => {
            let text = std::fs::read_to_string(&path).unwrap();
            let mut lines = text.lines();
            let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
            assert_eq!(header["ketaflow_backup"], 1);
            let tables: Vec<&str> = header["tables"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect();
            for t in ["audit_head", "audit_log", "auth_tokens", "users"] {
                assert!(tables.contains(&t), "{t} in {tables:?}");
            }
            let mut hashes = Vec::new();
            let mut usernames = Vec::new();
            let mut count = 0;
            for line in lines {
                count += 1;
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                match v["table"].as_str().unwrap() {
                    "audit_log" => hashes.push((
                        v["row"]["seq"].as_i64().unwrap(),
                        v["row"]["hash"].as_str().unwrap().to_owned(),
                    )),
                    "users" => usernames.push(v["row"]["username"].as_str().unwrap().to_owned()),
                    _ => {}
                }
            }
            assert_eq!(report.rows, Some(count));
            hashes.sort();
            assert_eq!(
                hashes,
                log.iter().map(|e| (e.seq, e.hash.clone())).collect::<Vec<_>>()
            );
            usernames.sort();
            assert_eq!(usernames, ["alice", "bob"]);
        }
    }
    let again = store.backup(&path).await.unwrap_err();
    assert!(
        matches!(again, StoreError::BackupTargetExists { .. }),
        "{again:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- Records ---------------------------------------------------------------------------------

/// A record is created at version 1 with its audit entry (after = the document), and reads back
/// exactly, JSON and all.
pub async fn records_create_read_and_audit(store: Store) {
    let data = serde_json::json!({"display_name": "Ana Ruiz", "weights": [{"value": 70.5, "on": "2026-03-01"}], "note": "ñ ✓"});
    let new = NewRecord {
        kind: "patient",
        parent_id: None,
        label: "Ana Ruiz KF-1",
        data: &data,
    };
    let record = store
        .insert_record_audited(&admin(), "patient.create", &new, T0)
        .await
        .unwrap();
    assert_eq!(
        (record.version, record.locked, record.label.as_str()),
        (1, false, "ana ruiz kf-1")
    );
    let read = store.get_record("patient", record.id).await.unwrap();
    assert_eq!(read, record);
    assert_eq!(read.data, data);
    let log = store
        .list_audit(&AuditFilter {
            record_id: Some(record.id.to_string()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].action.as_str(), log[0].record_type.as_str()),
        ("patient.create", "patient")
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(log[0].after_json.as_deref().unwrap()).unwrap(),
        data
    );
    // The wrong kind or an unknown id is NotFound; a malformed kind is refused.
    assert!(matches!(
        store.get_record("plan", record.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.get_record("patient", Uuid::now_v7()).await,
        Err(StoreError::NotFound { .. })
    ));
    let bad = NewRecord {
        kind: "Patient!",
        ..new
    };
    assert!(matches!(
        store.insert_record_audited(&admin(), "x.create", &bad, T0).await,
        Err(StoreError::Invalid { .. })
    ));
}

/// Each change bumps the version and is audited with before and after; a change based on an old
/// version is refused and changes nothing.
pub async fn records_versions_and_stale_writes(store: Store) {
    let v1 = serde_json::json!({"n": 1});
    let record = store
        .insert_record_audited(
            &admin(),
            "patient.create",
            &NewRecord {
                kind: "patient",
                parent_id: None,
                label: "a",
                data: &v1,
            },
            T0,
        )
        .await
        .unwrap();
    let v2 = serde_json::json!({"n": 2});
    let change = RecordChange {
        kind: "patient",
        id: record.id,
        expected_version: 1,
        label: "b",
        data: &v2,
        lock: false,
    };
    let updated = store
        .update_record_audited(&admin(), "patient.update", &change, T0 + Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!((updated.version, updated.data.clone()), (2, v2.clone()));
    assert_eq!(updated.created_at, record.created_at);
    assert!(updated.updated_at > record.updated_at);
    let stale = RecordChange {
        expected_version: 1,
        data: &serde_json::json!({"n": 99}),
        ..change
    };
    assert!(matches!(
        store
            .update_record_audited(&admin(), "patient.update", &stale, T0)
            .await,
        Err(StoreError::StaleVersion {
            expected: 1,
            found: 2,
            ..
        })
    ));
    assert_eq!(store.get_record("patient", record.id).await.unwrap().data, v2);
    let log = store
        .list_audit(&AuditFilter {
            record_id: Some(record.id.to_string()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(log.len(), 2, "the refused change wrote no audit entry");
    assert_eq!(log[1].before_json.as_deref(), Some("{\"n\":1}"));
    assert_eq!(log[1].after_json.as_deref(), Some("{\"n\":2}"));
    assert!(store.verify_audit_chain().await.unwrap().is_ok());
}

/// A change with `lock` makes the record immutable: any later change is refused.
pub async fn records_locked_never_change(store: Store) {
    let data = serde_json::json!({"status": "draft"});
    let plan = store
        .insert_record_audited(
            &admin(),
            "plan.create",
            &NewRecord {
                kind: "plan",
                parent_id: None,
                label: "trd",
                data: &data,
            },
            T0,
        )
        .await
        .unwrap();
    let approved = serde_json::json!({"status": "approved"});
    let change = RecordChange {
        kind: "plan",
        id: plan.id,
        expected_version: 1,
        label: "trd",
        data: &approved,
        lock: true,
    };
    let locked = store
        .update_record_audited(&admin(), "plan.approve", &change, T0)
        .await
        .unwrap();
    assert!(locked.locked);
    let again = RecordChange {
        expected_version: 2,
        data: &serde_json::json!({"status": "tampered"}),
        lock: false,
        ..change
    };
    assert!(matches!(
        store
            .update_record_audited(&admin(), "plan.update", &again, T0)
            .await,
        Err(StoreError::Locked { .. })
    ));
    assert_eq!(store.get_record("plan", plan.id).await.unwrap().data, approved);
}

/// Listing filters by kind, parent and a case-insensitive label search in which `%` and `_` are
/// literal; newest first.
pub async fn records_list_by_parent_and_search(store: Store) {
    let empty = serde_json::json!({});
    let mut ids = Vec::new();
    for label in ["Ana Ruiz", "Bo Chen", "ANAÏS 100%", "x_y"] {
        let r = store
            .insert_record_audited(
                &admin(),
                "patient.create",
                &NewRecord {
                    kind: "patient",
                    parent_id: None,
                    label,
                    data: &empty,
                },
                T0,
            )
            .await
            .unwrap();
        ids.push(r.id);
    }
    let parent = ids[0];
    for _ in 0..3 {
        store
            .insert_record_audited(
                &admin(),
                "plan.create",
                &NewRecord {
                    kind: "plan",
                    parent_id: Some(parent),
                    label: "trd",
                    data: &empty,
                },
                T0,
            )
            .await
            .unwrap();
    }
    store
        .insert_record_audited(
            &admin(),
            "plan.create",
            &NewRecord {
                kind: "plan",
                parent_id: Some(ids[1]),
                label: "trd",
                data: &empty,
            },
            T0,
        )
        .await
        .unwrap();
    let all = store.list_records("patient", None, None, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.id).collect::<Vec<_>>(),
        ids.iter().rev().copied().collect::<Vec<_>>()
    );
    let ana: Vec<String> = store
        .list_records("patient", None, Some("ANA"), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.label)
        .collect();
    assert_eq!(ana.len(), 2, "{ana:?}");
    assert_eq!(
        store
            .list_records("patient", None, Some("100%"), 100)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .list_records("patient", None, Some("%"), 100)
            .await
            .unwrap()
            .len(),
        1,
        "% is literal"
    );
    assert_eq!(
        store
            .list_records("patient", None, Some("_"), 100)
            .await
            .unwrap()
            .len(),
        1,
        "_ is literal"
    );
    assert_eq!(
        store
            .list_records("plan", Some(parent), None, 100)
            .await
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        store
            .list_records("plan", Some(parent), None, 2)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        store.list_records("plan", None, None, 100).await.unwrap().len(),
        4
    );
}

/// Inside a rolled-back transaction, neither the record nor its audit entry survives.
pub async fn records_rollback_leaves_nothing(store: Store) {
    let data = serde_json::json!({"n": 1});
    let mut tx = store.begin().await.unwrap();
    let r = tx
        .insert_record(
            &NewRecord {
                kind: "patient",
                parent_id: None,
                label: "gone",
                data: &data,
            },
            T0,
        )
        .await
        .unwrap();
    tx.append_audit(&NewAuditEntry::new(
        T0,
        admin(),
        "patient.create",
        "patient",
        r.id.to_string(),
    ))
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    assert!(matches!(
        store.get_record("patient", r.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(
        store
            .list_audit(&AuditFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
}

/// Records flagged in progress are listed, all of them and only them, however many records of the
/// kind exist (the board must never lose an open session behind a page limit).
pub async fn records_in_progress_listed_beyond_any_page(store: Store) {
    let data = serde_json::json!({"n": 1});
    let mut tx = store.begin().await.unwrap();
    let mut ids = Vec::new();
    for i in 0..(MAX_RECORD_PAGE + 5) {
        let r = tx
            .insert_record(
                &NewRecord {
                    kind: "session",
                    parent_id: None,
                    label: &format!("s{i}"),
                    data: &data,
                },
                T0,
            )
            .await
            .unwrap();
        ids.push(r.id);
    }
    // The oldest and the newest are open; everything between is closed.
    tx.set_in_progress("session", ids[0], true).await.unwrap();
    tx.set_in_progress("session", ids[ids.len() - 1], true)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let open: Vec<Uuid> = store
        .list_in_progress("session")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(open, vec![ids[0], ids[ids.len() - 1]]);
    // Cleared in a rolled-back transaction: still open.
    let mut tx = store.begin().await.unwrap();
    tx.set_in_progress("session", ids[0], false).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(store.list_in_progress("session").await.unwrap().len(), 2);
    let mut tx = store.begin().await.unwrap();
    tx.set_in_progress("session", ids[0], false).await.unwrap();
    assert!(matches!(
        tx.set_in_progress("session", Uuid::now_v7(), true).await,
        Err(StoreError::NotFound { .. })
    ));
    tx.commit().await.unwrap();
    assert_eq!(
        store.list_in_progress("session").await.unwrap()[0].id,
        ids[ids.len() - 1]
    );
    assert!(store.list_in_progress("plan").await.unwrap().is_empty());
}

/// `in_progress_among` answers for exactly the given records of the kind, and its answer holds
/// until the transaction ends: an audited change that finishes one of them waits (the vital-sign
/// writer relies on this so that a session closed meanwhile takes no reading).
pub async fn records_in_progress_among_holds_until_commit(store: Store) {
    let data = serde_json::json!({"n": 1});
    let mut tx = store.begin().await.unwrap();
    let mut sessions = Vec::new();
    for i in 0..3 {
        let new = NewRecord {
            kind: "session",
            parent_id: None,
            label: &format!("s{i}"),
            data: &data,
        };
        sessions.push(tx.insert_record(&new, T0).await.unwrap().id);
    }
    let plan = NewRecord {
        kind: "plan",
        parent_id: None,
        label: "p",
        data: &data,
    };
    let plan = tx.insert_record(&plan, T0).await.unwrap().id;
    for id in &sessions[..2] {
        tx.set_in_progress("session", *id, true).await.unwrap();
    }
    tx.set_in_progress("plan", plan, true).await.unwrap();
    tx.commit().await.unwrap();

    let mut reader = store.begin().await.unwrap();
    let asked = [sessions[0], sessions[1], sessions[2], plan, Uuid::now_v7()];
    let open = reader.in_progress_among("session", &asked).await.unwrap();
    assert_eq!(open, sessions[..2].iter().copied().collect());
    assert!(reader.in_progress_among("session", &[]).await.unwrap().is_empty());

    // Another writer finishes session 0 with its audit entry: it cannot commit before the reader.
    let closer_store = store.clone();
    let first = sessions[0];
    let closer = tokio::spawn(async move {
        let mut tx = closer_store.begin().await.unwrap();
        tx.set_in_progress("session", first, false).await.unwrap();
        tx.append_audit(&NewAuditEntry::new(
            T0,
            admin(),
            "session.transition",
            "session",
            "s0",
        ))
        .await
        .unwrap();
        tx.commit().await.unwrap();
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !closer.is_finished(),
        "a finishing change committed while a reader relied on the flag"
    );
    reader.commit().await.unwrap();
    closer.await.unwrap();
    let mut after = store.begin().await.unwrap();
    assert_eq!(
        after.in_progress_among("session", &asked).await.unwrap(),
        [sessions[1]].into_iter().collect()
    );
    after.rollback().await.unwrap();
}

/// All of a parent's records, beyond any page, newest first; none of another parent's.
pub async fn records_children_listed_beyond_any_page(store: Store) {
    let data = serde_json::json!({"n": 1});
    let (parent, other) = (Uuid::now_v7(), Uuid::now_v7());
    let mut tx = store.begin().await.unwrap();
    let mut ids = Vec::new();
    for i in 0..(MAX_RECORD_PAGE + 3) {
        let r = tx
            .insert_record(
                &NewRecord {
                    kind: "session",
                    parent_id: Some(if i == 7 { other } else { parent }),
                    label: &format!("s{i}"),
                    data: &data,
                },
                T0,
            )
            .await
            .unwrap();
        if i != 7 {
            ids.push(r.id);
        }
    }
    tx.commit().await.unwrap();
    let listed: Vec<Uuid> = store
        .list_children("session", parent)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    ids.reverse();
    assert_eq!(listed, ids);
    assert_eq!(store.list_children("session", other).await.unwrap().len(), 1);
    assert!(store.list_children("plan", parent).await.unwrap().is_empty());
    // Changed since: all of them at T0; none after; one once it is changed later.
    assert_eq!(
        store.list_updated_since("session", T0).await.unwrap().len(),
        ids.len() + 1
    );
    let later = T0 + Duration::days(30);
    assert!(
        store
            .list_updated_since("session", later)
            .await
            .unwrap()
            .is_empty()
    );
    let record = store.get_record("session", ids[100]).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.update_record(
        &RecordChange {
            kind: "session",
            id: record.id,
            expected_version: record.version,
            label: "changed",
            data: &data,
            lock: false,
        },
        later,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let changed: Vec<Uuid> = store
        .list_updated_since("session", later)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(changed, vec![ids[100]]);
}

/// New users need no password change; the mark is set and cleared on request and read back.
pub async fn users_must_change_password_mark(store: Store) {
    let user = seed_user(&store, "marked", Role::Nurse).await;
    assert!(!user.must_change_password);
    store.set_must_change_password(user.id, true).await.unwrap();
    assert!(store.get_user(user.id).await.unwrap().must_change_password);
    assert!(
        store
            .get_user_by_username("marked")
            .await
            .unwrap()
            .unwrap()
            .must_change_password
    );
    store.set_must_change_password(user.id, false).await.unwrap();
    assert!(!store.list_users().await.unwrap()[0].must_change_password);
    assert!(matches!(
        store.set_must_change_password(Uuid::now_v7(), true).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn append_one(store: &Store, session: Uuid, kind: &str, n: i64) -> crate::StoredEvent {
    let data = serde_json::json!({ "n": n });
    let mut tx = store.begin().await.unwrap();
    tx.append_audit(&NewAuditEntry::new(
        T0,
        admin(),
        "session.test",
        "session",
        session.to_string(),
    ))
    .await
    .unwrap();
    let e = tx
        .append_event(&NewEvent {
            session_id: session,
            kind,
            at: T0 + Duration::seconds(n),
            data: &data,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    e
}

/// Event ids start at 1, go up by one, survive only with their transaction, and filter by session.
pub async fn events_gap_free_in_commit_order(store: Store) {
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    assert_eq!(store.last_event_id().await.unwrap(), 0);
    assert_eq!(append_one(&store, a, "state", 1).await.id, 1);
    assert_eq!(append_one(&store, b, "vitals", 2).await.id, 2);
    // A rolled-back event leaves no hole.
    let data = serde_json::json!({});
    let mut tx = store.begin().await.unwrap();
    let gone = tx
        .append_event(&NewEvent {
            session_id: a,
            kind: "state",
            at: T0,
            data: &data,
        })
        .await
        .unwrap();
    assert_eq!(gone.id, 3);
    tx.rollback().await.unwrap();
    let third = append_one(&store, a, "alarm.raised", 3).await;
    assert_eq!(third.id, 3);
    assert_eq!(third.at, T0 + Duration::seconds(3));
    let all = store.events_after(0, None, 100).await.unwrap();
    assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(all[2].data, serde_json::json!({ "n": 3 }));
    let of_a = store.events_after(0, Some(a), 100).await.unwrap();
    assert_eq!(of_a.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 3]);
    assert_eq!(
        store.events_after(1, Some(a), 100).await.unwrap()[0].kind,
        "alarm.raised"
    );
    assert_eq!(store.events_after(1, None, 1).await.unwrap().len(), 1);
    assert_eq!(store.last_event_id().await.unwrap(), 3);
}

/// Concurrent writers never produce a hole or a duplicate id.
pub async fn events_concurrent_appends_stay_contiguous(store: Store) {
    let session = Uuid::now_v7();
    let mut handles = Vec::new();
    for worker in 0..4 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..10 {
                append_one(&store, session, "vitals", worker * 100 + i).await;
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let ids: Vec<i64> = store
        .events_after(0, Some(session), 1000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, (1..=40).collect::<Vec<_>>());
    assert!(store.verify_audit_chain().await.unwrap().is_ok());
}

/// The same key in the same session is a duplicate that returns the first reading; the same key in
/// another session is a different reading; bad keys and sources are refused.
/// The group writer's multi-row statements: readings across several statements (a key given twice
/// in one call, a key stored earlier), events with contiguous ids after single appends, and audit
/// entries that chain on from single ones and verify.
pub async fn batch_writes_match_single_writes(store: Store) {
    let session = Uuid::now_v7();
    let data = serde_json::json!({ "systolic_mmhg": 128.0 });
    let keys: Vec<String> = (0..crate::ROWS_PER_STATEMENT * 2 + 7)
        .map(|i| format!("k{i}"))
        .collect();
    fn vital<'a>(session: Uuid, key: &'a str, data: &'a serde_json::Value) -> NewVital<'a> {
        NewVital {
            session_id: session,
            idempotency_key: key,
            taken_at: T0,
            received_at: T0,
            source: "device",
            recorded_by: "monitor",
            data,
        }
    }
    let mut tx = store.begin().await.unwrap();
    let VitalInsert::Inserted(earlier) = tx.insert_vital(&vital(session, "k3", &data)).await.unwrap() else {
        panic!("first insert")
    };
    let first_event = tx
        .append_event(&NewEvent {
            session_id: session,
            kind: "state",
            at: T0,
            data: &data,
        })
        .await
        .unwrap();
    tx.append_audit(&NewAuditEntry::new(
        T0,
        admin(),
        "one",
        "session",
        session.to_string(),
    ))
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let mut batch: Vec<NewVital> = keys.iter().map(|k| vital(session, k, &data)).collect();
    batch.push(vital(session, "k5", &data)); // the same key twice in one call
    let mut tx = store.begin().await.unwrap();
    let results = tx.insert_vitals(&batch).await.unwrap();
    assert_eq!(results.len(), batch.len());
    for (i, r) in results.iter().enumerate() {
        match (i, r) {
            (3, VitalInsert::Duplicate(v)) => assert_eq!(v, &earlier),
            (3, VitalInsert::Inserted(_)) => panic!("k3 was stored before"),
            (i, VitalInsert::Duplicate(v)) if i == batch.len() - 1 => assert_eq!(v.idempotency_key, "k5"),
            (_, VitalInsert::Inserted(v)) => assert_eq!(v.idempotency_key, batch[i].idempotency_key),
            (i, VitalInsert::Duplicate(_)) => panic!("reading {i} is new"),
        }
    }
    let events: Vec<NewEvent> = (0..crate::ROWS_PER_STATEMENT + 3)
        .map(|_| NewEvent {
            session_id: session,
            kind: "vitals",
            at: T0,
            data: &data,
        })
        .collect();
    let stored = tx.append_events(&events).await.unwrap();
    let ids: Vec<i64> = stored.iter().map(|e| e.id).collect();
    let expected: Vec<i64> = (first_event.id + 1..=first_event.id + events.len() as i64).collect();
    assert_eq!(ids, expected);
    let entries: Vec<NewAuditEntry> = (0..250)
        .map(|i| NewAuditEntry::new(T0, admin(), format!("batch {i}"), "session", session.to_string()))
        .collect();
    let chained = tx.append_audits(&entries).await.unwrap();
    assert_eq!(chained.first().unwrap().seq, 2);
    assert_eq!(chained.last().unwrap().seq, 251);
    tx.commit().await.unwrap();

    assert_eq!(store.list_vitals(session).await.unwrap().len(), keys.len());
    let report = store.verify_audit_chain().await.unwrap();
    assert_eq!(report.checked, 251);
    assert!(report.problem.is_none(), "{report:?}");
    assert_eq!(
        store.events_after(0, Some(session), 10_000).await.unwrap().len(),
        events.len() + 1
    );
}

pub async fn vitals_idempotent_by_session_and_key(store: Store) {
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let data = serde_json::json!({ "systolic_mmhg": 128.0 });
    let other = serde_json::json!({ "systolic_mmhg": 200.0 });
    let vital = |session, key, data| NewVital {
        session_id: session,
        idempotency_key: key,
        taken_at: T0,
        received_at: T0 + Duration::milliseconds(250),
        source: "device",
        recorded_by: "monitor 7",
        data,
    };
    let mut tx = store.begin().await.unwrap();
    let first = match tx.insert_vital(&vital(a, "k1", &data)).await.unwrap() {
        VitalInsert::Inserted(v) => v,
        VitalInsert::Duplicate(_) => panic!("first insert is not a duplicate"),
    };
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    // A retry with different content is still the same reading: the first one stands.
    match tx.insert_vital(&vital(a, "k1", &other)).await.unwrap() {
        VitalInsert::Duplicate(v) => assert_eq!(v, first),
        VitalInsert::Inserted(_) => panic!("a retried key must not insert"),
    }
    assert!(matches!(
        tx.insert_vital(&vital(b, "k1", &data)).await.unwrap(),
        VitalInsert::Inserted(_)
    ));
    let long = "x".repeat(101);
    for key in ["", long.as_str(), "a\nb"] {
        assert!(matches!(
            tx.insert_vital(&vital(a, key, &data)).await,
            Err(StoreError::Invalid { .. })
        ));
    }
    assert!(matches!(
        tx.insert_vital(&NewVital {
            source: "guess",
            ..vital(a, "k2", &data)
        })
        .await,
        Err(StoreError::Invalid { .. })
    ));
    tx.commit().await.unwrap();
    assert_eq!(store.count_vitals(Some(a)).await.unwrap(), 1);
    assert_eq!(store.count_vitals(None).await.unwrap(), 2);
    let listed = store.list_vitals(a).await.unwrap();
    assert_eq!(listed, vec![first.clone()]);
    assert_eq!(listed[0].data, data);
    assert_eq!(store.latest_vital(a).await.unwrap(), Some(first));
}

/// The latest readings come newest first; the trend groups any number of readings into at most the
/// buckets asked for, with exact counts, times, minimum, mean and maximum, and keeps a single
/// extreme reading visible.
pub async fn vitals_recent_and_trend_are_bounded_and_keep_extremes(store: Store) {
    let session = Uuid::now_v7();
    let keys: Vec<String> = (0..100).map(|i| format!("k{i:03}")).collect();
    // SpO2 97 % throughout except one reading of 84 % (index 41); heart rate 60 + i; reading 7 has
    // no heart rate.
    let data: Vec<serde_json::Value> = (0..100)
        .map(|i| {
            let mut v = serde_json::json!({ "spo2_percent": if i == 41 { 84.0 } else { 97.0 } });
            if i != 7 {
                v["heart_rate_per_min"] = serde_json::json!(60 + i);
            }
            v
        })
        .collect();
    let batch: Vec<NewVital> = (0..100)
        .map(|i| NewVital {
            session_id: session,
            idempotency_key: &keys[i],
            taken_at: T0 + Duration::seconds(i as i64),
            received_at: T0 + Duration::seconds(i as i64),
            source: "device",
            recorded_by: "monitor 7",
            data: &data[i],
        })
        .collect();
    let mut tx = store.begin().await.unwrap();
    tx.insert_vitals(&batch).await.unwrap();
    tx.commit().await.unwrap();

    let recent = store.recent_vitals(session, 3).await.unwrap();
    let keys_seen: Vec<&str> = recent.iter().map(|v| v.idempotency_key.as_str()).collect();
    assert_eq!(keys_seen, ["k099", "k098", "k097"]);

    let fields = ["spo2_percent", "heart_rate_per_min"];
    let trend = store.vitals_trend(session, 10, &fields).await.unwrap();
    assert_eq!(trend.len(), 10);
    assert!(trend.iter().all(|b| b.readings == 10));
    assert_eq!(trend[0].first_at, T0);
    assert_eq!(trend[0].last_at, T0 + Duration::seconds(9));
    assert_eq!(trend[9].last_at, T0 + Duration::seconds(99));
    // The desaturation is in bucket 4 (readings 40–49) and nowhere else.
    assert_eq!(trend[4].min[0], Some(84.0));
    assert_eq!(trend[4].max[0], Some(97.0));
    assert!((trend[4].mean[0].unwrap() - (9.0 * 97.0 + 84.0) / 10.0).abs() < 1e-9);
    assert!(
        trend
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || b.min[0] == Some(97.0))
    );
    // Heart rate: bucket 0 lacks reading 7 (mean of 60..69 without 67), the last is 150..159.
    assert_eq!((trend[0].min[1], trend[0].max[1]), (Some(60.0), Some(69.0)));
    assert!((trend[0].mean[1].unwrap() - (645.0 - 67.0) / 9.0).abs() < 1e-9);
    assert_eq!((trend[9].min[1], trend[9].max[1]), (Some(150.0), Some(159.0)));
    // More buckets than readings: one reading each; none: nothing.
    let fine = store.vitals_trend(session, 500, &fields).await.unwrap();
    assert_eq!(fine.len(), 100);
    assert_eq!(fine[7].mean[1], None);
    assert_eq!(
        store.vitals_trend(Uuid::now_v7(), 10, &fields).await.unwrap(),
        vec![]
    );
    // Field names go into the SQL, so only plain identifiers are taken.
    assert!(matches!(
        store
            .vitals_trend(session, 10, &["spo2'); DROP TABLE vital_signs; --"])
            .await,
        Err(StoreError::Invalid { .. })
    ));
    // Each is one store operation.
    let before = store.operations();
    store.recent_vitals(session, 12).await.unwrap();
    store.vitals_trend(session, 240, &fields).await.unwrap();
    assert_eq!(store.operations() - before, 2);
}

/// raised → acknowledged → resolved; repeats count on the open alarm; a resolved rule raises anew.
pub async fn alarms_lifecycle_and_repeats(store: Store) {
    let session = Uuid::now_v7();
    let data = serde_json::json!({ "message": "systolic 182 mmHg >= 180" });
    let raise = |at| NewAlarm {
        session_id: session,
        code: "systolic_high",
        level: "urgent",
        at,
        vital_id: Some(7),
        data: &data,
    };
    let mut tx = store.begin().await.unwrap();
    let AlarmRaise::Raised(first) = tx.raise_alarm(&raise(T0)).await.unwrap() else {
        panic!("first alarm is new")
    };
    let AlarmRaise::Repeated(again) = tx.raise_alarm(&raise(T0 + Duration::seconds(5))).await.unwrap() else {
        panic!("an open alarm absorbs repeats")
    };
    assert_eq!((again.id, again.occurrences), (first.id, 2));
    let ack = tx
        .acknowledge_alarm(first.id, "nurse-1", T0 + Duration::seconds(30))
        .await
        .unwrap();
    assert_eq!(ack.state, AlarmState::Acknowledged);
    assert_eq!(ack.acknowledged_by.as_deref(), Some("nurse-1"));
    let err = tx
        .acknowledge_alarm(first.id, "nurse-2", T0 + Duration::seconds(31))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is acknowledged"), "{err}");
    let AlarmRaise::Repeated(third) = tx.raise_alarm(&raise(T0 + Duration::seconds(40))).await.unwrap()
    else {
        panic!("an acknowledged alarm is still open")
    };
    assert_eq!(third.occurrences, 3);
    let resolved = tx
        .resolve_alarm(
            first.id,
            "nurse-1",
            T0 + Duration::seconds(60),
            "pause",
            Some("rechecked at 2 min"),
        )
        .await
        .unwrap();
    assert_eq!(resolved.state, AlarmState::Resolved);
    assert_eq!(resolved.action.as_deref(), Some("pause"));
    assert!(tx.resolve_alarm(first.id, "x", T0, "none", None).await.is_err());
    let AlarmRaise::Raised(fresh) = tx.raise_alarm(&raise(T0 + Duration::seconds(90))).await.unwrap() else {
        panic!("after resolution the rule raises a new alarm")
    };
    assert_ne!(fresh.id, first.id);
    // Resolving straight from raised records the resolver as having seen it.
    let direct = tx
        .resolve_alarm(
            fresh.id,
            "nurse-3",
            T0 + Duration::seconds(95),
            "physician_called",
            None,
        )
        .await
        .unwrap();
    assert_eq!(direct.acknowledged_by.as_deref(), Some("nurse-3"));
    tx.commit().await.unwrap();
    let stored = store.get_alarm(first.id).await.unwrap();
    assert_eq!(stored.occurrences, 3);
    assert_eq!(stored.last_seen_at, T0 + Duration::seconds(40));
    assert_eq!(stored.note.as_deref(), Some("rechecked at 2 min"));
    assert_eq!(store.list_alarms(Some(session), false).await.unwrap().len(), 2);
    assert!(store.list_alarms(Some(session), true).await.unwrap().is_empty());
    assert!(matches!(
        store.get_alarm(Uuid::now_v7()).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// A device token is found only while active, and revoking a session's tokens ends them.
pub async fn device_tokens_scope_expiry_revocation(store: Store) {
    let nurse = seed_user(&store, "device_issuer", Role::Nurse).await;
    let session = Uuid::now_v7();
    let hash = hash_token("monitor-raw-token");
    let mut tx = store.begin().await.unwrap();
    tx.insert_device_token(&NewDeviceToken {
        token_hash: hash.clone(),
        session_id: session,
        created_by: nurse.id,
        label: Some("monitor 7".into()),
        created_at: T0,
        expires_at: T0 + Duration::hours(8),
    })
    .await
    .unwrap();
    assert!(matches!(
        tx.insert_device_token(&NewDeviceToken {
            token_hash: "raw".into(),
            session_id: session,
            created_by: nurse.id,
            label: None,
            created_at: T0,
            expires_at: T0,
        })
        .await,
        Err(StoreError::Invalid { .. })
    ));
    tx.commit().await.unwrap();
    let found = store.find_device_token(&hash, T0).await.unwrap().unwrap();
    assert_eq!((found.session_id, found.created_by), (session, nurse.id));
    assert!(
        store
            .find_device_token(&hash, T0 + Duration::hours(8))
            .await
            .unwrap()
            .is_none()
    );
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.revoke_device_tokens(session, T0 + Duration::hours(1))
            .await
            .unwrap(),
        1
    );
    tx.commit().await.unwrap();
    assert!(store.find_device_token(&hash, T0).await.unwrap().is_none());
}

/// The restore drill (issue 15): a backup taken while the clinic keeps writing restores into a
/// fresh database, all of it or nothing; the copy's audit chain verifies, its users and records
/// are the original's as of the backup, and it takes new writes that verify too. A database that
/// is not empty is refused.
pub async fn restore_drill(store: Store, fresh: Store) {
    let alice = seed_user(&store, "alice", Role::Administrator).await;
    seed_user(&store, "bob", Role::Nurse).await;
    seed_audit(&store, 20).await;
    let record = store
        .insert_record_audited(
            &admin(),
            "patient.create",
            &crate::NewRecord {
                kind: "patient",
                parent_id: None,
                label: "Restore Drill",
                data: &serde_json::json!({"display_name": "Restore Drill", "weights": [70.5]}),
            },
            T0,
        )
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("ketaflow-restore-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("backup.out");
    // Writes keep coming while the backup runs.
    let writer = {
        let store = store.clone();
        tokio::spawn(async move { seed_audit(&store, 40).await })
    };
    store.backup(&path).await.unwrap();
    writer.await.unwrap();

    let report = fresh.restore(&path).await.unwrap();
    assert!(report.rows > 0);
    let chain = fresh.verify_audit_chain().await.unwrap();
    assert!(chain.is_ok(), "{chain:?}");
    let original = store.list_audit(&AuditFilter::default()).await.unwrap();
    assert!(
        (23..=63).contains(&chain.checked),
        "{} entries restored",
        chain.checked
    );
    // The copy is a prefix of the original chain, ending at the same hash as the original did.
    let at = original.iter().find(|e| e.seq == chain.checked as i64).unwrap();
    assert_eq!(chain.last_hash, at.hash);
    assert_eq!(fresh.get_user(alice.id).await.unwrap(), alice);
    assert_eq!(fresh.list_users().await.unwrap().len(), 2);
    let copied = fresh.get_record("patient", record.id).await.unwrap();
    assert_eq!(
        (copied.data.clone(), copied.version),
        (record.data.clone(), record.version)
    );
    // It takes new writes, and they chain on.
    seed_audit(&fresh, 2).await;
    let after = fresh.verify_audit_chain().await.unwrap();
    assert!(after.is_ok() && after.checked == chain.checked + 2, "{after:?}");
    // Restoring again into it is refused: it is no longer empty.
    let again = fresh.restore(&path).await.unwrap_err().to_string();
    assert!(again.contains("not empty"), "{again}");
    std::fs::remove_dir_all(&dir).ok();
}

// ---- An attacker with write access to the database (for tests of what verification catches) ----

/// Records a migration this build does not carry, as a newer build that ran against the database
/// would have left it (for the readiness check, which must then refuse traffic).
pub async fn record_unknown_migration(store: &Store, version: i64) {
    let sql = match store.backend() {
        crate::Backend::Sqlite => {
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ($1, 'from a newer build', TRUE, X'00', 1)"
        }
        crate::Backend::Postgres => {
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ($1, 'from a newer build', TRUE, '\\x00'::bytea, 1)"
        }
    };
    raw_exec(store, sql, vec![Bind::Int(version)]).await.unwrap();
}

/// Cuts the audit log after `keep` entries and moves the head back, as an attacker with the
/// database's credentials can: the chain alone still verifies.
pub async fn tamper_truncate(store: &Store, keep: i64) {
    drop_append_only_guard(store).await;
    raw_exec(
        store,
        "DELETE FROM audit_log WHERE seq > $1",
        vec![Bind::Int(keep)],
    )
    .await
    .unwrap();
    let last = entry(store, keep).await;
    raw_exec(
        store,
        "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1",
        vec![Bind::Int(keep), Bind::Text(Some(last.hash))],
    )
    .await
    .unwrap();
}

/// Rewrites entry `seq`'s `after_json` and re-hashes it and every later entry and the head: the
/// chain alone still verifies.
pub async fn tamper_rewrite_and_rehash(store: &Store, seq: i64, after_json: &str) {
    drop_append_only_guard(store).await;
    let all = store.list_audit(&AuditFilter::default()).await.unwrap();
    let mut prev = all
        .iter()
        .find(|e| e.seq == seq - 1)
        .map_or(crate::GENESIS_HASH.to_string(), |e| e.hash.clone());
    for mut e in all.into_iter().filter(|e| e.seq >= seq) {
        if e.seq == seq {
            e.after_json = Some(after_json.to_string());
        }
        e.prev_hash = prev.clone();
        e.hash = e.compute_hash();
        raw_exec(
            store,
            "UPDATE audit_log SET after_json = $1, prev_hash = $2, hash = $3 WHERE seq = $4",
            vec![
                Bind::Text(e.after_json.clone()),
                Bind::Text(Some(e.prev_hash.clone())),
                Bind::Text(Some(e.hash.clone())),
                Bind::Int(e.seq),
            ],
        )
        .await
        .unwrap();
        prev = e.hash;
    }
    raw_exec(
        store,
        "UPDATE audit_head SET hash = $1 WHERE id = 1",
        vec![Bind::Text(Some(prev))],
    )
    .await
    .unwrap();
}
