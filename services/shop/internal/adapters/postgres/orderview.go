package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/services/shop/internal/domain/order"
)

// The order view is a projection: only the event handlers in ports/events write it, one
// event at a time inside the consumer's transaction, and every write is idempotent per
// event id, so the view can be dropped and rebuilt from the topics.

// ViewLine is a line of the order view.
type ViewLine = order.Line

// View is an order as the read model shows it.
type View struct {
	OrderID    string         `json:"order_id"`
	CustomerID string         `json:"customer_id"`
	Status     string         `json:"status"`
	Reason     string         `json:"reason,omitempty"`
	Currency   string         `json:"currency"`
	TotalMinor int64          `json:"total_minor"`
	Lines      []ViewLine     `json:"lines"`
	PlacedAt   time.Time      `json:"placed_at"`
	UpdatedAt  time.Time      `json:"updated_at"`
	Timeline   []TimelineStep `json:"timeline,omitempty"`
}

// TimelineStep is one event of an order's history.
type TimelineStep struct {
	At      time.Time `json:"at"`
	Service string    `json:"service"`
	Event   string    `json:"event"`
	Detail  string    `json:"detail,omitempty"`
}

// InsertView creates the view of a placed order (a replayed OrderPlaced changes nothing).
func InsertView(ctx context.Context, tx pgx.Tx, v View) error {
	lines, err := json.Marshal(v.Lines)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO order_view (order_id, customer_id, status, currency, total_minor, lines, placed_at, updated_at)
	                       VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (order_id) DO NOTHING`,
		v.OrderID, v.CustomerID, v.Status, v.Currency, v.TotalMinor, lines, v.PlacedAt)
	return err
}

// SetViewStatus moves the view of an order to status, unless it is already final
// (CANCELLED, or SHIPPED for anything but CANCELLED).
func SetViewStatus(ctx context.Context, tx pgx.Tx, orderID, status, reason string, at time.Time) error {
	var r *string
	if reason != "" {
		r = &reason
	}
	_, err := tx.Exec(ctx, `UPDATE order_view SET status = $2, reason = COALESCE($3, reason), updated_at = GREATEST(updated_at, $4)
	                         WHERE order_id = $1 AND status <> 'CANCELLED' AND NOT (status = 'SHIPPED' AND $2 <> 'CANCELLED')`,
		orderID, status, r, at)
	return err
}

// AddStep appends an event to an order's timeline, once per event id.
func AddStep(ctx context.Context, tx pgx.Tx, eventID, orderID string, s TimelineStep) error {
	_, err := tx.Exec(ctx, `INSERT INTO order_timeline (event_id, order_id, at, service, event, detail)
	                        VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING`,
		eventID, orderID, s.At, s.Service, s.Event, s.Detail)
	return err
}

// ErrNotInView reports an order the view does not (yet) know.
var ErrNotInView = errors.New("order not in the view")

// GetView returns an order with its timeline.
func GetView(ctx context.Context, pool *pgxpool.Pool, id string) (View, error) {
	var (
		v      View
		reason *string
		lines  []byte
	)
	err := pool.QueryRow(ctx, `SELECT order_id::text, customer_id, status, reason, currency, total_minor, lines, placed_at, updated_at
	                             FROM order_view WHERE order_id = $1`, id).
		Scan(&v.OrderID, &v.CustomerID, &v.Status, &reason, &v.Currency, &v.TotalMinor, &lines, &v.PlacedAt, &v.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return View{}, ErrNotInView
	}
	if err != nil {
		return View{}, fmt.Errorf("read order view: %w", err)
	}
	if reason != nil {
		v.Reason = *reason
	}
	if err := json.Unmarshal(lines, &v.Lines); err != nil {
		return View{}, err
	}
	rows, err := pool.Query(ctx, `SELECT at, service, event, detail FROM order_timeline WHERE order_id = $1 ORDER BY at, event`, id)
	if err != nil {
		return View{}, fmt.Errorf("read timeline: %w", err)
	}
	v.Timeline, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (TimelineStep, error) {
		var s TimelineStep
		err := r.Scan(&s.At, &s.Service, &s.Event, &s.Detail)
		return s, err
	})
	return v, err
}

// ListFilter selects orders of the view; zero fields do not filter.
type ListFilter struct {
	CustomerID string
	Status     string
	Limit      int
	// After is the cursor: the placed_at and order_id of the last order of the previous page.
	AfterPlaced time.Time
	AfterID     string
}

// ListViews returns a page of orders, newest first.
func ListViews(ctx context.Context, pool *pgxpool.Pool, f ListFilter) ([]View, error) {
	rows, err := pool.Query(ctx, `SELECT order_id::text, customer_id, status, COALESCE(reason, ''), currency, total_minor, lines, placed_at, updated_at
	                                FROM order_view
	                               WHERE ($1 = '' OR customer_id = $1) AND ($2 = '' OR status = $2)
	                                 AND ($3::timestamptz IS NULL OR (placed_at, order_id) < ($3, $4::uuid))
	                               ORDER BY placed_at DESC, order_id DESC LIMIT $5`,
		f.CustomerID, f.Status, nullTime(f.AfterPlaced), nullUUID(f.AfterID), f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list orders: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (View, error) {
		var v View
		var lines []byte
		if err := r.Scan(&v.OrderID, &v.CustomerID, &v.Status, &v.Reason, &v.Currency, &v.TotalMinor, &lines, &v.PlacedAt, &v.UpdatedAt); err != nil {
			return v, err
		}
		return v, json.Unmarshal(lines, &v.Lines)
	})
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func nullUUID(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
