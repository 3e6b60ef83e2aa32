package app_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/outbox"
	"github.com/orderflow/orderflow/platform/pg/pgtest"
	"github.com/orderflow/orderflow/platform/serde"
	"github.com/orderflow/orderflow/services/billing/internal/adapters/pdf"
	"github.com/orderflow/orderflow/services/billing/internal/adapters/postgres"
	"github.com/orderflow/orderflow/services/billing/internal/adapters/provider"
	"github.com/orderflow/orderflow/services/billing/internal/app"
	"github.com/orderflow/orderflow/services/billing/migrations"
)

func newApp(t *testing.T) (*pgxpool.Pool, *app.App) {
	t.Helper()
	registry := os.Getenv("ORDERFLOW_REGISTRY_URL")
	if registry == "" {
		t.Skip("ORDERFLOW_REGISTRY_URL is not set: run with `make test`")
	}
	return pgtest.NewPool(t, migrations.FS), app.New(outbox.New(serde.New(registry, 5*time.Second)), provider.NewLocal())
}

// authorize places n orders and authorizes each in its own transaction, in order.
func authorize(t *testing.T, pool *pgxpool.Pool, a *app.App, n int) []string {
	t.Helper()
	ctx := context.Background()
	var ids []string
	for range n {
		o := placed()
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			return a.Authorize(ctx, tx, events.Cause{ID: o.OrderID, CorrelationID: o.OrderID}, o)
		}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, o.OrderID)
	}
	return ids
}

func outboxRows(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM platform_outbox`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Authorizations queue invoices; the issuer numbers them without gaps in the order the
// authorizations committed and publishes InvoiceIssued for each. An invoice voided while
// it waited is never issued and takes no number; one voided after issue keeps its number.
func TestIssuerNumbersQueuedInvoices(t *testing.T) {
	t.Parallel()
	pool, a := newApp(t)
	ctx := context.Background()
	ids := authorize(t, pool, a, 5)
	inv, err := postgres.GetInvoiceOfOrder(ctx, pool, ids[0])
	if err != nil || inv.Status != postgres.Pending || inv.Number != "" || inv.IssuedAt != nil {
		t.Fatalf("queued invoice %+v %v, want PENDING without number", inv, err)
	}
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return a.Compensate(ctx, tx, events.Cause{}, ids[1], "order_cancelled") }); err != nil {
		t.Fatal(err)
	}
	before := outboxRows(t, pool)
	if n, err := postgres.CountPending(ctx, pool); err != nil || n != 4 {
		t.Fatalf("%d pending, %v; want 4 (the voided one is not)", n, err)
	}
	is := newIssuer(t, pool, a)
	if n, err := is.IssueBatch(ctx); err != nil || n != 4 {
		t.Fatalf("IssueBatch = %d, %v; want 4 issued", n, err)
	}
	if got := outboxRows(t, pool) - before; got != 4 {
		t.Fatalf("%d events appended, want 4 InvoiceIssued", got)
	}
	year := time.Now().UTC().Year()
	want := []string{postgres.InvoiceNumber(year, 1), "", postgres.InvoiceNumber(year, 2), postgres.InvoiceNumber(year, 3), postgres.InvoiceNumber(year, 4)}
	for i, id := range ids {
		inv, err := postgres.GetInvoiceOfOrder(ctx, pool, id)
		if err != nil || inv.Number != want[i] {
			t.Fatalf("invoice of order %d: %+v %v, want number %q", i, inv, err, want[i])
		}
		if i == 1 {
			if inv.Status != postgres.Voided {
				t.Fatalf("invoice voided while queued is %s", inv.Status)
			}
			continue
		}
		if inv.Status != postgres.Issued || inv.IssuedAt == nil {
			t.Fatalf("invoice %+v, want ISSUED", inv)
		}
		if pdf, err := postgres.InvoicePDF(ctx, pool, inv.Number); err != nil || len(pdf) < 500 || string(pdf[:5]) != "%PDF-" {
			t.Fatalf("PDF of %s: %d bytes, %v", inv.Number, len(pdf), err)
		}
	}
	if n, err := is.IssueBatch(ctx); err != nil || n != 0 {
		t.Fatalf("second IssueBatch = %d, %v; want nothing left", n, err)
	}
	if n, err := postgres.CountPending(ctx, pool); err != nil || n != 0 {
		t.Fatalf("%d pending after issuing, %v", n, err)
	}
	before = outboxRows(t, pool)
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return a.Compensate(ctx, tx, events.Cause{}, ids[0], "order_cancelled") }); err != nil {
		t.Fatal(err)
	}
	if got := outboxRows(t, pool) - before; got != 2 { // PaymentVoided and InvoiceVoided
		t.Fatalf("void of an issued invoice appended %d events, want 2", got)
	}
	if inv, _ := postgres.GetInvoiceOfOrder(ctx, pool, ids[0]); inv.Status != postgres.Voided || inv.Number != want[0] {
		t.Fatalf("voided issued invoice %+v, want VOIDED with its number", inv)
	}

	// Each voided issued invoice is answered by a credit note, numbered gaplessly in its
	// own series; one voided while queued needs none.
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return a.Compensate(ctx, tx, events.Cause{}, ids[2], "out_of_stock") }); err != nil {
		t.Fatal(err)
	}
	for i, cn := range map[int]string{0: postgres.CreditNoteNumber(year, 1), 1: "", 2: postgres.CreditNoteNumber(year, 2)} {
		inv, err := postgres.GetInvoiceOfOrder(ctx, pool, ids[i])
		if err != nil || inv.CreditNoteNumber != cn {
			t.Fatalf("invoice of order %d: %+v %v, want credit note %q", i, inv, err, cn)
		}
		if cn == "" {
			continue
		}
		if byNote, err := postgres.GetInvoice(ctx, pool, cn); err != nil || byNote.Number != want[i] {
			t.Fatalf("invoice by credit note %s: %+v %v, want %s", cn, byNote, err, want[i])
		}
		doc, err := postgres.InvoicePDF(ctx, pool, cn)
		if err != nil || string(doc[:5]) != "%PDF-" {
			t.Fatalf("PDF of %s: %d bytes, %v", cn, len(doc), err)
		}
		for _, text := range []string{"Credit note " + cn, "Cancels invoice " + want[i], "Order: " + ids[i], "Total credited"} {
			if !bytes.Contains(doc, []byte(text)) {
				t.Fatalf("credit note %s does not show %q", cn, text)
			}
		}
	}
}

// Two issuers (two replicas) draining one queue at once still give every invoice one
// number, gapless.
func TestIssuersInParallelStayGapless(t *testing.T) {
	t.Parallel()
	pool, a := newApp(t)
	ctx := context.Background()
	ids := authorize(t, pool, a, 12)
	var wg sync.WaitGroup
	for range 2 {
		is := newIssuer(t, pool, a)
		is.BatchSize = 2
		wg.Go(func() {
			for {
				n, err := is.IssueBatch(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if n == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	var got []string
	for _, id := range ids {
		inv, err := postgres.GetInvoiceOfOrder(ctx, pool, id)
		if err != nil || inv.Status != postgres.Issued {
			t.Fatalf("invoice %+v %v, want ISSUED", inv, err)
		}
		got = append(got, inv.Number)
	}
	year := time.Now().UTC().Year()
	var want []string
	for n := 1; n <= len(ids); n++ {
		want = append(want, postgres.InvoiceNumber(year, n))
	}
	if !slices.Equal(got, want) { // queue order is authorization order
		t.Fatalf("numbers %v, want %v", got, want)
	}
}

func newIssuer(t *testing.T, pool *pgxpool.Pool, a *app.App) *app.Issuer {
	t.Helper()
	is, err := app.NewIssuer(pool, a, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return is
}

// An invoice whose PDF cannot be rendered stays pending without a number and is put off,
// so it does not hold up the invoices queued after it; once it renders again it is
// issued with the next number.
func TestUnrenderableInvoiceDoesNotBlockTheQueue(t *testing.T) {
	t.Parallel()
	pool, a := newApp(t)
	ctx := context.Background()
	ids := authorize(t, pool, a, 3)
	is := newIssuer(t, pool, a)
	is.BatchSize = 1 // the failing invoice would fill every batch if it stayed at the head
	is.Render = func(inv pdf.Invoice) ([]byte, error) {
		if inv.OrderID == ids[0] {
			return nil, errors.New("font table corrupt")
		}
		return pdf.Render(inv), nil
	}
	for range 3 {
		if _, err := is.IssueBatch(ctx); err != nil {
			t.Fatal(err)
		}
	}
	year := time.Now().UTC().Year()
	for i, want := range []string{"", postgres.InvoiceNumber(year, 1), postgres.InvoiceNumber(year, 2)} {
		inv, err := postgres.GetInvoiceOfOrder(ctx, pool, ids[i])
		if err != nil || inv.Number != want {
			t.Fatalf("invoice of order %d: %+v %v, want number %q", i, inv, err, want)
		}
	}
	var failures int
	var due time.Time
	if err := pool.QueryRow(ctx, `SELECT render_failures, next_render_at FROM invoices WHERE order_id = $1`, ids[0]).Scan(&failures, &due); err != nil {
		t.Fatal(err)
	}
	if failures != 1 || !due.After(time.Now()) {
		t.Fatalf("after a failed rendering: %d failures, next attempt %s; want 1 and later than now", failures, due)
	}
	if n, err := postgres.CountPending(ctx, pool); err != nil || n != 1 {
		t.Fatalf("%d pending, %v; want the unrenderable one", n, err)
	}
	is.Render = func(inv pdf.Invoice) ([]byte, error) { return pdf.Render(inv), nil } // fixed; and its next attempt is due
	if _, err := pool.Exec(ctx, `UPDATE invoices SET next_render_at = now() WHERE order_id = $1`, ids[0]); err != nil {
		t.Fatal(err)
	}
	if n, err := is.IssueBatch(ctx); err != nil || n != 1 {
		t.Fatalf("IssueBatch = %d, %v; want the postponed invoice", n, err)
	}
	if inv, err := postgres.GetInvoiceOfOrder(ctx, pool, ids[0]); err != nil || inv.Number != postgres.InvoiceNumber(year, 3) || inv.Status != postgres.Issued {
		t.Fatalf("postponed invoice %+v %v, want ISSUED with number 3", inv, err)
	}
}

// After a wake-up the issuer lingers, so that invoices queued by authorizations close
// together are issued in one transaction (one issue time) instead of one each. With a
// Linger of 0 the first invoice goes alone and the test fails.
func TestIssuerLingersToIssueTogether(t *testing.T) {
	t.Parallel()
	pool, a := newApp(t)
	ctx, cancel := context.WithCancel(context.Background())
	is := newIssuer(t, pool, a)
	is.Linger, is.Fallback = 500*time.Millisecond, time.Hour
	done := make(chan error, 1)
	go func() { done <- is.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	var ids []string
	for range 5 {
		ids = append(ids, authorize(t, pool, a, 1)...)
		is.Wake(ctx)
		time.Sleep(20 * time.Millisecond)
	}
	pgtest.AwaitCount(t, pool, 10*time.Second, 0, `SELECT count(*) FROM invoices WHERE status = 'PENDING'`)
	var issued []time.Time
	for _, id := range ids {
		inv, err := postgres.GetInvoiceOfOrder(ctx, pool, id)
		if err != nil || inv.IssuedAt == nil {
			t.Fatalf("invoice of %s: %+v %v", id, inv, err)
		}
		issued = append(issued, *inv.IssuedAt)
	}
	for i, at := range issued {
		if !at.Equal(issued[0]) {
			t.Fatalf("invoice %d issued at %v, the first at %v: not one transaction", i, at, issued[0])
		}
	}
}
