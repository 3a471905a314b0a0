//! At the bedside during and after the infusion: rate changes checked against the protocol's
//! limits exactly as the plan was (soft limits need a physician's reasoned override, hard limits
//! never pass), side effects with the action taken, and post-infusion assessments (Aldrete, MOAA/S,
//! escort). Each write is the session's, with its audit entry and live event.

use ketaflow_clinic::delivery::{check_rate_change, has_hard_breach, soft_breaches};
use ketaflow_clinic::news2::Aldrete;
use ketaflow_clinic::plan::LimitName;
use ketaflow_clinic::side_effects::{
    ActionTaken, Cadss6, Moaas, Severity, SideEffect, SideEffectEntry, SideEffectKind,
};
use ketaflow_units::{Kilograms, MgPerHour, MgPerMl, Milligrams, Minutes};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::plans::check_out;
use crate::policy::{Action, Caller};
use crate::records::{
    AldreteDoc, AssessmentDoc, CheckOut, OverrideDoc, PLAN, PlanDoc, RateChangeKind, RateDoc, SESSION,
    SessionDoc, SideEffectDoc,
};
use crate::sessions::{SessionChange, SessionOut, session_now, session_out};
use crate::{App, AppError};

/// A rate change. Give exactly one of the two rates.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateIn {
    /// New rate per kg of dosing weight, mg/kg/h.
    #[serde(default)]
    pub rate_mg_per_kg_per_h: Option<f64>,
    /// New pump rate, mL/h (at the plan's concentration).
    #[serde(default)]
    pub pump_ml_per_h: Option<f64>,
    /// Why (3–1000 characters).
    pub reason: String,
    /// Physicians: one reason per soft limit the new rate breaches.
    #[serde(default)]
    pub overrides: Vec<OverrideDoc>,
}

/// The result of a rate change: the session, the limits evaluated and the new prediction.
#[derive(Serialize, ToSchema, Debug)]
pub struct RateOut {
    /// The session after the change.
    pub session: SessionOut,
    /// Every limit evaluated for the new rate.
    pub checks: Vec<CheckOut>,
    /// When Ce is now predicted to stay below the recovery threshold.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub predicted_recovery_at: Option<OffsetDateTime>,
}

/// A proposed rate, evaluated against the protocol's limits (nothing is written).
struct EvaluatedRate {
    record: ketaflow_store::Record,
    doc: SessionDoc,
    rate: MgPerHour,
    dosing_weight: Kilograms,
    concentration: MgPerMl,
    checks: Vec<ketaflow_clinic::plan::LimitCheck>,
}

impl App {
    async fn evaluate_rate(
        &self,
        id: Uuid,
        body: &RateIn,
        now: OffsetDateTime,
    ) -> Result<EvaluatedRate, AppError> {
        let record = self.record(SESSION, id).await?;
        let current = session_now(record.clone(), now)?;
        if !current.phase.is_infusing() {
            return Err(AppError::Conflict(format!(
                "the rate can change only while infusing; the session is {} (resume a paused infusion first)",
                current.state
            )));
        }
        let doc = current.doc;
        let plan = self.load::<PlanDoc>(PLAN, doc.plan_id).await?;
        let protocol = self.library.get(&doc.protocol_id).ok_or_else(|| {
            AppError::Internal(format!("protocol {} is not in the library", doc.protocol_id))
        })?;
        let dosing_weight = plan.doc.dosing_weight_kg;
        let concentration = plan.doc.concentration_mg_per_ml;
        let rate_mg_per_h = match (body.rate_mg_per_kg_per_h, body.pump_ml_per_h) {
            (Some(per_kg), None) if per_kg.is_finite() && per_kg > 0.0 => per_kg * dosing_weight.get(),
            (None, Some(ml)) if ml.is_finite() && ml > 0.0 => ml * concentration.get(),
            (Some(v), None) => {
                return Err(AppError::field(
                    "rate_mg_per_kg_per_h",
                    v,
                    "a rate above 0 mg/kg/h (pause to stop the pump)",
                ));
            }
            (None, Some(v)) => {
                return Err(AppError::field(
                    "pump_ml_per_h",
                    v,
                    "a pump rate above 0 mL/h (pause to stop the pump)",
                ));
            }
            _ => {
                return Err(AppError::BadInput(
                    "give exactly one of rate_mg_per_kg_per_h and pump_ml_per_h".into(),
                ));
            }
        };
        let proposed = MgPerHour::new(rate_mg_per_h)
            .map_err(|e| AppError::field("rate", rate_mg_per_h, e.to_string()))?;
        let given = Milligrams::new(current.given_mg).map_err(|e| AppError::Internal(e.to_string()))?;
        let remaining = Minutes::new((plan.doc.duration_min.get() - current.infusing_min).max(0.0))
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let checks = check_rate_change(protocol, dosing_weight, concentration, proposed, given, remaining);
        Ok(EvaluatedRate {
            record,
            doc,
            rate: proposed,
            dosing_weight,
            concentration,
            checks,
        })
    }
}

impl App {
    /// The limits a proposed rate would be checked against, with their status (for a form that asks a
    /// physician for a reason per breached soft limit before submitting). Nothing is written.
    pub async fn preview_rate(&self, id: Uuid, body: &RateIn) -> Result<Vec<CheckOut>, AppError> {
        let evaluated = self.evaluate_rate(id, body, self.now()).await?;
        Ok(evaluated.checks.iter().map(check_out).collect())
    }
}

impl App {
    /// Change the rate of a running infusion. The new rate is checked against the protocol's limits
    /// exactly as the plan was (rate, pump rate, and the projected session dose if it runs for the rest
    /// of the planned time): beyond a hard limit it is refused; beyond a soft limit only a physician may
    /// set it, with a reason per limit. Cp/Ce are re-predicted from what was actually given.
    pub async fn change_rate(&self, caller: &Caller, id: Uuid, body: RateIn) -> Result<RateOut, AppError> {
        caller.require(Action::RunSession)?;
        let reason = body.reason.trim();
        if !(3..=1000).contains(&reason.chars().count()) {
            return Err(AppError::field("reason", reason, "a reason of 3–1000 characters"));
        }
        let now = self.now();
        let EvaluatedRate {
            record,
            mut doc,
            rate,
            dosing_weight,
            concentration,
            checks,
        } = self.evaluate_rate(id, &body, now).await?;
        if has_hard_breach(&checks) {
            let breached: Vec<String> = checks
                .iter()
                .filter(|c| c.status == ketaflow_clinic::plan::LimitStatus::HardBreach)
                .map(|c| {
                    format!(
                        "{} {:.3} {} beyond hard limit {}",
                        c.name.code(),
                        c.value,
                        c.name.unit(),
                        c.hard
                    )
                })
                .collect();
            return Err(AppError::Refused {
                code: "hard_limit",
                message: format!(
                    "the new rate breaches a hard limit and cannot be set: {}",
                    breached.join("; ")
                ),
            });
        }
        let soft: Vec<LimitName> = soft_breaches(&checks);
        let mut overrides = Vec::new();
        if !soft.is_empty() {
            caller.require(Action::OverrideSession)?;
            for limit in &soft {
                let o = body.overrides.iter().find(|o| o.limit == limit.code()).ok_or_else(|| AppError::RefusedAt {
                    code: "override_needed",
                    field: format!("overrides.{}", limit.code()),
                    message: format!(
                        "the new rate breaches the soft limit {}; a physician's override with a reason is needed for each of: {}",
                        limit.code(),
                        soft.iter().map(|l| l.code()).collect::<Vec<_>>().join(", ")
                    ),
                })?;
                if o.reason.trim().chars().count() < 3 {
                    return Err(AppError::field(
                        "overrides.reason",
                        o.reason.clone(),
                        "a reason of at least 3 characters",
                    ));
                }
                overrides.push(OverrideDoc {
                    limit: o.limit.clone(),
                    reason: o.reason.trim().to_string(),
                });
            }
        }
        if let Some(extra) = body
            .overrides
            .iter()
            .find(|o| !soft.iter().any(|l| l.code() == o.limit))
        {
            return Err(AppError::Refused {
                code: "needless_override",
                message: format!(
                    "{} is not breached by the new rate; remove its override",
                    extra.limit
                ),
            });
        }
        let rate = RateDoc {
            reason: Some(reason.to_string()),
            overrides,
            ..RateDoc::delivering(
                RateChangeKind::Change,
                now,
                rate,
                concentration,
                dosing_weight,
                caller.user.id.to_string(),
            )
        };
        doc.rates.push(rate.clone());
        let predicted = self
            .predict_session(id, &doc, now)
            .await?
            .and_then(|(origin, p)| {
                p.ce_below_threshold_from_s
                    .map(|s| origin + time::Duration::seconds_f64(s))
            });
        let checks_out: Vec<CheckOut> = checks.iter().map(check_out).collect();
        let event = serde_json::json!({
            "rate_mg_per_h": rate.rate_mg_per_h, "pump_ml_per_h": rate.pump_ml_per_h,
            "rate_mg_per_kg_per_h": rate.rate_mg_per_kg_per_h, "reason": rate.reason, "by": rate.by,
            "overrides": rate.overrides, "predicted_recovery_at": predicted.map(crate::vitals::rfc3339),
        });
        let updated = self
            .save_session(SessionChange {
                actor: &caller.actor(),
                action: "session.rate_change",
                record: &record,
                doc: &doc,
                event_kind: "session.rate",
                event_data: event,
                now,
            })
            .await?;
        Ok(RateOut {
            session: session_out(updated, now)?,
            checks: checks_out,
            predicted_recovery_at: predicted,
        })
    }
}

/// A side effect to record.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SideEffectIn {
    /// See `SideEffectDoc.kind`.
    pub kind: String,
    /// mild, moderate, severe.
    pub severity: String,
    /// When it began (RFC 3339; default now).
    #[serde(default)]
    pub onset: Option<String>,
    /// CADSS-6 items, dissociation only.
    #[serde(default)]
    pub cadss6: Option<[u8; 6]>,
    /// MOAA/S, sedation only.
    #[serde(default)]
    pub moaas: Option<u8>,
    /// See `SideEffectDoc.action`.
    pub action: String,
    /// Note (≤ 2000 characters).
    #[serde(default)]
    pub note: String,
}

impl App {
    /// Record a side effect during or after the infusion, with its severity and the action taken.
    pub async fn add_side_effect(
        &self,
        caller: &Caller,
        id: Uuid,
        body: SideEffectIn,
    ) -> Result<SessionOut, AppError> {
        caller.require(Action::RunSession)?;
        let now = self.now();
        let kind: SideEffectKind =
            body.kind
                .parse()
                .map_err(|e: ketaflow_clinic::side_effects::CodeError| {
                    AppError::field("kind", body.kind.clone(), e.to_string())
                })?;
        let severity: Severity = body
            .severity
            .parse()
            .map_err(|_| AppError::field("severity", body.severity.clone(), "mild, moderate, severe"))?;
        let action: ActionTaken =
            body.action
                .parse()
                .map_err(|e: ketaflow_clinic::side_effects::CodeError| {
                    AppError::field("action", body.action.clone(), e.to_string())
                })?;
        let onset = match &body.onset {
            Some(t) => OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map_err(|_| AppError::field("onset", t.clone(), "an RFC 3339 date-time"))?,
            None => now,
        };
        if onset > now + time::Duration::minutes(1) {
            return Err(AppError::field(
                "onset",
                body.onset.clone().unwrap_or_default(),
                "a time no later than now",
            ));
        }
        let cadss6 = body
            .cadss6
            .map(|items| {
                Cadss6::new(items).map_err(|e| AppError::field("cadss6", items.to_vec(), e.to_string()))
            })
            .transpose()?;
        let moaas = body
            .moaas
            .map(|m| Moaas::new(m).map_err(|e| AppError::field("moaas", m, e.to_string())))
            .transpose()?;
        let effect = SideEffect::new(SideEffectEntry {
            kind,
            severity,
            onset,
            cadss6,
            moaas,
            action,
            note: body.note.clone(),
        })
        .map_err(|e| AppError::Refused {
            code: "side_effect_refused",
            message: e.to_string(),
        })?;
        let record = self.record(SESSION, id).await?;
        let current = session_now(record.clone(), now)?;
        if !current.phase.patient_present() {
            return Err(AppError::Conflict(format!(
                "side effects are recorded from check-in to discharge; the session is {}",
                current.state
            )));
        }
        let mut doc = current.doc;
        let e = effect.entry();
        let out = SideEffectDoc {
            kind: e.kind.clone(),
            severity: e.severity,
            onset: e.onset,
            cadss6: e.cadss6.map(|c| c.items()),
            cadss6_total: e.cadss6.map(|c| c.total()),
            moaas: e.moaas.map(|m| m.get()),
            action: e.action.clone(),
            note: e.note.clone(),
            recorded_by: caller.user.id.to_string(),
            recorded_at: now,
        };
        doc.side_effects.push(out.clone());
        let data = serde_json::to_value(&out).map_err(|e| AppError::Internal(e.to_string()))?;
        let updated = self
            .save_session(SessionChange {
                actor: &caller.actor(),
                action: "session.side_effect",
                record: &record,
                doc: &doc,
                event_kind: "side_effect",
                event_data: data,
                now,
            })
            .await?;
        session_out(updated, now)
    }
}

/// A bedside assessment. At least one field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssessmentIn {
    /// Modified Aldrete items (0–2 each).
    #[serde(default)]
    pub aldrete: Option<AldreteDoc>,
    /// MOAA/S 0–5.
    #[serde(default)]
    pub moaas: Option<u8>,
    /// The escort is present.
    #[serde(default)]
    pub escort_present: Option<bool>,
}

impl App {
    /// Record a post-infusion assessment (modified Aldrete, MOAA/S, escort present).
    pub async fn add_assessment(
        &self,
        caller: &Caller,
        id: Uuid,
        body: AssessmentIn,
    ) -> Result<SessionOut, AppError> {
        caller.require(Action::RunSession)?;
        if body.aldrete.is_none() && body.moaas.is_none() && body.escort_present.is_none() {
            return Err(AppError::BadInput(
                "give at least one of aldrete, moaas, escort_present".into(),
            ));
        }
        let total = match &body.aldrete {
            Some(a) => {
                let score = Aldrete {
                    activity: a.activity,
                    respiration: a.respiration,
                    circulation: a.circulation,
                    consciousness: a.consciousness,
                    spo2: a.spo2,
                };
                Some(score.total().ok_or_else(|| {
                    AppError::field(
                        "aldrete",
                        serde_json::to_value(a).unwrap_or_default(),
                        "each item 0–2 (modified Aldrete, Aldrete 1995)",
                    )
                })?)
            }
            None => None,
        };
        if let Some(m) = body.moaas {
            Moaas::new(m).map_err(|e| AppError::field("moaas", m, e.to_string()))?;
        }
        let now = self.now();
        let record = self.record(SESSION, id).await?;
        let current = session_now(record.clone(), now)?;
        if !current.phase.is_open() {
            return Err(AppError::Conflict(format!("the session is {}", current.state)));
        }
        let mut doc = current.doc;
        let a = AssessmentDoc {
            at: now,
            by: caller.user.id.to_string(),
            aldrete: body.aldrete,
            aldrete_total: total,
            moaas: body.moaas,
            escort_present: body.escort_present,
        };
        doc.assessments.push(a.clone());
        let data = serde_json::to_value(&a).map_err(|e| AppError::Internal(e.to_string()))?;
        let updated = self
            .save_session(SessionChange {
                actor: &caller.actor(),
                action: "session.assessment",
                record: &record,
                doc: &doc,
                event_kind: "assessment",
                event_data: data,
                now,
            })
            .await?;
        session_out(updated, now)
    }
}
