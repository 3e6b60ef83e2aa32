-- Reservations per order, idempotent stock receipts, and the availability read model.

-- +goose Up
CREATE TABLE reservations (
    order_id    uuid PRIMARY KEY,
    -- RESERVED, REJECTED, RELEASED, SHIPPED, or VOIDED: released before its OrderPlaced
    -- arrived (events of different topics are not ordered), so it must never reserve.
    status      text        NOT NULL,
    lines       jsonb       NOT NULL DEFAULT '[]',
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE receipts (
    receipt_id   text PRIMARY KEY,
    sku          text        NOT NULL,
    quantity     integer     NOT NULL CHECK (quantity > 0),
    received_at  timestamptz NOT NULL DEFAULT now()
);

-- Read model: units available per SKU, summed from StockReceived, StockReserved and
-- StockReleased deltas (commutative, so the order of topics does not matter).
CREATE TABLE availability (
    sku         text PRIMARY KEY,
    available   integer     NOT NULL,
    updated_at  timestamptz NOT NULL
);

-- +goose Down
DROP TABLE availability;
DROP TABLE receipts;
DROP TABLE reservations;
