package consumer_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/platform/internal/testevent"
	"github.com/orderflow/orderflow/platform/kafka/kafkatest"
	"github.com/orderflow/orderflow/platform/outbox"
)

// A group's Preload queues its statements into the round trip that opens each batch's
// transaction, given the batch's distinct keys, and the handlers find what it returned.
// The events wait in the topic before the group starts, so batches hold several events
// of each aggregate.
func TestPreloadOpensEachBatchWithItsKeys(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	ctx := context.Background()
	h.runRelay(outbox.RelayOptions{})
	const events, aggregates = 60, 4
	h.appendMany(ctx, events, "pre", aggregates)
	waitFor(t, 20*time.Second, "every event published", func() bool {
		return h.count(`SELECT count(*) FROM platform_outbox WHERE published_at IS NULL`) == 0
	})

	type batch struct {
		keys    []string
		queried bool // the statement Preload queued ran before the handlers
		applied int
	}
	var (
		mu       sync.Mutex
		batches  []*batch
		problems []string
	)
	preload := func(b *pgx.Batch, keys []string) any {
		p := &batch{keys: keys}
		b.Queue(`SELECT count(*) FROM effects`).QueryRow(func(row pgx.Row) error {
			var n int
			p.queried = true
			return row.Scan(&n)
		})
		mu.Lock()
		batches = append(batches, p)
		mu.Unlock()
		return p
	}
	handler := func(ctx context.Context, tx pgx.Tx, m consumer.Message, e testevent.Thing) error {
		b, _ := consumer.Preloaded(tx).(*batch)
		mu.Lock()
		switch {
		case b == nil:
			problems = append(problems, fmt.Sprintf("event %d of %s: no preload in its transaction", e.Seq, e.ID))
		case !b.queried:
			problems = append(problems, fmt.Sprintf("event %d of %s: the preload's statement had not run", e.Seq, e.ID))
		case !slices.Contains(b.keys, m.Key):
			problems = append(problems, fmt.Sprintf("event %d of %s: key not among the batch's %v", e.Seq, e.ID, b.keys))
		default:
			b.applied++
		}
		mu.Unlock()
		return record(ctx, tx, m, e)
	}
	c := h.newConsumer(kafkatest.Name("g"), handler, consumer.Options{Preload: preload})
	stop := h.run(c.Run)
	defer stop()
	waitFor(t, 30*time.Second, "every event applied", func() bool {
		return h.count(`SELECT count(*) FROM effects`) == events
	})

	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Fatalf("%d problems, the first: %s", len(problems), problems[0])
	}
	several := false
	for _, b := range batches {
		if k := slices.Compact(slices.Sorted(slices.Values(b.keys))); len(k) != len(b.keys) {
			t.Fatalf("preload keys %v repeat a key", b.keys)
		}
		several = several || b.applied > len(b.keys)
	}
	if !several {
		t.Fatalf("no batch applied more events than it had keys (%d batches): the test did not batch", len(batches))
	}
}

// A group with a linger lets the broker gather what arrives within it: 20 events
// committed 20 ms apart, each published on its own, are applied in a few transactions
// instead of one each (Preload runs once per transaction and counts them). Without the
// linger every fetch answers at the first record: ask for a Linger of 0 and the test
// fails.
func TestLingerGathersEventsIntoFewTransactions(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	ctx := context.Background()
	h.runRelay(outbox.RelayOptions{})
	var (
		mu      sync.Mutex
		batches int
	)
	preload := func(*pgx.Batch, []string) any {
		mu.Lock()
		batches++
		mu.Unlock()
		return nil
	}
	c := h.newConsumer(kafkatest.Name("g"), record, consumer.Options{Linger: 2 * time.Second, Preload: preload})
	stop := h.run(c.Run)
	defer stop()
	// The group has joined and fetches from the end of the empty topic before the first
	// event is committed.
	waitFor(t, 30*time.Second, "the group to be assigned its partition", func() bool { return len(c.Assignment()) > 0 })

	const events = 20
	for i := range events {
		if err := h.appendNext(ctx, "linger-"+strconv.Itoa(i%3)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitFor(t, 30*time.Second, "every event applied", func() bool {
		return h.count(`SELECT count(*) FROM effects`) == events
	})
	mu.Lock()
	defer mu.Unlock()
	if batches > 4 {
		t.Fatalf("%d events applied in %d transactions, want a few: the linger did not gather them", events, batches)
	}
}

// UUIDKeys keeps only the canonical form: the one the services write, which a Postgres
// uuid cast takes.
func TestUUIDKeysKeepsTheCanonicalFormOnly(t *testing.T) {
	id := "6a49f27f-7a20-4350-aa4e-c7e33081d75b"
	got := consumer.UUIDKeys([]string{id, "6A49F27F-7A20-4350-AA4E-C7E33081D75B", "{" + id + "}", "urn:uuid:" + id,
		"6a49f27f7a204350aa4ec7e33081d75b", "SKU-1", ""})
	if !slices.Equal(got, []string{id}) {
		t.Fatalf("UUIDKeys = %q, want only %q", got, id)
	}
}

// A group with GenericPlans runs its handlers' statements on their generic plans: an
// array lookup is never planned for its values. Without the option the handlers run in
// the connection's own mode, where PostgreSQL plans at least the first five executions
// of a statement for their values.
func TestGenericPlansHoldForTheGroupsTransactions(t *testing.T) {
	t.Parallel()
	for _, generic := range []bool{true, false} {
		t.Run(fmt.Sprintf("generic=%v", generic), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, 1)
			ctx := context.Background()
			h.runRelay(outbox.RelayOptions{})
			const lookup = `SELECT count(*) FROM effects WHERE n = ANY($1::bigint[])`
			var (
				mu       sync.Mutex
				modes    = map[string]int{}
				replans  int64
				problems []string
			)
			handler := func(ctx context.Context, tx pgx.Tx, m consumer.Message, e testevent.Thing) error {
				var mode string
				var n int
				if err := tx.QueryRow(ctx, `SELECT current_setting('plan_cache_mode')`).Scan(&mode); err != nil {
					return err
				}
				for i := range 6 { // PostgreSQL plans the first five executions for their values in any case
					if err := tx.QueryRow(ctx, lookup, []int64{e.Seq, int64(i)}).Scan(&n); err != nil {
						return err
					}
				}
				var custom int64
				if err := tx.QueryRow(ctx, `SELECT custom_plans FROM pg_prepared_statements WHERE statement = $1`, lookup).Scan(&custom); err != nil {
					return err
				}
				mu.Lock()
				modes[mode]++
				replans = max(replans, custom)
				if mode != "force_generic_plan" && mode != "auto" {
					problems = append(problems, "plan_cache_mode "+mode)
				}
				mu.Unlock()
				return record(ctx, tx, m, e)
			}
			c := h.newConsumer(kafkatest.Name("g"), handler, consumer.Options{GenericPlans: generic, BatchSize: 1})
			stop := h.run(c.Run)
			defer stop()
			const events = 12
			h.appendMany(ctx, events, "plans", 3)
			waitFor(t, 30*time.Second, "every event applied", func() bool {
				return h.count(`SELECT count(*) FROM effects`) == events
			})
			mu.Lock()
			defer mu.Unlock()
			if len(problems) > 0 {
				t.Fatal(problems[0])
			}
			if generic && (modes["force_generic_plan"] != events || replans != 0) {
				t.Fatalf("modes %v, the lookup planned for its values up to %d times on a connection; want every transaction generic and none", modes, replans)
			}
			if !generic && (modes["auto"] != events || replans < 5) {
				t.Fatalf("modes %v, the lookup planned for its values up to %d times on a connection; want every transaction in auto mode and at least 5", modes, replans)
			}
		})
	}
}
