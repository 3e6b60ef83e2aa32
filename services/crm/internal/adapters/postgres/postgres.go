// Package postgres stores crm's contacts, timeline, e-mails and follow-ups.
package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/platform/projection"
)

// Contact is who to write to about an order.
type Contact struct {
	OrderID    string
	CustomerID string
	Email      string
	Name       string
}

// FollowUp is a scheduled follow-up that was not announced yet because its order's
// customer was unknown when it was scheduled.
type FollowUp struct {
	DueAt       time.Time
	ScheduledAt time.Time
	CauseID     string // ce_id of the ShipmentDispatched that scheduled it
}

// PutContact records an order's contact and its customer and, in the same round trip,
// claims the order's unannounced follow-up, if any, for the caller to announce now that
// the customer is known.
func PutContact(ctx context.Context, tx pgx.Tx, c Contact) (*FollowUp, error) {
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO customers (customer_id, email, name) VALUES ($1, $2, $3)
	         ON CONFLICT (customer_id) DO UPDATE SET email = $2, name = $3`, c.CustomerID, c.Email, c.Name)
	b.Queue(`INSERT INTO order_contacts (order_id, customer_id, email, name) VALUES ($1, $2, $3, $4)
	         ON CONFLICT (order_id) DO NOTHING`, c.OrderID, c.CustomerID, c.Email, c.Name)
	var pending *FollowUp
	b.Queue(`UPDATE followups SET announced = true WHERE order_id = $1 AND NOT announced
	         RETURNING due_at, scheduled_at, COALESCE(cause_id, '')`, c.OrderID).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var f FollowUp
			if err := rows.Scan(&f.DueAt, &f.ScheduledAt, &f.CauseID); err != nil {
				return err
			}
			pending = &f
		}
		return rows.Err()
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("save contact of %s: %w", c.OrderID, err)
	}
	return pending, nil
}

// Step is one timeline entry.
type Step struct {
	EventID string    `json:"-"`
	OrderID string    `json:"order_id"`
	At      time.Time `json:"at"`
	Service string    `json:"service"`
	Event   string    `json:"event"`
	Detail  string    `json:"detail,omitempty"`
}

// AddSteps records events on the timeline, a table of t, once per event id.
func AddSteps(ctx context.Context, tx pgx.Tx, t projection.Tables, steps []Step) error {
	rows := make([][]any, len(steps))
	for i, s := range steps {
		rows[i] = []any{projection.UUID(s.EventID), projection.UUID(s.OrderID), s.At, s.Service, s.Event, s.Detail}
	}
	if err := projection.Append(ctx, tx, t, "timeline", []string{"event_id", "order_id", "at", "service", "event", "detail"}, rows); err != nil {
		return fmt.Errorf("write timeline: %w", err)
	}
	return nil
}

// RecordCancellationRequest remembers a customer's cancellation request and reports, in
// the same round trip, whether the order's shipping e-mail was already queued (the
// parcel left before the request reached crm).
func RecordCancellationRequest(ctx context.Context, tx pgx.Tx, orderID string, at time.Time) (shipped bool, err error) {
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO cancellation_requests (order_id, requested_at) VALUES ($1, $2) ON CONFLICT DO NOTHING`, orderID, at)
	b.Queue(`SELECT EXISTS (SELECT 1 FROM emails WHERE order_id = $1 AND kind = 'shipped')`, orderID).QueryRow(func(row pgx.Row) error {
		return row.Scan(&shipped)
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return false, fmt.Errorf("record cancellation request of %s: %w", orderID, err)
	}
	return shipped, nil
}

// Queued reports whether an e-mail of kind was queued for an order.
func Queued(ctx context.Context, tx pgx.Tx, orderID, kind string) (bool, error) {
	var ok bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM emails WHERE order_id = $1 AND kind = $2)`, orderID, kind).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("read e-mails of %s: %w", orderID, err)
	}
	return ok, nil
}

// QueueEmail queues an e-mail about an order once per kind; a second one of the same kind
// is dropped.
func QueueEmail(ctx context.Context, tx pgx.Tx, orderID, kind, subject, body string) error {
	_, err := tx.Exec(ctx, `INSERT INTO emails (order_id, kind, subject, body) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
		orderID, kind, subject, body)
	return err
}

// ScheduleFollowUp records when an order's follow-up is due, and whether it is announced
// now (announced false: when the order's customer becomes known, PutContact claims it,
// with causeID for the announcement). It reports false when one was already scheduled.
func ScheduleFollowUp(ctx context.Context, tx pgx.Tx, orderID string, due time.Time, announced bool, causeID string) (bool, error) {
	tag, err := tx.Exec(ctx, `INSERT INTO followups (order_id, due_at, announced, cause_id) VALUES ($1, $2, $3, NULLIF($4, ''))
	                          ON CONFLICT DO NOTHING`, orderID, due, announced, causeID)
	return tag.RowsAffected() == 1, err
}

// DueFollowUps claims follow-ups due by now, marking them queued.
func DueFollowUps(ctx context.Context, tx pgx.Tx, now time.Time, limit int) ([]string, error) {
	rows, err := tx.Query(ctx, `UPDATE followups SET queued = true WHERE order_id IN (
	                                SELECT order_id FROM followups WHERE NOT queued AND due_at <= $1
	                                ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED)
	                            RETURNING order_id::text`, now, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// Email is a claimed e-mail ready to send.
type Email struct {
	OrderID    string
	Kind       string
	CustomerID string
	To         string
	Subject    string
	Body       string
	Attempts   int
}

// ClaimEmails moves up to limit pending e-mails whose contact is known to SENDING and
// returns them. The claim commits before anything is sent: a crash after it leaves the
// rows in SENDING, never to be sent again (at most once). The contact is checked with
// EXISTS so that the claim walks the pending index and probes contacts one by one; as a
// join it hashed every contact on each claim (10 ms at 31,000 orders, and growing).
func ClaimEmails(ctx context.Context, pool *pgxpool.Pool, limit int) ([]Email, error) {
	var out []Email
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE emails e SET status = 'SENDING', attempts = attempts + 1, claimed_at = now()
		                             FROM order_contacts c
		                            WHERE c.order_id = e.order_id AND (e.order_id, e.kind) IN (
		                                  SELECT e2.order_id, e2.kind FROM emails e2
		                                   WHERE e2.status = 'PENDING' AND e2.next_attempt_at <= now()
		                                     AND EXISTS (SELECT 1 FROM order_contacts c2 WHERE c2.order_id = e2.order_id)
		                                   ORDER BY e2.next_attempt_at LIMIT $1 FOR UPDATE OF e2 SKIP LOCKED)
		                        RETURNING e.order_id::text, e.kind, c.customer_id, c.email, e.subject, e.body, e.attempts`, limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Email, error) {
			var e Email
			err := r.Scan(&e.OrderID, &e.Kind, &e.CustomerID, &e.To, &e.Subject, &e.Body, &e.Attempts)
			return e, err
		})
		return err
	})
	return out, err
}

// MarkSent records delivered e-mails.
func MarkSent(ctx context.Context, tx pgx.Tx, sent []Email) error {
	ids := make([]string, len(sent))
	kinds := make([]string, len(sent))
	for i, e := range sent {
		ids[i], kinds[i] = e.OrderID, e.Kind
	}
	_, err := tx.Exec(ctx, `UPDATE emails e SET status = 'SENT', sent_at = now(), last_error = NULL
	                          FROM unnest($1::uuid[], $2::text[]) AS s(order_id, kind)
	                         WHERE e.order_id = s.order_id AND e.kind = s.kind`, ids, kinds)
	if err != nil {
		return fmt.Errorf("mark %d e-mails sent: %w", len(sent), err)
	}
	return nil
}

// MarkRetry puts an e-mail the server did not accept back in the queue.
func MarkRetry(ctx context.Context, pool *pgxpool.Pool, orderID, kind, lastErr string, at time.Time) error {
	_, err := pool.Exec(ctx, `UPDATE emails SET status = 'PENDING', next_attempt_at = $3, last_error = $4 WHERE order_id = $1 AND kind = $2`,
		orderID, kind, at, lastErr)
	return err
}

// MarkFailed records an e-mail the server refused for good; it is not sent again.
func MarkFailed(ctx context.Context, pool *pgxpool.Pool, orderID, kind, lastErr string) error {
	_, err := pool.Exec(ctx, `UPDATE emails SET status = 'FAILED', last_error = $3 WHERE order_id = $1 AND kind = $2`, orderID, kind, lastErr)
	return err
}

// CountDueEmails counts the queued e-mails whose time has come (on the pending index).
func CountDueEmails(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var n int64
	err := pool.QueryRow(ctx, `SELECT count(*) FROM emails WHERE status = 'PENDING' AND next_attempt_at <= now()`).Scan(&n)
	return n, err
}

// UncertainOrphanedClaims marks UNCERTAIN the e-mails claimed more than lease ago and
// still SENDING: the mailer that claimed them stopped before it recorded the server's
// answer (a crash, or a failed write after the send), so each may or may not have gone
// out, and none is sent again. It returns their keys, "order_id/kind".
func UncertainOrphanedClaims(ctx context.Context, pool *pgxpool.Pool, lease time.Duration) ([]string, error) {
	rows, err := pool.Query(ctx, `UPDATE emails SET status = 'UNCERTAIN',
	                                     last_error = 'crm stopped before it recorded the server''s answer (claimed at ' || claimed_at || ')'
	                               WHERE status = 'SENDING' AND claimed_at < now() - $1::interval
	                           RETURNING order_id::text || '/' || kind`, lease)
	if err != nil {
		return nil, fmt.Errorf("mark orphaned claims uncertain: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// MarkUncertain records an e-mail that may have been delivered; it is not sent again.
func MarkUncertain(ctx context.Context, pool *pgxpool.Pool, orderID, kind, lastErr string) error {
	_, err := pool.Exec(ctx, `UPDATE emails SET status = 'UNCERTAIN', last_error = $3 WHERE order_id = $1 AND kind = $2`, orderID, kind, lastErr)
	return err
}

// TimelinePage selects a page of a customer's timeline: Limit steps older than the step
// at Before (zero: from the newest).
type TimelinePage struct {
	CustomerID    string
	Limit         int
	Before        time.Time
	BeforeEventID string
}

// CustomerTimeline returns a page of the events of a customer's orders, newest first;
// steps at the same instant are ordered by event id, so that a page ends at one step.
func CustomerTimeline(ctx context.Context, pool *pgxpool.Pool, p TimelinePage) ([]Step, error) {
	rows, err := pool.Query(ctx, `SELECT t.event_id::text, t.order_id::text, t.at, t.service, t.event, t.detail
	                                FROM timeline t JOIN order_contacts c USING (order_id)
	                               WHERE c.customer_id = $1 AND ($4 = '' OR (t.at, t.event_id) < ($3, NULLIF($4, '')::uuid))
	                               ORDER BY t.at DESC, t.event_id DESC LIMIT $2`,
		p.CustomerID, p.Limit, p.Before, p.BeforeEventID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Step, error) {
		var s Step
		err := r.Scan(&s.EventID, &s.OrderID, &s.At, &s.Service, &s.Event, &s.Detail)
		return s, err
	})
}

// Dispatched is what crm knows of an order when its parcel leaves, read in one round
// trip: its customer ("" while its OrderPlaced has not arrived) and whether the customer
// asked to cancel it.
func Dispatched(ctx context.Context, tx pgx.Tx, orderID string) (customerID string, cancelRequested bool, err error) {
	err = tx.QueryRow(ctx, `SELECT COALESCE((SELECT customer_id FROM order_contacts WHERE order_id = $1), ''),
	                               EXISTS (SELECT 1 FROM cancellation_requests WHERE order_id = $1)`, orderID).
		Scan(&customerID, &cancelRequested)
	if err != nil {
		return "", false, fmt.Errorf("read order %s at dispatch: %w", orderID, err)
	}
	return customerID, cancelRequested, nil
}
