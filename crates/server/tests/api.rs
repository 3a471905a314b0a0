//! The API over HTTP (in process, through the real router and a real SQLite store): intake →
//! eligibility → plan → approval, the role matrix, bad input on every endpoint, login lockout.
//! Runs on PostgreSQL too when `KETAFLOW_TEST_POSTGRES_URL` is set (see `spawn_app`).

use ketaflow_test_support as common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{draft_plan, get, post, spawn_app, texts};
use ketaflow_server::policy::{Action, allowed};
use ketaflow_store::Role;
use serde_json::{Value, json};

#[tokio::test]
async fn intake_eligibility_plan_and_approval_without_override() {
    let app = spawn_app().await;
    let nurse = app.login("nurse").await;
    let doc = app.login("doc").await;
    let id = app.patient(&nurse, 70.0).await;

    let (s, e) = get(&app, &doc, &format!("/api/v1/patients/{id}/eligibility")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(e["status"], "eligible");
    // The indication is stored with the evidence grade in force when it was recorded.
    let (_, patient) = get(&app, &doc, &format!("/api/v1/patients/{id}")).await;
    assert_eq!(
        patient["indications"][0]["code"],
        "treatment_resistant_depression"
    );
    assert!(
        patient["indications"][0]["evidence_source"]
            .as_str()
            .unwrap()
            .contains("PMID 33174760")
    );
    assert_eq!(
        e["indications"][0]["evidence_grade"],
        "CANMAT level 1 (single infusion), level 3 (repeated infusions)"
    );

    let plan = draft_plan(&app, &nurse, &id).await;
    // 0.5 mg/kg × 70 kg over 40 min: 35 mg, 52.5 mg/h, 52.5 mL/h at 1 mg/mL, 35 mL (clinical.md §11).
    assert_eq!(plan["dose_mg"], 35.0);
    assert_eq!(plan["pump_ml_per_h"], 52.5);
    assert_eq!(plan["volume_ml"], 35.0);
    assert_eq!(plan["rate_mg_per_kg_per_h"], 0.75);
    assert_eq!(plan["library_version"], "2026.12.1");
    assert_eq!(plan["status"], "draft");
    assert!((plan["prediction"]["peak_cp_ug_per_ml"].as_f64().unwrap() - 0.253).abs() < 1e-3);
    assert!(
        plan["prediction"]["ce_below_threshold_from_min"]
            .as_f64()
            .unwrap()
            > 100.0
    );
    assert!(
        plan["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "within")
    );
    let plan_id = plan["id"].as_str().unwrap().to_string();

    // A nurse may not approve; a physician may.
    let (s, _) = post(
        &app,
        &nurse,
        &format!("/api/v1/plans/{plan_id}/approve"),
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, approved) = post(&app, &doc, &format!("/api/v1/plans/{plan_id}/approve"), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{approved}");
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["locked"], true);
    // Approved plans never change.
    let (s, body) = post(&app, &doc, &format!("/api/v1/plans/{plan_id}/approve"), json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");

    // Everything above is in the audit chain, which verifies.
    let admin = app.login("admin").await;
    let (s, v) = get(&app, &admin, "/api/v1/audit/verify").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["ok"], true);
    // Every record, reading and user the flow wrote agrees with the chain.
    assert_eq!(
        (
            v["tables"]["ok"].as_bool(),
            v["tables"]["problems"].as_array().map(Vec::len)
        ),
        (Some(true), Some(0)),
        "{v}"
    );
    let (_, entries) = get(&app, &admin, &format!("/api/v1/audit?record_id={plan_id}")).await;
    let actions = texts(&entries, "action");
    assert_eq!(actions, ["plan.create", "plan.approve"]);
}

#[tokio::test]
async fn a_protocol_for_another_indication_needs_a_physicians_reasoned_override() {
    let app = spawn_app().await;
    let nurse = app.login("nurse").await;
    let doc = app.login("doc").await;
    // A treatment-resistant depression patient planned on the bipolar-depression protocol.
    let id = app.patient(&nurse, 70.0).await;
    let (s, plan) = post(&app, &nurse, &format!("/api/v1/patients/{id}/plans"), json!({"protocol_id": "bipolar-depression", "concentration_mg_per_ml": 1.0, "planned_on": "2026-11-26"})).await;
    assert_eq!(s, StatusCode::CREATED, "{plan}");
    assert_eq!(
        plan["indication"],
        json!({"protocol_for": ["bipolar_depression"], "patient": ["treatment_resistant_depression"], "matches": false})
    );
    assert!(
        plan["warnings"].as_array().unwrap().iter().any(|w| w
            .as_str()
            .unwrap()
            .starts_with("protocol bipolar-depression is for bipolar_depression")),
        "{plan}"
    );
    let plan_id = plan["id"].as_str().unwrap();
    let approve = |body: serde_json::Value| {
        let app = &app;
        let doc = doc.clone();
        async move {
            app.call(
                "POST",
                &format!("/api/v1/plans/{plan_id}/approve"),
                Some(&doc),
                Some(body),
            )
            .await
        }
    };
    for body in [json!({}), json!({"indication_override": "bipolar?"})] {
        let (s, err, _) = approve(body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
        assert_eq!(err["error"]["code"], "indication_override_needed");
        assert_eq!(err["error"]["field"], "indication_override");
    }
    let reason = "bipolar II on the psychiatrist's review of 2026-11-20";
    let (s, approved, _) = approve(json!({"indication_override": reason})).await;
    assert_eq!(s, StatusCode::OK, "{approved}");
    assert_eq!(approved["indication_override"], reason);
    assert_eq!(approved["status"], "approved");

    // The protocol for the patient's own indication needs no override and refuses one.
    let fitting = draft_plan(&app, &doc, &id).await;
    assert_eq!(fitting["indication"]["matches"], true);
    let (s, err) = post(
        &app,
        &doc,
        &format!("/api/v1/plans/{}/approve", fitting["id"].as_str().unwrap()),
        json!({"indication_override": "not needed at all"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["error"]["code"], "needless_override");
}

#[tokio::test]
async fn soft_limit_breaches_need_reasoned_overrides_and_hard_limits_never_pass() {
    let app = spawn_app().await;
    let nurse = app.login("nurse").await;
    let doc = app.login("doc").await;
    let id = app.patient(&nurse, 100.0).await;
    let create = |dose: f64| json!({"protocol_id": "trd", "concentration_mg_per_ml": 1.0, "planned_on": "2026-11-26", "adjusted_dose_per_kg": dose});

    let (s, plan) = post(&app, &doc, &format!("/api/v1/patients/{id}/plans"), create(0.8)).await;
    assert_eq!(s, StatusCode::CREATED, "{plan}");
    let breaches: Vec<&str> = plan["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "soft_breach")
        .map(|c| c["limit"].as_str().unwrap())
        .collect();
    assert_eq!(
        breaches,
        ["dose_mg_per_kg", "rate_mg_per_kg_per_h", "mg_per_session"]
    );
    let plan_id = plan["id"].as_str().unwrap();
    let (s, err) = post(
        &app,
        &doc,
        &format!("/api/v1/plans/{plan_id}/approve"),
        json!({"overrides": []}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["error"]["code"], "override_needed");
    // The refusal names the limit whose override is missing (the first breached, in check order).
    assert_eq!(err["error"]["field"], "overrides.dose_mg_per_kg", "{err}");
    let overrides = json!({"overrides": [
        {"limit": "dose_mg_per_kg", "reason": "partial response at 0.5 mg/kg after six sessions"},
        {"limit": "rate_mg_per_kg_per_h", "reason": "same 40-minute duration, tolerated before"},
        {"limit": "mg_per_session", "reason": "follows from the escalated mg/kg dose"},
    ]});
    let (s, approved) = post(&app, &doc, &format!("/api/v1/plans/{plan_id}/approve"), overrides).await;
    assert_eq!(s, StatusCode::OK, "{approved}");
    assert_eq!(approved["overrides"].as_array().unwrap().len(), 3);

    // Beyond a hard limit the plan is refused where it is entered, naming every limit it breaks
    // with its value and what is allowed, and nothing is saved (a smart pump's library refuses a
    // programme beyond a hard limit at entry). The approval-time refusal of a plan that became a
    // hard breach on recomputation is the clinic's `a_hard_breach_never_passes_even_with_an_override`.
    let (_, before) = get(&app, &doc, &format!("/api/v1/patients/{id}/plans")).await;
    let (s, err) = post(&app, &doc, &format!("/api/v1/patients/{id}/plans"), create(1.2)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["error"]["code"], "hard_limit");
    assert_eq!(err["error"]["field"], "limits.dose_mg_per_kg");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("dose_mg_per_kg 1.200 mg/kg is above the hard limit (allowed: at most 1 mg/kg"),
        "{message}"
    );
    let (_, after) = get(&app, &doc, &format!("/api/v1/patients/{id}/plans")).await;
    assert_eq!(after, before, "a refused plan is saved nowhere");
}

#[tokio::test]
async fn contraindications_block_or_need_a_physicians_reasoned_acknowledgement() {
    let app = spawn_app().await;
    let nurse = app.login("nurse").await;
    let doc = app.login("doc").await;
    let id = app.patient(&nurse, 70.0).await;
    let plan = json!({"protocol_id": "trd", "concentration_mg_per_ml": 1.0, "planned_on": "2026-11-26"});

    app.call(
        "POST",
        &format!("/api/v1/patients/{id}/conditions"),
        Some(&nurse),
        Some(json!({"code": "pregnancy"})),
    )
    .await;
    let (_, e) = get(&app, &nurse, &format!("/api/v1/patients/{id}/eligibility")).await;
    assert_eq!(e["status"], "needs_acknowledgement");
    let (s, err) = post(
        &app,
        &nurse,
        &format!("/api/v1/patients/{id}/plans"),
        plan.clone(),
    )
    .await;
    assert_eq!(
        (s, err["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("acknowledgement_needed"))
    );

    let ack = |reason: &str| json!({"code": "condition.pregnancy", "reason": reason});
    let (s, _) = post(
        &app,
        &nurse,
        &format!("/api/v1/patients/{id}/eligibility/acknowledgements"),
        ack("obstetric review done"),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let before = app.audit_count().await;
    let (s, err) = post(
        &app,
        &doc,
        &format!("/api/v1/patients/{id}/eligibility/acknowledgements"),
        ack("ok"),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"]["field"], "reason");
    assert_eq!(
        app.audit_count().await,
        before,
        "a refused acknowledgement writes nothing"
    );
    let (s, e) = post(
        &app,
        &doc,
        &format!("/api/v1/patients/{id}/eligibility/acknowledgements"),
        ack("obstetric review: benefit outweighs risk"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert_eq!(e["status"], "eligible");
    let (s, _) = post(
        &app,
        &nurse,
        &format!("/api/v1/patients/{id}/plans"),
        plan.clone(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);

    // An absolute contraindication cannot be acknowledged and blocks plans.
    app.call(
        "POST",
        &format!("/api/v1/patients/{id}/medications"),
        Some(&nurse),
        Some(json!({"name": "theophylline", "class": "theophylline"})),
    )
    .await;
    let (_, e) = get(&app, &nurse, &format!("/api/v1/patients/{id}/eligibility")).await;
    assert_eq!(e["status"], "ineligible");
    assert_eq!(e["findings"][0]["code"], "medication.theophylline");
    assert_eq!(e["findings"][0]["source"], "Ketalar PI 7.1");
    let (s, err) = post(&app, &nurse, &format!("/api/v1/patients/{id}/plans"), plan).await;
    assert_eq!(
        (s, err["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("ineligible"))
    );
    let (s, err) = post(
        &app,
        &doc,
        &format!("/api/v1/patients/{id}/eligibility/acknowledgements"),
        json!({"code": "medication.theophylline", "reason": "I know what I am doing"}),
    )
    .await;
    assert_eq!(
        (s, err["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("not_relative"))
    );
}

/// One endpoint of the matrix: the action it needs and a request that would succeed if allowed.
struct Endpoint {
    method: &'static str,
    path: String,
    body: Option<Value>,
    action: Action,
}

#[tokio::test]
async fn every_role_and_endpoint_is_allowed_or_denied_as_the_policy_says() {
    let app = spawn_app().await;
    let tokens = [
        (Role::Administrator, app.login("admin").await),
        (Role::Physician, app.login("doc").await),
        (Role::Nurse, app.login("nurse").await),
        (Role::Viewer, app.login("viewer").await),
    ];
    let nurse = &tokens[2].1;
    let id = app.patient(nurse, 70.0).await;
    let plan = draft_plan(&app, nurse, &id).await;
    let plan_id = plan["id"].as_str().unwrap().to_string();
    // A spare account whose password the matrix resets (resetting revokes its sessions).
    let (_, spare) = post(&app, &tokens[0].1, "/api/v1/users", json!({"username": "spare", "display_name": "S", "role": "viewer", "password": "spare-long-password"})).await;
    let spare_id = spare["id"].as_str().unwrap().to_string();
    let (s, session) = post(
        &app,
        &tokens[2].1,
        &format!("/api/v1/patients/{id}/sessions"),
        json!({"plan_id": plan_id, "chair": "Chair 1", "scheduled_for": "2026-11-26T11:00:00Z"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{session}");
    let sid = session["id"].as_str().unwrap().to_string();
    // Two vials received by the physician, and a draw from the first for the session.
    let receipt = json!({"ndc": "0409-2051-05", "product_name": "Ketamine HCl injection", "strength_mg_per_ml": "10",
        "volume_ml": "10", "lot": "M-1", "expiry": "2027-06-30", "invoice_number": "INV-M",
        "supplier": {"name": "Wholesale", "address": "1 Depot Rd", "dea_number": "RW1234563"}});
    let mut two = receipt.clone();
    two["containers"] = json!(2);
    let (s, vials) = post(&app, &tokens[1].1, "/api/v1/ledger/vials", two).await;
    assert_eq!(s, StatusCode::CREATED, "{vials}");
    let (vid, vid2) = (
        vials[0]["id"].as_str().unwrap().to_string(),
        vials[1]["id"].as_str().unwrap().to_string(),
    );
    let (s, drawn) = post(
        &app,
        nurse,
        &format!("/api/v1/ledger/vials/{vid}/draws"),
        json!({"session_id": sid, "quantity_mg": "5"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{drawn}");
    let draw_id = drawn["id"].as_i64().unwrap();
    // (method, path, body, the action the policy decides it by): one endpoint a row.
    #[rustfmt::skip]
    let endpoints: Vec<(&str, String, Option<Value>, Action)> = vec![
        ("GET", "/api/v1/sessions".into(), None, Action::ReadClinical),
        ("GET", format!("/api/v1/sessions/{sid}"), None, Action::ReadClinical),
        ("GET", format!("/api/v1/sessions/{sid}/vitals"), None, Action::ReadClinical),
        ("GET", format!("/api/v1/sessions/{sid}/alarms"), None, Action::ReadClinical),
        ("GET", "/api/v1/board".into(), None, Action::ReadClinical),
        ("POST", format!("/api/v1/patients/{id}/sessions"), Some(json!({"plan_id": plan_id, "chair": "Chair 2", "scheduled_for": "2026-11-26T12:00:00Z"})), Action::RunSession),
        ("POST", format!("/api/v1/sessions/{sid}/vitals"), Some(json!({"readings": [{"idempotency_key": "matrix", "systolic_mmhg": 120, "diastolic_mmhg": 80}]})), Action::RunSession),
        ("POST", format!("/api/v1/sessions/{sid}/device-tokens"), Some(json!({"label": "monitor"})), Action::RunSession),
        ("POST", format!("/api/v1/sessions/{sid}/alarms/acknowledge-all"), Some(json!({"reason": "at the bedside"})), Action::RunSession),
        ("POST", format!("/api/v1/sessions/{sid}/assessments"), Some(json!({"escort_present": true})), Action::RunSession),
        ("GET", "/api/v1/patients".into(), None, Action::ReadClinical),
        ("GET", format!("/api/v1/patients/{id}"), None, Action::ReadClinical),
        ("GET", format!("/api/v1/patients/{id}/eligibility"), None, Action::ReadClinical),
        ("GET", format!("/api/v1/patients/{id}/plans"), None, Action::ReadClinical),
        ("GET", format!("/api/v1/plans/{plan_id}"), None, Action::ReadClinical),
        ("GET", "/api/v1/protocols".into(), None, Action::ReadClinical),
        ("GET", "/api/v1/protocols/trd".into(), None, Action::ReadClinical),
        ("POST", "/api/v1/patients".into(), Some(json!({"display_name": "M", "date_of_birth": "1990-01-01", "sex": "female"})), Action::WriteIntake),
        ("POST", format!("/api/v1/patients/{id}/weights"), Some(json!({"weight_kg": 70, "on": "2026-11-25"})), Action::WriteIntake),
        ("POST", format!("/api/v1/patients/{id}/heights"), Some(json!({"height_cm": 177.8, "on": "2026-11-25"})), Action::WriteIntake),
        ("POST", format!("/api/v1/patients/{id}/indications"), Some(json!({"code": "ptsd"})), Action::WriteIntake),
        ("POST", format!("/api/v1/patients/{id}/medications"), Some(json!({"name": "sertraline", "class": "other"})), Action::WriteIntake),
        ("POST", format!("/api/v1/patients/{id}/conditions"), Some(json!({"code": "moderate_hepatic_disease"})), Action::WriteIntake),
        ("POST", format!("/api/v1/patients/{id}/allergies"), Some(json!({"substance": "latex", "reaction": "rash", "severity": "mild"})), Action::WriteIntake),
        ("POST", format!("/api/v1/patients/{id}/baseline-bp"), Some(json!({"systolic_mmhg": 120, "diastolic_mmhg": 80, "on": "2026-11-25"})), Action::WriteIntake),
        ("POST", format!("/api/v1/patients/{id}/eligibility/acknowledgements"), Some(json!({"code": "condition.pregnancy", "reason": "not present, so refused after the check"})), Action::AcknowledgeContraindication),
        ("POST", format!("/api/v1/patients/{id}/plans"), Some(json!({"protocol_id": "trd", "concentration_mg_per_ml": 1.0, "planned_on": "2026-11-26"})), Action::CreatePlan),
        ("POST", format!("/api/v1/plans/{plan_id}/approve"), Some(json!({})), Action::ApprovePlan),
        ("GET", "/api/v1/users".into(), None, Action::ManageUsers),
        ("POST", "/api/v1/users".into(), Some(json!({"username": "new.user", "display_name": "N", "role": "viewer", "password": "long-enough-password"})), Action::ManageUsers),
        ("POST", format!("/api/v1/users/{spare_id}/password"), Some(json!({"password": "another-long-password"})), Action::ManageUsers),
        ("GET", "/api/v1/audit".into(), None, Action::ReadAudit),
        ("GET", "/api/v1/audit/verify".into(), None, Action::ReadAudit),
        ("GET", "/api/v1/ledger/vials".into(), None, Action::ReadLedger),
        ("GET", format!("/api/v1/ledger/vials/{vid}"), None, Action::ReadLedger),
        ("GET", "/api/v1/ledger/discrepancies".into(), None, Action::ReadLedger),
        ("GET", "/api/v1/ledger/inventory".into(), None, Action::ReadLedger),
        ("GET", format!("/api/v1/ledger/sessions/{sid}"), None, Action::ReadLedger),
        ("GET", "/api/v1/ledger/export".into(), None, Action::ReadLedger),
        ("POST", format!("/api/v1/ledger/vials/{vid}/draws"), Some(json!({"session_id": sid, "quantity_mg": "1"})), Action::WriteLedger),
        ("POST", format!("/api/v1/ledger/draws/{draw_id}/administrations"), Some(json!({"quantity_mg": "1"})), Action::WriteLedger),
        ("POST", format!("/api/v1/ledger/draws/{draw_id}/waste"), Some(json!({"quantity_mg": "0.5", "witness": {"username": "nurse", "password": "nurse-secret-pass"}})), Action::WriteLedger),
        ("POST", "/api/v1/ledger/vials".into(), Some(receipt.clone()), Action::ManageLedger),
        ("POST", "/api/v1/ledger/counts".into(), Some(json!({"kind": "count", "vials": [{"vial_id": vid2, "counted_mg": "100"}]})), Action::ManageLedger),
        ("POST", format!("/api/v1/ledger/discrepancies/{}/resolve", uuid::Uuid::now_v7()).to_string(), Some(json!({"note": "no such discrepancy", "adjust": false})), Action::ManageLedger),
        ("POST", format!("/api/v1/ledger/vials/{vid2}/destruction"), Some(json!({"quantity_mg": "100", "method": "m", "reason": "expired", "location": "safe", "witnesses": [{"username": "nurse", "password": "nurse-secret-pass"}, {"username": "viewer", "password": "viewer-secret-pass"}]})), Action::ManageLedger),
        ("POST", format!("/api/v1/patients/{id}/outcomes"), Some(json!({"instrument": "phq9", "items": [1, 1, 1, 1, 1, 1, 1, 1, 0], "context": "baseline"})), Action::WriteIntake),
        ("GET", format!("/api/v1/patients/{id}/outcomes"), None, Action::ReadClinical),
        ("GET", format!("/api/v1/patients/{id}/outcomes/schedule"), None, Action::ReadClinical),
        ("GET", "/api/v1/outcomes/due".into(), None, Action::ReadClinical),
        ("GET", "/api/v1/risk-alerts".into(), None, Action::ReadClinical),
        ("POST", format!("/api/v1/risk-alerts/{}/follow-up", uuid::Uuid::now_v7()).to_string(), Some(json!({"action": "safety_plan", "note": "no such alert: refused after the check"})), Action::WriteIntake),
        ("POST", format!("/api/v1/patients/{id}/questionnaire-links"), Some(json!({"instruments": ["phq9"]})), Action::WriteIntake),
        ("POST", format!("/api/v1/patients/{id}/safety-checks"), Some(json!({"kind": "urinary_symptoms", "on": "2026-11-25", "symptoms": []})), Action::WriteIntake),
        ("POST", format!("/api/v1/patients/{id}/opioid-use"), Some(json!({"on": "2026-11-25", "doses": []})), Action::WriteIntake),
        ("GET", format!("/api/v1/patients/{id}/safety"), None, Action::ReadClinical),
        ("GET", format!("/api/v1/patients/{id}/outcomes/export"), None, Action::ReadClinical),
        ("GET", "/api/v1/outcomes/export".into(), None, Action::ReadClinical),
        ("POST", format!("/api/v1/sessions/{sid}/vitals/999999/artefact"), Some(json!({"reason": "no such reading"})), Action::RunSession),
        ("POST", "/api/v1/devices".into(), Some(json!({"identifier": "AABBCCDDEEFF0011", "model": "VS-3", "serial": "S-1"})), Action::ManageDevices),
        ("GET", "/api/v1/devices".into(), None, Action::ReadClinical),
        ("POST", format!("/api/v1/devices/{}/chair", uuid::Uuid::now_v7()), Some(json!({"chair": "Chair 9"})), Action::RunSession),
    ];
    let endpoints: Vec<Endpoint> = endpoints
        .into_iter()
        .map(|(method, path, body, action)| Endpoint {
            method,
            path,
            body,
            action,
        })
        .collect();
    let mut checked = 0;
    for endpoint in &endpoints {
        // Unauthenticated: always 401.
        let (s, _, _) = app
            .call(endpoint.method, &endpoint.path, None, endpoint.body.clone())
            .await;
        assert_eq!(
            s,
            StatusCode::UNAUTHORIZED,
            "{} {}",
            endpoint.method,
            endpoint.path
        );
        for (role, token) in &tokens {
            let (s, body, _) = app
                .call(
                    endpoint.method,
                    &endpoint.path,
                    Some(token),
                    endpoint.body.clone(),
                )
                .await;
            if allowed(*role, endpoint.action) {
                assert!(
                    s != StatusCode::FORBIDDEN && s != StatusCode::UNAUTHORIZED,
                    "{role:?} {} {}: {s} {body}",
                    endpoint.method,
                    endpoint.path
                );
            } else {
                assert_eq!(
                    s,
                    StatusCode::FORBIDDEN,
                    "{role:?} {} {}: {body}",
                    endpoint.method,
                    endpoint.path
                );
                assert_eq!(body["error"]["code"], "forbidden");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, endpoints.len() * 4);
    // Every action of the policy is exercised by at least one endpoint.
    for action in Action::ALL {
        // Overrides need a session in a particular state: tests/sessions.rs exercises them by role.
        if action == Action::OverrideSession {
            continue;
        }
        assert!(
            endpoints.iter().any(|e| e.action == action),
            "{action:?} untested"
        );
    }
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_the_value_and_what_is_allowed_and_writes_nothing() {
    let app = spawn_app().await;
    let nurse = app.login("nurse").await;
    let doc = app.login("doc").await;
    let id = app.patient(&nurse, 70.0).await;
    let unknown = uuid::Uuid::now_v7();
    let before = app.audit_count().await;
    let cases: Vec<(&str, String, Value, StatusCode, &str)> = vec![
        (
            "POST",
            format!("/api/v1/patients/{id}/weights"),
            json!({"weight_kg": 700, "on": "2026-11-20"}),
            StatusCode::BAD_REQUEST,
            "weight_kg 700 is outside 2–350",
        ),
        (
            "POST",
            format!("/api/v1/patients/{id}/weights"),
            json!({"weight_kg": "heavy", "on": "2026-11-20"}),
            StatusCode::BAD_REQUEST,
            "weight_kg",
        ),
        (
            "POST",
            format!("/api/v1/patients/{id}/weights"),
            json!({"on": "2026-11-20"}),
            StatusCode::BAD_REQUEST,
            "missing field `weight_kg`",
        ),
        (
            "POST",
            format!("/api/v1/patients/{id}/weights"),
            json!({"weight_kg": 70, "on": "2027-01-01"}),
            StatusCode::BAD_REQUEST,
            "a date not in the future",
        ),
        (
            "POST",
            format!("/api/v1/patients/{id}/weights"),
            json!({"weight_kg": 70, "on": "yesterday"}),
            StatusCode::BAD_REQUEST,
            "a date YYYY-MM-DD",
        ),
        (
            "POST",
            format!("/api/v1/patients/{unknown}/weights"),
            json!({"weight_kg": 70, "on": "2026-11-20"}),
            StatusCode::NOT_FOUND,
            "not found",
        ),
        (
            "POST",
            format!("/api/v1/patients/{id}/heights"),
            json!({"height_cm": 10, "on": "2026-11-20"}),
            StatusCode::BAD_REQUEST,
            "height_cm 10 is outside 40–250",
        ),
        (
            "POST",
            format!("/api/v1/patients/{id}/indications"),
            json!({"code": "depression"}),
            StatusCode::BAD_REQUEST,
            "treatment_resistant_depression",
        ),
        (
            "POST",
            format!("/api/v1/patients/{id}/conditions"),
            json!({"code": "flu"}),
            StatusCode::BAD_REQUEST,
            "pregnancy",
        ),
        (
            "POST",
            format!("/api/v1/patients/{id}/medications"),
            json!({"name": "x", "class": "magic"}),
            StatusCode::BAD_REQUEST,
            "benzodiazepine",
        ),
        (
            "POST",
            format!("/api/v1/patients/{id}/medications"),
            json!({"name": "x", "class": "opioid", "daily_dose_mg": -5}),
            StatusCode::BAD_REQUEST,
            "daily_dose_mg -5",
        ),
        (
            "POST",
            format!("/api/v1/patients/{id}/baseline-bp"),
            json!({"systolic_mmhg": 120, "diastolic_mmhg": 130, "on": "2026-11-20"}),
            StatusCode::BAD_REQUEST,
            "below the systolic",
        ),
        (
            "POST",
            "/api/v1/patients".into(),
            json!({"display_name": "", "date_of_birth": "1990-01-01", "sex": "male"}),
            StatusCode::BAD_REQUEST,
            "display_name",
        ),
        (
            "POST",
            "/api/v1/patients".into(),
            json!({"display_name": "A", "date_of_birth": "1990-01-01", "sex": "other"}),
            StatusCode::BAD_REQUEST,
            "male, female",
        ),
        (
            "POST",
            "/api/v1/patients".into(),
            json!({"display_name": "A", "date_of_birth": "1990-01-01", "sex": "male", "ssn": "1"}),
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
        (
            "POST",
            format!("/api/v1/patients/{id}/plans"),
            json!({"protocol_id": "trd", "concentration_mg_per_ml": 50, "planned_on": "2026-11-26"}),
            StatusCode::BAD_REQUEST,
            "concentration_mg_per_ml 50 is outside 1, 10 mg/mL",
        ),
        (
            "POST",
            format!("/api/v1/patients/{id}/plans"),
            json!({"protocol_id": "propofol", "concentration_mg_per_ml": 1, "planned_on": "2026-11-26"}),
            StatusCode::BAD_REQUEST,
            "protocol_id",
        ),
        (
            "POST",
            format!("/api/v1/plans/{unknown}/approve"),
            json!({}),
            StatusCode::NOT_FOUND,
            "not found",
        ),
        (
            "POST",
            "/api/v1/users".into(),
            json!({"username": "x", "display_name": "X", "role": "viewer", "password": "long-enough-password"}),
            StatusCode::BAD_REQUEST,
            "username",
        ),
    ];
    for (method, path, body, status, message) in cases {
        let token = if path.contains("/plans") {
            &doc
        } else if path == "/api/v1/users" {
            &app.login("admin").await
        } else {
            &nurse
        };
        let (s, err, _) = app.call(method, &path, Some(token), Some(body.clone())).await;
        assert_eq!(s, status, "{path} {body}: {err}");
        let text = err.to_string();
        assert!(text.contains(message), "{path} {body}: {text}");
    }
    // A body that is not JSON, and one above the size limit.
    let request = Request::builder()
        .method("POST")
        .uri(format!("/api/v1/patients/{id}/weights"))
        .header(header::AUTHORIZATION, format!("Bearer {nurse}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    assert_eq!(app.raw(request).await.0, StatusCode::BAD_REQUEST);
    let huge = json!({"display_name": "A".repeat(40_000), "date_of_birth": "1990-01-01", "sex": "male"});
    let (s, _) = post(&app, &nurse, "/api/v1/patients", huge).await;
    assert!(s.is_client_error(), "{s}");
    // Sign-ins aside (audited, and not counted by audit_count), nothing was written.
    assert_eq!(app.audit_count().await, before);
}

#[tokio::test]
async fn repeated_wrong_passwords_slow_the_guesser_with_growing_delays() {
    let app = spawn_app().await;
    let wrong = json!({"username": "nurse", "password": "not-the-password"});
    // Three free failures, then the same client must wait 1 s, 2 s, 4 s... before its next try
    // on that account, answered 429 with Retry-After before any password is checked.
    for _ in 0..3 {
        let (s, e, _) = app
            .call("POST", "/api/v1/auth/login", None, Some(wrong.clone()))
            .await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("bad_credentials"))
        );
    }
    let (s, _, _) = app
        .call("POST", "/api/v1/auth/login", None, Some(wrong.clone()))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "the fourth failure sets a 1-s wait");
    let right = json!({"username": "nurse", "password": "nurse-secret-pass"});
    let (s, e, _) = app
        .call("POST", "/api/v1/auth/login", None, Some(right.clone()))
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("throttled"))
    );
    assert_eq!(
        e["error"]["message"],
        "too many failed password attempts; wait 1 s and try again"
    );
    app.advance(1);
    let (s, _, _) = app
        .call("POST", "/api/v1/auth/login", None, Some(wrong.clone()))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, e, _) = app
        .call("POST", "/api/v1/auth/login", None, Some(right.clone()))
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "now 2 s: {e}");
    app.advance(2);
    // After the wait, the right password signs in and clears the count.
    let (s, _, _) = app.call("POST", "/api/v1/auth/login", None, Some(right)).await;
    assert_eq!(s, StatusCode::OK);
    // Unknown users get the same answer as wrong passwords.
    let (s, e, _) = app
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "nobody", "password": "x"})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("bad_credentials"))
    );
}

#[tokio::test]
async fn api_tokens_work_as_bearer_and_logout_revokes_the_session() {
    let app = spawn_app().await;
    let session = app.login("doc").await;
    let (s, token) = post(
        &app,
        &session,
        "/api/v1/auth/tokens",
        json!({"label": "monitor bridge", "days": 30}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let bearer = token["token"].as_str().unwrap();
    let (s, me) = get(&app, bearer, "/api/v1/auth/me").await;
    assert_eq!((s, me["role"].as_str()), (StatusCode::OK, Some("physician")));
    let (s, _, cookie) = app
        .call("POST", "/api/v1/auth/logout", Some(&session), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(cookie.unwrap().contains("Max-Age=0"));
    let (s, _) = get(&app, &session, "/api/v1/auth/me").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // The cookie works too.
    let fresh = app.login("doc").await;
    let request = Request::builder()
        .uri("/api/v1/auth/me")
        .header(header::COOKIE, format!("ketaflow_session={fresh}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.raw(request).await.0, StatusCode::OK);

    // Signing in, creating a token and signing out are in the audit chain, on the user, naming
    // the token only by its hash's first 12 digits.
    let doc_id = me["id"].as_str().unwrap().to_string();
    let admin = app.login("admin").await;
    let (s, entries) = get(&app, &admin, &format!("/api/v1/audit?record_id={doc_id}")).await;
    assert_eq!(s, StatusCode::OK, "{entries}");
    let entries = entries.as_array().unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "user.create",
            "auth.login",
            "auth.token.create",
            "auth.logout",
            "auth.login"
        ]
    );
    let created: Value = serde_json::from_str(entries[2]["after_json"].as_str().unwrap()).unwrap();
    assert_eq!(created["label"], "monitor bridge");
    assert_eq!(created["kind"], "api");
    assert_eq!(created["token"].as_str().unwrap().len(), 12);
    assert!(
        !entries.iter().any(|e| e.to_string().contains(bearer)),
        "the token itself is never audited"
    );
    assert_eq!(entries[3]["actor_user_id"], doc_id.as_str());
}

#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    let app = spawn_app().await;
    let (s, doc, _) = app.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/patients",
        "/api/v1/patients/{id}/plans",
        "/api/v1/plans/{id}/approve",
        "/api/v1/audit/verify",
        "/api/v1/auth/login",
        "/api/v1/sessions/{id}/transitions",
        "/api/v1/sessions/{id}/vitals",
        "/api/v1/alarms/{id}/resolve",
        "/api/v1/sessions/{id}/alarms/acknowledge-all",
        "/api/v1/auth/tokens/{id}",
        "/api/v1/board/stream",
        "/api/v1/ledger/vials/{id}/draws",
        "/api/v1/ledger/draws/{id}/waste",
        "/api/v1/ledger/export",
        "/api/v1/patients/{id}/outcomes/schedule",
        "/api/v1/outcomes/due",
        "/api/v1/patients/{id}/allergies",
        "/api/v1/devices",
        "/api/v1/devices/{id}/chair",
        "/api/v1/sessions/{id}/vitals/{vital_id}/artefact",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    assert_eq!(paths.len(), 73);
}

#[tokio::test]
async fn every_write_endpoint_refuses_wrong_types_missing_fields_unknown_ids_and_oversized_bodies() {
    let app = spawn_app().await;
    let admin = app.login("admin").await;
    let doc = app.login("doc").await;
    let id = app.patient(&doc, 70.0).await;
    let plan = draft_plan(&app, &doc, &id).await;
    let plan_id = plan["id"].as_str().unwrap().to_string();
    let viewer_id = app.user_id(&admin, "viewer").await;
    let unknown = uuid::Uuid::now_v7().to_string();
    // (path with {id} for the record, the token to use, a body with a wrongly typed field)
    let endpoints: Vec<(String, &str, Value)> = vec![
        (
            "/api/v1/patients".into(),
            &doc,
            json!({"display_name": 5, "date_of_birth": "1990-01-01", "sex": "male"}),
        ),
        (
            "/api/v1/patients/{id}/weights".to_string(),
            &doc,
            json!({"weight_kg": "70", "on": "2026-11-20"}),
        ),
        (
            "/api/v1/patients/{id}/heights".to_string(),
            &doc,
            json!({"height_cm": true, "on": "2026-11-20"}),
        ),
        (
            "/api/v1/patients/{id}/indications".to_string(),
            &doc,
            json!({"code": 1}),
        ),
        (
            "/api/v1/patients/{id}/medications".to_string(),
            &doc,
            json!({"name": "x", "class": "other", "daily_dose_mg": "lots"}),
        ),
        (
            "/api/v1/patients/{id}/conditions".to_string(),
            &doc,
            json!({"code": ["pregnancy"]}),
        ),
        (
            "/api/v1/patients/{id}/allergies".to_string(),
            &doc,
            json!({"substance": "latex", "reaction": 7, "severity": "mild"}),
        ),
        (
            "/api/v1/patients/{id}/baseline-bp".to_string(),
            &doc,
            json!({"systolic_mmhg": "high", "diastolic_mmhg": 80, "on": "2026-11-20"}),
        ),
        (
            "/api/v1/patients/{id}/eligibility/acknowledgements".to_string(),
            &doc,
            json!({"code": "condition.pregnancy", "reason": 7}),
        ),
        (
            "/api/v1/patients/{id}/plans".to_string(),
            &doc,
            json!({"protocol_id": "trd", "concentration_mg_per_ml": "1", "planned_on": "2026-11-26"}),
        ),
        (
            "/api/v1/plans/{plan}/approve".to_string(),
            &doc,
            json!({"overrides": "none"}),
        ),
        (
            "/api/v1/users".into(),
            &admin,
            json!({"username": "abc", "display_name": "A", "role": "viewer", "password": 123456789012_i64}),
        ),
        (
            "/api/v1/users/{user}/disabled".to_string(),
            &admin,
            json!({"disabled": "yes"}),
        ),
        (
            "/api/v1/users/{user}/password".to_string(),
            &admin,
            json!({"password": null}),
        ),
        (
            "/api/v1/auth/tokens".into(),
            &doc,
            json!({"label": "x", "days": "30"}),
        ),
    ];
    let before = app.audit_count().await;
    for (template, token, wrong_type) in &endpoints {
        let path = template
            .replace("{id}", &id)
            .replace("{plan}", &plan_id)
            .replace("{user}", &viewer_id);
        let (s, e) = post(&app, token, &path, wrong_type.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "wrong type {path}: {e}");
        assert_eq!(e["error"]["code"], "bad_body", "{path}");
        let (s, e) = post(&app, token, &path, json!({"unexpected": 1})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "missing fields {path}: {e}");
        let (s, _) = post(&app, token, &path, json!({"padding": "x".repeat(20_000)})).await;
        assert!(s.is_client_error(), "oversized {path}: {s}");
        if template.contains('{') {
            let unknown_path = template
                .replace("{id}", &unknown)
                .replace("{plan}", &unknown)
                .replace("{user}", &unknown);
            // A valid-looking body for the unknown record: the id is checked, not the body.
            let (s, e) = post(&app, token, &unknown_path, valid_body(template)).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "unknown id {unknown_path}: {e}");
        }
    }
    assert_eq!(
        app.audit_count().await,
        before,
        "no refused request wrote anything"
    );
}

fn valid_body(template: &str) -> Value {
    match template.rsplit('/').next().unwrap() {
        "weights" => json!({"weight_kg": 70, "on": "2026-11-20"}),
        "heights" => json!({"height_cm": 170, "on": "2026-11-20"}),
        "indications" => json!({"code": "ptsd"}),
        "medications" => json!({"name": "x", "class": "other"}),
        "conditions" => json!({"code": "pregnancy"}),
        "allergies" => json!({"substance": "latex", "reaction": "rash", "severity": "mild"}),
        "baseline-bp" => json!({"systolic_mmhg": 120, "diastolic_mmhg": 80, "on": "2026-11-20"}),
        "acknowledgements" => json!({"code": "condition.pregnancy", "reason": "long enough reason"}),
        "plans" => json!({"protocol_id": "trd", "concentration_mg_per_ml": 1.0, "planned_on": "2026-11-26"}),
        "approve" => json!({}),
        "disabled" => json!({"disabled": true}),
        "password" => json!({"password": "a-long-enough-password"}),
        other => panic!("no valid body for {other}"),
    }
}

#[tokio::test]
async fn a_password_chosen_by_someone_else_must_be_changed_before_anything_else() {
    let app = spawn_app().await;
    let admin = app.login("admin").await;
    let (s, created) = post(&app, &admin, "/api/v1/users", json!({"username": "newdoc", "display_name": "New Doc", "role": "physician", "password": "initial-password-123"})).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(created["must_change_password"], true);
    let (s, user, cookie) = app
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "newdoc", "password": "initial-password-123"})),
        )
        .await;
    assert_eq!(
        (s, user["must_change_password"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    let token = cookie
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    let (s, e) = get(&app, &token, "/api/v1/patients").await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("password_change_required"))
    );
    // Wrong current password, too short, or unchanged: refused.
    let change = |current: &str, new: &str| json!({"current_password": current, "new_password": new});
    let (s, _) = post(
        &app,
        &token,
        "/api/v1/auth/password",
        change("wrong", "a-brand-new-password"),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = post(
        &app,
        &token,
        "/api/v1/auth/password",
        change("initial-password-123", "short"),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = post(
        &app,
        &token,
        "/api/v1/auth/password",
        change("initial-password-123", "initial-password-123"),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = post(
        &app,
        &token,
        "/api/v1/auth/password",
        change("initial-password-123", "a-brand-new-password"),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = get(&app, &token, "/api/v1/patients").await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = app
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "newdoc", "password": "a-brand-new-password"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
}

/// Twenty clinicians record a weight for one patient at the same moment. Each write reads the
/// record and stores it with a version check, so all but one may find the record changed under
/// them: those answer 409 with the version stored now (never 500), and every weight that was
/// acknowledged is in the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_writes_to_one_patient_give_200_or_409_and_lose_nothing_acknowledged() {
    let app = std::sync::Arc::new(spawn_app().await);
    let nurse = app.login("nurse").await;
    let id = app.patient(&nurse, 70.0).await;
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..20 {
        let (app, nurse, id) = (app.clone(), nurse.clone(), id.clone());
        writes.spawn(async move {
            let weight = 50.0 + f64::from(i);
            let (s, body) = post(
                &app,
                &nurse,
                &format!("/api/v1/patients/{id}/weights"),
                json!({"weight_kg": weight, "on": "2026-11-21"}),
            )
            .await;
            (weight, s, body)
        });
    }
    let mut acknowledged = Vec::new();
    let mut conflicts = 0;
    while let Some(done) = writes.join_next().await {
        let (weight, s, body) = done.unwrap();
        match s {
            StatusCode::OK => acknowledged.push(weight),
            StatusCode::CONFLICT => {
                conflicts += 1;
                assert_eq!(body["error"]["code"], "stale_version", "{body}");
                assert!(body["error"]["current_version"].as_i64().unwrap() >= 1, "{body}");
            }
            other => panic!("weight {weight}: {other} {body}"),
        }
    }
    assert_eq!(acknowledged.len() + conflicts, 20);
    assert!(!acknowledged.is_empty(), "at least one write wins");
    let (_, patient) = get(&app, &nurse, &format!("/api/v1/patients/{id}")).await;
    let stored: Vec<f64> = patient["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["value"].as_f64().unwrap())
        .collect();
    for weight in &acknowledged {
        assert!(
            stored.contains(weight),
            "acknowledged {weight} kg is stored: {stored:?}"
        );
    }
    // The patient's first weight (70 kg) plus exactly the acknowledged ones.
    assert_eq!(stored.len(), 1 + acknowledged.len(), "{stored:?}");
}

/// What the router and its layers refuse answers in the same JSON shape as a handler's refusal:
/// a path id that is not a UUID, a malformed query, an unknown route, a wrong method, a wrong
/// content type, malformed JSON and a body over the limit.
#[tokio::test]
async fn every_rejection_is_the_uniform_json_error_body() {
    let app = spawn_app().await;
    let doc = app.login("doc").await;
    let id = app.patient(&doc, 70.0).await;
    let check = |what: &str, s: StatusCode, body: &Value, status: StatusCode, code: &str| {
        assert_eq!(s, status, "{what}: {body}");
        assert_eq!(body["error"]["code"], code, "{what}: {body}");
        assert!(
            body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {body}"
        );
    };
    let (s, body) = get(&app, &doc, "/api/v1/patients/not-a-uuid").await;
    check("bad path id", s, &body, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(body["error"]["field"], "id");
    assert_eq!(body["error"]["value"], "not-a-uuid");
    let (s, body) = get(&app, &doc, "/api/v1/sessions?active=perhaps").await;
    check("bad query", s, &body, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(body["error"]["field"], "query");
    let (s, body) = get(&app, &doc, "/api/v1/no-such-thing").await;
    check("unknown route", s, &body, StatusCode::NOT_FOUND, "no_route");
    let (s, body, _) = app
        .call("DELETE", &format!("/api/v1/patients/{id}"), Some(&doc), None)
        .await;
    check(
        "wrong method",
        s,
        &body,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    let request = |content_type: &str, body: String| {
        axum::http::Request::builder()
            .method("POST")
            .uri(format!("/api/v1/patients/{id}/weights"))
            .header(axum::http::header::AUTHORIZATION, format!("Bearer {doc}"))
            .header(axum::http::header::CONTENT_TYPE, content_type)
            .body(axum::body::Body::from(body))
            .unwrap()
    };
    let (s, body, _) = app.raw(request("text/plain", "70 kg".into())).await;
    check(
        "wrong content type",
        s,
        &body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "not_json",
    );
    let (s, body, _) = app
        .raw(request("application/json", "{\"weight_kg\": 70,".into()))
        .await;
    check("malformed JSON", s, &body, StatusCode::BAD_REQUEST, "bad_body");
    let (s, body) = post(&app, &doc, "/api/v1/ledger/draws/abc/waste", json!({})).await;
    check(
        "bad draw number",
        s,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_field",
    );
    assert_eq!(body["error"]["field"], "id");
    assert!(
        body["error"]["allowed"]
            .as_str()
            .unwrap()
            .contains("whole number"),
        "a draw is numbered, not a UUID: {body}"
    );
    let oversized = format!("{{\"padding\": \"{}\"}}", "x".repeat(40_000));
    let (s, body, _) = app.raw(request("application/json", oversized)).await;
    check(
        "oversized body",
        s,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
    );
}

/// PostgreSQL's text and jsonb cannot hold U+0000, and SQLite's LIKE stops reading a pattern at
/// it (a search for it matched every patient): wherever text enters, a NUL is a 400 naming the
/// field, on both backends, and nothing is stored.
#[tokio::test]
async fn text_holding_a_nul_is_refused_naming_the_field_and_stores_nothing() {
    let app = spawn_app().await;
    let doc = app.login("doc").await;
    let id = app.patient(&doc, 70.0).await;
    let refused = |what: &str, s: StatusCode, body: &Value, field: &str| {
        assert_eq!(s, StatusCode::BAD_REQUEST, "{what}: {body}");
        assert_eq!(body["error"]["code"], "invalid_field", "{what}: {body}");
        assert_eq!(body["error"]["field"], field, "{what}: {body}");
        assert!(
            body["error"]["allowed"].as_str().unwrap().contains("U+0000"),
            "{what}: {body}"
        );
    };
    let (s, body) = post(&app, &doc, "/api/v1/patients", json!({"display_name": "Ann\u{0}Smith", "mrn": "N-1", "date_of_birth": "1986-01-01", "sex": "female"})).await;
    refused("patient name", s, &body, "display_name");
    let (s, body) = post(
        &app,
        &doc,
        &format!("/api/v1/patients/{id}/medications"),
        json!({"name": "sertraline", "class": "ssri\u{0}"}),
    )
    .await;
    refused("medication class", s, &body, "class");
    let (s, body) = get(&app, &doc, "/api/v1/patients?search=%00").await;
    refused("search", s, &body, "search");
    let (s, body) = post(
        &app,
        &doc,
        "/api/v1/auth/tokens",
        json!({"label": "\u{0}", "days": 1}),
    )
    .await;
    refused("token label", s, &body, "label");
    let (s, body, _) = app
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "doc\u{0}", "password": "x"})),
        )
        .await;
    refused("login", s, &body, "username");
    // Nothing was stored: the one patient, and a search for her still finds only her.
    let (s, body) = get(&app, &doc, "/api/v1/patients").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body.as_array().unwrap().len(), 1, "{body}");
    // The app refuses it too, for doors that do not read JSON (the pages, soon HL7).
    let user = app
        .state
        .store
        .get_user_by_username("doc")
        .await
        .unwrap()
        .unwrap();
    let caller = ketaflow_app::policy::Caller { user };
    let err = app.state.patients(&caller, Some("\0"), 10).await.unwrap_err();
    assert!(
        matches!(&err, ketaflow_app::AppError::InvalidField { field, .. } if field == "search"),
        "{err:?}"
    );
}

/// The OpenAPI document is the API's contract: a redesign below the handlers must leave it as it
/// was, and a change to it is made on purpose. The committed copy is `docs/openapi.json`; after an
/// intended change, regenerate it with `KETAFLOW_BLESS_OPENAPI=1 cargo test -p ketaflow-server
/// --test api the_openapi_document_is_the_committed_one` and review the diff.
#[test]
fn the_openapi_document_is_the_committed_one() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let now = ketaflow_server::openapi().to_pretty_json().unwrap();
    if std::env::var_os("KETAFLOW_BLESS_OPENAPI").is_some() {
        std::fs::write(&path, &now).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap();
    let parse = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
    assert!(
        parse(&committed) == parse(&now),
        "the OpenAPI document differs from docs/openapi.json; if the change is intended, bless it (see this test's comment)"
    );
}

/// "Today" is the clinic's date: at 00:30 on 27 November in Tokyo it is still the 26th in UTC,
/// and a weight measured on the 27th is today's there, not a future one.
#[tokio::test]
async fn a_date_is_today_by_the_clinics_calendar_not_utcs() {
    let tokyo = common::spawn_app_with(ketaflow_server::Settings {
        time_zone: ketaflow_app::clinic_time::ClinicZone::named("Asia/Tokyo").unwrap(),
        ..ketaflow_server::Settings::default()
    })
    .await;
    // The test clock starts at 2026-11-26 10:00Z (19:00 in Tokyo); 15:30Z is 00:30 on the 27th.
    tokyo.advance(5 * 3600 + 30 * 60);
    let nurse = tokyo.login("nurse").await;
    let id = tokyo.patient(&nurse, 70.0).await;
    let (s, b) = post(
        &tokyo,
        &nurse,
        &format!("/api/v1/patients/{id}/weights"),
        json!({"weight_kg": 71, "on": "2026-11-27"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = post(
        &tokyo,
        &nurse,
        &format!("/api/v1/patients/{id}/weights"),
        json!({"weight_kg": 71, "on": "2026-11-28"}),
    )
    .await;
    assert_eq!(
        (s, b["error"]["allowed"].as_str()),
        (StatusCode::BAD_REQUEST, Some("a date not in the future")),
        "{b}"
    );
    // The same instant in a UTC clinic: the 27th has not begun.
    let utc = spawn_app().await;
    utc.advance(5 * 3600 + 30 * 60);
    let nurse = utc.login("nurse").await;
    let id = utc.patient(&nurse, 70.0).await;
    let (s, _) = post(
        &utc,
        &nurse,
        &format!("/api/v1/patients/{id}/weights"),
        json!({"weight_kg": 71, "on": "2026-11-27"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}
