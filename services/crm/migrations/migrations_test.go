package migrations_test

import (
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

// Autovacuum analyzes the timeline after as many added rows as it holds, not after a
// tenth: an analysis reads the whole table.
func TestTimelineIsAnalyzedWhenItHasDoubled(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, migrations.FS)
	if got := pgtest.RelOptions(t, pool, "timeline"); !slices.Contains(got, "autovacuum_analyze_scale_factor=1.0") {
		t.Fatalf("timeline storage parameters %v, want autovacuum_analyze_scale_factor=1.0", got)
	}
}
