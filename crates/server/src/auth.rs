//! Authentication: Argon2id password hashes, browser sessions in an HttpOnly cookie, bearer tokens
//! for API clients, login lockout; and the `CurrentUser` extractor every protected handler takes.
//!
//! Tokens are 256 random bits, hex encoded; the store keeps only their SHA-256.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use ketaflow_app::AppError;
use ketaflow_store::{Actor, TokenKind, User};

use crate::error::ApiError;
use crate::policy::Action;
use crate::state::AppState;

/// The browser session cookie's name.
pub const SESSION_COOKIE: &str = "ketaflow_session";

pub use ketaflow_app::accounts::{
    MIN_PASSWORD_LENGTH, check_new_password, dummy_hash, hash_password, issue_token, verify_password,
};
pub use ketaflow_app::new_token;

/// The cookie that carries a browser session.
pub fn session_cookie(raw: &str, ttl: time::Duration) -> String {
    format!(
        "{SESSION_COOKIE}={raw}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={}",
        ttl.whole_seconds()
    )
}

/// The cookie that clears the session.
pub fn clear_cookie() -> String {
    format!("{SESSION_COOKIE}=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0")
}

pub use ketaflow_app::policy::person_name;

/// The raw token a request carries: a bearer token, or the session cookie.
pub fn presented_token(headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        return value.strip_prefix("Bearer ").map(|t| t.trim().to_string());
    }
    cookie(headers, SESSION_COOKIE)
}

/// The value of the cookie `name`, if the request carries it.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_string())
}

/// The authenticated caller.
#[derive(Clone, Debug)]
pub struct CurrentUser {
    /// The user.
    pub user: User,
    /// Which kind of token authenticated the request.
    pub kind: TokenKind,
    /// The token's hash (for logout).
    pub token_hash: String,
}

impl CurrentUser {
    /// Refuses unless the user's role may do `action` and no password change is pending.
    pub fn require(&self, action: Action) -> Result<(), ApiError> {
        Ok(self.caller().require(action)?)
    }

    /// The caller as the application layer sees it.
    pub fn caller(&self) -> ketaflow_app::policy::Caller {
        ketaflow_app::policy::Caller {
            user: self.user.clone(),
        }
    }

    /// The audit actor.
    pub fn actor(&self) -> Actor {
        Actor::user(self.user.id, self.user.role)
    }

    /// The name a record keeps beside the user id when this user signs something (an approval,
    /// an acknowledgement): see [`person_name`].
    pub fn signature(&self) -> String {
        person_name(&self.user.display_name, &self.user.username)
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<CurrentUser, ApiError> {
        let raw = presented_token(&parts.headers).ok_or(ApiError::App(AppError::Unauthenticated))?;
        let found = state.authenticate(&raw).await?;
        Ok(CurrentUser {
            user: found.caller.user,
            kind: found.kind,
            token_hash: found.token_hash,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_comes_from_the_bearer_header_or_the_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "theme=dark; ketaflow_session=abc; x=y".parse().unwrap(),
        );
        assert_eq!(presented_token(&headers).as_deref(), Some("abc"));
        headers.insert(header::AUTHORIZATION, "Bearer def".parse().unwrap());
        assert_eq!(presented_token(&headers).as_deref(), Some("def"));
    }
}
