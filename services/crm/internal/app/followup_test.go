package app_test

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hamba/avro/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/avro/crm"
	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/outbox"
	"github.com/orderflow/orderflow/platform/pg/pgtest"
	"github.com/orderflow/orderflow/platform/serde"
	"github.com/orderflow/orderflow/services/crm/internal/adapters/postgres"
	"github.com/orderflow/orderflow/services/crm/internal/adapters/smtp"
	"github.com/orderflow/orderflow/services/crm/internal/app"
	"github.com/orderflow/orderflow/services/crm/migrations"
)

// FollowUpScheduled names the order's customer. A dispatch that reaches crm before the
// order (another topic) schedules the follow-up at once and announces it only when
// OrderPlaced brings the customer; in the usual order it is announced at dispatch.
func TestFollowUpAnnouncedWithItsCustomer(t *testing.T) {
	t.Parallel()
	a, pool := newApp(t, smtp.Mailer{})
	ctx := context.Background()
	run := func(fn func(tx pgx.Tx) error) {
		t.Helper()
		if err := pgx.BeginFunc(ctx, pool, fn); err != nil {
			t.Fatal(err)
		}
	}
	shipped := func(id string) func(tx pgx.Tx) error {
		return func(tx pgx.Tx) error {
			return a.Shipped(ctx, tx, events.Cause{ID: "dispatch-" + id, CorrelationID: id}, id, "orderflow-post", "OF1", time.Now())
		}
	}
	placed := func(id, customer string) func(tx pgx.Tx) error {
		return func(tx pgx.Tx) error {
			return a.Placed(ctx, tx, postgres.Contact{OrderID: id, CustomerID: customer, Email: customer + "@example.com", Name: "Ada"})
		}
	}

	usual, overtaken := uuid.NewString(), uuid.NewString()
	run(placed(usual, "c-usual"))
	run(shipped(usual))
	if got := announced(t, pool, usual); len(got) != 1 || got[0] != "c-usual" {
		t.Fatalf("dispatch after the order: announcements %v, want one for c-usual", got)
	}

	run(shipped(overtaken))
	if got := announced(t, pool, overtaken); len(got) != 0 {
		t.Fatalf("dispatch before the order: announced %v before the customer was known", got)
	}
	run(placed(overtaken, "c-late"))
	run(placed(overtaken, "c-late")) // OrderPlaced again (a replay): announced once
	if got := announced(t, pool, overtaken); len(got) != 1 || got[0] != "c-late" {
		t.Fatalf("dispatch before the order: announcements %v after it, want one for c-late", got)
	}
}

// newApp is crm's application layer on a database of its own, publishing through the
// stack's registry (the test is skipped outside `make test`).
func newApp(t *testing.T, mailer smtp.Mailer) (*app.App, *pgxpool.Pool) {
	t.Helper()
	registry := os.Getenv("ORDERFLOW_REGISTRY_URL")
	if registry == "" {
		t.Skip("ORDERFLOW_REGISTRY_URL is not set: run with `make test`")
	}
	pool := pgtest.NewPool(t, migrations.FS)
	return app.New(pool, outbox.New(serde.New(registry, 5*time.Second)), mailer, time.Hour, slog.New(slog.DiscardHandler)), pool
}

// announced decodes the customer ids of an order's FollowUpScheduled events in crm's outbox.
func announced(t *testing.T, pool *pgxpool.Pool, orderID string) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT value FROM platform_outbox
		 WHERE key = $1 AND jsonb_path_query_first(headers, '$[*] ? (@.k == "ce_type").v') #>> '{}' = 'orderflow.crm.FollowUpScheduled.v1'
		 ORDER BY id`, orderID)
	if err != nil {
		t.Fatal(err)
	}
	values, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, v := range values {
		var f crm.FollowUpScheduled
		if err := avro.Unmarshal(f.Schema(), v[5:], &f); err != nil { // past the Confluent frame
			t.Fatal(err)
		}
		out = append(out, f.CustomerID)
	}
	return out
}
