package app_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/orderflow/orderflow/avro/contract"
	"github.com/orderflow/orderflow/avro/shop"
	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/platform/consumer/consumertest"
	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/kafka/kafkatest"
	"github.com/orderflow/orderflow/platform/outbox"
	"github.com/orderflow/orderflow/platform/outbox/outboxtest"
	"github.com/orderflow/orderflow/platform/pg/pgtest"
	"github.com/orderflow/orderflow/platform/serde"
	"github.com/orderflow/orderflow/services/inventory/internal/adapters/postgres"
	"github.com/orderflow/orderflow/services/inventory/internal/app"
	invevents "github.com/orderflow/orderflow/services/inventory/internal/ports/events"
	"github.com/orderflow/orderflow/services/inventory/migrations"
)

// The reservations group's batches share their reservations and stock rows between their
// events, which see what the ones before them did, not the rows as they were when the
// batch opened: in one batch, an order for 3 of a SKU's 4 units is reserved, a second
// order for 3 is rejected (1 left), the first is cancelled and its units released, and a
// third order for 3 is reserved. Stock and reservations are written back with the COMMIT.
// The events wait on one topic of one partition before the group starts, so that one
// batch holds them all; the test checks that it did.
func TestOneBatchReservesWhatItsCancellationReleased(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t, migrations.FS)
	sd := serde.New(kafkatest.RegistryURL(t), 5*time.Second)
	a := app.New(pool, outbox.New(sd))
	sku := "SKU-" + uuid.NewString()[:8]
	if _, err := a.Receive(ctx, app.Receipt{ID: uuid.NewString(), SKU: sku, Quantity: 4}); err != nil {
		t.Fatal(err)
	}

	topic := kafkatest.Topic(t, 1)
	now := time.Now().UTC().Truncate(time.Millisecond)
	placed := func(id string) events.Event {
		return events.New(ctx, "shop", topic, id, contract.OrderPlaced, shop.OrderPlaced{OrderID: id, CustomerID: "c-1",
			CustomerEmail: "c@example.com", CustomerName: "C", Lines: []shop.OrderLine{{Sku: sku, Name: "Thing", Quantity: 3, UnitPriceMinor: 500}},
			Currency: "EUR", TotalMinor: 1500, PaymentToken: "tok_visa",
			ShippingAddress: shop.ShippingAddress{Name: "C", Line1: "1 Street", City: "Town", PostalCode: "12345", Country: "DE"}, PlacedAt: now},
			events.Cause{CorrelationID: id})
	}
	first, second, third := uuid.NewString(), uuid.NewString(), uuid.NewString()
	outboxtest.Publish(t, pool,
		placed(first),
		placed(second),
		events.New(ctx, "shop", topic, first, contract.OrderCancelled, shop.OrderCancelled{OrderID: first, CustomerID: "c-1",
			Reason: contract.ReasonCustomerRequest, Detail: "asked", CancelledAt: now}, events.Cause{CorrelationID: first}),
		placed(third))

	var batches consumertest.Batches
	c, err := consumer.New(kafkatest.Name("inventory-reservations"), []string{topic}, kafkatest.Config(t), pool, sd,
		slog.New(slog.NewTextHandler(io.Discard, nil)),
		consumer.Options{Serial: true, Preload: batches.Preload(a.PreloadReservations), ShutdownGrace: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	invevents.RegisterReservations(c, a)
	consumertest.Run(t, c)

	pgtest.AwaitCount(t, pool, 30*time.Second, 4, `SELECT count(*) FROM platform_inbox`)
	batches.RequireOne(t)

	l, err := postgres.Levels(ctx, pool, sku)
	if err != nil {
		t.Fatal(err)
	}
	if l.OnHand != 4 || l.Reserved != 3 {
		t.Fatalf("stock of %s: %d on hand, %d reserved; want 4 and 3 (the third order's)", sku, l.OnHand, l.Reserved)
	}
	var statuses []string
	for _, id := range []string{first, second, third} {
		var s string
		if err := pool.QueryRow(ctx, `SELECT status FROM reservations WHERE order_id = $1`, id).Scan(&s); err != nil {
			t.Fatal(err)
		}
		statuses = append(statuses, s)
	}
	if want := []string{postgres.Released, postgres.Rejected, postgres.Reserved}; !slices.Equal(statuses, want) {
		t.Fatalf("reservations of the three orders: %v, want %v", statuses, want)
	}
	rows, err := pool.Query(ctx, `SELECT key, split_part(jsonb_path_query_first(headers, '$[*] ? (@.k == "ce_type").v') #>> '{}', '.', 3)
	                                FROM platform_outbox ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var key, typ string
		if err := rows.Scan(&key, &typ); err != nil {
			t.Fatal(err)
		}
		got = append(got, map[string]string{first: "first", second: "second", third: "third"}[key]+" "+typ)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"first StockReserved", "second StockRejected", "first StockReleased", "third StockReserved"}; !slices.Equal(got, want) {
		t.Fatalf("events appended: %v, want %v", got, want)
	}
}
