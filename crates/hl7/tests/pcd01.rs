//! PCD-01 messages as monitors and gateways send them, read into readings; refusals name the field.

use ketaflow_hl7::ack::{AckCode, AckError, acknowledgement, escape};
use ketaflow_hl7::{ErrorCode, Location, Measure, Pcd01Error, parse};
use time::macros::{datetime, offset};
use time::{OffsetDateTime, PrimitiveDateTime};

/// A clinic in New York in winter (UTC−5) for times sent without an offset.
fn new_york(t: PrimitiveDateTime) -> Option<OffsetDateTime> {
    Some(t.assume_offset(offset!(-5)))
}

/// A multi-parameter monitor's message in the PCD-01 layout (MDS/VMD/channel container rows,
/// MDC codes and units, the equipment instance in OBX-18), segments ending in CR.
fn monitor_message(control_id: &str, spo2: &str) -> String {
    [
        "MSH|^~\\&|KF_GATEWAY^0012A3FFFE45B6C7^EUI-64|Clinic|||20261207143000+0000||ORU^R01^ORU_R01|CTRL|P|2.6|||NE|AL||UNICODE UTF-8|||IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO".replace("CTRL", control_id).as_str(),
        "PID|||KF-1001^^^Ketaflow^MR||Morgan^Alex",
        "PV1||O|INFUSION^^CHAIR1",
        "OBR|1|1^KF_GATEWAY|1^KF_GATEWAY|182777000^monitoring of patient^SCT|||20261207142955+0000",
        "OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X|||||||0012A3FFFE45B6C7^EUI-64",
        "OBX|2|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1.1.1.1|132|266016^MDC_DIM_MMHG^MDC|||||R|||20261207142950+0000",
        "OBX|3|NM|150022^MDC_PRESS_BLD_NONINV_DIA^MDC|1.1.1.2|84|266016^MDC_DIM_MMHG^MDC|||||R|||20261207142950+0000",
        "OBX|4|NM|150023^MDC_PRESS_BLD_NONINV_MEAN^MDC|1.1.1.3|100|266016^MDC_DIM_MMHG^MDC|||||R|||20261207142950+0000",
        "OBX|5|NM|147842^MDC_ECG_HEART_RATE^MDC|1.2.1.1|78|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R|||20261207142955+0000",
        "OBX|6|NM|149530^MDC_PULS_OXIM_PULS_RATE^MDC|1.3.1.1|80|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R|||20261207142955+0000",
        &format!("OBX|7|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.3.1.2|{spo2}|262688^MDC_DIM_PERCENT^MDC|||||R|||20261207142955+0000"),
        "OBX|8|NM|151562^MDC_RESP_RATE^MDC|1.4.1.1|14|264928^MDC_DIM_RESP_PER_MIN^MDC|||||R|||20261207142955+0000",
        "OBX|9|NM|150488^MDC_BLD_PERF_INDEX^MDC|1.3.1.3|2.4|262688^MDC_DIM_PERCENT^MDC|||||R|||20261207142955+0000",
    ]
    .join("\r")
        + "\r"
}

#[test]
fn a_monitor_message_is_one_reading_per_time_in_canonical_units() {
    let m = parse(&monitor_message("MSG-1", "97"), &new_york).unwrap();
    assert_eq!(m.header.control_id, "MSG-1");
    assert_eq!(m.header.version, "2.6");
    assert_eq!(m.device, "0012A3FFFE45B6C7");
    assert_eq!(m.device_location.erl(), "OBX^1^18");
    assert!(!m.offset_assumed);
    // The perfusion index is not a vital sign this clinic charts: listed, not read.
    assert_eq!(m.ignored.len(), 1);
    assert_eq!(m.ignored[0].obx, 9);
    let readings = m.readings();
    assert_eq!(readings.len(), 2, "{readings:?}");
    // 14:29:50 UTC: the cuff pressure.
    assert_eq!(readings[0].taken_at, Some(datetime!(2026-12-07 14:29:50 UTC)));
    assert_eq!(
        (
            readings[0].systolic_mmhg,
            readings[0].diastolic_mmhg,
            readings[0].mean_mmhg
        ),
        (Some(132.0), Some(84.0), Some(100.0))
    );
    assert_eq!(readings[0].heart_rate_per_min, None);
    // 14:29:55 UTC: the ECG rate wins over the oximeter's pulse rate of the same time.
    let r = &readings[1];
    assert_eq!(r.taken_at, Some(datetime!(2026-12-07 14:29:55 UTC)));
    assert_eq!(
        (r.heart_rate_per_min, r.spo2_percent, r.respiratory_rate_per_min),
        (Some(78.0), Some(97.0), Some(14.0))
    );
    assert_eq!(r.row_of(Measure::Spo2), Some(7));
    assert_eq!(r.row_of(Measure::HeartRate), Some(5));
}

/// A gateway that sends LOINC codes, UCUM units, kPa and °F, LF line ends, a time without its UTC
/// offset (read in the clinic's zone) and no OBX-18 (the device is MSH-3's universal id).
#[test]
fn loinc_ucum_other_units_and_local_times_are_read() {
    let text = [
        "MSH|^~\\&|VITALS_GW^00A0370098006640^EUI-64||||||ORU^R01|G-77|P|2.5.1",
        "OBR|1||||||20261207093000",
        "OBX|1|NM|8480-6^Systolic blood pressure^LN||16|kPa^kPa^UCUM|||||F",
        "OBX|2|NM|8462-4^Diastolic blood pressure^LN||10.5|kPa^kPa^UCUM|||||F",
        "OBX|3|NM|8310-5^Body temperature^LN||98.6|[degF]^degF^UCUM|||||F",
        "OBX|4|NM|9279-1^Respiratory rate^LN||12|/min^per minute^UCUM|||||F",
    ]
    .join("\n");
    let m = parse(&text, &new_york).unwrap();
    assert_eq!(m.device, "00A0370098006640");
    assert_eq!(m.device_location.erl(), "MSH^1^3");
    assert!(m.offset_assumed);
    let readings = m.readings();
    assert_eq!(readings.len(), 1);
    let r = &readings[0];
    // 09:30 in New York (UTC−5) is 14:30 UTC.
    assert_eq!(r.taken_at, Some(datetime!(2026-12-07 14:30 UTC)));
    // 16 kPa = 120.009 852 mmHg; 10.5 kPa = 78.756 465 mmHg (1 mmHg = 133.322 387 415 Pa).
    assert!((r.systolic_mmhg.unwrap() - 120.009_852).abs() < 1e-6);
    assert!((r.diastolic_mmhg.unwrap() - 78.756_465).abs() < 1e-6);
    assert!((r.temperature_c.unwrap() - 37.0).abs() < 1e-12);
    assert_eq!(r.respiratory_rate_per_min, Some(12.0));
}

#[test]
fn offsets_are_honoured_to_the_minute() {
    let text = "MSH|^~\\&|MON^AABBCCDDEEFF0011^EUI-64||||||ORU^R01|T1|P|2.6\rOBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||95|262688^MDC_DIM_PERCENT^MDC|||||R|||20261207100000-0330\r";
    let r = parse(text, &new_york).unwrap().readings();
    assert_eq!(r[0].taken_at, Some(datetime!(2026-12-07 13:30 UTC)));
}

fn refusal(text: &str) -> (ErrorCode, String, String) {
    match parse(text, &new_york) {
        Err(Pcd01Error::Refused {
            code,
            location,
            message,
            ..
        }) => (code, location.erl(), message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn refusals_name_the_field_and_what_is_allowed() {
    let base = monitor_message("MSG-2", "97");
    // SpO2 as text: a data type error at OBX-7's value.
    let (code, at, message) = refusal(&monitor_message("MSG-3", "ninety"));
    assert_eq!((code, at.as_str()), (ErrorCode::DataType, "OBX^7^5"));
    assert_eq!(message, "SpO2 value \"ninety\" is not a number");
    // A pressure in a unit that is not one.
    let (code, at, message) =
        refusal(&base.replace("132|266016^MDC_DIM_MMHG^MDC", "132|262688^MDC_DIM_PERCENT^MDC"));
    assert_eq!((code, at.as_str()), (ErrorCode::TableValueNotFound, "OBX^2^6"));
    assert!(
        message.starts_with("unit \"262688^MDC_DIM_PERCENT^MDC\" is not one for systolic BP; allowed: mmHg"),
        "{message}"
    );
    // Not an ORU^R01.
    let (code, at, _) = refusal(&base.replace("ORU^R01^ORU_R01", "ADT^A01^ADT_A01"));
    assert_eq!(
        (code, at.as_str()),
        (ErrorCode::UnsupportedMessageType, "MSH^1^9")
    );
    assert!(code.rejects());
    let (code, _, _) = refusal(&base.replace("|P|2.6|", "|P|3.0|"));
    assert_eq!(code, ErrorCode::UnsupportedVersion);
    // No control id: it cannot be acknowledged by it.
    let (code, at, _) = refusal(&base.replace("|MSG-2|", "||"));
    assert_eq!((code, at.as_str()), (ErrorCode::RequiredFieldMissing, "MSH^1^10"));
    assert!(!code.rejects());
    // A time that is not one.
    let (code, at, _) = refusal(&base.replace("20261207142955+0000\rOBX|6", "2026-12-07T14:29\rOBX|6"));
    assert_eq!((code, at.as_str()), (ErrorCode::DataType, "OBX^5^14"));
}

#[test]
fn what_is_not_hl7_is_unreadable() {
    for text in ["", "hello", "PID|||1\rMSH|^~\\&|X"] {
        assert!(
            matches!(parse(text, &new_york), Err(Pcd01Error::Unreadable(_))),
            "{text:?}"
        );
    }
}

#[test]
fn acknowledgements_echo_the_control_id_and_carry_the_error() {
    let m = parse(&monitor_message("MSG-9", "97"), &new_york).unwrap();
    let now = datetime!(2026-12-07 14:30:01 UTC);
    let aa = acknowledgement(Some(&m.header), "KETAFLOW", AckCode::Accept, None, now, "ACK-1");
    assert_eq!(
        aa,
        "MSH|^~\\&|KETAFLOW||KF_GATEWAY^0012A3FFFE45B6C7^EUI-64|Clinic|20261207143001+0000||ACK^R01^ACK|ACK-1|P|2.6\rMSA|AA|MSG-9\r"
    );
    let error = AckError {
        code: ErrorCode::Application,
        location: Some(Location {
            segment: "OBX",
            occurrence: 7,
            field: 5,
        }),
        application_code: Some("VALUE_OUT_OF_RANGE"),
        message: "SpO2 140 is not a plausible reading: allowed 50–100 | retry".into(),
    };
    let ae = acknowledgement(
        Some(&m.header),
        "KETAFLOW",
        AckCode::Error,
        Some(&error),
        now,
        "ACK-2",
    );
    assert!(ae.ends_with(
        "MSA|AE|MSG-9\rERR||OBX^7^5|207^Application error^HL70357|E|VALUE_OUT_OF_RANGE^value out of range^L|||SpO2 140 is not a plausible reading: allowed 50–100 \\F\\ retry\r"
    ), "{ae}");
    let ar = acknowledgement(None, "KETAFLOW", AckCode::Reject, None, now, "ACK-3");
    assert!(ar.ends_with("MSA|AR|\r"), "{ar}");
    assert_eq!(escape("a|b^c&d~e\\f\rg"), "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f g");
}

/// A control id with a component delimiter in it comes back as sent, escaped in the ACK.
#[test]
fn a_control_id_is_echoed_exactly() {
    let text = "MSH|^~\\&|MON^AABBCCDDEEFF0011^EUI-64||||20261207100000+0000||ORU^R01|A^B|P|2.6\r";
    let m = parse(text, &new_york).unwrap();
    assert_eq!(m.header.control_id, "A^B");
    let ack = acknowledgement(
        Some(&m.header),
        "KETAFLOW",
        AckCode::Accept,
        None,
        datetime!(2026-12-07 10:00 UTC),
        "K1",
    );
    assert!(ack.ends_with("MSA|AA|A\\S\\B\r"), "{ack}");
}

/// What the simulator sends is read back as the reading it was made from.
#[test]
fn a_built_message_reads_back_as_its_reading() {
    let reading = ketaflow_hl7::MonitorReading {
        systolic_mmhg: Some(131.0),
        diastolic_mmhg: Some(83.0),
        heart_rate_per_min: Some(74.0),
        spo2_percent: Some(97.0),
        respiratory_rate_per_min: Some(15.0),
        ..Default::default()
    };
    let at = datetime!(2026-12-07 14:30:05 UTC);
    let text = ketaflow_hl7::pcd01::message_for("DEMO-MON-1", "SIM-1", at, &reading);
    let m = parse(&text, &new_york).unwrap();
    assert_eq!(
        (m.device.as_str(), m.header.control_id.as_str()),
        ("DEMO-MON-1", "SIM-1")
    );
    let back = m.readings();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].taken_at, Some(at));
    assert_eq!(
        (
            back[0].systolic_mmhg,
            back[0].diastolic_mmhg,
            back[0].heart_rate_per_min,
            back[0].spo2_percent,
            back[0].respiratory_rate_per_min,
            back[0].temperature_c
        ),
        (Some(131.0), Some(83.0), Some(74.0), Some(97.0), Some(15.0), None)
    );
}
