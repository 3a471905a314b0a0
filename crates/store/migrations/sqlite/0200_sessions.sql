-- The infusion session's high-volume and live parts. The session itself (state, rate changes,
-- side effects) is a versioned record (kind `session`); these tables hold what arrives too often or
-- from too many writers to live in one document.
-- Keep identical in meaning to ../postgres/0200_sessions.sql.

-- Every change to a session, in commit order: the source of live updates (server-sent events) and of
-- catch-up after a reconnect. id is assigned by the store as last + 1 while the writer holds the
-- write lock, so ids are gap-free and in commit order: a reader that has seen id n and then sees
-- n + 2 knows n + 1 is committed and can fetch it.
CREATE TABLE session_events (
    id         BIGINT PRIMARY KEY NOT NULL,
    session_id TEXT   NOT NULL,
    kind       TEXT   NOT NULL,
    at         TEXT   NOT NULL,
    data       TEXT   NOT NULL
);
CREATE INDEX session_events_session ON session_events (session_id, id);

-- Vital-sign sets, manual or streamed. (session_id, idempotency_key) is unique: a retried batch
-- finds its readings already stored and is acknowledged again without duplicates.
CREATE TABLE vital_signs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id      TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    taken_at        TEXT    NOT NULL,
    received_at     TEXT    NOT NULL,
    source          TEXT    NOT NULL CHECK (source IN ('manual', 'device')),
    recorded_by     TEXT    NOT NULL,
    data            TEXT    NOT NULL,
    UNIQUE (session_id, idempotency_key)
);
CREATE INDEX vital_signs_session_taken ON vital_signs (session_id, taken_at);

-- Alarms: raised -> acknowledged -> resolved. A rule that keeps firing while its alarm is open
-- adds to `occurrences` instead of raising a new alarm.
CREATE TABLE alarms (
    id              TEXT    PRIMARY KEY NOT NULL,
    session_id      TEXT    NOT NULL,
    code            TEXT    NOT NULL,
    level           TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('raised', 'acknowledged', 'resolved')),
    raised_at       TEXT    NOT NULL,
    last_seen_at    TEXT    NOT NULL,
    occurrences     BIGINT  NOT NULL DEFAULT 1,
    vital_id        BIGINT  NULL,
    data            TEXT    NOT NULL,
    acknowledged_by TEXT    NULL,
    acknowledged_at TEXT    NULL,
    resolved_by     TEXT    NULL,
    resolved_at     TEXT    NULL,
    action          TEXT    NULL,
    note            TEXT    NULL
);
CREATE INDEX alarms_session ON alarms (session_id, state);

-- Tokens a monitor uses to stream one session's vitals and nothing else (hashes only).
CREATE TABLE device_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL CHECK (length(token_hash) = 64),
    session_id TEXT NOT NULL,
    created_by TEXT NOT NULL REFERENCES users (id),
    label      TEXT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT NULL
);
CREATE INDEX device_tokens_session ON device_tokens (session_id);
