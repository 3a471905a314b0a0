//! Acknowledgements (HL7 v2 original mode): `MSH`, `MSA` with the original message's control id,
//! and an `ERR` segment for an error (v2.5+ layout: ERR-2 location, ERR-3 table 0357 code, ERR-4
//! severity, ERR-5 application error code, ERR-8 user message).

use time::OffsetDateTime;

use crate::pcd01::{ErrorCode, Header, Location};
pub use crate::text::{dtm, escape};

/// MSA-1 (HL7 table 0008).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckCode {
    /// Application accept: the readings are committed.
    Accept,
    /// Application error: the message was read but not accepted; nothing was stored.
    Error,
    /// Application reject: not a message this receiver takes (unreadable, wrong type or version).
    Reject,
}

impl AckCode {
    /// `AA`, `AE` or `AR`.
    pub fn code(self) -> &'static str {
        match self {
            AckCode::Accept => "AA",
            AckCode::Error => "AE",
            AckCode::Reject => "AR",
        }
    }
}

/// An error an acknowledgement reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckError {
    /// Table 0357.
    pub code: ErrorCode,
    /// Where, when known.
    pub location: Option<Location>,
    /// The application's own code (ERR-5, a local table), e.g. `UNKNOWN_DEVICE`.
    pub application_code: Option<&'static str>,
    /// What was wrong and what is allowed, in words (ERR-8).
    pub message: String,
}

/// The acknowledgement of a message with `header` (none when even its MSH could not be read), as
/// `receiver` (our MSH-3), at `now`, with its own control id `ack_id`. Segments end in CR.
pub fn acknowledgement(
    header: Option<&Header>,
    receiver: &str,
    code: AckCode,
    error: Option<&AckError>,
    now: OffsetDateTime,
    ack_id: &str,
) -> String {
    let empty = Header::default();
    let h = header.unwrap_or(&empty);
    let version = if h.version.is_empty() {
        "2.6"
    } else {
        h.version.as_str()
    };
    let processing = if h.processing_id.is_empty() {
        "P"
    } else {
        h.processing_id.as_str()
    };
    // The sender and receiver swap: our MSH-5/6 are its MSH-3/4, as it sent them.
    let mut out = format!(
        "MSH|^~\\&|{}||{}|{}|{}||ACK^R01^ACK|{}|{}|{}\r",
        escape(receiver),
        h.sending_application,
        h.sending_facility,
        dtm(now),
        escape(ack_id),
        escape(processing),
        escape(version),
    );
    out.push_str(&format!("MSA|{}|{}\r", code.code(), escape(&h.control_id)));
    if let Some(e) = error {
        let severity = "E";
        out.push_str(&format!(
            "ERR||{}|{}|{}|{}|||{}\r",
            e.location.map(|l| l.erl()).unwrap_or_default(),
            e.code.cwe(),
            severity,
            e.application_code
                .map(|c| format!("{c}^{}^L", escape(&c.replace('_', " ").to_lowercase())))
                .unwrap_or_default(),
            escape(&e.message),
        ));
    }
    out
}
