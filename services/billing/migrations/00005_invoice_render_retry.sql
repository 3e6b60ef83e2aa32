-- An invoice whose PDF cannot be rendered stays PENDING (it has no number yet) and is
-- tried again later, with growing delays, instead of at the head of every issuer batch:
-- a batch's worth of such invoices would otherwise keep every later invoice from being
-- issued. Additive: a billing release without this knows nothing of the columns and
-- keeps issuing as before.

-- +goose Up
ALTER TABLE invoices
    ADD COLUMN render_failures integer NOT NULL DEFAULT 0,
    ADD COLUMN next_render_at timestamptz;

-- +goose Down
ALTER TABLE invoices DROP COLUMN render_failures, DROP COLUMN next_render_at;
