//! The infusion session as a state machine with one door: [`Session::apply`] is the only way a
//! session changes state, so an illegal transition is refused in one place, with the transitions
//! that are legal now.
//!
//! ```text
//! scheduled ─check in─► checked_in ─start─► infusing ⇄ paused
//!                                              │ stop (completed | early + reason)
//!                                              ▼
//!                                           stopped ─begin recovery─► recovering ─discharge─► discharged
//! any of scheduled, checked_in, infusing, paused, stopped, recovering ─abort (reason)─► aborted
//! ```
//!
//! Time comes in as an argument; the machine reads no clock.

use ketaflow_units::MgPerHour;
use time::OffsetDateTime;

/// Pre-infusion checks recorded at check-in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreChecks {
    /// The patient has fasted as instructed.
    pub fasting_confirmed: bool,
    /// An escort or ride home is confirmed.
    pub escort_confirmed: bool,
    /// Consent is on file for this course.
    pub consent_on_file: bool,
    /// Baseline vitals were taken.
    pub baseline_vitals_taken: bool,
    /// The pre-session questionnaire was answered, or waived with this reason.
    pub questionnaire: Questionnaire,
}

/// The pre-session questionnaire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Questionnaire {
    /// Answered.
    Answered,
    /// Waived, with the reason.
    Waived(String),
}

/// How an infusion stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopKind {
    /// The planned dose was given.
    Completed,
    /// Stopped early, with the reason.
    Early(String),
}

/// What happened to a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// Check the patient in.
    CheckIn(PreChecks),
    /// Start the approved plan's infusion.
    Start {
        /// The approved plan.
        plan_id: String,
    },
    /// Pause the infusion.
    Pause {
        /// Why.
        reason: String,
    },
    /// Resume after a pause.
    Resume,
    /// Stop the infusion.
    Stop(StopKind),
    /// Begin post-infusion monitoring.
    BeginRecovery,
    /// Discharge (the caller has checked the discharge criteria or a physician's override).
    Discharge,
    /// Abort the session.
    Abort {
        /// Why.
        reason: String,
    },
}

impl SessionEvent {
    /// Stable name.
    pub fn name(&self) -> &'static str {
        match self {
            SessionEvent::CheckIn(_) => "check_in",
            SessionEvent::Start { .. } => "start",
            SessionEvent::Pause { .. } => "pause",
            SessionEvent::Resume => "resume",
            SessionEvent::Stop(_) => "stop",
            SessionEvent::BeginRecovery => "begin_recovery",
            SessionEvent::Discharge => "discharge",
            SessionEvent::Abort { .. } => "abort",
        }
    }
}

/// Where a session is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionState {
    /// Booked.
    Scheduled,
    /// Checked in with pre-checks done.
    CheckedIn {
        /// The checks.
        checks: PreChecks,
    },
    /// Infusing.
    Infusing {
        /// The approved plan.
        plan_id: String,
        /// When the infusion (last) started or resumed.
        since: OffsetDateTime,
    },
    /// Paused.
    Paused {
        /// The approved plan.
        plan_id: String,
        /// Why.
        reason: String,
        /// Since when.
        since: OffsetDateTime,
    },
    /// Infusion stopped.
    Stopped {
        /// How.
        kind: StopKind,
        /// When.
        at: OffsetDateTime,
    },
    /// Post-infusion monitoring.
    Recovering {
        /// When the infusion ended.
        infusion_ended_at: OffsetDateTime,
    },
    /// Discharged.
    Discharged {
        /// When.
        at: OffsetDateTime,
    },
    /// Aborted.
    Aborted {
        /// Why.
        reason: String,
        /// When.
        at: OffsetDateTime,
    },
}

impl SessionState {
    /// Stable name.
    pub fn name(&self) -> &'static str {
        match self {
            SessionState::Scheduled => "scheduled",
            SessionState::CheckedIn { .. } => "checked_in",
            SessionState::Infusing { .. } => "infusing",
            SessionState::Paused { .. } => "paused",
            SessionState::Stopped { .. } => "stopped",
            SessionState::Recovering { .. } => "recovering",
            SessionState::Discharged { .. } => "discharged",
            SessionState::Aborted { .. } => "aborted",
        }
    }

    /// Open: not yet discharged or aborted. An open session holds its chair and takes records.
    pub fn is_open(&self) -> bool {
        !matches!(
            self,
            SessionState::Discharged { .. } | SessionState::Aborted { .. }
        )
    }

    /// The pump is running: only then may its rate change (a paused infusion is resumed first).
    pub fn is_infusing(&self) -> bool {
        matches!(self, SessionState::Infusing { .. })
    }

    /// An infusion has begun and not yet stopped: running or paused.
    pub fn infusion_underway(&self) -> bool {
        matches!(self, SessionState::Infusing { .. } | SessionState::Paused { .. })
    }

    /// Before any drug was given: booked or checked in.
    pub fn before_infusion(&self) -> bool {
        matches!(self, SessionState::Scheduled | SessionState::CheckedIn { .. })
    }

    /// The patient is in the chair: from check-in until discharge. Side effects are recorded then.
    pub fn patient_present(&self) -> bool {
        self.is_open() && !matches!(self, SessionState::Scheduled)
    }

    /// The infusion has ended and the patient is not yet discharged: the discharge criteria apply.
    pub fn awaiting_discharge(&self) -> bool {
        matches!(
            self,
            SessionState::Stopped { .. } | SessionState::Recovering { .. }
        )
    }

    /// The events legal in this state.
    pub fn legal_events(&self) -> &'static [&'static str] {
        match self {
            SessionState::Scheduled => &["check_in", "abort"],
            SessionState::CheckedIn { .. } => &["start", "abort"],
            SessionState::Infusing { .. } => &["pause", "stop", "abort"],
            SessionState::Paused { .. } => &["resume", "stop", "abort"],
            SessionState::Stopped { .. } => &["begin_recovery", "abort"],
            SessionState::Recovering { .. } => &["discharge", "abort"],
            SessionState::Discharged { .. } | SessionState::Aborted { .. } => &[],
        }
    }
}

/// A refused event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The event is not legal in the current state.
    #[error("cannot {event} a session that is {state}; legal now: {}", if legal.is_empty() { "nothing (the session is closed)".to_string() } else { legal.join(", ") })]
    Illegal {
        /// The state.
        state: &'static str,
        /// The event.
        event: &'static str,
        /// What is legal now.
        legal: Vec<&'static str>,
    },
    /// The event is legal but its content is not acceptable.
    #[error("{0}")]
    Refused(String),
}

/// A session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    state: SessionState,
}

impl Default for Session {
    fn default() -> Self {
        Session {
            state: SessionState::Scheduled,
        }
    }
}

fn reason_ok(what: &str, reason: &str) -> Result<String, TransitionError> {
    let r = reason.trim();
    if r.chars().count() < 3 {
        return Err(TransitionError::Refused(format!("{what} needs a reason")));
    }
    Ok(r.to_string())
}

impl Session {
    /// A new, scheduled session.
    pub fn new() -> Session {
        Session::default()
    }

    /// The current state.
    pub fn state(&self) -> &SessionState {
        &self.state
    }

    /// Applies one event at `now`: the only way a session changes state. On refusal nothing changes.
    pub fn apply(
        &mut self,
        event: SessionEvent,
        now: OffsetDateTime,
    ) -> Result<&SessionState, TransitionError> {
        use SessionEvent as E;
        use SessionState as S;
        let illegal = |state: &SessionState, event: &SessionEvent| TransitionError::Illegal {
            state: state.name(),
            event: event.name(),
            legal: state.legal_events().to_vec(),
        };
        let next = match (&self.state, event) {
            (S::Scheduled, E::CheckIn(checks)) => {
                let mut missing = Vec::new();
                if !checks.fasting_confirmed {
                    missing.push("fasting");
                }
                if !checks.escort_confirmed {
                    missing.push("escort or ride home");
                }
                if !checks.consent_on_file {
                    missing.push("consent");
                }
                if !checks.baseline_vitals_taken {
                    missing.push("baseline vitals");
                }
                // Every missing check is named at once, the questionnaire with the rest.
                if let Questionnaire::Waived(reason) = &checks.questionnaire
                    && reason_ok("waiving the pre-session questionnaire", reason).is_err()
                {
                    missing.push("the pre-session questionnaire answered, or a reason for waiving it");
                }
                if !missing.is_empty() {
                    return Err(TransitionError::Refused(format!(
                        "check-in needs: {}",
                        missing.join(", ")
                    )));
                }
                S::CheckedIn { checks }
            }
            (S::CheckedIn { .. }, E::Start { plan_id }) => S::Infusing { plan_id, since: now },
            (S::Infusing { plan_id, .. }, E::Pause { reason }) => S::Paused {
                plan_id: plan_id.clone(),
                reason: reason_ok("a pause", &reason)?,
                since: now,
            },
            (S::Paused { plan_id, .. }, E::Resume) => S::Infusing {
                plan_id: plan_id.clone(),
                since: now,
            },
            (S::Infusing { .. } | S::Paused { .. }, E::Stop(kind)) => {
                let kind = match kind {
                    StopKind::Early(reason) => StopKind::Early(reason_ok("an early stop", &reason)?),
                    StopKind::Completed => StopKind::Completed,
                };
                S::Stopped { kind, at: now }
            }
            (S::Stopped { at, .. }, E::BeginRecovery) => S::Recovering {
                infusion_ended_at: *at,
            },
            (S::Recovering { .. }, E::Discharge) => S::Discharged { at: now },
            (
                S::Scheduled
                | S::CheckedIn { .. }
                | S::Infusing { .. }
                | S::Paused { .. }
                | S::Stopped { .. }
                | S::Recovering { .. },
                E::Abort { reason },
            ) => S::Aborted {
                reason: reason_ok("aborting", &reason)?,
                at: now,
            },
            (state, event) => return Err(illegal(state, &event)),
        };
        self.state = next;
        Ok(&self.state)
    }
}

/// Where a dose plan is in its life: only an approved plan, locked against change, starts an
/// infusion (the smart-pump principle that the programmed order is the checked one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanStatus {
    /// Computed, not yet signed by a physician.
    Draft,
    /// Signed by a physician, with its limits checked and every soft-limit override reasoned.
    Approved,
}

impl PlanStatus {
    /// Stable code, as stored.
    pub fn code(self) -> &'static str {
        match self {
            PlanStatus::Draft => "draft",
            PlanStatus::Approved => "approved",
        }
    }
}

impl std::str::FromStr for PlanStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<PlanStatus, String> {
        match text {
            "draft" => Ok(PlanStatus::Draft),
            "approved" => Ok(PlanStatus::Approved),
            other => Err(format!("plan status {other:?} is not draft or approved")),
        }
    }
}

/// Refuses to start an infusion from a plan that is not approved and locked. An approved plan
/// that is not locked is a record written around the approval (never through it) and is refused
/// too.
pub fn plan_may_start(status: PlanStatus, locked: bool) -> Result<(), TransitionError> {
    match (status, locked) {
        (PlanStatus::Approved, true) => Ok(()),
        (PlanStatus::Approved, false) => Err(TransitionError::Refused(
            "the plan says approved but is not locked; only an approved, locked plan starts an infusion"
                .into(),
        )),
        (PlanStatus::Draft, _) => Err(TransitionError::Refused(
            "the plan is not approved; only an approved plan starts an infusion".into(),
        )),
    }
}

/// The rate an infusion resumes at after a pause: the last rate that was running (so a
/// physician's change before the pause is kept), or the plan's rate if none ran yet. Rates are in
/// the order they were recorded; a pause records 0.
pub fn resume_rate(recorded: &[MgPerHour], planned: MgPerHour) -> MgPerHour {
    recorded
        .iter()
        .rev()
        .copied()
        .find(|r| r.get() > 0.0)
        .unwrap_or(planned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T: OffsetDateTime = datetime!(2026-11-26 09:00 UTC);

    fn checks() -> PreChecks {
        PreChecks {
            fasting_confirmed: true,
            escort_confirmed: true,
            consent_on_file: true,
            baseline_vitals_taken: true,
            questionnaire: Questionnaire::Answered,
        }
    }

    fn events() -> Vec<SessionEvent> {
        vec![
            SessionEvent::CheckIn(checks()),
            SessionEvent::Start { plan_id: "p1".into() },
            SessionEvent::Pause {
                reason: "SBP 182".into(),
            },
            SessionEvent::Resume,
            SessionEvent::Stop(StopKind::Completed),
            SessionEvent::BeginRecovery,
            SessionEvent::Discharge,
            SessionEvent::Abort {
                reason: "patient request".into(),
            },
        ]
    }

    /// A session driven into each state.
    fn in_state(name: &str) -> Session {
        let path: &[SessionEvent] = &events()[..match name {
            "scheduled" => 0,
            "checked_in" => 1,
            "infusing" => 2,
            "paused" => 3,
            "stopped" => 5,
            "recovering" => 6,
            "discharged" => 7,
            _ => unreachable!(),
        }];
        let mut s = Session::new();
        for (i, e) in path.iter().enumerate() {
            // Skip the resume when driving to "stopped" from "paused": pause then resume then stop.
            s.apply(e.clone(), T + time::Duration::minutes(i as i64)).unwrap();
        }
        assert_eq!(s.state().name(), name);
        s
    }

    #[test]
    fn every_transition_legal_and_illegal() {
        let states = [
            "scheduled",
            "checked_in",
            "infusing",
            "paused",
            "stopped",
            "recovering",
            "discharged",
        ];
        let expected: [(&str, &str, Option<&str>); 56] = [
            ("scheduled", "check_in", Some("checked_in")),
            ("scheduled", "start", None),
            ("scheduled", "pause", None),
            ("scheduled", "resume", None),
            ("scheduled", "stop", None),
            ("scheduled", "begin_recovery", None),
            ("scheduled", "discharge", None),
            ("scheduled", "abort", Some("aborted")),
            ("checked_in", "check_in", None),
            ("checked_in", "start", Some("infusing")),
            ("checked_in", "pause", None),
            ("checked_in", "resume", None),
            ("checked_in", "stop", None),
            ("checked_in", "begin_recovery", None),
            ("checked_in", "discharge", None),
            ("checked_in", "abort", Some("aborted")),
            ("infusing", "check_in", None),
            ("infusing", "start", None),
            ("infusing", "pause", Some("paused")),
            ("infusing", "resume", None),
            ("infusing", "stop", Some("stopped")),
            ("infusing", "begin_recovery", None),
            ("infusing", "discharge", None),
            ("infusing", "abort", Some("aborted")),
            ("paused", "check_in", None),
            ("paused", "start", None),
            ("paused", "pause", None),
            ("paused", "resume", Some("infusing")),
            ("paused", "stop", Some("stopped")),
            ("paused", "begin_recovery", None),
            ("paused", "discharge", None),
            ("paused", "abort", Some("aborted")),
            ("stopped", "check_in", None),
            ("stopped", "start", None),
            ("stopped", "pause", None),
            ("stopped", "resume", None),
            ("stopped", "stop", None),
            ("stopped", "begin_recovery", Some("recovering")),
            ("stopped", "discharge", None),
            ("stopped", "abort", Some("aborted")),
            ("recovering", "check_in", None),
            ("recovering", "start", None),
            ("recovering", "pause", None),
            ("recovering", "resume", None),
            ("recovering", "stop", None),
            ("recovering", "begin_recovery", None),
            ("recovering", "discharge", Some("discharged")),
            ("recovering", "abort", Some("aborted")),
            ("discharged", "check_in", None),
            ("discharged", "start", None),
            ("discharged", "pause", None),
            ("discharged", "resume", None),
            ("discharged", "stop", None),
            ("discharged", "begin_recovery", None),
            ("discharged", "discharge", None),
            ("discharged", "abort", None),
        ];
        let mut checked = 0;
        for state in states {
            for event in events() {
                let (_, _, want) = expected
                    .iter()
                    .find(|(s, e, _)| *s == state && *e == event.name())
                    .unwrap();
                let mut session = in_state(state);
                let before = session.clone();
                match (session.apply(event.clone(), T + time::Duration::hours(2)), want) {
                    (Ok(next), Some(name)) => assert_eq!(next.name(), *name, "{state} + {}", event.name()),
                    (Err(TransitionError::Illegal { legal, .. }), None) => {
                        assert_eq!(legal, before.state().legal_events().to_vec());
                        assert_eq!(session, before, "a refused event changes nothing");
                    }
                    (got, want) => panic!("{state} + {}: got {got:?}, expected {want:?}", event.name()),
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 56);
        // Legal lists agree with the table.
        for state in states {
            let legal: Vec<&str> = expected
                .iter()
                .filter(|(s, _, w)| *s == state && w.is_some())
                .map(|(_, e, _)| *e)
                .collect();
            assert_eq!(in_state(state).state().legal_events().to_vec(), legal, "{state}");
        }
        // Aborted is closed too.
        let mut aborted = Session::new();
        aborted
            .apply(
                SessionEvent::Abort {
                    reason: "no show".into(),
                },
                T,
            )
            .unwrap();
        let err = aborted.apply(SessionEvent::CheckIn(checks()), T).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot check_in a session that is aborted; legal now: nothing (the session is closed)"
        );
    }

    /// Which states allow what, state by state; the bedside and the board decide by these.
    #[test]
    fn each_state_answers_what_it_allows() {
        // (state, open, infusing, underway, before infusion, patient present, awaiting discharge)
        let table = [
            ("scheduled", true, false, false, true, false, false),
            ("checked_in", true, false, false, true, true, false),
            ("infusing", true, true, true, false, true, false),
            ("paused", true, false, true, false, true, false),
            ("stopped", true, false, false, false, true, true),
            ("recovering", true, false, false, false, true, true),
            ("discharged", false, false, false, false, false, false),
        ];
        for (name, open, infusing, underway, before, present, awaiting) in table {
            let session = in_state(name);
            let s = session.state();
            assert_eq!(s.name(), name);
            assert_eq!(
                (
                    s.is_open(),
                    s.is_infusing(),
                    s.infusion_underway(),
                    s.before_infusion(),
                    s.patient_present(),
                    s.awaiting_discharge()
                ),
                (open, infusing, underway, before, present, awaiting),
                "{name}"
            );
        }
        let mut aborted = in_state("paused");
        aborted
            .apply(
                SessionEvent::Abort {
                    reason: "vomiting".into(),
                },
                T,
            )
            .unwrap();
        let s = aborted.state();
        assert_eq!(
            (
                s.is_open(),
                s.is_infusing(),
                s.infusion_underway(),
                s.before_infusion(),
                s.patient_present(),
                s.awaiting_discharge()
            ),
            (false, false, false, false, false, false)
        );
    }

    #[test]
    fn an_illegal_event_names_what_is_legal() {
        let mut s = in_state("infusing");
        let err = s.apply(SessionEvent::Discharge, T).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot discharge a session that is infusing; legal now: pause, stop, abort"
        );
    }

    #[test]
    fn check_in_needs_every_pre_check_and_reasons_are_required() {
        let mut s = Session::new();
        let err = s
            .apply(
                SessionEvent::CheckIn(PreChecks {
                    escort_confirmed: false,
                    consent_on_file: false,
                    ..checks()
                }),
                T,
            )
            .unwrap_err();
        assert_eq!(err.to_string(), "check-in needs: escort or ride home, consent");
        assert_eq!(s.state(), &SessionState::Scheduled);
        let waived = PreChecks {
            questionnaire: Questionnaire::Waived("".into()),
            ..checks()
        };
        assert_eq!(
            s.apply(SessionEvent::CheckIn(waived), T).unwrap_err().to_string(),
            "check-in needs: the pre-session questionnaire answered, or a reason for waiving it"
        );
        // Nothing ticked: every check is named, not only the first or the last.
        let nothing = PreChecks {
            fasting_confirmed: false,
            escort_confirmed: false,
            consent_on_file: false,
            baseline_vitals_taken: false,
            questionnaire: Questionnaire::Waived(String::new()),
        };
        assert_eq!(
            s.apply(SessionEvent::CheckIn(nothing), T)
                .unwrap_err()
                .to_string(),
            "check-in needs: fasting, escort or ride home, consent, baseline vitals, \
             the pre-session questionnaire answered, or a reason for waiving it"
        );
        let waived = PreChecks {
            questionnaire: Questionnaire::Waived("patient too anxious to complete it".into()),
            ..checks()
        };
        s.apply(SessionEvent::CheckIn(waived), T).unwrap();
        s.apply(SessionEvent::Start { plan_id: "p".into() }, T).unwrap();
        assert!(s.apply(SessionEvent::Pause { reason: " ".into() }, T).is_err());
        assert!(
            s.apply(SessionEvent::Stop(StopKind::Early("".into())), T)
                .is_err()
        );
        s.apply(
            SessionEvent::Stop(StopKind::Early("nausea and vomiting".into())),
            T + time::Duration::minutes(25),
        )
        .unwrap();
        s.apply(SessionEvent::BeginRecovery, T + time::Duration::minutes(26))
            .unwrap();
        assert_eq!(
            s.state(),
            &SessionState::Recovering {
                infusion_ended_at: T + time::Duration::minutes(25)
            }
        );
    }

    #[test]
    fn only_an_approved_locked_plan_starts() {
        assert_eq!(plan_may_start(PlanStatus::Approved, true), Ok(()));
        for (status, locked) in [
            (PlanStatus::Approved, false),
            (PlanStatus::Draft, false),
            (PlanStatus::Draft, true),
        ] {
            assert!(
                matches!(plan_may_start(status, locked), Err(TransitionError::Refused(_))),
                "{status:?} locked={locked}"
            );
        }
        assert_eq!("approved".parse(), Ok(PlanStatus::Approved));
        assert_eq!("draft".parse(), Ok(PlanStatus::Draft));
        assert!("Approved".parse::<PlanStatus>().is_err());
    }

    #[test]
    fn resume_takes_the_last_running_rate_or_the_plans() {
        let mg = |x: f64| MgPerHour::new(x).unwrap();
        // Started at 35, raised to 42, paused: resume at 42.
        assert_eq!(resume_rate(&[mg(35.0), mg(42.0), mg(0.0)], mg(35.0)), mg(42.0));
        // Paused twice in a row after 20: still 20.
        assert_eq!(resume_rate(&[mg(20.0), mg(0.0), mg(0.0)], mg(35.0)), mg(20.0));
        // Nothing ran yet: the plan's rate.
        assert_eq!(resume_rate(&[], mg(35.0)), mg(35.0));
        assert_eq!(resume_rate(&[mg(0.0)], mg(35.0)), mg(35.0));
    }
}
