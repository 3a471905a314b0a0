//! Measurement-based care over HTTP: questionnaires scored exactly, outcomes over the course
//! (response, remission, rapid relief), suicide-risk alerts raised live and closed only by a
//! documented follow-up, and single-use expiring links for answering from home.

use ketaflow_test_support as common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{App, EventStream, spawn_app, texts};
use http_body_util::BodyExt;
use ketaflow_server::router;
use serde_json::{Value, json};
use tower::ServiceExt;

const HOUR: i64 = 3600;

fn phq9(items: [u8; 9], context: &str) -> Value {
    json!({"instrument": "phq9", "items": items, "context": context})
}

async fn post(app: &App, token: Option<&str>, path: &str, body: Value) -> (StatusCode, Value) {
    let (s, b, _) = app.call("POST", path, token, Some(body)).await;
    (s, b)
}

/// A patient whose first infusion starts now; returns the patient id.
async fn patient_with_first_infusion(app: &App, nurse: &str, doc: &str) -> String {
    let pid = app.patient(nurse, 70.0).await;
    let (_, plan) = post(
        app,
        Some(nurse),
        &format!("/api/v1/patients/{pid}/plans"),
        json!({"protocol_id": "trd", "concentration_mg_per_ml": 1.0, "planned_on": "2026-11-26"}),
    )
    .await;
    let plan_id = plan["id"].as_str().unwrap();
    post(
        app,
        Some(doc),
        &format!("/api/v1/plans/{plan_id}/approve"),
        json!({}),
    )
    .await;
    let (_, session) = post(
        app,
        Some(nurse),
        &format!("/api/v1/patients/{pid}/sessions"),
        json!({"plan_id": plan_id, "chair": "Chair 1", "scheduled_for": "2026-11-26T10:00:00Z"}),
    )
    .await;
    let sid = session["id"].as_str().unwrap();
    post(
        app,
        Some(nurse),
        &format!("/api/v1/sessions/{sid}/vitals"),
        json!({"readings": [{"idempotency_key": "b", "systolic_mmhg": 120, "diastolic_mmhg": 80}]}),
    )
    .await;
    post(app, Some(nurse), &format!("/api/v1/sessions/{sid}/transitions"), json!({"event": "check_in", "checks":
        {"fasting_confirmed": true, "escort_confirmed": true, "consent_on_file": true, "questionnaire_answered": true}})).await;
    let (s, b) = post(
        app,
        Some(nurse),
        &format!("/api/v1/sessions/{sid}/transitions"),
        json!({"event": "start"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    pid
}

#[tokio::test]
async fn the_baseline_is_the_last_score_in_the_protocols_window_not_a_screening_score() {
    let app = spawn_app().await;
    let nurse = app.login("nurse").await;
    let doc = app.login("doc").await;
    // First infusion started 2026-11-26 10:00 UTC; the TRD protocol's window opens 3 days before.
    let pid = patient_with_first_infusion(&app, &nurse, &doc).await;
    let record = |items: [u8; 9], context: &str, at: &str| json!({"instrument": "phq9", "items": items, "context": context, "answered_at": at});
    let trajectory = |o: &serde_json::Value| {
        o["trajectories"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["instrument"] == "phq9")
            .unwrap()
            .clone()
    };
    // Screening weeks before: PHQ-9 24. An hour after the infusion started: 10.
    app.advance(HOUR);
    for (items, context, at) in [
        ([3, 3, 3, 3, 3, 3, 3, 3, 0], "screening", "2026-11-01T09:00:00Z"),
        ([1, 1, 1, 1, 1, 1, 2, 2, 0], "follow_up", "2026-11-26T11:00:00Z"),
    ] {
        let (s, b) = post(
            &app,
            Some(&nurse),
            &format!("/api/v1/patients/{pid}/outcomes"),
            record(items, context, at),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let (_, o, _) = app
        .call(
            "GET",
            &format!("/api/v1/patients/{pid}/outcomes"),
            Some(&nurse),
            None,
        )
        .await;
    let t = trajectory(&o);
    // Against the screening 24, 10 would be a 58 % fall, a "responder"; it is no baseline.
    assert_eq!(t["baseline"], serde_json::Value::Null, "{t}");
    assert_eq!(t["baseline_basis"], "none_in_window");
    assert_eq!(
        (&t["response"], &t["change"]),
        (&serde_json::Value::Null, &serde_json::Value::Null)
    );
    assert_eq!(
        t["baseline_why"],
        "no baseline: no phq9 score in the protocol's baseline window, from 2026-11-23 10:00 UTC (3 days before the first infusion) until the first infusion started at 2026-11-26 10:00 UTC; the score of 2026-11-01 09:00 UTC (24 points) is earlier than the window and is not a baseline"
    );
    // The baseline visit the day before: 16. 16 → 10 is 37.5 % down: not a response.
    let (s, b) = post(
        &app,
        Some(&nurse),
        &format!("/api/v1/patients/{pid}/outcomes"),
        record([2, 2, 2, 2, 2, 2, 2, 2, 0], "baseline", "2026-11-25T15:00:00Z"),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (_, o, _) = app
        .call(
            "GET",
            &format!("/api/v1/patients/{pid}/outcomes"),
            Some(&nurse),
            None,
        )
        .await;
    let t = trajectory(&o);
    assert_eq!(
        (
            t["baseline"].as_f64(),
            t["change"].as_f64(),
            t["change_percent"].as_f64()
        ),
        (Some(16.0), Some(-6.0), Some(-37.5))
    );
    assert_eq!(t["baseline_at"], "2026-11-25T15:00:00Z");
    assert_eq!(
        (t["baseline_basis"].as_str(), t["response"].as_bool()),
        (Some("in_window"), Some(false))
    );
    assert!(
        t["baseline_why"]
            .as_str()
            .unwrap()
            .ends_with(": 16 points at 2026-11-25 15:00 UTC"),
        "{t}"
    );
}

#[tokio::test]
async fn a_depression_course_shows_response_remission_and_time_to_first_response() {
    let app = spawn_app().await;
    let nurse = app.login("nurse").await;
    let doc = app.login("doc").await;
    let pid = patient_with_first_infusion(&app, &nurse, &doc).await;
    // The baseline, answered an hour before the first infusion: PHQ-9 18 (moderately severe, 15–19).
    let (s, b) = post(
        &app,
        Some(&nurse),
        &format!("/api/v1/patients/{pid}/outcomes"),
        json!({"instrument": "phq9",
        "items": [2, 2, 2, 2, 2, 2, 3, 3, 0], "context": "baseline", "answered_at": "2026-11-26T09:00:00Z"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(
        (b["total"].as_f64(), b["band"].as_str(), b["loinc"].as_str()),
        (Some(18.0), Some("moderately severe"), Some("44261-6"))
    );
    assert!(b["crisis_information"].is_null());
    // 24 h later 10 (44 % down: not yet a response); 48 h later 9 (exactly half: a response).
    // (Sign-ins last a 12-h shift, so each day starts with a new one.)
    let mut nurse = nurse;
    for items in [[1, 1, 1, 1, 1, 1, 2, 2, 0], [1, 1, 1, 1, 1, 1, 1, 2, 0]] {
        app.advance(24 * HOUR);
        nurse = app.login("nurse").await;
        let (s, b) = post(
            &app,
            Some(&nurse),
            &format!("/api/v1/patients/{pid}/outcomes"),
            phq9(items, "follow_up"),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let (_, o, _) = app
        .call(
            "GET",
            &format!("/api/v1/patients/{pid}/outcomes"),
            Some(&nurse),
            None,
        )
        .await;
    let t = o["trajectories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["instrument"] == "phq9")
        .unwrap();
    assert_eq!(
        (t["baseline"].as_f64(), t["latest"].as_f64(), t["change"].as_f64()),
        (Some(18.0), Some(9.0), Some(-9.0))
    );
    assert_eq!(t["change_percent"], -50.0);
    assert_eq!(
        (t["response"].as_bool(), t["remission"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(t["hours_to_first_response"], 48.0);
    assert_eq!(t["series"].as_array().unwrap().len(), 3);
    // Two weeks on, 4: remission (PHQ-9 < 5).
    app.advance(14 * 24 * HOUR);
    let nurse = app.login("nurse").await;
    let doc = app.login("doc").await;
    let (s, _) = post(
        &app,
        Some(&nurse),
        &format!("/api/v1/patients/{pid}/outcomes"),
        phq9([1, 1, 0, 1, 0, 1, 0, 0, 0], "follow_up"),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, o, _) = app
        .call(
            "GET",
            &format!("/api/v1/patients/{pid}/outcomes"),
            Some(&doc),
            None,
        )
        .await;
    let t = o["trajectories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["instrument"] == "phq9")
        .unwrap();
    assert_eq!(
        (t["latest"].as_f64(), t["remission"].as_bool()),
        (Some(4.0), Some(true))
    );
    // Incomplete or impossible answers are refused and nothing is stored.
    let (s, b) = post(
        &app,
        Some(&nurse),
        &format!("/api/v1/patients/{pid}/outcomes"),
        json!({"instrument": "phq9", "items": [1, 1, null, 1, 1, 1, 1, 1, 1], "context": "follow_up"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(
        b["error"]["message"],
        "phq9: items 3 are unanswered; every item is needed"
    );
    let (s, b) = post(
        &app,
        Some(&nurse),
        &format!("/api/v1/patients/{pid}/outcomes"),
        json!({"instrument": "phq10", "items": [], "context": "follow_up"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["error"]["allowed"].as_str().unwrap().contains("cssrs_screener"));
    let (_, o, _) = app
        .call(
            "GET",
            &format!("/api/v1/patients/{pid}/outcomes"),
            Some(&doc),
            None,
        )
        .await;
    assert_eq!(o["outcomes"].as_array().unwrap().len(), 4);
    // A viewer reads but does not record.
    let viewer = app.login("viewer").await;
    let (s, _) = post(
        &app,
        Some(&viewer),
        &format!("/api/v1/patients/{pid}/outcomes"),
        phq9([0; 9], "follow_up"),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn suicide_risk_raises_an_urgent_live_alert_that_only_a_documented_follow_up_closes() {
    let app = spawn_app().await;
    let nurse = app.login("nurse").await;
    let viewer = app.login("viewer").await;
    let pid = app.patient(&nurse, 70.0).await;
    // The board's stream is open before the answer arrives.
    let (_, mut stream) = EventStream::open(&app, "/api/v1/board/stream", &viewer, None).await;

    // A low total does not hide item 9.
    let (s, b) = post(
        &app,
        Some(&nurse),
        &format!("/api/v1/patients/{pid}/outcomes"),
        phq9([0, 0, 0, 0, 0, 0, 0, 0, 1], "pre_infusion"),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["total"], 1.0);
    assert_eq!(b["band"], "none-minimal");
    assert!(b["crisis_information"].as_str().unwrap().contains("988"));
    let alert_id = b["risk_alert_id"].as_str().unwrap().to_string();
    let live = stream.wait_for("risk.alert").await;
    assert_eq!(live["session_id"], pid.as_str());
    assert_eq!(
        live["data"]["alert"]["reason"],
        "PHQ-9 item 9 (thoughts of death or self-harm) = 1"
    );
    assert_eq!(live["data"]["alert"]["level"], "urgent");

    // C-SSRS: low risk (Q1 only) raises nothing; a method (Q3) is moderate and alerts; answers that
    // break the skip logic are refused.
    let cssrs = |q2: bool, q3: Option<bool>| {
        json!({"instrument": "cssrs_screener", "context": "pre_infusion",
        "cssrs": {"wish_to_be_dead": true, "suicidal_thoughts": q2, "method": q3, "intent": q3.map(|_| false), "plan": q3.map(|_| false), "behaviour": false}})
    };
    let (s, b) = post(
        &app,
        Some(&nurse),
        &format!("/api/v1/patients/{pid}/outcomes"),
        cssrs(false, None),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(
        (b["band"].as_str(), b["risk_alert_id"].is_null()),
        (Some("low"), true)
    );
    let (s, b) = post(
        &app,
        Some(&nurse),
        &format!("/api/v1/patients/{pid}/outcomes"),
        cssrs(true, Some(true)),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["band"], "moderate");
    assert!(b["risk_alert_id"].is_string());
    let (s, b) = post(
        &app,
        Some(&nurse),
        &format!("/api/v1/patients/{pid}/outcomes"),
        cssrs(false, Some(true)),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");

    // Every clinical reader sees the open alerts.
    let (_, open, _) = app.call("GET", "/api/v1/risk-alerts", Some(&viewer), None).await;
    assert_eq!(open.as_array().unwrap().len(), 2);
    // Only a documented follow-up closes one: not a viewer, not a one-word note.
    let path = format!("/api/v1/risk-alerts/{alert_id}/follow-up");
    let (s, _) = post(
        &app,
        Some(&viewer),
        &path,
        json!({"action": "safety_plan", "note": "safety plan reviewed with patient"}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = post(
        &app,
        Some(&nurse),
        &path,
        json!({"action": "safety_plan", "note": "ok"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, b) = post(&app, Some(&nurse), &path, json!({"action": "cssrs_assessment", "note": "C-SSRS low risk; passive thoughts only, no plan; safety plan given"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["state"], "followed_up");
    assert_eq!(b["follow_up"]["action"], "cssrs_assessment");
    let (s, _) = post(
        &app,
        Some(&nurse),
        &path,
        json!({"action": "safety_plan", "note": "a second time should fail"}),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (_, open, _) = app.call("GET", "/api/v1/risk-alerts", Some(&viewer), None).await;
    assert_eq!(open.as_array().unwrap().len(), 1);
    let (_, v, _) = app
        .call(
            "GET",
            "/api/v1/audit/verify",
            Some(&app.login("admin").await),
            None,
        )
        .await;
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
}

#[tokio::test]
async fn open_risk_alerts_lead_the_board_and_are_counted_in_the_menu_until_followed_up() {
    let app = spawn_app().await;
    let nurse = app.login("nurse").await;
    let pid = app
        .patient_named(&nurse, "Robin Risk", 70.0, "treatment_resistant_depression")
        .await;
    let browser = app.browser("nurse").await;
    let board = browser.get("/board").await;
    assert!(!board.shows("open suicide-risk alert"));
    assert!(!board.shows("data-open-risk-alerts"));

    let (s, b) = post(
        &app,
        Some(&nurse),
        &format!("/api/v1/patients/{pid}/outcomes"),
        phq9([1, 1, 1, 1, 1, 1, 1, 1, 2], "pre_infusion"),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let alert_id = b["risk_alert_id"].as_str().unwrap().to_string();
    // The board and its live fragment lead with the alert; every page's menu counts it.
    for path in ["/board", "/board/chairs"] {
        let page = browser.get(path).await;
        assert!(page.shows("1 open suicide-risk alert:"), "{path}: {}", page.html);
        assert!(page.shows("Robin Risk"), "{path}");
        assert!(
            page.shows("PHQ-9 item 9 (thoughts of death or self-harm) = 2"),
            "{path}"
        );
    }
    for path in ["/board", "/patients", &format!("/patients/{pid}")] {
        assert!(
            browser.get(path).await.shows(r#"data-open-risk-alerts="1""#),
            "{path}"
        );
    }

    let (s, b) = post(
        &app,
        Some(&nurse),
        &format!("/api/v1/risk-alerts/{alert_id}/follow-up"),
        json!({"action": "cssrs_assessment", "note": "C-SSRS low risk; passive thoughts only; safety plan given"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let board = browser.get("/board").await;
    assert!(!board.shows("open suicide-risk alert"));
    assert!(!board.shows("data-open-risk-alerts"));

    // Open alerts are read through the in-progress index, never from the newest N records. A
    // database migrated to the index has every alert marked; the start-up reconcile clears the
    // followed-up ones and leaves the open list as it was.
    let mut tx = app.state.store.begin().await.unwrap();
    tx.set_in_progress("risk_alert", alert_id.parse().unwrap(), true)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(app.state.reconcile_open_risk_alerts().await.unwrap(), 1);
    assert_eq!(app.state.reconcile_open_risk_alerts().await.unwrap(), 0);
    let (_, open, _) = app.call("GET", "/api/v1/risk-alerts", Some(&nurse), None).await;
    assert_eq!(open, json!([]));
}

#[tokio::test]
async fn a_patient_answers_once_through_an_expiring_link_without_an_account() {
    let app = spawn_app().await;
    let nurse = app.login("nurse").await;
    let pid = app.patient(&nurse, 70.0).await;
    let (s, link) = post(
        &app,
        Some(&nurse),
        &format!("/api/v1/patients/{pid}/questionnaire-links"),
        json!({"instruments": ["phq9", "gad7"], "expires_in_hours": 72}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{link}");
    let path = link["path"].as_str().unwrap().to_string();
    // No account: the link alone opens it.
    let (s, form, _) = app.call("GET", &path, None, None).await;
    assert_eq!(s, StatusCode::OK, "{form}");
    assert_eq!(form["instruments"], json!([["phq9", 9, 3], ["gad7", 7, 3]]));
    assert!(form["crisis_information"].as_str().unwrap().contains("988"));
    // The answers must cover exactly what was asked.
    let (s, b) = post(
        &app,
        None,
        &path,
        json!({"answers": [{"instrument": "phq9", "items": [1, 1, 1, 1, 1, 1, 1, 1, 0]}]}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let answers = json!({"answers": [
        {"instrument": "gad7", "items": [1, 1, 1, 1, 1, 1, 1]},
        {"instrument": "phq9", "items": [1, 1, 1, 1, 1, 1, 1, 1, 2]}]});
    let (s, b) = post(&app, None, &path, answers.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert!(b["crisis_information"].as_str().unwrap().contains("988"));
    // Once only.
    let (s, _) = post(&app, None, &path, answers).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (_, o, _) = app
        .call(
            "GET",
            &format!("/api/v1/patients/{pid}/outcomes"),
            Some(&nurse),
            None,
        )
        .await;
    let outcomes = o["outcomes"].as_array().unwrap();
    assert_eq!(outcomes.len(), 2);
    assert!(
        outcomes
            .iter()
            .all(|x| x["context"] == "home" && x["recorded_by"] == "patient-link")
    );
    let (_, open, _) = app.call("GET", "/api/v1/risk-alerts", Some(&nurse), None).await;
    assert_eq!(
        open[0]["reason"],
        "PHQ-9 item 9 (thoughts of death or self-harm) = 2"
    );
    // An expired link and a made-up one.
    let (_, link) = post(
        &app,
        Some(&nurse),
        &format!("/api/v1/patients/{pid}/questionnaire-links"),
        json!({"instruments": ["pain_nrs"], "expires_in_hours": 1}),
    )
    .await;
    app.advance(HOUR);
    let (s, _, _) = app.call("GET", link["path"].as_str().unwrap(), None, None).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _, _) = app
        .call("GET", &format!("/api/v1/q/{}", "ab".repeat(32)), None, None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, b) = post(
        &app,
        Some(&nurse),
        &format!("/api/v1/patients/{pid}/questionnaire-links"),
        json!({"instruments": ["phq9", "phq9"]}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
}

#[tokio::test]
async fn safety_shows_cumulative_dose_flags_and_the_opioid_trend_in_mme() {
    let app = spawn_app().await;
    let nurse = app.login("nurse").await;
    let doc = app.login("doc").await;
    let pid = patient_with_first_infusion(&app, &nurse, &doc).await;
    // 20 min at 52.5 mg/h, then stopped early: 17.5 mg given.
    app.advance(20 * 60);
    let (_, sessions, _) = app
        .call(
            "GET",
            &format!("/api/v1/sessions?patient_id={pid}"),
            Some(&nurse),
            None,
        )
        .await;
    let sid = sessions[0]["id"].as_str().unwrap();
    let (s, b) = post(
        &app,
        Some(&nurse),
        &format!("/api/v1/sessions/{sid}/transitions"),
        json!({"event": "stop", "stop": "early", "reason": "nausea"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // Urinary symptoms on the checklist raise a flag with its source.
    let (s, b) = post(
        &app,
        Some(&nurse),
        &format!("/api/v1/patients/{pid}/safety-checks"),
        json!({"kind": "urinary_checklist", "on": "2026-11-26", "symptoms": ["dysuria", "urgency"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = post(
        &app,
        Some(&nurse),
        &format!("/api/v1/patients/{pid}/safety-checks"),
        json!({"kind": "urinary_checklist", "on": "2026-11-26", "symptoms": ["itching"]}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(
        b["error"]["allowed"],
        "dysuria, urgency, frequency, haematuria, suprapubic_pain"
    );
    // Opioids: oxycodone 15 mg twice a day (30 mg/day × 1.5 = 45) + a 25 µg/h fentanyl patch
    // (× 2.4 = 60) = 105 MME/day (CDC 2022 factors).
    let (s, b) = post(
        &app,
        Some(&nurse),
        &format!("/api/v1/patients/{pid}/opioid-use"),
        json!({"on": "2026-11-20", "doses": [
            {"opioid": "oxycodone", "route": "oral", "dose_mg": 15, "times_per_day": 2},
            {"opioid": "fentanyl_transdermal", "route": "transdermal", "patch_ug_per_h": 25}]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert!((b["mme_per_day"].as_f64().unwrap() - 105.0).abs() < 1e-9);
    assert!(b["table"].as_str().unwrap().starts_with("CDC 2022"));
    assert_eq!(b["doses"][0]["described"], "15 mg 2 times a day, oral");
    assert_eq!(b["doses"][1]["per_day_unit"], "µg/h");
    // The issue's vector: oxycodone 10 mg every 6 h = 40 mg/day × 1.5 = 60 MME/day, and at ≥ 50
    // MME/day CDC 2022 Recommendation 8 says to offer naloxone.
    let (s, b) = post(
        &app,
        Some(&nurse),
        &format!("/api/v1/patients/{pid}/opioid-use"),
        json!({"on": "2026-11-26", "doses": [
            {"opioid": "oxycodone", "route": "oral", "dose_mg": 10, "every_hours": 6}]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["mme_per_day"], 60.0);
    assert_eq!(b["doses"][0]["per_day"], 40.0);
    assert_eq!(b["complete"], true);
    assert_eq!(b["flags"][0]["code"], "naloxone", "{b}");
    assert!(
        b["flags"][0]["source"]
            .as_str()
            .unwrap()
            .contains("Recommendation 8")
    );
    // Buprenorphine is flagged, not converted; the total says it is incomplete.
    let (s, b) = post(
        &app,
        Some(&nurse),
        &format!("/api/v1/patients/{pid}/opioid-use"),
        json!({"on": "2026-11-25", "doses": [
            {"opioid": "buprenorphine", "route": "sublingual", "dose_mg": 8, "times_per_day": 1}]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(
        (b["mme_per_day"].as_f64(), &b["complete"]),
        (Some(0.0), &json!(false))
    );
    assert_eq!(b["doses"][0]["not_converted"], "no_factor");
    assert_eq!(b["flags"][0]["code"], "buprenorphine");
    // Refusals name the dose and the field, and store nothing.
    for (dose, field, allowed) in [
        (
            json!({"opioid": "heroin", "route": "oral", "dose_mg": 20, "times_per_day": 1}),
            "doses[0].opioid",
            "buprenorphine, codeine",
        ),
        (
            json!({"opioid": "morphine", "route": "rectal", "dose_mg": 20, "times_per_day": 1}),
            "doses[0].route",
            "oral, transdermal",
        ),
        (
            json!({"opioid": "morphine", "route": "oral", "dose_mg": 20}),
            "doses[0].dose_mg",
            "either dose_mg with exactly one of",
        ),
        (
            json!({"opioid": "morphine", "route": "oral", "dose_mg": 20, "every_hours": 0.5}),
            "doses[0].every_hours",
            "hours between doses, 1–72",
        ),
        (
            json!({"opioid": "morphine", "route": "oral", "dose_mg": 0, "times_per_day": 2}),
            "doses[0].dose_mg",
            "a dose in mg above 0",
        ),
        (
            json!({"opioid": "fentanyl_transdermal", "route": "oral", "patch_ug_per_h": 25}),
            "doses[0].route",
            "its route is transdermal",
        ),
    ] {
        let (s, b) = post(
            &app,
            Some(&nurse),
            &format!("/api/v1/patients/{pid}/opioid-use"),
            json!({"on": "2026-11-26", "doses": [dose]}),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        assert_eq!(b["error"]["field"], field, "{b}");
        assert!(b["error"]["allowed"].as_str().unwrap().contains(allowed), "{b}");
    }
    let (s, safety, _) = app
        .call("GET", &format!("/api/v1/patients/{pid}/safety"), Some(&doc), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{safety}");
    assert_eq!(safety["lifetime"]["infusions"], 1);
    assert!(
        (safety["lifetime"]["mg"].as_f64().unwrap() - 17.5).abs() < 1e-9,
        "{safety}"
    );
    assert!((safety["last_30_days"]["mg_per_kg"].as_f64().unwrap() - 17.5 / 70.0).abs() < 1e-9);
    let flags = texts(&safety["flags"], "code");
    assert!(flags.contains(&"urinary_symptoms"), "{flags:?}");
    assert!(
        !flags.contains(&"liver_tests_due"),
        "one infusion, no hepatic risk: {flags:?}"
    );
    let o = &safety["opioids"];
    assert_eq!(
        (o["baseline"].as_f64(), o["latest"].as_f64()),
        (Some(105.0), Some(60.0))
    );
    assert_eq!(o["change"], -45.0);
    assert_eq!(o["latest_complete"], true);
    assert_eq!(o["latest_flags"][0]["code"], "naloxone");
    assert_eq!(
        o["series"].as_array().unwrap().len(),
        3,
        "the refusals stored nothing: {o}"
    );
}

async fn get_text(app: &App, path: &str, token: &str) -> (StatusCode, String) {
    let request = Request::builder()
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let response = router(app.state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn outcome_exports_identified_per_patient_and_de_identified_for_the_clinic() {
    let app = spawn_app().await;
    let nurse = app.login("nurse").await;
    let doc = app.login("doc").await;
    let pid = patient_with_first_infusion(&app, &nurse, &doc).await;
    post(
        &app,
        Some(&nurse),
        &format!("/api/v1/patients/{pid}/outcomes"),
        json!({"instrument": "phq9",
        "items": [2, 2, 2, 2, 2, 2, 3, 3, 0], "context": "baseline", "answered_at": "2026-11-26T09:00:00Z"}),
    )
    .await;
    app.advance(24 * HOUR);
    let nurse = app.login("nurse").await;
    post(
        &app,
        Some(&nurse),
        &format!("/api/v1/patients/{pid}/outcomes"),
        phq9([1, 1, 1, 1, 1, 1, 1, 2, 0], "follow_up"),
    )
    .await;

    let (s, csv) = get_text(&app, &format!("/api/v1/patients/{pid}/outcomes/export"), &nurse).await;
    assert_eq!(s, StatusCode::OK);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "answered_at,instrument,loinc,context,total,band,flags,recorded_by"
    );
    assert!(
        lines[1].starts_with("2026-11-26T09:00:00Z,phq9,44261-6,baseline,18,moderately severe,,"),
        "{csv}"
    );
    assert_eq!(lines.len(), 3);

    let (s, csv) = get_text(&app, "/api/v1/outcomes/export", &nurse).await;
    assert_eq!(s, StatusCode::OK);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "patient_key,age_band,sex,indications,instrument,context,days_from_first_infusion,total,band,response_so_far,remission"
    );
    // Born 1986-01-01, 40 on 2026-11-27: the 40-49 band; time as days from the first infusion
    // (10:00 on 2026-11-26): the baseline 1 h before, the follow-up 1 day after.
    let rows: Vec<Vec<&str>> = lines[1..].iter().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0][1..].to_vec(),
        [
            "40-49",
            "male",
            "treatment_resistant_depression",
            "phq9",
            "baseline",
            "-0.0",
            "18",
            "moderately severe",
            "false",
            "false"
        ]
    );
    assert_eq!(rows[1][6..].to_vec(), ["1.0", "9", "mild", "true", "false"]);
    assert_eq!(rows[0][0].len(), 16);
    assert_eq!(rows[0][0], rows[1][0]);
    // Nothing that identifies: no name, record number, id or date.
    for needle in ["Test Patient", "T-1", pid.as_str(), "2026-", "1986"] {
        assert!(!csv.contains(needle), "{needle} in the de-identified export");
    }
    // A second export uses a new key.
    let (_, again) = get_text(&app, "/api/v1/outcomes/export", &nurse).await;
    assert_ne!(again.lines().nth(1).unwrap().split(',').next(), Some(rows[0][0]));
}

async fn get(app: &App, token: &str, path: &str) -> Value {
    let (s, b, _) = app.call("GET", path, Some(token), None).await;
    assert_eq!(s, StatusCode::OK, "{path}: {b}");
    b
}

/// (occasion, instruments, due_at, status) of every measurement.
fn rows(schedule: &Value) -> Vec<(String, String, String, String)> {
    schedule["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["occasion"].as_str().unwrap().to_string(),
                m["instruments"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i.as_str().unwrap())
                    .collect::<Vec<_>>()
                    .join("|"),
                m["due_at"].as_str().unwrap().to_string(),
                m["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn row(occasion: &str, instruments: &str, due_at: &str, status: &str) -> (String, String, String, String) {
    (occasion.into(), instruments.into(), due_at.into(), status.into())
}

#[tokio::test]
async fn the_schedule_and_the_reminder_list_follow_the_protocol_and_the_clock() {
    let app = spawn_app().await;
    let nurse = app.login("nurse").await;
    let doc = app.login("doc").await;
    // A: first TRD infusion started 2026-11-26 10:00, PHQ-9 baseline at 09:00.
    let a = patient_with_first_infusion(&app, &nurse, &doc).await;
    let (s, b) = post(
        &app,
        Some(&nurse),
        &format!("/api/v1/patients/{a}/outcomes"),
        json!({"instrument": "phq9",
        "items": [2, 2, 2, 2, 2, 2, 3, 3, 0], "context": "baseline", "answered_at": "2026-11-26T09:00:00Z"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let baseline_id = b["id"].as_str().unwrap().to_string();
    // B: booked for 2026-11-26 10:00, not started.
    let (b_id, _) = app.booked_session(&nurse, &doc, "Chair 2").await;
    app.advance(60);

    let viewer = app.login("viewer").await;
    let sa = get(&app, &viewer, &format!("/api/v1/patients/{a}/outcomes/schedule")).await;
    assert_eq!(sa["protocol_id"], "trd");
    assert_eq!(sa["follow_up_days"], json!([1, 7, 28, 84]));
    assert_eq!(
        (sa["window_early_days"].as_u64(), sa["window_late_days"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(sa["clinic_setting"], true);
    assert!(
        sa["source"]
            .as_str()
            .unwrap()
            .contains("10.1186/s12888-023-05365-9")
    );
    let trd = "qids_sr16|madrs";
    assert_eq!(
        rows(&sa),
        vec![
            row("baseline", "phq9", "2026-11-26T10:00:00Z", "done"),
            // Started without a QIDS-SR16 or MADRS: the window closed at the start.
            row("baseline", trd, "2026-11-26T10:00:00Z", "missed"),
            // The day-1 window opened at the infusion (3 days early would precede it).
            row("follow_up", "phq9", "2026-11-27T10:00:00Z", "due"),
            row("follow_up", trd, "2026-11-27T10:00:00Z", "due"),
            row("follow_up", "phq9", "2026-12-03T10:00:00Z", "upcoming"),
            row("follow_up", trd, "2026-12-03T10:00:00Z", "upcoming"),
            row("follow_up", "phq9", "2026-12-24T10:00:00Z", "upcoming"),
            row("follow_up", trd, "2026-12-24T10:00:00Z", "upcoming"),
            row("follow_up", "phq9", "2027-02-18T10:00:00Z", "upcoming"),
            row("follow_up", trd, "2027-02-18T10:00:00Z", "upcoming"),
        ]
    );
    let m = &sa["measurements"];
    assert_eq!(m[0]["opens_at"], "2026-11-23T10:00:00Z");
    assert_eq!(m[0]["closes_at"], "2026-11-26T10:00:00Z");
    assert_eq!(m[0]["done_by"]["outcome_id"], baseline_id.as_str());
    assert_eq!(m[0]["done_by"]["total"], 18.0);
    assert_eq!(m[1]["self_report"], json!(["qids_sr16"]));
    assert_eq!(
        (
            m[2]["opens_at"].as_str(),
            m[2]["after"].as_str(),
            m[2]["closes_at"].as_str()
        ),
        (
            Some("2026-11-26T10:00:00Z"),
            Some("2026-11-26T10:00:00Z"),
            Some("2026-11-30T10:00:00Z")
        )
    );
    // B's booked infusion has not started: its baseline is overdue and still open.
    let sb = get(
        &app,
        &viewer,
        &format!("/api/v1/patients/{b_id}/outcomes/schedule"),
    )
    .await;
    assert_eq!(
        rows(&sb)[..2],
        [
            row("baseline", "phq9", "2026-11-26T10:00:00Z", "overdue"),
            row("baseline", trd, "2026-11-26T10:00:00Z", "overdue"),
        ]
    );
    assert!(sb["measurements"][0]["closes_at"].is_null());
    // Follow-ups of a booked last infusion are provisional.
    assert!(rows(&sb)[2..].iter().all(|r| r.3 == "upcoming"));

    // The reminder list: due and overdue only, oldest first, across patients.
    let due = get(&app, &viewer, "/api/v1/outcomes/due").await;
    let list: Vec<(String, String, String, String)> = due
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["patient_id"].as_str().unwrap().to_string(),
                d["instruments"][0].as_str().unwrap().to_string(),
                d["due_at"].as_str().unwrap().to_string(),
                d["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        list,
        vec![
            (
                b_id.clone(),
                "phq9".into(),
                "2026-11-26T10:00:00Z".into(),
                "overdue".into()
            ),
            (
                b_id.clone(),
                "qids_sr16".into(),
                "2026-11-26T10:00:00Z".into(),
                "overdue".into()
            ),
            (
                a.clone(),
                "phq9".into(),
                "2026-11-27T10:00:00Z".into(),
                "due".into()
            ),
            (
                a.clone(),
                "qids_sr16".into(),
                "2026-11-27T10:00:00Z".into(),
                "due".into()
            ),
        ]
    );
    assert_eq!(due[0]["patient_name"], "Test Patient");
    assert_eq!(due[0]["protocol_id"], "trd");

    // 2026-11-28 10:00: a PHQ-9 from home satisfies day 1; QIDS-SR16 is past due but still counts.
    app.advance(2 * 24 * HOUR - 60);
    let nurse = app.login("nurse").await;
    let (s, b) = post(
        &app,
        Some(&nurse),
        &format!("/api/v1/patients/{a}/outcomes"),
        phq9([1, 1, 1, 1, 1, 1, 1, 1, 0], "follow_up"),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let sa = get(&app, &nurse, &format!("/api/v1/patients/{a}/outcomes/schedule")).await;
    assert_eq!(
        rows(&sa)[2..4],
        [
            row("follow_up", "phq9", "2026-11-27T10:00:00Z", "done"),
            row("follow_up", trd, "2026-11-27T10:00:00Z", "overdue"),
        ]
    );
    assert_eq!(
        sa["measurements"][2]["done_by"]["answered_at"],
        "2026-11-28T10:00:00Z"
    );
    // The window's last second (2026-11-30 10:00): still overdue; one second later, missed, and
    // the day-7 window (opening 3 days before 2026-12-03 10:00) is open.
    app.advance(2 * 24 * HOUR);
    let nurse = app.login("nurse").await;
    let sa = get(&app, &nurse, &format!("/api/v1/patients/{a}/outcomes/schedule")).await;
    assert_eq!(rows(&sa)[3].3, "overdue");
    assert_eq!(rows(&sa)[4].3, "due");
    app.advance(1);
    let sa = get(&app, &nurse, &format!("/api/v1/patients/{a}/outcomes/schedule")).await;
    assert_eq!(rows(&sa)[3].3, "missed");
    let due = get(&app, &nurse, "/api/v1/outcomes/due").await;
    let for_a: Vec<&str> = due
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["patient_id"] == a.as_str())
        .map(|d| d["due_at"].as_str().unwrap())
        .collect();
    assert_eq!(for_a, ["2026-12-03T10:00:00Z", "2026-12-03T10:00:00Z"]);

    // A patient without a session has nothing scheduled; an unknown one is 404.
    let c = app.patient(&nurse, 70.0).await;
    let sc = get(&app, &nurse, &format!("/api/v1/patients/{c}/outcomes/schedule")).await;
    assert!(sc["protocol_id"].is_null());
    assert_eq!(sc["measurements"], json!([]));
    let (s, b, _) = app
        .call(
            "GET",
            &format!("/api/v1/patients/{}/outcomes/schedule", uuid::Uuid::now_v7()),
            Some(&nurse),
            None,
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (s, _, _) = app.call("GET", "/api/v1/outcomes/due", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}
