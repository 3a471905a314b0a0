//! The measurement schedule of a course: which questionnaires are due when, from the protocol's
//! `[outcomes]` section, the patient's infusions (started or booked) and the scores already
//! recorded. Measurement-based care asks for a baseline before the first infusion, a score before
//! each infusion and follow-ups a set number of days after the last one.
//!
//! Times are instants (UTC); a "day" is 24 hours. No clock: `now` is an argument.
//!
//! **Rules.**
//! - *Baseline*: before the first infusion; the window opens `early_days` before it and closes when
//!   it starts. *Pre-infusion*: the same before every later infusion, and never earlier than the
//!   previous infusion (a score at or before that belongs to the earlier one).
//! - A booked infusion that has not started keeps its pre-infusion window open past the booked time
//!   (the measurement is then overdue, still useful) until it starts; once started, the window is
//!   closed at the start.
//! - *Follow-up* N: the last infusion + N days, counted from `early_days` before to `late_days`
//!   after, and only after the last infusion. While the last infusion is only booked, follow-ups are
//!   provisional and always `Upcoming`.
//! - A score satisfies at most one measurement: measurements are matched in due order, each to the
//!   unused score of one of its instruments in its window nearest its due time (the earlier on a
//!   tie).
//! - Status: `Done` (with the score), `Upcoming` (window not yet open), `Due` (window open, due
//!   time not passed), `Overdue` (due time passed, a score would still count), `Missed` (the window
//!   has closed: no score can satisfy it any more; kept on the schedule, left off reminder lists).

use time::{Duration, OffsetDateTime};

use crate::instruments::Instrument;
use crate::patient::Indication;

/// The instrument with this code (`phq9`, `qids_sr16`, ...), if any.
pub fn instrument_by_code(code: &str) -> Option<Instrument> {
    Instrument::ALL.into_iter().find(|i| i.code() == code)
}

/// Whether the patient answers the instrument alone (so it may be sent as a link to fill from
/// home). MADRS is a clinician-rated interview (Montgomery & Åsberg, Br J Psychiatry
/// 1979;134:382–389, PMID 444788) and the CRPS Severity Score includes signs found on examination
/// (Harden RN et al. Pain 2010, "17 clinically-assessed signs and symptoms"; DOI UNVERIFIED); the
/// others are self-report questionnaires (clinical.md §6.1).
pub fn is_self_report(instrument: Instrument) -> bool {
    !matches!(instrument, Instrument::Madrs | Instrument::CrpsSeverityScore)
}

/// How far from its due time a score still counts, days (24 h each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Days before the due time.
    pub early_days: u32,
    /// Days after the due time (follow-ups only: baseline and pre-infusion windows close when the
    /// infusion starts).
    pub late_days: u32,
}

/// One line of a protocol's measurement plan.
#[derive(Clone, Debug, PartialEq)]
pub struct MeasureRule {
    /// The instruments, any one of which satisfies the measurement (the clinic chooses, e.g.
    /// QIDS-SR16 or MADRS). Never empty.
    pub instruments: Vec<Instrument>,
    /// Taken at baseline.
    pub baseline: bool,
    /// Taken before each infusion after the first.
    pub pre_infusion: bool,
    /// Taken at each follow-up.
    pub follow_up: bool,
    /// Only for patients with one of these indications (empty: every patient).
    pub for_indications: Vec<Indication>,
    /// Why this instrument and these occasions.
    pub source: String,
}

/// A protocol's measurement plan (`[outcomes]` in the protocol file).
#[derive(Clone, Debug, PartialEq)]
pub struct MeasurementPlan {
    /// What is measured.
    pub measures: Vec<MeasureRule>,
    /// Follow-ups, days after the last infusion, ascending.
    pub follow_up_days: Vec<u32>,
    /// How early or late a score counts.
    pub window: Window,
    /// Source of the follow-up days and the window.
    pub source: String,
    /// Whether the follow-up days and window are clinic settings.
    pub clinic_setting: bool,
}

/// An infusion of the course: started, or booked and not yet started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Infusion {
    /// When it started, or when it is booked.
    pub at: OffsetDateTime,
    /// Whether it has started.
    pub started: bool,
}

/// A score already recorded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RecordedScore {
    /// The instrument.
    pub instrument: Instrument,
    /// When it was answered.
    pub at: OffsetDateTime,
    /// Its total.
    pub total: f64,
}

/// Which occasion a measurement is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Occasion {
    /// Before the first infusion.
    Baseline,
    /// Before infusion number `infusion` (1-based, in time order).
    PreInfusion {
        /// The infusion's number in the course.
        infusion: usize,
    },
    /// `days` after the last infusion.
    FollowUp {
        /// Days after the last infusion.
        days: u32,
    },
}

impl Occasion {
    /// `baseline`, `pre_infusion` or `follow_up`.
    pub fn code(self) -> &'static str {
        match self {
            Occasion::Baseline => "baseline",
            Occasion::PreInfusion { .. } => "pre_infusion",
            Occasion::FollowUp { .. } => "follow_up",
        }
    }
}

/// Where a measurement stands.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Status {
    /// A score in the window satisfied it: its index in the `scores` given, and the score.
    Done {
        /// Index into the scores passed to [`schedule`].
        index: usize,
        /// The score.
        score: RecordedScore,
    },
    /// The window is open and the due time has not passed.
    Due,
    /// The due time has passed and a score would still count.
    Overdue,
    /// The window has not opened yet.
    Upcoming,
    /// The window closed without a score.
    Missed,
}

impl Status {
    /// `done`, `due`, `overdue`, `upcoming` or `missed`.
    pub fn code(&self) -> &'static str {
        match self {
            Status::Done { .. } => "done",
            Status::Due => "due",
            Status::Overdue => "overdue",
            Status::Upcoming => "upcoming",
            Status::Missed => "missed",
        }
    }

    /// Due or overdue: something to send the patient now.
    pub fn needs_action(&self) -> bool {
        matches!(self, Status::Due | Status::Overdue)
    }
}

/// One scheduled measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    /// The occasion.
    pub occasion: Occasion,
    /// Any one of these satisfies it.
    pub instruments: Vec<Instrument>,
    /// When it is due.
    pub due_at: OffsetDateTime,
    /// A score counts from here (inclusive) ...
    pub opens_at: OffsetDateTime,
    /// ... and only if strictly after this instant (the previous infusion), when there is one.
    pub after: Option<OffsetDateTime>,
    /// ... until here (inclusive); `None` while the infusion it precedes has not started.
    pub closes_at: Option<OffsetDateTime>,
    /// Where it stands at `now`.
    pub status: Status,
}

fn days(n: u32) -> Duration {
    Duration::days(i64::from(n))
}

/// Every measurement of the course at `now`, in due order (then in the protocol's order).
///
/// `infusions` may be in any order; `scores` may be in any order and include instruments the plan
/// does not ask for (they are ignored). Rules limited to other indications are skipped. Without an
/// infusion (started or booked) nothing is scheduled: there is nothing to anchor a due date to.
pub fn schedule(
    plan: &MeasurementPlan,
    indications: &[Indication],
    infusions: &[Infusion],
    scores: &[RecordedScore],
    now: OffsetDateTime,
) -> Vec<Measurement> {
    let mut infusions = infusions.to_vec();
    infusions.sort_by_key(|i| i.at);
    let Some(last) = infusions.last().copied() else {
        return vec![];
    };
    let early = days(plan.window.early_days);
    let late = days(plan.window.late_days);
    let rules: Vec<&MeasureRule> = plan
        .measures
        .iter()
        .filter(|r| r.for_indications.is_empty() || r.for_indications.iter().any(|i| indications.contains(i)))
        .collect();
    // (occasion, instruments, due, opens, after, closes); status is decided after matching.
    let mut slots = Vec::new();
    for (k, infusion) in infusions.iter().enumerate() {
        let previous = k.checked_sub(1).map(|p| infusions[p].at);
        for rule in &rules {
            let occasion = if k == 0 && rule.baseline {
                Occasion::Baseline
            } else if rule.pre_infusion {
                Occasion::PreInfusion { infusion: k + 1 }
            } else {
                continue;
            };
            let opens = previous.map_or(infusion.at - early, |p| (infusion.at - early).max(p));
            let closes = infusion.started.then_some(infusion.at);
            slots.push((occasion, &rule.instruments, infusion.at, opens, previous, closes));
        }
    }
    for &n in &plan.follow_up_days {
        let due = last.at + days(n);
        for rule in rules.iter().filter(|r| r.follow_up) {
            let opens = (due - early).max(last.at);
            slots.push((
                Occasion::FollowUp { days: n },
                &rule.instruments,
                due,
                opens,
                Some(last.at),
                Some(due + late),
            ));
        }
    }
    // Stable: equal due times keep the protocol's order.
    slots.sort_by_key(|s| s.2);
    let mut used = vec![false; scores.len()];
    slots
        .into_iter()
        .map(|(occasion, instruments, due_at, opens_at, after, closes_at)| {
            let counts = |s: &RecordedScore| {
                instruments.contains(&s.instrument)
                    && s.at >= opens_at
                    && after.is_none_or(|a| s.at > a)
                    && closes_at.is_none_or(|c| s.at <= c)
                    && s.at <= now
            };
            let provisional = matches!(occasion, Occasion::FollowUp { .. }) && !last.started;
            let best = if provisional {
                None
            } else {
                scores
                    .iter()
                    .enumerate()
                    .filter(|(i, s)| !used[*i] && counts(s))
                    .min_by_key(|(_, s)| ((s.at - due_at).abs(), s.at))
                    .map(|(i, s)| (i, *s))
            };
            let status = match best {
                Some((index, score)) => {
                    used[index] = true;
                    Status::Done { index, score }
                }
                None if provisional || now < opens_at => Status::Upcoming,
                None if now <= due_at => Status::Due,
                None if closes_at.is_none_or(|c| now <= c) => Status::Overdue,
                None => Status::Missed,
            };
            Measurement {
                occasion,
                instruments: instruments.clone(),
                due_at,
                opens_at,
                after,
                closes_at,
                status,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const DAY: i64 = 86_400;

    fn plan() -> MeasurementPlan {
        MeasurementPlan {
            measures: vec![
                MeasureRule {
                    instruments: vec![Instrument::Phq9],
                    baseline: true,
                    pre_infusion: true,
                    follow_up: true,
                    for_indications: vec![],
                    source: "test".into(),
                },
                MeasureRule {
                    instruments: vec![Instrument::QidsSr16, Instrument::Madrs],
                    baseline: true,
                    pre_infusion: false,
                    follow_up: true,
                    for_indications: vec![],
                    source: "test".into(),
                },
                MeasureRule {
                    instruments: vec![Instrument::Fiqr],
                    baseline: true,
                    pre_infusion: false,
                    follow_up: false,
                    for_indications: vec![Indication::Fibromyalgia],
                    source: "test".into(),
                },
            ],
            follow_up_days: vec![1, 7],
            window: Window {
                early_days: 2,
                late_days: 3,
            },
            source: "test".into(),
            clinic_setting: true,
        }
    }

    fn t0() -> OffsetDateTime {
        datetime!(2026-12-01 10:00 UTC)
    }

    fn s(seconds: i64) -> OffsetDateTime {
        t0() + Duration::seconds(seconds)
    }

    fn score(instrument: Instrument, at: OffsetDateTime) -> RecordedScore {
        RecordedScore {
            instrument,
            at,
            total: 12.0,
        }
    }

    fn started(at: OffsetDateTime) -> Infusion {
        Infusion { at, started: true }
    }

    fn booked(at: OffsetDateTime) -> Infusion {
        Infusion { at, started: false }
    }

    fn statuses(m: &[Measurement]) -> Vec<(&'static str, &'static str)> {
        m.iter().map(|m| (m.occasion.code(), m.status.code())).collect()
    }

    #[test]
    fn nothing_is_scheduled_without_an_infusion() {
        assert!(schedule(&plan(), &[], &[], &[], t0()).is_empty());
    }

    #[test]
    fn baseline_window_edges_for_a_booked_first_infusion() {
        let course = [booked(t0())];
        let at = |now| schedule(&plan(), &[], &course, &[], now);
        let m = at(s(-2 * DAY - 1));
        // Baseline PHQ-9 and QIDS/MADRS, then follow-ups on day 1 and 7 for both rules.
        assert_eq!(m.len(), 6);
        assert_eq!(m[0].occasion, Occasion::Baseline);
        assert_eq!(m[0].due_at, datetime!(2026-12-01 10:00 UTC));
        assert_eq!(m[0].opens_at, datetime!(2026-11-29 10:00 UTC));
        assert_eq!((m[0].after, m[0].closes_at), (None, None));
        assert_eq!(m[0].status, Status::Upcoming);
        // A second before the window: upcoming; at its opening: due; at the booked time: still due.
        assert_eq!(at(s(-2 * DAY))[0].status, Status::Due);
        assert_eq!(at(t0())[0].status, Status::Due);
        // The booked time passed, not started: overdue, and a score now still counts.
        assert_eq!(at(s(1))[0].status, Status::Overdue);
        let late = schedule(
            &plan(),
            &[],
            &course,
            &[score(Instrument::Phq9, s(3600))],
            s(7200),
        );
        assert_eq!(late[0].status.code(), "done");
        // Follow-ups anchored on a booked infusion are provisional: upcoming whatever the time.
        let m = at(s(30 * DAY));
        assert_eq!(
            m.iter()
                .filter(|m| m.occasion == Occasion::FollowUp { days: 7 })
                .count(),
            2
        );
        assert!(
            m.iter()
                .filter(|m| matches!(m.occasion, Occasion::FollowUp { .. }))
                .all(|m| m.status == Status::Upcoming)
        );
        assert_eq!(m[2].due_at, datetime!(2026-12-02 10:00 UTC));
    }

    #[test]
    fn a_baseline_counts_from_the_window_opening_to_the_start_and_not_after() {
        let course = [started(t0())];
        let one = |at| {
            schedule(&plan(), &[], &course, &[score(Instrument::Phq9, at)], s(10))[0]
                .status
                .code()
        };
        assert_eq!(one(s(-2 * DAY - 1)), "missed");
        assert_eq!(one(s(-2 * DAY)), "done");
        assert_eq!(one(t0()), "done");
        // After the start it is not a baseline (it may be a follow-up).
        assert_eq!(one(s(1)), "missed");
        let m = schedule(&plan(), &[], &course, &[score(Instrument::Phq9, t0())], s(10));
        assert_eq!(m[0].closes_at, Some(t0()));
        assert_eq!(
            m[0].status,
            Status::Done {
                index: 0,
                score: score(Instrument::Phq9, t0())
            }
        );
        // Either of QIDS-SR16 and MADRS satisfies the second rule.
        let m = schedule(
            &plan(),
            &[],
            &course,
            &[score(Instrument::Madrs, s(-3600))],
            s(10),
        );
        assert_eq!(statuses(&m)[..2], [("baseline", "missed"), ("baseline", "done")]);
    }

    #[test]
    fn pre_infusion_windows_open_no_earlier_than_the_previous_infusion() {
        // Infusions on day 0 and day 1 (started), day 3 booked.
        let course = [started(t0()), started(s(DAY)), booked(s(3 * DAY))];
        let m = schedule(&plan(), &[], &course, &[], s(DAY + 60));
        let pre: Vec<&Measurement> = m
            .iter()
            .filter(|m| matches!(m.occasion, Occasion::PreInfusion { .. }))
            .collect();
        // Only PHQ-9 is taken before each infusion.
        assert_eq!(pre.len(), 2);
        assert_eq!(pre[0].occasion, Occasion::PreInfusion { infusion: 2 });
        // The window would open 2 days early, but not before infusion 1.
        assert_eq!((pre[0].opens_at, pre[0].after), (t0(), Some(t0())));
        assert_eq!(pre[0].status, Status::Missed);
        assert_eq!(pre[1].occasion, Occasion::PreInfusion { infusion: 3 });
        assert_eq!(pre[1].opens_at, datetime!(2026-12-02 10:00 UTC));
        assert_eq!(pre[1].due_at, datetime!(2026-12-04 10:00 UTC));
        assert_eq!(pre[1].status, Status::Due);
        // A score at the very start of infusion 1 is its baseline, not infusion 2's pre-infusion
        // score; one a second later is infusion 2's.
        let m = schedule(
            &plan(),
            &[],
            &course,
            &[score(Instrument::Phq9, t0()), score(Instrument::Phq9, s(1))],
            s(DAY + 60),
        );
        assert_eq!(
            statuses(&m)[..3],
            [
                ("baseline", "done"),
                ("baseline", "missed"),
                ("pre_infusion", "done")
            ]
        );
        assert!(matches!(m[2].status, Status::Done { index: 1, .. }));
    }

    #[test]
    fn follow_ups_count_from_the_last_infusion_with_their_window() {
        let course = [started(t0()), started(s(2 * DAY))];
        let last = s(2 * DAY);
        let fu = |scores: &[RecordedScore], now| {
            schedule(&plan(), &[], &course, scores, now)
                .into_iter()
                .filter(|m| {
                    m.occasion == Occasion::FollowUp { days: 7 } && m.instruments == [Instrument::Phq9]
                })
                .map(|m| (m.due_at, m.opens_at, m.closes_at, m.status.code()))
                .next()
                .unwrap()
        };
        let due = datetime!(2026-12-10 10:00 UTC);
        assert_eq!(due, last + Duration::days(7));
        let opens = datetime!(2026-12-08 10:00 UTC);
        let closes = datetime!(2026-12-13 10:00 UTC);
        assert_eq!(
            fu(&[], opens - Duration::seconds(1)),
            (due, opens, Some(closes), "upcoming")
        );
        assert_eq!(fu(&[], opens).3, "due");
        assert_eq!(fu(&[], due).3, "due");
        assert_eq!(fu(&[], due + Duration::seconds(1)).3, "overdue");
        assert_eq!(fu(&[], closes).3, "overdue");
        assert_eq!(fu(&[], closes + Duration::seconds(1)).3, "missed");
        // Scores exactly on the edges count; a second outside does not.
        for (at, expected) in [
            (opens, "done"),
            (closes, "done"),
            (opens - Duration::seconds(1), "upcoming"),
            (closes + Duration::seconds(1), "missed"),
        ] {
            let now = closes + Duration::seconds(1);
            let got = fu(&[score(Instrument::Phq9, at)], now).3;
            // A score before the window is claimed by the day-1 follow-up or not at all, never by
            // day 7; after the window, day 7 is missed.
            let expected = if expected == "upcoming" {
                "missed"
            } else {
                expected
            };
            assert_eq!(got, expected, "score at {at}");
        }
        // The day-1 window opens at the last infusion (2 days early would precede it).
        let m = schedule(&plan(), &[], &course, &[], last);
        let day1 = m
            .iter()
            .find(|m| m.occasion == Occasion::FollowUp { days: 1 })
            .unwrap();
        assert_eq!((day1.opens_at, day1.after), (last, Some(last)));
        assert_eq!(day1.due_at, datetime!(2026-12-04 10:00 UTC));
        // At the last infusion's start, the window has opened, but only strictly after counts.
        assert_eq!(day1.status, Status::Due);
    }

    #[test]
    fn a_score_satisfies_one_measurement_the_nearest() {
        // Last (only) infusion at t0; day-1 follow-up window (t0, t0 + 4 d], day-7 [t0 + 5 d, ...].
        let course = [started(t0())];
        let scores = [
            score(Instrument::Phq9, s(DAY + 3600)),
            score(Instrument::Phq9, s(3 * DAY)),
            score(Instrument::Phq9, s(6 * DAY)),
        ];
        let m = schedule(&plan(), &[], &course, &scores, s(20 * DAY));
        let phq: Vec<_> = m
            .iter()
            .filter(|m| m.instruments == [Instrument::Phq9])
            .map(|m| (m.occasion.code(), m.status))
            .collect();
        assert_eq!(phq[0], ("baseline", Status::Missed));
        assert_eq!(
            phq[1],
            (
                "follow_up",
                Status::Done {
                    index: 0,
                    score: scores[0]
                }
            )
        );
        assert_eq!(
            phq[2],
            (
                "follow_up",
                Status::Done {
                    index: 2,
                    score: scores[2]
                }
            )
        );
    }

    #[test]
    fn rules_for_other_indications_are_skipped() {
        let course = [booked(t0())];
        assert_eq!(schedule(&plan(), &[], &course, &[], t0()).len(), 6);
        let m = schedule(&plan(), &[Indication::Fibromyalgia], &course, &[], t0());
        assert_eq!(m.len(), 7);
        assert_eq!(m[2].instruments, [Instrument::Fiqr]);
        assert_eq!(m[2].occasion, Occasion::Baseline);
    }

    #[test]
    fn future_scores_never_count_and_codes_parse() {
        let course = [booked(t0())];
        let m = schedule(&plan(), &[], &course, &[score(Instrument::Phq9, s(-60))], s(-120));
        assert_eq!(m[0].status, Status::Due);
        assert_eq!(instrument_by_code("qids_sr16"), Some(Instrument::QidsSr16));
        assert_eq!(instrument_by_code("cssrs_screener"), None);
        assert!(!is_self_report(Instrument::Madrs) && is_self_report(Instrument::Phq9));
        assert!(Status::Overdue.needs_action() && !Status::Missed.needs_action());
    }
}
