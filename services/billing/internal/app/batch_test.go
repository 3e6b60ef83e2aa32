package app_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/orderflow/orderflow/avro/contract"
	"github.com/orderflow/orderflow/avro/shop"
	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/platform/consumer/consumertest"
	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/kafka/kafkatest"
	"github.com/orderflow/orderflow/platform/outbox/outboxtest"
	"github.com/orderflow/orderflow/platform/pg/pgtest"
	"github.com/orderflow/orderflow/platform/serde"
	"github.com/orderflow/orderflow/services/billing/internal/adapters/postgres"
	billingevents "github.com/orderflow/orderflow/services/billing/internal/ports/events"
)

// The payments group's batches share one payment between their events: an order placed
// and cancelled in one batch (its orders locked and payments read when it opens, the
// payments written back with its COMMIT) is authorized, then voided with its pending
// invoice, because the cancellation sees the authorization the batch made a moment
// before. A second order of the batch, placed only, stays authorized. The events wait on
// one topic of one partition before the group starts, so that one batch holds them all;
// the test checks that it did.
func TestOneBatchVoidsWhatItAuthorized(t *testing.T) {
	t.Parallel()
	pool, a := newApp(t)
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	topic := kafkatest.Topic(t, 1)
	cancelled, kept := placed(), placed()
	cause := func(id string) events.Cause { return events.Cause{CorrelationID: id} }
	outboxtest.Publish(t, pool,
		events.New(ctx, "shop", topic, cancelled.OrderID, contract.OrderPlaced, cancelled, cause(cancelled.OrderID)),
		events.New(ctx, "shop", topic, kept.OrderID, contract.OrderPlaced, kept, cause(kept.OrderID)),
		events.New(ctx, "shop", topic, cancelled.OrderID, contract.OrderCancelled, shop.OrderCancelled{OrderID: cancelled.OrderID,
			CustomerID: cancelled.CustomerID, Reason: contract.ReasonCustomerRequest, Detail: "asked", CancelledAt: time.Now().UTC().Truncate(time.Millisecond)},
			cause(cancelled.OrderID)))

	var batches consumertest.Batches
	c, err := consumer.New(kafkatest.Name("billing-payments"), []string{topic}, kafkatest.Config(t), pool,
		serde.New(kafkatest.RegistryURL(t), 5*time.Second), log,
		consumer.Options{Preload: batches.Preload(a.PreloadPayments), ShutdownGrace: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	billingevents.Register(c, a)
	consumertest.Run(t, c)

	pgtest.AwaitCount(t, pool, 30*time.Second, 3, `SELECT count(*) FROM platform_inbox`)
	batches.RequireOne(t)

	if p, err := postgres.GetPayment(ctx, pool, cancelled.OrderID); err != nil || p.Status != postgres.Voided || p.AuthorizationID == "" {
		t.Fatalf("the order placed and cancelled: %+v %v, want VOIDED with its authorization", p, err)
	}
	if inv, err := postgres.GetInvoiceOfOrder(ctx, pool, cancelled.OrderID); err != nil || inv.Status != postgres.Voided {
		t.Fatalf("its invoice: %+v %v, want VOIDED", inv, err)
	}
	if got := eventTypes(t, pool, cancelled.OrderID); !slices.Equal(got, []string{"PaymentAuthorized", "PaymentVoided"}) {
		t.Fatalf("events of the order placed and cancelled: %v, want PaymentAuthorized, PaymentVoided", got)
	}
	if p, err := postgres.GetPayment(ctx, pool, kept.OrderID); err != nil || p.Status != postgres.Authorized {
		t.Fatalf("the order placed only: %+v %v, want AUTHORIZED", p, err)
	}
	if got := eventTypes(t, pool, kept.OrderID); !slices.Equal(got, []string{"PaymentAuthorized"}) {
		t.Fatalf("events of the order placed only: %v", got)
	}
}
