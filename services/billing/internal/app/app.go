// Package app holds billing's use cases: authorizing an order's payment when it is
// placed and invoicing it, and voiding both when the order fails or is cancelled.
package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/avro/billing"
	"github.com/orderflow/orderflow/avro/contract"
	"github.com/orderflow/orderflow/avro/shop"
	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/outbox"
	"github.com/orderflow/orderflow/services/billing/internal/adapters/pdf"
	"github.com/orderflow/orderflow/services/billing/internal/adapters/postgres"
	"github.com/orderflow/orderflow/services/billing/internal/adapters/provider"
)

// Source is the ce_source of billing's events.
const Source = "billing"

// App is billing's application layer.
type App struct {
	outbox   *outbox.Outbox
	provider provider.Provider
	now      func() time.Time
}

// New returns the application layer.
func New(ob *outbox.Outbox, p provider.Provider) *App {
	return &App{outbox: ob, provider: p, now: func() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }}
}

func (a *App) emit(ctx context.Context, tx pgx.Tx, cause events.Cause, orderID string, typ events.Type, payload any) error {
	return a.outbox.Append(ctx, tx, events.New(ctx, Source, contract.TopicBillingPayments, orderID, typ, payload, cause))
}

// Authorize asks the provider to authorize a placed order and, when approved, issues its
// invoice. The provider call is idempotent per order, so a retry after a failed
// transaction gets the same authorization. A provider outage is transient: the consumer
// retries with backoff.
func (a *App) Authorize(ctx context.Context, tx pgx.Tx, cause events.Cause, e shop.OrderPlaced) error {
	if err := postgres.LockOrder(ctx, tx, e.OrderID); err != nil {
		return err
	}
	if _, err := postgres.LockPayment(ctx, tx, e.OrderID); !errors.Is(err, postgres.ErrNotFound) {
		return err // already decided (or voided before it was placed)
	}
	res, err := a.provider.Authorize(ctx, provider.Request{OrderID: e.OrderID, Token: e.PaymentToken, AmountMinor: e.TotalMinor, Currency: e.Currency})
	if errors.Is(err, provider.ErrUnavailable) {
		return consumer.Transient(fmt.Errorf("authorize %s: %w", e.OrderID, err))
	}
	if err != nil {
		return fmt.Errorf("authorize %s: %w", e.OrderID, err)
	}
	now := a.now()
	p := postgres.Payment{OrderID: e.OrderID, CustomerID: e.CustomerID, AmountMinor: e.TotalMinor, Currency: e.Currency}
	if !res.Approved {
		p.Status, p.DeclineReason = postgres.Failed, res.DeclineCode
		if err := postgres.PutPayment(ctx, tx, p); err != nil {
			return err
		}
		return a.emit(ctx, tx, cause, e.OrderID, contract.PaymentFailed, billing.PaymentFailed{
			OrderID: e.OrderID, AmountMinor: e.TotalMinor, Currency: e.Currency, Reason: res.DeclineCode, FailedAt: now})
	}
	p.Status, p.AuthorizationID = postgres.Authorized, res.AuthorizationID
	if err := postgres.PutPayment(ctx, tx, p); err != nil {
		return err
	}
	if err := a.emit(ctx, tx, cause, e.OrderID, contract.PaymentAuthorized, billing.PaymentAuthorized{
		OrderID: e.OrderID, AmountMinor: e.TotalMinor, Currency: e.Currency, Provider: a.provider.Name(),
		AuthorizationID: res.AuthorizationID, AuthorizedAt: now}); err != nil {
		return err
	}
	return a.issueInvoice(ctx, tx, cause, e, now)
}

func (a *App) issueInvoice(ctx context.Context, tx pgx.Tx, cause events.Cause, e shop.OrderPlaced, now time.Time) error {
	number, err := postgres.NextInvoiceNumber(ctx, tx, now.Year())
	if err != nil {
		return err
	}
	doc := pdf.Invoice{Number: number, OrderID: e.OrderID, CustomerName: e.CustomerName, CustomerEmail: e.CustomerEmail,
		Currency: e.Currency, TotalMinor: e.TotalMinor, IssuedAt: now}
	for _, l := range e.Lines {
		doc.Lines = append(doc.Lines, pdf.Line{SKU: l.Sku, Name: l.Name, Quantity: l.Quantity, UnitPriceMinor: l.UnitPriceMinor})
	}
	body, err := pdf.Render(doc)
	if err != nil {
		return consumer.Permanent(err)
	}
	if err := postgres.InsertInvoice(ctx, tx, postgres.Invoice{Number: number, OrderID: e.OrderID, AmountMinor: e.TotalMinor,
		Currency: e.Currency, IssuedAt: now}, body); err != nil {
		return err
	}
	return a.emit(ctx, tx, cause, e.OrderID, contract.InvoiceIssued, billing.InvoiceIssued{
		OrderID: e.OrderID, InvoiceNumber: number, AmountMinor: e.TotalMinor, Currency: e.Currency, IssuedAt: now})
}

// Void undoes an order's payment: the authorization is voided at the provider and the
// invoice voided. When the order is not known yet, a VOIDED marker makes its OrderPlaced,
// arriving later, authorize nothing.
func (a *App) Void(ctx context.Context, tx pgx.Tx, cause events.Cause, orderID, reason string) error {
	if err := postgres.LockOrder(ctx, tx, orderID); err != nil {
		return err
	}
	p, err := postgres.LockPayment(ctx, tx, orderID)
	if errors.Is(err, postgres.ErrNotFound) {
		return postgres.PutPayment(ctx, tx, postgres.Payment{OrderID: orderID, Status: postgres.Voided, DeclineReason: reason, Currency: "XXX"})
	}
	if err != nil || p.Status != postgres.Authorized {
		return err // failed or already voided: nothing to undo
	}
	if err := a.provider.Void(ctx, p.AuthorizationID); err != nil {
		return consumer.Transient(fmt.Errorf("void %s: %w", orderID, err))
	}
	now := a.now()
	p.Status = postgres.Voided
	if err := postgres.PutPayment(ctx, tx, p); err != nil {
		return err
	}
	if err := a.emit(ctx, tx, cause, orderID, contract.PaymentVoided, billing.PaymentVoided{OrderID: orderID,
		AuthorizationID: p.AuthorizationID, AmountMinor: p.AmountMinor, Currency: p.Currency, Reason: reason, VoidedAt: now}); err != nil {
		return err
	}
	number, err := postgres.VoidInvoice(ctx, tx, orderID, now)
	if err != nil || number == "" {
		return err
	}
	return a.emit(ctx, tx, cause, orderID, contract.InvoiceVoided, billing.InvoiceVoided{OrderID: orderID, InvoiceNumber: number, Reason: reason, VoidedAt: now})
}
