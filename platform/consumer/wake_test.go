package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/platform/kafka/kafkatest"
	"github.com/orderflow/orderflow/platform/outbox"
)

// A commit made in a process whose relay does not lead (another replica) wakes the
// leading relay with a NOTIFY sent after the commit. The leader here never looks on its
// own (an hour's fallback), so only that NOTIFY can get the row published.
func TestRelayIsWokenByAnotherReplica(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	ctx := context.Background()
	h.runRelay(outbox.RelayOptions{Fallback: time.Hour})
	unpublished := func() int { return h.count(`SELECT count(*) FROM platform_outbox WHERE published_at IS NULL`) }

	// The leader's own in-process wake-up: once this row is out, it leads and is idle.
	if err := h.appendNext(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the first row to be published", func() bool { return unpublished() == 0 })

	// A commit that wakes nobody stays in the outbox.
	if err := pgx.BeginFunc(ctx, h.pool, func(tx pgx.Tx) error { return h.outbox.Append(ctx, tx, h.event("b", 1)) }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if n := unpublished(); n != 1 {
		t.Fatalf("%d rows unpublished without a wake-up, want 1: the relay looked on its own", n)
	}
	// Another replica's relay, never run and so never leading, wakes the leader.
	other, err := outbox.NewRelay(h.pool, kafkatest.Client(t), h.log, outbox.RelayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other.Wake(ctx)
	waitFor(t, 10*time.Second, "the NOTIFY to wake the leader", func() bool { return unpublished() == 0 })
}

// The relay deletes published rows older than its retention and keeps younger ones and
// every unpublished one.
func TestRelayPurgesPublishedRowsPastRetention(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	ctx := context.Background()
	for i := range 3 {
		if err := pgx.BeginFunc(ctx, h.pool, func(tx pgx.Tx) error { return h.outbox.Append(ctx, tx, h.event("p", int64(i))) }); err != nil {
			t.Fatal(err)
		}
	}
	// Two rows published long ago (one past the retention, one inside it); the third
	// is pending and must be published, not purged.
	if _, err := h.pool.Exec(ctx, `UPDATE platform_outbox SET published_at = now() - interval '2 hours' WHERE id = (SELECT min(id) FROM platform_outbox)`); err != nil {
		t.Fatal(err)
	}
	if _, err := h.pool.Exec(ctx, `UPDATE platform_outbox SET published_at = now() - interval '30 minutes'
	                               WHERE id = (SELECT min(id) FROM platform_outbox WHERE published_at IS NULL)`); err != nil {
		t.Fatal(err)
	}
	h.runRelay(outbox.RelayOptions{Retention: time.Hour})
	waitFor(t, 20*time.Second, "the pending row published and the old one purged", func() bool {
		return h.count(`SELECT count(*) FROM platform_outbox WHERE published_at IS NULL`) == 0 &&
			h.count(`SELECT count(*) FROM platform_outbox`) == 2
	})
	if n := h.count(`SELECT count(*) FROM platform_outbox WHERE published_at < now() - interval '1 hour'`); n != 0 {
		t.Fatalf("%d rows past the retention kept", n)
	}
}

// Marks ride on the next pass's read, so a relay holds rows it published and has not
// marked yet. One that stops then marks them before it lets go: the next leader does not
// publish them again. The first relay stops as soon as Kafka acknowledged its first
// batch; the topic must hold every row once.
func TestRelayMarksWhatItPublishedWhenItStops(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	ctx := context.Background()
	rctx, stopFirst := context.WithCancel(ctx)
	defer stopFirst()
	first, err := outbox.NewRelay(h.pool, kafkatest.Client(t), h.log, outbox.RelayOptions{Fallback: time.Hour,
		AfterPublish: func([]int64) error { stopFirst(); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	h.outbox.SetWaker(first)
	done := make(chan error, 1)
	go func() { done <- first.Run(rctx) }()
	h.appendMany(ctx, 3, "k", 3)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the first relay did not stop after publishing")
	}
	published := h.count(`SELECT count(*) FROM platform_outbox WHERE published_at IS NOT NULL`)
	if published == 0 {
		t.Fatal("the stopped relay left what it published unmarked")
	}

	h.runRelay(outbox.RelayOptions{})
	waitFor(t, 20*time.Second, "the second relay to publish the rest", func() bool {
		return h.count(`SELECT count(*) FROM platform_outbox WHERE published_at IS NULL`) == 0
	})
	recs := kafkatest.Consume(t, h.topic, 4, 3*time.Second)
	if len(recs) != 3 {
		t.Fatalf("topic has %d records for 3 rows (%d published by the first relay): published again", len(recs), published)
	}
}
