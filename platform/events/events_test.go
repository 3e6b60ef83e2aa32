package events_test

import (
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/internal/testevent"
)

func TestHeadersRoundTrip(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(context.Background(), "request")
	defer span.End()

	cause := events.Cause{ID: "11111111-1111-1111-1111-111111111111", CorrelationID: "order-1"}
	e := events.New(ctx, "shop", "shop.orders", "order-1", testevent.V1, testevent.Thing{}, cause)
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	got, err := events.ParseHeaders(e.Metadata.Headers())
	if err != nil {
		t.Fatal(err)
	}
	want := e.Metadata
	if got.ID != want.ID || got.Type != "orderflow.test.Thing.v1" || got.Source != "shop" || got.Subject != "order-1" ||
		got.CorrelationID != "order-1" || got.CausationID != cause.ID || !got.Time.Equal(want.Time) {
		t.Fatalf("round trip: got %+v, want %+v", got, want)
	}
	if !strings.HasPrefix(got.TraceParent, "00-"+span.SpanContext().TraceID().String()) {
		t.Fatalf("traceparent %q does not carry the request's trace", got.TraceParent)
	}
	remote := trace.SpanContextFromContext(got.Context(context.Background()))
	if remote.TraceID() != span.SpanContext().TraceID() || !remote.IsRemote() {
		t.Fatalf("consumer context %v does not continue the trace", remote)
	}
}

func TestCorrelationDefaultsToKey(t *testing.T) {
	e := events.New(context.Background(), "shop", "shop.orders", "order-7", testevent.V1, nil, events.Cause{})
	if e.Metadata.CorrelationID != "order-7" || e.Metadata.CausationID != "" {
		t.Fatalf("got correlation %q causation %q", e.Metadata.CorrelationID, e.Metadata.CausationID)
	}
}

func TestParseHeadersNamesEveryProblem(t *testing.T) {
	hs := []kgo.RecordHeader{
		{Key: events.HeaderSpecVersion, Value: []byte("0.3")},
		{Key: events.HeaderID, Value: []byte("not-a-uuid")},
		{Key: events.HeaderTime, Value: []byte("yesterday")},
	}
	_, err := events.ParseHeaders(hs)
	if err == nil {
		t.Fatal("accepted invalid headers")
	}
	for _, want := range []string{"ce_specversion is \"0.3\"", "ce_id \"not-a-uuid\" is not a UUID", "ce_time \"yesterday\"", "ce_type is empty", "ce_source is empty", "ce_subject is empty"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "ce_time is empty") {
		t.Errorf("unparsable time reported twice: %v", err)
	}
	if _, err := events.ParseHeaders(nil); err == nil || !strings.Contains(err.Error(), "missing ce_specversion") {
		t.Fatalf("no headers: %v", err)
	}
}

func TestValidateEvent(t *testing.T) {
	var e events.Event
	err := e.Validate()
	for _, want := range []string{"topic is empty", "key is empty", "type is not set", "ce_id"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

func TestShortName(t *testing.T) {
	for in, want := range map[string]string{"orderflow.billing.PaymentAuthorized.v1": "PaymentAuthorized", "Plain": "Plain"} {
		if got := events.ShortName(in); got != want {
			t.Errorf("ShortName(%q) = %q, want %q", in, got, want)
		}
	}
}
