//! The security review's findings (issue 15), each tried as an attacker would, through the API.
//! Runs on SQLite, and on PostgreSQL with `KETAFLOW_TEST_BACKEND=postgres`.

use ketaflow_test_support as common;

use axum::http::StatusCode;
use common::{App, draft_plan, get, post, receipt, spawn_app, spawn_app_with};
use ketaflow_server::Settings;
use serde_json::{Value, json};

/// Creates an account with a one-time password and signs in with it; returns the session token.
async fn one_time_login(app: &App, admin: &str, username: &str, password: &str) -> String {
    let (s, b) = post(
        app,
        admin,
        "/api/v1/users",
        json!({"username": username, "display_name": username, "role": "nurse", "password": password}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    login_as(app, username, password).await
}

async fn login_as(app: &App, username: &str, password: &str) -> String {
    let (s, b, cookie) = app
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": username, "password": password})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    cookie
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string()
}

fn after(entry: &ketaflow_store::AuditEntry) -> Value {
    serde_json::from_str(entry.after_json.as_deref().unwrap_or("null")).unwrap()
}

/// The signed-in user's id.
async fn my_id(app: &App, token: &str) -> String {
    app.call("GET", "/api/v1/auth/me", Some(token), None).await.1["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// An administrator's reset of a user's password.
async fn reset(app: &App, admin: &str, id: &str, password: &str) -> StatusCode {
    app.call(
        "POST",
        &format!("/api/v1/users/{id}/password"),
        Some(admin),
        Some(json!({"password": password})),
    )
    .await
    .0
}

async fn status(app: &App, token: &str) -> StatusCode {
    app.call("GET", "/api/v1/auth/me", Some(token), None).await.0
}

async fn api_token(app: &App, token: &str) -> (StatusCode, Value) {
    let (s, b) = post(
        app,
        token,
        "/api/v1/auth/tokens",
        json!({"label": "script", "days": 365}),
    )
    .await;
    (s, b)
}

/// High finding: a one-time password became a year-long token, and a password change left the
/// other sessions and tokens working.
#[tokio::test]
async fn a_one_time_password_never_becomes_a_token_and_a_password_change_revokes_the_rest() {
    let app = spawn_app().await;
    let admin = app.login("admin").await;
    let first = one_time_login(&app, &admin, "mallory", "one-time-password-1").await;
    // The attack: turn the one-time password into a 365-day token before anyone notices.
    let (s, b) = api_token(&app, &first).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(b["error"]["code"], "password_change_required");
    let (_, mine) = get(&app, &first, "/api/v1/auth/tokens").await;
    assert!(
        mine.as_array().unwrap().iter().all(|t| t["kind"] == "browser"),
        "no API token was made: {mine}"
    );

    // A second sign-in with the same one-time password (say, the attacker's).
    let second = login_as(&app, "mallory", "one-time-password-1").await;
    // The owner changes the password from the first session: the second stops working at once,
    // the first stays signed in.
    let (s, b) = post(
        &app,
        &first,
        "/api/v1/auth/password",
        json!({"current_password": "one-time-password-1", "new_password": "correct horse battery staple"}),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    assert_eq!(status(&app, &second).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(&app, &first).await, StatusCode::OK);

    // Now a token can be made; a later change from another session revokes it and the first.
    let (s, made) = api_token(&app, &first).await;
    assert_eq!(s, StatusCode::CREATED, "{made}");
    let bearer = made["token"].as_str().unwrap().to_string();
    assert_eq!(status(&app, &bearer).await, StatusCode::OK);
    let third = login_as(&app, "mallory", "correct horse battery staple").await;
    let (s, _) = post(&app, &third, "/api/v1/auth/password", json!({"current_password": "correct horse battery staple", "new_password": "another long passphrase here"})).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        status(&app, &bearer).await,
        StatusCode::UNAUTHORIZED,
        "the API token is revoked"
    );
    assert_eq!(
        status(&app, &first).await,
        StatusCode::UNAUTHORIZED,
        "the older session is revoked"
    );
    assert_eq!(status(&app, &third).await, StatusCode::OK);

    // An administrator's reset revokes every one of them, the current one included.
    let id = my_id(&app, &third).await;
    assert_eq!(
        reset(&app, &admin, &id, "reset-by-admin-77").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(status(&app, &third).await, StatusCode::UNAUTHORIZED);

    // Each change is in the audit log with how many sessions and tokens it revoked.
    let entries = app
        .state
        .store
        .list_audit(&ketaflow_store::AuditFilter::default())
        .await
        .unwrap();
    let revoked: Vec<u64> = entries
        .iter()
        .filter(|e| e.action == "user.password_change" && e.record_id == id)
        .map(|e| after(e)["sessions_and_tokens_revoked"].as_u64().unwrap())
        .collect();
    assert_eq!(
        revoked,
        [1, 2, 1],
        "second session; the token and the first session; the third"
    );
}

/// Users list their own sessions and tokens and revoke one; creating and revoking are audited,
/// and nobody can revoke (or learn of) someone else's.
#[tokio::test]
async fn users_list_and_revoke_their_own_tokens_only() {
    let app = spawn_app().await;
    let nurse = app.login("nurse").await;
    let (s, made) = api_token(&app, &nurse).await;
    assert_eq!(s, StatusCode::CREATED, "{made}");
    let bearer = made["token"].as_str().unwrap().to_string();
    let (s, list) = get(&app, &nurse, "/api/v1/auth/tokens").await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let list = list.as_array().unwrap();
    let current: Vec<&Value> = list.iter().filter(|t| t["current"] == true).collect();
    assert_eq!((current.len(), current[0]["kind"].as_str()), (1, Some("browser")));
    let api = list.iter().find(|t| t["kind"] == "api").unwrap();
    assert_eq!(
        (api["label"].as_str(), api["active"].as_bool()),
        (Some("script"), Some(true))
    );
    let api_id = api["id"].as_str().unwrap().to_string();
    assert_eq!(api_id.len(), 12);

    // Another user cannot revoke it, and is told only that there is no such token of theirs.
    let doc = app.login("doc").await;
    let (s, b, _) = app
        .call(
            "DELETE",
            &format!("/api/v1/auth/tokens/{api_id}"),
            Some(&doc),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    assert_eq!(status(&app, &bearer).await, StatusCode::OK);
    for bad in ["zz", "0123456789abcdef", "'%20OR%201=1"] {
        let (s, _, _) = app
            .call(
                "DELETE",
                &format!("/api/v1/auth/tokens/{bad}"),
                Some(&nurse),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{bad}");
    }
    // Its owner can.
    let (s, _, _) = app
        .call(
            "DELETE",
            &format!("/api/v1/auth/tokens/{api_id}"),
            Some(&nurse),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(status(&app, &bearer).await, StatusCode::UNAUTHORIZED);
    let (s, _, _) = app
        .call(
            "DELETE",
            &format!("/api/v1/auth/tokens/{api_id}"),
            Some(&nurse),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "already revoked");
    let entries = app
        .state
        .store
        .list_audit(&ketaflow_store::AuditFilter::default())
        .await
        .unwrap();
    for action in ["auth.token.create", "auth.token.revoke"] {
        let entry = entries
            .iter()
            .find(|e| e.action == action)
            .unwrap_or_else(|| panic!("{action} audited"));
        assert_eq!(after(entry)["token"], api_id.as_str(), "{action}");
    }
}

/// A browser session left idle for the clinic's timeout (30 min by default) is signed out for
/// good, audited; one in use stays signed in; an API token has no idle timeout.
#[tokio::test]
async fn an_idle_browser_session_is_signed_out_and_a_used_one_is_not() {
    let app = spawn_app_with(Settings::default()).await;
    assert_eq!(
        Settings::default().browser_idle_timeout,
        time::Duration::minutes(30)
    );
    let used = app.login("nurse").await;
    let idle = app.login("doc").await;
    let (s, made) = api_token(&app, &idle).await;
    assert_eq!(s, StatusCode::CREATED, "{made}");
    let bearer = made["token"].as_str().unwrap().to_string();
    // 25 min: both fine. The nurse keeps working every 25 min; the physician walks away.
    app.advance(25 * 60);
    assert_eq!(status(&app, &used).await, StatusCode::OK);
    app.advance(25 * 60);
    assert_eq!(
        status(&app, &used).await,
        StatusCode::OK,
        "25 min since its last use"
    );
    assert_eq!(status(&app, &idle).await, StatusCode::UNAUTHORIZED, "50 min idle");
    app.advance(-50 * 60 + 29 * 60);
    assert_eq!(
        status(&app, &idle).await,
        StatusCode::UNAUTHORIZED,
        "revoked, not merely idle"
    );
    assert_eq!(
        status(&app, &bearer).await,
        StatusCode::OK,
        "API tokens live to their expiry"
    );
    let entries = app
        .state
        .store
        .list_audit(&ketaflow_store::AuditFilter::default())
        .await
        .unwrap();
    assert_eq!(
        entries.iter().filter(|e| e.action == "auth.idle_timeout").count(),
        1
    );
}

/// Medium finding: formulas in names, chairs, suppliers and lots ran in a spreadsheet. Every
/// export goes through one writer that neutralises them (OWASP CSV Injection); numbers stay numbers.
#[tokio::test]
async fn formulas_typed_into_records_are_inert_in_every_csv_export() {
    let app = spawn_app().await;
    let nurse = app.login("nurse").await;
    let doc = app.login("doc").await;
    let admin = app.login("admin").await;
    let csv = |path: String, token: String| {
        let app = &app;
        async move {
            let (s, body) = get(app, &token, &path).await;
            assert_eq!(s, StatusCode::OK, "{path}: {body}");
            body.as_str().unwrap_or_default().to_string()
        }
    };
    // A patient named with a formula, a chair with another; their session and outcomes exported.
    let pid = app
        .patient_named(
            &nurse,
            "=HYPERLINK(\"http://evil.example\",\"Open\")",
            70.0,
            "treatment_resistant_depression",
        )
        .await;
    let plan = draft_plan(&app, &doc, &pid).await;
    let plan_id = plan["id"].as_str().unwrap();
    let (s, b) = post(&app, &doc, &format!("/api/v1/plans/{plan_id}/approve"), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, session) = post(
        &app,
        &nurse,
        &format!("/api/v1/patients/{pid}/sessions"),
        json!({"plan_id": plan_id, "chair": "@SUM(A1:A9)", "scheduled_for": "2026-11-26T10:00:00Z"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{session}");
    let sid = session["id"].as_str().unwrap();
    let record = csv(format!("/api/v1/sessions/{sid}/record?format=csv"), nurse.clone()).await;
    assert!(record.contains(",summary.chair,'@SUM(A1:A9),"), "{record}");
    assert!(
        record.contains(r#",summary.patient,"'=HYPERLINK(""http://evil.example"",""Open"")","#),
        "{record}"
    );
    assert!(
        !record.contains(",@SUM(") && !record.contains(",=HYPERLINK"),
        "{record}"
    );

    // The DEA ledger: a supplier and a lot with formulas.
    let mut formulas = receipt(1);
    formulas["lot"] = json!("-2+3+cmd|' /C calc'!A0");
    formulas["supplier"]["name"] = json!("@SUM(1+1)*cmd|' /C calc'!A0");
    let (s, b) = post(&app, &doc, "/api/v1/ledger/vials", formulas).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let ledger = csv("/api/v1/ledger/export".into(), admin.clone()).await;
    assert!(ledger.contains("'-2+3+cmd|' /C calc'!A0"), "{ledger}");
    assert!(ledger.contains("'@SUM(1+1)*cmd|' /C calc'!A0"), "{ledger}");
    for line in ledger.lines() {
        for cell in line.split(',') {
            let cell = cell.trim_start_matches('"');
            let live_formula =
                cell.starts_with(['=', '+', '@']) || (cell.starts_with('-') && cell.parse::<f64>().is_err());
            assert!(
                !live_formula,
                "a live formula in the ledger export: {cell:?} in {line}"
            );
        }
    }
}

/// A login request from a given client address (as `serve` records it for every connection).
async fn login_from(app: &App, client: [u8; 4], username: &str, password: &str) -> (StatusCode, Value) {
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use axum::http::{Request, header};
    let mut request = Request::builder()
        .method("POST")
        .uri("/api/v1/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"username": username, "password": password}).to_string(),
        ))
        .unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(std::net::SocketAddr::from((client, 40_000))));
    let (s, b, _) = app.raw(request).await;
    (s, b)
}

/// Medium finding: five anonymous wrong passwords locked any account for 15 minutes, renewable
/// forever, and the answer told which usernames exist. Now the guesser is slowed, the owner signs
/// in from elsewhere, and every failure reads the same.
#[tokio::test]
async fn a_stranger_cannot_lock_out_a_real_user_and_no_answer_reveals_an_account() {
    let app = spawn_app().await;
    let attacker = [203, 0, 113, 9];
    let ward = [10, 0, 0, 21];
    // The attacker keeps guessing the nurse's password: slowed to a crawl.
    let mut throttled = 0;
    for _ in 0..12 {
        let (s, _) = login_from(&app, attacker, "nurse", "guess").await;
        throttled += usize::from(s == StatusCode::TOO_MANY_REQUESTS);
    }
    assert!(throttled >= 8, "{throttled} of 12 throttled");
    // The nurse, on the ward's computer, signs in at once.
    let (s, b) = login_from(&app, ward, "nurse", "nurse-secret-pass").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // The same answer, word for word, for an unknown user, a wrong password and a disabled account.
    let admin = app.login("admin").await;
    let viewer_id = app.user_id(&admin, "viewer").await;
    let (s, _) = post(
        &app,
        &admin,
        &format!("/api/v1/users/{viewer_id}/disabled"),
        json!({"disabled": true}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let answers: Vec<(StatusCode, Value)> = vec![
        login_from(&app, [198, 51, 100, 1], "nobody-here", "whatever-password").await,
        login_from(&app, [198, 51, 100, 2], "doc", "wrong-password-1").await,
        login_from(&app, [198, 51, 100, 3], "viewer", "viewer-secret-pass").await,
    ];
    for (s, b) in &answers {
        assert_eq!(*s, StatusCode::UNAUTHORIZED, "{b}");
        assert_eq!(b, &answers[0].1, "one answer for all");
    }
}

/// A login through a reverse proxy: the connection comes from `peer`, with `forwarded_for` as the
/// proxy (or an impostor) wrote it.
async fn login_via(
    routes: &axum::Router,
    peer: [u8; 4],
    forwarded_for: &str,
    username: &str,
    password: &str,
) -> StatusCode {
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use axum::http::{Request, header};
    use tower::ServiceExt;
    let mut request = Request::builder()
        .method("POST")
        .uri("/api/v1/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-forwarded-for", forwarded_for)
        .body(Body::from(
            json!({"username": username, "password": password}).to_string(),
        ))
        .unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(std::net::SocketAddr::from((peer, 40_000))));
    routes.clone().oneshot(request).await.unwrap().status()
}

/// Behind a proxy every connection comes from the proxy, so without forwarded headers one
/// guesser would slow the whole clinic's sign-ins. The proxy the operator names is believed about
/// who its client was; a client cannot pose as another through the header, and nobody else's
/// header is believed.
#[tokio::test]
async fn behind_a_trusted_proxy_each_client_is_throttled_as_itself_and_cannot_pose_as_another() {
    use ketaflow_server::proxy::TrustedProxies;
    let app = spawn_app().await;
    let routes = ketaflow_server::router(app.state.clone().with_trusted_proxies(TrustedProxies::loopback()));
    let proxy = [127, 0, 0, 1];
    // The guesser at 198.51.100.1, through the proxy: slowed.
    let mut throttled = 0;
    for _ in 0..8 {
        let s = login_via(&routes, proxy, "198.51.100.1", "nurse", "guess").await;
        throttled += usize::from(s == StatusCode::TOO_MANY_REQUESTS);
    }
    assert!(throttled >= 4, "{throttled} of 8 throttled");
    // Writing another address into the header does not help: the proxy appends the real one.
    let s = login_via(&routes, proxy, "198.51.100.2, 198.51.100.1", "nurse", "guess").await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    // The nurse at 198.51.100.2, through the same proxy, signs in at once.
    let s = login_via(&routes, proxy, "198.51.100.2", "nurse", "nurse-secret-pass").await;
    assert_eq!(s, StatusCode::OK);
    // A stranger connecting directly cannot claim to be the nurse's machine: its header is not
    // believed, so its own address is what is throttled.
    let stranger = [203, 0, 113, 50];
    let mut throttled = 0;
    for _ in 0..8 {
        let s = login_via(&routes, stranger, "198.51.100.2", "nurse", "guess").await;
        throttled += usize::from(s == StatusCode::TOO_MANY_REQUESTS);
    }
    assert!(throttled >= 4, "{throttled} of 8 throttled");
    let s = login_via(&routes, proxy, "198.51.100.2", "nurse", "nurse-secret-pass").await;
    assert_eq!(s, StatusCode::OK, "the nurse was not slowed by the stranger");
    // Without a trusted proxy (the default) the proxy's connections are one client, headers or not.
    let plain = ketaflow_server::router(app.state.clone());
    let mut throttled = 0;
    for i in 0..8 {
        let s = login_via(&plain, proxy, &format!("198.51.100.{}", 100 + i), "doc", "guess").await;
        throttled += usize::from(s == StatusCode::TOO_MANY_REQUESTS);
    }
    assert!(
        throttled >= 4,
        "{throttled} of 8 throttled: one client for every header"
    );
}

/// The account-wide lock (NIST: at most 100 consecutive failures) reads like any other failure,
/// even to the right password, and ends on its own.
#[tokio::test]
async fn a_locked_account_answers_like_a_wrong_password() {
    let app = spawn_app_with(Settings {
        lockout: ketaflow_store::LockoutPolicy {
            threshold: 5,
            lock_for: time::Duration::minutes(15),
        },
        ..Settings::default()
    })
    .await;
    assert_eq!(Settings::default().lockout.threshold, 100);
    // Five failures from five addresses (no one client is slowed): the account locks.
    for i in 0..5 {
        let (s, _) = login_from(&app, [192, 0, 2, i], "doc", "wrong-password").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (s, locked) = login_from(&app, [192, 0, 2, 50], "doc", "doc-secret-pass").await;
    let (_, unknown) = login_from(&app, [192, 0, 2, 51], "nobody-at-all", "doc-secret-pass").await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "the right password does not open a locked account"
    );
    assert_eq!(locked, unknown, "and the answer does not say it is locked");
    app.advance(15 * 60);
    let (s, _) = login_from(&app, [192, 0, 2, 52], "doc", "doc-secret-pass").await;
    assert_eq!(s, StatusCode::OK);
}

/// Medium finding: the login throttle kept every distinct username forever; 300 logins with
/// 200 kB usernames grew memory by 115 MB. Keys are now capped and bounded.
#[tokio::test]
async fn huge_usernames_do_not_grow_memory() {
    let app = spawn_app_with(Settings::default()).await;
    for i in 0..300u32 {
        let username = format!("{i}{}", "u".repeat(200_000));
        let client = [10, 1, (i / 250) as u8, (i % 250) as u8];
        let (s, b) = login_from(&app, client, &username, "x").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    }
    // One entry per client and capped username (64 bytes), one per client: 600 small entries.
    assert_eq!(app.state.password_throttle.len(), 300);
    assert_eq!(app.state.client_throttle.len(), 300);
}

/// Low finding: guesses of the current password on /auth/password were unthrottled.
#[tokio::test]
async fn guesses_of_the_current_password_are_throttled() {
    let app = spawn_app().await;
    let nurse = app.login("nurse").await;
    let guess = json!({"current_password": "guess", "new_password": "a long new passphrase"});
    let mut answers = Vec::new();
    for _ in 0..6 {
        let (s, _) = post(&app, &nurse, "/api/v1/auth/password", guess.clone()).await;
        answers.push(s);
    }
    assert_eq!(&answers[..4], [StatusCode::UNAUTHORIZED; 4]);
    assert_eq!(answers[4], StatusCode::TOO_MANY_REQUESTS, "{answers:?}");
    // Passwords are taken as typed: a trailing space is part of the password, in the API as in
    // the web form.
    app.advance(3600);
    let nurse = app.login("nurse").await;
    let (s, _) = post(
        &app,
        &nurse,
        "/api/v1/auth/password",
        json!({"current_password": "nurse-secret-pass", "new_password": "ends with a space "}),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = login_from(&app, [10, 9, 9, 9], "nurse", "ends with a space").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = login_from(&app, [10, 9, 9, 9], "nurse", "ends with a space ").await;
    assert_eq!(s, StatusCode::OK);
}

/// Low finding: `passwordpassword` and `123456789012` were accepted. New passwords are checked
/// after NIST SP 800-63B against common passwords and the account's own names, wherever they are
/// set: a new account, an administrator's reset, the owner's change.
#[tokio::test]
async fn common_and_self_naming_passwords_are_refused_everywhere() {
    let app = spawn_app().await;
    let admin = app.login("admin").await;
    for weak in ["passwordpassword", "123456789012", "qwertyuiopasdf"] {
        let (s, b) = post(
            &app,
            &admin,
            "/api/v1/users",
            json!({"username": "newnurse", "display_name": "New Nurse", "role": "nurse", "password": weak}),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{weak}: {b}");
        assert_eq!(b["error"]["field"], "password");
        assert_eq!(b["error"]["value"], "(not shown)", "the password is never echoed");
    }
    let doc = app.login("doc").await;
    let doc_id = my_id(&app, &doc).await;
    assert_eq!(
        reset(&app, &admin, &doc_id, "doc-doc-doc-doc").await,
        StatusCode::BAD_REQUEST,
        "the username repeated"
    );
    let (s, b) = post(
        &app,
        &doc,
        "/api/v1/auth/password",
        json!({"current_password": "doc-secret-pass", "new_password": "ketaflowketaflow1"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, _) = post(
        &app,
        &doc,
        "/api/v1/auth/password",
        json!({"current_password": "doc-secret-pass", "new_password": "tundra violet marmalade 47"}),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
}

/// Low finding: no Referrer-Policy or X-Content-Type-Options on staff pages, and no
/// `Cache-Control: no-store` on patient JSON or CSV.
#[tokio::test]
async fn every_answer_carries_the_protective_headers() {
    use axum::body::Body;
    use axum::http::{Request, header};
    let app = spawn_app().await;
    let nurse = app.login("nurse").await;
    let pid = app.patient(&nurse, 70.0).await;
    for (path, cached) in [
        (format!("/api/v1/patients/{pid}"), false),
        (format!("/api/v1/patients/{pid}/outcomes/export"), false),
        ("/api/v1/auth/me".to_string(), false),
        ("/login".to_string(), false),
        (format!("/patients/{pid}"), false),
        ("/static/app.css".to_string(), true),
    ] {
        let request = Request::builder()
            .uri(&path)
            .header(header::COOKIE, format!("ketaflow_session={nurse}"))
            .header(header::AUTHORIZATION, format!("Bearer {nurse}"))
            .body(Body::empty())
            .unwrap();
        let response = app.response(request).await;
        let h = response.headers();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer", "{path}");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
        if !cached {
            assert_eq!(h[header::CACHE_CONTROL], "no-store", "{path}");
        }
    }
}

/// Low finding: dates such as -0001-01-01 and 9999-12-31 were accepted.
#[tokio::test]
async fn implausible_dates_are_refused_with_the_range() {
    let app = spawn_app().await;
    let nurse = app.login("nurse").await;
    for dob in ["-0001-01-01", "9999-12-31", "1899-12-31"] {
        let (s, b) = post(
            &app,
            &nurse,
            "/api/v1/patients",
            json!({"display_name": "Dates", "date_of_birth": dob, "sex": "female"}),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{dob}: {b}");
        assert_eq!(b["error"]["field"], "date_of_birth");
        assert_eq!(
            b["error"]["allowed"], "a date YYYY-MM-DD from 1900-01-01 to 2099-12-31",
            "{b}"
        );
    }
    let pid = app.patient(&nurse, 70.0).await;
    let (s, b) = post(
        &app,
        &nurse,
        &format!("/api/v1/patients/{pid}/plans"),
        json!({"protocol_id": "trd", "concentration_mg_per_ml": 1.0, "planned_on": "9999-12-31"}),
    )
    .await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("planned_on")),
        "{b}"
    );
}
