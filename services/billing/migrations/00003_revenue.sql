-- Read model added after billing went live: revenue per UTC day and currency, filled
-- from the payment history by a rebuild on the service's first start with it
-- (platform/projection). Sums are not idempotent, so the model keeps the ids of the
-- events it applied.

-- +goose Up
CREATE TABLE revenue_per_day (
    day               date   NOT NULL,
    currency          text   NOT NULL,
    authorizations    bigint NOT NULL DEFAULT 0,
    authorized_minor  bigint NOT NULL DEFAULT 0,
    voids             bigint NOT NULL DEFAULT 0,
    voided_minor      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, currency)
);

CREATE TABLE revenue_events (
    event_id  uuid PRIMARY KEY
);

-- +goose Down
DROP TABLE revenue_events;
DROP TABLE revenue_per_day;
