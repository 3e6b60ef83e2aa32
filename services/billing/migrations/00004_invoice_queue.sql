-- Invoice numbers leave the authorization transaction. Numbers are gapless per year, so
-- whoever takes one holds the year's counter row until commit; taken inside every
-- authorization, that row serialised all of billing's partitions (measured: billing
-- spent most of a 100 orders/s run waiting on it). Now an authorization queues a PENDING
-- invoice with what its PDF needs, and one issuer (app.Issuer) numbers the queue in
-- batches: one counter update, one commit for many invoices.
--
-- An invoice voided while PENDING was never issued: it keeps no number and no PDF, so
-- numbers only ever go to issued invoices.

-- +goose Up
ALTER TABLE invoices DROP CONSTRAINT invoices_pkey;
ALTER TABLE invoices ADD PRIMARY KEY (order_id);
ALTER TABLE invoices DROP CONSTRAINT invoices_order_id_key;
ALTER TABLE invoices ADD CONSTRAINT invoices_number_key UNIQUE (number);
ALTER TABLE invoices
    ALTER COLUMN number DROP NOT NULL,
    ALTER COLUMN pdf DROP NOT NULL,
    ALTER COLUMN issued_at DROP NOT NULL,
    -- queue order: invoices are numbered in the order their authorizations committed
    ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY,
    -- what the PDF and the InvoiceIssued event need: customer, lines, cause, trace
    ADD COLUMN details jsonb;
ALTER TABLE invoices DROP CONSTRAINT invoices_status_check;
ALTER TABLE invoices ADD CONSTRAINT invoices_status_check CHECK (
    (status = 'PENDING' AND number IS NULL)
    OR (status = 'ISSUED' AND number IS NOT NULL AND pdf IS NOT NULL AND issued_at IS NOT NULL)
    OR status = 'VOIDED');
CREATE INDEX invoices_pending ON invoices (seq) WHERE status = 'PENDING';

-- +goose Down
-- +goose StatementBegin
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM invoices WHERE status = 'PENDING') THEN
        RAISE EXCEPTION 'invoices are still PENDING: let billing issue them before migrating down';
    END IF;
END $$;
-- +goose StatementEnd
DELETE FROM invoices WHERE number IS NULL; -- voided before they were issued
DROP INDEX invoices_pending;
ALTER TABLE invoices DROP CONSTRAINT invoices_status_check;
ALTER TABLE invoices ADD CONSTRAINT invoices_status_check CHECK (status IN ('ISSUED', 'VOIDED'));
ALTER TABLE invoices DROP COLUMN details, DROP COLUMN seq;
ALTER TABLE invoices
    ALTER COLUMN number SET NOT NULL,
    ALTER COLUMN pdf SET NOT NULL,
    ALTER COLUMN issued_at SET NOT NULL;
ALTER TABLE invoices DROP CONSTRAINT invoices_number_key;
ALTER TABLE invoices ADD CONSTRAINT invoices_order_id_key UNIQUE (order_id);
ALTER TABLE invoices DROP CONSTRAINT invoices_pkey;
ALTER TABLE invoices ADD PRIMARY KEY (number);
