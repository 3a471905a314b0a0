-- When a browser session or API token was last used (to the minute), for the idle timeout of
-- browser sessions; NULL until its first use after issue.
ALTER TABLE auth_tokens ADD COLUMN last_used_at TEXT NULL;
