//! Engine benchmarks (`cargo bench -p ketaflow-pkpd`). The side-by-side comparison with opentiva
//! is `bench/compare_opentiva.sh`; these track the engine's own costs between changes.

use ketaflow_pkpd::model::{Covariates, ModelId};
use ketaflow_pkpd::params::Disposition;
use ketaflow_pkpd::population::{PopulationSettings, Variability, run_population};
use ketaflow_pkpd::recovery::{DEFAULT_BRACKET_S, Quantity, time_below};
use ketaflow_pkpd::schedule::{Schedule, Segment};
use ketaflow_pkpd::simulate::{Grid, simulate, simulate_cp_ce};
use ketaflow_pkpd::system::System;
use ketaflow_pkpd::tci::{TargetSite, TargetStep, TciSettings, run_tci};
use ketaflow_units::{MgPerMl, MlPerHour};

fn main() {
    divan::main();
}

fn kamp_lean() -> System {
    let e = ModelId::Kamp2020.evaluate(&Covariates::reference_adult());
    System::plasma_and_effect(Disposition::new(&e.parameters).unwrap(), e.ke0.per_second())
}

fn forty_minutes() -> Schedule {
    Schedule::new(
        vec![Segment {
            start_s: 0.0,
            end_s: 2400.0,
            rate_mg_per_s: 35.0 / 2400.0,
        }],
        vec![],
    )
    .unwrap()
}

/// 0.5 mg/kg over 40 min, 4 h at 1 s: Cp and Ce only (the opentiva single-subject scenario).
#[divan::bench]
fn single_subject_4h_1s_cp_ce(bencher: divan::Bencher) {
    let system = kamp_lean();
    let schedule = forty_minutes();
    let grid = Grid::uniform(1.0, 14_400.0).unwrap();
    let (mut cp, mut ce) = (Vec::new(), Vec::new());
    bencher.bench_local(|| simulate_cp_ce(&system, &schedule, &grid, &mut cp, &mut ce).unwrap());
}

/// The same with every response (peripheral amounts, eliminated amount) via the stepper.
#[divan::bench]
fn single_subject_4h_1s_all_outputs(bencher: divan::Bencher) {
    let e = ModelId::Kamp2020.evaluate(&Covariates::reference_adult());
    let system = System::new(Disposition::new(&e.parameters).unwrap(), e.ke0.per_second());
    let schedule = forty_minutes();
    let grid = Grid::uniform(1.0, 14_400.0).unwrap();
    bencher.bench_local(|| simulate(&system, &schedule, &grid).unwrap());
}

/// Model assembly for one patient (covariates → modes → system).
#[divan::bench]
fn assemble_patient_model() -> System {
    kamp_lean()
}

#[divan::bench(args = [TargetSite::Plasma, TargetSite::EffectSite])]
fn tci_60_min(bencher: divan::Bencher, site: TargetSite) {
    let system = kamp_lean();
    let settings = TciSettings {
        site,
        targets: vec![TargetStep {
            from_s: 0.0,
            target_ug_per_ml: 0.2,
        }],
        until_s: 3600.0,
        interval_s: 10.0,
        syringe: MgPerMl::new(10.0).unwrap(),
        max_rate: MlPerHour::new(1200.0).unwrap(),
    };
    bencher.bench_local(|| run_tci(&system, &settings).unwrap());
}

#[divan::bench]
fn recovery_time_ce(bencher: divan::Bencher) {
    let system = kamp_lean();
    let schedule = forty_minutes();
    bencher.bench_local(|| {
        time_below(&system, &schedule, Quantity::Response(0), 0.05, DEFAULT_BRACKET_S).unwrap()
    });
}

/// 100,000 virtual patients × 4 h on a 10-s grid with 5/50/95 bands (issue 2 target: < 2 s).
#[divan::bench(sample_count = 3, sample_size = 1)]
fn population_100k_4h_10s() {
    let e = ModelId::Kamp2020.evaluate(&Covariates::reference_adult());
    let settings = PopulationSettings {
        n_subjects: 100_000,
        seed: 1,
        percentiles: vec![5.0, 50.0, 95.0],
        step_s: 10.0,
        until_s: 14_400.0,
    };
    run_population(
        &e.parameters,
        e.ke0.per_second(),
        &forty_minutes(),
        &Variability::assumed_cv(0.3).unwrap(),
        &settings,
        &|_, _| {},
    )
    .unwrap();
}
