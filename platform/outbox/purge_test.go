package outbox_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/orderflow/orderflow/platform/kafka/kafkatest"
	"github.com/orderflow/orderflow/platform/outbox"
	"github.com/orderflow/orderflow/platform/pg/pgtest"
)

// A purge deletes the rows published before its cutoff, in chunks, and nothing else: not
// the recently published, and not a row never published, however old.
func TestPurgeOutboxDeletesOnlyRowsPublishedBeforeTheCutoff(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, nil)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO platform_outbox (topic, key, value, headers, created_at, published_at)
		SELECT 't', 'k' || i, '\x00', '[]', now() - interval '3 hours',
		       CASE WHEN i <= 12000 THEN now() - interval '2 hours'
		            WHEN i <= 12100 THEN now() - interval '1 minute' END
		  FROM generate_series(1, 12150) AS i`); err != nil {
		t.Fatal(err)
	}
	n, err := outbox.PurgeOutbox(ctx, pool, time.Now().Add(-time.Hour))
	if err != nil || n != 12000 {
		t.Fatalf("purge: %d rows, %v; want the 12000 published two hours ago", n, err)
	}
	var recent, unpublished int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE published_at IS NOT NULL), count(*) FILTER (WHERE published_at IS NULL)
		FROM platform_outbox`).Scan(&recent, &unpublished); err != nil {
		t.Fatal(err)
	}
	if recent != 100 || unpublished != 50 {
		t.Fatalf("left %d published and %d unpublished rows, want 100 and 50", recent, unpublished)
	}
	if n, err := outbox.PurgeOutbox(ctx, pool, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("a second purge: %d rows, %v; want none", n, err)
	}
}

// The leading relay purges on its own, between its passes: rows published past the
// retention go soon after it starts to lead.
func TestLeadingRelayPurges(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, nil)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO platform_outbox (topic, key, value, headers, published_at)
		SELECT 't', 'k' || i, '\x00', '[]', now() - interval '2 minutes' FROM generate_series(1, 7000) AS i`); err != nil {
		t.Fatal(err)
	}
	relay, err := outbox.NewRelay(pool, kafkatest.Client(t), slog.New(slog.NewTextHandler(io.Discard, nil)),
		outbox.RelayOptions{Retention: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- relay.Run(rctx) }()
	defer func() { stop(); <-done }()
	pgtest.AwaitCount(t, pool, 30*time.Second, 0, `SELECT count(*) FROM platform_outbox`)
}
