package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/platform/dlq"
	"github.com/orderflow/orderflow/platform/kafka/kafkatest"
	"github.com/orderflow/orderflow/platform/outbox"
)

// A group whose inbox was purged and whose Kafka offsets were then lost re-reads its
// topic from the start and applies nothing twice: it skips what lies at or below the
// floors the purge left, and the rows above them still dedupe.
func TestPurgedInboxAppliesOnceAfterOffsetsAreLost(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 3)
	ctx := context.Background()
	h.runRelay(outbox.RelayOptions{})
	group := kafkatest.Name("g")
	appendN := func(n int) { h.appendMany(ctx, n, "agg", 30) }
	effects := func() int { return h.count(`SELECT count(*) FROM effects`) }

	appendN(300)
	stop := h.run(h.newConsumer(group, record, consumer.Options{}).Run)
	waitFor(t, 30*time.Second, "300 effects", func() bool { return effects() >= 300 })
	stop()

	lastApplied := h.count(`SELECT sum(m) FROM (SELECT max("offset") AS m FROM platform_inbox WHERE consumer = $1 GROUP BY partition) x`, group)
	n, err := consumer.PurgeInbox(ctx, h.pool, group, time.Now().Add(time.Minute))
	if err != nil || n != 300 {
		t.Fatalf("purged %d rows (%v), want 300", n, err)
	}
	if got := h.count(`SELECT count(*) FROM platform_inbox_floors WHERE consumer = $1 AND topic = $2`, group, h.topic); got != 3 {
		t.Fatalf("%d floors, want one per partition", got)
	}
	// Every row went, so each partition's floor is its last applied offset.
	if got := h.count(`SELECT sum("offset") FROM platform_inbox_floors WHERE consumer = $1`, group); got != lastApplied {
		t.Fatalf("floors sum to %d, want the last applied offsets' %d", got, lastApplied)
	}
	// The group's committed offsets go (expired while it was down, or deleted by hand):
	// it starts again from the beginning of the topic.
	adm := kadm.NewClient(kafkatest.Client(t))
	res, err := adm.DeleteGroups(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Error(); err != nil {
		t.Fatalf("delete group: %v", err)
	}

	appendN(100)
	stop = h.run(h.newConsumer(group, record, consumer.Options{}).Run)
	defer stop()
	waitFor(t, 30*time.Second, "400 effects", func() bool { return effects() >= 400 })
	// The group has applied the new events; had it re-applied the old ones, they came
	// first in each partition.
	time.Sleep(500 * time.Millisecond)
	if n := effects(); n != 400 {
		t.Fatalf("%d effects, want 400: events below the floor were applied again", n)
	}
	if n := h.count(`SELECT count(DISTINCT event_id) FROM effects`); n != 400 {
		t.Fatalf("%d distinct events applied, want 400", n)
	}
	if n := h.count(`SELECT count(*) FROM platform_inbox WHERE consumer = $1`, group); n != 100 {
		t.Fatalf("%d inbox rows, want the 100 applied since the purge", n)
	}
	// Skipped, not failed: nothing below the floor reached a handler and was dead-lettered.
	if page, err := dlq.List(ctx, kafkatest.Config(t), group, 0, dlq.DefaultPageLimit); err != nil || len(page.DeadLetters) != 0 {
		t.Fatalf("%d dead letters (%v), want none", len(page.DeadLetters), err)
	}
}

// The purge deletes what is older than its cutoff and not pinned, and a floor only rises.
func TestPurgeKeepsRecentAndPinnedRows(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	ctx := context.Background()
	_, err := h.pool.Exec(ctx, `
		INSERT INTO platform_inbox (consumer, event_id, topic, partition, "offset", applied_at, pinned)
		SELECT c, gen_random_uuid(), 't', p, o, now() - (CASE WHEN o < 50 THEN interval '2 hours' ELSE interval '1 minute' END), o = 7
		FROM (VALUES ('a'), ('b')) AS g(c), generate_series(0, 1) AS p, generate_series(0, 99) AS o`)
	if err != nil {
		t.Fatal(err)
	}
	n, err := consumer.PurgeInbox(ctx, h.pool, "a", time.Now().Add(-time.Hour))
	if err != nil || n != 98 { // offsets 0-49 of two partitions, less the pinned 7s
		t.Fatalf("purged %d (%v), want 98", n, err)
	}
	if got := h.count(`SELECT count(*) FROM platform_inbox WHERE consumer = 'a'`); got != 102 {
		t.Fatalf("%d rows left, want 102", got)
	}
	if got := h.count(`SELECT count(*) FROM platform_inbox WHERE consumer = 'b'`); got != 200 {
		t.Fatalf("another group's rows were purged: %d left", got)
	}
	if got := h.count(`SELECT count(*) FROM platform_inbox_floors WHERE consumer = 'a' AND topic = 't' AND "offset" = 49`); got != 2 {
		t.Fatalf("%d floors at 49, want both partitions", got)
	}
	// A later purge that finds lower offsets (rows a rebalance applied late) keeps the floor.
	if _, err := h.pool.Exec(ctx, `INSERT INTO platform_inbox (consumer, event_id, topic, partition, "offset", applied_at)
	                                VALUES ('a', gen_random_uuid(), 't', 0, 3, now() - interval '3 hours')`); err != nil {
		t.Fatal(err)
	}
	if n, err := consumer.PurgeInbox(ctx, h.pool, "a", time.Now().Add(-time.Hour)); err != nil || n != 1 {
		t.Fatalf("second purge: %d (%v)", n, err)
	}
	if got := h.count(`SELECT "offset" FROM platform_inbox_floors WHERE consumer = 'a' AND partition = 0`); got != 49 {
		t.Fatalf("floor fell to %d", got)
	}
}

// A backlog larger than one purge transaction goes in several, oldest first, rows that
// share a timestamp across a chunk's edge included.
func TestPurgeWorksThroughABacklogInChunks(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	ctx := context.Background()
	_, err := h.pool.Exec(ctx, `
		INSERT INTO platform_inbox (consumer, event_id, topic, partition, "offset", applied_at)
		SELECT 'a', gen_random_uuid(), 't', o % 3, o, now() - interval '1 day' + (o / 7) * interval '1 ms'
		FROM generate_series(0, 24999) AS o`)
	if err != nil {
		t.Fatal(err)
	}
	n, err := consumer.PurgeInbox(ctx, h.pool, "a", time.Now().Add(-time.Hour))
	if err != nil || n != 25000 {
		t.Fatalf("purged %d (%v), want 25000", n, err)
	}
	if got := h.count(`SELECT count(*) FROM platform_inbox`); got != 0 {
		t.Fatalf("%d rows left", got)
	}
	if got := h.count(`SELECT sum("offset") FROM platform_inbox_floors WHERE consumer = 'a'`); got != 24997+24998+24999 {
		t.Fatalf("floors sum to %d", got)
	}
}

// A running consumer purges its own inbox past Options.InboxRetention.
func TestRunningConsumerPurgesItsInbox(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 2)
	ctx := context.Background()
	h.runRelay(outbox.RelayOptions{})
	group := kafkatest.Name("g")
	stop := h.run(h.newConsumer(group, record, consumer.Options{InboxRetention: 500 * time.Millisecond}).Run)
	defer stop()
	h.appendMany(ctx, 50, "agg", 10)
	waitFor(t, 30*time.Second, "50 effects", func() bool { return h.count(`SELECT count(*) FROM effects`) == 50 })
	waitFor(t, 30*time.Second, "the inbox purged", func() bool {
		return h.count(`SELECT count(*) FROM platform_inbox WHERE consumer = $1`, group) == 0 &&
			h.count(`SELECT count(*) FROM platform_inbox_floors WHERE consumer = $1`, group) == 2
	})
}
