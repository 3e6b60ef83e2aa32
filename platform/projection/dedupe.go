package projection

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// FirstSeen records the ids of batch's events in table, a table of the model with one
// uuid primary key column event_id, and returns the events that were not recorded
// before, each id once: the events that take effect. It is how a model whose rows are
// not idempotent by themselves (sums, counts) applies an event published twice only
// once.
func FirstSeen(ctx context.Context, tx pgx.Tx, table string, batch []Event) ([]Event, error) {
	ids := make([]string, len(batch))
	for i, e := range batch {
		ids[i] = e.ID
	}
	rows, err := tx.Query(ctx, fmt.Sprintf(`INSERT INTO %s (event_id) SELECT DISTINCT unnest($1::uuid[])
	                                        ON CONFLICT DO NOTHING RETURNING event_id::text`, table), ids)
	if err != nil {
		return nil, fmt.Errorf("record event ids in %s: %w", table, err)
	}
	fresh, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("record event ids in %s: %w", table, err)
	}
	seen := make(map[string]bool, len(fresh))
	for _, id := range fresh {
		seen[id] = true
	}
	out := make([]Event, 0, len(fresh))
	for _, e := range batch {
		if c := strings.ToLower(e.ID); seen[c] {
			out = append(out, e)
			delete(seen, c) // a second copy in the same batch is a duplicate
		}
	}
	return out, nil
}

// Append inserts rows (values in the order of columns) into the model's AppendOnly
// table live: with COPY while a rebuild fills its shadow in bulk, otherwise with
// multi-row INSERTs that skip rows whose key is already there.
func Append(ctx context.Context, tx pgx.Tx, t Tables, live string, columns []string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	if t.Bulk(live) {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{t.Name(live)}, columns, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("copy into %s: %w", t.Name(live), err)
		}
		return nil
	}
	per := max(1, 65535/len(columns)) // rows per statement within the protocol's parameter limit
	for start := 0; start < len(rows); start += per {
		chunk := rows[start:min(start+per, len(rows))]
		var sql strings.Builder
		fmt.Fprintf(&sql, "INSERT INTO %s (%s) VALUES ", t.Of(live), quoteAll(columns))
		args := make([]any, 0, len(chunk)*len(columns))
		for i, r := range chunk {
			if i > 0 {
				sql.WriteString(", ")
			}
			sql.WriteByte('(')
			for j := range r {
				if j > 0 {
					sql.WriteString(", ")
				}
				args = append(args, r[j])
				fmt.Fprintf(&sql, "$%d", len(args))
			}
			sql.WriteByte(')')
		}
		sql.WriteString(" ON CONFLICT DO NOTHING")
		// Every row count is another statement: do not fill the statement cache with them.
		if _, err := tx.Exec(ctx, sql.String(), append([]any{pgx.QueryExecModeExec}, args...)...); err != nil {
			return fmt.Errorf("insert into %s: %w", t.Name(live), err)
		}
	}
	return nil
}

func quoteAll(columns []string) string {
	q := make([]string, len(columns))
	for i, c := range columns {
		q[i] = pgx.Identifier{c}.Sanitize()
	}
	return strings.Join(q, ", ")
}

// UUID returns s as the value to hand Append (or any pgx query) for a uuid column: a
// pgtype.UUID, which pgx encodes directly in COPY's binary format and in text, where a
// string costs a failed encode plan per value. A string that is no UUID is returned as it
// is, so that the database names the problem.
func UUID(s string) any {
	if u, err := uuid.Parse(s); err == nil {
		return pgtype.UUID{Bytes: u, Valid: true}
	}
	return s
}
