//! The controlled-substance ledger in the browser: the vials on hand with their perpetual balance,
//! receipts, a vial's entries with draws for a session, administration, witnessed waste and
//! destruction, physical counts with their discrepancies and resolutions, the biennial inventory
//! report, and the inspector's CSV.
//!
//! Every figure is the API's exact decimal string with its unit (mg of ketamine base; mL derived
//! from the vial's strength, rounded to 0.001 mL as the API rounds it). Every write is a use case of
//! [`ketaflow_app::ledger`], the one the JSON API calls, so the balance checks, the witnesses'
//! re-authentication and the audit entries are the same; a form is shown only to a role that may
//! use it and the use case checks again. Witness passwords are never written back into a page.

use ketaflow_app::AppError;
use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use ketaflow_store::{canonical, parse_quantity, round_mg};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::{Chrome, FormData, FormState, PageResult, Posted, WebUser, page_err};
use super::{render_with_status, see_other};
use crate::error::ApiError;
use crate::policy::Action;
use crate::state::AppState;
use ketaflow_app::clinic_time::ClinicZone;
use ketaflow_app::ledger::{
    AdministrationIn, CountIn, CountLineIn, DestructionIn, DiscrepancyOut, DrawIn, EntryOut, ReceiptIn,
    ResolveIn, SupplierDoc, VialOut, WasteIn, WitnessIn,
};

/// Session states in which a draw may be made (the API decides; this only fills the select).
const DRAW_STATES: [&str; 4] = ["scheduled", "checked_in", "infusing", "paused"];

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/ledger", get(ledger_page))
        .route("/ledger/vials", post(receive))
        .route("/ledger/counts", post(count))
        .route("/ledger/discrepancies/{id}/resolve", post(resolve))
        .route("/ledger/inventory", get(inventory_page))
        .route("/ledger/vials/{id}", get(vial_page))
        .route("/ledger/vials/{id}/draws", post(draw))
        .route("/ledger/vials/{id}/draws/{draw}/administration", post(administer))
        .route("/ledger/vials/{id}/draws/{draw}/waste", post(waste))
        .route("/ledger/vials/{id}/destruction", post(destroy))
}

// ---- Shared --------------------------------------------------------------------------------------

/// mg as volume of a solution of `strength` mg/mL, rounded to 0.001 mL as the API rounds it.
fn ml_of(mg: &str, strength: &str) -> String {
    match (parse_quantity(mg), parse_quantity(strength)) {
        (Some(mg), Some(s)) if !s.is_zero() => canonical(round_mg(mg / s)),
        _ => String::new(),
    }
}

fn is_zero(mg: &str) -> bool {
    mg.parse::<Decimal>().is_ok_and(|d| d.is_zero())
}

/// A form without its password fields: a password is never echoed back into a page.
fn without_passwords(mut form: FormData) -> FormData {
    form.0.retain(|k, _| !k.contains("password"));
    form
}

/// A refused ledger form: what was typed (no passwords), the error by its field under its full
/// name as well as its leaf (`vials[2].counted_mg`, `witnesses[1].username`), and a witness who
/// could not be confirmed next to that witness's username.
fn refused(name: &str, form: FormData, e: &ApiError, witness_fields: &[&str]) -> FormState {
    let mut state = FormState::refused_named(name, without_passwords(form), e);
    match e.app() {
        Some(AppError::InvalidField { field, allowed, .. }) => {
            state.errors.insert(field.clone(), format!("allowed: {allowed}"));
        }
        // The refusal names the witness it is about: put it beside that witness's username.
        Some(AppError::RefusedAt { field, message, .. }) => {
            state.errors.insert(field.clone(), message.clone());
        }
        Some(AppError::Throttled { .. }) => {
            if let Some(field) = witness_fields.first() {
                state.errors.insert((*field).to_string(), e.to_string());
            }
        }
        _ => {}
    }
    state
}

/// A vial as the ledger lists it.
#[derive(Debug)]
struct VialRow {
    id: String,
    product_name: String,
    ndc: String,
    lot: String,
    expiry: String,
    expired: bool,
    strength_mg_per_ml: String,
    volume_ml: String,
    content_mg: String,
    status: &'static str,
    on_hand: bool,
    balance_mg: String,
    balance_ml: String,
    received_at: String,
    received_by: String,
    supplier: SupplierDoc,
    invoice_number: String,
}

fn vial_row(zone: &ClinicZone, v: VialOut) -> VialRow {
    VialRow {
        id: v.id.to_string(),
        on_hand: matches!(v.status, "sealed" | "open"),
        received_at: zone.clock(v.received_at),
        received_by: v.received_by.name,
        product_name: v.product_name,
        ndc: v.ndc,
        lot: v.lot,
        expiry: v.expiry,
        expired: v.expired,
        strength_mg_per_ml: v.strength_mg_per_ml,
        volume_ml: v.volume_ml,
        content_mg: v.content_mg,
        status: v.status,
        balance_mg: v.balance_mg,
        balance_ml: v.balance_ml,
        supplier: v.supplier,
        invoice_number: v.invoice_number,
    }
}

async fn vials(state: &AppState, user: &WebUser) -> Result<Vec<VialRow>, ApiError> {
    let list = state.vials(&user.me.caller(), None).await?;
    Ok(list.into_iter().map(|v| vial_row(&user.zone, v)).collect())
}

// ---- The ledger overview ---------------------------------------------------------------------------

/// A count discrepancy as the ledger shows it.
#[derive(Debug)]
struct DiscrepancyRow {
    id: String,
    vial_id: String,
    vial: String,
    book_mg: String,
    counted_mg: String,
    variance_mg: String,
    book_ml: String,
    counted_ml: String,
    variance_ml: String,
    opened_at: String,
    open: bool,
    resolved: String,
    note: String,
    adjustment_entry_id: Option<i64>,
    /// The name of its resolution form.
    form: String,
}

/// One vial's line in the count form.
#[derive(Debug)]
struct CountRow {
    vial_id: String,
    label: String,
    book_mg: String,
    book_ml: String,
    /// Field names, as the API names them.
    counted_field: String,
    vial_field: String,
    estimated_field: String,
}

#[derive(Template)]
#[template(path = "ledger_index.html")]
struct LedgerPage {
    chrome: Chrome,
    vials: Vec<VialRow>,
    on_hand_count: usize,
    on_hand_mg: String,
    open: Vec<DiscrepancyRow>,
    resolved: Vec<DiscrepancyRow>,
    count_rows: Vec<CountRow>,
    can_manage: bool,
    form: FormState,
    today: String,
}

fn discrepancy_row(
    zone: &ClinicZone,
    d: DiscrepancyOut,
    labels: &HashMap<String, (String, String)>,
) -> DiscrepancyRow {
    let vial_id = d.vial_id.to_string();
    let (label, strength) = labels.get(&vial_id).cloned().unwrap_or_default();
    DiscrepancyRow {
        id: d.id.to_string(),
        vial: label,
        book_ml: ml_of(&d.book_mg, &strength),
        counted_ml: ml_of(&d.counted_mg, &strength),
        variance_ml: match d.variance_mg.strip_prefix('-') {
            Some(abs) => format!("-{}", ml_of(abs, &strength)),
            None => ml_of(&d.variance_mg, &strength),
        },
        book_mg: d.book_mg,
        counted_mg: d.counted_mg,
        variance_mg: d.variance_mg,
        opened_at: zone.clock(d.opened_at),
        open: d.status == "open",
        resolved: match (d.resolved_at, d.resolved_by) {
            (Some(at), Some(by)) => format!("{} by {}", zone.clock(at), by.name),
            (Some(at), None) => zone.clock(at),
            _ => String::new(),
        },
        note: d.resolution_note.unwrap_or_default(),
        adjustment_entry_id: d.adjustment_entry_id,
        form: format!("resolve-{}", d.id),
        vial_id,
    }
}

async fn ledger_view(state: &AppState, user: &WebUser, form: FormState, status: StatusCode) -> PageResult {
    let vials = vials(state, user).await.map_err(page_err)?;
    let discrepancies = state
        .discrepancies(&user.me.caller(), false)
        .await
        .map_err(page_err)?;
    let labels: HashMap<String, (String, String)> = vials
        .iter()
        .map(|v| {
            (
                v.id.clone(),
                (
                    format!("{} lot {}", v.product_name, v.lot),
                    v.strength_mg_per_ml.clone(),
                ),
            )
        })
        .collect();
    let (open, resolved): (Vec<_>, Vec<_>) = discrepancies
        .into_iter()
        .map(|d| discrepancy_row(&user.zone, d, &labels))
        .partition(|d| d.open);
    let on_hand: Vec<&VialRow> = vials.iter().filter(|v| v.on_hand).collect();
    let on_hand_mg: Decimal = on_hand.iter().filter_map(|v| parse_quantity(&v.balance_mg)).sum();
    let count_rows = on_hand
        .iter()
        .enumerate()
        .map(|(i, v)| CountRow {
            vial_id: v.id.clone(),
            label: format!("{} lot {} (exp. {})", v.product_name, v.lot, v.expiry),
            book_mg: v.balance_mg.clone(),
            book_ml: v.balance_ml.clone(),
            counted_field: format!("vials[{i}].counted_mg"),
            vial_field: format!("vials[{i}].vial_id"),
            estimated_field: format!("vials[{i}].estimated"),
        })
        .collect();
    Ok(render_with_status(
        status,
        &LedgerPage {
            chrome: user.chrome("ledger", "Controlled-substance ledger"),
            on_hand_count: on_hand.len(),
            on_hand_mg: canonical(on_hand_mg),
            count_rows,
            vials,
            open,
            resolved: resolved.into_iter().rev().collect(),
            can_manage: user.may(Action::ManageLedger),
            form,
            today: ketaflow_store::iso_date(user.zone.date(user.now)),
        },
    ))
}

async fn ledger_page(State(state): State<AppState>, user: WebUser) -> PageResult {
    ledger_view(&state, &user, FormState::default(), StatusCode::OK).await
}

async fn receive(State(state): State<AppState>, posted: Posted) -> PageResult {
    let Posted { user, form } = posted;
    let containers = match form.optional("containers") {
        None => Ok(None),
        Some(v) => v
            .parse::<u32>()
            .map(Some)
            .map_err(|_| ApiError::field("containers", v, "1–50")),
    };
    let result = match containers {
        Ok(containers) => {
            let body = ReceiptIn {
                ndc: form.text("ndc"),
                product_name: form.text("product_name"),
                strength_mg_per_ml: form.text("strength_mg_per_ml"),
                volume_ml: form.text("volume_ml"),
                lot: form.text("lot"),
                expiry: form.text("expiry"),
                supplier: SupplierDoc {
                    name: form.text("supplier.name"),
                    address: form.text("supplier.address"),
                    dea_number: form.text("supplier.dea_number"),
                },
                invoice_number: form.text("invoice_number"),
                containers,
            };
            state
                .receive_vials(&user.me.caller(), body)
                .await
                .map(|_| ())
                .map_err(ApiError::from)
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(see_other("/ledger")),
        Err(e) => {
            let refused = refused("receive", form, &e, &[]);
            ledger_view(&state, &user, refused, e.status()).await
        }
    }
}

async fn count(State(state): State<AppState>, posted: Posted) -> PageResult {
    let Posted { user, form } = posted;
    // Lines left blank were not counted; the API numbers the lines it receives, so remember
    // which form line each one came from to put an error back beside it.
    let mut lines = Vec::new();
    let mut from_line = Vec::new();
    let mut problem = None;
    for i in 0.. {
        let Some(vial) = form.optional(&format!("vials[{i}].vial_id")) else {
            break;
        };
        let Some(counted) = form.optional(&format!("vials[{i}].counted_mg")) else {
            continue;
        };
        match vial.parse::<Uuid>() {
            Ok(vial_id) => {
                lines.push(CountLineIn {
                    vial_id,
                    counted_mg: counted,
                    estimated: form.checked(&format!("vials[{i}].estimated")),
                });
                from_line.push(i);
            }
            Err(_) => {
                problem = Some(ApiError::field(&format!("vials[{i}].vial_id"), vial, "a vial id"));
                break;
            }
        }
    }
    let result = match problem {
        Some(e) => Err(e),
        None => {
            let body = CountIn {
                kind: form.text("kind"),
                business_time: form.optional("business_time"),
                note: form.optional("note"),
                vials: lines,
            };
            state
                .record_count(&user.me.caller(), body)
                .await
                .map(|_| ())
                .map_err(ApiError::from)
        }
    };
    match result {
        Ok(()) => Ok(see_other("/ledger")),
        Err(e) => {
            let e = match e {
                ApiError::App(AppError::InvalidField {
                    field,
                    value,
                    allowed,
                }) => {
                    let field = renumber(&field, &from_line);
                    ApiError::App(AppError::InvalidField {
                        field,
                        value,
                        allowed,
                    })
                }
                other => other,
            };
            let refused = refused("count", form, &e, &[]);
            ledger_view(&state, &user, refused, e.status()).await
        }
    }
}

/// `vials[k].counted_mg` of the k-th line sent → the same field of the form line it came from.
fn renumber(field: &str, from_line: &[usize]) -> String {
    let Some(rest) = field.strip_prefix("vials[") else {
        return field.to_string();
    };
    match rest.split_once(']') {
        Some((k, tail)) => match k.parse::<usize>().ok().and_then(|k| from_line.get(k)) {
            Some(i) => format!("vials[{i}]{tail}"),
            None => field.to_string(),
        },
        None => field.to_string(),
    }
}

async fn resolve(State(state): State<AppState>, Path(id): Path<Uuid>, posted: Posted) -> PageResult {
    let Posted { user, form } = posted;
    let body = ResolveIn {
        note: form.text("note"),
        adjust: form.checked("adjust"),
    };
    match state
        .resolve_discrepancy(&user.me.caller(), id, body)
        .await
        .map_err(ApiError::from)
    {
        Ok(_) => Ok(see_other("/ledger")),
        Err(e) => {
            let refused = refused(&format!("resolve-{id}"), form, &e, &[]);
            ledger_view(&state, &user, refused, e.status()).await
        }
    }
}

// ---- One vial ----------------------------------------------------------------------------------------

/// A ledger entry as the vial's page lists it.
#[derive(Debug)]
struct EntryRow {
    id: i64,
    seq: i64,
    at: String,
    kind: &'static str,
    by: String,
    quantity_mg: String,
    quantity_ml: String,
    change_mg: String,
    after_mg: String,
    draw_id: Option<i64>,
    /// Draw: the amount drawn; administration or waste: what is left of the draw after it, mg.
    draw_outstanding_mg: Option<String>,
    session_id: Option<String>,
    patient: Option<(String, String)>,
    witnesses: String,
    /// Reason, method, location, difference from the session's dose, estimate: in words.
    details: Vec<String>,
}

fn entry_row(zone: &ClinicZone, e: EntryOut) -> EntryRow {
    let mut details = Vec::new();
    if let Some(given) = &e.session_given_mg {
        details.push(format!("session's recorded dose given {given} mg"));
    }
    if let Some(d) = &e.difference_mg {
        details.push(match e.kind {
            "count" => format!("counted − book: {d} mg"),
            _ => format!("session total administered − given: {d} mg"),
        });
    }
    if let Some(left) = &e.draw_outstanding_mg {
        details.push(match e.kind {
            "draw" => format!("drawn for the session: {left} mg"),
            _ => format!("left of draw #{}: {left} mg", e.draw_id.unwrap_or_default()),
        });
    }
    for (label, value) in [
        ("reason", &e.reason),
        ("method", &e.method),
        ("location", &e.location),
    ] {
        if let Some(v) = value {
            details.push(format!("{label}: {v}"));
        }
    }
    if e.estimated {
        details.push("estimated count (opened container)".into());
    }
    EntryRow {
        id: e.id,
        seq: e.vial_seq,
        at: zone.clock(e.at),
        kind: e.kind,
        by: e.by.name,
        quantity_mg: e.quantity_mg,
        quantity_ml: e.quantity_ml,
        change_mg: e.balance_change_mg,
        after_mg: e.balance_after_mg,
        draw_id: e.draw_id,
        draw_outstanding_mg: e.draw_outstanding_mg,
        session_id: e.session_id.map(|s| s.to_string()),
        patient: e
            .patient_id
            .map(|p| (p.to_string(), e.patient_name.unwrap_or_else(|| "patient".into()))),
        witnesses: e
            .witnesses
            .into_iter()
            .map(|w| w.name)
            .collect::<Vec<_>>()
            .join("; "),
        details,
    }
}

/// A draw with drug still to account for (administer or waste).
#[derive(Debug)]
struct DrawRow {
    id: i64,
    at: String,
    session_id: String,
    patient: String,
    drawn_mg: String,
    drawn_ml: String,
    outstanding_mg: String,
    outstanding_ml: String,
    /// The names of its two forms.
    administer_form: String,
    waste_form: String,
}

/// The draws of this vial not yet fully administered or wasted: an administration or waste
/// entry carries what is left of its draw after it, and entries are in order.
fn outstanding_draws(entries: &[EntryRow], strength: &str) -> Vec<DrawRow> {
    let mut left: HashMap<i64, String> = HashMap::new();
    for e in entries {
        match (e.kind, e.draw_id) {
            ("draw", _) => {
                left.insert(e.id, e.quantity_mg.clone());
            }
            ("administration" | "waste", Some(draw)) => {
                if let Some(rest) = &e.draw_outstanding_mg {
                    left.insert(draw, rest.clone());
                }
            }
            _ => {}
        }
    }
    entries
        .iter()
        .filter(|e| e.kind == "draw")
        .filter_map(|e| {
            let rest = left.get(&e.id)?;
            (!is_zero(rest)).then(|| DrawRow {
                id: e.id,
                at: e.at.clone(),
                session_id: e.session_id.clone().unwrap_or_default(),
                patient: e.patient.as_ref().map(|(_, n)| n.clone()).unwrap_or_default(),
                drawn_mg: e.quantity_mg.clone(),
                drawn_ml: e.quantity_ml.clone(),
                outstanding_ml: ml_of(rest, strength),
                outstanding_mg: rest.clone(),
                administer_form: format!("administer-{}", e.id),
                waste_form: format!("waste-{}", e.id),
            })
        })
        .collect()
}

#[derive(Template)]
#[template(path = "ledger_vial.html")]
struct VialPage {
    chrome: Chrome,
    v: VialRow,
    entries: Vec<EntryRow>,
    draws: Vec<DrawRow>,
    /// Sessions drug may be drawn for: (id, label).
    sessions: Vec<(String, String)>,
    can_write: bool,
    can_manage: bool,
    form: FormState,
}

async fn vial_view(
    state: &AppState,
    user: &WebUser,
    id: Uuid,
    form: FormState,
    status: StatusCode,
) -> PageResult {
    let detail = state.vial(&user.me.caller(), id).await.map_err(page_err)?;
    let v = vial_row(&user.zone, detail.vial);
    let entries: Vec<EntryRow> = detail
        .entries
        .into_iter()
        .map(|e| entry_row(&user.zone, e))
        .collect();
    let draws = outstanding_draws(&entries, &v.strength_mg_per_ml);
    let can_write = user.may(Action::WriteLedger);
    let sessions = if can_write && v.on_hand && !v.expired {
        let list = state
            .sessions(&user.me.caller(), true, None)
            .await
            .map_err(page_err)?;
        list.into_iter()
            .filter(|s| DRAW_STATES.contains(&s.state))
            .map(|s| {
                (
                    s.id.to_string(),
                    format!(
                        "{} · {} · {} · booked {}",
                        s.chair,
                        s.patient_name,
                        s.state.replace('_', " "),
                        user.zone.clock(s.scheduled_for)
                    ),
                )
            })
            .collect()
    } else {
        vec![]
    };
    Ok(render_with_status(
        status,
        &VialPage {
            chrome: user.chrome("ledger", format!("Vial lot {}", v.lot)),
            v,
            entries,
            draws,
            sessions,
            can_write,
            can_manage: user.may(Action::ManageLedger),
            form,
        },
    ))
}

async fn vial_page(State(state): State<AppState>, user: WebUser, Path(id): Path<Uuid>) -> PageResult {
    vial_view(&state, &user, id, FormState::default(), StatusCode::OK).await
}

/// Answers a vial form: back to the vial on success, the page with the form as typed otherwise.
async fn vial_answer<T>(
    state: &AppState,
    user: &WebUser,
    vial: Uuid,
    name: &str,
    form: FormData,
    witness_fields: &[&str],
    result: Result<T, ApiError>,
) -> PageResult {
    match result {
        Ok(_) => Ok(see_other(&format!("/ledger/vials/{vial}"))),
        Err(e) => {
            let refused = refused(name, form, &e, witness_fields);
            vial_view(state, user, vial, refused, e.status()).await
        }
    }
}

async fn draw(State(state): State<AppState>, Path(id): Path<Uuid>, posted: Posted) -> PageResult {
    let Posted { user, form } = posted;
    let session = form.text("session_id");
    let result = match session.parse::<Uuid>() {
        Ok(session_id) => {
            let body = DrawIn {
                session_id,
                quantity_mg: form.text("quantity_mg"),
            };
            state
                .draw(&user.me.caller(), id, body)
                .await
                .map_err(ApiError::from)
        }
        Err(_) => Err(ApiError::field(
            "session_id",
            session,
            "a session chosen from the list",
        )),
    };
    vial_answer(&state, &user, id, "draw", form, &[], result).await
}

async fn administer(
    State(state): State<AppState>,
    Path((id, draw)): Path<(Uuid, i64)>,
    posted: Posted,
) -> PageResult {
    let Posted { user, form } = posted;
    let body = AdministrationIn {
        quantity_mg: form.text("quantity_mg"),
        difference_reason: form.optional("difference_reason"),
    };
    let result = state
        .administer(&user.me.caller(), draw, body)
        .await
        .map_err(ApiError::from);
    vial_answer(
        &state,
        &user,
        id,
        &format!("administer-{draw}"),
        form,
        &[],
        result,
    )
    .await
}

/// A witness's credentials from the form: `<prefix>.username` and `<prefix>.password`.
fn witness(form: &FormData, prefix: &str) -> WitnessIn {
    WitnessIn {
        username: form.text(&format!("{prefix}.username")),
        // A password is taken as typed.
        password: form
            .0
            .get(&format!("{prefix}.password"))
            .cloned()
            .unwrap_or_default(),
    }
}

async fn waste(
    State(state): State<AppState>,
    Path((id, draw)): Path<(Uuid, i64)>,
    posted: Posted,
) -> PageResult {
    let Posted { user, form } = posted;
    let body = WasteIn {
        quantity_mg: form.text("quantity_mg"),
        witness: witness(&form, "witness"),
        reason: form.optional("reason"),
    };
    let result = state
        .waste(&user.me.caller(), draw, body)
        .await
        .map_err(ApiError::from);
    vial_answer(
        &state,
        &user,
        id,
        &format!("waste-{draw}"),
        form,
        &["witness.username"],
        result,
    )
    .await
}

async fn destroy(State(state): State<AppState>, Path(id): Path<Uuid>, posted: Posted) -> PageResult {
    let Posted { user, form } = posted;
    let body = DestructionIn {
        quantity_mg: form.text("quantity_mg"),
        method: form.text("method"),
        reason: form.text("reason"),
        location: form.text("location"),
        witnesses: vec![witness(&form, "witnesses[0]"), witness(&form, "witnesses[1]")],
    };
    let result = state
        .destroy(&user.me.caller(), id, body)
        .await
        .map_err(ApiError::from);
    let fields = ["witnesses[0].username", "witnesses[1].username"];
    vial_answer(&state, &user, id, "destroy", form, &fields, result).await
}

// ---- The biennial inventory report ---------------------------------------------------------------

#[derive(Template)]
#[template(path = "ledger_inventory.html")]
struct InventoryPage {
    chrome: Chrome,
    rule: &'static str,
    message: String,
    due: bool,
    due_soon: bool,
    next_due_by: String,
    /// The last inventory: when, by whom, at which time of business, its note.
    last: Option<(String, String, String, String)>,
    on_hand: Vec<VialRow>,
    on_hand_mg: String,
    open_discrepancies: usize,
    ledger_consistent: bool,
    ledger_problems: Vec<String>,
    retention: &'static str,
    today: String,
    can_manage: bool,
}

async fn inventory_page(State(state): State<AppState>, user: WebUser) -> PageResult {
    let r = state
        .inventory_report(&user.me.caller())
        .await
        .map_err(page_err)?;
    Ok(render_with_status(
        StatusCode::OK,
        &InventoryPage {
            chrome: user.chrome("ledger", "Biennial inventory"),
            rule: r.rule,
            message: r.message,
            due: r.due,
            due_soon: r.due_soon,
            next_due_by: r.next_due_by.unwrap_or_default(),
            last: r.last_inventory.map(|c| {
                (
                    user.zone.clock(c.taken_at),
                    c.taken_by.name,
                    c.business_time.unwrap_or("(not recorded)").to_string(),
                    c.note.unwrap_or_default(),
                )
            }),
            on_hand: r.on_hand.into_iter().map(|v| vial_row(&user.zone, v)).collect(),
            on_hand_mg: r.on_hand_mg,
            open_discrepancies: r.open_discrepancies,
            ledger_consistent: r.ledger_consistent,
            ledger_problems: r.ledger_problems,
            retention: r.retention,
            today: ketaflow_store::iso_date(user.zone.date(user.now)),
            can_manage: user.may(Action::ManageLedger),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_are_exact_and_lines_map_back_to_the_form() {
        assert_eq!(ml_of("35.5", "10"), "3.55");
        assert_eq!(ml_of("100", "50"), "2");
        assert_eq!(ml_of("1", "3"), "0.333");
        assert_eq!(ml_of("x", "10"), "");
        assert_eq!(renumber("vials[1].counted_mg", &[0, 3]), "vials[3].counted_mg");
        assert_eq!(renumber("note", &[0]), "note");
        assert!(is_zero("0") && is_zero("0.000") && !is_zero("0.001"));
    }
}
