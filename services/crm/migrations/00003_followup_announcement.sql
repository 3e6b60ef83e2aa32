-- FollowUpScheduled names the order's customer. When the dispatch reaches crm before the
-- order itself (they come on different topics, read in any order while crm catches up),
-- the customer is not known yet: the follow-up is scheduled at once, and announced when
-- OrderPlaced arrives, with the dispatch as its cause.

-- +goose Up
ALTER TABLE followups
    ADD COLUMN announced    boolean     NOT NULL DEFAULT true,
    ADD COLUMN scheduled_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN cause_id     text;

-- +goose Down
ALTER TABLE followups DROP COLUMN announced, DROP COLUMN scheduled_at, DROP COLUMN cause_id;
