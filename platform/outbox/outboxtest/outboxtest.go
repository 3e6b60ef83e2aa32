// Package outboxtest puts events on their topics the way a service does, for integration
// tests that need records waiting before a consumer starts: through an outbox and a relay
// on the stack that `make test` starts.
package outboxtest

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/kafka/kafkatest"
	"github.com/orderflow/orderflow/platform/outbox"
	"github.com/orderflow/orderflow/platform/serde"
)

// Publish appends evs in one transaction of pool's database and relays them to their
// topics, then deletes them from the outbox, so that what the test's handlers append
// later is all the outbox holds. It returns once Kafka acknowledged every one of them.
func Publish(t testing.TB, pool *pgxpool.Pool, evs ...events.Event) {
	t.Helper()
	ctx := t.Context()
	ob := outbox.New(serde.New(kafkatest.RegistryURL(t), 5*time.Second))
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return ob.Append(ctx, tx, evs...) }); err != nil {
		t.Fatal(err)
	}
	relay, err := outbox.NewRelay(pool, kafkatest.Client(t), slog.New(slog.NewTextHandler(io.Discard, nil)),
		outbox.RelayOptions{Fallback: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- relay.Run(rctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := relay.Backlog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the relay left %d of %d events unpublished after 30s", n, len(evs))
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `DELETE FROM platform_outbox`); err != nil {
		t.Fatal(err)
	}
}
