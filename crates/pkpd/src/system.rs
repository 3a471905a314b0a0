//! The exact state update at the heart of the engine.
//!
//! The state is kept in modal form: `c[i]` is mode i's contribution to the plasma concentration
//! (Cp = Σ cᵢ, mg/L = µg/mL). Everything else the engine reports is a *first-order response* to
//! Cp: a quantity Y with dY/dt = g·Cp − k·Y. With the right gain g and rate k this one shape gives
//!
//! * the effect-site concentration (g = k = ke0),
//! * the drug amount in peripheral compartment j (g = k1j·V1, k = kj1),
//! * the cumulative amount eliminated (g = CL, k = 0),
//! * a metabolite concentration (g = fm·CL/Vm, k = CLm/Vm), and
//! * any extra pharmacodynamic effect site (g = k = its own ke0).
//!
//! For a step of length Δ with a constant input rate R (mg/s) the update is exact:
//!
//! ```text
//! cᵢ ← cᵢ·e^{−λᵢΔ} + R·(Aᵢ/λᵢ)(1 − e^{−λᵢΔ})
//! Y  ← Y·e^{−kΔ} + g·Σᵢ [cᵢ·φ(λᵢ,k,Δ) + R·(Aᵢ/λᵢ)(ψ(k,Δ) − φ(λᵢ,k,Δ))]
//! φ(a,b,Δ) = ∫₀^Δ e^{−as} e^{−b(Δ−s)} ds,   ψ(k,Δ) = φ(0,k,Δ)
//! ```
//!
//! so one step costs a few multiply-adds once the coefficients for Δ are known, whatever the dosing
//! history. No numerical integration is involved anywhere.

use crate::params::Disposition;

/// Most responses one system carries: effect site, two peripheral amounts, eliminated amount,
/// metabolite and three extra effect sites.
pub const MAX_RESPONSES: usize = 8;

/// One first-order response to plasma concentration: dY/dt = gain·Cp − rate·Y (per second).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Response {
    /// g, in Y-units per (mg/L) per second.
    pub gain: f64,
    /// k, per second.
    pub rate: f64,
}

/// What a response means, for labelling outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseKind {
    /// Effect-site concentration of the PK model (µg/mL).
    EffectSite,
    /// Amount in a peripheral compartment (mg); 2 or 3.
    PeripheralAmount(u8),
    /// Cumulative amount eliminated from the body (mg).
    Eliminated,
    /// One mode of the metabolite (norketamine) concentration (µg/mL); the metabolite
    /// concentration is the sum of its modes.
    MetaboliteMode(u8),
    /// An extra effect site (µg/mL of parent), e.g. a PD model's own ke0; the index is the order added.
    ExtraEffectSite(u8),
}

/// A linear system: the disposition modes plus the responses reported alongside Cp.
#[derive(Clone, Debug, PartialEq)]
pub struct System {
    pub(crate) disposition: Disposition,
    pub(crate) responses: [Response; MAX_RESPONSES],
    pub(crate) kinds: [ResponseKind; MAX_RESPONSES],
    pub(crate) n_responses: usize,
}

/// The engine state: modal plasma contributions and the responses. Starts at zero (no drug).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct State {
    pub(crate) c: [f64; 3],
    pub(crate) y: [f64; MAX_RESPONSES],
}

impl State {
    /// No drug anywhere.
    pub const EMPTY: State = State {
        c: [0.0; 3],
        y: [0.0; MAX_RESPONSES],
    };

    /// Plasma (central) concentration, µg/mL.
    pub fn cp(&self) -> f64 {
        self.c[0] + self.c[1] + self.c[2]
    }

    /// Value of response `index` (units depend on its kind).
    pub fn response(&self, index: usize) -> f64 {
        self.y[index]
    }
}

/// φ(a, b, Δ) = ∫₀^Δ e^{−a s}·e^{−b(Δ−s)} ds, symmetric in a and b, accurate when a ≈ b.
pub(crate) fn phi(a: f64, b: f64, dt: f64) -> f64 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let gap = hi - lo;
    if gap * dt < 1e-300 {
        return dt * (-lo * dt).exp();
    }
    // e^{−lo·Δ}·(1 − e^{−gap·Δ})/gap, with expm1 so that a tiny gap keeps its digits.
    (-lo * dt).exp() * (-(-gap * dt).exp_m1()) / gap
}

/// Coefficients of the exact update for one step length.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepCoefficients {
    pub(crate) dt: f64,
    /// e^{−λᵢΔ}
    pub(crate) decay: [f64; 3],
    /// (Aᵢ/λᵢ)(1 − e^{−λᵢΔ}): plasma gain per unit input rate.
    pub(crate) input: [f64; 3],
    /// e^{−kΔ} for each response.
    pub(crate) response_decay: [f64; MAX_RESPONSES],
    /// g·φ(λᵢ,k,Δ) for each response and mode.
    pub(crate) response_from_mode: [[f64; 3]; MAX_RESPONSES],
    /// g·Σᵢ (Aᵢ/λᵢ)(ψ − φᵢ) for each response.
    pub(crate) response_input: [f64; MAX_RESPONSES],
}

impl System {
    /// A system reporting Cp, the effect site with rate `ke0_per_s`, peripheral amounts and the
    /// amount eliminated.
    pub fn new(disposition: Disposition, ke0_per_s: f64) -> System {
        let mut system = System::plasma_and_effect(disposition, ke0_per_s);
        for j in 0..disposition.n_peripheral {
            let (k1j, kj1) = disposition.peripheral[j];
            let label = u8::try_from(j + 2).unwrap_or(u8::MAX);
            system.push(
                ResponseKind::PeripheralAmount(label),
                Response {
                    gain: k1j * disposition.v1_l,
                    rate: kj1,
                },
            );
        }
        system.push(
            ResponseKind::Eliminated,
            Response {
                gain: disposition.cl_l_per_s,
                rate: 0.0,
            },
        );
        system
    }

    /// A system reporting only Cp and the effect site: the lean form for cohorts and benchmarks.
    pub fn plasma_and_effect(disposition: Disposition, ke0_per_s: f64) -> System {
        let mut system = System {
            disposition,
            responses: [Response { gain: 0.0, rate: 0.0 }; MAX_RESPONSES],
            kinds: [ResponseKind::EffectSite; MAX_RESPONSES],
            n_responses: 0,
        };
        system.push(
            ResponseKind::EffectSite,
            Response {
                gain: ke0_per_s,
                rate: ke0_per_s,
            },
        );
        system
    }

    fn push(&mut self, kind: ResponseKind, response: Response) -> usize {
        assert!(self.n_responses < MAX_RESPONSES, "too many responses");
        let index = self.n_responses;
        self.responses[index] = response;
        self.kinds[index] = kind;
        self.n_responses += 1;
        index
    }

    /// Adds a metabolite formed from a fraction `fm` of parent clearance and distributed by its own
    /// mammillary model (`metabolite`: volumes in L of metabolite, rates per minute). Each mode of the
    /// metabolite's own disposition, Σ Bⱼ e^{−μⱼt}, becomes one response with gain fm·CL·Bⱼ and rate
    /// μⱼ, because the metabolite concentration is the formation flux fm·CL·Cp convolved with that
    /// disposition. Returns the indices of the modes; their sum is the metabolite concentration.
    pub fn add_metabolite(&mut self, fm: f64, metabolite: &Disposition) -> Vec<usize> {
        let flux_gain = fm * self.disposition.cl_l_per_s;
        (0..metabolite.n)
            .map(|j| {
                let label = u8::try_from(j).unwrap_or(u8::MAX);
                self.push(
                    ResponseKind::MetaboliteMode(label),
                    Response {
                        gain: flux_gain * metabolite.coef[j],
                        rate: metabolite.lambda[j],
                    },
                )
            })
            .collect()
    }

    /// Indices of the metabolite's modes (empty when the system has no metabolite).
    pub fn metabolite_modes(&self) -> Vec<usize> {
        self.response_kinds()
            .iter()
            .enumerate()
            .filter(|(_, k)| matches!(k, ResponseKind::MetaboliteMode(_)))
            .map(|(i, _)| i)
            .collect()
    }

    /// Adds an extra effect site with its own ke0 (per second); returns its response index.
    pub fn add_effect_site(&mut self, ke0_per_s: f64) -> usize {
        let extra = self.kinds[..self.n_responses]
            .iter()
            .filter(|k| matches!(k, ResponseKind::ExtraEffectSite(_)))
            .count();
        let label = u8::try_from(extra).unwrap_or(u8::MAX);
        self.push(
            ResponseKind::ExtraEffectSite(label),
            Response {
                gain: ke0_per_s,
                rate: ke0_per_s,
            },
        )
    }

    /// The disposition (modes) of the system.
    pub fn disposition(&self) -> &Disposition {
        &self.disposition
    }

    /// The kinds of the responses, in index order.
    pub fn response_kinds(&self) -> &[ResponseKind] {
        &self.kinds[..self.n_responses]
    }

    /// The index of the first response of `kind`.
    pub fn response_index(&self, kind: ResponseKind) -> Option<usize> {
        self.response_kinds().iter().position(|k| *k == kind)
    }

    /// The response definitions, in index order.
    pub fn responses(&self) -> &[Response] {
        &self.responses[..self.n_responses]
    }

    /// Effect-site rate constant of the PK model, per second.
    pub fn ke0_per_s(&self) -> f64 {
        self.responses[0].rate
    }

    /// Coefficients of the exact update over a step of `dt` seconds.
    pub fn coefficients(&self, dt: f64) -> StepCoefficients {
        let d = &self.disposition;
        let mut co = StepCoefficients {
            dt,
            decay: [0.0; 3],
            input: [0.0; 3],
            response_decay: [0.0; MAX_RESPONSES],
            response_from_mode: [[0.0; 3]; MAX_RESPONSES],
            response_input: [0.0; MAX_RESPONSES],
        };
        let mut a_over_l = [0.0; 3];
        for i in 0..d.n {
            let l = d.lambda[i];
            co.decay[i] = (-l * dt).exp();
            a_over_l[i] = d.coef[i] / l;
            co.input[i] = a_over_l[i] * (-(-l * dt).exp_m1());
        }
        for r in 0..self.n_responses {
            let Response { gain, rate } = self.responses[r];
            co.response_decay[r] = (-rate * dt).exp();
            let psi = phi(0.0, rate, dt);
            let mut input = 0.0;
            for i in 0..d.n {
                let p = phi(d.lambda[i], rate, dt);
                co.response_from_mode[r][i] = gain * p;
                input += a_over_l[i] * (psi - p);
            }
            co.response_input[r] = gain * input;
        }
        co
    }

    /// Advances `state` by one step with constant input `rate_mg_per_s` using precomputed coefficients.
    #[inline]
    pub fn step(&self, state: &mut State, co: &StepCoefficients, rate_mg_per_s: f64) {
        let n = self.disposition.n;
        for r in 0..self.n_responses {
            let mut y = state.y[r] * co.response_decay[r] + rate_mg_per_s * co.response_input[r];
            for i in 0..n {
                y += state.c[i] * co.response_from_mode[r][i];
            }
            state.y[r] = y;
        }
        for i in 0..n {
            state.c[i] = state.c[i] * co.decay[i] + rate_mg_per_s * co.input[i];
        }
    }

    /// Advances `state` by `dt` seconds with constant input, computing the coefficients on the fly.
    pub fn advance(&self, state: &mut State, dt: f64, rate_mg_per_s: f64) {
        if dt > 0.0 {
            let co = self.coefficients(dt);
            self.step(state, &co, rate_mg_per_s);
        }
    }

    /// Adds an instantaneous bolus of `amount_mg` to the central compartment.
    pub fn bolus(&self, state: &mut State, amount_mg: f64) {
        for i in 0..self.disposition.n {
            state.c[i] += amount_mg * self.disposition.coef[i];
        }
    }

    /// Plasma concentration `dt` seconds after `state` with no input (closed form).
    pub fn cp_free(&self, state: &State, dt: f64) -> f64 {
        let d = &self.disposition;
        (0..d.n).map(|i| state.c[i] * (-d.lambda[i] * dt).exp()).sum()
    }

    /// Response `index` `dt` seconds after `state` with no input (closed form).
    pub fn response_free(&self, state: &State, index: usize, dt: f64) -> f64 {
        let d = &self.disposition;
        let Response { gain, rate } = self.responses[index];
        let mut y = state.y[index] * (-rate * dt).exp();
        for i in 0..d.n {
            y += gain * state.c[i] * phi(d.lambda[i], rate, dt);
        }
        y
    }

    /// Central-compartment amount, mg.
    pub fn central_amount(&self, state: &State) -> f64 {
        state.cp() * self.disposition.v1_l
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Mammillary;

    #[test]
    fn phi_is_exact_for_equal_and_distinct_rates() {
        // φ(a,a,Δ) = Δ e^{−aΔ}.
        assert!((phi(0.1, 0.1, 5.0) - 5.0 * (-0.5f64).exp()).abs() < 1e-15);
        let direct = ((-0.1f64 * 5.0).exp() - (-0.3f64 * 5.0).exp()) / (0.3 - 0.1);
        assert!((phi(0.1, 0.3, 5.0) - direct).abs() < 1e-15);
        assert!((phi(0.3, 0.1, 5.0) - direct).abs() < 1e-15);
        // Nearly equal rates keep full precision through expm1.
        let near = phi(0.1, 0.1 + 1e-12, 5.0);
        assert!((near / (5.0 * (-0.5f64).exp()) - 1.0).abs() < 1e-11);
    }

    #[test]
    fn one_compartment_infusion_matches_closed_form() {
        // Cp(t) = R/CL·(1 − e^{−kt}), Ce from the standard effect-site solution.
        let v = 10.0;
        let k_per_min = 0.1;
        let ke0_per_min = 0.5;
        let p = Mammillary::from_micro_constants(v, k_per_min, &[]);
        let system = System::new(Disposition::new(&p).unwrap(), ke0_per_min / 60.0);
        let rate = 2.0 / 60.0; // mg/s
        let mut state = State::EMPTY;
        system.advance(&mut state, 600.0, rate);
        let k = k_per_min / 60.0;
        let ke0 = ke0_per_min / 60.0;
        let t: f64 = 600.0;
        let cl = k * v;
        let cp = rate / cl * (1.0 - (-k * t).exp());
        let ce = rate / cl * (1.0 - (ke0 * (-k * t).exp() - k * (-ke0 * t).exp()) / (ke0 - k));
        assert!(
            (state.cp() - cp).abs() < 1e-14 * cp.max(1.0),
            "{} vs {}",
            state.cp(),
            cp
        );
        assert!((state.y[0] - ce).abs() < 1e-13, "{} vs {}", state.y[0], ce);
        // Eliminated amount: given minus what is still in the body.
        let given = rate * t;
        let eliminated = state.y[system.response_index(ResponseKind::Eliminated).unwrap()];
        assert!((eliminated + cp * v - given).abs() < 1e-12);
    }
}
