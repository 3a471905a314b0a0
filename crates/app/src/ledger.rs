//! The controlled-substance ledger: vials received, draws for a
//! session, administration checked against the session's recorded dose, witnessed waste and
//! destruction, physical counts with discrepancies, the biennial inventory report, and the ledger
//! as CSV for an inspector. Ketamine is DEA Schedule III; each rule names its source in
//! `shared/domain/clinical.md` §9, and unconfirmed ones are marked UNVERIFIED.
//!
//! The store keeps the ledger's invariants (exact decimal balances that never go negative,
//! race-free under concurrent use, witnesses distinct from the actor, append-only, every entry
//! audited in its transaction: see `ketaflow_store` `ledger`). This module adds who may do what,
//! the proof that a witness is who they say (their own password, in the same request), and the
//! link between an administration and the infusion session's recorded dose.
//!
//! # Decisions
//!
//! - **Quantities on the wire are decimal strings** (`"35.5"`), mg of ketamine base, at most 3
//!   fraction digits; JSON numbers are refused, because most clients parse them as binary floating
//!   point. Volumes (mL) in answers are derived from the vial's strength and rounded to 0.001 mL;
//!   the mg figures are the record.
//! - **Who** ([`crate::policy`]): nurses and physicians draw, record administration and waste
//!   (`WriteLedger`); receipts, destruction, counts and discrepancy resolutions are the
//!   physician's (`ManageLedger`: the practitioner is the DEA registrant who answers for the
//!   records, 21 CFR 1304.22(c) / 1304.04); administrators and the two clinical roles read the ledger
//!   and export it for an inspector (`ReadLedger`); viewers do not see it.
//! - **Witnesses** re-authenticate: each names their username and enters their password in the
//!   same request body. A witness must be an active nurse or physician, not the actor, not locked,
//!   with no one-time password pending; a wrong password counts as a failed login for that
//!   account (lockout and throttle apply as at login). Waste has one witness (standard practice;
//!   a federal requirement is UNVERIFIED, §9), destruction two (DEA Form 41).
//! - **Administration ↔ session.** A draw is for a session that has not finished its infusion;
//!   administration is recorded once the pump has stopped (session stopped, recovering,
//!   discharged or aborted), so the session's recorded dose given (the exact integral of its
//!   recorded rates, rounded to 0.001 mg) is final. Every administration entry stores that dose and
//!   the difference of the session's total administered (this entry included) from it. A total
//!   more than [`ADMINISTRATION_TOLERANCE_MG`] above the recorded dose is refused (422
//!   `administered_exceeds_given`) unless the request gives a `difference_reason`, which is
//!   stored. A total below it is stored with its (negative) difference: another draw may still
//!   be administered for the same session, and `GET /ledger/sessions/{id}` shows whether the
//!   session is reconciled.
//! - **Counts.** A physical count enters counted mg per vial; a count that differs from the book
//!   opens a discrepancy that a physician resolves with a note (adjusting the book when it was
//!   wrong). While a vial has an open discrepancy nothing is drawn from it. A significant loss or
//!   theft is also reported to the DEA on Form 106 (the one-business-day deadline of 21 CFR
//!   1301.76(b) is UNVERIFIED); the resolution note is where the clinic records that it did.
//! - **Retention.** Ledger records are kept at least 2 years (21 CFR 1304.04); Ketaflow has no
//!   delete for any of them, and the database refuses deletion and change of entries.

use ketaflow_store::{
    BusinessTime, CountKind, CountLine, Discrepancy, DiscrepancyResolution, DiscrepancyStatus, EntryKind,
    LedgerCount, LedgerEntry, LedgerFilter, LedgerPerson, NewAdministration, NewAuditEntry, NewCount,
    NewDestruction, NewDraw, NewVial, NewWaste, User, Vial, VialStatus, canonical, iso_date, round_mg,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::accounts::{dummy_hash, verify_password};
use crate::plans::parse_date;
use crate::policy::{Action, Caller, allowed};
use crate::records::SESSION;
use crate::sessions::session_out;
use crate::vitals::rfc3339;
use crate::{App, AppError};

use ketaflow_clinic::controlled::{
    self as rules, ADMINISTER_STATES, DRAW_STATES, WitnessCandidate, WitnessRefusal,
};
pub use ketaflow_clinic::controlled::{ADMINISTRATION_TOLERANCE_MG, INVENTORY_DUE_SOON_DAYS};

const RETENTION: &str = "Controlled-substance records are kept at least 2 years from the date of the record or \
     inventory, unless state law requires longer (21 CFR 1304.04; DEA Practitioner's Manual, App. C). \
     Ketaflow never deletes ledger records.";

const INVENTORY_RULE: &str = "An initial inventory, then a new complete inventory at least every 2 years \
     (biennial), noting whether it was taken at the opening or close of business; an estimated count is \
     allowed for an opened Schedule III–V container (21 U.S.C. 827(a); current 21 CFR 1304.11 wording \
     UNVERIFIED).";

// ---- Wire types ----------------------------------------------------------------------------------

/// A person named in the ledger.
#[derive(Serialize, ToSchema, Debug, Clone)]
pub struct PersonOut {
    /// User id.
    pub id: Uuid,
    /// Name as printed in the ledger ("Display Name (username)").
    pub name: String,
}

fn person_out(p: &LedgerPerson) -> PersonOut {
    PersonOut {
        id: p.id,
        name: p.name.clone(),
    }
}

/// The supplier of a receipt (21 CFR 1304.22(c): name, address and DEA registration number).
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct SupplierDoc {
    /// Name, 1–200 characters.
    pub name: String,
    /// Address, 1–500 characters.
    pub address: String,
    /// DEA registration number: 2 letters and 7 digits (shape only; the check digit is not
    /// verified).
    pub dea_number: String,
}

/// A vial as the API shows it. Quantities are decimal strings.
#[derive(Serialize, ToSchema, Debug)]
pub struct VialOut {
    /// Id.
    pub id: Uuid,
    /// National Drug Code.
    pub ndc: String,
    /// Product name.
    pub product_name: String,
    /// mg of ketamine base per mL.
    pub strength_mg_per_ml: String,
    /// mL per container.
    pub volume_ml: String,
    /// Content when received, mg.
    pub content_mg: String,
    /// Lot.
    pub lot: String,
    /// Expiry date (YYYY-MM-DD).
    pub expiry: String,
    /// Past its expiry date today.
    pub expired: bool,
    /// Supplier.
    pub supplier: SupplierDoc,
    /// Invoice number.
    pub invoice_number: String,
    /// When received.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub received_at: OffsetDateTime,
    /// Who received it.
    pub received_by: PersonOut,
    /// sealed, open, empty or destroyed.
    pub status: &'static str,
    /// The perpetual balance, mg.
    pub balance_mg: String,
    /// The balance as volume, mL (derived, rounded to 0.001 mL).
    pub balance_ml: String,
    /// Number of ledger entries.
    pub entry_count: i64,
}

fn ml(mg: Decimal, strength: Decimal) -> String {
    if strength.is_zero() {
        return String::new();
    }
    canonical(round_mg(mg / strength))
}

fn vial_out(v: &Vial, today: Date) -> VialOut {
    VialOut {
        id: v.id,
        ndc: v.ndc.clone(),
        product_name: v.product_name.clone(),
        strength_mg_per_ml: canonical(v.strength_mg_per_ml),
        volume_ml: canonical(v.volume_ml),
        content_mg: canonical(v.content_mg),
        lot: v.lot.clone(),
        expiry: iso_date(v.expiry),
        expired: today > v.expiry,
        supplier: SupplierDoc {
            name: v.supplier_name.clone(),
            address: v.supplier_address.clone(),
            dea_number: v.supplier_dea_number.clone(),
        },
        invoice_number: v.invoice_number.clone(),
        received_at: v.received_at,
        received_by: person_out(&v.received_by),
        status: v.status.as_str(),
        balance_mg: canonical(v.balance_mg),
        balance_ml: ml(v.balance_mg, v.strength_mg_per_ml),
        entry_count: v.entry_count,
    }
}

/// A ledger entry as the API shows it.
#[derive(Serialize, ToSchema, Debug)]
pub struct EntryOut {
    /// Id (gap-free across the ledger, in commit order).
    pub id: i64,
    /// The vial.
    pub vial_id: Uuid,
    /// The entry's position among the vial's entries (1 = receipt).
    pub vial_seq: i64,
    /// receipt, draw, administration, waste, destruction, count or adjustment.
    pub kind: &'static str,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// Who made the entry.
    pub by: PersonOut,
    /// The quantity recorded, mg (a count: what was counted).
    pub quantity_mg: String,
    /// The same as volume of the vial's solution, mL (derived, rounded to 0.001 mL).
    pub quantity_ml: String,
    /// The change of the vial's balance, mg.
    pub balance_change_mg: String,
    /// The vial's balance after the entry, mg.
    pub balance_after_mg: String,
    /// The draw an administration or waste accounts for.
    pub draw_id: Option<i64>,
    /// Draw: amount drawn; administration/waste: what is left of the draw after it, mg.
    pub draw_outstanding_mg: Option<String>,
    /// The infusion session.
    pub session_id: Option<Uuid>,
    /// The patient.
    pub patient_id: Option<Uuid>,
    /// The patient's name.
    pub patient_name: Option<String>,
    /// Administration: the session's recorded dose given, mg.
    pub session_given_mg: Option<String>,
    /// Administration: session total administered − given; count: counted − book, mg.
    pub difference_mg: Option<String>,
    /// Witnesses.
    pub witnesses: Vec<PersonOut>,
    /// Reason.
    pub reason: Option<String>,
    /// Destruction method.
    pub method: Option<String>,
    /// Destruction location.
    pub location: Option<String>,
    /// The count.
    pub count_id: Option<Uuid>,
    /// A count line that is an estimate.
    pub estimated: bool,
}

fn entry_out(e: &LedgerEntry, strength: Decimal) -> EntryOut {
    EntryOut {
        id: e.id,
        vial_id: e.vial_id,
        vial_seq: e.vial_seq,
        kind: e.kind.as_str(),
        at: e.at,
        by: person_out(&e.actor),
        quantity_mg: canonical(e.quantity_mg),
        quantity_ml: ml(e.quantity_mg, strength),
        balance_change_mg: canonical(e.balance_change_mg),
        balance_after_mg: canonical(e.balance_after_mg),
        draw_id: e.draw_id,
        draw_outstanding_mg: e.draw_outstanding_mg.map(canonical),
        session_id: e.session_id,
        patient_id: e.patient_id,
        patient_name: e.patient_name.clone(),
        session_given_mg: e.session_given_mg.map(canonical),
        difference_mg: e.difference_mg.map(canonical),
        witnesses: e.witnesses.iter().map(person_out).collect(),
        reason: e.reason.clone(),
        method: e.method.clone(),
        location: e.location.clone(),
        count_id: e.count_id,
        estimated: e.estimated,
    }
}

/// A vial with its entries.
#[derive(Serialize, ToSchema, Debug)]
pub struct VialDetailOut {
    /// The vial.
    pub vial: VialOut,
    /// Its entries in order: the running balance.
    pub entries: Vec<EntryOut>,
}

/// A count discrepancy.
#[derive(Serialize, ToSchema, Debug)]
pub struct DiscrepancyOut {
    /// Id.
    pub id: Uuid,
    /// The count that found it.
    pub count_id: Uuid,
    /// The vial.
    pub vial_id: Uuid,
    /// The count's ledger entry.
    pub count_entry_id: i64,
    /// Book balance at the count, mg.
    pub book_mg: String,
    /// Counted, mg.
    pub counted_mg: String,
    /// counted − book, mg.
    pub variance_mg: String,
    /// When found.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub opened_at: OffsetDateTime,
    /// open or resolved.
    pub status: &'static str,
    /// When resolved.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resolved_at: Option<OffsetDateTime>,
    /// Who resolved it.
    pub resolved_by: Option<PersonOut>,
    /// The resolution note.
    pub resolution_note: Option<String>,
    /// The adjustment entry, when the book was corrected.
    pub adjustment_entry_id: Option<i64>,
}

fn discrepancy_out(d: &Discrepancy) -> DiscrepancyOut {
    DiscrepancyOut {
        id: d.id,
        count_id: d.count_id,
        vial_id: d.vial_id,
        count_entry_id: d.count_entry_id,
        book_mg: canonical(d.book_mg),
        counted_mg: canonical(d.counted_mg),
        variance_mg: canonical(d.variance_mg),
        opened_at: d.opened_at,
        status: match d.status {
            DiscrepancyStatus::Open => "open",
            DiscrepancyStatus::Resolved => "resolved",
        },
        resolved_at: d.resolved_at,
        resolved_by: d.resolved_by.as_ref().map(person_out),
        resolution_note: d.resolution_note.clone(),
        adjustment_entry_id: d.adjustment_entry_id,
    }
}

/// A count or inventory.
#[derive(Serialize, ToSchema, Debug)]
pub struct CountOut {
    /// Id.
    pub id: Uuid,
    /// count or inventory.
    pub kind: &'static str,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub taken_at: OffsetDateTime,
    /// Who.
    pub taken_by: PersonOut,
    /// opening or close (of business).
    pub business_time: Option<&'static str>,
    /// Note.
    pub note: Option<String>,
    /// One count entry per vial (empty when listed without them).
    pub entries: Vec<EntryOut>,
    /// The discrepancies it opened.
    pub discrepancies: Vec<DiscrepancyOut>,
}

fn count_out(c: &LedgerCount) -> CountOut {
    CountOut {
        id: c.id,
        kind: c.kind.as_str(),
        taken_at: c.taken_at,
        taken_by: person_out(&c.taken_by),
        business_time: c.business_time.map(BusinessTime::as_str),
        note: c.note.clone(),
        entries: vec![],
        discrepancies: vec![],
    }
}

// ---- Input checks ----------------------------------------------------------------------------------

fn quantity(field: &str, text: &str, zero_ok: bool) -> Result<Decimal, AppError> {
    rules::parse_quantity(text, zero_ok)
        .map_err(|_| AppError::field(field, text, rules::quantity_allowed(zero_ok)))
}

fn text(field: &str, value: &str, max: usize) -> Result<String, AppError> {
    let t = value.trim();
    if t.is_empty() || t.chars().count() > max || t.chars().any(|c| c.is_control() && c != '\n') {
        return Err(AppError::field(field, value, format!("1–{max} characters")));
    }
    Ok(t.to_string())
}

fn opt_text(field: &str, value: Option<&str>, max: usize) -> Result<Option<String>, AppError> {
    match value.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => text(field, t, max).map(Some),
        None => Ok(None),
    }
}

fn check_ndc(ndc: &str) -> Result<String, AppError> {
    rules::ndc(ndc).ok_or_else(|| {
        AppError::field(
            "ndc",
            ndc,
            "an NDC with hyphens: 4-4-2, 5-3-2, 5-4-1 or 5-4-2 digits (e.g. 0409-2051-05)",
        )
    })
}

fn check_dea(dea: &str) -> Result<String, AppError> {
    rules::dea_number(dea).ok_or_else(|| {
        AppError::field(
            "supplier.dea_number",
            dea,
            "a DEA registration number: 2 letters and 7 digits",
        )
    })
}

fn ledger_person(user: &User) -> LedgerPerson {
    LedgerPerson {
        id: user.id,
        name: crate::policy::person_name(&user.display_name, &user.username),
    }
}

/// A witness's confirmation: their username and their own password.
#[derive(Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct WitnessIn {
    /// The witness's username.
    pub username: String,
    /// The witness's password (checked like a login; never stored).
    pub password: String,
}

impl std::fmt::Debug for WitnessIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WitnessIn")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A witness refusal, placed on the witness's field.
fn witness_refused(field: &str, refusal: WitnessRefusal) -> AppError {
    AppError::RefusedAt {
        code: refusal.code(),
        message: refusal.to_string(),
        field: field.to_string(),
    }
}

/// Checks the witnesses named for an entry (none is the caller, none twice: `clinic`'s rule), then
/// confirms each by their own credentials, in order. `field` names witness `i`'s username field.
/// Call before opening the write transaction (a failed password is recorded in its own
/// transaction, and Argon2 should not run under the lock).
async fn confirm_witnesses(
    state: &App,
    caller: &Caller,
    witnesses: &[&WitnessIn],
    field: impl Fn(usize) -> String,
) -> Result<Vec<LedgerPerson>, AppError> {
    let names: Vec<&str> = witnesses.iter().map(|w| w.username.trim()).collect();
    rules::check_witness_names(&caller.user.username, &names)
        .map_err(|(i, refusal)| witness_refused(&field(i), refusal))?;
    let mut confirmed = Vec::with_capacity(witnesses.len());
    for (i, w) in witnesses.iter().enumerate() {
        confirmed.push(confirm_witness(state, w, &field(i)).await?);
    }
    Ok(confirmed)
}

/// Confirms one witness by their own username and password, as a login would (the throttle and
/// the lockout apply), then applies `clinic`'s rule on who may witness.
async fn confirm_witness(state: &App, w: &WitnessIn, field: &str) -> Result<LedgerPerson, AppError> {
    let username = w.username.trim();
    let now = state.now();
    let key = format!("witness:{}", crate::throttle::capped(username));
    state
        .password_throttle
        .check(&key, now)
        .map_err(|wait| AppError::Throttled {
            retry_after_s: wait.whole_seconds().max(1),
        })?;
    // Every way a witness is not confirmed counts against the key.
    let throttle = || state.password_throttle.failed(&key, now);
    let not_confirmed = || AppError::RefusedAt {
        code: "witness_not_confirmed",
        message: format!("witness {username} could not be confirmed: wrong username or password"),
        field: field.to_string(),
    };
    let Some(user) = state.store.get_user_by_username(username).await? else {
        // Same work as a real check, so timing does not reveal whether the username exists.
        verify_password(&w.password, dummy_hash());
        throttle();
        return Err(not_confirmed());
    };
    let candidate = WitnessCandidate {
        username: username.to_string(),
        disabled: user.disabled,
        locked: user.is_locked(now),
        must_change_password: user.must_change_password,
        may_record_ledger: allowed(user.role, Action::WriteLedger),
    };
    // A locked account's password is not tried (it would only extend the lock).
    if candidate.locked {
        return Err(witness_refused(field, WitnessRefusal::Locked(candidate.username)));
    }
    if user.disabled || !verify_password(&w.password, &user.password_hash) {
        if !user.disabled {
            state
                .store
                .record_login_failure(user.id, now, state.settings.lockout)
                .await?;
        }
        throttle();
        return Err(not_confirmed());
    }
    state.password_throttle.succeeded(&key);
    state.store.record_login_success(user.id).await?;
    rules::check_witness(&candidate, user.role.as_str()).map_err(|r| witness_refused(field, r))?;
    Ok(ledger_person(&user))
}

async fn strength_of(state: &App, vial_id: Uuid) -> Result<Decimal, AppError> {
    Ok(state.store.get_vial(vial_id).await?.strength_mg_per_ml)
}

async fn load_draw(state: &App, id: i64) -> Result<LedgerEntry, AppError> {
    let not_found = || AppError::NotFound {
        what: "draw".into(),
        id: id.to_string(),
    };
    match state.store.get_ledger_entry(id).await {
        Ok(e) if e.kind == EntryKind::Draw => Ok(e),
        Ok(_) | Err(ketaflow_store::StoreError::NotFound { .. }) => Err(not_found()),
        Err(other) => Err(other.into()),
    }
}

// ---- Receipt -----------------------------------------------------------------------------------------

/// Vials received on one invoice.
#[derive(Debug, Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct ReceiptIn {
    /// National Drug Code with hyphens, e.g. "0409-2051-05".
    pub ndc: String,
    /// Product name, 1–200 characters.
    pub product_name: String,
    /// Strength, mg of ketamine base per mL, as a decimal string (e.g. "50").
    pub strength_mg_per_ml: String,
    /// Volume per container, mL, as a decimal string (e.g. "10").
    pub volume_ml: String,
    /// Lot number, 1–40 characters.
    pub lot: String,
    /// Expiry date, YYYY-MM-DD.
    pub expiry: String,
    /// The supplier.
    pub supplier: SupplierDoc,
    /// Invoice number (the Schedule III receiving record), 1–60 characters.
    pub invoice_number: String,
    /// Number of identical containers received (1–50; default 1): one vial each.
    #[serde(default)]
    pub containers: Option<u32>,
}

impl App {
    /// Receive vials: one vial and one receipt entry per container, audited (21 CFR 1304.22(c)).
    pub async fn receive_vials(&self, caller: &Caller, body: ReceiptIn) -> Result<Vec<VialOut>, AppError> {
        let state = self;
        caller.require(Action::ManageLedger)?;
        let ndc = check_ndc(&body.ndc)?;
        let product_name = text("product_name", &body.product_name, 200)?;
        let strength = quantity("strength_mg_per_ml", &body.strength_mg_per_ml, false)?;
        let volume = quantity("volume_ml", &body.volume_ml, false)?;
        if (strength * volume).normalize().scale() > ketaflow_store::MAX_FRACTION_DIGITS {
            return Err(AppError::field(
                "volume_ml",
                body.volume_ml.clone(),
                "a volume whose content (strength × volume) has at most 3 fraction digits of mg",
            ));
        }
        let lot = text("lot", &body.lot, 40)?;
        let expiry = parse_date("expiry", &body.expiry)?;
        let supplier_name = text("supplier.name", &body.supplier.name, 200)?;
        let supplier_address = text("supplier.address", &body.supplier.address, 500)?;
        let dea = check_dea(&body.supplier.dea_number)?;
        let invoice = text("invoice_number", &body.invoice_number, 60)?;
        let containers = body.containers.unwrap_or(1);
        if !(1..=50).contains(&containers) {
            return Err(AppError::field("containers", containers, "1–50"));
        }
        let now = state.now();
        let by = ledger_person(&caller.user);
        let mut tx = state.store.begin().await?;
        let mut vials = Vec::new();
        for _ in 0..containers {
            let (vial, _) = tx
                .receive_vial(
                    &caller.actor(),
                    &NewVial {
                        ndc: &ndc,
                        product_name: &product_name,
                        strength_mg_per_ml: strength,
                        volume_ml: volume,
                        lot: &lot,
                        expiry,
                        supplier_name: &supplier_name,
                        supplier_address: &supplier_address,
                        supplier_dea_number: &dea,
                        invoice_number: &invoice,
                        at: now,
                        by: &by,
                    },
                )
                .await?;
            vials.push(vial_out(&vial, now.date()));
        }
        tx.commit().await?;
        Ok(vials)
    }
}

impl App {
    /// Vials in the order received, with their balances.
    pub async fn vials(&self, caller: &Caller, status: Option<&str>) -> Result<Vec<VialOut>, AppError> {
        let state = self;
        caller.require(Action::ReadLedger)?;
        let status = match status {
            None => None,
            Some(s) => Some(
                VialStatus::parse(s)
                    .ok_or_else(|| AppError::field("status", s, "sealed, open, empty or destroyed"))?,
            ),
        };
        let today = state.today();
        Ok(state
            .store
            .list_vials(status)
            .await?
            .iter()
            .map(|v| vial_out(v, today))
            .collect())
    }
}

impl App {
    /// One vial with every entry: its running balance.
    pub async fn vial(&self, caller: &Caller, id: Uuid) -> Result<VialDetailOut, AppError> {
        let state = self;
        caller.require(Action::ReadLedger)?;
        let vial = state.store.get_vial(id).await?;
        let entries = state
            .store
            .all_ledger_entries(&LedgerFilter {
                vial_id: Some(id),
                ..LedgerFilter::default()
            })
            .await?;
        Ok(VialDetailOut {
            vial: vial_out(&vial, state.today()),
            entries: entries
                .iter()
                .map(|e| entry_out(e, vial.strength_mg_per_ml))
                .collect(),
        })
    }
}

// ---- Draw, administration, waste -------------------------------------------------------------------

/// A draw from a vial for an infusion session.
#[derive(Debug, Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct DrawIn {
    /// The session the drug is for (its infusion must not have finished).
    pub session_id: Uuid,
    /// mg of ketamine base, as a decimal string (e.g. "35.5").
    pub quantity_mg: String,
}

impl App {
    /// Draw from a vial for a session. More than the balance is a 422 (`insufficient_balance`) and
    /// writes nothing; so is a draw from an expired or destroyed vial, or one with an open count
    /// discrepancy.
    pub async fn draw(&self, caller: &Caller, vial_id: Uuid, body: DrawIn) -> Result<EntryOut, AppError> {
        let state = self;
        caller.require(Action::WriteLedger)?;
        let q = quantity("quantity_mg", &body.quantity_mg, false)?;
        let now = state.now();
        let session = session_out(state.record(SESSION, body.session_id).await?, now)?;
        if !rules::may_draw_for(&session.phase) {
            return Err(AppError::Conflict(format!(
                "the session of {} is {}; drug is drawn for a session whose infusion has not finished ({})",
                state.session_name(&session),
                session.state.replace('_', " "),
                DRAW_STATES.join(", ")
            )));
        }
        let by = ledger_person(&caller.user);
        let mut tx = state.store.begin().await?;
        let entry = tx
            .draw_from_vial(
                &caller.actor(),
                &NewDraw {
                    vial_id,
                    quantity_mg: q,
                    session_id: session.id,
                    patient_id: Some(session.patient_id),
                    patient_name: Some(&session.patient_name),
                    at: now,
                    by: &by,
                },
            )
            .await?;
        tx.commit().await?;
        let strength = strength_of(state, vial_id).await?;
        Ok(entry_out(&entry, strength))
    }
}

/// Drawn drug given to the session's patient.
#[derive(Debug, Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct AdministrationIn {
    /// mg of ketamine base, as a decimal string.
    pub quantity_mg: String,
    /// Why the session's total administered exceeds its recorded dose given by more than 0.1 mg
    /// (required then; 3–1000 characters).
    #[serde(default)]
    pub difference_reason: Option<String>,
}

impl App {
    /// Record drawn drug as administered, once the session's pump has stopped. The entry stores the
    /// session's recorded dose given and the difference of its total administered from it; a total
    /// above the recorded dose by more than 0.1 mg needs a `difference_reason` (422
    /// `administered_exceeds_given` otherwise). More than the draw's outstanding amount is a 422.
    pub async fn administer(
        &self,
        caller: &Caller,
        draw_id: i64,
        body: AdministrationIn,
    ) -> Result<EntryOut, AppError> {
        let state = self;
        caller.require(Action::WriteLedger)?;
        let q = quantity("quantity_mg", &body.quantity_mg, false)?;
        let reason = match body
            .difference_reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
        {
            Some(r) if (3..=1000).contains(&r.chars().count()) => Some(r.to_string()),
            Some(r) => {
                return Err(AppError::field(
                    "difference_reason",
                    r,
                    "a reason of 3–1000 characters",
                ));
            }
            None => None,
        };
        let draw = load_draw(state, draw_id).await?;
        let session_id = draw
            .session_id
            .ok_or_else(|| AppError::Internal(format!("draw {draw_id} has no session")))?;
        let now = state.now();
        let session = session_out(state.record(SESSION, session_id).await?, now)?;
        if !rules::may_record_administration_for(&session.phase) {
            return Err(AppError::Conflict(format!(
                "the session of {} is {}; administration is recorded once the pump has stopped ({}), so that the dose given is final",
                state.session_name(&session),
                session.state.replace('_', " "),
                ADMINISTER_STATES.join(", ")
            )));
        }
        let given = Decimal::from_f64_retain(session.given_mg)
            .map(round_mg)
            .ok_or_else(|| AppError::Internal(format!("session {session_id} dose given is not finite")))?;
        let by = ledger_person(&caller.user);
        let mut tx = state.store.begin().await?;
        // Read under the ledger lock: a concurrent administration for the same session waits.
        let before = tx.session_administered_mg(session_id).await?;
        if let Err(e) = rules::check_administration(given, before, q, reason.is_some()) {
            return Err(AppError::Refused {
                code: "administered_exceeds_given",
                message: format!(
                    "the pump record of the session of {} says {} mg was given; {} mg already recorded as administered plus {} mg \
                 makes {} mg, {} mg more (tolerance {ADMINISTRATION_TOLERANCE_MG} mg); check the amount, or give a difference_reason",
                    state.session_name(&session),
                    canonical(e.given_mg),
                    canonical(e.before_mg),
                    canonical(e.this_mg),
                    canonical(e.before_mg + e.this_mg),
                    canonical(e.excess_mg)
                ),
            });
        }
        let entry = tx
            .record_administration(
                &caller.actor(),
                &NewAdministration {
                    draw_id,
                    quantity_mg: q,
                    session_given_mg: given,
                    reason: reason.as_deref(),
                    at: now,
                    by: &by,
                },
            )
            .await?;
        tx.commit().await?;
        let strength = strength_of(state, entry.vial_id).await?;
        Ok(entry_out(&entry, strength))
    }
}

/// Drawn drug wasted, with a witness.
#[derive(Debug, Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct WasteIn {
    /// mg of ketamine base, as a decimal string.
    pub quantity_mg: String,
    /// The witness: another nurse or physician, confirming with their own password.
    pub witness: WitnessIn,
    /// How or why (e.g. "unused remainder of the bag"), ≤ 1000 characters.
    #[serde(default)]
    pub reason: Option<String>,
}

impl App {
    /// Record drawn drug as wasted (the unused remainder of a dose: not destruction of inventory, so
    /// not DEA Form 41; recorded with the administration record, §9) with a witness who confirms with
    /// their own password.
    pub async fn waste(&self, caller: &Caller, draw_id: i64, body: WasteIn) -> Result<EntryOut, AppError> {
        let state = self;
        caller.require(Action::WriteLedger)?;
        let q = quantity("quantity_mg", &body.quantity_mg, false)?;
        let reason = opt_text("reason", body.reason.as_deref(), 1000)?;
        load_draw(state, draw_id).await?;
        let witness = confirm_witnesses(state, caller, &[&body.witness], |_| "witness.username".into())
            .await?
            .remove(0);
        let by = ledger_person(&caller.user);
        let mut tx = state.store.begin().await?;
        let entry = tx
            .record_waste(
                &caller.actor(),
                &NewWaste {
                    draw_id,
                    quantity_mg: q,
                    witness: &witness,
                    reason: reason.as_deref(),
                    at: state.now(),
                    by: &by,
                },
            )
            .await?;
        tx.commit().await?;
        let strength = strength_of(state, entry.vial_id).await?;
        Ok(entry_out(&entry, strength))
    }
}

// ---- Destruction -------------------------------------------------------------------------------------

/// Destruction of a vial's remaining content.
#[derive(Debug, Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct DestructionIn {
    /// The whole remaining balance, mg, as a decimal string (it must equal the book balance).
    pub quantity_mg: String,
    /// Method of destruction, 1–200 characters.
    pub method: String,
    /// Why (expired, damaged, …), 1–500 characters.
    pub reason: String,
    /// Where, 1–200 characters.
    pub location: String,
    /// Exactly two witnesses, different users from you and each other, each confirming with their
    /// own password.
    pub witnesses: Vec<WitnessIn>,
}

impl App {
    /// Destroy a vial's remaining content (DEA Form 41: NDC, name, strength, form, quantity, date,
    /// method, location, two authorised employee witnesses).
    pub async fn destroy(
        &self,
        caller: &Caller,
        vial_id: Uuid,
        body: DestructionIn,
    ) -> Result<EntryOut, AppError> {
        let state = self;
        caller.require(Action::ManageLedger)?;
        let q = quantity("quantity_mg", &body.quantity_mg, false)?;
        let method = text("method", &body.method, 200)?;
        let reason = text("reason", &body.reason, 500)?;
        let location = text("location", &body.location, 200)?;
        let needed = rules::Witnessed::Destruction.witnesses_needed();
        if body.witnesses.len() != needed {
            return Err(AppError::field(
                "witnesses",
                format!("{} witnesses", body.witnesses.len()),
                format!("exactly {needed} witnesses (DEA Form 41)"),
            ));
        }
        let vial = state.store.get_vial(vial_id).await?;
        let named: Vec<&WitnessIn> = body.witnesses.iter().collect();
        let witnesses =
            confirm_witnesses(state, caller, &named, |i| format!("witnesses[{i}].username")).await?;
        let by = ledger_person(&caller.user);
        let mut tx = state.store.begin().await?;
        let entry = tx
            .destroy_vial(
                &caller.actor(),
                &NewDestruction {
                    vial_id,
                    quantity_mg: q,
                    witnesses: [&witnesses[0], &witnesses[1]],
                    method: &method,
                    reason: &reason,
                    location: &location,
                    at: state.now(),
                    by: &by,
                },
            )
            .await?;
        tx.commit().await?;
        Ok(entry_out(&entry, vial.strength_mg_per_ml))
    }
}

// ---- Counts and discrepancies ------------------------------------------------------------------------

/// One vial counted.
#[derive(Debug, Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct CountLineIn {
    /// The vial.
    pub vial_id: Uuid,
    /// What was found, mg, as a decimal string ("0" allowed).
    pub counted_mg: String,
    /// An estimate (allowed for an opened container only, 21 U.S.C. 827(a)).
    #[serde(default)]
    pub estimated: bool,
}

/// A physical count or a complete inventory.
#[derive(Debug, Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct CountIn {
    /// count (some vials) or inventory (every vial on hand; initial or biennial).
    pub kind: String,
    /// opening or close (of business); required for an inventory.
    #[serde(default)]
    pub business_time: Option<String>,
    /// A note, ≤ 1000 characters.
    #[serde(default)]
    pub note: Option<String>,
    /// One line per vial (1–500).
    pub vials: Vec<CountLineIn>,
}

impl App {
    /// Record a physical count or inventory. A vial whose count differs from its book balance gets a
    /// discrepancy to resolve; the book balance does not move until then.
    pub async fn record_count(&self, caller: &Caller, body: CountIn) -> Result<CountOut, AppError> {
        let state = self;
        caller.require(Action::ManageLedger)?;
        let kind = match body.kind.as_str() {
            "count" => CountKind::Count,
            "inventory" => CountKind::Inventory,
            other => return Err(AppError::field("kind", other, "count or inventory")),
        };
        let business_time = match body.business_time.as_deref() {
            None => None,
            Some("opening") => Some(BusinessTime::Opening),
            Some("close") => Some(BusinessTime::Close),
            Some(other) => return Err(AppError::field("business_time", other, "opening or close")),
        };
        if kind == CountKind::Inventory && business_time.is_none() {
            return Err(AppError::field(
                "business_time",
                serde_json::Value::Null,
                "opening or close: an inventory says when it was taken (21 U.S.C. 827(a))",
            ));
        }
        let note = opt_text("note", body.note.as_deref(), 1000)?;
        if body.vials.is_empty() || body.vials.len() > 500 {
            return Err(AppError::field(
                "vials",
                format!("{} lines", body.vials.len()),
                "1–500 vials",
            ));
        }
        let mut lines = Vec::with_capacity(body.vials.len());
        for (i, l) in body.vials.iter().enumerate() {
            lines.push(CountLine {
                vial_id: l.vial_id,
                counted_mg: quantity(&format!("vials[{i}].counted_mg"), &l.counted_mg, true)?,
                estimated: l.estimated,
            });
        }
        let by = ledger_person(&caller.user);
        let mut tx = state.store.begin().await?;
        let recorded = tx
            .record_count(
                &caller.actor(),
                &NewCount {
                    kind,
                    business_time,
                    note: note.as_deref(),
                    lines: &lines,
                    at: state.now(),
                    by: &by,
                },
            )
            .await?;
        tx.commit().await?;
        let mut out = count_out(&recorded.count);
        for e in &recorded.entries {
            let strength = strength_of(state, e.vial_id).await?;
            out.entries.push(entry_out(e, strength));
        }
        out.discrepancies = recorded.discrepancies.iter().map(discrepancy_out).collect();
        Ok(out)
    }
}

impl App {
    /// Count discrepancies, oldest first.
    pub async fn discrepancies(
        &self,
        caller: &Caller,
        open_only: bool,
    ) -> Result<Vec<DiscrepancyOut>, AppError> {
        let state = self;
        caller.require(Action::ReadLedger)?;
        Ok(state
            .store
            .list_discrepancies(open_only)
            .await?
            .iter()
            .map(discrepancy_out)
            .collect())
    }
}

/// How a discrepancy was resolved.
#[derive(Debug, Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct ResolveIn {
    /// What was found (3–1000 characters), including whether a significant loss was reported on
    /// DEA Form 106.
    pub note: String,
    /// The book was wrong: move the balance to what was counted with an adjustment entry.
    pub adjust: bool,
}

/// A resolved discrepancy and its adjustment entry, if any.
#[derive(Serialize, ToSchema, Debug)]
pub struct ResolveOut {
    /// The discrepancy.
    pub discrepancy: DiscrepancyOut,
    /// The adjustment entry.
    pub adjustment: Option<EntryOut>,
}

impl App {
    /// Resolve a count discrepancy with a note (and, with `adjust`, correct the book balance by the
    /// variance; refused if that would make it negative).
    pub async fn resolve_discrepancy(
        &self,
        caller: &Caller,
        id: Uuid,
        body: ResolveIn,
    ) -> Result<ResolveOut, AppError> {
        let state = self;
        caller.require(Action::ManageLedger)?;
        let note = body.note.trim();
        if !(3..=1000).contains(&note.chars().count()) {
            return Err(AppError::field("note", note, "a note of 3–1000 characters"));
        }
        let by = ledger_person(&caller.user);
        let mut tx = state.store.begin().await?;
        let (discrepancy, adjustment) = tx
            .resolve_discrepancy(
                &caller.actor(),
                &DiscrepancyResolution {
                    id,
                    note,
                    adjust: body.adjust,
                    at: state.now(),
                    by: &by,
                },
            )
            .await?;
        tx.commit().await?;
        let adjustment = match adjustment {
            Some(e) => Some(entry_out(&e, strength_of(state, e.vial_id).await?)),
            None => None,
        };
        Ok(ResolveOut {
            discrepancy: discrepancy_out(&discrepancy),
            adjustment,
        })
    }
}

// ---- Reports -------------------------------------------------------------------------------------------

/// The biennial inventory report.
#[derive(Serialize, ToSchema, Debug)]
pub struct InventoryReportOut {
    /// The rule and its source.
    pub rule: &'static str,
    /// The last complete inventory, if any.
    pub last_inventory: Option<CountOut>,
    /// The date by which the next inventory must be taken (2 years after the last).
    pub next_due_by: Option<String>,
    /// An inventory is due now: none was ever taken (the initial inventory), or 2 years have
    /// passed since the last.
    pub due: bool,
    /// Due within the next 30 days (a clinic setting).
    pub due_soon: bool,
    /// Days until `next_due_by` (negative when overdue).
    pub days_until_due: Option<i64>,
    /// The report in words.
    pub message: String,
    /// Vials on hand (sealed or open).
    pub on_hand: Vec<VialOut>,
    /// Their total balance, mg.
    pub on_hand_mg: String,
    /// Count discrepancies still open.
    pub open_discrepancies: usize,
    /// Every vial's balance recomputed from its entries agrees.
    pub ledger_consistent: bool,
    /// What disagrees, if anything.
    pub ledger_problems: Vec<String>,
    /// The retention rule and its source.
    pub retention: &'static str,
}

impl App {
    /// When the last inventory was and whether one is due (21 U.S.C. 827(a): initial, then at least
    /// every 2 years), the stock on hand, open discrepancies, and whether the ledger's balances
    /// recompute.
    pub async fn inventory_report(&self, caller: &Caller) -> Result<InventoryReportOut, AppError> {
        let state = self;
        caller.require(Action::ReadLedger)?;
        let now = state.now();
        let today = now.date();
        let last = state
            .store
            .list_counts(Some(CountKind::Inventory))
            .await?
            .into_iter()
            .next();
        let rules::InventoryDue {
            next_due_by,
            days_until_due,
            due,
            due_soon,
        } = rules::inventory_due(last.as_ref().map(|c| c.taken_at.date()), today);
        let message = match (&last, next_due_by, days_until_due) {
            (Some(c), Some(by), Some(days)) if days > 0 => format!(
                "last inventory {} at the {} of business by {}; the next is due by {} ({days} days)",
                iso_date(c.taken_at.date()),
                c.business_time.map_or("(unrecorded)", BusinessTime::as_str),
                c.taken_by.name,
                iso_date(by)
            ),
            (Some(c), Some(by), _) => format!(
                "last inventory {}; the biennial inventory was due by {}: take one now",
                iso_date(c.taken_at.date()),
                iso_date(by)
            ),
            _ => "no inventory has been taken: take the initial inventory now".to_string(),
        };
        let on_hand: Vec<Vial> = state
            .store
            .list_vials(None)
            .await?
            .into_iter()
            .filter(|v| v.status.on_hand())
            .collect();
        let on_hand_mg: Decimal = on_hand.iter().map(|v| v.balance_mg).sum();
        let open_discrepancies = state.store.list_discrepancies(true).await?.len();
        let report = state.store.verify_ledger().await?;
        Ok(InventoryReportOut {
            rule: INVENTORY_RULE,
            last_inventory: last.as_ref().map(count_out),
            next_due_by: next_due_by.map(iso_date),
            due,
            due_soon,
            days_until_due,
            message,
            on_hand: on_hand.iter().map(|v| vial_out(v, today)).collect(),
            on_hand_mg: canonical(on_hand_mg),
            open_discrepancies,
            ledger_consistent: report.problems.is_empty(),
            ledger_problems: report.problems,
            retention: RETENTION,
        })
    }
}

/// A session's controlled-substance account.
#[derive(Serialize, ToSchema, Debug)]
pub struct SessionLedgerOut {
    /// The session.
    pub session_id: Uuid,
    /// Its state.
    pub state: &'static str,
    /// The dose its pump record says was given so far, mg (rounded to 0.001 mg).
    pub given_mg: String,
    /// Drawn for it, mg.
    pub drawn_mg: String,
    /// Recorded as administered, mg.
    pub administered_mg: String,
    /// Wasted, mg.
    pub wasted_mg: String,
    /// Drawn but not yet administered or wasted, mg.
    pub outstanding_mg: String,
    /// administered − given, mg.
    pub difference_mg: String,
    /// Every draw is accounted for and administered is within 0.1 mg of given.
    pub reconciled: bool,
    /// The session's entries.
    pub entries: Vec<EntryOut>,
    /// The vials its drug came from, in the order first drawn: product, NDC, lot and expiry, as
    /// the session record names them.
    pub vials: Vec<VialOut>,
}

impl App {
    /// What was drawn, administered and wasted for a session, against its recorded dose.
    pub async fn session_ledger(&self, caller: &Caller, id: Uuid) -> Result<SessionLedgerOut, AppError> {
        let state = self;
        caller.require(Action::ReadLedger)?;
        let now = state.now();
        let session = session_out(state.record(SESSION, id).await?, now)?;
        let given = Decimal::from_f64_retain(session.given_mg)
            .map(round_mg)
            .unwrap_or_default();
        let entries = state
            .store
            .all_ledger_entries(&LedgerFilter {
                session_id: Some(id),
                ..LedgerFilter::default()
            })
            .await?;
        let sum = |kind: EntryKind| -> Decimal {
            entries
                .iter()
                .filter(|e| e.kind == kind)
                .map(|e| e.quantity_mg)
                .sum()
        };
        let (drawn, administered, wasted) = (
            sum(EntryKind::Draw),
            sum(EntryKind::Administration),
            sum(EntryKind::Waste),
        );
        let outstanding = drawn - administered - wasted;
        let difference = administered - given;
        let mut out = Vec::with_capacity(entries.len());
        // Each vial read once, however many entries it has.
        let mut stored: Vec<Vial> = Vec::new();
        for e in &entries {
            if !stored.iter().any(|v| v.id == e.vial_id) {
                stored.push(state.store.get_vial(e.vial_id).await?);
            }
            let strength = stored
                .iter()
                .find(|v| v.id == e.vial_id)
                .map(|v| v.strength_mg_per_ml)
                .unwrap_or_default();
            out.push(entry_out(e, strength));
        }
        let today = state.today();
        let vials = stored.iter().map(|v| vial_out(v, today)).collect();
        Ok(SessionLedgerOut {
            session_id: id,
            state: session.state,
            given_mg: canonical(given),
            drawn_mg: canonical(drawn),
            administered_mg: canonical(administered),
            wasted_mg: canonical(wasted),
            outstanding_mg: canonical(outstanding),
            difference_mg: canonical(difference),
            reconciled: rules::reconciled(outstanding, difference, &session.phase),
            entries: out,
            vials,
        })
    }
}

/// The inspector's export: the CSV text and the file name it is offered under.
#[derive(Debug)]
pub struct LedgerExport {
    /// `ledger-<to>.csv`.
    pub filename: String,
    /// The CSV.
    pub csv: String,
}

/// The CSV header of the inspector's export.
pub const EXPORT_COLUMNS: [&str; 32] = [
    "entry_id",
    "at",
    "kind",
    "vial_id",
    "vial_seq",
    "ndc",
    "product",
    "strength_mg_per_ml",
    "container_volume_ml",
    "lot",
    "expiry",
    "quantity_mg",
    "quantity_ml",
    "balance_change_mg",
    "balance_after_mg",
    "draw_id",
    "draw_outstanding_mg",
    "session_id",
    "patient",
    "session_given_mg",
    "difference_mg",
    "by",
    "witness_1",
    "witness_2",
    "reason",
    "method",
    "location",
    "supplier",
    "supplier_address",
    "supplier_dea_number",
    "invoice_number",
    "count_estimated",
];

impl App {
    /// The ledger for an inspector, as CSV: every entry in order with its vial's NDC, product,
    /// strength, lot and expiry, the quantities and running balance, who made it and who witnessed
    /// it, and (on receipts) the supplier and invoice. The export is audited.
    pub async fn export_ledger(
        &self,
        caller: &Caller,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<LedgerExport, AppError> {
        let state = self;
        caller.require(Action::ReadLedger)?;
        let now = state.now();
        let from_text = from;
        let from = from.map(|f| parse_date("from", f)).transpose()?;
        let to = match to {
            Some(t) => parse_date("to", t)?,
            None => now.date(),
        };
        if from.is_some_and(|f| f > to) {
            return Err(AppError::field(
                "from",
                from_text.unwrap_or_default(),
                "a date on or before `to`",
            ));
        }
        let vials: std::collections::HashMap<Uuid, Vial> = state
            .store
            .list_vials(None)
            .await?
            .into_iter()
            .map(|v| (v.id, v))
            .collect();
        let entries: Vec<LedgerEntry> = state
            .store
            .all_ledger_entries(&LedgerFilter::default())
            .await?
            .into_iter()
            .filter(|e| from.is_none_or(|f| e.at.date() >= f) && e.at.date() <= to)
            .collect();
        let mut w = crate::export::CsvWriter::new();
        w.row(EXPORT_COLUMNS)?;
        let opt = |d: Option<Decimal>| d.map(canonical).unwrap_or_default();
        for e in &entries {
            let v = vials.get(&e.vial_id).ok_or_else(|| {
                AppError::Internal(format!("entry {} names unknown vial {}", e.id, e.vial_id))
            })?;
            let receipt = e.kind == EntryKind::Receipt;
            let on_receipt = |s: &str| if receipt { s.to_string() } else { String::new() };
            let witness = |i: usize| e.witnesses.get(i).map(|p| p.name.clone()).unwrap_or_default();
            w.row([
                e.id.to_string(),
                rfc3339(e.at),
                e.kind.as_str().to_string(),
                e.vial_id.to_string(),
                e.vial_seq.to_string(),
                v.ndc.clone(),
                v.product_name.clone(),
                canonical(v.strength_mg_per_ml),
                canonical(v.volume_ml),
                v.lot.clone(),
                iso_date(v.expiry),
                canonical(e.quantity_mg),
                ml(e.quantity_mg, v.strength_mg_per_ml),
                canonical(e.balance_change_mg),
                canonical(e.balance_after_mg),
                e.draw_id.map(|d| d.to_string()).unwrap_or_default(),
                opt(e.draw_outstanding_mg),
                e.session_id.map(|s| s.to_string()).unwrap_or_default(),
                e.patient_name.clone().unwrap_or_default(),
                opt(e.session_given_mg),
                opt(e.difference_mg),
                e.actor.name.clone(),
                witness(0),
                witness(1),
                e.reason.clone().unwrap_or_default(),
                e.method.clone().unwrap_or_default(),
                e.location.clone().unwrap_or_default(),
                on_receipt(&v.supplier_name),
                on_receipt(&v.supplier_address),
                on_receipt(&v.supplier_dea_number),
                on_receipt(&v.invoice_number),
                if e.kind == EntryKind::Count {
                    e.estimated.to_string()
                } else {
                    String::new()
                },
            ])?;
        }
        let body = w.finish()?;
        state
            .store
            .append_audit(
                &NewAuditEntry::new(now, caller.actor(), "ledger.export", "ledger", "export").after(
                    serde_json::json!({
                        "format": "csv",
                        "from": from.map(iso_date),
                        "to": iso_date(to),
                        "entries": entries.len(),
                    }),
                ),
            )
            .await?;
        Ok(LedgerExport {
            filename: format!("ledger-{}.csv", iso_date(to)),
            csv: body,
        })
    }
}
