package pg_test

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/platform/pg"
	"github.com/orderflow/orderflow/platform/pg/pgtest"
)

// A WriteBack writes each value it was told changed once, with the COMMIT, in the order
// first changed, as the value is at the commit; nothing before it.
func TestWriteBackWritesEachChangedValueOnceAtCommit(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, schema)
	ctx := context.Background()
	type row struct {
		id int
		v  string
	}
	var queued []int
	w := pg.NewWriteBack(func(b *pgx.Batch, r *row) {
		queued = append(queued, r.id)
		b.Queue(`INSERT INTO t VALUES ($1, $2)`, r.id, r.v)
	})
	tx, err := pg.Begin(ctx, pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	two, one := &row{2, "two"}, &row{1, "one"}
	w.Changed(tx, two)
	w.Changed(tx, one)
	two.v = "two, changed again"
	w.Changed(tx, two)
	if len(queued) != 0 {
		t.Fatalf("queued %v before the commit", queued)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err) // a second write of row 2 would fail on its primary key
	}
	if !slices.Equal(queued, []int{2, 1}) {
		t.Fatalf("queued %v, want [2 1]: each once, in the order first changed", queued)
	}
	var v string
	if err := pool.QueryRow(ctx, `SELECT v FROM t WHERE id = 2`).Scan(&v); err != nil || v != "two, changed again" {
		t.Fatalf("row 2 is %q (%v), want the value as it was at the commit", v, err)
	}
}
