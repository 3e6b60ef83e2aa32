package projection

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
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
