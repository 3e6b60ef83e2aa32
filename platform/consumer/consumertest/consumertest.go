// Package consumertest runs consumer groups in integration tests and records how they
// batched what they applied.
package consumertest

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/platform/consumer"
)

// Run runs c until the test ends; an error it returns then fails the test.
func Run(t testing.TB, c *consumer.Consumer) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

// Batches records the keys of every batch a group's Preload opens.
type Batches struct {
	mu   sync.Mutex
	keys [][]string
}

// Preload returns preload, recording each batch's keys first.
func (b *Batches) Preload(preload func(*pgx.Batch, []string) any) func(*pgx.Batch, []string) any {
	return func(q *pgx.Batch, keys []string) any {
		b.mu.Lock()
		b.keys = append(b.keys, slices.Clone(keys))
		b.mu.Unlock()
		return preload(q, keys)
	}
}

// RequireOne fails the test now unless exactly one batch was opened: a test that means
// to apply its events together did not.
func (b *Batches) RequireOne(t testing.TB) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.keys) != 1 {
		t.Fatalf("the events were applied in %d batches (%v), want 1: the test did not put them in one", len(b.keys), b.keys)
	}
}
