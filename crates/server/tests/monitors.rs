//! Bedside monitors over HL7 v2 / MLLP, as a monitor on a real TCP connection sees the clinic: a
//! registered monitor at a chair, a patient checked in there, PCD-01 messages in and ACKs out.

use ketaflow_test_support as common;

use axum::http::StatusCode;
use common::{App, CHECKS, EventStream, event, get, normal, post, spawn_app, vitals};
use ketaflow_hl7::ack::dtm;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DEVICE: &str = "0012A3FFFE45B6C7";

/// A PCD-01 ORU^R01 from the monitor: SpO2, heart rate and respiratory rate at `minutes_ago`.
fn message(app: &App, control_id: &str, device: &str, spo2: &str, minutes_ago: i64) -> String {
    let at = dtm(app.now() - time::Duration::minutes(minutes_ago));
    [
        format!("MSH|^~\\&|KF_MON^{device}^EUI-64|Clinic|||{at}||ORU^R01^ORU_R01|{control_id}|P|2.6|||NE|AL"),
        format!("OBR|1|||182777000^monitoring of patient^SCT|||{at}"),
        format!("OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X|||||||{device}^EUI-64"),
        format!(
            "OBX|2|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.3.1.1|{spo2}|262688^MDC_DIM_PERCENT^MDC|||||R|||{at}"
        ),
        format!(
            "OBX|3|NM|147842^MDC_ECG_HEART_RATE^MDC|1.2.1.1|76|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R|||{at}"
        ),
        format!("OBX|4|NM|151562^MDC_RESP_RATE^MDC|1.4.1.1|14|264928^MDC_DIM_RESP_PER_MIN^MDC|||||R|||{at}"),
    ]
    .join("\r")
        + "\r"
}

/// Sends one framed message and reads one framed answer; returns the answer's segments.
async fn exchange(stream: &mut TcpStream, text: &[u8]) -> Vec<String> {
    let mut framed = vec![0x0B];
    framed.extend_from_slice(text);
    framed.extend_from_slice(&[0x1C, 0x0D]);
    stream.write_all(&framed).await.unwrap();
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(&[0x1C, 0x0D]) {
        stream.read_exact(&mut byte).await.unwrap();
        answer.push(byte[0]);
    }
    let text = String::from_utf8(answer[1..answer.len() - 2].to_vec()).unwrap();
    text.split('\r')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn field(segments: &[String], segment: &str, n: usize) -> String {
    let s = segments
        .iter()
        .find(|s| s.starts_with(&format!("{segment}|")))
        .unwrap_or_else(|| panic!("no {segment} in {segments:?}"));
    // MSH-1 is the field separator itself, so MSH's fields sit one place to the left.
    let index = if segment == "MSH" { n - 1 } else { n };
    s.split('|').nth(index).unwrap_or("").to_string()
}

async fn listen(app: &App) -> TcpStream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(ketaflow_server::mllp::serve(
        listener,
        app.state.clone(),
        std::future::pending(),
    ));
    TcpStream::connect(address).await.unwrap()
}

async fn readings(app: &App, token: &str, sid: &str) -> Vec<Value> {
    let (s, list) = get(app, token, &format!("/api/v1/sessions/{sid}/vitals")).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    list.as_array().unwrap().clone()
}

#[tokio::test]
async fn a_monitor_at_a_chair_feeds_the_session_there_and_every_answer_is_an_ack() {
    let app = spawn_app().await;
    let (admin, nurse, doc) = (
        app.login("admin").await,
        app.login("nurse").await,
        app.login("doc").await,
    );
    let sid = app.booked_session(&nurse, &doc, "Chair 4").await.1;
    let mut monitor = listen(&app).await;

    // Not registered: AE naming where the identifier was read, nothing stored.
    let ack = exchange(&mut monitor, message(&app, "M-1", DEVICE, "97", 1).as_bytes()).await;
    assert_eq!(
        (field(&ack, "MSA", 1), field(&ack, "MSA", 2)),
        ("AE".into(), "M-1".into())
    );
    assert_eq!(field(&ack, "ERR", 2), "OBX^1^18");
    assert_eq!(field(&ack, "ERR", 3), "207^Application error^HL70357");
    assert!(field(&ack, "ERR", 5).starts_with("UNKNOWN_DEVICE^"));
    assert!(
        field(&ack, "ERR", 8).contains("monitor 0012A3FFFE45B6C7 is not registered"),
        "{ack:?}"
    );

    // An administrator registers it; a nurse may not.
    let device = json!({"identifier": DEVICE.to_lowercase(), "model": "VS-3 vital-signs monitor", "serial": "SN-0042", "location": "bay 2"});
    let (s, _) = post(&app, &nurse, "/api/v1/devices", device.clone()).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, registered) = post(&app, &admin, "/api/v1/devices", device.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{registered}");
    assert_eq!(
        registered["identifier"], DEVICE,
        "identifiers are matched in upper case"
    );
    let (s, again) = post(&app, &admin, "/api/v1/devices", device).await;
    assert_eq!(s, StatusCode::CONFLICT, "{again}");
    let device_id = registered["id"].as_str().unwrap();

    // Registered but at no chair; then at Chair 4, whose patient is not yet checked in: AE, and
    // nothing is stored against a patient.
    let ack = exchange(&mut monitor, message(&app, "M-2", DEVICE, "97", 1).as_bytes()).await;
    assert!(
        field(&ack, "ERR", 5).starts_with("NO_SESSION^") && field(&ack, "ERR", 8).contains("not at a chair"),
        "{ack:?}"
    );
    let (s, placed) = post(
        &app,
        &nurse,
        &format!("/api/v1/devices/{device_id}/chair"),
        json!({"chair": "Chair 4"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{placed}");
    assert_eq!(placed["chair"], "Chair 4");
    let ack = exchange(&mut monitor, message(&app, "M-3", DEVICE, "97", 1).as_bytes()).await;
    assert_eq!(field(&ack, "MSA", 1), "AE");
    assert!(
        field(&ack, "ERR", 8).contains("no patient is checked in at Chair 4"),
        "{ack:?}"
    );
    assert!(readings(&app, &nurse, &sid).await.is_empty());

    // Checked in: AA, the reading stored with its values and its source.
    let (s, _) = vitals(&app, &nurse, &sid, vec![normal("baseline")]).await;
    assert_eq!(s, StatusCode::OK);
    let checks: Value = serde_json::from_str(CHECKS).unwrap();
    let (s, b) = event(&app, &nurse, &sid, json!({"event": "check_in", "checks": checks})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let ack = exchange(&mut monitor, message(&app, "M-4", DEVICE, "96", 2).as_bytes()).await;
    assert_eq!(
        (field(&ack, "MSA", 1), field(&ack, "MSA", 2)),
        ("AA".into(), "M-4".into()),
        "{ack:?}"
    );
    assert_eq!(field(&ack, "MSH", 9), "ACK^R01^ACK");
    let stored = readings(&app, &nurse, &sid).await;
    assert_eq!(stored.len(), 2);
    let from_monitor = stored.iter().find(|r| r["source"] == "device").unwrap();
    assert_eq!(from_monitor["recorded_by"], format!("device:{DEVICE}"));
    assert_eq!(
        (
            &from_monitor["reading"]["spo2_percent"],
            &from_monitor["reading"]["heart_rate_per_min"],
            &from_monitor["reading"]["respiratory_rate_per_min"]
        ),
        (&json!(96.0), &json!(76.0), &json!(14.0))
    );

    // The same message again: acknowledged, stored once. The same control id with another
    // value: refused, as a reused reading key is.
    let ack = exchange(&mut monitor, message(&app, "M-4", DEVICE, "96", 2).as_bytes()).await;
    assert_eq!(field(&ack, "MSA", 1), "AA");
    assert_eq!(readings(&app, &nurse, &sid).await.len(), 2);
    let ack = exchange(&mut monitor, message(&app, "M-4", DEVICE, "91", 2).as_bytes()).await;
    assert_eq!(field(&ack, "MSA", 1), "AE");
    assert!(
        field(&ack, "ERR", 5).starts_with("DUPLICATE_CONTROL_ID^"),
        "{ack:?}"
    );

    // An implausible value: AE at its OBX-5 with the allowed range; nothing stored.
    let ack = exchange(&mut monitor, message(&app, "M-5", DEVICE, "140", 1).as_bytes()).await;
    assert_eq!(field(&ack, "MSA", 1), "AE");
    assert_eq!(field(&ack, "ERR", 2), "OBX^2^5");
    assert_eq!(
        field(&ack, "ERR", 8),
        "SpO2 140 is not a plausible reading; allowed: 50–100; nothing in this message was stored"
    );
    assert_eq!(readings(&app, &nurse, &sid).await.len(), 2);

    // Garbage, then a field the parser refuses: AR and AE, and the connection stays open for the
    // next message, which is read normally.
    let ack = exchange(&mut monitor, b"this is not HL7").await;
    assert_eq!(
        (field(&ack, "MSA", 1), field(&ack, "MSA", 2)),
        ("AR".into(), "".into())
    );
    let bad = message(&app, "M-6", DEVICE, "ninety", 1);
    let ack = exchange(&mut monitor, bad.as_bytes()).await;
    assert_eq!(
        (field(&ack, "MSA", 1), field(&ack, "ERR", 2)),
        ("AE".into(), "OBX^2^5".into())
    );
    assert_eq!(field(&ack, "ERR", 3), "102^Data type error^HL70357");

    // SpO2 85 raises the SpO2 alarm, on the session and live on the board's stream.
    let (s, mut board) = EventStream::open(&app, "/api/v1/board/stream", &doc, None).await;
    assert_eq!(s, StatusCode::OK);
    let ack = exchange(&mut monitor, message(&app, "M-7", DEVICE, "85", 0).as_bytes()).await;
    assert_eq!(field(&ack, "MSA", 1), "AA", "{ack:?}");
    let raised = board.wait_for("alarm.raised").await;
    assert_eq!(raised["session_id"], sid.as_str());
    assert_eq!(
        (
            &raised["data"]["code"],
            &raised["data"]["level"],
            &raised["data"]["detail"]["message"]
        ),
        (&json!("spo2_low"), &json!("high"), &json!("SpO2 85 % < 92"))
    );

    // Every step was audited: the registration and the association.
    let (_, audit) = get(&app, &admin, "/api/v1/audit").await;
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"device.register") && actions.contains(&"device.associate"),
        "{actions:?}"
    );
    // Readings from the monitor are audited as its own: the actor names the device.
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "vitals.record"
                && e["actor_user_id"] == format!("system:monitor:{DEVICE}"))
    );
}

/// A nurse marks a monitor's desaturation as an artefact: the reading stays, marked; the alarm it
/// alone raised is resolved as artefact; the board's latest values and the discharge criteria use
/// the last reading that stands; a second mark, a short reason and a viewer are refused; audited.
#[tokio::test]
async fn an_artefact_is_kept_marked_and_left_out_of_alarms_and_the_board() {
    let app = spawn_app().await;
    let (nurse, doc, viewer) = (
        app.login("nurse").await,
        app.login("doc").await,
        app.login("viewer").await,
    );
    let sid = app.booked_session(&nurse, &doc, "Chair 5").await.1;
    let (s, _) = vitals(&app, &nurse, &sid, vec![normal("baseline")]).await;
    assert_eq!(s, StatusCode::OK);
    // The probe slips: SpO2 84 raises the high-priority SpO2 alarm.
    let mut slipped = normal("slipped");
    slipped["spo2_percent"] = json!(84);
    let (s, ack) = vitals(&app, &nurse, &sid, vec![slipped]).await;
    assert_eq!(s, StatusCode::OK, "{ack}");
    let vital_id = ack["readings"][0]["id"].as_i64().unwrap();
    let (_, alarms) = get(&app, &nurse, &format!("/api/v1/sessions/{sid}/alarms")).await;
    assert_eq!(alarms[0]["code"], "spo2_low");
    let path = format!("/api/v1/sessions/{sid}/vitals/{vital_id}/artefact");
    let (s, b) = post(&app, &viewer, &path, json!({"reason": "probe off the finger"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (s, b) = post(&app, &nurse, &path, json!({"reason": "x"})).await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("reason")),
        "{b}"
    );
    let (s, b) = post(
        &app,
        &nurse,
        &path,
        json!({"reason": "probe off the finger while she moved"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["resolved_alarms"][0]["code"], "spo2_low");
    assert_eq!(b["resolved_alarms"][0]["state"], "resolved");
    let (s, again) = post(&app, &nurse, &path, json!({"reason": "probe off the finger"})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{again}");
    let (s, none) = post(
        &app,
        &nurse,
        &format!("/api/v1/sessions/{sid}/vitals/999999/artefact"),
        json!({"reason": "no such reading"}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{none}");

    // Kept and marked; no alarm open; the board shows the baseline reading, not 84.
    let stored = readings(&app, &nurse, &sid).await;
    let marked = stored.iter().find(|r| r["id"] == vital_id).unwrap();
    assert_eq!(marked["reading"]["spo2_percent"], 84.0);
    assert_eq!(
        marked["artefact"]["reason"],
        "probe off the finger while she moved"
    );
    assert!(
        stored
            .iter()
            .filter(|r| r["id"] != vital_id)
            .all(|r| r.get("artefact").is_none())
    );
    let (_, open) = get(&app, &nurse, &format!("/api/v1/sessions/{sid}/alarms")).await;
    assert!(
        open.as_array().unwrap().iter().all(|a| a["state"] == "resolved"),
        "{open}"
    );
    let (_, board) = get(&app, &nurse, "/api/v1/board").await;
    let tile = board["chairs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["chair"] == "Chair 5")
        .unwrap();
    assert_eq!(tile["latest_vitals"]["spo2_percent"], 98.0, "{tile}");
    assert_eq!(tile["latest_vitals_flags"], json!([]));
    // The session screen shows it struck through with why; the other reading offers the form.
    let page = app
        .browser("nurse")
        .await
        .get(&format!("/sessions/{sid}/live"))
        .await;
    assert!(
        page.shows(&format!(r#"<tr class=" artefact" data-reading="{vital_id}">"#)),
        "{}",
        page.html
    );
    assert!(page.shows(
        "<span class=\"badge warn\" data-artefact>artefact (probe off the finger while she moved), marked "
    ));
    assert!(page.shows("Mark as artefact"));
    // Audited on the session.
    let (_, audit) = get(&app, &app.login("admin").await, "/api/v1/audit").await;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "vitals.artefact" && e["record_id"] == sid.as_str())
    );
}

/// The monitors page: an administrator registers a monitor (a bad field refused by its label), a
/// nurse puts it at a chair, a viewer sees no forms, and what its messages came to is listed.
#[tokio::test]
async fn the_monitors_page_registers_places_and_counts() {
    let app = spawn_app().await;
    let admin = app.browser("admin").await;
    let page = admin
        .post(
            "/devices",
            &[("identifier", ""), ("model", "VS-3"), ("serial", "S-9")],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.html);
    assert!(
        page.shows("Identifier: nothing is not accepted; allowed: 1–64 printable characters"),
        "{}",
        page.html
    );
    assert!(
        page.shows(r#"name="model" value="VS-3""#),
        "what was typed is kept"
    );
    let page = admin
        .post(
            "/devices",
            &[
                ("identifier", DEVICE),
                ("model", "VS-3"),
                ("serial", "S-9"),
                ("location", "bay 1"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    let nurse = app.browser("nurse").await;
    let list = nurse.get("/devices").await;
    assert!(list.shows(&format!(r#"data-device="{DEVICE}""#)));
    assert!(
        !list.shows("Register a monitor"),
        "nurses do not register monitors"
    );
    let token = app.login("nurse").await;
    let (_, devices) = get(&app, &token, "/api/v1/devices").await;
    let id = devices[0]["id"].as_str().unwrap();
    let page = nurse
        .post(&format!("/devices/{id}/chair"), &[("chair", "Chair 6")])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    // A message from it (no patient at Chair 6 yet): counted as refused, its time and answer shown.
    let ack = ketaflow_server::mllp::answer(&app.state, &message(&app, "P-1", DEVICE, "97", 0), "K1").await;
    assert!(ack.contains("MSA|AE|P-1"), "{ack}");
    let list = nurse.get("/devices").await;
    assert!(list.shows(r#"<td data-chair="Chair 6">"#), "{}", list.html);
    assert!(list.shows("(AE)</td>"), "{}", list.html);
    assert!(
        list.shows(
            r#"<td class="num">1</td>
      <td class="num">1</td>"#
        ),
        "{}",
        list.html
    );
    let viewer = app.browser("viewer").await.get("/devices").await;
    assert_eq!(viewer.status, StatusCode::OK);
    assert!(
        !viewer.shows("<form method=\"post\" action=\"/devices"),
        "{}",
        viewer.html
    );
}
