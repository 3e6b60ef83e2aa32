// Package events holds billing's inbound Kafka handlers.
package events

import (
	"cmp"
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/avro/contract"
	"github.com/orderflow/orderflow/avro/inventory"
	"github.com/orderflow/orderflow/avro/shop"
	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/services/billing/internal/app"
)

// PaymentsGroup is billing's consumer group. Never rename it: a new name re-reads every
// topic from the start.
const PaymentsGroup = "billing.payments"

// Topics are what billing reads.
var Topics = []string{contract.TopicShopOrders, contract.TopicInventoryReservations}

// Register routes the events billing acts on.
func Register(c *consumer.Consumer, a *app.App) {
	consumer.On(c, contract.OrderPlaced, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e shop.OrderPlaced) error {
		return a.Authorize(ctx, tx, m.Cause(), e)
	})
	consumer.On(c, contract.StockRejected, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e inventory.StockRejected) error {
		return a.Compensate(ctx, tx, m.Cause(), e.OrderID, contract.ReasonOutOfStock)
	})
	consumer.On(c, contract.OrderConfirmed, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e shop.OrderConfirmed) error {
		return a.Capture(ctx, tx, m.Cause(), e.OrderID)
	})
	consumer.On(c, contract.OrderCancelled, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e shop.OrderCancelled) error {
		return a.Compensate(ctx, tx, m.Cause(), e.OrderID, cmp.Or(e.Reason, "order_cancelled")) // the order's reason, for the refund and the credit note
	})
}
