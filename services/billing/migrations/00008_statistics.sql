-- No ANALYZE statistics for the columns that hold a document or a payload and that no
-- statement filters, joins or orders by: ANALYZE skips a column with a target of 0. At
-- 100 orders/s autovacuum analyzed these tables every 10 s (platform migration 00004 has
-- the measurement and does the same for the outbox).

-- +goose Up
ALTER TABLE invoices
    ALTER COLUMN pdf SET STATISTICS 0,
    ALTER COLUMN details SET STATISTICS 0,
    ALTER COLUMN credit_note_pdf SET STATISTICS 0;

-- +goose Down
ALTER TABLE invoices
    ALTER COLUMN pdf SET STATISTICS -1,
    ALTER COLUMN details SET STATISTICS -1,
    ALTER COLUMN credit_note_pdf SET STATISTICS -1;
