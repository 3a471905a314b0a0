//! An IHE PCD-01 (Device Enterprise Communication) ORU^R01 message read as vital-sign readings.
//!
//! What is read, and from where (IHE PCD Technical Framework Vol 2, transaction PCD-01, on HL7 v2.6
//! chapter 7; versions 2.3–2.7 are accepted where these fields exist):
//! - MSH-9 must be ORU^R01; MSH-10 (control id) is echoed in the acknowledgement; MSH-12 the version.
//! - The device is OBX-18 (equipment instance identifier, EI.1, else EI.3) of the first observation
//!   that has one, else MSH-3 (HD: its universal id, the EUI-64, else its namespace id).
//! - Each observation row: OBX-3 the code (MDC, or LOINC where a gateway sends it), OBX-5 the value
//!   (numeric rows only), OBX-6 the unit, OBX-14 the time (else OBR-7, else MSH-7), its UTC offset
//!   honoured; a time without an offset is read in the clinic's zone and said to be so.
//! - Container rows (MDS, VMD, channel: OBX-2 empty, or OBX-11 `X`) carry no value and are passed
//!   over. Rows with OBX-11 `D` (deleted) or `W` (wrong) are not values.
//! - Observations of one message at one time form one reading. Codes this crate does not know are
//!   listed (and kept in the raw message by the caller) but are not part of any reading.

use hl7_parser::Message;
use hl7_parser::datetime::TimeStamp;
use hl7_parser::message::{Field, Segment};
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::codes::{Measure, measure_of, unit_of};

/// Where in a message something is: segment, its occurrence (1-based) and field (HL7 ERL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Segment id, e.g. `OBX`.
    pub segment: &'static str,
    /// Which occurrence of the segment, from 1.
    pub occurrence: usize,
    /// Field number, from 1 (0: the segment as a whole).
    pub field: usize,
}

impl Location {
    /// As an HL7 error location (ERR-2): `OBX^3^5`.
    pub fn erl(&self) -> String {
        if self.field == 0 {
            format!("{}^{}", self.segment, self.occurrence)
        } else {
            format!("{}^{}^{}", self.segment, self.occurrence, self.field)
        }
    }
}

/// HL7 table 0357 (message error condition codes), the ones this reader answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 100: segment sequence error (a required segment missing or out of place).
    SegmentSequence,
    /// 101: required field missing.
    RequiredFieldMissing,
    /// 102: data type error (e.g. a numeric field holding text).
    DataType,
    /// 103: table value not found (e.g. a unit not allowed for the measure).
    TableValueNotFound,
    /// 200: unsupported message type.
    UnsupportedMessageType,
    /// 201: unsupported event code.
    UnsupportedEvent,
    /// 203: unsupported version id.
    UnsupportedVersion,
    /// 207: application error (the detail in ERR-5 and ERR-8).
    Application,
}

impl ErrorCode {
    /// The code and its display, as HL7 table 0357 names them (HL7 UTG cs-v2-0357, 2019).
    pub fn cwe(self) -> &'static str {
        match self {
            ErrorCode::SegmentSequence => "100^Segment sequence error^HL70357",
            ErrorCode::RequiredFieldMissing => "101^Required field missing^HL70357",
            ErrorCode::DataType => "102^Data type error^HL70357",
            ErrorCode::TableValueNotFound => "103^Table value not found^HL70357",
            ErrorCode::UnsupportedMessageType => "200^Unsupported message type^HL70357",
            ErrorCode::UnsupportedEvent => "201^Unsupported event code^HL70357",
            ErrorCode::UnsupportedVersion => "203^Unsupported version id^HL70357",
            ErrorCode::Application => "207^Application error^HL70357",
        }
    }

    /// Whether the message is rejected outright (AR: its kind or version is not one this receiver
    /// takes) rather than refused for its content (AE).
    pub fn rejects(self) -> bool {
        matches!(
            self,
            ErrorCode::UnsupportedMessageType | ErrorCode::UnsupportedEvent | ErrorCode::UnsupportedVersion
        )
    }
}

/// Why a message is not read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Pcd01Error {
    /// Not HL7 at all, or no readable MSH: answered AR without a control id to echo.
    #[error("not a readable HL7 v2 message: {0}")]
    Unreadable(String),
    /// A readable message refused for a reason named at a place in it.
    #[error("{message}")]
    Refused {
        /// Its header, to acknowledge it by.
        header: Box<Header>,
        /// Table 0357 code.
        code: ErrorCode,
        /// Where.
        location: Location,
        /// What was wrong and what is allowed, in words (ERR-8).
        message: String,
    },
}

/// The header fields an acknowledgement needs, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    /// MSH-3, as sent (raw, with its components).
    pub sending_application: String,
    /// MSH-4, as sent.
    pub sending_facility: String,
    /// MSH-5, as sent.
    pub receiving_application: String,
    /// MSH-6, as sent.
    pub receiving_facility: String,
    /// MSH-10.
    pub control_id: String,
    /// MSH-11 processing id (`P` production, `D` debugging, `T` training).
    pub processing_id: String,
    /// MSH-12 version id, e.g. `2.6`.
    pub version: String,
}

/// One observation read from an OBX row, in the measure's canonical unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Which OBX segment (from 1), for error locations.
    pub obx: usize,
    /// What it measures.
    pub measure: Measure,
    /// The value in the measure's canonical unit ([`Measure::unit`]).
    pub value: f64,
    /// When it was observed.
    pub at: OffsetDateTime,
}

/// An OBX row with a code this reader does not use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// Which OBX segment (from 1).
    pub obx: usize,
    /// OBX-3 as sent.
    pub code: String,
}

/// A PCD-01 message, read.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorMessage {
    /// Its header.
    pub header: Header,
    /// The device: OBX-18 (EI.1, else EI.3) of the first row with one, else MSH-3.
    pub device: String,
    /// Where the device id came from (`OBX^n^18` or `MSH^1^3`).
    pub device_location: Location,
    /// Every numeric observation with a known code, in message order.
    pub observations: Vec<Observation>,
    /// Rows with codes not used for readings.
    pub ignored: Vec<Ignored>,
    /// Some time had no UTC offset and was read in the clinic's zone.
    pub offset_assumed: bool,
}

/// One reading: the observations of a message at one time.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MonitorReading {
    /// When.
    pub taken_at: Option<OffsetDateTime>,
    /// Systolic BP, mmHg.
    pub systolic_mmhg: Option<f64>,
    /// Diastolic BP, mmHg.
    pub diastolic_mmhg: Option<f64>,
    /// Mean arterial BP (non-invasive), mmHg.
    pub mean_mmhg: Option<f64>,
    /// Heart rate, /min (ECG; else the pulse rate).
    pub heart_rate_per_min: Option<f64>,
    /// SpO2, %.
    pub spo2_percent: Option<f64>,
    /// Respiratory rate, /min.
    pub respiratory_rate_per_min: Option<f64>,
    /// Temperature, °C.
    pub temperature_c: Option<f64>,
    /// The OBX row each value came from, to place an error.
    pub rows: Vec<(Measure, usize)>,
}

impl MonitorReading {
    /// The OBX row a measure's value came from.
    pub fn row_of(&self, measure: Measure) -> Option<usize> {
        self.rows.iter().find(|(m, _)| *m == measure).map(|(_, row)| *row)
    }
}

impl MonitorMessage {
    /// The observations grouped by time, oldest first: one reading per distinct time. An ECG heart
    /// rate wins over a pulse rate of the same time; otherwise the first row of a measure wins
    /// (a repeated measure at one time is the monitor's duplicate).
    pub fn readings(&self) -> Vec<MonitorReading> {
        let mut times: Vec<OffsetDateTime> = self.observations.iter().map(|o| o.at).collect();
        times.sort();
        times.dedup();
        times
            .into_iter()
            .map(|at| {
                let mut r = MonitorReading {
                    taken_at: Some(at),
                    ..MonitorReading::default()
                };
                let at_time = self.observations.iter().filter(|o| o.at == at);
                // The ECG rate first, so that a pulse rate fills only a gap.
                let (ecg, rest): (Vec<&Observation>, Vec<&Observation>) =
                    at_time.partition(|o| o.measure == Measure::HeartRate);
                for o in ecg.into_iter().chain(rest) {
                    let slot = match o.measure {
                        Measure::Systolic => &mut r.systolic_mmhg,
                        Measure::Diastolic => &mut r.diastolic_mmhg,
                        Measure::MeanPressure => &mut r.mean_mmhg,
                        Measure::HeartRate | Measure::PulseRate => &mut r.heart_rate_per_min,
                        Measure::Spo2 => &mut r.spo2_percent,
                        Measure::RespiratoryRate => &mut r.respiratory_rate_per_min,
                        Measure::Temperature => &mut r.temperature_c,
                    };
                    if slot.is_none() {
                        *slot = Some(o.value);
                        r.rows.push((o.measure, o.obx));
                    }
                }
                r
            })
            .collect()
    }
}

/// A field as sent (escapes and components as they are), empty when absent.
fn raw<'m>(segment: &Segment<'m>, n: usize) -> &'m str {
    segment.field(n).map(|f| f.raw_value()).unwrap_or("")
}

/// Reads a PCD-01 ORU^R01. `local` turns a time sent without a UTC offset into an instant (the
/// clinic's zone; `None` for a local time that does not exist there).
pub fn parse(
    text: &str,
    local: &dyn Fn(PrimitiveDateTime) -> Option<OffsetDateTime>,
) -> Result<MonitorMessage, Pcd01Error> {
    // Segments end in CR; gateways that send LF or CRLF are read too.
    let message = Message::parse_with_lenient_newlines(text, true)
        .map_err(|e| Pcd01Error::Unreadable(format!("{e}")))?;
    let msh = message
        .segment("MSH")
        .filter(|s| message.segments.first().is_some_and(|first| first.name == s.name))
        .ok_or_else(|| Pcd01Error::Unreadable("the message does not begin with an MSH segment".into()))?;
    let seps = &message.separators;
    // A field's text with its escapes decoded and its delimiters as sent. (Not `Field::display`:
    // hl7-parser 0.3.0 joins components with the repetition separator there.)
    let text_of = |f: Option<&Field<'_>>| {
        f.map(|f| seps.decode(f.raw_value()).to_string())
            .unwrap_or_default()
    };
    let header = Header {
        sending_application: raw(msh, 3).to_string(),
        sending_facility: raw(msh, 4).to_string(),
        receiving_application: raw(msh, 5).to_string(),
        receiving_facility: raw(msh, 6).to_string(),
        control_id: text_of(msh.field(10)),
        processing_id: text_of(msh.field(11)),
        version: text_of(msh.field(12)),
    };
    let refused = |code, segment, occurrence, field, message: String| Pcd01Error::Refused {
        header: Box::new(header.clone()),
        code,
        location: Location {
            segment,
            occurrence,
            field,
        },
        message,
    };
    if header.control_id.is_empty() {
        return Err(refused(
            ErrorCode::RequiredFieldMissing,
            "MSH",
            1,
            10,
            "MSH-10 (message control id) is empty: it is required to acknowledge the message".into(),
        ));
    }
    let kind = msh.field(9);
    let component = |f: Option<&Field<'_>>, n: usize| {
        f.and_then(|f| f.component(n))
            .map(|c| c.display(seps).to_string())
            .unwrap_or_default()
    };
    let (message_type, event) = (component(kind, 1), component(kind, 2));
    if message_type != "ORU" {
        return Err(refused(
            ErrorCode::UnsupportedMessageType,
            "MSH",
            1,
            9,
            format!("message type {message_type:?} is not accepted; allowed: ORU (ORU^R01, IHE PCD-01)"),
        ));
    }
    if event != "R01" {
        return Err(refused(
            ErrorCode::UnsupportedEvent,
            "MSH",
            1,
            9,
            format!("event {event:?} is not accepted; allowed: R01 (ORU^R01, IHE PCD-01)"),
        ));
    }
    if !matches!(
        header.version.as_str(),
        "2.3" | "2.3.1" | "2.4" | "2.5" | "2.5.1" | "2.6" | "2.7" | "2.7.1"
    ) {
        return Err(refused(
            ErrorCode::UnsupportedVersion,
            "MSH",
            1,
            12,
            format!(
                "HL7 version {:?} is not accepted; allowed: 2.3 to 2.7 (PCD-01 is profiled on 2.6)",
                header.version
            ),
        ));
    }
    let mut offset_assumed = false;
    let mut time_of = |value: &str,
                       location: (&'static str, usize, usize)|
     -> Result<Option<OffsetDateTime>, Pcd01Error> {
        if value.is_empty() {
            return Ok(None);
        }
        let bad = || {
            refused(
                ErrorCode::DataType,
                location.0,
                location.1,
                location.2,
                format!("time {value:?} is not an HL7 date-time; allowed: YYYYMMDDHHMM[SS[.S…]][+/-ZZZZ]"),
            )
        };
        let stamp: TimeStamp = value.parse().map_err(|_| bad())?;
        let (Some(month), Some(day), Some(hour), Some(minute)) =
            (stamp.month, stamp.day, stamp.hour, stamp.minute)
        else {
            return Err(bad());
        };
        let date = time::Date::from_calendar_date(
            i32::from(stamp.year),
            time::Month::try_from(month).map_err(|_| bad())?,
            day,
        )
        .map_err(|_| bad())?;
        let clock = time::Time::from_hms_micro(
            hour,
            minute,
            stamp.second.unwrap_or(0),
            stamp.microsecond.unwrap_or(0),
        )
        .map_err(|_| bad())?;
        let local_time = PrimitiveDateTime::new(date, clock);
        match stamp.offset {
            Some(o) => {
                // The sign is the hours' ("-0330": hours -3, minutes 30).
                let sign: i32 = if o.hours < 0 { -1 } else { 1 };
                let seconds = sign * (i32::from(o.hours.unsigned_abs()) * 3600 + i32::from(o.minutes) * 60);
                let offset = UtcOffset::from_whole_seconds(seconds).map_err(|_| bad())?;
                Ok(Some(local_time.assume_offset(offset)))
            }
            None => {
                offset_assumed = true;
                local(local_time).map(Some).ok_or_else(|| {
                    refused(
                        ErrorCode::DataType,
                        location.0,
                        location.1,
                        location.2,
                        format!("time {value:?} has no UTC offset and is skipped or repeated by a daylight-saving change in the clinic's time zone; send it with its offset"),
                    )
                })
            }
        }
    };
    let message_time = time_of(&text_of(msh.field(7)), ("MSH", 1, 7))?;
    let observation_request_time = match message.segment("OBR") {
        Some(obr) => time_of(&text_of(obr.field(7)), ("OBR", 1, 7))?,
        None => None,
    };
    let mut observations = Vec::new();
    let mut ignored = Vec::new();
    let mut device: Option<(String, Location)> = None;
    for (index, obx) in message.segments().filter(|s| s.name == "OBX").enumerate() {
        let n = index + 1;
        if device.is_none() {
            let equipment = obx.field(18);
            let id = [component(equipment, 1), component(equipment, 3)]
                .into_iter()
                .find(|c| !c.is_empty());
            if let Some(id) = id {
                device = Some((
                    id,
                    Location {
                        segment: "OBX",
                        occurrence: n,
                        field: 18,
                    },
                ));
            }
        }
        let value_type = text_of(obx.field(2));
        let status = text_of(obx.field(11));
        if value_type.is_empty() || matches!(status.as_str(), "X" | "D" | "W") {
            continue;
        }
        let code_field = obx.field(3);
        let (code, name, system) = (
            component(code_field, 1),
            component(code_field, 2),
            component(code_field, 3),
        );
        let Some(measure) = measure_of(&code, &name, &system) else {
            ignored.push(Ignored {
                obx: n,
                code: raw(obx, 3).to_string(),
            });
            continue;
        };
        if value_type != "NM" {
            return Err(refused(
                ErrorCode::DataType,
                "OBX",
                n,
                2,
                format!(
                    "{} is sent as {value_type:?}; allowed: NM (a number)",
                    measure.label()
                ),
            ));
        }
        let value_text = text_of(obx.field(5));
        let value: f64 = value_text
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| {
                refused(
                    ErrorCode::DataType,
                    "OBX",
                    n,
                    5,
                    format!("{} value {value_text:?} is not a number", measure.label()),
                )
            })?;
        let unit_field = obx.field(6);
        let (unit_code, unit_name, unit_system) = (
            component(unit_field, 1),
            component(unit_field, 2),
            component(unit_field, 3),
        );
        let unit = unit_of(&unit_code, &unit_name, &unit_system)
            .filter(|u| u.dimension() == measure.unit().dimension())
            .ok_or_else(|| {
                refused(
                    ErrorCode::TableValueNotFound,
                    "OBX",
                    n,
                    6,
                    format!(
                        "unit {:?} is not one for {}; allowed: {}",
                        raw(obx, 6),
                        measure.label(),
                        measure.unit().dimension().allowed()
                    ),
                )
            })?;
        let at = time_of(&text_of(obx.field(14)), ("OBX", n, 14))?
            .or(observation_request_time)
            .or(message_time)
            .ok_or_else(|| {
                refused(
                    ErrorCode::RequiredFieldMissing,
                    "OBX",
                    n,
                    14,
                    format!(
                        "{} has no observation time (OBX-14, OBR-7 or MSH-7)",
                        measure.label()
                    ),
                )
            })?;
        observations.push(Observation {
            obx: n,
            measure,
            value: unit.to_canonical(value),
            at,
        });
    }
    let (device, device_location) = match device {
        Some(found) => found,
        None => {
            let application = msh.field(3);
            // HD: namespace ^ universal id (the EUI-64) ^ its type; the universal id when sent.
            let id = [component(application, 2), component(application, 1)]
                .into_iter()
                .find(|c| !c.is_empty())
                .ok_or_else(|| {
                    refused(
                        ErrorCode::RequiredFieldMissing,
                        "MSH",
                        1,
                        3,
                        "no device identifier: OBX-18 (equipment instance) and MSH-3 are empty".into(),
                    )
                })?;
            (
                id,
                Location {
                    segment: "MSH",
                    occurrence: 1,
                    field: 3,
                },
            )
        }
    };
    Ok(MonitorMessage {
        header,
        device,
        device_location,
        observations,
        ignored,
        offset_assumed,
    })
}

/// A PCD-01 ORU^R01 for one reading, as a monitor sends it: MSH (with the IHE PCD-01 profile in
/// MSH-21), OBR, the device's MDS row with its equipment identifier (OBX-18), and one MDC-coded
/// numeric row per value present. For the monitor simulator, tests and benchmarks.
pub fn message_for(device: &str, control_id: &str, at: OffsetDateTime, r: &MonitorReading) -> String {
    let when = crate::text::dtm(at);
    let device = crate::text::escape(device);
    let mut out = format!(
        "MSH|^~\\&|KETAFLOW_SIM^{device}^EUI-64||||{when}||ORU^R01^ORU_R01|{}|P|2.6|||NE|AL||UNICODE UTF-8|||IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO\r\
         OBR|1|||182777000^monitoring of patient^SCT|||{when}\r\
         OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X|||||||{device}^EUI-64\r",
        crate::text::escape(control_id)
    );
    let rows = [
        (
            r.systolic_mmhg,
            "150021^MDC_PRESS_BLD_NONINV_SYS^MDC",
            "266016^MDC_DIM_MMHG^MDC",
            "1.1.1.1",
        ),
        (
            r.diastolic_mmhg,
            "150022^MDC_PRESS_BLD_NONINV_DIA^MDC",
            "266016^MDC_DIM_MMHG^MDC",
            "1.1.1.2",
        ),
        (
            r.mean_mmhg,
            "150023^MDC_PRESS_BLD_NONINV_MEAN^MDC",
            "266016^MDC_DIM_MMHG^MDC",
            "1.1.1.3",
        ),
        (
            r.heart_rate_per_min,
            "147842^MDC_ECG_HEART_RATE^MDC",
            "264864^MDC_DIM_BEAT_PER_MIN^MDC",
            "1.2.1.1",
        ),
        (
            r.spo2_percent,
            "150456^MDC_PULS_OXIM_SAT_O2^MDC",
            "262688^MDC_DIM_PERCENT^MDC",
            "1.3.1.1",
        ),
        (
            r.respiratory_rate_per_min,
            "151562^MDC_RESP_RATE^MDC",
            "264928^MDC_DIM_RESP_PER_MIN^MDC",
            "1.4.1.1",
        ),
        (
            r.temperature_c,
            "150364^MDC_TEMP_BODY^MDC",
            "268192^MDC_DIM_DEGC^MDC",
            "1.5.1.1",
        ),
    ];
    let mut n = 1;
    for (value, code, unit, place) in rows {
        if let Some(v) = value {
            n += 1;
            out.push_str(&format!("OBX|{n}|NM|{code}|{place}|{v}|{unit}|||||R|||{when}\r"));
        }
    }
    out
}
