-- Billing's write model: one payment per order.

-- +goose Up
CREATE TABLE payments (
    order_id      uuid PRIMARY KEY,
    status        text   NOT NULL,
    amount_minor  bigint NOT NULL CHECK (amount_minor >= 0),
    currency      char(3) NOT NULL,
    provider_ref  text,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE payments;
