//! What a person reads: field labels instead of API paths, errors in those labels, and sources
//! without the project's internal notes. The JSON API keeps paths, codes and full sources; pages
//! say the same things in clinical words.

use std::sync::LazyLock;

use ketaflow_app::AppError;
use ketaflow_app::error::display_value;
use regex::Regex;

use crate::error::ApiError;

/// Labels of the fields people meet on forms and in errors, by the API's name for them.
const LABELS: &[(&str, &str)] = &[
    ("systolic_mmhg", "Systolic BP (mmHg)"),
    ("diastolic_mmhg", "Diastolic BP (mmHg)"),
    ("heart_rate_per_min", "Heart rate (/min)"),
    ("spo2_percent", "SpO₂ (%)"),
    ("respiratory_rate_per_min", "Respiratory rate (/min)"),
    ("temperature_c", "Temperature (°C)"),
    ("consciousness", "Consciousness (ACVPU)"),
    ("moaas", "MOAA/S"),
    ("on_oxygen", "On oxygen"),
    ("taken_at", "Time taken"),
    ("idempotency_key", "Reading key"),
    ("dose_mg_per_kg", "Dose (mg/kg)"),
    ("rate_mg_per_kg_per_h", "Rate (mg/kg/h)"),
    ("mg_per_session", "Dose per session (mg)"),
    ("pump_ml_per_h", "Pump rate (mL/h)"),
    ("duration_min", "Infusion time (min)"),
    ("concentration_mg_per_ml", "Concentration (mg/mL)"),
    ("adjusted_dose_per_kg", "Adjusted dose (mg/kg)"),
    ("weight_kg", "Weight (kg)"),
    ("height_cm", "Height (cm)"),
    ("date_of_birth", "Date of birth"),
    ("mrn", "Record number"),
    ("sex", "Sex"),
    ("name", "Name"),
    ("scheduled_for", "Booked for"),
    ("chair", "Chair"),
    ("plan_id", "Plan"),
    ("protocol_id", "Protocol"),
    ("session_id", "Session"),
    ("fasting_confirmed", "Fasting confirmed"),
    ("escort_confirmed", "Escort confirmed"),
    ("consent_on_file", "Consent on file"),
    ("questionnaire_answered", "Questionnaire answered"),
    (
        "questionnaire_waived_reason",
        "Reason the questionnaire is waived",
    ),
    ("escort_present", "Escort present"),
    ("override_discharge", "Discharge before the criteria are met"),
    ("reason", "Reason"),
    ("note", "Note"),
    ("action", "Action taken"),
    ("kind", "Kind"),
    ("severity", "Severity"),
    ("stop", "How the infusion ended"),
    ("substance", "Substance"),
    ("reaction", "Reaction"),
    ("onset", "Onset"),
    ("symptoms", "Symptoms"),
    ("instrument", "Questionnaire"),
    ("instruments", "Questionnaires"),
    ("answered_at", "Answered at"),
    ("daily_dose_mg", "Daily dose (mg)"),
    ("dose_mg", "Dose (mg)"),
    ("patch_ug_per_h", "Patch strength (µg/h)"),
    ("times_per_day", "Times a day"),
    ("every_hours", "Every (hours)"),
    ("last_session_on", "Last session on"),
    ("volume_ml", "Volume (mL)"),
    ("quantity_mg", "Quantity (mg)"),
    ("strength_mg_per_ml", "Strength (mg/mL)"),
    ("containers", "Containers"),
    ("lot", "Lot number"),
    ("expiry", "Expiry date"),
    ("ndc", "NDC"),
    ("product_name", "Product"),
    ("invoice_number", "Invoice number"),
    ("dea_number", "DEA number"),
    ("business_time", "Business time"),
    ("witnesses", "Witnesses"),
    ("username", "Username"),
    ("display_name", "Name shown"),
    ("role", "Role"),
    ("password", "Password"),
    ("new_password", "New password"),
    ("current_password", "Current password"),
    ("time_zone", "Time zone"),
    ("search", "Search"),
];

/// The label of an API field path: its last part (`readings[0].spo2_percent` → `spo2_percent`,
/// `checks.fasting_confirmed` → `fasting_confirmed`) by [`LABELS`], else that part in words
/// (`vial_id` → "Vial id").
pub fn field_label(path: &str) -> String {
    let leaf = path.rsplit('.').next().unwrap_or(path);
    let leaf = leaf.split('[').next().unwrap_or(leaf);
    if let Some((_, label)) = LABELS.iter().find(|(name, _)| *name == leaf) {
        return (*label).to_string();
    }
    let mut words = leaf.replace('_', " ");
    if let Some(first) = words.get(0..1) {
        words.replace_range(0..1, &first.to_uppercase());
    }
    words
}

/// An error as a page says it: a refused field by its label ("SpO₂ (%): 140 is not accepted;
/// allowed: 50–100"); everything else in its own words, which name no paths.
pub fn page_message(error: &ApiError) -> String {
    match error.app() {
        Some(AppError::InvalidField {
            field,
            value,
            allowed,
        }) => {
            let shown = display_value(value);
            let shown = if shown.is_empty() {
                "nothing".to_string()
            } else {
                shown
            };
            format!(
                "{}: {shown} is not accepted; allowed: {allowed}",
                field_label(field)
            )
        }
        _ => error.to_string(),
    }
}

/// The project's notes to itself inside a source: a file of `shared/domain/` and its section.
static INTERNAL_REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"`?(?:shared/domain/)?(?:clinical|pharmacology|product-anchors)\.md`?(?:\s*(?:section|§|Gaps)\s*[0-9A-Za-z.]*[0-9A-Za-z])?(?:\s+arithmetic)?",
    )
    .expect("a valid pattern")
});

/// A source as a clinician reads it: the citation and what it says, without the project's
/// references to its own notes; "UNVERIFIED" said in words. The API's `source` keeps the whole.
pub fn for_readers(source: &str) -> String {
    let text = INTERNAL_REFERENCE.replace_all(source, "");
    let mut text = text
        .replace("citation UNVERIFIED", "citation not yet confirmed")
        .replace("UNVERIFIED", "not yet confirmed");
    // Tidy what the removal left: empty brackets, doubled or dangling separators.
    loop {
        let before = text.clone();
        for (from, to) in [
            ("()", ""),
            ("( ", "("),
            (" )", ")"),
            (", )", ")"),
            ("; )", ")"),
            (",)", ")"),
            (";)", ")"),
            ("(, ", "("),
            ("(; ", "("),
            (", ,", ","),
            ("; ;", ";"),
            (", ;", ";"),
            ("  ", " "),
            (" ,", ","),
            (" ;", ";"),
        ] {
            text = text.replace(from, to);
        }
        if text == before {
            break;
        }
    }
    text.trim()
        .trim_end_matches([',', ';'])
        .trim_start_matches([',', ';'])
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_named_by_label_not_path() {
        assert_eq!(field_label("readings[0].spo2_percent"), "SpO₂ (%)");
        assert_eq!(field_label("readings[3].consciousness"), "Consciousness (ACVPU)");
        assert_eq!(field_label("dose_mg_per_kg"), "Dose (mg/kg)");
        assert_eq!(field_label("checks.fasting_confirmed"), "Fasting confirmed");
        assert_eq!(field_label("supplier.dea_number"), "DEA number");
        assert_eq!(field_label("vials[2].vial_id"), "Vial id");
        let e = ApiError::field("readings[0].spo2_percent", 140.0, "50–100");
        assert_eq!(page_message(&e), "SpO₂ (%): 140 is not accepted; allowed: 50–100");
        let e = ApiError::field("weight_kg", "", "a number (required)");
        assert_eq!(
            page_message(&e),
            "Weight (kg): nothing is not accepted; allowed: a number (required)"
        );
    }

    #[test]
    fn sources_lose_internal_notes_and_keep_citations() {
        for (stored, read) in [
            (
                "modified Aldrete score (Aldrete JA, J Clin Anesth 1995;7:89-91, citation UNVERIFIED; clinical.md section 4.1)",
                "modified Aldrete score (Aldrete JA, J Clin Anesth 1995;7:89-91, citation not yet confirmed)",
            ),
            (
                "clinic setting: no consensus threshold exists for subanaesthetic ketamine (clinical.md section 3.2)",
                "clinic setting: no consensus threshold exists for subanaesthetic ketamine",
            ),
            (
                "MOAA/S (Chernik DA et al. J Clin Psychopharmacol 1990;10:244-251; clinical.md section 5.3)",
                "MOAA/S (Chernik DA et al. J Clin Psychopharmacol 1990;10:244-251)",
            ),
            (
                "cognitive effects are a listed risk of repeated ketamine; no guideline interval exists (clinical.md section 8, UNVERIFIED)",
                "cognitive effects are a listed risk of repeated ketamine; no guideline interval exists (not yet confirmed)",
            ),
            (
                "Spravato PI contraindications; extension to IV ketamine is a clinic decision (`shared/domain/clinical.md` §2)",
                "Spravato PI contraindications; extension to IV ketamine is a clinic decision",
            ),
            ("clinical.md Gaps 12", ""),
            (
                "PADSS uses within 20 % of the pre-operative value (Chung 1995, clinical.md section 4.2)",
                "PADSS uses within 20 % of the pre-operative value (Chung 1995)",
            ),
            (
                "Spravato PI 2019, section 2.1 (40 min)",
                "Spravato PI 2019, section 2.1 (40 min)",
            ),
        ] {
            assert_eq!(for_readers(stored), read, "{stored}");
        }
    }
}
