//! Runs the scenarios of `bench/opentiva/scenarios.json` in Ketaflow's engine, the way
//! `bench/opentiva/run_opentiva.py` runs them in opentiva, and writes the same files:
//! `OUT_DIR/<name>/ketaflow.csv` and `OUT_DIR/ketaflow_timings.json`.
//!
//! Timing covers the computation only (model assembly, schedule, TCI, simulation into memory),
//! not reading the scenario file or writing CSV, matching the Python side.
//!
//! Usage: `cargo run --release -p ketaflow-pkpd --example peer_scenarios -- SCENARIOS.json OUT_DIR`

use std::io::Write;
use std::time::Instant;

use ketaflow_pkpd::model::{Covariates, ModelId, Sex};
use ketaflow_pkpd::params::Disposition;
use ketaflow_pkpd::schedule::{Schedule, Segment};
use ketaflow_pkpd::simulate::{Grid, simulate_cp_ce};
use ketaflow_pkpd::system::System;
use ketaflow_pkpd::tci::{TargetSite, TargetStep, TciSettings, run_tci};
use ketaflow_units::{Centimetres, Kilograms, MgPerMl, MlPerHour, Years};
use rayon::prelude::*;
use serde::Deserialize;

// The same allocator as the `ketaflow` binary: it keeps freed pages, so repeated runs do not pay
// the kernel's page-fault cost for every fresh output buffer (glibc returns large blocks to the OS).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Deserialize)]
struct File {
    repeats: usize,
    scenarios: Vec<Scenario>,
}

#[derive(Deserialize)]
struct SubjectRow {
    id: String,
    weight_kg: f64,
    age_years: f64,
    height_cm: f64,
    sex: String,
}

#[derive(Deserialize)]
struct Infusion {
    start_s: f64,
    rate_mg_per_s: f64,
    duration_s: f64,
}

#[derive(Deserialize)]
struct InfusionPerKg {
    start_s: f64,
    dose_mg_per_kg: f64,
    duration_s: f64,
}

#[derive(Deserialize)]
struct Scenario {
    name: String,
    kind: String,
    model: String,
    subjects: Vec<SubjectRow>,
    end_s: f64,
    grid_s: f64,
    #[serde(default)]
    infusions: Vec<Infusion>,
    #[serde(default)]
    infusions_mg_per_kg: Vec<InfusionPerKg>,
    site: Option<String>,
    target_ug_per_ml: Option<f64>,
    target_until_s: Option<f64>,
    interval_s: Option<f64>,
    syringe_mg_per_ml: Option<f64>,
    max_rate_ml_per_h: Option<f64>,
}

/// Cp and Ce of every subject on the grid.
type Curves = Vec<(Vec<f64>, Vec<f64>)>;

fn covariates(row: &SubjectRow) -> Covariates {
    Covariates {
        weight: Kilograms::new(row.weight_kg).expect("weight"),
        age: Years::new(row.age_years).expect("age"),
        height: Centimetres::new(row.height_cm).expect("height"),
        sex: row.sex.parse::<Sex>().expect("sex"),
    }
}

fn run(scenario: &Scenario) -> Curves {
    let model: ModelId = scenario.model.parse().expect("model");
    let grid = Grid::uniform(scenario.grid_s, scenario.end_s).expect("grid");
    let one = |row: &SubjectRow| {
        let evaluated = model.evaluate(&covariates(row));
        // Cp and Ce only: the effect site is the system's one response.
        let system = System::plasma_and_effect(
            Disposition::new(&evaluated.parameters).expect("model"),
            evaluated.ke0.per_second(),
        );
        let schedule = match scenario.kind.as_str() {
            "simulate" => {
                let mut segments: Vec<Segment> = scenario
                    .infusions
                    .iter()
                    .map(|i| Segment {
                        start_s: i.start_s,
                        end_s: i.start_s + i.duration_s,
                        rate_mg_per_s: i.rate_mg_per_s,
                    })
                    .collect();
                segments.extend(scenario.infusions_mg_per_kg.iter().map(|i| Segment {
                    start_s: i.start_s,
                    end_s: i.start_s + i.duration_s,
                    rate_mg_per_s: i.dose_mg_per_kg * row.weight_kg / i.duration_s,
                }));
                Schedule::new(segments, vec![]).expect("schedule")
            }
            "tci" => {
                let settings = TciSettings {
                    site: if scenario.site.as_deref() == Some("effect") {
                        TargetSite::EffectSite
                    } else {
                        TargetSite::Plasma
                    },
                    targets: vec![TargetStep {
                        from_s: 0.0,
                        target_ug_per_ml: scenario.target_ug_per_ml.expect("target"),
                    }],
                    until_s: scenario.target_until_s.expect("target_until_s"),
                    interval_s: scenario.interval_s.unwrap_or(10.0),
                    syringe: MgPerMl::new(scenario.syringe_mg_per_ml.unwrap_or(10.0)).expect("syringe"),
                    max_rate: MlPerHour::new(scenario.max_rate_ml_per_h.unwrap_or(1200.0)).expect("max rate"),
                };
                run_tci(&system, &settings).expect("tci").schedule
            }
            other => panic!("unknown kind {other}"),
        };
        let (mut cp, mut ce) = (Vec::new(), Vec::new());
        simulate_cp_ce(&system, &schedule, &grid, &mut cp, &mut ce).expect("simulate");
        (cp, ce)
    };
    if scenario.subjects.len() > 1 {
        scenario.subjects.par_iter().map(one).collect()
    } else {
        scenario.subjects.iter().map(one).collect()
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (scenarios, out_dir) = match args.as_slice() {
        [_, s, o] => (s.clone(), o.clone()),
        _ => {
            eprintln!("usage: peer_scenarios SCENARIOS.json OUT_DIR");
            std::process::exit(2);
        }
    };
    let file: File = serde_json::from_str(&std::fs::read_to_string(&scenarios)?).expect("scenario file");
    let mut timings = Vec::new();
    for scenario in &file.scenarios {
        // Enough repeats to time microsecond runs: at least the file's count and at least 0.2 s.
        let mut samples = Vec::new();
        let mut curves = run(scenario);
        let started = Instant::now();
        while samples.len() < file.repeats.max(5)
            || (started.elapsed().as_secs_f64() < 0.2 && samples.len() < 100_000)
        {
            let t0 = Instant::now();
            curves = std::hint::black_box(run(scenario));
            samples.push(t0.elapsed().as_secs_f64());
        }
        samples.sort_by(f64::total_cmp);
        let median = samples[samples.len() / 2];
        eprintln!(
            "{:<28} {:>5} subjects  median {:>10.1} µs  ({} repeats)",
            scenario.name,
            scenario.subjects.len(),
            median * 1e6,
            samples.len()
        );
        timings.push(serde_json::json!({
            "name": scenario.name, "kind": scenario.kind, "n_subjects": scenario.subjects.len(),
            "median_s": median, "min_s": samples[0], "repeats": samples.len(),
            // Effect-site TCI computes its rates from the exact Ce, opentiva from its approximate
            // Ce, so the two schedules (and Cp curves) differ by design.
            "cp_comparable": !(scenario.kind == "tci" && scenario.site.as_deref() == Some("effect")),
        }));
        let dir = std::path::Path::new(&out_dir).join(&scenario.name);
        std::fs::create_dir_all(&dir)?;
        let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("ketaflow.csv"))?);
        writeln!(out, "subject,t_s,cp_ug_per_ml,ce_ug_per_ml")?;
        for (row, (cp, ce)) in scenario.subjects.iter().zip(&curves) {
            for k in 0..cp.len() {
                writeln!(
                    out,
                    "{},{},{:.17e},{:.17e}",
                    row.id,
                    k as f64 * scenario.grid_s,
                    cp[k],
                    ce[k]
                )?;
            }
        }
    }
    std::fs::create_dir_all(&out_dir)?;
    std::fs::write(
        std::path::Path::new(&out_dir).join("ketaflow_timings.json"),
        serde_json::to_string_pretty(&timings)?,
    )?;
    Ok(())
}
