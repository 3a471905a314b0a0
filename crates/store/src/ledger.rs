//! The controlled-substance ledger (ketamine is DEA Schedule III; rules and their sources in
//! `shared/domain/clinical.md` §9): vials received, and an append-only ledger of entries with a
//! perpetual per-vial balance.
//!
//! # Model
//!
//! - A **vial** is one commercial container as received (21 CFR 1304.22(c): finished form —
//!   strength and volume per container —, NDC, lot, expiry, supplier name, address and DEA
//!   registration number, invoice, date received). Its **balance** is what is in it, in mg of
//!   ketamine base (label strengths are stated as base, §11).
//! - **Entries** (table `ledger_entries`, never updated or deleted):
//!   - `receipt`: the vial arrives; balance = content (strength × volume).
//!   - `draw`: drug leaves the vial for one infusion session; balance − quantity. A draw is then
//!     accounted for by `administration` (given to the session's patient) and `waste` (the unused
//!     remainder, with a witness), which do not change the vial's balance but the draw's
//!     *outstanding* amount; neither can exceed what is outstanding.
//!   - `destruction`: expired or damaged stock destroyed (DEA Form 41): the whole remaining
//!     balance, with two witnesses; the vial is `destroyed`.
//!   - `count`: a physical count (or a line of an inventory). A count that differs from the book
//!     opens a **discrepancy**, resolved with a note; if the book was wrong, the resolution adds an
//!     `adjustment` entry that moves the balance by the variance.
//! - Every entry records the vial's balance after it, so the ledger reads as a running balance
//!   per vial; [`Store::verify_ledger`] recomputes every balance from the entries.
//!
//! # Invariants, and where they are enforced
//!
//! - **Exact decimals.** Quantities are [`Decimal`]s with at most [`MAX_FRACTION_DIGITS`]
//!   fraction digits, stored as canonical TEXT (`"35.5"`, `"100"`, `"0"`) on both backends, and
//!   never pass through binary floating point.
//! - **No negative balance.** Checked here under the write lock before anything is written (a
//!   refusal is [`StoreError::Refused`] with code `insufficient_balance` and writes nothing), and by
//!   the database (`CHECK (balance_mg NOT LIKE '-%')` on vials and entries).
//! - **No lost update.** Every ledger write first takes the store's write lock (SQLite: the
//!   `BEGIN IMMEDIATE` of every [`Tx`]; PostgreSQL: the audit head's row lock, then the vial's row
//!   with `SELECT … FOR UPDATE`), reads the balance, and writes the new balance with a
//!   compare-and-set on the vial's entry count (`… WHERE entry_count = $n`); `(vial_id, vial_seq)`
//!   is unique as well. Concurrent draws are therefore applied one after the other, each to the
//!   balance the previous one left.
//! - **Witnesses** are other users than the actor and than each other; waste has one, destruction
//!   two (checked here and by `CHECK` constraints). That a witness is who they claim to be is the
//!   server's job (they re-enter their password).
//! - **Every entry is in the audit chain.** The write methods below append the audit entry
//!   themselves, in the same transaction (`ledger.<kind>`, record type `ledger_entry`, `after` =
//!   the entry): there is no unaudited way to write the ledger.
//! - **Append-only, no deletion at all** (retention: at least 2 years, 21 CFR 1304.04; Ketaflow
//!   keeps ledger records forever and has no delete). Triggers on both backends refuse `UPDATE` and
//!   `DELETE` on `ledger_entries` and `ledger_counts`, `DELETE` on vials and discrepancies, any
//!   change to a vial's receipt facts, and any change to a discrepancy other than resolving it once.

use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::audit::{Actor, NewAuditEntry};
use crate::db::{Backend, Conn, normalize, parse_uuid, with_conn};
use crate::{Store, StoreError, Tx};

/// Most fraction digits a ledger quantity may have (0.001 mg = 1 µg; 0.001 mL).
pub const MAX_FRACTION_DIGITS: u32 = 3;

/// Largest quantity the ledger accepts, mg or mL (a plausibility bound: 1 kg).
pub const MAX_QUANTITY: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

/// Longest free text (reasons, notes, addresses) the ledger stores.
pub const MAX_LEDGER_TEXT: usize = 1000;

/// Largest page [`Store::list_ledger_entries`] returns.
pub const MAX_LEDGER_PAGE: i64 = 1000;

/// A person named in the ledger: the user's id and the name printed in reports (written or typed
/// name, 21 CFR 1304.22(c)), as it was when the entry was made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LedgerPerson {
    /// User id.
    pub id: Uuid,
    /// Name at the time.
    pub name: String,
}

/// Where a vial is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VialStatus {
    /// Received, never drawn from.
    Sealed,
    /// Drawn from, not empty.
    Open,
    /// Balance 0.
    Empty,
    /// Destroyed (DEA Form 41).
    Destroyed,
}

impl VialStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            VialStatus::Sealed => "sealed",
            VialStatus::Open => "open",
            VialStatus::Empty => "empty",
            VialStatus::Destroyed => "destroyed",
        }
    }

    /// Parses a stored or requested name.
    pub fn parse(text: &str) -> Option<VialStatus> {
        [
            VialStatus::Sealed,
            VialStatus::Open,
            VialStatus::Empty,
            VialStatus::Destroyed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// Whether the vial holds stock an inventory must count.
    pub fn on_hand(self) -> bool {
        matches!(self, VialStatus::Sealed | VialStatus::Open)
    }
}

/// What a ledger entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// The vial was received.
    Receipt,
    /// Drug was drawn from the vial for a session.
    Draw,
    /// Drawn drug was given to the session's patient.
    Administration,
    /// Drawn drug was wasted (unused remainder), with a witness.
    Waste,
    /// The vial's remaining content was destroyed (DEA Form 41), with two witnesses.
    Destruction,
    /// The vial was physically counted.
    Count,
    /// The balance was corrected after a count discrepancy was resolved.
    Adjustment,
}

impl EntryKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Receipt => "receipt",
            EntryKind::Draw => "draw",
            EntryKind::Administration => "administration",
            EntryKind::Waste => "waste",
            EntryKind::Destruction => "destruction",
            EntryKind::Count => "count",
            EntryKind::Adjustment => "adjustment",
        }
    }

    fn parse(text: &str) -> Result<EntryKind, StoreError> {
        [
            EntryKind::Receipt,
            EntryKind::Draw,
            EntryKind::Administration,
            EntryKind::Waste,
            EntryKind::Destruction,
            EntryKind::Count,
            EntryKind::Adjustment,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
        .ok_or_else(|| StoreError::Corrupt {
            what: "ledger_entries.kind",
            detail: text.to_string(),
        })
    }
}

fn serialize_date<S: serde::Serializer>(date: &Date, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&iso_date(*date))
}

/// `YYYY-MM-DD`.
pub fn iso_date(date: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

fn parse_date(what: &'static str, text: &str) -> Result<Date, StoreError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(text, &format).map_err(|_| StoreError::Corrupt {
        what,
        detail: text.to_string(),
    })
}

/// A vial as stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Vial {
    /// Id (UUID v7).
    pub id: Uuid,
    /// National Drug Code as on the package.
    pub ndc: String,
    /// Product name, e.g. "Ketamine HCl injection".
    pub product_name: String,
    /// Strength, mg of ketamine base per mL.
    pub strength_mg_per_ml: Decimal,
    /// Volume per container, mL.
    pub volume_ml: Decimal,
    /// Content when received, mg (strength × volume).
    pub content_mg: Decimal,
    /// Lot number.
    pub lot: String,
    /// Expiry date.
    #[serde(serialize_with = "serialize_date")]
    pub expiry: Date,
    /// Supplier's name.
    pub supplier_name: String,
    /// Supplier's address.
    pub supplier_address: String,
    /// Supplier's DEA registration number.
    pub supplier_dea_number: String,
    /// Invoice number (the Schedule III receiving record).
    pub invoice_number: String,
    /// When received.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// Who received it.
    pub received_by: LedgerPerson,
    /// Where the vial is in its life.
    pub status: VialStatus,
    /// What is in it now, mg.
    pub balance_mg: Decimal,
    /// How many ledger entries it has.
    pub entry_count: i64,
}

/// A vial to receive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NewVial<'a> {
    /// National Drug Code.
    pub ndc: &'a str,
    /// Product name.
    pub product_name: &'a str,
    /// mg of base per mL.
    pub strength_mg_per_ml: Decimal,
    /// mL per container.
    pub volume_ml: Decimal,
    /// Lot.
    pub lot: &'a str,
    /// Expiry date.
    pub expiry: Date,
    /// Supplier's name.
    pub supplier_name: &'a str,
    /// Supplier's address.
    pub supplier_address: &'a str,
    /// Supplier's DEA registration number.
    pub supplier_dea_number: &'a str,
    /// Invoice number.
    pub invoice_number: &'a str,
    /// When received.
    pub at: OffsetDateTime,
    /// Who received it.
    pub by: &'a LedgerPerson,
}

/// A ledger entry as stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LedgerEntry {
    /// Gap-free, commit-ordered id across the whole ledger.
    pub id: i64,
    /// The vial.
    pub vial_id: Uuid,
    /// The entry's number among the vial's entries (1 = the receipt).
    pub vial_seq: i64,
    /// What it records.
    pub kind: EntryKind,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who made it.
    pub actor: LedgerPerson,
    /// The quantity recorded, mg (for a count: the amount counted).
    pub quantity_mg: Decimal,
    /// How the vial's balance changed, mg (receipt +, draw and destruction −, adjustment ±).
    pub balance_change_mg: Decimal,
    /// The vial's balance after the entry, mg.
    pub balance_after_mg: Decimal,
    /// The draw that an administration or waste accounts for.
    pub draw_id: Option<i64>,
    /// Draw: the amount drawn; administration and waste: what is left of the draw after it.
    pub draw_outstanding_mg: Option<Decimal>,
    /// The infusion session (draw, administration, waste).
    pub session_id: Option<Uuid>,
    /// The session's patient.
    pub patient_id: Option<Uuid>,
    /// The patient's name at the time.
    pub patient_name: Option<String>,
    /// Administration: the dose the session's pump record says was given, mg.
    pub session_given_mg: Option<Decimal>,
    /// Administration: total administered for the session (this entry included) − given;
    /// count: counted − book balance.
    pub difference_mg: Option<Decimal>,
    /// Witnesses (one for waste, two for destruction).
    pub witnesses: Vec<LedgerPerson>,
    /// Why (waste, destruction, an administration that differs from the pump record, an
    /// adjustment's resolution note).
    pub reason: Option<String>,
    /// How it was destroyed.
    pub method: Option<String>,
    /// Where it was destroyed.
    pub location: Option<String>,
    /// The count this entry belongs to.
    pub count_id: Option<Uuid>,
    /// A count line that is an estimate (opened container).
    pub estimated: bool,
}

/// A draw from a vial for an infusion session.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NewDraw<'a> {
    /// The vial.
    pub vial_id: Uuid,
    /// How much, mg.
    pub quantity_mg: Decimal,
    /// The session it is for.
    pub session_id: Uuid,
    /// The session's patient.
    pub patient_id: Option<Uuid>,
    /// The patient's name.
    pub patient_name: Option<&'a str>,
    /// When.
    pub at: OffsetDateTime,
    /// Who drew it.
    pub by: &'a LedgerPerson,
}

/// Drawn drug given to the patient.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NewAdministration<'a> {
    /// The draw.
    pub draw_id: i64,
    /// How much, mg.
    pub quantity_mg: Decimal,
    /// What the session's pump record says was given, mg (the entry stores it and the difference
    /// of the session's total administered from it).
    pub session_given_mg: Decimal,
    /// Why the administered total differs from the pump record, when it does.
    pub reason: Option<&'a str>,
    /// When.
    pub at: OffsetDateTime,
    /// Who administered it.
    pub by: &'a LedgerPerson,
}

/// Drawn drug wasted (the unused remainder), with a witness.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NewWaste<'a> {
    /// The draw.
    pub draw_id: i64,
    /// How much, mg.
    pub quantity_mg: Decimal,
    /// The witness (another user).
    pub witness: &'a LedgerPerson,
    /// Why / how.
    pub reason: Option<&'a str>,
    /// When.
    pub at: OffsetDateTime,
    /// Who wasted it.
    pub by: &'a LedgerPerson,
}

/// The remaining content of a vial destroyed (DEA Form 41), with two witnesses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NewDestruction<'a> {
    /// The vial.
    pub vial_id: Uuid,
    /// How much, mg: must equal the vial's balance (the whole remaining content).
    pub quantity_mg: Decimal,
    /// Two witnesses, other users than the actor and each other.
    pub witnesses: [&'a LedgerPerson; 2],
    /// Method of destruction.
    pub method: &'a str,
    /// Why (expired, damaged, …).
    pub reason: &'a str,
    /// Where.
    pub location: &'a str,
    /// When.
    pub at: OffsetDateTime,
    /// Who destroyed it.
    pub by: &'a LedgerPerson,
}

/// A count or an inventory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CountKind {
    /// A physical count of some vials.
    Count,
    /// A complete inventory of every vial on hand (initial or biennial, 21 U.S.C. 827(a)).
    Inventory,
}

impl CountKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            CountKind::Count => "count",
            CountKind::Inventory => "inventory",
        }
    }
}

/// When an inventory was taken (21 U.S.C. 827(a) / 1304.11: opening or close of business).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BusinessTime {
    /// At the opening of business.
    Opening,
    /// At the close of business.
    Close,
}

impl BusinessTime {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            BusinessTime::Opening => "opening",
            BusinessTime::Close => "close",
        }
    }
}

/// One vial's line in a count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CountLine {
    /// The vial.
    pub vial_id: Uuid,
    /// What was found, mg.
    pub counted_mg: Decimal,
    /// An estimate (allowed for an opened container only).
    pub estimated: bool,
}

/// A count to record.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NewCount<'a> {
    /// Count or complete inventory.
    pub kind: CountKind,
    /// Opening or close of business (required for an inventory).
    pub business_time: Option<BusinessTime>,
    /// A note.
    pub note: Option<&'a str>,
    /// One line per vial counted (each vial at most once).
    pub lines: &'a [CountLine],
    /// When.
    pub at: OffsetDateTime,
    /// Who counted.
    pub by: &'a LedgerPerson,
}

/// A stored count.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LedgerCount {
    /// Id.
    pub id: Uuid,
    /// Count or inventory.
    pub kind: CountKind,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub taken_at: OffsetDateTime,
    /// Who.
    pub taken_by: LedgerPerson,
    /// Opening or close of business.
    pub business_time: Option<BusinessTime>,
    /// Note.
    pub note: Option<String>,
}

/// Whether a discrepancy still needs a resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscrepancyStatus {
    /// Needs a resolution note.
    Open,
    /// Resolved.
    Resolved,
}

/// A count that disagreed with the book.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Discrepancy {
    /// Id.
    pub id: Uuid,
    /// The count.
    pub count_id: Uuid,
    /// The vial.
    pub vial_id: Uuid,
    /// The count's ledger entry.
    pub count_entry_id: i64,
    /// The book balance at the count, mg.
    pub book_mg: Decimal,
    /// What was counted, mg.
    pub counted_mg: Decimal,
    /// counted − book, mg.
    pub variance_mg: Decimal,
    /// When the count found it.
    #[serde(with = "time::serde::rfc3339")]
    pub opened_at: OffsetDateTime,
    /// Open or resolved.
    pub status: DiscrepancyStatus,
    /// When resolved.
    #[serde(with = "time::serde::rfc3339::option")]
    pub resolved_at: Option<OffsetDateTime>,
    /// Who resolved it.
    pub resolved_by: Option<LedgerPerson>,
    /// What was found.
    pub resolution_note: Option<String>,
    /// The adjustment entry, when the book was corrected.
    pub adjustment_entry_id: Option<i64>,
}

/// What a count wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct CountRecorded {
    /// The count.
    pub count: LedgerCount,
    /// One `count` entry per line.
    pub entries: Vec<LedgerEntry>,
    /// The discrepancies it opened (lines whose count differs from the book).
    pub discrepancies: Vec<Discrepancy>,
}

/// The resolution of a discrepancy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DiscrepancyResolution<'a> {
    /// The discrepancy.
    pub id: Uuid,
    /// What was found.
    pub note: &'a str,
    /// Whether the book was wrong: adds an `adjustment` entry moving the balance by the variance.
    pub adjust: bool,
    /// When.
    pub at: OffsetDateTime,
    /// Who.
    pub by: &'a LedgerPerson,
}

/// What to list from the ledger.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LedgerFilter {
    /// Only this vial's entries.
    pub vial_id: Option<Uuid>,
    /// Only entries about this session.
    pub session_id: Option<Uuid>,
    /// Only this draw and the entries that account for it.
    pub draw_id: Option<i64>,
    /// Only entries with a larger id (paging).
    pub after_id: Option<i64>,
    /// At most this many (≤ [`MAX_LEDGER_PAGE`]).
    pub limit: Option<i64>,
}

/// The result of [`Store::verify_ledger`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerReport {
    /// Vials checked.
    pub vials: u64,
    /// Entries checked.
    pub entries: u64,
    /// Every inconsistency found, in words (empty when the ledger is consistent).
    pub problems: Vec<String>,
}

// ---- Values --------------------------------------------------------------------------------------

/// The canonical text of a quantity: no trailing zeros, no negative zero.
pub fn canonical(d: Decimal) -> String {
    d.normalize().to_string()
}

fn dec(what: &'static str, text: &str) -> Result<Decimal, StoreError> {
    Decimal::from_str_exact(text).map_err(|_| StoreError::Corrupt {
        what,
        detail: text.to_string(),
    })
}

fn opt_dec(what: &'static str, text: Option<String>) -> Result<Option<Decimal>, StoreError> {
    text.as_deref().map(|t| dec(what, t)).transpose()
}

/// Checks a quantity: at most [`MAX_FRACTION_DIGITS`] fraction digits, 0 < q ≤ [`MAX_QUANTITY`]
/// (or 0 ≤ q when `zero_ok`). Returns it normalised.
pub fn check_quantity(what: &'static str, q: Decimal, zero_ok: bool) -> Result<Decimal, StoreError> {
    let q = q.normalize();
    let invalid = |reason: String| StoreError::Invalid { what, reason };
    if q.is_sign_negative() && !q.is_zero() {
        return Err(invalid(format!("{q} is negative")));
    }
    if q.is_zero() && !zero_ok {
        return Err(invalid("must be more than 0".into()));
    }
    if q.scale() > MAX_FRACTION_DIGITS {
        return Err(invalid(format!(
            "{q} has more than {MAX_FRACTION_DIGITS} fraction digits"
        )));
    }
    if q > MAX_QUANTITY {
        return Err(invalid(format!("{q} is more than {MAX_QUANTITY}")));
    }
    Ok(q)
}

fn check_text(what: &'static str, text: &str) -> Result<String, StoreError> {
    let t = text.trim();
    if t.is_empty() || t.chars().count() > MAX_LEDGER_TEXT || t.chars().any(|c| c.is_control() && c != '\n') {
        return Err(StoreError::Invalid {
            what,
            reason: format!("must be 1–{MAX_LEDGER_TEXT} characters of text"),
        });
    }
    Ok(t.to_string())
}

fn check_opt_text(what: &'static str, text: Option<&str>) -> Result<Option<String>, StoreError> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => check_text(what, t).map(Some),
        None => Ok(None),
    }
}

fn check_actor(actor: &Actor, by: &LedgerPerson) -> Result<(), StoreError> {
    if actor.user_id() != by.id.to_string() {
        return Err(StoreError::Invalid {
            what: "ledger actor",
            reason: "the audit actor and the person named in the ledger must be the same user".into(),
        });
    }
    check_text("ledger actor name", &by.name).map(|_| ())
}

/// Mid-point rounding of a pump integral to the ledger's precision.
pub fn round_mg(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(MAX_FRACTION_DIGITS, RoundingStrategy::MidpointAwayFromZero)
        .normalize()
}

fn refused(code: &'static str, message: String) -> StoreError {
    StoreError::Refused { code, message }
}

// ---- Rows ----------------------------------------------------------------------------------------

#[derive(sqlx::FromRow)]
struct VialRow {
    id: String,
    ndc: String,
    product_name: String,
    strength_mg_per_ml: String,
    volume_ml: String,
    content_mg: String,
    lot: String,
    expiry: String,
    supplier_name: String,
    supplier_address: String,
    supplier_dea_number: String,
    invoice_number: String,
    received_at: OffsetDateTime,
    received_by_id: String,
    received_by_name: String,
    status: String,
    balance_mg: String,
    entry_count: i64,
}

impl TryFrom<VialRow> for Vial {
    type Error = StoreError;
    fn try_from(r: VialRow) -> Result<Vial, StoreError> {
        Ok(Vial {
            id: parse_uuid("ledger_vials.id", &r.id)?,
            ndc: r.ndc,
            product_name: r.product_name,
            strength_mg_per_ml: dec("ledger_vials.strength_mg_per_ml", &r.strength_mg_per_ml)?,
            volume_ml: dec("ledger_vials.volume_ml", &r.volume_ml)?,
            content_mg: dec("ledger_vials.content_mg", &r.content_mg)?,
            lot: r.lot,
            expiry: parse_date("ledger_vials.expiry", &r.expiry)?,
            supplier_name: r.supplier_name,
            supplier_address: r.supplier_address,
            supplier_dea_number: r.supplier_dea_number,
            invoice_number: r.invoice_number,
            received_at: r.received_at,
            received_by: LedgerPerson {
                id: parse_uuid("ledger_vials.received_by_id", &r.received_by_id)?,
                name: r.received_by_name,
            },
            status: VialStatus::parse(&r.status).ok_or_else(|| StoreError::Corrupt {
                what: "ledger_vials.status",
                detail: r.status.clone(),
            })?,
            balance_mg: dec("ledger_vials.balance_mg", &r.balance_mg)?,
            entry_count: r.entry_count,
        })
    }
}

const VIAL_COLUMNS: &str = "SELECT id, ndc, product_name, strength_mg_per_ml, volume_ml, content_mg, lot, \
     expiry, supplier_name, supplier_address, supplier_dea_number, invoice_number, received_at, \
     received_by_id, received_by_name, status, balance_mg, entry_count FROM ledger_vials";

#[derive(sqlx::FromRow)]
struct EntryRow {
    id: i64,
    vial_id: String,
    vial_seq: i64,
    kind: String,
    at: OffsetDateTime,
    actor_id: String,
    actor_name: String,
    quantity_mg: String,
    balance_change_mg: String,
    balance_after_mg: String,
    draw_id: Option<i64>,
    draw_outstanding_mg: Option<String>,
    session_id: Option<String>,
    patient_id: Option<String>,
    patient_name: Option<String>,
    session_given_mg: Option<String>,
    difference_mg: Option<String>,
    witness1_id: Option<String>,
    witness1_name: Option<String>,
    witness2_id: Option<String>,
    witness2_name: Option<String>,
    reason: Option<String>,
    method: Option<String>,
    location: Option<String>,
    count_id: Option<String>,
    estimated: bool,
}

fn person(
    what: &'static str,
    id: Option<String>,
    name: Option<String>,
) -> Result<Option<LedgerPerson>, StoreError> {
    match (id, name) {
        (Some(id), Some(name)) => Ok(Some(LedgerPerson {
            id: parse_uuid(what, &id)?,
            name,
        })),
        (None, None) => Ok(None),
        _ => Err(StoreError::Corrupt {
            what,
            detail: "id and name must both be set or both be empty".into(),
        }),
    }
}

fn opt_uuid(what: &'static str, text: Option<String>) -> Result<Option<Uuid>, StoreError> {
    text.as_deref().map(|t| parse_uuid(what, t)).transpose()
}

impl TryFrom<EntryRow> for LedgerEntry {
    type Error = StoreError;
    fn try_from(r: EntryRow) -> Result<LedgerEntry, StoreError> {
        let witnesses = [
            person("ledger_entries.witness1", r.witness1_id, r.witness1_name)?,
            person("ledger_entries.witness2", r.witness2_id, r.witness2_name)?,
        ]
        .into_iter()
        .flatten()
        .collect();
        Ok(LedgerEntry {
            id: r.id,
            vial_id: parse_uuid("ledger_entries.vial_id", &r.vial_id)?,
            vial_seq: r.vial_seq,
            kind: EntryKind::parse(&r.kind)?,
            at: r.at,
            actor: LedgerPerson {
                id: parse_uuid("ledger_entries.actor_id", &r.actor_id)?,
                name: r.actor_name,
            },
            quantity_mg: dec("ledger_entries.quantity_mg", &r.quantity_mg)?,
            balance_change_mg: dec("ledger_entries.balance_change_mg", &r.balance_change_mg)?,
            balance_after_mg: dec("ledger_entries.balance_after_mg", &r.balance_after_mg)?,
            draw_id: r.draw_id,
            draw_outstanding_mg: opt_dec("ledger_entries.draw_outstanding_mg", r.draw_outstanding_mg)?,
            session_id: opt_uuid("ledger_entries.session_id", r.session_id)?,
            patient_id: opt_uuid("ledger_entries.patient_id", r.patient_id)?,
            patient_name: r.patient_name,
            session_given_mg: opt_dec("ledger_entries.session_given_mg", r.session_given_mg)?,
            difference_mg: opt_dec("ledger_entries.difference_mg", r.difference_mg)?,
            witnesses,
            reason: r.reason,
            method: r.method,
            location: r.location,
            count_id: opt_uuid("ledger_entries.count_id", r.count_id)?,
            estimated: r.estimated,
        })
    }
}

const ENTRY_COLUMNS: &str = "SELECT id, vial_id, vial_seq, kind, at, actor_id, actor_name, quantity_mg, \
     balance_change_mg, balance_after_mg, draw_id, draw_outstanding_mg, session_id, patient_id, \
     patient_name, session_given_mg, difference_mg, witness1_id, witness1_name, witness2_id, \
     witness2_name, reason, method, location, count_id, estimated FROM ledger_entries";

#[derive(sqlx::FromRow)]
struct CountRow {
    id: String,
    kind: String,
    taken_at: OffsetDateTime,
    taken_by_id: String,
    taken_by_name: String,
    business_time: Option<String>,
    note: Option<String>,
}

impl TryFrom<CountRow> for LedgerCount {
    type Error = StoreError;
    fn try_from(r: CountRow) -> Result<LedgerCount, StoreError> {
        Ok(LedgerCount {
            id: parse_uuid("ledger_counts.id", &r.id)?,
            kind: match r.kind.as_str() {
                "count" => CountKind::Count,
                "inventory" => CountKind::Inventory,
                other => {
                    return Err(StoreError::Corrupt {
                        what: "ledger_counts.kind",
                        detail: other.to_string(),
                    });
                }
            },
            taken_at: r.taken_at,
            taken_by: LedgerPerson {
                id: parse_uuid("ledger_counts.taken_by_id", &r.taken_by_id)?,
                name: r.taken_by_name,
            },
            business_time: match r.business_time.as_deref() {
                None => None,
                Some("opening") => Some(BusinessTime::Opening),
                Some("close") => Some(BusinessTime::Close),
                Some(other) => {
                    return Err(StoreError::Corrupt {
                        what: "ledger_counts.business_time",
                        detail: other.to_string(),
                    });
                }
            },
            note: r.note,
        })
    }
}

const COUNT_COLUMNS: &str =
    "SELECT id, kind, taken_at, taken_by_id, taken_by_name, business_time, note FROM ledger_counts";

#[derive(sqlx::FromRow)]
struct DiscrepancyRow {
    id: String,
    count_id: String,
    vial_id: String,
    count_entry_id: i64,
    book_mg: String,
    counted_mg: String,
    variance_mg: String,
    opened_at: OffsetDateTime,
    status: String,
    resolved_at: Option<OffsetDateTime>,
    resolved_by_id: Option<String>,
    resolved_by_name: Option<String>,
    resolution_note: Option<String>,
    adjustment_entry_id: Option<i64>,
}

impl TryFrom<DiscrepancyRow> for Discrepancy {
    type Error = StoreError;
    fn try_from(r: DiscrepancyRow) -> Result<Discrepancy, StoreError> {
        Ok(Discrepancy {
            id: parse_uuid("ledger_discrepancies.id", &r.id)?,
            count_id: parse_uuid("ledger_discrepancies.count_id", &r.count_id)?,
            vial_id: parse_uuid("ledger_discrepancies.vial_id", &r.vial_id)?,
            count_entry_id: r.count_entry_id,
            book_mg: dec("ledger_discrepancies.book_mg", &r.book_mg)?,
            counted_mg: dec("ledger_discrepancies.counted_mg", &r.counted_mg)?,
            variance_mg: dec("ledger_discrepancies.variance_mg", &r.variance_mg)?,
            opened_at: r.opened_at,
            status: match r.status.as_str() {
                "open" => DiscrepancyStatus::Open,
                "resolved" => DiscrepancyStatus::Resolved,
                other => {
                    return Err(StoreError::Corrupt {
                        what: "ledger_discrepancies.status",
                        detail: other.to_string(),
                    });
                }
            },
            resolved_at: r.resolved_at,
            resolved_by: person(
                "ledger_discrepancies.resolved_by",
                r.resolved_by_id,
                r.resolved_by_name,
            )?,
            resolution_note: r.resolution_note,
            adjustment_entry_id: r.adjustment_entry_id,
        })
    }
}

const DISCREPANCY_COLUMNS: &str = "SELECT id, count_id, vial_id, count_entry_id, book_mg, counted_mg, \
     variance_mg, opened_at, status, resolved_at, resolved_by_id, resolved_by_name, resolution_note, \
     adjustment_entry_id FROM ledger_discrepancies";

// ---- Reads shared by Store and Tx ----------------------------------------------------------------

async fn vial_in(conn: Conn<'_>, id: Uuid, for_update: bool) -> Result<Vial, StoreError> {
    let lock = match (&conn, for_update) {
        (Conn::Postgres(_), true) => " FOR UPDATE",
        _ => "",
    };
    let sql = format!("{VIAL_COLUMNS} WHERE id = $1{lock}");
    let row: Option<VialRow> = with_conn!(conn, c => {
        sqlx::query_as(&sql).bind(id.to_string()).fetch_optional(&mut *c).await?
    });
    row.map(Vial::try_from)
        .transpose()?
        .ok_or_else(|| StoreError::NotFound {
            what: "vial",
            id: id.to_string(),
        })
}

async fn entry_in(conn: Conn<'_>, id: i64) -> Result<LedgerEntry, StoreError> {
    let sql = format!("{ENTRY_COLUMNS} WHERE id = $1");
    let row: Option<EntryRow> = with_conn!(conn, c => {
        sqlx::query_as(&sql).bind(id).fetch_optional(&mut *c).await?
    });
    row.map(LedgerEntry::try_from)
        .transpose()?
        .ok_or_else(|| StoreError::NotFound {
            what: "ledger entry",
            id: id.to_string(),
        })
}

async fn entries_in(conn: Conn<'_>, filter: &LedgerFilter) -> Result<Vec<LedgerEntry>, StoreError> {
    let limit = filter.limit.unwrap_or(MAX_LEDGER_PAGE).clamp(1, MAX_LEDGER_PAGE);
    let sql = format!(
        "{ENTRY_COLUMNS} WHERE ($1 IS NULL OR vial_id = $1) AND ($2 IS NULL OR session_id = $2) \
         AND ($3 IS NULL OR id = $3 OR draw_id = $3) AND id > $4 ORDER BY id LIMIT $5"
    );
    let rows: Vec<EntryRow> = with_conn!(conn, c => {
        sqlx::query_as(&sql)
            .bind(filter.vial_id.map(|v| v.to_string()))
            .bind(filter.session_id.map(|s| s.to_string()))
            .bind(filter.draw_id)
            .bind(filter.after_id.unwrap_or(0))
            .bind(limit)
            .fetch_all(&mut *c)
            .await?
    });
    rows.into_iter().map(LedgerEntry::try_from).collect()
}

async fn discrepancy_in(conn: Conn<'_>, id: Uuid) -> Result<Discrepancy, StoreError> {
    let sql = format!("{DISCREPANCY_COLUMNS} WHERE id = $1");
    let row: Option<DiscrepancyRow> = with_conn!(conn, c => {
        sqlx::query_as(&sql).bind(id.to_string()).fetch_optional(&mut *c).await?
    });
    row.map(Discrepancy::try_from)
        .transpose()?
        .ok_or_else(|| StoreError::NotFound {
            what: "discrepancy",
            id: id.to_string(),
        })
}

/// What is left of a draw: the outstanding amount recorded by the last entry about it.
async fn draw_outstanding(conn: Conn<'_>, draw_id: i64) -> Result<Decimal, StoreError> {
    let text: Option<Option<String>> = with_conn!(conn, c => {
        sqlx::query_scalar(
            "SELECT draw_outstanding_mg FROM ledger_entries WHERE id = $1 OR draw_id = $1 \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(draw_id)
        .fetch_optional(&mut *c)
        .await?
    });
    match text.flatten() {
        Some(t) => dec("ledger_entries.draw_outstanding_mg", &t),
        None => Err(StoreError::Corrupt {
            what: "ledger_entries.draw_outstanding_mg",
            detail: format!("draw {draw_id} has no outstanding amount"),
        }),
    }
}

// ---- Writes ----------------------------------------------------------------------------------------

/// An entry before it has its id and position.
struct Pending {
    kind: EntryKind,
    at: OffsetDateTime,
    actor: LedgerPerson,
    quantity_mg: Decimal,
    balance_change_mg: Decimal,
    draw_id: Option<i64>,
    draw_outstanding_mg: Option<Decimal>,
    session_id: Option<Uuid>,
    patient_id: Option<Uuid>,
    patient_name: Option<String>,
    session_given_mg: Option<Decimal>,
    difference_mg: Option<Decimal>,
    witnesses: Vec<LedgerPerson>,
    reason: Option<String>,
    method: Option<String>,
    location: Option<String>,
    count_id: Option<Uuid>,
    estimated: bool,
}

impl Pending {
    fn new(kind: EntryKind, at: OffsetDateTime, actor: &LedgerPerson, quantity_mg: Decimal) -> Pending {
        Pending {
            kind,
            at: normalize(at),
            actor: actor.clone(),
            quantity_mg,
            balance_change_mg: Decimal::ZERO,
            draw_id: None,
            draw_outstanding_mg: None,
            session_id: None,
            patient_id: None,
            patient_name: None,
            session_given_mg: None,
            difference_mg: None,
            witnesses: Vec::new(),
            reason: None,
            method: None,
            location: None,
            count_id: None,
            estimated: false,
        }
    }
}

fn status_after(before: VialStatus, balance: Decimal, touched: bool) -> VialStatus {
    if balance.is_zero() {
        VialStatus::Empty
    } else if before == VialStatus::Sealed && !touched {
        VialStatus::Sealed
    } else {
        VialStatus::Open
    }
}

fn check_witnesses(by: &LedgerPerson, witnesses: &[&LedgerPerson]) -> Result<(), StoreError> {
    for (i, w) in witnesses.iter().enumerate() {
        check_text("witness name", &w.name)?;
        if w.id == by.id {
            return Err(refused(
                "witness_is_actor",
                format!(
                    "{} cannot witness their own entry; a witness is another user",
                    w.name
                ),
            ));
        }
        if witnesses[..i].iter().any(|o| o.id == w.id) {
            return Err(refused(
                "witnesses_not_distinct",
                format!(
                    "{} is named twice; the two witnesses must be different users",
                    w.name
                ),
            ));
        }
    }
    Ok(())
}

impl Tx {
    /// Takes the ledger's write lock (PostgreSQL: the audit head's row lock, which every audited
    /// write takes anyway; SQLite: already held by `BEGIN IMMEDIATE`). Reads made after it see
    /// every committed ledger write and nothing can change until this transaction ends.
    pub async fn lock_ledger(&mut self) -> Result<(), StoreError> {
        if self.backend() == Backend::Postgres {
            self.lock_audit_head().await?;
        }
        Ok(())
    }

    /// Appends `entry` to `vial` (whose row this transaction has read under the lock), moves the
    /// vial's balance by the entry's change with a compare-and-set, and audits it. Refuses a
    /// negative balance.
    async fn append_entry(
        &mut self,
        actor: &Actor,
        vial: &Vial,
        p: Pending,
        audit_extra: Option<(&'static str, serde_json::Value)>,
    ) -> Result<LedgerEntry, StoreError> {
        let balance_after = (vial.balance_mg + p.balance_change_mg).normalize();
        if balance_after.is_sign_negative() && !balance_after.is_zero() {
            return Err(refused(
                "insufficient_balance",
                format!(
                    "vial {} (lot {}) holds {} mg; {} of {} mg would leave {} mg, and a balance can never be negative",
                    vial.id,
                    vial.lot,
                    vial.balance_mg.normalize(),
                    p.kind.as_str(),
                    (-p.balance_change_mg).normalize(),
                    balance_after
                ),
            ));
        }
        let touched = !p.balance_change_mg.is_zero() && p.kind != EntryKind::Receipt;
        let status = if vial.status == VialStatus::Destroyed || p.kind == EntryKind::Destruction {
            VialStatus::Destroyed
        } else if p.kind == EntryKind::Receipt {
            VialStatus::Sealed
        } else {
            status_after(vial.status, balance_after, touched)
        };
        let id: i64 = with_conn!(self.conn(), c => {
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM ledger_entries")
                .fetch_one(&mut *c)
                .await?
        });
        let entry = LedgerEntry {
            id,
            vial_id: vial.id,
            vial_seq: vial.entry_count + 1,
            kind: p.kind,
            at: p.at,
            actor: p.actor,
            quantity_mg: p.quantity_mg.normalize(),
            balance_change_mg: p.balance_change_mg.normalize(),
            balance_after_mg: balance_after,
            draw_id: p.draw_id,
            draw_outstanding_mg: p.draw_outstanding_mg.map(|d| d.normalize()),
            session_id: p.session_id,
            patient_id: p.patient_id,
            patient_name: p.patient_name,
            session_given_mg: p.session_given_mg.map(|d| d.normalize()),
            difference_mg: p.difference_mg.map(|d| d.normalize()),
            witnesses: p.witnesses,
            reason: p.reason,
            method: p.method,
            location: p.location,
            count_id: p.count_id,
            estimated: p.estimated,
        };
        let w1 = entry.witnesses.first();
        let w2 = entry.witnesses.get(1);
        with_conn!(self.conn(), c => {
            sqlx::query(
                "INSERT INTO ledger_entries (id, vial_id, vial_seq, kind, at, actor_id, actor_name, \
                 quantity_mg, balance_change_mg, balance_after_mg, draw_id, draw_outstanding_mg, \
                 session_id, patient_id, patient_name, session_given_mg, difference_mg, witness1_id, \
                 witness1_name, witness2_id, witness2_name, reason, method, location, count_id, estimated) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
                 $19, $20, $21, $22, $23, $24, $25, $26)",
            )
            .bind(entry.id)
            .bind(entry.vial_id.to_string())
            .bind(entry.vial_seq)
            .bind(entry.kind.as_str())
            .bind(entry.at)
            .bind(entry.actor.id.to_string())
            .bind(&entry.actor.name)
            .bind(canonical(entry.quantity_mg))
            .bind(canonical(entry.balance_change_mg))
            .bind(canonical(entry.balance_after_mg))
            .bind(entry.draw_id)
            .bind(entry.draw_outstanding_mg.map(canonical))
            .bind(entry.session_id.map(|s| s.to_string()))
            .bind(entry.patient_id.map(|s| s.to_string()))
            .bind(&entry.patient_name)
            .bind(entry.session_given_mg.map(canonical))
            .bind(entry.difference_mg.map(canonical))
            .bind(w1.map(|w| w.id.to_string()))
            .bind(w1.map(|w| w.name.clone()))
            .bind(w2.map(|w| w.id.to_string()))
            .bind(w2.map(|w| w.name.clone()))
            .bind(&entry.reason)
            .bind(&entry.method)
            .bind(&entry.location)
            .bind(entry.count_id.map(|s| s.to_string()))
            .bind(entry.estimated)
            .execute(&mut *c)
            .await
            .map_err(|e| StoreError::from_write(e, "ledger entry for this vial position", None))?;
        });
        if entry.kind != EntryKind::Receipt {
            let done = with_conn!(self.conn(), c => {
                sqlx::query(
                    "UPDATE ledger_vials SET balance_mg = $1, status = $2, entry_count = entry_count + 1 \
                     WHERE id = $3 AND entry_count = $4",
                )
                .bind(canonical(balance_after))
                .bind(status.as_str())
                .bind(vial.id.to_string())
                .bind(vial.entry_count)
                .execute(&mut *c)
                .await?
                .rows_affected()
            });
            if done != 1 {
                // Cannot happen under the lock; refuse rather than apply a change computed from a
                // balance that is no longer current.
                return Err(refused(
                    "concurrent_change",
                    format!(
                        "vial {} changed while this entry was being written; retry",
                        vial.id
                    ),
                ));
            }
        }
        let mut after = serde_json::to_value(&entry).map_err(|e| StoreError::Invalid {
            what: "ledger entry",
            reason: e.to_string(),
        })?;
        if let (Some((key, value)), Some(map)) = (audit_extra, after.as_object_mut()) {
            map.insert(key.to_string(), value);
        }
        self.append_audit(
            &NewAuditEntry::new(
                entry.at,
                actor.clone(),
                format!("ledger.{}", entry.kind.as_str()),
                "ledger_entry",
                entry.id.to_string(),
            )
            .after(after),
        )
        .await?;
        Ok(entry)
    }

    /// Reads a vial inside the transaction (after [`Tx::lock_ledger`], a current read).
    pub async fn get_vial(&mut self, id: Uuid) -> Result<Vial, StoreError> {
        vial_in(self.conn(), id, false).await
    }

    /// Reads a ledger entry inside the transaction.
    pub async fn get_ledger_entry(&mut self, id: i64) -> Result<LedgerEntry, StoreError> {
        entry_in(self.conn(), id).await
    }

    /// The total administered for a session so far, mg, read under the ledger lock (so it stays
    /// current until this transaction ends).
    pub async fn session_administered_mg(&mut self, session_id: Uuid) -> Result<Decimal, StoreError> {
        self.lock_ledger().await?;
        let texts: Vec<String> = with_conn!(self.conn(), c => {
            sqlx::query_scalar(
                "SELECT quantity_mg FROM ledger_entries WHERE session_id = $1 AND kind = 'administration'",
            )
            .bind(session_id.to_string())
            .fetch_all(&mut *c)
            .await?
        });
        let mut total = Decimal::ZERO;
        for t in texts {
            total += dec("ledger_entries.quantity_mg", &t)?;
        }
        Ok(total.normalize())
    }

    /// Receives a vial: stores it (balance = strength × volume, status sealed) with its `receipt`
    /// entry, audited.
    pub async fn receive_vial(
        &mut self,
        actor: &Actor,
        new: &NewVial<'_>,
    ) -> Result<(Vial, LedgerEntry), StoreError> {
        check_actor(actor, new.by)?;
        let strength = check_quantity("strength (mg/mL)", new.strength_mg_per_ml, false)?;
        let volume = check_quantity("volume (mL)", new.volume_ml, false)?;
        let content = check_quantity("content (strength × volume, mg)", strength * volume, false)?;
        let vial = Vial {
            id: Uuid::now_v7(),
            ndc: check_text("NDC", new.ndc)?,
            product_name: check_text("product name", new.product_name)?,
            strength_mg_per_ml: strength,
            volume_ml: volume,
            content_mg: content,
            lot: check_text("lot", new.lot)?,
            expiry: new.expiry,
            supplier_name: check_text("supplier name", new.supplier_name)?,
            supplier_address: check_text("supplier address", new.supplier_address)?,
            supplier_dea_number: check_text("supplier DEA number", new.supplier_dea_number)?,
            invoice_number: check_text("invoice number", new.invoice_number)?,
            received_at: normalize(new.at),
            received_by: new.by.clone(),
            status: VialStatus::Sealed,
            balance_mg: Decimal::ZERO,
            entry_count: 0,
        };
        self.lock_ledger().await?;
        with_conn!(self.conn(), c => {
            sqlx::query(
                "INSERT INTO ledger_vials (id, ndc, product_name, strength_mg_per_ml, volume_ml, content_mg, \
                 lot, expiry, supplier_name, supplier_address, supplier_dea_number, invoice_number, \
                 received_at, received_by_id, received_by_name, status, balance_mg, entry_count) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 'sealed', $16, 1)",
            )
            .bind(vial.id.to_string())
            .bind(&vial.ndc)
            .bind(&vial.product_name)
            .bind(canonical(vial.strength_mg_per_ml))
            .bind(canonical(vial.volume_ml))
            .bind(canonical(vial.content_mg))
            .bind(&vial.lot)
            .bind(iso_date(vial.expiry))
            .bind(&vial.supplier_name)
            .bind(&vial.supplier_address)
            .bind(&vial.supplier_dea_number)
            .bind(&vial.invoice_number)
            .bind(vial.received_at)
            .bind(vial.received_by.id.to_string())
            .bind(&vial.received_by.name)
            .bind(canonical(content))
            .execute(&mut *c)
            .await?;
        });
        let mut p = Pending::new(EntryKind::Receipt, vial.received_at, new.by, content);
        p.balance_change_mg = content;
        let vial_json = serde_json::to_value(&vial).map_err(|e| StoreError::Invalid {
            what: "vial",
            reason: e.to_string(),
        })?;
        // The receipt sees the vial before it: balance 0, no entries.
        let entry = self
            .append_entry(actor, &vial, p, Some(("vial", vial_json)))
            .await?;
        let stored = vial_in(self.conn(), vial.id, false).await?;
        Ok((stored, entry))
    }

    /// Draws from a vial for a session. Refused (writing nothing) when the vial is destroyed,
    /// expired on the day of the draw, has an open count discrepancy, or holds less than asked.
    pub async fn draw_from_vial(
        &mut self,
        actor: &Actor,
        d: &NewDraw<'_>,
    ) -> Result<LedgerEntry, StoreError> {
        check_actor(actor, d.by)?;
        let q = check_quantity("quantity (mg)", d.quantity_mg, false)?;
        let patient_name = check_opt_text("patient name", d.patient_name)?;
        self.lock_ledger().await?;
        let vial = vial_in(self.conn(), d.vial_id, true).await?;
        if vial.status == VialStatus::Destroyed {
            return Err(refused(
                "vial_destroyed",
                format!(
                    "vial {} (lot {}) was destroyed; nothing can be drawn from it",
                    vial.id, vial.lot
                ),
            ));
        }
        let day = normalize(d.at).date();
        if day > vial.expiry {
            return Err(refused(
                "vial_expired",
                format!(
                    "vial {} (lot {}) expired on {}; destroy it (DEA Form 41) instead of drawing from it",
                    vial.id,
                    vial.lot,
                    iso_date(vial.expiry)
                ),
            ));
        }
        let open: i64 = with_conn!(self.conn(), c => {
            sqlx::query_scalar("SELECT COUNT(*) FROM ledger_discrepancies WHERE vial_id = $1 AND status = 'open'")
                .bind(vial.id.to_string())
                .fetch_one(&mut *c)
                .await?
        });
        if open > 0 {
            return Err(refused(
                "open_discrepancy",
                format!(
                    "vial {} (lot {}) has an open count discrepancy; a physician resolves it before the vial is used again",
                    vial.id, vial.lot
                ),
            ));
        }
        let mut p = Pending::new(EntryKind::Draw, d.at, d.by, q);
        p.balance_change_mg = -q;
        p.draw_outstanding_mg = Some(q);
        p.session_id = Some(d.session_id);
        p.patient_id = d.patient_id;
        p.patient_name = patient_name;
        self.append_entry(actor, &vial, p, None).await
    }

    /// Loads a draw and its vial under the lock for an entry that accounts for it.
    async fn draw_for(
        &mut self,
        draw_id: i64,
        q: Decimal,
        what: &str,
    ) -> Result<(LedgerEntry, Vial, Decimal), StoreError> {
        self.lock_ledger().await?;
        let draw = entry_in(self.conn(), draw_id).await.map_err(|e| match e {
            StoreError::NotFound { id, .. } => StoreError::NotFound { what: "draw", id },
            other => other,
        })?;
        if draw.kind != EntryKind::Draw {
            return Err(StoreError::NotFound {
                what: "draw",
                id: draw_id.to_string(),
            });
        }
        let vial = vial_in(self.conn(), draw.vial_id, true).await?;
        let outstanding = draw_outstanding(self.conn(), draw_id).await?;
        if q > outstanding {
            return Err(refused(
                "exceeds_draw",
                format!(
                    "draw {draw_id} has {} mg not yet administered or wasted; cannot record {what} of {q} mg",
                    outstanding.normalize()
                ),
            ));
        }
        Ok((draw, vial, outstanding))
    }

    /// Records drawn drug as given to the session's patient. Stores the session's recorded dose
    /// given and the difference of the session's total administered (this entry included) from
    /// it; the caller decides whether a difference needs a reason. Refused when more than the
    /// draw's outstanding amount.
    pub async fn record_administration(
        &mut self,
        actor: &Actor,
        a: &NewAdministration<'_>,
    ) -> Result<LedgerEntry, StoreError> {
        check_actor(actor, a.by)?;
        let q = check_quantity("quantity (mg)", a.quantity_mg, false)?;
        let given = check_quantity("session dose given (mg)", round_mg(a.session_given_mg), true)?;
        let reason = check_opt_text("reason", a.reason)?;
        let (draw, vial, outstanding) = self.draw_for(a.draw_id, q, "an administration").await?;
        let session = draw.session_id.ok_or_else(|| StoreError::Corrupt {
            what: "ledger_entries.session_id",
            detail: format!("draw {} has no session", draw.id),
        })?;
        let before = self.session_administered_mg(session).await?;
        let mut p = Pending::new(EntryKind::Administration, a.at, a.by, q);
        p.draw_id = Some(draw.id);
        p.draw_outstanding_mg = Some(outstanding - q);
        p.session_id = Some(session);
        p.patient_id = draw.patient_id;
        p.patient_name = draw.patient_name.clone();
        p.session_given_mg = Some(given);
        p.difference_mg = Some(before + q - given);
        p.reason = reason;
        self.append_entry(actor, &vial, p, None).await
    }

    /// Records drawn drug as wasted, with a witness who is another user.
    pub async fn record_waste(&mut self, actor: &Actor, w: &NewWaste<'_>) -> Result<LedgerEntry, StoreError> {
        check_actor(actor, w.by)?;
        let q = check_quantity("quantity (mg)", w.quantity_mg, false)?;
        check_witnesses(w.by, &[w.witness])?;
        let reason = check_opt_text("reason", w.reason)?;
        let (draw, vial, outstanding) = self.draw_for(w.draw_id, q, "waste").await?;
        let mut p = Pending::new(EntryKind::Waste, w.at, w.by, q);
        p.draw_id = Some(draw.id);
        p.draw_outstanding_mg = Some(outstanding - q);
        p.session_id = draw.session_id;
        p.patient_id = draw.patient_id;
        p.patient_name = draw.patient_name.clone();
        p.witnesses = vec![w.witness.clone()];
        p.reason = reason;
        self.append_entry(actor, &vial, p, None).await
    }

    /// Destroys a vial's whole remaining content (DEA Form 41) with two witnesses. The quantity
    /// must equal the balance: a different amount is a discrepancy, to be counted and resolved
    /// first.
    pub async fn destroy_vial(
        &mut self,
        actor: &Actor,
        d: &NewDestruction<'_>,
    ) -> Result<LedgerEntry, StoreError> {
        check_actor(actor, d.by)?;
        let q = check_quantity("quantity (mg)", d.quantity_mg, false)?;
        check_witnesses(d.by, &d.witnesses)?;
        let method = check_text("method", d.method)?;
        let reason = check_text("reason", d.reason)?;
        let location = check_text("location", d.location)?;
        self.lock_ledger().await?;
        let vial = vial_in(self.conn(), d.vial_id, true).await?;
        if vial.status == VialStatus::Destroyed {
            return Err(refused(
                "vial_destroyed",
                format!("vial {} (lot {}) was already destroyed", vial.id, vial.lot),
            ));
        }
        if vial.balance_mg.is_zero() {
            return Err(refused(
                "nothing_to_destroy",
                format!(
                    "vial {} (lot {}) is empty; there is nothing to destroy",
                    vial.id, vial.lot
                ),
            ));
        }
        if q != vial.balance_mg {
            return Err(refused(
                "destruction_differs_from_balance",
                format!(
                    "vial {} (lot {}) holds {} mg by the book; destruction records the whole remaining content, \
                     so {} mg is refused; count the vial and resolve the discrepancy first",
                    vial.id,
                    vial.lot,
                    vial.balance_mg.normalize(),
                    q
                ),
            ));
        }
        let mut p = Pending::new(EntryKind::Destruction, d.at, d.by, q);
        p.balance_change_mg = -q;
        p.witnesses = d.witnesses.iter().map(|w| (*w).clone()).collect();
        p.method = Some(method);
        p.reason = Some(reason);
        p.location = Some(location);
        self.append_entry(actor, &vial, p, None).await
    }

    /// Records a physical count (or a complete inventory): one `count` entry per vial, and a
    /// discrepancy for every vial whose count differs from the book. An inventory must count every
    /// vial on hand (sealed or open) and say whether it was taken at the opening or close of
    /// business; only an opened vial may be estimated.
    pub async fn record_count(
        &mut self,
        actor: &Actor,
        c: &NewCount<'_>,
    ) -> Result<CountRecorded, StoreError> {
        check_actor(actor, c.by)?;
        let note = check_opt_text("note", c.note)?;
        if c.lines.is_empty() {
            return Err(StoreError::Invalid {
                what: "count",
                reason: "must count at least one vial".into(),
            });
        }
        if c.kind == CountKind::Inventory && c.business_time.is_none() {
            return Err(StoreError::Invalid {
                what: "inventory",
                reason: "must say whether it was taken at the opening or the close of business".into(),
            });
        }
        let mut lines = Vec::with_capacity(c.lines.len());
        for (i, line) in c.lines.iter().enumerate() {
            if c.lines[..i].iter().any(|l| l.vial_id == line.vial_id) {
                return Err(StoreError::Invalid {
                    what: "count",
                    reason: format!("vial {} is counted twice", line.vial_id),
                });
            }
            lines.push(CountLine {
                counted_mg: check_quantity("counted (mg)", line.counted_mg, true)?,
                ..*line
            });
        }
        self.lock_ledger().await?;
        if c.kind == CountKind::Inventory {
            let on_hand: Vec<String> = with_conn!(self.conn(), conn => {
                sqlx::query_scalar("SELECT id FROM ledger_vials WHERE status IN ('sealed', 'open') ORDER BY id")
                    .fetch_all(&mut *conn)
                    .await?
            });
            let missing: Vec<String> = on_hand
                .into_iter()
                .filter(|id| !lines.iter().any(|l| &l.vial_id.to_string() == id))
                .collect();
            if !missing.is_empty() {
                return Err(refused(
                    "inventory_incomplete",
                    format!(
                        "an inventory counts every vial on hand; not counted: {}",
                        missing.join(", ")
                    ),
                ));
            }
        }
        // Every line is checked before anything is written, so a refusal leaves nothing behind.
        for line in &lines {
            let vial = vial_in(self.conn(), line.vial_id, true).await?;
            if vial.status == VialStatus::Destroyed {
                return Err(refused(
                    "vial_destroyed",
                    format!(
                        "vial {} (lot {}) was destroyed; it cannot be counted",
                        vial.id, vial.lot
                    ),
                ));
            }
            if line.estimated && vial.status != VialStatus::Open {
                return Err(refused(
                    "estimate_not_allowed",
                    format!(
                        "vial {} (lot {}) is {}; only an opened container may be estimated (21 U.S.C. 827(a))",
                        vial.id,
                        vial.lot,
                        vial.status.as_str()
                    ),
                ));
            }
        }
        let count = LedgerCount {
            id: Uuid::now_v7(),
            kind: c.kind,
            taken_at: normalize(c.at),
            taken_by: c.by.clone(),
            business_time: c.business_time,
            note,
        };
        with_conn!(self.conn(), conn => {
            sqlx::query(
                "INSERT INTO ledger_counts (id, kind, taken_at, taken_by_id, taken_by_name, business_time, note) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(count.id.to_string())
            .bind(count.kind.as_str())
            .bind(count.taken_at)
            .bind(count.taken_by.id.to_string())
            .bind(&count.taken_by.name)
            .bind(count.business_time.map(BusinessTime::as_str))
            .bind(&count.note)
            .execute(&mut *conn)
            .await?;
        });
        self.append_audit(
            &NewAuditEntry::new(
                count.taken_at,
                actor.clone(),
                format!("ledger.{}", count.kind.as_str()),
                "ledger_count",
                count.id.to_string(),
            )
            .after(serde_json::to_value(&count).map_err(|e| StoreError::Invalid {
                what: "count",
                reason: e.to_string(),
            })?),
        )
        .await?;
        let mut entries = Vec::new();
        let mut discrepancies = Vec::new();
        for line in &lines {
            let vial = vial_in(self.conn(), line.vial_id, true).await?;
            let variance = (line.counted_mg - vial.balance_mg).normalize();
            let mut p = Pending::new(EntryKind::Count, c.at, c.by, line.counted_mg);
            p.difference_mg = Some(variance);
            p.count_id = Some(count.id);
            p.estimated = line.estimated;
            let discrepancy = (!variance.is_zero()).then(|| Discrepancy {
                id: Uuid::now_v7(),
                count_id: count.id,
                vial_id: vial.id,
                count_entry_id: 0,
                book_mg: vial.balance_mg.normalize(),
                counted_mg: line.counted_mg,
                variance_mg: variance,
                opened_at: count.taken_at,
                status: DiscrepancyStatus::Open,
                resolved_at: None,
                resolved_by: None,
                resolution_note: None,
                adjustment_entry_id: None,
            });
            let extra = discrepancy
                .as_ref()
                .map(|d| serde_json::json!({ "id": d.id, "variance_mg": canonical(d.variance_mg) }));
            let entry = self
                .append_entry(actor, &vial, p, extra.map(|e| ("discrepancy", e)))
                .await?;
            if let Some(mut d) = discrepancy {
                d.count_entry_id = entry.id;
                with_conn!(self.conn(), conn => {
                    sqlx::query(
                        "INSERT INTO ledger_discrepancies (id, count_id, vial_id, count_entry_id, book_mg, \
                         counted_mg, variance_mg, opened_at, status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open')",
                    )
                    .bind(d.id.to_string())
                    .bind(d.count_id.to_string())
                    .bind(d.vial_id.to_string())
                    .bind(d.count_entry_id)
                    .bind(canonical(d.book_mg))
                    .bind(canonical(d.counted_mg))
                    .bind(canonical(d.variance_mg))
                    .bind(d.opened_at)
                    .execute(&mut *conn)
                    .await?;
                });
                discrepancies.push(d);
            }
            entries.push(entry);
        }
        Ok(CountRecorded {
            count,
            entries,
            discrepancies,
        })
    }

    /// Resolves an open discrepancy with a note; with `adjust`, adds an `adjustment` entry moving
    /// the vial's balance by the variance (refused if that would make it negative).
    pub async fn resolve_discrepancy(
        &mut self,
        actor: &Actor,
        r: &DiscrepancyResolution<'_>,
    ) -> Result<(Discrepancy, Option<LedgerEntry>), StoreError> {
        check_actor(actor, r.by)?;
        let note = check_text("resolution note", r.note)?;
        self.lock_ledger().await?;
        let before = discrepancy_in(self.conn(), r.id).await?;
        if before.status != DiscrepancyStatus::Open {
            return Err(refused(
                "discrepancy_resolved",
                format!("discrepancy {} is already resolved", r.id),
            ));
        }
        let at = normalize(r.at);
        let adjustment = if r.adjust {
            let vial = vial_in(self.conn(), before.vial_id, true).await?;
            if vial.status == VialStatus::Destroyed {
                return Err(refused(
                    "vial_destroyed",
                    format!(
                        "vial {} was destroyed; its balance can no longer be adjusted",
                        vial.id
                    ),
                ));
            }
            let mut p = Pending::new(EntryKind::Adjustment, at, r.by, before.variance_mg.abs());
            p.balance_change_mg = before.variance_mg;
            p.difference_mg = Some(before.variance_mg);
            p.reason = Some(note.clone());
            p.count_id = Some(before.count_id);
            let extra = serde_json::json!({ "id": before.id });
            Some(
                self.append_entry(actor, &vial, p, Some(("discrepancy", extra)))
                    .await?,
            )
        } else {
            None
        };
        let done = with_conn!(self.conn(), c => {
            sqlx::query(
                "UPDATE ledger_discrepancies SET status = 'resolved', resolved_at = $1, resolved_by_id = $2, \
                 resolved_by_name = $3, resolution_note = $4, adjustment_entry_id = $5 \
                 WHERE id = $6 AND status = 'open'",
            )
            .bind(at)
            .bind(r.by.id.to_string())
            .bind(&r.by.name)
            .bind(&note)
            .bind(adjustment.as_ref().map(|e| e.id))
            .bind(r.id.to_string())
            .execute(&mut *c)
            .await?
            .rows_affected()
        });
        if done != 1 {
            return Err(refused(
                "discrepancy_resolved",
                format!("discrepancy {} is already resolved", r.id),
            ));
        }
        let after = discrepancy_in(self.conn(), r.id).await?;
        let json = |d: &Discrepancy| {
            serde_json::to_value(d).map_err(|e| StoreError::Invalid {
                what: "discrepancy",
                reason: e.to_string(),
            })
        };
        self.append_audit(
            &NewAuditEntry::new(
                at,
                actor.clone(),
                "ledger.discrepancy.resolve",
                "ledger_discrepancy",
                r.id.to_string(),
            )
            .before(json(&before)?)
            .after(json(&after)?),
        )
        .await?;
        Ok((after, adjustment))
    }
}

impl Store {
    /// One vial.
    pub async fn get_vial(&self, id: Uuid) -> Result<Vial, StoreError> {
        vial_in(self.acquire().await?.conn(), id, false).await
    }

    /// Vials in the order received, optionally only those with `status`.
    pub async fn list_vials(&self, status: Option<VialStatus>) -> Result<Vec<Vial>, StoreError> {
        let sql = format!("{VIAL_COLUMNS} WHERE ($1 IS NULL OR status = $1) ORDER BY received_at, id");
        let mut pooled = self.acquire().await?;
        let rows: Vec<VialRow> = with_conn!(pooled.conn(), c => {
            sqlx::query_as(&sql).bind(status.map(VialStatus::as_str)).fetch_all(&mut *c).await?
        });
        rows.into_iter().map(Vial::try_from).collect()
    }

    /// One ledger entry.
    pub async fn get_ledger_entry(&self, id: i64) -> Result<LedgerEntry, StoreError> {
        entry_in(self.acquire().await?.conn(), id).await
    }

    /// Entries matching `filter`, in id order (= commit order).
    pub async fn list_ledger_entries(&self, filter: &LedgerFilter) -> Result<Vec<LedgerEntry>, StoreError> {
        entries_in(self.acquire().await?.conn(), filter).await
    }

    /// Every entry matching `filter` (ignoring its `limit`), page by page.
    pub async fn all_ledger_entries(&self, filter: &LedgerFilter) -> Result<Vec<LedgerEntry>, StoreError> {
        let mut out: Vec<LedgerEntry> = Vec::new();
        loop {
            let page = self
                .list_ledger_entries(&LedgerFilter {
                    after_id: out.last().map(|e| e.id).or(filter.after_id),
                    limit: Some(MAX_LEDGER_PAGE),
                    ..*filter
                })
                .await?;
            let full = page.len() as i64 == MAX_LEDGER_PAGE;
            out.extend(page);
            if !full {
                return Ok(out);
            }
        }
    }

    /// One discrepancy.
    pub async fn get_discrepancy(&self, id: Uuid) -> Result<Discrepancy, StoreError> {
        discrepancy_in(self.acquire().await?.conn(), id).await
    }

    /// Discrepancies, oldest first, optionally only open ones.
    pub async fn list_discrepancies(&self, open_only: bool) -> Result<Vec<Discrepancy>, StoreError> {
        let sql =
            format!("{DISCREPANCY_COLUMNS} WHERE ($1 = FALSE OR status = 'open') ORDER BY opened_at, id");
        let mut pooled = self.acquire().await?;
        let rows: Vec<DiscrepancyRow> = with_conn!(pooled.conn(), c => {
            sqlx::query_as(&sql).bind(open_only).fetch_all(&mut *c).await?
        });
        rows.into_iter().map(Discrepancy::try_from).collect()
    }

    /// Counts and inventories, newest first, optionally only of one kind.
    pub async fn list_counts(&self, kind: Option<CountKind>) -> Result<Vec<LedgerCount>, StoreError> {
        let sql = format!("{COUNT_COLUMNS} WHERE ($1 IS NULL OR kind = $1) ORDER BY taken_at DESC, id DESC");
        let mut pooled = self.acquire().await?;
        let rows: Vec<CountRow> = with_conn!(pooled.conn(), c => {
            sqlx::query_as(&sql).bind(kind.map(CountKind::as_str)).fetch_all(&mut *c).await?
        });
        rows.into_iter().map(LedgerCount::try_from).collect()
    }

    /// Recomputes every vial's balance from its entries, inside one read snapshot: each entry's
    /// balance after must be the previous one plus its change, positions must run 1, 2, 3 …, the
    /// last balance must be the vial's, nothing may be negative, and every draw's outstanding
    /// amount must be what was drawn less what was administered and wasted.
    pub async fn verify_ledger(&self) -> Result<LedgerReport, StoreError> {
        let mut tx = self.begin_snapshot().await?;
        let mut report = LedgerReport::default();
        let vials: Vec<VialRow> = with_conn!(tx.conn(), c => {
            sqlx::query_as(&format!("{VIAL_COLUMNS} ORDER BY id")).fetch_all(&mut *c).await?
        });
        let mut draws: std::collections::BTreeMap<i64, Decimal> = std::collections::BTreeMap::new();
        for row in vials {
            let vial = Vial::try_from(row)?;
            report.vials += 1;
            let entries = entries_in(
                tx.conn(),
                &LedgerFilter {
                    vial_id: Some(vial.id),
                    ..LedgerFilter::default()
                },
            )
            .await?;
            // A vial's entries fit one page in practice; a longer history would be a bug to see.
            if entries.len() as i64 == MAX_LEDGER_PAGE {
                report.problems.push(format!(
                    "vial {}: more than {MAX_LEDGER_PAGE} entries, not all checked",
                    vial.id
                ));
            }
            let mut balance = Decimal::ZERO;
            for (i, e) in entries.iter().enumerate() {
                report.entries += 1;
                if e.vial_seq != i as i64 + 1 {
                    report.problems.push(format!(
                        "entry {}: position {} where {} was expected",
                        e.id,
                        e.vial_seq,
                        i + 1
                    ));
                }
                balance += e.balance_change_mg;
                if balance != e.balance_after_mg {
                    report.problems.push(format!(
                        "entry {}: balance after {} mg, but the entries add up to {} mg",
                        e.id,
                        e.balance_after_mg,
                        balance.normalize()
                    ));
                }
                if balance.is_sign_negative() && !balance.is_zero() {
                    report.problems.push(format!(
                        "entry {}: negative balance {} mg",
                        e.id,
                        balance.normalize()
                    ));
                }
                match e.kind {
                    EntryKind::Draw => {
                        draws.insert(e.id, e.quantity_mg);
                    }
                    EntryKind::Administration | EntryKind::Waste => {
                        let Some(draw) = e.draw_id else { continue };
                        let left = draws.entry(draw).or_insert(Decimal::ZERO);
                        *left -= e.quantity_mg;
                        if Some(*left) != e.draw_outstanding_mg {
                            report.problems.push(format!(
                                "entry {}: draw {draw} outstanding recorded as {:?} mg, computed {} mg",
                                e.id,
                                e.draw_outstanding_mg.map(canonical),
                                left.normalize()
                            ));
                        }
                        if left.is_sign_negative() && !left.is_zero() {
                            report
                                .problems
                                .push(format!("draw {draw}: more accounted for than drawn"));
                        }
                    }
                    _ => {}
                }
            }
            if entries.len() as i64 != vial.entry_count {
                report.problems.push(format!(
                    "vial {}: {} entries, but the vial says {}",
                    vial.id,
                    entries.len(),
                    vial.entry_count
                ));
            }
            if balance != vial.balance_mg {
                report.problems.push(format!(
                    "vial {}: balance {} mg, but its entries add up to {} mg",
                    vial.id,
                    vial.balance_mg,
                    balance.normalize()
                ));
            }
        }
        tx.rollback().await?;
        Ok(report)
    }
}

/// Parses a decimal as a person types it (`"35.5"`, `"100"`), exactly: digits with at most one
/// point, no sign, no exponent, nothing that would need rounding.
pub fn parse_quantity(text: &str) -> Option<Decimal> {
    let t = text.trim();
    let digits = t.bytes().filter(u8::is_ascii_digit).count();
    let points = t.bytes().filter(|b| *b == b'.').count();
    if digits == 0 || points > 1 || digits + points != t.len() {
        return None;
    }
    Decimal::from_str_exact(t).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_exactly_and_print_canonically() {
        for (text, canon) in [
            ("35.5", "35.5"),
            ("35.50", "35.5"),
            ("100", "100"),
            ("0.000", "0"),
            ("007.250", "7.25"),
        ] {
            assert_eq!(canonical(parse_quantity(text).unwrap()), canon, "{text}");
        }
        for bad in ["", ".", "-1", "+1", "1e3", "1.2.3", "1,5", " ", "NaN", "0x10"] {
            assert_eq!(parse_quantity(bad), None, "{bad:?}");
        }
        let sum = parse_quantity("0.1").unwrap() + parse_quantity("0.2").unwrap();
        assert_eq!(sum, parse_quantity("0.3").unwrap());
    }

    #[test]
    fn quantities_are_checked() {
        let q = |t: &str| parse_quantity(t).unwrap();
        assert_eq!(
            check_quantity("q", q("1.250"), false).unwrap().to_string(),
            "1.25"
        );
        assert!(check_quantity("q", q("0"), false).is_err());
        assert!(check_quantity("q", q("0"), true).is_ok());
        assert!(check_quantity("q", q("0.0001"), false).is_err());
        assert!(check_quantity("q", -q("1"), false).is_err());
        assert!(check_quantity("q", q("1000000.001"), false).is_err());
        assert_eq!(round_mg(q("35.0004999")).to_string(), "35");
        assert_eq!(round_mg(q("35.0005")).to_string(), "35.001");
    }

    #[test]
    fn statuses_follow_the_balance() {
        let q = |t: &str| parse_quantity(t).unwrap();
        assert_eq!(
            status_after(VialStatus::Sealed, q("100"), false),
            VialStatus::Sealed
        );
        assert_eq!(
            status_after(VialStatus::Sealed, q("64.5"), true),
            VialStatus::Open
        );
        assert_eq!(status_after(VialStatus::Open, q("0"), true), VialStatus::Empty);
        assert_eq!(status_after(VialStatus::Empty, q("0.5"), true), VialStatus::Open);
        assert_eq!(iso_date(time::macros::date!(2027 - 06 - 30)), "2027-06-30");
    }
}
