package events

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/avro/billing"
	"github.com/orderflow/orderflow/avro/contract"
	"github.com/orderflow/orderflow/avro/crm"
	"github.com/orderflow/orderflow/avro/inventory"
	"github.com/orderflow/orderflow/avro/logistics"
	shopevents "github.com/orderflow/orderflow/avro/shop"
	platformevents "github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/projection"
	"github.com/orderflow/orderflow/services/shop/internal/adapters/postgres"
	"github.com/orderflow/orderflow/services/shop/internal/domain/order"
)

// OrderView is the read model behind GET /v1/orders: every order with its status and a
// timeline of what each service did, projected from every topic that speaks of orders.
func OrderView() *projection.Model {
	m := &projection.Model{
		Name:   "order-view",
		Tables: []projection.Table{{Name: "order_view", Key: "order_id"}, {Name: "order_timeline", Key: "event_id", AppendOnly: true}},
		Topics: []string{contract.TopicShopOrders, contract.TopicInventoryReservations, contract.TopicBillingPayments,
			contract.TopicLogisticsShipments, contract.TopicCRMEngagements},
		Apply: applyOrderView,
	}
	projection.On[shopevents.OrderPlaced](m, contract.OrderPlaced)
	projection.On[shopevents.OrderConfirmed](m, contract.OrderConfirmed)
	projection.On[shopevents.OrderCancelled](m, contract.OrderCancelled)
	projection.On[shopevents.OrderCancellationRequested](m, contract.OrderCancellationRequested)
	projection.On[inventory.StockReserved](m, contract.StockReserved)
	projection.On[inventory.StockRejected](m, contract.StockRejected)
	projection.On[inventory.StockReleased](m, contract.StockReleased)
	projection.On[billing.PaymentAuthorized](m, contract.PaymentAuthorized)
	projection.On[billing.PaymentFailed](m, contract.PaymentFailed)
	projection.On[billing.PaymentVoided](m, contract.PaymentVoided)
	projection.On[billing.PaymentCaptured](m, contract.PaymentCaptured)
	projection.On[billing.PaymentRefunded](m, contract.PaymentRefunded)
	projection.On[billing.InvoiceIssued](m, contract.InvoiceIssued)
	projection.On[billing.InvoiceVoided](m, contract.InvoiceVoided)
	projection.On[logistics.ShipmentPrepared](m, contract.ShipmentPrepared)
	projection.On[logistics.ShipmentDispatched](m, contract.ShipmentDispatched)
	projection.On[logistics.ShipmentCancelled](m, contract.ShipmentCancelled)
	projection.On[crm.CustomerNotified](m, contract.CustomerNotified)
	projection.On[crm.FollowUpScheduled](m, contract.FollowUpScheduled)
	return m
}

// applyOrderView folds a batch into one change per order and one timeline step per
// event, and writes them with one statement each.
func applyOrderView(ctx context.Context, tx pgx.Tx, t projection.Tables, batch []projection.Event) error {
	changes := map[string]*postgres.ViewChange{}
	var pending []string
	steps := make([]postgres.Step, 0, len(batch))
	status := func(id, st, reason string, at time.Time) *postgres.ViewChange {
		c, ok := changes[id]
		if !ok {
			c = &postgres.ViewChange{OrderID: id, Status: st, At: at}
			changes[id] = c
			pending = append(pending, id)
		}
		if rank(st) > rank(c.Status) {
			c.Status = st
		}
		if reason != "" && c.Reason == "" {
			c.Reason = reason
		}
		if at.After(c.At) {
			c.At = at
		}
		return c
	}
	for _, e := range batch {
		id, at, detail := describe(e)
		switch p := e.Payload.(type) {
		case shopevents.OrderPlaced:
			lines := make([]postgres.ViewLine, len(p.Lines))
			for i, l := range p.Lines {
				lines[i] = order.Line{SKU: l.Sku, Name: l.Name, Quantity: l.Quantity, UnitPriceMinor: l.UnitPriceMinor}
			}
			status(id, string(order.Pending), "", at).Placed = &postgres.View{CustomerID: p.CustomerID, Currency: p.Currency,
				TotalMinor: p.TotalMinor, Lines: lines, PlacedAt: p.PlacedAt}
		case shopevents.OrderConfirmed:
			status(id, string(order.Confirmed), "", at)
		case shopevents.OrderCancelled:
			status(id, string(order.Cancelled), p.Reason, at)
		case shopevents.OrderCancellationRequested:
			status(id, string(order.Pending), "", at).CancelRequestedAt = &p.RequestedAt
		case logistics.ShipmentDispatched:
			status(id, string(order.Shipped), "", at)
		}
		steps = append(steps, postgres.Step{EventID: e.ID, OrderID: id, TimelineStep: postgres.TimelineStep{
			At: at, Service: e.Source, Event: platformevents.ShortName(e.Type), Detail: detail}})
	}
	list := make([]postgres.ViewChange, len(pending))
	for i, id := range pending {
		list[i] = *changes[id]
	}
	return postgres.WriteOrderView(ctx, tx, t, list, steps)
}

var ranks = map[string]int{string(order.Pending): 1, string(order.Confirmed): 2, string(order.Shipped): 3, string(order.Cancelled): 4}

func rank(status string) int { return ranks[status] }

// lineCount is "1 line" or "n lines". (Until session 26 it was always "n lines": rows
// the view wrote before then say "1 lines" until the view is rebuilt.)
func lineCount(n int) string {
	if n == 1 {
		return "1 line"
	}
	return fmt.Sprintf("%d lines", n)
}

// describe returns the order, the time and the timeline detail of an event.
func describe(e projection.Event) (orderID string, at time.Time, detail string) {
	switch p := e.Payload.(type) {
	case shopevents.OrderPlaced:
		return p.OrderID, p.PlacedAt, fmt.Sprintf("%s, %s %s", lineCount(len(p.Lines)), money(p.TotalMinor), p.Currency)
	case shopevents.OrderConfirmed:
		return p.OrderID, p.ConfirmedAt, ""
	case shopevents.OrderCancelled:
		return p.OrderID, p.CancelledAt, p.Reason + ": " + p.Detail
	case shopevents.OrderCancellationRequested:
		return p.OrderID, p.RequestedAt, "asked logistics to stop the shipment"
	case logistics.ShipmentDispatched:
		return p.OrderID, p.DispatchedAt, p.Carrier + " " + p.TrackingNumber
	case inventory.StockReserved:
		return p.OrderID, p.ReservedAt, lineCount(len(p.Lines)) + " reserved"
	case inventory.StockRejected:
		return p.OrderID, p.RejectedAt, p.Reason
	case inventory.StockReleased:
		return p.OrderID, p.ReleasedAt, p.Reason
	case billing.PaymentAuthorized:
		return p.OrderID, p.AuthorizedAt, fmt.Sprintf("%s %s via %s", money(p.AmountMinor), p.Currency, p.Provider)
	case billing.PaymentFailed:
		return p.OrderID, p.FailedAt, p.Reason
	case billing.PaymentVoided:
		return p.OrderID, p.VoidedAt, p.Reason
	case billing.PaymentCaptured:
		return p.OrderID, p.CapturedAt, fmt.Sprintf("%s %s", money(p.AmountMinor), p.Currency)
	case billing.PaymentRefunded:
		return p.OrderID, p.RefundedAt, fmt.Sprintf("%s %s, %s", money(p.AmountMinor), p.Currency, p.Reason)
	case billing.InvoiceIssued:
		return p.OrderID, p.IssuedAt, p.InvoiceNumber
	case billing.InvoiceVoided:
		if p.CreditNoteNumber != nil {
			return p.OrderID, p.VoidedAt, p.InvoiceNumber + " " + p.Reason + ", credit note " + *p.CreditNoteNumber
		}
		return p.OrderID, p.VoidedAt, p.InvoiceNumber + " " + p.Reason
	case logistics.ShipmentPrepared:
		return p.OrderID, p.PreparedAt, p.Carrier + " " + p.TrackingNumber
	case logistics.ShipmentCancelled:
		return p.OrderID, p.CancelledAt, p.Reason
	case crm.CustomerNotified:
		return p.OrderID, p.NotifiedAt, p.Kind + " e-mail"
	case crm.FollowUpScheduled:
		return p.OrderID, p.ScheduledAt, "due " + p.DueAt.UTC().Format(time.RFC3339)
	}
	panic(fmt.Sprintf("order view: no description of %T", e.Payload)) // every type On registers is listed above
}
