package migrations_test

import (
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
