//! The clinic board: every open session with its state, latest reading, open alarms, what was
//! given against the plan, and the predicted recovery.
//!
//! The recovery prediction runs the PK model over the session's recorded rates, which is the one
//! costly part of a board. It depends only on the session's record (its rates), the plan (its
//! infusing time) and the patient (covariates), and not on the clock: a running rate is projected
//! to the end of the planned infusing time, which does not move while it runs, and a paused or
//! stopped infusion is predicted from what was given (`Delivery::ended_at`). So it is kept per
//! (session, plan, patient) version and recomputed when any of them changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::policy::{Action, Caller};
use crate::records::{PATIENT, PLAN, PatientDoc, PlanDoc, SESSION};
use crate::sessions::{SessionNow, SessionOut, session_now};
use crate::vitals::{AlarmOut, FlagOut, alarm_out};
use crate::{App, AppError};

/// One chair on the board.
#[derive(Serialize, ToSchema, Debug)]
pub struct ChairOut {
    /// Session id.
    pub session_id: Uuid,
    /// Chair.
    pub chair: String,
    /// Patient.
    pub patient_name: String,
    /// State.
    pub state: &'static str,
    /// Minutes since the infusion first started (None before the start).
    pub elapsed_min: Option<f64>,
    /// Rate in force, mL/h.
    pub pump_ml_per_h: f64,
    /// Given so far, mg.
    pub given_mg: f64,
    /// The plan's dose for the session, mg.
    pub planned_dose_mg: f64,
    /// The plan's infusion time, minutes.
    pub planned_duration_min: f64,
    /// Whether the infusion is still running although the plan's dose has been given (the pump
    /// should have finished: stop the infusion, or record why it continues).
    pub planned_dose_reached: bool,
    /// The latest reading.
    #[schema(value_type = Option<Object>)]
    pub latest_vitals: Option<serde_json::Value>,
    /// When the latest reading was taken.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub latest_vitals_taken_at: Option<OffsetDateTime>,
    /// Its age, whole minutes.
    pub latest_vitals_age_min: Option<i64>,
    /// Older than the protocol's interval for the session's phase: not to be read as current.
    pub latest_vitals_stale: bool,
    /// The latest reading's values that meet an alarm condition (the clinic's alarm rules with the
    /// session's baseline, or NEWS2), whether or not the alarm is still open.
    pub latest_vitals_flags: Vec<FlagOut>,
    /// Alarms not yet resolved.
    pub active_alarms: Vec<AlarmOut>,
    /// When Ce is predicted to stay below the protocol's recovery threshold (from what was given).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub predicted_recovery_at: Option<OffsetDateTime>,
}

/// Board order: chairs with an open alarm first, highest priority first, unacknowledged before
/// acknowledged at the same priority, the longest-waiting first; then the rest by chair name.
fn board_order(a: &ChairOut, b: &ChairOut) -> std::cmp::Ordering {
    let key = |c: &ChairOut| {
        let worst = c.active_alarms.iter().filter(|x| x.is_open()).map(|x| {
            (
                x.priority(),
                x.state == crate::alarms::AlarmState::Raised,
                std::cmp::Reverse(x.raised_at),
            )
        });
        std::cmp::Reverse(worst.max())
    };
    key(a).cmp(&key(b)).then_with(|| a.chair.cmp(&b.chair))
}

/// The clinic board: every active chair.
#[derive(Serialize, ToSchema, Debug)]
pub struct BoardOut {
    /// The last event id included: subscribe to `/api/v1/board/stream` with `Last-Event-ID` set to
    /// it to receive every change after this snapshot.
    pub last_event_id: i64,
    /// Chairs: those with open alarms first (highest priority, then unacknowledged, then the
    /// longest waiting), then by chair name.
    pub chairs: Vec<ChairOut>,
}

/// Whether an infusion still runs although the plan's dose has been given (to 0.1 mg: the pump
/// stops at its volume to be infused, so a running session past it means a stop was not recorded
/// or the infusion was extended).
pub fn planned_dose_reached(s: &SessionOut, planned_dose_mg: f64) -> bool {
    s.phase.is_infusing() && s.given_mg + 0.05 >= planned_dose_mg
}

/// The record versions a cached prediction was computed from.
type PredictionKey = (i64, i64, i64);

/// Per session: the versions a prediction was made from, and the predicted recovery.
type KeptPredictions = HashMap<Uuid, (PredictionKey, Option<OffsetDateTime>)>;

/// Predicted recovery times kept per session (see the module notes).
#[derive(Debug, Clone, Default)]
pub struct RecoveryCache {
    entries: Arc<Mutex<KeptPredictions>>,
}

impl RecoveryCache {
    fn get(&self, session: Uuid, key: PredictionKey) -> Option<Option<OffsetDateTime>> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.get(&session).filter(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    fn put(&self, session: Uuid, key: PredictionKey, value: Option<OffsetDateTime>) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.insert(session, (key, value));
    }

    /// Forgets sessions no longer on the board.
    fn keep_only(&self, open: &[Uuid]) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.retain(|id, _| open.contains(id));
    }

    /// How many sessions have a kept prediction (for tests and metrics).
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl App {
    /// Every open session: state, latest vitals, open alarms, elapsed time, predicted recovery.
    pub async fn board(&self, caller: &Caller) -> Result<BoardOut, AppError> {
        caller.require(Action::ReadClinical)?;
        let last_event_id = self.store.last_event_id().await?;
        let now = self.now();
        let mut chairs = Vec::new();
        let open_alarms = self.store.list_alarms(None, true).await?;
        for record in self.store.list_in_progress(SESSION).await? {
            let session_version = record.version;
            let current = session_now(record, now)?;
            let s = current.clone().out();
            if !s.phase.is_open() {
                continue;
            }
            let first_start = s.rates.first().map(|r| r.at);
            let latest_vital = self.latest_standing_vital(s.id, &current.doc).await?;
            let schedule = self.monitoring_schedule(&s.protocol_id)?;
            let age = latest_vital
                .as_ref()
                .map(|v| ketaflow_clinic::vitals::reading_age(v.taken_at, now, &s.phase, &schedule));
            let latest_vitals_taken_at = latest_vital.as_ref().map(|v| v.taken_at);
            let latest_vitals_flags = latest_vital
                .as_ref()
                .map(|v| self.reading_flags(&current.doc, &v.data))
                .unwrap_or_default();
            let latest = latest_vital.map(|v| v.data);
            let plan = self.load::<PlanDoc>(PLAN, s.plan_id).await?;
            let predicted_recovery_at = self.board_recovery(&current, session_version, &plan, now).await;
            chairs.push(ChairOut {
                session_id: s.id,
                chair: s.chair.clone(),
                patient_name: s.patient_name.clone(),
                state: s.state,
                elapsed_min: first_start.map(|t| (now - t).as_seconds_f64() / 60.0),
                pump_ml_per_h: s.rates.last().map_or(0.0, |r| r.pump_ml_per_h.get()),
                given_mg: s.given_mg,
                planned_dose_mg: plan.doc.dose_mg.get(),
                planned_duration_min: plan.doc.duration_min.get(),
                planned_dose_reached: planned_dose_reached(&s, plan.doc.dose_mg.get()),
                latest_vitals: latest,
                latest_vitals_taken_at,
                latest_vitals_age_min: age.map(|a| a.minutes),
                latest_vitals_stale: age.is_some_and(|a| a.stale),
                latest_vitals_flags,
                active_alarms: {
                    let mut active: Vec<AlarmOut> = open_alarms
                        .iter()
                        .filter(|a| a.session_id == s.id)
                        .cloned()
                        .map(alarm_out)
                        .collect();
                    crate::alarms::sort_alarms(&mut active);
                    active
                },
                predicted_recovery_at,
            });
        }
        self.recovery_cache
            .keep_only(&chairs.iter().map(|c| c.session_id).collect::<Vec<_>>());
        chairs.sort_by(board_order);
        Ok(BoardOut {
            last_event_id,
            chairs,
        })
    }

    /// The predicted recovery for a board tile: kept per record versions, and `None` when it cannot
    /// be predicted (no start yet, or the model refuses the patient: the session page says why).
    async fn board_recovery(
        &self,
        s: &SessionNow,
        session_version: i64,
        plan: &crate::records::Loaded<PlanDoc>,
        now: OffsetDateTime,
    ) -> Option<OffsetDateTime> {
        if s.doc.rates.is_empty() {
            return None;
        }
        let patient = self.load::<PatientDoc>(PATIENT, s.doc.patient_id).await.ok()?;
        let key = (session_version, plan.record.version, patient.record.version);
        if let Some(kept) = self.recovery_cache.get(s.record.id, key) {
            return kept;
        }
        let predicted = self
            .predict_with(s.record.id, &s.doc, &plan.doc, &patient.doc, now)
            .ok()
            .flatten()
            .and_then(|(origin, p)| {
                p.ce_below_threshold_from_s
                    .map(|secs| origin + time::Duration::seconds_f64(secs))
            });
        self.recovery_cache.put(s.record.id, key, predicted);
        predicted
    }
}
