package kafka_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/platform/kafka"
	"github.com/orderflow/orderflow/platform/kafka/kafkatest"
)

// deleteAtEnd deletes topic when the test ends.
func deleteAtEnd(t *testing.T, topic string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = kadm.NewClient(kafkatest.Client(t)).DeleteTopics(ctx, topic)
	})
}

// A client that asked about a topic before it existed keeps the answer ("unknown topic")
// in its metadata cache for MetadataMinAge. EnsureTopics must see the topic it just
// created anyway: on a freshly started broker the first answer after the creation can
// lack the leaders, and every service waited out the cache (5 s, twice) before it began.
// The cache here outlives the test, so only an answer from the broker itself passes.
func TestEnsureTopicsSeesATopicTheClientCachedAsMissing(t *testing.T) {
	cl := kafkatest.Client(t, kgo.MetadataMinAge(time.Hour), kgo.MetadataMaxAge(time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := kafkatest.Name("t")
	deleteAtEnd(t, name)

	details, err := kadm.NewClient(cl).ListTopics(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if details[name].Err == nil {
		t.Fatalf("topic %s exists before the test created it", name)
	}

	if err := kafka.EnsureTopics(ctx, cl, kafka.EventTopic(name, 3)); err != nil {
		t.Fatalf("EnsureTopics: %v", err)
	}
	if err := kafka.EnsureTopics(ctx, cl, kafka.EventTopic(name, 3)); err != nil {
		t.Fatalf("EnsureTopics on the topic it created: %v", err)
	}
}

func TestEnsureTopicsRefusesAnotherPartitionCount(t *testing.T) {
	cl := kafkatest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := kafkatest.Name("t")
	deleteAtEnd(t, name)
	if err := kafka.EnsureTopics(ctx, cl, kafka.EventTopic(name, 2)); err != nil {
		t.Fatal(err)
	}
	err := kafka.EnsureTopics(ctx, cl, kafka.EventTopic(name, 4))
	if err == nil || !strings.Contains(err.Error(), "has 2 partitions, declared 4") {
		t.Fatalf("EnsureTopics with 4 partitions for a topic of 2: %v, want an error naming both counts", err)
	}
}
