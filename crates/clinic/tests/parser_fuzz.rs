//! Every parser that takes text from outside (dose expressions, quantities with units, protocol
//! files, opioid and route codes) fed random and mutated input: it answers with a value or an
//! error, and never panics (issue 15, "proof in CI"). Runs on stable Rust with proptest.

use ketaflow_clinic::mme::{Opioid, Route};
use ketaflow_clinic::protocol::Protocol;
use ketaflow_pkpd::schedule::Dose;
use ketaflow_units::{Kilograms, MgPerKg, MgPerKgPerHour, MgPerMl, MicrogramsPerMl, Minutes, MlPerHour};
use proptest::prelude::*;

/// Words a dose expression is made of, so random text often gets close to a valid one.
fn dose_words() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        Just("0.5".to_string()),
        Just("-1".to_string()),
        Just("1e309".to_string()),
        Just("NaN".to_string()),
        Just("mg/kg".to_string()),
        Just("mg/kg/h".to_string()),
        Just("mL/h".to_string()),
        Just("mg/mL".to_string()),
        Just("mg".to_string()),
        Just("over".to_string()),
        Just("for".to_string()),
        Just("from".to_string()),
        Just("at".to_string()),
        Just("of".to_string()),
        Just("40".to_string()),
        Just("min".to_string()),
        Just("h".to_string()),
        Just("s".to_string()),
        "[0-9.]{1,6}",
        "\\PC{0,4}",
    ];
    prop::collection::vec(word, 0..9).prop_map(|w| w.join(" "))
}

/// A protocol file with part of it replaced by random text.
fn mutated_protocol() -> impl Strategy<Value = String> {
    let text = include_str!("../../../protocols/trd.toml");
    (0..text.len(), 0..200usize, "\\PC{0,40}").prop_map(move |(at, len, insert)| {
        let mut start = at;
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = (start + len).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}{insert}{}", &text[..start], &text[end..])
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn dose_expressions_never_panic(text in prop_oneof![dose_words(), "\\PC{0,60}", any::<String>()]) {
        if let Ok(dose) = text.parse::<Dose>() {
            // What is accepted resolves or is refused with an error, for any plausible weight.
            let _ = ketaflow_pkpd::schedule::Regimen::new(vec![dose]).resolve(Kilograms::new(70.0).unwrap());
        }
    }

    #[test]
    fn quantities_never_panic_and_accept_only_their_range(text in prop_oneof![
        "[-+]?[0-9]{0,4}(\\.[0-9]{0,4})?(e[-+]?[0-9]{1,3})? ?(kg|mg/kg|mg/kg/h|mg/mL|µg/mL|ug/mL|mL/h|min|h|s|g)?",
        "\\PC{0,20}",
    ]) {
        if let Ok(w) = text.parse::<Kilograms>() {
            prop_assert!((Kilograms::MIN..=Kilograms::MAX).contains(&w.get()), "{text}");
        }
        if let Ok(c) = text.parse::<MgPerMl>() {
            prop_assert!(c.get() > 0.0 && c.get().is_finite(), "{text}");
        }
        let _ = text.parse::<MgPerKg>();
        let _ = text.parse::<MgPerKgPerHour>();
        let _ = text.parse::<MicrogramsPerMl>();
        let _ = text.parse::<MlPerHour>();
        let _ = text.parse::<Minutes>();
    }

    #[test]
    fn codes_never_panic(text in "\\PC{0,30}") {
        let _ = text.parse::<Opioid>();
        let _ = text.parse::<Route>();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn protocol_files_never_panic(text in prop_oneof![mutated_protocol(), "\\PC{0,200}"]) {
        if let Ok(p) = Protocol::from_toml("fuzz.toml", &text) {
            // An accepted file keeps the library's invariants: its own dose within its hard limit.
            prop_assert!(p.dose.value.mg_per_kg() <= p.limits.dose_mg_per_kg.hard, "{text}");
            prop_assert!(p.monitoring.vitals_every_min > 0.0 && p.monitoring.vitals_every_min <= 240.0);
        }
    }
}
