package consumer_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/pg"
)

// Events appended to a pg.Tx are written with its COMMIT, in the order appended, and not
// at all when it rolls back; before the commit nothing of them is in the outbox.
func TestOutboxAppendToPgTxGoesWithCommit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	ctx := context.Background()
	rows := func() int { return h.count(`SELECT count(*) FROM platform_outbox`) }

	first, second, third := h.event("a", 1), h.event("b", 1), h.event("a", 2)
	err := pg.Run(ctx, h.pool, nil, func(tx *pg.Tx) error {
		if err := h.outbox.Append(ctx, tx, first, second); err != nil {
			return err
		}
		if err := h.outbox.Append(ctx, tx, third); err != nil {
			return err
		}
		var inTx int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM platform_outbox`).Scan(&inTx); err != nil {
			return err
		}
		if inTx != 0 {
			t.Errorf("%d outbox rows inside the transaction before COMMIT, want 0 (deferred)", inTx)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := h.pool.Query(ctx, `SELECT (SELECT h->>'v' FROM jsonb_array_elements(headers) h WHERE h->>'k' = $1)
	                              FROM platform_outbox ORDER BY id`, events.HeaderID)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(got, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := []string{first.Metadata.ID, second.Metadata.ID, third.Metadata.ID}
	if len(ids) != 3 || ids[0] != want[0] || ids[1] != want[1] || ids[2] != want[2] {
		t.Fatalf("outbox holds %v, want %v in that order", ids, want)
	}

	errAbort := errors.New("rule failed")
	err = pg.Run(ctx, h.pool, nil, func(tx *pg.Tx) error {
		if err := h.outbox.Append(ctx, tx, h.event("c", 1)); err != nil {
			return err
		}
		return errAbort
	})
	if !errors.Is(err, errAbort) {
		t.Fatalf("Run: %v", err)
	}
	if n := rows(); n != 3 {
		t.Fatalf("%d outbox rows after a rolled-back append, want 3", n)
	}
}
