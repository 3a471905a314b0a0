//! The clinic commands as an operator runs them: accounts, audit verification, backup, and a real
//! `ketaflow serve --demo` answering HTTP and shutting down cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::{ketaflow, ok};

#[test]
fn accounts_audit_and_backup_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("clinic.db").display());
    let out = ok(&ketaflow(&[
        "user",
        "add",
        "alice",
        "--role",
        "nurse",
        "--display-name",
        "Alice N",
        "--db",
        &db,
    ]));
    assert!(
        out.starts_with("created alice (nurse); one-time password "),
        "{out}"
    );
    let bad = ketaflow(&["user", "add", "bob", "--role", "surgeon", "--db", &db]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("role surgeon is outside administrator, physician, nurse, viewer")
    );
    let list = ok(&ketaflow(&["user", "list", "--db", &db]));
    assert!(
        list.contains("alice") && list.contains("nurse") && list.contains("active"),
        "{list}"
    );
    ok(&ketaflow(&["user", "disable", "alice", "--db", &db]));
    assert!(ok(&ketaflow(&["user", "list", "--db", &db])).contains("disabled"));
    let reset = ok(&ketaflow(&["user", "reset-password", "alice", "--db", &db]));
    assert!(reset.starts_with("new one-time password for alice: "));
    // Three audited changes: create, disable, password change.
    let verify = ok(&ketaflow(&["audit", "verify", "--db", &db]));
    assert!(verify.starts_with("audit chain intact: 3 entries"), "{verify}");
    assert!(
        verify
            .contains("tables agree with the chain: 0 records, 0 vital-sign readings in 0 batches, 1 users"),
        "{verify}"
    );
    let backup = dir.path().join("copy.db");
    ok(&ketaflow(&["backup", backup.to_str().unwrap(), "--db", &db]));
    let copy = format!("sqlite://{}", backup.display());
    assert!(ok(&ketaflow(&["audit", "verify", "--db", &copy])).starts_with("audit chain intact: 3 entries"));
    assert!(ok(&ketaflow(&["user", "list", "--db", &copy])).contains("alice"));
    // A second backup to the same file is refused rather than overwriting it.
    assert!(
        !ketaflow(&["backup", backup.to_str().unwrap(), "--db", &db])
            .status
            .success()
    );
    // Restored into a new database, the chain verifies; into a database in use, it is refused.
    let fresh = format!("sqlite://{}", dir.path().join("restored.db").display());
    let out = ok(&ketaflow(&["restore", backup.to_str().unwrap(), "--db", &fresh]));
    assert!(out.contains("audit chain intact (3 entries"), "{out}");
    assert!(ok(&ketaflow(&["user", "list", "--db", &fresh])).contains("alice"));
    let refused = ketaflow(&["restore", backup.to_str().unwrap(), "--db", &db]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not empty"));
    // A signed checkpoint kept apart from the database, then verified against it.
    let (key, log) = (dir.path().join("audit.key"), dir.path().join("checkpoints.jsonl"));
    let signed = ok(&ketaflow(&[
        "audit",
        "checkpoint",
        "--db",
        &db,
        "--key",
        key.to_str().unwrap(),
        "--to",
        log.to_str().unwrap(),
    ]));
    assert!(signed.starts_with("checkpoint signed: entry 3 hash "), "{signed}");
    let public = signed.trim().rsplit(' ').next().unwrap().to_string();
    let verified = ok(&ketaflow(&[
        "audit",
        "verify",
        "--db",
        &db,
        "--checkpoints",
        log.to_str().unwrap(),
        "--public-key",
        &public,
    ]));
    assert!(verified.contains("checkpoint holds: entry 3"), "{verified}");
    // The restored copy holds it too: the same chain.
    ok(&ketaflow(&[
        "audit",
        "verify",
        "--db",
        &fresh,
        "--checkpoints",
        log.to_str().unwrap(),
    ]));
}

#[test]
fn serve_with_demo_data_answers_and_shuts_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("demo.db").display());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ketaflow"))
        .args(["serve", "--demo", "--db", &db, "--listen", &listen])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut printed = Vec::new();
    let started = Instant::now();
    while let Some(Ok(line)) = lines.next() {
        let ready = line.starts_with("ketaflow listening");
        printed.push(line);
        if ready || started.elapsed() > Duration::from_secs(30) {
            break;
        }
    }
    assert!(
        printed
            .iter()
            .any(|l| l.starts_with("created the first administrator: username admin, one-time password ")),
        "{printed:?}"
    );
    assert!(
        printed
            .iter()
            .any(|l| l == "demo account: demo.physician (physician) password demo.physician-password"),
        "{printed:?}"
    );

    let base = format!("http://{listen}/api/v1");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut login = agent
        .post(&format!("{base}/auth/login"))
        .send_json(serde_json::json!({"username": "demo.physician", "password": "demo.physician-password"}))
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = login
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let _ = login.body_mut().read_to_string();
    let mut patients = agent
        .get(&format!("{base}/patients"))
        .header("cookie", &cookie)
        .call()
        .unwrap();
    assert_eq!(patients.status(), 200);
    let list: serde_json::Value = patients.body_mut().read_json().unwrap();
    assert_eq!(list.as_array().unwrap().len(), 8);
    let unauthenticated = agent.get(&format!("{base}/patients")).call().unwrap();
    assert_eq!(unauthenticated.status(), 401);
    // The board shows the demo's running infusion with its monitor's latest reading.
    let mut board = agent
        .get(&format!("{base}/board"))
        .header("cookie", &cookie)
        .call()
        .unwrap();
    assert_eq!(board.status(), 200);
    let board: serde_json::Value = board.body_mut().read_json().unwrap();
    let chair = &board["chairs"][0];
    assert_eq!(chair["chair"], "Chair 1");
    assert_eq!(chair["state"], "infusing");
    assert!(chair["given_mg"].as_f64().unwrap() > 0.0, "{chair}");
    assert_eq!(chair["latest_vitals"]["idempotency_key"], "demo-3");
    assert!(chair["predicted_recovery_at"].is_string(), "{chair}");
    // Chair 2 is booked and waits for check-in.
    assert_eq!(board["chairs"][1]["chair"], "Chair 2");
    assert_eq!(board["chairs"][1]["state"], "scheduled");
    assert_eq!(board["chairs"].as_array().unwrap().len(), 2);

    // SIGTERM: graceful shutdown, exit status 0.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");

    // A restart on the same database seeds nothing twice and keeps the chain intact.
    let verify = ok(&ketaflow(&["audit", "verify", "--db", &db]));
    assert!(verify.starts_with("audit chain intact"), "{verify}");
    // Everything the demo wrote (patients, plans, sessions, readings, users) agrees with the chain.
    assert!(verify.contains("tables agree with the chain: "), "{verify}");
    assert!(!verify.contains(" 0 records"), "{verify}");
}
