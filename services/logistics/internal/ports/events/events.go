// Package events holds logistics' inbound Kafka handlers.
package events

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/avro/billing"
	"github.com/orderflow/orderflow/avro/contract"
	"github.com/orderflow/orderflow/avro/inventory"
	"github.com/orderflow/orderflow/avro/shop"
	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/services/logistics/internal/adapters/postgres"
	"github.com/orderflow/orderflow/services/logistics/internal/app"
)

// ShipmentsGroup is logistics' consumer group. Never rename it: a new name re-reads
// every topic from the start.
const ShipmentsGroup = "logistics.shipments"

// Topics are what logistics reads.
var Topics = []string{contract.TopicShopOrders, contract.TopicInventoryReservations, contract.TopicBillingPayments}

// Register routes the events logistics joins.
func Register(c *consumer.Consumer, a *app.App) {
	consumer.On(c, contract.OrderPlaced, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e shop.OrderPlaced) error {
		addr := e.ShippingAddress
		lines := []string{addr.Line1}
		if addr.Line2 != nil && *addr.Line2 != "" {
			lines = append(lines, *addr.Line2)
		}
		lines = append(lines, addr.PostalCode+" "+addr.City, addr.Country)
		return a.Learn(ctx, tx, m.Cause(), e.OrderID, app.Placed(postgres.Recipient{CustomerID: e.CustomerID, Name: addr.Name, Lines: lines}))
	})
	consumer.On(c, contract.StockReserved, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e inventory.StockReserved) error {
		return a.Learn(ctx, tx, m.Cause(), e.OrderID, app.StockReserved)
	})
	consumer.On(c, contract.PaymentAuthorized, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e billing.PaymentAuthorized) error {
		return a.Learn(ctx, tx, m.Cause(), e.OrderID, app.PaymentAuthorized)
	})
	consumer.On(c, contract.OrderCancelled, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e shop.OrderCancelled) error {
		return a.Cancel(ctx, tx, m.Cause(), e.OrderID, e.Reason)
	})
	consumer.On(c, contract.OrderCancellationRequested, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e shop.OrderCancellationRequested) error {
		return a.DecideCancellation(ctx, tx, m.Cause(), e.OrderID)
	})
}
