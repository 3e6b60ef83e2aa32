// Package postgres stores logistics' shipments.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Shipment statuses.
const (
	Pending    = "PENDING"
	Prepared   = "PREPARED"
	Dispatched = "DISPATCHED"
	Cancelled  = "CANCELLED"
)

// Recipient is where a shipment goes.
type Recipient struct {
	CustomerID string   `json:"customer_id"`
	Name       string   `json:"name"`
	Lines      []string `json:"lines"`
}

// Shipment is one order's shipment.
type Shipment struct {
	OrderID           string     `json:"order_id"`
	Status            string     `json:"status"`
	Placed            bool       `json:"-"`
	StockReserved     bool       `json:"stock_reserved"`
	PaymentAuthorized bool       `json:"payment_authorized"`
	Recipient         Recipient  `json:"recipient"`
	ShipmentID        string     `json:"shipment_id,omitempty"`
	Carrier           string     `json:"carrier,omitempty"`
	TrackingNumber    string     `json:"tracking_number,omitempty"`
	PreparedAt        *time.Time `json:"prepared_at,omitempty"`
	DispatchedAt      *time.Time `json:"dispatched_at,omitempty"`
}

// ErrNotFound reports an order logistics has not heard of.
var ErrNotFound = errors.New("shipment not found")

const cols = `order_id::text, status, placed, stock_reserved, payment_authorized, recipient, COALESCE(shipment_id::text, ''),
              COALESCE(carrier, ''), COALESCE(tracking_number, ''), prepared_at, dispatched_at`

func scan(row pgx.Row) (Shipment, error) {
	var s Shipment
	var rec []byte
	err := row.Scan(&s.OrderID, &s.Status, &s.Placed, &s.StockReserved, &s.PaymentAuthorized, &rec, &s.ShipmentID,
		&s.Carrier, &s.TrackingNumber, &s.PreparedAt, &s.DispatchedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, ErrNotFound
	}
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(rec, &s.Recipient)
}

// Lock loads and locks an order's shipment, creating an empty PENDING one first, so that
// events about the order arriving in any order meet on one row. One round trip: the insert
// does nothing when the row exists (waiting for a concurrent creator to finish), and the
// locking read then sees the row either way. Unlike an upsert that rewrites the row to
// lock it, the three events of an order that find it existing leave no dead row versions.
func Lock(ctx context.Context, tx pgx.Tx, orderID string) (Shipment, error) {
	var s Shipment
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO shipments (order_id, status) VALUES ($1, 'PENDING') ON CONFLICT (order_id) DO NOTHING`, orderID)
	b.Queue(`SELECT `+cols+` FROM shipments WHERE order_id = $1 FOR UPDATE`, orderID).QueryRow(func(row pgx.Row) error {
		var err error
		s, err = scan(row)
		return err
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return s, fmt.Errorf("lock shipment %s: %w", orderID, err)
	}
	return s, nil
}

// QueueLock queues in b what Lock does for each of ids (UUIDs, at least one) at once:
// the shipments missing are created PENDING, and all of them are read with their row
// locks, held until the transaction ends. Once b ran, found has been called with each.
// The ids are taken in order, as every batch takes them, so two batches cannot deadlock.
func QueueLock(b *pgx.Batch, ids []string, found func(*Shipment)) {
	ids = slices.Sorted(slices.Values(ids))
	b.Queue(`INSERT INTO shipments (order_id, status) SELECT id, 'PENDING' FROM unnest($1::uuid[]) AS a(id) ORDER BY id
	         ON CONFLICT (order_id) DO NOTHING`, ids)
	b.Queue(`SELECT `+cols+` FROM shipments WHERE order_id = ANY($1::uuid[]) ORDER BY order_id FOR UPDATE`, ids).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			s, err := scan(rows)
			if err != nil {
				return fmt.Errorf("lock shipments: %w", err)
			}
			found(&s)
		}
		return rows.Err()
	})
}

// saveShipment writes a shipment back; its recipient goes as JSON (pgx encodes it).
const saveShipment = `UPDATE shipments SET status = $2, placed = $3, stock_reserved = $4, payment_authorized = $5,
                             recipient = $6, shipment_id = NULLIF($7, '')::uuid, carrier = NULLIF($8, ''),
                             tracking_number = NULLIF($9, ''), prepared_at = $10, dispatched_at = $11,
                             label = COALESCE($12, label), updated_at = now()
                       WHERE order_id = $1`

func saveArgs(s *Shipment, label []byte) []any {
	return []any{s.OrderID, s.Status, s.Placed, s.StockReserved, s.PaymentAuthorized, s.Recipient, s.ShipmentID, s.Carrier,
		s.TrackingNumber, s.PreparedAt, s.DispatchedAt, label}
}

// Save writes a shipment back, with its label when one was printed.
func Save(ctx context.Context, tx pgx.Tx, s Shipment, label []byte) error {
	if _, err := tx.Exec(ctx, saveShipment, saveArgs(&s, label)...); err != nil {
		return fmt.Errorf("save shipment %s: %w", s.OrderID, err)
	}
	return nil
}

// QueueSave queues in b what Save does, with s as it is now.
func QueueSave(b *pgx.Batch, s *Shipment, label []byte) {
	b.Queue(saveShipment, saveArgs(s, label)...)
}

// LockExisting loads and locks a shipment without creating one.
func LockExisting(ctx context.Context, tx pgx.Tx, orderID string) (Shipment, error) {
	return scan(tx.QueryRow(ctx, `SELECT `+cols+` FROM shipments WHERE order_id = $1 FOR UPDATE`, orderID))
}

// Get reads a shipment.
func Get(ctx context.Context, pool *pgxpool.Pool, orderID string) (Shipment, error) {
	return scan(pool.QueryRow(ctx, `SELECT `+cols+` FROM shipments WHERE order_id = $1`, orderID))
}

// Label reads a shipment's label PDF.
func Label(ctx context.Context, pool *pgxpool.Pool, orderID string) ([]byte, error) {
	var b []byte
	err := pool.QueryRow(ctx, `SELECT label FROM shipments WHERE order_id = $1 AND label IS NOT NULL`, orderID).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	return b, err
}
