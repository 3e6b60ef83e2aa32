// Package app holds inventory's use cases: reserving an order's stock when it is placed,
// releasing it when the order fails or is cancelled, taking it off the shelf when it
// ships, and receiving stock. Each appends its events to the outbox in the transaction
// that changes the stock.
package app

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/avro/contract"
	"github.com/orderflow/orderflow/avro/inventory"
	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/outbox"
	"github.com/orderflow/orderflow/platform/pg"
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
	found, levels, err := lockForReserve(ctx, tx, orderID, skus)
	if err != nil || found {
		return err
	}
	now := a.now()
	updated, lows, shortages := stock.Reserve(levels, lines)
	if len(shortages) > 0 {
		if err := putReservation(ctx, tx, &postgres.Reservation{OrderID: orderID, Status: postgres.Rejected}); err != nil {
			return err
		}
		ev := inventory.StockRejected{OrderID: orderID, Reason: contract.ReasonOutOfStock, RejectedAt: now}
		for _, s := range shortages {
			ev.Shortages = append(ev.Shortages, inventory.Shortage{Sku: s.SKU, Requested: s.Requested, Available: s.Available})
		}
		return a.outbox.Append(ctx, tx, events.New(ctx, Source, contract.TopicInventoryReservations, orderID, contract.StockRejected, ev, cause))
	}
	if err := saveReserved(ctx, tx, updated); err != nil {
		return err
	}
	if err := putReservation(ctx, tx, &postgres.Reservation{OrderID: orderID, Status: postgres.Reserved, Lines: lines}); err != nil {
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
	r, err := lockReservation(ctx, tx, orderID)
	if err != nil {
		return err
	}
	if r == nil {
		return putReservation(ctx, tx, &postgres.Reservation{OrderID: orderID, Status: postgres.Voided})
	}
	if r.Status != postgres.Reserved {
		return nil // rejected, released, voided or shipped: nothing is held
	}
	if err := unreserve(ctx, tx, r.Lines, false); err != nil {
		return err
	}
	r.Status = postgres.Released
	if err := putReservation(ctx, tx, r); err != nil {
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
	r, err := lockReservation(ctx, tx, orderID)
	if err != nil || r == nil || r.Status != postgres.Reserved {
		return err
	}
	if err := unreserve(ctx, tx, r.Lines, true); err != nil {
		return err
	}
	r.Status = postgres.Shipped
	return putReservation(ctx, tx, r)
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

// Receive adds a receipt to stock once per receipt id and appends StockReceived; the
// commit wakes the outbox relay.
func (a *App) Receive(ctx context.Context, r Receipt) (stock.Level, error) {
	var level stock.Level
	err := pg.Run(ctx, a.pool, nil, func(tx *pg.Tx) error {
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
	return level, err
}

// batch holds what one batch of the reservations group works on: its orders'
// reservations, locked and read when its transaction opens (PreloadReservations), and the
// stock rows its events touch, locked and read on first use. Every event of the batch
// gets the same values, so each sees what the ones before it reserved or released, and
// each changed one is written once, with the COMMIT: an order's reservation took three
// round trips (its lock and reads, the stock's update, the reservation's), and now one
// only when its stock rows are new to the batch, which under load they seldom are.
type batch struct {
	locked            map[string]bool                  // the orders locked and read, by order id
	reservations      map[string]*postgres.Reservation // theirs; none when an order has none yet
	levels            map[string]*stock.Level          // the stock rows locked and read, by SKU
	reservationWrites *pg.WriteBack[*postgres.Reservation]
	levelWrites       *pg.WriteBack[*stock.Level]
}

// PreloadReservations is the reservations group's consumer.Preload: it queues the locks
// of the batch's orders and the read of their reservations (its record keys; a key that
// is not a UUID as the services write it is left to its handler).
func (a *App) PreloadReservations(b *pgx.Batch, keys []string) any {
	bt := &batch{locked: map[string]bool{}, reservations: map[string]*postgres.Reservation{}, levels: map[string]*stock.Level{},
		reservationWrites: pg.NewWriteBack(postgres.QueuePutReservation), levelWrites: pg.NewWriteBack(postgres.QueueSaveLevel)}
	ids := consumer.UUIDKeys(keys)
	for _, id := range ids {
		bt.locked[id] = true
	}
	if len(ids) > 0 {
		postgres.QueueLockReservations(b, ids, func(r *postgres.Reservation) { bt.reservations[r.OrderID] = r })
	}
	return bt
}

// batchOf returns the batch tx applies and tx as a pg.Committer, or nil when tx applies
// none (or cannot write at commit).
func batchOf(tx pgx.Tx) (*batch, pg.Committer) {
	bt, _ := consumer.Preloaded(tx).(*batch)
	c, ok := tx.(pg.Committer)
	if bt == nil || !ok {
		return nil, nil
	}
	return bt, c
}

// lockReservation locks the order and returns its reservation, locked, or nil when it
// has none: the batch's when tx applies one that has the order.
func lockReservation(ctx context.Context, tx pgx.Tx, orderID string) (*postgres.Reservation, error) {
	bt, _ := batchOf(tx)
	if bt != nil && bt.locked[orderID] {
		return bt.reservations[orderID], nil
	}
	r, found, err := postgres.LockReservation(ctx, tx, orderID)
	if err != nil {
		return nil, err
	}
	var rp *postgres.Reservation
	if found {
		rp = &r
	}
	if bt != nil { // an event whose order id is not its record's key
		bt.locked[orderID], bt.reservations[orderID] = true, rp
	}
	return rp, nil
}

// lockForReserve locks the order, tells whether it has a reservation, and returns the
// stock of skus, locked (a SKU without stock is missing).
func lockForReserve(ctx context.Context, tx pgx.Tx, orderID string, skus []string) (found bool, levels map[string]stock.Level, err error) {
	bt, _ := batchOf(tx)
	if bt == nil {
		_, found, levels, err = postgres.LockForReserve(ctx, tx, orderID, skus)
		return found, levels, err
	}
	r, err := lockReservation(ctx, tx, orderID)
	if err != nil || r != nil {
		return r != nil, nil, err
	}
	if err := bt.lockLevels(ctx, tx, skus); err != nil {
		return false, nil, err
	}
	levels = make(map[string]stock.Level, len(skus))
	for _, sku := range skus {
		if l := bt.levels[sku]; l != nil {
			levels[sku] = *l
		}
	}
	return false, levels, nil
}

// lockLevels locks and reads the stock rows of skus the batch has not read yet.
func (bt *batch) lockLevels(ctx context.Context, tx pgx.Tx, skus []string) error {
	var missing []string
	for _, sku := range skus {
		if _, ok := bt.levels[sku]; !ok && !slices.Contains(missing, sku) {
			missing = append(missing, sku)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	levels, err := postgres.LockLevels(ctx, tx, missing)
	if err != nil {
		return err
	}
	for _, sku := range missing {
		if l, ok := levels[sku]; ok {
			bt.levels[sku] = &l
		} else {
			bt.levels[sku] = nil // no stock row: remembered, not read again
		}
	}
	return nil
}

// saveReserved writes the reserved counts of levels: with the COMMIT, when tx applies a
// batch; at once otherwise.
func saveReserved(ctx context.Context, tx pgx.Tx, levels []stock.Level) error {
	bt, c := batchOf(tx)
	if bt == nil {
		return postgres.SaveReserved(ctx, tx, levels)
	}
	for _, l := range levels {
		held := bt.levels[l.SKU] // read by lockForReserve
		if held == nil {
			continue // no stock row: nothing to write, as an UPDATE of it would change nothing
		}
		held.Reserved = l.Reserved
		bt.levelWrites.Changed(c, held)
	}
	return nil
}

// unreserve gives lines back to stock (ship also takes them off the shelf): with the
// COMMIT, when tx applies a batch; at once otherwise. A SKU without stock is skipped.
func unreserve(ctx context.Context, tx pgx.Tx, lines []stock.Line, ship bool) error {
	bt, c := batchOf(tx)
	if bt == nil {
		return postgres.Unreserve(ctx, tx, lines, ship)
	}
	skus := make([]string, len(lines))
	for i, l := range lines {
		skus[i] = l.SKU
	}
	if err := bt.lockLevels(ctx, tx, skus); err != nil {
		return err
	}
	for _, l := range lines {
		held := bt.levels[l.SKU]
		if held == nil {
			continue
		}
		held.Reserved -= l.Quantity
		if ship {
			held.OnHand -= l.Quantity
		}
		bt.levelWrites.Changed(c, held)
	}
	return nil
}

// putReservation inserts or updates r: with the COMMIT, as r is then, when tx applies a
// batch; at once otherwise.
func putReservation(ctx context.Context, tx pgx.Tx, r *postgres.Reservation) error {
	bt, c := batchOf(tx)
	if bt == nil {
		return postgres.PutReservation(ctx, tx, *r)
	}
	bt.locked[r.OrderID], bt.reservations[r.OrderID] = true, r // a new reservation is the batch's from now on
	bt.reservationWrites.Changed(c, r)
	return nil
}
