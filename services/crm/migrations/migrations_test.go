package migrations_test

import (
	"context"
	"slices"
	"testing"

	"github.com/orderflow/orderflow/platform/pg/pgtest"
	"github.com/orderflow/orderflow/services/crm/migrations"
)

// The migrations apply cleanly to an empty database, after platform's.
func TestMigrationsApply(t *testing.T) {
	t.Parallel()
	pgtest.NewDatabase(t, migrations.FS)
}

// The crm role reaches its own database and no other service's.
func TestRoleIsolation(t *testing.T) {
	t.Parallel()
	pgtest.AssertIsolated(t, "crm", "shop", "inventory", "billing", "logistics")
}

// ANALYZE keeps statistics of the customer timeline for order_id alone.
func TestTimelineIsAnalyzedByOrderOnly(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, migrations.FS)
	if _, err := pool.Exec(context.Background(), `INSERT INTO timeline (event_id, order_id, at, service, event, detail)
		SELECT gen_random_uuid(), ('00000000-0000-0000-0000-' || lpad((i / 6)::text, 12, '0'))::uuid,
		       now() + i * interval '1 ms', 'crm', 'CustomerNotified', 'x'
		FROM generate_series(1, 400) AS i`); err != nil {
		t.Fatal(err)
	}
	if got := pgtest.AnalyzedColumns(t, pool, "timeline"); !slices.Equal(got, []string{"order_id"}) {
		t.Fatalf("columns with statistics after ANALYZE = %v, want [order_id]", got)
	}
}
