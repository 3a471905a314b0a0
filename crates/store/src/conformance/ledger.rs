//! Conformance tests of the controlled-substance ledger (`crate::ledger`): exact decimal
//! balances, refusals that write nothing, concurrent draws, witnesses, append-only storage,
//! counts, discrepancies and inventories.

use rust_decimal::Decimal;
use time::macros::date;
use time::{Date, Duration};
use uuid::Uuid;

use super::{Bind, T0, raw_exec, seed_user};
use crate::{
    Actor, AuditFilter, BusinessTime, CountKind, CountLine, DiscrepancyResolution, DiscrepancyStatus,
    EntryKind, LedgerEntry, LedgerFilter, LedgerPerson, NewAdministration, NewCount, NewDestruction, NewDraw,
    NewVial, NewWaste, Role, Store, StoreError, Vial, VialStatus,
};

fn d(text: &str) -> Decimal {
    crate::parse_quantity(text).unwrap_or_else(|| panic!("{text} is a decimal"))
}

/// A user who acts in the ledger: the audit actor and the person named in the entries.
struct Who {
    actor: Actor,
    person: LedgerPerson,
}

async fn who(store: &Store, username: &str, role: Role) -> Who {
    let user = seed_user(store, username, role).await;
    Who {
        actor: Actor::user(user.id, role),
        person: LedgerPerson {
            id: user.id,
            name: user.display_name,
        },
    }
}

const EXPIRY: Date = date!(2027 - 06 - 30);

async fn receive(store: &Store, by: &Who, strength: &str, volume: &str, lot: &str) -> Vial {
    let mut tx = store.begin().await.unwrap();
    let (vial, receipt) = tx
        .receive_vial(
            &by.actor,
            &NewVial {
                ndc: "0409-2051-05",
                product_name: "Ketamine HCl injection",
                strength_mg_per_ml: d(strength),
                volume_ml: d(volume),
                lot,
                expiry: EXPIRY,
                supplier_name: "Example Wholesale",
                supplier_address: "1 Depot Rd, Springfield",
                supplier_dea_number: "RW1234563",
                invoice_number: "INV-1001",
                at: T0,
                by: &by.person,
            },
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(receipt.kind, EntryKind::Receipt);
    assert_eq!(receipt.vial_seq, 1);
    assert_eq!(receipt.balance_after_mg, vial.content_mg);
    vial
}

async fn draw(
    store: &Store,
    by: &Who,
    vial: Uuid,
    session: Uuid,
    mg: &str,
) -> Result<LedgerEntry, StoreError> {
    let mut tx = store.begin().await?;
    let entry = tx
        .draw_from_vial(
            &by.actor,
            &NewDraw {
                vial_id: vial,
                quantity_mg: d(mg),
                session_id: session,
                patient_id: None,
                patient_name: Some("Test Patient"),
                at: T0 + Duration::hours(1),
                by: &by.person,
            },
        )
        .await?;
    tx.commit().await?;
    Ok(entry)
}

async fn administer(
    store: &Store,
    by: &Who,
    draw_id: i64,
    mg: &str,
    given: &str,
) -> Result<LedgerEntry, StoreError> {
    let mut tx = store.begin().await?;
    let entry = tx
        .record_administration(
            &by.actor,
            &NewAdministration {
                draw_id,
                quantity_mg: d(mg),
                session_given_mg: d(given),
                reason: None,
                at: T0 + Duration::hours(2),
                by: &by.person,
            },
        )
        .await?;
    tx.commit().await?;
    Ok(entry)
}

async fn waste(
    store: &Store,
    by: &Who,
    witness: &Who,
    draw_id: i64,
    mg: &str,
) -> Result<LedgerEntry, StoreError> {
    let mut tx = store.begin().await?;
    let entry = tx
        .record_waste(
            &by.actor,
            &NewWaste {
                draw_id,
                quantity_mg: d(mg),
                witness: &witness.person,
                reason: Some("unused remainder of the bag"),
                at: T0 + Duration::hours(2),
                by: &by.person,
            },
        )
        .await?;
    tx.commit().await?;
    Ok(entry)
}

fn code(result: Result<LedgerEntry, StoreError>) -> &'static str {
    match result {
        Err(StoreError::Refused { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn entry_count(store: &Store) -> usize {
    store
        .all_ledger_entries(&LedgerFilter::default())
        .await
        .unwrap()
        .len()
}

async fn ledger_audit(store: &Store) -> Vec<crate::AuditEntry> {
    store
        .list_audit(&AuditFilter {
            record_type: Some("ledger_entry".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap()
}

/// Receipt → draw → administration → waste, with exact decimal balances, the draw's outstanding
/// amount, the difference from the session's dose, and an audit entry for every ledger entry.
pub async fn ledger_receipt_draw_administer_waste_balances_exactly(store: Store) {
    let nurse = who(&store, "ledger_nurse", Role::Nurse).await;
    let witness = who(&store, "ledger_witness", Role::Nurse).await;
    let doc = who(&store, "ledger_doc", Role::Physician).await;
    // 10 mg/mL × 10 mL = 100 mg, exactly.
    let vial = receive(&store, &doc, "10", "10.0", "L-100").await;
    assert_eq!(vial.content_mg.to_string(), "100");
    assert_eq!(vial.balance_mg.to_string(), "100");
    assert_eq!(vial.status, VialStatus::Sealed);
    assert_eq!(vial.received_by, doc.person);

    let s1 = Uuid::now_v7();
    let d1 = draw(&store, &nurse, vial.id, s1, "35.5").await.unwrap();
    assert_eq!(
        (
            d1.kind,
            d1.vial_seq,
            d1.balance_change_mg.to_string(),
            d1.balance_after_mg.to_string()
        ),
        (EntryKind::Draw, 2, "-35.5".into(), "64.5".into())
    );
    assert_eq!(
        d1.draw_outstanding_mg.map(|o| o.to_string()).as_deref(),
        Some("35.5")
    );
    assert_eq!(d1.patient_name.as_deref(), Some("Test Patient"));
    assert_eq!(store.get_vial(vial.id).await.unwrap().status, VialStatus::Open);

    let a1 = administer(&store, &nurse, d1.id, "35.5", "35.5").await.unwrap();
    assert_eq!(
        a1.balance_change_mg,
        Decimal::ZERO,
        "administration leaves the vial alone"
    );
    assert_eq!(a1.balance_after_mg.to_string(), "64.5");
    assert_eq!(
        a1.draw_outstanding_mg.map(|o| o.to_string()).as_deref(),
        Some("0")
    );
    assert_eq!(a1.session_id, Some(s1));
    assert_eq!(a1.difference_mg, Some(Decimal::ZERO));
    // Nothing left of the draw to give or waste.
    assert_eq!(
        code(administer(&store, &nurse, d1.id, "0.001", "35.5").await),
        "exceeds_draw"
    );
    assert_eq!(
        code(waste(&store, &nurse, &witness, d1.id, "0.001").await),
        "exceeds_draw"
    );

    // A second session: draw more than the dose, administer the dose, waste the rest.
    let s2 = Uuid::now_v7();
    let d2 = draw(&store, &nurse, vial.id, s2, "40.25").await.unwrap();
    assert_eq!(d2.balance_after_mg.to_string(), "24.25");
    let a2 = administer(&store, &nurse, d2.id, "35.125", "35.2").await.unwrap();
    assert_eq!(
        a2.draw_outstanding_mg.map(|o| o.to_string()).as_deref(),
        Some("5.125")
    );
    assert_eq!(
        a2.session_given_mg.map(|g| g.to_string()).as_deref(),
        Some("35.2")
    );
    assert_eq!(a2.difference_mg.map(|g| g.to_string()).as_deref(), Some("-0.075"));
    let w2 = waste(&store, &nurse, &witness, d2.id, "5.125").await.unwrap();
    assert_eq!(
        w2.draw_outstanding_mg.map(|o| o.to_string()).as_deref(),
        Some("0")
    );
    assert_eq!(w2.witnesses, vec![witness.person.clone()]);
    assert_eq!(w2.reason.as_deref(), Some("unused remainder of the bag"));
    assert_eq!(w2.balance_after_mg.to_string(), "24.25");

    // Decimal, not binary: 0.1 + 0.2 leaves exactly 23.95.
    let s3 = Uuid::now_v7();
    draw(&store, &nurse, vial.id, s3, "0.1").await.unwrap();
    let last = draw(&store, &nurse, vial.id, s3, "0.2").await.unwrap();
    assert_eq!(last.balance_after_mg.to_string(), "23.95");
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.session_administered_mg(s2).await.unwrap().to_string(),
        "35.125"
    );
    assert_eq!(tx.session_administered_mg(s3).await.unwrap(), Decimal::ZERO);
    tx.rollback().await.unwrap();

    let stored = store.get_vial(vial.id).await.unwrap();
    assert_eq!(stored.balance_mg.to_string(), "23.95");
    assert_eq!(stored.entry_count, 8);
    let all = store
        .all_ledger_entries(&LedgerFilter {
            vial_id: Some(vial.id),
            ..LedgerFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|e| e.vial_seq).collect::<Vec<_>>(),
        (1..=8).collect::<Vec<_>>()
    );
    assert_eq!(all[4], a2, "read back exactly as written");
    let of_draw = store
        .list_ledger_entries(&LedgerFilter {
            draw_id: Some(d2.id),
            ..LedgerFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        of_draw.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [EntryKind::Draw, EntryKind::Administration, EntryKind::Waste]
    );
    let of_session = store
        .list_ledger_entries(&LedgerFilter {
            session_id: Some(s1),
            ..LedgerFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(of_session.len(), 2);
    // The running balance adds up: initial − balance = Σ changes after the receipt.
    let drawn: Decimal = all[1..].iter().map(|e| -e.balance_change_mg).sum();
    assert_eq!(vial.content_mg - stored.balance_mg, drawn);

    // Every entry is in the audit chain with its exact values.
    let audit = ledger_audit(&store).await;
    assert_eq!(audit.len(), all.len());
    for (a, e) in audit.iter().zip(&all) {
        assert_eq!(a.record_id, e.id.to_string());
        assert_eq!(a.action, format!("ledger.{}", e.kind.as_str()));
        let after: serde_json::Value = serde_json::from_str(a.after_json.as_deref().unwrap()).unwrap();
        assert_eq!(after["balance_after_mg"], e.balance_after_mg.to_string());
    }
    assert_eq!(audit[0].actor_user_id, doc.person.id.to_string());
    let receipt: serde_json::Value = serde_json::from_str(audit[0].after_json.as_deref().unwrap()).unwrap();
    assert_eq!(receipt["vial"]["lot"], "L-100");
    assert_eq!(receipt["vial"]["expiry"], "2027-06-30");
    assert_eq!(receipt["quantity_mg"], "100");
    assert!(store.verify_audit_chain().await.unwrap().is_ok());
    let report = store.verify_ledger().await.unwrap();
    assert_eq!((report.vials, report.entries), (1, 8));
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

/// A draw larger than the balance is refused with a clear error and writes nothing; so are draws
/// from an expired vial and quantities that are not positive decimals with ≤ 3 fraction digits.
pub async fn ledger_overdraw_refused_and_nothing_written(store: Store) {
    let nurse = who(&store, "od_nurse", Role::Nurse).await;
    let doc = who(&store, "od_doc", Role::Physician).await;
    let vial = receive(&store, &doc, "50", "2", "L-OD").await;
    let session = Uuid::now_v7();
    draw(&store, &nurse, vial.id, session, "60").await.unwrap();
    let (entries, audit) = (
        entry_count(&store).await,
        store.verify_audit_chain().await.unwrap().checked,
    );
    match draw(&store, &nurse, vial.id, session, "40.001").await {
        Err(StoreError::Refused { code, message }) => {
            assert_eq!(code, "insufficient_balance");
            assert!(message.contains("holds 40 mg"), "{message}");
            assert!(message.contains("40.001"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(entry_count(&store).await, entries, "no entry written");
    // Even if the caller commits the transaction a refusal happened in.
    let mut tx = store.begin().await.unwrap();
    let refused = tx
        .draw_from_vial(
            &nurse.actor,
            &NewDraw {
                vial_id: vial.id,
                quantity_mg: d("41"),
                session_id: session,
                patient_id: None,
                patient_name: None,
                at: T0,
                by: &nurse.person,
            },
        )
        .await;
    assert!(matches!(refused, Err(StoreError::Refused { .. })), "{refused:?}");
    tx.commit().await.unwrap();
    assert_eq!(entry_count(&store).await, entries);
    assert_eq!(
        store.verify_audit_chain().await.unwrap().checked,
        audit,
        "no audit entry written"
    );
    let stored = store.get_vial(vial.id).await.unwrap();
    assert_eq!(
        (stored.balance_mg.to_string(), stored.entry_count),
        ("40".into(), 2)
    );

    // The exact balance can be drawn; then the vial is empty and nothing more comes out.
    let last = draw(&store, &nurse, vial.id, session, "40.000").await.unwrap();
    assert_eq!(last.balance_after_mg.to_string(), "0");
    assert_eq!(store.get_vial(vial.id).await.unwrap().status, VialStatus::Empty);
    assert_eq!(
        code(draw(&store, &nurse, vial.id, session, "0.001").await),
        "insufficient_balance"
    );

    // Quantities: positive, at most 3 fraction digits.
    let fresh = receive(&store, &doc, "10", "10", "L-OD2").await;
    for bad in ["0", "0.0001", "1.2345"] {
        assert!(
            matches!(
                draw(&store, &nurse, fresh.id, session, bad).await,
                Err(StoreError::Invalid { .. })
            ),
            "{bad}"
        );
    }
    let mut tx = store.begin().await.unwrap();
    let negative = tx
        .draw_from_vial(
            &nurse.actor,
            &NewDraw {
                vial_id: fresh.id,
                quantity_mg: -d("1"),
                session_id: session,
                patient_id: None,
                patient_name: None,
                at: T0,
                by: &nurse.person,
            },
        )
        .await;
    assert!(
        matches!(negative, Err(StoreError::Invalid { .. })),
        "{negative:?}"
    );
    // After the expiry date nothing is drawn.
    let expired = tx
        .draw_from_vial(
            &nurse.actor,
            &NewDraw {
                vial_id: fresh.id,
                quantity_mg: d("1"),
                session_id: session,
                patient_id: None,
                patient_name: None,
                at: time::macros::datetime!(2027-07-01 09:00 UTC),
                by: &nurse.person,
            },
        )
        .await;
    assert!(
        matches!(
            expired,
            Err(StoreError::Refused {
                code: "vial_expired",
                ..
            })
        ),
        "{expired:?}"
    );
    // The audit actor and the person named must be the same user.
    let mismatched = tx
        .draw_from_vial(
            &doc.actor,
            &NewDraw {
                vial_id: fresh.id,
                quantity_mg: d("1"),
                session_id: session,
                patient_id: None,
                patient_name: None,
                at: T0,
                by: &nurse.person,
            },
        )
        .await;
    assert!(
        matches!(mismatched, Err(StoreError::Invalid { .. })),
        "{mismatched:?}"
    );
    drop(tx);
    assert!(matches!(
        draw(&store, &nurse, Uuid::now_v7(), session, "1").await,
        Err(StoreError::NotFound { what: "vial", .. })
    ));
    assert_eq!(
        store.get_vial(fresh.id).await.unwrap().balance_mg.to_string(),
        "100"
    );
    assert!(store.verify_ledger().await.unwrap().problems.is_empty());
}

/// 8 tasks × 11 draws of 1.25 mg from a 100 mg vial, each in its own transaction: exactly 80
/// succeed, the rest are refused, the final balance is exactly 0, no balance is ever negative, and
/// the entries add up.
pub async fn ledger_concurrent_draws_never_overdraw(store: Store) {
    const TASKS: usize = 8;
    const EACH: usize = 11;
    let doc = who(&store, "cc_doc", Role::Physician).await;
    let vial = receive(&store, &doc, "10", "10", "L-CC").await;
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        let nurse = who(&store, &format!("cc_nurse_{task}"), Role::Nurse).await;
        let vial_id = vial.id;
        handles.push(tokio::spawn(async move {
            let session = Uuid::now_v7();
            let (mut ok, mut refused) = (0, 0);
            for _ in 0..EACH {
                match draw(&store, &nurse, vial_id, session, "1.25").await {
                    Ok(_) => ok += 1,
                    Err(StoreError::Refused {
                        code: "insufficient_balance",
                        ..
                    }) => refused += 1,
                    Err(other) => panic!("task {task}: {other}"),
                }
            }
            (ok, refused)
        }));
    }
    let (mut ok, mut refused) = (0, 0);
    for h in handles {
        let (o, r) = h.await.unwrap();
        ok += o;
        refused += r;
    }
    assert_eq!((ok, refused), (80, TASKS * EACH - 80));
    let stored = store.get_vial(vial.id).await.unwrap();
    assert_eq!(stored.balance_mg.to_string(), "0");
    assert_eq!(stored.status, VialStatus::Empty);
    let entries = store
        .all_ledger_entries(&LedgerFilter {
            vial_id: Some(vial.id),
            ..LedgerFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(entries.len(), 81);
    // In commit order the balance steps down by exactly 1.25 each time and never below 0.
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.vial_seq, i as i64 + 1);
        assert_eq!(e.balance_after_mg, d("100") - d("1.25") * Decimal::from(i as i64));
        assert!(!e.balance_after_mg.is_sign_negative() || e.balance_after_mg.is_zero());
    }
    let drawn: Decimal = entries[1..].iter().map(|e| e.quantity_mg).sum();
    assert_eq!(drawn, vial.content_mg - stored.balance_mg);
    assert_eq!(ledger_audit(&store).await.len(), 81);
    assert!(store.verify_audit_chain().await.unwrap().is_ok());
    assert!(store.verify_ledger().await.unwrap().problems.is_empty());
}

async fn destroy(
    store: &Store,
    by: &Who,
    vial: Uuid,
    mg: &str,
    witnesses: [&Who; 2],
) -> Result<LedgerEntry, StoreError> {
    let mut tx = store.begin().await?;
    let entry = tx
        .destroy_vial(
            &by.actor,
            &NewDestruction {
                vial_id: vial,
                quantity_mg: d(mg),
                witnesses: [&witnesses[0].person, &witnesses[1].person],
                method: "reverse distributor pickup, sealed bag",
                reason: "expired",
                location: "Clinic pharmacy safe",
                at: T0 + Duration::days(1),
                by: &by.person,
            },
        )
        .await?;
    tx.commit().await?;
    Ok(entry)
}

/// Destruction needs two witnesses, distinct from each other and from the actor, and the whole
/// remaining balance; waste needs a witness other than the actor. A destroyed vial is closed.
pub async fn ledger_destruction_requires_two_distinct_witnesses(store: Store) {
    let doc = who(&store, "ds_doc", Role::Physician).await;
    let w1 = who(&store, "ds_w1", Role::Nurse).await;
    let w2 = who(&store, "ds_w2", Role::Nurse).await;
    let vial = receive(&store, &doc, "50", "1", "L-DS").await;
    let before = entry_count(&store).await;
    assert_eq!(
        code(destroy(&store, &doc, vial.id, "50", [&doc, &w1]).await),
        "witness_is_actor"
    );
    assert_eq!(
        code(destroy(&store, &doc, vial.id, "50", [&w1, &doc]).await),
        "witness_is_actor"
    );
    assert_eq!(
        code(destroy(&store, &doc, vial.id, "50", [&w1, &w1]).await),
        "witnesses_not_distinct"
    );
    assert_eq!(
        code(destroy(&store, &doc, vial.id, "49.5", [&w1, &w2]).await),
        "destruction_differs_from_balance"
    );
    assert_eq!(entry_count(&store).await, before, "refusals write nothing");

    let destroyed = destroy(&store, &doc, vial.id, "50", [&w1, &w2]).await.unwrap();
    assert_eq!(destroyed.kind, EntryKind::Destruction);
    assert_eq!(destroyed.balance_after_mg, Decimal::ZERO);
    assert_eq!(destroyed.witnesses, vec![w1.person.clone(), w2.person.clone()]);
    assert_eq!(
        destroyed.method.as_deref(),
        Some("reverse distributor pickup, sealed bag")
    );
    assert_eq!(destroyed.location.as_deref(), Some("Clinic pharmacy safe"));
    let stored = store.get_vial(vial.id).await.unwrap();
    assert_eq!(
        (stored.status, stored.balance_mg),
        (VialStatus::Destroyed, Decimal::ZERO)
    );
    assert_eq!(
        code(destroy(&store, &doc, vial.id, "50", [&w1, &w2]).await),
        "vial_destroyed"
    );
    assert_eq!(
        code(draw(&store, &w1, vial.id, Uuid::now_v7(), "1").await),
        "vial_destroyed"
    );

    // Waste: the witness is someone else.
    let other = receive(&store, &doc, "10", "5", "L-DS2").await;
    let drawn = draw(&store, &w1, other.id, Uuid::now_v7(), "10").await.unwrap();
    assert_eq!(
        code(waste(&store, &w1, &w1, drawn.id, "1").await),
        "witness_is_actor"
    );
    waste(&store, &w1, &w2, drawn.id, "10").await.unwrap();
    // The database refuses a destruction row with one witness even without the store's checks.
    let raw = raw_exec(
        &store,
        "INSERT INTO ledger_entries (id, vial_id, vial_seq, kind, at, actor_id, actor_name, quantity_mg, \
         balance_change_mg, balance_after_mg, witness1_id, witness1_name, estimated) \
         VALUES (9999, $1, 99, 'destruction', CURRENT_TIMESTAMP, $2, 'x', '1', '-1', '0', $3, 'y', FALSE)",
        vec![
            Bind::Text(Some(other.id.to_string())),
            Bind::Text(Some(doc.person.id.to_string())),
            Bind::Text(Some(w1.person.id.to_string())),
        ],
    )
    .await;
    match raw {
        Err(e) => assert!(e.to_string().to_lowercase().contains("check constraint"), "{e}"),
        Ok(_) => panic!("a destruction with one witness was stored"),
    }
    assert!(store.verify_ledger().await.unwrap().problems.is_empty());
    assert!(store.verify_audit_chain().await.unwrap().is_ok());
}

/// Ledger entries and counts cannot be updated or deleted, vials cannot be deleted nor their
/// receipt facts changed, and no balance can be made negative, even with raw SQL. A balance changed
/// behind the ledger's back is caught by `verify_ledger`.
pub async fn ledger_entries_are_append_only(store: Store) {
    let doc = who(&store, "ao_doc", Role::Physician).await;
    let vial = receive(&store, &doc, "10", "10", "L-AO").await;
    let id = || vec![Bind::Text(Some(vial.id.to_string()))];
    let refused = |r: Result<u64, StoreError>, why: &str| match r {
        Err(e) => assert!(e.to_string().to_lowercase().contains(why), "{why}: {e}"),
        Ok(n) => panic!("{why}: {n} rows changed"),
    };
    refused(
        raw_exec(
            &store,
            "UPDATE ledger_entries SET quantity_mg = '1' WHERE vial_id = $1",
            id(),
        )
        .await,
        "append-only",
    );
    refused(
        raw_exec(&store, "DELETE FROM ledger_entries WHERE vial_id = $1", id()).await,
        "append-only",
    );
    refused(
        raw_exec(&store, "DELETE FROM ledger_vials WHERE id = $1", id()).await,
        "never deleted",
    );
    refused(
        raw_exec(&store, "UPDATE ledger_vials SET lot = 'X' WHERE id = $1", id()).await,
        "receipt record never changes",
    );
    refused(
        raw_exec(
            &store,
            "UPDATE ledger_vials SET balance_mg = '-1' WHERE id = $1",
            id(),
        )
        .await,
        "check constraint",
    );
    let count = {
        let mut tx = store.begin().await.unwrap();
        let c = tx
            .record_count(
                &doc.actor,
                &NewCount {
                    kind: CountKind::Count,
                    business_time: None,
                    note: None,
                    lines: &[CountLine {
                        vial_id: vial.id,
                        counted_mg: d("100"),
                        estimated: false,
                    }],
                    at: T0,
                    by: &doc.person,
                },
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();
        c
    };
    assert!(count.discrepancies.is_empty());
    let count_id = || vec![Bind::Text(Some(count.count.id.to_string()))];
    refused(
        raw_exec(
            &store,
            "UPDATE ledger_counts SET note = 'x' WHERE id = $1",
            count_id(),
        )
        .await,
        "append-only",
    );
    refused(
        raw_exec(&store, "DELETE FROM ledger_counts WHERE id = $1", count_id()).await,
        "append-only",
    );
    assert_eq!(entry_count(&store).await, 2);
    assert!(store.verify_ledger().await.unwrap().problems.is_empty());
    // The balance column must move, so it is not frozen; a change behind the ledger's back shows.
    raw_exec(
        &store,
        "UPDATE ledger_vials SET balance_mg = '99' WHERE id = $1",
        id(),
    )
    .await
    .unwrap();
    let report = store.verify_ledger().await.unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        report.problems[0].contains("balance 99 mg"),
        "{:?}",
        report.problems
    );
}

async fn count(
    store: &Store,
    by: &Who,
    kind: CountKind,
    lines: &[CountLine],
) -> Result<crate::CountRecorded, StoreError> {
    let mut tx = store.begin().await?;
    let c = tx
        .record_count(
            &by.actor,
            &NewCount {
                kind,
                business_time: (kind == CountKind::Inventory).then_some(BusinessTime::Close),
                note: Some("monthly count"),
                lines,
                at: T0 + Duration::days(2),
                by: &by.person,
            },
        )
        .await?;
    tx.commit().await?;
    Ok(c)
}

fn line(vial: Uuid, mg: &str, estimated: bool) -> CountLine {
    CountLine {
        vial_id: vial,
        counted_mg: d(mg),
        estimated,
    }
}

/// A count that differs from the book opens a discrepancy (and blocks draws from the vial) until a
/// physician resolves it with a note, optionally adjusting the book; an inventory counts every
/// vial on hand and says when it was taken; only opened vials may be estimated.
pub async fn ledger_counts_discrepancies_and_inventory(store: Store) {
    let doc = who(&store, "ct_doc", Role::Physician).await;
    let nurse = who(&store, "ct_nurse", Role::Nurse).await;
    let a = receive(&store, &doc, "10", "10", "L-A").await;
    let b = receive(&store, &doc, "50", "1", "L-B").await;
    draw(&store, &nurse, a.id, Uuid::now_v7(), "10").await.unwrap();

    let refusal = |r: Result<crate::CountRecorded, StoreError>| match r {
        Err(StoreError::Refused { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(
        refusal(count(&store, &doc, CountKind::Count, &[line(b.id, "50", true)]).await),
        "estimate_not_allowed"
    );
    assert_eq!(
        refusal(count(&store, &doc, CountKind::Inventory, &[line(a.id, "90", false)]).await),
        "inventory_incomplete"
    );
    let mut tx = store.begin().await.unwrap();
    let no_time = tx
        .record_count(
            &doc.actor,
            &NewCount {
                kind: CountKind::Inventory,
                business_time: None,
                note: None,
                lines: &[line(a.id, "90", false), line(b.id, "50", false)],
                at: T0,
                by: &doc.person,
            },
        )
        .await;
    assert!(matches!(no_time, Err(StoreError::Invalid { .. })), "{no_time:?}");
    drop(tx);
    assert!(matches!(
        count(
            &store,
            &doc,
            CountKind::Count,
            &[line(a.id, "1", false), line(a.id, "1", false)]
        )
        .await,
        Err(StoreError::Invalid { .. })
    ));
    // A refusal writes nothing even inside a transaction the caller goes on to commit.
    let mut tx = store.begin().await.unwrap();
    let late = tx
        .record_count(
            &doc.actor,
            &NewCount {
                kind: CountKind::Count,
                business_time: None,
                note: None,
                lines: &[line(a.id, "90", false), line(b.id, "50", true)],
                at: T0,
                by: &doc.person,
            },
        )
        .await;
    assert!(
        matches!(
            late,
            Err(StoreError::Refused {
                code: "estimate_not_allowed",
                ..
            })
        ),
        "{late:?}"
    );
    tx.commit().await.unwrap();
    assert!(
        store.list_counts(None).await.unwrap().is_empty(),
        "refused counts leave nothing"
    );
    assert_eq!(
        entry_count(&store).await,
        3,
        "two receipts, a draw and nothing else"
    );

    let c = count(&store, &doc, CountKind::Count, &[line(a.id, "89.5", true)])
        .await
        .unwrap();
    assert_eq!(c.entries.len(), 1);
    assert_eq!(c.entries[0].kind, EntryKind::Count);
    assert_eq!(c.entries[0].quantity_mg.to_string(), "89.5");
    assert_eq!(
        c.entries[0].difference_mg.map(|v| v.to_string()).as_deref(),
        Some("-0.5")
    );
    assert_eq!(
        c.entries[0].balance_after_mg.to_string(),
        "90",
        "a count does not move the book"
    );
    assert!(c.entries[0].estimated);
    let disc = &c.discrepancies[0];
    assert_eq!(
        (
            disc.book_mg.to_string(),
            disc.counted_mg.to_string(),
            disc.variance_mg.to_string()
        ),
        ("90".into(), "89.5".into(), "-0.5".into())
    );
    assert_eq!(disc.status, DiscrepancyStatus::Open);
    assert_eq!(store.list_discrepancies(true).await.unwrap().len(), 1);
    assert_eq!(
        code(draw(&store, &nurse, a.id, Uuid::now_v7(), "1").await),
        "open_discrepancy"
    );

    let resolve = |adjust: bool| {
        let store = store.clone();
        let (actor, person, id) = (doc.actor.clone(), doc.person.clone(), disc.id);
        async move {
            let mut tx = store.begin().await?;
            let r = tx
                .resolve_discrepancy(
                    &actor,
                    &DiscrepancyResolution {
                        id,
                        note: "spillage during the 10 mg draw, confirmed by the nurse",
                        adjust,
                        at: T0 + Duration::days(3),
                        by: &person,
                    },
                )
                .await?;
            tx.commit().await?;
            Ok::<_, StoreError>(r)
        }
    };
    let (resolved, adjustment) = resolve(true).await.unwrap();
    assert_eq!(resolved.status, DiscrepancyStatus::Resolved);
    assert_eq!(resolved.resolved_by.as_ref(), Some(&doc.person));
    let adjustment = adjustment.unwrap();
    assert_eq!(resolved.adjustment_entry_id, Some(adjustment.id));
    assert_eq!(
        (
            adjustment.kind,
            adjustment.balance_change_mg.to_string(),
            adjustment.balance_after_mg.to_string()
        ),
        (EntryKind::Adjustment, "-0.5".into(), "89.5".into())
    );
    assert!(matches!(
        resolve(false).await,
        Err(StoreError::Refused {
            code: "discrepancy_resolved",
            ..
        })
    ));
    assert!(store.list_discrepancies(true).await.unwrap().is_empty());
    assert_eq!(store.list_discrepancies(false).await.unwrap(), vec![resolved]);
    draw(&store, &nurse, a.id, Uuid::now_v7(), "1").await.unwrap();

    let inventory = count(
        &store,
        &doc,
        CountKind::Inventory,
        &[line(a.id, "88.5", false), line(b.id, "50", false)],
    )
    .await
    .unwrap();
    assert!(inventory.discrepancies.is_empty());
    let counts = store.list_counts(Some(CountKind::Inventory)).await.unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!(counts[0], inventory.count);
    assert_eq!(counts[0].business_time, Some(BusinessTime::Close));
    assert_eq!(store.list_counts(None).await.unwrap().len(), 2);
    let audit = store
        .list_audit(&AuditFilter {
            record_type: Some("ledger_discrepancy".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert!(audit[0].before_json.as_deref().unwrap().contains("\"open\""));
    assert!(store.verify_ledger().await.unwrap().problems.is_empty());
    assert!(store.verify_audit_chain().await.unwrap().is_ok());
}
