//! The patient and dose-plan pages, driven as a browser drives them: forms posted with the CSRF
//! token, redirects followed by hand, and the HTML checked for the values the API holds.

use ketaflow_test_support as common;

use axum::http::StatusCode;
use common::{App, Browser, Page, draft_plan, get, infuse_and_stop, spawn_app, texts};
use serde_json::Value;

/// A number as the pages print it: at most `decimals` decimals, no trailing zeros.
fn num(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// The id at the end of a redirect to `/prefix/{id}`.
fn redirected_id(page: &Page, prefix: &str) -> String {
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    let location = page.location.clone().expect("a redirect");
    let id = location
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{location} does not start with {prefix}"));
    let id = id.split('#').next().unwrap().to_string();
    uuid::Uuid::parse_str(&id).unwrap_or_else(|_| panic!("{location}: not an id"));
    id
}

/// The plan as the API returns it.
async fn api_plan(app: &App, token: &str, plan_id: &str) -> Value {
    let (s, plan) = get(app, token, &format!("/api/v1/plans/{plan_id}")).await;
    assert_eq!(s, StatusCode::OK, "{plan}");
    plan
}

/// A physician computes a plan through the form; returns the plan id.
async fn plan_through_form(doc: &Browser<'_>, patient: &str, adjusted: &str) -> String {
    let page = doc
        .post(
            &format!("/patients/{patient}/plans/new"),
            &[
                ("protocol_id", "trd"),
                ("concentration_mg_per_ml", "1"),
                ("planned_on", "2026-11-26"),
                ("last_session_on", ""),
                ("adjusted_dose_per_kg", adjusted),
            ],
        )
        .await;
    redirected_id(&page, "/plans/")
}

#[tokio::test]
async fn a_nurse_registers_a_patient_records_a_weight_and_finds_them_by_a_posted_search() {
    let app = spawn_app().await;
    let nurse = app.browser("nurse").await;
    let page = nurse.get("/patients/new").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.shows(r#"<label for="patient-display_name">"#),
        "labels are tied to inputs"
    );

    let page = nurse
        .post(
            "/patients/new",
            &[
                ("display_name", "Ada Quist"),
                ("mrn", "MRN-4471"),
                ("date_of_birth", "1980-05-02"),
                ("sex", "female"),
            ],
        )
        .await;
    let id = redirected_id(&page, "/patients/");
    let location = page.location.unwrap();
    assert!(
        !location.contains("Quist") && !location.contains("4471"),
        "{location}"
    );

    let page = nurse
        .post(
            &format!("/patients/{id}/weights"),
            &[("weight_kg", "72.5"), ("on", "2026-11-20")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    assert_eq!(
        page.location.as_deref(),
        Some(format!("/patients/{id}#intake").as_str())
    );
    let page = nurse
        .post(
            &format!("/patients/{id}/heights"),
            &[("height_cm", "165"), ("on", "2026-11-20")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);

    let chart = nurse.get(&format!("/patients/{id}")).await;
    assert_eq!(chart.status, StatusCode::OK);
    assert!(chart.shows("Ada Quist"));
    assert!(chart.shows("MRN-4471"));
    assert!(
        chart.shows("<td>2026-11-20</td><td class=\"num\">72.5 kg</td>"),
        "{}",
        chart.html
    );
    assert!(chart.shows("165 cm"));
    assert!(chart.shows("1980-05-02 (46 years)"));
    // The API holds what the page shows.
    let token = app.login("nurse").await;
    let (_, p) = get(&app, &token, &format!("/api/v1/patients/{id}")).await;
    assert_eq!(p["weights"][0]["value"], 72.5);

    // The search is POSTed: the name is in the body, never in the URL; the answer is a page.
    for term in ["quist", "4471"] {
        let found = nurse.post("/patients/search", &[("search", term)]).await;
        assert_eq!(found.status, StatusCode::OK);
        assert!(found.location.is_none());
        assert!(
            found.shows(&format!(r#"<a href="/patients/{id}">Ada Quist</a>"#)),
            "{term}"
        );
        assert!(found.shows("72.5 kg"));
        assert!(
            found.shows(&format!(r#"value="{term}""#)),
            "the search is kept in the box"
        );
    }
    let none = nurse.post("/patients/search", &[("search", "Nobody")]).await;
    assert!(!none.shows("Ada Quist"));
    assert!(none.shows("No patient matches"));
    let all = nurse.get("/patients").await;
    assert!(all.shows("Ada Quist"));
}

#[tokio::test]
async fn a_refused_form_keeps_what_was_typed_and_puts_the_error_next_to_the_field() {
    let app = spawn_app().await;
    let token = app.login("nurse").await;
    let id = app.patient(&token, 70.0).await;
    let nurse = app.browser("nurse").await;
    let before = app.audit_count().await;

    let page = nurse
        .post(
            &format!("/patients/{id}/weights"),
            &[("weight_kg", "900"), ("on", "2026-11-21")],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    // The typed value is back in its input, marked invalid, with the allowed range beside it.
    let input = page
        .html
        .split(r#"id="weight-weight_kg""#)
        .nth(1)
        .expect("the weight input");
    let input = input.split('>').next().unwrap();
    assert!(input.contains(r#"value="900""#), "{input}");
    assert!(input.contains(r#"aria-invalid="true""#), "{input}");
    assert!(page.shows(r#"<span class="field-error" id="weight-weight_kg-error">allowed: 2–350</span>"#));
    assert!(
        page.shows(
            r#"role="alert" id="weight-message">Weight (kg): 900 is not accepted; allowed: 2–350</p>"#
        ),
        "{}",
        page.html
    );
    assert!(page.shows(r#"value="2026-11-21""#), "the date typed is kept too");
    // Only that form is open and marked; the others keep their defaults.
    assert!(
        !page
            .html
            .contains(r#"id="height-height_cm" name="height_cm" type="number" value="900""#)
    );
    assert_eq!(app.audit_count().await, before, "nothing was written");

    // A diastolic above the systolic: the API's rule, next to the diastolic field.
    let page = nurse
        .post(
            &format!("/patients/{id}/baseline-bp"),
            &[
                ("systolic_mmhg", "120"),
                ("diastolic_mmhg", "130"),
                ("on", "2026-11-21"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.shows(r#"id="bp-diastolic_mmhg-error">allowed: below the systolic 120</span>"#));
    // Text that is not a number is refused by the page with the same kind of error.
    let page = nurse
        .post(
            &format!("/patients/{id}/heights"),
            &[("height_cm", "tall"), ("on", "2026-11-21")],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.shows(r#"id="height-height_cm-error">allowed: a number</span>"#));
    assert!(page.shows(r#"value="tall""#));
    assert_eq!(app.audit_count().await, before);
}

#[tokio::test]
async fn a_form_post_without_the_csrf_token_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let token = app.login("nurse").await;
    let id = app.patient(&token, 70.0).await;
    let nurse = app.browser("nurse").await;
    let before = app.audit_count().await;

    // A forged or stale form is forbidden (403) and says why.
    let refused = |page: &Page| {
        assert_eq!(page.status, StatusCode::FORBIDDEN);
        assert!(page.shows("CSRF token missing or wrong"), "{}", page.html);
        assert!(page.location.is_none());
    };
    let page = nurse
        .post_raw(
            &format!("/patients/{id}/weights"),
            &[("weight_kg", "81"), ("on", "2026-11-21")],
        )
        .await;
    refused(&page);
    let page = nurse
        .post_raw(
            &format!("/patients/{id}/weights"),
            &[("csrf", "0000"), ("weight_kg", "81"), ("on", "2026-11-21")],
        )
        .await;
    refused(&page);
    let page = nurse
        .post_raw(
            "/patients/new",
            &[
                ("display_name", "Forged"),
                ("date_of_birth", "1980-01-01"),
                ("sex", "male"),
            ],
        )
        .await;
    refused(&page);
    assert_eq!(app.audit_count().await, before);
    let chart = nurse.get(&format!("/patients/{id}")).await;
    assert!(!chart.shows("81 kg"));
    assert!(!nurse.get("/patients").await.shows("Forged"));
}

#[tokio::test]
async fn a_physician_plans_and_the_plan_page_shows_the_chart_every_limit_and_the_rates_with_units() {
    let app = spawn_app().await;
    let token = app.login("nurse").await;
    let doc_token = app.login("doc").await;
    let id = app.patient(&token, 70.0).await;
    let doc = app.browser("doc").await;

    let page = doc.get(&format!("/patients/{id}/plans/new")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.shows(r#"<option value="trd""#));
    // No protocol is chosen for the clinician: the blank choice is the one selected, and each
    // protocol says which indications it is for.
    assert!(
        page.shows(r#"<option value="" selected>choose a protocol</option>"#),
        "{}",
        page.html
    );
    assert!(!page.shows(r#"<option value="trd" selected"#));
    assert!(page.shows("for treatment resistant depression</option>"));
    assert!(page.shows("70 kg on 2026-11-20"));

    // A concentration the protocol does not use: the API's field error beside the select.
    let refused = doc
        .post(
            &format!("/patients/{id}/plans/new"),
            &[
                ("protocol_id", "trd"),
                ("concentration_mg_per_ml", "50"),
                ("planned_on", "2026-11-26"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.html);
    assert!(refused.shows(r#"id="plan-concentration_mg_per_ml-error">allowed:"#));
    assert!(refused.shows(r#"value="2026-11-26""#));

    let plan_id = plan_through_form(&doc, &id, "").await;
    let plan = api_plan(&app, &doc_token, &plan_id).await;
    let page = doc.get(&format!("/plans/{plan_id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.shows("<svg"), "the prediction chart is inlined");
    assert!(page.shows("Cp (plasma)") && page.shows("Ce (effect site)"));
    let threshold = plan["prediction"]["recovery_threshold_ug_per_ml"]
        .as_f64()
        .unwrap();
    assert!(page.shows(&format!("recovery threshold {} µg/mL", num(threshold, 3))));
    // Every limit the API evaluated is a row, with its value, unit, soft and hard limit and status.
    let checks = plan["checks"].as_array().unwrap();
    assert!(checks.len() >= 4, "{plan}");
    assert_eq!(page.html.matches("<tr data-limit=").count(), checks.len());
    for c in checks {
        let limit = c["limit"].as_str().unwrap().replace('_', " ");
        let unit = c["unit"].as_str().unwrap();
        let row = page
            .html
            .split(&format!(r#"<tr data-limit="{limit}">"#))
            .nth(1)
            .unwrap_or_else(|| panic!("no row for {limit}"));
        let row = row.split("</tr>").next().unwrap();
        for expected in [
            format!("{} {unit}", num(c["value"].as_f64().unwrap(), 3)),
            format!("{} {unit}", num(c["soft"].as_f64().unwrap(), 3)),
            format!("{} {unit}", num(c["hard"].as_f64().unwrap(), 3)),
            c["status"].as_str().unwrap().replace('_', " "),
        ] {
            assert!(row.contains(&expected), "{limit}: {expected} not in {row}");
        }
        let setting = if c["clinic_setting"].as_bool().unwrap() {
            "yes"
        } else {
            "no"
        };
        assert!(row.contains(&format!("<td>{setting}</td>")), "{row}");
    }
    // The rate three ways and the dose, each with its unit.
    for (key, unit, decimals) in [
        ("rate_mg_per_kg_per_h", "mg/kg/h", 3),
        ("rate_mg_per_h", "mg/h", 1),
        ("pump_ml_per_h", "mL/h", 1),
        ("dose_mg", "mg", 1),
        ("volume_ml", "mL", 1),
    ] {
        let expected = format!("{} {unit}", num(plan[key].as_f64().unwrap(), decimals));
        assert!(page.shows(&expected), "{key}: {expected}");
    }
    assert_eq!(plan["dose_mg"], 35.0, "0.5 mg/kg × 70 kg");
    assert!(page.shows("35 mg (0.5 mg/kg dosing weight)"));

    // Nothing breached: approval needs no reason; the form asks for confirmation first.
    assert!(page.shows(&format!(r#"action="/plans/{plan_id}/approve""#)));
    assert!(page.shows("data-confirm=\"Approve this plan (35 mg at "));
    assert!(!page.shows("textarea"));
    let approved = doc.post(&format!("/plans/{plan_id}/approve"), &[]).await;
    assert_eq!(approved.status, StatusCode::SEE_OTHER, "{}", approved.html);
    assert_eq!(api_plan(&app, &doc_token, &plan_id).await["status"], "approved");
    let page = doc.get(&format!("/plans/{plan_id}")).await;
    // The approval names the physician (as signed), not their user id.
    assert!(page.shows("Approved by doc (doc) at") && page.shows("The plan is locked."));
    assert!(!page.shows(&format!(r#"action="/plans/{plan_id}/approve""#)));

    // A protocol for another indication: the approval form asks for its reason, a short one is
    // refused beside the field, a reasoned one approves.
    let page = doc
        .post(
            &format!("/patients/{id}/plans/new"),
            &[
                ("protocol_id", "bipolar-depression"),
                ("concentration_mg_per_ml", "1"),
                ("planned_on", "2026-11-26"),
            ],
        )
        .await;
    let other_plan = redirected_id(&page, "/plans/");
    let page = doc.get(&format!("/plans/{other_plan}")).await;
    assert!(
        page.shows("Reason to use this protocol: it is for bipolar depression, and the patient&#39;s indications are treatment resistant depression"),
        "{}",
        page.html
    );
    let refused = doc
        .post(
            &format!("/plans/{other_plan}/approve"),
            &[("indication_override", "short")],
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.html
    );
    assert!(
        refused.shows(
            r#"id="approve-indication_override-error">protocol bipolar-depression is for bipolar_depression"#
        ),
        "{}",
        refused.html
    );
    let ok = doc
        .post(
            &format!("/plans/{other_plan}/approve"),
            &[("indication_override", "bipolar II on the psychiatrist's review")],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.html);

    // With the previous session's date, the days between sessions are checked too (a minimum).
    let page = doc
        .post(
            &format!("/patients/{id}/plans/new"),
            &[
                ("protocol_id", "trd"),
                ("concentration_mg_per_ml", "1"),
                ("planned_on", "2026-11-26"),
                ("last_session_on", "2026-11-25"),
            ],
        )
        .await;
    let spaced = redirected_id(&page, "/plans/");
    let spaced_plan = api_plan(&app, &doc_token, &spaced).await;
    let page = doc.get(&format!("/plans/{spaced}")).await;
    assert_eq!(
        page.html.matches("<tr data-limit=").count(),
        spaced_plan["checks"].as_array().unwrap().len()
    );
    assert!(page.shows(r#"<tr data-limit="days between sessions"><th scope="row">days between sessions <small>(minimum)</small>"#));
    assert!(page.shows("1 days"));

    // The chart lists it, with a link to the plan.
    let chart = doc.get(&format!("/patients/{id}")).await;
    assert!(chart.shows(&format!(r#"<a href="/plans/{plan_id}">2026-11-26</a>"#)));
    assert!(chart.shows("35 mg (0.5 mg/kg)"));
}

#[tokio::test]
async fn approval_with_soft_breaches_needs_a_reason_for_each_and_hard_limits_never_pass() {
    let app = spawn_app().await;
    let token = app.login("nurse").await;
    let doc_token = app.login("doc").await;
    let id = app.patient(&token, 100.0).await;
    let doc = app.browser("doc").await;
    let plan_id = plan_through_form(&doc, &id, "0.8").await;

    let page = doc.get(&format!("/plans/{plan_id}")).await;
    let breaches = ["dose_mg_per_kg", "rate_mg_per_kg_per_h", "mg_per_session"];
    for limit in breaches {
        assert!(
            page.shows(&format!(r#"<label for="approve-reason_{limit}">"#)),
            "{limit}"
        );
        assert!(page.shows(&format!(r#"name="reason_{limit}""#)));
    }
    assert!(!page.shows("reason_pump_ml_per_h"));
    assert!(page.shows("3 soft limit(s) exceeded"));

    // Two reasons of three: refused, both kept, the error next to the third.
    let before = app.audit_count().await;
    let refused = doc
        .post(
            &format!("/plans/{plan_id}/approve"),
            &[
                (
                    "reason_dose_mg_per_kg",
                    "partial response at 0.5 mg/kg after six sessions",
                ),
                (
                    "reason_rate_mg_per_kg_per_h",
                    "same 40-minute duration, tolerated before",
                ),
            ],
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.html
    );
    assert!(refused.shows("partial response at 0.5 mg/kg after six sessions</textarea>"));
    assert!(refused.shows("same 40-minute duration, tolerated before</textarea>"));
    let third = refused
        .html
        .split(r#"id="approve-reason_mg_per_session""#)
        .nth(1)
        .unwrap();
    assert!(
        third
            .split('>')
            .next()
            .unwrap()
            .contains(r#"aria-invalid="true""#)
    );
    assert!(refused.shows(r#"id="approve-reason_mg_per_session-error">mg_per_session "#));
    assert!(refused.shows(r#"role="alert" id="approve-message">mg_per_session"#));
    assert_eq!(app.audit_count().await, before);
    assert_eq!(api_plan(&app, &doc_token, &plan_id).await["status"], "draft");

    let ok = doc
        .post(
            &format!("/plans/{plan_id}/approve"),
            &[
                (
                    "reason_dose_mg_per_kg",
                    "partial response at 0.5 mg/kg after six sessions",
                ),
                (
                    "reason_rate_mg_per_kg_per_h",
                    "same 40-minute duration, tolerated before",
                ),
                ("reason_mg_per_session", "follows from the escalated mg/kg dose"),
            ],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.html);
    let plan = api_plan(&app, &doc_token, &plan_id).await;
    assert_eq!(plan["status"], "approved");
    let limits = texts(&plan["overrides"], "limit");
    assert_eq!(limits, breaches);
    let page = doc.get(&format!("/plans/{plan_id}")).await;
    assert!(page.shows("<td>follows from the escalated mg/kg dose</td>"));

    // Beyond a hard limit: the form is refused where it is filled in, says which limit and what
    // is allowed, keeps what was typed, and no plan is saved.
    let plans_before = app
        .call(
            "GET",
            &format!("/api/v1/patients/{id}/plans"),
            Some(&doc_token),
            None,
        )
        .await
        .1;
    let refused = doc
        .post(
            &format!("/patients/{id}/plans/new"),
            &[
                ("protocol_id", "trd"),
                ("concentration_mg_per_ml", "1"),
                ("planned_on", "2026-11-26"),
                ("last_session_on", ""),
                ("adjusted_dose_per_kg", "1.2"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.shows("a hard limit never passes"), "{}", refused.html);
    assert!(
        refused.shows("dose_mg_per_kg 1.200 mg/kg is above the hard limit"),
        "{}",
        refused.html
    );
    assert!(
        refused.shows(r#"value="1.2""#),
        "what was typed is kept: {}",
        refused.html
    );
    let plans_after = app
        .call(
            "GET",
            &format!("/api/v1/patients/{id}/plans"),
            Some(&doc_token),
            None,
        )
        .await
        .1;
    assert_eq!(plans_after, plans_before);
}

#[tokio::test]
async fn a_viewer_sees_no_write_forms_and_is_refused_when_posting() {
    let app = spawn_app().await;
    let token = app.login("nurse").await;
    let doc_token = app.login("doc").await;
    let id = app.patient(&token, 70.0).await;
    let plan = draft_plan(&app, &doc_token, &id).await;
    let plan_id = plan["id"].as_str().unwrap();
    let viewer = app.browser("viewer").await;

    let chart = viewer.get(&format!("/patients/{id}")).await;
    assert_eq!(chart.status, StatusCode::OK);
    assert!(chart.shows("Test Patient"));
    assert!(chart.shows("70 kg"));
    // The only form is the log-out button.
    assert_eq!(chart.html.matches("<form").count(), 1, "{}", chart.html);
    assert!(!chart.shows("New dose plan"));
    let plan_page = viewer.get(&format!("/plans/{plan_id}")).await;
    assert_eq!(plan_page.status, StatusCode::OK);
    assert!(plan_page.shows("<svg"));
    assert_eq!(plan_page.html.matches("<form").count(), 1);
    assert!(!viewer.get("/patients").await.shows("Register a patient"));
    assert_eq!(viewer.get("/patients/new").await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        viewer.get(&format!("/patients/{id}/plans/new")).await.status,
        StatusCode::FORBIDDEN
    );

    let before = app.audit_count().await;
    let page = viewer
        .post(
            &format!("/patients/{id}/weights"),
            &[("weight_kg", "81"), ("on", "2026-11-21")],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.shows("may not record intake"));
    let page = viewer.post(&format!("/plans/{plan_id}/approve"), &[]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let page = viewer
        .post(
            "/patients/new",
            &[
                ("display_name", "Nope"),
                ("date_of_birth", "1980-01-01"),
                ("sex", "male"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(app.audit_count().await, before);

    // A nurse prepares plans but does not approve: no approval form for them either.
    let nurse = app.browser("nurse").await;
    let page = nurse.get(&format!("/plans/{plan_id}")).await;
    assert!(!page.shows(&format!(r#"action="/plans/{plan_id}/approve""#)));
    assert_eq!(
        nurse.post(&format!("/plans/{plan_id}/approve"), &[]).await.status,
        StatusCode::FORBIDDEN
    );
}

/// PHQ-9 item fields with these answers.
fn phq9(items: [&'static str; 9]) -> Vec<(String, &'static str)> {
    let mut fields = vec![
        ("instrument".to_string(), "phq9"),
        ("context".to_string(), "follow_up"),
    ];
    for (i, v) in items.into_iter().enumerate() {
        fields.push((format!("item{}", i + 1), v));
    }
    fields
}

async fn post_owned(browser: &Browser<'_>, path: &str, fields: &[(String, &str)]) -> Page {
    let borrowed: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    browser.post(path, &borrowed).await
}

#[tokio::test]
async fn outcomes_are_recorded_item_by_item_charted_and_a_suicide_item_shows_crisis_information() {
    let app = spawn_app().await;
    let token = app.login("nurse").await;
    // A course with its first infusion booked: the baseline is the last PHQ-9 in the protocol's
    // window before that infusion starts.
    let doc_token = app.login("doc").await;
    let (id, sid) = app.booked_session(&token, &doc_token, "Chair 1").await;
    let nurse = app.browser("nurse").await;
    let chart = nurse.get(&format!("/patients/{id}")).await;
    // One labelled input per item with its range, for PHQ-9, GAD-7 and the pain NRS.
    assert!(chart.shows(r#"<label for="outcome_phq9-item9">9. Thoughts that you would be better off dead"#));
    assert!(chart.shows(r#"id="outcome_phq9-item1" name="item1" type="number" value="""#));
    assert!(chart.shows(r#"min="0" max="3""#));
    assert!(chart.shows(r#"<label for="outcome_gad7-item7">7. Feeling afraid"#));
    assert!(chart.shows(r#"<label for="outcome_pain_nrs-item1">1. Pain intensity now"#));
    assert!(chart.shows(r#"min="0" max="10""#));

    let path = format!("/patients/{id}/outcomes");
    // An item out of range: refused by the scoring rules, every answer kept.
    let bad = post_owned(
        &nurse,
        &path,
        &phq9(["3", "3", "2", "2", "2", "2", "2", "1", "5"]),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.html);
    assert!(bad.shows("phq9 item 9 = 5 is outside 0–3"));
    assert!(bad.shows(r#"id="outcome_phq9-item9" name="item9" type="number" value="5""#));

    let baseline = post_owned(
        &nurse,
        &path,
        &phq9(["3", "3", "2", "2", "2", "2", "2", "2", "0"]),
    )
    .await;
    assert_eq!(
        baseline.location.as_deref(),
        Some(format!("/patients/{id}#outcomes").as_str())
    );
    infuse_and_stop(&app, &token, &sid).await;
    app.advance(14 * 86_400);
    // Two weeks later: a new login (the old session has expired).
    let nurse = app.browser("nurse").await;
    let later = post_owned(
        &nurse,
        &path,
        &phq9(["1", "1", "1", "0", "0", "0", "0", "0", "1"]),
    )
    .await;
    assert_eq!(
        later.location.as_deref(),
        Some(format!("/patients/{id}#outcomes").as_str())
    );

    let chart = nurse.get(&format!("/patients/{id}")).await;
    assert!(chart.shows("18 points"), "baseline total");
    assert!(chart.shows("4 points"), "latest total");
    assert!(chart.shows("-14 points (-77.8 %)"));
    assert!(
        chart.shows("<strong>PHQ-9 (depression) baseline:</strong> the last phq9 score in the protocol&#39;s baseline window"),
        "the chart says which score is the baseline and why: {}",
        chart.html
    );
    assert!(
        chart.shows("PHQ-9 (depression): total over the course"),
        "the trajectory chart"
    );
    assert!(chart.shows("response ≤ 9 (≥ 50 % below baseline 18)"));
    assert!(chart.shows("remission ≤ 4"));
    // Item 9 above 0 raised an urgent alert: the crisis information is on the chart.
    assert!(chart.shows(r#"<section class="crisis" role="alert""#));
    assert!(chart.shows("Call or text 988"));
    assert!(chart.shows("PHQ-9 item 9 (thoughts of death or self-harm) = 1"));

    // Pain NRS through its one-item form.
    let pain = nurse
        .post(
            &path,
            &[
                ("instrument", "pain_nrs"),
                ("context", "baseline"),
                ("item1", "7"),
            ],
        )
        .await;
    assert_eq!(
        pain.location.as_deref(),
        Some(format!("/patients/{id}#outcomes").as_str())
    );
    assert!(
        nurse
            .get(&format!("/patients/{id}"))
            .await
            .shows("Pain NRS: total over the course")
    );
}

#[tokio::test]
async fn opioid_use_sessions_and_acknowledgements_go_through_the_chart() {
    let app = spawn_app().await;
    let token = app.login("nurse").await;
    let doc_token = app.login("doc").await;
    let id = app.patient(&token, 70.0).await;
    let nurse = app.browser("nurse").await;
    let doc = app.browser("doc").await;

    // Oxycodone 10 mg every 6 h, oral = 40 mg/day × 1.5 = 60 MME/day (CDC 2022), which earns the
    // naloxone flag (≥ 50 MME/day, CDC 2022 Recommendation 8).
    let page = nurse
        .post(
            &format!("/patients/{id}/opioid-use"),
            &[
                ("on", "2026-11-20"),
                ("opioid_1", "oxycodone"),
                ("dose_1", "10"),
                ("frequency_1", "h6"),
                ("route_1", "oral"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    // A chosen opioid without its dose is refused next to the dose.
    let page = nurse
        .post(
            &format!("/patients/{id}/opioid-use"),
            &[
                ("on", "2026-11-21"),
                ("opioid_1", "morphine"),
                ("dose_1", ""),
                ("frequency_1", "t2"),
                ("route_1", "oral"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.shows(r#"id="opioid-dose_1-error">allowed: the dose of the opioid chosen</span>"#));
    // A patch taken by mouth, in the second row: the refusal sits under that row's route.
    let page = nurse
        .post(
            &format!("/patients/{id}/opioid-use"),
            &[
                ("on", "2026-11-21"),
                ("opioid_1", "morphine"),
                ("dose_1", "10"),
                ("frequency_1", "t2"),
                ("route_1", "oral"),
                ("opioid_2", "fentanyl_transdermal"),
                ("dose_2", "25"),
                ("frequency_2", "patch"),
                ("route_2", "oral"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(
        page.shows(r#"id="opioid-route_2-error">allowed: fentanyl_transdermal is a patch: its route is transdermal, not oral</span>"#),
        "{}",
        page.html
    );
    let chart = nurse.get(&format!("/patients/{id}")).await;
    assert!(
        chart.shows("<td>2026-11-20</td><td class=\"num\">60 MME/day</td>"),
        "{}",
        chart.html
    );
    assert!(chart.shows(r#"data-mme-flag="naloxone""#), "{}", chart.html);
    assert!(
        chart.shows("offer naloxone (CDC 2022 Rec. 8)"),
        "the 50 MME/day line on the chart"
    );
    assert!(chart.shows("Opioid use: morphine milligram equivalents per day"));
    assert!(
        chart.shows("0 mg/kg"),
        "no infusion yet: zero exposure, with its unit"
    );

    // A relative contraindication: a physician acknowledges it with a reason.
    let page = nurse
        .post(
            &format!("/patients/{id}/conditions"),
            &[("code", "raised_intraocular_pressure")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let chart = nurse.get(&format!("/patients/{id}")).await;
    assert!(chart.shows("needs acknowledgement"));
    assert!(!chart.shows("/acknowledgements"), "nurses do not acknowledge");
    let chart = doc.get(&format!("/patients/{id}")).await;
    assert!(chart.shows(&format!(r#"action="/patients/{id}/acknowledgements""#)));
    let (_, elig) = get(&app, &doc_token, &format!("/api/v1/patients/{id}/eligibility")).await;
    let code = elig["unacknowledged"][0].as_str().unwrap().to_string();
    let short = doc
        .post(
            &format!("/patients/{id}/acknowledgements"),
            &[("code", &code), ("reason", "ok")],
        )
        .await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST);
    assert!(short.shows("allowed: at least 10 characters"));
    assert!(short.shows(">ok</textarea>"));
    let reason = "ophthalmology review: pressure controlled on drops";
    let ok = doc
        .post(
            &format!("/patients/{id}/acknowledgements"),
            &[("code", &code), ("reason", reason)],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.html);
    let chart = doc.get(&format!("/patients/{id}")).await;
    assert!(chart.shows("Status: <b>eligible</b>"));
    assert!(chart.shows(&format!("acknowledged by doc (doc): {reason}")));

    // Book a session with a plan: redirected to the new session's page; the chart lists it.
    let plan_id = plan_through_form(&doc, &id, "").await;
    let booked = nurse
        .post(
            &format!("/patients/{id}/sessions"),
            &[
                ("plan_id", &plan_id),
                ("chair", "Chair 3"),
                ("scheduled_for", "2026-11-26T11:00"),
            ],
        )
        .await;
    let session = redirected_id(&booked, "/sessions/");
    let chart = nurse.get(&format!("/patients/{id}")).await;
    assert!(chart.shows(&format!(r#"<a href="/sessions/{session}">2026-11-26 11:00</a>"#)));
    assert!(chart.shows("<td>Chair 3</td>"));
    // A blank chair is the API's field error, beside the chair input.
    let refused = nurse
        .post(
            &format!("/patients/{id}/sessions"),
            &[
                ("plan_id", &plan_id),
                ("chair", ""),
                ("scheduled_for", "2026-11-26T12:00"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.shows(r#"id="session-chair-error">allowed: 1–40 characters</span>"#));
    assert!(refused.shows(r#"value="2026-11-26T12:00""#));
}

#[tokio::test]
async fn the_chart_lists_questionnaires_due_and_creates_a_link_and_the_worklist_links_the_patient() {
    let app = spawn_app().await;
    let nurse_token = app.login("nurse").await;
    let doc_token = app.login("doc").await;
    // Booked for 2026-11-26 10:00 and not started; an hour later its baselines are overdue.
    let (pid, _) = app.booked_session(&nurse_token, &doc_token, "Chair 1").await;
    app.advance(3600);
    let nurse = app.browser("nurse").await;
    let chart = nurse.get(&format!("/patients/{pid}")).await;
    assert_eq!(chart.status, StatusCode::OK);
    assert!(chart.shows(r#"<h2 id="due-heading">Questionnaires due</h2>"#));
    assert!(chart.shows("Protocol trd: follow-ups 1, 7, 28, 84 days after the last infusion"));
    assert!(chart.shows(
        "<tr><td>Baseline (before the first infusion)</td><td>PHQ-9 (depression)</td><td>2026-11-26 10:00</td>\
         <td>2026-11-23 10:00 to the infusion&#39;s start</td>"
    ));
    assert!(chart.shows(r#"<span class="badge error">overdue</span>"#));
    assert!(chart.shows(r#"<span class="badge ">upcoming</span>"#));
    // QIDS-SR16 or MADRS: the link offers the self-report one.
    assert!(chart.shows("Create link (phq9)"));
    assert!(chart.shows("Create link (qids_sr16)"));
    assert!(!chart.shows("Create link (madrs)"));

    let page = nurse
        .post(
            &format!("/patients/{pid}/questionnaire-links"),
            &[("instrument", "phq9")],
        )
        .await;
    assert_eq!(page.status, StatusCode::CREATED, "{}", page.html);
    assert!(page.shows("Questionnaire link created"));
    assert!(page.shows("expires 2026-11-29 11:00"));
    assert!(page.shows("Times are UTC"), "the page names its zone once");
    let start = page
        .html
        .find(r#"<code id="new-link">/q/"#)
        .expect("the link is shown")
        + 20;
    let path = &page.html[start..start + 67];
    assert!(path.starts_with("/q/"), "{path}");
    // The link works for the patient, without an account.
    let (s, form, _) = app.call("GET", &format!("/api/v1{path}"), None, None).await;
    assert_eq!(s, StatusCode::OK, "{form}");
    assert_eq!(form["instruments"][0][0], "phq9");
    // A forged post is refused.
    let forged = nurse
        .post_raw(
            &format!("/patients/{pid}/questionnaire-links"),
            &[("instrument", "phq9")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    // The worklist: the patient's overdue baselines, linked to the chart.
    let due = nurse.get("/outcomes/due").await;
    assert_eq!(due.status, StatusCode::OK);
    assert!(due.shows(&format!(
        r##"<a href="/patients/{pid}#questionnaires-due">Test Patient</a>"##
    )));
    assert!(due.shows("QIDS-SR16 (depression) or MADRS (depression, clinician-rated)"));
    assert_eq!(
        due.html
            .matches(r#"<span class="badge error">overdue</span>"#)
            .count(),
        2
    );

    // A viewer sees the schedule but no button.
    let viewer = app.browser("viewer").await;
    let chart = viewer.get(&format!("/patients/{pid}")).await;
    assert!(chart.shows("Questionnaires due"));
    assert!(!chart.shows("Create link"));
    assert!(viewer.get("/outcomes/due").await.shows("Test Patient"));
}

/// A clinic in New York books in New York time: 09:00 typed in winter is 14:00Z, in summer 13:00Z,
/// the pages show it back as 09:00 and say their zone once; a time the clocks skip is refused on
/// its field. An administrator's change of zone is audited and in force at once, and changes how
/// stored times read, never the times themselves.
#[tokio::test]
async fn a_new_york_clinic_books_and_reads_times_in_new_york() {
    use ketaflow_app::clinic_time::ClinicZone;
    let app = common::spawn_app_with(ketaflow_server::Settings {
        time_zone: ClinicZone::named("America/New_York").unwrap(),
        browser_idle_timeout: time::Duration::hours(12),
        ..ketaflow_server::Settings::default()
    })
    .await;
    let nurse = app.browser("nurse").await;
    let doc = app.browser("doc").await;
    let token = app.login("nurse").await;
    let id = app.patient(&token, 70.0).await;
    let plan_id = plan_through_form(&doc, &id, "").await;
    for (typed, stored, shown) in [
        // US daylight saving time 2027 begins 14 March: EST (UTC−5) before, EDT (UTC−4) after.
        ("2027-03-12T09:00", "2027-03-12T14:00:00Z", "2027-03-12 09:00"),
        ("2027-03-15T09:00", "2027-03-15T13:00:00Z", "2027-03-15 09:00"),
    ] {
        let booked = nurse
            .post(
                &format!("/patients/{id}/sessions"),
                &[
                    ("plan_id", &plan_id),
                    ("chair", "Chair 1"),
                    ("scheduled_for", typed),
                ],
            )
            .await;
        let session = redirected_id(&booked, "/sessions/");
        let (s, b) = get(&app, &token, &format!("/api/v1/sessions/{session}")).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(
            b["scheduled_for"], stored,
            "{typed}: stored in UTC, the API says so"
        );
        let chart = nurse.get(&format!("/patients/{id}")).await;
        assert!(
            chart.shows(&format!(r#"<a href="/sessions/{session}">{shown}</a>"#)),
            "{typed}"
        );
        // Cancel it again so the next booking's chair is free.
        let (s, b) = common::event(
            &app,
            &token,
            &session,
            serde_json::json!({"event": "abort", "reason": "test booking"}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let chart = nurse.get(&format!("/patients/{id}")).await;
    // The test clock's 2026-11-26 10:00Z is 05:00 EST.
    assert!(chart.shows("Times are America/New_York (EST)"), "{}", chart.html);
    // 02:30 on 14 March 2027 never happens in New York.
    let refused = nurse
        .post(
            &format!("/patients/{id}/sessions"),
            &[
                ("plan_id", &plan_id),
                ("chair", "Chair 2"),
                ("scheduled_for", "2027-03-14T02:30"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.html);
    assert!(
        refused.shows(r#"id="session-scheduled_for-error">allowed: a time that exists in America/New_York"#),
        "{}",
        refused.html
    );
    assert!(
        refused.shows(r#"value="2027-03-14T02:30""#),
        "what was typed is kept"
    );

    // An administrator moves the clinic to London: audited, and the same booking reads 14:00 GMT.
    let admin = app.browser("admin").await;
    let users = admin.get("/users").await;
    assert!(
        users.shows(r#"data-zone-in-force="America/New_York (EST)""#),
        "{}",
        users.html
    );
    let wrong = admin
        .post("/clinic/time-zone", &[("time_zone", "Europe/Londn")])
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert!(
        wrong.shows("an IANA time-zone name such as America/New_York"),
        "{}",
        wrong.html
    );
    let set = admin
        .post("/clinic/time-zone", &[("time_zone", "Europe/London")])
        .await;
    assert_eq!(set.status, StatusCode::SEE_OTHER, "{}", set.html);
    let chart = nurse.get(&format!("/patients/{id}")).await;
    assert!(chart.shows("Times are Europe/London (GMT)"), "{}", chart.html);
    assert!(
        chart.shows(">2027-03-12 14:00</a>"),
        "the winter booking at 14:00Z reads 14:00 GMT"
    );
    assert_eq!(app.state.zone().name(), "Europe/London");
    let admin_token = app.login("admin").await;
    let (_, entries) = get(&app, &admin_token, "/api/v1/audit?record_type=clinic_settings").await;
    assert_eq!(texts(&entries, "action"), ["clinic.time_zone"]);
    let (_, v) = get(&app, &admin_token, "/api/v1/audit/verify").await;
    assert_eq!(v["tables"]["ok"], true, "{v}");
    // A restart (a new application over the same database, started with UTC) reads it back.
    let restarted = ketaflow_app::App::new(
        app.state.store.clone(),
        ketaflow_clinic::protocol::ProtocolLibrary::embedded(),
        std::sync::Arc::new(time::OffsetDateTime::now_utc),
        ketaflow_server::Settings::default(),
    );
    assert_eq!(restarted.zone().name(), "UTC");
    let loaded = restarted.load_time_zone().await.unwrap();
    assert_eq!(
        (loaded.zone.name(), loaded.set_at.is_some()),
        ("Europe/London", true)
    );
    assert_eq!(restarted.zone().name(), "Europe/London");
}

/// Every screen about one patient opens with who they are: name, date of birth and age, record
/// number, weight, allergies and open alerts. An allergy is recorded at intake; one to ketamine, by
/// any of its names, turns the banner red and makes the patient ineligible.
#[tokio::test]
async fn the_patient_banner_names_the_patient_and_a_ketamine_allergy_blocks_treatment() {
    let app = spawn_app().await;
    let nurse = app.browser("nurse").await;
    let doc = app.browser("doc").await;
    let token = app.login("nurse").await;
    let doc_token = app.login("doc").await;
    let (pid, sid) = app.booked_session(&token, &doc_token, "Chair 4").await;
    let banner = |page: &Page| {
        let start = page.html.find("data-patient-banner=").expect("a banner");
        page.html[start..start + page.html[start..].find("</section>").unwrap()].to_string()
    };
    // The session screen: the test patient (born 1986-01-01, 40 on 2026-11-26), 70 kg, MRN T-1.
    let session = nurse.get(&format!("/sessions/{sid}")).await;
    let b = banner(&session);
    for shown in [
        "Test Patient",
        "1986-01-01 (40 y)",
        "T-1",
        "70 kg on",
        "none recorded",
    ] {
        assert!(b.contains(shown), "{shown}: {b}");
    }
    // A penicillin allergy through the intake form: on the chart and in every banner.
    let added = nurse
        .post(
            &format!("/patients/{pid}/allergies"),
            &[
                ("substance", "penicillin"),
                ("reaction", "hives"),
                ("severity", "moderate"),
            ],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.html);
    let chart = nurse.get(&format!("/patients/{pid}")).await;
    assert!(
        banner(&chart).contains("penicillin — hives (moderate)"),
        "{}",
        banner(&chart)
    );
    assert!(chart.shows("<td>penicillin</td><td>hives</td><td>moderate</td>"));
    assert!(!banner(&chart).contains("KETAMINE ALLERGY"));
    // A bad severity is refused beside its field, in the form's words.
    let refused = nurse
        .post(
            &format!("/patients/{pid}/allergies"),
            &[
                ("substance", "latex"),
                ("reaction", "rash"),
                ("severity", "awful"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.shows(r#"id="allergy-severity-error">allowed: mild, moderate, severe, unknown</span>"#),
        "{}",
        refused.html
    );
    // Ketalar is ketamine: the banner turns red on every screen and the patient is ineligible.
    let added = nurse
        .post(
            &format!("/patients/{pid}/allergies"),
            &[
                ("substance", "Ketalar"),
                ("reaction", "anaphylaxis"),
                ("severity", "severe"),
            ],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.html);
    for path in [
        format!("/patients/{pid}"),
        format!("/sessions/{sid}"),
        format!("/patients/{pid}/plans/new"),
    ] {
        let page = doc.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(page.shows(r#"class="patient-banner danger""#), "{path}");
        assert!(
            banner(&page).contains("KETAMINE ALLERGY: absolute contraindication"),
            "{path}"
        );
    }
    let (_, e) = get(&app, &doc_token, &format!("/api/v1/patients/{pid}/eligibility")).await;
    assert_eq!(e["status"], "ineligible", "{e}");
    let (_, p) = get(&app, &doc_token, &format!("/api/v1/patients/{pid}")).await;
    assert_eq!(p["allergies"][1]["ketamine"], true, "{p}");
    assert_eq!(p["allergies"][0]["ketamine"], false, "{p}");
}
