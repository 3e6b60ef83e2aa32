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

// Payment statuses.
const (
	Authorized = "AUTHORIZED"
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
	DeclineReason   string    `json:"decline_reason,omitempty"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// ErrNotFound reports a payment or invoice that does not exist.
var ErrNotFound = errors.New("not found")

const paymentCols = `order_id::text, customer_id, status, amount_minor, currency, COALESCE(authorization_id, ''), COALESCE(decline_reason, ''), updated_at`

func scanPayment(row pgx.Row) (Payment, error) {
	var p Payment
	err := row.Scan(&p.OrderID, &p.CustomerID, &p.Status, &p.AmountMinor, &p.Currency, &p.AuthorizationID, &p.DeclineReason, &p.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, ErrNotFound
	}
	return p, err
}

// LockPayment loads and locks an order's payment.
func LockPayment(ctx context.Context, tx pgx.Tx, orderID string) (Payment, error) {
	return scanPayment(tx.QueryRow(ctx, `SELECT `+paymentCols+` FROM payments WHERE order_id = $1 FOR UPDATE`, orderID))
}

// GetPayment reads an order's payment.
func GetPayment(ctx context.Context, pool *pgxpool.Pool, orderID string) (Payment, error) {
	return scanPayment(pool.QueryRow(ctx, `SELECT `+paymentCols+` FROM payments WHERE order_id = $1`, orderID))
}

// PutPayment inserts or updates a payment.
func PutPayment(ctx context.Context, tx pgx.Tx, p Payment) error {
	_, err := tx.Exec(ctx, `INSERT INTO payments (order_id, customer_id, status, amount_minor, currency, authorization_id, decline_reason, updated_at)
	                        VALUES ($1, $2, $3, $4, $5, NULLIF($6, ''), NULLIF($7, ''), now())
	                        ON CONFLICT (order_id) DO UPDATE SET status = $3, authorization_id = NULLIF($6, ''),
	                               decline_reason = NULLIF($7, ''), updated_at = now()`,
		p.OrderID, p.CustomerID, p.Status, p.AmountMinor, p.Currency, p.AuthorizationID, p.DeclineReason)
	if err != nil {
		return fmt.Errorf("save payment %s: %w", p.OrderID, err)
	}
	return nil
}

// NextInvoiceNumber takes the next number of year. The counter row stays locked until
// the transaction ends, so numbers are gapless and in commit order.
func NextInvoiceNumber(ctx context.Context, tx pgx.Tx, year int) (string, error) {
	var n int
	err := tx.QueryRow(ctx, `INSERT INTO invoice_counters (year, last) VALUES ($1, 1)
	                         ON CONFLICT (year) DO UPDATE SET last = invoice_counters.last + 1 RETURNING last`, year).Scan(&n)
	if err != nil {
		return "", fmt.Errorf("next invoice number: %w", err)
	}
	return fmt.Sprintf("INV-%d-%06d", year, n), nil
}

// Invoice is an issued invoice.
type Invoice struct {
	Number      string     `json:"number"`
	OrderID     string     `json:"order_id"`
	Status      string     `json:"status"`
	AmountMinor int64      `json:"amount_minor"`
	Currency    string     `json:"currency"`
	IssuedAt    time.Time  `json:"issued_at"`
	VoidedAt    *time.Time `json:"voided_at,omitempty"`
}

// InsertInvoice stores an issued invoice and its PDF.
func InsertInvoice(ctx context.Context, tx pgx.Tx, inv Invoice, pdf []byte) error {
	_, err := tx.Exec(ctx, `INSERT INTO invoices (number, order_id, status, amount_minor, currency, pdf, issued_at)
	                        VALUES ($1, $2, 'ISSUED', $3, $4, $5, $6)`, inv.Number, inv.OrderID, inv.AmountMinor, inv.Currency, pdf, inv.IssuedAt)
	if err != nil {
		return fmt.Errorf("insert invoice %s: %w", inv.Number, err)
	}
	return nil
}

// VoidInvoice voids an order's issued invoice and returns its number ("" when there was
// none to void).
func VoidInvoice(ctx context.Context, tx pgx.Tx, orderID string, at time.Time) (string, error) {
	var number string
	err := tx.QueryRow(ctx, `UPDATE invoices SET status = 'VOIDED', voided_at = $2 WHERE order_id = $1 AND status = 'ISSUED' RETURNING number`,
		orderID, at).Scan(&number)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return number, err
}

const invoiceCols = `number, order_id::text, status, amount_minor, currency, issued_at, voided_at`

func scanInvoice(row pgx.Row) (Invoice, error) {
	var inv Invoice
	err := row.Scan(&inv.Number, &inv.OrderID, &inv.Status, &inv.AmountMinor, &inv.Currency, &inv.IssuedAt, &inv.VoidedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return inv, ErrNotFound
	}
	return inv, err
}

// GetInvoice reads an invoice by number.
func GetInvoice(ctx context.Context, pool *pgxpool.Pool, number string) (Invoice, error) {
	return scanInvoice(pool.QueryRow(ctx, `SELECT `+invoiceCols+` FROM invoices WHERE number = $1`, number))
}

// GetInvoiceOfOrder reads an order's invoice.
func GetInvoiceOfOrder(ctx context.Context, pool *pgxpool.Pool, orderID string) (Invoice, error) {
	return scanInvoice(pool.QueryRow(ctx, `SELECT `+invoiceCols+` FROM invoices WHERE order_id = $1`, orderID))
}

// InvoicePDF reads an invoice's PDF.
func InvoicePDF(ctx context.Context, pool *pgxpool.Pool, number string) ([]byte, error) {
	var pdf []byte
	err := pool.QueryRow(ctx, `SELECT pdf FROM invoices WHERE number = $1`, number).Scan(&pdf)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	return pdf, err
}

// LockOrder serializes, until tx ends, every handler touching one order. Events about an
// order arrive on several topics, handled by different partition workers at once; a
// row lock cannot protect a row that does not exist yet, so the first event and its
// compensation could otherwise both think they came first.
func LockOrder(ctx context.Context, tx pgx.Tx, orderID string) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('order/' || $1, 0))`, orderID); err != nil {
		return fmt.Errorf("lock order %s: %w", orderID, err)
	}
	return nil
}
