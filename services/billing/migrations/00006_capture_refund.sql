-- Billing captures an authorization when the order is confirmed and refunds the capture
-- when a confirmed order is cancelled (ADR 0010); before capture, compensation voids.

-- +goose Up
ALTER TABLE payments
    ADD COLUMN capture_id text,
    ADD COLUMN refund_id  text;
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check
    CHECK (status IN ('AUTHORIZED', 'CAPTURED', 'REFUNDED', 'FAILED', 'VOIDED'));

ALTER TABLE revenue_per_day
    ADD COLUMN captures        bigint NOT NULL DEFAULT 0,
    ADD COLUMN captured_minor  bigint NOT NULL DEFAULT 0,
    ADD COLUMN refunds         bigint NOT NULL DEFAULT 0,
    ADD COLUMN refunded_minor  bigint NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE revenue_per_day DROP COLUMN captures, DROP COLUMN captured_minor, DROP COLUMN refunds, DROP COLUMN refunded_minor;
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
UPDATE payments SET status = 'AUTHORIZED' WHERE status = 'CAPTURED';
UPDATE payments SET status = 'VOIDED' WHERE status = 'REFUNDED';
ALTER TABLE payments ADD CONSTRAINT payments_status_check CHECK (status IN ('AUTHORIZED', 'FAILED', 'VOIDED'));
ALTER TABLE payments DROP COLUMN capture_id, DROP COLUMN refund_id;
