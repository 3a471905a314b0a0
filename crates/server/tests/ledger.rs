//! The controlled-substance ledger over HTTP (in process, real router, real store; PostgreSQL too
//! with `KETAFLOW_TEST_BACKEND=postgres`): a vial's whole life with exact decimal balances,
//! administration checked against the session's recorded dose, witnesses who confirm with their own
//! password, roles, overdraws that write nothing, concurrent draws, counts and discrepancies, the
//! biennial inventory report, and the inspector's CSV.

use ketaflow_test_support as common;

use std::sync::Arc;

use axum::http::StatusCode;
use common::{App, error_code, get, post, receipt, spawn_app, texts, witness};
use serde_json::{Value, json};

async fn receive(app: &App, doc: &str, containers: u32) -> Vec<String> {
    let (s, b) = post(app, doc, "/api/v1/ledger/vials", receipt(containers)).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b.as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

/// Baseline vitals, check-in, start, 40 minutes at the plan's 52.5 mg/h, stop: 35 mg given.
async fn infuse_and_stop(app: &App, nurse: &str, sid: &str) {
    common::infuse_and_stop(app, nurse, sid).await;
    let (_, session) = get(app, nurse, &format!("/api/v1/sessions/{sid}")).await;
    assert_eq!(session["given_mg"], 35.0);
}

async fn draw(app: &App, nurse: &str, vial: &str, sid: &str, mg: &str) -> (StatusCode, Value) {
    post(
        app,
        nurse,
        &format!("/api/v1/ledger/vials/{vial}/draws"),
        json!({"session_id": sid, "quantity_mg": mg}),
    )
    .await
}

async fn vial(app: &App, token: &str, id: &str) -> Value {
    let (s, b) = get(app, token, &format!("/api/v1/ledger/vials/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b
}

async fn ledger_entry_count(app: &App) -> usize {
    app.state
        .store
        .all_ledger_entries(&ketaflow_store::LedgerFilter::default())
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_vial_from_receipt_to_empty_with_exact_decimal_balances() {
    let app = spawn_app().await;
    let (doc, nurse) = (app.login("doc").await, app.login("nurse").await);
    let vials = receive(&app, &doc, 2).await;
    assert_eq!(vials.len(), 2, "one vial per container");
    let v = vial(&app, &nurse, &vials[0]).await;
    assert_eq!(v["vial"]["content_mg"], "100");
    assert_eq!(v["vial"]["balance_mg"], "100");
    assert_eq!(v["vial"]["status"], "sealed");
    assert_eq!(v["vial"]["supplier"]["dea_number"], "RW1234563");
    assert_eq!(v["vial"]["received_by"]["name"], "doc (doc)");
    assert_eq!(v["entries"][0]["kind"], "receipt");

    let sid = app.booked_session(&nurse, &doc, "Chair 2").await.1;
    // Quantities are decimal strings: a JSON number is refused before anything happens.
    let (s, b) = post(
        &app,
        &nurse,
        &format!("/api/v1/ledger/vials/{}/draws", vials[0]),
        json!({"session_id": sid, "quantity_mg": 40}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, b) = draw(&app, &nurse, &vials[0], &sid, "40.0001").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["error"]["field"], "quantity_mg");

    let (s, d1) = draw(&app, &nurse, &vials[0], &sid, "40").await;
    assert_eq!(s, StatusCode::CREATED, "{d1}");
    assert_eq!(
        (
            &d1["kind"],
            &d1["balance_change_mg"],
            &d1["balance_after_mg"],
            &d1["quantity_ml"]
        ),
        (&json!("draw"), &json!("-40"), &json!("60"), &json!("4"))
    );
    assert_eq!(d1["draw_outstanding_mg"], "40");
    assert_eq!(d1["patient_name"], "Test Patient");
    let draw_id = d1["id"].as_i64().unwrap();

    // Administration waits for the pump to stop: the dose given is final only then.
    let admin_path = format!("/api/v1/ledger/draws/{draw_id}/administrations");
    let (s, b) = post(&app, &nurse, &admin_path, json!({"quantity_mg": "35"})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    // The session is named as people name it (patient, chair, booked time), never by its id.
    assert_eq!(
        b["error"]["message"],
        "the session of Test Patient, Chair 2, booked 2026-11-26 10:00 is scheduled; administration is recorded \
         once the pump has stopped (stopped, recovering, discharged, aborted), so that the dose given is final"
    );
    infuse_and_stop(&app, &nurse, &sid).await;
    // Drawing for a session whose infusion is over is refused.
    let (s, b) = draw(&app, &nurse, &vials[0], &sid, "1").await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("the session of Test Patient, Chair 2, booked 2026-11-26 10:00 is "),
        "{b}"
    );

    // More than the pump record (35 mg) by more than 0.1 mg needs a reason; nothing is written.
    let before = (ledger_entry_count(&app).await, app.audit_count().await);
    let (s, b) = post(&app, &nurse, &admin_path, json!({"quantity_mg": "35.5"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(error_code(&b), "administered_exceeds_given");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("says 35 mg was given"),
        "{b}"
    );
    assert_eq!((ledger_entry_count(&app).await, app.audit_count().await), before);
    let (s, a1) = post(&app, &nurse, &admin_path, json!({"quantity_mg": "35.000"})).await;
    assert_eq!(s, StatusCode::CREATED, "{a1}");
    assert_eq!(
        (
            &a1["quantity_mg"],
            &a1["session_given_mg"],
            &a1["difference_mg"],
            &a1["draw_outstanding_mg"]
        ),
        (&json!("35"), &json!("35"), &json!("0"), &json!("5"))
    );
    assert_eq!(
        a1["balance_after_mg"], "60",
        "administration does not move the vial"
    );
    // The rest of the draw is wasted with a witness.
    let (s, w1) = post(
        &app,
        &nurse,
        &format!("/api/v1/ledger/draws/{draw_id}/waste"),
        json!({"quantity_mg": "5", "witness": witness("doc"), "reason": "unused remainder of the bag"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{w1}");
    assert_eq!(w1["draw_outstanding_mg"], "0");
    assert_eq!(w1["witnesses"][0]["name"], "doc (doc)");
    assert_eq!(w1["by"]["name"], "nurse (nurse)");
    // Nothing is left to account for.
    let (s, b) = post(&app, &nurse, &admin_path, json!({"quantity_mg": "0.001"})).await;
    assert_eq!(
        (s, error_code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "exceeds_draw")
    );

    let (s, account) = get(&app, &nurse, &format!("/api/v1/ledger/sessions/{sid}")).await;
    assert_eq!(s, StatusCode::OK, "{account}");
    assert_eq!(
        (
            &account["given_mg"],
            &account["drawn_mg"],
            &account["administered_mg"],
            &account["wasted_mg"],
            &account["outstanding_mg"],
            &account["difference_mg"],
            &account["reconciled"]
        ),
        (
            &json!("35"),
            &json!("40"),
            &json!("35"),
            &json!("5"),
            &json!("0"),
            &json!("0"),
            &json!(true)
        )
    );
    // The session record names the lot its drug came from: in the API, and on the session screen
    // (which prints as the record) for those who read the ledger; a viewer sees no ledger.
    assert_eq!(account["vials"].as_array().unwrap().len(), 1);
    assert_eq!(
        (&account["vials"][0]["lot"], &account["vials"][0]["expiry"]),
        (&json!("LOT-7731"), &json!("2027-06-30"))
    );
    let screen = app.browser("nurse").await.get(&format!("/sessions/{sid}")).await;
    assert!(
        screen.shows(r#"<h2 id="drug-h">Ketamine from the ledger</h2>"#),
        "{}",
        screen.html
    );
    assert!(screen.shows("<td>0409-2051-05</td><td data-lot>LOT-7731</td><td>2027-06-30</td>"));
    assert!(screen.shows(r#"<span class="badge okay">reconciled</span>"#));
    assert!(screen.shows(r#"<p class="print-only">Session record printed "#));
    let viewer = app.browser("viewer").await.get(&format!("/sessions/{sid}")).await;
    assert_eq!(viewer.status, StatusCode::OK);
    assert!(!viewer.shows("drug-h") && !viewer.shows("LOT-7731"));

    // An overdraw is a 422 that names the balance, and writes nothing.
    let sid2 = app.booked_session(&nurse, &doc, "Chair 2").await.1;
    let before = (ledger_entry_count(&app).await, app.audit_count().await);
    let (s, b) = draw(&app, &nurse, &vials[0], &sid2, "60.001").await;
    assert_eq!(
        (s, error_code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "insufficient_balance"),
        "{b}"
    );
    assert!(
        b["error"]["message"].as_str().unwrap().contains("holds 60 mg"),
        "{b}"
    );
    assert_eq!((ledger_entry_count(&app).await, app.audit_count().await), before);
    // 0.1 + 0.2 + 59.7 empties it exactly.
    for mg in ["0.1", "0.2"] {
        let (s, b) = draw(&app, &nurse, &vials[0], &sid2, mg).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let (s, last) = draw(&app, &nurse, &vials[0], &sid2, "59.7").await;
    assert_eq!(s, StatusCode::CREATED, "{last}");
    assert_eq!(last["balance_after_mg"], "0");
    let v = vial(&app, &nurse, &vials[0]).await;
    assert_eq!(
        (&v["vial"]["balance_mg"], &v["vial"]["status"]),
        (&json!("0"), &json!("empty"))
    );
    let balances = texts(&v["entries"], "balance_after_mg");
    assert_eq!(balances, ["100", "60", "60", "60", "59.9", "59.7", "0"]);
    let (_, listed) = get(&app, &nurse, "/api/v1/ledger/vials?status=sealed").await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let (s, _) = get(&app, &nurse, "/api/v1/ledger/vials?status=lost").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Every entry is in the audit chain, which verifies.
    let audit = app
        .state
        .store
        .list_audit(&ketaflow_store::AuditFilter {
            record_type: Some("ledger_entry".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), ledger_entry_count(&app).await);
    assert!(audit.iter().any(|a| a.action == "ledger.waste"));
    let (s, verify) = get(&app, &app.login("admin").await, "/api/v1/audit/verify").await;
    assert_eq!(s, StatusCode::OK, "{verify}");
    assert_eq!(verify["tables"]["ok"], true, "{verify}");
    assert!(app.state.store.verify_audit_chain().await.unwrap().is_ok());
    assert!(app.state.store.verify_ledger().await.unwrap().problems.is_empty());
}

#[tokio::test]
async fn a_witness_is_another_active_clinician_who_confirms_with_their_own_password() {
    let app = spawn_app().await;
    let (doc, nurse, admin) = (
        app.login("doc").await,
        app.login("nurse").await,
        app.login("admin").await,
    );
    let vials = receive(&app, &doc, 2).await;
    let sid = app.booked_session(&nurse, &doc, "Chair 2").await.1;
    let (_, d) = draw(&app, &nurse, &vials[0], &sid, "10").await;
    let waste_path = format!("/api/v1/ledger/draws/{}/waste", d["id"]);
    let entries = ledger_entry_count(&app).await;
    let refused = |body: Value| {
        let (app, nurse, path) = (&app, nurse.clone(), waste_path.clone());
        async move {
            let (s, b) = post(app, &nurse, &path, body).await;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
            error_code(&b).to_string()
        }
    };
    // Not yourself.
    assert_eq!(
        refused(json!({"quantity_mg": "1", "witness": witness("nurse")})).await,
        "witness_is_actor"
    );
    // A named witness without proof is not a witness; a wrong password counts as a failed login.
    assert_eq!(
        refused(json!({"quantity_mg": "1", "witness": {"username": "doc", "password": "guess-guess-guess"}}))
            .await,
        "witness_not_confirmed"
    );
    let doc_user = app
        .state
        .store
        .get_user_by_username("doc")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(doc_user.failed_logins, 1);
    assert_eq!(
        refused(json!({"quantity_mg": "1", "witness": {"username": "nobody", "password": "x"}})).await,
        "witness_not_confirmed"
    );
    // Only those who may record controlled-substance entries witness them.
    assert_eq!(
        refused(json!({"quantity_mg": "1", "witness": witness("viewer")})).await,
        "witness_not_authorised"
    );
    assert_eq!(
        refused(json!({"quantity_mg": "1", "witness": witness("admin")})).await,
        "witness_not_authorised"
    );
    // A witness is required.
    let (s, _) = post(&app, &nurse, &waste_path, json!({"quantity_mg": "1"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(ledger_entry_count(&app).await, entries, "refusals write nothing");
    let (s, b) = post(
        &app,
        &nurse,
        &waste_path,
        json!({"quantity_mg": "10", "witness": witness("doc")}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(
        app.state
            .store
            .get_user_by_username("doc")
            .await
            .unwrap()
            .unwrap()
            .failed_logins,
        0,
        "a confirmed witness's failures reset as at login"
    );

    // Destruction: two witnesses, other than the physician and each other.
    let destroy_path = format!("/api/v1/ledger/vials/{}/destruction", vials[1]);
    let destruction = |witnesses: Vec<Value>, mg: &str| {
        json!({"quantity_mg": mg, "method": "reverse distributor, sealed return bag", "reason": "expired",
               "location": "Clinic safe, room 2", "witnesses": witnesses})
    };
    let (s, b) = post(
        &app,
        &doc,
        &destroy_path,
        destruction(vec![witness("nurse")], "100"),
    )
    .await;
    assert_eq!(
        (s, &b["error"]["field"]),
        (StatusCode::BAD_REQUEST, &json!("witnesses")),
        "{b}"
    );
    let (s, b) = post(
        &app,
        &doc,
        &destroy_path,
        destruction(vec![witness("nurse"), witness("nurse")], "100"),
    )
    .await;
    // The refusal names the witness to change (the second naming), so a page puts it there.
    assert_eq!(
        (s, error_code(&b), &b["error"]["field"]),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "witnesses_not_distinct",
            &json!("witnesses[1].username")
        ),
        "{b}"
    );
    let (s, b) = post(
        &app,
        &doc,
        &destroy_path,
        destruction(vec![witness("nurse"), witness("doc")], "100"),
    )
    .await;
    assert_eq!(
        (s, error_code(&b), &b["error"]["field"]),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "witness_is_actor",
            &json!("witnesses[1].username")
        ),
        "{b}"
    );
    // A second nurse whose password the administrator chose must change it before witnessing.
    let (s, b) = post(
        &app,
        &admin,
        "/api/v1/users",
        json!({"username": "nurse2", "display_name": "Second Nurse", "role": "nurse", "password": "nurse2-secret-pass"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = post(
        &app,
        &doc,
        &destroy_path,
        destruction(vec![witness("nurse"), witness("nurse2")], "100"),
    )
    .await;
    assert_eq!(
        (s, error_code(&b)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "witness_password_change_required"
        )
    );
    let nurse2 = app.login("nurse2").await;
    let (s, b) = post(
        &app,
        &nurse2,
        "/api/v1/auth/password",
        json!({"current_password": "nurse2-secret-pass", "new_password": "nurse2-own-password"}),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let nurse2_witness = json!({"username": "nurse2", "password": "nurse2-own-password"});
    // The whole remaining balance, no more and no less.
    let (s, b) = post(
        &app,
        &doc,
        &destroy_path,
        destruction(vec![witness("nurse"), nurse2_witness.clone()], "99.9"),
    )
    .await;
    assert_eq!(
        (s, error_code(&b)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "destruction_differs_from_balance"
        )
    );
    // Nurses do not destroy stock.
    let (s, _) = post(
        &app,
        &nurse,
        &destroy_path,
        destruction(vec![witness("doc"), nurse2_witness.clone()], "100"),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, e) = post(
        &app,
        &doc,
        &destroy_path,
        destruction(vec![witness("nurse"), nurse2_witness], "100"),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    assert_eq!(
        (&e["kind"], &e["balance_after_mg"], &e["method"]),
        (
            &json!("destruction"),
            &json!("0"),
            &json!("reverse distributor, sealed return bag")
        )
    );
    let names = texts(&e["witnesses"], "name");
    assert_eq!(names, ["nurse (nurse)", "Second Nurse (nurse2)"]);
    assert_eq!(vial(&app, &doc, &vials[1]).await["vial"]["status"], "destroyed");
    let (s, b) = draw(&app, &nurse, &vials[1], &sid, "1").await;
    assert_eq!(
        (s, error_code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "vial_destroyed")
    );
    assert!(app.state.store.verify_audit_chain().await.unwrap().is_ok());
}

#[tokio::test]
async fn roles_read_write_and_manage_the_ledger_as_the_policy_says() {
    let app = spawn_app().await;
    let (doc, nurse, admin, viewer) = (
        app.login("doc").await,
        app.login("nurse").await,
        app.login("admin").await,
        app.login("viewer").await,
    );
    for token in [&nurse, &admin, &viewer] {
        let (s, _) = post(&app, token, "/api/v1/ledger/vials", receipt(1)).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "only physicians receive stock");
    }
    let (s, _, _) = app.call("GET", "/api/v1/ledger/vials", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let vials = receive(&app, &doc, 1).await;
    let sid = app.booked_session(&nurse, &doc, "Chair 2").await.1;
    for token in [&admin, &viewer] {
        let (s, b) = draw(&app, token, &vials[0], &sid, "1").await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    }
    let (s, b) = get(&app, &viewer, "/api/v1/ledger/vials").await;
    assert_eq!((s, error_code(&b)), (StatusCode::FORBIDDEN, "forbidden"));
    assert_eq!(
        b["error"]["message"],
        "your role (viewer) may not read the controlled-substance ledger"
    );
    for token in [&admin, &nurse, &doc] {
        let (s, _) = get(&app, token, "/api/v1/ledger/inventory").await;
        assert_eq!(s, StatusCode::OK);
    }
    let count = json!({"kind": "count", "vials": [{"vial_id": vials[0], "counted_mg": "100"}]});
    let (s, _) = post(&app, &nurse, "/api/v1/ledger/counts", count.clone()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "counts are the physician's");
    let (s, b) = post(&app, &doc, "/api/v1/ledger/counts", count).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = draw(&app, &doc, &vials[0], &sid, "2.5").await;
    assert_eq!(s, StatusCode::CREATED, "physicians draw too: {b}");
}

#[tokio::test]
async fn concurrent_draws_over_http_never_overdraw_or_lose_an_update() {
    let app = Arc::new(spawn_app().await);
    let (doc, nurse) = (app.login("doc").await, app.login("nurse").await);
    let vials = receive(&app, &doc, 1).await;
    let sid = app.booked_session(&nurse, &doc, "Chair 2").await.1;
    // 6 clients × 5 draws of 3.5 mg = 105 mg asked of a 100 mg vial: exactly 28 succeed.
    let mut handles = Vec::new();
    for _ in 0..6 {
        let (app, nurse, vial, sid) = (app.clone(), nurse.clone(), vials[0].clone(), sid.clone());
        handles.push(tokio::spawn(async move {
            let mut codes = Vec::new();
            for _ in 0..5 {
                let (s, b) = draw(&app, &nurse, &vial, &sid, "3.5").await;
                assert!(
                    s == StatusCode::CREATED
                        || (s == StatusCode::UNPROCESSABLE_ENTITY
                            && error_code(&b) == "insufficient_balance"),
                    "{s} {b}"
                );
                codes.push(s);
            }
            codes
        }));
    }
    let mut created = 0;
    for h in handles {
        created += h
            .await
            .unwrap()
            .into_iter()
            .filter(|s| *s == StatusCode::CREATED)
            .count();
    }
    assert_eq!(created, 28);
    let v = vial(&app, &nurse, &vials[0]).await;
    assert_eq!(v["vial"]["balance_mg"], "2");
    let balances: Vec<String> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["balance_after_mg"].as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = (0..=28)
        .map(|i| ketaflow_store::canonical(rust_decimal::Decimal::new(1000 - 35 * i, 1)))
        .collect();
    assert_eq!(
        balances, expected,
        "each draw applied to the balance the previous one left"
    );
    assert!(app.state.store.verify_ledger().await.unwrap().problems.is_empty());
    assert!(app.state.store.verify_audit_chain().await.unwrap().is_ok());
}

#[tokio::test]
async fn counts_open_discrepancies_and_the_biennial_inventory_report_says_what_is_due() {
    let app = spawn_app().await;
    let (doc, nurse) = (app.login("doc").await, app.login("nurse").await);
    let (s, report) = get(&app, &nurse, "/api/v1/ledger/inventory").await;
    assert_eq!(s, StatusCode::OK, "{report}");
    assert_eq!(
        (&report["due"], &report["last_inventory"]),
        (&json!(true), &Value::Null)
    );
    assert_eq!(
        report["message"],
        "no inventory has been taken: take the initial inventory now"
    );
    assert!(report["rule"].as_str().unwrap().contains("21 U.S.C. 827(a)"));
    assert!(report["retention"].as_str().unwrap().contains("21 CFR 1304.04"));

    let vials = receive(&app, &doc, 2).await;
    let sid = app.booked_session(&nurse, &doc, "Chair 2").await.1;
    let (s, _) = draw(&app, &nurse, &vials[0], &sid, "12.5").await;
    assert_eq!(s, StatusCode::CREATED);

    // An inventory counts every vial on hand and says when it was taken.
    let (s, b) = post(
        &app,
        &doc,
        "/api/v1/ledger/counts",
        json!({"kind": "inventory", "vials": [{"vial_id": vials[0], "counted_mg": "87.5"}]}),
    )
    .await;
    assert_eq!(
        (s, &b["error"]["field"]),
        (StatusCode::BAD_REQUEST, &json!("business_time"))
    );
    let (s, b) = post(
        &app,
        &doc,
        "/api/v1/ledger/counts",
        json!({"kind": "inventory", "business_time": "opening", "vials": [{"vial_id": vials[0], "counted_mg": "87.5"}]}),
    )
    .await;
    assert_eq!(
        (s, error_code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "inventory_incomplete")
    );
    // A sealed vial is counted exactly; only an opened one may be estimated.
    let (s, b) = post(
        &app,
        &doc,
        "/api/v1/ledger/counts",
        json!({"kind": "count", "vials": [{"vial_id": vials[1], "counted_mg": "100", "estimated": true}]}),
    )
    .await;
    assert_eq!(
        (s, error_code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "estimate_not_allowed")
    );

    // A count that differs from the book opens a discrepancy; the book does not move.
    let (s, c) = post(
        &app,
        &doc,
        "/api/v1/ledger/counts",
        json!({"kind": "count", "note": "end of day", "vials": [
            {"vial_id": vials[0], "counted_mg": "87.25", "estimated": true},
            {"vial_id": vials[1], "counted_mg": "100"}]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    assert_eq!(c["entries"].as_array().unwrap().len(), 2);
    assert_eq!(c["entries"][0]["difference_mg"], "-0.25");
    assert_eq!(c["entries"][0]["balance_after_mg"], "87.5");
    assert_eq!(c["discrepancies"].as_array().unwrap().len(), 1);
    let disc = &c["discrepancies"][0];
    assert_eq!(
        (
            &disc["book_mg"],
            &disc["counted_mg"],
            &disc["variance_mg"],
            &disc["status"]
        ),
        (&json!("87.5"), &json!("87.25"), &json!("-0.25"), &json!("open"))
    );
    let (_, open) = get(&app, &nurse, "/api/v1/ledger/discrepancies?open=true").await;
    assert_eq!(open.as_array().unwrap().len(), 1);
    let (s, b) = draw(&app, &nurse, &vials[0], &sid, "1").await;
    assert_eq!(
        (s, error_code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "open_discrepancy")
    );
    let resolve_path = format!(
        "/api/v1/ledger/discrepancies/{}/resolve",
        disc["id"].as_str().unwrap()
    );
    let (s, _) = post(
        &app,
        &nurse,
        &resolve_path,
        json!({"note": "found it", "adjust": true}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = post(&app, &doc, &resolve_path, json!({"note": "", "adjust": true})).await;
    assert_eq!(
        (s, &b["error"]["field"]),
        (StatusCode::BAD_REQUEST, &json!("note"))
    );
    let (s, r) = post(
        &app,
        &doc,
        &resolve_path,
        json!({"note": "residue in the vial's dead space; not a loss, no DEA Form 106", "adjust": true}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["discrepancy"]["status"], "resolved");
    assert_eq!(
        (
            &r["adjustment"]["kind"],
            &r["adjustment"]["balance_change_mg"],
            &r["adjustment"]["balance_after_mg"]
        ),
        (&json!("adjustment"), &json!("-0.25"), &json!("87.25"))
    );
    let (s, b) = post(
        &app,
        &doc,
        &resolve_path,
        json!({"note": "again", "adjust": false}),
    )
    .await;
    assert_eq!(
        (s, error_code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "discrepancy_resolved")
    );

    // A complete inventory at the close of business: the next is due 2 years later.
    let (s, inv) = post(
        &app,
        &doc,
        "/api/v1/ledger/counts",
        json!({"kind": "inventory", "business_time": "close", "vials": [
            {"vial_id": vials[0], "counted_mg": "87.25", "estimated": true},
            {"vial_id": vials[1], "counted_mg": "100"}]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{inv}");
    assert!(inv["discrepancies"].as_array().unwrap().is_empty());
    let (_, report) = get(&app, &nurse, "/api/v1/ledger/inventory").await;
    assert_eq!(report["last_inventory"]["id"], inv["id"]);
    assert_eq!(report["last_inventory"]["business_time"], "close");
    assert_eq!(report["next_due_by"], "2028-11-26");
    assert_eq!(
        (&report["due"], &report["due_soon"]),
        (&json!(false), &json!(false))
    );
    assert_eq!(report["days_until_due"], 731);
    assert_eq!(report["on_hand_mg"], "187.25");
    assert_eq!(report["on_hand"].as_array().unwrap().len(), 2);
    assert_eq!(report["open_discrepancies"], 0);
    assert_eq!(report["ledger_consistent"], true);
    // Two years on, it is due.
    app.advance(731 * 24 * 3600);
    let nurse = app.login("nurse").await;
    let (_, report) = get(&app, &nurse, "/api/v1/ledger/inventory").await;
    assert_eq!(
        (&report["due"], &report["days_until_due"]),
        (&json!(true), &json!(0))
    );
    assert!(
        report["message"]
            .as_str()
            .unwrap()
            .contains("was due by 2028-11-26"),
        "{report}"
    );
    assert!(app.state.store.verify_audit_chain().await.unwrap().is_ok());
}

#[tokio::test]
async fn the_inspector_csv_lists_every_entry_with_vial_quantities_balances_people_and_witnesses() {
    let app = spawn_app().await;
    let (doc, nurse, admin) = (
        app.login("doc").await,
        app.login("nurse").await,
        app.login("admin").await,
    );
    let vials = receive(&app, &doc, 1).await;
    let sid = app.booked_session(&nurse, &doc, "Chair 2").await.1;
    let (_, d) = draw(&app, &nurse, &vials[0], &sid, "40").await;
    infuse_and_stop(&app, &nurse, &sid).await;
    let draw_id = d["id"].as_i64().unwrap();
    let (s, _) = post(
        &app,
        &nurse,
        &format!("/api/v1/ledger/draws/{draw_id}/administrations"),
        json!({"quantity_mg": "35.05"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "within 0.1 mg of the pump record");
    let (s, _) = post(
        &app,
        &nurse,
        &format!("/api/v1/ledger/draws/{draw_id}/waste"),
        json!({"quantity_mg": "4.95", "witness": witness("doc"), "reason": "remainder, \"bag\", discarded"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);

    let (s, csv) = get(&app, &admin, "/api/v1/ledger/export").await;
    assert_eq!(s, StatusCode::OK, "{csv}");
    let text = csv.as_str().unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, ketaflow_server::api::ledger::EXPORT_COLUMNS);
    let rows: Vec<std::collections::HashMap<String, String>> = reader
        .records()
        .map(|r| {
            header
                .iter()
                .cloned()
                .zip(r.unwrap().iter().map(String::from))
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 4, "receipt, draw, administration, waste");
    let kinds: Vec<&str> = rows.iter().map(|r| r["kind"].as_str()).collect();
    assert_eq!(kinds, ["receipt", "draw", "administration", "waste"]);
    for r in &rows {
        assert_eq!(r["ndc"], "0409-2051-05");
        assert_eq!(r["lot"], "LOT-7731");
        assert_eq!(r["expiry"], "2027-06-30");
        assert_eq!(r["strength_mg_per_ml"], "10");
        assert_eq!(r["vial_id"], vials[0]);
    }
    assert_eq!(
        (
            rows[0]["supplier_dea_number"].as_str(),
            rows[0]["invoice_number"].as_str(),
            rows[0]["by"].as_str()
        ),
        ("RW1234563", "INV-2026-0042", "doc (doc)")
    );
    assert_eq!(rows[0]["balance_after_mg"], "100");
    assert_eq!(
        (
            rows[1]["quantity_mg"].as_str(),
            rows[1]["quantity_ml"].as_str(),
            rows[1]["balance_after_mg"].as_str()
        ),
        ("40", "4", "60")
    );
    assert_eq!(rows[1]["supplier"], "", "supplier columns belong to the receipt");
    assert_eq!(rows[1]["patient"], "Test Patient");
    assert_eq!(rows[1]["session_id"], sid);
    assert_eq!(
        (
            rows[2]["quantity_mg"].as_str(),
            rows[2]["session_given_mg"].as_str(),
            rows[2]["difference_mg"].as_str()
        ),
        ("35.05", "35", "0.05")
    );
    assert_eq!(rows[2]["draw_outstanding_mg"], "4.95");
    assert_eq!(
        (
            rows[3]["by"].as_str(),
            rows[3]["witness_1"].as_str(),
            rows[3]["witness_2"].as_str()
        ),
        ("nurse (nurse)", "doc (doc)", "")
    );
    assert_eq!(rows[3]["reason"], "remainder, \"bag\", discarded");
    assert_eq!(rows[3]["draw_outstanding_mg"], "0");
    assert_eq!(rows[3]["balance_after_mg"], "60");
    assert!(rows.iter().all(|r| r["at"].starts_with("2026-11-26T")));

    // A period with no entries has only the header; a period that ends before it starts is refused.
    let (s, empty) = get(
        &app,
        &admin,
        "/api/v1/ledger/export?from=2030-01-01&to=2030-12-31",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(empty.as_str().unwrap().lines().count(), 1);
    let (s, b) = get(
        &app,
        &admin,
        "/api/v1/ledger/export?from=2026-12-01&to=2026-11-01",
    )
    .await;
    assert_eq!(
        (s, &b["error"]["field"]),
        (StatusCode::BAD_REQUEST, &json!("from"))
    );
    // Each export is audited.
    let exports = app
        .state
        .store
        .list_audit(&ketaflow_store::AuditFilter {
            record_type: Some("ledger".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(exports.len(), 2);
    assert_eq!(exports[0].action, "ledger.export");
    assert!(
        exports[0]
            .after_json
            .as_deref()
            .unwrap()
            .contains("\"entries\":4")
    );
    assert!(app.state.store.verify_audit_chain().await.unwrap().is_ok());
}

#[tokio::test]
async fn every_ledger_write_refuses_bad_bodies_and_unknown_ids_and_writes_nothing() {
    let app = spawn_app().await;
    let (doc, nurse) = (app.login("doc").await, app.login("nurse").await);
    let vials = receive(&app, &doc, 1).await;
    let sid = app.booked_session(&nurse, &doc, "Chair 2").await.1;
    let (_, d) = draw(&app, &nurse, &vials[0], &sid, "10").await;
    let draw_id = d["id"].as_i64().unwrap().to_string();
    let unknown = uuid::Uuid::now_v7().to_string();
    // (path with {vial} or {draw} or {disc}, a body with a wrongly typed field, a valid body)
    let endpoints: Vec<(&str, Value, Value)> = vec![
        (
            "/api/v1/ledger/vials",
            json!({"ndc": 409_205_105, "product_name": "x"}),
            receipt(1),
        ),
        (
            "/api/v1/ledger/vials/{vial}/draws",
            json!({"session_id": sid, "quantity_mg": 1.5}),
            json!({"session_id": sid, "quantity_mg": "1"}),
        ),
        (
            "/api/v1/ledger/draws/{draw}/administrations",
            json!({"quantity_mg": ["1"]}),
            json!({"quantity_mg": "1"}),
        ),
        (
            "/api/v1/ledger/draws/{draw}/waste",
            json!({"quantity_mg": "1", "witness": "doc"}),
            json!({"quantity_mg": "1", "witness": witness("doc")}),
        ),
        (
            "/api/v1/ledger/vials/{vial}/destruction",
            json!({"quantity_mg": "100", "method": "m", "reason": "r", "location": "l", "witnesses": {"a": 1}}),
            json!({"quantity_mg": "100", "method": "m", "reason": "r", "location": "l",
                   "witnesses": [witness("nurse"), witness("viewer")]}),
        ),
        (
            "/api/v1/ledger/counts",
            json!({"kind": "count", "vials": [{"vial_id": vials[0], "counted_mg": 90}]}),
            json!({"kind": "count", "vials": [{"vial_id": unknown, "counted_mg": "90"}]}),
        ),
        (
            "/api/v1/ledger/discrepancies/{disc}/resolve",
            json!({"note": "n", "adjust": "yes"}),
            json!({"note": "a long enough note", "adjust": false}),
        ),
    ];
    let before = (ledger_entry_count(&app).await, app.audit_count().await);
    for (template, wrong_type, valid) in &endpoints {
        let path = template
            .replace("{vial}", &vials[0])
            .replace("{draw}", &draw_id)
            .replace("{disc}", &unknown);
        let (s, e) = post(&app, &doc, &path, wrong_type.clone()).await;
        assert_eq!(
            (s, error_code(&e)),
            (StatusCode::BAD_REQUEST, "bad_body"),
            "wrong type {path}: {e}"
        );
        let (s, e) = post(&app, &doc, &path, json!({"unexpected": 1})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "missing fields {path}: {e}");
        let (s, _) = post(&app, &doc, &path, json!({"padding": "x".repeat(20_000)})).await;
        assert!(s.is_client_error(), "oversized {path}: {s}");
        if template.contains('{') || template.ends_with("counts") {
            let unknown_path = template
                .replace("{vial}", &unknown)
                .replace("{draw}", "999999")
                .replace("{disc}", &unknown);
            let (s, e) = post(&app, &doc, &unknown_path, valid.clone()).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "unknown id {unknown_path}: {e}");
        }
    }
    // A draw for an unknown session is a 404 too.
    let (s, e) = draw(&app, &nurse, &vials[0], &unknown, "1").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{e}");
    assert_eq!(
        (ledger_entry_count(&app).await, app.audit_count().await),
        before,
        "no refused request wrote anything"
    );
}
