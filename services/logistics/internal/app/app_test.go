package app_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/orderflow/orderflow/avro/billing"
	"github.com/orderflow/orderflow/avro/contract"
	"github.com/orderflow/orderflow/avro/inventory"
	"github.com/orderflow/orderflow/avro/shop"
	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/platform/consumer/consumertest"
	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/kafka/kafkatest"
	"github.com/orderflow/orderflow/platform/outbox"
	"github.com/orderflow/orderflow/platform/outbox/outboxtest"
	"github.com/orderflow/orderflow/platform/pg/pgtest"
	"github.com/orderflow/orderflow/platform/serde"
	"github.com/orderflow/orderflow/services/logistics/internal/adapters/postgres"
	"github.com/orderflow/orderflow/services/logistics/internal/app"
	logevents "github.com/orderflow/orderflow/services/logistics/internal/ports/events"
	"github.com/orderflow/orderflow/services/logistics/migrations"
)

// The shipments group's batches share one shipment between their events: when an order's
// OrderPlaced, StockReserved and PaymentAuthorized are applied in one batch (its shipments
// created, read and locked when it opens, written back with its COMMIT), the last handler
// sees what the first two learned and prepares the shipment, once, with its label. A
// second order of the same batch, placed and reserved only, stays pending with both
// facts kept. The events wait on one topic of one partition before the group starts (the
// handlers go by event type, not topic; three topics may come in more than one fetch), so
// that one batch holds them all; the test checks that it did.
func TestOneBatchPreparesAShipmentFromItsThreeFacts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t, migrations.FS)
	sd := serde.New(kafkatest.RegistryURL(t), 5*time.Second)
	a := app.New(pool, outbox.New(sd))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	topic := kafkatest.Topic(t, 1)
	now := time.Now().UTC().Truncate(time.Millisecond)
	placed := func(id string) events.Event {
		return events.New(ctx, "shop", topic, id, contract.OrderPlaced, shop.OrderPlaced{OrderID: id, CustomerID: "c-1",
			CustomerEmail: "c@example.com", CustomerName: "C", Lines: []shop.OrderLine{{Sku: "SKU-1", Name: "Thing", Quantity: 2, UnitPriceMinor: 500}},
			Currency: "EUR", TotalMinor: 1000, PaymentToken: "tok_visa",
			ShippingAddress: shop.ShippingAddress{Name: "C", Line1: "1 Street", City: "Town", PostalCode: "12345", Country: "DE"}, PlacedAt: now},
			events.Cause{CorrelationID: id})
	}
	reserved := func(id string) events.Event {
		return events.New(ctx, "inventory", topic, id, contract.StockReserved,
			inventory.StockReserved{OrderID: id, Lines: []inventory.ReservedLine{{Sku: "SKU-1", Quantity: 2}}, ReservedAt: now},
			events.Cause{CorrelationID: id})
	}
	authorized := func(id string) events.Event {
		return events.New(ctx, "billing", topic, id, contract.PaymentAuthorized,
			billing.PaymentAuthorized{OrderID: id, AmountMinor: 1000, Currency: "EUR", Provider: "local", AuthorizationID: "auth-" + id, AuthorizedAt: now},
			events.Cause{CorrelationID: id})
	}
	full, half := uuid.NewString(), uuid.NewString()
	evs := []events.Event{placed(full), placed(half), reserved(full), reserved(half), authorized(full)}
	outboxtest.Publish(t, pool, evs...)

	var batches consumertest.Batches
	c, err := consumer.New(kafkatest.Name("logistics-shipments"), []string{topic}, kafkatest.Config(t), pool, sd, log,
		consumer.Options{Preload: batches.Preload(a.PreloadShipments), ShutdownGrace: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	logevents.Register(c, a)
	consumertest.Run(t, c)

	pgtest.AwaitCount(t, pool, 30*time.Second, int64(len(evs)), `SELECT count(*) FROM platform_inbox`)
	batches.RequireOne(t)

	s, err := postgres.Get(ctx, pool, full)
	if err != nil {
		t.Fatal(err)
	}
	if s.Status != postgres.Prepared || s.TrackingNumber == "" || s.Recipient.Name != "C" || len(s.Recipient.Lines) != 3 {
		t.Fatalf("the order with all three facts: %+v; want PREPARED with a tracking number and its recipient", s)
	}
	if pdf, err := postgres.Label(ctx, pool, full); err != nil || len(pdf) == 0 {
		t.Fatalf("its label: %d bytes, %v", len(pdf), err)
	}
	h, err := postgres.Get(ctx, pool, half)
	if err != nil {
		t.Fatal(err)
	}
	if h.Status != postgres.Pending || !h.Placed || !h.StockReserved || h.PaymentAuthorized || h.Recipient.Name != "C" {
		t.Fatalf("the order placed and reserved: %+v; want PENDING, placed and reserved, its recipient kept", h)
	}
	var prepared int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM platform_outbox WHERE topic = $1 AND key = $2`,
		contract.TopicLogisticsShipments, full).Scan(&prepared); err != nil {
		t.Fatal(err)
	}
	var all int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM platform_outbox`).Scan(&all); err != nil {
		t.Fatal(err)
	}
	if prepared != 1 || all != 1 {
		t.Fatalf("%d ShipmentPrepared for the full order, %d events appended in all; want one and one", prepared, all)
	}
}
