//! The session screen's read model: everything the bedside screen and its live fragment show, in
//! a fixed number of store operations and a bounded size, however long the session has run. The
//! last readings come in full; the rest of the session's history comes summarised into a bounded
//! number of groups that keep each vital sign's lowest and highest value, so a short desaturation
//! in hour three is still on the chart.

use ketaflow_store::VitalsBucket;
use uuid::Uuid;

use crate::alarms::VitalOut;
use crate::booking::SessionPredictionOut;
use crate::policy::{Action, Caller};
use crate::records::{PLAN, PlanDoc, SESSION};
use crate::sessions::{DischargeOut, SessionOut, session_now};
use crate::vitals::{AlarmOut, alarm_out};
use crate::{App, AppError};

/// How many of the latest readings the screen lists in full (a nurse's glance back: an hour of
/// 5-minute readings; a clinic setting).
pub const RECENT_READINGS: u32 = 12;

/// At most this many points in the vital-sign history chart: two minutes apart in a 4-hour session,
/// about one per 6 px of the chart (a clinic setting).
pub const HISTORY_POINTS: u32 = 120;

/// The vital signs charted, as named in a stored reading.
pub const CHARTED_VITALS: [&str; 5] = [
    "systolic_mmhg",
    "diastolic_mmhg",
    "heart_rate_per_min",
    "spo2_percent",
    "respiratory_rate_per_min",
];

/// What the session screen shows.
#[derive(Debug)]
pub struct SessionScreen {
    /// The session.
    pub session: SessionOut,
    /// Its plan.
    pub plan: PlanDoc,
    /// Alarms not yet resolved, highest priority first, then oldest first.
    pub open_alarms: Vec<AlarmOut>,
    /// The latest readings, newest first, at most [`RECENT_READINGS`].
    pub recent: Vec<VitalOut>,
    /// Each recent reading's age now, and whether it is older than the protocol's interval for
    /// the session's phase (stale).
    pub recent_ages: Vec<ketaflow_clinic::vitals::ReadingAge>,
    /// Each recent reading's values that meet an alarm condition ([`App::reading_flags`]).
    pub recent_flags: Vec<Vec<crate::vitals::FlagOut>>,
    /// The protocol's monitoring schedule.
    pub monitoring: ketaflow_clinic::vitals::MonitoringSchedule,
    /// The whole session's readings in at most [`HISTORY_POINTS`] groups, in time order; per
    /// group the minimum, mean and maximum of each of [`CHARTED_VITALS`], in that order.
    pub history: Vec<VitalsBucket>,
    /// The discharge criteria, once the infusion has stopped.
    pub discharge: Option<DischargeOut>,
    /// Cp and Ce from what was given, when asked for and the infusion has started.
    pub prediction: Option<SessionPredictionOut>,
}

impl App {
    /// The session screen in one read: the session, its plan, its open alarms, its latest
    /// readings, a bounded summary of the rest, the discharge criteria after the infusion, and
    /// (with `with_prediction`, for the full screen rather than its live refresh) the prediction.
    pub async fn session_screen(
        &self,
        caller: &Caller,
        id: Uuid,
        with_prediction: bool,
    ) -> Result<SessionScreen, AppError> {
        caller.require(Action::ReadClinical)?;
        let now = self.now();
        let current = session_now(self.record(SESSION, id).await?, now)?;
        let plan = self.load::<PlanDoc>(PLAN, current.doc.plan_id).await?.doc;
        let mut open_alarms: Vec<AlarmOut> = self
            .store
            .list_alarms(Some(id), true)
            .await?
            .into_iter()
            .map(alarm_out)
            .collect();
        crate::alarms::sort_alarms(&mut open_alarms);
        let stored = self.store.recent_vitals(id, RECENT_READINGS).await?;
        let schedule = self.monitoring_schedule(&current.doc.protocol_id)?;
        let recent_ages = stored
            .iter()
            .map(|v| ketaflow_clinic::vitals::reading_age(v.taken_at, now, &current.phase, &schedule))
            .collect();
        // An artefact is shown as such and marks nothing.
        let recent_flags = stored
            .iter()
            .map(|v| match current.doc.artefact(v.id) {
                Some(_) => Vec::new(),
                None => self.reading_flags(&current.doc, &v.data),
            })
            .collect();
        let recent = stored
            .into_iter()
            .map(|v| crate::alarms::with_artefact(&current.doc, v))
            .collect();
        let history = self
            .store
            .vitals_trend(id, HISTORY_POINTS, &CHARTED_VITALS)
            .await?;
        let discharge = if current.phase.awaiting_discharge() {
            Some(self.assess_discharge(id, &current.doc, now).await?.0)
        } else {
            None
        };
        let prediction = if with_prediction {
            self.prediction_of(id, &current.doc, now).await?
        } else {
            None
        };
        Ok(SessionScreen {
            session: current.out(),
            plan,
            open_alarms,
            recent,
            recent_ages,
            recent_flags,
            monitoring: schedule,
            history,
            discharge,
            prediction,
        })
    }
}
