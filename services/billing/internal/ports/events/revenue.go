package events

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/avro/billing"
	"github.com/orderflow/orderflow/avro/contract"
	"github.com/orderflow/orderflow/platform/projection"
	"github.com/orderflow/orderflow/services/billing/internal/adapters/postgres"
)

// Revenue is the read model behind GET /v1/revenue/daily: authorized, voided, captured
// and refunded amounts per UTC day and currency. It was added after billing went live;
// its first start fills it from the payment history.
func Revenue() *projection.Model {
	m := &projection.Model{
		Name:   "revenue",
		Tables: []projection.Table{{Name: "revenue_per_day", Key: "day, currency"}, {Name: "revenue_events", Key: "event_id"}},
		Topics: []string{contract.TopicBillingPayments},
		Apply:  applyRevenue,
	}
	projection.On[billing.PaymentAuthorized](m, contract.PaymentAuthorized)
	projection.On[billing.PaymentVoided](m, contract.PaymentVoided)
	projection.On[billing.PaymentCaptured](m, contract.PaymentCaptured)
	projection.On[billing.PaymentRefunded](m, contract.PaymentRefunded)
	return m
}

func applyRevenue(ctx context.Context, tx pgx.Tx, t projection.Tables, batch []projection.Event) error {
	fresh, err := projection.FirstSeen(ctx, tx, t.Of("revenue_events"), batch)
	if err != nil {
		return err
	}
	type key struct {
		day      time.Time
		currency string
	}
	days := map[key]*postgres.DailyRevenue{}
	// add counts one payment event of amount, at a time in a currency, into the count and
	// sum that field picks from its day's row.
	add := func(at time.Time, currency string, amount int64, field func(*postgres.DailyRevenue) (count, sum *int64)) {
		k := key{at.UTC().Truncate(24 * time.Hour), currency}
		r, ok := days[k]
		if !ok {
			r = &postgres.DailyRevenue{Day: k.day, Currency: currency}
			days[k] = r
		}
		count, sum := field(r)
		*count++
		*sum += amount
	}
	for _, e := range fresh {
		switch p := e.Payload.(type) {
		case billing.PaymentAuthorized:
			add(p.AuthorizedAt, p.Currency, p.AmountMinor, func(r *postgres.DailyRevenue) (*int64, *int64) { return &r.Authorizations, &r.AuthorizedMinor })
		case billing.PaymentVoided:
			add(p.VoidedAt, p.Currency, p.AmountMinor, func(r *postgres.DailyRevenue) (*int64, *int64) { return &r.Voids, &r.VoidedMinor })
		case billing.PaymentCaptured:
			add(p.CapturedAt, p.Currency, p.AmountMinor, func(r *postgres.DailyRevenue) (*int64, *int64) { return &r.Captures, &r.CapturedMinor })
		case billing.PaymentRefunded:
			add(p.RefundedAt, p.Currency, p.AmountMinor, func(r *postgres.DailyRevenue) (*int64, *int64) { return &r.Refunds, &r.RefundedMinor })
		}
	}
	rows := make([]postgres.DailyRevenue, 0, len(days))
	for _, r := range days {
		rows = append(rows, *r)
	}
	return postgres.AddRevenue(ctx, tx, t.Of("revenue_per_day"), rows)
}
