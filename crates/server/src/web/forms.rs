//! Posted forms: the CSRF check, typed access to fields with errors that name the field, and the
//! state a refused form is re-rendered with (what was typed, what was wrong, next to the field).

use ketaflow_app::AppError;
use std::collections::HashMap;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::WebUser;
use crate::error::ApiError;
use crate::state::AppState;

/// A form's fields as posted (`application/x-www-form-urlencoded`). A field posted twice keeps its
/// last value; an unchecked checkbox is absent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct FormData(pub HashMap<String, String>);

impl FormData {
    /// The field's text, trimmed; empty when absent.
    pub fn text(&self, name: &str) -> String {
        self.0.get(name).map(|v| v.trim().to_string()).unwrap_or_default()
    }

    /// The field exactly as sent, not trimmed: for passwords, whose spaces are part of them.
    pub fn raw(&self, name: &str) -> String {
        self.0.get(name).cloned().unwrap_or_default()
    }

    /// The field's text, or `None` when absent or blank.
    pub fn optional(&self, name: &str) -> Option<String> {
        Some(self.text(name)).filter(|v| !v.is_empty())
    }

    /// Whether a checkbox was ticked.
    pub fn checked(&self, name: &str) -> bool {
        self.0.get(name).is_some_and(|v| !v.is_empty() && v != "off")
    }

    /// A number, or `None` when blank; text that is not a number is a field error.
    pub fn number(&self, name: &str) -> Result<Option<f64>, ApiError> {
        match self.optional(name) {
            None => Ok(None),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .map(Some)
                .ok_or_else(|| ApiError::field(name, v, "a number")),
        }
    }

    /// A whole number 0–255, or `None` when blank.
    pub fn small(&self, name: &str, allowed: &str) -> Result<Option<u8>, ApiError> {
        match self.optional(name) {
            None => Ok(None),
            Some(v) => v
                .parse::<u8>()
                .map(Some)
                .map_err(|_| ApiError::field(name, v, allowed)),
        }
    }

    /// A number that must be there.
    pub fn required_number(&self, name: &str) -> Result<f64, ApiError> {
        self.number(name)?
            .ok_or_else(|| ApiError::field(name, "", "a number (required)"))
    }
}

/// A form post from a logged-in user whose CSRF token matched.
#[derive(Debug)]
pub struct Posted {
    /// Who posted.
    pub user: WebUser,
    /// The fields (without the CSRF token).
    pub form: FormData,
}

impl FromRequest<AppState> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Posted, Response> {
        let (mut parts, body) = req.into_parts();
        let user = WebUser::from_request_parts(&mut parts, state).await?;
        let req = Request::from_parts(parts, body);
        let axum::Form(mut form) = axum::Form::<FormData>::from_request(req, state)
            .await
            .map_err(|e| (StatusCode::BAD_REQUEST, e.body_text()).into_response())?;
        let token = form.0.remove("csrf").unwrap_or_default();
        if !same_secret(&token, &user.csrf) {
            return Err(super::message_page(
                StatusCode::FORBIDDEN,
                "this form is out of date or did not come from Ketaflow (CSRF token missing or wrong); \
                 reload the page and try again"
                    .into(),
            ));
        }
        Ok(Posted { user, form })
    }
}

/// The state of one form on a page: the values to show, a message, and errors by field.
#[derive(Debug, Clone, Default)]
pub struct FormState {
    /// Which form on the page this state belongs to (several forms share a page).
    pub name: String,
    /// What was typed.
    pub values: FormData,
    /// The server's answer, in words.
    pub message: Option<String>,
    /// Errors next to fields: field name → what is allowed.
    pub errors: HashMap<String, String>,
}

impl FormState {
    /// A form refused by the server: keep what was typed and place the error by its field.
    pub fn refused(values: FormData, error: &ApiError) -> FormState {
        let mut errors = HashMap::new();
        if let Some(AppError::InvalidField { field, allowed, .. }) = error.app() {
            // Nested API fields (checks.fasting_confirmed, aldrete.spo2) are shown by their leaf.
            let leaf = field.rsplit('.').next().unwrap_or(field);
            errors.insert(leaf.to_string(), format!("allowed: {allowed}"));
        }
        FormState {
            name: String::new(),
            values,
            message: Some(super::words::page_message(error)),
            errors,
        }
    }

    /// The same, for the named form on a page with several.
    pub fn refused_named(name: &str, values: FormData, error: &ApiError) -> FormState {
        FormState {
            name: name.to_string(),
            ..FormState::refused(values, error)
        }
    }

    /// Whether this state belongs to the named form.
    pub fn is(&self, name: &str) -> bool {
        self.name == name
    }

    /// The typed value of a field (empty when none).
    pub fn value(&self, field: &str) -> String {
        self.values.0.get(field).cloned().unwrap_or_default()
    }

    /// The typed value of a field in the named form, or `default` when this is another form's state.
    pub fn value_in(&self, form: &str, field: impl AsRef<str>, default: &str) -> String {
        if self.is(form) {
            self.values.0.get(field.as_ref()).cloned().unwrap_or_default()
        } else {
            default.to_string()
        }
    }

    /// Whether `value` was the option chosen for a field of the named form (for `selected`).
    pub fn chose(&self, form: &str, field: &str, value: &str) -> bool {
        self.is(form) && self.values.0.get(field).is_some_and(|v| v == value)
    }

    /// Whether a checkbox of the named form was ticked.
    pub fn ticked(&self, form: &str, field: &str) -> bool {
        self.is(form) && self.values.checked(field)
    }

    /// The error for a field of the named form (empty when none).
    pub fn error_in(&self, form: &str, field: impl AsRef<str>) -> String {
        if self.is(form) {
            self.errors.get(field.as_ref()).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    }

    /// The error for a field (empty when none).
    pub fn error(&self, field: &str) -> String {
        self.errors.get(field).cloned().unwrap_or_default()
    }

    /// The message for the named form (empty when none).
    pub fn message_in(&self, form: &str) -> String {
        if self.is(form) {
            self.message.clone().unwrap_or_default()
        } else {
            String::new()
        }
    }
}

/// Whether two secrets (form tokens) are equal, compared in constant time for equal lengths.
pub(crate) fn same_secret(presented: &str, expected: &str) -> bool {
    presented.len() == expected.len()
        && presented
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> FormData {
        FormData(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn fields_are_read_with_errors_that_name_them() {
        let f = form(&[("sbp", " 142 "), ("hr", "fast"), ("blank", ""), ("o2", "on")]);
        assert_eq!(f.number("sbp").unwrap(), Some(142.0));
        assert_eq!(f.number("blank").unwrap(), None);
        assert_eq!(f.number("absent").unwrap(), None);
        let e = f.number("hr").unwrap_err().to_string();
        assert_eq!(e, "hr fast is outside a number");
        assert!(f.checked("o2"));
        assert!(!f.checked("absent"));
        assert!(f.required_number("blank").is_err());
    }

    #[test]
    fn a_refused_form_keeps_its_values_and_puts_the_error_by_the_leaf_field() {
        let values = form(&[("spo2", "140")]);
        let e = ApiError::field("readings.0.spo2_percent", 140.0, "50–100");
        let s = FormState::refused_named("vitals", values, &e);
        assert_eq!(s.value_in("vitals", "spo2", ""), "140");
        assert_eq!(s.value_in("other", "spo2", "x"), "x");
        assert_eq!(s.error_in("vitals", "spo2_percent"), "allowed: 50–100");
        assert_eq!(s.error_in("other", "spo2_percent"), "");
        assert!(s.message_in("vitals").contains("140"));
    }
}
