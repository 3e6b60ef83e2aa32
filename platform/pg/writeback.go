package pg

import "github.com/jackc/pgx/v5"

// Committer is a transaction that runs statements with its COMMIT; *Tx is one.
type Committer interface {
	BeforeCommit(fn func(b *pgx.Batch))
}

// WriteBack gathers the aggregates a transaction changed, to write each once, as it is
// when the transaction commits, in the COMMIT's round trip. A consumer batch whose
// handlers share their aggregates (see consumer.Options.Preload) uses it: several
// events about one aggregate cost one write, and no round trip of their own. Its zero
// value is not usable: see NewWriteBack.
type WriteBack[T comparable] struct {
	queue   func(b *pgx.Batch, v T)
	changed []T // in the order first changed
	seen    map[T]bool
}

// NewWriteBack returns a WriteBack whose values queue writes them into the commit batch.
func NewWriteBack[T comparable](queue func(b *pgx.Batch, v T)) *WriteBack[T] {
	return &WriteBack[T]{queue: queue, seen: map[T]bool{}}
}

// Changed marks v to be written with tx's COMMIT; marking it again changes nothing. Use
// one WriteBack per transaction.
func (w *WriteBack[T]) Changed(tx Committer, v T) {
	if w.seen[v] {
		return
	}
	if len(w.changed) == 0 {
		tx.BeforeCommit(func(b *pgx.Batch) {
			for _, v := range w.changed {
				w.queue(b, v)
			}
		})
	}
	w.seen[v] = true
	w.changed = append(w.changed, v)
}
