-- The order timeline keeps ANALYZE statistics for order_id alone, the only column a
-- statement filters or joins by (its rows are read by order and sorted after). It is the
-- largest table of the service, eight rows an order; in a make bench at 100 orders/s its
-- analyses took the most CPU of any table's (0.69 s in two minutes, most of it sorting
-- the samples of the event id, the time, the service and the event's name), and
-- autovacuum analyzes a growing table every 10 s.

-- +goose Up
ALTER TABLE order_timeline
    ALTER COLUMN event_id SET STATISTICS 0,
    ALTER COLUMN at SET STATISTICS 0,
    ALTER COLUMN service SET STATISTICS 0,
    ALTER COLUMN event SET STATISTICS 0;

-- +goose Down
ALTER TABLE order_timeline
    ALTER COLUMN event_id SET STATISTICS -1,
    ALTER COLUMN at SET STATISTICS -1,
    ALTER COLUMN service SET STATISTICS -1,
    ALTER COLUMN event SET STATISTICS -1;
