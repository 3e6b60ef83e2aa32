// Package app holds billing's use cases: authorizing an order's payment when it is
// placed and invoicing it, capturing the payment when the order is confirmed, and, when
// the order fails or is cancelled, voiding the authorization (before capture) or
// refunding the capture (after it), and voiding the invoice (an issued one with a credit
// note).
package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/propagation"

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
	if _, err := postgres.LockOrderPayment(ctx, tx, e.OrderID); !errors.Is(err, postgres.ErrNotFound) {
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
	if err := a.emit(ctx, tx, cause, e.OrderID, contract.PaymentAuthorized, billing.PaymentAuthorized{
		OrderID: e.OrderID, AmountMinor: e.TotalMinor, Currency: e.Currency, Provider: a.provider.Name(),
		AuthorizationID: res.AuthorizationID, AuthorizedAt: now}); err != nil {
		return err
	}
	// The payment and its invoice, queued for the issuer to number.
	inv, d := invoiceOf(ctx, cause, e)
	return postgres.PutAuthorized(ctx, tx, p, inv, d)
}

// invoiceOf is the invoice to queue for an authorized order, with what the issuer needs
// to render and announce it.
func invoiceOf(ctx context.Context, cause events.Cause, e shop.OrderPlaced) (postgres.Invoice, postgres.InvoiceDetails) {
	d := postgres.InvoiceDetails{CustomerName: e.CustomerName, CustomerEmail: e.CustomerEmail,
		CauseID: cause.ID, CorrelationID: cause.CorrelationID}
	for _, l := range e.Lines {
		d.Lines = append(d.Lines, postgres.InvoiceLine{SKU: l.Sku, Name: l.Name, Quantity: l.Quantity, UnitPriceMinor: l.UnitPriceMinor})
	}
	// The issuer's InvoiceIssued joins the trace of the authorization.
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	d.TraceParent, d.TraceState = carrier.Get(events.HeaderTraceParent), carrier.Get(events.HeaderTraceState)
	return postgres.Invoice{OrderID: e.OrderID, AmountMinor: e.TotalMinor, Currency: e.Currency}, d
}

// Capture charges a confirmed order's authorization: the order will be fulfilled, and
// from now on a cancellation refunds instead of voiding. Only an AUTHORIZED payment is
// captured; a redelivered OrderConfirmed finds it CAPTURED and does nothing. A provider
// outage is transient.
func (a *App) Capture(ctx context.Context, tx pgx.Tx, cause events.Cause, orderID string) error {
	p, err := postgres.LockOrderPayment(ctx, tx, orderID)
	if errors.Is(err, postgres.ErrNotFound) {
		// The shop confirms only after PaymentAuthorized, which this service published in
		// the transaction that stored the payment.
		return consumer.Permanent(fmt.Errorf("OrderConfirmed for order %s, which billing never authorized", orderID))
	}
	if err != nil || p.Status != postgres.Authorized {
		return err
	}
	p.CaptureID, err = a.provider.Capture(ctx, p.AuthorizationID, p.AmountMinor)
	if err != nil {
		return consumer.Transient(fmt.Errorf("capture %s: %w", orderID, err))
	}
	p.Status = postgres.Captured
	if err := postgres.PutPayment(ctx, tx, p); err != nil {
		return err
	}
	return a.emit(ctx, tx, cause, orderID, contract.PaymentCaptured, billing.PaymentCaptured{OrderID: orderID,
		AuthorizationID: p.AuthorizationID, CaptureID: p.CaptureID, AmountMinor: p.AmountMinor, Currency: p.Currency, CapturedAt: a.now()})
}

// Compensate undoes an order's payment: an authorization is voided at the provider, a
// capture refunded in full, and the invoice voided (an issued one by a credit note).
// When the order is not known yet, a VOIDED marker makes its OrderPlaced, arriving later,
// authorize nothing. A provider outage is transient.
func (a *App) Compensate(ctx context.Context, tx pgx.Tx, cause events.Cause, orderID, reason string) error {
	p, err := postgres.LockOrderPayment(ctx, tx, orderID)
	if errors.Is(err, postgres.ErrNotFound) {
		return postgres.PutPayment(ctx, tx, postgres.Payment{OrderID: orderID, Status: postgres.Voided, DeclineReason: reason, Currency: "XXX"})
	}
	if err != nil {
		return err
	}
	now := a.now()
	var undone events.Type
	var payload any
	switch p.Status {
	case postgres.Authorized:
		if err := a.provider.Void(ctx, p.AuthorizationID); err != nil {
			return consumer.Transient(fmt.Errorf("void %s: %w", orderID, err))
		}
		p.Status, undone = postgres.Voided, contract.PaymentVoided
		payload = billing.PaymentVoided{OrderID: orderID, AuthorizationID: p.AuthorizationID, AmountMinor: p.AmountMinor,
			Currency: p.Currency, Reason: reason, VoidedAt: now}
	case postgres.Captured:
		if p.RefundID, err = a.provider.Refund(ctx, p.CaptureID, p.AmountMinor); err != nil {
			return consumer.Transient(fmt.Errorf("refund %s: %w", orderID, err))
		}
		p.Status, undone = postgres.Refunded, contract.PaymentRefunded
		payload = billing.PaymentRefunded{OrderID: orderID, CaptureID: p.CaptureID, RefundID: p.RefundID, AmountMinor: p.AmountMinor,
			Currency: p.Currency, Reason: reason, RefundedAt: now}
	default:
		return nil // failed, voided or refunded: nothing to undo
	}
	if err := postgres.PutPayment(ctx, tx, p); err != nil {
		return err
	}
	if err := a.emit(ctx, tx, cause, orderID, undone, payload); err != nil {
		return err
	}
	inv, err := postgres.VoidInvoice(ctx, tx, orderID, now)
	if err != nil || inv.Number == "" {
		return err // nothing issued: a PENDING invoice is voided before it takes a number
	}
	cn, err := a.creditNote(ctx, tx, inv, reason, now)
	if err != nil {
		return err
	}
	return a.emit(ctx, tx, cause, orderID, contract.InvoiceVoided,
		billing.InvoiceVoided{OrderID: orderID, InvoiceNumber: inv.Number, Reason: reason, VoidedAt: now, CreditNoteNumber: &cn})
}

// creditNote issues the credit note that cancels the issued invoice inv in full: an
// issued invoice is never altered, it is answered by a document of its own, numbered
// gaplessly per year in the CN series. It returns the note's number.
func (a *App) creditNote(ctx context.Context, tx pgx.Tx, inv postgres.Invoice, reason string, now time.Time) (string, error) {
	number, err := postgres.NextCreditNote(ctx, tx, now.Year())
	if err != nil {
		return "", err
	}
	note := pdf.CreditNote{Number: number, InvoiceNumber: inv.Number, OrderID: inv.OrderID, Reason: reason,
		Currency: inv.Currency, AmountMinor: inv.AmountMinor, IssuedAt: now}
	if inv.IssuedAt != nil {
		note.InvoiceIssuedAt = *inv.IssuedAt
	}
	return number, postgres.SetCreditNote(ctx, tx, inv.OrderID, number, pdf.RenderCreditNote(note))
}
