//! When does a concentration fall below a threshold and stay there?
//!
//! This is the pharmacological half of a discharge decision: "the patient's predicted plasma (or
//! effect-site) ketamine is below X from 14:32 on". The answer is found on the analytic solution:
//! the timeline is bracketed on a coarse grid that contains every breakpoint of the schedule, and
//! the last downward crossing is then located by bisection on the closed-form expression, to far
//! better than a second. After the last dose the search stops once an upper bound on the
//! concentration that can only decrease is itself below the threshold, so "stays below" is proven,
//! not assumed.

use crate::EngineError;
use crate::schedule::Schedule;
use crate::simulate::Stepper;
use crate::system::{State, System, phi};

/// Which concentration to follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quantity {
    /// Plasma concentration.
    Plasma,
    /// A response of the system, by index (the PK effect site is 0). Must decay (rate > 0).
    Response(usize),
}

/// The answer to "from when on is the concentration below the threshold?".
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Recovery {
    /// It never reaches the threshold.
    NeverAbove,
    /// Below the threshold from this time (seconds from time 0) on, for good.
    BelowFrom(f64),
}

/// Default bracketing step, seconds. The concentration is smooth between breakpoints on a scale of
/// minutes (the fastest published ketamine ke0 is 5.2 /min, t½ 8 s), so a 10-s bracket cannot hide
/// an excursion above the threshold; `tests::agrees_with_dense_evaluation` checks this.
pub const DEFAULT_BRACKET_S: f64 = 10.0;

/// How long after the last dose the search gives up (about 116 days: far beyond any ketamine tail).
const MAX_TAIL_S: f64 = 1.0e7;

fn value(quantity: Quantity, state: &State) -> f64 {
    match quantity {
        Quantity::Plasma => state.cp(),
        Quantity::Response(r) => state.response(r),
    }
}

fn value_after(system: &System, quantity: Quantity, state: &State, dt: f64, rate_mg_per_s: f64) -> f64 {
    let mut s = *state;
    system.advance(&mut s, dt, rate_mg_per_s);
    value(quantity, &s)
}

/// Time (seconds from 0) after which `quantity` stays below `threshold` (µg/mL for concentrations).
pub fn time_below(
    system: &System,
    schedule: &Schedule,
    quantity: Quantity,
    threshold: f64,
    bracket_s: f64,
) -> Result<Recovery, EngineError> {
    if !(threshold.is_finite() && threshold > 0.0) {
        return Err(EngineError::InvalidThreshold(threshold));
    }
    if !(bracket_s.is_finite() && bracket_s > 0.0) {
        return Err(EngineError::InvalidGrid(format!(
            "the bracketing step must be above 0 s, got {bracket_s} s"
        )));
    }
    if let Quantity::Response(r) = quantity {
        let n = system.response_kinds().len();
        if r >= n || system.responses()[r].rate <= 0.0 {
            return Err(EngineError::InvalidGrid(format!(
                "response {r} does not decay (or does not exist), so it has no recovery time"
            )));
        }
    }

    // The last grid point at which the value was at or above the threshold, with what is needed to
    // re-evaluate the interval after it exactly: the state, the rate in force, the interval length.
    let mut last_above: Option<(f64, State, f64, f64)> = None;

    // Phase 1: over the dosing period, on a grid that contains every breakpoint.
    let end = schedule.last_input_end_s();
    let mut times: Vec<f64> = schedule.breakpoints();
    let n_grid = (end / bracket_s).ceil() as usize;
    times.extend((0..=n_grid).map(|k| k as f64 * bracket_s).filter(|t| *t < end));
    times.push(end);
    times.sort_by(f64::total_cmp);
    times.dedup();
    let mut stepper = Stepper::new(system, schedule);
    let mut previous: Option<(f64, State, f64)> = None;
    for &t in &times {
        stepper.advance_to(t);
        let v = value(quantity, stepper.state());
        if let Some((t0, s0, rate0)) = previous
            && value(quantity, &s0) >= threshold
            && v < threshold
        {
            last_above = Some((t0, s0, rate0, t - t0));
        }
        if v >= threshold {
            // Provisional: refined if a later point is below.
            last_above = Some((t, *stepper.state(), stepper.rate_mg_per_s(), f64::NAN));
        }
        previous = Some((t, *stepper.state(), stepper.rate_mg_per_s()));
    }

    // Phase 2: free decay after the last dose, until a decreasing upper bound is below the threshold.
    let start_state = *stepper.state();
    let peak_after = latest_peak_s(system, quantity);
    let mut s = 0.0;
    let mut v_prev = value(quantity, &start_state);
    loop {
        let next = s + bracket_s;
        let v = free_value(system, quantity, &start_state, next);
        if v_prev >= threshold && v < threshold {
            let state_at = free_state(system, &start_state, s);
            last_above = Some((end + s, state_at, 0.0, bracket_s));
        }
        if v >= threshold {
            last_above = Some((end + next, free_state(system, &start_state, next), 0.0, f64::NAN));
        }
        s = next;
        v_prev = v;
        if s >= peak_after && upper_bound(system, quantity, &start_state, s) < threshold {
            break;
        }
        if s > MAX_TAIL_S {
            return Err(EngineError::NoConvergence(format!(
                "the concentration is still at or above {threshold} µg/mL {MAX_TAIL_S} s after the last dose"
            )));
        }
    }

    let Some((t0, state0, rate0, width)) = last_above else {
        return Ok(Recovery::NeverAbove);
    };
    debug_assert!(
        width.is_finite(),
        "a value at or above the threshold is always followed by one below"
    );
    // Bisection on the closed form over [t0, t0 + width], where the input is constant.
    let (mut lo, mut hi) = (0.0, width);
    while hi - lo > 1e-6 {
        let mid = 0.5 * (lo + hi);
        if value_after(system, quantity, &state0, mid, rate0) >= threshold {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(Recovery::BelowFrom(t0 + hi))
}

fn free_state(system: &System, state: &State, dt: f64) -> State {
    let mut s = *state;
    system.advance(&mut s, dt, 0.0);
    s
}

fn free_value(system: &System, quantity: Quantity, state: &State, dt: f64) -> f64 {
    match quantity {
        Quantity::Plasma => system.cp_free(state, dt),
        Quantity::Response(r) => system.response_free(state, r, dt),
    }
}

/// After this delay every term of the free response is decreasing.
fn latest_peak_s(system: &System, quantity: Quantity) -> f64 {
    match quantity {
        Quantity::Plasma => 0.0,
        Quantity::Response(r) => {
            let k = system.responses()[r].rate;
            let d = system.disposition();
            (0..d.n)
                .map(|i| {
                    let l = d.lambda[i];
                    // d/ds φ(λ,k,s) = 0 at s* = ln(λ/k)/(λ−k); 1/k in the limit λ = k.
                    if (l - k).abs() < 1e-12 * l.max(k) {
                        1.0 / k
                    } else {
                        (l / k).ln() / (l - k)
                    }
                })
                .fold(0.0, f64::max)
        }
    }
}

/// An upper bound on the free response that decreases once `s` is past [`latest_peak_s`].
fn upper_bound(system: &System, quantity: Quantity, state: &State, s: f64) -> f64 {
    let d = system.disposition();
    match quantity {
        Quantity::Plasma => (0..d.n)
            .map(|i| state.c[i].max(0.0) * (-d.lambda[i] * s).exp())
            .sum(),
        Quantity::Response(r) => {
            let response = system.responses()[r];
            state.y[r].max(0.0) * (-response.rate * s).exp()
                + (0..d.n)
                    .map(|i| response.gain * state.c[i].max(0.0) * phi(d.lambda[i], response.rate, s))
                    .sum::<f64>()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{Disposition, kamp_typical};
    use crate::schedule::{BolusAt, Segment};
    use crate::simulate::{Grid, simulate};

    fn kamp() -> System {
        System::new(Disposition::new(&kamp_typical()).unwrap(), 2.791 / 60.0)
    }

    fn dense_last_above(traj: &[f64], times: &[f64], threshold: f64) -> Option<f64> {
        traj.iter().rposition(|v| *v >= threshold).map(|i| times[i])
    }

    #[test]
    fn agrees_with_dense_evaluation() {
        let system = kamp();
        let schedule = Schedule::new(
            vec![
                Segment {
                    start_s: 0.0,
                    end_s: 2400.0,
                    rate_mg_per_s: 35.0 / 2400.0,
                },
                Segment {
                    start_s: 3000.0,
                    end_s: 3600.0,
                    rate_mg_per_s: 0.004,
                },
            ],
            vec![BolusAt {
                at_s: 1200.0,
                amount_mg: 10.0,
            }],
        )
        .unwrap();
        let dense = simulate(&system, &schedule, &Grid::uniform(0.1, 40_000.0).unwrap()).unwrap();
        for threshold in [0.02, 0.05, 0.1, 0.2, 0.25] {
            for (quantity, column) in [
                (Quantity::Plasma, &dense.cp),
                (Quantity::Response(0), &dense.responses[0]),
            ] {
                let got = time_below(&system, &schedule, quantity, threshold, DEFAULT_BRACKET_S).unwrap();
                let want = dense_last_above(column, &dense.times_s, threshold).expect("reached");
                let Recovery::BelowFrom(t) = got else {
                    panic!("expected a time for {threshold}")
                };
                // The dense grid resolves 0.1 s; the engine's answer lies within one dense step after it.
                assert!(
                    t >= want - 1e-9 && t <= want + 0.1 + 1e-9,
                    "{quantity:?} {threshold}: {t} vs dense {want}"
                );
            }
        }
    }

    #[test]
    fn a_threshold_never_reached_says_so() {
        let system = kamp();
        let schedule = Schedule::new(
            vec![Segment {
                start_s: 0.0,
                end_s: 60.0,
                rate_mg_per_s: 0.01,
            }],
            vec![],
        )
        .unwrap();
        assert_eq!(
            time_below(&system, &schedule, Quantity::Plasma, 5.0, 10.0).unwrap(),
            Recovery::NeverAbove
        );
    }

    #[test]
    fn bad_thresholds_and_non_decaying_responses_are_errors() {
        let system = kamp();
        let schedule = Schedule::default();
        assert!(time_below(&system, &schedule, Quantity::Plasma, 0.0, 10.0).is_err());
        assert!(time_below(&system, &schedule, Quantity::Plasma, f64::NAN, 10.0).is_err());
        let eliminated = system.response_kinds().len() - 1;
        assert!(time_below(&system, &schedule, Quantity::Response(eliminated), 1.0, 10.0).is_err());
    }
}
