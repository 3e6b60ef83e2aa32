// Package app holds inventory's use cases: reserving an order's stock when it is placed,
// releasing it when the order fails or is cancelled, taking it off the shelf when it
// ships, and receiving stock. Each appends its events to the outbox in the transaction
// that changes the stock.
package app

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/avro/contract"
	"github.com/orderflow/orderflow/avro/inventory"
	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/outbox"
	"github.com/orderflow/orderflow/services/inventory/internal/adapters/postgres"
	"github.com/orderflow/orderflow/services/inventory/internal/domain/stock"
)

// Source is the ce_source of inventory's events.
const Source = "inventory"

// App is inventory's application layer.
type App struct {
	pool   *pgxpool.Pool
	outbox *outbox.Outbox
	now    func() time.Time
}

// New returns the application layer.
func New(pool *pgxpool.Pool, ob *outbox.Outbox) *App {
	return &App{pool: pool, outbox: ob, now: func() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }}
}

// Reserve holds every line of a placed order, or none of them. A replayed OrderPlaced,
// or one that arrives after the order was already released, changes nothing.
func (a *App) Reserve(ctx context.Context, tx pgx.Tx, cause events.Cause, orderID string, lines []stock.Line) error {
	skus := make([]string, len(lines))
	for i, l := range lines {
		skus[i] = l.SKU
	}
	_, found, levels, err := postgres.LockForReserve(ctx, tx, orderID, skus)
	if err != nil || found {
		return err
	}
	now := a.now()
	updated, lows, shortages := stock.Reserve(levels, lines)
	if len(shortages) > 0 {
		if err := postgres.PutReservation(ctx, tx, postgres.Reservation{OrderID: orderID, Status: postgres.Rejected}); err != nil {
			return err
		}
		ev := inventory.StockRejected{OrderID: orderID, Reason: contract.ReasonOutOfStock, RejectedAt: now}
		for _, s := range shortages {
			ev.Shortages = append(ev.Shortages, inventory.Shortage{Sku: s.SKU, Requested: s.Requested, Available: s.Available})
		}
		return a.outbox.Append(ctx, tx, events.New(ctx, Source, contract.TopicInventoryReservations, orderID, contract.StockRejected, ev, cause))
	}
	if err := postgres.SaveReserved(ctx, tx, updated); err != nil {
		return err
	}
	if err := postgres.PutReservation(ctx, tx, postgres.Reservation{OrderID: orderID, Status: postgres.Reserved, Lines: lines}); err != nil {
		return err
	}
	reserved := inventory.StockReserved{OrderID: orderID, ReservedAt: now}
	for _, l := range lines {
		reserved.Lines = append(reserved.Lines, inventory.ReservedLine{Sku: l.SKU, Quantity: l.Quantity})
	}
	evs := []events.Event{events.New(ctx, Source, contract.TopicInventoryReservations, orderID, contract.StockReserved, reserved, cause)}
	for _, low := range lows {
		evs = append(evs, events.New(ctx, Source, contract.TopicInventoryStock, low.SKU, contract.StockLow, inventory.StockLow{
			Sku: low.SKU, Available: low.Available, Threshold: low.Threshold, OrderID: orderID, DetectedAt: now,
		}, cause))
	}
	return a.outbox.Append(ctx, tx, evs...)
}

// Release gives an order's reservation back to stock. When the order is not known yet,
// it leaves a marker so that its OrderPlaced, arriving later, reserves nothing.
func (a *App) Release(ctx context.Context, tx pgx.Tx, cause events.Cause, orderID, reason string) error {
	r, found, err := postgres.LockReservation(ctx, tx, orderID)
	if err != nil {
		return err
	}
	if !found {
		return postgres.PutReservation(ctx, tx, postgres.Reservation{OrderID: orderID, Status: postgres.Voided})
	}
	if r.Status != postgres.Reserved {
		return nil // rejected, released, voided or shipped: nothing is held
	}
	if err := postgres.Unreserve(ctx, tx, r.Lines, false); err != nil {
		return err
	}
	r.Status = postgres.Released
	if err := postgres.PutReservation(ctx, tx, r); err != nil {
		return err
	}
	ev := inventory.StockReleased{OrderID: orderID, Reason: reason, ReleasedAt: a.now()}
	for _, l := range r.Lines {
		ev.Lines = append(ev.Lines, inventory.ReleasedLine{Sku: l.SKU, Quantity: l.Quantity})
	}
	return a.outbox.Append(ctx, tx, events.New(ctx, Source, contract.TopicInventoryReservations, orderID, contract.StockReleased, ev, cause))
}

// Ship takes a dispatched order's reserved units off the shelf.
func (a *App) Ship(ctx context.Context, tx pgx.Tx, orderID string) error {
	r, found, err := postgres.LockReservation(ctx, tx, orderID)
	if err != nil || !found || r.Status != postgres.Reserved {
		return err
	}
	if err := postgres.Unreserve(ctx, tx, r.Lines, true); err != nil {
		return err
	}
	r.Status = postgres.Shipped
	return postgres.PutReservation(ctx, tx, r)
}

// Receipt is goods arriving for a SKU.
type Receipt struct {
	ID           string
	SKU          string
	Quantity     int
	LowThreshold *int
}

// ErrDuplicateReceipt reports a receipt id already recorded; nothing changed.
var ErrDuplicateReceipt = postgres.ErrReceiptReplayed

// Receive adds a receipt to stock once per receipt id and appends StockReceived.
func (a *App) Receive(ctx context.Context, r Receipt) (stock.Level, error) {
	var level stock.Level
	err := pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
		var err error
		level, err = postgres.Receive(ctx, tx, r.ID, r.SKU, r.Quantity, r.LowThreshold)
		if err != nil {
			return err
		}
		return a.outbox.Append(ctx, tx, events.New(ctx, Source, contract.TopicInventoryStock, r.SKU, contract.StockReceived,
			inventory.StockReceived{Sku: r.SKU, Quantity: r.Quantity, OnHand: level.OnHand, Available: level.Available(),
				ReceiptID: r.ID, ReceivedAt: a.now()}, events.Cause{CorrelationID: r.ID}))
	})
	if errors.Is(err, postgres.ErrReceiptReplayed) {
		return level, ErrDuplicateReceipt
	}
	if err == nil {
		a.outbox.Committed(ctx)
	}
	return level, err
}
