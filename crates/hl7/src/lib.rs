//! HL7 v2 for bedside monitors, with no I/O of its own: MLLP framing ([`mllp`]), an IHE PCD-01
//! ORU^R01 read as readings in canonical units ([`pcd01`], [`codes`]), and the acknowledgement
//! ([`ack`]). The listener that uses them is an edge of the application layer (see
//! ARCHITECTURE.md); this crate decides nothing clinical: plausibility, alarms and where a reading
//! belongs are the app's and `clinic`'s.

pub mod ack;
pub mod codes;
pub mod mllp;
pub mod pcd01;
pub mod text;

pub use ack::{AckCode, AckError, acknowledgement};
pub use codes::{Measure, Unit};
pub use pcd01::{ErrorCode, Header, Location, MonitorMessage, MonitorReading, Pcd01Error, parse};
