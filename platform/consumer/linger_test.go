package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/internal/testevent"
	"github.com/orderflow/orderflow/platform/kafka/kafkatest"
	"github.com/orderflow/orderflow/platform/outbox"
	"github.com/orderflow/orderflow/platform/pg"
)

// note commits one lingering event for key through a pg.Tx, whose commit wakes the
// relay soon.
func (h *harness) note(ctx context.Context, key string) {
	h.t.Helper()
	err := pg.Run(ctx, h.pool, nil, func(tx *pg.Tx) error {
		return h.outbox.Append(ctx, tx, events.New(ctx, "test", h.topic, key, testevent.Noted, testevent.Note{ID: key}, events.Cause{}))
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

// lingerNotes declares the harness's events, and Noted as one that lingers.
func (h *harness) lingerNotes() {
	h.outbox.Declare(outbox.Publication{Topic: h.topic, Type: testevent.V1},
		outbox.Publication{Topic: h.topic, Type: testevent.Noted, Linger: true})
}

func (h *harness) unpublished() int {
	return h.count(`SELECT count(*) FROM platform_outbox WHERE published_at IS NULL`)
}

// A lingering event waits for the next event that cannot, and leaves with it, in commit
// order. Neither the fallback look nor the linger can publish it here (an hour each), so
// only the second commit's wake-up does.
func TestRelayHoldsALingeringEventForTheNextThatCannotWait(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	h.lingerNotes()
	ctx := context.Background()
	h.runRelay(outbox.RelayOptions{Fallback: time.Hour, Linger: time.Hour})
	if _, err := h.appendNextPG(ctx, "a"); err != nil { // once it is out, the relay leads and is idle
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the first event to be published", func() bool { return h.unpublished() == 0 })

	h.note(ctx, "n")
	time.Sleep(300 * time.Millisecond)
	if n := h.unpublished(); n != 1 {
		t.Fatalf("%d rows unpublished after a lingering commit, want 1: it did not wait", n)
	}
	if _, err := h.appendNextPG(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "both to be published", func() bool { return h.unpublished() == 0 })
	recs := kafkatest.Consume(t, h.topic, 4, 3*time.Second)
	var got []string
	for _, r := range recs {
		got = append(got, string(r.Key))
	}
	if len(got) != 3 || got[0] != "a" || got[1] != "n" || got[2] != "b" {
		t.Fatalf("topic holds %v, want [a n b]: the lingering event out of commit order", got)
	}
}

// With nothing else to publish, a lingering event leaves when its linger is up.
func TestRelayPublishesALingeringEventWhenItsLingerIsUp(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	h.lingerNotes()
	ctx := context.Background()
	h.runRelay(outbox.RelayOptions{Fallback: time.Hour, Linger: 50 * time.Millisecond})
	if _, err := h.appendNextPG(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the first event to be published", func() bool { return h.unpublished() == 0 })
	h.note(ctx, "n")
	waitFor(t, 10*time.Second, "the lingering event to be published", func() bool { return h.unpublished() == 0 })
}

// Another replica's lingering commit reaches the leader as a NOTIFY that says so: the
// leader waits for its linger (an hour here: the row stays until a wake-up that cannot
// wait), and a leader with a short linger publishes it when that is up.
func TestRelayHearsAnotherReplicasLingeringCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, c := range []struct {
		linger time.Duration
		waits  bool
	}{{time.Hour, true}, {50 * time.Millisecond, false}} {
		h := newHarness(t, 1)
		h.runRelay(outbox.RelayOptions{Fallback: time.Hour, Linger: c.linger})
		if _, err := h.appendNextPG(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, "the first event to be published", func() bool { return h.unpublished() == 0 })

		other, err := outbox.NewRelay(h.pool, kafkatest.Client(t), h.log, outbox.RelayOptions{Linger: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := pgx.BeginFunc(ctx, h.pool, func(tx pgx.Tx) error { return h.outbox.Append(ctx, tx, h.event("b", 1)) }); err != nil {
			t.Fatal(err)
		}
		other.WakeSoon(ctx)
		if !c.waits {
			waitFor(t, 10*time.Second, "the leader to publish when its linger is up", func() bool { return h.unpublished() == 0 })
			continue
		}
		time.Sleep(300 * time.Millisecond)
		if n := h.unpublished(); n != 1 {
			t.Fatalf("%d rows unpublished after another replica's lingering commit, want 1: the leader did not wait", n)
		}
		other.Wake(ctx)
		waitFor(t, 10*time.Second, "the leader to publish at a wake-up that cannot wait", func() bool { return h.unpublished() == 0 })
	}
}
