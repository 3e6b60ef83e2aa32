-- Payments with the provider's authorization, and invoices numbered per year.

-- +goose Up
ALTER TABLE payments
    ADD COLUMN customer_id      text NOT NULL DEFAULT '',
    ADD COLUMN authorization_id text,
    ADD COLUMN decline_reason   text;
-- AUTHORIZED, FAILED, VOIDED; VOIDED without an authorization marks an order whose
-- compensation arrived before its OrderPlaced (topics are not ordered among each other).
ALTER TABLE payments ADD CONSTRAINT payments_status_check CHECK (status IN ('AUTHORIZED', 'FAILED', 'VOIDED'));

CREATE TABLE invoice_counters (
    year  integer PRIMARY KEY,
    last  integer NOT NULL
);

CREATE TABLE invoices (
    number        text PRIMARY KEY,
    order_id      uuid        NOT NULL UNIQUE,
    status        text        NOT NULL CHECK (status IN ('ISSUED', 'VOIDED')),
    amount_minor  bigint      NOT NULL,
    currency      char(3)     NOT NULL,
    pdf           bytea       NOT NULL,
    issued_at     timestamptz NOT NULL,
    voided_at     timestamptz
);

-- +goose Down
DROP TABLE invoices;
DROP TABLE invoice_counters;
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments DROP COLUMN customer_id, DROP COLUMN authorization_id, DROP COLUMN decline_reason;
