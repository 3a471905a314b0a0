//! Outcomes over a course: from a patient's scored questionnaires, the baseline, the latest value,
//! the change, response and remission (depression) or clinically important change (pain), and the
//! time from the first infusion to the first response ("rapid relief").
//!
//! Definitions are `shared/domain/clinical.md` §6.2, through the functions in
//! [`crate::instruments`]: response = at least 50 % reduction from baseline (Murrough 2013);
//! remission PHQ-9 < 5, MADRS < 10, QIDS-SR16 ≤ 5; pain change ≥ 2 points or ≥ 30 % (Farrar 2001,
//! PMID 11690728). The baseline is the protocol's baseline measurement: the last score inside the
//! baseline window (the protocol's `early_days` before the first infusion, closing when it starts).
//! A score before the window (a screening score weeks earlier) is never the baseline; without one
//! in the window there is no baseline, and response and change are not computed, saying why.

use time::{Duration, OffsetDateTime};

use crate::instruments::{Instrument, is_clinically_important_pain_change, is_remission, is_response};
use crate::measurements::{Infusion, Window};

/// One scored administration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Observation {
    /// When it was answered.
    pub at: OffsetDateTime,
    /// Its total.
    pub total: f64,
}

/// Which kind of improvement an instrument measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Improvement {
    /// Depression scales: response (≥ 50 %) and remission.
    Depression,
    /// Pain NRS: clinically important change (≥ 2 points or ≥ 30 %).
    Pain,
    /// Anything else (GAD-7, PCL-5, FIQR, BPI, CSS): change only, no defined response here.
    ChangeOnly,
}

impl Improvement {
    /// The kind for an instrument.
    pub fn of(instrument: Instrument) -> Improvement {
        match instrument {
            Instrument::Phq9 | Instrument::Madrs | Instrument::QidsSr16 => Improvement::Depression,
            Instrument::PainNrs => Improvement::Pain,
            _ => Improvement::ChangeOnly,
        }
    }
}

/// The protocol's baseline window before the first infusion of the course (the `Baseline`
/// measurement of [`crate::measurements`]): it opens the protocol's `early_days` before the first
/// infusion and closes when that infusion starts; while it is only booked, the window stays open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BaselineWindow {
    /// When the window opens.
    pub opens: OffsetDateTime,
    /// The first infusion's start, or its booked time while it has not started.
    pub first_infusion: OffsetDateTime,
    /// Whether the first infusion has started (the window is then closed at its start).
    pub started: bool,
    /// The protocol's window, days before the first infusion.
    pub early_days: u32,
}

impl BaselineWindow {
    /// The window before `first` under the protocol's measurement `window`.
    pub fn before(first: Infusion, window: Window) -> BaselineWindow {
        BaselineWindow {
            opens: first.at - Duration::days(i64::from(window.early_days)),
            first_infusion: first.at,
            started: first.started,
            early_days: window.early_days,
        }
    }

    /// Whether a score answered at `at` counts as the baseline.
    pub fn contains(&self, at: OffsetDateTime) -> bool {
        at >= self.opens && (!self.started || at <= self.first_infusion)
    }
}

/// Why an instrument has no baseline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MissingBaseline {
    /// No infusion is started or booked: there is no baseline window yet.
    NoInfusion,
    /// No score of the instrument in the window; `earlier` is the last one before it (a screening
    /// score, say), which is not a baseline.
    NoneInWindow {
        /// The window.
        window: BaselineWindow,
        /// The last score before the window opened, if any.
        earlier: Option<Observation>,
    },
}

/// The score a course is measured against, and why it is that one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Baseline {
    /// The last score inside the protocol's baseline window.
    InWindow {
        /// The score.
        observation: Observation,
        /// The window.
        window: BaselineWindow,
    },
    /// None: response and change are not computed.
    Missing(MissingBaseline),
}

/// A time as the explanations print it (UTC; the pages show the clinic's zone).
fn utc(at: OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    at.to_offset(time::UtcOffset::UTC)
        .format(&f)
        .unwrap_or_else(|_| at.to_string())
}

impl Baseline {
    /// The baseline score, if there is one.
    pub fn observation(&self) -> Option<Observation> {
        match self {
            Baseline::InWindow { observation, .. } => Some(*observation),
            Baseline::Missing(_) => None,
        }
    }

    /// Stable code: in_window, no_infusion or none_in_window.
    pub fn code(&self) -> &'static str {
        match self {
            Baseline::InWindow { .. } => "in_window",
            Baseline::Missing(MissingBaseline::NoInfusion) => "no_infusion",
            Baseline::Missing(MissingBaseline::NoneInWindow { .. }) => "none_in_window",
        }
    }

    /// Which score is the baseline and why, in words.
    pub fn explain(&self, instrument: Instrument) -> String {
        let window = |w: &BaselineWindow| {
            let closes = if w.started {
                format!("until the first infusion started at {}", utc(w.first_infusion))
            } else {
                format!(
                    "until the first infusion, booked for {}, starts",
                    utc(w.first_infusion)
                )
            };
            format!(
                "the protocol's baseline window, from {} ({} days before the first infusion) {closes}",
                utc(w.opens),
                w.early_days
            )
        };
        let code = instrument.code();
        match self {
            Baseline::InWindow {
                observation,
                window: w,
            } => format!(
                "the last {code} score in {}: {} points at {}",
                window(w),
                observation.total,
                utc(observation.at)
            ),
            Baseline::Missing(MissingBaseline::NoInfusion) => format!(
                "no baseline yet: no infusion is started or booked, and the baseline is the last {code} score in the protocol's window before the first infusion"
            ),
            Baseline::Missing(MissingBaseline::NoneInWindow { window: w, earlier }) => {
                let mut text = format!("no baseline: no {code} score in {}", window(w));
                if let Some(e) = earlier {
                    text.push_str(&format!(
                        "; the score of {} ({} points) is earlier than the window and is not a baseline",
                        utc(e.at),
                        e.total
                    ));
                }
                text
            }
        }
    }
}

/// An instrument's course.
#[derive(Clone, Debug, PartialEq)]
pub struct Trajectory {
    /// The instrument.
    pub instrument: Instrument,
    /// The baseline and why.
    pub baseline: Baseline,
    /// The latest observation.
    pub latest: Observation,
    /// latest − baseline (negative is better on every instrument here); None without a baseline.
    pub change: Option<f64>,
    /// Change as a percentage of the baseline (None without a baseline or when it is 0).
    pub change_percent: Option<f64>,
    /// Depression: the latest value is a response (None without a baseline).
    pub response: Option<bool>,
    /// Depression: the latest value is a remission (where the instrument defines one; an absolute
    /// threshold, so it needs no baseline).
    pub remission: Option<bool>,
    /// Pain: the latest value is a clinically important improvement (None without a baseline).
    pub clinically_important: Option<bool>,
    /// The first observation after the first infusion started that met response (depression) or
    /// clinically important change (pain), and the hours from the first infusion to it.
    pub first_response: Option<(OffsetDateTime, f64)>,
}

/// The course of one instrument against the protocol's baseline `window` (None: no infusion
/// started or booked). `observations` may be in any order; `None` when empty.
pub fn trajectory(
    instrument: Instrument,
    observations: &[Observation],
    window: Option<BaselineWindow>,
) -> Option<Trajectory> {
    let mut obs = observations.to_vec();
    obs.sort_by_key(|o| o.at);
    let latest = *obs.last()?;
    let baseline = match window {
        None => Baseline::Missing(MissingBaseline::NoInfusion),
        Some(w) => match obs.iter().rev().find(|o| w.contains(o.at)) {
            Some(o) => Baseline::InWindow {
                observation: *o,
                window: w,
            },
            None => Baseline::Missing(MissingBaseline::NoneInWindow {
                window: w,
                earlier: obs.iter().rev().find(|o| o.at < w.opens).copied(),
            }),
        },
    };
    let kind = Improvement::of(instrument);
    let base = baseline.observation().map(|b| b.total);
    let improved = |o: &Observation| match (kind, base) {
        (Improvement::Depression, Some(b)) => is_response(b, o.total),
        (Improvement::Pain, Some(b)) => is_clinically_important_pain_change(b, o.total),
        _ => false,
    };
    let first_response = window.filter(|w| w.started).and_then(|w| {
        obs.iter()
            .find(|o| o.at > w.first_infusion && improved(o))
            .map(|o| (o.at, (o.at - w.first_infusion).as_seconds_f64() / 3600.0))
    });
    let change = base.map(|b| latest.total - b);
    Some(Trajectory {
        instrument,
        baseline,
        latest,
        change,
        change_percent: base
            .zip(change)
            .filter(|(b, _)| *b != 0.0)
            .map(|(b, c)| 100.0 * c / b),
        response: base
            .filter(|_| kind == Improvement::Depression)
            .map(|b| is_response(b, latest.total)),
        remission: is_remission(instrument, latest.total),
        clinically_important: base
            .filter(|_| kind == Improvement::Pain)
            .map(|b| is_clinically_important_pain_change(b, latest.total)),
        first_response,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn at(day: u8, hour: u8) -> OffsetDateTime {
        datetime!(2026-11-01 00:00 UTC)
            + time::Duration::days(i64::from(day) - 1)
            + time::Duration::hours(i64::from(hour))
    }

    /// The baseline window of a first infusion started at `start`, 3 days (the shipped protocols').
    fn started(start: OffsetDateTime) -> Option<BaselineWindow> {
        Some(BaselineWindow::before(
            Infusion {
                at: start,
                started: true,
            },
            Window {
                early_days: 3,
                late_days: 3,
            },
        ))
    }

    #[test]
    fn depression_response_remission_and_rapid_relief() {
        let series = [
            Observation {
                at: at(1, 9),
                total: 20.0,
            }, // screening
            Observation {
                at: at(3, 9),
                total: 18.0,
            }, // baseline: last before the first infusion
            Observation {
                at: at(4, 9),
                total: 10.0,
            }, // 24 h after: 44 % down, not a response
            Observation {
                at: at(5, 9),
                total: 9.0,
            }, // 50 % of 18: response at 48 h
            Observation {
                at: at(20, 9),
                total: 4.0,
            }, // remission (PHQ-9 < 5)
        ];
        let t = trajectory(Instrument::Phq9, &series, started(at(3, 10))).unwrap();
        assert_eq!(t.baseline.observation().unwrap().total, 18.0);
        assert_eq!(t.baseline.code(), "in_window");
        assert_eq!(t.latest.total, 4.0);
        assert_eq!(t.change, Some(-14.0));
        assert!((t.change_percent.unwrap() + 100.0 * 14.0 / 18.0).abs() < 1e-12);
        assert_eq!(
            (t.response, t.remission, t.clinically_important),
            (Some(true), Some(true), None)
        );
        let (when, hours) = t.first_response.unwrap();
        assert_eq!(when, at(5, 9));
        assert_eq!(hours, 47.0);
    }

    #[test]
    fn remission_edges_follow_each_instrument() {
        let one = |i, total| {
            trajectory(
                i,
                &[
                    Observation {
                        at: at(1, 0),
                        total: 30.0,
                    },
                    Observation { at: at(2, 0), total },
                ],
                started(at(1, 1)),
            )
            .unwrap()
        };
        assert_eq!(one(Instrument::Phq9, 5.0).remission, Some(false));
        assert_eq!(one(Instrument::Phq9, 4.0).remission, Some(true));
        assert_eq!(one(Instrument::Madrs, 10.0).remission, Some(false));
        assert_eq!(one(Instrument::Madrs, 9.0).remission, Some(true));
        assert_eq!(one(Instrument::QidsSr16, 5.0).remission, Some(true));
        assert_eq!(one(Instrument::QidsSr16, 6.0).remission, Some(false));
        // Response at exactly half the baseline.
        assert_eq!(one(Instrument::Madrs, 15.0).response, Some(true));
        assert_eq!(one(Instrument::Madrs, 15.5).response, Some(false));
        assert_eq!(one(Instrument::Gad7, 3.0).response, None);
    }

    #[test]
    fn pain_change_is_two_points_or_thirty_percent() {
        let pain = |base: f64, now: f64| {
            trajectory(
                Instrument::PainNrs,
                &[
                    Observation {
                        at: at(1, 0),
                        total: base,
                    },
                    Observation {
                        at: at(2, 0),
                        total: now,
                    },
                ],
                started(at(1, 1)),
            )
            .unwrap()
        };
        // 8 → 6: 2 points (25 %): important.
        assert_eq!(pain(8.0, 6.0).clinically_important, Some(true));
        // 8 → 7: 1 point, 12.5 %: not.
        assert_eq!(pain(8.0, 7.0).clinically_important, Some(false));
        // 3 → 2.1: 0.9 points but 30 %: important.
        assert_eq!(pain(3.0, 2.1).clinically_important, Some(true));
        assert_eq!(pain(8.0, 6.0).first_response.unwrap().1, 23.0);
        assert_eq!(pain(8.0, 6.0).response, None);
    }

    #[test]
    fn no_observation_no_trajectory_and_no_infusion_no_baseline() {
        assert!(trajectory(Instrument::Phq9, &[], None).is_none());
        let t = trajectory(
            Instrument::Phq9,
            &[
                Observation {
                    at: at(2, 0),
                    total: 12.0,
                },
                Observation {
                    at: at(1, 0),
                    total: 16.0,
                },
            ],
            None,
        )
        .unwrap();
        assert_eq!(t.baseline, Baseline::Missing(MissingBaseline::NoInfusion));
        assert_eq!(
            (t.latest.total, t.change, t.response, t.first_response),
            (12.0, None, None, None)
        );
        assert!(
            t.baseline
                .explain(Instrument::Phq9)
                .starts_with("no baseline yet: no infusion")
        );
        // A baseline of 0 has no percentage.
        let z = trajectory(
            Instrument::Gad7,
            &[Observation {
                at: at(1, 0),
                total: 0.0,
            }],
            started(at(1, 1)),
        )
        .unwrap();
        assert_eq!((z.change, z.change_percent), (Some(0.0), None));
    }

    #[test]
    fn a_screening_score_before_the_window_is_never_the_baseline() {
        // Screening PHQ-9 24 on day 1; the first infusion on day 25 at 10:00 (window opens day 22
        // 10:00). Without a score in the window there is no baseline, and no response is claimed.
        let screening = Observation {
            at: at(1, 9),
            total: 24.0,
        };
        let after = Observation {
            at: at(27, 9),
            total: 10.0,
        };
        let t = trajectory(Instrument::Phq9, &[screening, after], started(at(25, 10))).unwrap();
        assert_eq!(t.baseline.code(), "none_in_window");
        assert_eq!((t.change, t.response, t.first_response), (None, None, None));
        assert_eq!(
            t.baseline.explain(Instrument::Phq9),
            "no baseline: no phq9 score in the protocol's baseline window, from 2026-11-22 10:00 UTC (3 days before the first infusion) until the first infusion started at 2026-11-25 10:00 UTC; the score of 2026-11-01 09:00 UTC (24 points) is earlier than the window and is not a baseline"
        );
        // The baseline visit's 16 on day 24 is the baseline: 16 → 10 is 37.5 % down, not a
        // response (against the screening 24 it would have been 58 %, wrongly a responder).
        let visit = Observation {
            at: at(24, 15),
            total: 16.0,
        };
        let t = trajectory(Instrument::Phq9, &[screening, visit, after], started(at(25, 10))).unwrap();
        assert_eq!(t.baseline.observation(), Some(visit));
        assert_eq!((t.change, t.response), (Some(-6.0), Some(false)));
        assert!((t.change_percent.unwrap() + 37.5).abs() < 1e-12);
        assert_eq!(
            t.baseline.explain(Instrument::Phq9),
            "the last phq9 score in the protocol's baseline window, from 2026-11-22 10:00 UTC (3 days before the first infusion) until the first infusion started at 2026-11-25 10:00 UTC: 16 points at 2026-11-24 15:00 UTC"
        );
        // A score after the start is not a baseline, even the same morning.
        let late = Observation {
            at: at(25, 11),
            total: 15.0,
        };
        let t = trajectory(Instrument::Phq9, &[screening, visit, late], started(at(25, 10))).unwrap();
        assert_eq!(t.baseline.observation(), Some(visit));
    }

    #[test]
    fn a_booked_first_infusion_keeps_the_window_open_until_it_starts() {
        let booked = Some(BaselineWindow::before(
            Infusion {
                at: at(10, 9),
                started: false,
            },
            Window {
                early_days: 3,
                late_days: 3,
            },
        ));
        // Answered an hour after the booked time, the infusion not yet started: still the baseline.
        let late = Observation {
            at: at(10, 10),
            total: 19.0,
        };
        let t = trajectory(Instrument::Phq9, &[late], booked).unwrap();
        assert_eq!(t.baseline.observation(), Some(late));
        assert_eq!(t.first_response, None);
        assert!(
            t.baseline
                .explain(Instrument::Phq9)
                .contains("booked for 2026-11-10 09:00 UTC, starts")
        );
    }
}
