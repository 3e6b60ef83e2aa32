package pg_test

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/platform/pg/pgtest"
)

// ANALYZE of the outbox keeps statistics for the columns the relay's statements filter
// and order by, and skips the payload columns whose statistics only cost CPU.
func TestOutboxAnalyzeKeepsStatisticsOnlyForFilteredColumns(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, nil)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO platform_outbox (topic, key, value, headers, published_at)
		SELECT 'shop.orders', 'order-' || i, convert_to(repeat('x', i % 50), 'UTF8'),
		       jsonb_build_object('ce_id', i), CASE WHEN i % 2 = 0 THEN now() END
		FROM generate_series(1, 500) AS i`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE platform_outbox`); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT attname::text FROM pg_stats WHERE tablename = 'platform_outbox' ORDER BY attname`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"id", "published_at"}; !slices.Equal(got, want) {
		t.Fatalf("columns with statistics after ANALYZE = %v, want %v", got, want)
	}
}
