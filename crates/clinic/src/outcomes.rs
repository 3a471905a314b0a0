//! Outcomes over a course: from a patient's scored questionnaires, the baseline, the latest value,
//! the change, response and remission (depression) or clinically important change (pain), and the
//! time from the first infusion to the first response ("rapid relief").
//!
//! Definitions are `shared/domain/clinical.md` §6.2, through the functions in
//! [`crate::instruments`]: response = at least 50 % reduction from baseline (Murrough 2013);
//! remission PHQ-9 < 5, MADRS < 10, QIDS-SR16 ≤ 5; pain change ≥ 2 points or ≥ 30 % (Farrar 2001,
//! PMID 11690728). The baseline is the last score on or before the first infusion; without an
//! infusion yet, the first score.

use time::OffsetDateTime;

use crate::instruments::{Instrument, is_clinically_important_pain_change, is_remission, is_response};

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

/// An instrument's course.
#[derive(Clone, Debug, PartialEq)]
pub struct Trajectory {
    /// The instrument.
    pub instrument: Instrument,
    /// The baseline observation.
    pub baseline: Observation,
    /// The latest observation.
    pub latest: Observation,
    /// latest − baseline (negative is better on every instrument here).
    pub change: f64,
    /// Change as a percentage of the baseline (None when the baseline is 0).
    pub change_percent: Option<f64>,
    /// Depression: the latest value is a response.
    pub response: Option<bool>,
    /// Depression: the latest value is a remission (where the instrument defines one).
    pub remission: Option<bool>,
    /// Pain: the latest value is a clinically important improvement.
    pub clinically_important: Option<bool>,
    /// The first observation after the first infusion that met response (depression) or
    /// clinically important change (pain), and the hours from the first infusion to it.
    pub first_response: Option<(OffsetDateTime, f64)>,
}

/// The course of one instrument. `observations` may be in any order; `None` when empty.
pub fn trajectory(
    instrument: Instrument,
    observations: &[Observation],
    first_infusion: Option<OffsetDateTime>,
) -> Option<Trajectory> {
    let mut obs = observations.to_vec();
    obs.sort_by_key(|o| o.at);
    let first = *obs.first()?;
    let latest = *obs.last()?;
    let baseline = match first_infusion {
        Some(start) => obs.iter().rev().find(|o| o.at <= start).copied().unwrap_or(first),
        None => first,
    };
    let kind = Improvement::of(instrument);
    let improved = |o: &Observation| match kind {
        Improvement::Depression => is_response(baseline.total, o.total),
        Improvement::Pain => is_clinically_important_pain_change(baseline.total, o.total),
        Improvement::ChangeOnly => false,
    };
    let first_response = first_infusion.and_then(|start| {
        obs.iter()
            .find(|o| o.at > start && improved(o))
            .map(|o| (o.at, (o.at - start).as_seconds_f64() / 3600.0))
    });
    let change = latest.total - baseline.total;
    Some(Trajectory {
        instrument,
        baseline,
        latest,
        change,
        change_percent: (baseline.total != 0.0).then(|| 100.0 * change / baseline.total),
        response: (kind == Improvement::Depression).then(|| is_response(baseline.total, latest.total)),
        remission: is_remission(instrument, latest.total),
        clinically_important: (kind == Improvement::Pain)
            .then(|| is_clinically_important_pain_change(baseline.total, latest.total)),
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
        let t = trajectory(Instrument::Phq9, &series, Some(at(3, 10))).unwrap();
        assert_eq!(t.baseline.total, 18.0);
        assert_eq!(t.latest.total, 4.0);
        assert_eq!(t.change, -14.0);
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
                None,
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
                Some(at(1, 1)),
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
    fn no_observation_no_trajectory_and_no_infusion_uses_the_first() {
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
        assert_eq!(
            (t.baseline.total, t.latest.total, t.first_response),
            (16.0, 12.0, None)
        );
        // A baseline of 0 has no percentage.
        let z = trajectory(
            Instrument::Gad7,
            &[Observation {
                at: at(1, 0),
                total: 0.0,
            }],
            None,
        )
        .unwrap();
        assert_eq!(z.change_percent, None);
    }
}
