//! The `ketaflow` PK/PD commands, run as a user runs them: the real binary, real files, and the
//! numbers checked against the engine's reference values.

use std::path::Path;
use std::process::Output;

mod support;
use support::{ketaflow, ok};

fn stderr_of_failure(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(2),
        "expected exit code 2; stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn csv_rows(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap().iter().map(String::from).collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

const ADULT: [&str; 8] = [
    "--weight", "70kg", "--age", "40", "--height", "170cm", "--sex", "male",
];

#[test]
fn models_json_lists_every_model_with_source_and_validity() {
    let out = ok(&ketaflow(&["models", "--json"]));
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ids: Vec<&str> = doc["pk_models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "clements1981",
            "domino1982",
            "hijazi2003",
            "herd2007",
            "hornik2018",
            "kamp2020",
            "otto2021"
        ]
    );
    let herd = &doc["pk_models"][3];
    assert_eq!(herd["pmid"], "17564643");
    assert_eq!(herd["validated_age_years"], serde_json::json!([1.0, 14.0]));
    assert_eq!(herd["sampling_site"], "venous");
    assert_eq!(doc["pk_models"][5]["compartments"], 3);
    assert_eq!(doc["pd_models"][0]["id"], "olofsen2022");
    // The table form names every model too.
    let table = ok(&ketaflow(&["models"]));
    assert!(table.contains("kamp2020") && table.contains("PMID 32997732"));
}

#[test]
fn simulate_csv_has_the_documented_columns_and_the_reference_value() {
    let mut args = vec!["simulate"];
    args.extend(ADULT);
    args.extend([
        "--model",
        "kamp2020",
        "--infuse",
        "0.5 mg/kg over 40 min",
        "--until",
        "4h",
        "--every",
        "10s",
        "--csv",
    ]);
    let (header, rows) = csv_rows(&ok(&ketaflow(&args)));
    assert_eq!(header[..3], ["time_s", "cp_ug_per_ml", "ce_ug_per_ml"]);
    assert_eq!(rows.len(), 1441);
    // 40 min: Cp 0.25305 µg/mL (reference curve Klamp_adult_a, cp_exact).
    let at_40 = &rows[240];
    assert_eq!(at_40[0], "2400");
    let cp: f64 = at_40[1].parse().unwrap();
    assert!((cp - 0.253_05).abs() < 1e-5, "{cp}");
}

#[test]
fn simulate_reports_recovery_and_writes_a_plot() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("curve.svg");
    let mut args = vec!["simulate"];
    args.extend(ADULT);
    let plot_arg = plot.to_str().unwrap();
    args.extend([
        "--infuse",
        "0.5 mg/kg over 40 min",
        "--threshold",
        "0.05ug/mL",
        "--every",
        "30min",
        "--plot",
        plot_arg,
    ]);
    let out = ok(&ketaflow(&args));
    assert!(
        out.contains("below 0.05 µg/mL for good: Cp from 119.8 min"),
        "{out}"
    );
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("recovery threshold 0.05"));
}

#[test]
fn a_cohort_runs_every_subject_with_a_leading_subject_column() {
    let dir = tempfile::tempdir().unwrap();
    let cohort = dir.path().join("cohort.csv");
    std::fs::write(
        &cohort,
        "id,weight_kg,age_years,height_cm,sex\na,50,30,160,female\nb,70,40,170,male\nc,100,60,185,male\n",
    )
    .unwrap();
    let run = ketaflow(&[
        "simulate",
        "--cohort",
        cohort.to_str().unwrap(),
        "--infuse",
        "0.5 mg/kg over 40 min",
        "--until",
        "1h",
        "--every",
        "20min",
        "--csv",
    ]);
    // A note every subject shares is said once for all of them, not once per subject.
    let notes = String::from_utf8_lossy(&run.stderr).into_owned();
    assert_eq!(notes.matches("ke0").count(), 1, "{notes}");
    assert!(notes.contains("all 3 subjects: note"), "{notes}");
    let out = ok(&run);
    let (header, rows) = csv_rows(&out);
    assert_eq!(header[..4], ["subject", "time_s", "cp_ug_per_ml", "ce_ug_per_ml"]);
    assert_eq!(rows.len(), 3 * 4);
    assert_eq!(
        rows.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(),
        ["a", "a", "a", "a", "b", "b", "b", "b", "c", "c", "c", "c"]
    );
    // Kamp scales linearly with weight and mg/kg dosing: every subject has the same curve.
    let cp_a: f64 = rows[2][2].parse().unwrap();
    let cp_c: f64 = rows[10][2].parse().unwrap();
    assert!((cp_a - cp_c).abs() < 1e-12);
    // A bad row is named by line.
    std::fs::write(
        &cohort,
        "id,weight_kg,age_years,height_cm,sex\na,50,30,160,female\nb,0,40,170,male\n",
    )
    .unwrap();
    let err = stderr_of_failure(&ketaflow(&[
        "simulate",
        "--cohort",
        cohort.to_str().unwrap(),
        "--infuse",
        "1 mg over 1 min",
    ]));
    assert!(err.contains("line 3 (subject b): weight"), "{err}");
}

#[test]
fn regimen_files_in_toml_and_json_give_the_same_result_as_flags() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("regimen.toml");
    let json = dir.path().join("regimen.json");
    std::fs::write(
        &toml,
        "doses = [\"0.35 mg/kg over 1 min\", \"22 mg/h for 1 h from 30 min\"]\n",
    )
    .unwrap();
    std::fs::write(
        &json,
        r#"{"doses": ["0.35 mg/kg over 1 min", "22 mg/h for 1 h from 30 min"]}"#,
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["simulate"];
        args.extend(ADULT);
        args.extend(["--every", "15min", "--until", "2h", "--csv"]);
        args.extend(extra);
        ok(&ketaflow(&args))
    };
    let from_flags = run(&[
        "--bolus",
        "0.35 mg/kg over 1 min",
        "--infuse",
        "22 mg/h for 1 h from 30 min",
    ]);
    assert_eq!(run(&["--regimen", toml.to_str().unwrap()]), from_flags);
    assert_eq!(run(&["--regimen", json.to_str().unwrap()]), from_flags);
}

#[test]
fn tci_csv_holds_the_plasma_target_and_gives_pump_rates_in_ml_per_hour() {
    let mut args = vec!["tci"];
    args.extend(ADULT);
    args.extend([
        "--target-plasma",
        "0.2ug/mL",
        "--for",
        "60min",
        "--syringe",
        "10mg/mL",
        "--max-rate",
        "1200mL/h",
        "--interval",
        "10s",
        "--every",
        "10s",
        "--until",
        "90min",
        "--csv",
    ]);
    let (header, rows) = csv_rows(&ok(&ketaflow(&args)));
    assert_eq!(
        header,
        ["time_s", "cp_ug_per_ml", "ce_ug_per_ml", "rate_ml_per_h"]
    );
    for row in &rows[1..360] {
        let cp: f64 = row[1].parse().unwrap();
        assert!((cp - 0.2).abs() < 1e-9, "Cp {cp} at {}", row[0]);
    }
    let first_rate: f64 = rows[0][3].parse().unwrap();
    assert!(first_rate > 100.0 && first_rate <= 1200.0);
    let after_stop: f64 = rows[400][3].parse().unwrap();
    assert_eq!(after_stop, 0.0);
}

#[test]
fn population_is_reproducible_by_seed_and_labels_assumed_variability() {
    let run = |seed: &str| {
        let mut args = vec!["population"];
        args.extend(ADULT);
        args.extend([
            "--infuse",
            "0.5 mg/kg over 40 min",
            "--subjects",
            "500",
            "--seed",
            seed,
            "--cv",
            "30%",
            "--every",
            "10min",
            "--csv",
        ]);
        ketaflow(&args)
    };
    let first = run("7");
    let text = ok(&first);
    assert_eq!(text, ok(&run("7")));
    assert_ne!(text, ok(&run("8")));
    let (header, rows) = csv_rows(&text);
    assert_eq!(
        header,
        [
            "time_s",
            "cp_p5_ug_per_ml",
            "cp_p50_ug_per_ml",
            "cp_p95_ug_per_ml",
            "ce_p5_ug_per_ml",
            "ce_p50_ug_per_ml",
            "ce_p95_ug_per_ml"
        ]
    );
    assert_eq!(rows.len(), 25);
    assert!(String::from_utf8_lossy(&first.stderr).contains("ASSUMED: 30 % CV"));
    // Without --cv a model with no published variability is refused, not silently invented.
    let mut args = vec!["population"];
    args.extend(ADULT);
    args.extend(["--infuse", "0.5 mg/kg over 40 min"]);
    assert!(stderr_of_failure(&ketaflow(&args)).contains("no published inter-individual variability"));
}

#[test]
fn bad_input_is_an_error_that_names_the_value_and_the_allowed_range() {
    let cases: [(&[&str], &str); 7] = [
        (
            &["simulate", "--weight", "0kg", "--age", "40", "--infuse", "1 mg"],
            "weight 0 kg is not allowed: it must be a finite number from 0.3 to 500 kg",
        ),
        (
            &["simulate", "--weight", "NaNkg", "--age", "40", "--infuse", "1 mg"],
            "does not start with a number",
        ),
        (
            &[
                "simulate",
                "--weight",
                "70kg",
                "--age",
                "40",
                "--infuse",
                "-1 mg/kg over 40 min",
            ],
            "cannot read dose",
        ),
        (
            &[
                "simulate", "--weight", "70kg", "--age", "40", "--model", "propofol", "--infuse", "1 mg",
            ],
            "known models: clements1981",
        ),
        (
            &[
                "simulate",
                "--weight",
                "70kg",
                "--age",
                "40",
                "--infuse",
                "0.5 mg/kg over 40 min",
                "--infuse",
                "10 mg/h for 1 h from 10 min",
            ],
            "infusions overlap",
        ),
        (
            &["simulate", "--age", "40", "--infuse", "1 mg"],
            "give the patient's weight",
        ),
        (
            &[
                "tci",
                "--weight",
                "70kg",
                "--age",
                "40",
                "--target-plasma",
                "5ug/mL",
                "--for",
                "1h",
                "--max-rate",
                "10mL/h",
            ],
            "target 5 µg/mL cannot be held",
        ),
    ];
    for (args, expected) in cases {
        let err = stderr_of_failure(&ketaflow(args));
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

#[test]
fn out_of_range_covariates_warn_but_still_predict() {
    let out = ok(&ketaflow(&[
        "simulate",
        "--model",
        "herd2007",
        "--weight",
        "70kg",
        "--age",
        "40",
        "--infuse",
        "1 mg/kg over 1 min",
        "--every",
        "1h",
        "--until",
        "1h",
    ]));
    assert!(
        out.contains(
            "warning    age 40 years is outside the range 1–14 years that herd2007 was developed on"
        ),
        "{out}"
    );
    assert!(Path::new(env!("CARGO_BIN_EXE_ketaflow")).exists());
}

#[test]
fn compartment_amounts_add_up_to_the_dose_given() {
    let mut args = vec!["simulate"];
    args.extend(ADULT);
    args.extend([
        "--infuse",
        "0.5 mg/kg over 40 min",
        "--every",
        "30min",
        "--until",
        "3h",
        "--amounts",
        "--csv",
    ]);
    let (header, rows) = csv_rows(&ok(&ketaflow(&args)));
    assert_eq!(
        header[3..],
        ["central_mg", "peripheral2_mg", "peripheral3_mg", "eliminated_mg"]
    );
    for row in &rows[2..] {
        let total: f64 = row[3..].iter().map(|v| v.parse::<f64>().unwrap()).sum();
        assert!((total - 35.0).abs() < 1e-6, "{row:?}");
    }
}

/// `--version` names the version and the commit the binary was built from.
#[test]
fn the_version_names_its_commit() {
    let out = ok(&ketaflow(&["--version"]));
    let line = out.trim();
    assert!(
        line.starts_with(&format!("ketaflow {} (", env!("CARGO_PKG_VERSION"))),
        "{line}"
    );
    // In a git checkout (CI's): a 12-digit commit, perhaps with "+changes".
    let commit = line
        .split("(commit ")
        .nth(1)
        .map(|rest| rest.trim_end_matches(')').trim_end_matches("+changes"));
    match commit {
        Some(hash) => assert!(
            hash.len() == 12 && hash.chars().all(|c| c.is_ascii_hexdigit()),
            "{line}"
        ),
        None => assert!(line.ends_with("(unknown commit)"), "{line}"),
    }
}

#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ketaflow"))
        .args([
            "simulate",
            "--weight",
            "70kg",
            "--age",
            "40",
            "--infuse",
            "0.5 mg/kg over 40 min",
            "--every",
            "1s",
            "--until",
            "4h",
            "--csv",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("time_s,"), "{first}");
    // The pipe is closed here, with most of the 14 401 rows unread.
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{:?}", output.status);
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains("error"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
