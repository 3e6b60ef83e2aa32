// Package http is logistics' JSON API: shipments, labels and (admin) dispatch.
package http

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/platform/httpserver"
	"github.com/orderflow/orderflow/services/logistics/internal/adapters/postgres"
	"github.com/orderflow/orderflow/services/logistics/internal/app"
)

// Register adds logistics' routes to srv.
func Register(srv *httpserver.Server, a *app.App, pool *pgxpool.Pool, log *slog.Logger, adminToken string) {
	fail := func(w http.ResponseWriter, r *http.Request, err error) {
		id := strconv.Quote(r.PathValue("order_id"))
		switch {
		case errors.Is(err, postgres.ErrNotFound):
			httpserver.WriteError(w, http.StatusNotFound, "shipment_not_found", "order_id", "no shipment for order "+id)
		case errors.Is(err, app.ErrNotReady):
			httpserver.WriteError(w, http.StatusConflict, "shipment_not_ready", "order_id", err.Error())
		case errors.Is(err, app.ErrNotDispatchable):
			httpserver.WriteError(w, http.StatusConflict, "shipment_cancelled", "order_id", err.Error())
		case errors.Is(err, app.ErrAlreadyShipped):
			httpserver.WriteError(w, http.StatusConflict, "shipment_dispatched", "order_id", err.Error())
		default:
			log.ErrorContext(r.Context(), "request failed", "path", r.URL.Path, "err", err)
			httpserver.WriteError(w, http.StatusServiceUnavailable, "unavailable", "", "try again")
		}
	}
	valid := func(w http.ResponseWriter, r *http.Request) bool {
		if uuid.Validate(r.PathValue("order_id")) != nil {
			fail(w, r, postgres.ErrNotFound)
			return false
		}
		return true
	}
	srv.Handle("GET /v1/shipments/{order_id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !valid(w, r) {
			return
		}
		s, err := postgres.Get(r.Context(), pool, r.PathValue("order_id"))
		if err != nil {
			fail(w, r, err)
			return
		}
		httpserver.WriteJSON(w, http.StatusOK, s)
	}))
	srv.Handle("GET /v1/shipments/{order_id}/label", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !valid(w, r) {
			return
		}
		body, err := postgres.Label(r.Context(), pool, r.PathValue("order_id"))
		if err != nil {
			fail(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/pdf")
		_, _ = w.Write(body)
	}))
	srv.Handle("POST /v1/shipments/{order_id}/dispatch", httpserver.RequireToken(adminToken, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !valid(w, r) {
			return
		}
		s, err := a.Dispatch(r.Context(), r.PathValue("order_id"))
		if err != nil {
			fail(w, r, err)
			return
		}
		httpserver.WriteJSON(w, http.StatusOK, s)
	})))
}
