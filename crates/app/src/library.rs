//! The protocol library as the clinic reads it, and the audit chain: its entries and its
//! verification. Both are read-only here; the library is loaded at start-up, the chain is written
//! by every audited use case.

use ketaflow_clinic::protocol::{DoseRule, Limit, Protocol};
use ketaflow_store::{AuditFilter, AuditProblemKind, Store};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::policy::{Action, Caller};
use crate::{App, AppError};

/// A limit with its source.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LimitOut {
    /// Soft limit.
    pub soft: f64,
    /// Hard limit.
    pub hard: f64,
    /// Unit.
    pub unit: String,
    /// Source.
    pub source: String,
    /// Whether the clinic chose it (no consensus number).
    pub clinic_setting: bool,
}

fn limit(l: &Limit, unit: &str) -> LimitOut {
    LimitOut {
        soft: l.soft,
        hard: l.hard,
        unit: unit.into(),
        source: l.source.clone(),
        clinic_setting: l.clinic_setting,
    }
}

/// A protocol as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProtocolOut {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Protocol version.
    pub version: u32,
    /// Library version.
    pub library_version: String,
    /// Indication codes.
    pub indications: Vec<String>,
    /// Evidence grade.
    pub evidence_grade: String,
    /// Evidence source.
    pub evidence_source: String,
    /// mg/kg over the duration (amount protocols).
    pub dose_mg_per_kg: Option<f64>,
    /// mg/kg/h for the duration (rate protocols).
    pub rate_mg_per_kg_per_h: Option<f64>,
    /// Infusion minutes.
    pub duration_min: f64,
    /// Dose source.
    pub dose_source: String,
    /// Infusions in the series.
    pub series_infusions: u32,
    /// Over how many days.
    pub series_days: u32,
    /// actual, ideal or adjusted.
    pub weight_basis: String,
    /// Standard concentrations, mg/mL.
    pub concentrations_mg_per_ml: Vec<f64>,
    /// Limits by name.
    pub limits: std::collections::BTreeMap<String, LimitOut>,
    /// PK model id.
    pub model: String,
    /// Ce recovery threshold, µg/mL.
    pub recovery_threshold_ug_per_ml: f64,
    /// Its source.
    pub recovery_threshold_source: String,
    /// Minimum observation after the infusion, minutes.
    pub min_observation_min: f64,
    /// Discharge rule source.
    pub discharge_source: String,
}

/// The API view of a protocol.
pub fn protocol_out(p: &Protocol, library_version: &str) -> ProtocolOut {
    let (dose, rate) = match p.dose.value {
        DoseRule::AmountOver { mg_per_kg, .. } => (Some(mg_per_kg), None),
        DoseRule::RateFor { mg_per_kg_per_h, .. } => (None, Some(mg_per_kg_per_h)),
    };
    let l = &p.limits;
    let limits = [
        ("dose_mg_per_kg", limit(&l.dose_mg_per_kg, "mg/kg")),
        ("rate_mg_per_kg_per_h", limit(&l.rate_mg_per_kg_per_h, "mg/kg/h")),
        ("mg_per_session", limit(&l.mg_per_session, "mg")),
        ("pump_ml_per_h", limit(&l.pump_ml_per_h, "mL/h")),
        (
            "min_days_between_sessions",
            limit(&l.min_days_between_sessions, "days"),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    ProtocolOut {
        id: p.id.clone(),
        name: p.name.clone(),
        version: p.version,
        library_version: library_version.into(),
        indications: p.indications.iter().map(|i| i.code().to_string()).collect(),
        evidence_grade: p.evidence.value.clone(),
        evidence_source: p.evidence.source.clone(),
        dose_mg_per_kg: dose,
        rate_mg_per_kg_per_h: rate,
        duration_min: p.dose.value.duration_min(),
        dose_source: p.dose.source.clone(),
        series_infusions: p.series.value.0,
        series_days: p.series.value.1,
        weight_basis: p.weight_basis.value.code().into(),
        concentrations_mg_per_ml: p.concentrations_mg_per_ml.value.clone(),
        limits,
        model: p.model.id().into(),
        recovery_threshold_ug_per_ml: p.recovery_threshold_ug_per_ml.value,
        recovery_threshold_source: p.recovery_threshold_ug_per_ml.source.clone(),
        min_observation_min: p.discharge.min_observation_min,
        discharge_source: p.discharge.source.clone(),
    }
}

/// One audit entry.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditOut {
    /// Sequence number.
    pub seq: i64,
    /// When (RFC 3339).
    pub at: String,
    /// Who.
    pub actor_user_id: String,
    /// Their role.
    pub actor_role: String,
    /// What.
    pub action: String,
    /// Record type.
    pub record_type: String,
    /// Record id.
    pub record_id: String,
    /// Before (JSON text).
    pub before_json: Option<String>,
    /// After (JSON text).
    pub after_json: Option<String>,
    /// Hash of the previous entry.
    pub prev_hash: String,
    /// This entry's hash.
    pub hash: String,
}

/// The verification result.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VerifyOut {
    /// Whether the chain is intact.
    pub ok: bool,
    /// Entries checked before the first problem.
    pub checked: u64,
    /// Hash of the last intact entry.
    pub last_hash: String,
    /// Seq of the first problem.
    pub problem_seq: Option<i64>,
    /// altered, deleted, broken_link or head_mismatch.
    pub problem: Option<String>,
    /// The records, vital signs and users checked against the chain.
    pub tables: TablesOut,
}

/// The mutable tables checked against the audit log (see `ketaflow_store::TablesReport`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TablesOut {
    /// Whether every row agrees with the audit log.
    pub ok: bool,
    /// Records checked.
    pub records: u64,
    /// Vital-sign readings checked.
    pub vitals: u64,
    /// Audited batches of readings checked.
    pub vital_batches: u64,
    /// Users checked.
    pub users: u64,
    /// Every row that disagrees.
    pub problems: Vec<TableProblemOut>,
}

/// A row that disagrees with the audit log.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TableProblemOut {
    /// records, vital_signs or users.
    pub table: String,
    /// The row (or the session and audit entry of a batch of readings).
    pub id: String,
    /// changed, unaudited, history_broken or missing.
    pub kind: String,
    /// In words.
    pub detail: String,
}

/// Which audit entries to list.
#[derive(Debug, Default, Clone)]
pub struct AuditSelection {
    /// Only this record type.
    pub record_type: Option<String>,
    /// Only this record id.
    pub record_id: Option<String>,
    /// Only entries after this seq.
    pub after_seq: Option<i64>,
    /// At most this many (1–1000).
    pub limit: Option<u32>,
}

impl App {
    /// The protocol library.
    pub fn protocols(&self, caller: &Caller) -> Result<Vec<ProtocolOut>, AppError> {
        caller.require(Action::ReadClinical)?;
        Ok(self
            .library
            .protocols
            .values()
            .map(|p| protocol_out(p, &self.library.version))
            .collect())
    }

    /// One protocol.
    pub fn protocol(&self, caller: &Caller, id: &str) -> Result<ProtocolOut, AppError> {
        caller.require(Action::ReadClinical)?;
        let p = self.library.get(id).ok_or_else(|| AppError::NotFound {
            what: "protocol".into(),
            id: id.to_string(),
        })?;
        Ok(protocol_out(p, &self.library.version))
    }

    /// Audit entries, oldest first.
    pub async fn audit_entries(&self, caller: &Caller, q: AuditSelection) -> Result<Vec<AuditOut>, AppError> {
        caller.require(Action::ReadAudit)?;
        if let Some(limit) = q.limit
            && !(1..=1000).contains(&limit)
        {
            return Err(AppError::field("limit", limit, "1–1000"));
        }
        let filter = AuditFilter {
            record_type: q.record_type,
            record_id: q.record_id,
            after_seq: q.after_seq,
            limit: q.limit,
        };
        let entries = self.store.list_audit(&filter).await?;
        Ok(entries
            .into_iter()
            .map(|e| AuditOut {
                seq: e.seq,
                at: e
                    .at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                actor_user_id: e.actor_user_id,
                actor_role: e.actor_role,
                action: e.action,
                record_type: e.record_type,
                record_id: e.record_id,
                before_json: e.before_json,
                after_json: e.after_json,
                prev_hash: e.prev_hash,
                hash: e.hash,
            })
            .collect())
    }

    /// Verifies the whole audit chain.
    pub async fn verify_audit(&self, caller: &Caller) -> Result<VerifyOut, AppError> {
        caller.require(Action::ReadAudit)?;
        verify_audit_chain(&self.store).await
    }
}

/// Verifies the whole audit chain (each entry's hash, each link, and the head), then the records,
/// vital signs and users against it.
pub async fn verify_audit_chain(store: &Store) -> Result<VerifyOut, AppError> {
    let report = store.verify_audit_chain().await?;
    let tables = store.verify_tables().await?;
    Ok(VerifyOut {
        tables: TablesOut {
            ok: tables.is_ok(),
            records: tables.records,
            vitals: tables.vitals,
            vital_batches: tables.vital_batches,
            users: tables.users,
            problems: tables
                .problems
                .into_iter()
                .map(|p| TableProblemOut {
                    table: p.table.into(),
                    id: p.id,
                    kind: p.kind.code().into(),
                    detail: p.detail,
                })
                .collect(),
        },
        ok: report.is_ok(),
        checked: report.checked,
        last_hash: report.last_hash,
        problem_seq: report.problem.map(|p| p.seq),
        problem: report.problem.map(|p| {
            match p.kind {
                AuditProblemKind::Altered => "altered",
                AuditProblemKind::Deleted => "deleted",
                AuditProblemKind::BrokenLink => "broken_link",
                AuditProblemKind::HeadMismatch => "head_mismatch",
            }
            .to_string()
        }),
    })
}
