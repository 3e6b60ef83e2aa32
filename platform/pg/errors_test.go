package pg_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/orderflow/orderflow/platform/pg"
	"github.com/orderflow/orderflow/platform/pg/pgtest"
)

func TestIsDataErrorTakesDataExceptionsAndIntegrityViolationsOnly(t *testing.T) {
	for code, want := range map[string]bool{
		"23514": true,  // check_violation
		"23505": true,  // unique_violation
		"23502": true,  // not_null_violation
		"22003": true,  // numeric_value_out_of_range
		"22001": true,  // string_data_right_truncation
		"40001": false, // serialization_failure: retried as transient
		"40P01": false, // deadlock_detected
		"08006": false, // connection_failure
		"42501": false, // insufficient_privilege: an operator can fix it, a retry then passes
		"25P02": false, // in_failed_sql_transaction
		"2":     false, // malformed
	} {
		err := fmt.Errorf("commit: %w", &pgconn.PgError{Code: code})
		if got := pg.IsDataError(err); got != want {
			t.Errorf("IsDataError(%s) = %v, want %v", code, got, want)
		}
	}
	if pg.IsDataError(errors.New("check constraint violated")) {
		t.Error("IsDataError took an error that is not PostgreSQL's")
	}
	if pg.IsDataError(nil) {
		t.Error("IsDataError(nil) = true")
	}
}

// PostgreSQL's own answer to a NUL character in a text parameter is what
// IsUnstorableText takes; a value that is merely out of range is not.
func TestIsUnstorableTextTakesPostgreSQLsAnswerToANul(t *testing.T) {
	pool := pgtest.NewPool(t, nil)
	var out string
	err := pool.QueryRow(context.Background(), `SELECT $1::text`, "a\x00b").Scan(&out)
	if !pg.IsUnstorableText(err) {
		t.Fatalf("a NUL in a text parameter: %v, want IsUnstorableText", err)
	}
	err = pool.QueryRow(context.Background(), `SELECT $1::int2::text`, "70000").Scan(&out)
	if err == nil || pg.IsUnstorableText(err) {
		t.Fatalf("an int2 out of range: %v, want an error that is not IsUnstorableText", err)
	}
	if pg.IsUnstorableText(errors.New("invalid byte sequence")) || pg.IsUnstorableText(nil) {
		t.Fatal("IsUnstorableText took an error that is not PostgreSQL's")
	}
}
