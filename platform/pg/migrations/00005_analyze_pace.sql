-- Autovacuum analyzes the outbox and the inbox once the rows changed since their last
-- analysis reach the table's own size, instead of a tenth of it. Below 30,000 pages an
-- ANALYZE reads every page and checks every row, so an analysis costs as much as the
-- table is large, and at a tenth a table is read whole again after every 10% of change
-- (the inbox's rows are inserted and later purged, the outbox's inserted, marked and
-- purged): with the local stack's 10 s naptime a young table was analyzed every 10 s.
-- In `perf` profiles of 15 s of a make bench step at 100 orders/s autovacuum's analyses
-- took 4.3% and 6.6% of the machine's CPU; with autovacuum logging, the outboxes, the
-- inboxes and the two timelines took two thirds of it. Their statements find rows by key
-- or by a partial index, plans that do not change as the tables grow: the analysis that
-- matters is the first (at 50 changed rows), which turns plans made on an empty table
-- into index scans.

-- +goose Up
ALTER TABLE platform_outbox SET (autovacuum_analyze_scale_factor = 1.0);
ALTER TABLE platform_inbox SET (autovacuum_analyze_scale_factor = 1.0);

-- +goose Down
ALTER TABLE platform_outbox RESET (autovacuum_analyze_scale_factor);
ALTER TABLE platform_inbox RESET (autovacuum_analyze_scale_factor);
