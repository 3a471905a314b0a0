//! Mammillary compartment parameters and their modal (polyexponential) decomposition.
//!
//! A mammillary model has a central compartment (volume V1, elimination rate constant k10) and up
//! to two peripheral compartments exchanging with it (k1j out, kj1 back). Its plasma response to a
//! unit bolus is the unit-disposition function u(t) = Σ Aᵢ e^{−λᵢ t}; the engine works entirely in
//! these modes (see `shared/domain/pharmacology.md` §4).

use crate::EngineError;

/// Micro-constants of a 1-, 2- or 3-compartment mammillary model. Rate constants are per minute,
/// as papers report them; the engine converts to per second once, in [`Disposition::new`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mammillary {
    v1_l: f64,
    k10_per_min: f64,
    // Invariant: the first `n_peripheral` entries are (k1j, kj1) per minute, all finite and > 0.
    peripheral_per_min: [(f64, f64); 2],
    n_peripheral: usize,
}

impl Mammillary {
    /// From V1 (L), k10 (/min) and up to two peripheral (k1j, kj1) pairs (/min).
    ///
    /// # Panics
    /// When more than two peripheral compartments are given (a programming error, not user input).
    pub fn from_micro_constants(v1_l: f64, k10_per_min: f64, peripheral: &[(f64, f64)]) -> Self {
        assert!(
            peripheral.len() <= 2,
            "at most two peripheral compartments are supported"
        );
        let mut pairs = [(0.0, 0.0); 2];
        pairs[..peripheral.len()].copy_from_slice(peripheral);
        Mammillary {
            v1_l,
            k10_per_min,
            peripheral_per_min: pairs,
            n_peripheral: peripheral.len(),
        }
    }

    /// From V1 (L), clearance (L/min) and up to two (intercompartmental clearance L/min, volume L) pairs.
    pub fn from_volumes_and_clearances(v1_l: f64, cl_l_per_min: f64, peripheral: &[(f64, f64)]) -> Self {
        let micro: Vec<(f64, f64)> = peripheral.iter().map(|&(q, v)| (q / v1_l, q / v)).collect();
        Self::from_micro_constants(v1_l, cl_l_per_min / v1_l, &micro)
    }

    /// Central volume, L.
    pub fn v1_l(&self) -> f64 {
        self.v1_l
    }
    /// Elimination clearance, L/min.
    pub fn cl_l_per_min(&self) -> f64 {
        self.k10_per_min * self.v1_l
    }
    /// Elimination rate constant, /min.
    pub fn k10_per_min(&self) -> f64 {
        self.k10_per_min
    }
    /// Number of compartments, 1–3.
    pub fn compartments(&self) -> usize {
        1 + self.n_peripheral
    }
    /// Peripheral (k1j, kj1) pairs, /min.
    pub fn peripheral_per_min(&self) -> &[(f64, f64)] {
        &self.peripheral_per_min[..self.n_peripheral]
    }
    /// Intercompartmental clearance (L/min) and volume (L) of each peripheral compartment.
    pub fn peripheral_clearances_and_volumes(&self) -> Vec<(f64, f64)> {
        self.peripheral_per_min()
            .iter()
            .map(|&(k1j, kj1)| (k1j * self.v1_l, k1j * self.v1_l / kj1))
            .collect()
    }
    /// Volume of distribution at steady state, L: V1 + Σ Vj.
    pub fn volume_of_distribution_at_steady_state_l(&self) -> f64 {
        self.v1_l
            + self
                .peripheral_clearances_and_volumes()
                .iter()
                .map(|&(_, v)| v)
                .sum::<f64>()
    }

    /// Multiplies clearance, central volume and each peripheral clearance and volume by the given
    /// factors (used by population sampling; factors are exp(η)).
    pub fn scaled(&self, cl: f64, v1: f64, peripheral: [(f64, f64); 2]) -> Mammillary {
        let v1_l = self.v1_l * v1;
        let cl_l_per_min = self.cl_l_per_min() * cl;
        let pairs: Vec<(f64, f64)> = self
            .peripheral_clearances_and_volumes()
            .iter()
            .zip(peripheral)
            .map(|(&(q, v), (fq, fv))| (q * fq, v * fv))
            .collect();
        Mammillary::from_volumes_and_clearances(v1_l, cl_l_per_min, &pairs)
    }

    fn check(&self) -> Result<(), EngineError> {
        let mut values = vec![("V1 (L)", self.v1_l), ("k10 (/min)", self.k10_per_min)];
        for &(k1j, kj1) in self.peripheral_per_min() {
            values.push(("k1j (/min)", k1j));
            values.push(("kj1 (/min)", kj1));
        }
        for (name, value) in values {
            if !(value.is_finite() && value > 0.0) {
                return Err(EngineError::InvalidParameter {
                    name,
                    value,
                    allowed: "a finite number above 0",
                });
            }
        }
        Ok(())
    }
}

/// The modal form of a mammillary model: u(t) = Σ Aᵢ e^{−λᵢ t}, with t in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Disposition {
    /// Number of modes (= compartments).
    pub(crate) n: usize,
    /// Macro rate constants λᵢ, per second, in decreasing order.
    pub(crate) lambda: [f64; 3],
    /// Coefficients Aᵢ, 1/L: plasma concentration (mg/L) per mg given as a bolus.
    pub(crate) coef: [f64; 3],
    /// Central volume, L.
    pub(crate) v1_l: f64,
    /// Elimination clearance, L/s.
    pub(crate) cl_l_per_s: f64,
    /// Peripheral (k1j, kj1) per second.
    pub(crate) peripheral: [(f64, f64); 2],
    pub(crate) n_peripheral: usize,
}

impl Disposition {
    /// Decomposes `params` into modes. Fails on invalid parameters or (numerically) repeated
    /// eigenvalues, which published and sampled models do not produce in practice.
    pub fn new(params: &Mammillary) -> Result<Disposition, EngineError> {
        params.check()?;
        let per_s = |k: f64| k / 60.0;
        let k10 = per_s(params.k10_per_min);
        let peripheral: Vec<(f64, f64)> = params
            .peripheral_per_min()
            .iter()
            .map(|&(a, b)| (per_s(a), per_s(b)))
            .collect();
        let mut lambda = [0.0; 3];
        let mut coef = [0.0; 3];
        let n = 1 + peripheral.len();
        let inv_v1 = 1.0 / params.v1_l;
        match peripheral.as_slice() {
            [] => {
                lambda[0] = k10;
                coef[0] = inv_v1;
            }
            [(k12, k21)] => {
                let sum = k10 + k12 + k21;
                let root = (sum * sum - 4.0 * k10 * k21).sqrt();
                // The larger root directly; the smaller from the product of roots (k10·k21),
                // which avoids cancellation when the two differ by orders of magnitude.
                let l1 = 0.5 * (sum + root);
                let l2 = k10 * k21 / l1;
                lambda[..2].copy_from_slice(&[l1, l2]);
                coef[0] = inv_v1 * (k21 - l1) / (l2 - l1);
                coef[1] = inv_v1 * (k21 - l2) / (l1 - l2);
            }
            [(k12, k21), (k13, k31)] => {
                let roots = cubic_roots(k10, *k12, *k21, *k13, *k31);
                lambda = roots;
                for i in 0..3 {
                    let li = lambda[i];
                    let denom: f64 = (0..3).filter(|&j| j != i).map(|j| lambda[j] - li).product();
                    coef[i] = inv_v1 * (k21 - li) * (k31 - li) / denom;
                }
            }
            _ => unreachable!("Mammillary holds at most two peripheral compartments"),
        }
        for i in 0..n {
            for j in (i + 1)..n {
                if (lambda[i] - lambda[j]).abs() <= 1e-9 * lambda[i] {
                    return Err(EngineError::DegenerateModel {
                        lambda_i: lambda[i] * 60.0,
                        lambda_j: lambda[j] * 60.0,
                    });
                }
            }
            if !(lambda[i].is_finite() && lambda[i] > 0.0 && coef[i].is_finite()) {
                return Err(EngineError::DegenerateModel {
                    lambda_i: lambda[i] * 60.0,
                    lambda_j: f64::NAN,
                });
            }
        }
        let mut periph = [(0.0, 0.0); 2];
        periph[..peripheral.len()].copy_from_slice(&peripheral);
        Ok(Disposition {
            n,
            lambda,
            coef,
            v1_l: params.v1_l,
            cl_l_per_s: k10 * params.v1_l,
            peripheral: periph,
            n_peripheral: peripheral.len(),
        })
    }

    /// Macro rate constants, per minute, decreasing.
    pub fn lambdas_per_min(&self) -> Vec<f64> {
        self.lambda[..self.n].iter().map(|l| l * 60.0).collect()
    }
    /// Coefficients Aᵢ of the unit-disposition function, 1/L.
    pub fn coefficients_per_l(&self) -> Vec<f64> {
        self.coef[..self.n].to_vec()
    }
    /// Clearance, L/s.
    pub fn clearance_l_per_s(&self) -> f64 {
        self.cl_l_per_s
    }
}

/// Roots of λ³ − a2λ² + a1λ − a0 for a 3-compartment mammillary model, decreasing, each polished by
/// Newton steps (the trigonometric closed form loses a few digits on the smallest root).
fn cubic_roots(k10: f64, k12: f64, k21: f64, k13: f64, k31: f64) -> [f64; 3] {
    let a2 = k10 + k12 + k13 + k21 + k31;
    let a1 = k10 * k21 + k10 * k31 + k12 * k31 + k13 * k21 + k21 * k31;
    let a0 = k10 * k21 * k31;
    let p = a1 - a2 * a2 / 3.0;
    let q = 2.0 * a2 * a2 * a2 / 27.0 - a1 * a2 / 3.0 + a0;
    let r1 = (-p * p * p / 27.0).sqrt();
    let phi = (-q / (2.0 * r1)).clamp(-1.0, 1.0).acos() / 3.0;
    let r2 = 2.0 * r1.cbrt();
    let third = 2.0 * std::f64::consts::PI / 3.0;
    let mut roots = [0.0, third, 2.0 * third].map(|shift| -((phi + shift).cos() * r2 - a2 / 3.0));
    for root in &mut roots {
        for _ in 0..3 {
            let f = ((*root - a2) * *root + a1) * *root - a0;
            let df = (3.0 * *root - 2.0 * a2) * *root + a1;
            if df != 0.0 {
                *root -= f / df;
            }
        }
    }
    roots.sort_by(|a, b| b.total_cmp(a));
    roots
}

/// Kamp et al. 2020's typical adult (V1 25 L, CL 84 L/h; peripheral 161 L/h to 56 L and 79 L/h to
/// 157 L: `model::ModelId::Kamp2020` at 70 kg, which scales all of them by WT/70), the system the unit
/// tests of several modules solve.
#[cfg(test)]
pub(crate) fn kamp_typical() -> Mammillary {
    Mammillary::from_volumes_and_clearances(25.0, 84.0 / 60.0, &[(161.0 / 60.0, 56.0), (79.0 / 60.0, 157.0)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kamp_macro_constants_match_the_domain_notes() {
        // pharmacology.md §4: Kamp 70 kg λ = 0.2441, 0.02444, 0.003772 /min; A = 0.03504, 0.003321, 0.001640 /L.
        let p = Mammillary::from_volumes_and_clearances(
            25.0,
            84.0 / 60.0,
            &[(161.0 / 60.0, 56.0), (79.0 / 60.0, 157.0)],
        );
        let d = Disposition::new(&p).unwrap();
        let l = d.lambdas_per_min();
        let a = d.coefficients_per_l();
        for (got, want) in l.iter().zip([0.2441, 0.02444, 0.003772]) {
            assert!((got / want - 1.0).abs() < 5e-4, "{got} vs {want}");
        }
        for (got, want) in a.iter().zip([0.03504, 0.003321, 0.001640]) {
            assert!((got / want - 1.0).abs() < 5e-4, "{got} vs {want}");
        }
        // u(0) = 1/V1.
        assert!((a.iter().sum::<f64>() - 1.0 / 25.0).abs() < 1e-15);
    }

    #[test]
    fn two_compartment_roots_satisfy_sum_and_product_rules() {
        let p = Mammillary::from_micro_constants(122.654, 0.0109, &[(0.0186, 0.0137)]);
        let d = Disposition::new(&p).unwrap();
        let l = d.lambdas_per_min();
        assert!((l[0] + l[1] - (0.0109 + 0.0186 + 0.0137)).abs() < 1e-15);
        assert!((l[0] * l[1] - 0.0109 * 0.0137).abs() < 1e-18);
    }

    #[test]
    fn non_positive_parameters_are_rejected_by_name() {
        let p = Mammillary::from_micro_constants(0.0, 0.1, &[]);
        let err = Disposition::new(&p).unwrap_err();
        assert_eq!(
            err.to_string(),
            "model parameter V1 (L) = 0 is not allowed: it must be a finite number above 0"
        );
    }
}
