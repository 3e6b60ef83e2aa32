// Package events holds crm's inbound Kafka handlers.
package events

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/avro/billing"
	"github.com/orderflow/orderflow/avro/contract"
	"github.com/orderflow/orderflow/avro/inventory"
	"github.com/orderflow/orderflow/avro/logistics"
	"github.com/orderflow/orderflow/avro/shop"
	"github.com/orderflow/orderflow/platform/consumer"
	platformevents "github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/projection"
	"github.com/orderflow/orderflow/services/crm/internal/adapters/postgres"
	"github.com/orderflow/orderflow/services/crm/internal/app"
)

// EngagementsGroup is crm's consumer group. Never rename it: a new name re-reads every
// topic from the start.
const EngagementsGroup = "crm.engagements"

// Topics are what the engagements group reads.
var Topics = []string{contract.TopicShopOrders, contract.TopicLogisticsShipments}

func money(minor int64, cur string) string {
	return fmt.Sprintf("%d.%02d %s", minor/100, minor%100, cur)
}

// Register routes the events that decide which e-mails an order gets.
func Register(c *consumer.Consumer, a *app.App) {
	consumer.On(c, contract.OrderPlaced, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e shop.OrderPlaced) error {
		return a.Placed(ctx, tx, postgres.Contact{OrderID: e.OrderID, CustomerID: e.CustomerID, Email: e.CustomerEmail, Name: e.CustomerName})
	})
	consumer.On(c, contract.OrderConfirmed, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e shop.OrderConfirmed) error {
		return a.Confirmed(ctx, tx, e.OrderID, money(e.TotalMinor, e.Currency))
	})
	consumer.On(c, contract.OrderCancelled, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e shop.OrderCancelled) error {
		return a.Cancelled(ctx, tx, e.OrderID, e.Reason, e.Detail)
	})
	consumer.On(c, contract.OrderCancellationRequested, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e shop.OrderCancellationRequested) error {
		return a.CancellationRequested(ctx, tx, e.OrderID, e.RequestedAt)
	})
	consumer.On(c, contract.ShipmentDispatched, func(ctx context.Context, tx pgx.Tx, m consumer.Message, e logistics.ShipmentDispatched) error {
		return a.Shipped(ctx, tx, m.Cause(), e.OrderID, e.Carrier, e.TrackingNumber, e.DispatchedAt)
	})
}

// CustomerTimeline is the read model behind GET /v1/customers/{id}/timeline: every event
// about a customer's orders, one row per event.
func CustomerTimeline() *projection.Model {
	m := &projection.Model{
		Name:   "customer-timeline",
		Tables: []projection.Table{{Name: "timeline", Key: "event_id", AppendOnly: true}},
		Topics: []string{contract.TopicShopOrders, contract.TopicInventoryReservations, contract.TopicBillingPayments, contract.TopicLogisticsShipments},
		Apply:  applyTimeline,
	}
	projection.On[shop.OrderPlaced](m, contract.OrderPlaced)
	projection.On[shop.OrderConfirmed](m, contract.OrderConfirmed)
	projection.On[shop.OrderCancelled](m, contract.OrderCancelled)
	projection.On[shop.OrderCancellationRequested](m, contract.OrderCancellationRequested)
	projection.On[logistics.ShipmentDispatched](m, contract.ShipmentDispatched)
	projection.On[logistics.ShipmentPrepared](m, contract.ShipmentPrepared)
	projection.On[inventory.StockReserved](m, contract.StockReserved)
	projection.On[inventory.StockRejected](m, contract.StockRejected)
	projection.On[billing.PaymentAuthorized](m, contract.PaymentAuthorized)
	projection.On[billing.PaymentFailed](m, contract.PaymentFailed)
	projection.On[billing.PaymentRefunded](m, contract.PaymentRefunded)
	projection.On[billing.InvoiceIssued](m, contract.InvoiceIssued)
	return m
}

func applyTimeline(ctx context.Context, tx pgx.Tx, t projection.Tables, batch []projection.Event) error {
	steps := make([]postgres.Step, 0, len(batch))
	for _, e := range batch {
		s := postgres.Step{EventID: e.ID, Service: e.Source, Event: platformevents.ShortName(e.Type)}
		switch p := e.Payload.(type) {
		case shop.OrderPlaced:
			s.OrderID, s.At, s.Detail = p.OrderID, p.PlacedAt, money(p.TotalMinor, p.Currency)
		case shop.OrderConfirmed:
			s.OrderID, s.At = p.OrderID, p.ConfirmedAt
		case shop.OrderCancelled:
			s.OrderID, s.At, s.Detail = p.OrderID, p.CancelledAt, p.Reason
		case shop.OrderCancellationRequested:
			s.OrderID, s.At = p.OrderID, p.RequestedAt
		case logistics.ShipmentDispatched:
			s.OrderID, s.At, s.Detail = p.OrderID, p.DispatchedAt, p.TrackingNumber
		case logistics.ShipmentPrepared:
			s.OrderID, s.At, s.Detail = p.OrderID, p.PreparedAt, p.TrackingNumber
		case inventory.StockReserved:
			s.OrderID, s.At = p.OrderID, p.ReservedAt
		case inventory.StockRejected:
			s.OrderID, s.At, s.Detail = p.OrderID, p.RejectedAt, p.Reason
		case billing.PaymentAuthorized:
			s.OrderID, s.At, s.Detail = p.OrderID, p.AuthorizedAt, money(p.AmountMinor, p.Currency)
		case billing.PaymentFailed:
			s.OrderID, s.At, s.Detail = p.OrderID, p.FailedAt, p.Reason
		case billing.PaymentRefunded:
			s.OrderID, s.At, s.Detail = p.OrderID, p.RefundedAt, money(p.AmountMinor, p.Currency)
		case billing.InvoiceIssued:
			s.OrderID, s.At, s.Detail = p.OrderID, p.IssuedAt, p.InvoiceNumber
		default:
			return fmt.Errorf("customer timeline: no step for %T", e.Payload)
		}
		steps = append(steps, s)
	}
	return postgres.AddSteps(ctx, tx, t, steps)
}
