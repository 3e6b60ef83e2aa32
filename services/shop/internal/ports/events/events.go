// Package events holds the shop's inbound Kafka handlers: the workflow group that
// decides each order's fate, and the order-view read model that projects every order
// event.
package events

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/avro/billing"
	"github.com/orderflow/orderflow/avro/contract"
	"github.com/orderflow/orderflow/avro/inventory"
	"github.com/orderflow/orderflow/avro/logistics"
	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/services/shop/internal/app"
)

// WorkflowGroup is the consumer group that moves orders through their life. Never
// rename it: a new name re-reads every topic from the start.
const WorkflowGroup = "shop.workflow"

// WorkflowTopics are the topics the workflow group reads.
var WorkflowTopics = []string{contract.TopicInventoryReservations, contract.TopicBillingPayments, contract.TopicLogisticsShipments}

// RegisterWorkflow routes the events that move an order through its life.
func RegisterWorkflow(c *consumer.Consumer, a *app.App) {
	consumer.On(c, contract.StockReserved, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e inventory.StockReserved) error {
		return a.OnStockReserved(ctx, tx, m, e.OrderID)
	})
	consumer.On(c, contract.StockRejected, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e inventory.StockRejected) error {
		return a.OnStockRejected(ctx, tx, m, e)
	})
	consumer.On(c, contract.PaymentAuthorized, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e billing.PaymentAuthorized) error {
		return a.OnPaymentAuthorized(ctx, tx, m, e.OrderID)
	})
	consumer.On(c, contract.PaymentFailed, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e billing.PaymentFailed) error {
		return a.OnPaymentFailed(ctx, tx, m, e.OrderID, e.Reason)
	})
	consumer.On(c, contract.ShipmentDispatched, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e logistics.ShipmentDispatched) error {
		return a.OnShipmentDispatched(ctx, tx, m, e.OrderID)
	})
	consumer.On(c, contract.ShipmentCancelled, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e logistics.ShipmentCancelled) error {
		return a.OnShipmentCancelled(ctx, tx, m, e.OrderID)
	})
}

func money(minor int64) string {
	sign := ""
	if minor < 0 {
		sign, minor = "-", -minor
	}
	return fmt.Sprintf("%s%d.%02d", sign, minor/100, minor%100)
}
