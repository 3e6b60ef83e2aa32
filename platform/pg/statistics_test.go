package pg_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/platform/pg"
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

// A service's database samples 3,000 rows per ANALYZE instead of 30,000: its default
// statistics target is 10, for autovacuum's workers as for any new session.
func TestDatabaseSamplesTenthOfTheDefault(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t, nil)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url) // a session opened after the migration
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var target string
	if err := conn.QueryRow(ctx, `SHOW default_statistics_target`).Scan(&target); err != nil {
		t.Fatal(err)
	}
	if target != "10" {
		t.Fatalf("default_statistics_target = %s in a new session, want 10", target)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE probe AS SELECT g AS v FROM generate_series(1, 5000) AS g; ANALYZE probe`); err != nil {
		t.Fatal(err)
	}
	var buckets int
	if err := conn.QueryRow(ctx, `SELECT cardinality(histogram_bounds::text::int[]) FROM pg_stats WHERE tablename = 'probe'`).Scan(&buckets); err != nil {
		t.Fatal(err)
	}
	if buckets != 11 {
		t.Fatalf("ANALYZE kept %d histogram bounds, want 11 (a target of 10)", buckets)
	}
}

// A role that does not own its database still migrates: the setting is left to the
// database's owner, with a notice.
func TestMigrationsRunForARoleThatDoesNotOwnTheDatabase(t *testing.T) {
	t.Parallel()
	admin := pgtest.AdminURL(t)
	ctx := context.Background()
	aconn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer aconn.Close(ctx)
	suffix := strings.ReplaceAll(uuid.NewString(), "-", "")[:16]
	// The stack's pg_hba.conf lets a role into the database of its own name only.
	db, password := "t_notowner_"+suffix, uuid.NewString()
	role := db
	for _, stmt := range []string{
		"CREATE DATABASE " + db,
		"CREATE ROLE " + role + " LOGIN PASSWORD '" + password + "'",
		"GRANT ALL ON DATABASE " + db + " TO " + role,
	} {
		if _, err := aconn.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { // after the deferred Close above: a connection of its own
		c, err := pgx.Connect(context.Background(), admin)
		if err != nil {
			t.Errorf("drop %s: %v", db, err)
			return
		}
		defer c.Close(context.Background())
		for _, stmt := range []string{"DROP DATABASE IF EXISTS " + db + " WITH (FORCE)", "DROP ROLE IF EXISTS " + role} {
			if _, err := c.Exec(context.Background(), stmt); err != nil {
				t.Errorf("%s: %v", stmt, err)
			}
		}
	})
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		t.Fatal(err)
	}
	dbAdmin, err := pgx.Connect(ctx, fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Password, cfg.Host, cfg.Port, db))
	if err != nil {
		t.Fatal(err)
	}
	_, err = dbAdmin.Exec(ctx, "GRANT CREATE ON SCHEMA public TO "+role) // PostgreSQL 15 grants it to the owner only
	_ = dbAdmin.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pg.Open(ctx, fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable", role, password, cfg.Host, cfg.Port, db), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := pg.Migrate(ctx, pool, nil, nil); err != nil {
		t.Fatalf("migrate as a role that does not own the database: %v", err)
	}
	var settings int
	if err := aconn.QueryRow(ctx, `SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = $1`, db).Scan(&settings); err != nil {
		t.Fatal(err)
	}
	if settings != 0 {
		t.Fatalf("a role that does not own the database changed %d of its settings", settings)
	}
}
