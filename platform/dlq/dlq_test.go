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

// A re-drive reaches only the group that dead-lettered the record: another group applied
// the original and must not apply it again, even once the purge took its inbox row. The
// re-driven record's own inbox row is pinned, so re-driving it after a purge is harmless.
func TestRedriveReachesOnlyItsGroupAcrossInboxPurges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t, nil)
	if _, err := pool.Exec(ctx, `CREATE TABLE effects (grp text NOT NULL, event_id uuid NOT NULL, seq bigint NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	topic := kafkatest.Topic(t, 2)
	sd := serde.New(kafkatest.RegistryURL(t), 5*time.Second)
	kcfg := kafkatest.Config(t)
	buggy, healthy := kafkatest.Name("buggy"), kafkatest.Name("healthy")

	var fixed atomic.Bool
	for _, group := range []string{buggy, healthy} {
		c, err := consumer.New(group, []string{topic}, kcfg, pool, sd, slog.New(slog.NewTextHandler(io.Discard, nil)),
			consumer.Options{ShutdownGrace: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		consumer.On(c, testevent.V1, func(ctx context.Context, tx pgx.Tx, m consumer.Message, p testevent.Thing) error {
			if group == buggy && !fixed.Load() {
				return consumer.Permanent(errors.New("bug"))
			}
			_, err := tx.Exec(ctx, `INSERT INTO effects VALUES ($1, $2, $3)`, group, m.ID, p.Seq)
			return err
		})
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- c.Run(cctx) }()
		defer func() { cancel(); <-done }()
	}
	cl := kafkatest.Client(t)
	produce := func(seq int64) {
		t.Helper()
		ev := events.New(ctx, "test", topic, "order-1", testevent.V1, testevent.Thing{ID: "order-1", Seq: seq, Amount: 1}, events.Cause{})
		value, err := sd.Encode(topic, testevent.V1.Schema, ev.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(ev.Key), Value: value, Headers: ev.Metadata.Headers()}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	count := func(group string, seq int64) int {
		t.Helper()
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM effects WHERE grp = $1 AND seq = $2`, group, seq).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// waitMarker produces event seq after what came before on the same key (one partition)
	// and waits until both groups applied it: both have then seen everything before it.
	waitMarker := func(seq int64) {
		t.Helper()
		produce(seq)
		deadline := time.Now().Add(20 * time.Second)
		for count(buggy, seq) == 0 || count(healthy, seq) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("event %d not applied by both groups", seq)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	purgeAll := func() {
		t.Helper()
		for _, g := range []string{buggy, healthy} {
			if _, err := consumer.PurgeInbox(ctx, pool, g, time.Now().Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
	}

	produce(1)
	deadline := time.Now().Add(20 * time.Second)
	for count(healthy, 1) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the healthy group did not apply the event")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for {
		recs, err := dlq.Read(ctx, kcfg, buggy)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d dead letters, want 1", len(recs))
		}
		time.Sleep(100 * time.Millisecond)
	}
	fixed.Store(true)
	purgeAll() // the healthy group's row of event 1 goes
	if _, err := dlq.Redrive(ctx, kcfg, buggy, nil); err != nil {
		t.Fatal(err)
	}
	waitMarker(2)
	if b, h := count(buggy, 1), count(healthy, 1); b != 1 || h != 1 {
		t.Fatalf("after the re-drive: buggy applied event 1 %d times, healthy %d; want once each", b, h)
	}

	purgeAll() // the buggy group's row of the re-driven event is pinned and stays
	if _, err := dlq.Redrive(ctx, kcfg, buggy, nil); err != nil {
		t.Fatal(err)
	}
	waitMarker(3)
	if b, h := count(buggy, 1), count(healthy, 1); b != 1 || h != 1 {
		t.Fatalf("after a second re-drive past a purge: buggy applied event 1 %d times, healthy %d; want once each", b, h)
	}
}
