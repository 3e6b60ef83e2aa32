-- ANALYZE keeps statistics only for the outbox columns a statement filters or orders by.
-- The relay reads by id and published_at; nothing filters by topic, key, value, headers or
-- created_at. Their statistics cost the most of any table's ANALYZE (sorting and comparing
-- a sample of every jsonb header set and Avro payload): in a make bench at 100 orders/s
-- the five outboxes took 5.4 of the 8.6 s of CPU autovacuum spent analyzing per minute,
-- in bursts that stalled the relays. With a target of 0 ANALYZE skips a column.

-- +goose Up
ALTER TABLE platform_outbox
    ALTER COLUMN topic SET STATISTICS 0,
    ALTER COLUMN key SET STATISTICS 0,
    ALTER COLUMN value SET STATISTICS 0,
    ALTER COLUMN headers SET STATISTICS 0,
    ALTER COLUMN created_at SET STATISTICS 0;

-- +goose Down
ALTER TABLE platform_outbox
    ALTER COLUMN topic SET STATISTICS -1,
    ALTER COLUMN key SET STATISTICS -1,
    ALTER COLUMN value SET STATISTICS -1,
    ALTER COLUMN headers SET STATISTICS -1,
    ALTER COLUMN created_at SET STATISTICS -1;
