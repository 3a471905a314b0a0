//! NEWS2 (Royal College of Physicians 2017, ISBN 978-1-86016-682-2; Chart 1 and Chart 4), scored
//! exactly from the RCP table in `shared/domain/clinical.md` §3.3, and the modified Aldrete score
//! (Aldrete 1995; §4.1).
//!
//! NEWS2 was designed for ward deterioration, not a 40-minute ketamine infusion, where expected
//! transient BP and HR rises score: it is a supporting score, never the stop rule.

/// Level of consciousness (ACVPU).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consciousness {
    /// Alert.
    Alert,
    /// New confusion.
    NewConfusion,
    /// Responds to voice.
    Voice,
    /// Responds to pain.
    Pain,
    /// Unresponsive.
    Unresponsive,
}

impl Consciousness {
    /// In words, as a nurse charts it.
    pub fn label(self) -> &'static str {
        match self {
            Consciousness::Alert => "alert",
            Consciousness::NewConfusion => "new confusion",
            Consciousness::Voice => "responds to voice",
            Consciousness::Pain => "responds to pain",
            Consciousness::Unresponsive => "unresponsive",
        }
    }

    /// How far from alert, 0 (alert) to 4 (unresponsive), in ACVPU order: which of two readings
    /// is worse.
    pub fn depth(self) -> u8 {
        match self {
            Consciousness::Alert => 0,
            Consciousness::NewConfusion => 1,
            Consciousness::Voice => 2,
            Consciousness::Pain => 3,
            Consciousness::Unresponsive => 4,
        }
    }
}

/// Which SpO2 scale applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpO2Scale {
    /// Scale 1: the usual scale.
    Scale1,
    /// Scale 2: target 88–92 % (e.g. hypercapnic respiratory failure), prescribed by a clinician.
    Scale2,
}

/// One complete set of observations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Observations {
    /// Respiration rate, breaths/min.
    pub respiration_rate_per_min: f64,
    /// SpO2, %.
    pub spo2_percent: f64,
    /// Which SpO2 scale.
    pub spo2_scale: SpO2Scale,
    /// On supplemental oxygen (true) or air.
    pub on_oxygen: bool,
    /// Systolic BP, mmHg.
    pub systolic_mmhg: f64,
    /// Pulse, beats/min.
    pub pulse_per_min: f64,
    /// Consciousness.
    pub consciousness: Consciousness,
    /// Temperature, °C.
    pub temperature_c: f64,
}

/// The clinical risk band (RCP Chart 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum News2Risk {
    /// Aggregate 0–4 with no single parameter scoring 3.
    Low,
    /// Aggregate 0–4 but a single parameter scores 3: urgent ward-based response.
    LowMedium,
    /// Aggregate 5–6: urgent review.
    Medium,
    /// Aggregate 7 or more: emergency assessment.
    High,
}

/// A NEWS2 result.
#[derive(Clone, Debug, PartialEq)]
pub struct News2 {
    /// The aggregate score, 0–20.
    pub total: u8,
    /// Per-parameter scores, in chart order.
    pub parts: [(&'static str, u8); 7],
    /// The risk band.
    pub risk: News2Risk,
}

fn respiration(rr: f64) -> u8 {
    // ≤8: 3; 9–11: 1; 12–20: 0; 21–24: 2; ≥25: 3. Rates are whole breaths; round first.
    match rr.round() as i64 {
        ..=8 => 3,
        9..=11 => 1,
        12..=20 => 0,
        21..=24 => 2,
        _ => 3,
    }
}

fn spo2(value: f64, scale: SpO2Scale, on_oxygen: bool) -> u8 {
    let s = value.round() as i64;
    match scale {
        // ≤91: 3; 92–93: 2; 94–95: 1; ≥96: 0.
        SpO2Scale::Scale1 => match s {
            ..=91 => 3,
            92..=93 => 2,
            94..=95 => 1,
            _ => 0,
        },
        // ≤83: 3; 84–85: 2; 86–87: 1; 88–92 or ≥93 on air: 0; 93–94 on O2: 1; 95–96 on O2: 2; ≥97 on O2: 3.
        SpO2Scale::Scale2 => match s {
            ..=83 => 3,
            84..=85 => 2,
            86..=87 => 1,
            88..=92 => 0,
            _ if !on_oxygen => 0,
            93..=94 => 1,
            95..=96 => 2,
            _ => 3,
        },
    }
}

fn systolic(sbp: f64) -> u8 {
    // ≤90: 3; 91–100: 2; 101–110: 1; 111–219: 0; ≥220: 3.
    match sbp.round() as i64 {
        ..=90 => 3,
        91..=100 => 2,
        101..=110 => 1,
        111..=219 => 0,
        _ => 3,
    }
}

fn pulse(hr: f64) -> u8 {
    // ≤40: 3; 41–50: 1; 51–90: 0; 91–110: 1; 111–130: 2; ≥131: 3.
    match hr.round() as i64 {
        ..=40 => 3,
        41..=50 => 1,
        51..=90 => 0,
        91..=110 => 1,
        111..=130 => 2,
        _ => 3,
    }
}

fn temperature(t: f64) -> u8 {
    // ≤35.0: 3; 35.1–36.0: 1; 36.1–38.0: 0; 38.1–39.0: 1; ≥39.1: 2. Tenths of a degree.
    match (t * 10.0).round() as i64 {
        ..=350 => 3,
        351..=360 => 1,
        361..=380 => 0,
        381..=390 => 1,
        _ => 2,
    }
}

/// Scores one complete set of observations.
pub fn news2(o: &Observations) -> News2 {
    let parts = [
        ("respiration_rate", respiration(o.respiration_rate_per_min)),
        ("spo2", spo2(o.spo2_percent, o.spo2_scale, o.on_oxygen)),
        // Air or oxygen: oxygen scores 2.
        ("air_or_oxygen", if o.on_oxygen { 2 } else { 0 }),
        ("systolic_bp", systolic(o.systolic_mmhg)),
        ("pulse", pulse(o.pulse_per_min)),
        // Alert 0; new confusion, voice, pain or unresponsive 3.
        (
            "consciousness",
            if o.consciousness == Consciousness::Alert {
                0
            } else {
                3
            },
        ),
        ("temperature", temperature(o.temperature_c)),
    ];
    let total: u8 = parts.iter().map(|(_, s)| s).sum();
    let risk = if total >= 7 {
        News2Risk::High
    } else if total >= 5 {
        News2Risk::Medium
    } else if parts.iter().any(|(_, s)| *s == 3) {
        News2Risk::LowMedium
    } else {
        News2Risk::Low
    };
    News2 { total, parts, risk }
}

/// Modified Aldrete score items, each 0–2 (Aldrete 1995; clinical.md §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Aldrete {
    /// Activity: 2 = moves 4 extremities, 1 = 2, 0 = none.
    pub activity: u8,
    /// Respiration: 2 = breathes deeply and coughs, 1 = dyspnoea or shallow, 0 = apnoeic.
    pub respiration: u8,
    /// Circulation: 2 = BP within ±20 mmHg of baseline, 1 = ±20–50, 0 = beyond ±50.
    pub circulation: u8,
    /// Consciousness: 2 = fully awake, 1 = arousable on calling, 0 = not responding.
    pub consciousness: u8,
    /// SpO2: 2 = > 92 % on air, 1 = needs O2 to stay > 90 %, 0 = < 90 % with O2.
    pub spo2: u8,
}

/// Discharge threshold of the modified Aldrete score (≥ 9; thecalculator.co, Miller's Anesthesia).
pub const ALDRETE_DISCHARGE_MIN: u8 = 9;

impl Aldrete {
    /// The total, 0–10; `None` when an item is outside 0–2.
    pub fn total(&self) -> Option<u8> {
        let items = [
            self.activity,
            self.respiration,
            self.circulation,
            self.consciousness,
            self.spo2,
        ];
        items.iter().all(|i| *i <= 2).then(|| items.iter().sum())
    }

    /// Whether the score allows discharge (≥ 9).
    pub fn allows_discharge(&self) -> bool {
        self.total().is_some_and(|t| t >= ALDRETE_DISCHARGE_MIN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal() -> Observations {
        Observations {
            respiration_rate_per_min: 16.0,
            spo2_percent: 98.0,
            spo2_scale: SpO2Scale::Scale1,
            on_oxygen: false,
            systolic_mmhg: 125.0,
            pulse_per_min: 72.0,
            consciousness: Consciousness::Alert,
            temperature_c: 36.8,
        }
    }

    #[test]
    fn every_band_boundary_of_the_rcp_chart() {
        for (rr, s) in [
            (8.0, 3),
            (9.0, 1),
            (11.0, 1),
            (12.0, 0),
            (20.0, 0),
            (21.0, 2),
            (24.0, 2),
            (25.0, 3),
        ] {
            assert_eq!(respiration(rr), s, "RR {rr}");
        }
        for (v, s) in [(91.0, 3), (92.0, 2), (93.0, 2), (94.0, 1), (95.0, 1), (96.0, 0)] {
            assert_eq!(spo2(v, SpO2Scale::Scale1, false), s, "SpO2 {v}");
        }
        for (v, o2, s) in [
            (83.0, false, 3),
            (84.0, false, 2),
            (86.0, false, 1),
            (88.0, true, 0),
            (92.0, true, 0),
            (97.0, false, 0),
            (93.0, true, 1),
            (94.0, true, 1),
            (95.0, true, 2),
            (96.0, true, 2),
            (97.0, true, 3),
        ] {
            assert_eq!(spo2(v, SpO2Scale::Scale2, o2), s, "scale 2 SpO2 {v} O2 {o2}");
        }
        for (v, s) in [
            (90.0, 3),
            (91.0, 2),
            (100.0, 2),
            (101.0, 1),
            (110.0, 1),
            (111.0, 0),
            (219.0, 0),
            (220.0, 3),
        ] {
            assert_eq!(systolic(v), s, "SBP {v}");
        }
        for (v, s) in [
            (40.0, 3),
            (41.0, 1),
            (50.0, 1),
            (51.0, 0),
            (90.0, 0),
            (91.0, 1),
            (110.0, 1),
            (111.0, 2),
            (130.0, 2),
            (131.0, 3),
        ] {
            assert_eq!(pulse(v), s, "HR {v}");
        }
        for (v, s) in [
            (35.0, 3),
            (35.1, 1),
            (36.0, 1),
            (36.1, 0),
            (38.0, 0),
            (38.1, 1),
            (39.0, 1),
            (39.1, 2),
        ] {
            assert_eq!(temperature(v), s, "T {v}");
        }
    }

    #[test]
    fn totals_and_risk_bands() {
        let n = news2(&normal());
        assert_eq!((n.total, n.risk), (0, News2Risk::Low));
        // A single 3 (new confusion) with an aggregate of 3: low-medium.
        let confused = news2(&Observations {
            consciousness: Consciousness::NewConfusion,
            ..normal()
        });
        assert_eq!((confused.total, confused.risk), (3, News2Risk::LowMedium));
        // HR 115 (2) + SBP 105 (1) + RR 22 (2) = 5: medium.
        let medium = news2(&Observations {
            pulse_per_min: 115.0,
            systolic_mmhg: 105.0,
            respiration_rate_per_min: 22.0,
            ..normal()
        });
        assert_eq!((medium.total, medium.risk), (5, News2Risk::Medium));
        // On oxygen (2) with SpO2 91 (3) and RR 26 (3) = 8: high.
        let high = news2(&Observations {
            on_oxygen: true,
            spo2_percent: 91.0,
            respiration_rate_per_min: 26.0,
            ..normal()
        });
        assert_eq!((high.total, high.risk), (8, News2Risk::High));
        // The maximum is 20.
        let worst = news2(&Observations {
            respiration_rate_per_min: 30.0,
            spo2_percent: 80.0,
            spo2_scale: SpO2Scale::Scale1,
            on_oxygen: true,
            systolic_mmhg: 80.0,
            pulse_per_min: 150.0,
            consciousness: Consciousness::Unresponsive,
            temperature_c: 34.0,
        });
        assert_eq!(worst.total, 20);
    }

    #[test]
    fn aldrete_discharge_at_nine() {
        let full = Aldrete {
            activity: 2,
            respiration: 2,
            circulation: 2,
            consciousness: 2,
            spo2: 2,
        };
        assert_eq!(full.total(), Some(10));
        assert!(full.allows_discharge());
        let nine = Aldrete {
            consciousness: 1,
            ..full
        };
        assert!(nine.allows_discharge());
        let eight = Aldrete {
            consciousness: 1,
            circulation: 1,
            ..full
        };
        assert!(!eight.allows_discharge());
        assert_eq!(Aldrete { spo2: 3, ..full }.total(), None);
    }
}
