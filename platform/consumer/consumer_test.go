package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/internal/testevent"
	"github.com/orderflow/orderflow/platform/kafka/kafkatest"
	"github.com/orderflow/orderflow/platform/outbox"
	"github.com/orderflow/orderflow/platform/serde"
)

// A committed event takes effect exactly once even when the relay dies after Kafka
// acknowledged it and before it was marked; a rolled-back one is never published.
func TestExactlyOnceAcrossRelayCrash(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 3)
	ctx := context.Background()

	committed := h.event("agg-1", 1)
	if err := pgx.BeginFunc(ctx, h.pool, func(tx pgx.Tx) error { return h.outbox.Append(ctx, tx, committed) }); err != nil {
		t.Fatal(err)
	}
	rolledBack := h.event("agg-2", 1)
	errRollback := errors.New("business rule failed")
	err := pgx.BeginFunc(ctx, h.pool, func(tx pgx.Tx) error {
		if err := h.outbox.Append(ctx, tx, rolledBack); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("rollback: %v", err)
	}

	var crashes atomic.Int32
	h.runRelay(outbox.RelayOptions{AfterPublish: func([]int64) error {
		if crashes.Add(1) == 1 {
			return errors.New("relay killed between publish and mark")
		}
		return nil
	}})
	waitFor(t, 20*time.Second, "the outbox row to be marked", func() bool {
		return h.count(`SELECT count(*) FROM platform_outbox WHERE published_at IS NOT NULL`) == 1
	})

	recs := kafkatest.Consume(t, h.topic, 2, 10*time.Second)
	if len(recs) != 2 {
		t.Fatalf("topic has %d records, want the committed event twice", len(recs))
	}
	for _, r := range recs {
		md, err := events.ParseHeaders(r.Headers)
		if err != nil {
			t.Fatal(err)
		}
		if md.ID != committed.Metadata.ID {
			t.Fatalf("topic carries %s, want only %s (the rolled-back event leaked?)", md.ID, committed.Metadata.ID)
		}
	}

	c := h.newConsumer(kafkatest.Name("g"), record, consumer.Options{})
	stop := h.run(c.Run)
	defer stop()
	waitFor(t, 20*time.Second, "the event to be applied", func() bool {
		return h.count(`SELECT count(*) FROM platform_inbox`) == 1
	})
	// Give the duplicate every chance to be (wrongly) applied before counting.
	time.Sleep(500 * time.Millisecond)
	if n := h.count(`SELECT count(*) FROM effects WHERE event_id = $1`, committed.Metadata.ID); n != 1 {
		t.Fatalf("event applied %d times, want 1", n)
	}
	if n := h.count(`SELECT count(*) FROM effects`); n != 1 {
		t.Fatalf("%d effects, want 1", n)
	}
}

// 1,000 events over 200 aggregates on 6 partitions from 8 concurrent writers arrive
// complete and in per-aggregate order.
func TestCompleteAndOrderedUnderConcurrentWriters(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 6)
	ctx := context.Background()
	h.runRelay(outbox.RelayOptions{BatchSize: 100})
	c := h.newConsumer(kafkatest.Name("g"), record, consumer.Options{})
	stop := h.run(c.Run)
	defer stop()

	const writers, perWriter, aggregates = 8, 125, 200
	g, gctx := errgroup.WithContext(ctx)
	for w := range writers {
		g.Go(func() error {
			for i := range perWriter {
				// Writers overlap on aggregates, so appends to one aggregate race.
				key := "agg-" + strconv.Itoa((w*perWriter+i*7)%aggregates)
				if err := h.appendNext(gctx, key); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "1000 effects", func() bool {
		return h.count(`SELECT count(*) FROM effects`) >= writers*perWriter
	})
	if n := h.count(`SELECT count(*) FROM effects`); n != writers*perWriter {
		t.Fatalf("%d effects, want %d", n, writers*perWriter)
	}
	// Per aggregate, the applied sequence is exactly 1..n in order of application.
	rows, err := h.pool.Query(ctx, `SELECT key, seq FROM effects ORDER BY n`)
	if err != nil {
		t.Fatal(err)
	}
	next := map[string]int64{}
	for rows.Next() {
		var key string
		var seq int64
		if err := rows.Scan(&key, &seq); err != nil {
			t.Fatal(err)
		}
		if want := next[key] + 1; seq != want {
			t.Fatalf("aggregate %s: applied seq %d, want %d", key, seq, want)
		}
		next[key] = seq
	}
	if len(next) != aggregates {
		t.Fatalf("%d aggregates seen, want %d", len(next), aggregates)
	}
	if parts := h.count(`SELECT count(DISTINCT part) FROM effects`); parts != 6 {
		t.Fatalf("events spread over %d partitions, want 6", parts)
	}
}

// A handler failing transiently three times then succeeding applies once, and other
// partitions keep flowing meanwhile: in a parallel group, in a Serial group (whose one
// worker holds the failing partition back), and with the failing partition paused at the
// broker because its records pile up behind the retry.
func TestTransientFailureRetriesWithoutBlockingOthers(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string]consumer.Options{
		"parallel":       {},
		"serial":         {Serial: true},
		"serial, paused": {Serial: true, QueueHigh: 4},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			opts.BackoffBase, opts.BackoffMax = 300*time.Millisecond, time.Second
			testTransientFailure(t, opts)
		})
	}
}

func testTransientFailure(t *testing.T, opts consumer.Options) {
	h := newHarness(t, 4)
	ctx := context.Background()

	var (
		mu           sync.Mutex
		failures     int
		stuckPart    int32 = -1
		stuckUntil   time.Time
		othersDuring int
	)
	handler := func(ctx context.Context, tx pgx.Tx, m consumer.Message, p testevent.Thing) error {
		mu.Lock()
		if p.ID == "stuck" {
			if failures < 3 {
				failures++
				stuckPart = m.Partition
				mu.Unlock()
				return consumer.Transient(errors.New("database briefly unavailable"))
			}
			stuckUntil = time.Now()
		} else if stuckPart >= 0 && m.Partition != stuckPart && stuckUntil.IsZero() {
			othersDuring++
		}
		mu.Unlock()
		return record(ctx, tx, m, p)
	}
	h.runRelay(outbox.RelayOptions{})
	c := h.newConsumer(kafkatest.Name("g"), handler, opts)
	stop := h.run(c.Run)
	defer stop()

	if err := h.appendNext(ctx, "stuck"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the first failure", func() bool { mu.Lock(); defer mu.Unlock(); return failures > 0 })
	h.appendMany(ctx, 120, "other", 30)
	waitFor(t, 30*time.Second, "all events applied", func() bool { return h.count(`SELECT count(*) FROM effects`) == 121 })
	mu.Lock()
	defer mu.Unlock()
	if failures != 3 {
		t.Fatalf("%d failures, want 3", failures)
	}
	if n := h.count(`SELECT count(*) FROM effects WHERE key = 'stuck'`); n != 1 {
		t.Fatalf("stuck event applied %d times, want 1", n)
	}
	if othersDuring == 0 {
		t.Fatal("no other partition made progress while one was retrying")
	}
	// Per aggregate, the events were applied in order, also those behind the retry.
	if n := h.count(`SELECT count(*) FROM (SELECT seq, lag(seq) OVER (PARTITION BY key ORDER BY n) AS prev FROM effects) e
	                 WHERE prev IS NOT NULL AND seq <> prev + 1`); n != 0 {
		t.Fatalf("%d events applied out of order", n)
	}
}

// An error of unknown kind is retried, its partition held back between attempts, and
// dead-lettered after MaxAttempts: the attempts count across the holds, and the events
// behind it in its partition are applied after it, in order.
func TestUnknownErrorIsDeadLetteredAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	ctx := context.Background()
	var calls atomic.Int64
	handler := func(ctx context.Context, tx pgx.Tx, m consumer.Message, p testevent.Thing) error {
		if p.ID == "broken" {
			calls.Add(1)
			return errors.New("something nobody classified")
		}
		return record(ctx, tx, m, p)
	}
	h.runRelay(outbox.RelayOptions{})
	c := h.newConsumer(kafkatest.Name("g"), handler, consumer.Options{MaxAttempts: 3, BackoffBase: 20 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	stop := h.run(c.Run)
	defer stop()
	if err := h.appendNext(ctx, "broken"); err != nil {
		t.Fatal(err)
	}
	h.appendMany(ctx, 5, "after", 1)
	waitFor(t, 20*time.Second, "the events behind the broken one", func() bool { return h.count(`SELECT count(*) FROM effects`) == 5 })
	dead := kafkatest.Consume(t, c.DeadLetterTopic(), 1, 15*time.Second)
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dead))
	}
	attempts := "none"
	for _, hd := range dead[0].Headers {
		if hd.Key == consumer.HeaderDLQAttempts {
			attempts = string(hd.Value)
		}
	}
	if attempts != "3" {
		t.Errorf("dead letter's %s header %s, want 3", consumer.HeaderDLQAttempts, attempts)
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("handler ran %d times for the broken event, want 3", n)
	}
	if n := h.count(`SELECT count(*) FROM (SELECT seq, lag(seq) OVER (ORDER BY n) AS prev FROM effects) e
	                 WHERE prev IS NOT NULL AND seq <> prev + 1`); n != 0 {
		t.Errorf("%d events applied out of order", n)
	}
}

// Records that can never succeed go to <group>.dlq with their original key, value and
// headers plus the failure, and the consumer goes on.
func TestPoisonRecordsAreDeadLettered(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	ctx := context.Background()
	group := kafkatest.Name("g")
	c := h.newConsumer(group, record, consumer.Options{})
	stop := h.run(c.Run)
	defer stop()

	good, err := h.serde.Encode(h.topic, testevent.V1.Schema, testevent.Thing{ID: "good", Seq: 1, Amount: 1})
	if err != nil {
		t.Fatal(err)
	}
	invalid, err := h.serde.Encode(h.topic, testevent.V1.Schema, testevent.Thing{ID: "neg", Seq: 1, Amount: -5})
	if err != nil {
		t.Fatal(err)
	}
	headers := func(key string) []kgo.RecordHeader { return h.event(key, 1).Metadata.Headers() }
	poison := []*kgo.Record{
		{Key: []byte("garbage"), Value: []byte("definitely not avro"), Headers: headers("garbage")},
		{Key: []byte("unknown-id"), Value: serde.Frame(2_000_000_000, []byte{2, 'x', 2, 2}), Headers: headers("unknown-id")},
		{Key: []byte("invalid"), Value: invalid, Headers: headers("invalid")},
		{Key: []byte("no-headers"), Value: good},
	}
	cl := kafkatest.Client(t)
	for _, r := range poison {
		r.Topic = h.topic
	}
	if err := cl.ProduceSync(ctx, poison...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	goodEvent := h.event("good", 1)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: h.topic, Key: []byte("good"), Value: good, Headers: goodEvent.Metadata.Headers()}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	waitFor(t, 20*time.Second, "the good record after the poison", func() bool {
		return h.count(`SELECT count(*) FROM effects WHERE key = 'good'`) == 1
	})
	dead := kafkatest.Consume(t, c.DeadLetterTopic(), len(poison), 15*time.Second)
	if len(dead) != len(poison) {
		t.Fatalf("%d dead letters, want %d", len(dead), len(poison))
	}
	wantErr := map[string]string{
		"garbage":    "magic byte",
		"unknown-id": "unknown to the registry",
		"invalid":    "amount is negative",
		"no-headers": "missing ce_specversion",
	}
	for i, d := range dead {
		orig := poison[i]
		hs := map[string]string{}
		for _, hd := range d.Headers {
			hs[hd.Key] = string(hd.Value)
		}
		key := string(d.Key)
		if key != string(orig.Key) || string(d.Value) != string(orig.Value) {
			t.Errorf("dead letter %d: key/value changed", i)
		}
		for _, hd := range orig.Headers {
			if hs[hd.Key] != string(hd.Value) {
				t.Errorf("dead letter %s: original header %s lost", key, hd.Key)
			}
		}
		if !contains(hs[consumer.HeaderDLQError], wantErr[key]) {
			t.Errorf("dead letter %s: error %q does not mention %q", key, hs[consumer.HeaderDLQError], wantErr[key])
		}
		if hs[consumer.HeaderDLQTopic] != h.topic || hs[consumer.HeaderDLQPartition] != "0" ||
			hs[consumer.HeaderDLQOffset] != strconv.FormatInt(int64(i), 10) || hs[consumer.HeaderDLQAttempts] != "1" ||
			hs[consumer.HeaderDLQGroup] != group {
			t.Errorf("dead letter %s: provenance headers %v", key, hs)
		}
	}
	if n := h.count(`SELECT count(*) FROM effects`); n != 1 {
		t.Fatalf("%d effects, want only the good one", n)
	}
}

// A consumer stopped mid-stream and replaced resumes with no loss and no double effect.
func TestRestartMidStream(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 3)
	ctx := context.Background()
	h.runRelay(outbox.RelayOptions{})
	group := kafkatest.Name("g")

	const total = 600
	go func() {
		for i := range total {
			if err := h.appendNext(ctx, fmt.Sprintf("agg-%d", i%40)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	slow := func(ctx context.Context, tx pgx.Tx, m consumer.Message, p testevent.Thing) error {
		time.Sleep(time.Millisecond)
		return record(ctx, tx, m, p)
	}
	for round := 0; ; round++ {
		c := h.newConsumer(group, slow, consumer.Options{BatchSize: 16})
		stop := h.run(c.Run)
		target := min(total, (round+1)*150)
		waitFor(t, 30*time.Second, fmt.Sprintf("%d effects", target), func() bool {
			return h.count(`SELECT count(*) FROM effects`) >= target
		})
		stop()
		if target == total {
			break
		}
	}
	if n := h.count(`SELECT count(*) FROM effects`); n != total {
		t.Fatalf("%d effects, want %d", n, total)
	}
	if n := h.count(`SELECT count(DISTINCT event_id) FROM effects`); n != total {
		t.Fatalf("%d distinct events applied, want %d", n, total)
	}
}

func contains(s, sub string) bool { return sub != "" && strings.Contains(s, sub) }

// A row that commits late with a lower id than rows already published is still
// published: the relay keeps no high-water mark (the gap that bit watermill #311).
func TestLateCommitWithLowerIDIsNotSkipped(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 2)
	ctx := context.Background()
	h.runRelay(outbox.RelayOptions{})

	slow, err := h.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Rollback(ctx)
	late := h.event("slow-aggregate", 1)
	if err := h.outbox.Append(ctx, slow, late); err != nil { // takes the lower id
		t.Fatal(err)
	}
	h.appendMany(ctx, 5, "fast", 5)
	waitFor(t, 20*time.Second, "the fast rows to be published", func() bool {
		return h.count(`SELECT count(*) FROM platform_outbox WHERE published_at IS NOT NULL`) == 5
	})
	var lateID, minPublished int64
	if err := slow.QueryRow(ctx, `SELECT id FROM platform_outbox WHERE key = 'slow-aggregate'`).Scan(&lateID); err != nil {
		t.Fatal(err)
	}
	if err := h.pool.QueryRow(ctx, `SELECT min(id) FROM platform_outbox WHERE published_at IS NOT NULL`).Scan(&minPublished); err != nil {
		t.Fatal(err)
	}
	if lateID >= minPublished {
		t.Fatalf("test setup: the late row has id %d, not below the published %d", lateID, minPublished)
	}
	if err := slow.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	recs := kafkatest.Consume(t, h.topic, 6, 20*time.Second)
	found := false
	for _, r := range recs {
		md, _ := events.ParseHeaders(r.Headers)
		found = found || md.ID == late.Metadata.ID
	}
	if len(recs) != 6 || !found {
		t.Fatalf("%d records on the topic, late event present: %v; want 6 and true", len(recs), found)
	}
}

// A Serial group applies one batch at a time across its partitions, even when every
// batch locks rows shared by many aggregates in no fixed order (the deadlock a parallel
// group would hit), and batches grow and span partitions: fewer transactions than events.
func TestSerialGroupAppliesOneBatchAtATime(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 6)
	ctx := context.Background()
	if _, err := h.pool.Exec(ctx, `INSERT INTO counters (key, n) SELECT 'shared-' || i, 0 FROM generate_series(0, 4) i`); err != nil {
		t.Fatal(err)
	}
	var running concurrency
	parts := map[int64]map[int32]bool{} // partitions applied per transaction (txid), guarded by mu
	var mu sync.Mutex
	handler := func(ctx context.Context, tx pgx.Tx, m consumer.Message, p testevent.Thing) error {
		defer running.enter()()
		var txid int64
		if err := tx.QueryRow(ctx, `SELECT txid_current()`).Scan(&txid); err != nil {
			return err
		}
		mu.Lock()
		if parts[txid] == nil {
			parts[txid] = map[int32]bool{}
		}
		parts[txid][m.Partition] = true
		mu.Unlock()
		// Lock two shared rows in an order that depends on the event: across batches these
		// orders conflict.
		a, b := p.Seq%5, (p.Seq+2)%5
		for _, k := range []int64{a, b} {
			if _, err := tx.Exec(ctx, `UPDATE counters SET n = n + 1 WHERE key = $1`, "shared-"+strconv.FormatInt(k, 10)); err != nil {
				return err
			}
		}
		time.Sleep(time.Millisecond)
		return record(ctx, tx, m, p)
	}
	const events = 300
	h.appendMany(ctx, events, "agg", 60)
	h.runRelay(outbox.RelayOptions{BatchSize: 500})
	c := h.newConsumer(kafkatest.Name("g"), handler, consumer.Options{Serial: true, MaxAttempts: 1})
	stop := h.run(c.Run)
	defer stop()
	waitFor(t, 60*time.Second, "300 effects", func() bool { return h.count(`SELECT count(*) FROM effects`) >= events })
	if n := h.count(`SELECT count(*) FROM effects`); n != events {
		t.Fatalf("%d effects, want %d", n, events)
	}
	if m := running.most.Load(); m != 1 {
		t.Fatalf("%d handlers ran at once in a serial group", m)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := len(parts); n >= events {
		t.Fatalf("%d transactions for %d events: batches did not grow", n, events)
	}
	if !slices.ContainsFunc(slices.Collect(maps.Values(parts)), func(ps map[int32]bool) bool { return len(ps) > 1 }) {
		t.Fatalf("no transaction of %d applied records of more than one partition", len(parts))
	}
	if dl := h.count(`SELECT count(*) FROM counters WHERE key LIKE 'shared-%' AND n > 0`); dl != 5 {
		t.Fatalf("%d shared rows touched, want 5", dl)
	}
}

// Replicas of a Serial group take turns too: each member has one worker, and the
// advisory lock on the group's name lets one batch run at a time across members.
func TestSerialGroupAcrossReplicas(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 6)
	ctx := context.Background()
	var running concurrency
	var applied [2]atomic.Int64 // by member
	member := func(i int) consumer.Handler[testevent.Thing] {
		return func(ctx context.Context, tx pgx.Tx, m consumer.Message, p testevent.Thing) error {
			defer running.enter()()
			time.Sleep(2 * time.Millisecond) // widen the window an overlap would need
			applied[i].Add(1)
			return record(ctx, tx, m, p)
		}
	}
	h.runRelay(outbox.RelayOptions{})
	group := kafkatest.Name("g")
	for i := range applied {
		c := h.newConsumer(group, member(i), consumer.Options{Serial: true})
		t.Cleanup(h.run(c.Run))
	}
	// Events keep coming until both members have applied some (the second one's join
	// takes a rebalance), then 200 more.
	sent := 0
	deadline := time.Now().Add(90 * time.Second)
	for applied[0].Load() == 0 || applied[1].Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after %d events, members applied %d and %d: the group never split", sent, applied[0].Load(), applied[1].Load())
		}
		h.appendMany(ctx, 20, "agg-"+strconv.Itoa(sent), 20)
		sent += 20
		time.Sleep(100 * time.Millisecond)
	}
	h.appendMany(ctx, 200, "late", 40)
	sent += 200
	waitFor(t, 60*time.Second, "every event applied", func() bool { return h.count(`SELECT count(*) FROM effects`) >= sent })
	if n := h.count(`SELECT count(*) FROM effects`); n != sent {
		t.Fatalf("%d effects, want %d", n, sent)
	}
	if m := running.most.Load(); m != 1 {
		t.Fatalf("%d handlers ran at once across the replicas of a serial group", m)
	}
}

// concurrency records the most handlers ever running at once.
type concurrency struct{ active, most atomic.Int64 }

// enter counts a handler in; the function it returns counts it out.
func (c *concurrency) enter() func() {
	n := c.active.Add(1)
	for {
		old := c.most.Load()
		if n <= old || c.most.CompareAndSwap(old, n) {
			break
		}
	}
	return func() { c.active.Add(-1) }
}
