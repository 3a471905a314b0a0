//! Dimensioned quantities used across dosing and pharmacokinetics.
//!
//! Every quantity is a newtype over `f64` with its unit in its name. Construction goes through
//! `new` (or `FromStr`), which rejects non-finite values and values outside a plausibility range,
//! so code further in can treat a quantity as a valid number. The ranges here are *physical
//! plausibility* bounds that catch unit slips (µg typed as mg, grams typed as kilograms); clinical
//! limits belong to protocols, not to this crate.
//!
//! Arithmetic exists only where it is dimensionally meaningful (`MgPerKg * Kilograms = Milligrams`,
//! `MgPerHour / MgPerMl = MlPerHour`); conversions between units of one dimension are named
//! (`Minutes::to_seconds`, `NanogramsPerMl::from(MicrogramsPerMl)`).
#![deny(missing_docs)]

mod parse;

use std::fmt;
use std::ops::{Add, Div, Mul};

pub use parse::ParseQuantityError;

/// A value that could not become a quantity: not finite, or outside the allowed range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{quantity} {value} {unit} is not allowed: it must be a finite number from {min} to {max} {unit}")]
pub struct QuantityError {
    /// What the value was meant to be, e.g. "weight".
    pub quantity: &'static str,
    /// The unit symbol, e.g. "kg".
    pub unit: &'static str,
    /// The rejected value.
    pub value: f64,
    /// Smallest allowed value.
    pub min: f64,
    /// Largest allowed value.
    pub max: f64,
}

/// Molar mass of ketamine free base, C13H16ClNO, in g/mol.
/// Source: The Merck Index monograph "Ketamine" (CAS 6740-88-1): 237.73; NCATS Inxight Drugs
/// (UNII 690G0D6V8H): 237.725; both agree with the formula and IUPAC atomic weights.
/// The team's domain notes (and issue 2) say 238.75 g/mol, which matches no source and looks like a
/// transcription slip; the difference is 0.4 %. Zanos et al. 2018 (Pharmacol Rev 70:621, Table 1)
/// pair 185 ng/mL with 0.78 µM, consistent with either value.
pub const KETAMINE_BASE_GRAMS_PER_MOLE: f64 = 237.73;

macro_rules! quantity {
    (
        $(#[$doc:meta])*
        $name:ident, quantity = $what:literal, unit = $unit:literal, min = $min:expr, max = $max:expr
    ) => {
        $(#[$doc])*
        ///
        /// Stored and sent as a bare number in its unit; reading one checks the range as `new` does,
        /// so a stored value out of range is an error, never a quantity the type forbids.
        #[derive(Clone, Copy, Debug, PartialEq, PartialOrd, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "f64", into = "f64")]
        pub struct $name(f64);

        impl TryFrom<f64> for $name {
            type Error = QuantityError;
            fn try_from(value: f64) -> Result<Self, QuantityError> {
                Self::new(value)
            }
        }

        impl From<$name> for f64 {
            fn from(quantity: $name) -> f64 {
                quantity.0
            }
        }

        impl $name {
            /// The unit symbol this quantity is displayed and parsed with.
            pub const UNIT: &'static str = $unit;
            /// Smallest value `new` accepts.
            pub const MIN: f64 = $min;
            /// Largest value `new` accepts.
            pub const MAX: f64 = $max;

            /// Checks `value` (finite, within [`Self::MIN`], [`Self::MAX`]) and wraps it.
            pub fn new(value: f64) -> Result<Self, QuantityError> {
                // `contains` is false for NaN, so NaN is rejected too.
                if !value.is_finite() || !(Self::MIN..=Self::MAX).contains(&value) {
                    return Err(QuantityError {
                        quantity: $what,
                        unit: $unit,
                        value,
                        min: Self::MIN,
                        max: Self::MAX,
                    });
                }
                Ok(Self(value))
            }

            /// Zero of this quantity.
            pub const ZERO: Self = Self(0.0);

            /// The number, in this type's unit.
            pub const fn get(self) -> f64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match f.precision() {
                    Some(p) => write!(f, "{:.*} {}", p, self.0, $unit),
                    None => write!(f, "{} {}", self.0, $unit),
                }
            }
        }
    };
}

quantity!(
    /// A mass of drug, in milligrams.
    Milligrams, quantity = "amount", unit = "mg", min = 0.0, max = 100_000.0
);
quantity!(
    /// A weight-normalised dose, in milligrams per kilogram of body weight.
    MgPerKg, quantity = "dose", unit = "mg/kg", min = 0.0, max = 100.0
);
quantity!(
    /// A dosing rate, in milligrams per hour.
    MgPerHour, quantity = "dose rate", unit = "mg/h", min = 0.0, max = 100_000.0
);
quantity!(
    /// A weight-normalised dosing rate, in milligrams per kilogram per hour.
    MgPerKgPerHour, quantity = "dose rate", unit = "mg/kg/h", min = 0.0, max = 100.0
);
quantity!(
    /// A transdermal delivery rate, in micrograms per hour (how fentanyl patches are labelled).
    MicrogramsPerHour, quantity = "delivery rate", unit = "µg/h", min = 0.0, max = 10_000.0
);
quantity!(
    /// A pump rate, in millilitres per hour.
    MlPerHour, quantity = "pump rate", unit = "mL/h", min = 0.0, max = 10_000.0
);
quantity!(
    /// A volume of solution, in millilitres.
    Millilitres, quantity = "volume", unit = "mL", min = 0.0, max = 10_000.0
);
quantity!(
    /// The drug concentration of a syringe or bag, in milligrams per millilitre. Never zero.
    MgPerMl, quantity = "syringe concentration", unit = "mg/mL", min = 1e-6, max = 200.0
);
quantity!(
    /// A blood, plasma or effect-site concentration, in micrograms per millilitre (= mg/L).
    MicrogramsPerMl, quantity = "concentration", unit = "µg/mL", min = 0.0, max = 1000.0
);
quantity!(
    /// A concentration in nanograms per millilitre (= µg/L), the unit most ketamine papers use.
    NanogramsPerMl, quantity = "concentration", unit = "ng/mL", min = 0.0, max = 1_000_000.0
);
quantity!(
    /// A molar concentration in nanomoles per litre (= pmol/mL).
    NanomolesPerLitre, quantity = "concentration", unit = "nmol/L", min = 0.0, max = 10_000_000.0
);
quantity!(
    /// Body weight, in kilograms.
    Kilograms, quantity = "weight", unit = "kg", min = 0.3, max = 500.0
);
quantity!(
    /// Body height, in centimetres.
    Centimetres, quantity = "height", unit = "cm", min = 20.0, max = 300.0
);
quantity!(
    /// Age, in years.
    Years, quantity = "age", unit = "years", min = 0.0, max = 130.0
);
quantity!(
    /// A time span in seconds.
    Seconds, quantity = "time", unit = "s", min = 0.0, max = 1.0e8
);
quantity!(
    /// A time span in minutes.
    Minutes, quantity = "time", unit = "min", min = 0.0, max = 1.0e8 / 60.0
);
quantity!(
    /// A time span in hours.
    Hours, quantity = "time", unit = "h", min = 0.0, max = 1.0e8 / 3600.0
);
quantity!(
    /// A first-order rate constant, per minute (e.g. ke0).
    PerMinute, quantity = "rate constant", unit = "/min", min = 0.0, max = 1000.0
);
quantity!(
    /// A volume of distribution, in litres. Never zero.
    Litres, quantity = "volume of distribution", unit = "L", min = 1e-6, max = 100_000.0
);
quantity!(
    /// A clearance, in litres per hour.
    LitresPerHour, quantity = "clearance", unit = "L/h", min = 0.0, max = 100_000.0
);

// ---- Conversions within one dimension -------------------------------------------------------

impl Minutes {
    /// The same span in seconds.
    pub fn to_seconds(self) -> Seconds {
        Seconds(self.0 * 60.0)
    }
}

impl Hours {
    /// The same span in seconds.
    pub fn to_seconds(self) -> Seconds {
        Seconds(self.0 * 3600.0)
    }
}

impl Seconds {
    /// The same span in minutes.
    pub fn to_minutes(self) -> Minutes {
        Minutes(self.0 / 60.0)
    }
    /// The same span in hours.
    pub fn to_hours(self) -> Hours {
        Hours(self.0 / 3600.0)
    }
}

impl From<Minutes> for Seconds {
    fn from(value: Minutes) -> Self {
        value.to_seconds()
    }
}

impl From<Hours> for Seconds {
    fn from(value: Hours) -> Self {
        value.to_seconds()
    }
}

impl Add for Seconds {
    type Output = Seconds;
    fn add(self, rhs: Seconds) -> Seconds {
        Seconds(self.0 + rhs.0)
    }
}

impl PerMinute {
    /// The same rate constant per second (the engine's internal time unit).
    pub fn per_second(self) -> f64 {
        self.0 / 60.0
    }
    /// Builds a rate constant from a half-life: k = ln 2 / t½.
    pub fn from_half_life(half_life: Minutes) -> Result<Self, QuantityError> {
        Self::new(std::f64::consts::LN_2 / half_life.0)
    }
    /// The half-life ln 2 / k, in minutes (infinite for k = 0).
    pub fn half_life(self) -> f64 {
        std::f64::consts::LN_2 / self.0
    }
}

impl From<MicrogramsPerMl> for NanogramsPerMl {
    fn from(value: MicrogramsPerMl) -> Self {
        NanogramsPerMl(value.0 * 1000.0)
    }
}

impl From<NanogramsPerMl> for MicrogramsPerMl {
    fn from(value: NanogramsPerMl) -> Self {
        MicrogramsPerMl(value.0 / 1000.0)
    }
}

impl NanogramsPerMl {
    /// Molar concentration for a compound of the given molar mass (g/mol): ng/mL ÷ g/mol = µmol/L.
    pub fn to_nanomoles_per_litre(self, grams_per_mole: f64) -> NanomolesPerLitre {
        NanomolesPerLitre(self.0 / grams_per_mole * 1000.0)
    }
}

impl NanomolesPerLitre {
    /// Mass concentration for a compound of the given molar mass (g/mol).
    pub fn to_nanograms_per_ml(self, grams_per_mole: f64) -> NanogramsPerMl {
        NanogramsPerMl(self.0 * grams_per_mole / 1000.0)
    }
}

impl LitresPerHour {
    /// The same clearance in litres per minute.
    pub fn litres_per_minute(self) -> f64 {
        self.0 / 60.0
    }
}

// ---- Arithmetic across dimensions --------------------------------------------------------

impl Add for Milligrams {
    type Output = Milligrams;
    fn add(self, rhs: Milligrams) -> Milligrams {
        Milligrams(self.0 + rhs.0)
    }
}

impl std::iter::Sum for Milligrams {
    fn sum<I: Iterator<Item = Milligrams>>(iter: I) -> Milligrams {
        Milligrams(iter.map(|m| m.0).sum())
    }
}

impl Mul<Kilograms> for MgPerKg {
    type Output = Milligrams;
    fn mul(self, weight: Kilograms) -> Milligrams {
        Milligrams(self.0 * weight.0)
    }
}

impl Div<Kilograms> for Milligrams {
    type Output = MgPerKg;
    fn div(self, weight: Kilograms) -> MgPerKg {
        MgPerKg(self.0 / weight.0)
    }
}

impl Mul<Kilograms> for MgPerKgPerHour {
    type Output = MgPerHour;
    fn mul(self, weight: Kilograms) -> MgPerHour {
        MgPerHour(self.0 * weight.0)
    }
}

impl Div<Kilograms> for MgPerHour {
    type Output = MgPerKgPerHour;
    fn div(self, weight: Kilograms) -> MgPerKgPerHour {
        MgPerKgPerHour(self.0 / weight.0)
    }
}

impl Mul<Hours> for MgPerHour {
    type Output = Milligrams;
    fn mul(self, span: Hours) -> Milligrams {
        Milligrams(self.0 * span.0)
    }
}

impl Div<MgPerMl> for MgPerHour {
    type Output = MlPerHour;
    fn div(self, concentration: MgPerMl) -> MlPerHour {
        MlPerHour(self.0 / concentration.0)
    }
}

impl Mul<MgPerMl> for MlPerHour {
    type Output = MgPerHour;
    fn mul(self, concentration: MgPerMl) -> MgPerHour {
        MgPerHour(self.0 * concentration.0)
    }
}

impl Div<MgPerMl> for Milligrams {
    type Output = Millilitres;
    fn div(self, concentration: MgPerMl) -> Millilitres {
        Millilitres(self.0 / concentration.0)
    }
}

impl Milligrams {
    /// The constant rate that delivers this amount over `span`; `None` when `span` is zero.
    pub fn over(self, span: Seconds) -> Option<MgPerHour> {
        (span.0 > 0.0).then(|| MgPerHour(self.0 / span.to_hours().0))
    }
}

impl MgPerHour {
    /// Rate in mg per second (the engine's internal unit).
    pub fn mg_per_second(self) -> f64 {
        self.0 / 3600.0
    }
    /// Builds a rate from mg per second; `None` if negative or not finite.
    pub fn from_mg_per_second(value: f64) -> Option<MgPerHour> {
        MgPerHour::new(value * 3600.0).ok()
    }
    /// The amount delivered at this rate over `span`.
    pub fn amount_over(self, span: Seconds) -> Milligrams {
        Milligrams(self.0 * span.to_hours().0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn construction_rejects_nan_infinity_and_out_of_range() {
        assert!(Kilograms::new(f64::NAN).is_err());
        assert!(Kilograms::new(f64::INFINITY).is_err());
        assert!(Kilograms::new(0.0).is_err());
        assert!(Milligrams::new(-1.0).is_err());
        assert!(MgPerMl::new(0.0).is_err());
        assert_eq!(Kilograms::new(70.0).unwrap().get(), 70.0);
    }

    #[test]
    fn error_names_value_unit_and_range() {
        let err = Kilograms::new(0.0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "weight 0 kg is not allowed: it must be a finite number from 0.3 to 500 kg"
        );
    }

    #[test]
    fn dose_times_weight_is_milligrams() {
        let dose = MgPerKg::new(0.5).unwrap() * Kilograms::new(70.0).unwrap();
        assert_eq!(dose, Milligrams::new(35.0).unwrap());
        let rate = MgPerKgPerHour::new(0.35).unwrap() * Kilograms::new(80.0).unwrap();
        assert!((rate.get() - 28.0).abs() < 1e-12);
    }

    #[test]
    fn pump_rate_from_dose_rate_and_concentration() {
        // 35 mg over 40 min = 52.5 mg/h; at 1 mg/mL that is 52.5 mL/h.
        let rate = Milligrams::new(35.0)
            .unwrap()
            .over(Minutes::new(40.0).unwrap().to_seconds())
            .unwrap();
        assert!((rate.get() - 52.5).abs() < 1e-12);
        let pump = rate / MgPerMl::new(1.0).unwrap();
        assert!((pump.get() - 52.5).abs() < 1e-12);
        assert!(((pump * MgPerMl::new(1.0).unwrap()).get() - 52.5).abs() < 1e-12);
        assert!(Milligrams::new(1.0).unwrap().over(Seconds::ZERO).is_none());
    }

    #[test]
    fn concentration_conversions_use_ketamine_base_molar_mass() {
        // Zanos 2018 Table 1: 185 ng/mL ≈ 0.78 µM.
        let ng = NanogramsPerMl::from(MicrogramsPerMl::new(0.185).unwrap());
        assert!((ng.get() - 185.0).abs() < 1e-9);
        let nmol = ng.to_nanomoles_per_litre(KETAMINE_BASE_GRAMS_PER_MOLE);
        assert!((nmol.get() - 778.19).abs() < 0.01);
        let back = nmol.to_nanograms_per_ml(KETAMINE_BASE_GRAMS_PER_MOLE);
        assert!((back.get() - 185.0).abs() < 1e-9);
        // Olofsen 2022: C50 0.51 nmol/mL = 510 nmol/L ≈ 121.2 ng/mL.
        let c50 = NanomolesPerLitre::new(510.0)
            .unwrap()
            .to_nanograms_per_ml(KETAMINE_BASE_GRAMS_PER_MOLE);
        assert!((c50.get() - 121.24).abs() < 0.01);
    }

    #[test]
    fn half_life_and_rate_constant_round_trip() {
        let ke0 = PerMinute::from_half_life(Minutes::new(8.3).unwrap()).unwrap();
        assert!((ke0.get() - 0.083_51).abs() < 1e-4);
        assert!((ke0.half_life() - 8.3).abs() < 1e-12);
        assert!((ke0.per_second() * 60.0 - ke0.get()).abs() < 1e-15);
    }

    proptest::proptest! {
        #[test]
        fn any_accepted_value_is_finite_and_in_range(v in proptest::num::f64::ANY) {
            if let Ok(w) = Kilograms::new(v) {
                proptest::prop_assert!(w.get().is_finite());
                proptest::prop_assert!((Kilograms::MIN..=Kilograms::MAX).contains(&w.get()));
            }
        }
    }
}
