//! A monitor streams vital signs into a real `ketaflow serve` that is killed mid-stream (SIGKILL:
//! no graceful shutdown, no flush) and restarted on the same SQLite file. Every reading the server
//! acknowledged must survive, none may be stored twice, the one reading that may have been in
//! flight at the kill is the only unacknowledged one that may be stored, the monitor's retries
//! after the restart are recognised by their keys, and the audit chain still verifies.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

mod support;
use support::free_port;

use serde_json::{Value, json};

/// A running `ketaflow serve`; killed when dropped, so a failing test leaves no server behind.
struct Server {
    child: Child,
    base: String,
    /// What it printed up to "ketaflow listening".
    printed: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the server on `db` and waits (at most 30 s) until it says it is listening.
fn start(db: &str) -> Server {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_ketaflow"))
        .args(["serve", "--demo", "--db", db, "--listen", &listen])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ketaflow serve");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    // Keeps reading to the end, so the server never blocks on a full pipe.
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut server = Server {
        child,
        base: format!("http://{listen}/api/v1"),
        printed: Vec::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let ready = line.starts_with("ketaflow listening");
                server.printed.push(line);
                if ready {
                    return server;
                }
            }
            Err(e) => panic!(
                "ketaflow serve on {db} did not report listening within 30 s ({e}); it printed {:?}",
                server.printed
            ),
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// Logs in; returns the session token, to be sent as a bearer token.
fn login(agent: &ureq::Agent, base: &str, username: &str) -> String {
    let mut response = agent
        .post(&format!("{base}/auth/login"))
        .send_json(json!({"username": username, "password": format!("{username}-password")}))
        .unwrap_or_else(|e| panic!("login as {username}: {e}"));
    let body = response.body_mut().read_to_string().unwrap_or_default();
    assert_eq!(response.status(), 200, "login as {username}: {body}");
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find_map(|pair| pair.trim().strip_prefix("ketaflow_session="))
        .unwrap_or_else(|| panic!("login as {username} set no ketaflow_session cookie"))
        .to_string()
}

/// A JSON call that must answer `status`.
fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    token: &str,
    body: Option<Value>,
    status: u16,
) -> Value {
    let bearer = format!("Bearer {token}");
    let result = match (method, body) {
        ("GET", _) => agent.get(url).header("authorization", &bearer).call(),
        ("POST", Some(body)) => agent.post(url).header("authorization", &bearer).send_json(body),
        _ => panic!("unsupported call {method} {url}"),
    };
    let mut response = result.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let text = response.body_mut().read_to_string().unwrap_or_default();
    assert_eq!(response.status(), status, "{method} {url}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {url}: not JSON ({e}): {text}"))
}

fn reading(key: &str, systolic: u32) -> Value {
    json!({"readings": [{
        "idempotency_key": key, "systolic_mmhg": systolic, "diastolic_mmhg": 78,
        "heart_rate_per_min": 72, "spo2_percent": 98, "respiratory_rate_per_min": 14,
        "temperature_c": 36.7, "consciousness": "alert", "on_oxygen": false, "moaas": 5,
    }]})
}

/// The key of the reading that raises the systolic alarm (systolic 185 mmHg).
const ALARM_KEY: &str = "chair17-000003";

/// What the monitor did before the server died.
#[derive(Debug, Default)]
struct Streamed {
    /// Keys in the order their requests were started.
    attempted: Vec<String>,
    /// Keys whose 200 acknowledgement (status and complete body) arrived.
    acked: Vec<String>,
    /// Answers that should not happen while the server is up.
    anomalies: Vec<String>,
}

/// Posts one reading per request, as fast as the server answers, until `stop` or the server is gone.
fn stream(url: String, token: String, stop: Arc<AtomicBool>, acked_count: Arc<AtomicUsize>) -> Streamed {
    let agent = agent();
    let bearer = format!("Bearer {token}");
    let mut out = Streamed::default();
    for i in 0.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let key = format!("chair17-{i:06}");
        let systolic = if key == ALARM_KEY { 185 } else { 118 + i % 10 };
        out.attempted.push(key.clone());
        let mut response = match agent
            .post(&url)
            .header("authorization", &bearer)
            .send_json(reading(&key, systolic))
        {
            Ok(r) => r,
            Err(_) => break, // the server was killed
        };
        let status = response.status();
        let Ok(body) = response.body_mut().read_to_string() else {
            break; // killed while the answer was on its way: not acknowledged
        };
        if status != 200 {
            out.anomalies.push(format!("{key}: {status}: {body}"));
            break;
        }
        let ack: Value = match serde_json::from_str(&body) {
            Ok(v) => v,
            Err(e) => {
                out.anomalies
                    .push(format!("{key}: acknowledgement is not JSON ({e}): {body}"));
                break;
            }
        };
        let r = &ack["readings"][0];
        if r["idempotency_key"] != key.as_str() || r["duplicate"] != false || ack["stored"] != 1 {
            out.anomalies
                .push(format!("{key}: unexpected acknowledgement {ack}"));
            break;
        }
        out.acked.push(key);
        acked_count.fetch_add(1, Ordering::SeqCst);
    }
    out
}

fn stored_keys(agent: &ureq::Agent, base: &str, token: &str, session: &str) -> Vec<String> {
    call(
        agent,
        "GET",
        &format!("{base}/sessions/{session}/vitals"),
        token,
        None,
        200,
    )
    .as_array()
    .expect("the vitals list is an array")
    .iter()
    .map(|v| {
        v["reading"]["idempotency_key"]
            .as_str()
            .expect("a stored reading has its key")
            .to_string()
    })
    .collect()
}

#[test]
fn acknowledged_readings_survive_a_sigkill_and_the_audit_chain_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("crash.db").display());
    let agent = agent();

    // ---- First life: a fresh database, one booked session and its monitor.
    let mut first = start(&db);
    assert!(
        first
            .printed
            .iter()
            .any(|l| l.starts_with("created the first administrator: username admin, one-time password ")),
        "{:?}",
        first.printed
    );
    let base = first.base.clone();
    let nurse = login(&agent, &base, "demo.nurse");
    let patients = call(
        &agent,
        "GET",
        &format!("{base}/patients?search=KF-1001"),
        &nurse,
        None,
        200,
    );
    let patient = patients
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["mrn"] == "KF-1001")
        .unwrap_or_else(|| panic!("no KF-1001 in {patients}"));
    let patient_id = patient["id"].as_str().unwrap().to_string();
    let plans = call(
        &agent,
        "GET",
        &format!("{base}/patients/{patient_id}/plans"),
        &nurse,
        None,
        200,
    );
    let plan_id = plans
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["status"] == "approved")
        .and_then(|p| p["id"].as_str())
        .unwrap_or_else(|| panic!("KF-1001 has no approved plan: {plans}"))
        .to_string();
    let session = call(
        &agent,
        "POST",
        &format!("{base}/patients/{patient_id}/sessions"),
        &nurse,
        Some(json!({"plan_id": plan_id, "chair": "Chair 17", "scheduled_for": "2026-11-27T09:30:00Z"})),
        201,
    );
    let session_id = session["id"].as_str().unwrap().to_string();
    let device = call(
        &agent,
        "POST",
        &format!("{base}/sessions/{session_id}/device-tokens"),
        &nurse,
        Some(json!({"label": "monitor 17"})),
        201,
    );
    let device_token = device["token"].as_str().unwrap().to_string();
    assert!(
        device_token.starts_with("dev_") && device_token.len() == 68,
        "{device_token}"
    );

    // ---- The monitor streams; the server is killed under it.
    let vitals_url = format!("{base}/sessions/{session_id}/vitals");
    let stop = Arc::new(AtomicBool::new(false));
    let acked_count = Arc::new(AtomicUsize::new(0));
    let monitor = {
        let (url, token, stop, acked_count) = (
            vitals_url.clone(),
            device_token.clone(),
            stop.clone(),
            acked_count.clone(),
        );
        thread::spawn(move || stream(url, token, stop, acked_count))
    };
    let streaming_since = Instant::now();
    while acked_count.load(Ordering::SeqCst) == 0 && streaming_since.elapsed() < Duration::from_secs(10) {
        thread::sleep(Duration::from_millis(10));
    }
    assert!(
        acked_count.load(Ordering::SeqCst) > 0,
        "no reading was acknowledged within 10 s"
    );
    thread::sleep(Duration::from_millis(1500));
    // `Child::kill` sends SIGKILL on Unix: the process ends at once, mid-request and possibly
    // mid-commit, with no graceful shutdown and no chance to flush anything.
    first.child.kill().expect("SIGKILL the server");
    let status = first.child.wait().unwrap();
    assert!(
        !status.success(),
        "the server must have died of the signal: {status:?}"
    );
    stop.store(true, Ordering::SeqCst);
    let streamed = monitor.join().expect("the monitor thread");
    drop(first);
    assert!(streamed.anomalies.is_empty(), "{:?}", streamed.anomalies);
    assert!(
        streamed.acked.len() >= 10,
        "only {} readings acknowledged in 1.5 s",
        streamed.acked.len()
    );
    // One request at a time: every acknowledged key precedes the first unacknowledged one.
    assert_eq!(streamed.attempted[..streamed.acked.len()], streamed.acked[..]);
    let in_flight = streamed.attempted.get(streamed.acked.len()).cloned();

    // ---- Second life on the same file: no new administrator, no second demo clinic.
    let second = start(&db);
    assert!(
        !second
            .printed
            .iter()
            .any(|l| l.starts_with("created the first administrator") || l.starts_with("demo account:")),
        "the restart must not seed again: {:?}",
        second.printed
    );
    let base = second.base.clone();
    let nurse = login(&agent, &base, "demo.nurse");
    let stored = stored_keys(&agent, &base, &nurse, &session_id);
    let unique: HashSet<&String> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "a key is stored twice: {stored:?}");
    let attempted: HashSet<&String> = streamed.attempted.iter().collect();
    let acked: HashSet<&String> = streamed.acked.iter().collect();
    let lost: Vec<&&String> = acked.difference(&unique).collect();
    assert!(lost.is_empty(), "acknowledged but lost after SIGKILL: {lost:?}");
    let never_sent: Vec<&&String> = unique.difference(&attempted).collect();
    assert!(never_sent.is_empty(), "stored but never sent: {never_sent:?}");
    // Only the reading in flight at the kill may be stored without its acknowledgement.
    let extra: Vec<&String> = unique.difference(&acked).copied().collect();
    assert!(
        extra.is_empty() || extra == [in_flight.as_ref().unwrap()],
        "stored without acknowledgement: {extra:?} (in flight at the kill: {in_flight:?})"
    );
    assert_eq!(stored.len(), streamed.acked.len() + extra.len());
    eprintln!(
        "sent {}, acknowledged {}, stored {} (in flight at the kill: {in_flight:?}, stored: {})",
        streamed.attempted.len(),
        streamed.acked.len(),
        stored.len(),
        extra.len() == 1
    );

    // The monitor retries what it has no acknowledgement for, and one it has: both by key.
    // A retry resends the same values as the first send (a key with other values is refused).
    let retry = |key: &str| {
        let i: u32 = key.trim_start_matches("chair17-").parse().unwrap();
        let systolic = if key == ALARM_KEY { 185 } else { 118 + i % 10 };
        let url = format!("{base}/sessions/{session_id}/vitals");
        call(
            &agent,
            "POST",
            &url,
            &device_token,
            Some(reading(key, systolic)),
            200,
        )
    };
    let last_acked = streamed.acked.last().unwrap();
    let again = retry(last_acked);
    assert_eq!(again["readings"][0]["duplicate"], true, "{again}");
    assert_eq!(
        (again["stored"].clone(), again["duplicates"].clone()),
        (json!(0), json!(1))
    );
    if let Some(key) = &in_flight {
        let again = retry(key);
        let was_stored = extra.len() == 1;
        assert_eq!(again["readings"][0]["duplicate"], was_stored, "{key}: {again}");
        assert_eq!(again["stored"], if was_stored { 0 } else { 1 }, "{again}");
    }
    let after_retries = stored_keys(&agent, &base, &nurse, &session_id);
    let expected = streamed.acked.len() + usize::from(in_flight.is_some());
    assert_eq!(after_retries.len(), expected, "{after_retries:?}");
    assert_eq!(after_retries.iter().collect::<HashSet<_>>().len(), expected);

    // The alarm the fourth reading raised survived with it, raised once.
    if acked.contains(&ALARM_KEY.to_string()) {
        let alarms = call(
            &agent,
            "GET",
            &format!("{base}/sessions/{session_id}/alarms"),
            &nurse,
            None,
            200,
        );
        let systolic: Vec<&Value> = alarms
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["code"] == "systolic_high")
            .collect();
        assert_eq!(systolic.len(), 1, "{alarms}");
        assert_eq!(systolic[0]["occurrences"], 1, "{alarms}");
        assert_eq!(systolic[0]["state"], "raised", "{alarms}");
    }

    // ---- The hash-chained audit log is intact after the kill.
    let admin = login(&agent, &base, "demo.admin");
    let verify = call(&agent, "GET", &format!("{base}/audit/verify"), &admin, None, 200);
    assert_eq!(verify["ok"], true, "{verify}");
    assert_eq!(verify["problem"], Value::Null, "{verify}");
    // Accounts, patients, plans, the session, the token, and one entry per stored batch at least.
    assert!(
        verify["checked"].as_u64().unwrap() > after_retries.len() as u64,
        "{verify}"
    );
}
