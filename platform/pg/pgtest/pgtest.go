// Package pgtest gives integration tests their own Postgres database on the stack that
// `make test` starts, so tests run in parallel and in any order without sharing state.
package pgtest

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/platform/pg"
)

// AdminURLEnv names the variable holding a superuser URL of the test cluster.
const AdminURLEnv = "ORDERFLOW_PG_ADMIN_URL"

// AdminURL returns the admin URL or skips the test when the stack is not running (plain
// `go test` outside `make test`). Under CI (CI set) a missing stack fails instead.
func AdminURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(AdminURLEnv)
	if u == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set: run the tests with `make test`", AdminURLEnv)
		}
		t.Skipf("%s is not set: integration tests run with `make test`", AdminURLEnv)
	}
	return u
}

// NewDatabase creates an empty database for the test, migrated with platform's and the
// given service migrations (nil for none), drops it when the test ends, and returns its
// URL.
func NewDatabase(t testing.TB, migrations fs.FS) string {
	t.Helper()
	admin := AdminURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	name := "t_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:20]
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connect admin: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Password, cfg.Host, cfg.Port, name)
	pool, err := pg.Open(ctx, url, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := pg.Migrate(ctx, pool, migrations, nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return url
}

// NewPool is NewDatabase plus a pool that is closed when the test ends.
func NewPool(t testing.TB, migrations fs.FS) *pgxpool.Pool {
	t.Helper()
	url := NewDatabase(t, migrations)
	pool, err := pg.Open(context.Background(), url, 20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// ServiceURL returns the stack's URL of a service's own database with its own role
// (ORDERFLOW_<SERVICE>_DATABASE_URL), or skips the test outside `make test`.
func ServiceURL(t testing.TB, service string) string {
	t.Helper()
	env := "ORDERFLOW_" + strings.ToUpper(service) + "_DATABASE_URL"
	u := os.Getenv(env)
	if u == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set: run the tests with `make test`", env)
		}
		t.Skipf("%s is not set: integration tests run with `make test`", env)
	}
	return u
}

// AssertIsolated checks that service's role reaches its own database and none of the
// others: each service owns its data, and the stack enforces it.
func AssertIsolated(t testing.TB, service string, others ...string) {
	t.Helper()
	own := ServiceURL(t, service)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, own)
	if err != nil {
		t.Fatalf("%s cannot reach its own database: %v", service, err)
	}
	conn.Close(ctx)
	cfg, err := pgx.ParseConfig(own)
	if err != nil {
		t.Fatal(err)
	}
	for _, other := range append(others, "postgres", "schemaregistry") {
		c := cfg.Copy()
		c.Database = other
		conn, err := pgx.ConnectConfig(ctx, c)
		if err == nil {
			conn.Close(ctx)
			t.Errorf("role %s can connect to database %s", service, other)
		}
	}
}

// AwaitCount polls query (a count) every 20 ms until it returns want, and fails the test
// with the last count when timeout passes first.
func AwaitCount(t testing.TB, pool *pgxpool.Pool, timeout time.Duration, want int64, query string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var n int64
		if err := pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s counts %d after %v, want %d", query, n, timeout, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
