-- The controlled-substance ledger (ketamine: DEA Schedule III): vials received, and an append-only
-- ledger of what happened to each (receipt, draw, administration, waste, destruction, physical
-- count, adjustment) with the vial's running balance. Sources: shared/domain/clinical.md §9.
-- Keep identical in meaning to ../sqlite/0300_ledger.sql.
--
-- Quantities are exact decimals stored as canonical TEXT (rust_decimal, normalised: "35.5", "100",
-- "0"; at most 3 fraction digits) on both backends, so the SQL text is shared and nothing is ever
-- rounded by the database. Arithmetic and comparisons happen in Rust under the write lock; the
-- database only guards the sign: a canonical negative number starts with '-'.
-- Expiry dates are TEXT 'YYYY-MM-DD' on both backends; timestamps TIMESTAMPTZ here, TEXT on SQLite.

-- One row per commercial container received (21 CFR 1304.22(c): finished form, units or volume per
-- container, date, supplier name, address and DEA registration number; the invoice is the Schedule
-- III receiving record, DEA Practitioner's Manual App. C).
CREATE TABLE ledger_vials (
    id                  TEXT   PRIMARY KEY NOT NULL,
    ndc                 TEXT   NOT NULL,
    product_name        TEXT   NOT NULL,
    strength_mg_per_ml  TEXT   NOT NULL CHECK (strength_mg_per_ml NOT LIKE '-%'),
    volume_ml           TEXT   NOT NULL CHECK (volume_ml NOT LIKE '-%'),
    content_mg          TEXT   NOT NULL CHECK (content_mg NOT LIKE '-%'),
    lot                 TEXT   NOT NULL,
    expiry              TEXT   NOT NULL,
    supplier_name       TEXT   NOT NULL,
    supplier_address    TEXT   NOT NULL,
    supplier_dea_number TEXT   NOT NULL,
    invoice_number      TEXT   NOT NULL,
    received_at         TIMESTAMPTZ NOT NULL,
    received_by_id      TEXT   NOT NULL,
    received_by_name    TEXT   NOT NULL,
    -- sealed (never drawn from), open, empty (balance 0), destroyed (DEA Form 41).
    status              TEXT   NOT NULL CHECK (status IN ('sealed', 'open', 'empty', 'destroyed')),
    -- The perpetual balance, mg of ketamine base. Never negative.
    balance_mg          TEXT   NOT NULL CHECK (balance_mg NOT LIKE '-%'),
    -- How many ledger entries the vial has (the last entry's vial_seq). Every entry moves it by one
    -- with a compare-and-set, so two writers can never both apply a change computed from one balance.
    entry_count         BIGINT NOT NULL CHECK (entry_count >= 1)
);
CREATE INDEX ledger_vials_status ON ledger_vials (status);

-- Physical counts and inventories (21 U.S.C. 827(a): an initial inventory, then a complete one at
-- least every 2 years, noting whether taken at the opening or close of business).
CREATE TABLE ledger_counts (
    id            TEXT PRIMARY KEY NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('count', 'inventory')),
    taken_at      TIMESTAMPTZ NOT NULL,
    taken_by_id   TEXT NOT NULL,
    taken_by_name TEXT NOT NULL,
    business_time TEXT NULL CHECK (business_time IN ('opening', 'close')),
    note          TEXT NULL,
    CHECK (kind <> 'inventory' OR business_time IS NOT NULL)
);

-- The ledger. id is assigned by the store as last + 1 under the write lock (gap-free, commit order);
-- vial_seq numbers each vial's entries from 1 (the receipt).
CREATE TABLE ledger_entries (
    id                  BIGINT  PRIMARY KEY NOT NULL,
    vial_id             TEXT    NOT NULL REFERENCES ledger_vials (id),
    vial_seq            BIGINT  NOT NULL CHECK (vial_seq >= 1),
    kind                TEXT    NOT NULL CHECK (kind IN ('receipt', 'draw', 'administration', 'waste',
                                                         'destruction', 'count', 'adjustment')),
    at                  TIMESTAMPTZ NOT NULL,
    actor_id            TEXT    NOT NULL,
    actor_name          TEXT    NOT NULL,
    -- What the entry records, mg (a count: the amount counted). Never negative.
    quantity_mg         TEXT    NOT NULL CHECK (quantity_mg NOT LIKE '-%'),
    -- The change of the vial's balance (receipt +, draw and destruction −, adjustment ±, others 0)
    -- and the balance after it.
    balance_change_mg   TEXT    NOT NULL,
    balance_after_mg    TEXT    NOT NULL CHECK (balance_after_mg NOT LIKE '-%'),
    -- Administration and waste account for a draw; what is left of the draw after this entry.
    draw_id             BIGINT  NULL REFERENCES ledger_entries (id),
    draw_outstanding_mg TEXT    NULL CHECK (draw_outstanding_mg NOT LIKE '-%'),
    session_id          TEXT    NULL,
    patient_id          TEXT    NULL,
    patient_name        TEXT    NULL,
    -- Administration: the session's recorded dose given; administration: total administered for the
    -- session − given; count: counted − book balance.
    session_given_mg    TEXT    NULL,
    difference_mg       TEXT    NULL,
    witness1_id         TEXT    NULL,
    witness1_name       TEXT    NULL,
    witness2_id         TEXT    NULL,
    witness2_name       TEXT    NULL,
    reason              TEXT    NULL,
    method              TEXT    NULL,
    location            TEXT    NULL,
    count_id            TEXT    NULL REFERENCES ledger_counts (id),
    estimated           BOOLEAN NOT NULL DEFAULT FALSE,
    UNIQUE (vial_id, vial_seq),
    -- Witnesses are other people than the actor and each other; waste needs one, destruction two.
    CHECK (witness1_id IS NULL OR witness1_id <> actor_id),
    CHECK (witness2_id IS NULL OR (witness1_id IS NOT NULL AND witness2_id <> actor_id
                                   AND witness2_id <> witness1_id)),
    CHECK (kind <> 'waste' OR witness1_id IS NOT NULL),
    CHECK (kind <> 'destruction' OR witness2_id IS NOT NULL),
    CHECK (kind NOT IN ('administration', 'waste') OR draw_id IS NOT NULL),
    CHECK (kind <> 'draw' OR session_id IS NOT NULL)
);
CREATE INDEX ledger_entries_vial ON ledger_entries (vial_id, vial_seq);
CREATE INDEX ledger_entries_draw ON ledger_entries (draw_id);
CREATE INDEX ledger_entries_session ON ledger_entries (session_id);

-- A count that disagrees with the book opens a discrepancy; a physician resolves it with a note
-- (and, if the book was wrong, an adjustment entry).
CREATE TABLE ledger_discrepancies (
    id                  TEXT   PRIMARY KEY NOT NULL,
    count_id            TEXT   NOT NULL REFERENCES ledger_counts (id),
    vial_id             TEXT   NOT NULL REFERENCES ledger_vials (id),
    count_entry_id      BIGINT NOT NULL REFERENCES ledger_entries (id),
    book_mg             TEXT   NOT NULL,
    counted_mg          TEXT   NOT NULL,
    variance_mg         TEXT   NOT NULL,
    opened_at           TIMESTAMPTZ NOT NULL,
    status              TEXT   NOT NULL CHECK (status IN ('open', 'resolved')),
    resolved_at         TIMESTAMPTZ NULL,
    resolved_by_id      TEXT   NULL,
    resolved_by_name    TEXT   NULL,
    resolution_note     TEXT   NULL,
    adjustment_entry_id BIGINT NULL REFERENCES ledger_entries (id),
    CHECK (status <> 'resolved' OR (resolution_note IS NOT NULL AND resolved_by_id IS NOT NULL))
);
CREATE INDEX ledger_discrepancies_vial ON ledger_discrepancies (vial_id, status);

-- Retention (21 CFR 1304.04: at least 2 years): nothing in the ledger is ever deleted, and entries
-- and counts are never changed. A vial's receipt facts never change either; only its balance,
-- status and entry count move. A discrepancy changes once, from open to resolved.
CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_counts_append_only BEFORE UPDATE OR DELETE ON ledger_counts
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();

CREATE FUNCTION ledger_never_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are never deleted', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER ledger_vials_no_delete BEFORE DELETE ON ledger_vials
    FOR EACH ROW EXECUTE FUNCTION ledger_never_deleted();
CREATE TRIGGER ledger_discrepancies_no_delete BEFORE DELETE ON ledger_discrepancies
    FOR EACH ROW EXECUTE FUNCTION ledger_never_deleted();

CREATE FUNCTION ledger_vials_receipt_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.id, NEW.ndc, NEW.product_name, NEW.strength_mg_per_ml, NEW.volume_ml, NEW.content_mg,
        NEW.lot, NEW.expiry, NEW.supplier_name, NEW.supplier_address, NEW.supplier_dea_number,
        NEW.invoice_number, NEW.received_at, NEW.received_by_id, NEW.received_by_name)
       IS DISTINCT FROM
       (OLD.id, OLD.ndc, OLD.product_name, OLD.strength_mg_per_ml, OLD.volume_ml, OLD.content_mg,
        OLD.lot, OLD.expiry, OLD.supplier_name, OLD.supplier_address, OLD.supplier_dea_number,
        OLD.invoice_number, OLD.received_at, OLD.received_by_id, OLD.received_by_name) THEN
        RAISE EXCEPTION 'a vial''s receipt record never changes';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER ledger_vials_receipt_fixed BEFORE UPDATE ON ledger_vials
    FOR EACH ROW EXECUTE FUNCTION ledger_vials_receipt_fixed();

CREATE FUNCTION ledger_discrepancies_resolve_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status <> 'open'
       OR (NEW.id, NEW.count_id, NEW.vial_id, NEW.count_entry_id, NEW.book_mg, NEW.counted_mg,
           NEW.variance_mg, NEW.opened_at)
          IS DISTINCT FROM
          (OLD.id, OLD.count_id, OLD.vial_id, OLD.count_entry_id, OLD.book_mg, OLD.counted_mg,
           OLD.variance_mg, OLD.opened_at) THEN
        RAISE EXCEPTION 'a discrepancy changes only once, from open to resolved';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER ledger_discrepancies_resolve_once BEFORE UPDATE ON ledger_discrepancies
    FOR EACH ROW EXECUTE FUNCTION ledger_discrepancies_resolve_once();
