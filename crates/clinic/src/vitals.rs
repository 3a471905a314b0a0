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

/// How urgent an alarm is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlarmLevel {
    /// Look now.
    Warning,
    /// Act now.
    Urgent,
}

/// An alarm raised by a reading.
#[derive(Clone, Debug, PartialEq)]
pub struct Alarm {
    /// Stable code, e.g. `systolic_high`.
    pub code: &'static str,
    /// How urgent.
    pub level: AlarmLevel,
    /// What was seen.
    pub message: String,
    /// Whether the rule recommends pausing the infusion (it never pauses by itself).
    pub recommend_pause: bool,
    /// Source of the threshold.
    pub source: &'static str,
    /// Whether the threshold is a clinic setting.
    pub clinic_setting: bool,
}

/// Evaluates one checked reading against the rules, the baseline BP and NEWS2.
pub fn evaluate(rules: &AlarmRules, baseline: Option<BloodPressure>, v: &VitalSigns) -> Vec<Alarm> {
    let mut alarms = Vec::new();
    let mut raise = |code, level, message: String, recommend_pause, t: &Threshold| {
        alarms.push(Alarm {
            code,
            level,
            message,
            recommend_pause,
            source: t.source,
            clinic_setting: t.clinic_setting,
        });
    };
    if let Some(s) = v.systolic_mmhg {
        if s >= rules.systolic_high.value {
            raise(
                "systolic_high",
                AlarmLevel::Urgent,
                format!("systolic {s:.0} mmHg ≥ {:.0}", rules.systolic_high.value),
                true,
                &rules.systolic_high,
            );
        }
        if let Some(b) = baseline
            && s - b.systolic_mmhg >= rules.systolic_rise.value
        {
            raise(
                "systolic_rise",
                AlarmLevel::Warning,
                format!(
                    "systolic {s:.0} mmHg is {:.0} above baseline {:.0}",
                    s - b.systolic_mmhg,
                    b.systolic_mmhg
                ),
                false,
                &rules.systolic_rise,
            );
        }
    }
    if let Some(d) = v.diastolic_mmhg {
        if d >= rules.diastolic_high.value {
            raise(
                "diastolic_high",
                AlarmLevel::Urgent,
                format!("diastolic {d:.0} mmHg ≥ {:.0}", rules.diastolic_high.value),
                true,
                &rules.diastolic_high,
            );
        }
        if let Some(b) = baseline
            && d - b.diastolic_mmhg >= rules.diastolic_rise.value
        {
            raise(
                "diastolic_rise",
                AlarmLevel::Warning,
                format!(
                    "diastolic {d:.0} mmHg is {:.0} above baseline {:.0}",
                    d - b.diastolic_mmhg,
                    b.diastolic_mmhg
                ),
                false,
                &rules.diastolic_rise,
            );
        }
    }
    if let Some(h) = v.heart_rate_per_min
        && h >= rules.heart_rate_high.value
    {
        raise(
            "heart_rate_high",
            AlarmLevel::Warning,
            format!("heart rate {h:.0}/min ≥ {:.0}", rules.heart_rate_high.value),
            false,
            &rules.heart_rate_high,
        );
    }
    if let Some(s) = v.spo2_percent
        && s < rules.spo2_low.value
    {
        raise(
            "spo2_low",
            AlarmLevel::Urgent,
            format!("SpO2 {s:.0} % < {:.0}", rules.spo2_low.value),
            true,
            &rules.spo2_low,
        );
    }
    if let Some(r) = v.respiratory_rate_per_min
        && r < rules.respiratory_rate_low.value
    {
        raise(
            "respiratory_rate_low",
            AlarmLevel::Urgent,
            format!(
                "respiratory rate {r:.0}/min < {:.0}",
                rules.respiratory_rate_low.value
            ),
            true,
            &rules.respiratory_rate_low,
        );
    }
    if let Some(m) = v.moaas
        && f64::from(m) <= rules.moaas_low.value
    {
        raise(
            "sedation_deep",
            AlarmLevel::Urgent,
            format!("MOAA/S {m} ≤ {:.0}", rules.moaas_low.value),
            true,
            &rules.moaas_low,
        );
    }
    if let Some(obs) = v.observations() {
        let score = news2(&obs);
        let rcp = Threshold {
            value: 5.0,
            source: "RCP NEWS2 2017, Chart 4: 5-6 urgent review, >= 7 emergency assessment",
            clinic_setting: false,
        };
        match score.risk {
            News2Risk::High => raise(
                "news2_high",
                AlarmLevel::Urgent,
                format!("NEWS2 {} (high)", score.total),
                true,
                &rcp,
            ),
            News2Risk::Medium => raise(
                "news2_medium",
                AlarmLevel::Warning,
                format!("NEWS2 {} (medium)", score.total),
                false,
                &rcp,
            ),
            News2Risk::Low | News2Risk::LowMedium => {}
        }
    }
    alarms
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
        let codes: Vec<_> = alarms.iter().map(|a| a.code).collect();
        assert_eq!(codes, vec!["systolic_rise", "diastolic_rise"]);
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
            alarms.iter().map(|a| a.code).collect::<Vec<_>>(),
            vec!["news2_medium"]
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
        assert!(high[0].clinic_setting && high[0].recommend_pause && high[0].level == AlarmLevel::Urgent);
    }
}
