//! Request bodies from outside, random and mutated, sent to the JSON endpoints that take them: every
//! answer is a 4xx with the uniform error body or a success, never a 5xx and never a panic
//! (issue 15, "proof in CI"; Schemathesis covers the schema side in `.ci/schemathesis.sh`).

use ketaflow_test_support as common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Valid bodies of a few endpoints, to mutate.
fn seeds() -> Vec<(&'static str, Value)> {
    vec![
        (
            "/api/v1/patients",
            json!({"display_name": "Fuzz", "date_of_birth": "1980-01-01", "sex": "female"}),
        ),
        (
            "/api/v1/patients/{pid}/weights",
            json!({"weight_kg": 70.0, "on": "2026-11-20"}),
        ),
        (
            "/api/v1/patients/{pid}/plans",
            json!({"protocol_id": "trd", "concentration_mg_per_ml": 1.0, "planned_on": "2026-11-26"}),
        ),
        (
            "/api/v1/patients/{pid}/outcomes",
            json!({"instrument": "phq9", "items": [1, 1, 1, 1, 1, 1, 1, 1, 0], "context": "baseline"}),
        ),
        (
            "/api/v1/patients/{pid}/opioid-use",
            json!({"on": "2026-11-20", "doses": [{"opioid": "oxycodone", "route": "oral", "dose_mg": 10, "every_hours": 6}]}),
        ),
        (
            "/api/v1/auth/login",
            json!({"username": "nurse", "password": "x"}),
        ),
    ]
}

/// A JSON value with one part replaced by something of another type or an extreme.
fn mutate(value: &Value, pick: usize, with: &Value) -> Value {
    match value {
        Value::Object(map) if !map.is_empty() => {
            let mut map = map.clone();
            let key = map.keys().nth(pick % map.len()).cloned().unwrap_or_default();
            if pick.is_multiple_of(3) {
                map.insert(key, with.clone());
            } else if let Some(inner) = map.get(&key).cloned() {
                map.insert(key, mutate(&inner, pick / 3, with));
            }
            Value::Object(map)
        }
        Value::Array(items) if !items.is_empty() => {
            let mut items = items.clone();
            let i = pick % items.len();
            items[i] = mutate(&items[i], pick / 2, with);
            Value::Array(items)
        }
        _ => with.clone(),
    }
}

fn odd_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(json!(-1)),
        Just(json!(1e308)),
        Just(json!(u64::MAX)),
        Just(json!("")),
        Just(json!("\u{0}")),
        Just(json!("-0001-01-01")),
        Just(json!([])),
        Just(json!({})),
        Just(json!(true)),
        "\\PC{0,40}".prop_map(Value::String),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<i64>().prop_map(|i| json!(i)),
    ]
}

fn body() -> impl Strategy<Value = (usize, Vec<u8>)> {
    let n = seeds().len();
    prop_oneof![
        (0..n, any::<usize>(), odd_value()).prop_map(|(i, pick, with)| {
            let seed = &seeds()[i].1;
            (i, serde_json::to_vec(&mutate(seed, pick, &with)).unwrap())
        }),
        (0..n, prop::collection::vec(any::<u8>(), 0..200)),
        (0..n, "\\PC{0,200}").prop_map(|(i, s)| (i, s.into_bytes())),
    ]
}

#[test]
fn no_body_makes_the_server_fail_or_panic() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (app, token, pid) = runtime.block_on(async {
        let app = common::spawn_app().await;
        let nurse = app.login("nurse").await;
        let pid = app.patient(&nurse, 70.0).await;
        (app, nurse, pid)
    });
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(300));
    runner
        .run(&body(), |(i, bytes)| {
            let path = seeds()[i].0.replace("{pid}", &pid);
            let request = Request::builder()
                .method("POST")
                .uri(&path)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::from(bytes.clone()))
                .unwrap();
            let (status, answer, _) = runtime.block_on(app.raw(request));
            prop_assert!(
                !status.is_server_error(),
                "{path} answered {status} to {}: {answer}",
                String::from_utf8_lossy(&bytes)
            );
            if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
                prop_assert!(answer["error"]["code"].is_string(), "{path} {status}: {answer}");
            }
            Ok(())
        })
        .unwrap();
}
