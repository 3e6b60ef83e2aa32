package pg

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Tx is a transaction that costs two round trips to PostgreSQL fewer than pgx's own:
// BEGIN travels with the transaction's first statements (Begin's first batch), and the
// statements queued with Defer travel with COMMIT. It implements pgx.Tx, so code written
// against pgx.Tx runs in it unchanged.
//
// Why: a consumer's transaction is small (an inbox row, a handful of statements, an
// outbox row), and on a busy machine each round trip costs both processes a wake-up that
// is dearer than the statement. Measured under the suite's load, the platform's fixed
// statements (BEGIN, inbox, outbox, COMMIT) were half of all round trips.
//
// A Tx is not safe for concurrent use and does not nest (Begin returns an error). Large
// objects are not supported.
type Tx struct {
	conn     *pgxpool.Conn
	deferred pgx.Batch
	hooks    []func(*pgx.Batch)
	after    []func(context.Context)
	locals   map[any]any
	done     bool
}

var _ pgx.Tx = (*Tx)(nil)

// ErrNested is returned by Tx.Begin: savepoints are not supported.
var ErrNested = errors.New("pg.Tx does not nest")

// Begin starts a transaction on a connection from pool and runs first in the same round
// trip; first's results reach the callbacks set on its queued queries (QueuedQuery.Exec,
// Query, QueryRow). first may be nil. When first fails the transaction is rolled back and
// the error returned.
func Begin(ctx context.Context, pool *pgxpool.Pool, first *pgx.Batch) (*Tx, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	b := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, 1+lenOf(first))}
	b.Queue("begin")
	if first != nil {
		b.QueuedQueries = append(b.QueuedQueries, first.QueuedQueries...)
	}
	tx := &Tx{conn: conn}
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return nil, err
	}
	return tx, nil
}

// Run runs fn in a transaction begun with first (see Begin) and commits it when fn
// returns nil; otherwise, or when fn panics, it rolls back.
func Run(ctx context.Context, pool *pgxpool.Pool, first *pgx.Batch, fn func(*Tx) error) error {
	tx, err := Begin(ctx, pool, first)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// QueueGenericPlans queues in b the setting that runs the rest of the transaction's
// statements on their generic plans, made once per connection and statement, instead of
// planning them for their values. PostgreSQL keeps planning a statement with an array
// parameter (id = ANY($1)) for every execution, because its generic plan assumes ten
// elements and so loses to a custom plan for the one or few a transaction passes; at 100
// orders/s that planning cost as much as running those lookups. Queue it only for
// transactions whose statements find rows by key: a statement whose plan depends on its
// values (a partial index chosen by a parameter, a range) would keep the generic plan's
// guess, typically a scan of the whole table.
func QueueGenericPlans(b *pgx.Batch) {
	b.Queue("SET LOCAL plan_cache_mode = force_generic_plan")
}

func lenOf(b *pgx.Batch) int {
	if b == nil {
		return 0
	}
	return b.Len()
}

// Defer queues a statement to run with COMMIT, in the order queued. Its error, if any,
// is Commit's error, and the transaction then rolls back.
func (tx *Tx) Defer(sql string, args ...any) *pgx.QueuedQuery {
	return tx.deferred.Queue(sql, args...)
}

// BeforeCommit registers fn to queue statements into the commit round trip, after the
// statements deferred so far. Hooks run in the order registered.
func (tx *Tx) BeforeCommit(fn func(b *pgx.Batch)) {
	tx.hooks = append(tx.hooks, fn)
}

// AfterCommit registers fn to run once the transaction has committed, after Commit gave
// the connection back, in the order registered. A transaction that rolls back, or whose
// commit fails, never runs them. It is how a package learns that what it wrote became
// visible (the outbox wakes its relay this way), without every caller of Commit
// remembering to tell it.
func (tx *Tx) AfterCommit(fn func(ctx context.Context)) {
	tx.after = append(tx.after, fn)
}

// Local returns the value kept under key for this transaction, made by create on first
// use. It lets a package gather what it writes during the transaction (with
// BeforeCommit) without a registry of open transactions.
func (tx *Tx) Local(key any, create func() any) any {
	if v, ok := tx.locals[key]; ok {
		return v
	}
	if tx.locals == nil {
		tx.locals = map[any]any{}
	}
	v := create()
	tx.locals[key] = v
	return v
}

// Commit runs the deferred statements and COMMIT in one round trip and returns the
// connection to the pool. A transaction that an earlier error aborted returns
// pgx.ErrTxCommitRollback, as pgx's does.
func (tx *Tx) Commit(ctx context.Context) error {
	if tx.done {
		return pgx.ErrTxClosed
	}
	for _, fn := range tx.hooks {
		fn(&tx.deferred)
	}
	var tag pgconn.CommandTag
	tx.deferred.Queue("commit").Exec(func(ct pgconn.CommandTag) error { tag = ct; return nil })
	err := tx.conn.SendBatch(ctx, &tx.deferred).Close()
	if err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	tx.release()
	if tag.String() == "ROLLBACK" {
		return pgx.ErrTxCommitRollback
	}
	for _, fn := range tx.after {
		fn(ctx)
	}
	return nil
}

// Rollback rolls the transaction back and returns the connection to the pool; after
// Commit it does nothing. A connection whose rollback failed is closed, not reused.
func (tx *Tx) Rollback(ctx context.Context) error {
	if tx.done {
		return nil
	}
	_, err := tx.conn.Exec(ctx, "rollback")
	if err != nil {
		_ = tx.conn.Conn().Close(context.WithoutCancel(ctx))
		err = fmt.Errorf("rollback: %w", err)
	}
	tx.release()
	return err
}

func (tx *Tx) release() {
	tx.done = true
	tx.conn.Release() // a connection left inside a transaction is destroyed by the pool
}

// Begin implements pgx.Tx; nested transactions are not supported.
func (tx *Tx) Begin(context.Context) (pgx.Tx, error) { return nil, ErrNested }

// Exec implements pgx.Tx.
func (tx *Tx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if tx.done {
		return pgconn.CommandTag{}, pgx.ErrTxClosed
	}
	return tx.conn.Exec(ctx, sql, args...)
}

// Query implements pgx.Tx.
func (tx *Tx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if tx.done {
		return nil, pgx.ErrTxClosed
	}
	return tx.conn.Query(ctx, sql, args...)
}

// QueryRow implements pgx.Tx.
func (tx *Tx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if tx.done {
		return errRow{pgx.ErrTxClosed}
	}
	return tx.conn.QueryRow(ctx, sql, args...)
}

// SendBatch implements pgx.Tx.
func (tx *Tx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if tx.done {
		return pgx.FailedBatchResults(b, pgx.ErrTxClosed)
	}
	return tx.conn.SendBatch(ctx, b)
}

// CopyFrom implements pgx.Tx.
func (tx *Tx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	if tx.done {
		return 0, pgx.ErrTxClosed
	}
	return tx.conn.CopyFrom(ctx, table, columns, src)
}

// Prepare implements pgx.Tx.
func (tx *Tx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	if tx.done {
		return nil, pgx.ErrTxClosed
	}
	return tx.conn.Conn().Prepare(ctx, name, sql)
}

// LargeObjects implements pgx.Tx; large objects are not supported and the value
// returned must not be used.
func (tx *Tx) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} }

// Conn implements pgx.Tx.
func (tx *Tx) Conn() *pgx.Conn { return tx.conn.Conn() }

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }
