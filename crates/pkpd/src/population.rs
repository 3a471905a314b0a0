//! Population prediction: many virtual patients with log-normal inter-individual variability, and
//! percentile bands of their plasma and effect-site concentrations.
//!
//! * Each parameter θ (CL, V1, Q2, V2, Q3, V3) is drawn as θᵢ = θ_typical·exp(ηᵢ), η ~ N(0, ω²).
//!   A published coefficient of variation is converted with ω² = ln(1 + CV²) (the exact log-normal
//!   relation); the source of every ω is carried in [`VariabilitySource`]. ke0 is not varied.
//! * Subject i draws from its own ChaCha8 stream (seed, stream i), so the result depends on the seed
//!   only, not on the number of threads or the order in which work is scheduled.
//! * Subjects are advanced in lockstep over blocks of output times; after each block the
//!   percentiles of every time point are taken and the block is dropped. Memory therefore grows
//!   with the number of subjects (one small state per subject plus one block), not with subjects ×
//!   time points.
//! * Percentiles use linear interpolation between order statistics (Hyndman & Fan 1996 type 7,
//!   the default of R and NumPy).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use wide::f64x8;

use crate::EngineError;
use crate::params::{Disposition, Mammillary};
use crate::schedule::Schedule;
use crate::system::phi;

/// Where the variability figures come from.
#[derive(Clone, Debug, PartialEq)]
pub enum VariabilitySource {
    /// Published with the model; the text names the paper and how figures were converted.
    Published(&'static str),
    /// Given by the user, not published: results must be labelled as assumed.
    Assumed {
        /// The coefficient of variation the user gave (0.3 = 30 %).
        cv: f64,
    },
    /// No variability: every subject is the typical patient.
    None,
}

/// Standard deviations ω of η for each parameter (log scale).
#[derive(Clone, Debug, PartialEq)]
pub struct Variability {
    /// ω for clearance.
    pub cl: f64,
    /// ω for V1.
    pub v1: f64,
    /// ω for (Q2, V2) and (Q3, V3).
    pub peripheral: [(f64, f64); 2],
    /// Where these come from.
    pub source: VariabilitySource,
}

/// ω from a coefficient of variation of a log-normal parameter: ω² = ln(1 + CV²).
pub fn omega_from_cv(cv: f64) -> f64 {
    (cv * cv).ln_1p().sqrt()
}

impl Variability {
    /// No variability.
    pub fn none() -> Variability {
        Variability {
            cl: 0.0,
            v1: 0.0,
            peripheral: [(0.0, 0.0); 2],
            source: VariabilitySource::None,
        }
    }

    /// The same assumed CV on every clearance and volume.
    pub fn assumed_cv(cv: f64) -> Result<Variability, EngineError> {
        if !(cv.is_finite() && (0.0..=2.0).contains(&cv)) {
            return Err(EngineError::InvalidParameter {
                name: "coefficient of variation",
                value: cv,
                allowed: "between 0 and 2 (0–200 %)",
            });
        }
        let w = omega_from_cv(cv);
        Ok(Variability {
            cl: w,
            v1: w,
            peripheral: [(w, w); 2],
            source: VariabilitySource::Assumed { cv },
        })
    }
}

/// How the population run is set up.
#[derive(Clone, Debug, PartialEq)]
pub struct PopulationSettings {
    /// Number of virtual subjects.
    pub n_subjects: usize,
    /// Seed of the random streams.
    pub seed: u64,
    /// Percentiles to report, each in (0, 100).
    pub percentiles: Vec<f64>,
    /// Output step, seconds.
    pub step_s: f64,
    /// Last output time, seconds.
    pub until_s: f64,
}

/// Percentile bands on the output grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Bands {
    /// Output times, seconds.
    pub times_s: Vec<f64>,
    /// The percentiles, as given.
    pub percentiles: Vec<f64>,
    /// Cp percentiles, `cp[p][t]`, µg/mL.
    pub cp: Vec<Vec<f64>>,
    /// Ce percentiles, `ce[p][t]`, µg/mL.
    pub ce: Vec<Vec<f64>>,
}

/// Output times per lockstep block: the memory held at once is 2 × BLOCK × subjects values.
const BLOCK: usize = 32;
/// Subjects per parallel task.
const CHUNK: usize = 2048;

/// One subject's modes, step coefficients and state: the whole per-subject memory.
#[derive(Clone, Copy, Debug)]
struct Subject {
    lambda: [f64; 3],
    coef: [f64; 3],
    ke0: f64,
    decay: [f64; 3],
    input: [f64; 3],
    e_decay: f64,
    e_from_mode: [f64; 3],
    e_input: f64,
    c: [f64; 3],
    ce: f64,
}

/// Coefficients (decay, input, e_decay, e_from_mode, e_input) for a step of `dt` seconds.
type Coefficients = ([f64; 3], [f64; 3], f64, [f64; 3], f64);

impl Subject {
    fn new(d: &Disposition, ke0: f64, step_s: f64) -> Subject {
        let mut lambda = [1.0; 3];
        let mut coef = [0.0; 3];
        lambda[..d.n].copy_from_slice(&d.lambda[..d.n]);
        coef[..d.n].copy_from_slice(&d.coef[..d.n]);
        let mut s = Subject {
            lambda,
            coef,
            ke0,
            decay: [0.0; 3],
            input: [0.0; 3],
            e_decay: 0.0,
            e_from_mode: [0.0; 3],
            e_input: 0.0,
            c: [0.0; 3],
            ce: 0.0,
        };
        (s.decay, s.input, s.e_decay, s.e_from_mode, s.e_input) = s.coefficients(step_s);
        s
    }

    fn coefficients(&self, dt: f64) -> Coefficients {
        let mut decay = [0.0; 3];
        let mut input = [0.0; 3];
        let mut e_from_mode = [0.0; 3];
        let mut e_input = 0.0;
        let psi = phi(0.0, self.ke0, dt);
        for i in 0..3 {
            let l = self.lambda[i];
            let a_over_l = self.coef[i] / l;
            decay[i] = (-l * dt).exp();
            input[i] = a_over_l * (-(-l * dt).exp_m1());
            let p = phi(l, self.ke0, dt);
            e_from_mode[i] = self.ke0 * p;
            e_input += a_over_l * (psi - p);
        }
        (
            decay,
            input,
            (-self.ke0 * dt).exp(),
            e_from_mode,
            self.ke0 * e_input,
        )
    }

    #[inline]
    fn step_with(&mut self, (decay, input, e_decay, e_from_mode, e_input): &Coefficients, rate: f64) {
        self.ce = self.ce * e_decay
            + rate * e_input
            + self.c[0] * e_from_mode[0]
            + self.c[1] * e_from_mode[1]
            + self.c[2] * e_from_mode[2];
        for i in 0..3 {
            self.c[i] = self.c[i] * decay[i] + rate * input[i];
        }
    }

    /// One output interval made of pieces (sub-steps ending at breakpoints, boluses).
    fn step_pieces(&mut self, pieces: &[Piece]) {
        for piece in pieces {
            if piece.dt > 0.0 {
                let co = self.coefficients(piece.dt);
                self.step_with(&co, piece.rate);
            }
            if piece.bolus_after_mg > 0.0 {
                self.bolus(piece.bolus_after_mg);
            }
        }
    }

    fn bolus(&mut self, amount_mg: f64) {
        for i in 0..3 {
            self.c[i] += amount_mg * self.coef[i];
        }
    }
}

/// Subjects stepped side by side, one per vector lane.
const LANES: usize = 8;

/// Eight subjects' state and grid-step coefficients, one subject per lane (a group shorter than
/// eight repeats its last subject in the spare lanes, whose values are never written out).
struct Lanes {
    c: [f64x8; 3],
    ce: f64x8,
    decay: [f64x8; 3],
    input: [f64x8; 3],
    e_decay: f64x8,
    e_from_mode: [f64x8; 3],
    e_input: f64x8,
}

impl Lanes {
    fn load(group: &[Subject]) -> Lanes {
        let lane = |f: &dyn Fn(&Subject) -> f64| {
            f64x8::new(std::array::from_fn(|l| f(&group[l.min(group.len() - 1)])))
        };
        Lanes {
            c: std::array::from_fn(|i| lane(&|s| s.c[i])),
            ce: lane(&|s| s.ce),
            decay: std::array::from_fn(|i| lane(&|s| s.decay[i])),
            input: std::array::from_fn(|i| lane(&|s| s.input[i])),
            e_decay: lane(&|s| s.e_decay),
            e_from_mode: std::array::from_fn(|i| lane(&|s| s.e_from_mode[i])),
            e_input: lane(&|s| s.e_input),
        }
    }

    fn load_state(&mut self, group: &[Subject]) {
        let fresh = Lanes::load(group);
        self.c = fresh.c;
        self.ce = fresh.ce;
    }

    fn store_state(&self, group: &mut [Subject]) {
        let c = self.c.map(|v| v.to_array());
        let ce = self.ce.to_array();
        for (l, subject) in group.iter_mut().enumerate() {
            subject.c = [c[0][l], c[1][l], c[2][l]];
            subject.ce = ce[l];
        }
    }

    /// One grid step at a constant `rate` (mg/s) for eight subjects: the exact update with the
    /// coefficients of the grid step (`Subject::step_with`), with multiply-adds (fused where the
    /// machine has FMA, as every machine with AVX2 does).
    #[inline]
    fn step_grid(&mut self, rate: f64) {
        let rate = f64x8::splat(rate);
        let mut ce = self.ce.mul_add(self.e_decay, rate * self.e_input);
        for i in 0..3 {
            ce = self.c[i].mul_add(self.e_from_mode[i], ce);
        }
        self.ce = ce;
        for i in 0..3 {
            self.c[i] = self.c[i].mul_add(self.decay[i], rate * self.input[i]);
        }
    }

    fn cp(&self) -> f64x8 {
        self.c[0] + self.c[1] + self.c[2]
    }
}

/// What happens between two output times: either one plain grid step at a constant rate, or a list
/// of pieces (sub-steps ending at breakpoints, each possibly followed by a bolus).
#[derive(Clone, Debug)]
enum Interval {
    Grid { rate: f64 },
    Pieces(Vec<Piece>),
}

#[derive(Clone, Copy, Debug)]
struct Piece {
    dt: f64,
    rate: f64,
    bolus_after_mg: f64,
}

fn plan_intervals(schedule: &Schedule, times: &[f64], step_s: f64) -> Vec<Interval> {
    let breakpoints = schedule.breakpoints();
    let bolus_at = |t: f64| {
        schedule
            .boluses()
            .iter()
            .filter(|b| b.at_s == t)
            .map(|b| b.amount_mg)
            .sum::<f64>()
    };
    times
        .windows(2)
        .map(|w| {
            let (t0, t1) = (w[0], w[1]);
            // A rate change at t1 does not affect (t0, t1]; a bolus at t1 does (outputs include it).
            let inside: Vec<f64> = breakpoints
                .iter()
                .copied()
                .filter(|b| *b > t0 && *b < t1)
                .collect();
            if inside.is_empty() && bolus_at(t1) == 0.0 && t1 - t0 == step_s {
                return Interval::Grid {
                    rate: schedule.rate_after(t0),
                };
            }
            let mut pieces = Vec::with_capacity(inside.len() + 1);
            let mut t = t0;
            for b in inside.into_iter().chain(std::iter::once(t1)) {
                pieces.push(Piece {
                    dt: b - t,
                    rate: schedule.rate_after(t),
                    bolus_after_mg: bolus_at(b),
                });
                t = b;
            }
            Interval::Pieces(pieces)
        })
        .collect()
}

/// Order statistics at `wanted` (sorted, unique indices into `values`), by recursive selection:
/// the middle index splits the slice, the rest are found in the halves.
fn select_many(values: &mut [u64], wanted: &[usize], offset: usize, out: &mut Vec<(usize, u64)>) {
    if wanted.is_empty() {
        return;
    }
    let mid = wanted.len() / 2;
    let k = wanted[mid] - offset;
    let (left, pivot, right) = values.select_nth_unstable(k);
    out.push((wanted[mid], *pivot));
    select_many(left, &wanted[..mid], offset, out);
    select_many(right, &wanted[mid + 1..], offset + k + 1, out);
}

/// An integer whose order is the IEEE total order of `x` (so selection compares integers, which is
/// several times faster than comparing floats with `total_cmp` on every comparison).
fn order_key(x: f64) -> u64 {
    let bits = x.to_bits();
    if bits >> 63 == 1 { !bits } else { bits | (1 << 63) }
}

fn from_order_key(key: u64) -> f64 {
    f64::from_bits(if key >> 63 == 1 { key & !(1 << 63) } else { !key })
}

/// Type-7 percentiles of `values` (reordered in place).
pub fn percentiles_of(values: &mut [f64], percentiles: &[f64]) -> Vec<f64> {
    let mut keys: Vec<u64> = values.iter().map(|v| order_key(*v)).collect();
    percentiles_of_keys(&mut keys, percentiles)
}

/// Type-7 percentiles of values given as [`order_key`]s (reordered in place).
fn percentiles_of_keys(keys: &mut [u64], percentiles: &[f64]) -> Vec<f64> {
    let n = keys.len();
    if n == 0 {
        return vec![f64::NAN; percentiles.len()];
    }
    let ranks = type7_ranks(percentiles, n);
    let wanted: Vec<usize> = ranks.iter().flat_map(|r| [r.lo, r.hi]).collect();
    let values = order_stats_at(keys, &wanted);
    ranks
        .iter()
        .zip(values.chunks_exact(2))
        .map(|(r, v)| r.interpolate(v[0], v[1]))
        .collect()
}

/// Where a type-7 percentile lies among n sorted values: between ranks `lo` and `hi` = lo + 1
/// (or lo at the end), at fractional position `h`.
#[derive(Clone, Copy, Debug)]
struct Type7 {
    h: f64,
    lo: usize,
    hi: usize,
}

impl Type7 {
    fn interpolate(self, at_lo: f64, at_hi: f64) -> f64 {
        at_lo + (self.h - self.lo as f64) * (at_hi - at_lo)
    }
}

fn type7_ranks(percentiles: &[f64], n: usize) -> Vec<Type7> {
    percentiles
        .iter()
        .map(|p| {
            let h = p / 100.0 * (n - 1) as f64;
            let lo = h.floor() as usize;
            Type7 {
                h,
                lo,
                hi: (lo + 1).min(n - 1),
            }
        })
        .collect()
}

/// The values at `ranks` (any order, repeats allowed) of keys given as [`order_key`]s.
fn order_stats_at(keys: &mut [u64], ranks: &[usize]) -> Vec<f64> {
    let mut wanted = ranks.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let mut found = Vec::with_capacity(wanted.len());
    select_many(keys, &wanted, 0, &mut found);
    ranks
        .iter()
        .map(|i| {
            found
                .iter()
                .find(|(j, _)| j == i)
                .map(|(_, v)| from_order_key(*v))
                .expect("selected")
        })
        .collect()
}

/// Percentiles of one series at one output time after another, each seeded by the one before.
///
/// Concentrations move little between neighbouring output times, so the order statistics a
/// percentile needs stay close to where they were. For each percentile a value bracket around the
/// previous answer, widened by four times its last change and some ranks' room, is checked in one vectorised pass over
/// the row: how many values lie below it, and which lie inside. When the wanted ranks fall inside,
/// they are selected among those few values; otherwise (the first time point, a jump such as a
/// bolus, a NaN anywhere in the row) the row takes the full selection. Either way the result is
/// the same exact order statistics (only the sign of a zero could differ: the bracket counts
/// −0 and +0 as equal, the full selection orders them).
struct TrackedPercentiles {
    percentiles: Vec<f64>,
    previous: Option<Vec<Tracked>>,
    keys: Vec<u64>,
    inside: Vec<Vec<f64>>,
    /// Rows answered from the brackets (the rest took the full selection).
    seeded_rows: usize,
}

/// The previous answer of one percentile: the values at its two ranks and how far they last moved.
#[derive(Clone, Copy, Debug)]
struct Tracked {
    at_lo: f64,
    at_hi: f64,
    moved: f64,
}

impl TrackedPercentiles {
    fn new(percentiles: &[f64]) -> TrackedPercentiles {
        TrackedPercentiles {
            percentiles: percentiles.to_vec(),
            previous: None,
            keys: Vec::new(),
            inside: vec![Vec::new(); percentiles.len()],
            seeded_rows: 0,
        }
    }

    /// The percentiles of the `n` values in `slices`.
    fn row<'a>(&mut self, slices: impl Iterator<Item = &'a [f64]> + Clone, n: usize) -> Vec<f64> {
        let ranks = type7_ranks(&self.percentiles, n);
        let seeded = self
            .previous
            .clone()
            .and_then(|previous| self.bracketed(slices.clone(), n, &ranks, &previous));
        let at = match seeded {
            Some(at) => {
                self.seeded_rows += 1;
                at
            }
            None => {
                self.keys.clear();
                for slice in slices {
                    self.keys.extend(slice.iter().map(|v| order_key(*v)));
                }
                let wanted: Vec<usize> = ranks.iter().flat_map(|r| [r.lo, r.hi]).collect();
                order_stats_at(&mut self.keys, &wanted)
                    .chunks_exact(2)
                    .map(|v| (v[0], v[1]))
                    .collect()
            }
        };
        self.previous = Some(
            at.iter()
                .enumerate()
                .map(|(p, &(at_lo, at_hi))| Tracked {
                    at_lo,
                    at_hi,
                    moved: self.previous.as_ref().map_or(0.0, |prev| {
                        (at_lo - prev[p].at_lo).abs().max((at_hi - prev[p].at_hi).abs())
                    }),
                })
                .collect(),
        );
        ranks
            .iter()
            .zip(&at)
            .map(|(r, &(at_lo, at_hi))| r.interpolate(at_lo, at_hi))
            .collect()
    }

    /// The values at each percentile's two ranks, found inside brackets around the previous
    /// answers; `None` when a bracket misses its ranks or holds too many values to be worth it.
    fn bracketed<'a>(
        &mut self,
        slices: impl Iterator<Item = &'a [f64]>,
        n: usize,
        ranks: &[Type7],
        previous: &[Tracked],
    ) -> Option<Vec<(f64, f64)>> {
        let mut bounds = Vec::with_capacity(previous.len());
        for t in previous {
            // Four times the last move, plus about 32 ranks' worth of room (the gap between the
            // two neighbouring order statistics measures how dense the values are there).
            let width = 4.0 * t.moved + 32.0 * (t.at_hi - t.at_lo) + 1e-12 * t.at_hi.abs().max(t.at_lo.abs());
            if !width.is_finite() {
                return None;
            }
            bounds.push((t.at_lo - width, t.at_hi + width));
        }
        let vector_bounds: Vec<(f64x8, f64x8)> = bounds
            .iter()
            .map(|&(a, b)| (f64x8::splat(a), f64x8::splat(b)))
            .collect();
        let mut below = vec![0usize; bounds.len()];
        for inside in &mut self.inside {
            inside.clear();
        }
        // More than this inside one bracket and the full selection is as cheap.
        let too_many = n / 8 + 64;
        for slice in slices {
            let (blocks, rest) = slice.as_chunks::<8>();
            for block in blocks {
                let x = f64x8::new(*block);
                // A NaN is neither below nor inside any bracket, but the full selection orders it
                // (IEEE total order): leave such a row to the full selection.
                if x.simd_ne(x).any() {
                    return None;
                }
                for (p, &(a, b)) in vector_bounds.iter().enumerate() {
                    below[p] += x.simd_lt(a).to_bitmask().count_ones() as usize;
                    let mut hits = (x.simd_ge(a) & x.simd_le(b)).to_bitmask();
                    while hits != 0 {
                        self.inside[p].push(block[hits.trailing_zeros() as usize]);
                        hits &= hits - 1;
                    }
                }
            }
            for &x in rest {
                if x.is_nan() {
                    return None;
                }
                for (p, &(a, b)) in bounds.iter().enumerate() {
                    if x < a {
                        below[p] += 1;
                    } else if x <= b {
                        self.inside[p].push(x);
                    }
                }
            }
            if self.inside.iter().any(|inside| inside.len() > too_many) {
                return None;
            }
        }
        let mut at = Vec::with_capacity(ranks.len());
        for (p, r) in ranks.iter().enumerate() {
            let inside = &mut self.inside[p];
            if below[p] > r.lo || below[p] + inside.len() <= r.hi {
                return None;
            }
            let k = r.lo - below[p];
            let (_, at_lo, right) = inside.select_nth_unstable_by(k, f64::total_cmp);
            let at_lo = *at_lo;
            let at_hi = if r.hi == r.lo {
                at_lo
            } else {
                *right.iter().min_by(|a, b| a.total_cmp(b))?
            };
            at.push((at_lo, at_hi));
        }
        Some(at)
    }
}

/// Runs the population and returns percentile bands. `progress(done, total)` is called after each
/// block of output times (from the calling thread).
pub fn run_population(
    typical: &Mammillary,
    ke0_per_s: f64,
    schedule: &Schedule,
    variability: &Variability,
    settings: &PopulationSettings,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Bands, EngineError> {
    if settings.n_subjects == 0 || settings.n_subjects > 10_000_000 {
        return Err(EngineError::InvalidParameter {
            name: "number of subjects",
            value: settings.n_subjects as f64,
            allowed: "from 1 to 10,000,000",
        });
    }
    if let Some(p) = settings
        .percentiles
        .iter()
        .find(|p| !(p.is_finite() && **p > 0.0 && **p < 100.0))
    {
        return Err(EngineError::InvalidParameter {
            name: "percentile",
            value: *p,
            allowed: "above 0 and below 100",
        });
    }
    if settings.percentiles.is_empty() {
        return Err(EngineError::InvalidParameter {
            name: "number of percentiles",
            value: 0.0,
            allowed: "at least one",
        });
    }
    if !(ke0_per_s.is_finite() && ke0_per_s > 0.0) {
        return Err(EngineError::InvalidParameter {
            name: "ke0 (/s)",
            value: ke0_per_s,
            allowed: "a finite number above 0",
        });
    }
    let grid = crate::simulate::Grid::uniform(settings.step_s, settings.until_s)?;
    let times = grid.times();
    // Fail on the typical subject before sampling anyone.
    Disposition::new(typical)?;

    let n_peripheral = typical.peripheral_per_min().len();
    let mut subjects: Vec<Subject> = (0..settings.n_subjects)
        .into_par_iter()
        .map(|i| {
            let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
            rng.set_stream(i as u64);
            let mut eta = || -> f64 { StandardNormal.sample(&mut rng) };
            let f_cl = (variability.cl * eta()).exp();
            let f_v1 = (variability.v1 * eta()).exp();
            let mut f_peripheral = [(1.0, 1.0); 2];
            for (j, factor) in f_peripheral.iter_mut().enumerate().take(n_peripheral) {
                let (wq, wv) = variability.peripheral[j];
                *factor = ((wq * eta()).exp(), (wv * eta()).exp());
            }
            let params = typical.scaled(f_cl, f_v1, f_peripheral);
            Disposition::new(&params).map(|d| Subject::new(&d, ke0_per_s, settings.step_s))
        })
        .collect::<Result<_, _>>()?;

    // Every subject starts empty; a bolus at time 0 is given before the first output.
    let bolus_at_zero: f64 = schedule
        .boluses()
        .iter()
        .filter(|b| b.at_s == 0.0)
        .map(|b| b.amount_mg)
        .sum();
    if bolus_at_zero > 0.0 {
        subjects.par_iter_mut().for_each(|s| s.bolus(bolus_at_zero));
    }
    let intervals = plan_intervals(schedule, &times, settings.step_s);

    let n_p = settings.percentiles.len();
    let mut cp_bands = vec![Vec::with_capacity(times.len()); n_p];
    let mut ce_bands = vec![Vec::with_capacity(times.len()); n_p];
    let n_blocks = times.len().div_ceil(BLOCK);
    let n = settings.n_subjects;
    // Block buffers, allocated once: for each chunk of subjects a region of BLOCK rows × chunk length,
    // so that chunks write disjoint slices in parallel.
    let mut block_cp = vec![0.0; BLOCK * n];
    let mut block_ce = vec![0.0; BLOCK * n];
    let mut cp_tracker = TrackedPercentiles::new(&settings.percentiles);
    let mut ce_tracker = TrackedPercentiles::new(&settings.percentiles);
    for block in 0..n_blocks {
        let first = block * BLOCK;
        let last = (first + BLOCK).min(times.len());
        let width = last - first;
        // Each chunk of subjects advances through the block eight subjects at a time (one vector
        // lane each, state in registers) and writes each row's eight values as one vector.
        subjects
            .par_chunks_mut(CHUNK)
            .zip(block_cp.par_chunks_mut(BLOCK * CHUNK))
            .zip(block_ce.par_chunks_mut(BLOCK * CHUNK))
            .for_each(|((chunk, cp), ce)| {
                let len = chunk.len();
                for (g, group) in chunk.chunks_mut(LANES).enumerate() {
                    let mut lanes = Lanes::load(group);
                    let take = group.len();
                    for (row, k) in (first..last).enumerate() {
                        if k > 0 {
                            match &intervals[k - 1] {
                                Interval::Grid { rate } => lanes.step_grid(*rate),
                                Interval::Pieces(pieces) => {
                                    // Rare (off-grid breakpoints, boluses): each subject alone.
                                    lanes.store_state(group);
                                    for subject in group.iter_mut() {
                                        subject.step_pieces(pieces);
                                    }
                                    lanes.load_state(group);
                                }
                            }
                        }
                        let at = row * len + g * LANES;
                        if take == LANES {
                            // A fixed-size copy: one vector store, not a call to memmove.
                            cp[at..at + LANES].copy_from_slice(lanes.cp().as_array());
                            ce[at..at + LANES].copy_from_slice(lanes.ce.as_array());
                        } else {
                            cp[at..at + take].copy_from_slice(&lanes.cp().as_array()[..take]);
                            ce[at..at + take].copy_from_slice(&lanes.ce.as_array()[..take]);
                        }
                    }
                    lanes.store_state(group);
                }
            });
        // Percentiles of each time point of the block: the Cp and the Ce series in parallel, each
        // one time point after another so that each is seeded by the one before.
        let rows_of = |buffer: &[f64], tracker: &mut TrackedPercentiles| -> Vec<Vec<f64>> {
            (0..width)
                .map(|row| {
                    let slices = buffer.chunks(BLOCK * CHUNK).map(move |region| {
                        let len = region.len() / BLOCK;
                        &region[row * len..(row + 1) * len]
                    });
                    tracker.row(slices, n)
                })
                .collect()
        };
        let (cp_rows, ce_rows) = rayon::join(
            || rows_of(&block_cp, &mut cp_tracker),
            || rows_of(&block_ce, &mut ce_tracker),
        );
        for (cp_p, ce_p) in cp_rows.into_iter().zip(ce_rows) {
            for p in 0..n_p {
                cp_bands[p].push(cp_p[p]);
                ce_bands[p].push(ce_p[p]);
            }
        }
        progress(last as u64, times.len() as u64);
    }
    Ok(Bands {
        times_s: times,
        percentiles: settings.percentiles.clone(),
        cp: cp_bands,
        ce: ce_bands,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{BolusAt, Segment};
    use crate::simulate::{Grid, simulate};
    use crate::system::System;

    use crate::params::kamp_typical as kamp;

    fn schedule() -> Schedule {
        // Off-grid breakpoints (25 s, 2405 s) and a bolus exercise the piecewise path.
        Schedule::new(
            vec![Segment {
                start_s: 25.0,
                end_s: 2405.0,
                rate_mg_per_s: 35.0 / 2380.0,
            }],
            vec![
                BolusAt {
                    at_s: 0.0,
                    amount_mg: 5.0,
                },
                BolusAt {
                    at_s: 600.0,
                    amount_mg: 3.0,
                },
            ],
        )
        .unwrap()
    }

    fn settings(n: usize) -> PopulationSettings {
        PopulationSettings {
            n_subjects: n,
            seed: 42,
            percentiles: vec![5.0, 50.0, 95.0],
            step_s: 10.0,
            until_s: 7200.0,
        }
    }

    #[test]
    fn zero_variance_population_equals_the_typical_subject_at_every_percentile() {
        let ke0 = 2.791 / 60.0;
        let bands = run_population(
            &kamp(),
            ke0,
            &schedule(),
            &Variability::none(),
            &settings(37),
            &|_, _| {},
        )
        .unwrap();
        let system = System::new(Disposition::new(&kamp()).unwrap(), ke0);
        let typical = simulate(&system, &schedule(), &Grid::uniform(10.0, 7200.0).unwrap()).unwrap();
        for p in 0..3 {
            for (t, (cp, ce)) in bands.cp[p].iter().zip(&bands.ce[p]).enumerate() {
                assert!(
                    (cp - typical.cp[t]).abs() <= 1e-12 * typical.cp[t].max(1e-3),
                    "p{p} t{t}: {cp} vs {}",
                    typical.cp[t]
                );
                assert!(
                    (ce - typical.ce()[t]).abs() <= 1e-12 * typical.ce()[t].max(1e-3),
                    "p{p} t{t}"
                );
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_bands_and_another_seed_does_not() {
        let v = Variability::assumed_cv(0.3).unwrap();
        let a = run_population(&kamp(), 0.05, &schedule(), &v, &settings(3000), &|_, _| {}).unwrap();
        let b = run_population(&kamp(), 0.05, &schedule(), &v, &settings(3000), &|_, _| {}).unwrap();
        assert_eq!(a, b);
        let c = run_population(
            &kamp(),
            0.05,
            &schedule(),
            &v,
            &PopulationSettings {
                seed: 7,
                ..settings(3000)
            },
            &|_, _| {},
        )
        .unwrap();
        assert_ne!(a.cp, c.cp);
        // Bands are ordered and bracket a meaningful spread.
        for t in 1..a.times_s.len() {
            assert!(a.cp[0][t] <= a.cp[1][t] && a.cp[1][t] <= a.cp[2][t]);
        }
        let t40 = 240;
        assert!(a.cp[2][t40] / a.cp[0][t40] > 1.3, "spread too small");
    }

    #[test]
    fn bands_match_a_direct_monte_carlo_with_the_same_draws() {
        // Independent check: simulate each subject on its own with the general engine and take
        // percentiles of the collected curves.
        let v = Variability::assumed_cv(0.4).unwrap();
        let s = PopulationSettings {
            n_subjects: 201,
            until_s: 3000.0,
            ..settings(201)
        };
        let bands = run_population(&kamp(), 0.05, &schedule(), &v, &s, &|_, _| {}).unwrap();
        let grid = Grid::uniform(10.0, 3000.0).unwrap();
        let mut curves = Vec::new();
        for i in 0..201u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(42);
            rng.set_stream(i);
            let mut eta = || -> f64 { StandardNormal.sample(&mut rng) };
            let w = omega_from_cv(0.4);
            let (f_cl, f_v1) = ((w * eta()).exp(), (w * eta()).exp());
            let p2 = ((w * eta()).exp(), (w * eta()).exp());
            let p3 = ((w * eta()).exp(), (w * eta()).exp());
            let params = kamp().scaled(f_cl, f_v1, [p2, p3]);
            let system = System::new(Disposition::new(&params).unwrap(), 0.05);
            curves.push(simulate(&system, &schedule(), &grid).unwrap());
        }
        for t in [0, 3, 50, 240, 299] {
            let mut column: Vec<f64> = curves.iter().map(|c| c.cp[t]).collect();
            column.sort_by(f64::total_cmp);
            // Type 7 with n = 201: the 5th, 50th and 95th percentiles are order statistics 10, 100, 190.
            for (p, idx) in [(0, 10), (1, 100), (2, 190)] {
                assert!(
                    (bands.cp[p][t] - column[idx]).abs() <= 1e-12 * column[idx].max(1e-6),
                    "t{t} p{p}"
                );
            }
        }
    }

    #[test]
    fn seeded_percentiles_equal_the_full_selection_row_after_row() {
        use rand::Rng;
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let n = 10_007;
        let level: Vec<f64> = (0..n).map(|_| rng.random::<f64>() * 3.0).collect();
        // Each value drifts at its own rate, so the order changes from row to row.
        let drift: Vec<f64> = (0..n).map(|_| rng.random::<f64>() * 0.02 - 0.005).collect();
        let percentiles = [5.0, 50.0, 95.0, 99.9];
        let mut tracker = TrackedPercentiles::new(&percentiles);
        for t in 0..80 {
            let row: Vec<f64> = match t {
                // All equal (a population without variability), then zeros.
                45 => vec![0.25; n],
                46 => vec![0.0; n],
                _ => (0..n)
                    .map(|i| {
                        // A jump at row 30 (a bolus for everyone).
                        let bolus = if t >= 30 { 1.5 } else { 0.0 };
                        level[i] * (1.0 + drift[i] * t as f64) + bolus
                    })
                    .collect(),
            };
            // Several slices of the row, the last one short (as the chunk regions are).
            let mut row = row;
            if t == 60 {
                // NaNs of both signs (x86 makes negative ones): the full selection orders them.
                row[0] = -f64::NAN;
                row[5000] = f64::NAN;
            }
            let got = tracker.row(row.chunks(1000), n);
            let want = percentiles_of(&mut row.clone(), &percentiles);
            assert_eq!(got, want, "row {t}");
        }
        // The brackets answered most rows: all but the first, the jump, the two flat rows and a
        // row or two after each (when measured: 72 of 80).
        assert!(
            tracker.seeded_rows >= 70,
            "{} of 80 rows seeded",
            tracker.seeded_rows
        );
    }

    #[test]
    fn order_keys_sort_like_floats() {
        let values = [-2.5, -0.0, 0.0, 1e-300, 0.2, 3.0, f64::INFINITY];
        for pair in values.windows(2) {
            assert!(order_key(pair[0]) < order_key(pair[1]), "{pair:?}");
        }
        for v in values {
            assert_eq!(from_order_key(order_key(v)).to_bits(), v.to_bits());
        }
    }

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let mut v: Vec<f64> = (1..=10).map(f64::from).rev().collect();
        // numpy.percentile(range(1, 11), [5, 50, 95]) = [1.45, 5.5, 9.55]
        let p = percentiles_of(&mut v, &[5.0, 50.0, 95.0]);
        for (got, want) in p.iter().zip([1.45, 5.5, 9.55]) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
    }

    #[test]
    fn bad_settings_are_rejected() {
        let v = Variability::none();
        assert!(run_population(&kamp(), 0.05, &schedule(), &v, &settings(0), &|_, _| {}).is_err());
        let bad = PopulationSettings {
            percentiles: vec![0.0],
            ..settings(10)
        };
        assert!(run_population(&kamp(), 0.05, &schedule(), &v, &bad, &|_, _| {}).is_err());
        assert!(Variability::assumed_cv(-0.1).is_err());
    }
}
