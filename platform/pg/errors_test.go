package pg_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/orderflow/orderflow/platform/pg"
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
