package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/avro/shop"
	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/services/billing/internal/adapters/postgres"
)

// An order's OrderPlaced and its compensation (StockRejected) arrive on different topics
// and are applied by different partition workers, so they can run at the same time.
// These tests force each interleaving: the first handler's transaction is held open
// while the second one starts, the second must wait for it (the per-order lock), and
// the final state must be the compensated one either way. Without the lock both
// transactions see no payment and the invoice stays ISSUED under a VOIDED payment, which
// is the bug CI once caught in the out-of-stock e2e test.
func TestPlacedAndCompensationNeverInterleave(t *testing.T) {
	for _, first := range []string{"authorize", "void"} {
		t.Run(first+" first", func(t *testing.T) {
			t.Parallel()
			pool, a := newApp(t)
			ctx := context.Background()
			order := placed()
			authorize := func(tx pgx.Tx) error { return a.Authorize(ctx, tx, events.Cause{CorrelationID: order.OrderID}, order) }
			void := func(tx pgx.Tx) error {
				return a.Compensate(ctx, tx, events.Cause{CorrelationID: order.OrderID}, order.OrderID, "out_of_stock")
			}
			one, two := authorize, void
			if first == "void" {
				one, two = void, authorize
			}

			tx1, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx1.Rollback(ctx)
			if err := one(tx1); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- pgx.BeginFunc(ctx, pool, two) }()
			waitUntilBlocked(t, pool)
			select {
			case err := <-done:
				t.Fatalf("the second handler finished (%v) while the first transaction was open", err)
			default:
			}
			if err := tx1.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}

			p, err := postgres.GetPayment(ctx, pool, order.OrderID)
			if err != nil || p.Status != postgres.Voided {
				t.Fatalf("payment %+v %v, want VOIDED", p, err)
			}
			inv, err := postgres.GetInvoiceOfOrder(ctx, pool, order.OrderID)
			switch first {
			case "authorize": // an invoice was issued, then voided
				if err != nil || inv.Status != "VOIDED" {
					t.Fatalf("invoice %+v %v, want VOIDED", inv, err)
				}
			case "void": // the marker stopped the authorization: no invoice at all
				if err == nil {
					t.Fatalf("invoice %+v issued for an order voided before it was placed", inv)
				}
			}
		})
	}
}

// waitUntilBlocked waits until a session of the test database waits for a lock.
func waitUntilBlocked(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
		                                             WHERE NOT l.granted AND a.datname = current_database()`).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the second handler never waited for the first transaction")
}

func placed() shop.OrderPlaced {
	return shop.OrderPlaced{OrderID: uuid.NewString(), CustomerID: "c-1", CustomerEmail: "c1@example.com", CustomerName: "Ada",
		Lines:    []shop.OrderLine{{Sku: "SKU-1", Name: "Thing", Quantity: 2, UnitPriceMinor: 500}},
		Currency: "EUR", TotalMinor: 1000, PaymentToken: "tok_visa",
		ShippingAddress: shop.ShippingAddress{Name: "Ada", Line1: "1 Main St", City: "Berlin", PostalCode: "10115", Country: "DE"},
		PlacedAt:        time.Now().UTC().Truncate(time.Millisecond)}
}
