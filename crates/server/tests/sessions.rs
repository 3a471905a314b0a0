//! Infusion sessions over HTTP (in process, real router, real store; PostgreSQL too with
//! `KETAFLOW_TEST_BACKEND=postgres`): a whole depression session and a whole CRPS session from
//! booking to discharge, illegal transitions, monitors' idempotent batches, alarms, overrides by
//! role, and server-sent events with catch-up.

use ketaflow_test_support as common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{
    App, CHECKS, EventStream, MIN, T0, approved_plan, book, draft_plan, event, get, normal, post, spawn_app,
    texts, vitals,
};
use http_body_util::BodyExt;
use ketaflow_server::router;
use ketaflow_store::NewEvent;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tower::ServiceExt;

fn parse(t: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(t.as_str().unwrap(), &Rfc3339).unwrap()
}

#[tokio::test]
async fn a_whole_depression_session_from_booking_to_discharge() {
    let app = spawn_app().await;
    let nurse = app.login("nurse").await;
    let doc = app.login("doc").await;
    let (pid, plan) = approved_plan(&app, &nurse, &doc, 70.0, "treatment_resistant_depression", "trd").await;
    let plan_id = plan["id"].as_str().unwrap();
    let sid = book(&app, &nurse, &pid, plan_id, "Chair 3").await;

    // Nothing starts before check-in; the 409 says what is legal.
    let (s, b) = event(&app, &nurse, &sid, json!({"event": "start"})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(
        b["error"]["message"],
        "cannot start a session that is scheduled; legal now: check_in, abort"
    );
    // Baseline vitals are not a checkbox: check-in needs a reading with BP on file.
    let checks: Value = serde_json::from_str(CHECKS).unwrap();
    let (s, b) = event(&app, &nurse, &sid, json!({"event": "check_in", "checks": checks})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"]["message"], "check-in needs: baseline vitals");
    let (s, ack) = vitals(&app, &nurse, &sid, vec![normal("baseline")]).await;
    assert_eq!(s, StatusCode::OK, "{ack}");
    assert_eq!(
        (ack["stored"].as_u64(), ack["readings"][0]["news2"].as_u64()),
        (Some(1), Some(0))
    );
    let (s, b) = event(&app, &nurse, &sid, json!({"event": "check_in", "checks": checks})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["baseline"]["origin"], "session");
    assert_eq!(b["baseline"]["heart_rate_per_min"], 72.0);

    // Start: the approved plan's rate, 0.5 mg/kg × 70 kg over 40 min = 52.5 mg/h = 52.5 mL/h.
    let (s, b) = event(&app, &nurse, &sid, json!({"event": "start"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["state"], "infusing");
    assert_eq!(b["current_rate_mg_per_h"], 52.5);
    assert_eq!(b["rates"][0]["pump_ml_per_h"], 52.5);

    // A monitor streams with a token for this session only.
    let (s, t) = post(
        &app,
        &nurse,
        &format!("/api/v1/sessions/{sid}/device-tokens"),
        json!({"label": "Monitor 3"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let device = t["token"].as_str().unwrap().to_string();
    assert!(device.starts_with("dev_"));
    let other = book(&app, &nurse, &pid, plan_id, "Chair 4").await;
    let (s, b) = vitals(&app, &device, &other, vec![normal("x")]).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    // A device token opens nothing else.
    let (s, _) = get(&app, &device, &format!("/api/v1/sessions/{sid}")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    app.advance(MIN);
    let batch: Vec<Value> = (1..=3).map(|i| normal(&format!("m3-{i}"))).collect();
    let (s, ack) = vitals(&app, &device, &sid, batch.clone()).await;
    assert_eq!(s, StatusCode::OK, "{ack}");
    assert_eq!(
        (ack["stored"].as_u64(), ack["duplicates"].as_u64()),
        (Some(3), Some(0))
    );
    // A retried batch is acknowledged again and stores nothing.
    let (s, again) = vitals(&app, &device, &sid, batch).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (again["stored"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(3))
    );
    assert_eq!(again["readings"][1]["id"], ack["readings"][1]["id"]);
    // An impossible value refuses the whole batch and stores nothing.
    let mut bad = normal("m3-bad");
    bad["spo2_percent"] = json!(140);
    let (s, b) = vitals(&app, &device, &sid, vec![normal("m3-4"), bad]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["error"]["field"], "readings[1].spo2_percent");
    assert_eq!(b["error"]["allowed"], "50–100");
    let (_, stored) = get(&app, &nurse, &format!("/api/v1/sessions/{sid}/vitals")).await;
    assert_eq!(stored.as_array().unwrap().len(), 4);
    assert_eq!(stored[1]["source"], "device");

    // 10 min in: systolic 185 raises one high-priority alarm naming the threshold (clinic
    // setting) and the rise from baseline (57 mmHg ≥ 40, the Spravato label's figure): one
    // condition, one alarm. It recommends a pause; it pauses nothing.
    app.advance(9 * MIN);
    let mut high = normal("m3-high");
    high["systolic_mmhg"] = json!(185);
    high["diastolic_mmhg"] = json!(100);
    let (s, ack) = vitals(&app, &device, &sid, vec![high.clone()]).await;
    assert_eq!(s, StatusCode::OK, "{ack}");
    let alarms = ack["readings"][0]["alarms"].as_array().unwrap();
    let codes: Vec<&str> = alarms.iter().map(|a| a["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["systolic_high"]);
    assert_eq!(alarms[0]["level"], "high");
    assert_eq!(alarms[0]["detail"]["recommend_pause"], true);
    assert_eq!(alarms[0]["detail"]["clinic_setting"], true);
    assert_eq!(
        alarms[0]["detail"]["message"],
        "systolic 185 mmHg: ≥ 180 and 57 above baseline 128 (rise ≥ 40)"
    );
    let (_, s_now) = get(&app, &nurse, &format!("/api/v1/sessions/{sid}")).await;
    assert_eq!(s_now["state"], "infusing");
    high["idempotency_key"] = json!("m3-high-2");
    let (_, ack) = vitals(&app, &device, &sid, vec![high]).await;
    assert_eq!(ack["readings"][0]["alarms"][0]["occurrences"], 2);
    let alarm_id = alarms[0]["id"].as_str().unwrap().to_string();

    // The nurse pauses (with a reason), acknowledges and resolves with the action taken.
    let (s, b) = event(&app, &nurse, &sid, json!({"event": "pause"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (s, b) = event(&app, &nurse, &sid, json!({"event": "pause", "reason": "SBP 185"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["current_rate_mg_per_h"], 0.0);
    let (s, a, _) = app
        .call(
            "POST",
            &format!("/api/v1/alarms/{alarm_id}/acknowledge"),
            Some(&nurse),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(a["state"], "acknowledged");
    let (s, _, _) = app
        .call(
            "POST",
            &format!("/api/v1/alarms/{alarm_id}/acknowledge"),
            Some(&nurse),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, b) = post(
        &app,
        &nurse,
        &format!("/api/v1/alarms/{alarm_id}/resolve"),
        json!({"action": "wait"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    for (id, action) in [(&alarm_id, "pause")] {
        let (s, a) = post(
            &app,
            &nurse,
            &format!("/api/v1/alarms/{id}/resolve"),
            json!({"action": action, "note": "BP rechecked"}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{a}");
        assert_eq!(a["state"], "resolved");
    }

    // 5 min later the infusion resumes at the same rate, then the nurse raises it within limits.
    app.advance(5 * MIN);
    let (s, b) = event(&app, &nurse, &sid, json!({"event": "resume"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["current_rate_mg_per_h"], 52.5);
    let (s, r) = post(
        &app,
        &nurse,
        &format!("/api/v1/sessions/{sid}/rate"),
        json!({"pump_ml_per_h": 60, "reason": "make up the paused time"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    // Given 52.5 mg/h × 10 min = 8.75 mg; 60 mg/h for the remaining 30 min → 38.75 mg projected.
    let dose = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["limit"] == "dose_mg_per_kg")
        .unwrap();
    assert!(
        (dose["value"].as_f64().unwrap() - 38.75 / 70.0).abs() < 1e-12,
        "{dose}"
    );
    assert!(
        r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "within")
    );
    assert_eq!(r["session"]["rates"][3]["kind"], "change");
    // Twice the soft limit's rate is a hard breach for everyone (2.0 mg/kg/h).
    let (s, b) = post(
        &app,
        &doc,
        &format!("/api/v1/sessions/{sid}/rate"),
        json!({"rate_mg_per_kg_per_h": 2.5, "reason": "test"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"]["code"], "hard_limit");

    // The REMS-style BP 40 min after the start, then 30 min at 60 mg/h in all ends the infusion
    // at 45 min: 8.75 + 30 = 38.75 mg given, 11 % more than the 35 mg planned, so it was not
    // "completed as planned" (5 % tolerance): the stop is recorded with its reason.
    app.advance(25 * MIN);
    let mut at_40 = normal("m3-40");
    at_40["systolic_mmhg"] = json!(140);
    at_40["diastolic_mmhg"] = json!(85);
    let (s, _) = vitals(&app, &device, &sid, vec![at_40]).await;
    assert_eq!(s, StatusCode::OK);
    app.advance(5 * MIN);
    let (s, b) = event(&app, &nurse, &sid, json!({"event": "stop", "stop": "completed"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"]["code"], "not_as_planned");
    let (s, b) = event(
        &app,
        &nurse,
        &sid,
        json!({"event": "stop", "stop": "early", "reason": "rate raised to 60 mg/h for response; 38.75 mg given"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["given_mg"], 38.75);
    assert_eq!(b["infusing_min"], 40.0);
    let ended = app.now();
    let (s, b) = event(&app, &nurse, &sid, json!({"event": "begin_recovery"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // Re-predicted from what was given: more drug, given later, than the plan → later recovery.
    let (s, p) = get(&app, &nurse, &format!("/api/v1/sessions/{sid}/prediction")).await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert!(
        p["prediction"]["ce_below_threshold_from_min"].as_f64().unwrap()
            > plan["prediction"]["ce_below_threshold_from_min"]
                .as_f64()
                .unwrap()
    );

    // Discharge is refused while criteria are unmet, and says which.
    let (s, b) = event(&app, &nurse, &sid, json!({"event": "discharge"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"]["code"], "discharge_criteria_unmet");
    let (s, d) = get(&app, &nurse, &format!("/api/v1/sessions/{sid}/discharge")).await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["all_met"], false);
    let unmet: Vec<&str> = d["unmet"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for code in [
        "min_observation",
        "aldrete",
        "vitals_near_baseline",
        "escort",
        "pk_recovery",
    ] {
        assert!(unmet.contains(&code), "{code} should be unmet: {d}");
    }
    // The earliest time is the later of 90 min observation (protocol) and the PK-predicted recovery.
    let earliest = parse(&d["earliest_at"]);
    let predicted = parse(&d["predicted_recovery_at"]);
    assert_eq!(earliest, (ended + time::Duration::minutes(90)).max(predicted));
    assert_eq!(predicted, parse(&p["ce_below_threshold_at"]));

    // At the earliest time, with normal vitals, Aldrete 10, MOAA/S 5 and the escort here: all met.
    app.advance((earliest - app.now()).whole_seconds() + MIN);
    let (s, _) = vitals(&app, &nurse, &sid, vec![normal("recovery")]).await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = post(&app, &nurse, &format!("/api/v1/sessions/{sid}/assessments"), json!({"aldrete": {"activity": 2, "respiration": 2, "circulation": 2, "consciousness": 2, "spo2": 2}, "moaas": 5, "escort_present": true})).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["assessments"][0]["aldrete_total"], 10);
    let (_, d) = get(&app, &nurse, &format!("/api/v1/sessions/{sid}/discharge")).await;
    assert_eq!(d["all_met"], true, "{d}");
    assert!(
        d["instructions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i.as_str().unwrap().contains("drive"))
    );
    let (s, b) = event(&app, &nurse, &sid, json!({"event": "discharge"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["state"], "discharged");
    assert_eq!(b["legal_events"], json!([]));

    // Closed: the monitor's token is revoked and no reading is taken.
    let (s, _) = vitals(&app, &device, &sid, vec![normal("late")]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, b) = vitals(&app, &nurse, &sid, vec![normal("late")]).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    let (s, b) = event(
        &app,
        &nurse,
        &sid,
        json!({"event": "abort", "reason": "too late"}),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the session is closed")
    );

    // The record: the timeline, the dose given and the REMS-style summary, as JSON and CSV.
    let (s, rec) = get(&app, &nurse, &format!("/api/v1/sessions/{sid}/record")).await;
    assert_eq!(s, StatusCode::OK, "{rec}");
    assert_eq!(rec["total_given_mg"], 38.75);
    let rems = &rec["rems"];
    assert_eq!(rems["bp_before_administration"]["systolic_mmhg"], 128.0);
    assert_eq!(parse(&rems["bp_before_administration"]["at"]), T0);
    assert_eq!(rems["bp_at_40_min"]["systolic_mmhg"], 140.0);
    assert_eq!(
        parse(&rems["bp_at_40_min"]["at"]),
        T0 + time::Duration::minutes(40)
    );
    assert_eq!(rems["bp_before_completion"]["systolic_mmhg"], 128.0);
    let discharged_at = app.now();
    assert_eq!(
        rems["monitoring_min"].as_f64().unwrap(),
        (discharged_at - T0).as_seconds_f64() / 60.0
    );
    assert_eq!(rems["monitoring_at_least_2h"], true);
    assert_eq!(
        (
            rems["sedation"].as_bool(),
            rems["dissociation"].as_bool(),
            rems["respiratory_depression"].as_bool()
        ),
        (Some(false), Some(false), Some(false))
    );
    let kinds = texts(&rec["timeline"], "kind");
    for k in [
        "state",
        "rate",
        "vitals",
        "alarm",
        "alarm.acknowledged",
        "alarm.resolved",
        "assessment",
    ] {
        assert!(kinds.contains(&k), "{k} missing from the timeline");
    }
    // People are named beside their ids (the nurse acknowledged the alarm); monitors and the
    // system have no user name.
    let row_of = |kind: &str| {
        rec["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == kind)
            .unwrap()
            .clone()
    };
    let acknowledged = row_of("alarm.acknowledged");
    assert_eq!(acknowledged["by_name"], "nurse (nurse)");
    assert!(uuid::Uuid::parse_str(acknowledged["by"].as_str().unwrap()).is_ok());
    assert_eq!(row_of("alarm")["by"], "system");
    assert_eq!(row_of("alarm")["by_name"], Value::Null);
    let times: Vec<OffsetDateTime> = rec["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| parse(&r["at"]))
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "the timeline is in time order"
    );
    let request = Request::builder()
        .uri(format!("/api/v1/sessions/{sid}/record?format=csv"))
        .header(header::AUTHORIZATION, format!("Bearer {nurse}"))
        .body(Body::empty())
        .unwrap();
    let response = router(app.state.clone()).oneshot(request).await.unwrap();
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/csv; charset=utf-8"
    );
    let csv = String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("at,kind,detail,by,by_name"));
    assert!(csv.contains(",nurse (nurse)\n"), "{csv}");
    assert!(csv.contains(",summary.total_given_mg,38.750,"), "{csv}");
    assert!(
        csv.contains(",rems.bp_at_40_min,140/85 mmHg at 2026-11-26T10:40:00Z,"),
        "{csv}"
    );
    assert!(
        csv.contains("systolic_high (high): systolic 185 mmHg: ≥ 180 and 57 above baseline 128 (rise ≥ 40); seen 2 time(s)"),
        "{csv}"
    );
    let (s, _) = get(&app, &nurse, &format!("/api/v1/sessions/{sid}/record?format=pdf")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Every step is in the audit chain, in order, and the chain verifies.
    let admin = app.login("admin").await;
    let (_, entries) = get(&app, &admin, &format!("/api/v1/audit?record_id={sid}")).await;
    let actions = texts(&entries, "action");
    assert_eq!(
        actions,
        [
            "session.create",
            "vitals.record",
            "session.check_in",
            "session.start",
            "session.device_token",
            "vitals.record",
            "vitals.record",
            "vitals.record",
            "session.pause",
            "session.resume",
            "session.rate_change",
            "vitals.record",
            "session.stop",
            "session.begin_recovery",
            "vitals.record",
            "session.assessment",
            "session.discharge",
            // The two exports above.
            "session.export",
            "session.export",
        ]
    );
    let (_, v) = get(&app, &admin, "/api/v1/audit/verify").await;
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
async fn a_whole_crps_session_with_side_effects_limits_and_a_physicians_discharge_override() {
    let app = spawn_app().await;
    let nurse = app.login("nurse").await;
    let doc = app.login("doc").await;
    // 70 kg, 177.8 cm man: Devine IBW 73 kg > TBW, so the dosing weight is 70 kg (crps.toml);
    // 0.35 mg/kg/h × 70 kg = 24.5 mg/h for 240 min.
    let (pid, plan) = approved_plan(&app, &nurse, &doc, 70.0, "crps", "crps").await;
    assert_eq!(plan["rate_mg_per_h"], 24.5);
    let sid = book(&app, &nurse, &pid, plan["id"].as_str().unwrap(), "Bay 1").await;
    vitals(&app, &nurse, &sid, vec![normal("b")]).await;
    let mut checks: Value = serde_json::from_str(CHECKS).unwrap();
    checks["questionnaire_answered"] = json!(false);
    let (s, b) = event(&app, &nurse, &sid, json!({"event": "check_in", "checks": checks})).await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a waiver needs a reason: {b}"
    );
    checks["questionnaire_waived_reason"] = json!("completed by phone yesterday");
    let (s, b) = event(&app, &nurse, &sid, json!({"event": "check_in", "checks": checks})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, _) = event(&app, &nurse, &sid, json!({"event": "start"})).await;
    assert_eq!(s, StatusCode::OK);

    // Side effects with severity and action; a severe one with no action is a documentation gap.
    app.advance(20 * MIN);
    let (s, b) = post(&app, &nurse, &format!("/api/v1/sessions/{sid}/side-effects"), json!({"kind": "dissociation", "severity": "mild", "cadss6": [1, 2, 0, 1, 0, 1], "action": "reassurance"})).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["side_effects"][0]["cadss6_total"], 5);
    let (s, b) = post(
        &app,
        &nurse,
        &format!("/api/v1/sessions/{sid}/side-effects"),
        json!({"kind": "nausea", "severity": "severe", "action": "none"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (s, b) = post(
        &app,
        &nurse,
        &format!("/api/v1/sessions/{sid}/side-effects"),
        json!({"kind": "dissociation", "severity": "mild", "cadss6": [5, 0, 0, 0, 0, 0], "action": "none"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["error"]["field"], "cadss6");
    let (s, b) = post(
        &app,
        &nurse,
        &format!("/api/v1/sessions/{sid}/side-effects"),
        json!({"kind": "nausea", "severity": "moderate", "action": "medication_given:ondansetron:4 mg IV"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(
        b["side_effects"][1]["action"],
        "medication_given:ondansetron:4 mg IV"
    );

    // At 60 min: 1.2 mg/kg/h would project 24.5 + 84 × 3 = 276.5 mg, beyond the 250 mg hard limit.
    app.advance(40 * MIN);
    let rate = |per_kg: f64, overrides: Value| json!({"rate_mg_per_kg_per_h": per_kg, "reason": "pain 7/10", "overrides": overrides});
    let (s, b) = post(
        &app,
        &doc,
        &format!("/api/v1/sessions/{sid}/rate"),
        rate(1.2, json!([])),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"]["code"], "hard_limit");
    // 0.5 mg/kg/h projects 24.5 + 35 × 3 = 129.5 mg = 1.85 mg/kg: beyond the 1.6 mg/kg soft limit.
    let (s, b) = post(
        &app,
        &nurse,
        &format!("/api/v1/sessions/{sid}/rate"),
        rate(0.5, json!([])),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a nurse cannot pass a soft limit: {b}");
    let (s, b) = post(
        &app,
        &doc,
        &format!("/api/v1/sessions/{sid}/rate"),
        rate(0.5, json!([])),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"]["code"], "override_needed");
    let (s, b) = post(
        &app,
        &doc,
        &format!("/api/v1/sessions/{sid}/rate"),
        rate(
            0.5,
            json!([{"limit": "dose_mg_per_kg", "reason": "tolerated 0.5 mg/kg/h in the last series"}]),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let dose = b["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["limit"] == "dose_mg_per_kg")
        .unwrap()
        .clone();
    assert!((dose["value"].as_f64().unwrap() - 129.5 / 70.0).abs() < 1e-12);
    assert_eq!(dose["status"], "soft_breach");
    assert_eq!(
        b["session"]["rates"][1]["overrides"][0]["limit"],
        "dose_mg_per_kg"
    );

    // The patient asks to stop at 200 min: an early stop needs its reason.
    app.advance(140 * MIN);
    let (s, b) = event(&app, &nurse, &sid, json!({"event": "stop", "stop": "early"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (s, b) = event(
        &app,
        &nurse,
        &sid,
        json!({"event": "stop", "stop": "early", "reason": "patient request"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // 24.5 mg/h × 1 h + 35 mg/h × 140/60 h = 24.5 + 81.6667 mg.
    assert!(
        (b["given_mg"].as_f64().unwrap() - (24.5 + 35.0 * 140.0 / 60.0)).abs() < 1e-9,
        "{b}"
    );
    event(&app, &nurse, &sid, json!({"event": "begin_recovery"})).await;

    // Before the observation time a nurse cannot override; a physician can, with a reason.
    app.advance(10 * MIN);
    let (s, b) = event(
        &app,
        &nurse,
        &sid,
        json!({"event": "discharge", "override_discharge": true, "reason": "transport"}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (s, b) = event(
        &app,
        &doc,
        &sid,
        json!({"event": "discharge", "override_discharge": true}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    // The reason is as long as a plan override's: "transport" (9 characters) is not one.
    let (s, b) = event(
        &app,
        &doc,
        &sid,
        json!({"event": "discharge", "override_discharge": true, "reason": "transport"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["error"]["field"], "reason");
    assert_eq!(
        b["error"]["allowed"],
        "a reason of 10–1000 characters, as for a plan override"
    );
    // An urgent alarm nobody has acknowledged holds the discharge, override or not.
    let mut low = normal("late-desat");
    low["spo2_percent"] = json!(86);
    let (s, ack) = vitals(&app, &nurse, &sid, vec![low]).await;
    assert_eq!(s, StatusCode::OK, "{ack}");
    let alarm_id = ack["readings"][0]["alarms"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(ack["readings"][0]["alarms"][0]["code"], "spo2_low");
    let transfer = json!({"event": "discharge", "override_discharge": true,
        "reason": "transferred to the ward for observation"});
    let (s, b) = event(&app, &doc, &sid, transfer.clone()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"]["code"], "urgent_alarm_unacknowledged");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("spo2_low"),
        "{b}"
    );
    let (s, b, _) = app
        .call(
            "POST",
            &format!("/api/v1/alarms/{alarm_id}/acknowledge"),
            Some(&nurse),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = event(&app, &doc, &sid, transfer).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["state"], "discharged");
    let last = b["transitions"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["reason"], "transferred to the ward for observation");
    let (_, v) = get(&app, &app.login("admin").await, "/api/v1/audit/verify").await;
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
async fn every_event_is_refused_where_the_state_machine_forbids_it() {
    let app = spawn_app().await;
    let nurse = app.login("nurse").await;
    let doc = app.login("doc").await;
    let (pid, plan) = approved_plan(&app, &nurse, &doc, 70.0, "treatment_resistant_depression", "trd").await;
    let sid = book(&app, &nurse, &pid, plan["id"].as_str().unwrap(), "Chair 9").await;
    let checks: Value = serde_json::from_str(CHECKS).unwrap();
    vitals(&app, &nurse, &sid, vec![normal("b")]).await;
    // Walk the main path; in every state, every event not legal there is a 409 listing the legal ones.
    let path = [
        ("scheduled", json!({"event": "check_in", "checks": checks})),
        ("checked_in", json!({"event": "start"})),
        ("infusing", json!({"event": "pause", "reason": "nausea"})),
        ("paused", json!({"event": "resume"})),
        (
            "infusing",
            json!({"event": "stop", "stop": "early", "reason": "walking the machine"}),
        ),
        ("stopped", json!({"event": "begin_recovery"})),
        (
            "recovering",
            json!({"event": "abort", "reason": "patient left against advice"}),
        ),
    ];
    let all = [
        "check_in",
        "start",
        "pause",
        "resume",
        "stop",
        "begin_recovery",
        "discharge",
        "abort",
    ];
    for (state, next) in path {
        let (_, s_now) = get(&app, &nurse, &format!("/api/v1/sessions/{sid}")).await;
        assert_eq!(s_now["state"], state);
        let legal: Vec<String> = s_now["legal_events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap().into())
            .collect();
        for e in all.iter().filter(|e| !legal.iter().any(|l| l == *e)) {
            let (s, b) = event(
                &app,
                &nurse,
                &sid,
                json!({"event": e, "reason": "x reason", "checks": checks}),
            )
            .await;
            assert_eq!(s, StatusCode::CONFLICT, "{e} in {state}: {b}");
            assert!(
                b["error"]["message"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!("legal now: {}", legal.join(", "))),
                "{b}"
            );
        }
        let (s, b) = event(&app, &nurse, &sid, next.clone()).await;
        assert_eq!(s, StatusCode::OK, "{next} in {state}: {b}");
    }
    let (_, s_now) = get(&app, &nurse, &format!("/api/v1/sessions/{sid}")).await;
    assert_eq!(s_now["state"], "aborted");
    // Unknown events are a 400 that lists the events.
    let (s, b) = event(&app, &nurse, &sid, json!({"event": "teleport"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(b["error"]["allowed"], all.join(", "));
    // An unapproved plan never starts.
    let draft = draft_plan(&app, &nurse, &pid).await;
    let s2 = book(&app, &nurse, &pid, draft["id"].as_str().unwrap(), "Chair 10").await;
    vitals(&app, &nurse, &s2, vec![normal("b2")]).await;
    event(&app, &nurse, &s2, json!({"event": "check_in", "checks": checks})).await;
    let (s, b) = event(&app, &nurse, &s2, json!({"event": "start"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"]["code"], "plan_not_approved");
}

#[tokio::test]
async fn live_events_catch_up_from_the_last_event_id_without_gaps() {
    let app = spawn_app().await;
    let nurse = app.login("nurse").await;
    let doc = app.login("doc").await;
    let viewer = app.login("viewer").await;
    let (pid, plan) = approved_plan(&app, &nurse, &doc, 70.0, "treatment_resistant_depression", "trd").await;
    let plan_id = plan["id"].as_str().unwrap();
    let a = book(&app, &nurse, &pid, plan_id, "Chair A").await; // event 1
    let b = book(&app, &nurse, &pid, plan_id, "Chair B").await; // event 2
    vitals(&app, &nurse, &a, vec![normal("a1")]).await; // 3
    vitals(&app, &nurse, &b, vec![normal("b1")]).await; // 4
    vitals(&app, &nurse, &a, vec![normal("a2")]).await; // 5

    // Only signed-in clinical readers may listen; a monitor's token may not.
    let (s, _) = EventStream::open(&app, "/api/v1/board/stream", "dev_0000", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // The board from event 2 on: 3, 4, 5 in order; then live events as they commit.
    let (s, mut board) = EventStream::open(&app, "/api/v1/board/stream", &viewer, Some(2)).await;
    assert_eq!(s, StatusCode::OK);
    let caught = board.events(3).await;
    assert_eq!(caught.iter().map(|e| e.0).collect::<Vec<_>>(), [3, 4, 5]);
    assert_eq!(caught[0].1, "vitals");
    assert_eq!(caught[0].2["session_id"], a.as_str());
    assert_eq!(caught[0].2["data"]["reading"]["idempotency_key"], "a1");

    // Session A's stream from the start: only its own events (1, 3, 5).
    let (s, mut only_a) =
        EventStream::open(&app, &format!("/api/v1/sessions/{a}/stream"), &nurse, Some(0)).await;
    assert_eq!(s, StatusCode::OK);
    let caught = only_a.events(3).await;
    assert_eq!(caught.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 3, 5]);
    assert_eq!(caught[0].1, "session.created");

    // Live: an alarm-raising reading on A reaches both streams, alarm before its reading.
    let mut high = normal("a3");
    high["systolic_mmhg"] = json!(190);
    high["spo2_percent"] = json!(88);
    vitals(&app, &nurse, &a, vec![high]).await;
    let live = board.events(3).await;
    let kinds: Vec<&str> = live.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(kinds, ["alarm.raised", "alarm.raised", "vitals"]);
    assert_eq!(live[0].2["data"]["code"], "systolic_high");
    assert_eq!(live.iter().map(|e| e.0).collect::<Vec<_>>(), [6, 7, 8]);
    let live_a = only_a.events(3).await;
    assert_eq!(live_a.iter().map(|e| e.0).collect::<Vec<_>>(), [6, 7, 8]);

    // Commits published out of order (or not at all) are filled from the database: events 9 and
    // 10 are committed, only 10 is published, and the stream still delivers 9 then 10.
    let mut tx = app.state.store.begin().await.unwrap();
    let data = json!({"test": true});
    let mut appended = Vec::new();
    for _ in 0..2 {
        appended.push(
            tx.append_event(&NewEvent {
                session_id: uuid::Uuid::parse_str(&b).unwrap(),
                kind: "test",
                at: T0,
                data: &data,
            })
            .await
            .unwrap(),
        );
    }
    tx.commit().await.unwrap();
    app.state.live.publish(appended.pop());
    let filled = board.events(2).await;
    assert_eq!(filled.iter().map(|e| e.0).collect::<Vec<_>>(), [9, 10]);
}

#[tokio::test]
async fn concurrent_monitors_share_commits_and_lose_or_duplicate_nothing() {
    let app = spawn_app().await;
    let nurse = app.login("nurse").await;
    let doc = app.login("doc").await;
    let (pid, plan) = approved_plan(&app, &nurse, &doc, 70.0, "treatment_resistant_depression", "trd").await;
    let plan_id = plan["id"].as_str().unwrap().to_string();
    let mut chairs = Vec::new();
    for i in 0..5 {
        let sid = book(&app, &nurse, &pid, &plan_id, &format!("Chair {i}")).await;
        let (_, t) = post(
            &app,
            &nurse,
            &format!("/api/v1/sessions/{sid}/device-tokens"),
            json!({"label": format!("m{i}")}),
        )
        .await;
        chairs.push((sid, t["token"].as_str().unwrap().to_string()));
    }
    let first_event = app.state.store.last_event_id().await.unwrap();
    // 5 monitors × 20 readings, all at once, each reading sent twice (a retry racing its original).
    let mut tasks = Vec::new();
    for (sid, token) in &chairs {
        for n in 0..20 {
            for _ in 0..2 {
                let (state, sid, token) = (app.state.clone(), sid.clone(), token.clone());
                tasks.push(tokio::spawn(async move {
                    let request = Request::builder()
                        .method("POST")
                        .uri(format!("/api/v1/sessions/{sid}/vitals"))
                        .header(header::AUTHORIZATION, format!("Bearer {token}"))
                        .header(header::CONTENT_TYPE, "application/json")
                        .body(Body::from(
                            json!({"readings": [normal(&format!("{sid}-{n}"))]}).to_string(),
                        ))
                        .unwrap();
                    let response = router(state).oneshot(request).await.unwrap();
                    assert_eq!(response.status(), StatusCode::OK);
                    let body: Value =
                        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes())
                            .unwrap();
                    body["stored"].as_u64().unwrap()
                }));
            }
        }
    }
    let mut stored = 0;
    for t in tasks {
        stored += t.await.unwrap();
    }
    // Every key stored exactly once, whichever of the two copies got there first.
    assert_eq!(stored, 100);
    for (sid, _) in &chairs {
        let (_, list) = get(&app, &nurse, &format!("/api/v1/sessions/{sid}/vitals")).await;
        assert_eq!(list.as_array().unwrap().len(), 20);
    }
    // One event per stored reading, ids contiguous, and the audit chain intact.
    let events = app
        .state
        .store
        .events_after(first_event, None, 1000)
        .await
        .unwrap();
    assert_eq!(events.len(), 100);
    assert!(events.windows(2).all(|w| w[1].id == w[0].id + 1));
    let (_, v) = get(&app, &app.login("admin").await, "/api/v1/audit/verify").await;
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
async fn the_board_reads_open_sessions_from_the_index_and_start_up_reconciles_old_marks() {
    let app = spawn_app().await;
    let nurse = app.login("nurse").await;
    let doc = app.login("doc").await;
    let (_, open) = app.booked_session(&nurse, &doc, "Chair 1").await;
    let (_, closed) = app.booked_session(&nurse, &doc, "Chair 2").await;
    let (s, b) = event(
        &app,
        &nurse,
        &closed,
        json!({"event": "abort", "reason": "patient unwell on arrival"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let ids = |records: Vec<ketaflow_store::Record>| {
        records.into_iter().map(|r| r.id.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(app.state.store.list_in_progress("session").await.unwrap()),
        [open.as_str()]
    );
    // A database from before the index marks every session; start-up clears the closed ones.
    let mut tx = app.state.store.begin().await.unwrap();
    tx.set_in_progress("session", closed.parse().unwrap(), true)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let cleared = app.state.reconcile_in_progress().await.unwrap();
    assert_eq!(cleared, 1);
    assert_eq!(
        ids(app.state.store.list_in_progress("session").await.unwrap()),
        [open.as_str()]
    );
    let (s, board) = get(&app, &nurse, "/api/v1/board").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(board["chairs"].as_array().unwrap().len(), 1);
    assert_eq!(board["chairs"][0]["session_id"], open.as_str());
    let (_, active) = get(&app, &nurse, "/api/v1/sessions").await;
    assert_eq!(active.as_array().unwrap().len(), 1);
    let (_, all) = get(&app, &nurse, "/api/v1/sessions?active=false").await;
    assert_eq!(all.as_array().unwrap().len(), 2);
}

/// The board's recovery prediction is kept per record versions: the same while nothing changes
/// (the running rate's projected end does not move while it runs), recomputed after a rate change,
/// equal to a fresh prediction each time (a pause is predicted from what was given, so it too stays
/// put while paused), and dropped when the session leaves the board.
#[tokio::test]
async fn the_boards_recovery_prediction_is_kept_per_version_and_always_equals_a_fresh_one() {
    let app = spawn_app().await;
    let nurse = app.login("nurse").await;
    let doc = app.login("doc").await;
    let (pid, plan) = approved_plan(&app, &nurse, &doc, 70.0, "treatment_resistant_depression", "trd").await;
    let sid = book(&app, &nurse, &pid, plan["id"].as_str().unwrap(), "Chair 4").await;
    let (s, _) = vitals(&app, &nurse, &sid, vec![normal("baseline")]).await;
    assert_eq!(s, StatusCode::OK);
    let checks: Value = serde_json::from_str(CHECKS).unwrap();
    let (s, _) = event(&app, &nurse, &sid, json!({"event": "check_in", "checks": checks})).await;
    assert_eq!(s, StatusCode::OK);
    async fn board_at(app: &App, nurse: &str) -> Value {
        let (s, b) = get(app, nurse, "/api/v1/board").await;
        assert_eq!(s, StatusCode::OK, "{b}");
        b["chairs"][0]["predicted_recovery_at"].clone()
    }
    async fn fresh_at(app: &App, sid: &str) -> Value {
        let record = app.state.record("session", sid.parse().unwrap()).await.unwrap();
        let s = ketaflow_server::api::sessions::session_now(record, app.now()).unwrap();
        let at = app
            .state
            .predicted_recovery(s.record.id, &s.doc, app.now())
            .await
            .unwrap();
        json!(at.map(ketaflow_server::api::sessions::rfc3339))
    }
    // Before the start there is nothing to predict, and nothing is kept.
    assert_eq!(board_at(&app, &nurse).await, Value::Null);
    assert_eq!(app.state.recovery_cache.len(), 0);

    let (s, _) = event(&app, &nurse, &sid, json!({"event": "start"})).await;
    assert_eq!(s, StatusCode::OK);
    app.advance(10 * MIN);
    let first = board_at(&app, &nurse).await;
    assert!(first.is_string(), "{first}");
    assert_eq!(first, fresh_at(&app, &sid).await);
    assert_eq!(app.state.recovery_cache.len(), 1);
    // Ten minutes on at the same rate: the kept value, and still the fresh one.
    app.advance(10 * MIN);
    assert_eq!(board_at(&app, &nurse).await, first);
    assert_eq!(first, fresh_at(&app, &sid).await);

    // A faster rate brings recovery later: recomputed, not the kept value.
    let (s, r) = post(
        &app,
        &nurse,
        &format!("/api/v1/sessions/{sid}/rate"),
        json!({"pump_ml_per_h": 60, "reason": "physician's order"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let faster = board_at(&app, &nurse).await;
    assert_ne!(faster, first);
    assert_eq!(faster, fresh_at(&app, &sid).await);

    // Paused: predicted from what was given, so earlier than the running projection, and steady.
    let (s, _) = event(&app, &nurse, &sid, json!({"event": "pause", "reason": "nausea"})).await;
    assert_eq!(s, StatusCode::OK);
    let paused = board_at(&app, &nurse).await;
    assert!(
        paused.as_str().unwrap() < faster.as_str().unwrap(),
        "{paused} {faster}"
    );
    assert_eq!(paused, fresh_at(&app, &sid).await);
    app.advance(5 * MIN);
    assert_eq!(board_at(&app, &nurse).await, paused);
    assert_eq!(paused, fresh_at(&app, &sid).await);

    // Off the board, out of the cache.
    let (s, _) = event(
        &app,
        &nurse,
        &sid,
        json!({"event": "abort", "reason": "patient asked to stop"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, b) = get(&app, &nurse, "/api/v1/board").await;
    assert_eq!(b["chairs"].as_array().unwrap().len(), 0);
    assert_eq!(app.state.recovery_cache.len(), 0);
}

/// The demo clinic is seeded through the same use cases as a physician: every approved plan was
/// approved by `DosePlan::approve` (locked, signed by the demo physician, its limits checked), a
/// draft stays a draft, and each session carries its own plan's protocol.
#[tokio::test]
async fn the_demo_clinic_is_seeded_through_the_use_cases() {
    let app = spawn_app().await;
    let accounts = ketaflow_server::demo::seed(&app.state).await.unwrap();
    assert_eq!(accounts.len(), 4);
    let physician = app
        .state
        .store
        .get_user_by_username("demo.physician")
        .await
        .unwrap()
        .unwrap();
    let plans = app
        .state
        .store
        .list_records("plan", None, None, 500)
        .await
        .unwrap();
    assert!(plans.len() >= 4, "{}", plans.len());
    let mut approved = 0;
    for plan in &plans {
        let doc = &plan.data;
        match doc["status"].as_str().unwrap() {
            "approved" => {
                approved += 1;
                assert!(plan.locked, "{doc}");
                assert_eq!(doc["approved_by"], physician.id.to_string());
                assert_eq!(doc["approved_by_name"], "Demo physician (demo.physician)");
                // No approved plan breaches a hard limit, and every soft breach has its override.
                for check in doc["checks"].as_array().unwrap() {
                    assert_ne!(check["status"], "hard_breach", "{check}");
                    if check["status"] == "soft_breach" {
                        let limit = check["limit"].as_str().unwrap();
                        assert!(
                            doc["overrides"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .any(|o| o["limit"] == limit),
                            "{check}"
                        );
                    }
                }
            }
            "draft" => assert!(!plan.locked),
            other => panic!("plan status {other}"),
        }
    }
    assert_eq!(approved, 2);
    let sessions = app.state.store.list_in_progress("session").await.unwrap();
    assert_eq!(sessions.len(), 2);
    for s in sessions {
        let plan = plans
            .iter()
            .find(|p| p.id.to_string() == s.data["plan_id"].as_str().unwrap())
            .unwrap();
        assert_eq!(s.data["protocol_id"], plan.data["protocol_id"]);
        assert!(plan.locked);
    }
    // A day to rehearse: questionnaire histories with a trend, allergies, and a ledger with vials
    // received, a draw for the infusing chair and a count.
    let doc = app.login("doc").await;
    let (_, patients) = get(&app, &doc, "/api/v1/patients").await;
    let alex = patients
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["display_name"] == "Alex Morgan")
        .unwrap();
    assert_eq!(alex["allergies"][0]["substance"], "penicillin");
    let (s, outcomes) = get(
        &app,
        &doc,
        &format!("/api/v1/patients/{}/outcomes", alex["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{outcomes}");
    let mut phq9: Vec<(String, f64)> = outcomes["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["instrument"] == "phq9")
        .map(|o| {
            (
                o["answered_at"].as_str().unwrap().to_string(),
                o["total"].as_f64().unwrap(),
            )
        })
        .collect();
    phq9.sort_by(|a, b| a.0.cmp(&b.0));
    // Item sums of the seeded answers, oldest first (PHQ-9 totals 0–27, Kroenke 2001).
    assert_eq!(
        phq9.iter().map(|(_, t)| *t).collect::<Vec<_>>(),
        [18.0, 15.0, 11.0, 9.0, 6.0, 4.0]
    );
    let (_, alerts) = get(&app, &doc, "/api/v1/risk-alerts").await;
    assert_eq!(
        alerts.as_array().unwrap().len(),
        0,
        "no seeded answer shows risk: {alerts}"
    );
    let (_, vials) = get(&app, &doc, "/api/v1/ledger/vials").await;
    let vials = vials.as_array().unwrap();
    assert_eq!(vials.len(), 4);
    let balances: Vec<&str> = vials.iter().map(|v| v["balance_mg"].as_str().unwrap()).collect();
    // Alex Morgan, 68 kg at 0.5 mg/kg: 34 mg drawn from one vial of 100 mg.
    assert!(balances.contains(&"66"), "{balances:?}");
    assert_eq!(balances.iter().filter(|b| **b == "100").count(), 3);
    let (_, discrepancies) = get(&app, &doc, "/api/v1/ledger/discrepancies").await;
    assert_eq!(
        discrepancies.as_array().unwrap().len(),
        0,
        "the count matched the book"
    );
    // Seeding again adds nothing.
    assert!(ketaflow_server::demo::seed(&app.state).await.unwrap().is_empty());
    assert_eq!(
        app.state
            .store
            .list_records("plan", None, None, 500)
            .await
            .unwrap()
            .len(),
        plans.len()
    );
}

/// A key is a promise that a resend is the same reading. Sent again with other values, it is
/// refused (422 `idempotency_key_reused`, naming the reading) and nothing of that batch is stored;
/// the same values are still a duplicate, also when the reading names no time and arrives later.
/// A reading that measures nothing is refused.
#[tokio::test]
async fn a_reused_key_with_other_values_is_refused_and_an_empty_reading_too() {
    let app = spawn_app().await;
    let nurse = app.login("nurse").await;
    let doc = app.login("doc").await;
    let (pid, plan) = approved_plan(&app, &nurse, &doc, 70.0, "treatment_resistant_depression", "trd").await;
    let sid = book(&app, &nurse, &pid, plan["id"].as_str().unwrap(), "Chair K").await;
    let (s, first) = vitals(&app, &nurse, &sid, vec![normal("k1")]).await;
    assert_eq!(s, StatusCode::OK, "{first}");
    assert_eq!(stored_count(&app, &nurse, &sid).await, 1);

    // The same values a minute later, with no time of their own: a retry, acknowledged again.
    app.advance(MIN);
    let (s, again) = vitals(&app, &nurse, &sid, vec![normal("k1")]).await;
    assert_eq!(s, StatusCode::OK, "{again}");
    assert_eq!(again["duplicates"], 1);
    assert_eq!(again["readings"][0]["id"], first["readings"][0]["id"]);

    // The same key with another SpO2, beside a new reading: refused whole, nothing stored.
    let mut other = normal("k1");
    other["spo2_percent"] = json!(88);
    let (s, refused) = vitals(&app, &nurse, &sid, vec![normal("k2"), other]).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"]["code"], "idempotency_key_reused");
    assert_eq!(refused["error"]["field"], "readings[1].idempotency_key");
    assert_eq!(
        stored_count(&app, &nurse, &sid).await,
        1,
        "k2 was not stored either"
    );

    // The same values with a different stated time are a different reading too.
    let mut later = normal("k1");
    later["taken_at"] = json!("2026-11-26T08:00:00Z");
    let (s, refused) = vitals(&app, &nurse, &sid, vec![later]).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");

    // Nothing measured: refused, naming the reading and what it must carry.
    let (s, empty) = vitals(
        &app,
        &nurse,
        &sid,
        vec![json!({"idempotency_key": "k3", "on_oxygen": false})],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{empty}");
    assert_eq!(empty["error"]["field"], "readings[0]");
    assert!(
        empty["error"]["allowed"]
            .as_str()
            .unwrap()
            .starts_with("at least one of")
    );
    assert_eq!(stored_count(&app, &nurse, &sid).await, 1);

    // k2 on its own is a new reading and is stored.
    let (s, ok) = vitals(&app, &nurse, &sid, vec![normal("k2")]).await;
    assert_eq!(s, StatusCode::OK, "{ok}");
    assert_eq!(stored_count(&app, &nurse, &sid).await, 2);
}

async fn stored_count(app: &App, token: &str, sid: &str) -> usize {
    let (_, list) = get(app, token, &format!("/api/v1/sessions/{sid}/vitals")).await;
    list.as_array().unwrap().len()
}

/// NEWS2 through the API (RCP 2017, Chart 4), one reading per tier, on a running session: a single
/// red score raises its own alarm, consciousness below Alert is high priority whatever the total,
/// a red parameter with its own alarm is not raised twice, and the medium and high tiers are the
/// same condition's alarm, which escalates as the score rises.
#[tokio::test]
async fn every_news2_tier_and_a_single_red_score_raise_their_alarm() {
    let app = spawn_app().await;
    let nurse = app.login("nurse").await;
    let doc = app.login("doc").await;
    let (pid, plan) = approved_plan(&app, &nurse, &doc, 70.0, "treatment_resistant_depression", "trd").await;
    let sid = book(&app, &nurse, &pid, plan["id"].as_str().unwrap(), "Chair N").await;
    let reading = |key: &str, changes: Value| {
        let mut r = normal(key);
        for (k, v) in changes.as_object().unwrap() {
            r[k] = v.clone();
        }
        r
    };
    let cases = [
        // (reading, NEWS2 total, (alarm code, priority, NEWS2 stage) for each alarm the reading
        // raised or updated, highest priority first)
        (reading("n0", json!({})), 0, vec![]),
        (reading("n1", json!({"heart_rate_per_min": 95})), 1, vec![]),
        (
            reading("n-rr", json!({"respiratory_rate_per_min": 25})),
            3,
            vec![("news2", "medium", "single_red")],
        ),
        (
            reading("n-u", json!({"consciousness": "unresponsive"})),
            3,
            vec![("consciousness_not_alert", "high", "")],
        ),
        (
            reading(
                "n-med",
                json!({"spo2_percent": 86, "respiratory_rate_per_min": 22}),
            ),
            5,
            vec![("spo2_low", "high", ""), ("news2", "medium", "medium")],
        ),
        (
            reading(
                "n-high",
                json!({"systolic_mmhg": 90, "diastolic_mmhg": 60, "heart_rate_per_min": 115, "respiratory_rate_per_min": 22}),
            ),
            7,
            vec![("news2", "high", "high")],
        ),
    ];
    for (r, total, want) in cases {
        let key = r["idempotency_key"].clone();
        let (s, ack) = vitals(&app, &nurse, &sid, vec![r]).await;
        assert_eq!(s, StatusCode::OK, "{ack}");
        let got = &ack["readings"][0];
        assert_eq!(got["news2"], total, "{key}: {got}");
        let seen: Vec<(&str, &str, &str)> = got["alarms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["code"].as_str().unwrap(),
                    a["level"].as_str().unwrap(),
                    a["detail"]["stage"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(seen, want, "{key}: {got}");
    }
    let (_, alarms) = get(&app, &nurse, &format!("/api/v1/sessions/{sid}/alarms")).await;
    let alarms = alarms.as_array().unwrap();
    // One alarm per condition: NEWS2 is one alarm that went from the single red score to high.
    assert_eq!(
        alarms.iter().filter(|a| a["code"] == "news2").count(),
        1,
        "{alarms:?}"
    );
    let news2 = alarms.iter().find(|a| a["code"] == "news2").unwrap();
    assert_eq!(
        news2["detail"]["first_message"],
        "NEWS2 3 with respiration rate scoring 3 (low–medium risk: urgent ward-based review)"
    );
    assert_eq!(news2["detail"]["message"], "NEWS2 7 (high: emergency assessment)");
    assert_eq!(
        (news2["level"].as_str(), news2["detail"]["worst_value"].as_f64()),
        (Some("high"), Some(7.0))
    );
    assert_eq!(news2["detail"]["raised_priority"], "medium");
    // Listed by priority, then time: the three high alarms first, oldest first.
    let order: Vec<&str> = alarms.iter().map(|a| a["code"].as_str().unwrap()).collect();
    assert_eq!(order, ["news2", "consciousness_not_alert", "spo2_low"]);
}

/// An open alarm follows the patient: its value and worst value update, its priority goes up
/// (never down) as readings worsen, an acknowledged alarm that escalates is raised again, and each
/// change is announced on the live stream. "Acknowledge all" then takes one reason for the chair
/// and audits each alarm.
#[tokio::test]
async fn an_alarm_updates_and_escalates_as_readings_worsen_and_the_stream_says_so() {
    let app = spawn_app().await;
    let nurse = app.login("nurse").await;
    let doc = app.login("doc").await;
    let (pid, plan) = approved_plan(&app, &nurse, &doc, 70.0, "treatment_resistant_depression", "trd").await;
    let sid = book(&app, &nurse, &pid, plan["id"].as_str().unwrap(), "Chair E").await;
    let (s, mut stream) =
        EventStream::open(&app, &format!("/api/v1/sessions/{sid}/stream"), &nurse, Some(1)).await;
    assert_eq!(s, StatusCode::OK);
    let send = |key: &str, changes: Value| {
        let mut r = normal(key);
        for (k, v) in changes.as_object().unwrap() {
            r[k] = v.clone();
        }
        let (app, nurse, sid) = (&app, nurse.clone(), sid.clone());
        async move {
            let (s, ack) = vitals(app, &nurse, &sid, vec![r]).await;
            assert_eq!(s, StatusCode::OK, "{ack}");
            ack
        }
    };
    // HR 115 + RR 22 + T 38.2: NEWS2 5, medium.
    let ack = send(
        "e1",
        json!({"heart_rate_per_min": 115, "respiratory_rate_per_min": 22, "temperature_c": 38.2}),
    )
    .await;
    let alarm = &ack["readings"][0]["alarms"][0];
    assert_eq!(
        (alarm["code"].as_str(), alarm["level"].as_str()),
        (Some("news2"), Some("medium"))
    );
    let alarm_id = alarm["id"].as_str().unwrap().to_string();
    let events = stream.events(2).await;
    assert_eq!(
        events.iter().map(|e| e.1.as_str()).collect::<Vec<_>>(),
        ["alarm.raised", "vitals"]
    );
    // The nurse acknowledges it.
    let (s, a, _) = app
        .call(
            "POST",
            &format!("/api/v1/alarms/{alarm_id}/acknowledge"),
            Some(&nurse),
            None,
        )
        .await;
    assert_eq!((s, a["state"].as_str()), (StatusCode::OK, Some("acknowledged")));
    stream.events(1).await;
    // NEWS2 6: still medium, worse: updated and announced, still acknowledged.
    let ack = send(
        "e2",
        json!({"heart_rate_per_min": 115, "respiratory_rate_per_min": 22, "temperature_c": 39.2}),
    )
    .await;
    let a = &ack["readings"][0]["alarms"][0];
    assert_eq!(
        (a["id"].as_str(), a["level"].as_str(), a["state"].as_str()),
        (Some(alarm_id.as_str()), Some("medium"), Some("acknowledged"))
    );
    assert_eq!(
        (a["detail"]["value"].as_f64(), a["detail"]["worst_value"].as_f64()),
        (Some(6.0), Some(6.0))
    );
    let events = stream.events(2).await;
    assert_eq!(
        events.iter().map(|e| e.1.as_str()).collect::<Vec<_>>(),
        ["alarm.updated", "vitals"]
    );
    // NEWS2 rises past 7 (HR 135, RR 26, T 39.2 ...): high. Escalated: raised again, announced.
    let ack = send("e3", json!({"heart_rate_per_min": 135, "respiratory_rate_per_min": 26, "temperature_c": 39.2, "spo2_percent": 95})).await;
    let a = &ack["readings"][0]["alarms"];
    let news2 = a
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["code"] == "news2")
        .unwrap();
    let worst = news2["detail"]["value"].as_f64().unwrap();
    assert!(worst >= 7.0, "{news2}");
    assert_eq!(
        (news2["level"].as_str(), news2["state"].as_str()),
        (Some("high"), Some("raised"))
    );
    assert!(news2["acknowledged_by"].is_null());
    assert!(
        news2["detail"]["previous_acknowledgement"]["at"].is_string(),
        "{news2}"
    );
    // HR 135 is its own, new condition (medium).
    let events = stream.events(3).await;
    assert_eq!(
        events
            .iter()
            .map(|e| (e.1.as_str(), e.2["data"]["code"].as_str().unwrap_or("-")))
            .collect::<Vec<_>>(),
        [
            ("alarm.escalated", "news2"),
            ("alarm.raised", "heart_rate_high"),
            ("vitals", "-")
        ]
    );
    assert_eq!(events[0].2["data"]["level"], "high");
    // Better again (NEWS2 5): the priority stays high, the worst value stays, nothing announced
    // but the reading.
    let ack = send(
        "e4",
        json!({"heart_rate_per_min": 115, "respiratory_rate_per_min": 22, "temperature_c": 38.2}),
    )
    .await;
    let news2 = &ack["readings"][0]["alarms"][0];
    assert_eq!(
        (
            news2["level"].as_str(),
            news2["detail"]["value"].as_f64(),
            news2["detail"]["worst_value"].as_f64()
        ),
        (Some("high"), Some(5.0), Some(worst))
    );
    let events = stream.events(1).await;
    assert_eq!(events[0].1, "vitals");

    // A second condition, then "acknowledge all" for the chair with one reason.
    send("e5", json!({"spo2_percent": 88})).await;
    stream.events(2).await;
    let before = app.audit_count().await;
    let (s, b) = post(
        &app,
        &nurse,
        &format!("/api/v1/sessions/{sid}/alarms/acknowledge-all"),
        json!({"reason": "  "}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["error"]["field"], "reason");
    let (s, done) = post(
        &app,
        &nurse,
        &format!("/api/v1/sessions/{sid}/alarms/acknowledge-all"),
        json!({"reason": "at the bedside, patient reassessed"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{done}");
    let done = done.as_array().unwrap();
    let codes: Vec<&str> = done.iter().map(|a| a["code"].as_str().unwrap()).collect();
    assert_eq!(
        codes,
        ["news2", "spo2_low", "heart_rate_high"],
        "highest priority first"
    );
    assert!(done.iter().all(|a| a["state"] == "acknowledged"
        && a["detail"]["acknowledged_with"] == "at the bedside, patient reassessed"));
    assert_eq!(app.audit_count().await, before + 3, "one audit entry per alarm");
    let events = stream.events(3).await;
    assert!(events.iter().all(|e| e.1 == "alarm.acknowledged"));
    // A viewer may not.
    let viewer = app.login("viewer").await;
    let (s, _) = post(
        &app,
        &viewer,
        &format!("/api/v1/sessions/{sid}/alarms/acknowledge-all"),
        json!({"reason": "seen it"}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

/// A session left running with no readings: the dose watch raises "planned dose given" when the
/// plan's 35 mg is in (40 min at 52.5 mg/h), escalates past the 5 % tolerance, and is urgent past
/// the protocol's hard limit per session; each once, and each on the board's stream. "Completed as
/// planned" is refused while the dose given is short of the plan.
#[tokio::test]
async fn a_session_left_running_alarms_at_its_planned_dose_and_its_hard_limit() {
    let app = spawn_app().await;
    let nurse = app.login("nurse").await;
    let doc = app.login("doc").await;
    let (pid, plan) = approved_plan(&app, &nurse, &doc, 70.0, "treatment_resistant_depression", "trd").await;
    let plan_id = plan["id"].as_str().unwrap();
    assert_eq!(plan["dose_mg"], 35.0);
    let hard = plan["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["limit"] == "mg_per_session")
        .unwrap()["hard"]
        .as_f64()
        .unwrap();
    let sid = book(&app, &nurse, &pid, plan_id, "Chair D").await;
    vitals(&app, &nurse, &sid, vec![normal("d0")]).await;
    let checks: Value = serde_json::from_str(CHECKS).unwrap();
    for body in [
        json!({"event": "check_in", "checks": checks}),
        json!({"event": "start"}),
    ] {
        let (s, b) = event(&app, &nurse, &sid, body).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let watch = || async { app.state.watch_running_sessions().await.unwrap() };
    let codes = |alarms: Vec<ketaflow_app::vitals::AlarmOut>| {
        alarms
            .into_iter()
            .map(|a| {
                let stage = a.detail["stage"].as_str().unwrap_or_default().to_string();
                (a.code, a.level.code().to_string(), stage)
            })
            .collect::<Vec<_>>()
    };
    let expect =
        |code: &str, level: &str, stage: &str| vec![(code.to_string(), level.to_string(), stage.to_string())];

    // 20 min: 17.5 mg given, nothing to say about the dose; but no reading since the start, so
    // the vitals due at 15 min are overdue. And "completed as planned" is not true.
    app.advance(20 * MIN);
    assert_eq!(codes(watch().await), expect("vitals_overdue", "medium", ""));
    let (s, b) = event(&app, &nurse, &sid, json!({"event": "stop", "stop": "completed"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"]["code"], "not_as_planned");
    assert_eq!(b["error"]["field"], "stop");
    // A stop says how it ended: there is no default to "completed as planned".
    let (unsaid, refusal) = event(&app, &nurse, &sid, json!({"event": "stop"})).await;
    assert_eq!(unsaid, StatusCode::BAD_REQUEST, "{refusal}");
    assert_eq!(
        (
            refusal["error"]["field"].as_str(),
            refusal["error"]["allowed"].as_str()
        ),
        (
            Some("stop"),
            Some("completed (as planned) or early (with its reason)")
        )
    );
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("17.5 mg was given against 35.0 mg planned")
    );

    // 40 min: the planned 35 mg is in.
    app.advance(20 * MIN);
    assert_eq!(codes(watch().await), expect("dose", "medium", "planned_reached"));
    assert!(
        watch().await.is_empty(),
        "raised once while open, not rewritten every round"
    );
    // 43 min: 37.6 mg, more than 5 % past the plan: the same alarm escalates to high.
    app.advance(3 * MIN);
    let escalated = watch().await;
    assert_eq!(codes(escalated.clone()), expect("dose", "high", "beyond_plan"));
    assert_eq!(
        escalated[0].detail["first_message"]
            .as_str()
            .map(|m| m.starts_with("the planned dose is given")),
        Some(true)
    );
    // Past the hard limit per session: the same alarm, its stage and message now the hard limit.
    let minutes_to_hard = (hard / 52.5 * 60.0).ceil() as i64 + 1;
    app.advance((minutes_to_hard - 43) * MIN);
    let raised = watch().await;
    assert_eq!(codes(raised), expect("dose", "high", "beyond_hard_limit"));
    let (_, alarms) = get(&app, &nurse, &format!("/api/v1/sessions/{sid}/alarms")).await;
    let dose_alarms: Vec<&Value> = alarms
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["code"] == "dose")
        .collect();
    assert_eq!(dose_alarms.len(), 1, "one condition, one alarm: {alarms}");
    let hard_alarm = dose_alarms[0];
    assert!(
        hard_alarm["detail"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!(
                "past the protocol's hard limit of {hard:.1} mg per session"
            )),
        "{hard_alarm}"
    );
    assert_eq!(hard_alarm["detail"]["recommend_pause"], true);
    // It recommends; the pump still runs until someone stops it. Stopped now, the dose is not as
    // planned either way, so it is an early stop with its reason.
    let (_, s_now) = get(&app, &nurse, &format!("/api/v1/sessions/{sid}")).await;
    assert_eq!(s_now["state"], "infusing");
    let (s, b) = event(&app, &nurse, &sid, json!({"event": "stop", "stop": "completed"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (s, b) = event(
        &app,
        &nurse,
        &sid,
        json!({"event": "stop", "stop": "early", "reason": "stop not recorded at the planned dose"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(
        watch().await.is_empty(),
        "a stopped infusion's dose is not watched"
    );

    // The alarms went to the board's stream with everything else.
    let (_, events) = get(&app, &nurse, "/api/v1/board").await;
    assert!(events["last_event_id"].as_i64().unwrap() > 0);
    let kinds: Vec<String> = app
        .state
        .store
        .events_after(0, None, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind.starts_with("alarm."))
        .map(|e| {
            format!(
                "{} {} {}",
                e.kind,
                e.data["code"].as_str().unwrap_or_default(),
                e.data["detail"]["stage"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "alarm.raised vitals_overdue ",
            "alarm.raised dose planned_reached",
            "alarm.escalated dose beyond_plan",
            "alarm.updated dose beyond_hard_limit"
        ]
    );
}

/// The board's age of a chair's latest reading, minutes, and whether it is stale.
async fn reading_age_on_board(app: &App, token: &str, chair: &str) -> (Option<i64>, Option<bool>) {
    let (_, board) = get(app, token, "/api/v1/board").await;
    let tile = board["chairs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["chair"] == chair)
        .unwrap()
        .clone();
    (
        tile["latest_vitals_age_min"].as_i64(),
        tile["latest_vitals_stale"].as_bool(),
    )
}

/// Vitals are due by the protocol's schedule (TRD: every 30 min from check-in until the start,
/// every 10 min while infusing, every 15 min in recovery): on time, nothing; a set missed raises
/// one `vitals_overdue` alarm with the clock advanced, and resolving it lets the next lapse raise
/// again. Booked and not arrived, nothing is due.
#[tokio::test]
async fn overdue_vitals_raise_an_alarm_as_the_clock_moves() {
    let app = spawn_app().await;
    let nurse = app.login("nurse").await;
    let doc = app.login("doc").await;
    let (pid, plan) = approved_plan(&app, &nurse, &doc, 70.0, "treatment_resistant_depression", "trd").await;
    let sid = book(&app, &nurse, &pid, plan["id"].as_str().unwrap(), "Chair O").await;
    let watch = || async {
        app.state
            .watch_running_sessions()
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.code)
            .collect::<Vec<_>>()
    };
    let open_overdue = || async {
        let (_, alarms) = get(&app, &nurse, &format!("/api/v1/sessions/{sid}/alarms")).await;
        alarms
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["code"] == "vitals_overdue" && a["state"] != "resolved")
            .cloned()
            .unwrap()
    };
    let resolve = |id: String, note: &'static str| {
        let (app, nurse) = (&app, nurse.clone());
        async move {
            let (s, b) = post(
                app,
                &nurse,
                &format!("/api/v1/alarms/{id}/resolve"),
                json!({"action": "observation", "note": note}),
            )
            .await;
            assert_eq!(s, StatusCode::OK, "{b}");
        }
    };
    // Booked for hours: nothing is due before the patient arrives.
    app.advance(120 * MIN);
    assert!(watch().await.is_empty());
    vitals(&app, &nurse, &sid, vec![normal("o0")]).await;
    let checks: Value = serde_json::from_str(CHECKS).unwrap();
    let (s, b) = event(&app, &nurse, &sid, json!({"event": "check_in", "checks": checks})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // Checked in and waiting: a set every 30 min until the start.
    app.advance(30 * MIN);
    assert!(watch().await.is_empty(), "30 min after check-in: due now");
    app.advance(MIN);
    assert_eq!(watch().await, ["vitals_overdue"]);
    let overdue = open_overdue().await;
    assert_eq!(
        overdue["detail"]["message"],
        "vitals overdue by 1 min (due every 30 min before the start)"
    );
    assert!(
        overdue["detail"]["source"]
            .as_str()
            .unwrap()
            .starts_with("the protocol's monitoring schedule")
    );
    vitals(&app, &nurse, &sid, vec![normal("o-pre")]).await;
    resolve(
        overdue["id"].as_str().unwrap().to_string(),
        "set taken before the start",
    )
    .await;
    let (s, b) = event(&app, &nurse, &sid, json!({"event": "start"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // Readings at 10 and 20 min keep it quiet up to 30 min.
    for (minute, key) in [(10, "o10"), (20, "o20")] {
        app.advance(10 * MIN);
        assert!(watch().await.is_empty(), "{minute} min");
        vitals(&app, &nurse, &sid, vec![normal(key)]).await;
    }
    app.advance(10 * MIN);
    assert!(watch().await.is_empty(), "30 min: due now, not yet late");
    app.advance(MIN);
    assert_eq!(watch().await, ["vitals_overdue"]);
    assert!(watch().await.is_empty(), "raised once while open");
    let overdue = open_overdue().await;
    assert_eq!(
        overdue["detail"]["message"],
        "vitals overdue by 1 min (due every 10 min while infusing)"
    );
    assert_eq!(
        overdue["detail"]["clinic_setting"], false,
        "the protocol names the interval and its source"
    );
    assert_eq!(overdue["level"], "medium");
    // The board says how old the latest reading is, and that it is not current.
    assert_eq!(
        reading_age_on_board(&app, &nurse, "Chair O").await,
        (Some(11), Some(true))
    );
    // The set is taken and the alarm resolved; the next lapse raises again.
    vitals(&app, &nurse, &sid, vec![normal("o31")]).await;
    assert_eq!(
        reading_age_on_board(&app, &nurse, "Chair O").await,
        (Some(0), Some(false))
    );
    resolve(overdue["id"].as_str().unwrap().to_string(), "set taken at 31 min").await;
    // 40 min: the planned dose is in (its own alarm); stopped as planned and into recovery, the
    // recovery schedule applies from the stop: due at 55 min, late at 56.
    app.advance(9 * MIN);
    assert_eq!(watch().await, ["dose"]);
    for body in [
        json!({"event": "stop", "stop": "completed"}),
        json!({"event": "begin_recovery"}),
    ] {
        let (s, b) = event(&app, &nurse, &sid, body).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    app.advance(15 * MIN);
    assert!(watch().await.is_empty(), "55 min: due now");
    app.advance(MIN);
    assert_eq!(watch().await, ["vitals_overdue"]);
    let (_, alarms) = get(&app, &nurse, &format!("/api/v1/sessions/{sid}/alarms")).await;
    let again = alarms
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["code"] == "vitals_overdue" && a["state"] != "resolved")
        .unwrap();
    assert_eq!(
        again["detail"]["message"],
        "vitals overdue by 1 min (due every 15 min in recovery)"
    );
}
