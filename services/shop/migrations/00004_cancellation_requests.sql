-- A customer's cancellation is a request that logistics, which holds the parcel, accepts
-- or refuses (ADR 0009): the order remembers when it was asked for, and so does the order
-- view, to show the request as pending, or refused once the parcel left.

-- +goose Up
ALTER TABLE orders ADD COLUMN cancel_requested_at timestamptz;
ALTER TABLE order_view ADD COLUMN cancel_requested_at timestamptz;

-- +goose Down
ALTER TABLE order_view DROP COLUMN cancel_requested_at;
ALTER TABLE orders DROP COLUMN cancel_requested_at;
