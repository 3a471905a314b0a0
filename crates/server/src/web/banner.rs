//! The patient banner: who this is, on every screen about one patient (chart, plan, new plan,
//! session), so that a nurse at a chair never acts on the wrong person or misses an allergy.

use ketaflow_app::clinic_time::ClinicZone;
use ketaflow_app::intake::PatientOut;
use ketaflow_app::outcomes::RiskAlertOut;
use time::OffsetDateTime;

use super::WebUser;
use super::patients::num;
use crate::error::ApiError;
use crate::state::AppState;

/// What the banner shows.
#[derive(Debug, Clone)]
pub struct PatientBanner {
    /// The chart's address.
    pub patient_id: String,
    /// Name.
    pub name: String,
    /// Date of birth and age: `1984-05-12 (42 y)`.
    pub born: String,
    /// Record number, or "—".
    pub mrn: String,
    /// The latest weight with its date, or a warning that none is recorded.
    pub weight: String,
    /// Each allergy in words: `penicillin — hives (moderate)`.
    pub allergies: Vec<String>,
    /// An allergy to ketamine is recorded.
    pub ketamine_allergy: bool,
    /// Open suicide-risk alerts, in words.
    pub alerts: Vec<String>,
}

/// The banner for `patient` at `now`, with the open risk alerts among `open_alerts` that are theirs.
pub fn patient_banner(
    zone: &ClinicZone,
    now: OffsetDateTime,
    patient: &PatientOut,
    open_alerts: &[RiskAlertOut],
) -> PatientBanner {
    let age = time::Date::parse(
        &patient.date_of_birth,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map(|born| ketaflow_clinic::patient::age_on(born, zone.date(now)).get())
    .map_or_else(|_| String::new(), |years| format!(" ({years} y)"));
    let weight = patient.weights.iter().max_by(|a, b| a.on.cmp(&b.on)).map_or_else(
        || "none recorded".to_string(),
        |w| format!("{} kg on {}", num(w.value, 1), w.on),
    );
    PatientBanner {
        patient_id: patient.id.to_string(),
        name: patient.display_name.clone(),
        born: format!("{}{age}", patient.date_of_birth),
        mrn: patient
            .mrn
            .clone()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "—".into()),
        weight,
        allergies: patient
            .allergies
            .iter()
            .map(|a| format!("{} — {} ({})", a.substance, a.reaction, a.severity))
            .collect(),
        ketamine_allergy: patient.allergies.iter().any(|a| a.ketamine),
        alerts: open_alerts
            .iter()
            .filter(|a| a.doc.patient_id == patient.id)
            .map(|a| format!("suicide-risk alert open since {}", zone.clock(a.doc.raised_at)))
            .collect(),
    }
}

/// The banner for `patient` as `user` sees the page now (one read of the open alerts).
pub async fn load_banner(
    state: &AppState,
    user: &WebUser,
    patient: &PatientOut,
) -> Result<PatientBanner, ApiError> {
    let open = state.risk_alerts(&user.me.caller(), true).await?;
    Ok(patient_banner(&user.zone, user.now, patient, &open))
}
