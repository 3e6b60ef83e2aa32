package dlq_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/platform/dlq"
	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/internal/testevent"
	"github.com/orderflow/orderflow/platform/kafka"
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
		page, err := dlq.List(ctx, kcfg, group, 0, dlq.DefaultPageLimit)
		if err != nil {
			t.Fatal(err)
		}
		recs = page.DeadLetters
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
		if got, err := dlq.Redrive(ctx, kcfg, group, nil); err != nil || got != 1 {
			t.Fatalf("redrive: %d, %v", got, err)
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
	page, err := dlq.List(context.Background(), kafkatest.Config(t), kafkatest.Name("never-used"), 0, dlq.DefaultPageLimit)
	if err != nil || len(page.DeadLetters) != 0 || page.Next != nil {
		t.Fatalf("got %+v, %v; want no dead letters and no error", page, err)
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
		page, err := dlq.List(ctx, kcfg, buggy, 0, dlq.DefaultPageLimit)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.DeadLetters) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d dead letters, want 1", len(page.DeadLetters))
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

// A dead-letter topic can hold more than anyone wants in memory: it is listed a page at a
// time, and re-driven in batches, by offsets or whole.
func TestPagesAndBatchesOfManyDeadLetters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kcfg := kafkatest.Config(t)
	group, source := kafkatest.Name("g"), kafkatest.Topic(t, 1)
	cl := kafkatest.Client(t)
	if err := kafka.EnsureTopics(ctx, cl, kafka.DeadLetterTopic(group)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = kadm.NewClient(kafkatest.Client(t)).DeleteTopics(context.Background(), kafka.DeadLetterTopicName(group))
	})
	const n = 2500
	dead := make([]*kgo.Record, n)
	for i := range dead {
		src := &kgo.Record{Topic: source, Partition: 0, Offset: int64(i), Key: []byte(fmt.Sprintf("order-%d", i)), Value: []byte{byte(i)}}
		dead[i] = consumer.DeadLetterRecord(group, src, errors.New("bug"), 1)
	}
	if err := cl.ProduceSync(ctx, dead...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	var offsets []int64
	for from := int64(0); ; {
		page, err := dlq.List(ctx, kcfg, group, from, dlq.MaxPageLimit)
		if err != nil {
			t.Fatal(err)
		}
		if page.Start != 0 || page.End != n || len(page.DeadLetters) > dlq.MaxPageLimit {
			t.Fatalf("page from %d: start %d, end %d, %d dead letters", from, page.Start, page.End, len(page.DeadLetters))
		}
		for _, r := range page.DeadLetters {
			if want := fmt.Sprintf("order-%d", r.Offset); r.Key != want || r.SourceTopic != source || r.SourceOffset != r.Offset {
				t.Fatalf("dead letter at %d: key %q, source %s/%d; want %q from %s/%d", r.Offset, r.Key, r.SourceTopic, r.SourceOffset, want, source, r.Offset)
			}
			offsets = append(offsets, r.Offset)
		}
		if page.Next == nil {
			break
		}
		from = *page.Next
	}
	if len(offsets) != n || offsets[0] != 0 || offsets[n-1] != n-1 {
		t.Fatalf("pages listed %d dead letters, want %d in order", len(offsets), n)
	}
	if page, err := dlq.List(ctx, kcfg, group, n-3, dlq.MaxPageLimit); err != nil || len(page.DeadLetters) != 3 || page.Next != nil {
		t.Fatalf("the last page: %d dead letters, next %v, %v; want 3 and no next", len(page.DeadLetters), page.Next, err)
	}
	if page, err := dlq.List(ctx, kcfg, group, n+10, 1); err != nil || len(page.DeadLetters) != 0 || page.Next != nil {
		t.Fatalf("past the end: %+v, %v; want an empty page", page, err)
	}
	if _, err := dlq.List(ctx, kcfg, group, 0, dlq.MaxPageLimit+1); err == nil {
		t.Fatal("a page larger than the limit was read")
	}
	if r, err := dlq.Get(ctx, kcfg, group, 1234); err != nil || r.Key != "order-1234" {
		t.Fatalf("get 1234: %+v, %v", r, err)
	}
	if _, err := dlq.Get(ctx, kcfg, group, n); err == nil {
		t.Fatalf("get of offset %d, past the end, succeeded", n)
	}

	// A missing offset among them: nothing is sent.
	if sent, err := dlq.Redrive(ctx, kcfg, group, []int64{1, n + 5}); err == nil || sent != 0 ||
		!strings.Contains(err.Error(), strconv.Itoa(n+5)) {
		t.Fatalf("redrive with a missing offset: %d sent, %v; want none and an error naming %d", sent, err, n+5)
	}
	// Offsets far apart, one given twice: three records, each naming its dead letter.
	if sent, err := dlq.Redrive(ctx, kcfg, group, []int64{2499, 5, 1800, 5}); err != nil || sent != 3 {
		t.Fatalf("redrive of three offsets: %d sent, %v", sent, err)
	}
	got := kafkatest.Consume(t, source, 3, 20*time.Second)
	var from []string
	for _, r := range got {
		from = append(from, kafka.Headers(r)[dlq.HeaderRedrivenFrom])
	}
	dlqTopic := kafka.DeadLetterTopicName(group)
	if want := []string{dlqTopic + "/0/5", dlqTopic + "/0/1800", dlqTopic + "/0/2499"}; fmt.Sprint(from) != fmt.Sprint(want) {
		t.Fatalf("re-driven records came from %v, want %v", from, want)
	}
	if sent, err := dlq.Redrive(ctx, kcfg, group, nil); err != nil || sent != n {
		t.Fatalf("redrive of all: %d sent, %v; want %d", sent, err, n)
	}
	if got := kafkatest.Consume(t, source, 3+n, 30*time.Second); len(got) != 3+n {
		t.Fatalf("the source topic holds %d records after the re-drives, want %d", len(got), 3+n)
	}
}
