-- Who to write to about an order, the customer timeline, e-mails (at most once per
-- order and kind) and scheduled follow-ups.

-- +goose Up
CREATE TABLE order_contacts (
    order_id     uuid PRIMARY KEY,
    customer_id  text NOT NULL,
    email        text NOT NULL,
    name         text NOT NULL
);
CREATE INDEX order_contacts_customer ON order_contacts (customer_id);

-- Read model: every event about a customer's orders.
CREATE TABLE timeline (
    event_id  uuid PRIMARY KEY,
    order_id  uuid        NOT NULL,
    at        timestamptz NOT NULL,
    service   text        NOT NULL,
    event     text        NOT NULL,
    detail    text        NOT NULL DEFAULT ''
);
CREATE INDEX timeline_order ON timeline (order_id, at);

-- PENDING -> SENDING -> SENT. A row left in SENDING by a crash is never sent again (at
-- most once); UNCERTAIN means the server's answer to the message was lost.
CREATE TABLE emails (
    order_id        uuid        NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('confirmation', 'cancellation', 'shipped', 'follow_up')),
    subject         text        NOT NULL,
    body            text        NOT NULL,
    status          text        NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'SENDING', 'SENT', 'UNCERTAIN')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    PRIMARY KEY (order_id, kind)
);
CREATE INDEX emails_pending ON emails (next_attempt_at) WHERE status = 'PENDING';

CREATE TABLE followups (
    order_id     uuid PRIMARY KEY,
    due_at       timestamptz NOT NULL,
    queued       boolean     NOT NULL DEFAULT false
);
CREATE INDEX followups_due ON followups (due_at) WHERE NOT queued;

-- +goose Down
DROP TABLE followups;
DROP TABLE emails;
DROP TABLE timeline;
DROP TABLE order_contacts;
