//! `/auth/*` and `/users/*`: logging in and out, API tokens, and user administration.

use crate::extract::Path;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use ketaflow_store::{NewUser, Role, TokenKind, User};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{self, CurrentUser};
use crate::error::{ApiError, ErrorBody, json_rejection};
use crate::policy::Action;
use crate::state::AppState;

/// A user as the API shows it (never the password hash).
#[derive(Serialize, Deserialize, ToSchema, Debug, PartialEq)]
pub struct UserOut {
    /// User id.
    pub id: Uuid,
    /// Login name.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// administrator, physician, nurse or viewer.
    pub role: String,
    /// Whether the account is disabled.
    pub disabled: bool,
    /// The password was set by someone else and must be changed before anything else.
    pub must_change_password: bool,
}

impl From<&User> for UserOut {
    fn from(u: &User) -> UserOut {
        UserOut {
            id: u.id,
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            role: u.role.as_str().into(),
            disabled: u.disabled,
            must_change_password: u.must_change_password,
        }
    }
}

/// Login request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginIn {
    /// Login name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// Log in: sets the HttpOnly session cookie.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginIn,
    responses((status = 200, body = UserOut), (status = 401, body = ErrorBody), (status = 423, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    body: Result<Json<LoginIn>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(json_rejection)?;
    if state.login_limiter.check_key(&body.username).is_err() {
        return Err(ApiError::Throttled);
    }
    let now = state.now();
    let Some(user) = state.store.get_user_by_username(&body.username).await? else {
        // Same work as a real check, so timing does not reveal whether the username exists.
        auth::verify_password(&body.password, auth::dummy_hash());
        return Err(ApiError::BadCredentials);
    };
    if user.is_locked(now) {
        let until = user.locked_until.map(|t| t.to_string()).unwrap_or_default();
        return Err(ApiError::Locked { until });
    }
    if user.disabled || !auth::verify_password(&body.password, &user.password_hash) {
        if !user.disabled {
            let after = state
                .store
                .record_login_failure(user.id, now, state.settings.lockout)
                .await?;
            if after.is_locked(now) {
                let until = after.locked_until.map(|t| t.to_string()).unwrap_or_default();
                return Err(ApiError::Locked { until });
            }
        }
        return Err(ApiError::BadCredentials);
    }
    state.store.record_login_success(user.id).await?;
    let ttl = state.settings.session_ttl;
    let raw = auth::issue_token(&state, &user, TokenKind::Browser, now, ttl, None).await?;
    Ok((
        [(header::SET_COOKIE, auth::session_cookie(&raw, ttl))],
        Json(UserOut::from(&user)),
    )
        .into_response())
}

/// Log out: revokes this session or token and clears the cookie.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(State(state): State<AppState>, me: CurrentUser) -> Result<Response, ApiError> {
    state
        .store
        .revoke_token_audited(
            &me.actor(),
            "auth.logout",
            me.user.id,
            &me.token_hash,
            state.now(),
        )
        .await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, auth::clear_cookie())],
    )
        .into_response())
}

/// Who am I.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", responses((status = 200, body = UserOut), (status = 401, body = ErrorBody)))]
pub async fn me(me: CurrentUser) -> Json<UserOut> {
    Json(UserOut::from(&me.user))
}

/// A request for an API token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenIn {
    /// A name for the token, e.g. "monitor bridge".
    pub label: String,
    /// Lifetime in days (1–365; default 90).
    pub days: Option<i64>,
}

/// A new API token; the raw token is shown only here.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenOut {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// When it expires (RFC 3339).
    pub expires_at: String,
}

/// Create an API bearer token for the caller.
#[utoipa::path(post, path = "/api/v1/auth/tokens", tag = "auth", request_body = TokenIn,
    responses((status = 201, body = TokenOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn create_token(
    State(state): State<AppState>,
    me: CurrentUser,
    body: Result<Json<TokenIn>, JsonRejection>,
) -> Result<(StatusCode, Json<TokenOut>), ApiError> {
    let Json(body) = body.map_err(json_rejection)?;
    let label = body.label.trim();
    if label.is_empty() || label.chars().count() > 80 {
        return Err(ApiError::field("label", body.label.clone(), "1–80 characters"));
    }
    let ttl = match body.days {
        None => state.settings.api_token_ttl,
        Some(d) if (1..=365).contains(&d) => time::Duration::days(d),
        Some(d) => return Err(ApiError::field("days", d, "1–365")),
    };
    let now = state.now();
    let raw = auth::issue_token(
        &state,
        &me.user,
        TokenKind::Api,
        now,
        ttl,
        Some(label.to_string()),
    )
    .await?;
    let expires_at = (now + ttl)
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((
        StatusCode::CREATED,
        Json(TokenOut {
            token: raw,
            expires_at,
        }),
    ))
}

/// A new user.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserIn {
    /// Login name: 3–40 lowercase letters, digits, dots, dashes, underscores.
    pub username: String,
    /// Display name, 1–120 characters.
    pub display_name: String,
    /// administrator, physician, nurse or viewer.
    pub role: String,
    /// Initial password, at least 12 characters.
    pub password: String,
}

/// Checks a username's shape.
pub fn check_username(username: &str) -> Result<(), ApiError> {
    let ok = (3..=40).contains(&username.len())
        && username
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            "username",
            username,
            "3–40 characters: a-z, 0-9, '.', '-', '_'",
        ))
    }
}

/// Parses a role name.
pub fn parse_role(role: &str) -> Result<Role, ApiError> {
    role.parse::<Role>()
        .map_err(|_| ApiError::field("role", role, "administrator, physician, nurse, viewer"))
}

/// List users.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", responses((status = 200, body = [UserOut]), (status = 403, body = ErrorBody)))]
pub async fn list_users(
    State(state): State<AppState>,
    me: CurrentUser,
) -> Result<Json<Vec<UserOut>>, ApiError> {
    me.require(Action::ManageUsers)?;
    Ok(Json(
        state
            .store
            .list_users()
            .await?
            .iter()
            .map(UserOut::from)
            .collect(),
    ))
}

/// Create a user.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = UserIn,
    responses((status = 201, body = UserOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_user(
    State(state): State<AppState>,
    me: CurrentUser,
    body: Result<Json<UserIn>, JsonRejection>,
) -> Result<(StatusCode, Json<UserOut>), ApiError> {
    me.require(Action::ManageUsers)?;
    let Json(body) = body.map_err(json_rejection)?;
    check_username(&body.username)?;
    let display = body.display_name.trim();
    if display.is_empty() || display.chars().count() > 120 {
        return Err(ApiError::field(
            "display_name",
            body.display_name.clone(),
            "1–120 characters",
        ));
    }
    let role = parse_role(&body.role)?;
    auth::check_new_password(&body.password)?;
    let new = NewUser {
        username: body.username,
        display_name: display.to_string(),
        role,
        password_hash: auth::hash_password(&body.password)?,
    };
    let mut user = state
        .store
        .create_user_audited(&me.actor(), &new, state.now())
        .await?;
    // The administrator chose this password: its owner replaces it at the first login.
    state.store.set_must_change_password(user.id, true).await?;
    user.must_change_password = true;
    Ok((StatusCode::CREATED, Json(UserOut::from(&user))))
}

/// Disabled or not.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableIn {
    /// true to disable, false to enable.
    pub disabled: bool,
}

/// Disable or enable a user; disabling revokes their sessions and tokens.
#[utoipa::path(post, path = "/api/v1/users/{id}/disabled", tag = "users", request_body = DisableIn,
    params(("id" = Uuid, Path, description = "user id")),
    responses((status = 200, body = UserOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn set_disabled(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: Result<Json<DisableIn>, JsonRejection>,
) -> Result<Json<UserOut>, ApiError> {
    me.require(Action::ManageUsers)?;
    let Json(body) = body.map_err(json_rejection)?;
    if id == me.user.id && body.disabled {
        return Err(ApiError::Conflict("you cannot disable your own account".into()));
    }
    let now = state.now();
    let user = state
        .store
        .set_disabled_audited(&me.actor(), id, body.disabled, now)
        .await?;
    if body.disabled {
        state.store.revoke_all_for_user(id, now).await?;
    }
    Ok(Json(UserOut::from(&user)))
}

/// A new password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordIn {
    /// At least 12 characters.
    pub password: String,
}

/// Reset a user's password; revokes their sessions and tokens.
#[utoipa::path(post, path = "/api/v1/users/{id}/password", tag = "users", request_body = PasswordIn,
    params(("id" = Uuid, Path, description = "user id")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn reset_password(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: Result<Json<PasswordIn>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    me.require(Action::ManageUsers)?;
    let Json(body) = body.map_err(json_rejection)?;
    auth::check_new_password(&body.password)?;
    let now = state.now();
    state
        .store
        .set_password_hash_audited(&me.actor(), id, &auth::hash_password(&body.password)?, now)
        .await?;
    state.store.set_must_change_password(id, true).await?;
    state.store.revoke_all_for_user(id, now).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A change of one's own password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordIn {
    /// The current password.
    pub current_password: String,
    /// The new password, at least 12 characters, different from the current one.
    pub new_password: String,
}

/// Change your own password (required after a one-time password).
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", request_body = ChangePasswordIn,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn change_password(
    State(state): State<AppState>,
    me: CurrentUser,
    body: Result<Json<ChangePasswordIn>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(body) = body.map_err(json_rejection)?;
    if !auth::verify_password(&body.current_password, &me.user.password_hash) {
        return Err(ApiError::BadCredentials);
    }
    auth::check_new_password(&body.new_password)?;
    if body.new_password == body.current_password {
        return Err(ApiError::field(
            "new_password",
            "(not shown)",
            "a password different from the current one",
        ));
    }
    let now = state.now();
    let hash = auth::hash_password(&body.new_password)?;
    state
        .store
        .set_password_hash_audited(&me.actor(), me.user.id, &hash, now)
        .await?;
    state.store.set_must_change_password(me.user.id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

// Inputs carrying a password print it redacted, so that no log line can ever contain one.
macro_rules! redacted_debug {
    ($($ty:ident),*) => {$(
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty)).field("password", &"<redacted>").finish_non_exhaustive()
            }
        }
    )*};
}
redacted_debug!(LoginIn, UserIn, PasswordIn, ChangePasswordIn);
