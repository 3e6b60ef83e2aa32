// Package http is the shop's JSON API: placing, reading, listing and cancelling orders,
// and the catalog that prices them.
package http

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/text/currency"

	"github.com/orderflow/orderflow/platform/httpserver"
	"github.com/orderflow/orderflow/services/shop/internal/adapters/postgres"
	"github.com/orderflow/orderflow/services/shop/internal/app"
	"github.com/orderflow/orderflow/services/shop/internal/domain/order"
)

// maxBody bounds every request body: 50 lines of generous size fit in far less.
const maxBody = 64 << 10

// API serves the shop's routes.
type API struct {
	app  *app.App
	pool *pgxpool.Pool
	log  *slog.Logger
}

// Register adds the shop's routes to srv; adminToken guards the catalog writes.
func Register(srv *httpserver.Server, a *app.App, pool *pgxpool.Pool, log *slog.Logger, adminToken string) {
	api := &API{app: a, pool: pool, log: log}
	srv.Handle("POST /v1/orders", http.HandlerFunc(api.placeOrder))
	srv.Handle("GET /v1/orders", http.HandlerFunc(api.listOrders))
	srv.Handle("GET /v1/orders/{id}", http.HandlerFunc(api.getOrder))
	srv.Handle("POST /v1/orders/{id}/cancel", http.HandlerFunc(api.cancelOrder))
	srv.Handle("GET /v1/products", http.HandlerFunc(api.listProducts))
	srv.Handle("PUT /v1/products/{sku}", httpserver.RequireToken(adminToken, http.HandlerFunc(api.putProduct)))
}

type placeRequest struct {
	Customer        *order.Customer `json:"customer"`
	ShippingAddress *order.Address  `json:"shipping_address"`
	Lines           []struct {
		SKU      string `json:"sku"`
		Quantity int    `json:"quantity"`
	} `json:"lines"`
	PaymentToken string `json:"payment_token"`
	Currency     string `json:"currency"`
}

type placeResponse struct {
	OrderID string `json:"order_id"`
	Status  string `json:"status"`
	Links   struct {
		Self   string `json:"self"`
		Cancel string `json:"cancel"`
	} `json:"links"`
}

func (api *API) placeOrder(w http.ResponseWriter, r *http.Request) {
	var req placeRequest
	if err := httpserver.DecodeJSON(w, r, &req, maxBody); err != nil {
		err.Write(w)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if len(key) > 200 || strings.ContainsFunc(key, func(c rune) bool { return c < 0x21 || c > 0x7e }) {
		httpserver.Invalid("Idempotency-Key", "must be at most 200 visible ASCII characters").Write(w)
		return
	}
	if req.Customer == nil {
		httpserver.Invalid("customer", "is required").Write(w)
		return
	}
	if req.ShippingAddress == nil {
		httpserver.Invalid("shipping_address", "is required").Write(w)
		return
	}
	cmd := app.PlaceOrder{IdempotencyKey: key, Customer: *req.Customer, Address: *req.ShippingAddress,
		PaymentToken: req.PaymentToken, Currency: req.Currency}
	for _, l := range req.Lines {
		cmd.Lines = append(cmd.Lines, order.Requested{SKU: l.SKU, Quantity: l.Quantity})
	}
	placed, err := api.app.PlaceOrder(r.Context(), cmd)
	if err != nil {
		api.fail(w, r, err)
		return
	}
	var resp placeResponse
	resp.OrderID, resp.Status = placed.OrderID, string(placed.Status)
	resp.Links.Self = "/v1/orders/" + placed.OrderID
	resp.Links.Cancel = resp.Links.Self + "/cancel"
	w.Header().Set("Location", resp.Links.Self)
	if placed.Replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	httpserver.WriteJSON(w, http.StatusAccepted, resp)
}

func (api *API) getOrder(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if uuid.Validate(id) != nil {
		httpserver.WriteError(w, http.StatusNotFound, "order_not_found", "id", "no order "+strconv.Quote(id))
		return
	}
	v, err := postgres.GetView(r.Context(), api.pool, id)
	if err != nil {
		api.fail(w, r, err)
		return
	}
	httpserver.WriteJSON(w, http.StatusOK, v)
}

func (api *API) listOrders(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "customer_id", "status", "limit", "cursor":
		default:
			httpserver.Invalid(k, "unknown query parameter; use customer_id, status, limit, cursor").Write(w)
			return
		}
	}
	f := postgres.ListFilter{CustomerID: q.Get("customer_id"), Status: q.Get("status"), Limit: 50}
	switch order.Status(f.Status) {
	case "", order.Pending, order.Confirmed, order.Shipped, order.Cancelled:
	default:
		httpserver.Invalid("status", "%q is not PENDING, CONFIRMED, SHIPPED or CANCELLED", f.Status).Write(w)
		return
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 500 {
			httpserver.Invalid("limit", "%q is not a number from 1 to 500", s).Write(w)
			return
		}
		f.Limit = n
	}
	if c := q.Get("cursor"); c != "" {
		ts, id, ok := strings.Cut(c, "_")
		nanos, err := strconv.ParseInt(ts, 10, 64)
		if !ok || err != nil || uuid.Validate(id) != nil {
			httpserver.Invalid("cursor", "not a cursor this API returned").Write(w)
			return
		}
		f.AfterPlaced, f.AfterID = time.Unix(0, nanos).UTC(), id
	}
	views, err := postgres.ListViews(r.Context(), api.pool, f)
	if err != nil {
		api.fail(w, r, err)
		return
	}
	resp := map[string]any{"orders": views}
	if len(views) == f.Limit {
		last := views[len(views)-1]
		resp["next_cursor"] = strconv.FormatInt(last.PlacedAt.UnixNano(), 10) + "_" + last.OrderID
	}
	httpserver.WriteJSON(w, http.StatusOK, resp)
}

func (api *API) cancelOrder(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if uuid.Validate(id) != nil {
		httpserver.WriteError(w, http.StatusNotFound, "order_not_found", "id", "no order "+strconv.Quote(id))
		return
	}
	status, err := api.app.CancelOrder(r.Context(), id)
	if err != nil {
		api.fail(w, r, err)
		return
	}
	httpserver.WriteJSON(w, http.StatusAccepted, map[string]string{"order_id": id, "status": string(status)})
}

type productBody struct {
	Name           string `json:"name"`
	UnitPriceMinor *int64 `json:"unit_price_minor"`
	Currency       string `json:"currency"`
}

func (api *API) putProduct(w http.ResponseWriter, r *http.Request) {
	sku := r.PathValue("sku")
	var b productBody
	if err := httpserver.DecodeJSON(w, r, &b, maxBody); err != nil {
		err.Write(w)
		return
	}
	p := order.Product{SKU: sku, Name: strings.TrimSpace(b.Name), Currency: b.Currency}
	switch {
	case len(sku) == 0 || len(sku) > 64 || strings.ContainsAny(sku, " /\t"):
		httpserver.Invalid("sku", "%q is not a SKU", sku).Write(w)
		return
	case p.Name == "" || len(p.Name) > 200:
		httpserver.Invalid("name", "is required, at most 200 characters").Write(w)
		return
	case b.UnitPriceMinor == nil || *b.UnitPriceMinor < 0 || *b.UnitPriceMinor > 1e12:
		httpserver.Invalid("unit_price_minor", "is required, from 0 to 10^12 minor units").Write(w)
		return
	}
	if _, err := currency.ParseISO(p.Currency); err != nil || strings.ToUpper(p.Currency) != p.Currency {
		httpserver.Invalid("currency", "%q is not an ISO 4217 currency code", p.Currency).Write(w)
		return
	}
	p.UnitPriceMinor = *b.UnitPriceMinor
	if err := pgx.BeginFunc(r.Context(), api.pool, func(tx pgx.Tx) error { return postgres.UpsertProduct(r.Context(), tx, p) }); err != nil {
		api.fail(w, r, err)
		return
	}
	httpserver.WriteJSON(w, http.StatusOK, map[string]any{"sku": p.SKU, "name": p.Name, "unit_price_minor": p.UnitPriceMinor, "currency": p.Currency})
}

func (api *API) listProducts(w http.ResponseWriter, r *http.Request) {
	var ps []order.Product
	err := pgx.BeginFunc(r.Context(), api.pool, func(tx pgx.Tx) error {
		var err error
		ps, err = postgres.ListProducts(r.Context(), tx)
		return err
	})
	if err != nil {
		api.fail(w, r, err)
		return
	}
	out := make([]map[string]any, len(ps))
	for i, p := range ps {
		out[i] = map[string]any{"sku": p.SKU, "name": p.Name, "unit_price_minor": p.UnitPriceMinor, "currency": p.Currency}
	}
	httpserver.WriteJSON(w, http.StatusOK, map[string]any{"products": out})
}

// fail maps an error to its response; unexpected errors are logged here, once.
func (api *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var fe *order.FieldError
	switch {
	case errors.As(err, &fe):
		status := http.StatusBadRequest
		if fe.Code == "unknown_sku" || fe.Code == "currency_mismatch" {
			status = http.StatusUnprocessableEntity
		}
		httpserver.WriteError(w, status, fe.Code, fe.Field, fe.Message)
	case errors.Is(err, app.ErrIdempotencyKeyReused):
		httpserver.WriteError(w, http.StatusUnprocessableEntity, "idempotency_key_reused", "Idempotency-Key", err.Error())
	case errors.Is(err, order.ErrNotFound), errors.Is(err, postgres.ErrNotInView):
		httpserver.WriteError(w, http.StatusNotFound, "order_not_found", "id", "no order "+strconv.Quote(r.PathValue("id")))
	case errors.Is(err, order.ErrAlreadyShipped):
		httpserver.WriteError(w, http.StatusConflict, "order_shipped", "id", err.Error())
	case errors.Is(err, order.ErrAlreadyFinal):
		httpserver.WriteError(w, http.StatusConflict, "order_cancelled", "id", err.Error())
	case errors.Is(err, context.Canceled):
		httpserver.WriteError(w, 499, "client_closed", "", "the client went away")
	default:
		api.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		httpserver.WriteError(w, http.StatusServiceUnavailable, "unavailable", "", "the shop cannot answer right now; retry with the same Idempotency-Key")
	}
}
