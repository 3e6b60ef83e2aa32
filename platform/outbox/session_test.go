package outbox

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/platform/pg/pgtest"
)

// The leader's session plans the pass's statement once and reuses the plan, which reads
// the outbox by its indexes although the plan was made while the table was empty.
func TestRelaySessionPlansThePassOnce(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, nil)
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if err := setUpSession(ctx, conn.Conn()); err != nil {
		t.Fatal(err)
	}
	for i, marks := range [][]int64{{}, {}, {1}, {1, 2}, {}, {3}, {}, {4, 5, 6}} {
		rows, err := conn.Query(ctx, passSQL, marks, 100)
		if err != nil {
			t.Fatalf("pass %d: %v", i, err)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			t.Fatalf("pass %d: %v", i, err)
		}
	}
	// Rows arrive after the plan was made; the plan stays until the table is analyzed.
	if _, err := conn.Exec(ctx, `INSERT INTO platform_outbox (topic, key, value, headers, published_at)
		SELECT 'shop.orders', 'order-' || i, '\x00', '{}', CASE WHEN i % 100 <> 0 THEN now() END
		FROM generate_series(1, 20000) AS i`); err != nil {
		t.Fatal(err)
	}
	var name string
	var generic, custom int64
	if err := conn.QueryRow(ctx, `SELECT name, generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1`,
		passSQL).Scan(&name, &generic, &custom); err != nil {
		t.Fatalf("the pass's prepared statement: %v", err)
	}
	if custom != 0 || generic != 8 {
		t.Fatalf("the pass was planned %d times for itself and ran %d times on the cached plan; want 0 and 8", custom, generic)
	}
	rows, err := conn.Query(ctx, `EXPLAIN EXECUTE `+name+`('{7,8}', 100)`)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(plan, "\n")
	if strings.Contains(text, "Seq Scan") || !strings.Contains(text, "platform_outbox_pending") {
		t.Fatalf("the pass's cached plan should read the pending rows by their index, not the table:\n%s", text)
	}
}
