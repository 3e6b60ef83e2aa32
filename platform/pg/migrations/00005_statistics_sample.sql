-- ANALYZE samples 300 rows for each unit of the largest statistics target among a table's
-- columns: 30,000 rows at PostgreSQL's default target of 100, sorted column by column.
-- Every statement of the services looks rows up by key or by a short range of an indexed
-- column, which a target of 10 (3,000 rows, ten histogram buckets) plans the same way; and
-- the plan that matters most, an index scan instead of a sequential one, depends on the
-- table's size, which ANALYZE records whatever the target. A database of a young service
-- grows by a tenth every few seconds under load, so autovacuum analyzes its tables every
-- autovacuum_naptime: at 300 orders/s, 7.1 s of CPU in analyses over 95 s of load in the
-- five databases, 60-100 ms each for an outbox or a timeline of 50,000-200,000 rows, and
-- 11-18 ms each at a target of 10 (session 26).
--
-- The target is the database's default, so that a column added later is sampled the same
-- way (a single column left at 100 sets the sample for its whole table). Columns with
-- their own target keep it (migration 00004 and the services' statistics migrations skip
-- payload columns with 0). Autovacuum's workers read the database's settings. ALTER
-- DATABASE needs the database's owner, which a service's role is in every deployment this
-- repository describes; a role that is not gets a NOTICE and leaves the setting to the
-- database's administrator.

-- +goose Up
-- +goose StatementBegin
DO $$
BEGIN
    IF pg_has_role(current_user, (SELECT datdba FROM pg_database WHERE datname = current_database()), 'USAGE') THEN
        EXECUTE format('ALTER DATABASE %I SET default_statistics_target = 10', current_database());
    ELSE
        RAISE NOTICE 'role % does not own database %: set its default_statistics_target to 10 as its owner',
            current_user, current_database();
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $$
BEGIN
    IF pg_has_role(current_user, (SELECT datdba FROM pg_database WHERE datname = current_database()), 'USAGE') THEN
        EXECUTE format('ALTER DATABASE %I RESET default_statistics_target', current_database());
    END IF;
END
$$;
-- +goose StatementEnd
