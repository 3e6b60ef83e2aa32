package consumer_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/internal/testevent"
	"github.com/orderflow/orderflow/platform/kafka/kafkatest"
)

// A group that lags holds at most its QueueBytes of fetched records, plus a fetch or two
// per partition, however many records per partition QueueHigh would allow: here 600
// records of 4 KiB per partition wait behind handlers that do not return, which
// QueueHigh alone (1,000) would all let in, 14 MiB. When the handlers return, every
// record is applied and the accounting is back at zero.
func TestALaggingGroupHoldsItsQueueBytes(t *testing.T) {
	t.Parallel()
	const partitions, perPartition = 6, 600
	h := newHarness(t, partitions)
	ctx := context.Background()

	pad := make([]byte, 3072) // 4 KiB in base64: what LZ4 cannot shrink
	recs := make([]*kgo.Record, 0, partitions*perPartition)
	for i := range partitions * perPartition {
		_, _ = rand.Read(pad)
		key := fmt.Sprintf("agg-%d", i%600)
		e := events.New(ctx, "test", h.topic, key, testevent.V1,
			testevent.Thing{ID: key + ":" + base64.StdEncoding.EncodeToString(pad), Seq: int64(i), Amount: 1}, events.Cause{})
		v, err := h.serde.Encode(h.topic, testevent.V1.Schema, e.Payload)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: h.topic, Key: []byte(key), Value: v, Headers: e.Metadata.Headers()})
	}
	// Kafka returns at least one whole record batch of a partition, however large: batches
	// of at most 64 KiB keep every fetch of a partition within LiveFetchMaxPartitionBytes.
	if err := kafkatest.Client(t, kgo.ProducerBatchMaxBytes(64<<10)).ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	release := make(chan struct{})
	var applied atomic.Int64
	handler := func(ctx context.Context, tx pgx.Tx, m consumer.Message, p testevent.Thing) error {
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		applied.Add(1)
		return nil
	}
	const budget = 512 << 10
	c := h.newConsumer(kafkatest.Name("g"), handler, consumer.Options{QueueBytes: budget})
	stop := h.run(c.Run)
	defer stop()

	// Wait until the queues stop growing: every partition paused, or all of it fetched.
	var last, stable int64
	waitFor(t, 30*time.Second, "the queues to settle", func() bool {
		counted, _ := c.QueuedBytes()
		if counted > 0 && counted == last {
			stable++
		} else {
			stable, last = 0, counted
		}
		return stable >= 100 // unchanged for two seconds (waitFor looks every 20 ms)
	})
	counted, present := c.QueuedBytes()
	if counted != present {
		t.Fatalf("the accounting says %d bytes wait, the queues hold %d", counted, present)
	}
	// Each partition may take one fetch over its share, and one more already in flight
	// when it was paused; a fetch of these records takes at most twice its compressed size.
	bound := int64(budget + partitions*2*2*consumer.LiveFetchMaxPartitionBytes)
	if present > bound {
		t.Fatalf("a lagging group holds %d KiB of records, want at most %d KiB", present>>10, bound>>10)
	}
	t.Logf("holding %d KiB of records (bound %d KiB)", present>>10, bound>>10)

	close(release)
	waitFor(t, 60*time.Second, "every record applied", func() bool { return applied.Load() == int64(len(recs)) })
	waitFor(t, 10*time.Second, "the queues to empty", func() bool {
		counted, present := c.QueuedBytes()
		return counted == 0 && present == 0
	})
}
