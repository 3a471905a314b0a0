//! Invariants of the exact engine, checked on random models and regimens (proptest), plus closed
//! forms that an independent derivation gives.

use ketaflow_pkpd::params::{Disposition, Mammillary};
use ketaflow_pkpd::schedule::{BolusAt, Schedule, Segment};
use ketaflow_pkpd::simulate::{Grid, simulate};
use ketaflow_pkpd::system::{ResponseKind, System};
use proptest::prelude::*;

/// A random 1–3 compartment model with rate constants spanning ketamine-like values (/min).
fn model() -> impl Strategy<Value = (Mammillary, f64)> {
    (
        1.0f64..200.0,
        0.005f64..1.0,
        prop::collection::vec((0.001f64..1.0, 0.001f64..0.5), 0..=2),
        0.01f64..6.0,
    )
        .prop_map(|(v1, k10, peripheral, ke0)| {
            (Mammillary::from_micro_constants(v1, k10, &peripheral), ke0 / 60.0)
        })
}

/// Up to four non-overlapping infusions and two boluses within the first two hours.
fn schedule() -> impl Strategy<Value = Schedule> {
    (
        prop::collection::vec((0.0f64..1800.0, 1.0f64..1800.0, 0.0f64..0.5), 0..=4),
        prop::collection::vec((0.0f64..7200.0, 0.0f64..50.0), 0..=2),
    )
        .prop_map(|(gaps, boluses)| {
            let mut t = 0.0;
            let mut segments = Vec::new();
            for (gap, duration, rate) in gaps {
                t += gap;
                segments.push(Segment {
                    start_s: t,
                    end_s: t + duration,
                    rate_mg_per_s: rate,
                });
                t += duration;
            }
            let boluses = boluses
                .into_iter()
                .map(|(at_s, amount_mg)| BolusAt { at_s, amount_mg })
                .collect();
            Schedule::new(segments, boluses).unwrap()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn mass_is_conserved_and_nothing_goes_negative((params, ke0) in model(), schedule in schedule()) {
        let Ok(disposition) = Disposition::new(&params) else { return Ok(()) };
        let system = System::new(disposition, ke0);
        let trajectory = simulate(&system, &schedule, &Grid::uniform(37.0, 10_000.0).unwrap()).unwrap();
        let kinds = system.response_kinds();
        for (k, &t) in trajectory.times_s.iter().enumerate() {
            let given = schedule.given_by(t);
            let mut in_body = trajectory.cp[k] * params.v1_l();
            let mut eliminated = 0.0;
            for (r, kind) in kinds.iter().enumerate() {
                match kind {
                    ResponseKind::PeripheralAmount(_) => in_body += trajectory.responses[r][k],
                    ResponseKind::Eliminated => eliminated = trajectory.responses[r][k],
                    _ => {}
                }
            }
            let scale = given.max(1e-9);
            prop_assert!((in_body + eliminated - given).abs() <= 1e-9 * scale, "t {t}: {in_body} + {eliminated} != {given}");
            prop_assert!(trajectory.cp[k] >= -1e-12 * scale, "negative Cp {}", trajectory.cp[k]);
            for column in &trajectory.responses {
                prop_assert!(column[k] >= -1e-12 * scale, "negative response {}", column[k]);
            }
        }
    }

    #[test]
    fn one_ten_and_sixty_second_grids_agree_at_shared_times((params, ke0) in model(), schedule in schedule()) {
        let Ok(disposition) = Disposition::new(&params) else { return Ok(()) };
        let system = System::new(disposition, ke0);
        let fine = simulate(&system, &schedule, &Grid::uniform(1.0, 7200.0).unwrap()).unwrap();
        let mid = simulate(&system, &schedule, &Grid::uniform(10.0, 7200.0).unwrap()).unwrap();
        let coarse = simulate(&system, &schedule, &Grid::uniform(60.0, 7200.0).unwrap()).unwrap();
        let peak = fine.cp.iter().copied().fold(1e-12, f64::max);
        for (k, t) in coarse.times_s.iter().enumerate() {
            let i_fine = *t as usize;
            let i_mid = i_fine / 10;
            prop_assert!((coarse.cp[k] - fine.cp[i_fine]).abs() <= 1e-10 * peak);
            prop_assert!((coarse.cp[k] - mid.cp[i_mid]).abs() <= 1e-10 * peak);
            prop_assert!((coarse.ce()[k] - fine.ce()[i_fine]).abs() <= 1e-10 * peak);
        }
    }

    #[test]
    fn doubling_every_dose_doubles_every_concentration((params, ke0) in model(), schedule in schedule()) {
        let Ok(disposition) = Disposition::new(&params) else { return Ok(()) };
        let system = System::new(disposition, ke0);
        let doubled = Schedule::new(
            schedule.segments().iter().map(|s| Segment { rate_mg_per_s: 2.0 * s.rate_mg_per_s, ..*s }).collect(),
            schedule.boluses().iter().map(|b| BolusAt { amount_mg: 2.0 * b.amount_mg, ..*b }).collect(),
        ).unwrap();
        let grid = Grid::uniform(60.0, 7200.0).unwrap();
        let once = simulate(&system, &schedule, &grid).unwrap();
        let twice = simulate(&system, &doubled, &grid).unwrap();
        let peak = once.cp.iter().copied().fold(1e-12, f64::max);
        for k in 0..once.cp.len() {
            prop_assert!((twice.cp[k] - 2.0 * once.cp[k]).abs() <= 1e-12 * peak);
        }
    }
}

#[test]
fn one_compartment_bolus_is_a_single_exponential() {
    // C(t) = D/V·e^{−kt}: 10 mg into 20 L with k = 0.1 /min.
    let params = Mammillary::from_micro_constants(20.0, 0.1, &[]);
    let system = System::new(Disposition::new(&params).unwrap(), 1.0 / 60.0);
    let schedule = Schedule::new(
        vec![],
        vec![BolusAt {
            at_s: 0.0,
            amount_mg: 10.0,
        }],
    )
    .unwrap();
    let trajectory = simulate(&system, &schedule, &Grid::uniform(60.0, 3600.0).unwrap()).unwrap();
    for (k, t) in trajectory.times_s.iter().enumerate() {
        let want = 10.0 / 20.0 * (-0.1 * t / 60.0).exp();
        assert!((trajectory.cp[k] - want).abs() < 1e-15, "t {t}");
    }
}

#[test]
fn one_compartment_metabolite_follows_the_bateman_function() {
    // Parent: bolus D into V (k); metabolite formed with fraction fm, volume Vm, rate km:
    // Cm(t) = fm·D·k / (Vm·(km − k))·(e^{−kt} − e^{−km·t}).
    let (dose, v, k_min, fm, vm, km_min) = (50.0, 30.0, 0.05, 0.8, 60.0, 0.02);
    let parent = Mammillary::from_micro_constants(v, k_min, &[]);
    let metabolite = Mammillary::from_micro_constants(vm, km_min, &[]);
    let mut system = System::new(Disposition::new(&parent).unwrap(), 0.1);
    let modes = system.add_metabolite(fm, &Disposition::new(&metabolite).unwrap());
    let schedule = Schedule::new(
        vec![],
        vec![BolusAt {
            at_s: 0.0,
            amount_mg: dose,
        }],
    )
    .unwrap();
    let trajectory = simulate(&system, &schedule, &Grid::uniform(30.0, 36_000.0).unwrap()).unwrap();
    let (k, km) = (k_min / 60.0, km_min / 60.0);
    for (i, t) in trajectory.times_s.iter().enumerate() {
        let got: f64 = modes.iter().map(|&m| trajectory.responses[m][i]).sum();
        let want = fm * dose * k / (vm * (km - k)) * ((-k * t).exp() - (-km * t).exp());
        assert!((got - want).abs() < 1e-14, "t {t}: {got} vs {want}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn the_closed_form_fast_path_equals_the_step_by_step_engine((params, ke0) in model(), schedule in schedule(), step in prop::sample::select(vec![1.0, 7.0, 10.0, 60.0])) {
        use ketaflow_pkpd::simulate::simulate_cp_ce;
        let Ok(disposition) = Disposition::new(&params) else { return Ok(()) };
        let system = System::new(disposition, ke0);
        let grid = Grid::uniform(step, 9000.0).unwrap();
        let reference = simulate(&system, &schedule, &grid).unwrap();
        let (mut cp, mut ce) = (Vec::new(), Vec::new());
        simulate_cp_ce(&system, &schedule, &grid, &mut cp, &mut ce).unwrap();
        let peak = reference.cp.iter().chain(reference.ce()).copied().fold(1e-12, f64::max);
        for k in 0..cp.len() {
            prop_assert!((cp[k] - reference.cp[k]).abs() <= 1e-11 * peak, "Cp at {}: {} vs {}", reference.times_s[k], cp[k], reference.cp[k]);
            prop_assert!((ce[k] - reference.ce()[k]).abs() <= 1e-11 * peak, "Ce at {}: {} vs {}", reference.times_s[k], ce[k], reference.ce()[k]);
        }
    }
}
