// Package events holds inventory's inbound Kafka handlers.
package events

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/avro/billing"
	"github.com/orderflow/orderflow/avro/contract"
	"github.com/orderflow/orderflow/avro/inventory"
	"github.com/orderflow/orderflow/avro/logistics"
	"github.com/orderflow/orderflow/avro/shop"
	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/services/inventory/internal/adapters/postgres"
	"github.com/orderflow/orderflow/services/inventory/internal/app"
	"github.com/orderflow/orderflow/services/inventory/internal/domain/stock"
)

// Consumer group names. Never rename one: a new name re-reads every topic from the start.
const (
	ReservationsGroup = "inventory.reservations"
	AvailabilityGroup = "inventory.availability"
)

// ReservationTopics are read by the reservations group.
var ReservationTopics = []string{contract.TopicShopOrders, contract.TopicBillingPayments, contract.TopicLogisticsShipments}

// AvailabilityTopics feed the availability read model.
var AvailabilityTopics = []string{contract.TopicInventoryReservations, contract.TopicInventoryStock}

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
		return a.Release(ctx, tx, m.Cause(), e.OrderID, "order_cancelled")
	})
	consumer.On(c, contract.ShipmentDispatched, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e logistics.ShipmentDispatched) error {
		return a.Ship(ctx, tx, e.OrderID)
	})
}

// RegisterAvailability projects stock movements into the availability read model.
func RegisterAvailability(c *consumer.Consumer) {
	consumer.On(c, contract.StockReceived, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e inventory.StockReceived) error {
		return postgres.AddAvailability(ctx, tx, e.Sku, e.Quantity)
	})
	consumer.On(c, contract.StockReserved, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e inventory.StockReserved) error {
		for _, l := range e.Lines {
			if err := postgres.AddAvailability(ctx, tx, l.Sku, -l.Quantity); err != nil {
				return err
			}
		}
		return nil
	})
	consumer.On(c, contract.StockReleased, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e inventory.StockReleased) error {
		for _, l := range e.Lines {
			if err := postgres.AddAvailability(ctx, tx, l.Sku, l.Quantity); err != nil {
				return err
			}
		}
		return nil
	})
}
