package events

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/avro/billing"
	"github.com/orderflow/orderflow/avro/contract"
	"github.com/orderflow/orderflow/platform/projection"
	"github.com/orderflow/orderflow/services/billing/internal/adapters/postgres"
)

// Revenue is the read model behind GET /v1/revenue/daily: authorized and voided amounts
// per UTC day and currency. It was added after billing went live; its first start fills
// it from the payment history.
func Revenue() *projection.Model {
	m := &projection.Model{
		Name:   "revenue",
		Tables: []projection.Table{{Name: "revenue_per_day", Key: "day, currency"}, {Name: "revenue_events", Key: "event_id"}},
		Topics: []string{contract.TopicBillingPayments},
		Apply:  applyRevenue,
	}
	projection.On[billing.PaymentAuthorized](m, contract.PaymentAuthorized)
	projection.On[billing.PaymentVoided](m, contract.PaymentVoided)
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
	days := map[key]postgres.DailyRevenue{}
	row := func(at time.Time, currency string) postgres.DailyRevenue {
		k := key{at.UTC().Truncate(24 * time.Hour), currency}
		r, ok := days[k]
		if !ok {
			r = postgres.DailyRevenue{Day: k.day, Currency: currency}
		}
		return r
	}
	for _, e := range fresh {
		switch p := e.Payload.(type) {
		case billing.PaymentAuthorized:
			r := row(p.AuthorizedAt, p.Currency)
			r.Authorizations++
			r.AuthorizedMinor += p.AmountMinor
			days[key{r.Day, r.Currency}] = r
		case billing.PaymentVoided:
			r := row(p.VoidedAt, p.Currency)
			r.Voids++
			r.VoidedMinor += p.AmountMinor
			days[key{r.Day, r.Currency}] = r
		}
	}
	return postgres.AddRevenue(ctx, tx, t.Of("revenue_per_day"), slices.Collect(maps.Values(days)))
}
