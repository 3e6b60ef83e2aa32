-- The availability read model becomes a projection rebuilt from the topics
-- (platform/projection). It sums deltas, which an event published twice would count
-- twice, so the model keeps the ids of the events it applied next to its rows.

-- +goose Up
CREATE TABLE availability_events (
    event_id  uuid PRIMARY KEY
);

-- +goose Down
DROP TABLE availability_events;
