package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"github.com/orderflow/orderflow/avro/billing"
	"github.com/orderflow/orderflow/avro/contract"
	"github.com/orderflow/orderflow/platform/backoff"
	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/pg"
	"github.com/orderflow/orderflow/platform/telemetry"
	"github.com/orderflow/orderflow/services/billing/internal/adapters/pdf"
	"github.com/orderflow/orderflow/services/billing/internal/adapters/postgres"
)

// Issuer numbers queued invoices, renders their PDFs and publishes InvoiceIssued.
//
// Invoice numbers are gapless per year, so taking one means holding the year's counter
// row until commit. The issuer takes it once per batch of up to BatchSize invoices, in
// a transaction of its own, so authorizations never wait for it and one commit issues
// many invoices. Every replica runs an issuer; the counter row lets one at a time work,
// and each numbers the queue in the order the authorizations committed.
type Issuer struct {
	pool *pgxpool.Pool
	app  *App
	log  *slog.Logger
	wake chan struct{}
	// BatchSize is the most invoices issued per transaction.
	BatchSize int
	// Fallback is how often the queue is looked at without a wake-up, for invoices
	// queued by another replica.
	Fallback time.Duration
	// Linger is how long the issuer waits after a wake-up before it takes the queue, so
	// that the invoices of many authorizations are issued in one transaction instead of
	// one each: no one waits on an invoice, and the CPU goes to the confirmations. Zero
	// issues at once.
	Linger time.Duration

	// Render draws an invoice's PDF (pdf.Render, which cannot fail; tests replace it with
	// one that does, to show that an invoice that cannot be drawn does not hold up the
	// queue).
	Render func(pdf.Invoice) ([]byte, error)

	renderFailures metric.Int64Counter
}

// NewIssuer returns an issuer of a's queued invoices. It exports
// billing_invoice_render_failures_total (an invoice whose PDF could not be rendered stays
// pending, unnumbered, and is tried again after 2 s, 4 s, ... up to an hour, while later
// invoices are issued) and billing_invoices_pending.
func NewIssuer(pool *pgxpool.Pool, a *App, log *slog.Logger) (*Issuer, error) {
	is := &Issuer{pool: pool, app: a, log: log, wake: make(chan struct{}, 1), BatchSize: 200, Fallback: time.Second,
		Linger: 100 * time.Millisecond, Render: func(inv pdf.Invoice) ([]byte, error) { return pdf.Render(inv), nil }}
	meter := otel.Meter("github.com/orderflow/orderflow/services/billing/internal/app")
	var err error
	if is.renderFailures, err = meter.Int64Counter("billing_invoice_render_failures_total",
		metric.WithDescription("Attempts to render an invoice PDF that failed; the invoice stays pending and is tried again.")); err != nil {
		return nil, err
	}
	err = telemetry.CountGauge(meter, "billing_invoices_pending", "Invoices authorized and not yet issued (numbered, rendered, published).",
		func(ctx context.Context) (int64, error) { return postgres.CountPending(ctx, pool) })
	if err != nil {
		return nil, err
	}
	return is, nil
}

// Wake tells the issuer that invoices were queued; it never blocks.
func (is *Issuer) Wake(context.Context) {
	select {
	case is.wake <- struct{}{}:
	default:
	}
}

// Run issues queued invoices until ctx ends.
func (is *Issuer) Run(ctx context.Context) error {
	t := time.NewTicker(is.Fallback)
	defer t.Stop()
	for attempt := 0; ; {
		select {
		case <-ctx.Done():
			return nil
		case <-is.wake:
			if !sleepCtx(ctx, is.Linger) {
				return nil
			}
		case <-t.C:
		}
		for ctx.Err() == nil {
			taken, err := is.IssueBatch(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				attempt++
				d := backoff.Duration(attempt, 100*time.Millisecond, 10*time.Second)
				is.log.WarnContext(ctx, "issuing invoices failed, will retry", "err", err, "retry_in", d.String())
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(d):
				}
				continue
			}
			attempt = 0
			if taken < is.BatchSize {
				break // drained (invoices that failed to render wait for their next attempt)
			}
		}
	}
}

// sleepCtx waits d, or until ctx ends; it reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// IssueBatch issues up to BatchSize queued invoices in one transaction and returns how
// many queued invoices it took (a full batch means more may be waiting).
func (is *Issuer) IssueBatch(ctx context.Context) (int, error) {
	var taken int
	err := pg.Run(ctx, is.pool, nil, func(tx *pg.Tx) error {
		now := is.app.now()
		year := now.Year()
		last, err := postgres.LockCounter(ctx, tx, year)
		if err != nil {
			return err
		}
		queue, err := postgres.LockPending(ctx, tx, is.BatchSize)
		if err != nil || len(queue) == 0 {
			return err
		}
		taken = len(queue)
		var (
			invs   []postgres.Invoice
			pdfs   [][]byte
			evs    []events.Event
			failed []string
		)
		for _, q := range queue {
			number := postgres.InvoiceNumber(year, last+1)
			doc := pdf.Invoice{Number: number, OrderID: q.OrderID, CustomerName: q.Details.CustomerName,
				CustomerEmail: q.Details.CustomerEmail, Currency: q.Currency, TotalMinor: q.AmountMinor, IssuedAt: now}
			for _, l := range q.Details.Lines {
				doc.Lines = append(doc.Lines, pdf.Line{SKU: l.SKU, Name: l.Name, Quantity: l.Quantity, UnitPriceMinor: l.UnitPriceMinor})
			}
			body, err := is.Render(doc)
			if err != nil { // it stays PENDING, without a number, and is tried again later
				is.renderFailures.Add(ctx, 1)
				is.log.ErrorContext(ctx, "invoice PDF cannot be rendered; the invoice stays pending and is tried again later",
					"order_id", q.OrderID, "err", err)
				failed = append(failed, q.OrderID)
				continue
			}
			last++
			inv := q.Invoice
			inv.Number = number
			invs, pdfs = append(invs, inv), append(pdfs, body)
			md := events.Metadata{TraceParent: q.Details.TraceParent, TraceState: q.Details.TraceState}
			evs = append(evs, events.New(md.Context(ctx), Source, contract.TopicBillingPayments, q.OrderID, contract.InvoiceIssued,
				billing.InvoiceIssued{OrderID: q.OrderID, InvoiceNumber: number, AmountMinor: q.AmountMinor, Currency: q.Currency, IssuedAt: now},
				events.Cause{ID: q.Details.CauseID, CorrelationID: q.Details.CorrelationID}))
		}
		if len(failed) > 0 {
			if err := postgres.PostponeRendering(ctx, tx, failed); err != nil {
				return err
			}
		}
		if len(invs) == 0 {
			return nil
		}
		if err := postgres.IssueInvoices(ctx, tx, year, last, invs, pdfs, now); err != nil {
			return err
		}
		return is.app.outbox.Append(ctx, tx, evs...) // the commit wakes the relay
	})
	if err != nil {
		return taken, err
	}
	return taken, nil
}
