//! Dosing regimens as a clinician states them, and the schedule the engine runs.
//!
//! A [`Regimen`] is a list of doses in clinical units (mg, mg/kg, mg/h, mg/kg/h, mL/h of a given
//! concentration). [`Regimen::resolve`] turns it, for one body weight, into a [`Schedule`]: a
//! single pump line (piecewise-constant rate in mg/s, no two infusions at once) plus instantaneous
//! boluses. Rate changes are consecutive infusions, pauses are gaps, a stop is the end of the last one.

use std::fmt;
use std::str::FromStr;

use ketaflow_units::{
    Kilograms, MgPerHour, MgPerKg, MgPerKgPerHour, MgPerMl, Milligrams, MlPerHour, Seconds,
};

/// An amount of drug, absolute or per kilogram of dosing weight.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DoseAmount {
    /// Milligrams.
    Mg(Milligrams),
    /// Milligrams per kilogram.
    MgPerKg(MgPerKg),
}

impl DoseAmount {
    fn milligrams(self, weight: Kilograms) -> Milligrams {
        match self {
            DoseAmount::Mg(mg) => mg,
            DoseAmount::MgPerKg(per_kg) => per_kg * weight,
        }
    }
}

impl fmt::Display for DoseAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DoseAmount::Mg(v) => v.fmt(f),
            DoseAmount::MgPerKg(v) => v.fmt(f),
        }
    }
}

/// A rate of drug delivery.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DoseRate {
    /// mg/h.
    MgPerHour(MgPerHour),
    /// mg/kg/h.
    MgPerKgPerHour(MgPerKgPerHour),
    /// A pump rate with the concentration in the syringe or bag.
    MlPerHour(MlPerHour, MgPerMl),
}

impl DoseRate {
    fn mg_per_hour(self, weight: Kilograms) -> MgPerHour {
        match self {
            DoseRate::MgPerHour(rate) => rate,
            DoseRate::MgPerKgPerHour(rate) => rate * weight,
            DoseRate::MlPerHour(pump, concentration) => pump * concentration,
        }
    }
}

impl fmt::Display for DoseRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DoseRate::MgPerHour(v) => v.fmt(f),
            DoseRate::MgPerKgPerHour(v) => v.fmt(f),
            DoseRate::MlPerHour(v, c) => write!(f, "{v} of {c}"),
        }
    }
}

/// One dose.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Dose {
    /// An instantaneous bolus.
    Bolus {
        /// When, from time zero.
        at: Seconds,
        /// How much.
        amount: DoseAmount,
    },
    /// A total amount spread evenly over a duration ("0.5 mg/kg over 40 min").
    AmountOver {
        /// Start, from time zero.
        start: Seconds,
        /// How long.
        duration: Seconds,
        /// How much in total.
        amount: DoseAmount,
    },
    /// A rate held for a duration ("0.25 mg/kg/h for 4 h").
    RateFor {
        /// Start, from time zero.
        start: Seconds,
        /// How long.
        duration: Seconds,
        /// The rate.
        rate: DoseRate,
    },
}

impl Dose {
    /// Start time of the dose.
    pub fn start(&self) -> Seconds {
        match self {
            Dose::Bolus { at, .. } => *at,
            Dose::AmountOver { start, .. } | Dose::RateFor { start, .. } => *start,
        }
    }
}

impl fmt::Display for Dose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mins = |s: Seconds| s.get() / 60.0;
        match self {
            Dose::Bolus { at, amount } => write!(f, "{amount} bolus at {} min", mins(*at)),
            Dose::AmountOver {
                start,
                duration,
                amount,
            } => {
                write!(
                    f,
                    "{amount} over {} min from {} min",
                    mins(*duration),
                    mins(*start)
                )
            }
            Dose::RateFor {
                start,
                duration,
                rate,
            } => {
                write!(f, "{rate} for {} min from {} min", mins(*duration), mins(*start))
            }
        }
    }
}

/// Why a regimen cannot be run.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RegimenError {
    /// Two infusions are on at once; Ketaflow models one pump line.
    #[error(
        "infusions overlap: \"{first}\" is still running when \"{second}\" starts; a rate change is a new infusion starting when the previous one ends"
    )]
    Overlap {
        /// The earlier infusion.
        first: String,
        /// The later infusion.
        second: String,
    },
    /// An infusion of zero length was given for an amount.
    #[error("\"{dose}\" has a duration of 0; give a duration above 0 or use a bolus")]
    ZeroDuration {
        /// The dose.
        dose: String,
    },
    /// A resulting rate or amount is outside its allowed range.
    #[error("\"{dose}\" gives {what}")]
    OutOfRange {
        /// The dose.
        dose: String,
        /// The problem.
        what: String,
    },
}

/// A list of doses in clinical units.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Regimen {
    /// The doses, in any order.
    pub doses: Vec<Dose>,
}

/// One constant-rate infusion segment, in engine units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Segment {
    /// Start, seconds.
    pub start_s: f64,
    /// End, seconds (> start).
    pub end_s: f64,
    /// Rate, mg/s.
    pub rate_mg_per_s: f64,
}

/// An instantaneous bolus in engine units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BolusAt {
    /// When, seconds.
    pub at_s: f64,
    /// Amount, mg.
    pub amount_mg: f64,
}

/// What the engine runs: one pump line and instantaneous boluses, both sorted by time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Schedule {
    // Invariant: sorted by start, non-overlapping, each end > start, rate finite and ≥ 0.
    segments: Vec<Segment>,
    // Invariant: sorted by time, amounts finite and ≥ 0.
    boluses: Vec<BolusAt>,
}

impl Schedule {
    /// Builds a schedule from engine-unit parts, checking the invariants.
    pub fn new(mut segments: Vec<Segment>, mut boluses: Vec<BolusAt>) -> Result<Schedule, RegimenError> {
        segments.retain(|s| s.end_s > s.start_s);
        segments.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
        for s in &segments {
            if !(s.start_s >= 0.0
                && s.end_s.is_finite()
                && s.rate_mg_per_s.is_finite()
                && s.rate_mg_per_s >= 0.0)
            {
                return Err(RegimenError::OutOfRange {
                    dose: format!("infusion from {} s to {} s", s.start_s, s.end_s),
                    what: format!(
                        "a rate of {} mg/s; rates must be finite and ≥ 0, times ≥ 0",
                        s.rate_mg_per_s
                    ),
                });
            }
        }
        for pair in segments.windows(2) {
            // A tolerance of a microsecond absorbs rounding in consecutive segments built from minutes.
            if pair[1].start_s < pair[0].end_s - 1e-6 {
                return Err(RegimenError::Overlap {
                    first: format!(
                        "{} mg/h from {} s to {} s",
                        pair[0].rate_mg_per_s * 3600.0,
                        pair[0].start_s,
                        pair[0].end_s
                    ),
                    second: format!(
                        "{} mg/h from {} s to {} s",
                        pair[1].rate_mg_per_s * 3600.0,
                        pair[1].start_s,
                        pair[1].end_s
                    ),
                });
            }
        }
        for i in 1..segments.len() {
            if segments[i].start_s < segments[i - 1].end_s {
                segments[i].start_s = segments[i - 1].end_s;
            }
        }
        boluses.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
        for b in &boluses {
            if !(b.at_s >= 0.0 && b.at_s.is_finite() && b.amount_mg.is_finite() && b.amount_mg >= 0.0) {
                return Err(RegimenError::OutOfRange {
                    dose: format!("bolus at {} s", b.at_s),
                    what: format!("{} mg; amounts must be finite and ≥ 0, times ≥ 0", b.amount_mg),
                });
            }
        }
        Ok(Schedule { segments, boluses })
    }

    /// The infusion segments, sorted.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The boluses, sorted.
    pub fn boluses(&self) -> &[BolusAt] {
        &self.boluses
    }

    /// Total drug given, mg.
    pub fn total_mg(&self) -> f64 {
        self.segments
            .iter()
            .map(|s| s.rate_mg_per_s * (s.end_s - s.start_s))
            .sum::<f64>()
            + self.boluses.iter().map(|b| b.amount_mg).sum::<f64>()
    }

    /// Drug given up to time `t_s` (boluses at `t_s` included), mg.
    pub fn given_by(&self, t_s: f64) -> f64 {
        self.segments
            .iter()
            .map(|s| s.rate_mg_per_s * (t_s.min(s.end_s) - s.start_s).max(0.0))
            .sum::<f64>()
            + self
                .boluses
                .iter()
                .filter(|b| b.at_s <= t_s)
                .map(|b| b.amount_mg)
                .sum::<f64>()
    }

    /// When the last input ends, seconds (0 for an empty schedule).
    pub fn last_input_end_s(&self) -> f64 {
        let infusion = self.segments.last().map_or(0.0, |s| s.end_s);
        let bolus = self.boluses.last().map_or(0.0, |b| b.at_s);
        infusion.max(bolus)
    }

    /// Every time the input changes: segment starts and ends and bolus times, sorted, deduplicated.
    pub fn breakpoints(&self) -> Vec<f64> {
        let mut times: Vec<f64> = self
            .segments
            .iter()
            .flat_map(|s| [s.start_s, s.end_s])
            .chain(self.boluses.iter().map(|b| b.at_s))
            .collect();
        times.sort_by(f64::total_cmp);
        times.dedup();
        times
    }

    /// The infusion rate in force just after `t_s`, mg/s.
    pub fn rate_after(&self, t_s: f64) -> f64 {
        // Segments are sorted and disjoint: the only candidate is the last one starting at or before t.
        let after = self.segments.partition_point(|s| s.start_s <= t_s);
        after
            .checked_sub(1)
            .map(|i| &self.segments[i])
            .filter(|s| t_s < s.end_s)
            .map_or(0.0, |s| s.rate_mg_per_s)
    }
}

impl Regimen {
    /// A regimen of the given doses.
    pub fn new(doses: Vec<Dose>) -> Regimen {
        Regimen { doses }
    }

    /// Resolves weight-based doses for `weight` and checks that the infusions form one pump line.
    pub fn resolve(&self, weight: Kilograms) -> Result<Schedule, RegimenError> {
        let mut segments = Vec::new();
        let mut boluses = Vec::new();
        let mut labels = Vec::new();
        for dose in &self.doses {
            match *dose {
                Dose::Bolus { at, amount } => boluses.push(BolusAt {
                    at_s: at.get(),
                    amount_mg: amount.milligrams(weight).get(),
                }),
                Dose::AmountOver {
                    start,
                    duration,
                    amount,
                } => {
                    let rate = amount.milligrams(weight).over(duration).ok_or_else(|| {
                        RegimenError::ZeroDuration {
                            dose: dose.to_string(),
                        }
                    })?;
                    MgPerHour::new(rate.get()).map_err(|e| RegimenError::OutOfRange {
                        dose: dose.to_string(),
                        what: e.to_string(),
                    })?;
                    segments.push(Segment {
                        start_s: start.get(),
                        end_s: start.get() + duration.get(),
                        rate_mg_per_s: rate.mg_per_second(),
                    });
                    labels.push((start.get(), dose.to_string()));
                }
                Dose::RateFor {
                    start,
                    duration,
                    rate,
                } => {
                    let rate = rate.mg_per_hour(weight);
                    MgPerHour::new(rate.get()).map_err(|e| RegimenError::OutOfRange {
                        dose: dose.to_string(),
                        what: e.to_string(),
                    })?;
                    if duration.get() == 0.0 {
                        return Err(RegimenError::ZeroDuration {
                            dose: dose.to_string(),
                        });
                    }
                    segments.push(Segment {
                        start_s: start.get(),
                        end_s: start.get() + duration.get(),
                        rate_mg_per_s: rate.mg_per_second(),
                    });
                    labels.push((start.get(), dose.to_string()));
                }
            }
        }
        // Name overlapping doses in the user's own words rather than in engine units.
        let mut order: Vec<usize> = (0..segments.len()).collect();
        order.sort_by(|&a, &b| segments[a].start_s.total_cmp(&segments[b].start_s));
        for pair in order.windows(2) {
            let (a, b) = (&segments[pair[0]], &segments[pair[1]]);
            if b.start_s < a.end_s - 1e-6 {
                return Err(RegimenError::Overlap {
                    first: labels[pair[0]].1.clone(),
                    second: labels[pair[1]].1.clone(),
                });
            }
        }
        Schedule::new(segments, boluses)
    }
}

/// A dose expression that could not be read.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error(
    "cannot read dose {text:?}: {problem}. Examples: \"0.5 mg/kg over 40 min\", \"0.25 mg/kg/h for 4 h\", \"22 mg/h for 4 h from 30 min\", \"10 mL/h of 10 mg/mL for 1 h\", \"0.35 mg/kg over 1 min\", \"20 mg at 5 min\""
)]
pub struct DoseParseError {
    /// The text given.
    pub text: String,
    /// What is wrong with it.
    pub problem: String,
}

impl FromStr for Dose {
    type Err = DoseParseError;

    /// Reads `<amount> over <duration> [from <time>]`, `<rate> for <duration> [from <time>]`,
    /// `<mL/h rate> of <mg/mL> for <duration> [from <time>]` or `<amount> [at <time>]` (a bolus).
    fn from_str(text: &str) -> Result<Dose, DoseParseError> {
        let fail = |problem: String| DoseParseError {
            text: text.to_string(),
            problem,
        };
        let lower = text.trim().to_ascii_lowercase();
        let words: Vec<&str> = lower.split_whitespace().collect();
        if words.is_empty() {
            return Err(fail("it is empty".into()));
        }
        // Split into the quantity phrase and keyword clauses.
        let keywords = ["over", "for", "from", "at", "of"];
        let mut head = Vec::new();
        let mut clauses: Vec<(&str, Vec<&str>)> = Vec::new();
        for word in &words {
            if keywords.contains(word) {
                if clauses.iter().any(|(k, _)| k == word) {
                    return Err(fail(format!("\"{word}\" appears twice")));
                }
                clauses.push((word, Vec::new()));
            } else if let Some((_, rest)) = clauses.last_mut() {
                rest.push(word);
            } else {
                head.push(*word);
            }
        }
        let clause = |name: &str| clauses.iter().find(|(k, _)| *k == name).map(|(_, v)| v.join(""));
        let time = |name: &str| -> Result<Option<Seconds>, DoseParseError> {
            match clause(name) {
                None => Ok(None),
                Some(t) if t.is_empty() => Err(fail(format!(
                    "\"{name}\" needs a time after it, e.g. \"{name} 30 min\""
                ))),
                Some(t) => t
                    .parse::<Seconds>()
                    .map(Some)
                    .map_err(|e| fail(format!("the time after \"{name}\": {e}"))),
            }
        };
        let quantity = head.join("");
        if quantity.is_empty() {
            return Err(fail("it does not start with a dose".into()));
        }
        if quantity.starts_with('-') {
            return Err(fail(format!(
                "{quantity} is negative; doses and rates must be 0 or more"
            )));
        }
        let over = time("over")?;
        let duration_for = time("for")?;
        let start = match (time("from")?, time("at")?) {
            (Some(_), Some(_)) => return Err(fail("give either \"from\" or \"at\", not both".into())),
            (from, at) => from.or(at).unwrap_or(Seconds::ZERO),
        };
        let concentration = clause("of");
        let amount = || -> Option<DoseAmount> {
            quantity
                .parse::<MgPerKg>()
                .map(DoseAmount::MgPerKg)
                .or_else(|_| quantity.parse::<Milligrams>().map(DoseAmount::Mg))
                .ok()
        };
        let rate = || -> Result<Option<DoseRate>, DoseParseError> {
            if let Ok(r) = quantity.parse::<MgPerKgPerHour>() {
                return Ok(Some(DoseRate::MgPerKgPerHour(r)));
            }
            if let Ok(r) = quantity.parse::<MgPerHour>() {
                return Ok(Some(DoseRate::MgPerHour(r)));
            }
            if let Ok(r) = quantity.parse::<MlPerHour>() {
                let c = concentration
                    .as_ref()
                    .ok_or_else(|| fail("a pump rate in mL/h needs the concentration, e.g. \"10 mL/h of 10 mg/mL for 1 h\"".into()))?
                    .parse::<MgPerMl>()
                    .map_err(|e| fail(format!("the concentration after \"of\": {e}")))?;
                return Ok(Some(DoseRate::MlPerHour(r, c)));
            }
            Ok(None)
        };
        if concentration.is_some() && !quantity.ends_with("ml/h") && !quantity.ends_with("ml/hr") {
            return Err(fail(
                "\"of <concentration>\" only goes with a pump rate in mL/h".into(),
            ));
        }
        match (over, duration_for) {
            (Some(_), Some(_)) => Err(fail(
                "give either \"over\" (for an amount) or \"for\" (for a rate), not both".into(),
            )),
            (Some(duration), None) => {
                if duration.get() == 0.0 {
                    return Err(fail("the duration after \"over\" must be above 0".into()));
                }
                match amount() {
                    Some(amount) => Ok(Dose::AmountOver {
                        start,
                        duration,
                        amount,
                    }),
                    None if rate()?.is_some() => Err(fail(format!(
                        "{quantity} is a rate; a rate runs \"for\" a duration, an amount is given \"over\" one"
                    ))),
                    None => Err(fail(format!("{quantity:?} is not an amount in mg or mg/kg"))),
                }
            }
            (None, Some(duration)) => {
                if duration.get() == 0.0 {
                    return Err(fail("the duration after \"for\" must be above 0".into()));
                }
                match rate()? {
                    Some(rate) => Ok(Dose::RateFor {
                        start,
                        duration,
                        rate,
                    }),
                    None if amount().is_some() => Err(fail(format!(
                        "{quantity} is an amount; an amount is given \"over\" a duration, a rate runs \"for\" one"
                    ))),
                    None => Err(fail(format!(
                        "{quantity:?} is not a rate in mg/h, mg/kg/h or mL/h"
                    ))),
                }
            }
            (None, None) => match amount() {
                Some(amount) => Ok(Dose::Bolus { at: start, amount }),
                None if rate()?.is_some() => Err(fail(format!(
                    "{quantity} is a rate; say for how long, e.g. \"{quantity} for 1 h\""
                ))),
                None => Err(fail(format!(
                    "{quantity:?} is not a dose in mg, mg/kg, mg/h, mg/kg/h or mL/h"
                ))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kg(v: f64) -> Kilograms {
        Kilograms::new(v).unwrap()
    }

    fn one_segment(text: &str, weight: f64) -> Segment {
        let dose: Dose = text.parse().unwrap();
        let schedule = Regimen::new(vec![dose]).resolve(kg(weight)).unwrap();
        assert_eq!(schedule.segments().len(), 1, "{text}");
        schedule.segments()[0]
    }

    #[test]
    fn the_issue_examples_parse_to_the_right_rates() {
        // 0.5 mg/kg × 70 kg = 35 mg over 2400 s.
        let s = one_segment("0.5 mg/kg over 40 min", 70.0);
        assert_eq!((s.start_s, s.end_s), (0.0, 2400.0));
        assert!((s.rate_mg_per_s - 35.0 / 2400.0).abs() < 1e-15);
        // 0.25 mg/kg/h × 80 kg = 20 mg/h for 4 h.
        let s = one_segment("0.25 mg/kg/h for 4 h", 80.0);
        assert_eq!((s.start_s, s.end_s), (0.0, 14_400.0));
        assert!((s.rate_mg_per_s * 3600.0 - 20.0).abs() < 1e-12);
        let s = one_segment("22 mg/h for 4 h from 30 min", 70.0);
        assert_eq!((s.start_s, s.end_s), (1800.0, 16_200.0));
        assert!((s.rate_mg_per_s * 3600.0 - 22.0).abs() < 1e-12);
        let s = one_segment("0.35 mg/kg over 1 min", 70.0);
        assert!((s.rate_mg_per_s - 24.5 / 60.0).abs() < 1e-15);
        let s = one_segment("10 mL/h of 10 mg/mL for 1 h", 70.0);
        assert!((s.rate_mg_per_s * 3600.0 - 100.0).abs() < 1e-12);
        let s = one_segment("0.5mg/kg over 40min", 70.0);
        assert_eq!(s.end_s, 2400.0);
    }

    #[test]
    fn an_amount_without_duration_is_a_bolus() {
        let dose: Dose = "20 mg at 5 min".parse().unwrap();
        assert_eq!(
            dose,
            Dose::Bolus {
                at: Seconds::new(300.0).unwrap(),
                amount: DoseAmount::Mg(Milligrams::new(20.0).unwrap())
            }
        );
        let schedule = Regimen::new(vec![dose]).resolve(kg(70.0)).unwrap();
        assert_eq!(
            schedule.boluses(),
            &[BolusAt {
                at_s: 300.0,
                amount_mg: 20.0
            }]
        );
    }

    #[test]
    fn malformed_expressions_say_what_is_wrong() {
        let cases = [
            ("", "it is empty"),
            (
                "0.5 mg/kg/h over 40 min",
                "is a rate; a rate runs \"for\" a duration",
            ),
            (
                "0.5 mg/kg for 40 min",
                "is an amount; an amount is given \"over\"",
            ),
            ("0.5 mg/kg over", "\"over\" needs a time after it"),
            ("0.5 mg/kg over 40 kg", "the time after \"over\""),
            ("10 mL/h for 1 h", "needs the concentration"),
            ("-1 mg/kg over 40 min", "is negative"),
            ("0.5 mg/kg over 0 min", "must be above 0"),
            ("0.5 mg/kg over 40 min over 10 min", "appears twice"),
            ("22 mg/h", "say for how long"),
            ("lots", "is not a dose"),
        ];
        for (text, expected) in cases {
            let err = text.parse::<Dose>().unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn overlapping_infusions_are_rejected_with_both_named() {
        let regimen = Regimen::new(vec![
            "0.5 mg/kg over 40 min".parse().unwrap(),
            "10 mg/h for 1 h from 30 min".parse().unwrap(),
        ]);
        let err = regimen.resolve(kg(70.0)).unwrap_err().to_string();
        assert!(err.contains("0.5 mg/kg over 40 min from 0 min"), "{err}");
        assert!(err.contains("10 mg/h for 60 min from 30 min"), "{err}");
    }

    #[test]
    fn consecutive_infusions_are_a_rate_change_and_gaps_are_pauses() {
        let regimen = Regimen::new(vec![
            "20 mg/h for 10 min".parse().unwrap(),
            "10 mg/h for 10 min from 10 min".parse().unwrap(),
            "10 mg/h for 10 min from 30 min".parse().unwrap(),
        ]);
        let schedule = regimen.resolve(kg(70.0)).unwrap();
        assert_eq!(schedule.breakpoints(), vec![0.0, 600.0, 1200.0, 1800.0, 2400.0]);
        assert!((schedule.total_mg() - (20.0 + 10.0 + 10.0) / 6.0).abs() < 1e-12);
        assert_eq!(schedule.rate_after(1500.0), 0.0);
        assert!((schedule.rate_after(600.0) * 3600.0 - 10.0).abs() < 1e-12);
    }
}
