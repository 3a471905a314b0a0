//! The web application: server-rendered pages for every workflow, an edge beside the JSON API.
//!
//! Pages call the application layer (`ketaflow_app`), as the JSON handlers do and never through
//! them, so a rule enforced for an API client is enforced for a browser in the same place, and the
//! audit trail is the same. What this module adds is the
//! browser's concerns: the login cookie, a CSRF token on every form, redirect-after-post, forms that
//! keep what was typed when the server refuses them and say what is wrong next to the field.
//!
//! **Invariant:** nothing clinical travels in a URL. Pages are addressed by opaque record ids;
//! searches and every write are POSTed forms.

pub mod admin;
pub mod banner;
pub mod board;
pub mod devices;
pub mod forms;
pub mod ledger;
pub mod patients;
pub mod plans;
pub mod risk;
pub mod session;
pub mod words;

use askama::Template;
use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use ketaflow_app::AppError;
use ketaflow_store::Role;
use sha2::{Digest, Sha256};

use crate::auth::{CurrentUser, presented_token};
use crate::error::ApiError;
use crate::policy::{Action, allowed};
use crate::state::AppState;
pub use forms::{FormData, FormState, Posted};
use ketaflow_app::accounts::{ChangePasswordIn, LoggedIn, LoginIn};

/// Every page route.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/board") }))
        .route("/login", get(login_page).post(login_submit))
        .route("/logout", post(logout))
        .route("/password", get(password_page).post(password_submit))
        .route("/static/app.css", get(stylesheet))
        .route("/static/live.js", get(live_script))
        .merge(board::routes())
        .merge(devices::routes())
        .merge(session::routes())
        .merge(patients::routes())
        .merge(plans::routes())
        .merge(risk::routes())
        .merge(admin::routes())
        .merge(ledger::routes())
}

/// The logged-in browser user and the CSRF token their forms must carry.
#[derive(Debug, Clone)]
pub struct WebUser {
    /// The user, as the API sees them.
    pub me: CurrentUser,
    /// This session's CSRF token (derived from the session cookie; see [`csrf_token`]).
    pub csrf: String,
    /// The clinic's notice for every page, if any.
    pub banner: Option<String>,
    /// Open suicide-risk alerts, counted for the menu (0 for roles without clinical access).
    pub open_risk_alerts: usize,
    /// The clinic's time zone: every time on the page is shown, and every time typed is read, in it.
    pub zone: std::sync::Arc<ketaflow_app::clinic_time::ClinicZone>,
    /// When the page was asked for (the clinic clock).
    pub now: time::OffsetDateTime,
}

/// The CSRF token of a session: SHA-256 of the session token under a fixed label. The session
/// token itself lives only in an HttpOnly cookie, so script on another origin can neither read it
/// nor compute this; a forged form post lacks it and is refused.
pub fn csrf_token(raw_session_token: &str) -> String {
    hex::encode(Sha256::digest(format!("ketaflow-csrf\0{raw_session_token}")))
}

impl FromRequestParts<AppState> for WebUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<WebUser, Response> {
        let raw = presented_token(&parts.headers).unwrap_or_default();
        let me = match CurrentUser::from_request_parts(parts, state).await {
            Ok(me) => me,
            Err(ApiError::App(AppError::Unauthenticated)) => {
                return Err(Redirect::to("/login").into_response());
            }
            Err(e) => return Err(error_page(&e)),
        };
        if me.user.must_change_password && parts.uri.path() != "/password" {
            return Err(Redirect::to("/password").into_response());
        }
        // Counted on every page so an open alert is never out of sight; a count that cannot be
        // read fails the page rather than showing none.
        let open_risk_alerts = if allowed(me.user.role, Action::ReadClinical) && !me.user.must_change_password
        {
            state
                .open_risk_alert_count(&me.caller())
                .await
                .map_err(|e| error_page(&ApiError::from(e)))?
        } else {
            0
        };
        Ok(WebUser {
            csrf: csrf_token(&raw),
            me,
            banner: state.settings.banner.clone(),
            open_risk_alerts,
            zone: state.zone(),
            now: state.now(),
        })
    }
}

impl WebUser {
    /// The page chrome for this user, with `nav` marking the current section.
    pub fn chrome(&self, nav: &'static str, title: impl Into<String>) -> Chrome {
        let role = self.me.user.role;
        Chrome {
            title: title.into(),
            nav,
            user_name: self.me.user.display_name.clone(),
            role: role.as_str(),
            csrf: self.csrf.clone(),
            banner: self.banner.clone(),
            open_risk_alerts: self.open_risk_alerts,
            zone: self.zone.label(self.now),
            can_clinical: allowed(role, Action::ReadClinical),
            can_ledger: allowed(role, Action::ReadLedger),
            can_admin: allowed(role, Action::ManageUsers),
            can_audit: allowed(role, Action::ReadAudit),
        }
    }

    /// Whether this user's role may do `action` (to show or hide a form; the handler checks again).
    pub fn may(&self, action: Action) -> bool {
        !self.me.user.must_change_password && allowed(self.me.user.role, action)
    }

    /// The user's role.
    pub fn role(&self) -> Role {
        self.me.user.role
    }
}

/// What every page's frame shows: the title, the navigation, who is logged in, the CSRF token.
#[derive(Debug, Clone)]
pub struct Chrome {
    /// The page title.
    pub title: String,
    /// The current navigation section.
    pub nav: &'static str,
    /// The user's display name.
    pub user_name: String,
    /// The user's role.
    pub role: &'static str,
    /// The CSRF token for forms.
    pub csrf: String,
    /// The clinic's notice (a demo clinic, a simulated clock).
    pub banner: Option<String>,
    /// Open suicide-risk alerts (the menu shows the count).
    pub open_risk_alerts: usize,
    /// The zone every time on the page is in, said once: `America/New_York (EST)`.
    pub zone: String,
    /// Whether the clinical sections are shown.
    pub can_clinical: bool,
    /// Whether the ledger is shown.
    pub can_ledger: bool,
    /// Whether user administration is shown.
    pub can_admin: bool,
    /// Whether the audit view is shown.
    pub can_audit: bool,
}

/// Renders a template into a response.
pub fn render<T: Template>(page: &T) -> Response {
    render_with_status(StatusCode::OK, page)
}

/// Renders a template with a status (a form refused by the server is answered 422 with the form).
pub fn render_with_status<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(html) => {
            let mut response = (status, Html(html)).into_response();
            // Pages hold clinical data: never cache them, never frame them.
            let headers = response.headers_mut();
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; style-src 'self'; img-src 'self' data:; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
                ),
            );
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    status: u16,
    message: String,
}

/// An error as a page: what went wrong, in words, with the API's status code.
pub fn error_page(error: &ApiError) -> Response {
    let status = error.status();
    match error.app() {
        // The page says it has been logged: log it, with the cause the page withholds.
        Some(AppError::Internal(cause)) => tracing::error!(%cause, "page failed"),
        Some(AppError::CorruptRecord { kind, id, reason }) => {
            tracing::error!(kind, id, reason, "page failed: stored record cannot be read")
        }
        _ => {}
    }
    let message = if status.is_server_error() {
        "Something failed inside the server; it has been logged. Nothing was changed.".to_string()
    } else {
        words::page_message(error)
    };
    message_page(status, message)
}

/// A page that says why a request was refused, with its status.
pub fn message_page(status: StatusCode, message: String) -> Response {
    render_with_status(
        status,
        &ErrorPage {
            status: status.as_u16(),
            message,
        },
    )
}

/// A page handler's result: a page, a redirect, or an error page.
pub type PageResult = Result<Response, Response>;

/// Turns an API error into its error page (for `?`).
pub fn page_err(error: impl Into<ApiError>) -> Response {
    error_page(&error.into())
}

/// 303 See Other: the answer to a successful form post.
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

// ---- Login, logout, password --------------------------------------------------------------------

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    username: String,
    message: Option<String>,
    /// The login form's own CSRF token (there is no session yet to derive one from).
    login_csrf: String,
}

/// The cookie that pairs a login form with the browser it was sent to (double submit): a form
/// posted from another site carries no such cookie (SameSite=Strict) and cannot know its value.
const LOGIN_CSRF_COOKIE: &str = "ketaflow_login";

/// A login page with a fresh form token, and the cookie that carries it.
fn login_form(status: StatusCode, username: String, message: Option<String>) -> Response {
    let login_csrf = crate::auth::new_token();
    let mut response = render_with_status(
        status,
        &LoginPage {
            username,
            message,
            login_csrf: login_csrf.clone(),
        },
    );
    let cookie = format!(
        "{LOGIN_CSRF_COOKIE}={login_csrf}; HttpOnly; Secure; SameSite=Strict; Path=/login; Max-Age=3600"
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

async fn login_page() -> Response {
    login_form(StatusCode::OK, String::new(), None)
}

async fn login_submit(
    State(state): State<AppState>,
    client: crate::extract::ClientAddr,
    headers: axum::http::HeaderMap,
    form: axum::Form<FormData>,
) -> Response {
    let form = form.0;
    let username = form.text("username");
    // The form's token must match its cookie; otherwise nothing is checked and nothing written.
    let sent = form.text("login_csrf");
    let paired = crate::auth::cookie(&headers, LOGIN_CSRF_COOKIE)
        .is_some_and(|c| c.len() == 64 && forms::same_secret(&sent, &c));
    if !paired {
        return login_form(
            StatusCode::FORBIDDEN,
            username,
            Some("This login form has expired or was not sent by this site. Please log in again.".into()),
        );
    }
    let body = LoginIn {
        username: username.clone(),
        password: form.raw("password"),
    };
    match state.login(body, client.0).await.map_err(ApiError::from) {
        Ok(LoggedIn { token, ttl, .. }) => {
            let mut response = see_other("/board");
            if let Ok(cookie) = HeaderValue::from_str(&crate::auth::session_cookie(&token, ttl)) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            // The form token has served its purpose.
            let spent =
                format!("{LOGIN_CSRF_COOKIE}=; HttpOnly; Secure; SameSite=Strict; Path=/login; Max-Age=0");
            if let Ok(v) = HeaderValue::from_str(&spent) {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
            response
        }
        Err(e) => login_form(e.status(), username, Some(e.to_string())),
    }
}

async fn logout(State(state): State<AppState>, posted: Posted) -> Response {
    // A logout without a valid token still clears the cookie.
    let me = &posted.user.me;
    let _ = state.logout(&me.caller(), &me.token_hash).await;
    let mut response = see_other("/login");
    if let Ok(v) = HeaderValue::from_str(&crate::auth::clear_cookie()) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage {
    chrome: Chrome,
    form: FormState,
    forced: bool,
}

async fn password_page(user: WebUser) -> Response {
    render(&PasswordPage {
        forced: user.me.user.must_change_password,
        chrome: user.chrome("password", "Change password"),
        form: FormState::default(),
    })
}

async fn password_submit(State(state): State<AppState>, posted: Posted) -> Response {
    let Posted { user, form } = posted;
    let body = ChangePasswordIn {
        current_password: form.raw("current_password"),
        new_password: form.raw("new_password"),
    };
    match state
        .change_password(&user.me.caller(), &user.me.token_hash, body)
        .await
        .map_err(ApiError::from)
    {
        Ok(_) => see_other("/board"),
        Err(e) => render_with_status(
            e.status(),
            &PasswordPage {
                forced: user.me.user.must_change_password,
                chrome: user.chrome("password", "Change password"),
                // Passwords are never echoed back into the form.
                form: FormState::refused(FormData::default(), &e),
            },
        ),
    }
}

// ---- Static assets --------------------------------------------------------------------------------

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../static/app.css"),
    )
        .into_response()
}

async fn live_script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../static/live.js"),
    )
        .into_response()
}

/// Formats a number with a fixed count of decimals, for tables and labels.
pub fn fixed(value: f64, decimals: usize) -> String {
    format!("{value:.decimals$}")
}
