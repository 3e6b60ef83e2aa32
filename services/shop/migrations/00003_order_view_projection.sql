-- The order view becomes a projection rebuilt from the topics (platform/projection). A
-- rebuild reads every topic at its own pace, so an order's later events (confirmed,
-- shipped) may arrive before its OrderPlaced: the row then exists with the status and
-- without what only OrderPlaced carries, and queries do not show it until placed_at is
-- set. The status only moves up PENDING < CONFIRMED < SHIPPED < CANCELLED.

-- +goose Up
ALTER TABLE order_view
    ALTER COLUMN customer_id DROP NOT NULL,
    ALTER COLUMN currency DROP NOT NULL,
    ALTER COLUMN total_minor DROP NOT NULL,
    ALTER COLUMN lines DROP NOT NULL,
    ALTER COLUMN placed_at DROP NOT NULL;
ALTER TABLE order_view ADD CONSTRAINT order_view_status_check
    CHECK (status IN ('PENDING', 'CONFIRMED', 'SHIPPED', 'CANCELLED'));

-- +goose Down
ALTER TABLE order_view DROP CONSTRAINT order_view_status_check;
DELETE FROM order_view WHERE placed_at IS NULL;
ALTER TABLE order_view
    ALTER COLUMN customer_id SET NOT NULL,
    ALTER COLUMN currency SET NOT NULL,
    ALTER COLUMN total_minor SET NOT NULL,
    ALTER COLUMN lines SET NOT NULL,
    ALTER COLUMN placed_at SET NOT NULL;
