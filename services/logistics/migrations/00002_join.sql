-- What logistics needs to join stock and payment for an order and print its label.

-- +goose Up
ALTER TABLE shipments
    ADD COLUMN placed             boolean NOT NULL DEFAULT false,
    ADD COLUMN stock_reserved     boolean NOT NULL DEFAULT false,
    ADD COLUMN payment_authorized boolean NOT NULL DEFAULT false,
    ADD COLUMN recipient          jsonb   NOT NULL DEFAULT '{}',
    ADD COLUMN shipment_id        uuid,
    ADD COLUMN label              bytea,
    ADD COLUMN prepared_at        timestamptz,
    ADD COLUMN dispatched_at      timestamptz;
-- PENDING (joining), PREPARED (label printed), DISPATCHED, CANCELLED.
ALTER TABLE shipments ADD CONSTRAINT shipments_status_check CHECK (status IN ('PENDING', 'PREPARED', 'DISPATCHED', 'CANCELLED'));

-- +goose Down
ALTER TABLE shipments DROP CONSTRAINT shipments_status_check;
ALTER TABLE shipments DROP COLUMN placed, DROP COLUMN stock_reserved, DROP COLUMN payment_authorized,
    DROP COLUMN recipient, DROP COLUMN shipment_id, DROP COLUMN label, DROP COLUMN prepared_at, DROP COLUMN dispatched_at;
