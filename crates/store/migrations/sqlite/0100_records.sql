-- Clinical records (patients, dose plans, …) as versioned JSON documents, FHIR-resource style.
-- The server owns the document shape; the store owns identity, versioning, locking and search.
-- Keep identical in meaning to ../postgres/0100_records.sql.
CREATE TABLE records (
    id         TEXT    PRIMARY KEY NOT NULL,
    kind       TEXT    NOT NULL,
    parent_id  TEXT    NULL,
    version    BIGINT  NOT NULL CHECK (version >= 1),
    -- Lower-case text the list endpoint searches (e.g. a patient's display name and MRN).
    label      TEXT    NOT NULL,
    data       TEXT    NOT NULL,
    -- A locked record (an approved plan) never changes again.
    locked     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL
);
CREATE INDEX records_kind_parent ON records (kind, parent_id);
