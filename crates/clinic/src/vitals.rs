//! Vital signs during and after an infusion: plausibility checks that refuse impossible readings,
//! and alarm rules that turn a reading into alarms.
//!
//! No consensus numeric stop or alarm thresholds exist for subanaesthetic ketamine
//! (`shared/domain/clinical.md` §3.2), so every threshold here is a **clinic setting** with a
//! default, except the rise from baseline (Spravato label: ≥ 40 mmHg systolic and/or ≥ 25 mmHg
//! diastolic) and NEWS2 (RCP 2017). An alarm can recommend a pause; it never changes the infusion.

use crate::news2::{Consciousness, News2Risk, Observations, SpO2Scale, news2};
use crate::patient::BloodPressure;

/// One set of readings; any may be missing (a monitor may send only some).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct VitalSigns {
    /// Systolic BP, mmHg.
    pub systolic_mmhg: Option<f64>,
    /// Diastolic BP, mmHg.
    pub diastolic_mmhg: Option<f64>,
    /// Heart rate, beats/min.
    pub heart_rate_per_min: Option<f64>,
    /// SpO2, %.
    pub spo2_percent: Option<f64>,
    /// Respiratory rate, breaths/min.
    pub respiratory_rate_per_min: Option<f64>,
    /// Temperature, °C.
    pub temperature_c: Option<f64>,
    /// ACVPU.
    pub consciousness: Option<Consciousness>,
    /// MOAA/S, 0–5 (Chernik 1990).
    pub moaas: Option<u8>,
    /// On supplemental oxygen.
    pub on_oxygen: Option<bool>,
}

/// A reading that cannot be real.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{field} {value} is not a plausible reading: allowed {allowed}")]
pub struct ImplausibleReading {
    /// The field.
    pub field: &'static str,
    /// The value.
    pub value: f64,
    /// The plausible range.
    pub allowed: String,
}

/// Data-entry plausibility ranges (not clinical thresholds; a clinic setting): values outside are
/// measurement or typing errors, e.g. SpO2 140 or a heart rate of 0 with a pulse present.
const PLAUSIBLE: [(&str, f64, f64); 6] = [
    ("systolic_mmhg", 40.0, 300.0),
    ("diastolic_mmhg", 20.0, 200.0),
    ("heart_rate_per_min", 20.0, 250.0),
    ("spo2_percent", 50.0, 100.0),
    // 0 is apnoea: possible, and exactly what must alarm.
    ("respiratory_rate_per_min", 0.0, 80.0),
    ("temperature_c", 30.0, 44.0),
];

impl VitalSigns {
    /// Whether the set measures anything: a vital sign, the level of consciousness or MOAA/S.
    /// (Whether the patient is on oxygen qualifies SpO2; on its own it measures nothing.)
    pub fn has_measurement(&self) -> bool {
        [
            self.systolic_mmhg,
            self.diastolic_mmhg,
            self.heart_rate_per_min,
            self.spo2_percent,
            self.respiratory_rate_per_min,
            self.temperature_c,
        ]
        .iter()
        .any(Option::is_some)
            || self.consciousness.is_some()
            || self.moaas.is_some()
    }

    /// Refuses impossible readings; says which and what is allowed.
    pub fn check(&self) -> Result<(), ImplausibleReading> {
        let values = [
            self.systolic_mmhg,
            self.diastolic_mmhg,
            self.heart_rate_per_min,
            self.spo2_percent,
            self.respiratory_rate_per_min,
            self.temperature_c,
        ];
        for ((field, min, max), value) in PLAUSIBLE.iter().zip(values) {
            if let Some(v) = value
                && !(v.is_finite() && (*min..=*max).contains(&v))
            {
                return Err(ImplausibleReading {
                    field,
                    value: v,
                    allowed: format!("{min}–{max}"),
                });
            }
        }
        if let (Some(s), Some(d)) = (self.systolic_mmhg, self.diastolic_mmhg)
            && d >= s
        {
            return Err(ImplausibleReading {
                field: "diastolic_mmhg",
                value: d,
                allowed: format!("below the systolic {s}"),
            });
        }
        if let Some(m) = self.moaas
            && m > 5
        {
            return Err(ImplausibleReading {
                field: "moaas",
                value: f64::from(m),
                allowed: "0–5".into(),
            });
        }
        Ok(())
    }

    /// The complete set NEWS2 needs, if every parameter is present (SpO2 scale 1).
    pub fn observations(&self) -> Option<Observations> {
        Some(Observations {
            respiration_rate_per_min: self.respiratory_rate_per_min?,
            spo2_percent: self.spo2_percent?,
            spo2_scale: SpO2Scale::Scale1,
            on_oxygen: self.on_oxygen?,
            systolic_mmhg: self.systolic_mmhg?,
            pulse_per_min: self.heart_rate_per_min?,
            consciousness: self.consciousness?,
            temperature_c: self.temperature_c?,
        })
    }
}

/// A threshold with its origin.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Threshold {
    /// The value.
    pub value: f64,
    /// Source, or the reason it is a clinic setting.
    pub source: &'static str,
    /// Whether it is a clinic setting.
    pub clinic_setting: bool,
}

const NO_CONSENSUS: &str =
    "clinic setting: no consensus threshold exists for subanaesthetic ketamine (clinical.md section 3.2)";

/// The alarm rules a protocol or clinic applies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AlarmRules {
    /// Systolic at or above, mmHg.
    pub systolic_high: Threshold,
    /// Diastolic at or above, mmHg.
    pub diastolic_high: Threshold,
    /// Heart rate at or above, /min.
    pub heart_rate_high: Threshold,
    /// SpO2 below, %.
    pub spo2_low: Threshold,
    /// Respiratory rate below, /min.
    pub respiratory_rate_low: Threshold,
    /// Systolic rise from baseline at or above, mmHg.
    pub systolic_rise: Threshold,
    /// Diastolic rise from baseline at or above, mmHg.
    pub diastolic_rise: Threshold,
    /// MOAA/S at or below.
    pub moaas_low: Threshold,
}

impl Default for AlarmRules {
    fn default() -> Self {
        let setting = |value| Threshold {
            value,
            source: NO_CONSENSUS,
            clinic_setting: true,
        };
        let label =
            "Spravato PI: rises of >= 40 mmHg systolic and/or >= 25 mmHg diastolic were counted in trials";
        AlarmRules {
            systolic_high: setting(180.0),
            diastolic_high: setting(110.0),
            heart_rate_high: setting(120.0),
            spo2_low: setting(92.0),
            respiratory_rate_low: setting(10.0),
            systolic_rise: Threshold {
                value: 40.0,
                source: label,
                clinic_setting: false,
            },
            diastolic_rise: Threshold {
                value: 25.0,
                source: label,
                clinic_setting: false,
            },
            // MOAA/S 2: responds only to prodding (Chernik 1990); deeper than intended for an outpatient infusion.
            moaas_low: setting(2.0),
        }
    }
}

/// An alarm's priority, after IEC 60601-1-8 (medical electrical equipment, alarm systems): high
/// needs an immediate response, medium a prompt one, low awareness. Ordered low < medium < high.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Awareness.
    Low,
    /// Prompt response ("warning" before priorities were named).
    #[serde(alias = "warning")]
    Medium,
    /// Immediate response ("urgent" before priorities were named).
    #[serde(alias = "urgent")]
    High,
}

impl Priority {
    /// Stable code: low, medium, high.
    pub fn code(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
        }
    }

    /// The priority a stored level names; alarms stored before priorities were named said
    /// "warning" (medium) and "urgent" (high). `None` for anything else.
    pub fn from_stored(level: &str) -> Option<Priority> {
        match level {
            "low" => Some(Priority::Low),
            "medium" | "warning" => Some(Priority::Medium),
            "high" | "urgent" => Some(Priority::High),
            _ => None,
        }
    }
}

/// Which way a condition's value gets worse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Worse {
    /// A higher value is worse (blood pressure, NEWS2, the dose given).
    Higher,
    /// A lower value is worse (SpO2, respiratory rate, MOAA/S).
    Lower,
}

/// An alarm raised by a reading or by the watch. One clinical condition gives one alarm (one
/// `code`); while it is open, later readings update its value and may escalate its priority.
#[derive(Clone, Debug, PartialEq)]
pub struct Alarm {
    /// Stable code of the condition, e.g. `systolic_high`, `news2`.
    pub code: &'static str,
    /// Priority.
    pub level: Priority,
    /// What was seen.
    pub message: String,
    /// Whether the rule recommends pausing the infusion (it never pauses by itself).
    pub recommend_pause: bool,
    /// Source of the threshold.
    pub source: &'static str,
    /// Whether the threshold is a clinic setting.
    pub clinic_setting: bool,
    /// The value that raised it (mmHg, %, /min, NEWS2 points, mg given, minutes late...).
    pub value: f64,
    /// Which way the value gets worse.
    pub worse: Worse,
    /// The stage of a condition with stages (`single_red`, `medium`, `high` for NEWS2;
    /// `planned_reached`, `beyond_plan`, `beyond_hard_limit` for the dose), else empty.
    pub stage: &'static str,
}

/// What an open alarm becomes when its condition is seen again.
#[derive(Clone, Debug, PartialEq)]
pub struct AlarmUpdate {
    /// The priority now: never lower than before (a patient improving does not quieten an open
    /// alarm; it is resolved by a person).
    pub level: Priority,
    /// The worst value since it was raised.
    pub worst_value: f64,
    /// The message of the worst reading.
    pub worst_message: String,
    /// The priority went up: announce again, and an acknowledged alarm needs acknowledging again.
    pub escalated: bool,
    /// The value is worse than any since the alarm was raised (a later stage of the dose or of
    /// NEWS2 comes with a worse value).
    pub worsened: bool,
}

impl Alarm {
    /// This alarm seen again while an alarm of the same condition is open with `open_level` and
    /// the worst value `open_worst` (with its message).
    pub fn update_open(&self, open_level: Priority, open_worst: Option<(f64, String)>) -> AlarmUpdate {
        let is_worse = |new: f64, old: f64| match self.worse {
            Worse::Higher => new > old,
            Worse::Lower => new < old,
        };
        let (worst_value, worst_message, worse_value) = match open_worst {
            Some((old, message)) if !is_worse(self.value, old) => (old, message, false),
            Some(_) | None => (self.value, self.message.clone(), true),
        };
        AlarmUpdate {
            level: open_level.max(self.level),
            worst_value,
            worst_message,
            escalated: self.level > open_level,
            worsened: worse_value,
        }
    }
}

/// Evaluates one checked reading against the rules, the baseline BP and NEWS2: one alarm per
/// condition, highest priority first (then in the order below).
pub fn evaluate(rules: &AlarmRules, baseline: Option<BloodPressure>, v: &VitalSigns) -> Vec<Alarm> {
    let mut alarms = Vec::new();
    let mut raise = |code, level, message: String, recommend_pause, t: &Threshold, value, worse| {
        alarms.push(Alarm {
            code,
            level,
            message,
            recommend_pause,
            source: t.source,
            clinic_setting: t.clinic_setting,
            value,
            worse,
            stage: "",
        });
    };
    // Blood pressure: the fixed threshold and the rise from baseline on the same pressure are one
    // condition, one alarm naming both: high priority at the threshold, medium for the rise alone.
    for (code, name, value, high, rise, base) in [
        (
            "systolic_high",
            "systolic",
            v.systolic_mmhg,
            &rules.systolic_high,
            &rules.systolic_rise,
            baseline.map(|b| b.systolic_mmhg),
        ),
        (
            "diastolic_high",
            "diastolic",
            v.diastolic_mmhg,
            &rules.diastolic_high,
            &rules.diastolic_rise,
            baseline.map(|b| b.diastolic_mmhg),
        ),
    ] {
        let Some(x) = value else { continue };
        let over = x >= high.value;
        let risen = base.filter(|b| x - b >= rise.value);
        let mut parts = Vec::new();
        if over {
            parts.push(format!("≥ {:.0}", high.value));
        }
        if let Some(b) = risen {
            parts.push(format!(
                "{:.0} above baseline {b:.0} (rise ≥ {:.0})",
                x - b,
                rise.value
            ));
        }
        if parts.is_empty() {
            continue;
        }
        let message = format!("{name} {x:.0} mmHg: {}", parts.join(" and "));
        if over {
            raise(code, Priority::High, message, true, high, x, Worse::Higher);
        } else {
            raise(code, Priority::Medium, message, false, rise, x, Worse::Higher);
        }
    }
    if let Some(h) = v.heart_rate_per_min
        && h >= rules.heart_rate_high.value
    {
        raise(
            "heart_rate_high",
            Priority::Medium,
            format!("heart rate {h:.0}/min ≥ {:.0}", rules.heart_rate_high.value),
            false,
            &rules.heart_rate_high,
            h,
            Worse::Higher,
        );
    }
    if let Some(s) = v.spo2_percent
        && s < rules.spo2_low.value
    {
        raise(
            "spo2_low",
            Priority::High,
            format!("SpO2 {s:.0} % < {:.0}", rules.spo2_low.value),
            true,
            &rules.spo2_low,
            s,
            Worse::Lower,
        );
    }
    if let Some(r) = v.respiratory_rate_per_min
        && r < rules.respiratory_rate_low.value
    {
        raise(
            "respiratory_rate_low",
            Priority::High,
            format!(
                "respiratory rate {r:.0}/min < {:.0}",
                rules.respiratory_rate_low.value
            ),
            true,
            &rules.respiratory_rate_low,
            r,
            Worse::Lower,
        );
    }
    if let Some(m) = v.moaas
        && f64::from(m) <= rules.moaas_low.value
    {
        raise(
            "sedation_deep",
            Priority::High,
            format!("MOAA/S {m} ≤ {:.0}", rules.moaas_low.value),
            true,
            &rules.moaas_low,
            f64::from(m),
            Worse::Lower,
        );
    }
    // ACVPU below Alert: NEWS2 scores it 3 on its own (RCP 2017, Chart 1), and during a ketamine
    // infusion a patient who is newly confused or answers only to voice, pain or nothing must be
    // seen now, whatever the total.
    if let Some(c) = v.consciousness
        && c != Consciousness::Alert
    {
        raise(
            "consciousness_not_alert",
            Priority::High,
            format!("consciousness: {} (not alert)", c.label()),
            true,
            &Threshold {
                value: 3.0,
                source: CONSCIOUSNESS_SOURCE,
                clinic_setting: false,
            },
            // Alert 0, new confusion 1, voice 2, pain 3, unresponsive 4: further from alert is worse.
            f64::from(c.depth()),
            Worse::Higher,
        );
    }
    if let Some(obs) = v.observations() {
        let score = news2(&obs);
        let rcp = "RCP NEWS2 2017, Chart 4: 5-6 urgent review, >= 7 emergency assessment";
        let total = f64::from(score.total);
        let tier = match score.risk {
            News2Risk::High => Some((
                Priority::High,
                "high",
                format!("NEWS2 {} (high: emergency assessment)", score.total),
                true,
                rcp,
            )),
            News2Risk::Medium => Some((
                Priority::Medium,
                "medium",
                format!("NEWS2 {} (medium: urgent review)", score.total),
                false,
                rcp,
            )),
            News2Risk::LowMedium => {
                // One condition, one alarm: a red parameter that already raised its own alarm
                // above is not raised again as the score's.
                let unalarmed: Vec<&str> = score
                    .parts
                    .iter()
                    .filter(|(_, points)| *points == 3)
                    .map(|(name, _)| *name)
                    .filter(|name| !own_alarm(name).is_some_and(|code| alarms.iter().any(|a| a.code == code)))
                    .collect();
                (!unalarmed.is_empty()).then(|| {
                    (
                        Priority::Medium,
                        "single_red",
                        format!(
                            "NEWS2 {} with {} scoring 3 (low–medium risk: urgent ward-based review)",
                            score.total,
                            unalarmed
                                .iter()
                                .map(|n| part_label(n))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        false,
                        SINGLE_RED_SOURCE,
                    )
                })
            }
            News2Risk::Low => None,
        };
        if let Some((level, stage, message, recommend_pause, source)) = tier {
            alarms.push(Alarm {
                code: "news2",
                level,
                message,
                recommend_pause,
                source,
                clinic_setting: false,
                value: total,
                worse: Worse::Higher,
                stage,
            });
        }
    }
    // Highest priority first; the sort is stable, so equal priorities keep the order above.
    alarms.sort_by_key(|a| std::cmp::Reverse(a.level));
    alarms
}

const CONSCIOUSNESS_SOURCE: &str = "RCP NEWS2 2017, Chart 1: new confusion, voice, pain or unresponsive scores 3 \
     (ACVPU); a clinic rule makes it urgent on its own during ketamine";
const SINGLE_RED_SOURCE: &str = "RCP NEWS2 2017, Chart 4: a score of 3 in any single parameter is low-medium risk: \
     at least hourly observations and an urgent ward-based review";

/// The alarm a NEWS2 parameter already raises on its own, if it has one.
fn own_alarm(part: &str) -> Option<&'static str> {
    match part {
        "respiration_rate" => Some("respiratory_rate_low"),
        "spo2" => Some("spo2_low"),
        "systolic_bp" => Some("systolic_high"),
        "pulse" => Some("heart_rate_high"),
        "consciousness" => Some("consciousness_not_alert"),
        _ => None,
    }
}

/// A NEWS2 parameter in words.
fn part_label(part: &str) -> &'static str {
    match part {
        "respiration_rate" => "respiration rate",
        "spo2" => "SpO2",
        "air_or_oxygen" => "air or oxygen",
        "systolic_bp" => "systolic BP",
        "pulse" => "pulse",
        "consciousness" => "consciousness",
        _ => "temperature",
    }
}

// ---- Which values a screen marks ------------------------------------------------------------------

/// A measure a screen shows as one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Measure {
    /// Systolic/diastolic blood pressure (one value on a screen).
    BloodPressure,
    /// Heart rate.
    HeartRate,
    /// SpO2.
    Spo2,
    /// Respiratory rate.
    RespiratoryRate,
    /// Temperature.
    Temperature,
    /// MOAA/S.
    Moaas,
    /// ACVPU.
    Consciousness,
    /// The NEWS2 total.
    News2,
}

impl Measure {
    /// Stable code, as the board's API names it.
    pub fn code(self) -> &'static str {
        match self {
            Measure::BloodPressure => "blood_pressure",
            Measure::HeartRate => "heart_rate",
            Measure::Spo2 => "spo2",
            Measure::RespiratoryRate => "respiratory_rate",
            Measure::Temperature => "temperature",
            Measure::Moaas => "moaas",
            Measure::Consciousness => "consciousness",
            Measure::News2 => "news2",
        }
    }
}

/// A value of a reading that a screen marks as abnormal, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct FlaggedValue {
    /// Which value.
    pub measure: Measure,
    /// High (`Worse::Higher`: above where it should be) or low.
    pub direction: Worse,
    /// Why, in words: the alarm condition it meets.
    pub reason: String,
    /// The priority of that condition.
    pub level: Priority,
}

/// The values of one reading to mark as abnormal: exactly those that meet an alarm condition of
/// `rules` (with the baseline) or NEWS2 (RCP 2017: the total at medium or high risk, and any single
/// parameter scoring 3, which for temperature means ≤ 35.0 °C). A screen marks what the alarm rules
/// would raise, so a mark and an alarm never disagree, whether or not the alarm is still open.
pub fn flagged_values(
    rules: &AlarmRules,
    baseline: Option<BloodPressure>,
    v: &VitalSigns,
) -> Vec<FlaggedValue> {
    let mut flags: Vec<FlaggedValue> = Vec::new();
    let mut flag = |measure, direction, reason: String, level| {
        if !flags.iter().any(|f: &FlaggedValue| f.measure == measure) {
            flags.push(FlaggedValue {
                measure,
                direction,
                reason,
                level,
            });
        }
    };
    for alarm in evaluate(rules, baseline, v) {
        let measure = match alarm.code {
            "systolic_high" | "diastolic_high" => Measure::BloodPressure,
            "heart_rate_high" => Measure::HeartRate,
            "spo2_low" => Measure::Spo2,
            "respiratory_rate_low" => Measure::RespiratoryRate,
            "sedation_deep" => Measure::Moaas,
            "consciousness_not_alert" => Measure::Consciousness,
            "news2" => Measure::News2,
            _ => continue,
        };
        flag(measure, alarm.worse, alarm.message.clone(), alarm.level);
    }
    // A NEWS2 parameter scoring 3 is red on the chart (RCP 2017, Chart 1) even where the clinic's
    // own threshold is further out or absent, e.g. a heart rate of 35 (no low-rate alarm).
    if let Some(obs) = v.observations() {
        let score = news2(&obs);
        for (part, points) in score.parts {
            if points < 3 {
                continue;
            }
            // Which way it is red: below the parameter's normal (score 0) band or above it; the
            // band's lower edges are RCP NEWS2 2017, Chart 1 (RR 12, SpO2 96 on scale 1, SBP 111,
            // pulse 51, temperature 36.1 °C).
            let (measure, value, low_below) = match part {
                "respiration_rate" => (Measure::RespiratoryRate, obs.respiration_rate_per_min, 12.0),
                "spo2" => (Measure::Spo2, obs.spo2_percent, 96.0),
                "systolic_bp" => (Measure::BloodPressure, obs.systolic_mmhg, 111.0),
                "pulse" => (Measure::HeartRate, obs.pulse_per_min, 51.0),
                "temperature" => (Measure::Temperature, obs.temperature_c, 36.1),
                // Consciousness raised its own alarm above; oxygen is a treatment, not a value.
                _ => continue,
            };
            let direction = if value < low_below {
                Worse::Lower
            } else {
                Worse::Higher
            };
            flag(
                measure,
                direction,
                format!("{} scores 3 on NEWS2 (red: urgent review)", part_label(part)),
                Priority::Medium,
            );
        }
    }
    flags
}

// ---- When the next set of vitals is due ------------------------------------------------------------

/// How often a set of vitals is due in each phase of a session, from the protocol's
/// `[monitoring]` (whose source, and which intervals are clinic settings, the protocol file says).
/// The only labelled timing for a ketamine-class drug is esketamine's: blood pressure before
/// dosing, about 40 minutes after, then as clinically warranted (Spravato PI 2019, section
/// 2.1/5.4); no guideline sets an interval for IV ketamine (clinical.md section 3.2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MonitoringSchedule {
    /// From check-in until the start.
    pub before_start: time::Duration,
    /// While infusing or paused.
    pub during_infusion: time::Duration,
    /// From the stop until discharge.
    pub recovery: time::Duration,
}

/// Where a schedule's intervals come from, as an alarm names it.
pub const MONITORING_SOURCE: &str =
    "the protocol's monitoring schedule ([monitoring] in the protocol library, with its sources)";

impl MonitoringSchedule {
    /// The schedule a protocol sets.
    pub fn of(rules: &crate::protocol::MonitoringRules) -> MonitoringSchedule {
        let minutes = |m: f64| time::Duration::seconds_f64(m * 60.0);
        MonitoringSchedule {
            before_start: minutes(rules.before_start_every_min),
            during_infusion: minutes(rules.vitals_every_min),
            recovery: minutes(rules.recovery_every_min),
        }
    }

    /// The interval in force in a session state, and the phase's name; `None` while nothing is
    /// due (booked and not arrived, or closed).
    pub fn interval(&self, state: &crate::session::SessionState) -> Option<(time::Duration, &'static str)> {
        if state.infusion_underway() {
            Some((self.during_infusion, "while infusing"))
        } else if state.awaiting_discharge() {
            Some((self.recovery, "in recovery"))
        } else if state.before_infusion() && state.patient_present() {
            Some((self.before_start, "before the start"))
        } else {
            None
        }
    }
}

/// A set of vitals that is overdue.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Overdue {
    /// When it was due.
    pub due_at: time::OffsetDateTime,
    /// How late it is now, whole minutes.
    pub minutes_late: i64,
}

/// Whether the next set of vitals is overdue at `now`: it is due one interval of the phase after
/// the later of the last reading and the start of the current phase (`phase_since`), so a phase
/// starts with a full interval. Nothing is due before check-in or once the session is closed.
pub fn vitals_overdue(
    state: &crate::session::SessionState,
    phase_since: time::OffsetDateTime,
    last_reading_at: Option<time::OffsetDateTime>,
    now: time::OffsetDateTime,
    schedule: &MonitoringSchedule,
) -> Option<Overdue> {
    let (interval, _) = schedule.interval(state)?;
    let since = last_reading_at.map_or(phase_since, |t| t.max(phase_since));
    let due_at = since + interval;
    (now > due_at).then(|| Overdue {
        due_at,
        minutes_late: (now - due_at).whole_minutes(),
    })
}

/// How old a reading is and whether it is stale: older than the phase's interval (a value the
/// bedside should not trust as current).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadingAge {
    /// Whole minutes since it was taken (0 for a reading taken in the last minute).
    pub minutes: i64,
    /// Older than the interval in force now.
    pub stale: bool,
}

/// The age of a reading taken at `taken_at`, judged by the schedule of `state`.
pub fn reading_age(
    taken_at: time::OffsetDateTime,
    now: time::OffsetDateTime,
    state: &crate::session::SessionState,
    schedule: &MonitoringSchedule,
) -> ReadingAge {
    let age = now - taken_at;
    ReadingAge {
        minutes: age.whole_minutes().max(0),
        stale: schedule.interval(state).is_some_and(|(every, _)| age > every),
    }
}

/// The alarm for overdue vitals: a reminder, never a stop.
pub fn overdue_alarm(
    overdue: &Overdue,
    schedule: &MonitoringSchedule,
    state: &crate::session::SessionState,
) -> Alarm {
    let (every, phase) = schedule
        .interval(state)
        .unwrap_or((schedule.during_infusion, "while infusing"));
    Alarm {
        code: "vitals_overdue",
        level: Priority::Medium,
        message: format!(
            "vitals overdue by {} min (due every {} min {phase})",
            overdue.minutes_late.max(1),
            every.whole_minutes(),
        ),
        recommend_pause: false,
        source: MONITORING_SOURCE,
        clinic_setting: false,
        value: overdue.minutes_late as f64,
        worse: Worse::Higher,
        stage: "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal() -> VitalSigns {
        VitalSigns {
            systolic_mmhg: Some(128.0),
            diastolic_mmhg: Some(80.0),
            heart_rate_per_min: Some(76.0),
            spo2_percent: Some(98.0),
            respiratory_rate_per_min: Some(14.0),
            temperature_c: Some(36.7),
            consciousness: Some(Consciousness::Alert),
            moaas: Some(5),
            on_oxygen: Some(false),
        }
    }

    fn codes(v: &VitalSigns) -> Vec<&'static str> {
        evaluate(&AlarmRules::default(), None, v)
            .iter()
            .map(|a| a.code)
            .collect()
    }

    /// RCP NEWS2 2017, Chart 1 and Chart 4: each of these scores 3 in one parameter with every
    /// other parameter normal (total 3, low-medium risk), which needs an urgent ward-based review.
    /// Where the parameter has no alarm of its own at that value, the score raises one.
    #[test]
    fn a_single_red_score_raises_an_alarm_naming_the_parameter() {
        let cases: [(&str, VitalSigns, &str); 4] = [
            (
                "RR 25",
                VitalSigns {
                    respiratory_rate_per_min: Some(25.0),
                    ..normal()
                },
                "respiration rate",
            ),
            (
                "SBP 90",
                VitalSigns {
                    systolic_mmhg: Some(90.0),
                    diastolic_mmhg: Some(60.0),
                    ..normal()
                },
                "systolic BP",
            ),
            (
                "HR 40",
                VitalSigns {
                    heart_rate_per_min: Some(40.0),
                    ..normal()
                },
                "pulse",
            ),
            (
                "T 35.0",
                VitalSigns {
                    temperature_c: Some(35.0),
                    ..normal()
                },
                "temperature",
            ),
        ];
        for (what, v, part) in cases {
            let obs = v.observations().unwrap();
            let score = news2(&obs);
            assert_eq!((score.total, score.risk), (3, News2Risk::LowMedium), "{what}");
            let alarms = evaluate(&AlarmRules::default(), None, &v);
            assert_eq!(alarms.len(), 1, "{what}: {alarms:?}");
            assert_eq!(
                (alarms[0].code, alarms[0].stage),
                ("news2", "single_red"),
                "{what}"
            );
            assert_eq!(alarms[0].level, Priority::Medium, "{what}");
            assert_eq!(
                alarms[0].message,
                format!("NEWS2 3 with {part} scoring 3 (low–medium risk: urgent ward-based review)"),
                "{what}"
            );
            assert!(alarms[0].source.starts_with("RCP NEWS2 2017, Chart 4"));
        }
        // Below the red band the same parameters raise nothing: RR 24 and HR 41 score 2 and 1.
        assert!(
            codes(&VitalSigns {
                respiratory_rate_per_min: Some(24.0),
                ..normal()
            })
            .is_empty()
        );
        assert!(
            codes(&VitalSigns {
                heart_rate_per_min: Some(41.0),
                ..normal()
            })
            .is_empty()
        );
    }

    /// New confusion, voice, pain or unresponsive: an urgent alarm whatever the total, and the
    /// score does not raise a second alarm for the same sign.
    #[test]
    fn consciousness_below_alert_is_urgent_on_its_own() {
        for (c, word) in [
            (Consciousness::NewConfusion, "new confusion"),
            (Consciousness::Voice, "responds to voice"),
            (Consciousness::Pain, "responds to pain"),
            (Consciousness::Unresponsive, "unresponsive"),
        ] {
            let v = VitalSigns {
                consciousness: Some(c),
                ..normal()
            };
            let alarms = evaluate(&AlarmRules::default(), None, &v);
            assert_eq!(alarms.len(), 1, "{word}: {alarms:?}");
            assert_eq!(alarms[0].code, "consciousness_not_alert");
            assert_eq!(alarms[0].level, Priority::High);
            assert!(alarms[0].recommend_pause);
            assert_eq!(alarms[0].message, format!("consciousness: {word} (not alert)"));
            // Even with no other vital sign recorded (NEWS2 cannot be scored).
            let alone = VitalSigns {
                consciousness: Some(c),
                ..VitalSigns::default()
            };
            assert_eq!(codes(&alone), ["consciousness_not_alert"]);
        }
        assert!(
            codes(&VitalSigns {
                consciousness: Some(Consciousness::Alert),
                ..normal()
            })
            .is_empty()
        );
    }

    /// A red parameter that raises its own alarm is not raised again as the score's (SpO2 86 %:
    /// spo2_low only); the medium and high tiers still raise theirs.
    #[test]
    fn one_condition_raises_one_alarm_and_the_tiers_stay() {
        assert_eq!(
            codes(&VitalSigns {
                spo2_percent: Some(86.0),
                ..normal()
            }),
            ["spo2_low"]
        );
        // SpO2 86 (3) + RR 22 (2) = 5: medium.
        assert_eq!(
            codes(&VitalSigns {
                spo2_percent: Some(86.0),
                respiratory_rate_per_min: Some(22.0),
                ..normal()
            }),
            ["spo2_low", "news2"]
        );
        // SBP 90 (3) + HR 115 (2) + RR 22 (2) = 7: high; the red SBP is part of the high tier's alarm.
        assert_eq!(
            codes(&VitalSigns {
                systolic_mmhg: Some(90.0),
                diastolic_mmhg: Some(60.0),
                heart_rate_per_min: Some(115.0),
                respiratory_rate_per_min: Some(22.0),
                ..normal()
            }),
            ["news2"]
        );
    }

    fn schedule() -> MonitoringSchedule {
        MonitoringSchedule {
            before_start: time::Duration::minutes(30),
            during_infusion: time::Duration::minutes(10),
            recovery: time::Duration::minutes(15),
        }
    }

    /// Due one interval of the phase after the later of the last reading and the phase's start;
    /// nothing before check-in or after discharge.
    #[test]
    fn vitals_fall_due_by_the_schedule_of_the_phase() {
        use crate::session::SessionState;
        use time::macros::datetime;
        let schedule = schedule();
        let start = datetime!(2026-11-26 10:00 UTC);
        let infusing = SessionState::Infusing {
            plan_id: "p".into(),
            since: start,
        };
        let at = |min: i64| start + time::Duration::minutes(min);
        // No reading since the start: due at 10:10.
        assert_eq!(vitals_overdue(&infusing, start, None, at(10), &schedule), None);
        assert_eq!(
            vitals_overdue(&infusing, start, None, at(11), &schedule),
            Some(Overdue {
                due_at: at(10),
                minutes_late: 1
            })
        );
        // A reading before the start does not count; one at 10:20 moves the next to 10:30.
        assert!(vitals_overdue(&infusing, start, Some(at(-5)), at(11), &schedule).is_some());
        assert_eq!(
            vitals_overdue(&infusing, start, Some(at(20)), at(30), &schedule),
            None
        );
        assert_eq!(
            vitals_overdue(&infusing, start, Some(at(20)), at(45), &schedule),
            Some(Overdue {
                due_at: at(30),
                minutes_late: 15
            })
        );
        let alarm = overdue_alarm(
            &Overdue {
                due_at: at(30),
                minutes_late: 15,
            },
            &schedule,
            &infusing,
        );
        assert_eq!(alarm.code, "vitals_overdue");
        assert_eq!(
            alarm.message,
            "vitals overdue by 15 min (due every 10 min while infusing)"
        );
        assert!(!alarm.recommend_pause && alarm.source.starts_with("the protocol's monitoring schedule"));
        // Booked, not arrived: nothing due. Checked in: every 30 min from check-in.
        assert_eq!(
            vitals_overdue(&SessionState::Scheduled, start, None, at(600), &schedule),
            None
        );
        let checked_in = SessionState::CheckedIn {
            checks: crate::session::PreChecks {
                fasting_confirmed: true,
                escort_confirmed: true,
                consent_on_file: true,
                baseline_vitals_taken: true,
                questionnaire: crate::session::Questionnaire::Answered,
            },
        };
        assert_eq!(vitals_overdue(&checked_in, start, None, at(30), &schedule), None);
        let late = vitals_overdue(&checked_in, start, None, at(31), &schedule).unwrap();
        assert_eq!(
            overdue_alarm(&late, &schedule, &checked_in).message,
            "vitals overdue by 1 min (due every 30 min before the start)"
        );
        // In recovery: every 15 min.
        let recovering = SessionState::Recovering {
            infusion_ended_at: start,
        };
        assert!(vitals_overdue(&recovering, start, Some(at(1)), at(16), &schedule).is_none());
        assert!(vitals_overdue(&recovering, start, Some(at(1)), at(17), &schedule).is_some());
    }

    /// A reading's age, and whether it is stale for the phase.
    #[test]
    fn a_reading_is_stale_once_older_than_the_phases_interval() {
        use crate::session::SessionState;
        use time::macros::datetime;
        let now = datetime!(2026-11-26 13:00 UTC);
        let infusing = SessionState::Infusing {
            plan_id: "p".into(),
            since: now - time::Duration::hours(4),
        };
        let age = |minutes: i64, state: &SessionState| {
            reading_age(now - time::Duration::minutes(minutes), now, state, &schedule())
        };
        assert_eq!(
            age(10, &infusing),
            ReadingAge {
                minutes: 10,
                stale: false
            }
        );
        assert_eq!(
            age(11, &infusing),
            ReadingAge {
                minutes: 11,
                stale: true
            }
        );
        // The 3-hour-old blood pressure.
        assert_eq!(
            age(180, &infusing),
            ReadingAge {
                minutes: 180,
                stale: true
            }
        );
        // A closed session has no schedule: old, not "stale".
        let done = SessionState::Discharged { at: now };
        assert!(!age(180, &done).stale);
    }

    #[test]
    fn impossible_readings_are_refused_with_the_allowed_range() {
        let err = VitalSigns {
            spo2_percent: Some(140.0),
            ..normal()
        }
        .check()
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "spo2_percent 140 is not a plausible reading: allowed 50–100"
        );
        assert!(
            VitalSigns {
                heart_rate_per_min: Some(0.0),
                ..normal()
            }
            .check()
            .is_err()
        );
        assert!(
            VitalSigns {
                diastolic_mmhg: Some(130.0),
                ..normal()
            }
            .check()
            .is_err()
        );
        assert!(
            VitalSigns {
                moaas: Some(6),
                ..normal()
            }
            .check()
            .is_err()
        );
        assert!(
            VitalSigns {
                temperature_c: Some(f64::NAN),
                ..normal()
            }
            .check()
            .is_err()
        );
        // Apnoea is a real reading.
        assert!(
            VitalSigns {
                respiratory_rate_per_min: Some(0.0),
                ..normal()
            }
            .check()
            .is_ok()
        );
        assert!(VitalSigns::default().check().is_ok());
    }

    #[test]
    fn thresholds_fire_at_their_edges() {
        let rules = AlarmRules::default();
        let codes = |v: VitalSigns| {
            evaluate(&rules, None, &v)
                .into_iter()
                .map(|a| a.code)
                .collect::<Vec<_>>()
        };
        assert!(codes(normal()).is_empty());
        assert_eq!(
            codes(VitalSigns {
                systolic_mmhg: Some(179.0),
                ..normal()
            }),
            Vec::<&str>::new()
        );
        assert_eq!(
            codes(VitalSigns {
                systolic_mmhg: Some(180.0),
                ..normal()
            }),
            vec!["systolic_high"]
        );
        assert_eq!(
            codes(VitalSigns {
                diastolic_mmhg: Some(110.0),
                systolic_mmhg: Some(150.0),
                ..normal()
            }),
            vec!["diastolic_high"]
        );
        assert_eq!(
            codes(VitalSigns {
                heart_rate_per_min: Some(119.0),
                ..normal()
            }),
            Vec::<&str>::new()
        );
        assert_eq!(
            codes(VitalSigns {
                heart_rate_per_min: Some(120.0),
                ..normal()
            }),
            vec!["heart_rate_high"]
        );
        assert_eq!(
            codes(VitalSigns {
                spo2_percent: Some(92.0),
                ..normal()
            }),
            Vec::<&str>::new()
        );
        assert_eq!(
            codes(VitalSigns {
                spo2_percent: Some(91.0),
                ..normal()
            }),
            vec!["spo2_low"]
        );
        assert_eq!(
            codes(VitalSigns {
                respiratory_rate_per_min: Some(10.0),
                ..normal()
            }),
            Vec::<&str>::new()
        );
        assert_eq!(
            codes(VitalSigns {
                respiratory_rate_per_min: Some(9.0),
                ..normal()
            }),
            vec!["respiratory_rate_low"]
        );
        assert_eq!(
            codes(VitalSigns {
                moaas: Some(2),
                ..normal()
            }),
            vec!["sedation_deep"]
        );
    }

    #[test]
    fn rises_from_baseline_use_the_label_numbers() {
        let rules = AlarmRules::default();
        let baseline = Some(BloodPressure {
            systolic_mmhg: 120.0,
            diastolic_mmhg: 75.0,
        });
        let alarms = evaluate(
            &rules,
            baseline,
            &VitalSigns {
                systolic_mmhg: Some(160.0),
                diastolic_mmhg: Some(100.0),
                ..normal()
            },
        );
        let codes: Vec<_> = alarms.iter().map(|a| (a.code, a.level)).collect();
        assert_eq!(
            codes,
            vec![
                ("systolic_high", Priority::Medium),
                ("diastolic_high", Priority::Medium)
            ]
        );
        assert_eq!(
            alarms[0].message,
            "systolic 160 mmHg: 40 above baseline 120 (rise ≥ 40)"
        );
        assert!(!alarms[0].clinic_setting && alarms[0].source.starts_with("Spravato"));
        assert!(alarms.iter().all(|a| !a.recommend_pause));
        let below = evaluate(
            &rules,
            baseline,
            &VitalSigns {
                systolic_mmhg: Some(159.0),
                diastolic_mmhg: Some(99.0),
                ..normal()
            },
        );
        assert!(below.is_empty());
    }

    #[test]
    fn news2_alarms_for_complete_sets_only() {
        let rules = AlarmRules::default();
        // HR 115 (2) + RR 22 (2) + T 38.2 (1) = 5: medium.
        let v = VitalSigns {
            heart_rate_per_min: Some(115.0),
            respiratory_rate_per_min: Some(22.0),
            temperature_c: Some(38.2),
            ..normal()
        };
        let alarms = evaluate(&rules, None, &v);
        assert_eq!(
            alarms
                .iter()
                .map(|a| (a.code, a.stage, a.level))
                .collect::<Vec<_>>(),
            vec![("news2", "medium", Priority::Medium)]
        );
        let partial = VitalSigns {
            temperature_c: None,
            ..v
        };
        assert!(
            evaluate(&rules, None, &partial).is_empty(),
            "no NEWS2 without a complete set"
        );
        // Threshold alarms carry the clinic-setting mark.
        let high = evaluate(
            &rules,
            None,
            &VitalSigns {
                systolic_mmhg: Some(200.0),
                ..normal()
            },
        );
        assert!(high[0].clinic_setting && high[0].recommend_pause && high[0].level == Priority::High);
    }

    /// The threshold and the rise on the same pressure are one alarm naming both, at the
    /// threshold's (high) priority.
    #[test]
    fn a_threshold_and_a_rise_on_one_pressure_are_one_alarm_naming_both() {
        let baseline = Some(BloodPressure {
            systolic_mmhg: 130.0,
            diastolic_mmhg: 80.0,
        });
        let alarms = evaluate(
            &AlarmRules::default(),
            baseline,
            &VitalSigns {
                systolic_mmhg: Some(185.0),
                ..normal()
            },
        );
        assert_eq!(alarms.len(), 1, "{alarms:?}");
        assert_eq!(
            (alarms[0].code, alarms[0].level),
            ("systolic_high", Priority::High)
        );
        assert_eq!(
            alarms[0].message,
            "systolic 185 mmHg: ≥ 180 and 55 above baseline 130 (rise ≥ 40)"
        );
        assert!(alarms[0].recommend_pause);
    }

    /// The reading of the issue that raised six alarms, unordered: SpO2 86 %, SBP 185 (55 above
    /// baseline), DBP 115 (35 above), HR 130, RR 8: now one alarm per condition, high first.
    #[test]
    fn alarms_come_highest_priority_first_one_per_condition() {
        let baseline = Some(BloodPressure {
            systolic_mmhg: 130.0,
            diastolic_mmhg: 80.0,
        });
        let v = VitalSigns {
            systolic_mmhg: Some(185.0),
            diastolic_mmhg: Some(115.0),
            heart_rate_per_min: Some(130.0),
            spo2_percent: Some(86.0),
            respiratory_rate_per_min: Some(8.0),
            ..normal()
        };
        let alarms = evaluate(&AlarmRules::default(), baseline, &v);
        let seen: Vec<_> = alarms.iter().map(|a| (a.code, a.level)).collect();
        assert_eq!(
            seen,
            vec![
                ("systolic_high", Priority::High),
                ("diastolic_high", Priority::High),
                ("spo2_low", Priority::High),
                ("respiratory_rate_low", Priority::High),
                ("news2", Priority::High),
                ("heart_rate_high", Priority::Medium),
            ]
        );
        let mut codes: Vec<_> = alarms.iter().map(|a| a.code).collect();
        codes.dedup();
        assert_eq!(codes.len(), alarms.len(), "one alarm per condition");
    }

    /// An open alarm keeps its worst value, never lowers its priority, and escalates when the
    /// patient worsens.
    #[test]
    fn an_open_alarm_tracks_the_worst_value_and_escalates() {
        let rules = AlarmRules::default();
        let at = |v: VitalSigns| {
            evaluate(&rules, None, &v)
                .into_iter()
                .find(|a| a.code == "news2")
                .unwrap()
        };
        // NEWS2 5 (medium), then 7+ (high): escalated and worse.
        let medium = at(VitalSigns {
            heart_rate_per_min: Some(115.0),
            respiratory_rate_per_min: Some(22.0),
            temperature_c: Some(38.2),
            ..normal()
        });
        assert_eq!((medium.level, medium.value), (Priority::Medium, 5.0));
        let high = at(VitalSigns {
            heart_rate_per_min: Some(135.0),
            respiratory_rate_per_min: Some(26.0),
            temperature_c: Some(39.2),
            ..normal()
        });
        assert_eq!(high.level, Priority::High);
        let up = high.update_open(medium.level, Some((medium.value, medium.message.clone())));
        assert!(up.escalated && up.worsened);
        assert_eq!((up.level, up.worst_value), (Priority::High, high.value));
        // Back to 5: the priority stays high and the worst stays the high reading.
        let down = medium.update_open(up.level, Some((up.worst_value, up.worst_message.clone())));
        assert_eq!(
            (down.level, down.escalated, down.worst_value),
            (Priority::High, false, high.value)
        );
        assert_eq!(down.worst_message, high.message);
        // SpO2: lower is worse.
        let spo2 = |s: f64| {
            evaluate(
                &rules,
                None,
                &VitalSigns {
                    spo2_percent: Some(s),
                    ..normal()
                },
            )
            .into_iter()
            .find(|a| a.code == "spo2_low")
            .unwrap()
        };
        let u = spo2(85.0).update_open(Priority::High, Some((88.0, spo2(88.0).message)));
        assert!(u.worsened && !u.escalated);
        assert_eq!(u.worst_value, 85.0);
        assert_eq!(Priority::from_stored("urgent"), Some(Priority::High));
        assert_eq!(Priority::from_stored("warning"), Some(Priority::Medium));
    }

    /// The marks follow the alarm rules and NEWS2 exactly: a normal set marks nothing; each value
    /// past its default threshold is marked with its direction and the alarm's words; a NEWS2 red
    /// parameter under the clinic's threshold is marked too; partial readings mark what they have.
    #[test]
    fn flagged_values_are_the_values_that_meet_an_alarm_condition() {
        let rules = AlarmRules::default();
        let marks = |v: VitalSigns, baseline| {
            flagged_values(&rules, baseline, &v)
                .into_iter()
                .map(|f| (f.measure, f.direction, f.level))
                .collect::<Vec<_>>()
        };
        assert_eq!(marks(normal(), None), vec![]);
        // SBP 182 ≥ 180 (high); HR 121 ≥ 120 (medium); SpO2 90 < 92 (high); RR 8 < 10 (high).
        let bad = VitalSigns {
            systolic_mmhg: Some(182.0),
            heart_rate_per_min: Some(121.0),
            spo2_percent: Some(90.0),
            respiratory_rate_per_min: Some(8.0),
            ..normal()
        };
        let got = marks(bad, None);
        for expected in [
            (Measure::BloodPressure, Worse::Higher, Priority::High),
            (Measure::HeartRate, Worse::Higher, Priority::Medium),
            (Measure::Spo2, Worse::Lower, Priority::High),
            (Measure::RespiratoryRate, Worse::Lower, Priority::High),
            // NEWS2: RR 8 (3) + SpO2 90 (3) + SBP 182 (0) + HR 121 (2) = 8: high.
            (Measure::News2, Worse::Higher, Priority::High),
        ] {
            assert!(got.contains(&expected), "{expected:?} in {got:?}");
        }
        assert_eq!(got.len(), 5, "{got:?}");
        // A rise of 40 over baseline 120 without reaching 180: medium, on blood pressure.
        let risen = VitalSigns {
            systolic_mmhg: Some(160.0),
            ..normal()
        };
        let baseline = Some(BloodPressure {
            systolic_mmhg: 120.0,
            diastolic_mmhg: 80.0,
        });
        assert_eq!(
            marks(risen, baseline),
            vec![(Measure::BloodPressure, Worse::Higher, Priority::Medium)]
        );
        assert_eq!(marks(risen, None), vec![]);
        // Temperature 35.0 °C has no clinic threshold but scores 3 on NEWS2: marked low (and the
        // single-red NEWS2 alarm marks the total).
        let cold = VitalSigns {
            temperature_c: Some(35.0),
            ..normal()
        };
        let got = flagged_values(&rules, None, &cold);
        assert_eq!(got[0].measure, Measure::News2);
        assert_eq!(got[1].measure, Measure::Temperature);
        assert_eq!(got[1].direction, Worse::Lower);
        assert_eq!(
            got[1].reason,
            "temperature scores 3 on NEWS2 (red: urgent review)"
        );
        // HR 35 meets no clinic threshold (there is no low-rate alarm) but scores 3 on NEWS2.
        let slow = VitalSigns {
            heart_rate_per_min: Some(35.0),
            ..normal()
        };
        let got = flagged_values(&rules, None, &slow);
        let hr = got.iter().find(|f| f.measure == Measure::HeartRate).unwrap();
        assert_eq!(hr.direction, Worse::Lower);
        // A partial reading (no NEWS2) marks only its own values.
        let partial = VitalSigns {
            spo2_percent: Some(91.0),
            ..VitalSigns::default()
        };
        assert_eq!(
            marks(partial, None),
            vec![(Measure::Spo2, Worse::Lower, Priority::High)]
        );
    }
}
