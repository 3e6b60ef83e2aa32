package app

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/avro/contract"
	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/services/shop/internal/adapters/postgres"
	"github.com/orderflow/orderflow/services/shop/internal/domain/order"
)

// CancelOrder cancels an order on the customer's request, until it ships, and appends
// OrderCancelled so that every service undoes its part.
func (a *App) CancelOrder(ctx context.Context, id string) (order.Status, error) {
	var status order.Status
	err := a.tx(ctx, func(tx pgx.Tx) error {
		o, err := postgres.GetForUpdate(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := o.Cancel(contract.ReasonCustomerRequest, a.now()); err != nil {
			return err
		}
		if err := postgres.UpdateOrder(ctx, tx, o); err != nil {
			return err
		}
		status = o.Status
		return a.outbox.Append(ctx, tx, orderCancelled(ctx, o, "cancelled at the customer's request", events.Cause{CorrelationID: o.ID}))
	})
	return status, err
}
