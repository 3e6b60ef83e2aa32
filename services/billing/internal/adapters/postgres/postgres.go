// Package postgres stores billing's payments and invoices.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Payment statuses: AUTHORIZED, then CAPTURED when the order is confirmed, then REFUNDED
// if it is cancelled after; VOIDED when compensated before capture; FAILED when declined.
const (
	Authorized = "AUTHORIZED"
	Captured   = "CAPTURED"
	Refunded   = "REFUNDED"
	Failed     = "FAILED"
	Voided     = "VOIDED"
)

// Payment is one order's payment.
type Payment struct {
	OrderID         string    `json:"order_id"`
	CustomerID      string    `json:"customer_id"`
	Status          string    `json:"status"`
	AmountMinor     int64     `json:"amount_minor"`
	Currency        string    `json:"currency"`
	AuthorizationID string    `json:"authorization_id,omitempty"`
	CaptureID       string    `json:"capture_id,omitempty"`
	RefundID        string    `json:"refund_id,omitempty"`
	DeclineReason   string    `json:"decline_reason,omitempty"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// ErrNotFound reports a payment or invoice that does not exist.
var ErrNotFound = errors.New("not found")

const paymentCols = `order_id::text, customer_id, status, amount_minor, currency, COALESCE(authorization_id, ''),
                     COALESCE(capture_id, ''), COALESCE(refund_id, ''), COALESCE(decline_reason, ''), updated_at`

func scanPayment(row pgx.Row) (Payment, error) {
	var p Payment
	err := row.Scan(&p.OrderID, &p.CustomerID, &p.Status, &p.AmountMinor, &p.Currency, &p.AuthorizationID, &p.CaptureID, &p.RefundID,
		&p.DeclineReason, &p.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, ErrNotFound
	}
	return p, err
}

const lockPaymentSQL = `SELECT ` + paymentCols + ` FROM payments WHERE order_id = $1 FOR UPDATE`

// LockOrderPayment serializes, until tx ends, every handler touching one order, then
// loads and locks its payment, in one round trip. Events about an order arrive on several
// topics, handled by different partition workers at once; a row lock cannot protect a
// row that does not exist yet, so the first event and its compensation could otherwise
// both think they came first.
func LockOrderPayment(ctx context.Context, tx pgx.Tx, orderID string) (p Payment, err error) {
	b := &pgx.Batch{}
	b.Queue(lockOrderSQL, orderID)
	b.Queue(lockPaymentSQL, orderID).QueryRow(func(row pgx.Row) error {
		p, err = scanPayment(row)
		if errors.Is(err, ErrNotFound) {
			return nil // reported after the batch, which must not stop for it
		}
		return err
	})
	if berr := tx.SendBatch(ctx, b).Close(); berr != nil {
		return p, fmt.Errorf("lock order %s and its payment: %w", orderID, berr)
	}
	return p, err
}

// GetPayment reads an order's payment.
func GetPayment(ctx context.Context, pool *pgxpool.Pool, orderID string) (Payment, error) {
	return scanPayment(pool.QueryRow(ctx, `SELECT `+paymentCols+` FROM payments WHERE order_id = $1`, orderID))
}

// PutPayment inserts or updates a payment.
func PutPayment(ctx context.Context, tx pgx.Tx, p Payment) error {
	if _, err := tx.Exec(ctx, putPaymentSQL, paymentArgs(p)...); err != nil {
		return fmt.Errorf("save payment %s: %w", p.OrderID, err)
	}
	return nil
}

const putPaymentSQL = `INSERT INTO payments (order_id, customer_id, status, amount_minor, currency, authorization_id, decline_reason,
                                             capture_id, refund_id, updated_at)
                       VALUES ($1, $2, $3, $4, $5, NULLIF($6, ''), NULLIF($7, ''), NULLIF($8, ''), NULLIF($9, ''), now())
                       ON CONFLICT (order_id) DO UPDATE SET status = $3, authorization_id = NULLIF($6, ''),
                              decline_reason = NULLIF($7, ''), capture_id = NULLIF($8, ''), refund_id = NULLIF($9, ''),
                              updated_at = now()`

func paymentArgs(p Payment) []any {
	return []any{p.OrderID, p.CustomerID, p.Status, p.AmountMinor, p.Currency, p.AuthorizationID, p.DeclineReason, p.CaptureID, p.RefundID}
}

// PutAuthorized saves an authorized payment and adds its invoice, PENDING, to the queue
// the issuer numbers, in one round trip.
func PutAuthorized(ctx context.Context, tx pgx.Tx, p Payment, inv Invoice, d InvoiceDetails) error {
	b := &pgx.Batch{}
	b.Queue(putPaymentSQL, paymentArgs(p)...)
	b.Queue(queueInvoiceSQL, inv.OrderID, inv.AmountMinor, inv.Currency, d)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("save authorization of %s: %w", p.OrderID, err)
	}
	return nil
}

// Invoice statuses (VOIDED is shared with payments).
const (
	Pending = "PENDING"
	Issued  = "ISSUED"
)

// Invoice is an order's invoice. A PENDING invoice has no number, PDF or issue time yet.
type Invoice struct {
	Number      string     `json:"number,omitempty"`
	OrderID     string     `json:"order_id"`
	Status      string     `json:"status"`
	AmountMinor int64      `json:"amount_minor"`
	Currency    string     `json:"currency"`
	IssuedAt    *time.Time `json:"issued_at,omitempty"`
	VoidedAt    *time.Time `json:"voided_at,omitempty"`
	// CreditNoteNumber is set when an issued invoice was voided: the credit note that
	// cancels it.
	CreditNoteNumber string `json:"credit_note_number,omitempty"`
}

// InvoiceDetails is what a queued invoice keeps until it is issued: what its PDF shows
// and the metadata of the event that caused it, for the InvoiceIssued event.
type InvoiceDetails struct {
	CustomerName  string        `json:"customer_name"`
	CustomerEmail string        `json:"customer_email"`
	Lines         []InvoiceLine `json:"lines"`
	CauseID       string        `json:"cause_id"`
	CorrelationID string        `json:"correlation_id"`
	TraceParent   string        `json:"traceparent,omitempty"`
	TraceState    string        `json:"tracestate,omitempty"`
}

// InvoiceLine is one invoiced product.
type InvoiceLine struct {
	SKU            string `json:"sku"`
	Name           string `json:"name"`
	Quantity       int    `json:"quantity"`
	UnitPriceMinor int64  `json:"unit_price_minor"`
}

const queueInvoiceSQL = `INSERT INTO invoices (order_id, status, amount_minor, currency, details) VALUES ($1, 'PENDING', $2, $3, $4)`

// LockCounter locks year's invoice counter until tx ends and returns its last number.
// Only the holder issues invoices, so numbers are gapless and in commit order.
func LockCounter(ctx context.Context, tx pgx.Tx, year int) (int, error) {
	var last int
	err := tx.QueryRow(ctx, `INSERT INTO invoice_counters (year, last) VALUES ($1, 0)
	                         ON CONFLICT (year) DO UPDATE SET last = invoice_counters.last RETURNING last`, year).Scan(&last)
	if err != nil {
		return 0, fmt.Errorf("lock invoice counter %d: %w", year, err)
	}
	return last, nil
}

// PendingInvoice is a queued invoice with its details.
type PendingInvoice struct {
	Invoice
	Details InvoiceDetails
}

// CountPending counts the invoices waiting to be issued.
func CountPending(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var n int64
	err := pool.QueryRow(ctx, `SELECT count(*) FROM invoices WHERE status = 'PENDING'`).Scan(&n)
	return n, err
}

// LockPending locks up to limit PENDING invoices, oldest first, leaving out those whose
// rendering failed and is not due again yet. An invoice that a void is changing at that
// moment is waited for and left out if it is no longer pending.
func LockPending(ctx context.Context, tx pgx.Tx, limit int) ([]PendingInvoice, error) {
	rows, err := tx.Query(ctx, `SELECT order_id::text, amount_minor, currency, details FROM invoices
	                            WHERE status = 'PENDING' AND (next_render_at IS NULL OR next_render_at <= now())
	                            ORDER BY seq LIMIT $1 FOR UPDATE`, limit)
	if err != nil {
		return nil, fmt.Errorf("pending invoices: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (PendingInvoice, error) {
		p := PendingInvoice{Invoice: Invoice{Status: Pending}}
		err := row.Scan(&p.OrderID, &p.AmountMinor, &p.Currency, &p.Details)
		return p, err
	})
}

// InvoiceNumber formats the n-th invoice number of year.
func InvoiceNumber(year, n int) string { return fmt.Sprintf("INV-%d-%06d", year, n) }

// PostponeRendering counts a failed rendering of each of orderIDs' pending invoices and
// puts the next attempt off by twice the previous delay: 2 s, 4 s, ... up to an hour.
func PostponeRendering(ctx context.Context, tx pgx.Tx, orderIDs []string) error {
	_, err := tx.Exec(ctx, `UPDATE invoices SET render_failures = render_failures + 1,
	                            next_render_at = now() + least(interval '1 hour', interval '1 second' * power(2, least(render_failures + 1, 12)))
	                        WHERE order_id = ANY($1::uuid[]) AND status = 'PENDING'`, orderIDs)
	if err != nil {
		return fmt.Errorf("postpone %d invoices: %w", len(orderIDs), err)
	}
	return nil
}

// IssueInvoices marks invoices issued with their numbers and PDFs, and moves year's
// counter to last. The caller holds the counter (LockCounter) and the rows (LockPending).
func IssueInvoices(ctx context.Context, tx pgx.Tx, year, last int, invs []Invoice, pdfs [][]byte, at time.Time) error {
	ids := make([]string, len(invs))
	numbers := make([]string, len(invs))
	for i, inv := range invs {
		ids[i], numbers[i] = inv.OrderID, inv.Number
	}
	b := &pgx.Batch{}
	b.Queue(`UPDATE invoices i SET status = 'ISSUED', number = u.n, pdf = u.p, issued_at = $4, details = NULL
	         FROM unnest($1::uuid[], $2::text[], $3::bytea[]) AS u(id, n, p) WHERE i.order_id = u.id`, ids, numbers, pdfs, at)
	b.Queue(`UPDATE invoice_counters SET last = $2 WHERE year = $1`, year, last)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("issue %d invoices: %w", len(invs), err)
	}
	return nil
}

// VoidInvoice voids an order's invoice and returns it, now VOIDED: Number is "" when
// there was nothing to void or the invoice was still PENDING (never issued, so it keeps
// no number and needs no credit note).
func VoidInvoice(ctx context.Context, tx pgx.Tx, orderID string, at time.Time) (Invoice, error) {
	inv, err := scanInvoice(tx.QueryRow(ctx, `UPDATE invoices SET status = 'VOIDED', voided_at = $2, details = NULL
	                         WHERE order_id = $1 AND status IN ('PENDING', 'ISSUED') RETURNING `+invoiceCols,
		orderID, at))
	if errors.Is(err, ErrNotFound) {
		return Invoice{}, nil
	}
	return inv, err
}

// CreditNoteNumber formats the n-th credit note number of year.
func CreditNoteNumber(year, n int) string { return fmt.Sprintf("CN-%d-%06d", year, n) }

// NextCreditNote takes year's next credit note number. The counter row stays locked until
// tx ends, so numbers are gapless; only compensations of issued invoices take it.
func NextCreditNote(ctx context.Context, tx pgx.Tx, year int) (string, error) {
	var n int
	err := tx.QueryRow(ctx, `INSERT INTO credit_note_counters (year, last) VALUES ($1, 1)
	                         ON CONFLICT (year) DO UPDATE SET last = credit_note_counters.last + 1 RETURNING last`, year).Scan(&n)
	if err != nil {
		return "", fmt.Errorf("credit note counter %d: %w", year, err)
	}
	return CreditNoteNumber(year, n), nil
}

// SetCreditNote records the credit note that cancels an order's voided invoice.
func SetCreditNote(ctx context.Context, tx pgx.Tx, orderID, number string, pdf []byte) error {
	_, err := tx.Exec(ctx, `UPDATE invoices SET credit_note_number = $2, credit_note_pdf = $3 WHERE order_id = $1`, orderID, number, pdf)
	if err != nil {
		return fmt.Errorf("credit note of %s: %w", orderID, err)
	}
	return nil
}

const invoiceCols = `COALESCE(number, ''), order_id::text, status, amount_minor, currency, issued_at, voided_at, COALESCE(credit_note_number, '')`

func scanInvoice(row pgx.Row) (Invoice, error) {
	var inv Invoice
	err := row.Scan(&inv.Number, &inv.OrderID, &inv.Status, &inv.AmountMinor, &inv.Currency, &inv.IssuedAt, &inv.VoidedAt, &inv.CreditNoteNumber)
	if errors.Is(err, pgx.ErrNoRows) {
		return inv, ErrNotFound
	}
	return inv, err
}

// GetInvoice reads an invoice by its number or by the number of the credit note that
// cancelled it.
func GetInvoice(ctx context.Context, pool *pgxpool.Pool, number string) (Invoice, error) {
	return scanInvoice(pool.QueryRow(ctx, `SELECT `+invoiceCols+` FROM invoices WHERE number = $1 OR credit_note_number = $1`, number))
}

// GetInvoiceOfOrder reads an order's invoice.
func GetInvoiceOfOrder(ctx context.Context, pool *pgxpool.Pool, orderID string) (Invoice, error) {
	return scanInvoice(pool.QueryRow(ctx, `SELECT `+invoiceCols+` FROM invoices WHERE order_id = $1`, orderID))
}

// InvoicePDF reads the PDF of an invoice or of a credit note, by its number.
func InvoicePDF(ctx context.Context, pool *pgxpool.Pool, number string) ([]byte, error) {
	var pdf []byte
	err := pool.QueryRow(ctx, `SELECT pdf FROM invoices WHERE number = $1
	                           UNION ALL SELECT credit_note_pdf FROM invoices WHERE credit_note_number = $1`, number).Scan(&pdf)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	return pdf, err
}

const lockOrderSQL = `SELECT pg_advisory_xact_lock(hashtextextended('order/' || $1, 0))`
