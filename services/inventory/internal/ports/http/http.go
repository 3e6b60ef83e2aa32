// Package http is inventory's JSON API: stock levels and (admin) stock receipts.
package http

import (
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/platform/httpserver"
	"github.com/orderflow/orderflow/services/inventory/internal/adapters/postgres"
	"github.com/orderflow/orderflow/services/inventory/internal/app"
)

var (
	skuPattern     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	receiptPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,100}$`)
)

// Register adds inventory's routes to srv.
func Register(srv *httpserver.Server, a *app.App, pool *pgxpool.Pool, log *slog.Logger, adminToken string) {
	srv.Handle("GET /v1/stock/{sku}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sku := r.PathValue("sku")
		av, err := postgres.GetAvailability(r.Context(), pool, sku)
		if errors.Is(err, postgres.ErrUnknownSKU) {
			httpserver.WriteError(w, http.StatusNotFound, "unknown_sku", "sku", "no stock known for "+strconv.Quote(sku))
			return
		}
		if err != nil {
			log.ErrorContext(r.Context(), "read availability", "err", err)
			httpserver.WriteError(w, http.StatusServiceUnavailable, "unavailable", "", "try again")
			return
		}
		httpserver.WriteJSON(w, http.StatusOK, av)
	}))
	srv.Handle("POST /v1/stock/{sku}/receipts", httpserver.RequireToken(adminToken, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sku := r.PathValue("sku")
		var body struct {
			ReceiptID    string `json:"receipt_id"`
			Quantity     int    `json:"quantity"`
			LowThreshold *int   `json:"low_threshold"`
		}
		if err := httpserver.DecodeJSON(w, r, &body, 4096); err != nil {
			err.Write(w)
			return
		}
		switch {
		case !skuPattern.MatchString(sku):
			httpserver.Invalid("sku", "%q is not a SKU", sku).Write(w)
			return
		case !receiptPattern.MatchString(body.ReceiptID):
			httpserver.Invalid("receipt_id", "is required: 1-100 letters, digits or ._:-, unique per receipt").Write(w)
			return
		case body.Quantity < 1 || body.Quantity > 1_000_000:
			httpserver.Invalid("quantity", "%d is outside 1..1000000", body.Quantity).Write(w)
			return
		case body.LowThreshold != nil && (*body.LowThreshold < 0 || *body.LowThreshold > 1_000_000):
			httpserver.Invalid("low_threshold", "%d is outside 0..1000000", *body.LowThreshold).Write(w)
			return
		}
		level, err := a.Receive(r.Context(), app.Receipt{ID: body.ReceiptID, SKU: sku, Quantity: body.Quantity, LowThreshold: body.LowThreshold})
		if errors.Is(err, app.ErrDuplicateReceipt) {
			httpserver.WriteError(w, http.StatusConflict, "duplicate_receipt", "receipt_id", "receipt "+body.ReceiptID+" was already recorded")
			return
		}
		if err != nil {
			log.ErrorContext(r.Context(), "receive stock", "err", err)
			httpserver.WriteError(w, http.StatusServiceUnavailable, "unavailable", "", "try again with the same receipt_id")
			return
		}
		httpserver.WriteJSON(w, http.StatusCreated, map[string]any{"sku": level.SKU, "on_hand": level.OnHand,
			"reserved": level.Reserved, "available": level.Available(), "low_threshold": level.LowThreshold})
	})))
}
