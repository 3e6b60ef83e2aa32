// Package pg opens a service's Postgres pool and migrates its database.
//
// Every service database carries two sets of migrations, each with its own version
// table: platform's (the outbox, inbox and projection bookkeeping tables, shared by all
// services and versioned here) and the service's own (its write and read models). Both
// are embedded in the binary, applied by `<service> migrate` or at start, and written as
// numbered SQL files for goose, a maintained migration library.
package pg

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var platformMigrations embed.FS

// Open returns a pool for dsn. It does not wait for the server: Ping tells whether it
// answers. maxConns bounds the pool (0 keeps pgx's default).
func Open(ctx context.Context, dsn string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", redact(err))
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	cfg.AfterConnect = func(_ context.Context, c *pgx.Conn) error {
		registerTypes(c.TypeMap())
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	return pool, nil
}

// Migrate applies platform's migrations and then the service's (a directory of numbered
// .sql files at the root of migrations). It is safe to run concurrently from several
// replicas: goose takes a Postgres advisory lock for the duration.
func Migrate(ctx context.Context, pool *pgxpool.Pool, migrations fs.FS, log *slog.Logger) error {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	sub, err := fs.Sub(platformMigrations, "migrations")
	if err != nil {
		return err
	}
	if err := migrate(ctx, db, sub, "platform_schema_version", log); err != nil {
		return fmt.Errorf("platform migrations: %w", err)
	}
	if migrations != nil {
		if err := migrate(ctx, db, migrations, "service_schema_version", log); err != nil {
			return fmt.Errorf("service migrations: %w", err)
		}
	}
	return nil
}

func migrate(ctx context.Context, db *sql.DB, fsys fs.FS, table string, log *slog.Logger) error {
	locker, err := newLocker(table)
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithTableName(table), goose.WithSessionLocker(locker))
	if err != nil {
		return err
	}
	results, err := p.Up(ctx)
	for _, r := range results {
		if log != nil {
			log.InfoContext(ctx, "migration applied", "table", table, "version", r.Source.Version, "file", r.Source.Path)
		}
	}
	return err
}

// IsTransient reports whether err is worth retrying: the server is unreachable or
// restarting, the connection broke, or the transaction lost a serialization or deadlock
// race. Constraint violations and other statement errors are not.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, pgx.ErrTxClosed) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", // connection exception
			"40", // transaction rollback: serialization failure, deadlock
			"53", // insufficient resources
			"57": // operator intervention: shutdown, cancel
			return true
		}
		return pgErr.Code == "55P03" // lock not available
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	return pgconn.SafeToRetry(err) || pgconn.Timeout(err) || errors.Is(err, net.ErrClosed)
}

// IsDataError reports whether err is PostgreSQL refusing the data a statement writes: a
// data exception (class 22: a value out of range, too long, malformed) or an integrity
// constraint violation (class 23: a check, a unique key, a foreign key, not null). Running
// the same statement with the same data fails the same way; only a change to the data or
// the schema makes it pass.
func IsDataError(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) < 2 {
		return false
	}
	return pgErr.Code[:2] == "22" || pgErr.Code[:2] == "23"
}

// IsUnstorableText reports whether err is PostgreSQL refusing a text value its encoding
// cannot hold: a NUL character (22021), which text never stores, or bytes with no
// character in the database's encoding (22P05). Such a value comes from outside.
func IsUnstorableText(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "22021" || pgErr.Code == "22P05")
}

// redact drops the DSN (with its password) from pgx's parse errors.
func redact(err error) error {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		return errors.New(pe.Unwrap().Error())
	}
	return err
}

// newLocker returns a session-level advisory lock with a distinct id per version table,
// so platform and service migrations of one database serialize across replicas.
func newLocker(table string) (lock.SessionLocker, error) {
	var id int64 = lock.DefaultLockID
	for _, c := range table {
		id = id*31 + int64(c)
	}
	return lock.NewPostgresSessionLocker(lock.WithLockID(id))
}
