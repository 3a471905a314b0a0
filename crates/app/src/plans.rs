//! Dose plans: computed from a protocol and the patient's record, checked against the protocol's
//! limits, saved as a draft, and approved by a physician (soft-limit breaches each with a reasoned
//! override, hard limits never). The approved plan is locked and never changes. The dosing and
//! the limits are `ketaflow_clinic::plan`'s; this module loads their inputs and saves the result.

use ketaflow_clinic::eligibility::{self, EligibilityReport, EligibilityStatus};
use ketaflow_clinic::plan::{
    ApprovalError, Approver, DosePlan, LimitName, Override, PlanError, PlanRequest, compute_plan,
};
use ketaflow_clinic::session::PlanStatus;
use ketaflow_store::{NewRecord, Record, RecordChange};
use ketaflow_units::MgPerMl;
use serde::{Deserialize, Serialize};
use time::Date;
use time::macros::format_description;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::policy::{Action, Caller};
use crate::records::{
    CheckOut, IndicationDoc, OverrideDoc, PATIENT, PLAN, PatientDoc, PlanDoc, PredictionOut,
};
use crate::{App, AppError};

/// A plan request.
#[derive(Debug, Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct PlanIn {
    /// Protocol id.
    pub protocol_id: String,
    /// Concentration, mg/mL (one of the protocol's standard concentrations).
    pub concentration_mg_per_ml: f64,
    /// Session date, YYYY-MM-DD.
    pub planned_on: String,
    /// Previous session's date, YYYY-MM-DD.
    pub last_session_on: Option<String>,
    /// A dose other than the protocol's (mg/kg, or mg/kg/h for rate protocols).
    pub adjusted_dose_per_kg: Option<f64>,
}

/// A plan as the API returns it: the wire form, built from the stored record at the edge.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct PlanOut {
    /// Plan id.
    pub id: Uuid,
    /// Record version.
    pub version: i64,
    /// Whether it can still change (false once approved).
    pub locked: bool,
    /// draft or approved.
    #[schema(value_type = String, example = "approved")]
    pub status: PlanStatus,
    /// Patient id.
    pub patient_id: Uuid,
    /// The request as given.
    pub protocol_id: String,
    /// Protocol version.
    pub protocol_version: u32,
    /// Library version.
    pub library_version: String,
    /// Session date, YYYY-MM-DD.
    pub planned_on: String,
    /// Previous session's date, YYYY-MM-DD.
    pub last_session_on: Option<String>,
    /// Adjusted dose per kg, if any.
    pub adjusted_dose_per_kg: Option<f64>,
    /// Who computed it.
    pub created_by: String,
    /// Total body weight, kg.
    pub total_weight_kg: f64,
    /// Dosing weight, kg.
    pub dosing_weight_kg: f64,
    /// Basis used (actual, ideal, adjusted).
    pub weight_basis: String,
    /// Dose, mg.
    pub dose_mg: f64,
    /// Dose per kg (or mg/kg/h for rate protocols) used.
    pub dose_per_kg: f64,
    /// Rate, mg/h.
    pub rate_mg_per_h: f64,
    /// Rate per kg, mg/kg/h.
    pub rate_mg_per_kg_per_h: f64,
    /// Concentration, mg/mL.
    pub concentration_mg_per_ml: f64,
    /// Pump rate, mL/h.
    pub pump_ml_per_h: f64,
    /// Volume, mL.
    pub volume_ml: f64,
    /// Duration, minutes.
    pub duration_min: f64,
    /// Limits evaluated.
    pub checks: Vec<CheckOut>,
    /// The prediction.
    pub prediction: PredictionOut,
    /// Warnings.
    pub warnings: Vec<String>,
    /// Who approved it (user id).
    pub approved_by: Option<String>,
    /// The approving physician's name as it was at approval ("Display Name (username)"); absent in
    /// plans approved before names were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by_name: Option<String>,
    /// When (RFC 3339).
    pub approved_at: Option<String>,
    /// Soft-limit overrides with reasons.
    pub overrides: Vec<OverrideDoc>,
    /// The protocol's indications against the patient's; absent in plans made before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indication: Option<IndicationDoc>,
    /// Why a physician approved a protocol for none of the patient's indications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indication_override: Option<String>,
}

impl PlanOut {
    /// The wire form of a stored plan.
    pub fn new(record: &Record, doc: PlanDoc) -> PlanOut {
        PlanOut {
            id: record.id,
            version: record.version,
            locked: record.locked,
            status: doc.status,
            patient_id: doc.patient_id,
            protocol_id: doc.protocol_id,
            protocol_version: doc.protocol_version,
            library_version: doc.library_version,
            planned_on: doc.planned_on.to_string(),
            last_session_on: doc.last_session_on.map(|d| d.to_string()),
            adjusted_dose_per_kg: doc.adjusted_dose_per_kg,
            created_by: doc.created_by,
            total_weight_kg: doc.total_weight_kg.get(),
            dosing_weight_kg: doc.dosing_weight_kg.get(),
            weight_basis: doc.weight_basis.code().into(),
            dose_mg: doc.dose_mg.get(),
            dose_per_kg: doc.dose_per_kg,
            rate_mg_per_h: doc.rate_mg_per_h.get(),
            rate_mg_per_kg_per_h: doc.rate_mg_per_kg_per_h.get(),
            concentration_mg_per_ml: doc.concentration_mg_per_ml.get(),
            pump_ml_per_h: doc.pump_ml_per_h.get(),
            volume_ml: doc.volume_ml.get(),
            duration_min: doc.duration_min.get(),
            checks: doc.checks,
            prediction: doc.prediction,
            warnings: doc.warnings,
            approved_by: doc.approved_by,
            approved_by_name: doc.approved_by_name,
            approved_at: doc.approved_at.map(crate::vitals::rfc3339),
            overrides: doc.overrides,
            indication: doc.indication,
            indication_override: doc.indication_override,
        }
    }
}

/// An approval.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveIn {
    /// One override with a reason for each soft-limit breach.
    #[serde(default)]
    pub overrides: Vec<OverrideDoc>,
    /// Why the protocol is right for a patient with none of its indications (at least 10
    /// characters); needed exactly when the plan's `indication.matches` is false.
    #[serde(default)]
    pub indication_override: Option<String>,
}

/// A stored plan as shown.
pub fn plan_out(record: Record) -> Result<PlanOut, AppError> {
    let doc: PlanDoc = crate::records::parse(PLAN, &record)?;
    Ok(PlanOut::new(&record, doc))
}

/// The earliest and latest clinical date accepted anywhere (a birth date, a measurement, a
/// session, a vial's expiry): a date outside these is a typing slip, never a patient's.
pub const CLINICAL_DATES: (Date, Date) = (
    time::macros::date!(1900 - 01 - 01),
    time::macros::date!(2099 - 12 - 31),
);

/// A date field, YYYY-MM-DD, between 1900-01-01 and 2099-12-31 ([`CLINICAL_DATES`]); fields add
/// their own bounds (not in the future, not before birth) on top.
pub fn parse_date(field: &str, text: &str) -> Result<Date, AppError> {
    let (first, last) = CLINICAL_DATES;
    let allowed = || format!("a date YYYY-MM-DD from {first} to {last}");
    let date = Date::parse(text.trim(), format_description!("[year]-[month]-[day]"))
        .map_err(|_| AppError::field(field, text, allowed()))?;
    if !(first..=last).contains(&date) {
        return Err(AppError::field(field, text, allowed()));
    }
    Ok(date)
}

fn plan_error(e: PlanError) -> AppError {
    match e {
        PlanError::NonStandardConcentration {
            given, ref allowed, ..
        } => AppError::field("concentration_mg_per_ml", given, format!("{allowed} mg/mL")),
        PlanError::BadAdjustedDose(v) => {
            AppError::field("adjusted_dose_per_kg", v, "a finite number above 0")
        }
        PlanError::NoWeight { .. } => AppError::Refused {
            code: "weight_missing",
            message: e.to_string(),
        },
        PlanError::DosingWeight(_) => AppError::Refused {
            code: "dosing_weight",
            message: e.to_string(),
        },
        PlanError::OutOfRange(_) => AppError::Refused {
            code: "out_of_range",
            message: e.to_string(),
        },
        PlanError::Prediction(_) => AppError::Internal(e.to_string()),
    }
}

/// The wire form of a prediction.
pub fn prediction_out(p: &ketaflow_clinic::plan::Prediction) -> PredictionOut {
    PredictionOut {
        model: p.model.id().into(),
        time_min: p.times_s.iter().map(|t| t / 60.0).collect(),
        cp_ug_per_ml: p.cp.clone(),
        ce_ug_per_ml: p.ce.clone(),
        peak_cp_ug_per_ml: p.peak_cp.0,
        peak_cp_at_min: p.peak_cp.1 / 60.0,
        peak_ce_ug_per_ml: p.peak_ce.0,
        peak_ce_at_min: p.peak_ce.1 / 60.0,
        recovery_threshold_ug_per_ml: p.recovery_threshold_ug_per_ml,
        ce_below_threshold_from_min: p.ce_below_threshold_from_s.map(|t| t / 60.0),
        warnings: p.warnings.clone(),
    }
}

/// A limit check as stored and shown.
pub fn check_out(c: &ketaflow_clinic::plan::LimitCheck) -> CheckOut {
    CheckOut {
        limit: c.name.code().into(),
        value: c.value,
        unit: c.name.unit().into(),
        soft: c.soft,
        hard: c.hard,
        is_minimum: c.is_minimum,
        status: c.status,
        source: c.source.clone(),
        clinic_setting: c.clinic_setting,
    }
}

/// A computed plan as stored: a draft until a physician approves it.
pub fn plan_doc(
    plan: &DosePlan,
    patient_id: Uuid,
    body: &PlanIn,
    created_by: &str,
) -> Result<PlanDoc, AppError> {
    let p = &plan.prediction;
    let last_session_on = body
        .last_session_on
        .as_deref()
        .map(|d| parse_date("last_session_on", d))
        .transpose()?;
    Ok(PlanDoc {
        status: PlanStatus::Draft,
        patient_id,
        protocol_id: plan.protocol_id.clone(),
        protocol_version: plan.protocol_version,
        library_version: plan.library_version.clone(),
        planned_on: plan.planned_on,
        last_session_on,
        adjusted_dose_per_kg: body.adjusted_dose_per_kg,
        created_by: created_by.into(),
        total_weight_kg: plan.total_weight,
        dosing_weight_kg: plan.dosing_weight.weight,
        weight_basis: plan.dosing_weight.used,
        dose_mg: plan.dose,
        dose_per_kg: plan.dose_per_kg,
        rate_mg_per_h: plan.rate,
        rate_mg_per_kg_per_h: plan.rate_per_kg,
        concentration_mg_per_ml: plan.concentration,
        pump_ml_per_h: plan.pump_rate,
        volume_ml: plan.volume,
        duration_min: plan.duration,
        checks: plan.checks.iter().map(check_out).collect(),
        prediction: prediction_out(p),
        warnings: plan.warnings.clone(),
        approved_by: None,
        approved_by_name: None,
        approved_at: None,
        overrides: vec![],
        indication: Some(IndicationDoc {
            protocol_for: plan
                .indication
                .protocol_for
                .iter()
                .map(|i| i.code().to_string())
                .collect(),
            patient: plan
                .indication
                .patient
                .iter()
                .map(|i| i.code().to_string())
                .collect(),
            matches: plan.indication.matches(),
        }),
        indication_override: None,
    })
}

impl App {
    /// Computes the domain plan for a request against patient `id`'s record (nothing is saved).
    pub fn compute_plan(&self, doc: &PatientDoc, body: &PlanIn) -> Result<DosePlan, AppError> {
        let state = self;
        let protocol = state.library.get(&body.protocol_id).ok_or_else(|| {
            AppError::field(
                "protocol_id",
                body.protocol_id.clone(),
                state
                    .library
                    .protocols
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        })?;
        let concentration = MgPerMl::new(body.concentration_mg_per_ml).map_err(|_| {
            AppError::field(
                "concentration_mg_per_ml",
                body.concentration_mg_per_ml,
                "a concentration above 0 mg/mL",
            )
        })?;
        let planned_on = parse_date("planned_on", &body.planned_on)?;
        let last_session_on = body
            .last_session_on
            .as_deref()
            .map(|d| parse_date("last_session_on", d))
            .transpose()?;
        if let Some(last) = last_session_on
            && last > planned_on
        {
            return Err(AppError::field(
                "last_session_on",
                last.to_string(),
                "a date on or before planned_on",
            ));
        }
        let facts = doc.facts();
        let request = PlanRequest {
            protocol,
            library_version: &state.library.version,
            facts: &facts,
            concentration,
            planned_on,
            last_session_on,
            adjusted_dose_per_kg: body.adjusted_dose_per_kg,
        };
        compute_plan(&request).map_err(plan_error)
    }

    /// The patient's eligibility screen from the stored record and acknowledgements.
    pub fn screen(&self, id: Uuid, doc: &PatientDoc) -> Result<EligibilityReport, AppError> {
        eligibility::screen(&doc.facts(), self.settings.bp_threshold, &doc.acknowledgements()).map_err(|e| {
            AppError::CorruptRecord {
                kind: PATIENT,
                id: id.to_string(),
                reason: format!("a stored acknowledgement: {e}"),
            }
        })
    }
}

impl App {
    /// Computes and saves a draft dose plan. The patient must be eligible (relative
    /// contraindications acknowledged, no absolute one), and a plan beyond any hard limit is
    /// refused (422 `hard_limit`, naming each limit, its value and what is allowed); nothing is saved.
    pub async fn create_plan(
        &self,
        caller: &Caller,
        patient_id: Uuid,
        body: PlanIn,
    ) -> Result<PlanOut, AppError> {
        caller.require(Action::CreatePlan)?;
        let patient = self.load::<PatientDoc>(PATIENT, patient_id).await?;
        let report = self.screen(patient_id, &patient.doc)?;
        match report.status {
            EligibilityStatus::Eligible => {}
            EligibilityStatus::Ineligible => {
                let blocking: Vec<_> = report
                    .findings
                    .iter()
                    .filter(|f| f.severity == eligibility::Severity::Absolute)
                    .map(|f| f.code.clone())
                    .collect();
                return Err(AppError::Refused {
                    code: "ineligible",
                    message: format!("the patient is ineligible: {}", blocking.join(", ")),
                });
            }
            EligibilityStatus::NeedsAcknowledgement => {
                return Err(AppError::Refused {
                    code: "acknowledgement_needed",
                    message: format!(
                        "a physician must first acknowledge: {}",
                        report.unacknowledged.join(", ")
                    ),
                });
            }
        }
        let plan = self.compute_plan(&patient.doc, &body)?;
        // A hard limit is refused where the plan is entered, not saved as a draft to be refused
        // at approval or start.
        plan.refuse_hard_breaches()
            .map_err(|refusal| AppError::RefusedAt {
                code: "hard_limit",
                field: format!("limits.{}", refusal.breaches[0].name.code()),
                message: refusal.to_string(),
            })?;
        let doc = plan_doc(&plan, patient_id, &body, &caller.user.id.to_string())?;
        let data = serde_json::to_value(&doc)?;
        let new = NewRecord {
            kind: PLAN,
            parent_id: Some(patient_id),
            label: &doc.protocol_id,
            data: &data,
        };
        let record = self
            .store
            .insert_record_audited(&caller.actor(), "plan.create", &new, self.now())
            .await?;
        plan_out(record)
    }

    /// A patient's plans.
    pub async fn plans(&self, caller: &Caller, patient_id: Uuid) -> Result<Vec<PlanOut>, AppError> {
        caller.require(Action::ReadClinical)?;
        self.record(PATIENT, patient_id).await?;
        let records = self.store.list_records(PLAN, Some(patient_id), None, 500).await?;
        records.into_iter().map(plan_out).collect()
    }

    /// One plan.
    pub async fn plan(&self, caller: &Caller, id: Uuid) -> Result<PlanOut, AppError> {
        caller.require(Action::ReadClinical)?;
        plan_out(self.record(PLAN, id).await?)
    }

    /// Approves a plan (physicians). It is recomputed from the stored request and the current
    /// patient record first, so the plan approved is the plan that was shown; soft-limit breaches
    /// need an override each, hard limits never pass (`DosePlan::approve`). The approved plan is
    /// locked and never changes.
    pub async fn approve_plan(
        &self,
        caller: &Caller,
        id: Uuid,
        body: ApproveIn,
    ) -> Result<PlanOut, AppError> {
        caller.require(Action::ApprovePlan)?;
        let record = self.record(PLAN, id).await?;
        if record.locked {
            return Err(AppError::Conflict(
                "the plan is already approved and cannot change".into(),
            ));
        }
        let stored: PlanDoc = crate::records::parse(PLAN, &record)?;
        if stored.library_version != self.library.version {
            return Err(AppError::Conflict(format!(
                "the plan was computed with protocol library {} but {} is now in force; compute a new plan",
                stored.library_version, self.library.version
            )));
        }
        let overrides = body
            .overrides
            .iter()
            .map(|o| {
                let limit = LimitName::ALL
                    .into_iter()
                    .find(|l| l.code() == o.limit)
                    .ok_or_else(|| {
                        AppError::field(
                            "overrides.limit",
                            o.limit.clone(),
                            LimitName::ALL.map(LimitName::code).join(", "),
                        )
                    })?;
                Ok(Override {
                    limit,
                    reason: o.reason.trim().to_string(),
                })
            })
            .collect::<Result<Vec<_>, AppError>>()?;
        let patient = self.load::<PatientDoc>(PATIENT, stored.patient_id).await?;
        let request = PlanIn {
            protocol_id: stored.protocol_id.clone(),
            concentration_mg_per_ml: stored.concentration_mg_per_ml.get(),
            planned_on: stored.planned_on.to_string(),
            last_session_on: stored.last_session_on.map(|d| d.to_string()),
            adjusted_dose_per_kg: stored.adjusted_dose_per_kg,
        };
        let plan = self.compute_plan(&patient.doc, &request)?;
        let recomputed = plan_doc(&plan, stored.patient_id, &request, &stored.created_by)?;
        if recomputed.dose_mg != stored.dose_mg
            || recomputed.pump_ml_per_h != stored.pump_ml_per_h
            || recomputed.checks != stored.checks
        {
            return Err(AppError::Conflict(
                "the patient's record changed since the plan was computed; compute a new plan".into(),
            ));
        }
        let approver = Approver {
            user_id: caller.user.id.to_string(),
            is_physician: caller.user.role == ketaflow_store::Role::Physician,
        };
        let approved = plan
            .approve(&approver, overrides, body.indication_override.as_deref())
            .map_err(|e| match e {
                ApprovalError::NotPhysician => AppError::Forbidden {
                    role: caller.user.role.as_str(),
                    action: "approve a dose plan",
                },
                ApprovalError::HardLimit { .. } => AppError::Refused {
                    code: "hard_limit",
                    message: e.to_string(),
                },
                ApprovalError::OverrideNeeded { limit, .. } => AppError::RefusedAt {
                    code: "override_needed",
                    message: e.to_string(),
                    field: format!("overrides.{limit}"),
                },
                ApprovalError::NeedlessOverride { .. } => AppError::Refused {
                    code: "needless_override",
                    message: e.to_string(),
                },
                ApprovalError::IndicationOverrideNeeded { .. } => AppError::RefusedAt {
                    code: "indication_override_needed",
                    message: e.to_string(),
                    field: "indication_override".into(),
                },
                ApprovalError::NeedlessIndicationOverride => AppError::RefusedAt {
                    code: "needless_override",
                    message: e.to_string(),
                    field: "indication_override".into(),
                },
            })?;
        let now = self.now();
        let mut doc = stored;
        doc.status = PlanStatus::Approved;
        doc.approved_by = Some(approved.approved_by().to_string());
        doc.approved_by_name = Some(caller.signature());
        doc.approved_at = Some(now);
        doc.overrides = approved
            .overrides()
            .iter()
            .map(|o| OverrideDoc {
                limit: o.limit.code().into(),
                reason: o.reason.clone(),
            })
            .collect();
        doc.indication_override = approved.indication_override().map(str::to_string);
        let data = serde_json::to_value(&doc)?;
        let change = RecordChange {
            kind: PLAN,
            id,
            expected_version: record.version,
            label: &doc.protocol_id,
            data: &data,
            lock: true,
        };
        let updated = self
            .store
            .update_record_audited(&caller.actor(), "plan.approve", &change, now)
            .await?;
        plan_out(updated)
    }
}
