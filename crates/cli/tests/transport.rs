//! How `ketaflow serve` meets the network (issue 15): plain HTTP only on loopback or behind a
//! proxy, HTTPS with a certificate, and slow-header clients cut off; and (issue 14) live streams
//! that beat every 5 s and end at shutdown so the server exits inside its grace period.
//!
//! The TLS test makes a self-signed certificate with the `openssl` command and fetches with
//! `curl`, both on every machine this project builds on (the Rust toolchain's installer needs them).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::free_port;

/// Starts `ketaflow serve` with `args` and waits for its "listening" line.
fn serve(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ketaflow"))
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = Instant::now();
    while let Some(Ok(line)) = lines.next() {
        // Output to a pipe is plain text: no terminal colour codes in the log lines.
        assert!(!line.contains('\u{1b}'), "colour codes on a pipe: {line:?}");
        if let Some(url) = line.strip_prefix("ketaflow listening on ") {
            return (child, url.to_string());
        }
        if started.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    let _ = child.kill();
    let exit = child.wait();
    panic!("ketaflow serve did not start listening: {exit:?}");
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn plain_http_beyond_loopback_is_refused_unless_a_proxy_fronts_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let listen = format!("0.0.0.0:{}", free_port());
    let out = Command::new(env!("CARGO_BIN_EXE_ketaflow"))
        .args(["serve", "--db", &db, "--listen", &listen])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to serve plain HTTP on 0.0.0.0"), "{err}");
    assert!(
        err.contains("--tls-cert and --tls-key, or --behind-proxy"),
        "{err}"
    );
    // A key without its certificate is a usage error.
    let out = Command::new(env!("CARGO_BIN_EXE_ketaflow"))
        .args(["serve", "--db", &db, "--tls-key", "k.pem"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    // Trusting a proxy's headers only makes sense behind one, and the proxy must be an address.
    let out = Command::new(env!("CARGO_BIN_EXE_ketaflow"))
        .args(["serve", "--db", &db, "--trusted-proxy", "10.0.0.5"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--behind-proxy"));
    let out = Command::new(env!("CARGO_BIN_EXE_ketaflow"))
        .args([
            "serve",
            "--db",
            &db,
            "--behind-proxy",
            "--trusted-proxy",
            "proxy.local",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"proxy.local\" is not an address or ADDR/PREFIX range"),
        "{err}"
    );
    // A clinic's licensed questionnaire wording is checked before the server starts.
    let wording = dir.path().join("wording.toml");
    std::fs::write(
        &wording,
        "[bpi_sf]\ninstruction = \"x\"\nsource = \"licensed\"\nitems = [\"one\"]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ketaflow"))
        .args([
            "serve",
            "--db",
            &db,
            "--instrument-wording",
            wording.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[bpi_sf] items: found 1, the instrument has 11"),
        "{err}"
    );
    // Behind a proxy it serves, and says whose forwarded headers it believes.
    let (child, url) = serve(&[
        "--db",
        &db,
        "--listen",
        &listen,
        "--behind-proxy",
        "--trusted-proxy",
        "10.0.0.0/24",
        "--trusted-proxy",
        "::1",
    ]);
    assert!(url.starts_with("http://0.0.0.0:"), "{url}");
    stop(child);
}

#[test]
fn https_with_a_certificate_and_slow_headers_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let (child, url) = serve(&[
        "--db",
        &db,
        "--listen",
        &listen,
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(url, format!("https://{listen}"));
    let fetched = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&cert)
        .arg(format!("https://127.0.0.1:{port}/api/v1/openapi.json"))
        .output()
        .expect("curl");
    assert!(
        fetched.status.success(),
        "{}",
        String::from_utf8_lossy(&fetched.stderr)
    );
    assert!(String::from_utf8_lossy(&fetched.stdout).contains("\"openapi\""));
    // Plain HTTP to the TLS port gets no page.
    let plain = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://127.0.0.1:{port}/login"))
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&plain.stdout), "200");

    // A client that opens a connection and never finishes its headers is cut off after the
    // header-read timeout (10 s), instead of holding the socket for ever.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let started = Instant::now();
    // A TLS ClientHello never sent: the handshake itself is the slow header here. Over plain
    // HTTP (below) it is a request line without its end.
    let mut buf = [0u8; 64];
    let _ = slow.read(&mut buf);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(25), "held for {waited:?}");
    stop(child);

    let plain_port = free_port();
    let listen = format!("127.0.0.1:{plain_port}");
    let (child, _) = serve(&["--db", &db, "--listen", &listen]);
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", plain_port)).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    slow.write_all(b"GET /login HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = Instant::now();
    let n = slow.read(&mut buf).unwrap_or(0);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(20),
        "closed after {waited:?} with {n} bytes"
    );
    stop(child);
}

#[test]
fn the_server_signs_audit_checkpoints_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let (key, log) = (dir.path().join("audit.key"), dir.path().join("checkpoints.jsonl"));
    let listen = format!("127.0.0.1:{}", free_port());
    let (child, _) = serve(&[
        "--db",
        &db,
        "--listen",
        &listen,
        "--checkpoint-key",
        key.to_str().unwrap(),
        "--checkpoints",
        log.to_str().unwrap(),
        "--checkpoint-minutes",
        "1",
    ]);
    // The first checkpoint is signed at start.
    let started = Instant::now();
    while std::fs::read_to_string(&log).map_or(true, |t| t.is_empty()) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no checkpoint written"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop(child);
    let verified = Command::new(env!("CARGO_BIN_EXE_ketaflow"))
        .args(["audit", "verify", "--db", &db, "--checkpoints"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert!(String::from_utf8_lossy(&verified.stdout).contains("checkpoint holds"));
}

/// Signs in over the API and gives back the session cookie (`name=value`).
fn sign_in(base: &str, username: &str, password: &str) -> String {
    let response = ureq::post(&format!("{base}/api/v1/auth/login"))
        .send_json(serde_json::json!({ "username": username, "password": password }))
        .unwrap();
    let cookie = response.headers().get("set-cookie").unwrap().to_str().unwrap();
    cookie.split(';').next().unwrap().to_string()
}

#[test]
fn an_open_board_stream_beats_and_ends_at_sigterm_within_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let listen = format!("127.0.0.1:{}", free_port());
    let (mut child, base) = serve(&["--demo", "--db", &db, "--listen", &listen]);
    let cookie = sign_in(&base, "demo.physician", "demo.physician-password");
    let mut stream = std::net::TcpStream::connect(&listen).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    write!(
        stream,
        "GET /api/v1/board/stream HTTP/1.1\r\nHost: {listen}\r\nCookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    // A named heartbeat comes at once and then every 5 s, so a page can tell a live server from
    // a silent one.
    let mut seen = String::new();
    let mut buffer = [0u8; 4096];
    let opened = Instant::now();
    while !seen.contains("event: heartbeat") {
        let n = stream.read(&mut buffer).unwrap();
        assert!(n > 0, "the stream ended before a heartbeat: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
        assert!(opened.elapsed() < Duration::from_secs(6), "no heartbeat: {seen}");
    }
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    // SIGTERM with the stream open: the server ends the stream and exits well inside its 10-s
    // grace period, rather than waiting for the viewer to leave.
    let signalled = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    let stream_ended = signalled.elapsed();
    let exit = child.wait().unwrap();
    let exited = signalled.elapsed();
    assert!(exit.success(), "{exit:?}");
    assert!(
        stream_ended < Duration::from_secs(5),
        "the stream stayed open {stream_ended:?}"
    );
    assert!(exited < Duration::from_secs(10), "exit took {exited:?}");
}

/// `serve --mllp` takes monitors' HL7 on loopback and answers every frame (here AR for text that
/// is not HL7, on a connection that stays open for the next); beyond loopback it is refused.
#[test]
fn the_mllp_door_answers_on_loopback_and_is_refused_beyond_it() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let out = Command::new(env!("CARGO_BIN_EXE_ketaflow"))
        .args([
            "serve",
            "--db",
            &db,
            "--mllp",
            &format!("0.0.0.0:{}", free_port()),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to take HL7 over plain MLLP on 0.0.0.0"),
        "{err}"
    );

    let mllp = format!("127.0.0.1:{}", free_port());
    let (child, _) = serve(&[
        "--db",
        &db,
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
        "--mllp",
        &mllp,
    ]);
    let mut monitor = std::net::TcpStream::connect(&mllp).unwrap();
    monitor.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for _ in 0..2 {
        monitor.write_all(b"\x0bnot HL7 at all\x1c\x0d").unwrap();
        let mut answer = Vec::new();
        let mut byte = [0u8];
        while !answer.ends_with(b"\x1c\x0d") {
            monitor.read_exact(&mut byte).unwrap();
            answer.push(byte[0]);
        }
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("\x0bMSH|^~\\&|KETAFLOW|"), "{text:?}");
        assert!(text.contains("\rMSA|AR|\r"), "{text:?}");
    }
    stop(child);
}

/// `serve --demo` on `db` with its MLLP door at `mllp`.
fn serve_demo(db: &str, mllp: &str) -> (Child, String) {
    serve(&[
        "--db",
        db,
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
        "--demo",
        "--mllp",
        mllp,
    ])
}

/// The demo has a monitor at Chair 1; `monitor-sim` sends it desaturating readings over MLLP and
/// prints each AA; the board shows the SpO2 alarm it raised.
#[test]
fn the_simulator_feeds_the_demo_monitor_and_the_board_shows_its_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let mllp = format!("127.0.0.1:{}", free_port());
    let (child, base) = serve_demo(&db, &mllp);
    let sim = Command::new(env!("CARGO_BIN_EXE_ketaflow"))
        .args([
            "monitor-sim",
            "--mllp",
            &mllp,
            "--device",
            "DEMO-MON-1",
            "--scenario",
            "desaturation",
            "--every",
            "100ms",
            "--count",
            "8",
        ])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&sim.stdout);
    assert!(
        sim.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&sim.stderr)
    );
    assert_eq!(printed.lines().count(), 8, "{printed}");
    assert!(printed.lines().all(|l| l.contains(": MSA|AA|SIM-")), "{printed}");
    // 98, 97, …, 91: the last two are below 92 %.
    let cookie = sign_in(&base, "demo.nurse", "demo.nurse-password");
    let board: serde_json::Value = ureq::get(&format!("{base}/api/v1/board"))
        .header("Cookie", &cookie)
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    let chair1 = board["chairs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["chair"] == "Chair 1")
        .unwrap();
    assert_eq!(chair1["latest_vitals"]["spo2_percent"], 91.0, "{chair1}");
    assert!(
        chair1["active_alarms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["code"] == "spo2_low"),
        "{chair1}"
    );
    stop(child);
}

/// Sends one framed HL7 message and returns the MSA segment of the answer.
fn send_hl7(address: &str, message: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream
        .write_all(format!("\x0b{message}\x1c\x0d").as_bytes())
        .unwrap();
    let mut answer = Vec::new();
    let mut byte = [0u8];
    while !answer.ends_with(b"\x1c\x0d") {
        stream.read_exact(&mut byte).unwrap();
        answer.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    text.split('\r')
        .find(|s| s.starts_with("MSA|"))
        .unwrap_or_default()
        .to_string()
}

/// The monitor's readings of Chair 1's session with SpO2 `spo2`.
fn chair1_readings(base: &str, spo2: f64) -> usize {
    let cookie = sign_in(base, "demo.nurse", "demo.nurse-password");
    let get = |path: &str| -> serde_json::Value {
        ureq::get(&format!("{base}{path}"))
            .header("Cookie", &cookie)
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap()
    };
    let board = get("/api/v1/board");
    let sid = board["chairs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["chair"] == "Chair 1")
        .unwrap()["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    get(&format!("/api/v1/sessions/{sid}/vitals"))
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["recorded_by"] == "device:DEMO-MON-1" && r["reading"]["spo2_percent"] == spo2)
        .count()
}

/// An AA means committed: the server killed (SIGKILL) right after it, the reading is there after a
/// restart, and the monitor's resend of the same message is acknowledged and not stored again.
#[test]
fn a_reading_acknowledged_over_mllp_survives_a_kill_and_a_resend_is_not_duplicated() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let mllp = format!("127.0.0.1:{}", free_port());
    let (mut child, _) = serve_demo(&db, &mllp);
    let reading = ketaflow_hl7::MonitorReading {
        spo2_percent: Some(94.0),
        heart_rate_per_min: Some(81.0),
        ..Default::default()
    };
    let message =
        ketaflow_hl7::pcd01::message_for("DEMO-MON-1", "KILL-1", time::OffsetDateTime::now_utc(), &reading);
    assert_eq!(send_hl7(&mllp, &message), "MSA|AA|KILL-1");
    child.kill().unwrap();
    child.wait().unwrap();

    let mllp = format!("127.0.0.1:{}", free_port());
    let (child, base) = serve_demo(&db, &mllp);
    assert_eq!(
        chair1_readings(&base, 94.0),
        1,
        "the acknowledged reading is there after the kill"
    );
    assert_eq!(
        send_hl7(&mllp, &message),
        "MSA|AA|KILL-1",
        "a resend is acknowledged again"
    );
    assert_eq!(chair1_readings(&base, 94.0), 1, "and stored once");
    stop(child);
}
