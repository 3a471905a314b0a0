//! What the pump actually gave during a session: the history of rate changes (pauses and stops are
//! changes to 0 mg/h), the exact amount given, limit checks for a proposed rate change, and the
//! conversion to the engine's schedule so that the concentration curve and recovery time can be
//! re-predicted from what was given rather than from what was planned
//! ([`crate::plan::predict_delivery`], re-exported here).
//!
//! **Rates.** A rate is a [`MgPerHour`]. Its range is 0–100 000 mg/h and it is finite by
//! construction, so 0 (a pause or a stop) is representable and no separate "stopped" variant is
//! needed: a pause is `RateChange { at, rate: MgPerHour::ZERO }`, a resume is a change back to a
//! positive rate.
//!
//! **Semantics.** The rate is piecewise constant and right-continuous: a change at `at` applies from
//! `at` on (inclusive) until the next change; before the first change nothing is given. The last
//! change holds for ever (a history that ends with a positive rate is still infusing).

use ketaflow_pkpd::schedule::Segment;
use ketaflow_units::{Kilograms, MgPerHour, MgPerMl, Milligrams, Minutes, Seconds};
use time::OffsetDateTime;

use crate::plan::{LimitCheck, LimitName, LimitStatus, check};
use crate::protocol::Protocol;

pub use crate::plan::{PREDICTION_TAIL_S, covariates_on, predict_delivery};

/// One change of the pump rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateChange {
    /// When the new rate took effect.
    pub at: OffsetDateTime,
    /// The new rate; [`MgPerHour::ZERO`] for a pause or a stop.
    pub rate: MgPerHour,
}

/// Why a delivery history or a quantity derived from it is not acceptable.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DeliveryError {
    /// A change is earlier than the one before it.
    #[error(
        "rate change {index} at {at} is earlier than the change before it at {previous}; changes must be in time order (equal times allowed, the later one wins)"
    )]
    OutOfOrder {
        /// Index of the offending change in the list given (0-based).
        index: usize,
        /// Its time.
        at: OffsetDateTime,
        /// The previous change's time.
        previous: OffsetDateTime,
    },
    /// A derived quantity is outside its type's range (e.g. more than 100 000 mg given).
    #[error("the delivery gives {0}; check the rate history")]
    OutOfRange(String),
}

/// What the pump gave: an ordered history of rate changes.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    changes: Vec<RateChange>,
}

impl Delivery {
    /// Builds a delivery from rate changes in time order. Times must be non-decreasing; of several
    /// changes at the same instant the last one given wins (the earlier ones lasted no time). Rates
    /// are finite and ≥ 0 by their type. An empty history is allowed: nothing was given.
    pub fn new(changes: Vec<RateChange>) -> Result<Delivery, DeliveryError> {
        let mut kept: Vec<RateChange> = Vec::with_capacity(changes.len());
        for (index, change) in changes.into_iter().enumerate() {
            match kept.last_mut() {
                Some(previous) if change.at < previous.at => {
                    return Err(DeliveryError::OutOfOrder {
                        index,
                        at: change.at,
                        previous: previous.at,
                    });
                }
                Some(previous) if change.at == previous.at => *previous = change,
                _ => kept.push(change),
            }
        }
        Ok(Delivery { changes: kept })
    }

    /// The changes, in time order, one per instant.
    pub fn changes(&self) -> &[RateChange] {
        &self.changes
    }

    /// The pieces of constant rate: (start, end or `None` for the open last piece, rate).
    fn pieces(&self) -> impl Iterator<Item = (OffsetDateTime, Option<OffsetDateTime>, MgPerHour)> + '_ {
        self.changes.iter().enumerate().map(|(i, c)| {
            let next = self.changes.get(i + 1).map(|n| n.at);
            (c.at, next, c.rate)
        })
    }

    /// For each piece, the seconds of it that lie before `t`, with its rate.
    fn spans_until(&self, t: OffsetDateTime) -> impl Iterator<Item = (f64, MgPerHour)> + '_ {
        self.pieces().filter_map(move |(start, next, rate)| {
            let end = next.map_or(t, |n| n.min(t));
            (end > start).then(|| ((end - start).as_seconds_f64(), rate))
        })
    }

    /// The total given up to `t`, mg: the exact integral of the piecewise-constant rate
    /// (Σ rate_mg_per_h × seconds ÷ 3600); 0 at or before the first change.
    pub fn given_until(&self, t: OffsetDateTime) -> Result<Milligrams, DeliveryError> {
        let mg: f64 = self
            .spans_until(t)
            .map(|(seconds, rate)| rate.get() * seconds / 3600.0)
            .sum();
        Milligrams::new(mg).map_err(|e| DeliveryError::OutOfRange(e.to_string()))
    }

    /// The time spent infusing (rate above 0) up to `t`.
    pub fn infusing_seconds_until(&self, t: OffsetDateTime) -> Result<Seconds, DeliveryError> {
        let seconds: f64 = self
            .spans_until(t)
            .filter(|(_, rate)| rate.get() > 0.0)
            .map(|(seconds, _)| seconds)
            .sum();
        Seconds::new(seconds).map_err(|e| DeliveryError::OutOfRange(e.to_string()))
    }

    /// The rate in force at `t` (a change at exactly `t` already applies); 0 before the first change.
    pub fn rate_at(&self, t: OffsetDateTime) -> MgPerHour {
        self.changes
            .iter()
            .rev()
            .find(|c| c.at <= t)
            .map_or(MgPerHour::ZERO, |c| c.rate)
    }

    /// When the pump first ran (the first change to a rate above 0).
    pub fn first_started_at(&self) -> Option<OffsetDateTime> {
        self.changes.iter().find(|c| c.rate.get() > 0.0).map(|c| c.at)
    }

    /// When the infusion ended: the time of the last change if it is to 0 and the pump ran before;
    /// `None` while still infusing or if it never ran.
    pub fn ended_at(&self) -> Option<OffsetDateTime> {
        let last = self.changes.last()?;
        (last.rate.get() == 0.0 && self.first_started_at().is_some()).then_some(last.at)
    }

    /// The delivery between `origin` and `until` as engine segments: seconds from `origin`, rates in
    /// mg/s. Pieces are clipped to [`origin`, `until`]; zero-rate pieces (pauses) are left out, since
    /// the engine gives nothing between segments. Empty when `until` ≤ `origin`.
    pub fn segments(&self, origin: OffsetDateTime, until: OffsetDateTime) -> Vec<Segment> {
        self.pieces()
            .filter(|(_, _, rate)| rate.get() > 0.0)
            .filter_map(|(start, next, rate)| {
                let start = start.max(origin);
                let end = next.map_or(until, |n| n.min(until));
                (end > start).then(|| Segment {
                    start_s: (start - origin).as_seconds_f64(),
                    end_s: (end - origin).as_seconds_f64(),
                    rate_mg_per_s: rate.mg_per_second(),
                })
            })
            .collect()
    }
}

/// Evaluates a proposed rate against the protocol's limits exactly as a plan is evaluated
/// (`shared/domain/clinical.md` §11 arithmetic), with the protocol's sources on every check:
///
/// - `RateMgPerKgPerHour` = proposed mg/h ÷ dosing weight;
/// - `PumpMlPerHour` = proposed mg/h ÷ concentration;
/// - `MgPerSession` = the projected session dose if the proposed rate runs for the rest of the
///   planned duration: given so far + proposed mg/h × remaining min ÷ 60;
/// - `DoseMgPerKg` = that projected dose ÷ dosing weight.
///
/// The checks come in the plan's order (dose mg/kg, rate, mg per session, pump rate). Use
/// [`has_hard_breach`] and [`soft_breaches`] on the result.
pub fn check_rate_change(
    protocol: &Protocol,
    dosing_weight: Kilograms,
    concentration: MgPerMl,
    proposed: MgPerHour,
    given_so_far: Milligrams,
    remaining_planned: Minutes,
) -> Vec<LimitCheck> {
    let limits = &protocol.limits;
    let dw = dosing_weight.get();
    let projected_mg = given_so_far.get() + proposed.get() * remaining_planned.get() / 60.0;
    vec![
        check(
            LimitName::DoseMgPerKg,
            projected_mg / dw,
            &limits.dose_mg_per_kg,
            false,
        ),
        check(
            LimitName::RateMgPerKgPerHour,
            (proposed / dosing_weight).get(),
            &limits.rate_mg_per_kg_per_h,
            false,
        ),
        check(
            LimitName::MgPerSession,
            projected_mg,
            &limits.mg_per_session,
            false,
        ),
        check(
            LimitName::PumpMlPerHour,
            (proposed / concentration).get(),
            &limits.pump_ml_per_h,
            false,
        ),
    ]
}

/// Whether any check is beyond its hard limit (the change must not be made).
pub fn has_hard_breach(checks: &[LimitCheck]) -> bool {
    checks.iter().any(|c| c.status == LimitStatus::HardBreach)
}

/// The limits beyond their soft limit but within the hard one (each needs a physician's reason).
pub fn soft_breaches(checks: &[LimitCheck]) -> Vec<LimitName> {
    checks
        .iter()
        .filter(|c| c.status == LimitStatus::SoftBreach)
        .map(|c| c.name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patient::PatientFacts;
    use crate::plan::tests::facts;
    use crate::plan::{PlanRequest, compute_plan};
    use crate::protocol::ProtocolLibrary;
    use time::Duration;
    use time::macros::{date, datetime};

    const T0: OffsetDateTime = datetime!(2026-11-26 09:00 UTC);

    fn at(min: i64) -> OffsetDateTime {
        T0 + Duration::minutes(min)
    }

    fn mgh(v: f64) -> MgPerHour {
        MgPerHour::new(v).unwrap()
    }

    fn change(min: i64, rate: f64) -> RateChange {
        RateChange {
            at: at(min),
            rate: mgh(rate),
        }
    }

    /// 52.5 mg/h for 10 min, paused 10 min, 52.5 mg/h for 20 min, 30 mg/h for 10 min, stopped.
    fn history() -> Delivery {
        Delivery::new(vec![
            change(0, 52.5),
            change(10, 0.0),
            change(20, 52.5),
            change(40, 30.0),
            change(50, 0.0),
        ])
        .unwrap()
    }

    #[test]
    fn total_given_matches_a_hand_computation() {
        let d = history();
        // 52.5 × 10/60 = 8.75; pause 0; 52.5 × 20/60 = 17.5; 30 × 10/60 = 5: 31.25 mg in all.
        let cases = [
            (-5, 0.0),
            (0, 0.0),
            (6, 5.25),
            (10, 8.75),
            (15, 8.75),
            (20, 8.75),
            (30, 8.75 + 8.75),
            (40, 26.25),
            (45, 28.75),
            (50, 31.25),
            (600, 31.25),
        ];
        for (min, mg) in cases {
            let given = d.given_until(at(min)).unwrap().get();
            assert!((given - mg).abs() < 1e-12, "{min} min: {given} mg, want {mg}");
        }
        // Infusing time: 10 + 20 + 10 = 40 min; the pause does not count.
        assert_eq!(d.infusing_seconds_until(at(600)).unwrap().get(), 2400.0);
        assert_eq!(d.infusing_seconds_until(at(15)).unwrap().get(), 600.0);
        assert_eq!(d.infusing_seconds_until(at(25)).unwrap().get(), 900.0);
        // Rates: right-continuous at each change, 0 before the first.
        assert_eq!(d.rate_at(at(-1)).get(), 0.0);
        assert_eq!(d.rate_at(at(0)).get(), 52.5);
        assert_eq!(d.rate_at(at(10)).get(), 0.0);
        assert_eq!(d.rate_at(at(19)).get(), 0.0);
        assert_eq!(d.rate_at(at(20)).get(), 52.5);
        assert_eq!(d.rate_at(at(40)).get(), 30.0);
        assert_eq!(d.rate_at(at(50)).get(), 0.0);
        assert_eq!(d.first_started_at(), Some(at(0)));
        assert_eq!(d.ended_at(), Some(at(50)));
    }

    #[test]
    fn an_open_last_rate_keeps_infusing() {
        let d = Delivery::new(vec![change(0, 60.0)]).unwrap();
        // 60 mg/h for 30 min = 30 mg; still running, so no end time.
        assert_eq!(d.given_until(at(30)).unwrap().get(), 30.0);
        assert_eq!(d.ended_at(), None);
        let empty = Delivery::new(vec![]).unwrap();
        assert_eq!(empty.given_until(at(30)).unwrap().get(), 0.0);
        assert_eq!(empty.rate_at(at(30)).get(), 0.0);
        assert_eq!((empty.first_started_at(), empty.ended_at()), (None, None));
        assert!(empty.segments(at(0), at(60)).is_empty());
        // 100 000 mg/h for two hours is more than any plausible amount: refused, not wrapped.
        let huge = Delivery::new(vec![change(0, 100_000.0)]).unwrap();
        assert!(matches!(
            huge.given_until(at(120)),
            Err(DeliveryError::OutOfRange(_))
        ));
    }

    #[test]
    fn changes_must_be_in_order_and_the_later_of_equal_times_wins() {
        let err = Delivery::new(vec![change(0, 50.0), change(10, 0.0), change(5, 50.0)]).unwrap_err();
        assert_eq!(
            err,
            DeliveryError::OutOfOrder {
                index: 2,
                at: at(5),
                previous: at(10)
            }
        );
        assert!(err.to_string().starts_with("rate change 2 at "));
        // A correction at the same instant replaces the first entry.
        let d = Delivery::new(vec![change(0, 50.0), change(0, 40.0), change(30, 0.0)]).unwrap();
        assert_eq!(d.changes().len(), 2);
        assert_eq!(d.rate_at(at(0)).get(), 40.0);
        assert_eq!(d.given_until(at(30)).unwrap().get(), 20.0);
    }

    #[test]
    fn segments_skip_pauses_and_clip_to_the_window() {
        let d = history();
        let segs = d.segments(at(0), at(600));
        let want = [
            (0.0, 600.0, 52.5 / 3600.0),
            (1200.0, 2400.0, 52.5 / 3600.0),
            (2400.0, 3000.0, 30.0 / 3600.0),
        ];
        assert_eq!(segs.len(), want.len());
        for (s, (a, b, r)) in segs.iter().zip(want) {
            assert_eq!((s.start_s, s.end_s, s.rate_mg_per_s), (a, b, r));
        }
        // Origin 5 min before the start shifts every time by 300 s.
        let shifted = d.segments(at(-5), at(600));
        assert_eq!((shifted[0].start_s, shifted[0].end_s), (300.0, 900.0));
        // A window from 5 to 30 min clips the first and second pieces.
        let clipped = d.segments(at(5), at(30));
        assert_eq!(clipped.len(), 2);
        assert_eq!((clipped[0].start_s, clipped[0].end_s), (0.0, 300.0));
        assert_eq!((clipped[1].start_s, clipped[1].end_s), (900.0, 1500.0));
        // The segments carry exactly the amount given: Σ rate × length = 31.25 mg.
        let mg: f64 = segs.iter().map(|s| s.rate_mg_per_s * (s.end_s - s.start_s)).sum();
        assert!((mg - 31.25).abs() < 1e-12);
        assert!(d.segments(at(30), at(30)).is_empty());
    }

    fn statuses(checks: &[LimitCheck]) -> Vec<(LimitName, LimitStatus)> {
        checks.iter().map(|c| (c.name, c.status)).collect()
    }

    #[test]
    fn rate_changes_are_checked_against_the_trd_limits() {
        // trd: dose mg/kg soft 0.75 hard 1.0; rate soft 1.0 hard 2.0 mg/kg/h; mg/session soft 60
        // hard 100; pump soft 200 hard 999 mL/h. Patient 70 kg, 1 mg/mL, 17.5 mg given, 20 min left.
        let lib = ProtocolLibrary::embedded();
        let trd = lib.get("trd").unwrap();
        let w = Kilograms::new(70.0).unwrap();
        let c = MgPerMl::new(1.0).unwrap();
        let given = Milligrams::new(17.5).unwrap();
        let left = Minutes::new(20.0).unwrap();

        // The planned 52.5 mg/h: 0.75 mg/kg/h, 52.5 mL/h, 17.5 + 17.5 = 35 mg = 0.5 mg/kg. All within.
        let ok = check_rate_change(trd, w, c, mgh(52.5), given, left);
        let values: Vec<f64> = ok.iter().map(|c| c.value).collect();
        for (v, want) in values.iter().zip([0.5, 0.75, 35.0, 52.5]) {
            assert!((v - want).abs() < 1e-12, "{values:?}");
        }
        assert!(ok.iter().all(|c| c.status == LimitStatus::Within));
        assert!(!has_hard_breach(&ok) && soft_breaches(&ok).is_empty());
        assert_eq!(ok[1].source, trd.limits.rate_mg_per_kg_per_h.source);

        // 84 mg/h: 1.2 mg/kg/h (soft breach); 17.5 + 28 = 45.5 mg = 0.65 mg/kg (within).
        let soft = check_rate_change(trd, w, c, mgh(84.0), given, left);
        assert!((soft[1].value - 1.2).abs() < 1e-12);
        assert!((soft[2].value - 45.5).abs() < 1e-12);
        assert_eq!(soft_breaches(&soft), vec![LimitName::RateMgPerKgPerHour]);
        assert!(!has_hard_breach(&soft));

        // 150 mg/h: 2.142857 mg/kg/h (hard); 17.5 + 50 = 67.5 mg (soft) = 0.964 mg/kg (soft); 150 mL/h.
        let hard = check_rate_change(trd, w, c, mgh(150.0), given, left);
        assert_eq!(
            statuses(&hard),
            vec![
                (LimitName::DoseMgPerKg, LimitStatus::SoftBreach),
                (LimitName::RateMgPerKgPerHour, LimitStatus::HardBreach),
                (LimitName::MgPerSession, LimitStatus::SoftBreach),
                (LimitName::PumpMlPerHour, LimitStatus::Within),
            ]
        );
        assert!((hard[0].value - 67.5 / 70.0).abs() < 1e-12);
        assert!(has_hard_breach(&hard));
        assert_eq!(
            soft_breaches(&hard),
            vec![LimitName::DoseMgPerKg, LimitName::MgPerSession]
        );

        // A slow rate can still breach through the projected total: 65 mg given, 60 mg/h for
        // 40 more min → 105 mg (hard, > 100) = 1.5 mg/kg (hard); rate 0.857 mg/kg/h within.
        let late = check_rate_change(
            trd,
            w,
            c,
            mgh(60.0),
            Milligrams::new(65.0).unwrap(),
            Minutes::new(40.0).unwrap(),
        );
        assert_eq!(late[2].status, LimitStatus::HardBreach);
        assert_eq!(late[1].status, LimitStatus::Within);
        // At the edge: exactly the soft limit is within (checks use "beyond").
        let edge = check_rate_change(trd, w, c, mgh(70.0), Milligrams::ZERO, Minutes::ZERO);
        assert_eq!(edge[1].value, 1.0);
        assert_eq!(edge[1].status, LimitStatus::Within);
        // A pause (0 mg/h) is always within for rate and pump.
        let pause = check_rate_change(trd, w, c, MgPerHour::ZERO, given, left);
        assert!(pause.iter().all(|c| c.status == LimitStatus::Within));
    }

    #[test]
    fn re_predicting_the_planned_infusion_reproduces_the_plan_exactly() {
        let lib = ProtocolLibrary::embedded();
        let trd = lib.get("trd").unwrap();
        let f = facts(70.0);
        let plan = compute_plan(&PlanRequest {
            protocol: trd,
            library_version: &lib.version,
            facts: &f,
            concentration: MgPerMl::new(1.0).unwrap(),
            planned_on: date!(2026 - 11 - 26),
            last_session_on: None,
            adjusted_dose_per_kg: None,
        })
        .unwrap();
        let d = Delivery::new(vec![
            RateChange {
                at: at(0),
                rate: plan.rate,
            },
            change(40, 0.0),
        ])
        .unwrap();
        assert_eq!(d.given_until(at(40)).unwrap(), plan.dose);
        let cov = covariates_on(&f, date!(2026 - 11 - 26)).unwrap();
        let segs = d.segments(at(0), at(24 * 60));
        let p = predict_delivery(trd, cov, segs, 2400.0 + PREDICTION_TAIL_S).unwrap();
        assert_eq!(p, plan.prediction);
    }

    #[test]
    fn a_pause_lowers_the_peak_and_delays_recovery_by_less_than_the_pause() {
        let lib = ProtocolLibrary::embedded();
        let trd = lib.get("trd").unwrap();
        let cov = covariates_on(&facts(70.0), date!(2026 - 11 - 26)).unwrap();
        let horizon = 50.0 * 60.0 + PREDICTION_TAIL_S;
        let predict = |d: &Delivery| predict_delivery(trd, cov, d.segments(at(0), at(600)), horizon).unwrap();
        let planned = Delivery::new(vec![change(0, 52.5), change(40, 0.0)]).unwrap();
        // The same 35 mg with a 10-min pause after 20 min: the second half is given 10 min later.
        let paused = Delivery::new(vec![
            change(0, 52.5),
            change(20, 0.0),
            change(30, 52.5),
            change(50, 0.0),
        ])
        .unwrap();
        assert_eq!(
            planned.given_until(at(600)).unwrap(),
            paused.given_until(at(600)).unwrap()
        );
        let p = predict(&planned);
        let q = predict(&paused);

        // Cp(t) = r ∫ h(lag) over the lags at which drug was running, with h, the plasma impulse
        // response of a mammillary model, positive and decreasing. The paused history never has more
        // than 40 min of lags, so Cp ≤ r ∫₀^2400 h = the planned peak (at the end of the infusion).
        assert_eq!(p.peak_cp.1, 2400.0);
        assert!(q.peak_cp.0 < p.peak_cp.0, "{:?} vs {:?}", q.peak_cp, p.peak_cp);

        // Recovery. Write the plan as A (0–20 min) + B (20–40 min); the paused history is A + B
        // shifted by 600 s, i.e. the two halves `a` = A and `b`(t) = B(t − 600) predicted apart.
        // If A is falling from t₁ − 600 on and B from t₁ − 600 on (b from t₁ on), then
        // Ce_paused(t₁) = A(t₁) + B(t₁ − 600) > A(t₁) + B(t₁) = threshold, so t₂ > t₁; and for
        // t ≥ t₁ + 600, A(t) + B(t − 600) < A(t − 600) + B(t − 600) = Ce_plan(t − 600) < threshold,
        // so t₂ < t₁ + 600.
        let first = Delivery::new(vec![change(0, 52.5), change(20, 0.0)]).unwrap();
        let second = Delivery::new(vec![change(30, 52.5), change(50, 0.0)]).unwrap();
        let (a, b) = (predict(&first), predict(&second));
        let t1 = p.ce_below_threshold_from_s.unwrap();
        let t2 = q.ce_below_threshold_from_s.unwrap();
        // The premises, on the 60-s grid: each half's Ce falls strictly after its grid peak, and the
        // peaks (true peak within 60 s of the grid one) come before the times the argument needs.
        for (half, from) in [(&a, t1 - 600.0), (&b, t1)] {
            let i = half.times_s.iter().position(|t| *t == half.peak_ce.1).unwrap();
            assert!(half.ce[i..].windows(2).all(|w| w[1] < w[0]));
            assert!(
                half.peak_ce.1 + 60.0 < from,
                "peak {:?}, needed before {from}",
                half.peak_ce
            );
        }
        assert!(t1 < t2 && t2 < t1 + 600.0, "t1 {t1} s, t2 {t2} s");

        // Linearity: the paused prediction is the sum of its two halves.
        for i in 0..q.cp.len() {
            assert!((q.cp[i] - (a.cp[i] + b.cp[i])).abs() < 1e-12, "Cp {i}");
            assert!((q.ce[i] - (a.ce[i] + b.ce[i])).abs() < 1e-12, "Ce {i}");
        }
    }

    #[test]
    fn nothing_given_predicts_nothing() {
        let lib = ProtocolLibrary::embedded();
        let trd = lib.get("trd").unwrap();
        let cov = covariates_on(&facts(70.0), date!(2026 - 11 - 26)).unwrap();
        let p = predict_delivery(trd, cov, vec![], 3600.0).unwrap();
        assert_eq!(p.times_s.len(), 61);
        assert!(p.cp.iter().all(|c| *c == 0.0));
        assert_eq!((p.peak_cp, p.ce_below_threshold_from_s), ((0.0, 0.0), None));
        // No weight recorded: the covariates cannot be built.
        let no_weight = PatientFacts {
            weights: vec![],
            ..facts(70.0)
        };
        assert!(matches!(
            covariates_on(&no_weight, date!(2026 - 11 - 26)),
            Err(crate::plan::PlanError::NoWeight { .. })
        ));
        // No height recorded: 170 cm, as for plans.
        let no_height = PatientFacts {
            heights: vec![],
            ..facts(70.0)
        };
        let cov = covariates_on(&no_height, date!(2026 - 11 - 26)).unwrap();
        assert_eq!(cov.height.get(), 170.0);
        assert_eq!(cov.age.get(), 40.0);
    }
}

// ---- The dose given against the plan ------------------------------------------------------------

/// How far the dose given may differ from the plan's and still count as "completed as planned",
/// and how far past the plan a running infusion goes before its alarm is urgent: a fraction of the
/// planned dose.
///
/// **Clinic setting**, default 5 %: the volumetric accuracy commonly stated for infusion pumps
/// (IEC 60601-2-24 has the manufacturer state and test it; the ±5 % figure is typical of product
/// specifications and is not a requirement of the standard — UNVERIFIED as a general figure).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DoseTolerance {
    /// The fraction, e.g. 0.05.
    pub fraction: f64,
    /// Where the figure comes from.
    pub source: &'static str,
}

impl Default for DoseTolerance {
    fn default() -> Self {
        DoseTolerance {
            fraction: 0.05,
            source: "clinic setting (default 5 %, the volumetric accuracy typical of infusion pump \
                     specifications; IEC 60601-2-24 has the maker state it) — UNVERIFIED as a general figure",
        }
    }
}

/// What a running infusion has given against its plan and the protocol's hard limit per session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DoseProgress {
    /// Below the planned dose.
    Within,
    /// The planned dose is given (to 0.1 mg): a pump would alarm "volume to be infused complete".
    PlannedReached,
    /// More than the tolerance past the planned dose.
    BeyondPlan,
    /// Past the protocol's hard limit per session.
    BeyondHardLimit,
}

/// Where `given` stands against `planned` (with `tolerance`) and the hard limit per session.
pub fn dose_progress(
    given: Milligrams,
    planned: Milligrams,
    tolerance: DoseTolerance,
    hard_per_session: Option<Milligrams>,
) -> DoseProgress {
    let (given, planned) = (given.get(), planned.get());
    if hard_per_session.is_some_and(|hard| given > hard.get()) {
        DoseProgress::BeyondHardLimit
    } else if given > planned * (1.0 + tolerance.fraction) {
        DoseProgress::BeyondPlan
    } else if given + 0.05 >= planned {
        DoseProgress::PlannedReached
    } else {
        DoseProgress::Within
    }
}

/// The code of the dose alarm (one condition: the dose given against the plan and the hard limit).
pub const DOSE_ALARM: &str = "dose";

/// The alarm for a running infusion's dose, if it has one: medium when the planned dose is in,
/// high past the tolerance and past the hard limit (the stage says which). Every stage
/// recommends; none stops the pump by itself.
pub fn dose_alarm(
    progress: DoseProgress,
    given: Milligrams,
    planned: Milligrams,
    tolerance: DoseTolerance,
    hard_per_session: Option<Milligrams>,
) -> Option<crate::vitals::Alarm> {
    use crate::vitals::{Alarm, Priority, Worse};
    let (g, p) = (given.get(), planned.get());
    // One condition, one alarm: the dose given against the plan, escalating through its stages.
    Some(match progress {
        DoseProgress::Within => return None,
        DoseProgress::PlannedReached => Alarm {
            code: DOSE_ALARM,
            stage: "planned_reached",
            value: g,
            worse: Worse::Higher,
            level: Priority::Medium,
            message: format!(
                "the planned dose is given ({g:.1} of {p:.1} mg): stop the infusion or record why it continues"
            ),
            recommend_pause: true,
            source: "the plan's dose; infusion pumps alarm when the volume to be infused is complete",
            clinic_setting: false,
        },
        DoseProgress::BeyondPlan => Alarm {
            code: DOSE_ALARM,
            stage: "beyond_plan",
            value: g,
            worse: Worse::Higher,
            level: Priority::High,
            message: format!(
                "{g:.1} mg given, more than {:.0} % past the planned {p:.1} mg: stop the infusion",
                tolerance.fraction * 100.0
            ),
            recommend_pause: true,
            source: tolerance.source,
            clinic_setting: true,
        },
        DoseProgress::BeyondHardLimit => Alarm {
            code: DOSE_ALARM,
            stage: "beyond_hard_limit",
            value: g,
            worse: Worse::Higher,
            level: Priority::High,
            message: format!(
                "{g:.1} mg given, past the protocol's hard limit of {:.1} mg per session: stop the infusion",
                hard_per_session.map_or(f64::NAN, Milligrams::get)
            ),
            recommend_pause: true,
            source: "the protocol's hard limit per session (its source is in the protocol library)",
            clinic_setting: false,
        },
    })
}

/// Why "completed as planned" is refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error(
    "{given:.1} mg was given against {planned:.1} mg planned, more than {percent:.0} % apart, so it was not completed as planned; record the stop with its reason instead (stop: early), or check the rate history"
)]
pub struct NotAsPlanned {
    /// Given, mg.
    pub given: f64,
    /// Planned, mg.
    pub planned: f64,
    /// The tolerance, %.
    pub percent: f64,
}

/// "Completed as planned" is true only when the dose given is within the tolerance of the plan's.
pub fn check_completed_as_planned(
    given: Milligrams,
    planned: Milligrams,
    tolerance: DoseTolerance,
) -> Result<(), NotAsPlanned> {
    let (g, p) = (given.get(), planned.get());
    if (g - p).abs() <= p * tolerance.fraction + 0.05 {
        Ok(())
    } else {
        Err(NotAsPlanned {
            given: g,
            planned: p,
            percent: tolerance.fraction * 100.0,
        })
    }
}

#[cfg(test)]
mod dose_tests {
    use super::*;

    fn mg(v: f64) -> Milligrams {
        Milligrams::new(v).unwrap()
    }

    /// The demo's Chair 1 (34 mg planned, 100 mg hard per session) and a 35 mg plan, at the edges.
    #[test]
    fn a_running_infusion_is_placed_against_its_plan_and_hard_limit() {
        let t = DoseTolerance::default();
        let hard = Some(mg(100.0));
        let cases = [
            (20.0, DoseProgress::Within),
            (34.94, DoseProgress::Within),
            (34.95, DoseProgress::PlannedReached),
            (35.0, DoseProgress::PlannedReached),
            (36.75, DoseProgress::PlannedReached),
            (36.76, DoseProgress::BeyondPlan),
            (52.9, DoseProgress::BeyondPlan),
            (100.0, DoseProgress::BeyondPlan),
            (100.1, DoseProgress::BeyondHardLimit),
        ];
        for (given, want) in cases {
            assert_eq!(dose_progress(mg(given), mg(35.0), t, hard), want, "{given} mg");
        }
        assert_eq!(
            dose_progress(mg(101.5), mg(34.0), t, hard),
            DoseProgress::BeyondHardLimit
        );
        assert_eq!(
            dose_progress(mg(101.5), mg(34.0), t, None),
            DoseProgress::BeyondPlan
        );
        let alarm = |g: f64| {
            dose_alarm(dose_progress(mg(g), mg(35.0), t, hard), mg(g), mg(35.0), t, hard)
                .map(|a| (a.code, a.stage, a.level, a.value))
        };
        use crate::vitals::Priority::{High, Medium};
        assert_eq!(alarm(20.0), None);
        assert_eq!(alarm(35.0), Some(("dose", "planned_reached", Medium, 35.0)));
        assert_eq!(alarm(52.9), Some(("dose", "beyond_plan", High, 52.9)));
        assert_eq!(alarm(100.1), Some(("dose", "beyond_hard_limit", High, 100.1)));
        // One condition escalating: the open medium alarm seen at 52.9 mg goes high and is worse;
        // at 100.1 mg the stage changes while the priority stays high.
        let reached = dose_alarm(DoseProgress::PlannedReached, mg(35.0), mg(35.0), t, hard).unwrap();
        let beyond = dose_alarm(DoseProgress::BeyondPlan, mg(52.9), mg(35.0), t, hard).unwrap();
        let update = beyond.update_open(reached.level, Some((reached.value, reached.message.clone())));
        assert_eq!(
            (update.level, update.escalated, update.worsened),
            (High, true, true)
        );
        assert_eq!(update.worst_value, 52.9);
        let hard_stage = dose_alarm(DoseProgress::BeyondHardLimit, mg(100.1), mg(35.0), t, hard).unwrap();
        let update = hard_stage.update_open(High, Some((52.9, beyond.message.clone())));
        assert_eq!(
            (update.level, update.escalated, update.worsened),
            (High, false, true)
        );
    }

    #[test]
    fn completed_as_planned_needs_the_dose_within_the_tolerance() {
        let t = DoseTolerance::default();
        assert!(check_completed_as_planned(mg(35.0), mg(35.0), t).is_ok());
        assert!(check_completed_as_planned(mg(33.3), mg(35.0), t).is_ok());
        assert!(check_completed_as_planned(mg(36.8), mg(35.0), t).is_ok());
        let err = check_completed_as_planned(mg(20.0), mg(35.0), t).unwrap_err();
        assert_eq!(
            err.to_string(),
            "20.0 mg was given against 35.0 mg planned, more than 5 % apart, so it was not completed as planned; record the stop with its reason instead (stop: early), or check the rate history"
        );
        assert!(check_completed_as_planned(mg(52.9), mg(35.0), t).is_err());
    }
}
