package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/internal/testevent"
	"github.com/orderflow/orderflow/platform/kafka/kafkatest"
	"github.com/orderflow/orderflow/platform/outbox"
)

// One trace runs from the request that appended an event through the relay's publish
// span into the consumer's processing span; the handler also learns when the relay
// produced the record.
func TestOneTraceFromRequestToConsumer(t *testing.T) {
	recorder := tracetest.NewSpanRecorder()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder)))
	h := newHarness(t, 2)
	ctx, request := otel.Tracer("test").Start(context.Background(), "POST /v1/orders")
	ev := events.New(ctx, "test", h.topic, "traced", testevent.V1, testevent.Thing{ID: "traced", Seq: 1, Amount: 1}, events.Cause{})
	if err := pgx.BeginFunc(ctx, h.pool, func(tx pgx.Tx) error { return h.outbox.Append(ctx, tx, ev) }); err != nil {
		t.Fatal(err)
	}
	request.End()
	committed := time.Now()

	seen := make(chan trace.SpanContext, 1)
	var produced, handled time.Time
	c := h.newConsumer(kafkatest.Name("g"), func(ctx context.Context, tx pgx.Tx, m consumer.Message, p testevent.Thing) error {
		produced, handled = m.ProducedAt, time.Now()
		seen <- trace.SpanContextFromContext(ctx)
		return nil
	}, consumer.Options{})
	h.runRelay(outbox.RelayOptions{})
	stop := h.run(c.Run)
	defer stop()

	var handler trace.SpanContext
	select {
	case handler = <-seen:
	case <-time.After(20 * time.Second):
		t.Fatal("event not consumed")
	}
	// Kafka timestamps are whole milliseconds.
	if produced.Before(committed.Truncate(time.Millisecond)) || produced.After(handled) {
		t.Fatalf("ProducedAt %v is not between the commit (%v) and the handler (%v)", produced, committed, handled)
	}
	want := request.SpanContext().TraceID()
	if handler.TraceID() != want {
		t.Fatalf("handler runs in trace %s, request was %s", handler.TraceID(), want)
	}
	// The relay ends its publish span after marking the row, which can be later than the
	// consumer handling the record: wait for both spans.
	var names map[string]trace.SpanContext
	deadline := time.Now().Add(5 * time.Second)
	for {
		names = map[string]trace.SpanContext{}
		for _, s := range recorder.Ended() {
			if s.SpanContext().TraceID() == want {
				names[s.Name()] = s.Parent()
			}
		}
		_, published := names["publish "+h.topic]
		_, processed := names["process "+testevent.V1.Name]
		if (published && processed) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if publish, ok := names["publish "+h.topic]; !ok || publish.SpanID() != request.SpanContext().SpanID() {
		t.Fatalf("no relay span under the request span; spans of the trace: %v", names)
	}
	if _, ok := names["process "+testevent.V1.Name]; !ok {
		t.Fatalf("no consumer span in the trace: %v", names)
	}
}
