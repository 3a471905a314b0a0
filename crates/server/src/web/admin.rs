//! User administration and the audit view.
//!
//! `/users` lists every account with its role and whether it is disabled, locked after failed
//! logins, or waiting for its owner to replace a one-time password; an administrator creates users
//! (with a one-time password), disables and re-enables them, and resets passwords. `/audit` pages
//! through the hash-chained audit log newest first (time, actor, action, kind of record, record id:
//! never the before/after documents, which hold clinical data) and verifies the whole chain on
//! request. Every write is a use case of [`ketaflow_app::accounts`] and [`ketaflow_app::library`],
//! the ones the JSON API calls, so the rules and the audit entries are the same.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;
use uuid::Uuid;

use super::{Chrome, FormData, FormState, PageResult, Posted, WebUser, page_err};
use super::{render_with_status, see_other};
use crate::error::ApiError;
use crate::policy::Action;
use crate::state::AppState;
use ketaflow_app::accounts::{Account, DisableIn, PasswordIn, UserIn};
use ketaflow_app::library::{AuditOut, AuditSelection, VerifyOut};

/// Audit entries per page.
const AUDIT_PAGE: i64 = 50;

/// The roles an administrator can give, in the order the select lists them.
const ROLES: [(&str, &str); 4] = [
    ("nurse", "Nurse"),
    ("physician", "Physician"),
    ("viewer", "Viewer (read-only clinical)"),
    ("administrator", "Administrator"),
];

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/users", get(users_page).post(create_user))
        .route("/users/{id}/disabled", post(set_disabled))
        .route("/users/{id}/password", post(reset_password))
        .route("/clinic/time-zone", post(set_time_zone))
        .route("/audit", get(audit_page))
        .route("/audit/verify", post(verify_chain))
}

// ---- Users ----------------------------------------------------------------------------------------

/// One account as the user list shows it.
#[derive(Debug)]
struct UserRow {
    id: String,
    username: String,
    display_name: String,
    role: String,
    disabled: bool,
    /// When the lockout after failed logins ends (UTC), if one is in force.
    locked_until: Option<String>,
    must_change_password: bool,
    /// The row is the administrator's own account (it cannot be disabled from here).
    is_me: bool,
    /// The name of this row's forms in a [`FormState`].
    form: String,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    chrome: Chrome,
    users: Vec<UserRow>,
    roles: [(&'static str, &'static str); 4],
    form: FormState,
    /// The clinic's zone in force and who chose it.
    zone: String,
    zone_source: String,
    /// Every IANA zone name, for the input's suggestions.
    zone_names: Vec<String>,
}

/// A form without its password fields: a password is never echoed back into a page.
fn without_passwords(mut form: FormData) -> FormData {
    form.0.retain(|k, _| !k.contains("password"));
    form
}

async fn users_view(state: &AppState, user: &WebUser, form: FormState, status: StatusCode) -> PageResult {
    let list = state.accounts(&user.me.caller()).await.map_err(page_err)?;
    let in_force = state.time_zone(&user.me.caller()).await.map_err(page_err)?;
    let zone_source = match in_force.set_at {
        Some(at) => format!("chosen by an administrator on {}", in_force.zone.clock(at)),
        None => "from the server's --time-zone, or this machine's zone".to_string(),
    };
    let users = list
        .into_iter()
        .map(
            |Account {
                 user: u,
                 locked_until,
             }| UserRow {
                id: u.id.to_string(),
                locked_until: locked_until.map(|t| user.zone.clock(t)),
                is_me: u.id == user.me.user.id,
                form: format!("user-{}", u.id),
                username: u.username,
                display_name: u.display_name,
                role: u.role,
                disabled: u.disabled,
                must_change_password: u.must_change_password,
            },
        )
        .collect();
    Ok(render_with_status(
        status,
        &UsersPage {
            chrome: user.chrome("users", "Users"),
            users,
            roles: ROLES,
            form,
            zone: in_force.zone.label(user.now),
            zone_source,
            zone_names: ketaflow_app::clinic_time::zone_names(),
        },
    ))
}

/// An administrator sets the clinic's time zone; every page shows and reads times in it at once.
async fn set_time_zone(State(state): State<AppState>, posted: Posted) -> PageResult {
    let Posted { user, form } = posted;
    match state
        .set_time_zone(&user.me.caller(), &form.text("time_zone"))
        .await
        .map_err(ApiError::from)
    {
        Ok(_) => Ok(see_other("/users#clinic")),
        Err(e) => {
            let refused = FormState::refused_named("clinic", form, &e);
            users_view(&state, &user, refused, e.status()).await
        }
    }
}

async fn users_page(State(state): State<AppState>, user: WebUser) -> PageResult {
    users_view(&state, &user, FormState::default(), StatusCode::OK).await
}

async fn create_user(State(state): State<AppState>, posted: Posted) -> PageResult {
    let Posted { user, form } = posted;
    let body = UserIn {
        username: form.text("username"),
        display_name: form.text("display_name"),
        role: form.text("role"),
        // A password is taken as typed: spaces may be part of it.
        password: form.0.get("password").cloned().unwrap_or_default(),
    };
    match state
        .create_user(&user.me.caller(), body)
        .await
        .map_err(ApiError::from)
    {
        Ok(_) => Ok(see_other("/users")),
        Err(e) => {
            let refused = FormState::refused_named("create", without_passwords(form), &e);
            users_view(&state, &user, refused, e.status()).await
        }
    }
}

async fn set_disabled(State(state): State<AppState>, Path(id): Path<Uuid>, posted: Posted) -> PageResult {
    let Posted { user, form } = posted;
    let disabled = match form.text("disabled").as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(ApiError::field("disabled", other, "true or false")),
    };
    let result = match disabled {
        Ok(disabled) => state
            .set_disabled(&user.me.caller(), id, DisableIn { disabled })
            .await
            .map(|_| ())
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(see_other(&format!("/users#user-{id}"))),
        Err(e) => {
            let refused = FormState::refused_named(&format!("user-{id}"), FormData::default(), &e);
            users_view(&state, &user, refused, e.status()).await
        }
    }
}

async fn reset_password(State(state): State<AppState>, Path(id): Path<Uuid>, posted: Posted) -> PageResult {
    let Posted { user, form } = posted;
    let body = PasswordIn {
        password: form.0.get("password").cloned().unwrap_or_default(),
    };
    match state
        .reset_password(&user.me.caller(), id, body)
        .await
        .map_err(ApiError::from)
    {
        Ok(_) => Ok(see_other(&format!("/users#user-{id}"))),
        Err(e) => {
            let refused = FormState::refused_named(&format!("user-{id}"), FormData::default(), &e);
            users_view(&state, &user, refused, e.status()).await
        }
    }
}

// ---- Audit ----------------------------------------------------------------------------------------

/// The audit page's cursor: show the entries before this sequence number (newest first). A
/// sequence number says nothing about any patient.
#[derive(Debug, Deserialize)]
struct AuditCursor {
    before: Option<i64>,
}

/// One audit entry as the page lists it.
#[derive(Debug)]
struct AuditRow {
    seq: i64,
    at: String,
    actor: String,
    role: String,
    action: String,
    record_type: String,
    record_id: String,
}

/// The result of a chain verification, in words.
#[derive(Debug)]
struct Verification {
    ok: bool,
    checked: u64,
    last_hash: String,
    problem: String,
    /// The tables against the chain: (records, readings, users) checked, and each disagreement in
    /// words.
    tables_checked: (u64, u64, u64),
    table_problems: Vec<String>,
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPage {
    chrome: Chrome,
    entries: Vec<AuditRow>,
    /// The number of entries in the log.
    head: i64,
    /// The cursor for older entries, if there are any.
    older: Option<i64>,
    /// The cursor for newer entries, if this is not the newest page.
    newer: Option<i64>,
    verification: Option<Verification>,
}

async fn audit_entries(
    state: &AppState,
    user: &WebUser,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<AuditOut>, ApiError> {
    let selection = AuditSelection {
        after_seq: Some(after_seq),
        limit: Some(limit),
        ..AuditSelection::default()
    };
    Ok(state.audit_entries(&user.me.caller(), selection).await?)
}

/// The highest sequence number in the log (0 when empty). Sequence numbers are gap-free from 1,
/// so "is there an entry after k" is monotone in k: a doubling search then a bisection, each
/// probe one indexed row, instead of reading the whole log.
async fn audit_head(state: &AppState, user: &WebUser) -> Result<i64, ApiError> {
    let exists_after =
        |k: i64| async move { Ok::<_, ApiError>(!audit_entries(state, user, k, 1).await?.is_empty()) };
    if !exists_after(0).await? {
        return Ok(0);
    }
    let (mut lo, mut hi) = (0_i64, 1_i64);
    while exists_after(hi).await? {
        lo = hi;
        hi *= 2;
    }
    // Invariant: an entry exists after lo, none after hi.
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if exists_after(mid).await? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(hi)
}

fn verification(v: VerifyOut) -> Verification {
    let problem = match (v.problem.as_deref(), v.problem_seq) {
        (None, _) => String::new(),
        (Some(kind), seq) => {
            let what = match kind {
                "altered" => "its stored hash does not match its contents (the entry was altered)",
                "deleted" => "the sequence has a gap (an entry was deleted)",
                "broken_link" => "it does not link to the hash of the entry before it",
                "head_mismatch" => "the chain's recorded head does not match its last entry",
                other => other,
            };
            match seq {
                Some(seq) => format!("the chain breaks at entry {seq}: {what}"),
                None => format!("the chain is broken: {what}"),
            }
        }
    };
    let table_problems = v
        .tables
        .problems
        .iter()
        .map(|p| {
            let what = match p.kind.as_str() {
                "changed" => "changed since it was audited",
                "unaudited" => "written without an audit entry",
                "history_broken" => "its versions do not match the audit log",
                "missing" => "rows of an audited batch are gone",
                other => other,
            };
            format!("{} {}: {what} ({})", p.table.replace('_', " "), p.id, p.detail)
        })
        .collect();
    Verification {
        ok: v.ok,
        checked: v.checked,
        last_hash: v.last_hash,
        problem,
        tables_checked: (v.tables.records, v.tables.vitals, v.tables.users),
        table_problems,
    }
}

async fn audit_view(
    state: &AppState,
    user: &WebUser,
    before: Option<i64>,
    verification: Option<Verification>,
) -> PageResult {
    user.me.require(Action::ReadAudit).map_err(page_err)?;
    let head = audit_head(state, user).await.map_err(page_err)?;
    let before = before.unwrap_or(head + 1).clamp(1, head + 1);
    let first = (before - AUDIT_PAGE).max(1);
    let entries = if before > first {
        let limit = u32::try_from(before - first).map_err(|e| page_err(ApiError::internal(e.to_string())))?;
        audit_entries(state, user, first - 1, limit)
            .await
            .map_err(page_err)?
    } else {
        vec![]
    };
    // Names for user ids, where this role may list users; otherwise the id is shown.
    let names: HashMap<String, String> = if user.may(Action::ManageUsers) {
        state
            .users(&user.me.caller())
            .await
            .map_err(page_err)?
            .into_iter()
            .map(|u| {
                (
                    u.id.to_string(),
                    crate::auth::person_name(&u.display_name, &u.username),
                )
            })
            .collect()
    } else {
        HashMap::new()
    };
    let rows = entries
        .into_iter()
        .rev()
        .map(|e| AuditRow {
            seq: e.seq,
            at: time::OffsetDateTime::parse(&e.at, &time::format_description::well_known::Rfc3339)
                .map(|t| user.zone.clock_seconds(t))
                .unwrap_or(e.at),
            actor: names.get(&e.actor_user_id).cloned().unwrap_or(e.actor_user_id),
            role: e.actor_role,
            action: e.action,
            record_type: e.record_type,
            record_id: e.record_id,
        })
        .collect();
    Ok(render_with_status(
        StatusCode::OK,
        &AuditPage {
            chrome: user.chrome("audit", "Audit log"),
            entries: rows,
            head,
            older: (first > 1).then_some(first),
            newer: (before <= head).then(|| (before + AUDIT_PAGE).min(head + 1)),
            verification,
        },
    ))
}

async fn audit_page(
    State(state): State<AppState>,
    user: WebUser,
    Query(cursor): Query<AuditCursor>,
) -> PageResult {
    audit_view(&state, &user, cursor.before, None).await
}

async fn verify_chain(State(state): State<AppState>, posted: Posted) -> PageResult {
    let user = posted.user;
    let result = state.verify_audit(&user.me.caller()).await.map_err(page_err)?;
    audit_view(&state, &user, None, Some(verification(result))).await
}
