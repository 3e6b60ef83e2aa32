package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DailyRevenue is one row of the revenue read model: what was authorized, voided,
// captured and refunded on a UTC day in a currency.
type DailyRevenue struct {
	Day             time.Time
	Currency        string
	Authorizations  int64
	AuthorizedMinor int64
	Voids           int64
	VoidedMinor     int64
	Captures        int64
	CapturedMinor   int64
	Refunds         int64
	RefundedMinor   int64
}

// AddRevenue adds rows to the revenue table named table (quoted), in one statement.
func AddRevenue(ctx context.Context, tx pgx.Tx, table string, rows []DailyRevenue) error {
	if len(rows) == 0 {
		return nil
	}
	n := len(rows)
	days, curs := make([]time.Time, n), make([]string, n)
	counts := make([][]int64, 8) // authorizations, authorized, voids, voided, captures, captured, refunds, refunded
	for c := range counts {
		counts[c] = make([]int64, n)
	}
	for i, r := range rows {
		days[i], curs[i] = r.Day, r.Currency
		for c, v := range []int64{r.Authorizations, r.AuthorizedMinor, r.Voids, r.VoidedMinor, r.Captures, r.CapturedMinor, r.Refunds, r.RefundedMinor} {
			counts[c][i] = v
		}
	}
	_, err := tx.Exec(ctx, fmt.Sprintf(`
		INSERT INTO %s AS r (day, currency, authorizations, authorized_minor, voids, voided_minor,
		                     captures, captured_minor, refunds, refunded_minor)
		SELECT * FROM unnest($1::date[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
		                     $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[])
		ON CONFLICT (day, currency) DO UPDATE SET
		    authorizations = r.authorizations + excluded.authorizations,
		    authorized_minor = r.authorized_minor + excluded.authorized_minor,
		    voids = r.voids + excluded.voids,
		    voided_minor = r.voided_minor + excluded.voided_minor,
		    captures = r.captures + excluded.captures,
		    captured_minor = r.captured_minor + excluded.captured_minor,
		    refunds = r.refunds + excluded.refunds,
		    refunded_minor = r.refunded_minor + excluded.refunded_minor`, table),
		days, curs, counts[0], counts[1], counts[2], counts[3], counts[4], counts[5], counts[6], counts[7])
	if err != nil {
		return fmt.Errorf("write revenue: %w", err)
	}
	return nil
}

// RevenueFilter selects days of the revenue read model; zero fields do not filter.
type RevenueFilter struct {
	From, To time.Time
	Currency string
}

// ListRevenue returns the days of the revenue read model, newest first (at most 1000).
func ListRevenue(ctx context.Context, pool *pgxpool.Pool, f RevenueFilter) ([]DailyRevenue, error) {
	rows, err := pool.Query(ctx, `
		SELECT day, currency, authorizations, authorized_minor, voids, voided_minor, captures, captured_minor, refunds, refunded_minor
		  FROM revenue_per_day
		 WHERE ($1::date IS NULL OR day >= $1) AND ($2::date IS NULL OR day <= $2) AND ($3 = '' OR currency = $3)
		 ORDER BY day DESC, currency LIMIT 1000`, nullDay(f.From), nullDay(f.To), f.Currency)
	if err != nil {
		return nil, fmt.Errorf("read revenue: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (DailyRevenue, error) {
		var d DailyRevenue
		err := r.Scan(&d.Day, &d.Currency, &d.Authorizations, &d.AuthorizedMinor, &d.Voids, &d.VoidedMinor,
			&d.Captures, &d.CapturedMinor, &d.Refunds, &d.RefundedMinor)
		return d, err
	})
}

func nullDay(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
