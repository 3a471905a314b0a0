//! The codes a monitor names its observations and units with, and the measures they are.
//!
//! IEEE 11073-10101 (MDC) nomenclature: a context-free code is partition × 2¹⁶ + term code
//! (ISO/IEEE 11073-10101:2004 §7.2.1); SCADA (physiological metrics) is partition 2 and DIM (units)
//! partition 4. Each code below is matched by its number or its reference id. Sources: the codes
//! and reference ids as listed in ISO/IEEE 11073-10101:2004 and used in the HL7 FHIR Point-of-Care
//! Device and Personal Health Device implementation guides and the DK Core IEEE value set
//! (hl7dk/dk-core), the GE B40 HL7 Reference Manual 2062665-001 and the IPF PCD-01 test fixtures.
//! The MDC_PRESS_CUFF_*, MDC_TEMP, kPa and °F codes are computed from their 10101:2004 term codes
//! and seen in vendor samples only (UNVERIFIED against NIST RTMMS). LOINC codes as in the FHIR
//! vital-signs profile (LOINC 2.7x; DK Core LOINC value set); UCUM units per UCUM 2.1.

/// A measure a reading takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Measure {
    /// Systolic blood pressure (non-invasive).
    Systolic,
    /// Diastolic blood pressure (non-invasive).
    Diastolic,
    /// Mean blood pressure (non-invasive).
    MeanPressure,
    /// Heart rate from the ECG.
    HeartRate,
    /// Pulse rate (oximetry or NIBP), used as the heart rate when no ECG rate is sent.
    PulseRate,
    /// SpO2 by pulse oximetry.
    Spo2,
    /// Respiratory rate.
    RespiratoryRate,
    /// Body temperature.
    Temperature,
}

impl Measure {
    /// The unit values are converted to.
    pub fn unit(self) -> Unit {
        match self {
            Measure::Systolic | Measure::Diastolic | Measure::MeanPressure => Unit::Mmhg,
            Measure::HeartRate | Measure::PulseRate | Measure::RespiratoryRate => Unit::PerMinute,
            Measure::Spo2 => Unit::Percent,
            Measure::Temperature => Unit::Celsius,
        }
    }

    /// In words.
    pub fn label(self) -> &'static str {
        match self {
            Measure::Systolic => "systolic BP",
            Measure::Diastolic => "diastolic BP",
            Measure::MeanPressure => "mean BP",
            Measure::HeartRate => "heart rate",
            Measure::PulseRate => "pulse rate",
            Measure::Spo2 => "SpO2",
            Measure::RespiratoryRate => "respiratory rate",
            Measure::Temperature => "temperature",
        }
    }
}

/// (MDC code, MDC reference id, measure).
const MDC: [(&str, &str, Measure); 14] = [
    ("150021", "MDC_PRESS_BLD_NONINV_SYS", Measure::Systolic),
    ("150022", "MDC_PRESS_BLD_NONINV_DIA", Measure::Diastolic),
    ("150023", "MDC_PRESS_BLD_NONINV_MEAN", Measure::MeanPressure),
    // Non-invasive, discontinuous (cuff): what some monitors send for NIBP.
    ("150301", "MDC_PRESS_CUFF_SYS", Measure::Systolic),
    ("150302", "MDC_PRESS_CUFF_DIA", Measure::Diastolic),
    ("150303", "MDC_PRESS_CUFF_MEAN", Measure::MeanPressure),
    ("147842", "MDC_ECG_HEART_RATE", Measure::HeartRate),
    ("149530", "MDC_PULS_OXIM_PULS_RATE", Measure::PulseRate),
    ("149546", "MDC_PULS_RATE_NON_INV", Measure::PulseRate),
    ("150456", "MDC_PULS_OXIM_SAT_O2", Measure::Spo2),
    ("151562", "MDC_RESP_RATE", Measure::RespiratoryRate),
    ("151578", "MDC_TTHOR_RESP_RATE", Measure::RespiratoryRate),
    ("150364", "MDC_TEMP_BODY", Measure::Temperature),
    ("150344", "MDC_TEMP", Measure::Temperature),
];

/// (LOINC code, measure).
const LOINC: [(&str, Measure); 8] = [
    ("8480-6", Measure::Systolic),
    ("8462-4", Measure::Diastolic),
    ("8478-0", Measure::MeanPressure),
    ("8867-4", Measure::HeartRate),
    ("59408-5", Measure::Spo2),
    ("2708-6", Measure::Spo2),
    ("9279-1", Measure::RespiratoryRate),
    ("8310-5", Measure::Temperature),
];

/// The measure of an OBX-3 (identifier, text, coding system), if this reader uses it. Invasive
/// pressures (MDC_PRESS_BLD_ART_*) are not mapped to NIBP on purpose.
pub fn measure_of(code: &str, name: &str, system: &str) -> Option<Measure> {
    match system {
        "LN" | "LOINC" => LOINC.iter().find(|(c, _)| *c == code).map(|(_, m)| *m),
        // MDC, or no coding system named: match the number or the reference id.
        _ => MDC
            .iter()
            .find(|(c, refid, _)| *c == code || (!name.is_empty() && *refid == name) || *refid == code)
            .map(|(_, _, m)| *m),
    }
}

/// What a unit measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    /// A pressure.
    Pressure,
    /// A rate per minute.
    Rate,
    /// A fraction in percent.
    Fraction,
    /// A temperature.
    Temperature,
}

impl Dimension {
    /// The units accepted for it, in words.
    pub fn allowed(self) -> &'static str {
        match self {
            Dimension::Pressure => {
                "mmHg (266016^MDC_DIM_MMHG, mm[Hg]) or kPa (265987^MDC_DIM_KILO_PASCAL, kPa)"
            }
            Dimension::Rate => "/min (264864^MDC_DIM_BEAT_PER_MIN, 264928^MDC_DIM_RESP_PER_MIN, /min)",
            Dimension::Fraction => "% (262688^MDC_DIM_PERCENT, %)",
            Dimension::Temperature => "°C (268192^MDC_DIM_DEGC, Cel) or °F (266560^MDC_DIM_FAHR, [degF])",
        }
    }
}

/// A unit a monitor sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Millimetres of mercury.
    Mmhg,
    /// Kilopascals.
    Kilopascal,
    /// Per minute (beats or breaths).
    PerMinute,
    /// Percent.
    Percent,
    /// Degrees Celsius.
    Celsius,
    /// Degrees Fahrenheit.
    Fahrenheit,
}

/// mmHg per kPa: 1 mmHg = 133.322 387 415 Pa (NIST SP 811, 2008 edition, Appendix B.8).
pub const MMHG_PER_KPA: f64 = 1000.0 / 133.322_387_415;

impl Unit {
    /// What it measures.
    pub fn dimension(self) -> Dimension {
        match self {
            Unit::Mmhg | Unit::Kilopascal => Dimension::Pressure,
            Unit::PerMinute => Dimension::Rate,
            Unit::Percent => Dimension::Fraction,
            Unit::Celsius | Unit::Fahrenheit => Dimension::Temperature,
        }
    }

    /// A value in this unit in its dimension's canonical unit (mmHg, /min, %, °C).
    pub fn to_canonical(self, value: f64) -> f64 {
        match self {
            Unit::Kilopascal => value * MMHG_PER_KPA,
            // °C = (°F − 32) × 5/9, exact by the definitions of both scales.
            Unit::Fahrenheit => (value - 32.0) * 5.0 / 9.0,
            Unit::Mmhg | Unit::PerMinute | Unit::Percent | Unit::Celsius => value,
        }
    }
}

/// (MDC code, MDC reference id, UCUM codes, unit).
const UNITS: [(&str, &str, &[&str], Unit); 7] = [
    ("266016", "MDC_DIM_MMHG", &["mm[Hg]", "mmHg"], Unit::Mmhg),
    ("265987", "MDC_DIM_KILO_PASCAL", &["kPa"], Unit::Kilopascal),
    (
        "264864",
        "MDC_DIM_BEAT_PER_MIN",
        &["/min", "{beat}/min", "{beats}/min", "bpm"],
        Unit::PerMinute,
    ),
    (
        "264928",
        "MDC_DIM_RESP_PER_MIN",
        &["/min", "{breaths}/min", "{resp}/min"],
        Unit::PerMinute,
    ),
    ("262688", "MDC_DIM_PERCENT", &["%"], Unit::Percent),
    ("268192", "MDC_DIM_DEGC", &["Cel", "°C"], Unit::Celsius),
    ("266560", "MDC_DIM_FAHR", &["[degF]", "°F"], Unit::Fahrenheit),
];

/// The unit of an OBX-6 (identifier, text, coding system), if known.
pub fn unit_of(code: &str, name: &str, system: &str) -> Option<Unit> {
    UNITS
        .iter()
        .find(|(mdc, refid, ucum, _)| match system {
            "UCUM" => ucum.contains(&code),
            _ => *mdc == code || *refid == name || *refid == code || ucum.contains(&code),
        })
        .map(|(_, _, _, unit)| *unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published codes (issue text and the sources above) map to their measures; a code is
    /// found by number or by reference id; invasive pressure is not NIBP.
    #[test]
    fn codes_name_their_measures() {
        for (code, name, system, measure) in [
            ("150021", "MDC_PRESS_BLD_NONINV_SYS", "MDC", Measure::Systolic),
            ("150022", "", "MDC", Measure::Diastolic),
            ("", "MDC_PRESS_BLD_NONINV_MEAN", "MDC", Measure::MeanPressure),
            ("147842", "MDC_ECG_HEART_RATE", "MDC", Measure::HeartRate),
            ("150456", "MDC_PULS_OXIM_SAT_O2", "MDC", Measure::Spo2),
            ("151562", "MDC_RESP_RATE", "MDC", Measure::RespiratoryRate),
            ("150364", "MDC_TEMP_BODY", "MDC", Measure::Temperature),
            ("8480-6", "Systolic blood pressure", "LN", Measure::Systolic),
            ("59408-5", "SpO2", "LN", Measure::Spo2),
            ("2708-6", "Oxygen saturation", "LN", Measure::Spo2),
        ] {
            assert_eq!(measure_of(code, name, system), Some(measure), "{code} {name}");
        }
        assert_eq!(measure_of("150033", "MDC_PRESS_BLD_ART_SYS", "MDC"), None);
        assert_eq!(
            measure_of("150021", "", "LN"),
            None,
            "an MDC number is not a LOINC code"
        );
    }

    /// Units by MDC code, reference id or UCUM; conversions: 16 kPa = 120.009 852 mmHg (16 000 / 133.322 387 415),
    /// 98.6 °F = 37.0 °C.
    #[test]
    fn units_convert_to_the_canonical_ones() {
        assert_eq!(unit_of("266016", "MDC_DIM_MMHG", "MDC"), Some(Unit::Mmhg));
        assert_eq!(unit_of("mm[Hg]", "mm[Hg]", "UCUM"), Some(Unit::Mmhg));
        assert_eq!(unit_of("{beat}/min", "{beat}/min", "UCUM"), Some(Unit::PerMinute));
        assert_eq!(unit_of("262688", "", "MDC"), Some(Unit::Percent));
        assert_eq!(unit_of("", "MDC_DIM_DEGC", "MDC"), Some(Unit::Celsius));
        assert_eq!(unit_of("ms", "ms", "UCUM"), None);
        assert!((Unit::Kilopascal.to_canonical(16.0) - 120.009_852).abs() < 1e-6);
        assert!((Unit::Fahrenheit.to_canonical(98.6) - 37.0).abs() < 1e-12);
        assert_eq!(Unit::Mmhg.to_canonical(120.0), 120.0);
    }
}
