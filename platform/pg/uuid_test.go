package pg_test

import (
	"context"
	"slices"
	"testing"

	"github.com/orderflow/orderflow/platform/pg"
	"github.com/orderflow/orderflow/platform/pg/pgtest"
)

// Ids passed as a uuid[] of Go strings reach PostgreSQL as the same UUIDs whichever
// format they went in, and a malformed one is refused by PostgreSQL as a data error, as it
// was before the pool wrote canonical ones in binary.
func TestUUIDArrayOfStringsAsPostgreSQLReadsIt(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, nil)
	ctx := context.Background()
	read := func(ids []string) ([]string, error) {
		var got []string
		err := pool.QueryRow(ctx, `SELECT array_agg(u::text ORDER BY n) FROM unnest($1::uuid[]) WITH ORDINALITY AS a(u, n)`, ids).Scan(&got)
		return got, err
	}
	for _, c := range []struct{ in, want []string }{
		{[]string{"0b7c6a2e-3f35-4bd7-9b9a-3c3f3e6f0a11", "FFFFFFFF-0000-4000-8000-00000000000A"},
			[]string{"0b7c6a2e-3f35-4bd7-9b9a-3c3f3e6f0a11", "ffffffff-0000-4000-8000-00000000000a"}},
		{[]string{"{0b7c6a2e-3f35-4bd7-9b9a-3c3f3e6f0a11}", "0b7c6a2e3f354bd79b9a3c3f3e6f0a12"},
			[]string{"0b7c6a2e-3f35-4bd7-9b9a-3c3f3e6f0a11", "0b7c6a2e-3f35-4bd7-9b9a-3c3f3e6f0a12"}},
	} {
		got, err := read(c.in)
		if err != nil {
			t.Fatalf("%q: %v", c.in, err)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%q read as %q, want %q", c.in, got, c.want)
		}
	}
	for _, bad := range [][]string{{"0b7c6a2e-3f35-4bd7-9b9a-3c3f3e6f0a1g"}, {"0b7c6a2e-3f35-4bd7-9b9a-3c3f3e6f0a11", "order-1"}} {
		if _, err := read(bad); !pg.IsDataError(err) {
			t.Errorf("%q: err = %v, want PostgreSQL's invalid input error", bad, err)
		}
	}
}
