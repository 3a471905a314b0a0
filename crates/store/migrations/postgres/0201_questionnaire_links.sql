-- Single-use, expiring links through which a patient answers questionnaires from home without an
-- account. Only the SHA-256 of the link's token is stored.
-- Keep identical in meaning to ../sqlite/0201_questionnaire_links.sql.
CREATE TABLE questionnaire_links (
    token_hash  TEXT PRIMARY KEY NOT NULL CHECK (length(token_hash) = 64),
    patient_id  TEXT NOT NULL,
    instruments TEXT NOT NULL,
    created_by  TEXT NOT NULL REFERENCES users (id),
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ NULL
);
CREATE INDEX questionnaire_links_patient ON questionnaire_links (patient_id);
