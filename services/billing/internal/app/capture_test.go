package app_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/services/billing/internal/adapters/postgres"
)

// A confirmed order's payment is captured once, however often OrderConfirmed arrives;
// cancelling it afterwards refunds the capture once (a void is no longer possible) and
// voids the invoice. Cancelling before confirmation voids, as before.
func TestCaptureThenRefund(t *testing.T) {
	t.Parallel()
	pool, a := newApp(t)
	ctx := context.Background()
	ids := authorize(t, pool, a, 2)
	confirmed, early := ids[0], ids[1]
	run := func(fn func(tx pgx.Tx) error) {
		t.Helper()
		if err := pgx.BeginFunc(ctx, pool, fn); err != nil {
			t.Fatal(err)
		}
	}
	cause := func(id string) events.Cause { return events.Cause{CorrelationID: id} }

	for range 2 { // a redelivered OrderConfirmed finds the payment captured
		run(func(tx pgx.Tx) error { return a.Capture(ctx, tx, cause(confirmed), confirmed) })
	}
	p, err := postgres.GetPayment(ctx, pool, confirmed)
	if err != nil || p.Status != postgres.Captured || p.CaptureID == "" {
		t.Fatalf("after OrderConfirmed: %+v %v, want CAPTURED with a capture id", p, err)
	}
	for range 2 {
		run(func(tx pgx.Tx) error { return a.Compensate(ctx, tx, cause(confirmed), confirmed, "order_cancelled") })
	}
	p, err = postgres.GetPayment(ctx, pool, confirmed)
	if err != nil || p.Status != postgres.Refunded || p.RefundID == "" || p.CaptureID == "" {
		t.Fatalf("after OrderCancelled: %+v %v, want REFUNDED with capture and refund ids", p, err)
	}

	run(func(tx pgx.Tx) error { return a.Compensate(ctx, tx, cause(early), early, "order_cancelled") })
	run(func(tx pgx.Tx) error { return a.Capture(ctx, tx, cause(early), early) }) // too late: nothing to capture
	if p, err := postgres.GetPayment(ctx, pool, early); err != nil || p.Status != postgres.Voided || p.CaptureID != "" {
		t.Fatalf("cancelled before confirmation: %+v %v, want VOIDED and never captured", p, err)
	}

	got := eventTypes(t, pool, confirmed)
	want := []string{"PaymentAuthorized", "PaymentCaptured", "PaymentRefunded"}
	if !slices.Equal(got, want) {
		t.Fatalf("events of the confirmed order: %v, want %v (and InvoiceVoided if the issuer had numbered it)", got, want)
	}
	if got := eventTypes(t, pool, early); !slices.Equal(got, []string{"PaymentAuthorized", "PaymentVoided"}) {
		t.Fatalf("events of the order cancelled early: %v", got)
	}

	// OrderConfirmed for an order billing never authorized is a bug upstream: permanent.
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		return a.Capture(ctx, tx, events.Cause{}, "00000000-0000-0000-0000-000000000001")
	})
	var perm interface{ Permanent() bool }
	if !errors.As(err, &perm) || !perm.Permanent() {
		t.Fatalf("capture of an unknown order: %v, want a permanent error", err)
	}
}

// eventTypes lists the payment events billing appended for an order, in outbox order.
func eventTypes(t *testing.T, pool *pgxpool.Pool, orderID string) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT split_part(jsonb_path_query_first(headers, '$[*] ? (@.k == "ce_type").v') #>> '{}', '.', 3)
		  FROM platform_outbox WHERE key = $1 ORDER BY id`, orderID)
	if err != nil {
		t.Fatal(err)
	}
	types, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(types, func(s string) bool { return s == "InvoiceIssued" || s == "InvoiceVoided" })
}
