//! Booking sessions, listing them, issuing a monitor's device token, and the session's reads after
//! the infusion: its re-prediction from the rates given and the discharge criteria.

use ketaflow_store::{NewAuditEntry, NewDeviceToken, NewEvent, NewRecord, hash_token};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::plans::prediction_out;
use crate::policy::{Action, Caller};
use crate::records::{BaselineDoc, BaselineOrigin, PATIENT, PLAN, PredictionOut, SESSION, SessionDoc};
use crate::records::{PatientDoc, PlanDoc};
use crate::sessions::{DischargeOut, SessionOut, session_now, session_out};
use crate::vitals::rfc3339;
use crate::{App, AppError};

/// Device tokens start with this, so neither kind of token can be mistaken for the other.
pub const DEVICE_TOKEN_PREFIX: &str = "dev_";

fn parse_time(field: &str, text: &str) -> Result<OffsetDateTime, AppError> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| AppError::field(field, text, "an RFC 3339 date-time, e.g. 2026-11-27T09:30:00Z"))
}

/// A session to book.
#[derive(Debug, Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct SessionIn {
    /// The dose plan (the patient's; it must be approved before the infusion can start).
    pub plan_id: Uuid,
    /// Chair or bay, 1–40 characters.
    pub chair: String,
    /// When (RFC 3339).
    pub scheduled_for: String,
}

/// A monitor to connect.
#[derive(Debug, Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct DeviceTokenIn {
    /// A name for the monitor (1–80 characters), e.g. its serial number.
    pub label: String,
}

/// A new device token: shown once.
#[derive(Serialize, ToSchema, Debug)]
pub struct DeviceTokenOut {
    /// Send as `Authorization: Bearer <token>` to `POST /api/v1/sessions/{id}/vitals`. It works
    /// for this session only and ends when the session closes (12 h at most).
    pub token: String,
    /// When it expires.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

/// The session's prediction as the API returns it.
#[derive(Serialize, ToSchema, Debug)]
pub struct SessionPredictionOut {
    /// The first start of the infusion: time 0 of the curves.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub origin: OffsetDateTime,
    /// When Ce stays below the recovery threshold.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ce_below_threshold_at: Option<OffsetDateTime>,
    /// The curves.
    pub prediction: PredictionOut,
}

impl App {
    /// Books a session for a patient with one of their plans (it must be approved before the
    /// infusion can start; booking a draft is allowed).
    pub async fn book_session(
        &self,
        caller: &Caller,
        patient_id: Uuid,
        body: SessionIn,
    ) -> Result<SessionOut, AppError> {
        let state = self;
        caller.require(Action::RunSession)?;
        let chair = body.chair.trim();
        if chair.is_empty() || chair.chars().count() > 40 {
            return Err(AppError::field("chair", chair, "1–40 characters"));
        }
        let scheduled_for = parse_time("scheduled_for", &body.scheduled_for)?;
        let patient = state.load::<PatientDoc>(PATIENT, patient_id).await?;
        let plan = state.load::<PlanDoc>(PLAN, body.plan_id).await?;
        if plan.doc.patient_id != patient_id {
            return Err(AppError::field(
                "plan_id",
                body.plan_id.to_string(),
                "a plan of this patient",
            ));
        }
        let doc = SessionDoc {
            patient_id,
            patient_name: patient.doc.display_name.clone(),
            plan_id: body.plan_id,
            protocol_id: plan.doc.protocol_id.clone(),
            chair: chair.to_string(),
            scheduled_for,
            created_by: caller.user.id.to_string(),
            baseline: patient.doc.baseline_bp.as_ref().map(|b| BaselineDoc {
                systolic_mmhg: b.systolic_mmhg,
                diastolic_mmhg: b.diastolic_mmhg,
                heart_rate_per_min: None,
                origin: BaselineOrigin::Intake,
            }),
            transitions: vec![],
            rates: vec![],
            side_effects: vec![],
            assessments: vec![],
            artefacts: vec![],
        };
        let now = state.now();
        let data = serde_json::to_value(&doc)?;
        let label = format!("{} {}", doc.chair, doc.patient_name);
        let mut tx = state.store.begin().await?;
        let new = NewRecord {
            kind: SESSION,
            parent_id: Some(patient_id),
            label: &label,
            data: &data,
        };
        let record = tx
            .insert_record_audited(&caller.actor(), "session.create", &new, now)
            .await?;
        tx.set_in_progress(SESSION, record.id, true).await?;
        let event = tx
            .append_event(&NewEvent {
                session_id: record.id,
                kind: "session.created",
                at: now,
                data: &serde_json::json!({ "chair": doc.chair, "state": "scheduled" }),
            })
            .await?;
        tx.commit().await?;
        state.live.publish([event]);
        session_out(record, now)
    }
}

impl App {
    /// Sessions, newest first: the open ones (all of them) when `active`, else a page of every
    /// session; only `patient_id`'s when given.
    pub async fn sessions(
        &self,
        caller: &Caller,
        active: bool,
        patient_id: Option<Uuid>,
    ) -> Result<Vec<SessionOut>, AppError> {
        let state = self;
        caller.require(Action::ReadClinical)?;
        let now = state.now();
        // Open sessions come from the in-progress index, all of them; closed ones are paged.
        let records = if active {
            let mut open = state.store.list_in_progress(SESSION).await?;
            open.retain(|r| patient_id.is_none() || r.parent_id == patient_id);
            open.reverse();
            open
        } else {
            state
                .store
                .list_records(SESSION, patient_id, None, ketaflow_store::MAX_RECORD_PAGE)
                .await?
        };
        let mut out = Vec::new();
        for r in records {
            let s = session_out(r, now)?;
            if active && !s.phase.is_open() {
                continue;
            }
            out.push(s);
        }
        Ok(out)
    }
}

impl App {
    /// Issues a token a monitor uses to stream this session's vital signs (and nothing else).
    pub async fn issue_device_token(
        &self,
        caller: &Caller,
        id: Uuid,
        body: DeviceTokenIn,
    ) -> Result<DeviceTokenOut, AppError> {
        let state = self;
        caller.require(Action::RunSession)?;
        let label = body.label.trim();
        if label.is_empty() || label.chars().count() > 80 {
            return Err(AppError::field("label", label, "1–80 characters"));
        }
        let record = state.record(SESSION, id).await?;
        let session = session_out(record, state.now())?;
        if !session.phase.is_open() {
            return Err(AppError::Conflict(format!("the session is {}", session.state)));
        }
        let raw = format!("{DEVICE_TOKEN_PREFIX}{}", crate::new_token());
        let now = state.now();
        // A clinic day: a monitor token never outlives a shift, and ends earlier when the session closes.
        let expires_at = now + time::Duration::hours(12);
        let mut tx = state.store.begin().await?;
        tx.insert_device_token(&NewDeviceToken {
            token_hash: hash_token(&raw),
            session_id: id,
            created_by: caller.user.id,
            label: Some(label.to_string()),
            created_at: now,
            expires_at,
        })
        .await?;
        tx.append_audit(
            &NewAuditEntry::new(
                now,
                caller.actor(),
                "session.device_token",
                SESSION,
                id.to_string(),
            )
            .after(serde_json::json!({ "label": label, "expires_at": rfc3339(expires_at) })),
        )
        .await?;
        tx.commit().await?;
        Ok(DeviceTokenOut {
            token: raw,
            expires_at,
        })
    }
}

impl App {
    /// Cp and Ce re-predicted from the rates actually given (pauses and rate changes included).
    pub async fn session_prediction(
        &self,
        caller: &Caller,
        id: Uuid,
    ) -> Result<SessionPredictionOut, AppError> {
        caller.require(Action::ReadClinical)?;
        let now = self.now();
        let doc = session_now(self.record(SESSION, id).await?, now)?.doc;
        self.prediction_of(id, &doc, now).await?.ok_or_else(|| {
            AppError::Conflict("the infusion has not started; the plan holds the prediction".into())
        })
    }

    /// The prediction of a loaded session, or `None` before its infusion has started.
    pub async fn prediction_of(
        &self,
        id: Uuid,
        doc: &SessionDoc,
        now: OffsetDateTime,
    ) -> Result<Option<SessionPredictionOut>, AppError> {
        Ok(self
            .predict_session(id, doc, now)
            .await?
            .map(|(origin, p)| SessionPredictionOut {
                origin,
                ce_below_threshold_at: p
                    .ce_below_threshold_from_s
                    .map(|s| origin + time::Duration::seconds_f64(s)),
                prediction: prediction_out(&p),
            }))
    }

    /// Which discharge criteria are met, which are not, and the PK-predicted earliest time.
    pub async fn discharge(&self, caller: &Caller, id: Uuid) -> Result<DischargeOut, AppError> {
        caller.require(Action::ReadClinical)?;
        let now = self.now();
        let doc = session_now(self.record(SESSION, id).await?, now)?.doc;
        Ok(self.assess_discharge(id, &doc, now).await?.0)
    }
}
