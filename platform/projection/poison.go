package projection

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// applyErr is an error of Apply, with whether the same events will always cause it.
type applyErr struct {
	err       error
	permanent bool
}

func (e *applyErr) Error() string { return e.err.Error() }
func (e *applyErr) Unwrap() error { return e.err }

// apply runs m.Apply and classifies its failure: bad data (SQL class 22), a violated
// constraint (class 23) and a panic are permanent; anything else (a lost connection, a
// serialization failure, a bug in the SQL) is not, and is retried.
func (m *Model) apply(ctx context.Context, tx pgx.Tx, t Tables, evs []Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &applyErr{err: fmt.Errorf("apply panicked: %v\n%s", p, debug.Stack()), permanent: true}
		}
	}()
	if err := m.Apply(ctx, tx, t, evs); err != nil {
		var pgErr *pgconn.PgError
		perm := errors.As(err, &pgErr) && (pgErr.Code[:2] == "22" || pgErr.Code[:2] == "23")
		return &applyErr{err: err, permanent: perm}
	}
	return nil
}

func isPermanent(err error) bool {
	var ae *applyErr
	return errors.As(err, &ae) && ae.permanent
}

// isolate finds the events of evs that fail on their own with a permanent error, by
// applying halves in transactions that are rolled back. It returns their indexes and
// errors; a transient error on the way is returned as it is.
func isolate(ctx context.Context, q txBeginner, m *Model, t Tables, evs []Event) (map[int]error, error) {
	bad := map[int]error{}
	var try func(lo, hi int) error
	try = func(lo, hi int) error {
		tx, err := q.Begin(ctx)
		if err != nil {
			return err
		}
		err = m.apply(ctx, tx, t, evs[lo:hi])
		_ = tx.Rollback(ctx)
		switch {
		case err == nil:
			return nil
		case !isPermanent(err):
			return err
		case hi-lo == 1:
			bad[lo] = err
			return nil
		}
		mid := (lo + hi) / 2
		if err := try(lo, mid); err != nil {
			return err
		}
		return try(mid, hi)
	}
	if err := try(0, len(evs)); err != nil {
		return nil, err
	}
	return bad, nil
}

// without returns evs without the events at the indexes of bad, and the bad ones as
// records to dead-letter.
func without(evs []Event, bad map[int]error) ([]Event, []badRecord) {
	keep := make([]Event, 0, len(evs)-len(bad))
	var dead []badRecord
	for i, e := range evs {
		if err, ok := bad[i]; ok {
			dead = append(dead, badRecord{rec: e.rec, err: &RecordError{Topic: e.Topic, Partition: e.Partition,
				Offset: e.Offset, Type: e.Type, Err: err}})
			continue
		}
		keep = append(keep, e)
	}
	return keep, dead
}
