-- An issued invoice is never altered or deleted: voiding it issues a credit note, a
-- document of its own with a gapless number per year in its own series, which cancels
-- the invoice in full and refers to it.

-- +goose Up
CREATE TABLE credit_note_counters (
    year  integer PRIMARY KEY,
    last  bigint  NOT NULL
);
ALTER TABLE invoices
    ADD COLUMN credit_note_number text UNIQUE,
    ADD COLUMN credit_note_pdf    bytea;

-- +goose Down
ALTER TABLE invoices DROP COLUMN credit_note_number, DROP COLUMN credit_note_pdf;
DROP TABLE credit_note_counters;
