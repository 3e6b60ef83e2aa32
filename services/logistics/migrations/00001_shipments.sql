-- Logistics' write model: one shipment per order.

-- +goose Up
CREATE TABLE shipments (
    order_id         uuid PRIMARY KEY,
    status           text NOT NULL,
    carrier          text,
    tracking_number  text UNIQUE,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE shipments;
