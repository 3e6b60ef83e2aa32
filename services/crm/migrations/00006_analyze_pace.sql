-- The customer timeline, the largest table of the service (six rows an order, never
-- updated), is analyzed once the rows added since its last analysis reach its size
-- instead of a tenth of it: an analysis reads the whole table, and it is read by order
-- id alone, a plan its growth does not change. Platform migration 00005 has the
-- measurement and does the same for the outbox and the inbox.

-- +goose Up
ALTER TABLE timeline SET (autovacuum_analyze_scale_factor = 1.0);

-- +goose Down
ALTER TABLE timeline RESET (autovacuum_analyze_scale_factor);
