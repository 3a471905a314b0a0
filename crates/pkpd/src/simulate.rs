//! Forward simulation of a schedule on any output grid.
//!
//! The engine walks the output times in order; between two output times it steps exactly to each
//! breakpoint of the schedule (an infusion starting or stopping, a bolus) and then to the output
//! time. Coefficients are cached for the last step length, so a uniform grid costs one set of
//! exponentials in total, and every step costs the same whatever the length of the history.

use crate::schedule::Schedule;
use crate::system::{State, StepCoefficients, System};
use crate::EngineError;

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
            return Err(EngineError::InvalidGrid(format!("the output step must be a finite time above 0 s, got {step_s} s")));
        }
        if !(until_s.is_finite() && until_s >= 0.0) {
            return Err(EngineError::InvalidGrid(format!("the end time must be a finite time ≥ 0 s, got {until_s} s")));
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
        while self.next_breakpoint < self.breakpoints.len() && self.breakpoints[self.next_breakpoint] <= self.t_s {
            self.next_breakpoint += 1;
        }
        let boluses = self.schedule.boluses();
        while self.next_bolus < boluses.len() && boluses[self.next_bolus].at_s <= self.t_s {
            self.system.bolus(&mut self.state, boluses[self.next_bolus].amount_mg);
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
    Ok(Trajectory { times_s: times, cp, responses })
}

/// Simulates and reports only Cp and Ce: the lean path used by cohorts and benchmarks.
pub fn simulate_cp_ce(system: &System, schedule: &Schedule, grid: &Grid, cp: &mut Vec<f64>, ce: &mut Vec<f64>) -> Result<(), EngineError> {
    let times = grid.times();
    check_times(&times)?;
    cp.clear();
    ce.clear();
    let mut stepper = Stepper::new(system, schedule);
    for &t in &times {
        stepper.advance_to(t);
        cp.push(stepper.state().cp());
        ce.push(stepper.state().response(0));
    }
    Ok(())
}

fn check_times(times: &[f64]) -> Result<(), EngineError> {
    if let Some(bad) = times.iter().find(|t| !(t.is_finite() && **t >= 0.0)) {
        return Err(EngineError::InvalidGrid(format!("output times must be finite and ≥ 0 s, got {bad} s")));
    }
    if let Some(pair) = times.windows(2).find(|p| p[1] < p[0]) {
        return Err(EngineError::InvalidGrid(format!(
            "output times must not go backwards, got {} s after {} s",
            pair[1], pair[0]
        )));
    }
    Ok(())
}
