// Package app holds the shop's use cases: commands change the write model and append
// the events announcing the change to the outbox in the same transaction; queries read
// the order view.
package app

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/avro/contract"
	shopevents "github.com/orderflow/orderflow/avro/shop"
	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/outbox"
	"github.com/orderflow/orderflow/platform/pg"
	"github.com/orderflow/orderflow/services/shop/internal/domain/order"
)

// Source is the ce_source of the shop's events.
const Source = "shop"

// App is the shop's application layer.
type App struct {
	pool   *pgxpool.Pool
	outbox *outbox.Outbox
	now    func() time.Time
}

// New returns the application layer over the shop's database and outbox.
func New(pool *pgxpool.Pool, ob *outbox.Outbox) *App {
	return &App{pool: pool, outbox: ob, now: func() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }}
}

// tx runs fn in a transaction; its commit wakes the outbox relay for what fn appended.
func (a *App) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return a.txWith(ctx, nil, func(tx *pg.Tx) error { return fn(tx) })
}

// txWith runs fn in a transaction that sends first with BEGIN and the outbox rows with
// COMMIT; the commit wakes the relay.
func (a *App) txWith(ctx context.Context, first *pgx.Batch, fn func(*pg.Tx) error) error {
	return pg.Run(ctx, a.pool, first, fn)
}

func orderPlaced(ctx context.Context, o *order.Order) events.Event {
	lines := make([]shopevents.OrderLine, len(o.Lines))
	for i, l := range o.Lines {
		lines[i] = shopevents.OrderLine{Sku: l.SKU, Name: l.Name, Quantity: l.Quantity, UnitPriceMinor: l.UnitPriceMinor}
	}
	return events.New(ctx, Source, contract.TopicShopOrders, o.ID, contract.OrderPlaced, shopevents.OrderPlaced{
		OrderID: o.ID, CustomerID: o.Customer.ID, CustomerEmail: o.Customer.Email, CustomerName: o.Customer.Name,
		Lines: lines, Currency: o.Currency, TotalMinor: o.TotalMinor, PaymentToken: o.PaymentToken,
		ShippingAddress: shopevents.ShippingAddress{Name: o.Address.Name, Line1: o.Address.Line1, Line2: o.Address.Line2,
			City: o.Address.City, PostalCode: o.Address.PostalCode, Country: o.Address.Country},
		PlacedAt: o.PlacedAt,
	}, events.Cause{CorrelationID: o.ID})
}

func orderConfirmed(ctx context.Context, o *order.Order, cause events.Cause) events.Event {
	return events.New(ctx, Source, contract.TopicShopOrders, o.ID, contract.OrderConfirmed, shopevents.OrderConfirmed{
		OrderID: o.ID, CustomerID: o.Customer.ID, Currency: o.Currency, TotalMinor: o.TotalMinor, ConfirmedAt: o.UpdatedAt,
	}, cause)
}

func orderCancellationRequested(ctx context.Context, o *order.Order) events.Event {
	return events.New(ctx, Source, contract.TopicShopOrders, o.ID, contract.OrderCancellationRequested, shopevents.OrderCancellationRequested{
		OrderID: o.ID, CustomerID: o.Customer.ID, RequestedAt: *o.CancelRequestedAt,
	}, events.Cause{CorrelationID: o.ID})
}

func orderCancelled(ctx context.Context, o *order.Order, detail string, cause events.Cause) events.Event {
	return events.New(ctx, Source, contract.TopicShopOrders, o.ID, contract.OrderCancelled, shopevents.OrderCancelled{
		OrderID: o.ID, CustomerID: o.Customer.ID, Reason: o.CancelReason, Detail: detail, CancelledAt: o.UpdatedAt,
	}, cause)
}
