package consumer_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/platform/internal/testevent"
	"github.com/orderflow/orderflow/platform/kafka/kafkatest"
	"github.com/orderflow/orderflow/platform/outbox"
	"github.com/orderflow/orderflow/platform/pg"
)

// A write sent with a batch's COMMIT that breaks a constraint fails the whole batch, not
// the statement of the handler that queued it. The consumer then applies the batch's
// records one at a time, so the error lands on the record that causes it: that record is
// retried and dead-lettered like any record whose handler fails, and the records before
// and after it in the same batch are applied. Without that, the batch was retried as a
// transient failure forever and its partition never moved on.
func TestAWriteThatFailsAtCommitIsDeadLetteredAlone(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	ctx := context.Background()
	if _, err := h.pool.Exec(ctx, `CREATE TABLE written (key text NOT NULL, seq bigint NOT NULL, amount int NOT NULL CHECK (amount >= 0))`); err != nil {
		t.Fatal(err)
	}
	// Every event waits in the topic before the group starts, so the first fetch brings
	// them all and the broken one sits inside a batch.
	h.runRelay(outbox.RelayOptions{})
	h.appendMany(ctx, 3, "before", 3)
	if err := h.appendNext(ctx, "broken"); err != nil {
		t.Fatal(err)
	}
	h.appendMany(ctx, 3, "after", 3)
	waitFor(t, 20*time.Second, "every event published", func() bool {
		return h.count(`SELECT count(*) FROM platform_outbox WHERE published_at IS NULL`) == 0
	})

	var (
		mu         sync.Mutex
		batchSizes []int
		brokenRuns atomic.Int64
	)
	preload := func(_ *pgx.Batch, keys []string) any {
		mu.Lock()
		batchSizes = append(batchSizes, len(keys))
		mu.Unlock()
		return nil
	}
	handler := func(ctx context.Context, tx pgx.Tx, m consumer.Message, p testevent.Thing) error {
		c, ok := tx.(pg.Committer)
		if !ok {
			t.Error("the handler's transaction cannot run statements with its COMMIT")
			return errors.New("no pg.Committer")
		}
		amount := 1
		if p.ID == "broken" {
			amount = -1 // breaks the CHECK, but only when the COMMIT sends it
			brokenRuns.Add(1)
		}
		c.BeforeCommit(func(b *pgx.Batch) {
			b.Queue(`INSERT INTO written (key, seq, amount) VALUES ($1, $2, $3)`, p.ID, p.Seq, amount)
		})
		return record(ctx, tx, m, p)
	}
	c := h.newConsumer(kafkatest.Name("g"), handler, consumer.Options{Preload: preload, MaxAttempts: 3,
		BackoffBase: 20 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	stop := h.run(c.Run)
	defer stop()

	waitFor(t, 30*time.Second, "the six good events applied", func() bool {
		return h.count(`SELECT count(*) FROM effects`) == 6 && h.count(`SELECT count(*) FROM written`) == 6
	})
	dead := kafkatest.Consume(t, c.DeadLetterTopic(), 1, 15*time.Second)
	if len(dead) != 1 || string(dead[0].Key) != "broken" {
		t.Fatalf("dead letters %d (first key %q), want the broken event alone", len(dead), keyOf(dead))
	}
	if n := h.count(`SELECT count(*) FROM effects WHERE key = 'broken'`); n != 0 {
		t.Errorf("the broken event's effect was committed %d times without its write", n)
	}
	if n := brokenRuns.Load(); n < 3 {
		t.Errorf("the broken event's handler ran %d times, want its 3 attempts at least", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(batchSizes) == 0 || batchSizes[0] < 2 {
		t.Fatalf("first batch had %v keys: the broken event was not inside a batch, the test proves nothing", batchSizes)
	}
}

func keyOf(recs []*kgo.Record) string {
	if len(recs) == 0 {
		return ""
	}
	return string(recs[0].Key)
}
