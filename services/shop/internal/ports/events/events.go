// Package events holds the shop's inbound Kafka handlers: the workflow group that
// decides each order's fate, and the order-view group that projects every order event
// into the read model.
package events

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/avro/billing"
	"github.com/orderflow/orderflow/avro/contract"
	"github.com/orderflow/orderflow/avro/crm"
	"github.com/orderflow/orderflow/avro/inventory"
	"github.com/orderflow/orderflow/avro/logistics"
	shopevents "github.com/orderflow/orderflow/avro/shop"
	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/services/shop/internal/adapters/postgres"
	"github.com/orderflow/orderflow/services/shop/internal/app"
	"github.com/orderflow/orderflow/services/shop/internal/domain/order"
)

// Consumer group names. Never rename one: a new name re-reads every topic from the start.
const (
	WorkflowGroup  = "shop.workflow"
	OrderViewGroup = "shop.order-view"
)

// WorkflowTopics are the topics the workflow group reads.
var WorkflowTopics = []string{contract.TopicInventoryReservations, contract.TopicBillingPayments, contract.TopicLogisticsShipments}

// OrderViewTopics are the topics the order view is projected from.
var OrderViewTopics = []string{contract.TopicShopOrders, contract.TopicInventoryReservations, contract.TopicBillingPayments,
	contract.TopicLogisticsShipments, contract.TopicCRMEngagements}

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
}

// step is a timeline entry for an event.
func step(m consumer.Message, at time.Time, detail string) postgres.TimelineStep {
	name := m.Type
	if parts := strings.Split(m.Type, "."); len(parts) >= 2 {
		name = parts[len(parts)-2] // orderflow.billing.PaymentAuthorized.v1 -> PaymentAuthorized
	}
	return postgres.TimelineStep{At: at, Service: m.Source, Event: name, Detail: detail}
}

func record(ctx context.Context, tx pgx.Tx, m consumer.Message, orderID string, at time.Time, detail string) error {
	return postgres.AddStep(ctx, tx, m.ID, orderID, step(m, at, detail))
}

// RegisterOrderView routes every order event into the order view and its timeline.
func RegisterOrderView(c *consumer.Consumer) {
	consumer.On(c, contract.OrderPlaced, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e shopevents.OrderPlaced) error {
		lines := make([]postgres.ViewLine, len(e.Lines))
		for i, l := range e.Lines {
			lines[i] = order.Line{SKU: l.Sku, Name: l.Name, Quantity: l.Quantity, UnitPriceMinor: l.UnitPriceMinor}
		}
		if err := postgres.InsertView(ctx, tx, postgres.View{OrderID: e.OrderID, CustomerID: e.CustomerID, Status: string(order.Pending),
			Currency: e.Currency, TotalMinor: e.TotalMinor, Lines: lines, PlacedAt: e.PlacedAt}); err != nil {
			return err
		}
		return record(ctx, tx, m, e.OrderID, e.PlacedAt, fmt.Sprintf("%d lines, %s %s", len(e.Lines), money(e.TotalMinor), e.Currency))
	})
	consumer.On(c, contract.OrderConfirmed, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e shopevents.OrderConfirmed) error {
		if err := postgres.SetViewStatus(ctx, tx, e.OrderID, string(order.Confirmed), "", e.ConfirmedAt); err != nil {
			return err
		}
		return record(ctx, tx, m, e.OrderID, e.ConfirmedAt, "")
	})
	consumer.On(c, contract.OrderCancelled, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e shopevents.OrderCancelled) error {
		if err := postgres.SetViewStatus(ctx, tx, e.OrderID, string(order.Cancelled), e.Reason, e.CancelledAt); err != nil {
			return err
		}
		return record(ctx, tx, m, e.OrderID, e.CancelledAt, e.Reason+": "+e.Detail)
	})
	consumer.On(c, contract.ShipmentDispatched, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e logistics.ShipmentDispatched) error {
		if err := postgres.SetViewStatus(ctx, tx, e.OrderID, string(order.Shipped), "", e.DispatchedAt); err != nil {
			return err
		}
		return record(ctx, tx, m, e.OrderID, e.DispatchedAt, e.Carrier+" "+e.TrackingNumber)
	})
	consumer.On(c, contract.StockReserved, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e inventory.StockReserved) error {
		return record(ctx, tx, m, e.OrderID, e.ReservedAt, fmt.Sprintf("%d lines reserved", len(e.Lines)))
	})
	consumer.On(c, contract.StockRejected, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e inventory.StockRejected) error {
		return record(ctx, tx, m, e.OrderID, e.RejectedAt, e.Reason)
	})
	consumer.On(c, contract.StockReleased, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e inventory.StockReleased) error {
		return record(ctx, tx, m, e.OrderID, e.ReleasedAt, e.Reason)
	})
	consumer.On(c, contract.PaymentAuthorized, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e billing.PaymentAuthorized) error {
		return record(ctx, tx, m, e.OrderID, e.AuthorizedAt, fmt.Sprintf("%s %s via %s", money(e.AmountMinor), e.Currency, e.Provider))
	})
	consumer.On(c, contract.PaymentFailed, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e billing.PaymentFailed) error {
		return record(ctx, tx, m, e.OrderID, e.FailedAt, e.Reason)
	})
	consumer.On(c, contract.PaymentVoided, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e billing.PaymentVoided) error {
		return record(ctx, tx, m, e.OrderID, e.VoidedAt, e.Reason)
	})
	consumer.On(c, contract.InvoiceIssued, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e billing.InvoiceIssued) error {
		return record(ctx, tx, m, e.OrderID, e.IssuedAt, e.InvoiceNumber)
	})
	consumer.On(c, contract.InvoiceVoided, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e billing.InvoiceVoided) error {
		return record(ctx, tx, m, e.OrderID, e.VoidedAt, e.InvoiceNumber+" "+e.Reason)
	})
	consumer.On(c, contract.ShipmentPrepared, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e logistics.ShipmentPrepared) error {
		return record(ctx, tx, m, e.OrderID, e.PreparedAt, e.Carrier+" "+e.TrackingNumber)
	})
	consumer.On(c, contract.ShipmentCancelled, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e logistics.ShipmentCancelled) error {
		return record(ctx, tx, m, e.OrderID, e.CancelledAt, e.Reason)
	})
	consumer.On(c, contract.CustomerNotified, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e crm.CustomerNotified) error {
		return record(ctx, tx, m, e.OrderID, e.NotifiedAt, e.Kind+" e-mail")
	})
	consumer.On(c, contract.FollowUpScheduled, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e crm.FollowUpScheduled) error {
		return record(ctx, tx, m, e.OrderID, e.ScheduledAt, "due "+e.DueAt.UTC().Format(time.RFC3339))
	})
}

func money(minor int64) string {
	sign := ""
	if minor < 0 {
		sign, minor = "-", -minor
	}
	return fmt.Sprintf("%s%d.%02d", sign, minor/100, minor%100)
}
