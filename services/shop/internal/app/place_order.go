package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/platform/pg"
	"github.com/orderflow/orderflow/services/shop/internal/adapters/postgres"
	"github.com/orderflow/orderflow/services/shop/internal/domain/order"
)

// PlaceOrder is a customer's order as the API received it.
type PlaceOrder struct {
	IdempotencyKey string
	Customer       order.Customer
	Address        order.Address
	Lines          []order.Requested
	PaymentToken   string
	Currency       string
}

// Placed is the answer to a placement.
type Placed struct {
	OrderID string
	Status  order.Status
	// Replayed is true when an earlier request with the same Idempotency-Key placed it.
	Replayed bool
}

// ErrIdempotencyKeyReused reports a key sent again with a different body.
var ErrIdempotencyKeyReused = errors.New("this Idempotency-Key was used with a different request")

// PlaceOrder validates and prices the order from the catalog, stores it as PENDING and
// appends OrderPlaced, in one transaction. With an idempotency key, the same key and body
// return the first placement; the same key with another body is refused.
func (a *App) PlaceOrder(ctx context.Context, cmd PlaceOrder) (Placed, error) {
	// Refused before any round trip: a SKU the catalog query cannot even hold (a NUL
	// character) was a database error, and so a 503, not a 400 naming the line.
	req, err := order.Check(cmd.Customer, cmd.Address, cmd.Lines, cmd.PaymentToken, cmd.Currency)
	if err != nil {
		return Placed{}, err
	}
	var out Placed
	hash := requestHash(cmd)
	id := uuid.NewString()
	skus := make([]string, len(cmd.Lines))
	for i, l := range cmd.Lines {
		skus[i] = l.SKU
	}
	// Two round trips: BEGIN with the catalog's prices and the key's claim, then the order
	// and OrderPlaced with COMMIT (a third reads the key's owner if it was taken). Priced
	// from the catalog as it is when the transaction begins; a price change committing
	// meanwhile applies to the next order (the read does not lock the products).
	first := &pgx.Batch{}
	pg.QueueGenericPlans(first) // every statement finds its rows by key
	var catalog map[string]order.Product
	postgres.QueueProducts(first, skus, &catalog)
	claimed := true
	if cmd.IdempotencyKey != "" {
		postgres.QueueClaimIdempotencyKey(first, cmd.IdempotencyKey, hash, id, &claimed)
	}
	err = a.txWith(ctx, first, func(tx *pg.Tx) error {
		if !claimed {
			existing, existingHash, err := postgres.ExistingIdempotencyKey(ctx, tx, cmd.IdempotencyKey)
			if err != nil {
				return err
			}
			if !bytes.Equal(existingHash, hash) {
				return ErrIdempotencyKeyReused
			}
			out = Placed{OrderID: existing, Status: order.Pending, Replayed: true}
			return errReplay // roll back this attempt's claim
		}
		o, err := order.Place(id, req, func(sku string) (order.Product, bool) { p, ok := catalog[sku]; return p, ok }, a.now())
		if err != nil {
			return err
		}
		if err := postgres.DeferInsertOrder(tx, o); err != nil {
			return err
		}
		out = Placed{OrderID: o.ID, Status: o.Status}
		return a.outbox.Append(ctx, tx, orderPlaced(ctx, o))
	})
	if errors.Is(err, errReplay) {
		return out, nil
	}
	return out, err
}

var errReplay = errors.New("replayed placement")

// requestHash fingerprints everything that defines a placement.
func requestHash(cmd PlaceOrder) []byte {
	cmd.IdempotencyKey = ""
	b, _ := json.Marshal(cmd)
	sum := sha256.Sum256(b)
	return sum[:]
}
