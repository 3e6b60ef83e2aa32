package consumer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// The inbox is purged after Options.InboxRetention, and purging must not weaken what it
// guarantees. A record can reach a group again in three ways, and each stays covered:
//
//   - Kafka redelivers after a crash or a rebalance: from the last committed offset, at
//     most seconds of records, whose inbox rows are fresh.
//   - The group's committed offsets are lost (expired while the group was down, deleted,
//     reset by hand) and it re-reads its topics from the start. Every purge records, per
//     topic-partition, the highest offset whose row it deleted: the group's floor. Records
//     at or below the floor were applied long ago (or dead-lettered, or not for this
//     group) and are acknowledged without effect; above it the inbox rows still exist.
//   - The same event arrives at a new offset: a relay that published and crashed before
//     marking its rows publishes them again when it restarts (keep the retention longer
//     than any relay outage), or a dead letter is re-driven. A re-drive is addressed to
//     the group that dead-lettered it (HeaderRedriveFor); other groups applied the
//     original and skip it. The addressed group's inbox row of a re-driven record is
//     pinned and never purged, so re-driving it again, however much later, is harmless.

// Headers a re-drive adds to a dead letter it produces back to its source topic.
const (
	// HeaderRedrivenFrom is the dead-letter topic and offset the record came from.
	HeaderRedrivenFrom = "dlq_redriven_from"
	// HeaderRedriveFor names the consumer group whose dead letter it was: only that group
	// applies it. Re-drives written before this header existed reach every group.
	HeaderRedriveFor = "dlq_redriven_for"
)

// DefaultInboxRetention is how long inbox rows are kept unless Options says otherwise.
const DefaultInboxRetention = 7 * 24 * time.Hour

// purgeChunk is how many inbox rows one purge transaction deletes at most.
const purgeChunk = 10_000

// redriveTarget reports whether r is a re-driven dead letter and, if the re-drive said
// so, the group it is addressed to.
func redriveTarget(r *kgo.Record) (group string, redriven bool) {
	for _, h := range r.Headers {
		switch h.Key {
		case HeaderRedrivenFrom:
			redriven = true
		case HeaderRedriveFor:
			group = string(h.Value)
		}
	}
	return group, redriven
}

// loadFloors reads the group's inbox floors when the worker's partitions changed since
// the last read.
func (w *worker) loadFloors() error {
	w.mu.Lock()
	gen := w.partsGen
	w.mu.Unlock()
	if w.floors != nil && w.floorsGen == gen {
		return nil
	}
	rows, err := w.c.pool.Query(w.ctx, `SELECT topic, partition, "offset" FROM platform_inbox_floors WHERE consumer = $1`, w.c.group)
	if err != nil {
		return fmt.Errorf("read inbox floors: %w", err)
	}
	defer rows.Close()
	floors := map[tp]int64{}
	for rows.Next() {
		var k tp
		var offset int64
		if err := rows.Scan(&k.topic, &k.partition, &offset); err != nil {
			return fmt.Errorf("read inbox floors: %w", err)
		}
		floors[k] = offset
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read inbox floors: %w", err)
	}
	w.floors, w.floorsGen = floors, gen
	return nil
}

// floorOf is the floor of r's partition, -1 when it has none.
func (w *worker) floorOf(r *kgo.Record) int64 {
	if f, ok := w.floors[tpOf(r)]; ok {
		return f
	}
	return -1
}

// belowFloor acknowledges p without effect: it lies at or below its partition's floor.
func (w *worker) belowFloor(p *pending) {
	if p.route == nil && p.err == nil {
		return
	}
	if p.route != nil {
		w.c.metrics.duplicates.Add(w.ctx, 1, w.attrsOf(p.rec))
	}
	if k := tpOf(p.rec); !w.floorLogged[k] {
		w.floorLogged[k] = true
		w.c.log.InfoContext(w.ctx, "skipping records at or below the inbox floor: the group applied them before its inbox rows were purged",
			"topic", p.rec.Topic, "partition", p.rec.Partition, "floor", w.floorOf(p.rec), "offset", p.rec.Offset)
	}
	p.route, p.err = nil, nil
}

// PurgeInbox deletes group's inbox rows applied before cutoff, except pinned ones, and
// raises the group's floors to the highest offset deleted per topic-partition. It takes
// the oldest rows first, in transactions of up to 10,000 rows, each starting where the
// last one stopped (so a large backlog is not re-read chunk after chunk), and returns
// how many rows it deleted. Replicas may run it at once: a transaction-scoped advisory
// lock lets one of them do the work.
func PurgeInbox(ctx context.Context, pool *pgxpool.Pool, group string, cutoff time.Time) (int64, error) {
	var total int64
	from := time.Time{} // -infinity for the first chunk
	for {
		var n int64
		var last *time.Time
		err := pool.QueryRow(ctx, `
			WITH lock AS (SELECT pg_try_advisory_xact_lock(hashtextextended('inbox-purge/' || $1, 0)) AS held),
			gone AS (
				DELETE FROM platform_inbox WHERE ctid = ANY(ARRAY(
					SELECT ctid FROM platform_inbox, lock
					WHERE lock.held AND consumer = $1 AND applied_at >= $2 AND applied_at < $3 AND NOT pinned
					ORDER BY applied_at LIMIT $4))
				RETURNING topic, partition, "offset", applied_at),
			floors AS (
				INSERT INTO platform_inbox_floors AS f (consumer, topic, partition, "offset")
				SELECT $1, topic, partition, max("offset") FROM gone GROUP BY topic, partition
				ON CONFLICT (consumer, topic, partition) DO UPDATE SET "offset" = greatest(f."offset", excluded."offset"))
			SELECT count(*), max(applied_at) FROM gone`, group, from, cutoff, purgeChunk).Scan(&n, &last)
		if err != nil {
			return total, fmt.Errorf("purge inbox of %s: %w", group, err)
		}
		total += n
		if n < purgeChunk || last == nil {
			return total, nil
		}
		from = *last
	}
}

// purgeLoop purges the group's inbox past its retention now and then (every tenth of the
// retention, at most every ten minutes, jittered) until ctx ends.
func (c *Consumer) purgeLoop(ctx context.Context) {
	every := min(c.opts.InboxRetention/10, 10*time.Minute)
	for {
		d := every/2 + rand.N(every)
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		start := time.Now()
		n, err := PurgeInbox(ctx, c.pool, c.group, start.Add(-c.opts.InboxRetention))
		group := metric.WithAttributes(attribute.String("consumer_group", c.group))
		c.metrics.purged.Add(ctx, n, group)
		if err != nil {
			if ctx.Err() == nil {
				c.metrics.purgeFailures.Add(ctx, 1, group)
				c.log.WarnContext(ctx, "inbox purge failed; retrying later", "err", err)
			}
			continue
		}
		if n > 0 {
			c.log.InfoContext(ctx, "inbox purged", "rows", n, "retention", c.opts.InboxRetention.String(),
				"took", time.Since(start).String())
		}
	}
}
