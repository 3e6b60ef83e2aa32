// Command replaygen writes synthetic but realistic order histories to the event topics
// of a (private) stack, for `make bench-replay`: every order has five events on three
// topics, encoded with the real schemas in the Confluent wire format and carrying the
// real CloudEvents headers, so a replay reads them exactly as it reads production
// history. Nine orders in ten are confirmed (placed, reserved, authorized, confirmed,
// invoiced); one in ten is declined (placed, reserved, payment failed, cancelled,
// stock released).
//
// Usage: replaygen -orders 200000 (addresses from `make env` variables).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/avro/billing"
	"github.com/orderflow/orderflow/avro/contract"
	"github.com/orderflow/orderflow/avro/inventory"
	"github.com/orderflow/orderflow/avro/shop"
	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/kafka"
	"github.com/orderflow/orderflow/platform/serde"
)

func main() {
	orders := flag.Int("orders", 200000, "orders to write (five events each)")
	days := flag.Int("days", 30, "days of history the orders spread over")
	flag.Parse()
	if err := run(*orders, *days); err != nil {
		log.Fatal(err)
	}
}

// event is one event to write.
type event struct {
	topic, source string
	typ           events.Type
	payload       any
}

func run(orders, days int) error {
	ctx := context.Background()
	brokers, registry := os.Getenv("ORDERFLOW_KAFKA_BROKERS"), os.Getenv("ORDERFLOW_REGISTRY_URL")
	if brokers == "" || registry == "" {
		return fmt.Errorf("ORDERFLOW_KAFKA_BROKERS and ORDERFLOW_REGISTRY_URL must be set (eval \"$(make -s env)\")")
	}
	cl, err := kafka.NewClient(kafka.Config{Brokers: strings.Split(brokers, ","), ClientID: "replaygen"},
		kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(200_000))
	if err != nil {
		return err
	}
	defer cl.Close()
	var topics []kafka.Topic
	// Every topic the order view reads exists, as on a stack where every service started.
	for _, t := range []string{contract.TopicShopOrders, contract.TopicInventoryReservations, contract.TopicBillingPayments,
		contract.TopicLogisticsShipments, contract.TopicCRMEngagements} {
		topics = append(topics, kafka.EventTopic(t, contract.Partitions))
	}
	if err := kafka.EnsureTopics(ctx, cl, topics...); err != nil {
		return err
	}
	sd := serde.New(registry, 10*time.Second)

	start := time.Now().Add(-time.Duration(days) * 24 * time.Hour).UTC()
	step := time.Duration(days) * 24 * time.Hour / time.Duration(max(orders, 1))
	var failed atomic.Int64
	var firstErr atomic.Value
	began := time.Now()
	written := 0
	for i := range orders {
		at := start.Add(time.Duration(i) * step)
		for _, e := range history(i, at) {
			val, err := sd.Encode(e.topic, e.typ.Schema, e.payload)
			if err != nil {
				return fmt.Errorf("encode %s: %w", e.typ.Name, err)
			}
			key := orderID(i)
			md := events.New(ctx, e.source, e.topic, key, e.typ, e.payload, events.Cause{}).Metadata
			md.Time = at
			cl.Produce(ctx, &kgo.Record{Topic: e.topic, Key: []byte(key), Value: val, Headers: md.Headers()}, func(_ *kgo.Record, err error) {
				if err != nil && failed.Add(1) == 1 {
					firstErr.Store(err)
				}
			})
			written++
			at = at.Add(15 * time.Millisecond)
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d records failed, first: %v", n, firstErr.Load())
	}
	took := time.Since(began)
	fmt.Printf("wrote %d events of %d orders in %s (%.0f events/s)\n", written, orders, took.Round(time.Millisecond), float64(written)/took.Seconds())
	return nil
}

// orderID is a stable id per order number, so a second run writes the same orders again.
func orderID(i int) string {
	return uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "replaygen-%d", i)).String()
}

// history is the five events of order i, starting at at.
func history(i int, at time.Time) []event {
	id := orderID(i)
	customer := fmt.Sprintf("cust-%05d", i%50000)
	lines := []shop.OrderLine{{Sku: fmt.Sprintf("SKU-%03d", i%200), Name: "Lamp", Quantity: 1 + i%3, UnitPriceMinor: 1999}}
	if i%4 == 0 {
		lines = append(lines, shop.OrderLine{Sku: "SKU-BULB", Name: "Bulb", Quantity: 2, UnitPriceMinor: 399})
	}
	var total int64
	reserved := make([]inventory.ReservedLine, len(lines))
	released := make([]inventory.ReleasedLine, len(lines))
	for j, l := range lines {
		total += int64(l.Quantity) * l.UnitPriceMinor
		reserved[j] = inventory.ReservedLine{Sku: l.Sku, Quantity: l.Quantity}
		released[j] = inventory.ReleasedLine{Sku: l.Sku, Quantity: l.Quantity}
	}
	t := func(k int) time.Time { return at.Add(time.Duration(k) * 15 * time.Millisecond) }
	placed := shop.OrderPlaced{OrderID: id, CustomerID: customer, CustomerEmail: customer + "@example.com", CustomerName: "Customer " + customer,
		Lines: lines, Currency: "EUR", TotalMinor: total, PaymentToken: "tok_visa",
		ShippingAddress: shop.ShippingAddress{Name: "Customer " + customer, Line1: "Hauptstrasse 1", City: "Berlin", PostalCode: "10115", Country: "DE"},
		PlacedAt:        t(0)}
	out := []event{
		{contract.TopicShopOrders, "shop", contract.OrderPlaced, placed},
		{contract.TopicInventoryReservations, "inventory", contract.StockReserved, inventory.StockReserved{OrderID: id, Lines: reserved, ReservedAt: t(1)}},
	}
	if i%10 == 9 {
		return append(out,
			event{contract.TopicBillingPayments, "billing", contract.PaymentFailed, billing.PaymentFailed{OrderID: id, AmountMinor: total, Currency: "EUR",
				Reason: "payment_declined", FailedAt: t(2)}},
			event{contract.TopicShopOrders, "shop", contract.OrderCancelled, shop.OrderCancelled{OrderID: id, CustomerID: customer,
				Reason: "payment_declined", Detail: "card declined", CancelledAt: t(3)}},
			event{contract.TopicInventoryReservations, "inventory", contract.StockReleased, inventory.StockReleased{OrderID: id,
				Reason: "payment_failed", Lines: released, ReleasedAt: t(4)}})
	}
	return append(out,
		event{contract.TopicBillingPayments, "billing", contract.PaymentAuthorized, billing.PaymentAuthorized{OrderID: id, AmountMinor: total,
			Currency: "EUR", Provider: "local", AuthorizationID: "auth-" + id[:8], AuthorizedAt: t(2)}},
		event{contract.TopicShopOrders, "shop", contract.OrderConfirmed, shop.OrderConfirmed{OrderID: id, CustomerID: customer,
			Currency: "EUR", TotalMinor: total, ConfirmedAt: t(3)}},
		event{contract.TopicBillingPayments, "billing", contract.InvoiceIssued, billing.InvoiceIssued{OrderID: id,
			InvoiceNumber: fmt.Sprintf("INV-%d-%06d", t(4).Year(), i+1), AmountMinor: total, Currency: "EUR", IssuedAt: t(4)}})
}
