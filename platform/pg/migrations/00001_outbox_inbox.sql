-- The delivery tables every service gets from platform (DESIGN.md section 4).

-- +goose Up

-- Events waiting to be published, in commit order per aggregate. Rows are written in
-- the same transaction as the state change they announce (outbox.Append) and marked
-- published by the relay after Kafka acknowledged them.
CREATE TABLE platform_outbox (
    id            bigserial   PRIMARY KEY,
    topic         text        NOT NULL,
    key           text        NOT NULL,
    value         bytea       NOT NULL,
    headers       jsonb       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    published_at  timestamptz
);
CREATE INDEX platform_outbox_pending ON platform_outbox (id) WHERE published_at IS NULL;
CREATE INDEX platform_outbox_published ON platform_outbox (published_at) WHERE published_at IS NOT NULL;

-- Events a consumer has applied: the handler's effects and this row commit together, so
-- a redelivered event finds its row and is acknowledged without effect.
CREATE TABLE platform_inbox (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    topic        text        NOT NULL,
    partition    integer     NOT NULL,
    "offset"     bigint      NOT NULL,
    applied_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- +goose Down
DROP TABLE platform_inbox;
DROP TABLE platform_outbox;
