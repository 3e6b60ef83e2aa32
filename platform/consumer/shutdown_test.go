package consumer_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/platform/internal/testevent"
	"github.com/orderflow/orderflow/platform/kafka/kafkatest"
	"github.com/orderflow/orderflow/platform/outbox"
)

// Shutdown gives the batches in flight ShutdownGrace in all, then cancels every one still
// running: with handlers stuck in four partitions at once it returns, and what they had
// not committed is applied by the group's next member. (It used to cancel only the
// first stuck batch after the grace and wait for the others forever.)
func TestShutdownCancelsEveryBatchStillRunningAfterTheGrace(t *testing.T) {
	t.Parallel()
	const partitions = 4
	h := newHarness(t, partitions)
	ctx := context.Background()
	h.runRelay(outbox.RelayOptions{})
	group := kafkatest.Name("g")

	var inFlight atomic.Int32
	stuck := func(ctx context.Context, tx pgx.Tx, m consumer.Message, p testevent.Thing) error {
		inFlight.Add(1)
		<-ctx.Done() // a handler that only stops when its batch is cancelled
		return ctx.Err()
	}
	c := h.newConsumer(group, stuck, consumer.Options{ShutdownGrace: 500 * time.Millisecond})
	stop := h.run(c.Run)
	h.appendMany(ctx, 40, "k", 40)
	waitFor(t, 30*time.Second, "a stuck batch in every partition", func() bool { return inFlight.Load() == partitions })

	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(60 * time.Second): // a hang, not a timing: the grace is half a second
		t.Fatal("shutdown did not return with handlers stuck in several partitions")
	}
	if n := h.count(`SELECT count(*) FROM effects`); n != 0 {
		t.Fatalf("%d effects from handlers that never returned", n)
	}

	next := h.newConsumer(group, record, consumer.Options{})
	defer h.run(next.Run)()
	waitFor(t, 30*time.Second, "the next member to apply every event", func() bool {
		return h.count(`SELECT count(*) FROM effects`) == 40
	})
}
