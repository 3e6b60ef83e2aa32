package kafka

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// requestCounter counts the requests every client of the process writes to the brokers,
// by kind: kafka_client_requests_total{request="Fetch"|"Produce"|...}. Each request
// wakes the broker and the client; at moderate rates a service's fetches cost about as
// much CPU as its database work (README, Performance), so make bench reports them per
// order.
type requestCounter struct {
	counter metric.Int64Counter
	attrs   [128]metric.AddOption
}

var (
	requestsOnce sync.Once
	requests     *requestCounter
)

func requestHook() kgo.Hook {
	requestsOnce.Do(func() {
		c, err := otel.Meter("github.com/orderflow/orderflow/platform/kafka").Int64Counter("kafka_client_requests_total",
			metric.WithDescription("Requests written to Kafka brokers by this process's clients, by request kind."))
		if err != nil {
			// A metric that cannot be made must not stop a client: report it through
			// OpenTelemetry's error handler and count nothing.
			otel.Handle(err)
			return
		}
		rc := &requestCounter{counter: c}
		for k := range rc.attrs {
			rc.attrs[k] = metric.WithAttributes(attribute.String("request", kmsg.NameForKey(int16(k))))
		}
		requests = rc
	})
	if requests == nil {
		return struct{}{}
	}
	return requests
}

// OnBrokerWrite implements kgo.HookBrokerWrite.
func (r *requestCounter) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err != nil || key < 0 || int(key) >= len(r.attrs) {
		return
	}
	r.counter.Add(context.Background(), 1, r.attrs[key])
}
