package projection

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// querier is a connection, a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// state is a built model's bookkeeping.
type state struct {
	epoch   int64
	offsets offsets
}

// errNotBuilt reports a model that has never been built: it has no bookkeeping row.
var errNotBuilt = errors.New("read model has never been built")

// loadState reads the model's epoch and offsets, or errNotBuilt.
func loadState(ctx context.Context, q querier, model string) (state, error) {
	s := state{offsets: offsets{}}
	err := q.QueryRow(ctx, `SELECT epoch FROM platform_projections WHERE model = $1`, model).Scan(&s.epoch)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, errNotBuilt
	}
	if err != nil {
		return s, fmt.Errorf("read state of %s: %w", model, err)
	}
	rows, err := q.Query(ctx, `SELECT topic, partition, next_offset FROM platform_projection_offsets WHERE model = $1`, model)
	if err != nil {
		return s, fmt.Errorf("read offsets of %s: %w", model, err)
	}
	defer rows.Close()
	for rows.Next() {
		var p position
		var off int64
		if err := rows.Scan(&p.Topic, &p.Partition, &off); err != nil {
			return s, err
		}
		s.offsets[p] = off
	}
	return s, rows.Err()
}

// saveOffsets upserts offsets of the model in tx, in one statement.
func saveOffsets(ctx context.Context, tx pgx.Tx, model string, offs offsets) error {
	b := &pgx.Batch{}
	queueOffsets(b, model, offs)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("save offsets of %s: %w", model, err)
	}
	return nil
}

// queueOffsets queues in b the statement that saves offs.
func queueOffsets(b *pgx.Batch, model string, offs offsets) {
	if len(offs) == 0 {
		return
	}
	topics := make([]string, 0, len(offs))
	parts := make([]int32, 0, len(offs))
	next := make([]int64, 0, len(offs))
	for p, o := range offs {
		topics = append(topics, p.Topic)
		parts = append(parts, p.Partition)
		next = append(next, o)
	}
	b.Queue(`INSERT INTO platform_projection_offsets (model, topic, partition, next_offset)
	         SELECT $1, t, p, o FROM unnest($2::text[], $3::int[], $4::bigint[]) AS u (t, p, o)
	         ON CONFLICT (model, topic, partition) DO UPDATE SET next_offset = excluded.next_offset`,
		model, topics, parts, next)
}
