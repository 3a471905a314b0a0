//! The clinic's time zone. Every time is stored in UTC; every time a person reads or types is the
//! clinic's wall-clock time, in one IANA zone (`America/New_York`), so a booking typed as 09:00 in
//! New York is 14:00Z in winter and 13:00Z in summer. API timestamps stay RFC 3339 with their
//! offset; only people's screens and forms use the zone.
//!
//! The zone rules come from the IANA time-zone database bundled with `jiff` (so a binary behaves
//! the same on a machine without `/usr/share/zoneinfo`). A wall-clock time that does not exist
//! (skipped when clocks go forward) or exists twice (when they go back) is refused with both
//! readings named, rather than silently moved: a clinic books at a time a person meant.

use std::sync::Arc;

use jiff::tz::{AmbiguousOffset, TimeZone};
use ketaflow_store::{NewRecord, Record, RecordChange};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime, UtcOffset};

use crate::policy::{Action, Caller};
use crate::{App, AppError};

/// The record kind of the clinic's own settings (one record, audited like every other).
pub const CLINIC_SETTINGS: &str = "clinic_settings";

/// The clinic's settings as stored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct ClinicSettingsDoc {
    /// The IANA zone an administrator chose.
    time_zone: String,
}

/// The zone in force and where it comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct ZoneInForce {
    /// The zone.
    pub zone: Arc<ClinicZone>,
    /// When an administrator set it (none: the server's `--time-zone` or the machine's).
    pub set_at: Option<OffsetDateTime>,
}

/// An IANA time zone, with its name.
#[derive(Clone, Debug)]
pub struct ClinicZone {
    name: String,
    tz: TimeZone,
}

impl PartialEq for ClinicZone {
    fn eq(&self, other: &ClinicZone) -> bool {
        self.name == other.name
    }
}

fn timestamp(t: OffsetDateTime) -> jiff::Timestamp {
    jiff::Timestamp::from_nanosecond(t.unix_timestamp_nanos()).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

fn from_timestamp(ts: jiff::Timestamp) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ts.as_nanosecond()).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl ClinicZone {
    /// The zone called `name` in the IANA database (`Europe/London`, `America/New_York`, `UTC`).
    pub fn named(name: &str) -> Result<ClinicZone, AppError> {
        let name = name.trim();
        let tz = jiff::tz::db().get(name).map_err(|_| {
            AppError::field(
                "time_zone",
                name,
                "an IANA time-zone name such as America/New_York, Europe/London or UTC",
            )
        })?;
        Ok(ClinicZone {
            name: tz.iana_name().unwrap_or(name).to_string(),
            tz,
        })
    }

    /// UTC.
    pub fn utc() -> ClinicZone {
        ClinicZone {
            name: "UTC".into(),
            tz: TimeZone::UTC,
        }
    }

    /// This machine's zone (`TZ`, else `/etc/localtime`), or UTC when it names none.
    pub fn system() -> ClinicZone {
        let tz = TimeZone::system();
        match tz.iana_name() {
            Some(name) => ClinicZone {
                name: name.to_string(),
                tz,
            },
            None => ClinicZone::utc(),
        }
    }

    /// The IANA name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The zone's offset from UTC at `t`.
    pub fn offset_at(&self, t: OffsetDateTime) -> UtcOffset {
        let seconds = self.tz.to_offset(timestamp(t)).seconds();
        UtcOffset::from_whole_seconds(seconds).unwrap_or(UtcOffset::UTC)
    }

    /// `t` as the clinic's wall clock shows it (the same instant at the local offset).
    pub fn local(&self, t: OffsetDateTime) -> OffsetDateTime {
        t.to_offset(self.offset_at(t))
    }

    /// The zone's abbreviation at `t` (`EST`, `EDT`, `GMT`, `BST`), or the offset where the
    /// database has none (`+0530`).
    pub fn abbreviation(&self, t: OffsetDateTime) -> String {
        let info = self.tz.to_offset_info(timestamp(t));
        let abbreviation = info.abbreviation();
        if abbreviation.is_empty() {
            let offset = self.offset_at(t);
            format!(
                "{:+03}{:02}",
                offset.whole_hours(),
                offset.minutes_past_hour().abs()
            )
        } else {
            abbreviation.to_string()
        }
    }

    /// What a page says once, so every time on it can be read: `America/New_York (EST)`.
    pub fn label(&self, now: OffsetDateTime) -> String {
        let abbreviation = self.abbreviation(now);
        if abbreviation == self.name {
            self.name.clone()
        } else {
            format!("{} ({abbreviation})", self.name)
        }
    }

    /// `2026-11-26 09:05`, in the clinic's zone.
    pub fn clock(&self, t: OffsetDateTime) -> String {
        let t = self.local(t);
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        )
    }

    /// `2026-11-26 09:05:07`, in the clinic's zone, where the second matters (the audit log).
    pub fn clock_seconds(&self, t: OffsetDateTime) -> String {
        format!("{}:{:02}", self.clock(t), self.local(t).second())
    }

    /// `09:05`, in the clinic's zone.
    pub fn hhmm(&self, t: OffsetDateTime) -> String {
        let t = self.local(t);
        format!("{:02}:{:02}", t.hour(), t.minute())
    }

    /// The value of a `datetime-local` input showing `t`: `2026-11-26T09:05`.
    pub fn input_value(&self, t: OffsetDateTime) -> String {
        self.clock(t).replacen(' ', "T", 1)
    }

    /// The clinic's date at `t`.
    pub fn date(&self, t: OffsetDateTime) -> Date {
        self.local(t).date()
    }

    /// A wall-clock time typed in the clinic (`2026-11-26T09:00`, `2026-11-26 09:00`, seconds
    /// optional) as the instant it names. A time skipped or repeated by a daylight-saving change is
    /// refused, naming what it could mean; `field` names the input in the error.
    pub fn parse_local(&self, field: &str, text: &str) -> Result<OffsetDateTime, AppError> {
        let typed = text.trim();
        let civil: jiff::civil::DateTime = typed.replacen(' ', "T", 1).parse().map_err(|_| {
            AppError::field(
                field,
                typed,
                format!("a date and time as YYYY-MM-DD HH:MM in {}", self.name),
            )
        })?;
        let ambiguous = self.tz.to_ambiguous_timestamp(civil);
        match ambiguous.offset() {
            AmbiguousOffset::Unambiguous { .. } => {}
            AmbiguousOffset::Gap { before, after } => {
                return Err(AppError::field(
                    field,
                    typed,
                    format!(
                        "a time that exists in {}: the clocks jump from UTC{before} to UTC{after} that night, so {typed} never happens; choose a time outside the change",
                        self.name
                    ),
                ));
            }
            AmbiguousOffset::Fold { before, after } => {
                return Err(AppError::field(
                    field,
                    typed,
                    format!(
                        "a time that happens once in {}: the clocks go back from UTC{before} to UTC{after} that night, so {typed} happens twice; choose a time outside the change",
                        self.name
                    ),
                ));
            }
        }
        let ts = ambiguous
            .compatible()
            .map_err(|e| AppError::field(field, typed, format!("a time within range ({e})")))?;
        Ok(from_timestamp(ts))
    }
}

/// Every zone name the bundled database knows, sorted (for a form's suggestions).
pub fn zone_names() -> Vec<String> {
    let mut names: Vec<String> = jiff::tz::db().available().map(|n| n.to_string()).collect();
    names.sort();
    names
}

async fn stored_settings(app: &App) -> Result<Option<(Record, ClinicSettingsDoc)>, AppError> {
    let found = app.store.list_records(CLINIC_SETTINGS, None, None, 1).await?;
    match found.into_iter().next() {
        None => Ok(None),
        Some(record) => {
            let doc = crate::records::parse(CLINIC_SETTINGS, &record)?;
            Ok(Some((record, doc)))
        }
    }
}

impl App {
    /// At start: the zone an administrator chose, if any, replaces the server's setting.
    pub async fn load_time_zone(&self) -> Result<ZoneInForce, AppError> {
        let Some((record, doc)) = stored_settings(self).await? else {
            return Ok(ZoneInForce {
                zone: self.zone(),
                set_at: None,
            });
        };
        let zone = ClinicZone::named(&doc.time_zone).map_err(|_| AppError::CorruptRecord {
            kind: CLINIC_SETTINGS,
            id: record.id.to_string(),
            reason: format!("time_zone {:?} is not in the time-zone database", doc.time_zone),
        })?;
        self.set_zone(zone);
        Ok(ZoneInForce {
            zone: self.zone(),
            set_at: Some(record.updated_at),
        })
    }

    /// The zone in force, and whether an administrator chose it.
    pub async fn time_zone(&self, caller: &Caller) -> Result<ZoneInForce, AppError> {
        caller.require(Action::ReadClinical)?;
        let set_at = stored_settings(self).await?.map(|(record, _)| record.updated_at);
        Ok(ZoneInForce {
            zone: self.zone(),
            set_at,
        })
    }

    /// An administrator sets the clinic's zone: stored and audited, in force at once for every
    /// time shown or typed from then on (stored times do not change: they are UTC).
    pub async fn set_time_zone(&self, caller: &Caller, name: &str) -> Result<ZoneInForce, AppError> {
        caller.require(Action::ManageUsers)?;
        let zone = ClinicZone::named(name)?;
        let now = self.now();
        let data = serde_json::to_value(ClinicSettingsDoc {
            time_zone: zone.name().to_string(),
        })?;
        let record = match stored_settings(self).await? {
            None => {
                let new = NewRecord {
                    kind: CLINIC_SETTINGS,
                    parent_id: None,
                    label: "clinic",
                    data: &data,
                };
                self.store
                    .insert_record_audited(&caller.actor(), "clinic.time_zone", &new, now)
                    .await?
            }
            Some((record, _)) => {
                let change = RecordChange {
                    kind: CLINIC_SETTINGS,
                    id: record.id,
                    expected_version: record.version,
                    label: "clinic",
                    data: &data,
                    lock: false,
                };
                self.store
                    .update_record_audited(&caller.actor(), "clinic.time_zone", &change, now)
                    .await?
            }
        };
        self.set_zone(zone);
        Ok(ZoneInForce {
            zone: self.zone(),
            set_at: Some(record.updated_at),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn new_york() -> ClinicZone {
        ClinicZone::named("America/New_York").unwrap()
    }

    #[test]
    fn a_booking_at_nine_in_new_york_is_fourteen_utc_in_winter_and_thirteen_in_summer() {
        let ny = new_york();
        // US daylight saving time 2026: from 8 March 02:00 EST to 1 November 02:00 EDT.
        for (typed, utc) in [
            ("2026-03-07T09:00", datetime!(2026-03-07 14:00 UTC)),
            ("2026-03-09T09:00", datetime!(2026-03-09 13:00 UTC)),
            ("2026-10-31 09:00", datetime!(2026-10-31 13:00 UTC)),
            ("2026-11-02T09:00:00", datetime!(2026-11-02 14:00 UTC)),
        ] {
            let at = ny.parse_local("scheduled_for", typed).unwrap();
            assert_eq!(at, utc, "{typed}");
            assert_eq!(
                ny.clock(at),
                typed.replace('T', " ").get(..16).unwrap(),
                "round trip"
            );
        }
        assert_eq!(ny.abbreviation(datetime!(2026-01-15 12:00 UTC)), "EST");
        assert_eq!(ny.abbreviation(datetime!(2026-07-15 12:00 UTC)), "EDT");
        assert_eq!(
            ny.label(datetime!(2026-07-15 12:00 UTC)),
            "America/New_York (EDT)"
        );
        assert_eq!(ny.hhmm(datetime!(2026-11-26 14:05 UTC)), "09:05");
        assert_eq!(
            ny.input_value(datetime!(2026-11-26 14:05 UTC)),
            "2026-11-26T09:05"
        );
    }

    #[test]
    fn a_time_the_change_skips_or_repeats_is_refused_naming_the_change() {
        let ny = new_york();
        let gap = ny.parse_local("scheduled_for", "2026-03-08T02:30").unwrap_err();
        assert!(
            gap.to_string().contains("never happens") && gap.to_string().contains("America/New_York"),
            "{gap}"
        );
        let fold = ny.parse_local("scheduled_for", "2026-11-01T01:30").unwrap_err();
        assert!(fold.to_string().contains("happens twice"), "{fold}");
        let bad = ny.parse_local("scheduled_for", "tomorrow at nine").unwrap_err();
        assert!(bad.to_string().contains("YYYY-MM-DD HH:MM"), "{bad}");
    }

    #[test]
    fn the_clinic_date_is_the_local_one() {
        let ny = new_york();
        // 02:00Z on 27 November is still the 26th in New York.
        assert_eq!(
            ny.date(datetime!(2026-11-27 02:00 UTC)),
            time::macros::date!(2026 - 11 - 26)
        );
        let kolkata = ClinicZone::named("Asia/Kolkata").unwrap();
        assert_eq!(kolkata.clock(datetime!(2026-11-26 10:00 UTC)), "2026-11-26 15:30");
        assert_eq!(kolkata.abbreviation(datetime!(2026-11-26 10:00 UTC)), "IST");
    }

    #[test]
    fn an_unknown_zone_is_refused_with_examples() {
        let e = ClinicZone::named("Mars/Olympus_Mons").unwrap_err();
        assert!(e.to_string().contains("America/New_York"), "{e}");
        assert_eq!(ClinicZone::named("UTC").unwrap().name(), "UTC");
        assert_eq!(ClinicZone::utc().label(datetime!(2026-11-26 10:05 UTC)), "UTC");
        assert_eq!(
            ClinicZone::utc().clock(datetime!(2026-11-26 10:05 UTC)),
            "2026-11-26 10:05"
        );
    }
}
