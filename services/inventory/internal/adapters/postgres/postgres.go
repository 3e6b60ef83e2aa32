// Package postgres stores inventory's stock levels, reservations and receipts, and its
// availability read model.
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

	"github.com/orderflow/orderflow/services/inventory/internal/domain/stock"
)

// Reservation statuses.
const (
	Reserved = "RESERVED"
	Rejected = "REJECTED"
	Released = "RELEASED"
	Shipped  = "SHIPPED"
	Voided   = "VOIDED"
)

// lockLevelsSQL reads and locks the stock rows of the SKUs in $1, in SKU order.
const lockLevelsSQL = `SELECT sku, on_hand, reserved, low_threshold FROM stock WHERE sku = ANY($1) ORDER BY sku FOR UPDATE`

func collectLevels(rows pgx.Rows) (map[string]stock.Level, error) {
	defer rows.Close()
	out := map[string]stock.Level{}
	for rows.Next() {
		var l stock.Level
		if err := rows.Scan(&l.SKU, &l.OnHand, &l.Reserved, &l.LowThreshold); err != nil {
			return nil, err
		}
		out[l.SKU] = l
	}
	return out, rows.Err()
}

// LockLevels reads and locks the stock rows of skus (lockLevelsSQL); a SKU without one
// is missing from the map.
func LockLevels(ctx context.Context, tx pgx.Tx, skus []string) (map[string]stock.Level, error) {
	rows, err := tx.Query(ctx, lockLevelsSQL, skus)
	if err != nil {
		return nil, fmt.Errorf("lock stock: %w", err)
	}
	levels, err := collectLevels(rows)
	if err != nil {
		return nil, fmt.Errorf("lock stock: %w", err)
	}
	return levels, nil
}

// QueueSaveLevel queues in b the write of a stock row's counts, as l is now.
func QueueSaveLevel(b *pgx.Batch, l *stock.Level) {
	b.Queue(`UPDATE stock SET on_hand = $2, reserved = $3, updated_at = now() WHERE sku = $1`, l.SKU, l.OnHand, l.Reserved)
}

// SaveReserved writes the reserved counts of levels, in one round trip.
func SaveReserved(ctx context.Context, tx pgx.Tx, levels []stock.Level) error {
	b := &pgx.Batch{}
	for _, l := range levels {
		b.Queue(`UPDATE stock SET reserved = $2, updated_at = now() WHERE sku = $1`, l.SKU, l.Reserved)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("reserve stock: %w", err)
	}
	return nil
}

// LockReservation takes an order's lock (lockOrderSQL), then loads and locks its
// reservation, in one round trip.
func LockReservation(ctx context.Context, tx pgx.Tx, orderID string) (r Reservation, found bool, err error) {
	b := &pgx.Batch{}
	b.Queue(lockOrderSQL, orderID)
	b.Queue(reservationSQL, orderID).QueryRow(func(row pgx.Row) error {
		r, found, err = scanReservation(row, orderID)
		return err
	})
	if berr := tx.SendBatch(ctx, b).Close(); berr != nil {
		return r, false, fmt.Errorf("lock order %s: %w", orderID, berr)
	}
	return r, found, nil
}

// LockForReserve takes an order's lock (lockOrderSQL), then loads its reservation and locks
// the stock of skus (lockLevelsSQL), in one round trip.
func LockForReserve(ctx context.Context, tx pgx.Tx, orderID string, skus []string) (r Reservation, found bool, levels map[string]stock.Level, err error) {
	b := &pgx.Batch{}
	b.Queue(lockOrderSQL, orderID)
	b.Queue(reservationSQL, orderID).QueryRow(func(row pgx.Row) error {
		r, found, err = scanReservation(row, orderID)
		return err
	})
	b.Queue(lockLevelsSQL, skus).Query(func(rows pgx.Rows) error {
		levels, err = collectLevels(rows)
		return err
	})
	if berr := tx.SendBatch(ctx, b).Close(); berr != nil {
		return r, false, nil, fmt.Errorf("lock order %s and its stock: %w", orderID, berr)
	}
	return r, found, levels, nil
}

// QueueLockReservations queues in b what LockReservation does for each of ids (UUIDs, at
// least one) at once: the orders' locks, taken in order as every batch takes them, then
// the read of their reservations with row locks. Once b ran, found has been called with
// each reservation that exists.
func QueueLockReservations(b *pgx.Batch, ids []string, found func(*Reservation)) {
	ids = slices.Sorted(slices.Values(ids))
	b.Queue(`SELECT count(pg_advisory_xact_lock(hashtextextended('order/' || id, 0)))
	           FROM (SELECT id FROM unnest($1::text[]) AS a(id) ORDER BY id) s`, ids)
	b.Queue(`SELECT order_id::text, status, lines FROM reservations WHERE order_id = ANY($1::uuid[]) ORDER BY order_id FOR UPDATE`, ids).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				r, _, err := scanReservation(rows, "")
				if err != nil {
					return err
				}
				found(&r)
			}
			return rows.Err()
		})
}

// Reservation is an order's hold on stock.
type Reservation struct {
	OrderID string
	Status  string
	Lines   []stock.Line
}

// reservationSQL loads and locks an order's reservation.
const reservationSQL = `SELECT order_id::text, status, lines FROM reservations WHERE order_id = $1 FOR UPDATE`

func scanReservation(row pgx.Row, orderID string) (r Reservation, found bool, err error) {
	var lines []byte
	err = row.Scan(&r.OrderID, &r.Status, &lines)
	if errors.Is(err, pgx.ErrNoRows) {
		return Reservation{}, false, nil
	}
	if err != nil {
		return Reservation{}, false, fmt.Errorf("load reservation %s: %w", orderID, err)
	}
	return r, true, json.Unmarshal(lines, &r.Lines)
}

// putReservationSQL inserts or updates an order's reservation; its lines go as JSON
// (pgx encodes them).
const putReservationSQL = `INSERT INTO reservations (order_id, status, lines) VALUES ($1, $2, $3)
                           ON CONFLICT (order_id) DO UPDATE SET status = $2, lines = $3, updated_at = now()`

// PutReservation inserts or updates an order's reservation.
func PutReservation(ctx context.Context, tx pgx.Tx, r Reservation) error {
	if _, err := tx.Exec(ctx, putReservationSQL, r.OrderID, r.Status, linesOf(r)); err != nil {
		return fmt.Errorf("save reservation %s: %w", r.OrderID, err)
	}
	return nil
}

// QueuePutReservation queues in b what PutReservation does, with r as it is now.
func QueuePutReservation(b *pgx.Batch, r *Reservation) {
	b.Queue(putReservationSQL, r.OrderID, r.Status, linesOf(*r))
}

// linesOf returns r's lines, never nil: the column holds an array.
func linesOf(r Reservation) []stock.Line {
	if r.Lines == nil {
		return []stock.Line{}
	}
	return r.Lines
}

// Unreserve gives lines back to stock; ship also takes them off the shelf.
func Unreserve(ctx context.Context, tx pgx.Tx, lines []stock.Line, ship bool) error {
	for _, l := range lines {
		q := `UPDATE stock SET reserved = reserved - $2, updated_at = now() WHERE sku = $1`
		if ship {
			q = `UPDATE stock SET reserved = reserved - $2, on_hand = on_hand - $2, updated_at = now() WHERE sku = $1`
		}
		if _, err := tx.Exec(ctx, q, l.SKU, l.Quantity); err != nil {
			return fmt.Errorf("unreserve %s: %w", l.SKU, err)
		}
	}
	return nil
}

// ErrReceiptReplayed reports a receipt id recorded before.
var ErrReceiptReplayed = errors.New("receipt already recorded")

// Receive records a receipt once per receipt id and adds it to stock, creating the SKU
// on its first receipt. A non-nil threshold replaces the SKU's low-stock threshold.
func Receive(ctx context.Context, tx pgx.Tx, receiptID, sku string, quantity int, threshold *int) (stock.Level, error) {
	tag, err := tx.Exec(ctx, `INSERT INTO receipts (receipt_id, sku, quantity) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		receiptID, sku, quantity)
	if err != nil {
		return stock.Level{}, fmt.Errorf("record receipt: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return stock.Level{}, ErrReceiptReplayed
	}
	var l stock.Level
	err = tx.QueryRow(ctx, `INSERT INTO stock (sku, on_hand, low_threshold) VALUES ($1, $2, COALESCE($3, 0))
	                        ON CONFLICT (sku) DO UPDATE SET on_hand = stock.on_hand + $2,
	                               low_threshold = COALESCE($3, stock.low_threshold), updated_at = now()
	                        RETURNING sku, on_hand, reserved, low_threshold`, sku, quantity, threshold).
		Scan(&l.SKU, &l.OnHand, &l.Reserved, &l.LowThreshold)
	if err != nil {
		return stock.Level{}, fmt.Errorf("receive %s: %w", sku, err)
	}
	return l, nil
}

// AvailabilityDelta is the change of a SKU's availability from a batch of events, and
// the time of the latest of them.
type AvailabilityDelta struct {
	SKU   string
	Delta int
	At    time.Time
}

// AddAvailability applies deltas to the availability table named table (quoted), in one
// statement.
func AddAvailability(ctx context.Context, tx pgx.Tx, table string, deltas []AvailabilityDelta) error {
	if len(deltas) == 0 {
		return nil
	}
	skus, ns, ats := make([]string, len(deltas)), make([]int32, len(deltas)), make([]time.Time, len(deltas))
	for i, d := range deltas {
		skus[i], ns[i], ats[i] = d.SKU, int32(d.Delta), d.At
	}
	_, err := tx.Exec(ctx, fmt.Sprintf(`INSERT INTO %s AS a (sku, available, updated_at)
	                                    SELECT * FROM unnest($1::text[], $2::int[], $3::timestamptz[])
	                                    ON CONFLICT (sku) DO UPDATE SET available = a.available + excluded.available,
	                                        updated_at = GREATEST(a.updated_at, excluded.updated_at)`, table), skus, ns, ats)
	if err != nil {
		return fmt.Errorf("write availability: %w", err)
	}
	return nil
}

// Availability is one row of the read model.
type Availability struct {
	SKU       string `json:"sku"`
	Available int    `json:"available"`
}

// ErrUnknownSKU reports a SKU the read model has not seen.
var ErrUnknownSKU = errors.New("unknown SKU")

// GetAvailability reads one SKU's availability.
func GetAvailability(ctx context.Context, pool *pgxpool.Pool, sku string) (Availability, error) {
	a := Availability{SKU: sku}
	err := pool.QueryRow(ctx, `SELECT available FROM availability WHERE sku = $1`, sku).Scan(&a.Available)
	if errors.Is(err, pgx.ErrNoRows) {
		return a, ErrUnknownSKU
	}
	return a, err
}

// Levels reads the write model's level of a SKU (for admin answers).
func Levels(ctx context.Context, pool *pgxpool.Pool, sku string) (stock.Level, error) {
	var l stock.Level
	err := pool.QueryRow(ctx, `SELECT sku, on_hand, reserved, low_threshold FROM stock WHERE sku = $1`, sku).
		Scan(&l.SKU, &l.OnHand, &l.Reserved, &l.LowThreshold)
	if errors.Is(err, pgx.ErrNoRows) {
		return l, ErrUnknownSKU
	}
	return l, err
}

// lockOrderSQL serializes, until tx ends, every handler touching one order. Events about an
// order arrive on several topics, handled by different partition workers at once; a
// row lock cannot protect a row that does not exist yet, so the first event and its
// compensation could otherwise both think they came first.
const lockOrderSQL = `SELECT pg_advisory_xact_lock(hashtextextended('order/' || $1, 0))`
