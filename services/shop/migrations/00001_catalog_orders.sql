-- The shop's write model: the catalog that prices order lines, and the orders.

-- +goose Up
CREATE TABLE products (
    sku               text PRIMARY KEY,
    name              text   NOT NULL,
    unit_price_minor  bigint NOT NULL CHECK (unit_price_minor >= 0),
    currency          char(3) NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE orders (
    id               uuid PRIMARY KEY,
    customer_id      text   NOT NULL,
    status           text   NOT NULL,
    cancel_reason    text,
    currency         char(3) NOT NULL,
    total_minor      bigint NOT NULL,
    placed_at        timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);

-- +goose Down
DROP TABLE orders;
DROP TABLE products;
