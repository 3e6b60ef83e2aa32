package pg_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/platform/pg"
	"github.com/orderflow/orderflow/platform/pg/pgtest"
)

var schema = fstest.MapFS{"00001_t.sql": {Data: []byte(`-- +goose Up
CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL);
-- +goose Down
DROP TABLE t;
`)}}

func count(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM t`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The first batch runs inside the transaction, its callbacks see its results, and the
// deferred statements and hooks commit with it, in order.
func TestTxFirstDeferredAndHooksCommitTogether(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, schema)
	ctx := context.Background()
	first := &pgx.Batch{}
	var id int
	first.Queue(`INSERT INTO t VALUES (3, 'first') RETURNING id`).QueryRow(func(row pgx.Row) error { return row.Scan(&id) })
	tx, err := pg.Begin(ctx, pool, first)
	if err != nil {
		t.Fatal(err)
	}
	if id != 3 {
		t.Fatalf("first batch's callback saw %d, want 3", id)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO t VALUES (1, 'direct')`); err != nil {
		t.Fatal(err)
	}
	tx.Defer(`INSERT INTO t VALUES (2, 'deferred')`)
	seen := tx.Local("k", func() any { return new(int) }).(*int)
	*seen = 41
	again := tx.Local("k", func() any { return new(int) }).(*int)
	*again++
	tx.BeforeCommit(func(b *pgx.Batch) { b.Queue(`UPDATE t SET v = 'hooked' WHERE id = 2`) })
	if count(t, pool) != 0 {
		t.Fatal("rows visible before commit")
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if *seen != 42 {
		t.Fatalf("Local made a new value on second use: %d", *seen)
	}
	var v string
	if err := pool.QueryRow(ctx, `SELECT v FROM t WHERE id = 2`).Scan(&v); err != nil || v != "hooked" {
		t.Fatalf("deferred row %q %v, want hooked", v, err)
	}
	if count(t, pool) != 3 {
		t.Fatal("not every row committed")
	}
	if err := tx.Commit(ctx); !errors.Is(err, pgx.ErrTxClosed) {
		t.Fatalf("second commit: %v, want ErrTxClosed", err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1`); !errors.Is(err, pgx.ErrTxClosed) {
		t.Fatalf("exec after commit: %v, want ErrTxClosed", err)
	}
}

// A deferred statement that fails fails the commit, and nothing of the transaction stays.
func TestTxDeferredFailureRollsBack(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, schema)
	ctx := context.Background()
	tx, err := pg.Begin(ctx, pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO t VALUES (1, 'a')`); err != nil {
		t.Fatal(err)
	}
	tx.Defer(`INSERT INTO t VALUES (1, 'duplicate')`)
	var pgErr *pgconn.PgError
	if err := tx.Commit(ctx); !errors.As(err, &pgErr) || pgErr.Code != "23505" {
		t.Fatalf("commit: %v, want a unique violation", err)
	}
	if n := count(t, pool); n != 0 {
		t.Fatalf("%d rows after a failed commit", n)
	}
	if s := pool.Stat(); s.AcquiredConns() != 0 {
		t.Fatalf("%d connections still held", s.AcquiredConns())
	}
}

// A failing first batch returns its error and holds no connection; a transaction aborted
// by an ignored error reports ErrTxCommitRollback at commit, like pgx's.
func TestTxFailures(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, schema)
	ctx := context.Background()
	first := &pgx.Batch{}
	first.Queue(`SELECT * FROM missing`)
	if _, err := pg.Begin(ctx, pool, first); err == nil {
		t.Fatal("Begin with a failing first batch succeeded")
	}
	tx, err := pg.Begin(ctx, pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = tx.Exec(ctx, `SELECT * FROM missing`) // ignored: the transaction is aborted
	if err := tx.Commit(ctx); !errors.Is(err, pgx.ErrTxCommitRollback) {
		t.Fatalf("commit of an aborted transaction: %v, want ErrTxCommitRollback", err)
	}
	first = &pgx.Batch{}
	first.Queue(`INSERT INTO t VALUES (2, 'first')`)
	tx, err = pg.Begin(ctx, pool, first) // the first batch is part of what rolls back
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO t VALUES (1, 'a')`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Begin(ctx); !errors.Is(err, pg.ErrNested) {
		t.Fatalf("nested Begin: %v", err)
	}
	if n := count(t, pool); n != 0 {
		t.Fatalf("%d rows after rollback", n)
	}
	if s := pool.Stat(); s.AcquiredConns() != 0 {
		t.Fatalf("%d connections still held", s.AcquiredConns())
	}
}

// AfterCommit hooks run once the commit succeeded, in order, with the rows visible and
// the connection back in the pool; a rollback, a failed commit and a commit that turned
// into a rollback run none.
func TestTxAfterCommitRunsOnlyAfterACommit(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, schema)
	ctx := context.Background()
	var ran []string
	hook := func(name string) func(context.Context) {
		return func(context.Context) {
			ran = append(ran, name+":"+map[bool]string{true: "visible", false: "invisible"}[count(t, pool) > 0])
			if s := pool.Stat(); s.AcquiredConns() != 0 {
				t.Errorf("hook %s ran with %d connections still held", name, s.AcquiredConns())
			}
		}
	}

	// A rollback, a commit whose deferred statement fails, and an aborted transaction.
	tx, err := pg.Begin(ctx, pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	tx.AfterCommit(hook("rolled back"))
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if tx, err = pg.Begin(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	tx.AfterCommit(hook("failed"))
	tx.Defer(`INSERT INTO t VALUES (1, NULL)`)
	if err := tx.Commit(ctx); err == nil {
		t.Fatal("a commit with a NOT NULL violation succeeded")
	}
	if tx, err = pg.Begin(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	tx.AfterCommit(hook("aborted"))
	_, _ = tx.Exec(ctx, `SELECT * FROM missing`)
	if err := tx.Commit(ctx); !errors.Is(err, pgx.ErrTxCommitRollback) {
		t.Fatalf("commit of an aborted transaction: %v, want ErrTxCommitRollback", err)
	}
	if len(ran) != 0 {
		t.Fatalf("hooks ran without a commit: %v", ran)
	}

	err = pg.Run(ctx, pool, nil, func(tx *pg.Tx) error {
		tx.AfterCommit(hook("first"))
		tx.Defer(`INSERT INTO t VALUES (1, 'a')`)
		tx.AfterCommit(hook("second"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ran, " "); got != "first:visible second:visible" {
		t.Fatalf("hooks ran as %q, want first and second, each after the commit", got)
	}
}
