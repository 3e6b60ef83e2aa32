// Package http is billing's JSON API: payments, invoices and their PDFs.
package http

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/platform/httpserver"
	"github.com/orderflow/orderflow/services/billing/internal/adapters/postgres"
)

// Register adds billing's routes to srv.
func Register(srv *httpserver.Server, pool *pgxpool.Pool, log *slog.Logger) {
	fail := func(w http.ResponseWriter, r *http.Request, what, field string, err error) {
		if errors.Is(err, postgres.ErrNotFound) {
			httpserver.WriteError(w, http.StatusNotFound, what+"_not_found", field, "no "+what+" "+strconv.Quote(r.PathValue(field)))
			return
		}
		log.ErrorContext(r.Context(), "request failed", "path", r.URL.Path, "err", err)
		httpserver.WriteError(w, http.StatusServiceUnavailable, "unavailable", "", "try again")
	}
	srv.Handle("GET /v1/payments/{order_id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("order_id")
		if uuid.Validate(id) != nil {
			fail(w, r, "payment", "order_id", postgres.ErrNotFound)
			return
		}
		p, err := postgres.GetPayment(r.Context(), pool, id)
		if err != nil {
			fail(w, r, "payment", "order_id", err)
			return
		}
		httpserver.WriteJSON(w, http.StatusOK, p)
	}))
	srv.Handle("GET /v1/orders/{order_id}/invoice", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("order_id")
		if uuid.Validate(id) != nil {
			fail(w, r, "invoice", "order_id", postgres.ErrNotFound)
			return
		}
		inv, err := postgres.GetInvoiceOfOrder(r.Context(), pool, id)
		if err != nil {
			fail(w, r, "invoice", "order_id", err)
			return
		}
		httpserver.WriteJSON(w, http.StatusOK, inv)
	}))
	srv.Handle("GET /v1/invoices/{number}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inv, err := postgres.GetInvoice(r.Context(), pool, r.PathValue("number"))
		if err != nil {
			fail(w, r, "invoice", "number", err)
			return
		}
		httpserver.WriteJSON(w, http.StatusOK, inv)
	}))
	srv.Handle("GET /v1/invoices/{number}/pdf", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := postgres.InvoicePDF(r.Context(), pool, r.PathValue("number"))
		if err != nil {
			fail(w, r, "invoice", "number", err)
			return
		}
		w.Header().Set("Content-Type", "application/pdf")
		w.Header().Set("Content-Disposition", `inline; filename="`+r.PathValue("number")+`.pdf"`)
		_, _ = w.Write(body)
	}))
}
