//! Forward simulation of a schedule on any output grid.
//!
//! The engine walks the output times in order; between two output times it steps exactly to each
//! breakpoint of the schedule (an infusion starting or stopping, a bolus) and then to the output
//! time. Coefficients are cached for the last step length, so a uniform grid costs one set of
//! exponentials in total, and every step costs the same whatever the length of the history.

use crate::EngineError;
use crate::schedule::Schedule;
use crate::system::{State, StepCoefficients, System};
use wide::f64x8;

/// Output times for a simulation.
#[derive(Clone, Debug, PartialEq)]
pub enum Grid {
    /// 0, step, 2·step, … up to and including `until` (when it falls on the grid).
    Uniform {
        /// Step, seconds (> 0).
        step_s: f64,
        /// Last time, seconds.
        until_s: f64,
    },
    /// Explicit times, seconds, non-decreasing and ≥ 0.
    Times(Vec<f64>),
}

impl Grid {
    /// A uniform grid, checked.
    pub fn uniform(step_s: f64, until_s: f64) -> Result<Grid, EngineError> {
        if !(step_s.is_finite() && step_s > 0.0) {
            return Err(EngineError::InvalidGrid(format!(
                "the output step must be a finite time above 0 s, got {step_s} s"
            )));
        }
        if !(until_s.is_finite() && until_s >= 0.0) {
            return Err(EngineError::InvalidGrid(format!(
                "the end time must be a finite time ≥ 0 s, got {until_s} s"
            )));
        }
        if until_s / step_s > 1e8 {
            return Err(EngineError::InvalidGrid(format!(
                "{until_s} s every {step_s} s is more than 100 million output rows; use a coarser step"
            )));
        }
        Ok(Grid::Uniform { step_s, until_s })
    }

    /// The output times.
    pub fn times(&self) -> Vec<f64> {
        match self {
            Grid::Uniform { step_s, until_s } => {
                // Index arithmetic rather than repeated addition, so 14 400 steps of 1 s land on 14 400.0 exactly.
                let n = (until_s / step_s + 1e-9).floor() as usize;
                (0..=n).map(|k| k as f64 * step_s).collect()
            }
            Grid::Times(times) => times.clone(),
        }
    }
}

/// Concentrations and amounts on the output grid, one column per quantity.
#[derive(Clone, Debug, PartialEq)]
pub struct Trajectory {
    /// Output times, seconds.
    pub times_s: Vec<f64>,
    /// Plasma concentration, µg/mL.
    pub cp: Vec<f64>,
    /// Each response (see [`System::response_kinds`]), in its own unit.
    pub responses: Vec<Vec<f64>>,
}

impl Trajectory {
    /// The effect-site concentration of the PK model, µg/mL.
    pub fn ce(&self) -> &[f64] {
        &self.responses[0]
    }
}

/// Walks a schedule forward, reusing step coefficients when the step length repeats.
#[derive(Debug)]
pub struct Stepper<'a> {
    system: &'a System,
    schedule: &'a Schedule,
    breakpoints: Vec<f64>,
    next_breakpoint: usize,
    next_bolus: usize,
    state: State,
    t_s: f64,
    rate_mg_per_s: f64,
    cached: Option<StepCoefficients>,
}

impl<'a> Stepper<'a> {
    /// Starts at time 0 with no drug; boluses at time 0 are given at once.
    pub fn new(system: &'a System, schedule: &'a Schedule) -> Stepper<'a> {
        let mut stepper = Stepper {
            system,
            schedule,
            breakpoints: schedule.breakpoints(),
            next_breakpoint: 0,
            next_bolus: 0,
            state: State::EMPTY,
            t_s: 0.0,
            rate_mg_per_s: 0.0,
            cached: None,
        };
        stepper.cross_breakpoints_at_current_time();
        stepper
    }

    /// The current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The current time, seconds.
    pub fn time_s(&self) -> f64 {
        self.t_s
    }

    /// The infusion rate in force now, mg/s.
    pub fn rate_mg_per_s(&self) -> f64 {
        self.rate_mg_per_s
    }

    fn cross_breakpoints_at_current_time(&mut self) {
        while self.next_breakpoint < self.breakpoints.len()
            && self.breakpoints[self.next_breakpoint] <= self.t_s
        {
            self.next_breakpoint += 1;
        }
        let boluses = self.schedule.boluses();
        while self.next_bolus < boluses.len() && boluses[self.next_bolus].at_s <= self.t_s {
            self.system
                .bolus(&mut self.state, boluses[self.next_bolus].amount_mg);
            self.next_bolus += 1;
        }
        self.rate_mg_per_s = self.schedule.rate_after(self.t_s);
    }

    fn step_to(&mut self, t_s: f64) {
        let dt = t_s - self.t_s;
        if dt > 0.0 {
            let co = match self.cached {
                Some(co) if co.dt == dt => co,
                _ => {
                    let co = self.system.coefficients(dt);
                    self.cached = Some(co);
                    co
                }
            };
            self.system.step(&mut self.state, &co, self.rate_mg_per_s);
        }
        self.t_s = t_s;
    }

    /// Moves to `t_s` with `state`, computed elsewhere for a stretch without breakpoints.
    pub(crate) fn jump(&mut self, t_s: f64, state: State) {
        self.t_s = t_s;
        self.state = state;
    }

    /// Advances to `t_s` (≥ the current time), crossing every breakpoint on the way.
    pub fn advance_to(&mut self, t_s: f64) {
        while self.next_breakpoint < self.breakpoints.len() && self.breakpoints[self.next_breakpoint] <= t_s {
            let b = self.breakpoints[self.next_breakpoint];
            // Sub-steps to breakpoints use their own coefficients without evicting the grid step's.
            let dt = b - self.t_s;
            if dt > 0.0 {
                match self.cached {
                    Some(co) if co.dt == dt => self.system.step(&mut self.state, &co, self.rate_mg_per_s),
                    _ => self.system.advance(&mut self.state, dt, self.rate_mg_per_s),
                }
            }
            self.t_s = b;
            self.cross_breakpoints_at_current_time();
        }
        self.step_to(t_s);
    }
}

/// Simulates `schedule` from time 0 (no drug) and reports every response on `grid`.
pub fn simulate(system: &System, schedule: &Schedule, grid: &Grid) -> Result<Trajectory, EngineError> {
    let times = grid.times();
    check_times(&times)?;
    let n_responses = system.response_kinds().len();
    let mut cp = Vec::with_capacity(times.len());
    let mut responses = vec![Vec::with_capacity(times.len()); n_responses];
    let mut stepper = Stepper::new(system, schedule);
    for &t in &times {
        stepper.advance_to(t);
        let state = stepper.state();
        cp.push(state.cp());
        for (r, column) in responses.iter_mut().enumerate() {
            column.push(state.response(r));
        }
    }
    Ok(Trajectory {
        times_s: times,
        cp,
        responses,
    })
}

/// Simulates and reports only Cp and Ce: the lean path used by cohorts and benchmarks.
///
/// On a uniform grid, each stretch of output times with a constant input is written from the
/// closed form Cp(k) = Σ Sᵢ + Σ Dᵢ rᵢᵏ and Ce(k) = Y_ss + Σ Fᵢ rᵢᵏ + F_e r_eᵏ (rᵢ = e^{−λᵢΔ},
/// r_e = e^{−ke0·Δ}), eight output times at a time as one vector of independent lanes
/// (`wide::f64x8`). The intervals that contain a breakpoint, and models whose ke0 nearly equals a
/// disposition rate constant (where Fᵢ loses precision), use the step-by-step update instead.
pub fn simulate_cp_ce(
    system: &System,
    schedule: &Schedule,
    grid: &Grid,
    cp: &mut Vec<f64>,
    ce: &mut Vec<f64>,
) -> Result<(), EngineError> {
    cp.clear();
    ce.clear();
    let mut stepper = Stepper::new(system, schedule);
    let Grid::Uniform { step_s, until_s } = *grid else {
        let times = grid.times();
        check_times(&times)?;
        for &t in &times {
            stepper.advance_to(t);
            cp.push(stepper.state().cp());
            ce.push(stepper.state().response(0));
        }
        return Ok(());
    };
    // A uniform grid is valid by construction (`Grid::uniform`); its times are k·step.
    let n_times = (until_s / step_s + 1e-9).floor() as usize + 1;
    cp.reserve(n_times);
    ce.reserve(n_times);
    let co = system.coefficients(step_s);
    stepper.cached = Some(co);
    let breakpoints = schedule.breakpoints();
    let mut next_bp = 0;
    cp.push(stepper.state().cp());
    ce.push(stepper.state().response(0));
    let mut out = LeanOutputs {
        cp,
        ce,
        staging: Staging {
            cp: [0.0; CHUNK],
            ce: [0.0; CHUNK],
        },
    };
    let mut k = 0;
    while k + 1 < n_times {
        let t_k = k as f64 * step_s;
        while next_bp < breakpoints.len() && breakpoints[next_bp] <= t_k {
            next_bp += 1;
        }
        // Outputs k+1..=last lie strictly before the next breakpoint, so the input is constant.
        let last = match breakpoints.get(next_bp) {
            Some(&limit) => {
                // The largest index with k·step < limit, guarded against rounding at the boundary.
                let mut last = ((limit / step_s).ceil() as usize)
                    .saturating_sub(1)
                    .min(n_times - 1);
                while last > k && last as f64 * step_s >= limit {
                    last -= 1;
                }
                while last + 1 < n_times && ((last + 1) as f64 * step_s) < limit {
                    last += 1;
                }
                last
            }
            None => n_times - 1,
        };
        if last > k {
            let state = *stepper.state();
            let end = closed_form_run(system, &co, &state, stepper.rate_mg_per_s(), last - k, &mut out);
            stepper.jump(last as f64 * step_s, end);
            k = last;
        } else {
            stepper.advance_to((k + 1) as f64 * step_s);
            out.cp.push(stepper.state().cp());
            out.ce.push(stepper.state().response(0));
            k += 1;
        }
    }
    Ok(())
}

/// Output times computed together: one vector of independent lanes (eight f64 fill an AVX-512
/// register, or two AVX2 registers), so the running powers stay in registers.
const LANES: usize = 8;

/// Output times staged on the stack before they are appended to the caller's vectors: large
/// enough that the append (one copy per chunk) costs little, small enough to stay in L1.
const CHUNK: usize = 32 * LANES;

/// The staging buffers, aligned to the cache line so that no vector store straddles two lines.
/// Made once per simulation and reused by every constant-input stretch (a TCI schedule has
/// hundreds of short ones).
#[repr(align(64))]
struct Staging {
    cp: [f64; CHUNK],
    ce: [f64; CHUNK],
}

/// Where the lean path appends its outputs, with its staging buffers.
struct LeanOutputs<'a> {
    cp: &'a mut Vec<f64>,
    ce: &'a mut Vec<f64>,
    staging: Staging,
}

/// Appends Cp and Ce after 1, 2, … `n_steps` steps of `co.dt` at constant `rate` from `state`,
/// and returns the state after the last step (from the same closed form).
fn closed_form_run(
    system: &System,
    co: &StepCoefficients,
    state: &State,
    rate: f64,
    n_steps: usize,
    out: &mut LeanOutputs<'_>,
) -> State {
    if n_steps == 0 {
        return *state;
    }
    let d = system.disposition();
    let re = co.response_decay[0];
    let near_degenerate = (0..d.n).any(|i| (co.decay[i] - re).abs() < 1e-3) || re >= 1.0;
    if near_degenerate {
        let mut s = *state;
        for _ in 0..n_steps {
            system.step(&mut s, co, rate);
            out.cp.push(s.cp());
            out.ce.push(s.response(0));
        }
        return s;
    }
    // Modes: steady contribution Sᵢ and departure Dᵢ; the effect site's particular solution.
    let mut r = [0.0; 3];
    let mut dep = [0.0; 3];
    let mut effect_of_mode = [0.0; 3];
    let mut cp_steady = 0.0;
    let mut ce_steady_numerator = rate * co.response_input[0];
    for i in 0..d.n {
        let steady = rate * co.input[i] / (1.0 - co.decay[i]);
        r[i] = co.decay[i];
        dep[i] = state.c[i] - steady;
        cp_steady += steady;
        ce_steady_numerator += steady * co.response_from_mode[0][i];
        effect_of_mode[i] = dep[i] * co.response_from_mode[0][i] / (r[i] - re);
    }
    let ce_steady = ce_steady_numerator / (1.0 - re);
    let effect_own = state.y[0] - ce_steady - effect_of_mode.iter().sum::<f64>();

    // Powers r^(lane+1) of each mode, one vector per mode, advanced by r^LANES per block: the
    // running state stays in registers. Sums are multiply-adds (fused, one rounding each, where the
    // machine has FMA).
    let rates = [r[0], r[1], r[2], re];
    let mut powers = [f64x8::splat(0.0); 4];
    let mut stride = [f64x8::splat(1.0); 4];
    for (m, &rm) in rates.iter().enumerate() {
        let mut lanes = [0.0; LANES];
        let mut p = 1.0;
        for lane in &mut lanes {
            p *= rm;
            *lane = p;
        }
        powers[m] = f64x8::new(lanes);
        stride[m] = f64x8::splat(p);
    }
    let cp_steady_v = f64x8::splat(cp_steady);
    let ce_steady_v = f64x8::splat(ce_steady);
    let dep_v = dep.map(f64x8::splat);
    let effect_v = effect_of_mode.map(f64x8::splat);
    let effect_own_v = f64x8::splat(effect_own);
    let mut remaining = n_steps;
    // Advance before each block but the first, so that after the loop `powers` holds the last
    // block's values, from which the end state is taken (the same running products as the last
    // output; r⁰ is never needed, and a mode may have r = 0).
    let mut first_block = true;
    let mut last_take = 0;
    while remaining > 0 {
        let take = remaining.min(CHUNK);
        for (cp_block, ce_block) in out
            .staging
            .cp
            .chunks_exact_mut(LANES)
            .zip(out.staging.ce.chunks_exact_mut(LANES))
            .take(take.div_ceil(LANES))
        {
            if !first_block {
                for m in 0..4 {
                    powers[m] *= stride[m];
                }
            }
            first_block = false;
            let [p0, p1, p2, pe] = powers;
            let cp = dep_v[2].mul_add(p2, dep_v[1].mul_add(p1, dep_v[0].mul_add(p0, cp_steady_v)));
            let ce = effect_own_v.mul_add(
                pe,
                effect_v[2].mul_add(p2, effect_v[1].mul_add(p1, effect_v[0].mul_add(p0, ce_steady_v))),
            );
            cp_block.copy_from_slice(cp.as_array());
            ce_block.copy_from_slice(ce.as_array());
        }
        out.cp.extend_from_slice(&out.staging.cp[..take]);
        out.ce.extend_from_slice(&out.staging.ce[..take]);
        remaining -= take;
        last_take = take;
    }
    let last_lane = (last_take - 1) % LANES;
    let final_powers = powers.map(|p| p.as_array()[last_lane]);
    let mut end = *state;
    let mut y = ce_steady + effect_own * final_powers[3];
    for i in 0..d.n {
        end.c[i] = (state.c[i] - dep[i]) + dep[i] * final_powers[i];
        y += effect_of_mode[i] * final_powers[i];
    }
    end.y[0] = y;
    // Other responses (peripheral amounts, metabolite, …) are not reported on this lean path; they
    // are advanced exactly so that the state stays complete.
    if system.response_kinds().len() > 1 {
        let mut full = *state;
        system.advance(&mut full, n_steps as f64 * co.dt, rate);
        end.y[1..].copy_from_slice(&full.y[1..]);
    }
    end
}

fn check_times(times: &[f64]) -> Result<(), EngineError> {
    if let Some(bad) = times.iter().find(|t| !(t.is_finite() && **t >= 0.0)) {
        return Err(EngineError::InvalidGrid(format!(
            "output times must be finite and ≥ 0 s, got {bad} s"
        )));
    }
    if let Some(pair) = times.windows(2).find(|p| p[1] < p[0]) {
        return Err(EngineError::InvalidGrid(format!(
            "output times must not go backwards, got {} s after {} s",
            pair[1], pair[0]
        )));
    }
    Ok(())
}
