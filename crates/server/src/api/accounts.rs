//! `/auth/*` and `/users/*` over HTTP: the edge over `ketaflow_app::accounts` (it adds the
//! session cookie and the per-username login throttle).

use crate::extract::{JsonBody, Path};
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use crate::auth::{self, CurrentUser};
use crate::error::{ApiError, ErrorBody};
use crate::policy::Action;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use ketaflow_app::accounts::{
    ChangePasswordIn, DisableIn, LoggedIn, LoginIn, PasswordIn, TokenIn, TokenInfo, TokenOut, UserIn,
    UserOut, check_username, parse_role,
};

/// Log in: sets the HttpOnly session cookie.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginIn,
    responses((status = 200, body = UserOut), (status = 401, body = ErrorBody), (status = 429, description = "too many failed attempts from this client for this account: wait Retry-After seconds", body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    client: crate::extract::ClientAddr,
    body: JsonBody<LoginIn>,
) -> Result<Response, ApiError> {
    let body = body.value()?;
    let LoggedIn { user, token, ttl } = state.app.login(body, client.0).await?;
    Ok((
        [(header::SET_COOKIE, auth::session_cookie(&token, ttl))],
        Json(user),
    )
        .into_response())
}

/// Log out: revokes this session or token and clears the cookie.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(State(state): State<AppState>, me: CurrentUser) -> Result<Response, ApiError> {
    state.app.logout(&me.caller(), &me.token_hash).await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, auth::clear_cookie())],
    )
        .into_response())
}

/// Who am I.
#[utoipa::path(get, path = "/auth/me", tag = "auth", responses((status = 200, body = UserOut), (status = 401, body = ErrorBody)))]
pub async fn me(me: CurrentUser) -> Json<UserOut> {
    Json(UserOut::from(&me.user))
}

/// Create an API bearer token for the caller.
#[utoipa::path(post, path = "/auth/tokens", tag = "auth", request_body = TokenIn,
    responses((status = 201, body = TokenOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn create_token(
    State(state): State<AppState>,
    me: CurrentUser,
    body: JsonBody<TokenIn>,
) -> Result<(StatusCode, Json<TokenOut>), ApiError> {
    let body = body.value()?;
    Ok((
        StatusCode::CREATED,
        Json(state.create_api_token(&me.caller(), body).await?),
    ))
}

/// List users.
#[utoipa::path(get, path = "/users", tag = "users", responses((status = 200, body = [UserOut]), (status = 403, body = ErrorBody)))]
pub async fn list_users(
    State(state): State<AppState>,
    me: CurrentUser,
) -> Result<Json<Vec<UserOut>>, ApiError> {
    Ok(Json(state.users(&me.caller()).await?))
}

/// Create a user.
#[utoipa::path(post, path = "/users", tag = "users", request_body = UserIn,
    responses((status = 201, body = UserOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_user(
    State(state): State<AppState>,
    me: CurrentUser,
    body: JsonBody<UserIn>,
) -> Result<(StatusCode, Json<UserOut>), ApiError> {
    me.require(Action::ManageUsers)?;
    let body = body.value()?;
    Ok((
        StatusCode::CREATED,
        Json(state.app.create_user(&me.caller(), body).await?),
    ))
}

/// Disable or enable a user; disabling revokes their sessions and tokens.
#[utoipa::path(post, path = "/users/{id}/disabled", tag = "users", request_body = DisableIn,
    params(("id" = Uuid, Path, description = "user id")),
    responses((status = 200, body = UserOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn set_disabled(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: JsonBody<DisableIn>,
) -> Result<Json<UserOut>, ApiError> {
    me.require(Action::ManageUsers)?;
    let body = body.value()?;
    Ok(Json(state.app.set_disabled(&me.caller(), id, body).await?))
}

/// Reset a user's password; revokes their sessions and tokens.
#[utoipa::path(post, path = "/users/{id}/password", tag = "users", request_body = PasswordIn,
    params(("id" = Uuid, Path, description = "user id")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn reset_password(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    body: JsonBody<PasswordIn>,
) -> Result<StatusCode, ApiError> {
    me.require(Action::ManageUsers)?;
    let body = body.value()?;
    state.app.reset_password(&me.caller(), id, body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Change your own password (required after a one-time password).
#[utoipa::path(post, path = "/auth/password", tag = "auth", request_body = ChangePasswordIn,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn change_password(
    State(state): State<AppState>,
    me: CurrentUser,
    body: JsonBody<ChangePasswordIn>,
) -> Result<StatusCode, ApiError> {
    let body = body.value()?;
    state
        .app
        .change_password(&me.caller(), &me.token_hash, body)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Your own sessions and API tokens, newest first (the one this request used is `current`).
#[utoipa::path(get, path = "/auth/tokens", tag = "auth", responses((status = 200, body = [TokenInfo]), (status = 401, body = ErrorBody)))]
pub async fn list_my_tokens(
    State(state): State<AppState>,
    me: CurrentUser,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    Ok(Json(state.app.my_tokens(&me.caller(), &me.token_hash).await?))
}

/// Revoke one of your own sessions or API tokens by its id (audited).
#[utoipa::path(delete, path = "/auth/tokens/{id}", tag = "auth",
    params(("id" = String, Path, description = "the token's id as listed: the first 12 hex digits of its hash")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn revoke_my_token(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.app.revoke_my_token(&me.caller(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// This area's routes, each with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(create_token, list_my_tokens))
        .routes(routes!(revoke_my_token))
        .routes(routes!(list_users, create_user))
        .routes(routes!(set_disabled))
        .routes(routes!(reset_password))
        .routes(routes!(change_password))
}
