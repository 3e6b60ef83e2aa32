// Package events holds crm's inbound Kafka handlers.
package events

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/avro/billing"
	"github.com/orderflow/orderflow/avro/contract"
	"github.com/orderflow/orderflow/avro/inventory"
	"github.com/orderflow/orderflow/avro/logistics"
	"github.com/orderflow/orderflow/avro/shop"
	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/services/crm/internal/adapters/postgres"
	"github.com/orderflow/orderflow/services/crm/internal/app"
)

// EngagementsGroup is crm's consumer group. Never rename it: a new name re-reads every
// topic from the start.
const EngagementsGroup = "crm.engagements"

// Topics are what crm reads: every order-related topic.
var Topics = []string{contract.TopicShopOrders, contract.TopicInventoryReservations, contract.TopicBillingPayments, contract.TopicLogisticsShipments}

func money(minor int64, cur string) string {
	return fmt.Sprintf("%d.%02d %s", minor/100, minor%100, cur)
}

// Register routes every order event to the timeline and the e-mails.
func Register(c *consumer.Consumer, a *app.App) {
	rec := func(ctx context.Context, tx pgx.Tx, m consumer.Message, orderID string, at time.Time, detail string) error {
		return a.Record(ctx, tx, m.ID, m.Source, m.Type, orderID, at, detail)
	}
	consumer.On(c, contract.OrderPlaced, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e shop.OrderPlaced) error {
		if err := a.Placed(ctx, tx, postgres.Contact{OrderID: e.OrderID, CustomerID: e.CustomerID, Email: e.CustomerEmail, Name: e.CustomerName}); err != nil {
			return err
		}
		return rec(ctx, tx, m, e.OrderID, e.PlacedAt, money(e.TotalMinor, e.Currency))
	})
	consumer.On(c, contract.OrderConfirmed, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e shop.OrderConfirmed) error {
		if err := a.Confirmed(ctx, tx, e.OrderID, money(e.TotalMinor, e.Currency)); err != nil {
			return err
		}
		return rec(ctx, tx, m, e.OrderID, e.ConfirmedAt, "")
	})
	consumer.On(c, contract.OrderCancelled, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e shop.OrderCancelled) error {
		if err := a.Cancelled(ctx, tx, e.OrderID, e.Reason, e.Detail); err != nil {
			return err
		}
		return rec(ctx, tx, m, e.OrderID, e.CancelledAt, e.Reason)
	})
	consumer.On(c, contract.ShipmentDispatched, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e logistics.ShipmentDispatched) error {
		if err := a.Shipped(ctx, tx, m.Cause(), e.OrderID, e.Carrier, e.TrackingNumber, e.DispatchedAt); err != nil {
			return err
		}
		return rec(ctx, tx, m, e.OrderID, e.DispatchedAt, e.TrackingNumber)
	})
	consumer.On(c, contract.StockReserved, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e inventory.StockReserved) error {
		return rec(ctx, tx, m, e.OrderID, e.ReservedAt, "")
	})
	consumer.On(c, contract.StockRejected, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e inventory.StockRejected) error {
		return rec(ctx, tx, m, e.OrderID, e.RejectedAt, e.Reason)
	})
	consumer.On(c, contract.PaymentAuthorized, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e billing.PaymentAuthorized) error {
		return rec(ctx, tx, m, e.OrderID, e.AuthorizedAt, money(e.AmountMinor, e.Currency))
	})
	consumer.On(c, contract.PaymentFailed, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e billing.PaymentFailed) error {
		return rec(ctx, tx, m, e.OrderID, e.FailedAt, e.Reason)
	})
	consumer.On(c, contract.InvoiceIssued, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e billing.InvoiceIssued) error {
		return rec(ctx, tx, m, e.OrderID, e.IssuedAt, e.InvoiceNumber)
	})
	consumer.On(c, contract.ShipmentPrepared, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e logistics.ShipmentPrepared) error {
		return rec(ctx, tx, m, e.OrderID, e.PreparedAt, e.TrackingNumber)
	})
}
