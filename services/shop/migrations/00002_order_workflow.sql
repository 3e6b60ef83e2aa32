-- The order workflow: what the shop needs to decide an order's fate, idempotent
-- placement, and the order view read model (fed only by events).

-- +goose Up
ALTER TABLE orders
    ADD COLUMN customer_email     text    NOT NULL DEFAULT '',
    ADD COLUMN customer_name      text    NOT NULL DEFAULT '',
    ADD COLUMN lines              jsonb   NOT NULL DEFAULT '[]',
    ADD COLUMN shipping_address   jsonb   NOT NULL DEFAULT '{}',
    ADD COLUMN stock_reserved     boolean NOT NULL DEFAULT false,
    ADD COLUMN payment_authorized boolean NOT NULL DEFAULT false;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('PENDING', 'CONFIRMED', 'SHIPPED', 'CANCELLED'));

-- One row per Idempotency-Key: the same key and body get the same answer.
CREATE TABLE idempotency_keys (
    key          text        PRIMARY KEY,
    request_hash bytea       NOT NULL,
    order_id     uuid        NOT NULL REFERENCES orders (id),
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Read model: the order as every service's events describe it.
CREATE TABLE order_view (
    order_id     uuid PRIMARY KEY,
    customer_id  text        NOT NULL,
    status       text        NOT NULL,
    reason       text,
    currency     text        NOT NULL,
    total_minor  bigint      NOT NULL,
    lines        jsonb       NOT NULL,
    placed_at    timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX order_view_customer ON order_view (customer_id, placed_at DESC, order_id);
CREATE INDEX order_view_status ON order_view (status, placed_at DESC, order_id);
CREATE INDEX order_view_placed ON order_view (placed_at DESC, order_id);

-- Read model: what each service did for an order and when, one row per event.
CREATE TABLE order_timeline (
    event_id   uuid PRIMARY KEY,
    order_id   uuid        NOT NULL,
    at         timestamptz NOT NULL,
    service    text        NOT NULL,
    event      text        NOT NULL,
    detail     text        NOT NULL DEFAULT ''
);
CREATE INDEX order_timeline_order ON order_timeline (order_id, at);

-- +goose Down
DROP TABLE order_timeline;
DROP TABLE order_view;
DROP TABLE idempotency_keys;
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders DROP COLUMN customer_email, DROP COLUMN customer_name, DROP COLUMN lines,
    DROP COLUMN shipping_address, DROP COLUMN stock_reserved, DROP COLUMN payment_authorized;
