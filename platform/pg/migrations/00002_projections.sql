-- Bookkeeping of read models built by platform/projection (DESIGN.md section 5).

-- +goose Up

-- One row per read model that has been built. epoch changes with every swap of a rebuilt
-- version, which tells the live runner to reload its offsets.
CREATE TABLE platform_projections (
    model       text        PRIMARY KEY,
    epoch       bigint      NOT NULL,
    rebuilt_at  timestamptz NOT NULL,
    events      bigint      NOT NULL
);

-- The next offset a read model reads per partition, written in the same transaction as
-- the rows those offsets produced.
CREATE TABLE platform_projection_offsets (
    model        text    NOT NULL,
    topic        text    NOT NULL,
    partition    integer NOT NULL,
    next_offset  bigint  NOT NULL,
    PRIMARY KEY (model, topic, partition)
);

-- +goose Down
DROP TABLE platform_projection_offsets;
DROP TABLE platform_projections;
