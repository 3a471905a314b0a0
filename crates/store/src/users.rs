//! Users and credentials: accounts for the four roles, password hashes made by the caller, and
//! login-failure lockout.
//!
//! This module shows the pattern every table follows: a public domain type, a private `FromRow`
//! row type converted with checks, query functions taking a [`Conn`], writes on [`Tx`] (so they
//! can commit together with their audit entry) and reads plus audited convenience wrappers on
//! [`Store`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{Actor, NewAuditEntry};
use crate::db::{Conn, normalize, parse_uuid, with_conn};
use crate::{Store, StoreError, Tx};

/// What a user may do; the server's access policy decides per role. Stored as its lowercase name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Manages users and configuration.
    Administrator,
    /// Prescribes, approves plans, overrides soft limits with a reason.
    Physician,
    /// Runs sessions, records vitals, side effects and witnessed waste.
    Nurse,
    /// Reads only.
    Viewer,
}

impl Role {
    /// Every role, in a stable order.
    pub const ALL: [Role; 4] = [Role::Administrator, Role::Physician, Role::Nurse, Role::Viewer];

    /// The name stored in the database and used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Administrator => "administrator",
            Role::Physician => "physician",
            Role::Nurse => "nurse",
            Role::Viewer => "viewer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Role, StoreError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| StoreError::Invalid {
                what: "role",
                reason: format!("{s:?} is not one of administrator, physician, nurse, viewer"),
            })
    }
}

/// A user account as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// UUID v7, assigned by the store.
    pub id: Uuid,
    /// Unique login name.
    pub username: String,
    /// Name shown in the interface and in reports.
    pub display_name: String,
    /// The user's role.
    pub role: Role,
    /// The caller's password hash (an argon2 PHC string); verify it with the same library.
    pub password_hash: String,
    /// A disabled user cannot log in and their tokens are not honoured.
    pub disabled: bool,
    /// Consecutive failed logins since the last success.
    pub failed_logins: u32,
    /// Logins are refused until this instant, if set.
    pub locked_until: Option<OffsetDateTime>,
    /// When the account was created.
    pub created_at: OffsetDateTime,
    /// The password was set by someone else and must be changed at the next login.
    pub must_change_password: bool,
}

impl User {
    /// Whether a lockout is in force at `now`.
    pub fn is_locked(&self, now: OffsetDateTime) -> bool {
        self.locked_until.is_some_and(|until| now < until)
    }

    /// What the audit log records about a user: everything except the password hash.
    fn audit_snapshot(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id.to_string(),
            "username": self.username,
            "display_name": self.display_name,
            "role": self.role.as_str(),
            "disabled": self.disabled,
        })
    }
}

// Hand-written so that the password hash never lands in a log line.
impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("display_name", &self.display_name)
            .field("role", &self.role)
            .field("password_hash", &"<redacted>")
            .field("disabled", &self.disabled)
            .field("failed_logins", &self.failed_logins)
            .field("locked_until", &self.locked_until)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// What the caller supplies to create a user.
#[derive(Clone)]
pub struct NewUser {
    /// Unique login name (1–100 characters, no surrounding whitespace).
    pub username: String,
    /// Name shown in the interface.
    pub display_name: String,
    /// The user's role.
    pub role: Role,
    /// A PHC-format password hash (starts with `$`, e.g. `$argon2id$...`), made by the caller.
    pub password_hash: String,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("display_name", &self.display_name)
            .field("role", &self.role)
            .field("password_hash", &"<redacted>")
            .finish()
    }
}

/// When repeated login failures lock an account, and for how long. The server decides the numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// The failure count at which the account locks (each further failure re-locks it).
    pub threshold: u32,
    /// How long a lock lasts from the failure that set it.
    pub lock_for: time::Duration,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    username: String,
    display_name: String,
    role: String,
    password_hash: String,
    disabled: bool,
    failed_logins: i64,
    locked_until: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
    must_change_password: bool,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<User, StoreError> {
        Ok(User {
            id: parse_uuid("users.id", &row.id)?,
            role: row.role.parse().map_err(|_| StoreError::Corrupt {
                what: "users.role",
                detail: row.role.clone(),
            })?,
            failed_logins: u32::try_from(row.failed_logins).map_err(|_| StoreError::Corrupt {
                what: "users.failed_logins",
                detail: row.failed_logins.to_string(),
            })?,
            username: row.username,
            display_name: row.display_name,
            password_hash: row.password_hash,
            disabled: row.disabled,
            locked_until: row.locked_until,
            created_at: row.created_at,
            must_change_password: row.must_change_password,
        })
    }
}

const SELECT_BY_ID: &str = "SELECT id, username, display_name, role, password_hash, disabled, \
     failed_logins, locked_until, created_at, must_change_password FROM users WHERE id = $1";
const SELECT_BY_USERNAME: &str = "SELECT id, username, display_name, role, password_hash, \
     disabled, failed_logins, locked_until, created_at, must_change_password FROM users WHERE username = $1";
const SELECT_ALL: &str = "SELECT id, username, display_name, role, password_hash, disabled, \
     failed_logins, locked_until, created_at, must_change_password FROM users ORDER BY username";

fn check_new_user(new: &NewUser) -> Result<(), StoreError> {
    let name = &new.username;
    if name.is_empty() || name.chars().count() > 100 || name.trim() != name {
        return Err(StoreError::Invalid {
            what: "username",
            reason: format!("{name:?} must be 1–100 characters without surrounding whitespace"),
        });
    }
    check_password_hash(&new.password_hash)
}

/// A cheap guard against a plaintext password reaching the database: PHC strings start with `$`.
fn check_password_hash(hash: &str) -> Result<(), StoreError> {
    if !hash.starts_with('$') || hash.len() < 20 {
        return Err(StoreError::Invalid {
            what: "password hash",
            reason: "expected a PHC-format hash such as $argon2id$..., not a password".into(),
        });
    }
    Ok(())
}

pub(crate) async fn find_by_id(conn: Conn<'_>, id: Uuid) -> Result<Option<User>, StoreError> {
    let row: Option<UserRow> = with_conn!(conn, c => {
        sqlx::query_as(SELECT_BY_ID).bind(id.to_string()).fetch_optional(&mut *c).await?
    });
    row.map(User::try_from).transpose()
}

async fn get_by_id(conn: Conn<'_>, id: Uuid) -> Result<User, StoreError> {
    find_by_id(conn, id).await?.ok_or_else(|| StoreError::NotFound {
        what: "user",
        id: id.to_string(),
    })
}

impl Tx {
    /// Inserts a user (id UUID v7, not disabled, no failures). Not audited by itself: append the
    /// audit entry in the same transaction, or use [`Store::create_user_audited`].
    ///
    /// Errors: [`StoreError::Conflict`] if the username is taken, [`StoreError::Invalid`] for an
    /// empty username or a password hash that is not in PHC format.
    pub async fn create_user(&mut self, new: &NewUser, now: OffsetDateTime) -> Result<User, StoreError> {
        check_new_user(new)?;
        let user = User {
            id: Uuid::now_v7(),
            username: new.username.clone(),
            display_name: new.display_name.clone(),
            role: new.role,
            password_hash: new.password_hash.clone(),
            disabled: false,
            failed_logins: 0,
            locked_until: None,
            created_at: normalize(now),
            must_change_password: false,
        };
        with_conn!(self.conn(), c => {
            sqlx::query(
                "INSERT INTO users (id, username, display_name, role, password_hash, disabled, \
                 failed_logins, locked_until, created_at) \
                 VALUES ($1, $2, $3, $4, $5, FALSE, 0, NULL, $6)",
            )
            .bind(user.id.to_string())
            .bind(&user.username)
            .bind(&user.display_name)
            .bind(user.role.as_str())
            .bind(&user.password_hash)
            .bind(user.created_at)
            .execute(&mut *c)
            .await
            .map_err(|e| StoreError::from_write(e, "user with this username", None))?;
        });
        Ok(user)
    }

    /// Reads a user inside the transaction (sees the transaction's own writes).
    pub async fn get_user(&mut self, id: Uuid) -> Result<User, StoreError> {
        get_by_id(self.conn(), id).await
    }

    /// Disables or re-enables a user and returns the updated user. Not audited by itself.
    pub async fn set_disabled(&mut self, id: Uuid, disabled: bool) -> Result<User, StoreError> {
        let done = with_conn!(self.conn(), c => {
            sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2")
                .bind(disabled)
                .bind(id.to_string())
                .execute(&mut *c)
                .await?
                .rows_affected()
        });
        user_updated(done, id)?;
        self.get_user(id).await
    }

    /// Replaces a user's password hash (PHC format, made by the caller). Not audited by itself.
    /// Failure count and lock are left as they are; tokens are not revoked (the caller decides).
    pub async fn set_password_hash(&mut self, id: Uuid, hash: &str) -> Result<(), StoreError> {
        check_password_hash(hash)?;
        let done = with_conn!(self.conn(), c => {
            sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                .bind(hash)
                .bind(id.to_string())
                .execute(&mut *c)
                .await?
                .rows_affected()
        });
        user_updated(done, id)?;
        Ok(())
    }
}

impl Store {
    /// The user with this id, or [`StoreError::NotFound`].
    pub async fn get_user(&self, id: Uuid) -> Result<User, StoreError> {
        get_by_id(self.acquire().await?.conn(), id).await
    }

    /// The user with this username, if any (`None` rather than an error: a login form asks this).
    pub async fn get_user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let mut pooled = self.acquire().await?;
        let row: Option<UserRow> = with_conn!(pooled.conn(), c => {
            sqlx::query_as(SELECT_BY_USERNAME).bind(username).fetch_optional(&mut *c).await?
        });
        row.map(User::try_from).transpose()
    }

    /// All users, ordered by username.
    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let mut pooled = self.acquire().await?;
        let rows: Vec<UserRow> = with_conn!(pooled.conn(), c => {
            sqlx::query_as(SELECT_ALL).fetch_all(&mut *c).await?
        });
        rows.into_iter().map(User::try_from).collect()
    }

    /// Creates a user and records `user.create` (after = the user without password hash) in one
    /// transaction.
    pub async fn create_user_audited(
        &self,
        actor: &Actor,
        new: &NewUser,
        now: OffsetDateTime,
    ) -> Result<User, StoreError> {
        let mut tx = self.begin().await?;
        let user = tx.create_user(new, now).await?;
        tx.append_audit(
            &NewAuditEntry::new(now, actor.clone(), "user.create", "user", user.id.to_string())
                .after(user.audit_snapshot()),
        )
        .await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Disables or re-enables a user and records `user.disable` / `user.enable` with the user
    /// before and after, in one transaction.
    pub async fn set_disabled_audited(
        &self,
        actor: &Actor,
        id: Uuid,
        disabled: bool,
        now: OffsetDateTime,
    ) -> Result<User, StoreError> {
        let mut tx = self.begin().await?;
        let before = tx.get_user(id).await?;
        let after = tx.set_disabled(id, disabled).await?;
        let action = if disabled { "user.disable" } else { "user.enable" };
        tx.append_audit(
            &NewAuditEntry::new(now, actor.clone(), action, "user", id.to_string())
                .before(before.audit_snapshot())
                .after(after.audit_snapshot()),
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Replaces a user's password hash and records `user.password_change` (which never contains
    /// either hash), in one transaction.
    pub async fn set_password_hash_audited(
        &self,
        actor: &Actor,
        id: Uuid,
        hash: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        tx.set_password_hash(id, hash).await?;
        tx.append_audit(&NewAuditEntry::new(
            now,
            actor.clone(),
            "user.password_change",
            "user",
            id.to_string(),
        ))
        .await?;
        tx.commit().await
    }

    /// Replaces a user's password in one transaction: the hash, the "must change at next login"
    /// mark, and every other session and API token of the user revoked (all of them when
    /// `keep_token` is `None`, as after an administrator's reset; all but the session the owner
    /// changed it from otherwise), audited as `user.password_change` with how many were revoked
    /// (never a hash). Returns that count.
    pub async fn replace_password_audited(
        &self,
        actor: &Actor,
        id: Uuid,
        hash: &str,
        must_change: bool,
        keep_token: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        tx.set_password_hash(id, hash).await?;
        let revoked = with_conn!(tx.conn(), c => {
            sqlx::query("UPDATE users SET must_change_password = $1 WHERE id = $2")
                .bind(must_change)
                .bind(id.to_string())
                .execute(&mut *c)
                .await?;
            sqlx::query(
                "UPDATE auth_tokens SET revoked_at = $1 \
                 WHERE user_id = $2 AND revoked_at IS NULL AND token_hash <> $3",
            )
            .bind(normalize(now))
            .bind(id.to_string())
            .bind(keep_token.unwrap_or(""))
            .execute(&mut *c)
            .await?
            .rows_affected()
        });
        tx.append_audit(
            &NewAuditEntry::new(now, actor.clone(), "user.password_change", "user", id.to_string()).after(
                serde_json::json!({
                    "must_change_password": must_change,
                    "sessions_and_tokens_revoked": revoked,
                }),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(revoked)
    }

    /// Counts a failed login for `id`. When the count reaches `policy.threshold`, sets
    /// `locked_until = now + policy.lock_for` and records `user.lock` (actor `system:auth`) in the
    /// same transaction. Returns the updated user.
    pub async fn record_login_failure(
        &self,
        id: Uuid,
        now: OffsetDateTime,
        policy: LockoutPolicy,
    ) -> Result<User, StoreError> {
        let now = normalize(now);
        let lock_until = normalize(now + policy.lock_for);
        let mut tx = self.begin().await?;
        // One statement, so concurrent failures cannot lose an increment.
        let done = with_conn!(tx.conn(), c => {
            sqlx::query(
                "UPDATE users SET failed_logins = failed_logins + 1, \
                 locked_until = CASE WHEN failed_logins + 1 >= $1 THEN $2 ELSE locked_until END \
                 WHERE id = $3",
            )
            .bind(i64::from(policy.threshold))
            .bind(lock_until)
            .bind(id.to_string())
            .execute(&mut *c)
            .await?
            .rows_affected()
        });
        user_updated(done, id)?;
        let user = tx.get_user(id).await?;
        if user.failed_logins >= policy.threshold {
            tx.append_audit(
                &NewAuditEntry::new(now, Actor::system("auth"), "user.lock", "user", id.to_string()).after(
                    serde_json::json!({
                        "failed_logins": user.failed_logins,
                        "locked_until": crate::audit::format_at(lock_until),
                    }),
                ),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(user)
    }

    /// Sets or clears the "must change password at next login" mark (set after the CLI or an
    /// administrator chooses a password, cleared when the owner changes it).
    pub async fn set_must_change_password(&self, id: Uuid, required: bool) -> Result<(), StoreError> {
        let mut pooled = self.acquire().await?;
        let done = with_conn!(pooled.conn(), c => {
            sqlx::query("UPDATE users SET must_change_password = $1 WHERE id = $2")
                .bind(required)
                .bind(id.to_string())
                .execute(&mut *c)
                .await?
                .rows_affected()
        });
        user_updated(done, id)?;
        Ok(())
    }

    /// Clears the failure count and any lock after a successful login.
    pub async fn record_login_success(&self, id: Uuid) -> Result<(), StoreError> {
        let mut pooled = self.acquire().await?;
        let done = with_conn!(pooled.conn(), c => {
            sqlx::query("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1")
                .bind(id.to_string())
                .execute(&mut *c)
                .await?
                .rows_affected()
        });
        user_updated(done, id)?;
        Ok(())
    }

    /// How many users exist (the CLI offers to create the first administrator when there are none).
    pub async fn count_users(&self) -> Result<u64, StoreError> {
        let mut pooled = self.acquire().await?;
        let n: i64 = with_conn!(pooled.conn(), c => {
            sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&mut *c).await?
        });
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// A user update that changed no row: the user does not exist.
fn user_updated(rows: u64, id: Uuid) -> Result<(), StoreError> {
    if rows == 0 {
        return Err(StoreError::NotFound {
            what: "user",
            id: id.to_string(),
        });
    }
    Ok(())
}
