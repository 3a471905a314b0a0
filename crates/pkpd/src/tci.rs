//! Target-controlled infusion: the pump rate, every update interval, that brings the plasma or the
//! effect-site concentration to a target.
//!
//! * **Plasma targeting** chooses, at each update instant, the constant rate that makes Cp equal the
//!   target at the end of the interval (the discrete-time rule of STANPUMP-style controllers; what
//!   opentiva's maintenance infusions do):
//!   R = (C_T − Cp_free(Δ)) / Σᵢ (Aᵢ/λᵢ)(1 − e^{−λᵢΔ}), clamped to [0, R_max].
//! * **Effect-site targeting** (Shafer & Gregg 1992, J Pharmacokinet Biopharm 20:147,
//!   doi 10.1007/BF01070999) chooses the rate for the coming interval such that the *peak* of the
//!   effect-site concentration that follows equals the target: with Ce_free(s) the prediction
//!   without further drug and u_e(s) the effect-site response to a unit rate held for one interval,
//!   R = min over s > 0 of (C_T − Ce_free(s)) / u_e(s), clamped to [0, R_max]. Applied at every
//!   interval this gives the fast rise without overshoot and then maintenance.
//!
//! Both use the same exact state as the forward solver, so replaying the emitted schedule through
//! [`crate::simulate::simulate`] reproduces the controller's own predictions.

use ketaflow_units::{MgPerMl, MlPerHour};

use crate::EngineError;
use crate::recovery::Quantity;
use crate::schedule::{Schedule, Segment};
use crate::system::{State, System, phi};

/// Which concentration the controller drives to the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetSite {
    /// Plasma (central compartment).
    Plasma,
    /// The PK model's effect site.
    EffectSite,
}

/// A target that takes effect at a time and holds until the next one. A target of 0 stops the pump.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TargetStep {
    /// From when, seconds.
    pub from_s: f64,
    /// Target concentration, µg/mL.
    pub target_ug_per_ml: f64,
}

/// What the controller is asked to do.
#[derive(Clone, Debug, PartialEq)]
pub struct TciSettings {
    /// Plasma or effect site.
    pub site: TargetSite,
    /// Targets, sorted by time; the first starts at 0. The pump stops at `until_s`.
    pub targets: Vec<TargetStep>,
    /// End of the controlled period, seconds; no drug is given after it.
    pub until_s: f64,
    /// Pump update interval, seconds (10 s is usual).
    pub interval_s: f64,
    /// Syringe or bag concentration.
    pub syringe: MgPerMl,
    /// The pump's maximum rate.
    pub max_rate: MlPerHour,
}

/// One pump interval as the controller set it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TciRow {
    /// Start, seconds.
    pub start_s: f64,
    /// End, seconds.
    pub end_s: f64,
    /// The target in force, µg/mL.
    pub target_ug_per_ml: f64,
    /// Rate, mg/h.
    pub rate_mg_per_h: f64,
    /// Pump rate, mL/h.
    pub rate_ml_per_h: f64,
    /// Predicted Cp at the end of the interval, µg/mL.
    pub cp_end: f64,
    /// Predicted Ce at the end of the interval, µg/mL.
    pub ce_end: f64,
}

/// The pump schedule and the controller's predictions.
#[derive(Clone, Debug, PartialEq)]
pub struct TciResult {
    /// One row per update interval.
    pub rows: Vec<TciRow>,
    /// The same as a schedule for the forward solver.
    pub schedule: Schedule,
    /// Total drug given, mg.
    pub total_mg: f64,
}

/// Why a TCI run cannot be made.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TciError {
    /// A setting is outside its range.
    #[error("{0}")]
    InvalidSetting(String),
    /// The pump cannot hold the target even at its maximum rate.
    #[error(
        "target {target} µg/mL cannot be held: at the maximum pump rate of {max_ml_per_h} mL/h of {syringe_mg_per_ml} mg/mL ({max_mg_per_h:.1} mg/h) the steady-state concentration of this patient's model is {steady_state:.4} µg/mL; lower the target, use a stronger syringe or raise the maximum rate"
    )]
    Unreachable {
        /// The target, µg/mL.
        target: f64,
        /// Maximum pump rate, mL/h.
        max_ml_per_h: f64,
        /// Syringe concentration, mg/mL.
        syringe_mg_per_ml: f64,
        /// The maximum rate in mg/h.
        max_mg_per_h: f64,
        /// The steady-state concentration at that rate.
        steady_state: f64,
    },
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Once Ce is within this fraction of the target and no longer rising (Cp ≤ Ce, so its first peak
/// has passed), effect-site control switches from the peak rule (approach without overshoot) to
/// holding Cp at the target, until the target changes (as opentiva and STANPUMP do). Without the
/// switch, peak-limited control leaves Ce rippling ~0.4 % below the target while the peripheral
/// compartments fill.
const AT_TARGET_TOLERANCE: f64 = 1e-2;

/// Precomputed probes for the effect-site rule: offsets after the update instant and the basis of
/// Ce_free and u_e at each, so that one update is a few hundred multiply-adds.
#[derive(Debug)]
struct EffectProbes {
    offsets_s: Vec<f64>,
    /// e^{−k s} at each offset (multiplies the current Ce).
    decay: Vec<f64>,
    /// g·φ(λᵢ, k, s) at each offset (multiplies mode i's plasma contribution).
    from_mode: Vec<[f64; 3]>,
    /// Effect-site response to 1 mg/s held for one interval, at each offset.
    unit: Vec<f64>,
    /// State after 1 mg/s held for one interval, from empty.
    unit_state_at_interval: State,
}

impl EffectProbes {
    fn new(system: &System, interval_s: f64) -> EffectProbes {
        let k = system.ke0_per_s();
        let d = system.disposition();
        // Probes: eight per interval over the first two intervals (the peak can fall inside the
        // interval when ke0 is fast), then a geometric grid (3 %) to well past the latest peak.
        let peak = (0..d.n)
            .map(|i| {
                let l = d.lambda[i];
                if (l - k).abs() < 1e-12 * l.max(k) {
                    1.0 / k
                } else {
                    (l / k).ln() / (l - k)
                }
            })
            .fold(0.0, f64::max);
        let horizon = (4.0 * peak).max(4.0 * interval_s) + 4.0 * interval_s;
        let mut offsets: Vec<f64> = (1..=8).map(|j| interval_s * j as f64 / 4.0).collect();
        let mut s = 2.0 * interval_s;
        while s < horizon {
            s *= 1.1;
            offsets.push(s);
        }
        let mut unit_state = State::EMPTY;
        system.advance(&mut unit_state, interval_s, 1.0);
        let unit = offsets
            .iter()
            .map(|&s| unit_response(system, &unit_state, interval_s, s))
            .collect();
        let gain = system.responses()[0].gain;
        let from_mode = offsets
            .iter()
            .map(|&s| {
                let mut row = [0.0; 3];
                for (i, value) in row.iter_mut().enumerate().take(d.n) {
                    *value = gain * phi(d.lambda[i], k, s);
                }
                row
            })
            .collect();
        EffectProbes {
            decay: offsets.iter().map(|&s| (-k * s).exp()).collect(),
            offsets_s: offsets,
            from_mode,
            unit,
            unit_state_at_interval: unit_state,
        }
    }
}

/// Ce at offset `s` after a unit rate held for `interval_s` from an empty state.
fn unit_response(system: &System, unit_state: &State, interval_s: f64, s: f64) -> f64 {
    if s <= interval_s {
        let mut state = State::EMPTY;
        system.advance(&mut state, s, 1.0);
        state.response(0)
    } else {
        system.response_free(unit_state, 0, s - interval_s)
    }
}

/// The largest rate (mg/s) for the coming interval whose effect-site peak does not exceed `target`.
fn effect_site_rate(
    system: &System,
    probes: &EffectProbes,
    state: &State,
    target: f64,
    interval_s: f64,
) -> f64 {
    let n = system.disposition().n;
    let mut best = f64::INFINITY;
    let mut best_j = 0;
    for j in 0..probes.offsets_s.len() {
        let mut free = state.y[0] * probes.decay[j];
        for i in 0..n {
            free += state.c[i] * probes.from_mode[j][i];
        }
        let h = (target - free) / probes.unit[j];
        if h < best {
            best = h;
            best_j = j;
        }
    }
    if best <= 0.0 {
        return 0.0;
    }
    // Refine between the neighbouring probes by golden-section search on the exact constraint.
    // The constraint is flat at its minimum, so locating it to a millisecond makes the rate exact
    // to ~1e-9; the best value seen is kept, so the rate never exceeds a checked constraint.
    let h_at = |s: f64| {
        let free = system.response_free(state, 0, s);
        (target - free) / unit_response(system, &probes.unit_state_at_interval, interval_s, s)
    };
    let lo_idx = best_j.saturating_sub(1);
    let hi_idx = (best_j + 1).min(probes.offsets_s.len() - 1);
    let (mut a, mut b) = (
        if best_j == 0 {
            0.0
        } else {
            probes.offsets_s[lo_idx]
        },
        probes.offsets_s[hi_idx],
    );
    let ratio = 0.5 * (5f64.sqrt() - 1.0);
    let mut x1 = b - ratio * (b - a);
    let mut x2 = a + ratio * (b - a);
    let (mut f1, mut f2) = (h_at(x1), h_at(x2));
    while b - a > 1e-3 {
        if f1 < f2 {
            b = x2;
            x2 = x1;
            f2 = f1;
            x1 = b - ratio * (b - a);
            f1 = h_at(x1);
        } else {
            a = x1;
            x1 = x2;
            f1 = f2;
            x2 = a + ratio * (b - a);
            f2 = h_at(x2);
        }
        best = best.min(f1).min(f2);
    }
    best.max(0.0)
}

fn check_settings(system: &System, settings: &TciSettings) -> Result<(), TciError> {
    let invalid = |m: String| Err(TciError::InvalidSetting(m));
    if !(settings.interval_s.is_finite() && (1.0..=600.0).contains(&settings.interval_s)) {
        return invalid(format!(
            "update interval {} s is not allowed: use 1 to 600 s",
            settings.interval_s
        ));
    }
    if !(settings.until_s.is_finite() && settings.until_s > 0.0 && settings.until_s <= 1.0e6) {
        return invalid(format!(
            "TCI duration {} s is not allowed: use above 0 up to 1,000,000 s",
            settings.until_s
        ));
    }
    if settings.max_rate.get() <= 0.0 {
        return invalid("the maximum pump rate must be above 0 mL/h".into());
    }
    if settings.targets.is_empty() || settings.targets[0].from_s != 0.0 {
        return invalid("the first target must start at time 0".into());
    }
    for pair in settings.targets.windows(2) {
        if pair[1].from_s <= pair[0].from_s {
            return invalid(format!(
                "target changes must be in time order; {} s comes after {} s",
                pair[1].from_s, pair[0].from_s
            ));
        }
    }
    let max_mg_per_s = (settings.max_rate * settings.syringe).mg_per_second();
    let clearance = system.disposition().clearance_l_per_s();
    for step in &settings.targets {
        if !(step.target_ug_per_ml.is_finite() && (0.0..=100.0).contains(&step.target_ug_per_ml)) {
            return invalid(format!(
                "target {} µg/mL is not allowed: use 0 (stop) to 100 µg/mL",
                step.target_ug_per_ml
            ));
        }
        let steady_state = max_mg_per_s / clearance;
        if step.target_ug_per_ml > steady_state {
            return Err(TciError::Unreachable {
                target: step.target_ug_per_ml,
                max_ml_per_h: settings.max_rate.get(),
                syringe_mg_per_ml: settings.syringe.get(),
                max_mg_per_h: max_mg_per_s * 3600.0,
                steady_state,
            });
        }
    }
    Ok(())
}

/// Runs the controller from an empty patient and returns the pump schedule in mg/h and mL/h.
pub fn run_tci(system: &System, settings: &TciSettings) -> Result<TciResult, TciError> {
    check_settings(system, settings)?;
    let interval = settings.interval_s;
    let max_mg_per_s = (settings.max_rate * settings.syringe).mg_per_second();
    let syringe = settings.syringe.get();

    // Update instants: every interval from 0, restarted at each target change, ending at `until_s`.
    let mut instants = Vec::new();
    for (idx, step) in settings.targets.iter().enumerate() {
        let end = settings
            .targets
            .get(idx + 1)
            .map_or(settings.until_s, |next| next.from_s)
            .min(settings.until_s);
        let mut t = step.from_s;
        while t < end - 1e-9 {
            instants.push((t, (t + interval).min(end), step.target_ug_per_ml));
            t += interval;
        }
    }

    let full = system.coefficients(interval);
    let input_gain: f64 = full.input.iter().sum();
    let probes = (settings.site == TargetSite::EffectSite).then(|| EffectProbes::new(system, interval));
    let mut state = State::EMPTY;
    // The target whose maintenance phase has begun (NaN: none yet). Sticky until the target changes.
    let mut maintained_target = f64::NAN;
    let mut rows = Vec::with_capacity(instants.len());
    let mut segments = Vec::with_capacity(instants.len());
    for (start, end, target) in instants {
        let dt = end - start;
        let partial;
        let co = if dt == interval {
            &full
        } else {
            partial = system.coefficients(dt);
            &partial
        };
        let rate = if target == 0.0 {
            0.0
        } else {
            match settings.site {
                TargetSite::Plasma => {
                    let gain = if dt == interval {
                        input_gain
                    } else {
                        co.input.iter().sum()
                    };
                    let free: f64 = (0..system.disposition().n)
                        .map(|i| state.c[i] * co.decay[i])
                        .sum();
                    ((target - free) / gain).clamp(0.0, max_mg_per_s)
                }
                TargetSite::EffectSite => {
                    let probes = probes.as_ref().expect("built for effect-site targeting");
                    let ce_now = state.response(0);
                    if target != maintained_target
                        && ce_now >= target * (1.0 - AT_TARGET_TOLERANCE)
                        && state.cp() <= ce_now
                    {
                        maintained_target = target;
                    }
                    if target == maintained_target {
                        // Maintenance: hold Cp at the target; Ce then settles on it from below
                        // without ringing (holding Ce itself at each instant makes the pump oscillate).
                        let gain = if dt == interval {
                            input_gain
                        } else {
                            co.input.iter().sum()
                        };
                        let free: f64 = (0..system.disposition().n)
                            .map(|i| state.c[i] * co.decay[i])
                            .sum();
                        ((target - free) / gain).clamp(0.0, max_mg_per_s)
                    } else {
                        // Approach: the largest rate whose effect-site peak is the target. A short
                        // final interval uses the full-interval rule: it only ends early.
                        effect_site_rate(system, probes, &state, target, interval).min(max_mg_per_s)
                    }
                }
            }
        };
        system.step(&mut state, co, rate);
        rows.push(TciRow {
            start_s: start,
            end_s: end,
            target_ug_per_ml: target,
            rate_mg_per_h: rate * 3600.0,
            rate_ml_per_h: rate * 3600.0 / syringe,
            cp_end: state.cp(),
            ce_end: state.response(0),
        });
        if rate > 0.0 {
            segments.push(Segment {
                start_s: start,
                end_s: end,
                rate_mg_per_s: rate,
            });
        }
    }
    let schedule = Schedule::new(segments, vec![]).map_err(|e| TciError::InvalidSetting(e.to_string()))?;
    let total_mg = schedule.total_mg();
    Ok(TciResult {
        rows,
        schedule,
        total_mg,
    })
}

/// The quantity a TCI site corresponds to, for recovery searches.
pub fn site_quantity(site: TargetSite) -> Quantity {
    match site {
        TargetSite::Plasma => Quantity::Plasma,
        TargetSite::EffectSite => Quantity::Response(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{Disposition, kamp_typical};
    use crate::simulate::{Grid, simulate};

    fn kamp() -> System {
        System::new(Disposition::new(&kamp_typical()).unwrap(), 2.791 / 60.0)
    }

    fn settings(site: TargetSite) -> TciSettings {
        TciSettings {
            site,
            targets: vec![TargetStep {
                from_s: 0.0,
                target_ug_per_ml: 0.2,
            }],
            until_s: 3600.0,
            interval_s: 10.0,
            syringe: MgPerMl::new(10.0).unwrap(),
            max_rate: MlPerHour::new(1200.0).unwrap(),
        }
    }

    #[test]
    fn plasma_targeting_hits_the_target_at_every_update_once_reached() {
        let system = kamp();
        let result = run_tci(&system, &settings(TargetSite::Plasma)).unwrap();
        assert_eq!(result.rows.len(), 360);
        // 1200 mL/h of 10 mg/mL reaches 0.2 µg/mL within the first interval for 25 L.
        for row in &result.rows {
            assert!((row.cp_end - 0.2).abs() < 1e-12, "{row:?}");
            assert!(row.rate_ml_per_h >= 0.0 && row.rate_ml_per_h <= 1200.0 + 1e-9);
        }
    }

    #[test]
    fn replaying_the_schedule_reproduces_the_controller_predictions() {
        let system = kamp();
        for site in [TargetSite::Plasma, TargetSite::EffectSite] {
            let result = run_tci(&system, &settings(site)).unwrap();
            let times: Vec<f64> = result.rows.iter().map(|r| r.end_s).collect();
            let replay = simulate(&system, &result.schedule, &Grid::Times(times)).unwrap();
            for (row, (cp, ce)) in result.rows.iter().zip(replay.cp.iter().zip(replay.ce())) {
                assert!(
                    (row.cp_end - cp).abs() < 1e-12,
                    "{site:?} Cp at {}: {} vs {}",
                    row.end_s,
                    row.cp_end,
                    cp
                );
                assert!((row.ce_end - ce).abs() < 1e-12, "{site:?} Ce at {}", row.end_s);
            }
        }
    }

    #[test]
    fn effect_site_targeting_reaches_the_target_at_its_first_peak_then_holds_it() {
        let system = kamp();
        let result = run_tci(&system, &settings(TargetSite::EffectSite)).unwrap();
        let dense = simulate(&system, &result.schedule, &Grid::uniform(0.5, 3600.0).unwrap()).unwrap();
        // Approach: Ce rises to the target at its first peak, about a minute in (pharmacology.md §4:
        // ≈ 66 s with opentiva's ke0), without overshoot.
        let first_at_target = dense.ce().iter().position(|c| *c >= 0.2 * (1.0 - 1e-3)).unwrap();
        let t = dense.times_s[first_at_target];
        assert!((40.0..=90.0).contains(&t), "reached target at {t} s");
        let approach_max = dense.ce()[..first_at_target + 40]
            .iter()
            .copied()
            .fold(0.0, f64::max);
        assert!(
            approach_max <= 0.2 * (1.0 + 1e-6),
            "approach overshoot: {approach_max}"
        );
        assert!(
            approach_max >= 0.2 * (1.0 - 1e-4),
            "first peak below target: {approach_max}"
        );
        // Plasma overshoots the target early on: that is how the effect site gets there fast.
        let max_cp = dense.cp.iter().copied().fold(0.0, f64::max);
        assert!(max_cp > 0.22, "{max_cp}");
        // Maintenance: Cp is held at the target at every update instant and Ce settles on it from
        // below: never above the target, within 0.1 % of it from two minutes on.
        let max_ce = dense.ce().iter().copied().fold(0.0, f64::max);
        assert!(max_ce <= 0.2 * (1.0 + 1e-6), "overshoot: {max_ce}");
        for row in result.rows.iter().filter(|r| r.start_s >= 120.0) {
            assert!(
                (row.cp_end - 0.2).abs() < 1e-12,
                "Cp at {} s: {}",
                row.end_s,
                row.cp_end
            );
            assert!(
                (row.ce_end - 0.2).abs() < 0.2 * 1e-3,
                "Ce at {} s: {}",
                row.end_s,
                row.ce_end
            );
        }
    }

    #[test]
    fn a_target_decrease_pauses_the_pump_and_a_zero_target_stops_it() {
        let system = kamp();
        let mut s = settings(TargetSite::Plasma);
        s.targets.push(TargetStep {
            from_s: 1200.0,
            target_ug_per_ml: 0.1,
        });
        s.targets.push(TargetStep {
            from_s: 2400.0,
            target_ug_per_ml: 0.0,
        });
        let result = run_tci(&system, &s).unwrap();
        let first_after_decrease = result.rows.iter().find(|r| r.start_s == 1200.0).unwrap();
        assert_eq!(first_after_decrease.rate_mg_per_h, 0.0);
        assert!(
            result
                .rows
                .iter()
                .filter(|r| r.start_s >= 2400.0)
                .all(|r| r.rate_mg_per_h == 0.0)
        );
        // Cp returns to the new target once it has fallen to it, and stays there.
        let at_target = result
            .rows
            .iter()
            .filter(|r| r.start_s >= 1200.0 && r.start_s < 2400.0 && r.rate_mg_per_h > 0.0);
        for row in at_target {
            assert!((row.cp_end - 0.1).abs() < 1e-12);
        }
    }

    #[test]
    fn an_unreachable_target_is_an_error_that_names_the_numbers() {
        let system = kamp();
        let mut s = settings(TargetSite::Plasma);
        s.max_rate = MlPerHour::new(10.0).unwrap();
        // 10 mL/h × 10 mg/mL = 100 mg/h; CL 84 L/h → steady state 1.19 µg/mL.
        s.targets[0].target_ug_per_ml = 2.0;
        let err = run_tci(&system, &s).unwrap_err().to_string();
        assert!(err.starts_with("target 2 µg/mL cannot be held"), "{err}");
        assert!(err.contains("1.1905 µg/mL"), "{err}");
    }

    #[test]
    fn bad_settings_are_rejected() {
        let system = kamp();
        let mut s = settings(TargetSite::Plasma);
        s.interval_s = 0.0;
        assert!(
            run_tci(&system, &s)
                .unwrap_err()
                .to_string()
                .contains("update interval 0 s")
        );
        let mut s = settings(TargetSite::Plasma);
        s.targets[0].target_ug_per_ml = f64::NAN;
        assert!(run_tci(&system, &s).is_err());
        let mut s = settings(TargetSite::Plasma);
        s.targets[0].from_s = 5.0;
        assert!(run_tci(&system, &s).is_err());
    }
}
