// Package events holds inventory's inbound Kafka handlers.
package events

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/avro/billing"
	"github.com/orderflow/orderflow/avro/contract"
	"github.com/orderflow/orderflow/avro/inventory"
	"github.com/orderflow/orderflow/avro/logistics"
	"github.com/orderflow/orderflow/avro/shop"
	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/platform/projection"
	"github.com/orderflow/orderflow/services/inventory/internal/adapters/postgres"
	"github.com/orderflow/orderflow/services/inventory/internal/app"
	"github.com/orderflow/orderflow/services/inventory/internal/domain/stock"
)

// ReservationsGroup is the consumer group that reserves and releases stock. Never
// rename it: a new name re-reads every topic from the start.
const ReservationsGroup = "inventory.reservations"

// ReservationTopics are read by the reservations group.
var ReservationTopics = []string{contract.TopicShopOrders, contract.TopicBillingPayments, contract.TopicLogisticsShipments}

// RegisterReservations routes the events that reserve, release and ship stock.
func RegisterReservations(c *consumer.Consumer, a *app.App) {
	consumer.On(c, contract.OrderPlaced, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e shop.OrderPlaced) error {
		lines := make([]stock.Line, len(e.Lines))
		for i, l := range e.Lines {
			lines[i] = stock.Line{SKU: l.Sku, Quantity: l.Quantity}
		}
		return a.Reserve(ctx, tx, m.Cause(), e.OrderID, lines)
	})
	consumer.On(c, contract.PaymentFailed, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e billing.PaymentFailed) error {
		return a.Release(ctx, tx, m.Cause(), e.OrderID, "payment_failed")
	})
	consumer.On(c, contract.OrderCancelled, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e shop.OrderCancelled) error {
		return a.Release(ctx, tx, m.Cause(), e.OrderID, cmp.Or(e.Reason, "order_cancelled"))
	})
	consumer.On(c, contract.ShipmentDispatched, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e logistics.ShipmentDispatched) error {
		return a.Ship(ctx, tx, e.OrderID)
	})
}

// Availability is the read model behind GET /v1/stock/{sku}/availability: units
// available per SKU, summed from StockReceived, StockReserved and StockReleased.
func Availability() *projection.Model {
	m := &projection.Model{
		Name:   "availability",
		Tables: []projection.Table{{Name: "availability", Key: "sku"}, {Name: "availability_events", Key: "event_id"}},
		Topics: []string{contract.TopicInventoryReservations, contract.TopicInventoryStock},
		Apply:  applyAvailability,
	}
	projection.On[inventory.StockReceived](m, contract.StockReceived)
	projection.On[inventory.StockReserved](m, contract.StockReserved)
	projection.On[inventory.StockReleased](m, contract.StockReleased)
	return m
}

// applyAvailability sums the batch's deltas per SKU, counting each event id once.
func applyAvailability(ctx context.Context, tx pgx.Tx, t projection.Tables, batch []projection.Event) error {
	fresh, err := projection.FirstSeen(ctx, tx, t.Of("availability_events"), batch)
	if err != nil {
		return err
	}
	deltas := map[string]postgres.AvailabilityDelta{}
	add := func(sku string, n int, at time.Time) {
		d := deltas[sku]
		d.SKU, d.Delta = sku, d.Delta+n
		if at.After(d.At) {
			d.At = at
		}
		deltas[sku] = d
	}
	for _, e := range fresh {
		switch p := e.Payload.(type) {
		case inventory.StockReceived:
			add(p.Sku, p.Quantity, e.Time)
		case inventory.StockReserved:
			for _, l := range p.Lines {
				add(l.Sku, -l.Quantity, e.Time)
			}
		case inventory.StockReleased:
			for _, l := range p.Lines {
				add(l.Sku, l.Quantity, e.Time)
			}
		}
	}
	return postgres.AddAvailability(ctx, tx, t.Of("availability"), slices.Collect(maps.Values(deltas)))
}
