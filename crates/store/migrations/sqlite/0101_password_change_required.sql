-- A password someone else chose or generated (first administrator, new accounts, resets) must be
-- replaced by its owner at the next login.
ALTER TABLE users ADD COLUMN must_change_password BOOLEAN NOT NULL DEFAULT FALSE;
