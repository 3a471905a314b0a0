-- Open suicide-risk alerts are found by the in-progress index, like open sessions, never by
-- reading the newest N alerts: an open alert older than those would have dropped off the list.
-- Every existing alert starts flagged; the server's start-up reconcile clears the followed-up ones.
-- Keep identical in meaning to ../sqlite/0302_open_risk_alerts.sql.
UPDATE records SET in_progress = TRUE WHERE kind = 'risk_alert';
