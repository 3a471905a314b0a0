//! Session tokens: browser sessions and API bearer tokens, stored only as SHA-256 hashes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{Actor, NewAuditEntry};
use crate::db::{Conn, normalize, parse_uuid, with_conn};
use crate::users::find_by_id;
use crate::{Store, StoreError, User};

/// What a token is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// A browser session cookie.
    Browser,
    /// A bearer token for the JSON API.
    Api,
}

impl TokenKind {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Browser => "browser",
            TokenKind::Api => "api",
        }
    }
}

impl FromStr for TokenKind {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<TokenKind, StoreError> {
        match s {
            "browser" => Ok(TokenKind::Browser),
            "api" => Ok(TokenKind::Api),
            _ => Err(StoreError::Invalid {
                what: "token kind",
                reason: format!("{s:?} is not browser or api"),
            }),
        }
    }
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The SHA-256 hex of a raw token: the only form in which the store keeps or looks up tokens.
/// The caller generates the raw token (≥ 128 random bits), hands it to the client, and passes
/// `hash_token(&raw)` here.
pub fn hash_token(raw: &str) -> String {
    hex::encode(Sha256::digest(raw.as_bytes()))
}

/// A token to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewToken {
    /// [`hash_token`] of the raw token (64 lowercase hex digits; anything else is refused).
    pub token_hash: String,
    /// Whose token it is.
    pub user_id: Uuid,
    /// Browser session or API token.
    pub kind: TokenKind,
    /// When it was issued.
    pub created_at: OffsetDateTime,
    /// After this instant the token is not honoured.
    pub expires_at: OffsetDateTime,
    /// A name the user gave an API token (e.g. "infusion pump bridge").
    pub label: Option<String>,
}

/// A stored token (its hash, never the token itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthToken {
    /// SHA-256 hex of the raw token.
    pub token_hash: String,
    /// Whose token it is.
    pub user_id: Uuid,
    /// Browser session or API token.
    pub kind: TokenKind,
    /// When it was issued.
    pub created_at: OffsetDateTime,
    /// When it stops being honoured.
    pub expires_at: OffsetDateTime,
    /// When it was revoked, if it was.
    pub revoked_at: Option<OffsetDateTime>,
    /// The user's name for it.
    pub label: Option<String>,
    /// When it was last used (recorded at most once a minute), if it has been.
    pub last_used_at: Option<OffsetDateTime>,
}

impl AuthToken {
    /// The last moment it was known in use: its last use, or its issue.
    pub fn last_active(&self) -> OffsetDateTime {
        self.last_used_at.unwrap_or(self.created_at)
    }

    /// Not revoked and not expired at `now`.
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// A token that is honoured right now, with its user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveToken {
    /// The token.
    pub token: AuthToken,
    /// Its user (not disabled).
    pub user: User,
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    token_hash: String,
    user_id: String,
    kind: String,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    revoked_at: Option<OffsetDateTime>,
    label: Option<String>,
    last_used_at: Option<OffsetDateTime>,
}

impl TryFrom<TokenRow> for AuthToken {
    type Error = StoreError;

    fn try_from(row: TokenRow) -> Result<AuthToken, StoreError> {
        Ok(AuthToken {
            user_id: parse_uuid("auth_tokens.user_id", &row.user_id)?,
            kind: row.kind.parse().map_err(|_| StoreError::Corrupt {
                what: "auth_tokens.kind",
                detail: row.kind.clone(),
            })?,
            token_hash: row.token_hash,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            label: row.label,
            last_used_at: row.last_used_at,
        })
    }
}

/// Refuses anything that is not a SHA-256 hex digest, so a raw token cannot be stored by mistake.
pub(crate) fn check_token_hash(hash: &str) -> Result<(), StoreError> {
    if hash.len() != 64 || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(StoreError::Invalid {
            what: "token hash",
            reason: "expected 64 lowercase hex digits (hash_token of the raw token)".into(),
        });
    }
    Ok(())
}

impl Store {
    /// Stores a token. [`StoreError::NotFound`] if the user does not exist,
    /// [`StoreError::Conflict`] if the hash is already stored, [`StoreError::Invalid`] if
    /// `token_hash` is not a SHA-256 hex digest.
    pub async fn insert_token(&self, token: &NewToken) -> Result<(), StoreError> {
        insert_token_in(self.acquire().await?.conn(), token).await
    }

    /// Stores a token and its audit entry (`action`, e.g. `auth.login`, on the token's user) in one
    /// transaction. The entry names the token by the first 12 digits of its hash, never the token.
    pub async fn insert_token_audited(
        &self,
        actor: &Actor,
        action: &str,
        token: &NewToken,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        insert_token_in(tx.conn(), token).await?;
        tx.append_audit(
            &NewAuditEntry::new(
                token.created_at,
                actor.clone(),
                action,
                "user",
                token.user_id.to_string(),
            )
            .after(serde_json::json!({
                "token": &token.token_hash[..12],
                "kind": token.kind.as_str(),
                "label": token.label,
                "expires_at": normalize(token.expires_at)
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
            })),
        )
        .await?;
        tx.commit().await
    }

    /// The token with this hash and its user, if the token is neither revoked nor expired at
    /// `now` and the user is not disabled; `None` otherwise (the caller answers 401 either way).
    pub async fn find_active_token(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<ActiveToken>, StoreError> {
        let mut pooled = self.acquire().await?;
        let row: Option<TokenRow> = with_conn!(pooled.conn(), c => {
            sqlx::query_as(
                "SELECT token_hash, user_id, kind, created_at, expires_at, revoked_at, label, last_used_at \
                 FROM auth_tokens WHERE token_hash = $1",
            )
            .bind(token_hash)
            .fetch_optional(&mut *c)
            .await?
        });
        let Some(token) = row.map(AuthToken::try_from).transpose()? else {
            return Ok(None);
        };
        // Expiry is compared here, not in SQL: SQLite holds timestamps as text.
        if !token.is_active(now) {
            return Ok(None);
        }
        match find_by_id(pooled.conn(), token.user_id).await? {
            Some(user) if !user.disabled => Ok(Some(ActiveToken { token, user })),
            _ => Ok(None),
        }
    }

    /// Records that a token was used at `now`, unless that was recorded less than a minute ago
    /// (one write a minute per session at most, whatever the request rate).
    pub async fn touch_token(&self, token_hash: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        let now = normalize(now);
        let a_minute_ago = normalize(now - time::Duration::minutes(1));
        let mut pooled = self.acquire().await?;
        with_conn!(pooled.conn(), c => {
            sqlx::query(
                "UPDATE auth_tokens SET last_used_at = $1 \
                 WHERE token_hash = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
            )
            .bind(now)
            .bind(token_hash)
            .bind(a_minute_ago)
            .execute(&mut *c)
            .await?;
        });
        Ok(())
    }

    /// A user's tokens (active or not), newest first.
    pub async fn list_tokens(&self, user_id: Uuid) -> Result<Vec<AuthToken>, StoreError> {
        let mut pooled = self.acquire().await?;
        let rows: Vec<TokenRow> = with_conn!(pooled.conn(), c => {
            sqlx::query_as(
                "SELECT token_hash, user_id, kind, created_at, expires_at, revoked_at, label, last_used_at \
                 FROM auth_tokens WHERE user_id = $1 ORDER BY created_at DESC, token_hash",
            )
            .bind(user_id.to_string())
            .fetch_all(&mut *c)
            .await?
        });
        rows.into_iter().map(AuthToken::try_from).collect()
    }

    /// Revokes one token; `true` if it existed and was not already revoked.
    pub async fn revoke_token(&self, token_hash: &str, now: OffsetDateTime) -> Result<bool, StoreError> {
        revoke_token_in(self.acquire().await?.conn(), token_hash, now).await
    }

    /// Revokes one token of `user_id` and, if it was active, audits `action` (e.g. `auth.logout`)
    /// in the same transaction; `true` if it was revoked now.
    pub async fn revoke_token_audited(
        &self,
        actor: &Actor,
        action: &str,
        user_id: Uuid,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let revoked = revoke_token_in(tx.conn(), token_hash, now).await?;
        if revoked {
            tx.append_audit(
                &NewAuditEntry::new(now, actor.clone(), action, "user", user_id.to_string())
                    .after(serde_json::json!({ "token": token_hash.get(..12).unwrap_or(token_hash) })),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(revoked)
    }

    /// Revokes every unrevoked token of a user (logout everywhere, account disabled, password
    /// reset); returns how many were revoked.
    pub async fn revoke_all_for_user(&self, user_id: Uuid, now: OffsetDateTime) -> Result<u64, StoreError> {
        let mut pooled = self.acquire().await?;
        let n = with_conn!(pooled.conn(), c => {
            sqlx::query(
                "UPDATE auth_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
            )
            .bind(normalize(now))
            .bind(user_id.to_string())
            .execute(&mut *c)
            .await?
            .rows_affected()
        });
        Ok(n)
    }
}

async fn insert_token_in(conn: Conn<'_>, token: &NewToken) -> Result<(), StoreError> {
    check_token_hash(&token.token_hash)?;
    with_conn!(conn, c => {
        sqlx::query(
            "INSERT INTO auth_tokens (token_hash, user_id, kind, created_at, expires_at, \
             revoked_at, label) VALUES ($1, $2, $3, $4, $5, NULL, $6)",
        )
        .bind(&token.token_hash)
        .bind(token.user_id.to_string())
        .bind(token.kind.as_str())
        .bind(normalize(token.created_at))
        .bind(normalize(token.expires_at))
        .bind(&token.label)
        .execute(&mut *c)
        .await
        .map_err(|e| StoreError::from_write(e, "token", Some(("user", token.user_id.to_string()))))?;
    });
    Ok(())
}

async fn revoke_token_in(conn: Conn<'_>, token_hash: &str, now: OffsetDateTime) -> Result<bool, StoreError> {
    let n = with_conn!(conn, c => {
        sqlx::query("UPDATE auth_tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL")
            .bind(normalize(now))
            .bind(token_hash)
            .execute(&mut *c)
            .await?
            .rows_affected()
    });
    Ok(n > 0)
}
