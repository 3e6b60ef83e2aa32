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
	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/platform/consumer/consumertest"
	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/kafka/kafkatest"
	"github.com/orderflow/orderflow/platform/outbox"
	"github.com/orderflow/orderflow/platform/outbox/outboxtest"
	"github.com/orderflow/orderflow/platform/pg"
	"github.com/orderflow/orderflow/platform/pg/pgtest"
	"github.com/orderflow/orderflow/platform/serde"
	"github.com/orderflow/orderflow/services/shop/internal/adapters/postgres"
	"github.com/orderflow/orderflow/services/shop/internal/app"
	"github.com/orderflow/orderflow/services/shop/internal/domain/order"
	shopevents "github.com/orderflow/orderflow/services/shop/internal/ports/events"
	"github.com/orderflow/orderflow/services/shop/migrations"
)

// The workflow group's batches share one order between their events: when an order's
// StockReserved and PaymentAuthorized are applied in one batch (its orders read and
// locked when it opens, written back with its COMMIT), the second handler sees what the
// first changed and confirms the order, once. The two events wait on one topic of one
// partition before the group starts (the handlers go by event type, not topic; two topics
// may come in more than one fetch), so that one batch holds both; the test checks that it
// did.
func TestOneBatchConfirmsAnOrderFromBothEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t, migrations.FS)
	sd := serde.New(kafkatest.RegistryURL(t), 5*time.Second)
	a := app.New(pool, outbox.New(sd))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	// A pending order, written without its OrderPlaced: nothing here consumes it.
	now := time.Now().UTC().Truncate(time.Millisecond)
	o := &order.Order{ID: uuid.NewString(), Customer: order.Customer{ID: "c-1", Email: "c@example.com", Name: "C"},
		Lines: []order.Line{{SKU: "SKU-1", Name: "Thing", Quantity: 2, UnitPriceMinor: 500}}, Currency: "EUR",
		TotalMinor: 1000, Address: order.Address{Name: "C", Line1: "1 Street", City: "Town", PostalCode: "1", Country: "DE"},
		Status: order.Pending, PlacedAt: now, UpdatedAt: now}
	if err := pg.Run(ctx, pool, nil, func(tx *pg.Tx) error { return postgres.DeferInsertOrder(tx, o) }); err != nil {
		t.Fatal(err)
	}

	topic := kafkatest.Topic(t, 1)
	cause := events.Cause{ID: uuid.NewString(), CorrelationID: o.ID}
	evs := []events.Event{
		events.New(ctx, "inventory", topic, o.ID, contract.StockReserved,
			inventory.StockReserved{OrderID: o.ID, Lines: []inventory.ReservedLine{{Sku: "SKU-1", Quantity: 2}}, ReservedAt: now}, cause),
		events.New(ctx, "billing", topic, o.ID, contract.PaymentAuthorized,
			billing.PaymentAuthorized{OrderID: o.ID, AmountMinor: 1000, Currency: "EUR", Provider: "local", AuthorizationID: "auth-1", AuthorizedAt: now}, cause),
	}
	outboxtest.Publish(t, pool, evs...)

	var batches consumertest.Batches
	c, err := consumer.New(kafkatest.Name("shop-workflow"), []string{topic}, kafkatest.Config(t), pool, sd, log,
		consumer.Options{Preload: batches.Preload(a.PreloadOrders), ShutdownGrace: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	shopevents.RegisterWorkflow(c, a)
	consumertest.Run(t, c)

	pgtest.AwaitCount(t, pool, 30*time.Second, 2, `SELECT count(*) FROM platform_inbox`) // both events applied
	batches.RequireOne(t)
	got, err := postgres.GetOrder(ctx, pool, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != order.Confirmed || !got.StockReserved || !got.PaymentAuthorized {
		t.Fatalf("order after both events: status %s, stock reserved %v, payment authorized %v; want CONFIRMED, true, true",
			got.Status, got.StockReserved, got.PaymentAuthorized)
	}
	var confirmations int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM platform_outbox WHERE topic = $1`, contract.TopicShopOrders).Scan(&confirmations); err != nil {
		t.Fatal(err)
	}
	var all int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM platform_outbox`).Scan(&all); err != nil {
		t.Fatal(err)
	}
	if confirmations != 1 || all != 1 {
		t.Fatalf("%d events appended to %s (%d in all), want one OrderConfirmed", confirmations, contract.TopicShopOrders, all)
	}
}
