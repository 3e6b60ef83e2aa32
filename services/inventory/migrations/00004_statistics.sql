-- No ANALYZE statistics for the columns that hold a document or a payload and that no
-- statement filters, joins or orders by: ANALYZE skips a column with a target of 0. At
-- 100 orders/s autovacuum analyzed these tables every 10 s (platform migration 00004 has
-- the measurement and does the same for the outbox).

-- +goose Up
ALTER TABLE reservations
    ALTER COLUMN lines SET STATISTICS 0;

-- +goose Down
ALTER TABLE reservations
    ALTER COLUMN lines SET STATISTICS -1;
