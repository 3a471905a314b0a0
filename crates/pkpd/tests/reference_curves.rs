//! Agreement with the reference curves in `test_data/opentiva/`: Ketaflow's exact engine against an
//! independent matrix-exponential solution, for all six models and both regimens.
//!
//! Criterion (issue 2): 1e-6 relative wherever the reference value exceeds 1 % of its peak.

use std::path::PathBuf;

use ketaflow_pkpd::model::{Covariates, ModelId};
use ketaflow_pkpd::params::Disposition;
use ketaflow_pkpd::schedule::{Schedule, Segment};
use ketaflow_pkpd::simulate::{Grid, simulate};
use ketaflow_pkpd::system::System;

struct Reference {
    t_s: Vec<f64>,
    cp_opentiva: Vec<f64>,
    ce_opentiva: Vec<f64>,
    cp_exact: Vec<f64>,
    ce_exact: Vec<f64>,
}

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test_data/opentiva")
}

fn read_curve(name: &str) -> Reference {
    let mut reader = csv::Reader::from_path(data_dir().join(format!("{name}.csv"))).expect("reference file");
    let mut r = Reference {
        t_s: vec![],
        cp_opentiva: vec![],
        ce_opentiva: vec![],
        cp_exact: vec![],
        ce_exact: vec![],
    };
    for row in reader.records() {
        let row = row.unwrap();
        let f = |i: usize| row[i].parse::<f64>().unwrap();
        r.t_s.push(f(0));
        r.cp_opentiva.push(f(1));
        r.ce_opentiva.push(f(2));
        r.cp_exact.push(f(3));
        r.ce_exact.push(f(4));
    }
    r
}

fn read_schedule(name: &str) -> Schedule {
    let mut reader = csv::Reader::from_path(data_dir().join(format!("{name}_infusions.csv"))).unwrap();
    let segments = reader
        .records()
        .map(|row| {
            let row = row.unwrap();
            let f = |i: usize| row[i].parse::<f64>().unwrap();
            Segment {
                start_s: f(0),
                end_s: f(3),
                rate_mg_per_s: f(1),
            }
        })
        .collect();
    Schedule::new(segments, vec![]).unwrap()
}

fn opentiva_name(model: ModelId) -> &'static str {
    match model {
        ModelId::Clements1981 => "Clements250",
        ModelId::Domino1982 => "Domino",
        ModelId::Hijazi2003 => "Hijazi",
        ModelId::Herd2007 => "Herd",
        ModelId::Hornik2018 => "Hornik",
        ModelId::Kamp2020 => "Klamp",
        ModelId::Otto2021 => unreachable!("not in opentiva"),
    }
}

/// Largest relative error over points where the reference exceeds 1 % of its peak.
fn max_relative_error(got: &[f64], want: &[f64]) -> f64 {
    let peak = want.iter().copied().fold(0.0, f64::max);
    got.iter()
        .zip(want)
        .filter(|(_, w)| **w > 0.01 * peak)
        .map(|(g, w)| ((g - w) / w).abs())
        .fold(0.0, f64::max)
}

#[test]
fn every_model_and_regimen_matches_the_exact_reference() {
    let mut checked = 0;
    for model in ModelId::ALL.into_iter().filter(|m| m.in_opentiva()) {
        for regimen in ["a_0p5mgkg_40min", "b_0p35mgkg_bolus1min"] {
            let name = format!("{}_adult_{regimen}", opentiva_name(model));
            let reference = read_curve(&name);
            let schedule = read_schedule(&name);
            let evaluated = model.evaluate(&Covariates::reference_adult());
            let system = System::new(
                Disposition::new(&evaluated.parameters).unwrap(),
                evaluated.ke0.per_second(),
            );
            let trajectory = simulate(&system, &schedule, &Grid::Times(reference.t_s.clone())).unwrap();
            let cp_error = max_relative_error(&trajectory.cp, &reference.cp_exact);
            let ce_error = max_relative_error(trajectory.ce(), &reference.ce_exact);
            assert!(cp_error < 1e-6, "{name}: Cp relative error {cp_error:e}");
            assert!(ce_error < 1e-6, "{name}: Ce relative error {ce_error:e}");
            // opentiva's own plasma output agrees as well; its effect site is approximate (≤ 1 % here).
            assert!(
                max_relative_error(&trajectory.cp, &reference.cp_opentiva) < 1e-6,
                "{name}: Cp vs opentiva"
            );
            // pharmacology.md §1.2 measured at most 0.85 % of the Ce peak for these regimens.
            let ce_peak = reference.ce_exact.iter().copied().fold(0.0, f64::max);
            let ce_vs_opentiva = trajectory
                .ce()
                .iter()
                .zip(&reference.ce_opentiva)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max)
                / ce_peak;
            assert!(ce_vs_opentiva < 0.01, "{name}: Ce vs opentiva {ce_vs_opentiva}");
            checked += 1;
        }
    }
    assert_eq!(checked, 12);
}

#[test]
fn sanity_numbers_at_forty_minutes_match_the_domain_notes() {
    // pharmacology.md §1.5: Cp at 40 min of 0.5 mg/kg over 40 min, 70 kg, µg/mL.
    let expected = [
        (ModelId::Clements1981, 0.177),
        (ModelId::Domino1982, 0.240),
        (ModelId::Hijazi2003, 0.225),
        (ModelId::Herd2007, 0.253),
        (ModelId::Hornik2018, 0.496),
        (ModelId::Kamp2020, 0.253),
    ];
    let schedule = Schedule::new(
        vec![Segment {
            start_s: 0.0,
            end_s: 2400.0,
            rate_mg_per_s: 35.0 / 2400.0,
        }],
        vec![],
    )
    .unwrap();
    for (model, cp_40) in expected {
        let evaluated = model.evaluate(&Covariates::reference_adult());
        let system = System::new(
            Disposition::new(&evaluated.parameters).unwrap(),
            evaluated.ke0.per_second(),
        );
        let trajectory = simulate(&system, &schedule, &Grid::Times(vec![2400.0])).unwrap();
        assert!(
            (trajectory.cp[0] - cp_40).abs() < 0.0015,
            "{model}: {} vs {cp_40}",
            trajectory.cp[0]
        );
    }
}
