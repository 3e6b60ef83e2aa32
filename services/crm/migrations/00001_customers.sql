-- CRM's write model: the customers it has heard of.

-- +goose Up
CREATE TABLE customers (
    customer_id  text PRIMARY KEY,
    email        text NOT NULL,
    name         text NOT NULL,
    first_seen   timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE customers;
