// Package app holds logistics' use cases: joining an order's stock reservation and
// payment authorization in whatever order they arrive, preparing the shipment with its
// label once both are in, dispatching it, cancelling it before dispatch, and deciding a
// customer's cancellation request: logistics holds the parcel, so it alone can tell
// whether an order can still be cancelled.
package app

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/avro/contract"
	"github.com/orderflow/orderflow/avro/logistics"
	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/outbox"
	"github.com/orderflow/orderflow/platform/pg"
	"github.com/orderflow/orderflow/services/logistics/internal/adapters/label"
	"github.com/orderflow/orderflow/services/logistics/internal/adapters/postgres"
)

// Source is the ce_source of logistics' events.
const Source = "logistics"

// Carrier ships every parcel of the local stack.
const Carrier = "orderflow-post"

// App is logistics' application layer.
type App struct {
	pool   *pgxpool.Pool
	outbox *outbox.Outbox
	now    func() time.Time
}

// New returns the application layer.
func New(pool *pgxpool.Pool, ob *outbox.Outbox) *App {
	return &App{pool: pool, outbox: ob, now: func() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }}
}

// Fact is one thing logistics learns about an order.
type Fact func(*postgres.Shipment)

// Placed records where the order goes.
func Placed(r postgres.Recipient) Fact {
	return func(s *postgres.Shipment) { s.Placed, s.Recipient = true, r }
}

// StockReserved records inventory's reservation.
func StockReserved(s *postgres.Shipment) { s.StockReserved = true }

// PaymentAuthorized records billing's authorization.
func PaymentAuthorized(s *postgres.Shipment) { s.PaymentAuthorized = true }

// Learn applies a fact to the order's shipment and prepares it once the order is placed,
// its stock reserved and its payment authorized: nothing ships without stock.
func (a *App) Learn(ctx context.Context, tx pgx.Tx, cause events.Cause, orderID string, fact Fact) error {
	s, err := lock(ctx, tx, orderID)
	if err != nil {
		return err
	}
	if s.Status != postgres.Pending {
		return nil // prepared, dispatched or cancelled: a late or repeated fact changes nothing
	}
	fact(s)
	if !(s.Placed && s.StockReserved && s.PaymentAuthorized) {
		return save(ctx, tx, s, nil)
	}
	now := a.now()
	s.Status, s.ShipmentID, s.Carrier, s.TrackingNumber, s.PreparedAt = postgres.Prepared, uuid.NewString(), Carrier, tracking(orderID), &now
	pdf := label.Render(label.Label{ShipmentID: s.ShipmentID, OrderID: orderID, Carrier: s.Carrier, TrackingNumber: s.TrackingNumber,
		Name: s.Recipient.Name, Lines: s.Recipient.Lines, PreparedAt: now})
	if err := save(ctx, tx, s, pdf); err != nil {
		return err
	}
	return a.outbox.Append(ctx, tx, events.New(ctx, Source, contract.TopicLogisticsShipments, orderID, contract.ShipmentPrepared,
		logistics.ShipmentPrepared{OrderID: orderID, ShipmentID: s.ShipmentID, Carrier: s.Carrier, TrackingNumber: s.TrackingNumber, PreparedAt: now}, cause))
}

// Cancel stops an order's shipment on OrderCancelled. The shop cancels on its own only
// orders that never got both stock and payment (out of stock, payment declined), which
// logistics never prepares; a customer's cancellation reaches here after
// DecideCancellation agreed to it. A dispatched parcel is not recalled.
func (a *App) Cancel(ctx context.Context, tx pgx.Tx, cause events.Cause, orderID, reason string) error {
	s, err := lock(ctx, tx, orderID)
	if err != nil {
		return err
	}
	if s.Status == postgres.Dispatched || s.Status == postgres.Cancelled {
		return nil
	}
	announce := s.Status == postgres.Prepared // nothing prepared, nothing to announce
	return a.stop(ctx, tx, cause, s, reason, announce)
}

// DecideCancellation answers a customer's cancellation request. Before dispatch the
// order will never ship: its shipment is cancelled (or, when none was prepared yet, none
// ever will be) and ShipmentCancelled tells the shop to cancel the order. After dispatch
// the request is refused by doing nothing: ShipmentDispatched, already published in the
// same order stream, tells the shop the order shipped. The dispatch endpoint and this
// decision lock the same row, so one of them comes first.
func (a *App) DecideCancellation(ctx context.Context, tx pgx.Tx, cause events.Cause, orderID string) error {
	s, err := lock(ctx, tx, orderID)
	if err != nil {
		return err
	}
	if s.Status == postgres.Dispatched || s.Status == postgres.Cancelled {
		return nil
	}
	return a.stop(ctx, tx, cause, s, contract.ReasonCustomerRequest, true)
}

// stop marks s cancelled and, if announce, publishes ShipmentCancelled.
func (a *App) stop(ctx context.Context, tx pgx.Tx, cause events.Cause, s *postgres.Shipment, reason string, announce bool) error {
	s.Status = postgres.Cancelled
	if err := save(ctx, tx, s, nil); err != nil {
		return err
	}
	if !announce {
		return nil
	}
	return a.outbox.Append(ctx, tx, events.New(ctx, Source, contract.TopicLogisticsShipments, s.OrderID, contract.ShipmentCancelled,
		logistics.ShipmentCancelled{OrderID: s.OrderID, ShipmentID: s.ShipmentID, Reason: reason, CancelledAt: a.now()}, cause))
}

// batch holds the shipments of one consumer batch, created, read and locked together when
// its transaction opens (PreloadShipments). Every event of the batch gets the same
// *Shipment, so each handler sees what the ones before it changed, and each changed
// shipment is written once, with the COMMIT: an order's three facts, which the group's
// linger usually brings in one batch, cost no round trip of their own, where each took
// two then (its lock and its save).
type batch struct {
	shipments map[string]*postgres.Shipment
	labels    map[string][]byte // the labels printed, by order id
	writes    *pg.WriteBack[*postgres.Shipment]
}

// PreloadShipments is the shipments group's consumer.Preload: it queues the creation,
// read and row lock of the batch's shipments (its record keys; a key that is not a UUID
// as the services write it is left to its handler).
func (a *App) PreloadShipments(b *pgx.Batch, keys []string) any {
	ids := consumer.UUIDKeys(keys)
	bt := &batch{shipments: map[string]*postgres.Shipment{}, labels: map[string][]byte{}}
	bt.writes = pg.NewWriteBack(func(b *pgx.Batch, s *postgres.Shipment) { postgres.QueueSave(b, s, bt.labels[s.OrderID]) })
	if len(ids) > 0 {
		postgres.QueueLock(b, ids, func(s *postgres.Shipment) { bt.shipments[s.OrderID] = s })
	}
	return bt
}

// lock returns the order's shipment, locked: the batch's when tx applies one that has it.
func lock(ctx context.Context, tx pgx.Tx, orderID string) (*postgres.Shipment, error) {
	bt, _ := consumer.Preloaded(tx).(*batch)
	if s := bt.shipment(orderID); s != nil {
		return s, nil
	}
	s, err := postgres.Lock(ctx, tx, orderID)
	if err != nil {
		return nil, err
	}
	if bt != nil { // an event whose order id is not its record's key
		bt.shipments[orderID] = &s
	}
	return &s, nil
}

func (bt *batch) shipment(orderID string) *postgres.Shipment {
	if bt == nil {
		return nil
	}
	return bt.shipments[orderID]
}

// save writes s back, with its label when one was printed: with the COMMIT, as s is
// then, when tx applies a batch; at once otherwise.
func save(ctx context.Context, tx pgx.Tx, s *postgres.Shipment, label []byte) error {
	bt, _ := consumer.Preloaded(tx).(*batch)
	c, ok := tx.(pg.Committer)
	if bt == nil || !ok {
		return postgres.Save(ctx, tx, *s, label)
	}
	if label != nil {
		bt.labels[s.OrderID] = label
	}
	bt.writes.Changed(c, s)
	return nil
}

// Dispatch errors.
var (
	ErrNotFound        = postgres.ErrNotFound
	ErrNotReady        = errors.New("the shipment is not prepared yet: stock and payment are still pending")
	ErrNotDispatchable = errors.New("the shipment was cancelled")
	ErrAlreadyShipped  = errors.New("the shipment was already dispatched")
)

// Dispatch hands a prepared shipment to the carrier; the commit wakes the outbox relay.
func (a *App) Dispatch(ctx context.Context, orderID string) (postgres.Shipment, error) {
	var s postgres.Shipment
	err := pg.Run(ctx, a.pool, nil, func(tx *pg.Tx) error {
		var err error
		if s, err = postgres.LockExisting(ctx, tx, orderID); err != nil {
			return err
		}
		switch s.Status {
		case postgres.Pending:
			return ErrNotReady
		case postgres.Cancelled:
			return ErrNotDispatchable
		case postgres.Dispatched:
			return ErrAlreadyShipped
		}
		now := a.now()
		s.Status, s.DispatchedAt = postgres.Dispatched, &now
		if err := postgres.Save(ctx, tx, s, nil); err != nil {
			return err
		}
		return a.outbox.Append(ctx, tx, events.New(ctx, Source, contract.TopicLogisticsShipments, orderID, contract.ShipmentDispatched,
			logistics.ShipmentDispatched{OrderID: orderID, ShipmentID: s.ShipmentID, Carrier: s.Carrier, TrackingNumber: s.TrackingNumber,
				DispatchedAt: now}, events.Cause{CorrelationID: orderID}))
	})
	return s, err
}

// tracking derives a stable tracking number from the order id.
func tracking(orderID string) string {
	sum := sha256.Sum256([]byte(orderID))
	return fmt.Sprintf("OF%012d", binary.BigEndian.Uint64(sum[:8])%1_000_000_000_000)
}
