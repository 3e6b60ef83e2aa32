-- An order placement claims its Idempotency-Key when its transaction begins, in the round
-- trip that reads the catalog's prices, and inserts the order with COMMIT: two round
-- trips instead of three. The key refers to an order that exists only by then, so the
-- reference is checked at COMMIT. Replicas still running the code before this migration
-- insert the order first, which a deferred check accepts as well.

-- +goose Up
ALTER TABLE idempotency_keys ALTER CONSTRAINT idempotency_keys_order_id_fkey DEFERRABLE INITIALLY DEFERRED;

-- +goose Down
ALTER TABLE idempotency_keys ALTER CONSTRAINT idempotency_keys_order_id_fkey NOT DEFERRABLE;
