package app

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/services/shop/internal/adapters/postgres"
	"github.com/orderflow/orderflow/services/shop/internal/domain/order"
)

// Cancellation is the answer to a customer's cancellation.
type Cancellation struct {
	// Status is the order's status, unchanged by the request.
	Status order.Status
	// Cancellation is order.CancelRequested: logistics decides, and the order becomes
	// CANCELLED when it agrees or ships when the parcel had already left.
	Cancellation order.Cancellation
}

// CancelOrder passes the customer's cancellation of an order to logistics, which holds
// the parcel and alone can tell whether it is still in the warehouse: the shop may not
// have heard of a dispatch yet. It appends OrderCancellationRequested; logistics answers
// ShipmentCancelled (the shop then cancels the order and appends OrderCancelled, on
// which every service undoes its part) or has already published ShipmentDispatched. An
// order the shop knows shipped or cancelled is refused here; asking twice is answered
// like the first time (and sends the request again once the first went unanswered for
// order.ResendCancelAfter).
func (a *App) CancelOrder(ctx context.Context, id string) (Cancellation, error) {
	var c Cancellation
	err := a.tx(ctx, func(tx pgx.Tx) error {
		o, err := postgres.GetForUpdate(ctx, tx, id)
		if err != nil {
			return err
		}
		send, err := o.RequestCancel(a.now())
		if err != nil {
			return err
		}
		c = Cancellation{Status: o.Status, Cancellation: order.CancelRequested}
		if !send {
			return nil
		}
		if err := postgres.UpdateOrder(ctx, tx, o); err != nil {
			return err
		}
		return a.outbox.Append(ctx, tx, orderCancellationRequested(ctx, o))
	})
	return c, err
}
