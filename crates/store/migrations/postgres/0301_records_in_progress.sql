-- Records still in progress (for sessions: not yet discharged or aborted), so that the clinic board
-- reads the open ones by index instead of scanning every session ever held. The server sets the
-- flag in the same transaction as each write and reconciles it at start-up; existing sessions start
-- flagged and the first reconcile clears the closed ones.
-- Keep identical in meaning to ../sqlite/0301_records_in_progress.sql.
ALTER TABLE records ADD COLUMN in_progress BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE records SET in_progress = TRUE WHERE kind = 'session';
CREATE INDEX records_in_progress ON records (kind, id) WHERE in_progress;
