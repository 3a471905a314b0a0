//! Dosing weight (`shared/domain/clinical.md` §10): actual, ideal (Devine) or adjusted body weight.

use ketaflow_units::{Centimetres, Kilograms};

use crate::patient::Sex;

/// Which weight a protocol doses on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightBasis {
    /// Total (actual) body weight.
    Actual,
    /// Ideal body weight (Devine 1974).
    Ideal,
    /// Adjusted body weight, IBW + 0.4 × (TBW − IBW) (Bauer 2001), when TBW exceeds IBW.
    Adjusted,
}

impl WeightBasis {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            WeightBasis::Actual => "actual",
            WeightBasis::Ideal => "ideal",
            WeightBasis::Adjusted => "adjusted",
        }
    }
}

/// Height below which the Devine formula is unreliable: 60 in = 152.4 cm (globalrph; clinical.md §10).
pub const DEVINE_MIN_HEIGHT_CM: f64 = 152.4;

/// The dosing weight with how it was obtained.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DosingWeight {
    /// The weight to multiply mg/kg doses by.
    pub weight: Kilograms,
    /// The basis asked for.
    pub basis: WeightBasis,
    /// The basis actually used (adjusted falls back to actual when TBW < IBW).
    pub used: WeightBasis,
    /// Ideal body weight, when computed.
    pub ideal: Option<Kilograms>,
    /// Set when the height is under 152.4 cm and the Devine formula is unreliable.
    pub short_stature_warning: bool,
}

/// Devine ideal body weight: 50 kg (male) or 45.5 kg (female) + 2.3 kg per inch over 5 ft,
/// i.e. 0.9055 kg per cm over 152.4 cm (Devine BJ. Drug Intell Clin Pharm 1974;8:650-655).
/// Below 152.4 cm the formula is extrapolated downwards and flagged by [`dosing_weight`].
pub fn devine_ideal_weight_kg(height: Centimetres, sex: Sex) -> f64 {
    let base = match sex {
        Sex::Male => 50.0,
        Sex::Female => 45.5,
    };
    base + 2.3 / 2.54 * (height.get() - DEVINE_MIN_HEIGHT_CM)
}

/// Why a dosing weight cannot be computed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DosingWeightError {
    /// Ideal or adjusted weight needs a height measurement.
    #[error("dosing on {basis} body weight needs a height measurement; record the patient's height")]
    HeightNeeded {
        /// The basis asked for.
        basis: &'static str,
    },
    /// The formula gives an implausible weight (a very short patient).
    #[error(
        "the Devine formula gives {ideal_kg:.1} kg for this height; dose on actual weight or enter a dosing weight by hand"
    )]
    Implausible {
        /// The ideal weight the formula gave, kg.
        ideal_kg: f64,
    },
}

/// The dosing weight for `basis` from total body weight, height and sex.
pub fn dosing_weight(
    basis: WeightBasis,
    total: Kilograms,
    height: Option<Centimetres>,
    sex: Sex,
) -> Result<DosingWeight, DosingWeightError> {
    if basis == WeightBasis::Actual {
        return Ok(DosingWeight {
            weight: total,
            basis,
            used: WeightBasis::Actual,
            ideal: None,
            short_stature_warning: false,
        });
    }
    let height = height.ok_or(DosingWeightError::HeightNeeded { basis: basis.code() })?;
    let ideal_kg = devine_ideal_weight_kg(height, sex);
    let ideal = Kilograms::new(ideal_kg).map_err(|_| DosingWeightError::Implausible { ideal_kg })?;
    let short = height.get() < DEVINE_MIN_HEIGHT_CM;
    // Both ideal and adjusted bases fall back to actual weight when the patient weighs less than
    // their ideal weight: dosing above actual weight is never intended (clinical.md §10).
    let (weight, used) = if total.get() <= ideal_kg {
        (total, WeightBasis::Actual)
    } else {
        match basis {
            WeightBasis::Ideal => (ideal, WeightBasis::Ideal),
            _ => (
                Kilograms::new(ideal_kg + 0.4 * (total.get() - ideal_kg))
                    .map_err(|_| DosingWeightError::Implausible { ideal_kg })?,
                WeightBasis::Adjusted,
            ),
        }
    };
    Ok(DosingWeight {
        weight,
        basis,
        used,
        ideal: Some(ideal),
        short_stature_warning: short,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(v: f64) -> Centimetres {
        Centimetres::new(v).unwrap()
    }
    fn kg(v: f64) -> Kilograms {
        Kilograms::new(v).unwrap()
    }

    #[test]
    fn devine_matches_the_inch_form() {
        // 5 ft 10 in = 177.8 cm: male 50 + 2.3 × 10 = 73.0 kg; female 45.5 + 23 = 68.5 kg.
        assert!((devine_ideal_weight_kg(cm(177.8), Sex::Male) - 73.0).abs() < 1e-9);
        assert!((devine_ideal_weight_kg(cm(177.8), Sex::Female) - 68.5).abs() < 1e-9);
        assert!((devine_ideal_weight_kg(cm(152.4), Sex::Male) - 50.0).abs() < 1e-12);
    }

    #[test]
    fn adjusted_weight_is_ibw_plus_forty_percent_of_the_excess() {
        // 120 kg, 177.8 cm male: IBW 73, AdjBW = 73 + 0.4 × 47 = 91.8 kg.
        let w = dosing_weight(WeightBasis::Adjusted, kg(120.0), Some(cm(177.8)), Sex::Male).unwrap();
        assert!((w.weight.get() - 91.8).abs() < 1e-9);
        assert_eq!(w.used, WeightBasis::Adjusted);
        let ideal = dosing_weight(WeightBasis::Ideal, kg(120.0), Some(cm(177.8)), Sex::Male).unwrap();
        assert!((ideal.weight.get() - 73.0).abs() < 1e-9);
    }

    #[test]
    fn lighter_than_ideal_doses_on_actual_weight() {
        let w = dosing_weight(WeightBasis::Adjusted, kg(60.0), Some(cm(177.8)), Sex::Male).unwrap();
        assert_eq!(w.weight.get(), 60.0);
        assert_eq!(w.used, WeightBasis::Actual);
    }

    #[test]
    fn short_stature_is_flagged_and_missing_height_is_an_error() {
        let w = dosing_weight(WeightBasis::Adjusted, kg(90.0), Some(cm(150.0)), Sex::Female).unwrap();
        assert!(w.short_stature_warning);
        let err = dosing_weight(WeightBasis::Ideal, kg(90.0), None, Sex::Female).unwrap_err();
        assert_eq!(
            err.to_string(),
            "dosing on ideal body weight needs a height measurement; record the patient's height"
        );
    }
}
