package app

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/avro/contract"
	"github.com/orderflow/orderflow/avro/inventory"
	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/services/shop/internal/adapters/postgres"
	"github.com/orderflow/orderflow/services/shop/internal/domain/order"
)

// The shop decides an order's fate from what the other services report. Each reaction
// runs in the consumer's transaction (with the inbox row), locks the order, and appends
// the shop's own events to the outbox in the same transaction.

// OnStockReserved records the reservation; with payment also authorized, the order is
// confirmed.
func (a *App) OnStockReserved(ctx context.Context, tx pgx.Tx, m consumer.Message, orderID string) error {
	return a.react(ctx, tx, m, orderID, func(o *order.Order) (order.Outcome, string) {
		return o.StockReservedAt(a.now()), ""
	})
}

// OnPaymentAuthorized records the authorization; with stock also reserved, the order is
// confirmed.
func (a *App) OnPaymentAuthorized(ctx context.Context, tx pgx.Tx, m consumer.Message, orderID string) error {
	return a.react(ctx, tx, m, orderID, func(o *order.Order) (order.Outcome, string) {
		return o.PaymentAuthorizedAt(a.now()), ""
	})
}

// OnStockRejected cancels a pending order as out of stock.
func (a *App) OnStockRejected(ctx context.Context, tx pgx.Tx, m consumer.Message, ev inventory.StockRejected) error {
	return a.react(ctx, tx, m, ev.OrderID, func(o *order.Order) (order.Outcome, string) {
		var short []string
		for _, s := range ev.Shortages {
			short = append(short, fmt.Sprintf("%s: %d requested, %d available", s.Sku, s.Requested, s.Available))
		}
		return o.Reject(contract.ReasonOutOfStock, a.now()), "out of stock: " + strings.Join(short, "; ")
	})
}

// OnPaymentFailed cancels a pending order as payment declined.
func (a *App) OnPaymentFailed(ctx context.Context, tx pgx.Tx, m consumer.Message, orderID, reason string) error {
	return a.react(ctx, tx, m, orderID, func(o *order.Order) (order.Outcome, string) {
		return o.Reject(contract.ReasonPaymentDeclined, a.now()), "payment declined: " + reason
	})
}

// OnShipmentDispatched marks an order shipped (confirming it first if the dispatch
// overtook the reports of its stock and payment).
func (a *App) OnShipmentDispatched(ctx context.Context, tx pgx.Tx, m consumer.Message, orderID string) error {
	return a.react(ctx, tx, m, orderID, func(o *order.Order) (order.Outcome, string) {
		return o.ShippedAt(a.now()), ""
	})
}

// OnShipmentCancelled cancels an order whose cancellation the customer requested, now
// that logistics stopped its shipment; OrderCancelled then tells every service to undo
// its part.
func (a *App) OnShipmentCancelled(ctx context.Context, tx pgx.Tx, m consumer.Message, orderID string) error {
	return a.react(ctx, tx, m, orderID, func(o *order.Order) (order.Outcome, string) {
		return o.CancelAgreed(contract.ReasonCustomerRequest, a.now()), "cancelled at the customer's request"
	})
}

// batchOrders are the orders of one workflow batch, read and locked together when its
// transaction opens (PreloadOrders). Every event of the batch gets the same *order.Order,
// so each handler sees what the ones before it changed, and the changes are written with
// the COMMIT: a batch costs two round trips whatever its size, where loading and saving
// each order took two per event.
type batchOrders map[string]*order.Order

// PreloadOrders is the workflow group's consumer.Preload: it queues the read and row lock
// of the batch's orders (its record keys; a key that is not a UUID as the services write
// it is left to its handler, which finds no such order).
func (a *App) PreloadOrders(b *pgx.Batch, keys []string) any {
	ids := consumer.UUIDKeys(keys)
	orders := batchOrders{}
	if len(ids) > 0 {
		postgres.QueueLockOrders(b, ids, func(o *order.Order) { orders[o.ID] = o })
	}
	return orders
}

func (a *App) react(ctx context.Context, tx pgx.Tx, m consumer.Message, orderID string, fn func(*order.Order) (order.Outcome, string)) error {
	orders, _ := consumer.Preloaded(tx).(batchOrders)
	d, deferring := tx.(postgres.Deferrer)
	deferring = deferring && orders != nil // without the batch's orders a later handler would read a stale row
	o := orders[orderID]
	if o == nil {
		var err error
		o, err = postgres.GetForUpdate(ctx, tx, orderID)
		if errors.Is(err, order.ErrNotFound) {
			// Every order-stream event starts with the shop's OrderPlaced: an event about an
			// order the shop never wrote is a bug or a foreign producer.
			return consumer.Permanent(fmt.Errorf("%s for unknown order %s", m.Type, orderID))
		}
		if err != nil {
			return err
		}
		if orders != nil {
			orders[orderID] = o
		}
	}
	outcome, detail := fn(o)
	if outcome == order.Unchanged {
		return nil
	}
	if deferring {
		postgres.UpdateOrderAtCommit(d, o)
	} else if err := postgres.UpdateOrder(ctx, tx, o); err != nil {
		return err
	}
	cause := m.Cause()
	switch outcome {
	case order.NowConfirmed, order.NowConfirmedAndShipped: // billing captures and crm confirms on OrderConfirmed
		return a.outbox.Append(ctx, tx, orderConfirmed(ctx, o, cause))
	case order.NowCancelled:
		return a.outbox.Append(ctx, tx, orderCancelled(ctx, o, detail, cause))
	}
	return nil
}
