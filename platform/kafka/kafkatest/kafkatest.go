// Package kafkatest connects integration tests to the Kafka cluster and schema registry
// that `make test` starts, and gives each test its own topics.
package kafkatest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/platform/kafka"
)

// Environment variables `make test` (and `make env`) set.
const (
	BrokersEnv  = "ORDERFLOW_KAFKA_BROKERS"
	RegistryEnv = "ORDERFLOW_REGISTRY_URL"
)

func need(t testing.TB, env string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set: run the tests with `make test`", env)
		}
		t.Skipf("%s is not set: integration tests run with `make test`", env)
	}
	return v
}

// Config returns the connection settings of the test cluster, or skips the test.
func Config(t testing.TB) kafka.Config {
	t.Helper()
	return kafka.Config{Brokers: strings.Split(need(t, BrokersEnv), ","), ClientID: "test"}
}

// RegistryURL returns the test registry's URL, or skips the test.
func RegistryURL(t testing.TB) string {
	t.Helper()
	return need(t, RegistryEnv)
}

// Client returns a producing client for the test cluster, closed when the test ends.
func Client(t testing.TB, extra ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kafka.NewClient(Config(t), extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Name returns a name unique to this run, for a topic or a consumer group.
func Name(prefix string) string {
	return prefix + "-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
}

// Topic creates a fresh event topic with the given partitions and deletes it when the
// test ends.
func Topic(t testing.TB, partitions int32) string {
	t.Helper()
	name := Name("t")
	cl := Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, cl, kafka.EventTopic(name, partitions)); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		adm := kadm.NewClient(Client(t))
		_, _ = adm.DeleteTopics(ctx, name)
	})
	return name
}

// Consume reads every record of topic from the start until n records arrived or the
// timeout passed, and returns what it read.
func Consume(t testing.TB, topic string, n int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	cl := Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		out = append(out, fs.Records()...)
	}
	return out
}
