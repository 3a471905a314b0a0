//! The session screen and the board, driven as a browser drives them: forms posted with the
//! session cookie and CSRF token, answers read from the HTML and checked against the JSON API.

use ketaflow_test_support as common;

use axum::http::StatusCode;
use common::{App, Browser, get, spawn_app, texts};
use serde_json::{Value, json};

/// A 70-kg patient with an approved TRD plan booked in Chair 3; returns the session id.
async fn booked(app: &App) -> String {
    let (nurse, doc) = (app.login("nurse").await, app.login("doc").await);
    app.booked_session(&nurse, &doc, "Chair 3").await.1
}

async fn api(app: &App, path: &str) -> Value {
    let token = app.login("doc").await;
    let (s, body) = get(app, &token, path).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    body
}

const NORMAL: [(&str, &str); 7] = [
    ("systolic_mmhg", "122"),
    ("diastolic_mmhg", "78"),
    ("heart_rate_per_min", "72"),
    ("spo2_percent", "98"),
    ("respiratory_rate_per_min", "14"),
    ("temperature_c", "36.7"),
    ("consciousness", "alert"),
];

async fn reading(nurse: &Browser<'_>, sid: &str, key: &str, changes: &[(&str, &str)]) -> common::Page {
    let mut fields: Vec<(&str, &str)> = NORMAL
        .iter()
        .map(|(k, v)| (*k, changes.iter().find(|(c, _)| c == k).map_or(*v, |(_, v)| *v)))
        .collect();
    fields.push(("idempotency_key", key));
    nurse.post(&format!("/sessions/{sid}/vitals"), &fields).await
}

/// The check-in form with every pre-check ticked.
const CHECK_IN: [(&str, &str); 5] = [
    ("event", "check_in"),
    ("fasting_confirmed", "on"),
    ("escort_confirmed", "on"),
    ("consent_on_file", "on"),
    ("questionnaire_answered", "on"),
];

async fn event(b: &Browser<'_>, sid: &str, fields: &[(&str, &str)]) -> common::Page {
    b.post(&format!("/sessions/{sid}/transition"), fields).await
}

#[tokio::test]
async fn a_nurse_runs_a_session_through_the_screen_and_every_answer_matches_the_api() {
    let app = spawn_app().await;
    let sid = booked(&app).await;
    let nurse = app.browser("nurse").await;
    let screen = format!("/sessions/{sid}");

    let page = nurse.get(&screen).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.shows(r#"data-session-state="scheduled""#));
    assert!(page.shows(r#"id="check-in""#));
    // Only the events legal now have buttons.
    assert!(!page.shows("Start infusion"));

    // An impossible SpO2 is refused: nothing stored, the typed values kept, the error by the field.
    let page = reading(&nurse, &sid, "k-bad", &[("spo2_percent", "140")]).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(
        page.shows(r#"name="spo2_percent" inputmode="decimal" value="140""#),
        "{}",
        page.html
    );
    assert!(page.shows(r#"name="systolic_mmhg" inputmode="decimal" value="122""#));
    assert!(page.shows(r#"<span class="field-error" id="e-spo2_percent">allowed: "#));
    assert!(page.shows(r#"aria-invalid="true" aria-describedby="e-spo2_percent""#));
    // The refused form keeps its idempotency key, so a corrected resubmission is the same reading.
    assert!(page.shows(r#"name="idempotency_key" value="k-bad""#));
    assert_eq!(
        api(&app, &format!("/api/v1/sessions/{sid}/vitals")).await,
        json!([])
    );

    // A reading, submitted twice (a double tap), is stored once.
    for _ in 0..2 {
        let page = reading(&nurse, &sid, "k-1", &[]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert_eq!(page.location.as_deref(), Some(screen.as_str()));
    }
    let stored = api(&app, &format!("/api/v1/sessions/{sid}/vitals")).await;
    assert_eq!(stored.as_array().unwrap().len(), 1);
    assert_eq!(stored[0]["reading"]["systolic_mmhg"], 122.0);
    assert_eq!(stored[0]["source"], "manual");

    // Check-in without the checks is refused with the reason; with them it passes.
    let page = event(&nurse, &sid, &[("event", "check_in")]).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", page.html);
    assert!(page.shows(r#"role="alert""#));
    assert_eq!(event(&nurse, &sid, &CHECK_IN).await.status, StatusCode::SEE_OTHER);
    assert_eq!(
        event(&nurse, &sid, &[("event", "start")]).await.status,
        StatusCode::SEE_OTHER
    );
    // An event not legal now is a 409 that names the legal ones.
    let page = event(&nurse, &sid, &[("event", "resume")]).await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    assert!(page.shows("legal now: pause, stop, abort"), "{}", page.html);

    app.advance(10 * 60);
    let session = api(&app, &format!("/api/v1/sessions/{sid}")).await;
    assert_eq!(session["state"], "infusing");
    let page = nurse.get(&screen).await;
    // 70 kg × 0.5 mg/kg over 40 min: 52.5 mg/h, 0.750 mg/kg/h, 52.5 mL/h at 1 mg/mL; 8.75 mg in 10 min.
    assert!(
        page.shows("<b>52.5 mg/h</b> · 0.750 mg/kg/h · pump <b>52.5 mL/h</b>"),
        "{}",
        page.html
    );
    assert!(page.shows("8.8 mg over 10 min of infusion"));
    assert!(page.shows(r#"data-elapsed="600""#));
    assert!(page.shows("Predicted concentrations from what was given"));

    // SBP 186 raises alarms: on the screen and in the live panel.
    assert_eq!(
        reading(&nurse, &sid, "k-2", &[("systolic_mmhg", "186")])
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    let alarms = api(&app, &format!("/api/v1/sessions/{sid}/alarms")).await;
    let alarms = alarms.as_array().unwrap();
    assert!(alarms.iter().any(|a| a["code"] == "systolic_high"), "{alarms:?}");
    let live = nurse.get(&format!("/sessions/{sid}/live")).await;
    assert_eq!(live.status, StatusCode::OK);
    assert!(!live.shows("<html"), "the live panel is a fragment");
    assert!(live.shows("systolic 186 mmHg"), "{}", live.html);
    assert_eq!(
        live.html.matches(r#"data-alarm-state="raised""#).count(),
        alarms.len()
    );

    // Acknowledge and resolve each through its form.
    for a in alarms {
        let id = a["id"].as_str().unwrap();
        let page = nurse
            .post(&format!("/sessions/{sid}/alarms/{id}/acknowledge"), &[])
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
    }
    let page = nurse.get(&screen).await;
    assert_eq!(
        page.html.matches(r#"data-alarm-state="acknowledged""#).count(),
        alarms.len()
    );
    let first = alarms[0]["id"].as_str().unwrap();
    // A resolution without the action is refused and the alarm stays open.
    let page = nurse
        .post(
            &format!("/sessions/{sid}/alarms/{first}/resolve"),
            &[("action", "")],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.html);
    for a in alarms {
        let id = a["id"].as_str().unwrap();
        let page = nurse
            .post(
                &format!("/sessions/{sid}/alarms/{id}/resolve"),
                &[("action", "observation"), ("note", "repeat BP in 5 min")],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    }
    let alarms = api(&app, &format!("/api/v1/sessions/{sid}/alarms")).await;
    assert!(alarms.as_array().unwrap().iter().all(|a| a["state"] == "resolved"
        && a["action"] == "observation"
        && a["acknowledged_by"].is_string()));
    assert!(
        nurse
            .get(&screen)
            .await
            .shows("Alarms <small>— none open</small>")
    );

    // A side effect with its CADSS-6 items.
    let mut fields = vec![
        ("kind", "dissociation"),
        ("severity", "mild"),
        ("action", "reassurance"),
    ];
    let items = [
        ("cadss1", "1"),
        ("cadss2", "2"),
        ("cadss3", "0"),
        ("cadss4", "1"),
        ("cadss5", "0"),
        ("cadss6", "1"),
    ];
    fields.extend_from_slice(&items);
    assert_eq!(
        nurse
            .post(&format!("/sessions/{sid}/side-effects"), &fields)
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    assert!(nurse.get(&screen).await.shows("CADSS-6 5/24"));

    // Planned: 35 mg over 40 min. At 10 min it is not reached; at 41 min it is, on the board and
    // on the screen, while the session still says infusing.
    let board = api(&app, "/api/v1/board").await;
    assert_eq!(board["chairs"][0]["planned_dose_mg"], 35.0);
    assert_eq!(board["chairs"][0]["planned_duration_min"], 40.0);
    assert_eq!(board["chairs"][0]["planned_dose_reached"], false);
    assert!(
        nurse
            .get(&screen)
            .await
            .shows("35.0 mg over 40 min (0.500 mg/kg, pump 52.5 mL/h)")
    );
    app.advance(31 * 60);
    let board = api(&app, "/api/v1/board").await;
    assert_eq!(board["chairs"][0]["planned_dose_reached"], true);
    assert!(nurse.get(&screen).await.shows("The planned dose has been given."));
    assert!(
        nurse
            .get("/board/chairs")
            .await
            .shows("Planned dose given: stop the infusion")
    );

    // Stop (confirmed on the page), recovery, assessment, and the discharge checklist.
    assert_eq!(
        event(&nurse, &sid, &[("event", "stop"), ("stop", "completed")])
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        event(&nurse, &sid, &[("event", "begin_recovery")]).await.status,
        StatusCode::SEE_OTHER
    );
    let aldrete = [
        ("activity", "2"),
        ("respiration", "2"),
        ("circulation", "2"),
        ("consciousness", "2"),
        ("spo2", "2"),
        ("moaas", "5"),
        ("escort_present", "yes"),
    ];
    assert_eq!(
        nurse
            .post(&format!("/sessions/{sid}/assessments"), &aldrete)
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    let page = nurse.get(&screen).await;
    assert!(page.shows("Discharge checklist"));
    assert!(
        page.shows(r#"<li class="unmet"><b>minimum observation time</b>"#),
        "{}",
        page.html
    );
    assert!(page.shows(r#"<li class="met"><b>modified Aldrete score</b>"#));
    // Sources in clinical words: the citation stays, the project's notes to itself do not.
    assert!(
        page.shows("Aldrete JA, J Clin Anesth 1995;7:89-91, citation not yet confirmed"),
        "{}",
        page.html
    );
    assert!(
        !page.shows("clinical.md") && !page.shows("UNVERIFIED"),
        "{}",
        page.html
    );
    assert!(page.shows("No driving"), "discharge instructions are shown");
    // Early discharge is refused with the unmet criteria; after the observation time it passes.
    let page = event(&nurse, &sid, &[("event", "discharge")]).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.shows("discharge criteria not met: minimum observation time"),
        "{}",
        page.html
    );
    assert!(!page.shows("min_observation"));
    app.advance(3 * 3600);
    let nurse = app.browser("nurse").await;
    assert_eq!(
        reading(&nurse, &sid, "k-3", &[]).await.status,
        StatusCode::SEE_OTHER
    );
    assert!(nurse.get(&screen).await.shows("Every criterion is met."));
    assert_eq!(
        event(&nurse, &sid, &[("event", "discharge")]).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        api(&app, &format!("/api/v1/sessions/{sid}")).await["state"],
        "discharged"
    );
    let page = nurse.get(&screen).await;
    assert!(page.shows("The session is closed."));
    assert!(!page.shows(r#"id="vitals-form""#));
}

#[tokio::test]
async fn a_soft_breaching_rate_asks_a_physician_for_a_reason_per_limit_and_a_hard_one_never_passes() {
    let app = spawn_app().await;
    let sid = booked(&app).await;
    let nurse = app.browser("nurse").await;
    let doc = app.browser("doc").await;
    assert_eq!(
        reading(&nurse, &sid, "k-0", &[]).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(event(&nurse, &sid, &CHECK_IN).await.status, StatusCode::SEE_OTHER);
    assert_eq!(
        event(&nurse, &sid, &[("event", "start")]).await.status,
        StatusCode::SEE_OTHER
    );
    let rate = format!("/sessions/{sid}/rate");

    // 1.2 mg/kg/h is above the TRD protocol's soft 1.0 mg/kg/h: a nurse may not set it.
    let page = nurse
        .post(
            &rate,
            &[("rate_mg_per_kg_per_h", "1.2"), ("reason", "poor response")],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.html);
    assert!(
        page.shows("Soft limit <b>rate_mg_per_kg_per_h</b> is breached: a physician must set this rate.")
    );
    assert!(page.shows(r#"value="1.2""#));

    // A physician is asked for one reason per breached limit, then sets it with them.
    let page = doc
        .post(
            &rate,
            &[("rate_mg_per_kg_per_h", "1.2"), ("reason", "poor response")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", page.html);
    // The projected session dose (dose_mg_per_kg) is breached too: one reason field each.
    let asked: Vec<String> = page
        .html
        .split(r#"name="override."#)
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .collect();
    assert_eq!(asked, ["dose_mg_per_kg", "rate_mg_per_kg_per_h"], "{}", page.html);
    // What was typed is kept.
    assert!(page.shows(r#"value="1.2""#) && page.shows(r#"value="poor response""#));
    let names: Vec<String> = asked.iter().map(|l| format!("override.{l}")).collect();
    let mut fields = vec![("rate_mg_per_kg_per_h", "1.2"), ("reason", "poor response")];
    fields.extend(
        names
            .iter()
            .map(|n| (n.as_str(), "tolerated 1.2 mg/kg/h last session")),
    );
    let page = doc.post(&rate, &fields).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    let session = api(&app, &format!("/api/v1/sessions/{sid}")).await;
    let last = session["rates"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["rate_mg_per_kg_per_h"], 1.2);
    assert_eq!(last["rate_mg_per_h"], 84.0);
    let limits = texts(&last["overrides"], "limit");
    assert_eq!(limits, ["dose_mg_per_kg", "rate_mg_per_kg_per_h"]);

    // 2.5 mg/kg/h is beyond the hard 2.0 mg/kg/h: refused for everyone, nothing changes.
    let page = doc
        .post(
            &rate,
            &[
                ("rate_mg_per_kg_per_h", "2.5"),
                ("reason", "x-test"),
                ("override.rate_mg_per_kg_per_h", "no"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.shows("hard limit"), "{}", page.html);
    let after = api(&app, &format!("/api/v1/sessions/{sid}")).await;
    assert_eq!(after["rates"], session["rates"]);
}

#[tokio::test]
async fn viewers_see_no_forms_forged_posts_change_nothing_and_strangers_go_to_the_login() {
    let app = spawn_app().await;
    let sid = booked(&app).await;
    let screen = format!("/sessions/{sid}");

    // Not logged in: every page sends the browser to the login form.
    let stranger = Browser {
        app: &app,
        token: "0".repeat(64),
        csrf: String::new(),
    };
    for path in [screen.as_str(), "/board", "/board/chairs"] {
        let page = stranger.get(path).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(page.location.as_deref(), Some("/login"));
    }

    let viewer = app.browser("viewer").await;
    let page = viewer.get(&screen).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.shows("/vitals\""));
    assert!(!page.shows("/transition\""));
    let before = app.audit_count().await;
    let page = reading(&viewer, &sid, "v-1", &[]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.shows("your role (viewer) may not"), "{}", page.html);

    // A nurse's form without the CSRF token (a forged cross-site post) is refused.
    let nurse = app.browser("nurse").await;
    let page = nurse
        .post_raw(
            &format!("/sessions/{sid}/transition"),
            &[("event", "abort"), ("reason", "forged")],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.shows("CSRF token missing or wrong"));
    let page = nurse
        .post_raw(
            &format!("/sessions/{sid}/transition"),
            &[
                ("csrf", &"0".repeat(64)),
                ("event", "abort"),
                ("reason", "forged"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(app.audit_count().await, before);
    assert_eq!(
        api(&app, &format!("/api/v1/sessions/{sid}")).await["state"],
        "scheduled"
    );

    // A form address opened as a page goes back to the screen.
    let page = nurse.get(&format!("/sessions/{sid}/transition")).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location.as_deref(), Some(screen.as_str()));

    // The board lists the chair with a link to the screen; pages are never cached or framed.
    let page = nurse.get("/board").await;
    assert!(page.shows(&format!(
        r#"href="/sessions/{sid}" data-chair="Chair 3" data-state="scheduled""#
    )));
    assert!(page.shows(r#"data-live-stream="/api/v1/board/stream?after="#));
}

/// Stores readings `from..to` of a session at 1 Hz from `start`, shaped as the API stores one
/// (`template`), straight into the store: four hours of a monitor without four hours of requests.
async fn monitor_readings(
    app: &App,
    sid: &str,
    start: time::OffsetDateTime,
    template: &Value,
    from: usize,
    to: usize,
) {
    let session = uuid::Uuid::parse_str(sid).unwrap();
    let keys: Vec<String> = (from..to).map(|i| format!("monitor-{i}")).collect();
    let data: Vec<Value> = (from..to)
        .map(|i| {
            let at = start + time::Duration::seconds(i as i64);
            let mut d = template.clone();
            d["idempotency_key"] = json!(keys[i - from]);
            d["taken_at"] = json!(at.format(&time::format_description::well_known::Rfc3339).unwrap());
            // A slow drift, and one desaturation to 85 % at reading 9,000 (2.5 h in).
            d["heart_rate_per_min"] = json!(70 + (i % 600) / 60);
            d["spo2_percent"] = json!(if i == 9_000 { 85 } else { 97 });
            d
        })
        .collect();
    for chunk in (0..keys.len()).collect::<Vec<_>>().chunks(2_000) {
        let batch: Vec<ketaflow_store::NewVital> = chunk
            .iter()
            .map(|&k| ketaflow_store::NewVital {
                session_id: session,
                idempotency_key: &keys[k],
                taken_at: start + time::Duration::seconds((from + k) as i64),
                received_at: start + time::Duration::seconds((from + k) as i64),
                source: "device",
                recorded_by: "bedside monitor",
                data: &data[k],
            })
            .collect();
        let mut tx = app.state.store.begin().await.unwrap();
        tx.insert_vitals(&batch).await.unwrap();
        tx.commit().await.unwrap();
    }
}

/// The live fragment (refreshed on every event) reads the same number of times and answers in a
/// bounded size however long the session: 100 readings, 1 h and 4 h at 1 Hz. The history chart
/// keeps a single desaturation of a 4-hour session visible.
#[tokio::test]
async fn the_live_fragment_costs_the_same_with_100_readings_as_with_4_hours_at_1_hz() {
    let app = spawn_app().await;
    let sid = booked(&app).await;
    let nurse = app.browser("nurse").await;
    // A baseline reading typed by the nurse, then check-in and start.
    assert_eq!(
        reading(&nurse, &sid, "typed", &[]).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(event(&nurse, &sid, &CHECK_IN).await.status, StatusCode::SEE_OTHER);
    assert_eq!(
        event(&nurse, &sid, &[("event", "start")]).await.status,
        StatusCode::SEE_OTHER
    );
    let start = app.now() + time::Duration::seconds(1);
    let template = api(&app, &format!("/api/v1/sessions/{sid}/vitals")).await[0]["reading"].clone();
    let live = format!("/sessions/{sid}/live");
    let store = app.state.store.clone();
    let mut measured = Vec::new();
    let mut stored = 1;
    for total in [100, 3_600, 14_400] {
        monitor_readings(&app, &sid, start, &template, stored, total).await;
        stored = total;
        let before = store.operations();
        let page = nurse.get(&live).await;
        let operations = store.operations() - before;
        assert_eq!(page.status, StatusCode::OK);
        measured.push((total, operations, page.html.len(), page.html));
    }
    let (ops, sizes): (Vec<u64>, Vec<usize>) = measured.iter().map(|m| (m.1, m.2)).unzip();
    eprintln!(
        "live fragment: readings, store operations, bytes: {:?}",
        measured.iter().map(|m| (m.0, m.1, m.2)).collect::<Vec<_>>()
    );
    assert!(
        ops.iter().all(|o| *o == ops[0]),
        "store operations per refresh: {ops:?}"
    );
    // Past 120 readings the history is 120 groups with their ranges shaded, so 1 h and 4 h answer
    // in the same size (to within the digits of the numbers); 100 readings are charted one by one,
    // without ranges, so they answer in less.
    let (hour, four_hours) = (sizes[1] as f64, sizes[2] as f64);
    assert!((four_hours - hour).abs() / hour < 0.01, "sizes {sizes:?}");
    assert!(sizes[2] < 3 * sizes[0], "sizes {sizes:?}");
    let html = &measured[2].3;
    assert!(html.contains("14400 readings in 120 groups"), "{html}");
    assert!(html.contains("SpO₂ range"), "{html}");
    // The 12 latest readings are listed in full.
    assert_eq!(html.matches("<td>device</td>").count(), 12, "{html}");
    // The desaturation survives the grouping: one group's lowest SpO2 is 85 %, every other's 97 %.
    let doc = app
        .state
        .store
        .get_user_by_username("doc")
        .await
        .unwrap()
        .unwrap();
    let screen = app
        .state
        .session_screen(
            &ketaflow_app::policy::Caller { user: doc },
            sid.parse().unwrap(),
            false,
        )
        .await
        .unwrap();
    let spo2 = ketaflow_app::screen::CHARTED_VITALS
        .iter()
        .position(|f| *f == "spo2_percent")
        .unwrap();
    let lows: Vec<f64> = screen.history.iter().filter_map(|b| b.min[spo2]).collect();
    assert_eq!(lows.len(), 120);
    assert_eq!(lows.iter().filter(|l| **l == 85.0).count(), 1, "{lows:?}");
    assert!(lows.iter().all(|l| *l == 85.0 || *l == 97.0), "{lows:?}");
    assert_eq!(screen.history.iter().map(|b| b.readings).sum::<i64>(), 14_400);
}

/// The session screen lists open alarms highest priority first with their priority in words, and
/// "acknowledge all" takes one reason for the chair.
#[tokio::test]
async fn alarms_show_by_priority_and_a_chair_is_acknowledged_at_once_with_one_reason() {
    let app = spawn_app().await;
    let sid = booked(&app).await;
    let nurse = app.browser("nurse").await;
    // HR 125 (medium) first, then SpO2 88 (high): the high one is listed first.
    let page = reading(&nurse, &sid, "p1", &[("heart_rate_per_min", "125")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    let page = reading(&nurse, &sid, "p2", &[("spo2_percent", "88")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    assert_eq!(event(&nurse, &sid, &CHECK_IN).await.status, StatusCode::SEE_OTHER);
    let live = nurse.get(&format!("/sessions/{sid}/live")).await;
    let high = live.html.find("HIGH: SpO2 88 % &#60; 92");
    let medium = live.html.find("MEDIUM: heart rate 125/min ≥ 120");
    assert!(high.is_some() && medium.is_some(), "{}", live.html);
    assert!(high < medium, "high priority first");
    assert!(
        live.shows("data-ack-all"),
        "two raised alarms: acknowledge all is offered"
    );
    // Without a reason: refused, nothing acknowledged.
    let page = nurse
        .post(
            &format!("/sessions/{sid}/alarms/acknowledge-all"),
            &[("reason", "")],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.html);
    let alarms = api(&app, &format!("/api/v1/sessions/{sid}/alarms")).await;
    assert!(alarms.as_array().unwrap().iter().all(|a| a["state"] == "raised"));
    let page = nurse
        .post(
            &format!("/sessions/{sid}/alarms/acknowledge-all"),
            &[("reason", "at the bedside, probe repositioned")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    let alarms = api(&app, &format!("/api/v1/sessions/{sid}/alarms")).await;
    let alarms = alarms.as_array().unwrap();
    assert_eq!(alarms.len(), 2);
    assert!(
        alarms.iter().all(|a| a["state"] == "acknowledged"
            && a["detail"]["acknowledged_with"] == "at the bedside, probe repositioned"),
        "{alarms:?}"
    );
    let live = nurse.get(&format!("/sessions/{sid}/live")).await;
    assert!(!live.shows("data-ack-all"), "nothing left to acknowledge");
    // Each reading's age is on the screen and the board; 40 minutes on, the latest set is older
    // than the protocol's 30 min before the start, and the board says it is not current.
    assert!(live.shows("<td data-age>0 min ago</td>"), "{}", live.html);
    assert!(
        live.shows("Vitals due every 30 min from check-in until the start"),
        "{}",
        live.html
    );
    let tiles = nurse.get("/board/chairs").await;
    assert!(tiles.shows(", 0 min ago</div>"), "{}", tiles.html);
    assert!(tiles.shows(r#"data-vitals-stale="false""#));
    app.advance(40 * 60);
    let nurse = app.browser("nurse").await;
    let tiles = nurse.get("/board/chairs").await;
    assert!(tiles.shows(r#"data-vitals-stale="true""#), "{}", tiles.html);
    assert!(
        tiles.shows(", 40 min ago · <span class=\"badge warn\">overdue: not current</span>"),
        "{}",
        tiles.html
    );
}

/// The board as a monitor wall: the chair with the worst open alarm comes first (high before
/// medium, unacknowledged before acknowledged), priority is told by a word and "!" marks as well as
/// colour, abnormal values carry an arrow and the condition in words, and NEWS2 is shown; the API's
/// order and flags are the same.
#[tokio::test]
async fn the_board_puts_the_worst_alarm_first_and_marks_abnormal_values() {
    let app = spawn_app().await;
    let (nurse_token, doc_token) = (app.login("nurse").await, app.login("doc").await);
    let nurse = app.browser("nurse").await;
    let mut sessions = Vec::new();
    for chair in ["Chair 1", "Chair 2", "Chair 3", "Chair 4"] {
        sessions.push(app.booked_session(&nurse_token, &doc_token, chair).await.1);
    }
    // Chair 1 normal; Chair 2 HR 125 (medium); Chairs 3 and 4 SpO2 88 (high), Chair 3's acknowledged.
    for (sid, changes) in [
        (&sessions[0], &[][..]),
        (&sessions[1], &[("heart_rate_per_min", "125")][..]),
        (&sessions[2], &[("spo2_percent", "88")][..]),
        (&sessions[3], &[("spo2_percent", "88")][..]),
    ] {
        let page = reading(&nurse, sid, "r1", changes).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    }
    let alarms = api(&app, &format!("/api/v1/sessions/{}/alarms", sessions[2])).await;
    let alarm_id = alarms[0]["id"].as_str().unwrap().to_string();
    let (s, b) = common::post(
        &app,
        &nurse_token,
        &format!("/api/v1/alarms/{alarm_id}/acknowledge"),
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    let board = api(&app, "/api/v1/board").await;
    let chairs: Vec<&str> = board["chairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["chair"].as_str().unwrap())
        .collect();
    assert_eq!(chairs, ["Chair 4", "Chair 3", "Chair 2", "Chair 1"]);
    let flags = |i: usize| board["chairs"][i]["latest_vitals_flags"].clone();
    assert_eq!(
        flags(0),
        json!([{"measure": "spo2", "direction": "low", "priority": "high", "reason": "SpO2 88 % < 92"}])
    );
    assert_eq!(
        flags(2),
        json!([{"measure": "heart_rate", "direction": "high", "priority": "medium",
                "reason": "heart rate 125/min ≥ 120"}])
    );
    assert_eq!(flags(3), json!([]));

    let tiles = nurse.get("/board/chairs").await;
    let at = |chair: &str| tiles.html.find(&format!(r#"data-chair="{chair}""#)).unwrap();
    assert!(at("Chair 4") < at("Chair 3") && at("Chair 3") < at("Chair 2") && at("Chair 2") < at("Chair 1"));
    assert!(
        tiles.shows(r#"<a class="chair alarm alarm-high" href="/sessions/"#),
        "{}",
        tiles.html
    );
    assert!(tiles.shows(r#"data-alarm-priority="high" data-unacknowledged="high">"#));
    assert!(tiles.shows(r#"data-alarm-priority="medium" data-unacknowledged="medium">"#));
    // Chair 3: high, acknowledged: still high on the wall, but nothing calls for sound.
    let chair3 = &tiles.html[at("Chair 3")..at("Chair 2")];
    assert!(
        chair3.starts_with(r#"data-chair="Chair 3" data-state="scheduled" data-alarm-priority="high">"#),
        "{chair3}"
    );
    assert!(chair3.contains(
        r#"<span class="symbol" aria-hidden="true">!!!</span> HIGH PRIORITY ALARM: SpO2 88 % &#60; 92 <span class="acked">(acknowledged)</span>"#
    ));
    let chair2 = &tiles.html[at("Chair 2")..at("Chair 1")];
    assert!(chair2.contains(r#"<span class="symbol" aria-hidden="true">!!</span> MEDIUM PRIORITY ALARM: heart rate 125/min ≥ 120</div>"#), "{chair2}");
    // The abnormal value: an arrow for the eye, the condition for a screen reader and the tooltip.
    assert!(chair2.contains(
        r#"<div class="abnormal" title="high: heart rate 125/min ≥ 120"><span>HR /min</span><b>125</b><i aria-hidden="true">▲</i><span class="sr-only"> (high: heart rate 125/min ≥ 120)</span></div>"#
    ), "{chair2}");
    assert!(chair3.contains(
        r#"title="low: SpO2 88 % &#60; 92"><span>SpO₂ %</span><b>88</b><i aria-hidden="true">▼</i>"#
    ));
    // NEWS2 is on every tile with a complete set: 0 for the normal one, 3 for SpO2 88 (scale 1,
    // ≤ 91: 3), 2 for HR 125 (111–130: 2).
    let chair1 = &tiles.html[at("Chair 1")..];
    assert!(
        chair1.contains("<div><span>NEWS2</span><b>0</b></div>"),
        "{chair1}"
    );
    assert!(!chair1.contains("abnormal"));
    assert!(chair3.contains("<span>NEWS2</span><b>3</b>"));
    assert!(chair2.contains("<div><span>NEWS2</span><b>2</b></div>"));
    // The session screen marks its readings the same way.
    let live = nurse.get(&format!("/sessions/{}/live", sessions[1])).await;
    assert!(live.shows(r#"HR /min <b class="abnormal" title="high: heart rate 125/min ≥ 120">125 <span aria-hidden="true">▲</span>"#), "{}", live.html);
    assert!(live.shows(r#"<span class="symbol" aria-hidden="true">!!</span> MEDIUM: heart rate 125/min"#));
}
