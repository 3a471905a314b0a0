//! Controlled-substance rules (ketamine is DEA Schedule III): how a quantity is written, who may
//! witness, how many witnesses an entry needs, in which session states drug is drawn and its
//! administration recorded, when an administration needs a stated reason, and when the biennial
//! inventory is due. Sources are in `shared/domain/clinical.md` §9; the ones marked UNVERIFIED
//! there are marked here too.
//!
//! The ledger's own invariants (balances that never go negative under concurrent writers, entries
//! that never change) are the store's: it holds them with a compare-and-set under its write lock.
//! The status of a vial after an entry (sealed, open, empty) is computed there too, because it
//! follows from the balance the compare-and-set writes.

use rust_decimal::Decimal;
use time::Date;

use crate::session::SessionState;

/// Quantities are mg of ketamine base with at most this many fraction digits (0.001 mg: finer
/// than any syringe or pump reading; a clinic setting).
pub const MAX_FRACTION_DIGITS: u32 = 3;

/// The largest quantity a single entry may carry, mg (a plausibility bound, far above any vial
/// a clinic holds; a clinic setting).
pub const MAX_QUANTITY_MG: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

/// How far a session's total administered may exceed its recorded dose given before the
/// administration needs a stated reason: 0.1 mg. A clinic setting (no source: the recorded dose is
/// the exact integral of the recorded rates, so this only absorbs rounding to 0.1 mg when a nurse
/// reads a pump or a syringe).
pub const ADMINISTRATION_TOLERANCE_MG: Decimal = Decimal::from_parts(1, 0, 0, false, 1);

/// Days before the biennial inventory is due from which it is reported as due soon (a clinic
/// setting).
pub const INVENTORY_DUE_SOON_DAYS: i64 = 30;

/// Why a quantity was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Not a plain decimal string of digits and at most one point.
    #[error("not a decimal string")]
    NotDecimal,
    /// Below zero, or zero where more than zero is needed.
    #[error("too small")]
    TooSmall,
    /// More fraction digits than the ledger keeps.
    #[error("more than {MAX_FRACTION_DIGITS} fraction digits")]
    TooPrecise,
    /// Above [`MAX_QUANTITY_MG`].
    #[error("more than {MAX_QUANTITY_MG}")]
    TooLarge,
}

/// What a quantity field accepts, in words for an error message.
pub fn quantity_allowed(zero_ok: bool) -> String {
    format!(
        "a decimal string with at most {MAX_FRACTION_DIGITS} fraction digits, {} and at most {MAX_QUANTITY_MG} \
         (e.g. \"35.5\"; JSON numbers are not accepted)",
        if zero_ok { "0 or more" } else { "more than 0" }
    )
}

/// Reads a quantity written as a decimal string ("35.5"): digits and at most one point, nothing
/// else (no sign, exponent or spaces inside), at most [`MAX_FRACTION_DIGITS`] fraction digits,
/// more than 0 (or 0 when `zero_ok`: a count may find an empty vial) and at most
/// [`MAX_QUANTITY_MG`]. Returned normalised ("35.50" is 35.5).
pub fn parse_quantity(text: &str, zero_ok: bool) -> Result<Decimal, QuantityError> {
    let t = text.trim();
    let digits = t.bytes().filter(u8::is_ascii_digit).count();
    let points = t.bytes().filter(|b| *b == b'.').count();
    if digits == 0 || points > 1 || digits + points != t.len() {
        return Err(QuantityError::NotDecimal);
    }
    let q = Decimal::from_str_exact(t)
        .map_err(|_| QuantityError::NotDecimal)?
        .normalize();
    if q.is_zero() && !zero_ok {
        return Err(QuantityError::TooSmall);
    }
    if q.scale() > MAX_FRACTION_DIGITS {
        return Err(QuantityError::TooPrecise);
    }
    if q > MAX_QUANTITY_MG {
        return Err(QuantityError::TooLarge);
    }
    Ok(q)
}

/// A National Drug Code with hyphens: 10 digits as 4-4-2, 5-3-2 or 5-4-1, or the 11-digit 5-4-2
/// form. UNVERIFIED: the FDA's NDC format as generally published; not in
/// `shared/domain/clinical.md`. Returns it trimmed.
pub fn ndc(text: &str) -> Option<String> {
    let t = text.trim();
    let parts: Vec<&str> = t.split('-').collect();
    let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
    let ok = parts
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && matches!(lens.as_slice(), [4, 4, 2] | [5, 3, 2] | [5, 4, 1] | [5, 4, 2]);
    ok.then(|| t.to_string())
}

/// A DEA registration number's shape: 2 letters and 7 digits. UNVERIFIED: the shape and its check
/// digit are not in `shared/domain/clinical.md`, so only the shape is checked. Returned in upper
/// case.
pub fn dea_number(text: &str) -> Option<String> {
    let t = text.trim().to_ascii_uppercase();
    let b = t.as_bytes();
    let ok =
        b.len() == 9 && b[..2].iter().all(u8::is_ascii_uppercase) && b[2..].iter().all(u8::is_ascii_digit);
    ok.then_some(t)
}

/// What an entry that needs witnesses is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Witnessed {
    /// The unused part of a dose: one witness (standard practice; a federal requirement is
    /// UNVERIFIED, §9).
    Waste,
    /// Destruction of inventory: two authorised employee witnesses (DEA Form 41).
    Destruction,
}

impl Witnessed {
    /// How many witnesses the entry needs.
    pub fn witnesses_needed(self) -> usize {
        match self {
            Witnessed::Waste => 1,
            Witnessed::Destruction => 2,
        }
    }
}

/// A person named as a witness, as the clinic knows them once they have confirmed with their own
/// password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessCandidate {
    /// Their login name.
    pub username: String,
    /// The account is disabled.
    pub disabled: bool,
    /// The account is locked after repeated failed passwords.
    pub locked: bool,
    /// They still have a one-time password to replace.
    pub must_change_password: bool,
    /// Their role may record controlled-substance entries (nurses and physicians).
    pub may_record_ledger: bool,
}

/// Why a witness does not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WitnessRefusal {
    /// The witness is the person making the entry.
    #[error("you cannot witness your own entry; a witness is another user")]
    IsActor,
    /// The same person is named twice.
    #[error("{0} is named twice; the two witnesses must be different users")]
    NotDistinct(String),
    /// The account is locked.
    #[error("witness {0}'s account is locked after repeated failed passwords")]
    Locked(String),
    /// The one-time password has not been replaced.
    #[error("witness {0} must change their one-time password before witnessing")]
    PasswordChangeRequired(String),
    /// The role may not record controlled-substance entries.
    #[error(
        "witness {username} has the role {role}; a witness is a nurse or physician who may record controlled-substance entries"
    )]
    NotAuthorised {
        /// Who.
        username: String,
        /// Their role.
        role: String,
    },
}

impl WitnessRefusal {
    /// A stable code for the refusal.
    pub fn code(&self) -> &'static str {
        match self {
            WitnessRefusal::IsActor => "witness_is_actor",
            WitnessRefusal::NotDistinct(_) => "witnesses_not_distinct",
            WitnessRefusal::Locked(_) => "witness_locked",
            WitnessRefusal::PasswordChangeRequired(_) => "witness_password_change_required",
            WitnessRefusal::NotAuthorised { .. } => "witness_not_authorised",
        }
    }
}

/// Checks the names given as witnesses before any password is checked: none is the actor, none
/// is named twice. Returns the index of the offending name with the refusal.
pub fn check_witness_names(actor: &str, names: &[&str]) -> Result<(), (usize, WitnessRefusal)> {
    for (i, name) in names.iter().enumerate() {
        if *name == actor {
            return Err((i, WitnessRefusal::IsActor));
        }
        if names[..i].contains(name) {
            return Err((i, WitnessRefusal::NotDistinct((*name).to_string())));
        }
    }
    Ok(())
}

/// Whether a confirmed person may witness: an active nurse or physician, not locked, with no
/// one-time password pending. `role` names their role for the refusal.
pub fn check_witness(candidate: &WitnessCandidate, role: &str) -> Result<(), WitnessRefusal> {
    if candidate.locked {
        return Err(WitnessRefusal::Locked(candidate.username.clone()));
    }
    if candidate.must_change_password {
        return Err(WitnessRefusal::PasswordChangeRequired(candidate.username.clone()));
    }
    if candidate.disabled || !candidate.may_record_ledger {
        return Err(WitnessRefusal::NotAuthorised {
            username: candidate.username.clone(),
            role: role.to_string(),
        });
    }
    Ok(())
}

/// Drug is drawn for a session whose infusion has not finished.
pub fn may_draw_for(state: &SessionState) -> bool {
    matches!(
        state,
        SessionState::Scheduled
            | SessionState::CheckedIn { .. }
            | SessionState::Infusing { .. }
            | SessionState::Paused { .. }
    )
}

/// Administration is recorded once the pump has stopped for good, so the dose given is final.
pub fn may_record_administration_for(state: &SessionState) -> bool {
    matches!(
        state,
        SessionState::Stopped { .. }
            | SessionState::Recovering { .. }
            | SessionState::Discharged { .. }
            | SessionState::Aborted { .. }
    )
}

/// The session states [`may_draw_for`] accepts, by name (for messages).
pub const DRAW_STATES: [&str; 4] = ["scheduled", "checked_in", "infusing", "paused"];

/// The session states [`may_record_administration_for`] accepts, by name (for messages).
pub const ADMINISTER_STATES: [&str; 4] = ["stopped", "recovering", "discharged", "aborted"];

/// An administration that would take the session's total administered more than
/// [`ADMINISTRATION_TOLERANCE_MG`] above its recorded dose given, without a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceedsGiven {
    /// The recorded dose given, mg.
    pub given_mg: Decimal,
    /// Already recorded as administered, mg.
    pub before_mg: Decimal,
    /// This administration, mg.
    pub this_mg: Decimal,
    /// How much the total would exceed the dose given, mg.
    pub excess_mg: Decimal,
}

/// Checks an administration against the session's recorded dose given: the total administered
/// (`before` + `this`) may exceed `given` by at most [`ADMINISTRATION_TOLERANCE_MG`] unless a
/// reason is stated. A total below `given` is allowed (another draw may still be administered).
pub fn check_administration(
    given_mg: Decimal,
    before_mg: Decimal,
    this_mg: Decimal,
    has_reason: bool,
) -> Result<(), ExceedsGiven> {
    let excess_mg = before_mg + this_mg - given_mg;
    if excess_mg > ADMINISTRATION_TOLERANCE_MG && !has_reason {
        return Err(ExceedsGiven {
            given_mg,
            before_mg,
            this_mg,
            excess_mg,
        });
    }
    Ok(())
}

/// Whether a session's controlled-substance account is reconciled: every draw administered or
/// wasted, the total administered within [`ADMINISTRATION_TOLERANCE_MG`] of the dose given, and
/// the pump stopped for good.
pub fn reconciled(outstanding_mg: Decimal, difference_mg: Decimal, state: &SessionState) -> bool {
    outstanding_mg.is_zero()
        && difference_mg.abs() <= ADMINISTRATION_TOLERANCE_MG
        && may_record_administration_for(state)
}

/// When the biennial inventory is due, as of a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InventoryDue {
    /// The day by which the next inventory is due (none before the initial one).
    pub next_due_by: Option<Date>,
    /// Days from today to then (negative when overdue).
    pub days_until_due: Option<i64>,
    /// Due now (or overdue, or no inventory ever taken).
    pub due: bool,
    /// Due within [`INVENTORY_DUE_SOON_DAYS`].
    pub due_soon: bool,
}

/// The same calendar day two years later (29 February becomes 28 February).
pub fn two_years_after(d: Date) -> Date {
    let year = d.year() + 2;
    Date::from_calendar_date(year, d.month(), d.day())
        .or_else(|_| Date::from_calendar_date(year, d.month(), 28))
        .unwrap_or(d)
}

/// An initial inventory, then a new complete inventory at least every 2 years (21 U.S.C. 827(a)).
pub fn inventory_due(last_inventory_on: Option<Date>, today: Date) -> InventoryDue {
    let next_due_by = last_inventory_on.map(two_years_after);
    let days_until_due = next_due_by.map(|d| (d - today).whole_days());
    InventoryDue {
        next_due_by,
        days_until_due,
        due: days_until_due.is_none_or(|d| d <= 0),
        due_soon: days_until_due.is_some_and(|d| d <= INVENTORY_DUE_SOON_DAYS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;
    use std::str::FromStr;
    use time::macros::{date, datetime};

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn quantities_are_plain_decimal_strings_with_at_most_three_fraction_digits() {
        assert_eq!(parse_quantity("35.5", false), Ok(d("35.5")));
        assert_eq!(parse_quantity(" 35.50 ", false), Ok(d("35.5")));
        assert_eq!(parse_quantity("0.001", false), Ok(d("0.001")));
        assert_eq!(parse_quantity("1000000", false), Ok(d("1000000")));
        assert_eq!(parse_quantity("0", true), Ok(Decimal::ZERO));
        assert_eq!(parse_quantity("0", false), Err(QuantityError::TooSmall));
        assert_eq!(parse_quantity("0.0001", false), Err(QuantityError::TooPrecise));
        assert_eq!(parse_quantity("1000000.001", false), Err(QuantityError::TooLarge));
        for bad in ["", ".", "-1", "+1", "1e3", "1,5", "1.2.3", "3 5", "NaN", "½"] {
            assert_eq!(
                parse_quantity(bad, true),
                Err(QuantityError::NotDecimal),
                "{bad:?}"
            );
        }
        assert!(quantity_allowed(true).contains("0 or more"));
        assert!(quantity_allowed(false).contains("more than 0"));
    }

    #[test]
    fn ndc_and_dea_numbers_have_their_published_shapes() {
        for ok in ["0409-2051-05", "12345-678-90", "12345-6789-0", "12345-6789-01"] {
            assert_eq!(ndc(ok).as_deref(), Some(ok));
        }
        for bad in [
            "0409205105",
            "0409-2051-5",
            "04a9-2051-05",
            "1234-5678-901",
            "0409--05",
        ] {
            assert_eq!(ndc(bad), None, "{bad}");
        }
        assert_eq!(dea_number(" ab1234567 ").as_deref(), Some("AB1234567"));
        for bad in ["A1234567", "AB123456", "AB12345678", "1B1234567"] {
            assert_eq!(dea_number(bad), None, "{bad}");
        }
    }

    #[test]
    fn waste_needs_one_witness_and_destruction_two() {
        assert_eq!(Witnessed::Waste.witnesses_needed(), 1);
        assert_eq!(Witnessed::Destruction.witnesses_needed(), 2);
    }

    #[test]
    fn a_witness_is_someone_else_named_once() {
        assert_eq!(check_witness_names("nina", &["paul", "rosa"]), Ok(()));
        assert_eq!(
            check_witness_names("nina", &["paul", "nina"]),
            Err((1, WitnessRefusal::IsActor))
        );
        let (at, refusal) = check_witness_names("nina", &["paul", "paul"]).unwrap_err();
        assert_eq!(at, 1, "the second naming is the one to change");
        assert_eq!(refusal.code(), "witnesses_not_distinct");
        assert_eq!(
            refusal.to_string(),
            "paul is named twice; the two witnesses must be different users"
        );
    }

    #[test]
    fn a_witness_is_an_active_clinician_who_may_record_the_ledger() {
        let ok = WitnessCandidate {
            username: "paul".into(),
            disabled: false,
            locked: false,
            must_change_password: false,
            may_record_ledger: true,
        };
        assert_eq!(check_witness(&ok, "nurse"), Ok(()));
        let with = |f: fn(&mut WitnessCandidate)| {
            let mut c = ok.clone();
            f(&mut c);
            check_witness(&c, "viewer").unwrap_err().code()
        };
        assert_eq!(with(|c| c.locked = true), "witness_locked");
        assert_eq!(
            with(|c| c.must_change_password = true),
            "witness_password_change_required"
        );
        assert_eq!(with(|c| c.may_record_ledger = false), "witness_not_authorised");
        assert_eq!(with(|c| c.disabled = true), "witness_not_authorised");
    }

    #[test]
    fn drug_is_drawn_before_the_infusion_ends_and_administration_recorded_after_the_pump_stops() {
        let at = datetime!(2026-12-05 10:00 UTC);
        let states = [
            SessionState::Scheduled,
            SessionState::Infusing {
                plan_id: "p".into(),
                since: at,
            },
            SessionState::Paused {
                plan_id: "p".into(),
                reason: "nausea".into(),
                since: at,
            },
            SessionState::Recovering {
                infusion_ended_at: at,
            },
            SessionState::Discharged { at },
            SessionState::Aborted {
                reason: "x".into(),
                at,
            },
        ];
        for s in &states {
            assert_eq!(may_draw_for(s), DRAW_STATES.contains(&s.name()), "{}", s.name());
            assert_eq!(
                may_record_administration_for(s),
                ADMINISTER_STATES.contains(&s.name()),
                "{}",
                s.name()
            );
            assert_ne!(may_draw_for(s), may_record_administration_for(s), "{}", s.name());
        }
    }

    #[test]
    fn an_administration_above_the_dose_given_by_more_than_0_1_mg_needs_a_reason() {
        // 35 mg given; 20 mg recorded; 15.1 mg more is exactly at the tolerance.
        assert_eq!(check_administration(d("35"), d("20"), d("15.1"), false), Ok(()));
        let e = check_administration(d("35"), d("20"), d("15.101"), false).unwrap_err();
        assert_eq!(e.excess_mg, d("0.101"));
        assert_eq!(check_administration(d("35"), d("20"), d("15.101"), true), Ok(()));
        // Below the dose given is allowed: another draw may still be administered.
        assert_eq!(check_administration(d("35"), d("0"), d("10"), false), Ok(()));
        let recovering = SessionState::Recovering {
            infusion_ended_at: datetime!(2026-12-05 10:00 UTC),
        };
        assert!(reconciled(Decimal::ZERO, d("-0.1"), &recovering));
        assert!(!reconciled(Decimal::ZERO, d("-0.101"), &recovering));
        assert!(!reconciled(d("1"), Decimal::ZERO, &recovering));
        assert!(!reconciled(
            Decimal::ZERO,
            Decimal::ZERO,
            &SessionState::Scheduled
        ));
    }

    #[test]
    fn the_biennial_inventory_is_due_two_years_after_the_last() {
        let none = inventory_due(None, date!(2026 - 12 - 05));
        assert!(none.due && !none.due_soon && none.next_due_by.is_none());
        let fresh = inventory_due(Some(date!(2026 - 01 - 10)), date!(2026 - 12 - 05));
        assert_eq!(fresh.next_due_by, Some(date!(2028 - 01 - 10)));
        assert_eq!(fresh.days_until_due, Some(401));
        assert!(!fresh.due && !fresh.due_soon);
        let soon = inventory_due(Some(date!(2024 - 12 - 20)), date!(2026 - 12 - 05));
        assert_eq!(soon.days_until_due, Some(15));
        assert!(!soon.due && soon.due_soon);
        let overdue = inventory_due(Some(date!(2024 - 12 - 05)), date!(2026 - 12 - 05));
        assert!(overdue.due && overdue.due_soon);
        assert_eq!(two_years_after(date!(2024 - 02 - 29)), date!(2026 - 02 - 28));
    }
}
