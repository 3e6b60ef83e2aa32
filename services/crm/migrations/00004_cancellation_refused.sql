-- A customer whose cancellation request came too late (the parcel had left) is told so.
-- crm remembers the request, and whichever of the request and the dispatch it sees
-- second (they come on different topics) queues the e-mail.

-- +goose Up
CREATE TABLE cancellation_requests (
    order_id     uuid        PRIMARY KEY,
    requested_at timestamptz NOT NULL
);
ALTER TABLE emails DROP CONSTRAINT emails_kind_check;
ALTER TABLE emails ADD CONSTRAINT emails_kind_check
    CHECK (kind IN ('confirmation', 'cancellation', 'cancellation_refused', 'shipped', 'follow_up'));

-- +goose Down
DELETE FROM emails WHERE kind = 'cancellation_refused';
ALTER TABLE emails DROP CONSTRAINT emails_kind_check;
ALTER TABLE emails ADD CONSTRAINT emails_kind_check CHECK (kind IN ('confirmation', 'cancellation', 'shipped', 'follow_up'));
DROP TABLE cancellation_requests;
