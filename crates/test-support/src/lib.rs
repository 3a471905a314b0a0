//! What Ketaflow's HTTP and page tests share: a fresh server over SQLite (or a fresh PostgreSQL
//! schema when `KETAFLOW_TEST_BACKEND=postgres` and `KETAFLOW_TEST_POSTGRES_URL` are set) with a
//! user per role (`admin`, `doc`, `nurse`, `viewer`, each with the password `<name>-secret-pass`),
//! a clock the test moves, JSON request helpers, a browser with a session cookie and its CSRF
//! token, and builders for the records most tests need: a patient, an approved plan, a booked
//! session, a normal reading, the check-in checks, a ledger witness.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use ketaflow_clinic::protocol::ProtocolLibrary;
use ketaflow_server::{AppState, Settings, auth, router};
use ketaflow_store::{Actor, NewUser, Role, Store, StoreOptions};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;
use tower::ServiceExt;

/// The test clock starts here.
pub const T0: OffsetDateTime = datetime!(2026-11-26 10:00 UTC);

/// A server under test.
pub struct App {
    pub state: AppState,
    /// Seconds the clock has been moved past [`T0`].
    pub offset_s: Arc<AtomicI64>,
    /// The server's routes over `state`, built once (building them generates the OpenAPI document).
    routes: axum::Router,
    _dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("offset_s", &self.offset_s)
            .finish_non_exhaustive()
    }
}

/// A fresh server: SQLite in a temporary directory, or a fresh PostgreSQL schema when
/// `KETAFLOW_TEST_POSTGRES_URL` is set and `KETAFLOW_TEST_BACKEND=postgres`.
pub async fn spawn_app() -> App {
    spawn_app_with(Settings {
        max_body_bytes: 16 * 1024,
        // The clinical tests step the clock through hours with one sign-in; the idle timeout has
        // its own test (security.rs), which uses the default.
        browser_idle_timeout: time::Duration::hours(12),
        ..Settings::default()
    })
    .await
}

/// [`spawn_app`] with these settings.
pub async fn spawn_app_with(settings: Settings) -> App {
    let (store, dir) = match (
        std::env::var("KETAFLOW_TEST_BACKEND").as_deref(),
        std::env::var("KETAFLOW_TEST_POSTGRES_URL"),
    ) {
        (Ok("postgres"), Ok(url)) => {
            let schema = format!("api_{}", uuid::Uuid::now_v7().simple());
            (
                Store::connect_with(&url, &StoreOptions::default().postgres_schema(schema))
                    .await
                    .unwrap(),
                None,
            )
        }
        _ => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("test.db").display());
            (Store::connect(&url).await.unwrap(), Some(dir))
        }
    };
    let offset_s = Arc::new(AtomicI64::new(0));
    let clock_offset = offset_s.clone();
    let state = AppState::new(
        store,
        ProtocolLibrary::embedded(),
        Arc::new(move || T0 + time::Duration::seconds(clock_offset.load(Ordering::SeqCst))),
        settings,
    );
    for (username, role) in [
        ("admin", Role::Administrator),
        ("doc", Role::Physician),
        ("nurse", Role::Nurse),
        ("viewer", Role::Viewer),
    ] {
        let new = NewUser {
            username: username.into(),
            display_name: username.into(),
            role,
            password_hash: auth::hash_password(&format!("{username}-secret-pass")).unwrap(),
        };
        state
            .store
            .create_user_audited(&Actor::system("test"), &new, state.now())
            .await
            .unwrap();
    }
    App {
        routes: router(state.clone()),
        state,
        offset_s,
        _dir: dir,
    }
}

impl App {
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value, Option<String>) {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some(b) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string()))
                .unwrap(),
            None => builder.body(Body::empty()).unwrap(),
        };
        self.raw(request).await
    }

    /// The whole response to a request, headers included.
    pub async fn response(&self, request: Request<Body>) -> axum::response::Response {
        self.routes.clone().oneshot(request).await.unwrap()
    }

    pub async fn raw(&self, request: Request<Body>) -> (StatusCode, Value, Option<String>) {
        let response = self.routes.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let cookie = response
            .headers()
            .get(header::SET_COOKIE)
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, value, cookie)
    }

    /// Logs in and returns the session token from the cookie.
    pub async fn login(&self, username: &str) -> String {
        let (status, body, cookie) = self
            .call(
                "POST",
                "/api/v1/auth/login",
                None,
                Some(json!({"username": username, "password": format!("{username}-secret-pass")})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let cookie = cookie.expect("session cookie");
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("Secure") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        cookie
            .split(';')
            .next()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
            .to_string()
    }

    /// How many audit entries record something other than signing in and out (tests count what
    /// a request wrote; they sign people in as they go). The chain is verified on the way.
    pub async fn audit_count(&self) -> u64 {
        let total = self.state.store.verify_audit_chain().await.unwrap().checked;
        let mut sign_ins = 0;
        let mut after_seq = None;
        loop {
            let page = self
                .state
                .store
                .list_audit(&ketaflow_store::AuditFilter {
                    after_seq,
                    ..Default::default()
                })
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after_seq = Some(last.seq);
            sign_ins += page.iter().filter(|e| e.action.starts_with("auth.")).count() as u64;
        }
        total - sign_ins
    }

    /// The id of `username`, looked up as the administrator `admin`.
    pub async fn user_id(&self, admin: &str, username: &str) -> String {
        let (s, users, _) = self.call("GET", "/api/v1/users", Some(admin), None).await;
        assert_eq!(s, StatusCode::OK, "{users}");
        users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == username)
            .unwrap_or_else(|| panic!("no user {username}"))["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Moves the clock forward.
    pub fn advance(&self, seconds: i64) {
        self.offset_s.fetch_add(seconds, Ordering::SeqCst);
    }

    /// Now on the test clock.
    pub fn now(&self) -> OffsetDateTime {
        self.state.now()
    }

    /// A patient with weight, height, a depression indication and BP, created by the nurse.
    pub async fn patient(&self, nurse: &str, weight_kg: f64) -> String {
        self.patient_with(nurse, weight_kg, "treatment_resistant_depression")
            .await
    }

    /// A patient with weight, height, the given indication and BP, created by the nurse.
    pub async fn patient_with(&self, nurse: &str, weight_kg: f64, indication: &str) -> String {
        self.patient_named(nurse, "Test Patient", weight_kg, indication)
            .await
    }

    /// [`App::patient_with`] under another name (a name with quotes or a formula, say).
    pub async fn patient_named(&self, nurse: &str, name: &str, weight_kg: f64, indication: &str) -> String {
        let (s, p, _) = self
            .call(
                "POST",
                "/api/v1/patients",
                Some(nurse),
                Some(
                    json!({"display_name": name, "mrn": "T-1", "date_of_birth": "1986-01-01", "sex": "male"}),
                ),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{p}");
        let id = p["id"].as_str().unwrap().to_string();
        for (path, body) in [
            ("weights", json!({"weight_kg": weight_kg, "on": "2026-11-20"})),
            ("heights", json!({"height_cm": 177.8, "on": "2026-11-20"})),
            ("indications", json!({"code": indication})),
            (
                "baseline-bp",
                json!({"systolic_mmhg": 128, "diastolic_mmhg": 80, "on": "2026-11-20"}),
            ),
        ] {
            let (s, b, _) = self
                .call(
                    "POST",
                    &format!("/api/v1/patients/{id}/{path}"),
                    Some(nurse),
                    Some(body),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{path}: {b}");
        }
        id
    }
}

impl App {
    /// A 70-kg patient with an approved TRD plan (0.5 mg/kg over 40 min: 35 mg, 52.5 mg/h at
    /// 1 mg/mL) booked in `chair`; returns (patient id, session id).
    pub async fn booked_session(&self, nurse: &str, doc: &str, chair: &str) -> (String, String) {
        let pid = self.patient(nurse, 70.0).await;
        let plan = draft_plan(self, nurse, &pid).await;
        let plan_id = plan["id"].as_str().unwrap().to_string();
        let (s, b, _) = self
            .call(
                "POST",
                &format!("/api/v1/plans/{plan_id}/approve"),
                Some(doc),
                Some(json!({})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (s, session, _) = self
            .call(
                "POST",
                &format!("/api/v1/patients/{pid}/sessions"),
                Some(nurse),
                Some(json!({"plan_id": plan_id, "chair": chair, "scheduled_for": "2026-11-26T10:00:00Z"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{session}");
        (pid, session["id"].as_str().unwrap().to_string())
    }
}

/// A browser for the HTML pages: holds the session cookie and reads the CSRF token off pages.
#[derive(Debug)]
pub struct Browser<'a> {
    pub app: &'a App,
    pub token: String,
    pub csrf: String,
}

/// A page as the browser received it.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    /// The `Location` header of a redirect.
    pub location: Option<String>,
    pub html: String,
}

impl App {
    /// The login form as a browser first receives it: the form's token and the cookie it pairs with
    /// (`ketaflow_login=…`).
    pub async fn login_form(&self) -> (String, String) {
        let request = Request::builder().uri("/login").body(Body::empty()).unwrap();
        let response = self.routes.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let cookie = response.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let html =
            String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        let marker = r#"name="login_csrf" value=""#;
        let at = html.find(marker).expect("the form's token") + marker.len();
        (html[at..].split('"').next().unwrap().to_string(), cookie)
    }

    /// Posts the login form (`cookie`: the `Cookie` header to send, if any).
    pub async fn post_login(&self, body: String, cookie: Option<&str>) -> axum::response::Response {
        let mut request = Request::builder()
            .method("POST")
            .uri("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.routes
            .clone()
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap()
    }

    /// Logs in through the login form and returns a browser holding the cookie and CSRF token.
    pub async fn browser(&self, username: &str) -> Browser<'_> {
        let (login_csrf, login_cookie) = self.login_form().await;
        let body = format!("username={username}&password={username}-secret-pass&login_csrf={login_csrf}");
        let response = self.post_login(body, Some(&login_cookie)).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let cookie = response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .find(|v| v.starts_with("ketaflow_session="))
            .expect("the session cookie")
            .to_string();
        let token = cookie
            .split(';')
            .next()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
            .to_string();
        let mut browser = Browser {
            app: self,
            token,
            csrf: String::new(),
        };
        let page = browser.get("/password").await;
        browser.csrf = page.csrf().expect("a CSRF token on the page");
        browser
    }
}

impl Browser<'_> {
    async fn send(&self, request: Request<Body>) -> Page {
        let response = self.app.routes.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Page {
            status,
            location,
            html: String::from_utf8_lossy(&bytes).into(),
        }
    }

    /// GET a page with the session cookie.
    pub async fn get(&self, path: &str) -> Page {
        let request = Request::builder()
            .uri(path)
            .header(header::COOKIE, format!("ketaflow_session={}", self.token))
            .body(Body::empty())
            .unwrap();
        self.send(request).await
    }

    /// POST a form with the session cookie and this session's CSRF token.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut all: Vec<(&str, &str)> = vec![("csrf", &self.csrf)];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }

    /// POST a form exactly as given (no CSRF token added).
    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let request = Request::builder()
            .method("POST")
            .uri(path)
            .header(header::COOKIE, format!("ketaflow_session={}", self.token))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap();
        self.send(request).await
    }
}

impl Page {
    /// The CSRF token in the page's first form.
    pub fn csrf(&self) -> Option<String> {
        let at = self.html.find(r#"name="csrf" value=""#)? + r#"name="csrf" value=""#.len();
        Some(self.html[at..].split('"').next()?.to_string())
    }

    /// Whether the page contains `text` (HTML-escaped as askama escapes it).
    pub fn shows(&self, text: &str) -> bool {
        self.html.contains(text)
    }
}

/// application/x-www-form-urlencoded encoding of one key or value.
pub fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => (b as char).to_string(),
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ---- Builders shared by the API tests --------------------------------------------------------------

/// Ten minutes, an hour: test-clock steps in seconds.
pub const MIN: i64 = 60;

/// The pre-checks a check-in needs, all confirmed (JSON text, for `json!` bodies).
pub const CHECKS: &str = r#"{"fasting_confirmed": true, "escort_confirmed": true, "consent_on_file": true, "questionnaire_answered": true}"#;

/// A normal adult reading (NEWS2 0) with its idempotency key.
pub fn normal(key: &str) -> Value {
    json!({"idempotency_key": key, "systolic_mmhg": 128, "diastolic_mmhg": 80, "heart_rate_per_min": 72,
           "spo2_percent": 98, "respiratory_rate_per_min": 14, "temperature_c": 36.7,
           "consciousness": "alert", "on_oxygen": false, "moaas": 5})
}

/// A ledger witness confirming with their own (test) password.
pub fn witness(username: &str) -> Value {
    json!({"username": username, "password": format!("{username}-secret-pass")})
}

/// The code of an error body (`""` when it is not one).
pub fn error_code(b: &Value) -> &str {
    b["error"]["code"].as_str().unwrap_or_default()
}

/// POST JSON with a bearer token.
pub async fn post(app: &App, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let (s, b, _) = app.call("POST", path, Some(token), Some(body)).await;
    (s, b)
}

/// GET with a bearer token.
pub async fn get(app: &App, token: &str, path: &str) -> (StatusCode, Value) {
    let (s, b, _) = app.call("GET", path, Some(token), None).await;
    (s, b)
}

/// The text `key` of each element of the JSON array `list`, in order (panics on anything else, as a
/// test should).
pub fn texts<'a>(list: &'a Value, key: &str) -> Vec<&'a str> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|item| {
            item[key]
                .as_str()
                .unwrap_or_else(|| panic!("no text {key} in {item}"))
        })
        .collect()
}

/// The plan most tests compute: the TRD protocol at 1 mg/mL for the test day.
pub fn trd_plan() -> Value {
    json!({"protocol_id": "trd", "concentration_mg_per_ml": 1.0, "planned_on": "2026-11-26"})
}

/// A draft TRD plan for the patient, computed as `token`; returns it (201 asserted).
pub async fn draft_plan(app: &App, token: &str, pid: &str) -> Value {
    let (s, plan) = post(app, token, &format!("/api/v1/patients/{pid}/plans"), trd_plan()).await;
    assert_eq!(s, StatusCode::CREATED, "{plan}");
    plan
}

/// A ledger receipt of `containers` 10-mL vials of ketamine 10 mg/mL from one supplier.
pub fn receipt(containers: u32) -> Value {
    json!({
        "ndc": "0409-2051-05",
        "product_name": "Ketamine HCl injection",
        "strength_mg_per_ml": "10",
        "volume_ml": "10",
        "lot": "LOT-7731",
        "expiry": "2027-06-30",
        "supplier": {"name": "Example Wholesale Inc.", "address": "1 Depot Road, Springfield", "dea_number": "RW1234563"},
        "invoice_number": "INV-2026-0042",
        "containers": containers
    })
}

/// A server-sent event stream of the API, read as a client reads it.
#[derive(Debug)]
pub struct EventStream {
    body: Body,
    buffer: String,
}

/// One event: its id (none for a heartbeat), name and data.
pub type SseEvent = (Option<i64>, String, Value);

impl EventStream {
    /// Opens `path` as `token`, resuming after `last_event_id` when given.
    pub async fn open(
        app: &App,
        path: &str,
        token: &str,
        last_event_id: Option<i64>,
    ) -> (StatusCode, EventStream) {
        let mut request = Request::builder()
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = router(app.state.clone())
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let stream = EventStream {
            body: response.into_body(),
            buffer: String::new(),
        };
        (status, stream)
    }

    /// The next event, heartbeats included (5 s at most).
    pub async fn next(&mut self) -> SseEvent {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut kind, mut data) = (None, String::new(), Value::Null);
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = v.parse().ok();
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        kind = v.into();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = serde_json::from_str(v).unwrap_or(Value::String(v.into()));
                    }
                }
                if kind.is_empty() && id.is_none() {
                    continue; // a comment or keep-alive line
                }
                return (id, kind, data);
            }
            let frame = tokio::time::timeout(std::time::Duration::from_secs(5), self.body.frame())
                .await
                .expect("an event within 5 s")
                .expect("stream open")
                .unwrap();
            if let Ok(data) = frame.into_data() {
                self.buffer.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }

    /// The next `n` events that carry an id (heartbeats skipped), as (id, name, data).
    pub async fn events(&mut self, n: usize) -> Vec<(i64, String, Value)> {
        let mut out = Vec::new();
        while out.len() < n {
            if let (Some(id), kind, data) = self.next().await {
                out.push((id, kind, data));
            }
        }
        out
    }

    /// The data of the next event named `kind`, skipping others.
    pub async fn wait_for(&mut self, kind: &str) -> Value {
        loop {
            let (_, name, data) = self.next().await;
            if name == kind {
                return data;
            }
        }
    }
}

/// A patient (by `nurse`) with an approved plan of `protocol` (by `doc`) at 1 mg/mL; returns the
/// patient id and the plan.
pub async fn approved_plan(
    app: &App,
    nurse: &str,
    doc: &str,
    weight: f64,
    indication: &str,
    protocol: &str,
) -> (String, Value) {
    let pid = app.patient_with(nurse, weight, indication).await;
    let body = json!({"protocol_id": protocol, "concentration_mg_per_ml": 1.0, "planned_on": "2026-11-26"});
    let (s, plan) = post(app, nurse, &format!("/api/v1/patients/{pid}/plans"), body).await;
    assert_eq!(s, StatusCode::CREATED, "{plan}");
    let plan_id = plan["id"].as_str().unwrap().to_string();
    let (s, plan) = post(app, doc, &format!("/api/v1/plans/{plan_id}/approve"), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{plan}");
    (pid, plan)
}

/// Books a session for the patient's plan in `chair` at the test clock's start; returns its id.
pub async fn book(app: &App, nurse: &str, pid: &str, plan_id: &str, chair: &str) -> String {
    let body = json!({"plan_id": plan_id, "chair": chair, "scheduled_for": "2026-11-26T10:00:00Z"});
    let (s, session) = post(app, nurse, &format!("/api/v1/patients/{pid}/sessions"), body).await;
    assert_eq!(s, StatusCode::CREATED, "{session}");
    assert_eq!(session["state"], "scheduled");
    assert_eq!(session["legal_events"], json!(["check_in", "abort"]));
    session["id"].as_str().unwrap().to_string()
}

/// Posts one event to a session's state machine.
pub async fn event(app: &App, token: &str, sid: &str, body: Value) -> (StatusCode, Value) {
    post(app, token, &format!("/api/v1/sessions/{sid}/transitions"), body).await
}

/// Posts a batch of readings to a session.
pub async fn vitals(app: &App, token: &str, sid: &str, readings: Vec<Value>) -> (StatusCode, Value) {
    post(
        app,
        token,
        &format!("/api/v1/sessions/{sid}/vitals"),
        json!({"readings": readings}),
    )
    .await
}

/// Baseline vitals, check-in, start, 40 minutes of infusion, stop (a 70-kg TRD session gives 35 mg).
pub async fn infuse_and_stop(app: &App, nurse: &str, sid: &str) {
    let (s, b) = vitals(app, nurse, sid, vec![normal(&format!("baseline-{sid}"))]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let checks: Value = serde_json::from_str(CHECKS).unwrap();
    for body in [
        json!({"event": "check_in", "checks": checks}),
        json!({"event": "start"}),
    ] {
        let (s, b) = event(app, nurse, sid, body).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    app.advance(40 * MIN);
    let (s, b) = event(app, nurse, sid, json!({"event": "stop", "stop": "completed"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}
