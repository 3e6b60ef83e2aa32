-- The inbox is purged after a retention (platform/consumer, ADR 0011). Two things keep a
-- purged inbox exactly-once:
--   * a floor per consumer group and topic-partition: the highest offset whose inbox row
--     was purged. A group whose Kafka offsets were lost or reset re-reads its topics from
--     the start; it skips every record at or below its floor instead of applying it again.
--   * pinned rows, never purged: the inbox rows of re-driven dead letters, which can be
--     re-driven again at any time and would otherwise apply twice.

-- +goose Up
ALTER TABLE platform_inbox ADD COLUMN pinned boolean NOT NULL DEFAULT false;
-- The purge takes a group's oldest rows first. (A block range index would cost inserts
-- less, but once vacuum lets new rows fill the pages of purged ones, every range spans
-- old and new and each purge would read the whole table.)
CREATE INDEX platform_inbox_applied ON platform_inbox (consumer, applied_at);

CREATE TABLE platform_inbox_floors (
    consumer   text    NOT NULL,
    topic      text    NOT NULL,
    partition  integer NOT NULL,
    "offset"   bigint  NOT NULL,
    PRIMARY KEY (consumer, topic, partition)
);

-- +goose Down
DROP TABLE platform_inbox_floors;
DROP INDEX platform_inbox_applied;
ALTER TABLE platform_inbox DROP COLUMN pinned;
