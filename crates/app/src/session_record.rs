//! The session record for printing and export (JSON or CSV): one timeline of state changes, rates,
//! readings, alarms, side effects and assessments; the total dose given; and a summary shaped like
//! the Spravato REMS patient monitoring form (`shared/domain/product-anchors.md` §A2): BP before
//! administration, about 40 min after it and before completion, monitoring duration, sedation,
//! dissociation and respiratory depression. Every export is audited.

use ketaflow_clinic::side_effects::SideEffectKind;
use ketaflow_store::NewAuditEntry;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::policy::{Action, Caller};
use crate::records::{SESSION, TransitionKind, stored_reading};
use crate::sessions::{SessionOut, session_now};
use crate::vitals::rfc3339;
use crate::{App, AppError};

/// The form a session record is exported in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFormat {
    /// The structured record.
    Json,
    /// A spreadsheet: the summary, the REMS-style fields, then the timeline.
    Csv,
}

impl RecordFormat {
    /// `json` or `csv`.
    pub fn parse(text: &str) -> Result<RecordFormat, AppError> {
        match text {
            "json" => Ok(RecordFormat::Json),
            "csv" => Ok(RecordFormat::Csv),
            other => Err(AppError::field("format", other, "json or csv")),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            RecordFormat::Json => "json",
            RecordFormat::Csv => "csv",
        }
    }
}

/// An exported session record.
#[derive(Debug)]
pub enum RecordExport {
    /// The structured record.
    Json(Box<SessionRecordOut>),
    /// The CSV text.
    Csv(String),
}

/// One line of the timeline.
#[derive(Serialize, ToSchema, Debug, Clone)]
pub struct TimelineRow {
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// state, rate, vitals, alarm, alarm.acknowledged, alarm.resolved, side_effect, assessment.
    pub kind: String,
    /// What, in words a reader of the chart understands.
    pub detail: String,
    /// Who (user id, `device:…` for a monitor, `system`).
    pub by: String,
    /// The user's current name ("Display Name (username)") when `by` is a user id.
    pub by_name: Option<String>,
}

/// A blood pressure with when it was taken.
#[derive(Serialize, ToSchema, Debug, Clone, PartialEq)]
pub struct TimedBp {
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// Systolic, mmHg.
    pub systolic_mmhg: f64,
    /// Diastolic, mmHg.
    pub diastolic_mmhg: f64,
}

/// The REMS-style monitoring summary.
#[derive(Serialize, ToSchema, Debug, Clone)]
pub struct RemsSummary {
    /// The last BP before the infusion started.
    pub bp_before_administration: Option<TimedBp>,
    /// The BP closest to 40 min after the start, within ±10 min (Spravato REMS form).
    pub bp_at_40_min: Option<TimedBp>,
    /// The last BP before discharge (or now, for an open session).
    pub bp_before_completion: Option<TimedBp>,
    /// Minutes from the first start to discharge (or now).
    pub monitoring_min: Option<f64>,
    /// Whether monitoring lasted at least 2 h (the esketamine REMS minimum; informative for IV
    /// ketamine, whose observation time is the protocol's).
    pub monitoring_at_least_2h: Option<bool>,
    /// Minutes from the first start to the earliest discharge time the criteria gave (the form's
    /// "when would this patient have been ready to leave").
    pub ready_to_leave_min: Option<f64>,
    /// Sedation: a MOAA/S below 5 or a sedation side effect was recorded.
    pub sedation: bool,
    /// The lowest MOAA/S recorded.
    pub lowest_moaas: Option<u8>,
    /// Dissociation: a dissociation side effect was recorded.
    pub dissociation: bool,
    /// The highest CADSS-6 total recorded.
    pub highest_cadss6: Option<u8>,
    /// Respiratory depression: an SpO2 or respiratory-rate alarm was raised.
    pub respiratory_depression: bool,
    /// What the form asks for that this record does not hold.
    pub not_recorded: Vec<String>,
}

/// The whole record.
#[derive(Serialize, ToSchema, Debug)]
pub struct SessionRecordOut {
    /// The session.
    pub session: SessionOut,
    /// Ketamine given, mg (exact integral of the recorded rates).
    pub total_given_mg: f64,
    /// Time infusing, minutes.
    pub infusing_min: f64,
    /// Everything that happened, by time.
    pub timeline: Vec<TimelineRow>,
    /// The REMS-style summary.
    pub rems: RemsSummary,
}

fn bp_of(at: OffsetDateTime, data: &serde_json::Value) -> Option<TimedBp> {
    Some(TimedBp {
        at,
        systolic_mmhg: data.get("systolic_mmhg")?.as_f64()?,
        diastolic_mmhg: data.get("diastolic_mmhg")?.as_f64()?,
    })
}

async fn build(state: &App, id: Uuid, now: OffsetDateTime) -> Result<SessionRecordOut, AppError> {
    let current = session_now(state.record(SESSION, id).await?, now)?;
    let doc = &current.doc;
    let vitals = state.store.list_vitals(id).await?;
    let alarms = state.store.list_alarms(Some(id), false).await?;
    let mut timeline = Vec::new();
    for t in &doc.transitions {
        let mut detail = t.event.code().replace('_', " ");
        if let Some(stop) = &t.stop {
            detail = format!("{detail} ({stop})");
        }
        if let Some(r) = &t.reason {
            detail = format!("{detail}: {r}");
        }
        timeline.push(TimelineRow {
            at: t.at,
            kind: "state".into(),
            detail,
            by: t.by.clone(),
            by_name: None,
        });
    }
    for r in &doc.rates {
        let mut detail = format!(
            "{}: {:.2} mg/h = {:.2} mL/h = {:.3} mg/kg/h",
            r.kind, r.rate_mg_per_h, r.pump_ml_per_h, r.rate_mg_per_kg_per_h
        );
        if let Some(reason) = &r.reason {
            detail.push_str(&format!("; reason: {reason}"));
        }
        for o in &r.overrides {
            detail.push_str(&format!("; override {}: {}", o.limit, o.reason));
        }
        timeline.push(TimelineRow {
            at: r.at,
            kind: "rate".into(),
            detail,
            by: r.by.clone(),
            by_name: None,
        });
    }
    let mut lowest_moaas: Option<u8> = None;
    let mut bps = Vec::new();
    for v in &vitals {
        let r = stored_reading(&v.data)?;
        let mut parts = Vec::new();
        let mut add = |label: &str, value: Option<f64>, unit: &str| {
            if let Some(x) = value {
                parts.push(format!("{label} {x}{unit}"));
            }
        };
        if let (Some(s), Some(d)) = (r.systolic_mmhg, r.diastolic_mmhg) {
            bps.extend(bp_of(v.taken_at, &v.data));
            add("BP", Some(s), &format!("/{d} mmHg"));
        }
        add("HR", r.heart_rate_per_min, "/min");
        add("SpO2", r.spo2_percent, " %");
        add("RR", r.respiratory_rate_per_min, "/min");
        add("T", r.temperature_c, " °C");
        if let Some(c) = &r.consciousness {
            parts.push(format!("ACVPU {c}"));
        }
        if let Some(m) = r.moaas {
            parts.push(format!("MOAA/S {m}"));
            lowest_moaas = Some(lowest_moaas.map_or(m, |l| l.min(m)));
        }
        if let Some(o) = r.on_oxygen {
            parts.push(if o { "on O2".into() } else { "on air".to_string() });
        }
        if let Some(n) = v.data.get("news2").and_then(serde_json::Value::as_u64) {
            parts.push(format!("NEWS2 {n}"));
        }
        timeline.push(TimelineRow {
            at: v.taken_at,
            kind: "vitals".into(),
            detail: parts.join(", "),
            by: v.recorded_by.clone(),
            by_name: None,
        });
    }
    let mut respiratory_depression = false;
    for a in &alarms {
        if matches!(a.code.as_str(), "spo2_low" | "respiratory_rate_low") {
            respiratory_depression = true;
        }
        let message = a.data.get("message").and_then(|m| m.as_str()).unwrap_or_default();
        timeline.push(TimelineRow {
            at: a.raised_at,
            kind: "alarm".into(),
            detail: format!(
                "{} ({}): {message}; seen {} time(s)",
                a.code, a.level, a.occurrences
            ),
            by: "system".into(),
            by_name: None,
        });
        if let (Some(at), Some(by)) = (a.acknowledged_at, &a.acknowledged_by) {
            timeline.push(TimelineRow {
                at,
                kind: "alarm.acknowledged".into(),
                detail: a.code.clone(),
                by: by.clone(),
                by_name: None,
            });
        }
        if let (Some(at), Some(by)) = (a.resolved_at, &a.resolved_by) {
            timeline.push(TimelineRow {
                at,
                kind: "alarm.resolved".into(),
                detail: format!(
                    "{}: action {}{}",
                    a.code,
                    a.action.clone().unwrap_or_default(),
                    a.note.as_ref().map(|n| format!("; {n}")).unwrap_or_default()
                ),
                by: by.clone(),
                by_name: None,
            });
        }
    }
    let mut highest_cadss6: Option<u8> = None;
    let (mut dissociation, mut sedation) = (false, false);
    for e in &doc.side_effects {
        dissociation |= e.kind == SideEffectKind::Dissociation;
        sedation |= e.kind == SideEffectKind::Sedation;
        if let Some(t) = e.cadss6_total {
            highest_cadss6 = Some(highest_cadss6.map_or(t, |h| h.max(t)));
        }
        if let Some(m) = e.moaas {
            lowest_moaas = Some(lowest_moaas.map_or(m, |l| l.min(m)));
        }
        timeline.push(TimelineRow {
            at: e.onset,
            kind: "side_effect".into(),
            detail: format!(
                "{} ({}){}{}; action: {}{}",
                e.kind,
                e.severity,
                e.cadss6_total
                    .map(|t| format!(", CADSS-6 {t}"))
                    .unwrap_or_default(),
                e.moaas.map(|m| format!(", MOAA/S {m}")).unwrap_or_default(),
                e.action,
                if e.note.is_empty() {
                    String::new()
                } else {
                    format!("; {}", e.note)
                }
            ),
            by: e.recorded_by.clone(),
            by_name: None,
        });
    }
    for a in &doc.assessments {
        let mut parts = Vec::new();
        if let Some(t) = a.aldrete_total {
            parts.push(format!("modified Aldrete {t}/10"));
        }
        if let Some(m) = a.moaas {
            parts.push(format!("MOAA/S {m}"));
            lowest_moaas = Some(lowest_moaas.map_or(m, |l| l.min(m)));
        }
        if let Some(e) = a.escort_present {
            parts.push(format!("escort present: {}", if e { "yes" } else { "no" }));
        }
        timeline.push(TimelineRow {
            at: a.at,
            kind: "assessment".into(),
            detail: parts.join(", "),
            by: a.by.clone(),
            by_name: None,
        });
    }
    timeline.sort_by_key(|r| r.at);
    // Names for the user ids, read once: a printed record is read by people, not by id.
    let names: std::collections::HashMap<String, String> = state
        .store
        .list_users()
        .await?
        .into_iter()
        .map(|u| {
            (
                u.id.to_string(),
                crate::policy::person_name(&u.display_name, &u.username),
            )
        })
        .collect();
    for row in &mut timeline {
        row.by_name = names.get(&row.by).cloned();
    }
    sedation |= lowest_moaas.is_some_and(|m| m < 5);

    let start = doc.rates.first().map(|r| r.at);
    let discharged = doc
        .transitions
        .iter()
        .find(|t| t.event == TransitionKind::Discharge)
        .map(|t| t.at);
    let end = discharged.unwrap_or(now);
    let before = |limit: OffsetDateTime| bps.iter().rev().find(|b| b.at <= limit).cloned();
    let bp_at_40_min = start.and_then(|s| {
        let target = s + time::Duration::minutes(40);
        bps.iter()
            .filter(|b| (b.at - target).abs() <= time::Duration::minutes(10))
            .min_by_key(|b| (b.at - target).abs())
            .cloned()
    });
    let monitoring_min = start.map(|s| (end - s).as_seconds_f64() / 60.0);
    let ready_to_leave_min = match (
        start,
        doc.transitions.iter().any(|t| t.event == TransitionKind::Stop),
    ) {
        (Some(s), true) => state
            .assess_discharge(id, doc, now)
            .await
            .ok()
            .map(|(a, _)| (a.earliest_at - s).as_seconds_f64() / 60.0),
        _ => None,
    };
    let rems = RemsSummary {
        bp_before_administration: start.and_then(before),
        bp_at_40_min,
        bp_before_completion: before(end),
        monitoring_min,
        monitoring_at_least_2h: monitoring_min.map(|m| m >= 120.0),
        ready_to_leave_min,
        sedation,
        lowest_moaas,
        dissociation,
        highest_cadss6,
        respiratory_depression,
        not_recorded: vec![
            "vial lot number (linked through the controlled-substance ledger, not yet built)".into(),
        ],
    };
    Ok(SessionRecordOut {
        total_given_mg: current.given_mg,
        infusing_min: current.infusing_min,
        session: current.out(),
        timeline,
        rems,
    })
}

fn csv_of(record: &SessionRecordOut) -> Result<String, AppError> {
    let mut w = crate::export::CsvWriter::new();
    w.row(["at", "kind", "detail", "by", "by_name"])?;
    let doc = &record.session;
    let header = [
        ("session", record.session.id.to_string()),
        ("patient", doc.patient_name.clone()),
        ("chair", doc.chair.clone()),
        ("protocol", doc.protocol_id.clone()),
        ("plan", doc.plan_id.to_string()),
        ("state", record.session.state.to_string()),
        ("total_given_mg", format!("{:.3}", record.total_given_mg)),
        ("infusing_min", format!("{:.1}", record.infusing_min)),
    ];
    for (k, v) in header {
        w.row(["", &format!("summary.{k}"), &v, "", ""])?;
    }
    let bp = |b: &Option<TimedBp>| {
        b.as_ref().map_or("not recorded".to_string(), |b| {
            format!(
                "{}/{} mmHg at {}",
                b.systolic_mmhg,
                b.diastolic_mmhg,
                rfc3339(b.at)
            )
        })
    };
    let r = &record.rems;
    let rems = [
        ("bp_before_administration", bp(&r.bp_before_administration)),
        ("bp_at_40_min", bp(&r.bp_at_40_min)),
        ("bp_before_completion", bp(&r.bp_before_completion)),
        (
            "monitoring_min",
            r.monitoring_min.map_or("".into(), |m| format!("{m:.1}")),
        ),
        (
            "ready_to_leave_min",
            r.ready_to_leave_min.map_or("".into(), |m| format!("{m:.1}")),
        ),
        ("sedation", r.sedation.to_string()),
        ("dissociation", r.dissociation.to_string()),
        ("respiratory_depression", r.respiratory_depression.to_string()),
    ];
    for (k, v) in rems {
        w.row(["", &format!("rems.{k}"), &v, "", ""])?;
    }
    for row in &record.timeline {
        w.row([
            rfc3339(row.at),
            row.kind.clone(),
            row.detail.clone(),
            row.by.clone(),
            row.by_name.clone().unwrap_or_default(),
        ])?;
    }
    w.finish()
}

impl App {
    /// The session record in `format`, audited as an export.
    pub async fn session_record(
        &self,
        caller: &Caller,
        id: Uuid,
        format: RecordFormat,
    ) -> Result<RecordExport, AppError> {
        caller.require(Action::ReadClinical)?;
        let now = self.now();
        let record = build(self, id, now).await?;
        self.store
            .append_audit(
                &NewAuditEntry::new(now, caller.actor(), "session.export", SESSION, id.to_string())
                    .after(serde_json::json!({ "format": format.as_str() })),
            )
            .await?;
        Ok(match format {
            RecordFormat::Csv => RecordExport::Csv(csv_of(&record)?),
            RecordFormat::Json => RecordExport::Json(Box::new(record)),
        })
    }
}
