-- Inventory's write model: stock per SKU.

-- +goose Up
CREATE TABLE stock (
    sku            text PRIMARY KEY,
    on_hand        integer NOT NULL CHECK (on_hand >= 0),
    reserved       integer NOT NULL DEFAULT 0 CHECK (reserved >= 0 AND reserved <= on_hand),
    low_threshold  integer NOT NULL DEFAULT 0 CHECK (low_threshold >= 0),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE stock;
