//! Chair streaming benchmark (issue 4).
//!
//! N bedside monitors each stream one vital-sign set per second to a running `ketaflow serve`, each
//! over its own keep-alive HTTP/1.1 connection with a device token for its session, while one
//! clinic board follows `GET /api/v1/board/stream`. Measured:
//!
//! - the acknowledgement latency of every request (send → 200 body received; the server answers
//!   only after the commit, so this is the time to a durable reading);
//! - for the one alarm-triggering reading of every chair (systolic 185 mmHg), the time from sending
//!   it to the board receiving its `alarm.raised` event (`systolic_high`, matched by session);
//! - for every reading, the time from sending it to the board receiving its `vitals` event
//!   (matched by idempotency key).
//!
//! Afterwards every session's readings are read back: each acknowledged key must be stored exactly
//! once. Setup (booking the sessions, issuing device tokens) is not measured. Latencies are measured
//! from the moment a request is actually sent; how late a send was against its one-per-second
//! schedule (because the chair's previous request had not returned yet) is reported separately as
//! the schedule lag, so a stalling server cannot hide behind fewer requests.
//!
//! `bench/chairs.sh` builds the binaries, starts a server on a fresh database and runs this.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, SET_COOKIE};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};

/// Targets of issue 4.
const TARGET_ACK_P99_MS: f64 = 50.0;
const TARGET_ALARM_P99_MS: f64 = 100.0;
/// A chair keeps its cadence when its sends are at most this late against the schedule (p99).
const TARGET_LAG_P99_MS: f64 = 1000.0;

#[derive(Debug, Parser)]
#[command(
    name = "chairs",
    about = "N monitors stream vital signs to a ketaflow server while a board follows the live stream"
)]
struct Args {
    /// The server, e.g. http://127.0.0.1:8080 (the API is under /api/v1)
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Chairs (sessions), each streaming one reading per second over its own connection
    #[arg(long, default_value_t = 1000)]
    chairs: usize,
    /// How long each chair streams, seconds (one reading per second)
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// User who books the sessions and watches the board
    #[arg(long, default_value = "demo.nurse")]
    username: String,
    /// Their password (default: <username>-password, as the demo clinic sets it)
    #[arg(long)]
    password: Option<String>,
    /// Send every K-th reading a second time with the same key, as a monitor retrying would (0: never)
    #[arg(long, default_value_t = 50)]
    duplicate_every: u64,
    /// Seed for the readings' values and the second each chair sends its alarm
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A request without an answer after this many milliseconds counts as a timeout and is retried
    /// on a new connection with the same key
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Concurrent requests while booking sessions and reading them back (not measured)
    #[arg(long, default_value_t = 8)]
    setup_concurrency: usize,
    /// The server's process id, to report its CPU time during the load (Linux /proc)
    #[arg(long)]
    server_pid: Option<u32>,
    /// Also report the CPU time of every process with this command name during the load, e.g.
    /// postgres for the database's backends (Linux /proc)
    #[arg(long)]
    watch_comm: Option<String>,
}

// ---- HTTP ----------------------------------------------------------------------------------------

/// Where the server is.
#[derive(Debug)]
struct Target {
    /// host:port to connect to.
    addr: String,
    /// The API prefix, e.g. /api/v1.
    api: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target> {
        let uri: Uri = url.parse().with_context(|| format!("--url {url} is not a URL"))?;
        if uri.scheme_str() != Some("http") {
            bail!("--url {url}: only http:// is supported");
        }
        let authority = uri
            .authority()
            .with_context(|| format!("--url {url} has no host"))?;
        let addr = if authority.port().is_some() {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let base = uri.path().trim_end_matches('/');
        let api = if base.ends_with("/api/v1") {
            base.to_string()
        } else {
            format!("{base}/api/v1")
        };
        Ok(Target { addr, api })
    }
}

/// One keep-alive HTTP/1.1 connection.
#[derive(Debug)]
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    target: Arc<Target>,
}

impl Conn {
    async fn open(target: &Arc<Target>) -> Result<Conn> {
        let stream = TcpStream::connect(&target.addr)
            .await
            .with_context(|| format!("could not connect to {}", target.addr))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // Ends when the connection closes; errors surface on the next request.
            let _ = connection.await;
        });
        Ok(Conn {
            sender,
            target: target.clone(),
        })
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.target.api))
            .header(HOST, &self.target.addr);
        if let Some(token) = bearer {
            builder = builder.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if !body.is_empty() {
            builder = builder.header(CONTENT_TYPE, "application/json");
        }
        Ok(builder.body(Full::new(body))?)
    }

    async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<Response<Incoming>> {
        self.sender.ready().await?;
        Ok(self.sender.send_request(request).await?)
    }

    /// Sends a request and reads the whole answer.
    async fn round_trip(&mut self, request: Request<Full<Bytes>>) -> Result<(StatusCode, Response<Bytes>)> {
        let response = self.send(request).await?;
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await?.to_bytes();
        Ok((parts.status, Response::from_parts(parts, bytes)))
    }

    /// A JSON call that must answer `expect`; the error names the call, the status and the body.
    async fn json(
        &mut self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
        expect: StatusCode,
    ) -> Result<Value> {
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let request = self.request(method.clone(), path, bearer, bytes)?;
        let (status, response) = self.round_trip(request).await?;
        if status != expect {
            bail!(
                "{method} {path} answered {status} (expected {expect}): {}",
                String::from_utf8_lossy(response.body())
            );
        }
        serde_json::from_slice(response.body()).with_context(|| format!("{method} {path}: body is not JSON"))
    }
}

/// Logs in and returns the session token (sent back as a bearer token).
async fn login(conn: &mut Conn, username: &str, password: &str) -> Result<String> {
    let body = Bytes::from(json!({"username": username, "password": password}).to_string());
    let request = conn.request(Method::POST, "/auth/login", None, body)?;
    let (status, response) = conn.round_trip(request).await?;
    if status != StatusCode::OK {
        bail!(
            "login as {username} answered {status}: {}",
            String::from_utf8_lossy(response.body())
        );
    }
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == "ketaflow_session")
        .map(|(_, token)| token.to_string())
        .context("the login answer sets no ketaflow_session cookie")
}

// ---- Setup ---------------------------------------------------------------------------------------

/// A booked session with its monitor's token.
#[derive(Debug, Clone)]
struct Chair {
    index: usize,
    session_id: String,
    device_token: String,
}

/// KF-1001 and its approved plan.
async fn find_plan(conn: &mut Conn, token: &str) -> Result<(String, String)> {
    let patients = conn
        .json(
            Method::GET,
            "/patients?search=KF-1001",
            Some(token),
            None,
            StatusCode::OK,
        )
        .await?;
    let patient = patients
        .as_array()
        .and_then(|list| list.iter().find(|p| p["mrn"] == "KF-1001"))
        .context("no patient KF-1001: start the server with --demo")?;
    let patient_id = patient["id"].as_str().context("patient without id")?.to_string();
    let plans = conn
        .json(
            Method::GET,
            &format!("/patients/{patient_id}/plans"),
            Some(token),
            None,
            StatusCode::OK,
        )
        .await?;
    let plan_id = plans
        .as_array()
        .and_then(|list| list.iter().find(|p| p["status"] == "approved"))
        .and_then(|p| p["id"].as_str())
        .context("KF-1001 has no approved plan")?
        .to_string();
    Ok((patient_id, plan_id))
}

/// Books `n` sessions ("Bench 1".."Bench n") and issues a device token for each.
async fn book_chairs(target: &Arc<Target>, token: &str, args: &Args) -> Result<Vec<Chair>> {
    let mut conn = Conn::open(target).await?;
    let (patient_id, plan_id) = find_plan(&mut conn, token).await?;
    let scheduled_for = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .context("formatting now")?;
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let chairs = Arc::new(Mutex::new(Vec::with_capacity(args.chairs)));
    let n = args.chairs;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.setup_concurrency.max(1) {
        let (target, token, next, done, chairs) = (
            target.clone(),
            token.to_string(),
            next.clone(),
            done.clone(),
            chairs.clone(),
        );
        let (patient_id, plan_id, scheduled_for) =
            (patient_id.clone(), plan_id.clone(), scheduled_for.clone());
        workers.spawn(async move {
            let mut conn = Conn::open(&target).await?;
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= n {
                    return Ok::<(), anyhow::Error>(());
                }
                let body = json!({"plan_id": plan_id, "chair": format!("Bench {}", index + 1), "scheduled_for": scheduled_for});
                let session = conn
                    .json(
                        Method::POST,
                        &format!("/patients/{patient_id}/sessions"),
                        Some(&token),
                        Some(&body),
                        StatusCode::CREATED,
                    )
                    .await?;
                let session_id = session["id"].as_str().context("session without id")?.to_string();
                let issued = conn
                    .json(
                        Method::POST,
                        &format!("/sessions/{session_id}/device-tokens"),
                        Some(&token),
                        Some(&json!({"label": format!("bench monitor {}", index + 1)})),
                        StatusCode::CREATED,
                    )
                    .await?;
                let device_token = issued["token"].as_str().context("no device token")?.to_string();
                chairs
                    .lock()
                    .map_err(|_| anyhow!("poisoned"))?
                    .push(Chair {
                        index,
                        session_id,
                        device_token,
                    });
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let started = Instant::now();
    let progress = {
        let done = done.clone();
        tokio::spawn(async move {
            // One line rewritten in place on a terminal; a line per tenth into a log.
            let terminal = std::io::stderr().is_terminal();
            let mut shown = usize::MAX;
            loop {
                let d = done.load(Ordering::Relaxed);
                let step = if terminal { d } else { d * 10 / n.max(1) };
                if step != shown {
                    shown = step;
                    let line = format!(
                        "setup: {d}/{n} sessions booked with device tokens ({:.1} s)",
                        started.elapsed().as_secs_f64()
                    );
                    if terminal {
                        eprint!("\r{line}");
                    } else {
                        eprintln!("{line}");
                    }
                }
                if d >= n {
                    if terminal {
                        eprintln!();
                    }
                    return;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    while let Some(joined) = workers.join_next().await {
        if let Err(e) = joined.context("setup worker panicked")? {
            progress.abort();
            eprintln!();
            return Err(e.context("setup failed"));
        }
    }
    progress.await?;
    let mut chairs = std::mem::take(&mut *chairs.lock().map_err(|_| anyhow!("poisoned"))?);
    chairs.sort_by_key(|c| c.index);
    Ok(chairs)
}

// ---- The monitors --------------------------------------------------------------------------------

/// What one chair saw.
#[derive(Debug, Default)]
struct ChairOutcome {
    /// The chair's session.
    session_id: String,
    /// Latency of every acknowledged request (first sends and resends).
    ack_latencies: Vec<(Instant, Duration)>,
    /// When each key was first sent (new keys only).
    first_sent: Vec<(String, Instant)>,
    /// Keys acknowledged as newly stored.
    acked_new: Vec<String>,
    /// Acknowledgements of resends (duplicate = true).
    acked_duplicates: usize,
    /// Acknowledgements that contradicted the request (e.g. a first send reported as a duplicate).
    anomalies: Vec<String>,
    /// When the alarm-triggering reading was first sent, and whether its acknowledgement listed
    /// the systolic_high alarm.
    alarm_sent: Option<Instant>,
    alarm_in_ack: bool,
    /// Requests sent, including retries.
    requests: usize,
    /// Answers other than 200.
    non_200: usize,
    /// Requests without an answer within the timeout.
    timeouts: usize,
    /// Connection failures (connect, send or receive).
    connection_errors: usize,
    /// Readings given up (a 4xx answer, or no acknowledgement before the deadline).
    given_up: usize,
    /// Readings never sent because the run's hard stop had passed.
    skipped: usize,
    /// How late each first send was against its schedule.
    lags: Vec<Duration>,
    /// When the last acknowledgement arrived.
    last_ack: Option<Instant>,
    /// The first few error messages.
    error_samples: Vec<String>,
}

impl ChairOutcome {
    fn error(&mut self, message: String) {
        if self.error_samples.len() < 3 {
            self.error_samples.push(message);
        }
    }
}

/// One reading: normal values in the ranges a calm patient shows, or the alarm reading.
fn reading(key: &str, rng: &mut StdRng, alarm: bool) -> Bytes {
    let systolic: u32 = if alarm { 185 } else { rng.random_range(116..=132) };
    let body = json!({"readings": [{
        "idempotency_key": key,
        "systolic_mmhg": systolic,
        "diastolic_mmhg": rng.random_range(72..=84),
        "heart_rate_per_min": rng.random_range(64..=80),
        "spo2_percent": rng.random_range(96..=99),
        "respiratory_rate_per_min": rng.random_range(12..=16),
        "temperature_c": f64::from(rng.random_range(365..=370_u32)) / 10.0,
        "consciousness": "alert",
        "on_oxygen": false,
        "moaas": 5,
    }]});
    Bytes::from(body.to_string())
}

#[derive(Debug)]
struct Plan {
    start: Instant,
    seconds: u64,
    chairs: usize,
    duplicate_every: u64,
    timeout: Duration,
    hard_stop: Instant,
}

/// Sends one reading until it is acknowledged (retrying with the same key on a timeout or a broken
/// connection, as a monitor would), a 4xx answer, or `deadline`. Returns the acknowledgement.
#[allow(clippy::too_many_arguments)]
async fn deliver(
    conn: &mut Option<Conn>,
    target: &Arc<Target>,
    chair: &Chair,
    key: &str,
    body: &Bytes,
    deadline: Instant,
    timeout: Duration,
    out: &mut ChairOutcome,
) -> Option<(Instant, Value)> {
    let path = format!("/sessions/{}/vitals", chair.session_id);
    let mut first: Option<Instant> = None;
    loop {
        if Instant::now() > deadline {
            out.given_up += 1;
            out.error(format!("{key}: not acknowledged before the deadline"));
            return None;
        }
        if conn.is_none() {
            match tokio::time::timeout(timeout, Conn::open(target)).await {
                Ok(Ok(c)) => *conn = Some(c),
                Ok(Err(e)) => {
                    out.connection_errors += 1;
                    out.error(format!("{key}: connect: {e:#}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(_) => {
                    out.timeouts += 1;
                    out.error(format!("{key}: connect timed out"));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let request = match c.request(Method::POST, &path, Some(&chair.device_token), body.clone()) {
            Ok(r) => r,
            Err(e) => {
                out.given_up += 1;
                out.error(format!("{key}: {e:#}"));
                return None;
            }
        };
        out.requests += 1;
        let sent = Instant::now();
        let first_sent = *first.get_or_insert(sent);
        match tokio::time::timeout(timeout, c.round_trip(request)).await {
            Ok(Ok((StatusCode::OK, response))) => {
                let now = Instant::now();
                out.ack_latencies.push((sent, now - sent));
                out.last_ack = Some(now);
                return match serde_json::from_slice::<Value>(response.body()) {
                    Ok(ack) => Some((first_sent, ack)),
                    Err(e) => {
                        out.anomalies
                            .push(format!("{key}: acknowledgement is not JSON: {e}"));
                        None
                    }
                };
            }
            Ok(Ok((status, response))) => {
                out.non_200 += 1;
                out.error(format!(
                    "{key}: {status}: {}",
                    String::from_utf8_lossy(response.body())
                ));
                if status.is_client_error()
                    && status != StatusCode::TOO_MANY_REQUESTS
                    && status != StatusCode::REQUEST_TIMEOUT
                {
                    out.given_up += 1;
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(Err(e)) => {
                out.connection_errors += 1;
                out.error(format!("{key}: {e:#}"));
                *conn = None;
            }
            Err(_) => {
                out.timeouts += 1;
                out.error(format!("{key}: no answer within {} ms", timeout.as_millis()));
                *conn = None;
            }
        }
    }
}

/// Checks an acknowledgement against what was sent.
fn check_ack(ack: &Value, key: &str, expect_duplicate: bool, out: &mut ChairOutcome) -> Option<bool> {
    let r = &ack["readings"][0];
    if r["idempotency_key"] != key {
        out.anomalies
            .push(format!("{key}: acknowledged as {}", r["idempotency_key"]));
        return None;
    }
    let duplicate = r["duplicate"].as_bool();
    if duplicate != Some(expect_duplicate) {
        out.anomalies.push(format!(
            "{key}: duplicate = {duplicate:?}, expected {expect_duplicate}"
        ));
    }
    duplicate
}

async fn run_chair(
    target: Arc<Target>,
    chair: Chair,
    plan: Arc<Plan>,
    alarm_second: u64,
    seed: u64,
) -> ChairOutcome {
    let mut out = ChairOutcome {
        session_id: chair.session_id.clone(),
        ..ChairOutcome::default()
    };
    let mut rng = StdRng::seed_from_u64(seed ^ (chair.index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut conn = match Conn::open(&target).await {
        Ok(c) => Some(c),
        Err(e) => {
            out.connection_errors += 1;
            out.error(format!("chair {}: {e:#}", chair.index + 1));
            None
        }
    };
    // Spread the chairs evenly over the first second.
    let offset = Duration::from_micros((chair.index as u64 * 1_000_000) / plan.chairs.max(1) as u64);
    for n in 0..plan.seconds {
        let due = plan.start + offset + Duration::from_secs(n);
        tokio::time::sleep_until(due.into()).await;
        let now = Instant::now();
        if now > plan.hard_stop {
            out.skipped += (plan.seconds - n) as usize;
            break;
        }
        out.lags.push(now - due);
        let key = format!("bench{:04}-{n:04}", chair.index + 1);
        let alarm = n == alarm_second;
        let body = reading(&key, &mut rng, alarm);
        let deadline = now + Duration::from_secs(60);
        let Some((first_sent, ack)) = deliver(
            &mut conn,
            &target,
            &chair,
            &key,
            &body,
            deadline,
            plan.timeout,
            &mut out,
        )
        .await
        else {
            continue;
        };
        out.first_sent.push((key.clone(), first_sent));
        if check_ack(&ack, &key, false, &mut out) == Some(false) {
            out.acked_new.push(key.clone());
        }
        if alarm {
            out.alarm_sent = Some(first_sent);
            out.alarm_in_ack = ack["readings"][0]["alarms"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x["code"] == "systolic_high"));
        }
        // Every K-th reading (counted across all chairs in send order) is sent again, as a
        // monitor that missed the acknowledgement would.
        let global = n * plan.chairs as u64 + chair.index as u64;
        if plan.duplicate_every > 0 && global % plan.duplicate_every == plan.duplicate_every - 1 {
            let deadline = Instant::now() + Duration::from_secs(60);
            if let Some((_, ack)) = deliver(
                &mut conn,
                &target,
                &chair,
                &key,
                &body,
                deadline,
                plan.timeout,
                &mut out,
            )
            .await
                && check_ack(&ack, &key, true, &mut out) == Some(true)
            {
                out.acked_duplicates += 1;
            }
        }
    }
    out
}

// ---- The board -----------------------------------------------------------------------------------

/// What the board saw, with receive times.
#[derive(Debug, Default)]
struct BoardLog {
    /// `vitals` events: idempotency key → first receipt.
    vitals: HashMap<String, Instant>,
    /// `alarm.raised` with code systolic_high: session id → first receipt.
    alarms: HashMap<String, Instant>,
    /// Events of other kinds.
    other: usize,
    /// `vitals` events for a key seen before (the stream must not repeat events).
    repeated: usize,
}

/// Parses one server-sent event (the lines between blank lines).
fn board_event(block: &str, at: Instant, log: &mut BoardLog) {
    let mut kind = "";
    let mut data = String::new();
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            kind = v.trim_start();
        } else if let Some(v) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    if data.is_empty() {
        return; // a keep-alive comment
    }
    let Ok(event) = serde_json::from_str::<Value>(&data) else {
        log.other += 1;
        return;
    };
    match kind {
        "vitals" => {
            if let Some(key) = event["data"]["reading"]["idempotency_key"].as_str()
                && log.vitals.insert(key.to_string(), at).is_some()
            {
                log.repeated += 1;
            }
        }
        "alarm.raised" if event["data"]["code"] == "systolic_high" => {
            if let Some(session) = event["session_id"].as_str() {
                log.alarms.entry(session.to_string()).or_insert(at);
            }
        }
        _ => log.other += 1,
    }
}

/// Follows the board until `stop`; reports readiness once the stream is open.
async fn follow_board(
    target: Arc<Target>,
    token: String,
    ready: oneshot::Sender<()>,
    mut stop: watch::Receiver<bool>,
    vitals_seen: Arc<AtomicUsize>,
) -> Result<BoardLog> {
    let mut conn = Conn::open(&target).await?;
    let mut request = conn.request(Method::GET, "/board/stream", Some(&token), Bytes::new())?;
    request.headers_mut().insert(
        ACCEPT,
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    let response = conn.send(request).await?;
    if response.status() != StatusCode::OK {
        bail!("GET /board/stream answered {}", response.status());
    }
    let _ = ready.send(());
    let mut body = response.into_body();
    let mut log = BoardLog::default();
    let mut buffer: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        tokio::select! {
            frame = body.frame() => {
                let at = Instant::now();
                let Some(frame) = frame else { bail!("the board stream ended") };
                let Ok(data) = frame?.into_data() else { continue };
                buffer.extend_from_slice(&data);
                while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
                    let block: Vec<u8> = buffer.drain(..end + 2).collect();
                    board_event(&String::from_utf8_lossy(&block), at, &mut log);
                }
                vitals_seen.store(log.vitals.len(), Ordering::Relaxed);
            }
            _ = stop.changed() => return Ok(log),
        }
    }
}

// ---- Measurements --------------------------------------------------------------------------------

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[derive(Debug)]
struct Summary {
    count: usize,
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
}

impl Summary {
    fn of(durations: impl IntoIterator<Item = Duration>) -> Summary {
        let mut ms: Vec<f64> = durations.into_iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        Summary {
            count: ms.len(),
            p50: percentile(&ms, 50.0),
            p95: percentile(&ms, 95.0),
            p99: percentile(&ms, 99.0),
            max: ms.last().copied().unwrap_or(f64::NAN),
        }
    }

    fn line(&self) -> String {
        format!(
            "p50 {:.1} ms  p95 {:.1} ms  p99 {:.1} ms  max {:.1} ms  (n = {})",
            self.p50, self.p95, self.p99, self.max, self.count
        )
    }

    fn json(&self) -> Value {
        let round = |v: f64| {
            if v.is_finite() {
                json!((v * 100.0).round() / 100.0)
            } else {
                Value::Null
            }
        };
        json!({"n": self.count, "p50": round(self.p50), "p95": round(self.p95), "p99": round(self.p99), "max": round(self.max)})
    }
}

/// CPU time (user + system) of a process so far, seconds, from Linux's /proc (100 ticks/s).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split_whitespace().collect();
    // After the command name: state is field 3, utime field 14, stime field 15.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// The machine's busy and stolen CPU time so far, seconds, from Linux's /proc/stat (100 ticks/s).
/// Busy time is what every process used; steal is time the hypervisor gave to other guests.
fn machine_cpu() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(|t| t.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy = [0, 1, 2, 5, 6]
        .iter()
        .map(|&i| ticks.get(i).copied().unwrap_or(0))
        .sum::<u64>();
    let steal = ticks.get(7).copied().unwrap_or(0);
    Some((busy as f64 / 100.0, steal as f64 / 100.0))
}

/// Bytes written to the machine's disks so far and the number of write requests completed, from
/// Linux's /proc/diskstats (whole disks only, not partitions).
fn disk_writes() -> Option<(f64, u64)> {
    let stats = std::fs::read_to_string("/proc/diskstats").ok()?;
    let mut bytes = 0.0;
    let mut requests = 0;
    for line in stats.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some(name) = f.get(2) else { continue };
        let whole = (name.starts_with("vd") || name.starts_with("sd") || name.starts_with("xvd"))
            && name.bytes().skip(2).all(|b| b.is_ascii_lowercase())
            || name.starts_with("nvme") && !name.contains('p');
        if whole {
            requests += f.get(7).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            bytes += f.get(9).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) * 512.0;
        }
    }
    Some((bytes, requests))
}

/// CPU time so far of every process whose command name is `comm`, by process id.
fn cpu_of_comm(comm: &str) -> HashMap<String, f64> {
    let mut found = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let name = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if name.trim_end() == comm
            && let Some(cpu) = cpu_seconds(&pid)
        {
            found.insert(pid, cpu);
        }
    }
    found
}

/// Reads every session's readings back; returns per-key store counts.
async fn read_back(
    target: &Arc<Target>,
    token: &str,
    chairs: &[Chair],
    concurrency: usize,
) -> Result<Vec<Vec<String>>> {
    let next = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(Mutex::new(vec![Vec::new(); chairs.len()]));
    let chairs = Arc::new(chairs.to_vec());
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (target, token, next, results, chairs) = (
            target.clone(),
            token.to_string(),
            next.clone(),
            results.clone(),
            chairs.clone(),
        );
        workers.spawn(async move {
            let mut conn = Conn::open(&target).await?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(chair) = chairs.get(i) else {
                    return Ok::<(), anyhow::Error>(());
                };
                let list = conn
                    .json(
                        Method::GET,
                        &format!("/sessions/{}/vitals", chair.session_id),
                        Some(&token),
                        None,
                        StatusCode::OK,
                    )
                    .await?;
                let keys = list
                    .as_array()
                    .context("vitals list is not an array")?
                    .iter()
                    .map(|v| {
                        v["reading"]["idempotency_key"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string()
                    })
                    .collect();
                results.lock().map_err(|_| anyhow!("poisoned"))?[i] = keys;
            }
        });
    }
    while let Some(joined) = workers.join_next().await {
        joined.context("read-back worker panicked")??;
    }
    let keys = std::mem::take(&mut *results.lock().map_err(|_| anyhow!("poisoned"))?);
    Ok(keys)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

// ---- The run -------------------------------------------------------------------------------------

async fn run(args: Args) -> Result<bool> {
    let target = Arc::new(Target::parse(&args.url)?);
    let password = args
        .password
        .clone()
        .unwrap_or_else(|| format!("{}-password", args.username));
    if args.chairs == 0 || args.seconds == 0 {
        bail!("--chairs and --seconds must be at least 1");
    }
    let mut conn = Conn::open(&target).await?;
    let token = login(&mut conn, &args.username, &password).await?;
    let chairs = book_chairs(&target, &token, &args).await?;

    // The board first, so it sees every event of the run.
    let vitals_seen = Arc::new(AtomicUsize::new(0));
    let (ready_tx, ready_rx) = oneshot::channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let board = tokio::spawn(follow_board(
        target.clone(),
        token.clone(),
        ready_tx,
        stop_rx,
        vitals_seen.clone(),
    ));
    if tokio::time::timeout(Duration::from_secs(10), ready_rx)
        .await
        .is_err()
    {
        bail!("the board stream did not open within 10 s");
    }

    let mut rng = StdRng::seed_from_u64(args.seed);
    // Two seconds to open every chair's connection before the first reading is due.
    let start = Instant::now() + Duration::from_secs(2);
    let plan = Arc::new(Plan {
        start,
        seconds: args.seconds,
        chairs: args.chairs,
        duplicate_every: args.duplicate_every,
        timeout: Duration::from_millis(args.timeout_ms),
        hard_stop: start + Duration::from_secs(args.seconds + 60),
    });
    eprintln!(
        "load: {} chairs × {} s, one reading per chair per second, every {}th resent",
        args.chairs, args.seconds, args.duplicate_every
    );
    let server_pid = args.server_pid.map(|p| p.to_string());
    let cpu_before = (cpu_seconds("self"), server_pid.as_deref().and_then(cpu_seconds));
    let watched_before = args.watch_comm.as_deref().map(cpu_of_comm);
    let machine_before = machine_cpu();
    let disk_before = disk_writes();
    let mut tasks = tokio::task::JoinSet::new();
    for chair in &chairs {
        let alarm_second = rng.random_range(0..args.seconds);
        tasks.spawn(run_chair(
            target.clone(),
            chair.clone(),
            plan.clone(),
            alarm_second,
            args.seed,
        ));
    }
    let mut outcomes = Vec::with_capacity(chairs.len());
    while let Some(joined) = tasks.join_next().await {
        outcomes.push(joined.context("a chair task panicked")?);
    }
    let load_end = Instant::now();
    let cpu_after = (cpu_seconds("self"), server_pid.as_deref().and_then(cpu_seconds));
    let disk = disk_writes()
        .zip(disk_before)
        .map(|((bytes, requests), (bytes0, requests0))| (bytes - bytes0, requests - requests0));
    let machine = machine_cpu()
        .zip(machine_before)
        .map(|((busy, steal), (busy0, steal0))| (busy - busy0, steal - steal0));
    // Processes that started during the load count in full.
    let watched_cpu = args
        .watch_comm
        .as_deref()
        .zip(watched_before)
        .map(|(comm, before)| {
            let used: f64 = cpu_of_comm(comm)
                .iter()
                .map(|(pid, cpu)| cpu - before.get(pid).copied().unwrap_or(0.0))
                .sum();
            (comm.to_string(), (used * 100.0).round() / 100.0)
        });

    // Let the board catch up with every stored reading (at most 15 s), then stop following it.
    let expected_events: usize = outcomes.iter().map(|o| o.acked_new.len()).sum();
    let wait_from = Instant::now();
    while vitals_seen.load(Ordering::Relaxed) < expected_events
        && wait_from.elapsed() < Duration::from_secs(15)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let board_lag = wait_from.elapsed();
    let _ = stop_tx.send(true);
    let board = board.await.context("the board task panicked")??;

    // ---- Aggregate.
    let sent_readings: usize = outcomes.iter().map(|o| o.lags.len()).sum();
    let requests: usize = outcomes.iter().map(|o| o.requests).sum();
    let acked_new: usize = outcomes.iter().map(|o| o.acked_new.len()).sum();
    let acked_dup: usize = outcomes.iter().map(|o| o.acked_duplicates).sum();
    let non_200: usize = outcomes.iter().map(|o| o.non_200).sum();
    let timeouts: usize = outcomes.iter().map(|o| o.timeouts).sum();
    let connection_errors: usize = outcomes.iter().map(|o| o.connection_errors).sum();
    let given_up: usize = outcomes.iter().map(|o| o.given_up).sum();
    let skipped: usize = outcomes.iter().map(|o| o.skipped).sum();
    let anomalies: Vec<&String> = outcomes.iter().flat_map(|o| o.anomalies.iter()).collect();
    let errors = non_200 + timeouts + connection_errors;
    let last_ack = outcomes
        .iter()
        .filter_map(|o| o.last_ack)
        .max()
        .unwrap_or(load_end);
    // The readings are due over `seconds`; a server that falls behind stretches the window.
    let duration = last_ack
        .saturating_duration_since(start)
        .as_secs_f64()
        .max(args.seconds as f64);
    let acked_total = acked_new + acked_dup;
    let rate = acked_total as f64 / duration;
    let offered = (sent_readings + acked_dup) as f64 / args.seconds as f64;
    let ack = Summary::of(
        outcomes
            .iter()
            .flat_map(|o| o.ack_latencies.iter().map(|(_, d)| *d)),
    );
    // The slowest acknowledgement per second of the run (by send time): a few slow seconds point
    // to stalls (a checkpoint, a long transaction), slowness everywhere to a saturated server.
    let mut worst_per_second: Vec<f64> = Vec::new();
    for (sent, latency) in outcomes.iter().flat_map(|o| o.ack_latencies.iter()) {
        let second = sent.saturating_duration_since(start).as_secs() as usize;
        if worst_per_second.len() <= second {
            worst_per_second.resize(second + 1, 0.0);
        }
        let ms = latency.as_secs_f64() * 1000.0;
        worst_per_second[second] = worst_per_second[second].max(ms);
    }
    let lag = Summary::of(outcomes.iter().flat_map(|o| o.lags.iter().copied()));

    let mut alarm_latencies = Vec::new();
    let mut alarms_missing = 0;
    let mut alarms_not_in_ack = 0;
    for o in &outcomes {
        if let Some(sent) = o.alarm_sent {
            if !o.alarm_in_ack {
                alarms_not_in_ack += 1;
            }
            match board.alarms.get(&o.session_id) {
                Some(received) => alarm_latencies.push(received.saturating_duration_since(sent)),
                None => alarms_missing += 1,
            }
        }
    }
    let alarms_sent = outcomes.iter().filter(|o| o.alarm_sent.is_some()).count();
    let alarm = Summary::of(alarm_latencies);
    let mut vitals_missing = 0;
    let mut vitals_latencies = Vec::with_capacity(acked_new);
    for (key, sent) in outcomes.iter().flat_map(|o| o.first_sent.iter()) {
        match board.vitals.get(key) {
            Some(received) => vitals_latencies.push(received.saturating_duration_since(*sent)),
            None => vitals_missing += 1,
        }
    }
    let vitals = Summary::of(vitals_latencies);

    // ---- Every acknowledged reading stored exactly once?
    eprintln!("verify: reading back {} sessions", chairs.len());
    let stored = read_back(&target, &token, &chairs, args.setup_concurrency).await?;
    let acked: HashSet<&str> = outcomes
        .iter()
        .flat_map(|o| o.first_sent.iter().map(|(k, _)| k.as_str()))
        .collect();
    let mut stored_total = 0;
    let mut duplicated = 0;
    let mut lost = 0;
    let mut unacknowledged_stored = 0;
    let mut stored_set: HashSet<&str> = HashSet::new();
    for keys in &stored {
        stored_total += keys.len();
        for k in keys {
            if !stored_set.insert(k.as_str()) {
                duplicated += 1;
            }
            if !acked.contains(k.as_str()) {
                unacknowledged_stored += 1;
            }
        }
    }
    for k in &acked {
        if !stored_set.contains(k) {
            lost += 1;
        }
    }

    let (client_cpu, server_cpu) = (
        cpu_after
            .0
            .zip(cpu_before.0)
            .map(|(a, b)| ((a - b) * 100.0).round() / 100.0),
        cpu_after
            .1
            .zip(cpu_before.1)
            .map(|(a, b)| ((a - b) * 100.0).round() / 100.0),
    );
    let load_wall = load_end.saturating_duration_since(start).as_secs_f64();

    println!();
    println!(
        "chairs {}  seconds {}  duplicate every {}  url {}",
        args.chairs, args.seconds, args.duplicate_every, args.url
    );
    println!(
        "sent      {sent_readings} readings + {acked_dup} resends = {} requests incl. retries",
        requests
    );
    println!(
        "acked     {acked_total} ({acked_new} stored + {acked_dup} duplicates)   errors {errors} (non-200 {non_200}, timeouts {timeouts}, connection {connection_errors})   given up {given_up}   skipped {skipped}"
    );
    println!("rate      {rate:.0} readings/s achieved, {offered:.0}/s offered, over {duration:.1} s");
    println!("ack       {}", ack.line());
    println!("lag       {}   (send time behind the 1/s schedule)", lag.line());
    let slow_seconds = worst_per_second
        .iter()
        .filter(|&&ms| ms >= TARGET_ACK_P99_MS)
        .count();
    println!(
        "slowest   ack per second of the run, ms: {}   ({slow_seconds} of {} seconds had one ≥ {TARGET_ACK_P99_MS} ms)",
        worst_per_second
            .iter()
            .map(|ms| format!("{ms:.0}"))
            .collect::<Vec<_>>()
            .join(" "),
        worst_per_second.len()
    );
    println!(
        "alarm→SSE {}   missing {alarms_missing} of {alarms_sent}; not in ack {alarms_not_in_ack}",
        alarm.line()
    );
    println!(
        "vitals→SSE {}   missing {vitals_missing}; repeated {}; board caught up {:.1} s after the load",
        vitals.line(),
        board.repeated,
        board_lag.as_secs_f64()
    );
    println!(
        "stored    {stored_total} readings in {} sessions; distinct acknowledged keys {}; lost {lost}; duplicated {duplicated}; stored without acknowledgement {unacknowledged_stored}",
        stored.len(),
        acked.len()
    );
    if let Some(c) = client_cpu {
        print!("cpu       bench {c:.1} s");
        if let Some(s) = server_cpu {
            print!(", server {s:.1} s");
        }
        if let Some((comm, c)) = &watched_cpu {
            print!(", {comm} processes {c:.1} s");
        }
        println!(" over {load_wall:.1} s of load");
    }
    // Anything else that ran during the load (a build, other tenants) distorts the latencies.
    let others = machine.map(|(busy, steal)| {
        let ours = client_cpu.unwrap_or(0.0)
            + server_cpu.unwrap_or(0.0)
            + watched_cpu.as_ref().map_or(0.0, |(_, c)| *c);
        (
            ((busy - ours).max(0.0) * 10.0).round() / 10.0,
            (steal * 10.0).round() / 10.0,
        )
    });
    if let (Some((busy, _)), Some((other, steal))) = (machine, others) {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        println!(
            "machine   {busy:.1} s busy of {:.1} s ({cores} cores); other processes {other:.1} s; stolen by the hypervisor {steal:.1} s",
            cores as f64 * load_wall
        );
    }
    if let Some((bytes, requests)) = disk {
        println!(
            "disk      {:.0} MiB written in {requests} requests by the whole machine during the load",
            bytes / 1_048_576.0
        );
    }
    for a in anomalies.iter().take(5) {
        println!("anomaly   {a}");
    }
    for e in outcomes.iter().flat_map(|o| o.error_samples.iter()).take(5) {
        println!("error     {e}");
    }

    let planned = args.chairs * args.seconds as usize;
    let sustained = acked_new == planned
        && errors == 0
        && given_up == 0
        && skipped == 0
        && anomalies.is_empty()
        && lag.p99 < TARGET_LAG_P99_MS;
    let ack_ok = ack.p99 < TARGET_ACK_P99_MS;
    let alarm_ok = alarms_missing == 0 && alarms_sent == args.chairs && alarm.p99 < TARGET_ALARM_P99_MS;
    let durable = lost == 0 && duplicated == 0 && stored_total == acked.len();
    println!(
        "{} sustained {} chairs: {acked_new}/{planned} readings stored, {errors} errors, schedule lag p99 {:.1} ms (< {TARGET_LAG_P99_MS} ms)",
        verdict(sustained),
        args.chairs,
        lag.p99
    );
    println!(
        "{} ack latency p99 {:.1} ms (target < {TARGET_ACK_P99_MS} ms)",
        verdict(ack_ok),
        ack.p99
    );
    println!(
        "{} alarm→SSE p99 {:.1} ms (target < {TARGET_ALARM_P99_MS} ms), {}/{} alarms seen",
        verdict(alarm_ok),
        alarm.p99,
        alarm.count,
        args.chairs
    );
    println!(
        "{} lost {lost}, duplicated {duplicated}: stored {stored_total} == distinct acknowledged {}",
        verdict(durable),
        acked.len()
    );
    let pass = sustained && ack_ok && alarm_ok && durable;
    let summary = json!({
        "bench": "chairs",
        "chairs": args.chairs,
        "seconds": args.seconds,
        "duplicate_every": args.duplicate_every,
        "sent": sent_readings,
        "requests": requests,
        "acked": acked_total,
        "acked_stored": acked_new,
        "acked_duplicates": acked_dup,
        "errors": errors,
        "non_200": non_200,
        "timeouts": timeouts,
        "connection_errors": connection_errors,
        "given_up": given_up,
        "skipped": skipped,
        "rate_per_s": (rate * 10.0).round() / 10.0,
        "ack_ms": ack.json(),
        "lag_ms": lag.json(),
        "ack_worst_per_second_ms": worst_per_second.iter().map(|ms| ms.round()).collect::<Vec<_>>(),
        "alarm_sse_ms": alarm.json(),
        "alarms_missing": alarms_missing,
        "vitals_sse_ms": vitals.json(),
        "vitals_missing": vitals_missing,
        "stored": stored_total,
        "distinct_acked": acked.len(),
        "lost": lost,
        "duplicated": duplicated,
        "client_cpu_s": client_cpu,
        "server_cpu_s": server_cpu,
        "watched_cpu_s": watched_cpu.as_ref().map(|(comm, c)| json!({comm: c})),
        "load_wall_s": (load_wall * 10.0).round() / 10.0,
        "other_processes_cpu_s": others.map(|o| o.0),
        "steal_cpu_s": others.map(|o| o.1),
        "disk_written_mib": disk.map(|(b, _)| (b / 1_048_576.0).round()),
        "disk_write_requests": disk.map(|(_, r)| r),
        "pass": pass,
    });
    println!("{summary}");
    Ok(pass)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    let pass = runtime.block_on(run(args))?;
    if !pass {
        std::process::exit(1);
    }
    Ok(())
}
