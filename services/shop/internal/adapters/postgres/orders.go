// Package postgres stores the shop's write model (catalog, orders, idempotency keys) and
// its order view read model in the shop's own database.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/orderflow/orderflow/platform/pg"
	"github.com/orderflow/orderflow/services/shop/internal/domain/order"
)

// UpsertProduct creates or replaces a catalog entry.
func UpsertProduct(ctx context.Context, q pgx.Tx, p order.Product) error {
	_, err := q.Exec(ctx, `INSERT INTO products (sku, name, unit_price_minor, currency) VALUES ($1, $2, $3, $4)
	                       ON CONFLICT (sku) DO UPDATE SET name = $2, unit_price_minor = $3, currency = $4, updated_at = now()`,
		p.SKU, p.Name, p.UnitPriceMinor, p.Currency)
	if err != nil {
		return fmt.Errorf("upsert product %s: %w", p.SKU, err)
	}
	return nil
}

// ListProducts returns the whole catalog by SKU.
func ListProducts(ctx context.Context, q pgx.Tx) ([]order.Product, error) {
	rows, err := q.Query(ctx, `SELECT sku, name, unit_price_minor, currency FROM products ORDER BY sku`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (order.Product, error) {
		var p order.Product
		err := r.Scan(&p.SKU, &p.Name, &p.UnitPriceMinor, &p.Currency)
		return p, err
	})
}

// QueueProducts queues in b the read of the catalog entries of skus into catalog, which
// holds them once b ran.
func QueueProducts(b *pgx.Batch, skus []string, catalog *map[string]order.Product) {
	b.Queue(`SELECT sku, name, unit_price_minor, currency FROM products WHERE sku = ANY($1)`, skus).Query(func(rows pgx.Rows) error {
		out := make(map[string]order.Product, len(skus))
		for rows.Next() {
			var p order.Product
			if err := rows.Scan(&p.SKU, &p.Name, &p.UnitPriceMinor, &p.Currency); err != nil {
				return fmt.Errorf("read catalog: %w", err)
			}
			out[p.SKU] = p
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read catalog: %w", err)
		}
		*catalog = out
		return nil
	})
}

// QueueClaimIdempotencyKey queues in b the claim of key for the order orderID, which the
// same transaction inserts afterwards (the key's reference to the order is checked at
// COMMIT). claimed reports, once b ran, whether the key was free; when it was not,
// ExistingIdempotencyKey tells whose it is, and the transaction must roll back. A
// transaction claiming a key that another one holds uncommitted waits for it.
func QueueClaimIdempotencyKey(b *pgx.Batch, key string, hash []byte, orderID string, claimed *bool) {
	b.Queue(`INSERT INTO idempotency_keys (key, request_hash, order_id) VALUES ($1, $2, $3)
	         ON CONFLICT (key) DO NOTHING`, key, hash, orderID).Exec(func(tag pgconn.CommandTag) error {
		*claimed = tag.RowsAffected() == 1
		return nil
	})
}

// DeferInsertOrder queues the statement that stores a new order to run with tx's COMMIT.
func DeferInsertOrder(tx *pg.Tx, o *order.Order) error {
	lines, addr, err := toJSON(o)
	if err != nil {
		return err
	}
	tx.Defer(`INSERT INTO orders (id, customer_id, customer_email, customer_name, status, currency, total_minor,
	                             lines, shipping_address, placed_at, updated_at)
	          VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		o.ID, o.Customer.ID, o.Customer.Email, o.Customer.Name, o.Status, o.Currency, o.TotalMinor, lines, addr, o.PlacedAt, o.UpdatedAt)
	return nil
}

// ExistingIdempotencyKey reads the order and request hash a key was first used for.
func ExistingIdempotencyKey(ctx context.Context, tx pgx.Tx, key string) (orderID string, hash []byte, err error) {
	err = tx.QueryRow(ctx, `SELECT order_id::text, request_hash FROM idempotency_keys WHERE key = $1`, key).Scan(&orderID, &hash)
	if err != nil {
		return "", nil, fmt.Errorf("read idempotency key: %w", err)
	}
	return orderID, hash, nil
}

// RowQuerier reads one row: a pool, a connection or a transaction.
type RowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

const selectOrders = `SELECT id::text, customer_id, customer_email, customer_name, status, cancel_reason, currency,
                             total_minor, lines, shipping_address, stock_reserved, payment_authorized, cancel_requested_at,
                             placed_at, updated_at
                        FROM orders`

// GetForUpdate loads an order and locks it until tx ends.
func GetForUpdate(ctx context.Context, tx pgx.Tx, id string) (*order.Order, error) {
	return getOrder(ctx, tx, selectOrders+` WHERE id = $1 FOR UPDATE`, id)
}

// GetOrder loads an order without locking it.
func GetOrder(ctx context.Context, q RowQuerier, id string) (*order.Order, error) {
	return getOrder(ctx, q, selectOrders+` WHERE id = $1`, id)
}

// QueueLockOrders queues in b the read of the orders ids (UUIDs) with their row locks,
// held until the transaction ends; once b ran, found has been called with each order
// that exists.
func QueueLockOrders(b *pgx.Batch, ids []string, found func(*order.Order)) {
	b.Queue(selectOrders+` WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE`, ids).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			o, err := scanOrder(rows)
			if err != nil {
				return fmt.Errorf("load orders: %w", err)
			}
			found(o)
		}
		return rows.Err()
	})
}

func getOrder(ctx context.Context, q RowQuerier, query, id string) (*order.Order, error) {
	o, err := scanOrder(q.QueryRow(ctx, query, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, order.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load order %s: %w", id, err)
	}
	return o, nil
}

// scanOrder reads a row of selectOrders.
func scanOrder(row pgx.Row) (*order.Order, error) {
	var (
		o           order.Order
		reason      *string
		lines, addr []byte
	)
	err := row.Scan(&o.ID, &o.Customer.ID, &o.Customer.Email, &o.Customer.Name, &o.Status, &reason, &o.Currency, &o.TotalMinor,
		&lines, &addr, &o.StockReserved, &o.PaymentAuthorized, &o.CancelRequestedAt, &o.PlacedAt, &o.UpdatedAt)
	if err != nil {
		return nil, err
	}
	if reason != nil {
		o.CancelReason = *reason
	}
	if err := json.Unmarshal(lines, &o.Lines); err != nil {
		return nil, fmt.Errorf("order %s lines: %w", o.ID, err)
	}
	if err := json.Unmarshal(addr, &o.Address); err != nil {
		return nil, fmt.Errorf("order %s address: %w", o.ID, err)
	}
	return &o, nil
}

const updateOrder = `UPDATE orders SET status = $2, cancel_reason = $3, stock_reserved = $4,
                            payment_authorized = $5, cancel_requested_at = $6, updated_at = $7 WHERE id = $1`

// UpdateOrder writes back the mutable state of an order.
func UpdateOrder(ctx context.Context, tx pgx.Tx, o *order.Order) error {
	if _, err := tx.Exec(ctx, updateOrder, updateArgs(o)...); err != nil {
		return fmt.Errorf("update order %s: %w", o.ID, err)
	}
	return nil
}

// Deferrer is a transaction that sends statements with its COMMIT (a pg.Tx).
type Deferrer interface {
	Defer(sql string, args ...any) *pgx.QueuedQuery
}

// UpdateOrderAtCommit writes back the mutable state of an order with tx's COMMIT; the
// state is taken now. A failure fails the commit.
func UpdateOrderAtCommit(tx Deferrer, o *order.Order) {
	tx.Defer(updateOrder, updateArgs(o)...)
}

func updateArgs(o *order.Order) []any {
	var reason *string
	if r := o.CancelReason; r != "" {
		reason = &r
	}
	return []any{o.ID, o.Status, reason, o.StockReserved, o.PaymentAuthorized, o.CancelRequestedAt, o.UpdatedAt}
}

func toJSON(o *order.Order) (lines, addr []byte, err error) {
	if lines, err = json.Marshal(o.Lines); err != nil {
		return nil, nil, err
	}
	if addr, err = json.Marshal(o.Address); err != nil {
		return nil, nil, err
	}
	return lines, addr, nil
}
