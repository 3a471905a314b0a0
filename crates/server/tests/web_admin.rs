//! The administration, ledger and risk pages in a browser's shoes (in process, real router, real
//! store): forms post through the API's own handlers, refused forms keep what was typed with the
//! error beside the field, a form without its CSRF token changes nothing, and the patient's
//! questionnaire link works without an account, once.

use ketaflow_test_support as common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{App, Page, form_encode, post, receipt, spawn_app};
use http_body_util::BodyExt;
use serde_json::{Value, json};

/// The table row of the user list that holds `username`.
fn user_row<'a>(page: &'a Page, username: &str) -> &'a str {
    page.html
        .split("<tr id=\"user-")
        .skip(1)
        .find(|row| row.contains(&format!("<small>{username}</small>")))
        .unwrap_or_else(|| panic!("no row for {username}"))
}

#[tokio::test]
async fn an_administrator_creates_a_user_through_the_form_and_the_list_shows_their_role() {
    let app = spawn_app().await;
    let admin = app.browser("admin").await;
    let page = admin.get("/users").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(user_row(&page, "doc").contains("data-role=\"physician\""));
    assert!(page.shows("data-confirm=\"Disable doc?"), "disabling asks first");

    let before = app.audit_count().await;
    let page = admin
        .post(
            "/users",
            &[
                ("username", "carol"),
                ("display_name", "Carol Reyes"),
                ("role", "physician"),
                ("password", "carol-one-time-pw"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    assert_eq!(page.location.as_deref(), Some("/users"));
    assert_eq!(app.audit_count().await, before + 1);

    let page = admin.get("/users").await;
    let row = user_row(&page, "carol");
    assert!(row.contains("Carol Reyes"));
    assert!(row.contains("data-role=\"physician\""));
    assert!(row.contains("one-time password"));
    assert!(
        !page.html.contains("carol-one-time-pw"),
        "a password is never shown"
    );
    let carol = app
        .state
        .store
        .get_user_by_username("carol")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(carol.role.as_str(), "physician");
    assert!(carol.must_change_password);

    // Disable, then enable again: each through its own form, each audited.
    let id = carol.id.to_string();
    let page = admin
        .post(&format!("/users/{id}/disabled"), &[("disabled", "true")])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    let page = admin.get("/users").await;
    assert!(user_row(&page, "carol").contains(">disabled<"));
    assert!(user_row(&page, "carol").contains("Enable carol"));
    admin
        .post(&format!("/users/{id}/disabled"), &[("disabled", "false")])
        .await;
    assert!(
        !app.state
            .store
            .get_user_by_username("carol")
            .await
            .unwrap()
            .unwrap()
            .disabled
    );

    // A reset password that is too short is refused beside its field in that user's row.
    let page = admin
        .post(&format!("/users/{id}/password"), &[("password", "short")])
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.shows(&format!("id=\"pw-{id}-error\">allowed: 12–256 characters")));
    assert!(!page.html.contains("value=\"short\""));
    let page = admin
        .post(
            &format!("/users/{id}/password"),
            &[("password", "a-new-one-time-pw")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(app.audit_count().await, before + 4);

    // An administrator cannot disable their own account.
    let me = app
        .state
        .store
        .get_user_by_username("admin")
        .await
        .unwrap()
        .unwrap();
    let page = admin
        .post(&format!("/users/{}/disabled", me.id), &[("disabled", "true")])
        .await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    assert!(page.shows("you cannot disable your own account"));
}

#[tokio::test]
async fn only_administrators_manage_users_and_a_post_without_the_csrf_token_changes_nothing() {
    let app = spawn_app().await;
    let nurse = app.browser("nurse").await;
    assert_eq!(nurse.get("/users").await.status, StatusCode::FORBIDDEN);
    assert_eq!(nurse.get("/audit").await.status, StatusCode::FORBIDDEN);
    let before = app.audit_count().await;
    let page = nurse
        .post(
            "/users",
            &[
                ("username", "eve"),
                ("display_name", "Eve"),
                ("role", "administrator"),
                ("password", "eve-secret-password"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);

    let admin = app.browser("admin").await;
    let fields = [
        ("username", "mallory"),
        ("display_name", "Mallory"),
        ("role", "administrator"),
        ("password", "mallory-secret-pw"),
    ];
    let page = admin.post_raw("/users", &fields).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.shows("CSRF"));
    let mut forged = vec![("csrf", "0".repeat(64))];
    forged.extend(fields.iter().map(|(k, v)| (*k, v.to_string())));
    let forged: Vec<(&str, &str)> = forged.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        admin.post_raw("/users", &forged).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.audit_count().await, before);
    assert!(
        app.state
            .store
            .get_user_by_username("mallory")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        app.state
            .store
            .get_user_by_username("eve")
            .await
            .unwrap()
            .is_none()
    );
}

/// The login form has its own token, paired with a cookie: a login posted without it, or with
/// another form's token, is refused before the password is even looked at (no session, no audit
/// entry, no failed-login count), and the page offers a fresh form.
#[tokio::test]
async fn a_login_posted_without_its_forms_token_is_refused_and_nothing_happens() {
    let app = spawn_app().await;
    let entries = app.state.store.verify_audit_chain().await.unwrap().checked;
    let body = |token: &str| format!("username=nurse&password=nurse-secret-pass&login_csrf={token}");
    let (token, cookie) = app.login_form().await;
    let (other_token, _) = app.login_form().await;
    assert_ne!(token, other_token);
    for (sent, cookie) in [
        (body(""), None),
        (body(&token), None),
        (body(&other_token), Some(cookie.as_str())),
        (
            "username=nurse&password=nurse-secret-pass".to_string(),
            Some(cookie.as_str()),
        ),
    ] {
        let response = app.post_login(sent.clone(), cookie).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{sent}");
        let cookies: Vec<String> = response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        assert!(
            !cookies.iter().any(|c| c.starts_with("ketaflow_session=")),
            "{cookies:?}"
        );
        assert!(
            cookies.iter().any(|c| c.starts_with("ketaflow_login=")),
            "a fresh form"
        );
        let html =
            String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        assert!(html.contains("This login form has expired or was not sent by this site."));
        assert!(html.contains(r#"value="nurse""#), "the username is kept");
    }
    assert_eq!(
        app.state.store.verify_audit_chain().await.unwrap().checked,
        entries
    );
    let nurse = app
        .state
        .store
        .get_user_by_username("nurse")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(nurse.failed_logins, 0);
    // With its own token the same form logs in, and the form's cookie is cleared.
    let response = app.post_login(body(&token), Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookies: Vec<&str> = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(cookies.iter().any(|c| c.starts_with("ketaflow_session=")));
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("ketaflow_login=;") && c.contains("Max-Age=0"))
    );
}

#[tokio::test]
async fn a_refused_form_keeps_what_was_typed_with_the_error_beside_the_field() {
    let app = spawn_app().await;
    let admin = app.browser("admin").await;
    let before = app.audit_count().await;
    let page = admin
        .post(
            "/users",
            &[
                ("username", "Dana Smith"),
                ("display_name", "Dana Smith, RN"),
                ("role", "nurse"),
                ("password", "dana-typed-password"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.shows(r#"name="username" autocomplete="off" autocapitalize="none" required value="Dana Smith" aria-describedby="new-username-error" aria-invalid="true""#), "{}", page.html);
    assert!(page.shows("id=\"new-username-error\">allowed: 3–40 characters: a-z, 0-9"));
    assert!(page.shows("value=\"Dana Smith, RN\""));
    assert!(page.shows("<option value=\"nurse\" selected>"));
    assert!(
        page.shows(
            "class=\"error\" role=\"alert\">Username: Dana Smith is not accepted; allowed: 3–40 characters"
        ),
        "{}",
        page.html
    );
    assert!(
        !page.html.contains("dana-typed-password"),
        "a password is never echoed"
    );

    // The next problem is the password: the username typed is kept.
    let page = admin
        .post(
            "/users",
            &[
                ("username", "dana"),
                ("display_name", "Dana"),
                ("role", "viewer"),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.shows("required value=\"dana\""));
    assert!(page.shows("<option value=\"viewer\" selected>"));
    assert!(page.shows("id=\"new-password-error\">allowed: 12–256 characters"));
    assert_eq!(app.audit_count().await, before);
}

#[tokio::test]
async fn the_audit_page_lists_the_entries_just_made_pages_back_and_verifies_the_chain() {
    let app = spawn_app().await;
    let admin = app.browser("admin").await;
    admin
        .post(
            "/users",
            &[
                ("username", "frank"),
                ("display_name", "Frank"),
                ("role", "nurse"),
                ("password", "frank-one-time-pw"),
            ],
        )
        .await;
    let frank = app
        .state
        .store
        .get_user_by_username("frank")
        .await
        .unwrap()
        .unwrap();
    let page = admin.get("/audit").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        app.audit_count().await,
        5,
        "four users of the test setup, then frank"
    );
    let count = app.state.store.verify_audit_chain().await.unwrap().checked;
    assert_eq!(count, 6, "and the administrator's sign-in (seq 5), before frank");
    // Newest first: frank's creation by the administrator, with its record id.
    let first_row = page.html.split("<tr data-seq=").nth(1).unwrap();
    assert!(first_row.starts_with("\"6\""), "{first_row}");
    assert!(first_row.contains("<code>user.create</code>"));
    assert!(first_row.contains("admin (admin) <small>(administrator)</small>"));
    assert!(first_row.contains(&frank.id.to_string()));
    let second_row = page.html.split("<tr data-seq=").nth(2).unwrap();
    assert!(second_row.starts_with("\"5\"") && second_row.contains("<code>auth.login</code>"));
    assert!(page.shows("(6 in all, newest first)"));
    assert!(!page.shows("Older →"));

    let page = admin.post("/audit/verify", &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.shows("data-verify=\"intact\""));
    assert!(page.shows("data-verify-tables=\"intact\""), "{}", page.html);
    assert!(page.shows(&format!("{count} entries checked")));
    let head = app.state.store.verify_audit_chain().await.unwrap().last_hash;
    assert!(page.shows(&head));

    // The physician signs in (seq 7) and receives 50 vials on one receipt: 57 entries, two pages.
    let doc = app.login("doc").await;
    let (s, b) = post(&app, &doc, "/api/v1/ledger/vials", receipt(50)).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let page = admin.get("/audit").await;
    assert!(page.shows("(57 in all, newest first)"));
    assert_eq!(page.html.matches("<tr data-seq=").count(), 50);
    assert!(page.shows("<tr data-seq=\"57\">") && page.shows("<tr data-seq=\"8\">"));
    assert!(page.shows("href=\"/audit?before=8\""));
    let older = admin.get("/audit?before=8").await;
    assert_eq!(older.html.matches("<tr data-seq=").count(), 7);
    assert!(older.shows("<tr data-seq=\"1\">") && !older.shows("<tr data-seq=\"8\">"));
    assert!(older.shows("href=\"/audit?before=58\""));
}

const RECEIPT: [(&str, &str); 11] = [
    ("supplier.name", "Example Wholesale Inc."),
    ("supplier.address", "1 Depot Road, Springfield"),
    ("supplier.dea_number", "RW1234563"),
    ("invoice_number", "INV-2026-0042"),
    ("product_name", "Ketamine HCl injection"),
    ("ndc", "0409-2051-05"),
    ("lot", "LOT-7731"),
    ("expiry", "2027-06-30"),
    ("strength_mg_per_ml", "10"),
    ("volume_ml", "10"),
    ("containers", "2"),
];

#[tokio::test]
async fn receiving_vials_through_the_form_shows_the_exact_balance_and_a_draw_moves_it() {
    let app = spawn_app().await;
    let doc = app.browser("doc").await;
    // A refused receipt keeps every field and says what is wrong beside the NDC.
    let mut bad = RECEIPT.to_vec();
    bad[5] = ("ndc", "409-2051");
    let page = doc.post("/ledger/vials", &bad).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.shows("id=\"r-ndc-error\">allowed: an NDC with hyphens"));
    assert!(page.shows("value=\"409-2051\" aria-describedby=\"r-ndc-error\" aria-invalid=\"true\""));
    assert!(page.shows("value=\"Example Wholesale Inc.\"") && page.shows("value=\"INV-2026-0042\""));
    assert!(app.state.store.list_vials(None).await.unwrap().is_empty());

    let page = doc.post("/ledger/vials", &RECEIPT).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    assert_eq!(page.location.as_deref(), Some("/ledger"));
    let page = doc.get("/ledger").await;
    assert_eq!(
        page.html
            .matches("data-balance-mg=\"100\"><b>100 mg</b><br><small>10 mL</small>")
            .count(),
        2
    );
    assert!(page.shows("data-on-hand-mg=\"200\"><b>200 mg</b>"));
    assert!(page.shows("action=\"/api/v1/ledger/export\""));
    // The inspector's CSV opens with the browser's own login.
    let csv = doc.get("/api/v1/ledger/export?to=2026-11-26").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.html.starts_with("entry_id,at,kind,"));
    assert_eq!(csv.html.matches(",receipt,").count(), 2);

    let vials = app.state.store.list_vials(None).await.unwrap();
    let vial = vials[0].id;
    let (_, sid) = app
        .booked_session(&app.login("nurse").await, &app.login("doc").await, "Chair 2")
        .await;
    let nurse = app.browser("nurse").await;
    let page = nurse.get(&format!("/ledger/vials/{vial}")).await;
    assert!(page.shows(&format!(
        "<option value=\"{sid}\">Chair 2 · Test Patient · scheduled"
    )));
    assert!(
        !page.shows("action=\"/ledger/vials\""),
        "a nurse does not receive"
    );
    assert!(!page.shows("/destruction"), "nor destroy");
    let page = nurse
        .post(
            &format!("/ledger/vials/{vial}/draws"),
            &[("session_id", &sid), ("quantity_mg", "35.5")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    let page = nurse.get(&format!("/ledger/vials/{vial}")).await;
    assert!(page.shows("data-balance-mg=\"64.5\">64.5 mg <small>(6.45 mL)</small>"));
    assert!(page.shows("35.5 mg (3.55 mL) drawn"));
    // An overdraw is refused beside nothing but said at the top, and moves nothing.
    let page = nurse
        .post(
            &format!("/ledger/vials/{vial}/draws"),
            &[("session_id", &sid), ("quantity_mg", "64.501")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.shows("value=\"64.501\""));
    assert!(page.shows("data-balance-mg=\"64.5\""));
    // A viewer does not see the ledger at all.
    let viewer = app.browser("viewer").await;
    assert_eq!(viewer.get("/ledger").await.status, StatusCode::FORBIDDEN);
    // The inventory report: none taken yet, so due now, with the stock on hand.
    let page = doc.get("/ledger/inventory").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.shows("An inventory is due now."));
    assert!(page.shows("<b>164.5 mg</b> in 2 vials"));
}

#[tokio::test]
async fn a_waste_without_a_valid_witness_is_refused_and_a_confirmed_one_is_recorded() {
    let app = spawn_app().await;
    let doc_token = app.login("doc").await;
    let (s, b) = post(&app, &doc_token, "/api/v1/ledger/vials", receipt(1)).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let vial = b[0]["id"].as_str().unwrap().to_string();
    let (_, sid) = app
        .booked_session(&app.login("nurse").await, &app.login("doc").await, "Chair 2")
        .await;
    let nurse = app.browser("nurse").await;
    nurse
        .post(
            &format!("/ledger/vials/{vial}/draws"),
            &[("session_id", &sid), ("quantity_mg", "40")],
        )
        .await;
    let draw = app
        .state
        .store
        .get_vial(vial.parse().unwrap())
        .await
        .unwrap()
        .entry_count;
    assert_eq!(draw, 2);
    let entries_before = draw;
    let page = nurse.get(&format!("/ledger/vials/{vial}")).await;
    let draw_id = page
        .html
        .split("Draw #")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .unwrap()
        .to_string();
    let waste = format!("/ledger/vials/{vial}/draws/{draw_id}/waste");

    let page = nurse
        .post(
            &waste,
            &[
                ("quantity_mg", "5"),
                ("reason", "unused remainder"),
                ("witness.username", "doc"),
                ("witness.password", "not-the-password"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.shows(&format!(
        "id=\"w-{draw_id}-user-error\">witness doc could not be confirmed: wrong username or password"
    )));
    assert!(page.shows("value=\"unused remainder\""));
    assert!(
        !page.html.contains("not-the-password"),
        "a witness password is never echoed"
    );
    // A viewer cannot witness, and nor can the nurse herself.
    let page = nurse
        .post(
            &waste,
            &[
                ("quantity_mg", "5"),
                ("witness.username", "viewer"),
                ("witness.password", "viewer-secret-pass"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.shows("witness viewer has the role viewer"));
    let page = nurse
        .post(
            &waste,
            &[
                ("quantity_mg", "5"),
                ("witness.username", "nurse"),
                ("witness.password", "nurse-secret-pass"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.shows(&format!(
        "id=\"w-{draw_id}-user-error\">you cannot witness your own entry"
    )));
    assert_eq!(
        app.state
            .store
            .get_vial(vial.parse().unwrap())
            .await
            .unwrap()
            .entry_count,
        entries_before
    );

    let page = nurse
        .post(
            &waste,
            &[
                ("quantity_mg", "5"),
                ("reason", "unused remainder"),
                ("witness.username", "doc"),
                ("witness.password", "doc-secret-pass"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    let page = nurse.get(&format!("/ledger/vials/{vial}")).await;
    assert!(page.shows("witnessed by doc (doc)"));
    assert!(page.shows(&format!("Draw #{draw_id}: 35 mg to account for")));
    assert!(
        page.shows("data-balance-mg=\"60\">60 mg <small>(6 mL)</small>"),
        "the waste left the draw, not the vial"
    );
}

#[tokio::test]
async fn a_phq9_with_item_9_above_0_alerts_a_physician_and_the_documented_follow_up_clears_it() {
    let app = spawn_app().await;
    let nurse = app.login("nurse").await;
    let pid = app.patient(&nurse, 70.0).await;
    let (s, b) = post(
        &app,
        &nurse,
        &format!("/api/v1/patients/{pid}/outcomes"),
        json!({"instrument": "phq9", "items": [0, 0, 0, 0, 0, 0, 0, 0, 1], "context": "follow_up"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let alert = b["risk_alert_id"].as_str().unwrap().to_string();

    let doc = app.browser("doc").await;
    let page = doc.get("/risk-alerts").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.shows(&format!("<section class=\"card crisis\" id=\"alert-{alert}\"")));
    assert!(page.shows(&format!("<a href=\"/patients/{pid}\">Test Patient</a>")));
    assert!(page.shows("PHQ-9 item 9 (thoughts of death or self-harm) = 1"));
    assert!(page.shows("1 open alert</b>"));

    let path = format!("/risk-alerts/{alert}/follow-up");
    let page = doc
        .post(&path, &[("action", "safety_plan"), ("note", "too short")])
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.shows(&format!("id=\"note-{alert}-error\">allowed: 10–4000 characters")));
    assert!(page.shows(">too short</textarea>"));
    assert!(page.shows("<option value=\"safety_plan\" selected>"));

    let viewer = app.browser("viewer").await;
    let page = viewer.get("/risk-alerts").await;
    assert!(page.shows("Your role cannot document the follow-up"));
    assert!(!page.shows(&format!("action=\"{path}\"")));

    let note = "Called the patient: passive thoughts only, no plan; safety plan reviewed.";
    let page = doc
        .post(&path, &[("action", "clinician_contact"), ("note", note)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    let page = doc.get("/risk-alerts").await;
    assert!(page.shows("No open suicide-risk alert."));
    assert!(!page.shows("class=\"card crisis\""));
    assert!(page.shows("Clinician contacted the patient"));
    assert!(page.shows("passive thoughts only, no plan; safety plan reviewed."));
}

/// A request without any cookie: the patient has no account.
async fn anonymous(app: &App, method: &str, path: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
    let body = fields
        .iter()
        .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap();
    let (status, body, _) = app.raw(request).await;
    match body {
        Value::String(html) => (status, html),
        other => (status, other.to_string()),
    }
}

async fn link(app: &App, pid: &str, instruments: Value, hours: i64) -> String {
    let nurse = app.login("nurse").await;
    let (s, b) = post(
        app,
        &nurse,
        &format!("/api/v1/patients/{pid}/questionnaire-links"),
        json!({"instruments": instruments, "expires_in_hours": hours}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b["path"]
        .as_str()
        .unwrap()
        .strip_prefix("/api/v1")
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_questionnaire_link_opens_without_login_submits_once_and_shows_crisis_information() {
    let app = spawn_app().await;
    let nurse = app.login("nurse").await;
    let pid = app.patient(&nurse, 70.0).await;
    let path = link(&app, &pid, json!(["phq9"]), 72).await;
    assert!(path.starts_with("/q/") && !path.contains(&pid));

    let (s, html) = anonymous(&app, "GET", &path, &[]).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    // Each item is a question with four answers to tap (radio buttons), with the published words.
    assert_eq!(html.matches("name=\"phq9.items[").count(), 9 * 4);
    assert_eq!(html.matches("type=\"radio\"").count(), 9 * 4);
    assert!(!html.contains("type=\"number\""), "nothing to type");
    // The patient reads each item and how to answer (PHQ-9 wording, Kroenke 2001; free to reproduce).
    assert!(html.contains("<legend>9. Thoughts that you would be better off dead, or of hurting yourself in some way</legend>"), "{html}");
    assert!(html.contains(
        "Over the last 2 weeks, how often have you been bothered by any of the following problems?"
    ));
    for anchor in [
        "Not at all (0)",
        "Several days (1)",
        "More than half the days (2)",
        "Nearly every day (3)",
    ] {
        assert_eq!(html.matches(anchor).count(), 9, "{anchor}");
    }
    // Where to get help is on the page, hidden until an answer to item 9 shows risk (the script
    // reveals it); nothing says the care team knows before anything is sent.
    assert!(html.contains("data-risk-from=\"1\""), "item 9 is the risk item");
    assert_eq!(html.matches("data-risk-from=").count(), 1);
    assert!(html.contains("id=\"crisis-now\" role=\"alert\" hidden"));
    assert!(html.contains("988"));
    assert!(!html.contains("has been alerted"), "not before sending");

    // An answer out of its range (a crafted post) is refused beside its question; the rest is kept;
    // the link still works.
    let mut answers: Vec<(String, String)> = (0..9)
        .map(|i| (format!("phq9.items[{i}]"), "1".to_string()))
        .collect();
    answers[3].1 = "7".into();
    let fields: Vec<(&str, &str)> = answers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (s, html) = anonymous(&app, "POST", &path, &fields).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{html}");
    assert!(html.contains("id=\"phq9-3-error\">allowed: a whole number 0–3"));
    assert!(
        html.contains("id=\"phq9-2-1\" type=\"radio\" name=\"phq9.items[2]\" value=\"1\" checked"),
        "{html}"
    );
    assert!(html.contains("One answer needs a look"));

    answers[3].1 = "1".into();
    let fields: Vec<(&str, &str)> = answers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let before = app.audit_count().await;
    let (s, html) = anonymous(&app, "POST", &path, &fields).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("<section class=\"crisis\" role=\"alert\""));
    assert!(html.contains("Call or text 988"));
    assert!(html.contains("href=\"tel:988\"") && html.contains("href=\"tel:911\""));
    assert!(html.contains("Thank you. Your answers were sent to your care team."));
    assert!(app.audit_count().await > before);

    // Once only.
    let (s, html) = anonymous(&app, "POST", &path, &fields).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(html.contains("This link has already been used"));
    let (s, _) = anonymous(&app, "GET", &path, &[]).await;
    assert_eq!(s, StatusCode::CONFLICT);

    // The alert it raised is on the clinicians' page.
    let doc = app.browser("doc").await;
    assert!(
        doc.get("/risk-alerts")
            .await
            .shows("PHQ-9 item 9 (thoughts of death or self-harm) = 1")
    );

    // No risk, no crisis block; an expired link and a made-up one say so.
    let calm = link(&app, &pid, json!(["pain_nrs"]), 1).await;
    let (s, html) = anonymous(&app, "POST", &calm, &[("pain_nrs.items[0]", "4")]).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(!html.contains("class=\"crisis\""));
    let late = link(&app, &pid, json!(["gad7"]), 1).await;
    app.advance(3600);
    let (s, html) = anonymous(&app, "GET", &late, &[]).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(html.contains("This link has expired"));
    let (s, html) = anonymous(&app, "GET", &format!("/q/{}", "ab".repeat(32)), &[]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(html.contains("This link is not valid"));
}

#[tokio::test]
async fn a_count_that_differs_opens_a_discrepancy_that_is_resolved_and_a_vial_is_destroyed_with_two_witnesses()
 {
    let app = spawn_app().await;
    let doc = app.browser("doc").await;
    assert_eq!(
        doc.post("/ledger/vials", &RECEIPT).await.status,
        StatusCode::SEE_OTHER
    );
    let page = doc.get("/ledger").await;
    // The count form lists the vials on hand in the ledger's order.
    let vial_ids: Vec<String> = page
        .html
        .split("name=\"vials[")
        .skip(1)
        .filter_map(|s| {
            s.split_once("].vial_id\" value=\"")
                .map(|(_, rest)| rest[..36].to_string())
        })
        .collect();
    assert_eq!(vial_ids.len(), 2);
    // The first vial left blank (not counted), the second mistyped: the error lands on line 2.
    let page = doc
        .post(
            "/ledger/counts",
            &[
                ("kind", "count"),
                ("vials[0].vial_id", &vial_ids[0]),
                ("vials[0].counted_mg", ""),
                ("vials[1].vial_id", &vial_ids[1]),
                ("vials[1].counted_mg", "ninety"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(
        page.shows("id=\"cnt-1-error\">allowed: a decimal string"),
        "{}",
        page.html
    );
    assert!(page.shows("value=\"ninety\""));
    let before = app.audit_count().await;
    let page = doc
        .post(
            "/ledger/counts",
            &[
                ("kind", "count"),
                ("vials[0].vial_id", &vial_ids[0]),
                ("vials[0].counted_mg", "100"),
                ("vials[1].vial_id", &vial_ids[1]),
                ("vials[1].counted_mg", "99.75"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    assert!(app.audit_count().await > before);
    let page = doc.get("/ledger").await;
    assert!(
        page.shows("<dt>Variance</dt><dd><b>-0.25 mg</b> (-0.025 mL)</dd>"),
        "{}",
        page.html
    );
    let d = app.state.store.list_discrepancies(true).await.unwrap();
    assert_eq!(d.len(), 1);
    let resolve = format!("/ledger/discrepancies/{}/resolve", d[0].id);
    let page = doc.post(&resolve, &[("note", "ok"), ("adjust", "true")]).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.shows(&format!(
        "id=\"note-{}-error\">allowed: a note of 3–1000 characters",
        d[0].id
    )));
    let page = doc
        .post(
            &resolve,
            &[
                ("note", "Spill at the count, witnessed; not a loss for Form 106."),
                ("adjust", "true"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    let page = doc.get("/ledger").await;
    assert!(page.shows("data-balance-mg=\"99.75\"><b>99.75 mg</b><br><small>9.975 mL</small>"));
    assert!(page.shows("book adjusted (entry #"));

    // Destruction needs two other clinicians; one of them unconfirmed is named beside their field.
    let destroy = format!("/ledger/vials/{}/destruction", vial_ids[1]);
    let mut fields = vec![
        ("quantity_mg", "99.75"),
        ("method", "rendered non-retrievable (Rx Destroyer)"),
        ("reason", "expired"),
        ("location", "Clinic pharmacy room"),
        ("witnesses[0].username", "nurse"),
        ("witnesses[0].password", "nurse-secret-pass"),
        ("witnesses[1].username", "admin"),
        ("witnesses[1].password", "admin-secret-pass"),
    ];
    let page = doc.post(&destroy, &fields).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.shows("id=\"x-w2-user-error\">witness admin has the role administrator"),
        "{}",
        page.html
    );
    assert!(!page.html.contains("nurse-secret-pass"));
    app.state
        .store
        .create_user_audited(
            &ketaflow_store::Actor::system("test"),
            &ketaflow_store::NewUser {
                username: "nurse2".into(),
                display_name: "nurse2".into(),
                role: ketaflow_store::Role::Nurse,
                password_hash: ketaflow_server::auth::hash_password("nurse2-secret-pass").unwrap(),
            },
            app.now(),
        )
        .await
        .unwrap();
    fields[6] = ("witnesses[1].username", "nurse2");
    fields[7] = ("witnesses[1].password", "nurse2-secret-pass");
    let page = doc.post(&destroy, &fields).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    let page = doc.get(&format!("/ledger/vials/{}", vial_ids[1])).await;
    assert!(page.shows("data-balance-mg=\"0\">0 mg <small>(0 mL)</small>"));
    assert!(page.shows("witnessed by nurse (nurse); nurse2 (nurse2)"));
    assert!(page.shows("method: rendered non-retrievable (Rx Destroyer)"));
}
