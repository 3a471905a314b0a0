//! Morphine milligram equivalents (MME) per day, with the CDC 2022 conversion factors
//! (Dowell D et al. MMWR Recomm Rep 2022;71(RR-3):1-95, doi 10.15585/mmwr.rr7103a1; citation
//! details UNVERIFIED, table confirmed against two reproductions; clinical.md §7).
//!
//! The CDC's own warnings travel with every result: the factors are estimates, must not be used to
//! convert doses when switching opioids, and methadone and transdermal fentanyl need particular care.

/// The conversion table's name, recorded with every computed MME (older tables differ, e.g. for
/// methadone).
pub const MME_TABLE: &str = "CDC 2022 (Dowell et al., MMWR Recomm Rep 71(RR-3))";

/// Opioids in the CDC 2022 table (oral unless stated).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Opioid {
    /// Codeine.
    Codeine,
    /// Fentanyl, transdermal (dose in µg/h, not mg/day).
    FentanylTransdermal,
    /// Hydrocodone.
    Hydrocodone,
    /// Hydromorphone.
    Hydromorphone,
    /// Methadone.
    Methadone,
    /// Morphine.
    Morphine,
    /// Oxycodone.
    Oxycodone,
    /// Oxymorphone.
    Oxymorphone,
    /// Tapentadol.
    Tapentadol,
    /// Tramadol.
    Tramadol,
}

impl Opioid {
    /// All opioids of the table.
    pub const ALL: [Opioid; 10] = [
        Opioid::Codeine,
        Opioid::FentanylTransdermal,
        Opioid::Hydrocodone,
        Opioid::Hydromorphone,
        Opioid::Methadone,
        Opioid::Morphine,
        Opioid::Oxycodone,
        Opioid::Oxymorphone,
        Opioid::Tapentadol,
        Opioid::Tramadol,
    ];

    /// Stable code (the drug name in lower case).
    pub fn code(self) -> &'static str {
        match self {
            Opioid::Codeine => "codeine",
            Opioid::FentanylTransdermal => "fentanyl_transdermal",
            Opioid::Hydrocodone => "hydrocodone",
            Opioid::Hydromorphone => "hydromorphone",
            Opioid::Methadone => "methadone",
            Opioid::Morphine => "morphine",
            Opioid::Oxycodone => "oxycodone",
            Opioid::Oxymorphone => "oxymorphone",
            Opioid::Tapentadol => "tapentadol",
            Opioid::Tramadol => "tramadol",
        }
    }

    /// CDC 2022 conversion factor: MME per (mg/day), or per (µg/h) for transdermal fentanyl.
    pub fn factor(self) -> f64 {
        match self {
            Opioid::Codeine => 0.15,
            Opioid::FentanylTransdermal => 2.4,
            Opioid::Hydrocodone => 1.0,
            Opioid::Hydromorphone => 5.0,
            Opioid::Methadone => 4.7,
            Opioid::Morphine => 1.0,
            Opioid::Oxycodone => 1.5,
            Opioid::Oxymorphone => 3.0,
            Opioid::Tapentadol => 0.4,
            Opioid::Tramadol => 0.2,
        }
    }

    /// The unit the dose must be given in.
    pub fn dose_unit(self) -> &'static str {
        if self == Opioid::FentanylTransdermal {
            "µg/h"
        } else {
            "mg/day"
        }
    }

    /// A warning the CDC attaches to this opioid, if any.
    pub fn caution(self) -> Option<&'static str> {
        match self {
            Opioid::Methadone => Some(
                "methadone: long and variable half-life and delayed peak respiratory effect; older tables used other factors",
            ),
            Opioid::FentanylTransdermal => Some("transdermal fentanyl: dose in µg/h; take particular care"),
            _ => None,
        }
    }
}

impl std::str::FromStr for Opioid {
    type Err = crate::patient::UnknownCode;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Opioid::ALL
            .into_iter()
            .find(|o| o.code() == text)
            .ok_or_else(|| crate::patient::UnknownCode {
                what: "opioid",
                given: text.to_string(),
                allowed: Opioid::ALL.map(Opioid::code).join(", "),
            })
    }
}

/// A daily MME total with its provenance and cautions.
#[derive(Clone, Debug, PartialEq)]
pub struct MmeTotal {
    /// MME per day.
    pub mme_per_day: f64,
    /// The table used.
    pub table: &'static str,
    /// Cautions that apply.
    pub cautions: Vec<&'static str>,
}

/// A dose that cannot be converted.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{opioid} dose {dose} {unit} is not allowed: it must be a finite number from 0 to 10000")]
pub struct MmeError {
    /// Opioid code.
    pub opioid: &'static str,
    /// The dose.
    pub dose: f64,
    /// Its unit.
    pub unit: &'static str,
}

/// Total MME per day of `(opioid, dose)` pairs, doses in [`Opioid::dose_unit`].
pub fn mme_per_day(doses: &[(Opioid, f64)]) -> Result<MmeTotal, MmeError> {
    let mut total = 0.0;
    let mut cautions =
        vec!["MME factors are estimates; do not use them to convert doses when switching opioids (CDC 2022)"];
    for &(opioid, dose) in doses {
        if !(dose.is_finite() && (0.0..=10_000.0).contains(&dose)) {
            return Err(MmeError {
                opioid: opioid.code(),
                dose,
                unit: opioid.dose_unit(),
            });
        }
        total += dose * opioid.factor();
        if let Some(c) = opioid.caution()
            && !cautions.contains(&c)
        {
            cautions.push(c);
        }
    }
    Ok(MmeTotal {
        mme_per_day: total,
        table: MME_TABLE,
        cautions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cdc_worked_examples() {
        // Hydrocodone 5 mg four times a day = 20 MME/day; oxycodone ER 10 mg twice a day = 30 MME/day;
        // a 75 µg/h fentanyl patch = 180 MME/day (CDC 2022 table footnotes).
        assert!((mme_per_day(&[(Opioid::Hydrocodone, 20.0)]).unwrap().mme_per_day - 20.0).abs() < 1e-12);
        assert!((mme_per_day(&[(Opioid::Oxycodone, 20.0)]).unwrap().mme_per_day - 30.0).abs() < 1e-12);
        let patch = mme_per_day(&[(Opioid::FentanylTransdermal, 75.0)]).unwrap();
        assert!((patch.mme_per_day - 180.0).abs() < 1e-12);
        assert!(patch.cautions.iter().any(|c| c.contains("µg/h")));
    }

    #[test]
    fn every_factor_matches_the_table_and_totals_add() {
        let table = [
            ("codeine", 0.15),
            ("fentanyl_transdermal", 2.4),
            ("hydrocodone", 1.0),
            ("hydromorphone", 5.0),
            ("methadone", 4.7),
            ("morphine", 1.0),
            ("oxycodone", 1.5),
            ("oxymorphone", 3.0),
            ("tapentadol", 0.4),
            ("tramadol", 0.2),
        ];
        for (code, factor) in table {
            assert_eq!(code.parse::<Opioid>().unwrap().factor(), factor, "{code}");
        }
        let total = mme_per_day(&[
            (Opioid::Morphine, 30.0),
            (Opioid::Methadone, 10.0),
            (Opioid::Tramadol, 200.0),
        ])
        .unwrap();
        assert!((total.mme_per_day - (30.0 + 47.0 + 40.0)).abs() < 1e-12);
        assert_eq!(total.table, MME_TABLE);
        assert!(total.cautions.iter().any(|c| c.starts_with("methadone")));
        assert!(mme_per_day(&[(Opioid::Morphine, -1.0)]).is_err());
        assert!(
            "buprenorphine"
                .parse::<Opioid>()
                .unwrap_err()
                .to_string()
                .contains("allowed: codeine")
        );
    }
}
