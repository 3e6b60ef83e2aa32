package consumer_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/internal/testevent"
	"github.com/orderflow/orderflow/platform/kafka/kafkatest"
	"github.com/orderflow/orderflow/platform/outbox"
	"github.com/orderflow/orderflow/platform/pg"
	"github.com/orderflow/orderflow/platform/pg/pgtest"
	"github.com/orderflow/orderflow/platform/serde"
)

// harness is one test's database, topic, serde and outbox.
type harness struct {
	t      testing.TB
	pool   *pgxpool.Pool
	topic  string
	serde  *serde.Serde
	outbox *outbox.Outbox
	log    *slog.Logger
}

func newHarness(t testing.TB, partitions int32) *harness {
	t.Helper()
	h := &harness{t: t}
	h.pool = pgtest.NewPool(t, nil)
	h.topic = kafkatest.Topic(t, partitions)
	h.serde = serde.New(kafkatest.RegistryURL(t), 5*time.Second)
	h.outbox = outbox.New(h.serde)
	var w io.Writer = io.Discard
	if testing.Verbose() {
		w = os.Stderr
	}
	h.log = slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	_, err := h.pool.Exec(context.Background(), `
		CREATE TABLE effects (n bigserial PRIMARY KEY, event_id uuid NOT NULL, key text NOT NULL,
		                      seq bigint NOT NULL, part integer NOT NULL, applied_at timestamptz NOT NULL DEFAULT clock_timestamp());
		CREATE TABLE counters (key text PRIMARY KEY, n bigint NOT NULL)`)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// event builds a V1 event for key.
func (h *harness) event(key string, seq int64) events.Event {
	return events.New(context.Background(), "test", h.topic, key, testevent.V1,
		testevent.Thing{ID: key, Seq: seq, Amount: 1}, events.Cause{})
}

// nextSeqSQL takes an aggregate's next sequence number under its row lock.
const nextSeqSQL = `INSERT INTO counters (key, n) VALUES ($1, 1)
                    ON CONFLICT (key) DO UPDATE SET n = counters.n + 1 RETURNING n`

// appendNext commits one event for key whose seq is the aggregate's next number, taken
// under the aggregate's row lock as a real write model would.
func (h *harness) appendNext(ctx context.Context, key string) error {
	defer h.outbox.Committed(ctx) // as services do after a commit: wake the relay
	return pgx.BeginFunc(ctx, h.pool, func(tx pgx.Tx) error {
		var seq int64
		err := tx.QueryRow(ctx, nextSeqSQL, key).Scan(&seq)
		if err != nil {
			return err
		}
		return h.outbox.Append(ctx, tx, h.event(key, seq))
	})
}

// appendMany commits n events with appendNext over the aggregates <prefix>-0 to
// <prefix>-(aggregates-1), round robin, and fails the test on the first error.
func (h *harness) appendMany(ctx context.Context, n int, prefix string, aggregates int) {
	h.t.Helper()
	for i := range n {
		if err := h.appendNext(ctx, prefix+"-"+strconv.Itoa(i%aggregates)); err != nil {
			h.t.Fatal(err)
		}
	}
}

// appendNextPG is appendNext the way the services write: through a pg.Tx, whose BEGIN
// carries the counter update and whose COMMIT carries the outbox row (two round trips
// instead of four), and whose commit wakes the relay. It returns the event's id.
func (h *harness) appendNextPG(ctx context.Context, key string) (string, error) {
	var seq int64
	first := &pgx.Batch{}
	first.Queue(nextSeqSQL, key).QueryRow(func(r pgx.Row) error { return r.Scan(&seq) })
	var id string
	err := pg.Run(ctx, h.pool, first, func(tx *pg.Tx) error {
		e := h.event(key, seq)
		id = e.Metadata.ID
		return h.outbox.Append(ctx, tx, e)
	})
	return id, err
}

// runRelay runs a relay until the test ends.
func (h *harness) runRelay(opts outbox.RelayOptions) {
	h.t.Helper()
	r, err := outbox.NewRelay(h.pool, kafkatest.Client(h.t), h.log, opts)
	if err != nil {
		h.t.Fatal(err)
	}
	h.outbox.SetWaker(r)
	stop := h.run(r.Run)
	h.t.Cleanup(stop)
}

// record is the handler that writes one effects row per applied event.
func record(ctx context.Context, tx pgx.Tx, m consumer.Message, p testevent.Thing) error {
	_, err := tx.Exec(ctx, `INSERT INTO effects (event_id, key, seq, part) VALUES ($1, $2, $3, $4)`,
		m.ID, p.ID, p.Seq, m.Partition)
	return err
}

// newConsumer returns a consumer of the harness topic with handler h registered.
func (h *harness) newConsumer(group string, handler consumer.Handler[testevent.Thing], opts consumer.Options) *consumer.Consumer {
	h.t.Helper()
	if opts.ShutdownGrace == 0 {
		opts.ShutdownGrace = 5 * time.Second
	}
	c, err := consumer.New(group, []string{h.topic}, kafkatest.Config(h.t), h.pool, h.serde, h.log, opts)
	if err != nil {
		h.t.Fatal(err)
	}
	consumer.On(c, testevent.V1, handler)
	return c
}

// run starts fn in a goroutine and returns a function that stops it and waits.
func (h *harness) run(fn func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				h.t.Errorf("run: %v", err)
			}
		})
	}
}

func (h *harness) count(query string, args ...any) int {
	h.t.Helper()
	var n int
	if err := h.pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
