//! Reading quantities from text such as `70kg`, `0.2 µg/mL`, `60min` or `0.652/min`.
//!
//! A quantity is a number followed by a unit. Units are matched without regard to case or spaces,
//! and `µ`, `μ` and `mc` all mean micro. Each type accepts its own unit and a few convertible
//! ones (a concentration in ng/mL is converted to µg/mL); a bare number is accepted only where the
//! unit cannot be ambiguous (age in years).

use std::str::FromStr;

use crate::{
    Centimetres, Hours, Kilograms, Litres, LitresPerHour, MgPerHour, MgPerKg, MgPerKgPerHour, MgPerMl,
    MicrogramsPerMl, Milligrams, Millilitres, Minutes, MlPerHour, NanogramsPerMl, NanomolesPerLitre,
    PerMinute, QuantityError, Seconds, Years,
};

/// Text that is not a valid quantity.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseQuantityError {
    /// No number could be read at the start of the text.
    #[error("{text:?} does not start with a number; write e.g. {example}")]
    NoNumber {
        /// The text as given.
        text: String,
        /// An example of a valid value.
        example: &'static str,
    },
    /// The unit is missing or not one this quantity accepts.
    #[error("{text:?} has unit {unit:?}, which is not allowed here; use one of: {allowed}")]
    WrongUnit {
        /// The text as given.
        text: String,
        /// The unit as read.
        unit: String,
        /// The accepted units, comma separated.
        allowed: String,
    },
    /// The number converted fine but is out of range.
    #[error(transparent)]
    OutOfRange(#[from] QuantityError),
}

/// Splits `text` into its leading number and the rest.
fn split_number(text: &str) -> Option<(f64, &str)> {
    let trimmed = text.trim();
    let end = trimmed
        .char_indices()
        .find(|&(i, c)| {
            !(c.is_ascii_digit()
                || c == '.'
                || ((c == '-' || c == '+') && (i == 0 || trimmed[..i].ends_with(['e', 'E'])))
                || ((c == 'e' || c == 'E')
                    && i > 0
                    && trimmed[i + 1..].starts_with(|n: char| n.is_ascii_digit() || n == '-' || n == '+')))
        })
        .map_or(trimmed.len(), |(i, _)| i);
    let value = trimmed[..end].parse::<f64>().ok()?;
    Some((value, &trimmed[end..]))
}

/// Lower-cases, drops whitespace and spells every micro prefix as `u`.
fn normalise_unit(unit: &str) -> String {
    let compact: String = unit
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect();
    let compact = compact.replace(['µ', 'μ'], "u");
    // "mcg" and "mcg/ml" are common clinical spellings of µg.
    compact.replace("mcg", "ug")
}

/// Parses `text` as a number with one of `units` (normalised spelling, factor to the target unit).
fn parse_with(
    text: &str,
    units: &[(&str, f64)],
    bare_number_unit: Option<f64>,
    example: &'static str,
) -> Result<f64, ParseQuantityError> {
    let (value, unit_text) = split_number(text).ok_or_else(|| ParseQuantityError::NoNumber {
        text: text.to_string(),
        example,
    })?;
    let unit = normalise_unit(unit_text);
    if let (true, Some(factor)) = (unit.is_empty(), bare_number_unit) {
        return Ok(value * factor);
    }
    units
        .iter()
        .find(|(spelling, _)| *spelling == unit)
        .map(|(_, factor)| value * factor)
        .ok_or_else(|| ParseQuantityError::WrongUnit {
            text: text.to_string(),
            unit: unit_text.trim().to_string(),
            allowed: units.iter().map(|(s, _)| *s).collect::<Vec<_>>().join(", "),
        })
}

macro_rules! parse_quantity {
    ($name:ident, example = $example:literal, bare = $bare:expr, units = [$(($spelling:literal, $factor:expr)),+ $(,)?]) => {
        impl FromStr for $name {
            type Err = ParseQuantityError;
            /// Parses e.g. `
            #[doc = $example]
            /// `.
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                let value = parse_with(text, &[$(($spelling, $factor)),+], $bare, $example)?;
                Ok($name::new(value)?)
            }
        }
    };
}

const SECONDS_PER_MINUTE: f64 = 60.0;
const SECONDS_PER_HOUR: f64 = 3600.0;
const SECONDS_PER_DAY: f64 = 86_400.0;
const KG_PER_POUND: f64 = 0.453_592_37;

parse_quantity!(
    Milligrams,
    example = "35mg",
    bare = None,
    units = [("mg", 1.0), ("g", 1000.0), ("ug", 1e-3)]
);
parse_quantity!(
    MgPerKg,
    example = "0.5mg/kg",
    bare = None,
    units = [("mg/kg", 1.0), ("ug/kg", 1e-3)]
);
parse_quantity!(
    MgPerHour,
    example = "22mg/h",
    bare = None,
    units = [("mg/h", 1.0), ("mg/hr", 1.0), ("mg/min", 60.0)]
);
parse_quantity!(
    MgPerKgPerHour,
    example = "0.25mg/kg/h",
    bare = None,
    units = [
        ("mg/kg/h", 1.0),
        ("mg/kg/hr", 1.0),
        ("mg/kg/min", 60.0),
        ("ug/kg/min", 0.06)
    ]
);
parse_quantity!(
    MlPerHour,
    example = "1200mL/h",
    bare = None,
    units = [("ml/h", 1.0), ("ml/hr", 1.0)]
);
parse_quantity!(
    Millilitres,
    example = "50mL",
    bare = None,
    units = [("ml", 1.0), ("l", 1000.0)]
);
parse_quantity!(
    MgPerMl,
    example = "10mg/mL",
    bare = None,
    units = [("mg/ml", 1.0), ("ug/ml", 1e-3)]
);
parse_quantity!(
    MicrogramsPerMl,
    example = "0.2ug/mL",
    bare = None,
    units = [("ug/ml", 1.0), ("mg/l", 1.0), ("ng/ml", 1e-3), ("ug/l", 1e-3)]
);
parse_quantity!(
    NanogramsPerMl,
    example = "200ng/mL",
    bare = None,
    units = [("ng/ml", 1.0), ("ug/l", 1.0), ("ug/ml", 1000.0), ("mg/l", 1000.0)]
);
parse_quantity!(
    NanomolesPerLitre,
    example = "510nmol/L",
    bare = None,
    units = [
        ("nmol/l", 1.0),
        ("pmol/ml", 1.0),
        ("umol/l", 1000.0),
        ("nmol/ml", 1000.0)
    ]
);
parse_quantity!(
    Kilograms,
    example = "70kg",
    bare = None,
    units = [("kg", 1.0), ("lb", KG_PER_POUND)]
);
parse_quantity!(
    Centimetres,
    example = "170cm",
    bare = None,
    units = [("cm", 1.0), ("m", 100.0)]
);
parse_quantity!(
    Years,
    example = "40",
    bare = Some(1.0),
    units = [
        ("y", 1.0),
        ("yr", 1.0),
        ("yrs", 1.0),
        ("year", 1.0),
        ("years", 1.0)
    ]
);
parse_quantity!(
    Seconds,
    example = "60min",
    bare = None,
    units = [
        ("s", 1.0),
        ("sec", 1.0),
        ("min", SECONDS_PER_MINUTE),
        ("h", SECONDS_PER_HOUR),
        ("hr", SECONDS_PER_HOUR),
        ("hours", SECONDS_PER_HOUR),
        ("d", SECONDS_PER_DAY),
        ("days", SECONDS_PER_DAY)
    ]
);
parse_quantity!(
    Minutes,
    example = "40min",
    bare = None,
    units = [
        ("min", 1.0),
        ("s", 1.0 / SECONDS_PER_MINUTE),
        ("h", 60.0),
        ("hr", 60.0)
    ]
);
parse_quantity!(
    Hours,
    example = "4h",
    bare = None,
    units = [
        ("h", 1.0),
        ("hr", 1.0),
        ("hours", 1.0),
        ("min", 1.0 / 60.0),
        ("d", 24.0),
        ("days", 24.0)
    ]
);
parse_quantity!(
    PerMinute,
    example = "0.652/min",
    bare = None,
    units = [
        ("/min", 1.0),
        ("1/min", 1.0),
        ("/s", 60.0),
        ("1/s", 60.0),
        ("/h", 1.0 / 60.0),
        ("1/h", 1.0 / 60.0)
    ]
);
parse_quantity!(
    Litres,
    example = "25L",
    bare = None,
    units = [("l", 1.0), ("ml", 1e-3)]
);
parse_quantity!(
    LitresPerHour,
    example = "84L/h",
    bare = None,
    units = [("l/h", 1.0), ("l/min", 60.0)]
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_spellings_clinicians_type() {
        assert_eq!("70kg".parse::<Kilograms>().unwrap().get(), 70.0);
        assert_eq!(" 70 kg ".parse::<Kilograms>().unwrap().get(), 70.0);
        assert_eq!("0.2ug/mL".parse::<MicrogramsPerMl>().unwrap().get(), 0.2);
        assert_eq!("0.2 µg/mL".parse::<MicrogramsPerMl>().unwrap().get(), 0.2);
        assert_eq!("0.2mcg/ml".parse::<MicrogramsPerMl>().unwrap().get(), 0.2);
        assert!(("200ng/mL".parse::<MicrogramsPerMl>().unwrap().get() - 0.2).abs() < 1e-15);
        assert_eq!("60min".parse::<Seconds>().unwrap().get(), 3600.0);
        assert_eq!("4 h".parse::<Seconds>().unwrap().get(), 14_400.0);
        assert_eq!("10s".parse::<Seconds>().unwrap().get(), 10.0);
        assert_eq!("0.652/min".parse::<PerMinute>().unwrap().get(), 0.652);
        assert_eq!("1200mL/h".parse::<MlPerHour>().unwrap().get(), 1200.0);
        assert_eq!("10mg/mL".parse::<MgPerMl>().unwrap().get(), 10.0);
        assert_eq!("170cm".parse::<Centimetres>().unwrap().get(), 170.0);
        assert_eq!("40".parse::<Years>().unwrap().get(), 40.0);
        assert_eq!("1e3ng/mL".parse::<NanogramsPerMl>().unwrap().get(), 1000.0);
    }

    #[test]
    fn a_missing_or_wrong_unit_is_an_error_listing_the_allowed_ones() {
        let err = "70".parse::<Kilograms>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"70\" has unit \"\", which is not allowed here; use one of: kg, lb"
        );
        let err = "0.2mg/kg".parse::<MicrogramsPerMl>().unwrap_err();
        assert!(
            err.to_string().contains("use one of: ug/ml, mg/l, ng/ml, ug/l"),
            "{err}"
        );
    }

    #[test]
    fn text_without_a_number_says_what_to_write() {
        let err = "heavy".parse::<Kilograms>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"heavy\" does not start with a number; write e.g. 70kg"
        );
    }

    #[test]
    fn range_is_checked_after_conversion() {
        let err = "0kg".parse::<Kilograms>().unwrap_err();
        assert!(matches!(err, ParseQuantityError::OutOfRange(_)));
        assert!("-5mg".parse::<Milligrams>().is_err());
        assert!("NaNkg".parse::<Kilograms>().is_err());
    }
}
