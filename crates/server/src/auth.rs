//! Authentication: Argon2id password hashes, browser sessions in an HttpOnly cookie, bearer tokens
//! for API clients, login lockout; and the `CurrentUser` extractor every protected handler takes.
//!
//! Tokens are 256 random bits, hex encoded; the store keeps only their SHA-256.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use ketaflow_store::{Actor, NewToken, TokenKind, User, hash_token};
use rand::RngCore;
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::policy::Action;
use crate::state::AppState;

/// The browser session cookie's name.
pub const SESSION_COOKIE: &str = "ketaflow_session";

/// Hashes a password with Argon2id (default parameters: 19 MiB, 2 passes, 1 lane, per RFC 9106's
/// second recommended option as adopted by the argon2 crate) and a random salt; PHC string.
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| ApiError::Internal(format!("password hashing failed: {e}")))
}

/// Checks a password against a PHC string in constant time.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A PHC hash of a password nobody knows, verified when the username does not exist so that the
/// response time does not reveal which usernames exist.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("no such user; this hash only evens out timing").unwrap_or_default())
}

/// A new random token (64 hex digits).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Minimum password length for new passwords (NIST SP 800-63B §5.1.1.2: at least 8; the clinic
/// uses 12 as its setting).
pub const MIN_PASSWORD_LENGTH: usize = 12;

/// Checks a new password's length.
pub fn check_new_password(password: &str) -> Result<(), ApiError> {
    let n = password.chars().count();
    if !(MIN_PASSWORD_LENGTH..=256).contains(&n) {
        return Err(ApiError::field(
            "password",
            format!("{n} characters"),
            format!("{MIN_PASSWORD_LENGTH}–256 characters"),
        ));
    }
    Ok(())
}

/// Issues a token for `user` and stores its hash.
pub async fn issue_token(
    state: &AppState,
    user: &User,
    kind: TokenKind,
    now: OffsetDateTime,
    ttl: time::Duration,
    label: Option<String>,
) -> Result<String, ApiError> {
    let raw = new_token();
    // Signing in and creating an API token are audited (who, which token by its hash's prefix).
    let action = match kind {
        TokenKind::Browser => "auth.login",
        TokenKind::Api => "auth.token.create",
    };
    state
        .store
        .insert_token_audited(
            &Actor::user(user.id, user.role),
            action,
            &NewToken {
                token_hash: hash_token(&raw),
                user_id: user.id,
                kind,
                created_at: now,
                expires_at: now + ttl,
                label,
            },
        )
        .await?;
    Ok(raw)
}

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
        let raw = presented_token(&parts.headers).ok_or(ApiError::Unauthenticated)?;
        // Anything that is not 64 hex digits cannot be one of our tokens.
        if raw.len() != 64 || !raw.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::Unauthenticated);
        }
        let token_hash = hash_token(&raw);
        let active = state
            .store
            .find_active_token(&token_hash, state.now())
            .await?
            .ok_or(ApiError::Unauthenticated)?;
        Ok(CurrentUser {
            user: active.user,
            kind: active.token.kind,
            token_hash,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let h = hash_password("correct horse battery staple").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery staple", &h));
        assert!(!verify_password("Correct horse battery staple", &h));
        assert!(!verify_password("x", "not a phc string"));
    }

    #[test]
    fn tokens_are_random_64_hex_digits() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }

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
