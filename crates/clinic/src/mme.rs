//! Morphine milligram equivalents (MME) per day, with the CDC 2022 conversion factors
//! (Dowell D et al. MMWR Recomm Rep 2022;71(RR-3):1-95, doi 10.15585/mmwr.rr7103a1; citation
//! details UNVERIFIED, table confirmed against two reproductions; clinical.md §7).
//!
//! The CDC's own warnings travel with every result: the factors are estimates, must not be used to
//! convert doses when switching opioids, and methadone and transdermal fentanyl need particular care.

use ketaflow_units::{Hours, MicrogramsPerHour, Milligrams};

/// The conversion table's name, recorded with every computed MME (older tables differ, e.g. for
/// methadone).
pub const MME_TABLE: &str = "CDC 2022 (Dowell et al., MMWR Recomm Rep 71(RR-3))";

/// Opioids in the CDC 2022 table (oral unless stated).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Opioid {
    /// Buprenorphine (any route). CDC 2022 gives it no MME factor: it is flagged, never converted.
    Buprenorphine,
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
    pub const ALL: [Opioid; 11] = [
        Opioid::Buprenorphine,
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
            Opioid::Buprenorphine => "buprenorphine",
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

    /// CDC 2022 conversion factor: MME per (mg/day), or per (µg/h) for transdermal fentanyl;
    /// `None` for buprenorphine, which the table leaves out on purpose (a partial agonist whose
    /// overdose risk does not rise with dose as a full agonist's does; CDC 2022, table notes).
    pub fn factor(self) -> Option<f64> {
        Some(match self {
            Opioid::Buprenorphine => return None,
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
        })
    }

    /// The route the CDC 2022 factor applies to: transdermal for the fentanyl patch, oral for every
    /// other opioid of the table (the table's own heading); `None` for buprenorphine.
    pub fn table_route(self) -> Option<Route> {
        match self {
            Opioid::Buprenorphine => None,
            Opioid::FentanylTransdermal => Some(Route::Transdermal),
            _ => Some(Route::Oral),
        }
    }

    /// A warning the CDC attaches to this opioid, if any.
    pub fn caution(self) -> Option<&'static str> {
        match self {
            Opioid::Methadone => Some(
                "methadone: long and variable half-life and delayed peak respiratory effect; older tables used other factors",
            ),
            Opioid::FentanylTransdermal => Some("transdermal fentanyl: dose in µg/h; take particular care"),
            Opioid::Buprenorphine => Some(
                "buprenorphine: no MME factor in CDC 2022 (partial agonist); not counted in the total; review it on its own",
            ),
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

/// How an opioid is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// By mouth.
    Oral,
    /// Through the skin (a patch).
    Transdermal,
    /// Under the tongue.
    Sublingual,
    /// Against the cheek.
    Buccal,
    /// Into a vein.
    Intravenous,
    /// Under the skin.
    Subcutaneous,
    /// Into a muscle.
    Intramuscular,
    /// Through the nose.
    Intranasal,
}

impl Route {
    /// Every route.
    pub const ALL: [Route; 8] = [
        Route::Oral,
        Route::Transdermal,
        Route::Sublingual,
        Route::Buccal,
        Route::Intravenous,
        Route::Subcutaneous,
        Route::Intramuscular,
        Route::Intranasal,
    ];

    /// Stable code (lower case).
    pub fn code(self) -> &'static str {
        match self {
            Route::Oral => "oral",
            Route::Transdermal => "transdermal",
            Route::Sublingual => "sublingual",
            Route::Buccal => "buccal",
            Route::Intravenous => "intravenous",
            Route::Subcutaneous => "subcutaneous",
            Route::Intramuscular => "intramuscular",
            Route::Intranasal => "intranasal",
        }
    }
}

impl std::str::FromStr for Route {
    type Err = crate::patient::UnknownCode;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Route::ALL
            .into_iter()
            .find(|r| r.code() == text)
            .ok_or_else(|| crate::patient::UnknownCode {
                what: "route",
                given: text.to_string(),
                allowed: Route::ALL.map(Route::code).join(", "),
            })
    }
}

/// How much of an opioid is taken, and how often.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Regimen {
    /// A dose in mg taken every `every` hours ("10 mg every 6 h").
    EveryHours {
        /// Each dose.
        dose: Milligrams,
        /// The interval between doses.
        every: Hours,
    },
    /// A dose in mg taken `times` times a day ("5 mg four times a day").
    TimesDaily {
        /// Each dose.
        dose: Milligrams,
        /// Doses per day.
        times: u32,
    },
    /// A patch delivering continuously ("75 µg/h").
    Continuous {
        /// The labelled delivery rate.
        rate: MicrogramsPerHour,
    },
}

/// The interval between doses a regimen may name: from hourly to every three days.
pub const EVERY_HOURS_RANGE: (f64, f64) = (1.0, 72.0);
/// Doses per day a regimen may name.
pub const TIMES_DAILY_RANGE: (u32, u32) = (1, 24);

impl Regimen {
    /// The amount per day: mg/day for tablets and injections, the rate itself (µg/h) for a patch.
    pub fn per_day(self) -> f64 {
        match self {
            Regimen::EveryHours { dose, every } => dose.get() * 24.0 / every.get(),
            Regimen::TimesDaily { dose, times } => dose.get() * f64::from(times),
            Regimen::Continuous { rate } => rate.get(),
        }
    }

    /// The unit of [`Regimen::per_day`].
    pub fn per_day_unit(self) -> &'static str {
        match self {
            Regimen::Continuous { .. } => MicrogramsPerHour::UNIT,
            _ => "mg/day",
        }
    }

    /// As a clinician writes it ("10 mg every 6 h").
    pub fn describe(self) -> String {
        match self {
            Regimen::EveryHours { dose, every } => format!("{} mg every {} h", dose.get(), every.get()),
            Regimen::TimesDaily { dose, times: 1 } => format!("{} mg once a day", dose.get()),
            Regimen::TimesDaily { dose, times } => format!("{} mg {} times a day", dose.get(), times),
            Regimen::Continuous { rate } => format!("{} µg/h continuously", rate.get()),
        }
    }
}

/// One opioid as the patient takes it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpioidDose {
    /// Which opioid.
    pub opioid: Opioid,
    /// How it is taken.
    pub route: Route,
    /// How much and how often.
    pub regimen: Regimen,
}

/// An entry that does not describe a dose the table can read.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DoseEntryError {
    /// A patch rate given for an opioid taken in mg, or the other way round.
    #[error("{opioid} is given as {expected}, not as {given}")]
    WrongAmountKind {
        /// Opioid code.
        opioid: &'static str,
        /// What it is given as.
        expected: &'static str,
        /// What was entered.
        given: &'static str,
    },
    /// A fentanyl patch on a route other than transdermal.
    #[error("fentanyl_transdermal is a patch: its route is transdermal, not {route}")]
    PatchRoute {
        /// The route entered.
        route: &'static str,
    },
}

impl OpioidDose {
    /// Checks that the amount fits the opioid (µg/h only for the fentanyl patch, which must be
    /// transdermal; mg for every other opioid).
    pub fn new(opioid: Opioid, route: Route, regimen: Regimen) -> Result<Self, DoseEntryError> {
        let patch = opioid == Opioid::FentanylTransdermal;
        let continuous = matches!(regimen, Regimen::Continuous { .. });
        if patch != continuous {
            return Err(DoseEntryError::WrongAmountKind {
                opioid: opioid.code(),
                expected: if patch {
                    "a patch rate in µg/h"
                } else {
                    "a dose in mg with how often"
                },
                given: if continuous {
                    "a patch rate"
                } else {
                    "a dose in mg"
                },
            });
        }
        if patch && route != Route::Transdermal {
            return Err(DoseEntryError::PatchRoute { route: route.code() });
        }
        Ok(Self {
            opioid,
            route,
            regimen,
        })
    }
}

/// Why an entry is left out of the MME total.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotConverted {
    /// Buprenorphine has no CDC 2022 factor.
    NoFactor,
    /// The table's factor is for another route (e.g. intravenous morphine against an oral factor).
    RouteNotInTable,
}

/// One entry with what the table makes of it.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvertedDose {
    /// The entry.
    pub dose: OpioidDose,
    /// MME per day, or why there is none.
    pub mme_per_day: Result<f64, NotConverted>,
}

/// A flag the prescriber should see beside the total.
#[derive(Clone, Debug, PartialEq)]
pub struct MmeFlag {
    /// Stable code.
    pub code: &'static str,
    /// What it means and what to do.
    pub detail: String,
    /// Where the rule comes from.
    pub source: &'static str,
}

/// CDC 2022 Recommendation 8: offer naloxone when the dosage is higher, "e.g. ≥ 50 MME/day"
/// (Dowell D et al. MMWR Recomm Rep 2022;71(RR-3):1-95, doi 10.15585/mmwr.rr7103a1).
pub const NALOXONE_OFFER_MME_PER_DAY: f64 = 50.0;
/// The source of [`NALOXONE_OFFER_MME_PER_DAY`].
pub const NALOXONE_SOURCE: &str = "CDC 2022 Recommendation 8 (Dowell et al., MMWR Recomm Rep 71(RR-3), doi 10.15585/mmwr.rr7103a1): offer naloxone at higher dosages, e.g. ≥ 50 MME/day";
// No flag at 90 MME/day: the 2016 guideline's "avoid ≥ 90" (Recommendation 5) was withdrawn in 2022,
// which asks for an individual benefit/risk review at any dose instead of a fixed ceiling; a flag at
// 90 would bring back a number the current guideline removed.

/// The naloxone flag for a daily total, if it reaches [`NALOXONE_OFFER_MME_PER_DAY`].
pub fn naloxone_flag(mme_per_day: f64) -> Option<MmeFlag> {
    (mme_per_day >= NALOXONE_OFFER_MME_PER_DAY).then(|| MmeFlag {
        code: "naloxone",
        detail: format!(
            "{mme_per_day:.1} MME/day is at or above {NALOXONE_OFFER_MME_PER_DAY} MME/day: offer naloxone and overdose education"
        ),
        source: NALOXONE_SOURCE,
    })
}

/// The MME picture of one day's opioids.
#[derive(Clone, Debug, PartialEq)]
pub struct MmeAssessment {
    /// Every entry with its conversion.
    pub doses: Vec<ConvertedDose>,
    /// MME per day of the entries the table converts.
    pub mme_per_day: f64,
    /// False when an entry could not be converted: the total then understates the opioid load.
    pub complete: bool,
    /// The table used.
    pub table: &'static str,
    /// The CDC's cautions that apply.
    pub cautions: Vec<&'static str>,
    /// Flags: naloxone, buprenorphine, methadone, route not in the table.
    pub flags: Vec<MmeFlag>,
}

/// Converts a day's opioids to MME with the CDC 2022 table and raises the flags that go with it.
pub fn assess(doses: &[OpioidDose]) -> MmeAssessment {
    let mut cautions =
        vec!["MME factors are estimates; do not use them to convert doses when switching opioids (CDC 2022)"];
    let mut flags = Vec::new();
    let mut total = 0.0;
    let mut converted = Vec::with_capacity(doses.len());
    for &dose in doses {
        let mme = match (dose.opioid.factor(), dose.opioid.table_route()) {
            (None, _) | (_, None) => Err(NotConverted::NoFactor),
            (Some(_), Some(route)) if route != dose.route => Err(NotConverted::RouteNotInTable),
            (Some(factor), Some(_)) => Ok(dose.regimen.per_day() * factor),
        };
        if let Ok(m) = mme {
            total += m;
        }
        if let Some(c) = dose.opioid.caution()
            && !cautions.contains(&c)
        {
            cautions.push(c);
        }
        let flag = match (dose.opioid, mme) {
            (Opioid::Buprenorphine, _) => Some(MmeFlag {
                code: "buprenorphine",
                detail: format!(
                    "buprenorphine {} ({}) is not converted: CDC 2022 gives no MME factor for it; review it on its own",
                    dose.regimen.describe(),
                    dose.route.code()
                ),
                source: "CDC 2022 MME table notes (Dowell et al., MMWR Recomm Rep 71(RR-3))",
            }),
            (_, Err(NotConverted::RouteNotInTable)) => Some(MmeFlag {
                code: "route_not_in_table",
                detail: format!(
                    "{} {} ({}) is not converted: the CDC 2022 factor is for the {} route",
                    dose.opioid.code(),
                    dose.regimen.describe(),
                    dose.route.code(),
                    dose.opioid.table_route().map_or("oral", Route::code)
                ),
                source: "CDC 2022 MME table (Dowell et al., MMWR Recomm Rep 71(RR-3))",
            }),
            (Opioid::Methadone, Ok(m)) => Some(MmeFlag {
                code: "methadone",
                detail: format!(
                    "methadone {} = {m:.1} MME/day at the single CDC 2022 factor 4.7; its long, variable half-life and late peak respiratory effect call for particular care",
                    dose.regimen.describe()
                ),
                source: "CDC 2022 MME table, caution 4 (Dowell et al., MMWR Recomm Rep 71(RR-3))",
            }),
            _ => None,
        };
        flags.extend(flag);
        converted.push(ConvertedDose {
            dose,
            mme_per_day: mme,
        });
    }
    if let Some(flag) = naloxone_flag(total) {
        flags.insert(0, flag);
    }
    MmeAssessment {
        complete: converted.iter().all(|c| c.mme_per_day.is_ok()),
        doses: converted,
        mme_per_day: total,
        table: MME_TABLE,
        cautions,
        flags,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every(opioid: Opioid, route: Route, mg: f64, hours: f64) -> OpioidDose {
        let regimen = Regimen::EveryHours {
            dose: Milligrams::new(mg).unwrap(),
            every: Hours::new(hours).unwrap(),
        };
        OpioidDose::new(opioid, route, regimen).unwrap()
    }

    fn times(opioid: Opioid, mg: f64, times: u32) -> OpioidDose {
        let regimen = Regimen::TimesDaily {
            dose: Milligrams::new(mg).unwrap(),
            times,
        };
        OpioidDose::new(opioid, Route::Oral, regimen).unwrap()
    }

    fn patch(ug_per_h: f64) -> OpioidDose {
        let regimen = Regimen::Continuous {
            rate: MicrogramsPerHour::new(ug_per_h).unwrap(),
        };
        OpioidDose::new(Opioid::FentanylTransdermal, Route::Transdermal, regimen).unwrap()
    }

    fn codes(a: &MmeAssessment) -> Vec<&'static str> {
        a.flags.iter().map(|f| f.code).collect()
    }

    #[test]
    fn the_cdc_worked_examples() {
        // Hydrocodone 5 mg four times a day = 20 MME/day; oxycodone ER 10 mg twice a day = 30 MME/day;
        // a 75 µg/h fentanyl patch = 180 MME/day (CDC 2022 table footnotes).
        assert!((assess(&[times(Opioid::Hydrocodone, 5.0, 4)]).mme_per_day - 20.0).abs() < 1e-12);
        assert!((assess(&[times(Opioid::Oxycodone, 10.0, 2)]).mme_per_day - 30.0).abs() < 1e-12);
        let p = assess(&[patch(75.0)]);
        assert!((p.mme_per_day - 180.0).abs() < 1e-12);
        assert!(p.cautions.iter().any(|c| c.contains("µg/h")));
    }

    #[test]
    fn oxycodone_10_mg_every_6_h_is_60_mme_and_offers_naloxone() {
        let a = assess(&[every(Opioid::Oxycodone, Route::Oral, 10.0, 6.0)]);
        // 10 mg × 24/6 = 40 mg/day × 1.5 = 60 MME/day, ≥ 50: CDC 2022 Recommendation 8.
        assert!((a.mme_per_day - 60.0).abs() < 1e-12);
        assert!(a.complete);
        assert_eq!(codes(&a), ["naloxone"]);
        assert!(a.flags[0].source.contains("Recommendation 8"));
        assert_eq!(a.doses[0].dose.regimen.describe(), "10 mg every 6 h");
    }

    #[test]
    fn the_naloxone_flag_starts_at_exactly_50_and_there_is_no_90_flag() {
        // Morphine 25 mg twice a day = 50 MME/day: flagged; 49.5 is not; 200 gets the same one flag.
        assert_eq!(codes(&assess(&[times(Opioid::Morphine, 25.0, 2)])), ["naloxone"]);
        assert!(codes(&assess(&[times(Opioid::Morphine, 16.5, 3)])).is_empty());
        assert_eq!(codes(&assess(&[times(Opioid::Morphine, 100.0, 2)])), ["naloxone"]);
    }

    #[test]
    fn buprenorphine_is_flagged_and_never_converted() {
        let regimen = Regimen::TimesDaily {
            dose: Milligrams::new(8.0).unwrap(),
            times: 2,
        };
        let bup = OpioidDose::new(Opioid::Buprenorphine, Route::Sublingual, regimen).unwrap();
        let a = assess(&[bup, times(Opioid::Morphine, 10.0, 2)]);
        assert_eq!(a.mme_per_day, 20.0);
        assert!(!a.complete);
        assert_eq!(a.doses[0].mme_per_day, Err(NotConverted::NoFactor));
        assert_eq!(codes(&a), ["buprenorphine"]);
        assert!(a.flags[0].detail.contains("8 mg 2 times a day (sublingual)"));
    }

    #[test]
    fn methadone_converts_at_4_7_with_its_caution_and_flag() {
        // 10 mg three times a day = 30 mg/day × 4.7 = 141 MME/day.
        let a = assess(&[times(Opioid::Methadone, 10.0, 3)]);
        assert!((a.mme_per_day - 141.0).abs() < 1e-9);
        assert_eq!(codes(&a), ["naloxone", "methadone"]);
        assert!(a.cautions.iter().any(|c| c.starts_with("methadone")));
    }

    #[test]
    fn a_route_the_table_does_not_cover_is_left_out_and_named() {
        let a = assess(&[every(Opioid::Morphine, Route::Intravenous, 5.0, 4.0)]);
        assert_eq!(a.mme_per_day, 0.0);
        assert!(!a.complete);
        assert_eq!(a.doses[0].mme_per_day, Err(NotConverted::RouteNotInTable));
        assert_eq!(codes(&a), ["route_not_in_table"]);
        assert!(a.flags[0].detail.contains("for the oral route"));
    }

    #[test]
    fn a_patch_is_a_rate_on_the_skin_and_a_tablet_is_not() {
        let rate = Regimen::Continuous {
            rate: MicrogramsPerHour::new(25.0).unwrap(),
        };
        let tablet = Regimen::TimesDaily {
            dose: Milligrams::new(5.0).unwrap(),
            times: 2,
        };
        assert!(matches!(
            OpioidDose::new(Opioid::Morphine, Route::Oral, rate),
            Err(DoseEntryError::WrongAmountKind { .. })
        ));
        assert!(OpioidDose::new(Opioid::FentanylTransdermal, Route::Transdermal, tablet).is_err());
        assert_eq!(
            OpioidDose::new(Opioid::FentanylTransdermal, Route::Oral, rate)
                .unwrap_err()
                .to_string(),
            "fentanyl_transdermal is a patch: its route is transdermal, not oral"
        );
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
            assert_eq!(code.parse::<Opioid>().unwrap().factor(), Some(factor), "{code}");
        }
        assert_eq!(Opioid::Buprenorphine.factor(), None);
        // Morphine 15 mg twice a day (30) + methadone 5 mg twice a day (47) + tramadol 50 mg every
        // 6 h (200 mg/day × 0.2 = 40) = 117 MME/day.
        let total = assess(&[
            times(Opioid::Morphine, 15.0, 2),
            times(Opioid::Methadone, 5.0, 2),
            every(Opioid::Tramadol, Route::Oral, 50.0, 6.0),
        ]);
        assert!((total.mme_per_day - 117.0).abs() < 1e-9);
        assert_eq!(total.table, MME_TABLE);
        assert!(
            "heroin"
                .parse::<Opioid>()
                .unwrap_err()
                .to_string()
                .contains("allowed: buprenorphine, codeine")
        );
        assert!(
            "rectal"
                .parse::<Route>()
                .unwrap_err()
                .to_string()
                .contains("allowed: oral")
        );
    }
}
