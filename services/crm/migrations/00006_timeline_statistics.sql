-- The customer timeline keeps ANALYZE statistics for order_id alone, the only column a
-- statement filters or joins by (a customer's timeline is joined to their orders by it
-- and sorted after). Six rows an order; in a make bench at 100 orders/s its analyses took
-- the most CPU of any of crm's tables (0.62 s in two minutes, most of it sorting the
-- samples of the event id, the time, the service and the event's name).

-- +goose Up
ALTER TABLE timeline
    ALTER COLUMN event_id SET STATISTICS 0,
    ALTER COLUMN at SET STATISTICS 0,
    ALTER COLUMN service SET STATISTICS 0,
    ALTER COLUMN event SET STATISTICS 0;

-- +goose Down
ALTER TABLE timeline
    ALTER COLUMN event_id SET STATISTICS -1,
    ALTER COLUMN at SET STATISTICS -1,
    ALTER COLUMN service SET STATISTICS -1,
    ALTER COLUMN event SET STATISTICS -1;
