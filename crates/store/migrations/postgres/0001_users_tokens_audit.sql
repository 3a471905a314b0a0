-- Users, session tokens and the audit chain (PostgreSQL dialect).
-- Timestamps are TIMESTAMPTZ (microsecond precision; the store truncates to microseconds on both
-- backends); ids are TEXT UUIDs so that the SQL text is shared with SQLite.
-- Keep this file's tables and columns identical in meaning to ../sqlite/0001_users_tokens_audit.sql.

CREATE TABLE users (
    id            TEXT        PRIMARY KEY NOT NULL,
    username      TEXT        NOT NULL UNIQUE,
    display_name  TEXT        NOT NULL,
    role          TEXT        NOT NULL CHECK (role IN ('administrator', 'physician', 'nurse', 'viewer')),
    -- An argon2 PHC string made by the caller; the store never sees a plaintext password.
    password_hash TEXT        NOT NULL,
    disabled      BOOLEAN     NOT NULL DEFAULT FALSE,
    failed_logins BIGINT      NOT NULL DEFAULT 0,
    locked_until  TIMESTAMPTZ NULL,
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE auth_tokens (
    -- SHA-256 hex of the random token; the raw token is never stored.
    token_hash TEXT        PRIMARY KEY NOT NULL CHECK (length(token_hash) = 64),
    user_id    TEXT        NOT NULL REFERENCES users (id),
    kind       TEXT        NOT NULL CHECK (kind IN ('browser', 'api')),
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ NULL,
    label      TEXT        NULL
);
CREATE INDEX auth_tokens_user ON auth_tokens (user_id);

-- The hash-chained, append-only audit log. seq is assigned by the store (last + 1), never by a
-- sequence, so that a gap always means a deleted entry.
CREATE TABLE audit_log (
    seq           BIGINT      PRIMARY KEY NOT NULL,
    at            TIMESTAMPTZ NOT NULL,
    actor_user_id TEXT        NOT NULL,
    actor_role    TEXT        NOT NULL,
    action        TEXT        NOT NULL,
    record_type   TEXT        NOT NULL,
    record_id     TEXT        NOT NULL,
    before_json   TEXT        NULL,
    after_json    TEXT        NULL,
    prev_hash     TEXT        NOT NULL,
    hash          TEXT        NOT NULL
);
CREATE INDEX audit_log_record ON audit_log (record_type, record_id);

-- The chain's head (last seq and hash), one row. Appenders lock it with SELECT ... FOR UPDATE, which
-- serialises appends across connections and server nodes; the verifier compares it with the last
-- entry to detect a truncated tail.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    seq  BIGINT  NOT NULL,
    hash TEXT    NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Append-only: ordinary UPDATE and DELETE are refused. (Anyone who can drop the trigger can still
-- tamper; the hash chain is what detects that.)
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
