package dlq_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/platform/dlq"
	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/internal/testevent"
	"github.com/orderflow/orderflow/platform/kafka/kafkatest"
	"github.com/orderflow/orderflow/platform/pg/pgtest"
	"github.com/orderflow/orderflow/platform/serde"
)

// A dead letter can be listed with its provenance, and once the bug is fixed, re-driven
// to take effect exactly once.
func TestListAndRedrive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t, nil)
	if _, err := pool.Exec(ctx, `CREATE TABLE effects (event_id uuid NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	topic := kafkatest.Topic(t, 2)
	sd := serde.New(kafkatest.RegistryURL(t), 5*time.Second)
	kcfg := kafkatest.Config(t)
	group := kafkatest.Name("g")

	var fixed atomic.Bool
	c, err := consumer.New(group, []string{topic}, kcfg, pool, sd, slog.New(slog.NewTextHandler(io.Discard, nil)), consumer.Options{ShutdownGrace: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	consumer.On(c, testevent.V1, func(ctx context.Context, tx pgx.Tx, m consumer.Message, p testevent.Thing) error {
		if !fixed.Load() {
			return consumer.Permanent(errors.New("bug: cannot handle this yet"))
		}
		_, err := tx.Exec(ctx, `INSERT INTO effects VALUES ($1)`, m.ID)
		return err
	})
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(cctx) }()
	defer func() { cancel(); <-done }()

	ev := events.New(ctx, "test", topic, "order-9", testevent.V1, testevent.Thing{ID: "order-9", Seq: 1, Amount: 3}, events.Cause{})
	value, err := sd.Encode(topic, testevent.V1.Schema, ev.Payload)
	if err != nil {
		t.Fatal(err)
	}
	cl := kafkatest.Client(t)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(ev.Key), Value: value, Headers: ev.Metadata.Headers()}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	var recs []dlq.Record
	deadline := time.Now().Add(20 * time.Second)
	for len(recs) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no dead letter appeared")
		}
		time.Sleep(100 * time.Millisecond)
		if recs, err = dlq.Read(ctx, kcfg, group); err != nil {
			t.Fatal(err)
		}
	}
	r := recs[0]
	if r.Key != "order-9" || r.SourceTopic != topic || r.Attempts != 1 || r.Headers[events.HeaderID] != ev.Metadata.ID ||
		r.Error != "bug: cannot handle this yet" || r.DeadAt.IsZero() {
		t.Fatalf("dead letter %+v", r)
	}

	if _, err := dlq.Redrive(ctx, kcfg, group, []int64{42}); err == nil {
		t.Fatal("redrive of a missing offset succeeded")
	}
	fixed.Store(true)
	for range 2 { // twice: the inbox makes the second redrive harmless
		if got, err := dlq.Redrive(ctx, kcfg, group, nil); err != nil || len(got) != 1 {
			t.Fatalf("redrive: %d, %v", len(got), err)
		}
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM effects`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if n > 1 || time.Now().After(deadline) {
			t.Fatalf("%d effects after redrive, want 1", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM effects`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d effects after two redrives (%v), want 1", n, err)
	}
}

func TestGroupWithoutDeadLetterTopicHasNone(t *testing.T) {
	recs, err := dlq.Read(context.Background(), kafkatest.Config(t), kafkatest.Name("never-used"))
	if err != nil || len(recs) != 0 {
		t.Fatalf("got %v, %v; want no dead letters and no error", recs, err)
	}
}
