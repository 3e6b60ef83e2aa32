package outbox_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/hamba/avro/v2"
	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/internal/testevent"
	"github.com/orderflow/orderflow/platform/outbox"
	"github.com/orderflow/orderflow/platform/pg"
	"github.com/orderflow/orderflow/platform/pg/pgtest"
)

// wakes records how the outbox woke the relay.
type wakes struct {
	mu  sync.Mutex
	got []string
}

func (w *wakes) Wake(context.Context)     { w.add("now") }
func (w *wakes) WakeSoon(context.Context) { w.add("soon") }
func (w *wakes) add(s string)             { w.mu.Lock(); w.got = append(w.got, s); w.mu.Unlock() }
func (w *wakes) take() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := strings.Join(w.got, " ")
	w.got = nil
	return s
}

// plainEncoder frames nothing: these tests look at the wake-ups, not the records.
type plainEncoder struct{}

func (plainEncoder) Encode(_ string, schema avro.Schema, v any) ([]byte, error) {
	return avro.Marshal(schema, v)
}

// A *pg.Tx that appended wakes the relay when it commits: now if one of its events does
// not linger, soon if all of them do. A rollback, a transaction that appended nothing and
// one that is not a *pg.Tx wake it not at all; Committed wakes it now.
func TestCommitWakesTheRelayByWhatItAppended(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, nil)
	ctx := context.Background()
	ob := outbox.New(plainEncoder{})
	w := &wakes{}
	ob.SetWaker(w)
	ob.Declare(outbox.Publication{Topic: "t", Type: testevent.V1}, outbox.Publication{Topic: "t", Type: testevent.Noted, Linger: true})
	thing := func() events.Event {
		return events.New(ctx, "test", "t", "k", testevent.V1, testevent.Thing{ID: "k", Seq: 1, Amount: 1}, events.Cause{})
	}
	note := func() events.Event {
		return events.New(ctx, "test", "t", "k", testevent.Noted, testevent.Note{ID: "k"}, events.Cause{})
	}
	run := func(fn func(*pg.Tx) error) {
		t.Helper()
		if err := pg.Run(ctx, pool, nil, fn); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name string
		evs  [][]events.Event // one Append per element
		want string
	}{
		{"an event that does not linger", [][]events.Event{{thing()}}, "now"},
		{"only lingering events, in two appends", [][]events.Event{{note()}, {note(), note()}}, "soon"},
		{"a lingering event, then one that does not", [][]events.Event{{note()}, {thing()}}, "now"},
		{"both in one append", [][]events.Event{{thing(), note()}}, "now"},
		{"nothing appended", nil, ""},
	} {
		run(func(tx *pg.Tx) error {
			for _, evs := range c.evs {
				if err := ob.Append(ctx, tx, evs...); err != nil {
					return err
				}
			}
			return nil
		})
		if got := w.take(); got != c.want {
			t.Errorf("%s: woke %q, want %q", c.name, got, c.want)
		}
	}

	tx, err := pg.Begin(ctx, pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Append(ctx, tx, thing()); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got := w.take(); got != "" {
		t.Errorf("a rollback woke %q", got)
	}

	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return ob.Append(ctx, tx, note()) }); err != nil {
		t.Fatal(err)
	}
	if got := w.take(); got != "" {
		t.Errorf("a pgx transaction woke %q by itself", got)
	}
	ob.Committed(ctx)
	if got := w.take(); got != "now" {
		t.Errorf("Committed woke %q, want now", got)
	}
	var rows int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM platform_outbox`).Scan(&rows); err != nil || rows != 9 {
		t.Fatalf("%d rows in the outbox (%v), want the 9 committed", rows, err)
	}
}

// Once the service declared what it publishes, an event it did not declare, or declared
// on another topic, is refused with an error that names it, and nothing of the append is
// written: its schema was never checked against the registry before the service started.
func TestAppendRefusesAnEventTheServiceDidNotDeclare(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, nil)
	ctx := context.Background()
	ob := outbox.New(plainEncoder{})
	thing := events.New(ctx, "test", "t", "k", testevent.V1, testevent.Thing{ID: "k", Seq: 1, Amount: 1}, events.Cause{})
	note := events.New(ctx, "test", "t", "k", testevent.Noted, testevent.Note{ID: "k"}, events.Cause{})
	elsewhere := events.New(ctx, "test", "u", "k", testevent.V1, testevent.Thing{ID: "k", Seq: 1, Amount: 1}, events.Cause{})
	appendAll := func(evs ...events.Event) error {
		return pg.Run(ctx, pool, nil, func(tx *pg.Tx) error { return ob.Append(ctx, tx, evs...) })
	}
	if err := appendAll(thing, note, elsewhere); err != nil {
		t.Fatalf("an outbox with no declaration refused: %v", err)
	}

	ob.Declare(outbox.Publication{Topic: "t", Type: testevent.V1})
	for _, c := range []struct {
		name string
		ev   events.Event
		want string
	}{
		{"a type not declared", note, "orderflow.test.Noted.v1 to t"},
		{"a declared type on another topic", elsewhere, "orderflow.test.Thing.v1 to u"},
	} {
		err := appendAll(thing, c.ev)
		if !errors.Is(err, outbox.ErrUndeclared) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrUndeclared naming %q", c.name, err, c.want)
		}
	}
	if err := appendAll(thing); err != nil {
		t.Fatalf("a declared event: %v", err)
	}
	var rows int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM platform_outbox`).Scan(&rows); err != nil || rows != 4 {
		t.Fatalf("%d rows in the outbox (%v), want 4: three before the declaration and one after", rows, err)
	}
}
