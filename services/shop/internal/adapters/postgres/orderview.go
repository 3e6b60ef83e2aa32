package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/platform/projection"
	"github.com/orderflow/orderflow/services/shop/internal/domain/order"
)

// The order view is a projection (platform/projection): only the order-view model in
// ports/events writes it, a batch of events at a time, through WriteOrderView. Every
// write is commutative and idempotent, so the view can be rebuilt from the topics read
// in any interleaving.

// ViewLine is a line of the order view.
type ViewLine = order.Line

// View is an order as the read model shows it.
type View struct {
	OrderID    string `json:"order_id"`
	CustomerID string `json:"customer_id"`
	Status     string `json:"status"`
	Reason     string `json:"reason,omitempty"`
	// Cancellation is what became of the customer's cancellation request, if any.
	Cancellation order.Cancellation `json:"cancellation,omitempty"`
	Currency     string             `json:"currency"`
	TotalMinor   int64              `json:"total_minor"`
	Lines        []ViewLine         `json:"lines"`
	PlacedAt     time.Time          `json:"placed_at"`
	UpdatedAt    time.Time          `json:"updated_at"`
	Timeline     []TimelineStep     `json:"timeline,omitempty"`
}

// TimelineStep is one event of an order's history.
type TimelineStep struct {
	At      time.Time `json:"at"`
	Service string    `json:"service"`
	Event   string    `json:"event"`
	Detail  string    `json:"detail,omitempty"`
}

// ViewChange is what a batch of events does to one order's row: the placement (when the
// batch holds its OrderPlaced) and the highest status it reached, with the reason of a
// cancellation, when the customer asked to cancel, and the latest time of a status event.
type ViewChange struct {
	OrderID           string
	Placed            *View // customer, currency, total, lines and placed time
	Status            string
	Reason            string
	CancelRequestedAt *time.Time
	At                time.Time
}

// Step is a timeline entry of an event.
type Step struct {
	EventID string
	OrderID string
	TimelineStep
}

// statusRank orders the statuses: a row only ever moves to a higher one.
const statusRank = `array_position(ARRAY['PENDING', 'CONFIRMED', 'SHIPPED', 'CANCELLED'], %s)`

// WriteOrderView applies changes to the order view and steps to the timeline, the tables
// of t, with one statement each (a COPY for the timeline during a rebuild).
func WriteOrderView(ctx context.Context, tx pgx.Tx, t projection.Tables, changes []ViewChange, steps []Step) error {
	view := t.Of("order_view")
	if len(changes) > 0 {
		n := len(changes)
		ids, statuses, ats := make([]string, n), make([]string, n), make([]time.Time, n)
		reasons, customers, currencies, lines := make([]*string, n), make([]*string, n), make([]*string, n), make([]*string, n)
		totals, placed, requested := make([]*int64, n), make([]*time.Time, n), make([]*time.Time, n)
		for i, c := range changes {
			ids[i], statuses[i], ats[i], requested[i] = c.OrderID, c.Status, c.At, c.CancelRequestedAt
			if c.Reason != "" {
				reasons[i] = &c.Reason
			}
			if p := c.Placed; p != nil {
				l, err := json.Marshal(p.Lines)
				if err != nil {
					return err
				}
				ls := string(l)
				customers[i], currencies[i], lines[i], totals[i], placed[i] = &p.CustomerID, &p.Currency, &ls, &p.TotalMinor, &p.PlacedAt
			}
		}
		_, err := tx.Exec(ctx, fmt.Sprintf(`
			INSERT INTO %[1]s AS v (order_id, customer_id, status, reason, currency, total_minor, lines, placed_at, updated_at,
			                        cancel_requested_at)
			SELECT o, c, s, r, cur, t, l::jsonb, p, u, q
			  FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::timestamptz[],
			              $9::timestamptz[], $10::timestamptz[])
			       AS x (o, c, s, r, cur, t, l, p, u, q)
			ON CONFLICT (order_id) DO UPDATE SET
			    customer_id = COALESCE(v.customer_id, excluded.customer_id),
			    currency    = COALESCE(v.currency, excluded.currency),
			    total_minor = COALESCE(v.total_minor, excluded.total_minor),
			    lines       = COALESCE(v.lines, excluded.lines),
			    placed_at   = COALESCE(v.placed_at, excluded.placed_at),
			    status      = CASE WHEN %[2]s > %[3]s THEN excluded.status ELSE v.status END,
			    reason      = COALESCE(v.reason, excluded.reason),
			    cancel_requested_at = COALESCE(v.cancel_requested_at, excluded.cancel_requested_at),
			    updated_at  = GREATEST(v.updated_at, excluded.updated_at)`,
			view, fmt.Sprintf(statusRank, "excluded.status"), fmt.Sprintf(statusRank, "v.status")),
			ids, customers, statuses, reasons, currencies, totals, lines, placed, ats, requested)
		if err != nil {
			return fmt.Errorf("write order view: %w", err)
		}
	}
	rows := make([][]any, len(steps))
	for i, s := range steps {
		rows[i] = []any{projection.UUID(s.EventID), projection.UUID(s.OrderID), s.At, s.Service, s.Event, s.Detail}
	}
	if err := projection.Append(ctx, tx, t, "order_timeline", []string{"event_id", "order_id", "at", "service", "event", "detail"}, rows); err != nil {
		return fmt.Errorf("write order timeline: %w", err)
	}
	return nil
}

// PlacedView is an order as the view first shows it: placed, PENDING, without a
// timeline. GET /v1/orders/{id} answers with it for an order the write model has and the
// view does not have yet (the read models apply events up to their linger late), so a
// client reading its order right after the 202 finds it. It shows no more than the view
// will show next, even when the write model is further along (confirmed, cancelled): a
// client polling the order never sees its status go back when the view catches up.
func PlacedView(o *order.Order) View {
	return View{OrderID: o.ID, CustomerID: o.Customer.ID, Status: string(order.Pending), Currency: o.Currency,
		TotalMinor: o.TotalMinor, Lines: o.Lines, PlacedAt: o.PlacedAt, UpdatedAt: o.PlacedAt}
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
	var requested bool
	err := pool.QueryRow(ctx, `SELECT order_id::text, customer_id, status, reason, currency, total_minor, lines, placed_at, updated_at,
	                                  cancel_requested_at IS NOT NULL
	                             FROM order_view WHERE order_id = $1 AND placed_at IS NOT NULL`, id).
		Scan(&v.OrderID, &v.CustomerID, &v.Status, &reason, &v.Currency, &v.TotalMinor, &lines, &v.PlacedAt, &v.UpdatedAt, &requested)
	if errors.Is(err, pgx.ErrNoRows) {
		return View{}, ErrNotInView
	}
	if err != nil {
		return View{}, fmt.Errorf("read order view: %w", err)
	}
	if reason != nil {
		v.Reason = *reason
	}
	v.Cancellation = order.CancellationOf(requested, order.Status(v.Status))
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
	rows, err := pool.Query(ctx, `SELECT order_id::text, customer_id, status, COALESCE(reason, ''), currency, total_minor, lines, placed_at,
	                                     updated_at, cancel_requested_at IS NOT NULL
	                                FROM order_view
	                               WHERE placed_at IS NOT NULL AND ($1 = '' OR customer_id = $1) AND ($2 = '' OR status = $2)
	                                 AND ($3::timestamptz IS NULL OR (placed_at, order_id) < ($3, $4::uuid))
	                               ORDER BY placed_at DESC, order_id DESC LIMIT $5`,
		f.CustomerID, f.Status, nullTime(f.AfterPlaced), nullUUID(f.AfterID), f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list orders: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (View, error) {
		var (
			v         View
			lines     []byte
			requested bool
		)
		if err := r.Scan(&v.OrderID, &v.CustomerID, &v.Status, &v.Reason, &v.Currency, &v.TotalMinor, &lines, &v.PlacedAt, &v.UpdatedAt,
			&requested); err != nil {
			return v, err
		}
		v.Cancellation = order.CancellationOf(requested, order.Status(v.Status))
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
