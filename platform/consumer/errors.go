package consumer

import (
	"errors"
	"fmt"

	"github.com/orderflow/orderflow/platform/pg"
)

// kind is how the runner treats a handler error.
type kind int

const (
	// unknown errors are retried up to Options.MaxAttempts, then dead-lettered: most are
	// bugs, and a bug must not stop its partition forever.
	unknown kind = iota
	// transient errors (database or network trouble) are retried for as long as it takes.
	transient
	// permanent errors are dead-lettered at once.
	permanent
)

type permanentError struct{ err error }

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() error   { return e.err }
func (e *permanentError) Permanent() bool { return true }

type transientError struct{ err error }

func (e *transientError) Error() string   { return e.err.Error() }
func (e *transientError) Unwrap() error   { return e.err }
func (e *transientError) Transient() bool { return true }

// Permanent marks err as one that no retry can fix (invalid content, a broken
// invariant): the record goes to the dead-letter topic at once and the partition moves
// on.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// Transient marks err as one that goes away by itself (a dependency is down): the record
// is retried with capped exponential backoff until it succeeds, while other partitions
// keep flowing.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &transientError{err}
}

// classify decides between retry and dead letter. Any error in the chain with a
// `Permanent() bool` method returning true is permanent (serde's decode errors are);
// errors with a `Transient() bool` method returning true (Transient, the registry being
// unreachable) and Postgres connection, serialization and deadlock errors are
// transient.
func classify(err error) kind {
	var p interface{ Permanent() bool }
	if errors.As(err, &p) && p.Permanent() {
		return permanent
	}
	var t interface{ Transient() bool }
	if (errors.As(err, &t) && t.Transient()) || pg.IsTransient(err) {
		return transient
	}
	return unknown
}

// PanicError is a handler panic turned into a permanent error.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string   { return fmt.Sprintf("handler panicked: %v", e.Value) }
func (e *PanicError) Permanent() bool { return true }
