//! Accounts: Argon2id password hashes, logging in and out, API tokens, and user administration.
//! The signed-in use cases are `App` methods; the operator's (the command line's `user` commands,
//! the first administrator at start-up) are functions over the store with a system actor, since
//! they run without a clinic loaded.
//!
//! Tokens are 256 random bits, hex encoded; the store keeps only their SHA-256. Password attempts
//! are throttled per username in this process, and an account locks after repeated failures (in
//! the store).

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use ketaflow_store::{Actor, NewToken, NewUser, Role, Store, TokenKind, User, hash_token};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::policy::{Action, Caller};
use crate::{App, AppError};

/// Minimum password length for new passwords (NIST SP 800-63B §5.1.1.2: at least 8; the clinic
/// uses 12 as its setting).
pub const MIN_PASSWORD_LENGTH: usize = 12;

/// Hashes a password with Argon2id (default parameters: 19 MiB, 2 passes, 1 lane, per RFC 9106's
/// second recommended option as adopted by the argon2 crate) and a random salt; PHC string.
pub fn hash_password(password: &str) -> Result<String, AppError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AppError::Internal(format!("password hashing failed: {e}")))
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

/// The weakest password strength accepted: zxcvbn's score 3, "safely unguessable: moderate
/// protection from offline slow-hash scenario" (more than 10^8 guesses), against its shipped
/// dictionaries of common passwords, names and words and the account's own names.
pub const MIN_PASSWORD_SCORE: zxcvbn::Score = zxcvbn::Score::Three;

/// Checks a new password after NIST SP 800-63B (2017) §5.1.1.2: at least
/// [`MIN_PASSWORD_LENGTH`] characters (the clinic's setting; NIST's floor is 8) and at most 256,
/// taken exactly as typed (never trimmed), and not one that a list of commonly used or
/// compromised passwords, repetitive or sequential characters, or context-specific words (the
/// username, the person's name, the service's name) would guess: the `zxcvbn` crate's estimate
/// with its shipped dictionaries must reach [`MIN_PASSWORD_SCORE`]. `context` holds the
/// account's username and display name.
pub fn check_new_password(password: &str, context: &[&str]) -> Result<(), AppError> {
    let n = password.chars().count();
    if !(MIN_PASSWORD_LENGTH..=256).contains(&n) {
        return Err(AppError::field(
            "password",
            format!("{n} characters"),
            format!("{MIN_PASSWORD_LENGTH}–256 characters"),
        ));
    }
    let mut words: Vec<&str> = context.to_vec();
    words.extend(["ketaflow", "ketamine", "clinic", "infusion"]);
    let estimate = zxcvbn::zxcvbn(password, &words);
    if estimate.score() < MIN_PASSWORD_SCORE {
        let why = estimate
            .feedback()
            .and_then(|f| f.warning())
            .map_or_else(|| "it is too easy to guess".to_string(), |w| w.to_string());
        return Err(AppError::field(
            "password",
            "(not shown)",
            format!(
                "a password that is hard to guess ({why}); a few unrelated words, or a longer phrase, work well"
            ),
        ));
    }
    Ok(())
}

/// Checks a username's shape.
pub fn check_username(username: &str) -> Result<(), AppError> {
    let ok = (3..=40).contains(&username.len())
        && username
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(AppError::field(
            "username",
            username,
            "3–40 characters: a-z, 0-9, '.', '-', '_'",
        ))
    }
}

/// Parses a role name.
pub fn parse_role(role: &str) -> Result<Role, AppError> {
    role.parse::<Role>()
        .map_err(|_| AppError::field("role", role, "administrator, physician, nurse, viewer"))
}

/// A one-time password for a new or reset account: 24 hex digits, 96 random bits.
pub fn one_time_password() -> String {
    crate::new_token()[..24].to_string()
}

/// A user as the API shows it (never the password hash).
#[derive(Serialize, Deserialize, ToSchema, Debug, PartialEq, Clone)]
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

/// An account as its administrator sees it: the user and, while it lasts, the lockout after
/// repeated failed passwords.
#[derive(Debug, Clone)]
pub struct Account {
    /// The user.
    pub user: UserOut,
    /// Locked until then (only while the lock lasts).
    pub locked_until: Option<OffsetDateTime>,
}

/// Login request.
#[derive(Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct LoginIn {
    /// Login name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// A successful login: the user and the raw browser-session token (shown once, set as a cookie).
#[derive(Debug)]
pub struct LoggedIn {
    /// Who.
    pub user: UserOut,
    /// The raw token.
    pub token: String,
    /// How long it lasts.
    pub ttl: time::Duration,
}

/// A request for an API token.
#[derive(Debug, Deserialize, ToSchema, Clone)]
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

/// A new user.
#[derive(Deserialize, ToSchema, Clone)]
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

/// Disabled or not.
#[derive(Debug, Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct DisableIn {
    /// true to disable, false to enable.
    pub disabled: bool,
}

/// A new password.
#[derive(Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct PasswordIn {
    /// At least 12 characters.
    pub password: String,
}

/// A change of one's own password.
#[derive(Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordIn {
    /// The current password.
    pub current_password: String,
    /// The new password, at least 12 characters, different from the current one.
    pub new_password: String,
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

/// How many leading hex digits of a token's hash name it to its owner (as the audit log does).
pub const TOKEN_ID_DIGITS: usize = 12;

/// One of a user's own sessions or API tokens, as they list it.
#[derive(Serialize, ToSchema, Debug)]
pub struct TokenInfo {
    /// The first 12 digits of the token's hash: how it is revoked and how the audit log names it.
    pub id: String,
    /// browser (a signed-in page) or api (a bearer token).
    pub kind: &'static str,
    /// The label given at creation (API tokens).
    pub label: Option<String>,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Expires.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    /// Revoked (logout, password change, by its owner or an administrator).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<OffsetDateTime>,
    /// Neither revoked nor expired.
    pub active: bool,
    /// The one this request came with.
    pub current: bool,
}

/// Issues a token for `user` and stores its hash, audited (who, which token by its hash's prefix).
pub async fn issue_token(
    store: &Store,
    user: &User,
    kind: TokenKind,
    now: OffsetDateTime,
    ttl: time::Duration,
    label: Option<String>,
) -> Result<String, AppError> {
    let raw = crate::new_token();
    let action = match kind {
        TokenKind::Browser => "auth.login",
        TokenKind::Api => "auth.token.create",
    };
    store
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

/// Creates an account whose password someone other than its owner chose, so the owner must
/// replace it at the first login. `actor` is an administrator or the command line.
pub async fn add_user(
    store: &Store,
    actor: &Actor,
    body: UserIn,
    now: OffsetDateTime,
) -> Result<User, AppError> {
    check_username(&body.username)?;
    let display = body.display_name.trim();
    if display.is_empty() || display.chars().count() > 120 {
        return Err(AppError::field(
            "display_name",
            body.display_name.clone(),
            "1–120 characters",
        ));
    }
    let role = parse_role(&body.role)?;
    check_new_password(&body.password, &[&body.username, &body.display_name])?;
    let new = NewUser {
        username: body.username,
        display_name: display.to_string(),
        role,
        password_hash: hash_password(&body.password)?,
    };
    let mut user = store.create_user_audited(actor, &new, now).await?;
    store.set_must_change_password(user.id, true).await?;
    user.must_change_password = true;
    Ok(user)
}

/// Disables or enables an account; disabling revokes its sessions and tokens. Returns the user and
/// how many sessions and tokens were revoked.
pub async fn set_user_disabled(
    store: &Store,
    actor: &Actor,
    id: Uuid,
    disabled: bool,
    now: OffsetDateTime,
) -> Result<(User, u64), AppError> {
    let user = store.set_disabled_audited(actor, id, disabled, now).await?;
    let revoked = if disabled {
        store.revoke_all_for_user(id, now).await?
    } else {
        0
    };
    Ok((user, revoked))
}

/// Sets a one-time password chosen by someone else: the owner must change it at the next login,
/// and every session and token of theirs is revoked.
pub async fn reset_user_password(
    store: &Store,
    actor: &Actor,
    id: Uuid,
    password: &str,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    let user = store.get_user(id).await?;
    check_new_password(password, &[&user.username, &user.display_name])?;
    store
        .replace_password_audited(actor, id, &hash_password(password)?, true, None, now)
        .await?;
    Ok(())
}

/// On an empty database, creates the first administrator (`admin`) with a one-time password and
/// returns that password; `None` when there are users already.
pub async fn ensure_administrator(store: &Store, now: OffsetDateTime) -> Result<Option<String>, AppError> {
    if store.count_users().await? > 0 {
        return Ok(None);
    }
    let password = one_time_password();
    let body = UserIn {
        username: "admin".into(),
        display_name: "Administrator".into(),
        role: Role::Administrator.as_str().into(),
        password: password.clone(),
    };
    add_user(store, &Actor::system("cli"), body, now).await?;
    Ok(Some(password))
}

/// Who a presented token belongs to.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The user, as use cases take them.
    pub caller: Caller,
    /// Which kind of token it is.
    pub kind: TokenKind,
    /// The token's hash (to revoke it at logout).
    pub token_hash: String,
}

/// Whether `raw` has the shape of a token this clinic issues: 64 hex digits.
fn token_shaped(raw: &str) -> bool {
    raw.len() == 64 && raw.bytes().all(|b| b.is_ascii_hexdigit())
}

impl App {
    /// The signed-in user a browser-session or API token belongs to, while it is active.
    pub async fn authenticate(&self, raw: &str) -> Result<Authenticated, AppError> {
        // Anything that is not 64 hex digits cannot be one of our tokens: no lookup.
        if !token_shaped(raw) {
            return Err(AppError::Unauthenticated);
        }
        let token_hash = hash_token(raw);
        let now = self.now();
        let active = self
            .store
            .find_active_token(&token_hash, now)
            .await?
            .ok_or(AppError::Unauthenticated)?;
        // A browser session left idle past the clinic's timeout is signed out for good.
        if active.token.kind == TokenKind::Browser
            && now - active.token.last_active() > self.settings.browser_idle_timeout
        {
            self.store
                .revoke_token_audited(
                    &Actor::system("auth"),
                    "auth.idle_timeout",
                    active.user.id,
                    &token_hash,
                    now,
                )
                .await?;
            return Err(AppError::Unauthenticated);
        }
        // Written at most once a minute per token, so reading a page costs no write.
        if now - active.token.last_active() >= time::Duration::minutes(1) {
            self.store.touch_token(&token_hash, now).await?;
        }
        Ok(Authenticated {
            caller: Caller { user: active.user },
            kind: active.token.kind,
            token_hash,
        })
    }

    /// The monitor a device token (`dev_` and 64 hex digits) belongs to, while it is active.
    pub async fn authenticate_device(&self, raw: &str) -> Result<ketaflow_store::DeviceToken, AppError> {
        let shaped = raw
            .strip_prefix(crate::booking::DEVICE_TOKEN_PREFIX)
            .is_some_and(token_shaped);
        if !shaped {
            return Err(AppError::Unauthenticated);
        }
        self.store
            .find_device_token(&hash_token(raw), self.now())
            .await?
            .ok_or(AppError::Unauthenticated)
    }

    /// Checks a username and password from `client`. Every failure (unknown username, wrong
    /// password, disabled or locked account) gets the same answer, and slows that client trying
    /// that username with growing delays (429 with the wait) before any password is checked; the
    /// account-wide lockout follows NIST's 100 consecutive failures. An unknown username costs the
    /// same time as a known one.
    pub async fn login(&self, body: LoginIn, client: Option<std::net::IpAddr>) -> Result<LoggedIn, AppError> {
        let now = self.now();
        let key = crate::throttle::login_key(client, &body.username);
        let client_key = crate::throttle::client_key(client);
        for (throttle, key) in [
            (&self.password_throttle, &key),
            (&self.client_throttle, &client_key),
        ] {
            throttle.check(key, now).map_err(|wait| AppError::Throttled {
                retry_after_s: wait.whole_seconds().max(1),
            })?;
        }
        let failed = |state: &App| {
            state.password_throttle.failed(&key, now);
            state.client_throttle.failed(&client_key, now);
            crate::metrics::login_failed();
            AppError::BadCredentials
        };
        // A username longer than any account's cannot exist: the same answer and the same work.
        let user = if body.username.len() > crate::throttle::MAX_KEY_USERNAME {
            None
        } else {
            self.store.get_user_by_username(&body.username).await?
        };
        let Some(user) = user else {
            verify_password(&body.password, dummy_hash());
            return Err(failed(self));
        };
        if user.is_locked(now) {
            verify_password(&body.password, dummy_hash());
            return Err(failed(self));
        }
        if user.disabled || !verify_password(&body.password, &user.password_hash) {
            if !user.disabled {
                self.store
                    .record_login_failure(user.id, now, self.settings.lockout)
                    .await?;
            }
            return Err(failed(self));
        }
        self.password_throttle.succeeded(&key);
        self.store.record_login_success(user.id).await?;
        let ttl = self.settings.session_ttl;
        let token = issue_token(&self.store, &user, TokenKind::Browser, now, ttl, None).await?;
        Ok(LoggedIn {
            user: UserOut::from(&user),
            token,
            ttl,
        })
    }

    /// Revokes the session or token (by its hash) the caller signed in with.
    pub async fn logout(&self, caller: &Caller, token_hash: &str) -> Result<(), AppError> {
        self.store
            .revoke_token_audited(
                &caller.actor(),
                "auth.logout",
                caller.user.id,
                token_hash,
                self.now(),
            )
            .await?;
        Ok(())
    }

    /// Creates an API bearer token for the caller. Refused while a password change is pending: a
    /// one-time password chosen by someone else never becomes a long-lived token.
    pub async fn create_api_token(&self, caller: &Caller, body: TokenIn) -> Result<TokenOut, AppError> {
        if caller.user.must_change_password {
            return Err(AppError::PasswordChangeRequired);
        }
        let label = body.label.trim();
        if label.is_empty() || label.chars().count() > 80 {
            return Err(AppError::field("label", body.label.clone(), "1–80 characters"));
        }
        let ttl = match body.days {
            None => self.settings.api_token_ttl,
            Some(d) if (1..=365).contains(&d) => time::Duration::days(d),
            Some(d) => return Err(AppError::field("days", d, "1–365")),
        };
        let now = self.now();
        let token = issue_token(
            &self.store,
            &caller.user,
            TokenKind::Api,
            now,
            ttl,
            Some(label.to_string()),
        )
        .await?;
        Ok(TokenOut {
            token,
            expires_at: crate::vitals::rfc3339(now + ttl),
        })
    }

    /// Every account.
    pub async fn users(&self, caller: &Caller) -> Result<Vec<UserOut>, AppError> {
        Ok(self.accounts(caller).await?.into_iter().map(|a| a.user).collect())
    }

    /// Every account with its lockout, for the administrator's page.
    pub async fn accounts(&self, caller: &Caller) -> Result<Vec<Account>, AppError> {
        caller.require(Action::ManageUsers)?;
        all_accounts(&self.store, self.now()).await
    }

    /// Creates an account with a one-time password.
    pub async fn create_user(&self, caller: &Caller, body: UserIn) -> Result<UserOut, AppError> {
        caller.require(Action::ManageUsers)?;
        let user = add_user(&self.store, &caller.actor(), body, self.now()).await?;
        Ok(UserOut::from(&user))
    }

    /// Disables or enables an account (never one's own); disabling revokes its sessions and tokens.
    pub async fn set_disabled(
        &self,
        caller: &Caller,
        id: Uuid,
        body: DisableIn,
    ) -> Result<UserOut, AppError> {
        caller.require(Action::ManageUsers)?;
        if id == caller.user.id && body.disabled {
            return Err(AppError::Conflict("you cannot disable your own account".into()));
        }
        let (user, _) =
            set_user_disabled(&self.store, &caller.actor(), id, body.disabled, self.now()).await?;
        Ok(UserOut::from(&user))
    }

    /// Resets an account's password to a one-time one; revokes its sessions and tokens.
    pub async fn reset_password(&self, caller: &Caller, id: Uuid, body: PasswordIn) -> Result<(), AppError> {
        caller.require(Action::ManageUsers)?;
        reset_user_password(&self.store, &caller.actor(), id, &body.password, self.now()).await
    }

    /// The caller's own sessions and API tokens, newest first; `current` marks the one this request
    /// came with.
    pub async fn my_tokens(&self, caller: &Caller, current_hash: &str) -> Result<Vec<TokenInfo>, AppError> {
        let now = self.now();
        Ok(self
            .store
            .list_tokens(caller.user.id)
            .await?
            .into_iter()
            .map(|t| TokenInfo {
                id: t.token_hash[..TOKEN_ID_DIGITS].to_string(),
                kind: t.kind.as_str(),
                label: t.label.clone(),
                created_at: t.created_at,
                expires_at: t.expires_at,
                revoked_at: t.revoked_at,
                active: t.is_active(now),
                current: t.token_hash == current_hash,
            })
            .collect())
    }

    /// Revokes one of the caller's own sessions or tokens by its id (the first 12 digits of its
    /// hash, as [`App::my_tokens`] lists it), audited as `auth.token.revoke`. Another user's token,
    /// or none, is 404 (the answer does not say which).
    pub async fn revoke_my_token(&self, caller: &Caller, id: &str) -> Result<(), AppError> {
        let not_found = || AppError::NotFound {
            what: "token".into(),
            id: id.to_string(),
        };
        if id.len() != TOKEN_ID_DIGITS || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(not_found());
        }
        let id = id.to_ascii_lowercase();
        let mine = self.store.list_tokens(caller.user.id).await?;
        let mut matching = mine.iter().filter(|t| t.token_hash.starts_with(&id));
        let (Some(token), None) = (matching.next(), matching.next()) else {
            return Err(not_found());
        };
        if token.revoked_at.is_some() {
            return Err(AppError::Conflict(format!("token {id} is already revoked")));
        }
        self.store
            .revoke_token_audited(
                &caller.actor(),
                "auth.token.revoke",
                caller.user.id,
                &token.token_hash,
                self.now(),
            )
            .await?;
        Ok(())
    }

    /// Changes the caller's own password (required after a one-time password). Every other
    /// session and API token of the caller is revoked in the same transaction, so a password that
    /// leaked, or a one-time one, leaves nothing behind that still works; the session it was
    /// changed from (`current_hash`) stays signed in.
    pub async fn change_password(
        &self,
        caller: &Caller,
        current_hash: &str,
        body: ChangePasswordIn,
    ) -> Result<(), AppError> {
        // Guesses of the current password are throttled like logins.
        let now = self.now();
        let key = format!("current-password:{}", caller.user.id);
        self.password_throttle
            .check(&key, now)
            .map_err(|wait| AppError::Throttled {
                retry_after_s: wait.whole_seconds().max(1),
            })?;
        if !verify_password(&body.current_password, &caller.user.password_hash) {
            self.password_throttle.failed(&key, now);
            return Err(AppError::BadCredentials);
        }
        self.password_throttle.succeeded(&key);
        check_new_password(
            &body.new_password,
            &[&caller.user.username, &caller.user.display_name],
        )?;
        if body.new_password == body.current_password {
            return Err(AppError::field(
                "new_password",
                "(not shown)",
                "a password different from the current one",
            ));
        }
        let hash = hash_password(&body.new_password)?;
        self.store
            .replace_password_audited(
                &caller.actor(),
                caller.user.id,
                &hash,
                false,
                Some(current_hash),
                self.now(),
            )
            .await?;
        Ok(())
    }
}

/// Every account, with its lockout if one is in force at `now`.
pub async fn all_accounts(store: &Store, now: OffsetDateTime) -> Result<Vec<Account>, AppError> {
    Ok(store
        .list_users()
        .await?
        .iter()
        .map(|u| Account {
            user: UserOut::from(u),
            locked_until: u.locked_until.filter(|until| *until > now),
        })
        .collect())
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
    fn tokens_are_random_64_hex_digits_and_only_that_shape_is_looked_up() {
        let (a, b) = (crate::new_token(), crate::new_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(token_shaped(&a));
        assert!(!token_shaped(&a[..63]));
        assert!(!token_shaped(&format!("{}g", &a[..63])));
    }

    #[test]
    fn usernames_and_new_passwords_say_what_is_allowed() {
        assert!(check_username("nurse.kim-2").is_ok());
        for bad in ["ab", "Nurse", "a b", &"x".repeat(41)] {
            let e = check_username(bad).unwrap_err().to_string();
            assert!(e.contains("3–40 characters"), "{bad}: {e}");
        }
        let e = check_new_password("short", &[]).unwrap_err().to_string();
        assert_eq!(e, "password 5 characters is outside 12–256 characters");
        // The review's examples, a repeated character, the account's own name: refused.
        for weak in [
            "passwordpassword",
            "123456789012",
            &"x".repeat(MIN_PASSWORD_LENGTH),
            "nurse.kim-2nurse.kim-2",
            "ketaflow2026!",
        ] {
            let e = check_new_password(weak, &["nurse.kim-2", "Kim Nurse"])
                .unwrap_err()
                .to_string();
            assert!(e.contains("a password that is hard to guess"), "{weak}: {e}");
        }
        // Long unrelated words, and a space at the end kept as part of it.
        for strong in [
            "correct horse battery staple",
            "violet tundra 47 marmalade ",
            "Quokka-Tarmac-Sunbeam-91",
        ] {
            assert!(
                check_new_password(strong, &["nurse.kim-2", "Kim Nurse"]).is_ok(),
                "{strong}"
            );
        }
        assert_eq!(parse_role("nurse").unwrap(), Role::Nurse);
        assert!(parse_role("surgeon").is_err());
    }
}
