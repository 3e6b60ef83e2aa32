// Package http is crm's JSON API: customer timelines.
package http

import (
	"log/slog"
	"net/http"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/platform/httpserver"
	"github.com/orderflow/orderflow/services/crm/internal/adapters/postgres"
)

// Register adds crm's routes to srv.
func Register(srv *httpserver.Server, pool *pgxpool.Pool, log *slog.Logger) {
	srv.Handle("GET /v1/customers/{id}/timeline", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if id == "" || len(id) > 64 {
			httpserver.Invalid("id", "a customer id has 1 to 64 characters").Write(w)
			return
		}
		steps, err := postgres.CustomerTimeline(r.Context(), pool, id, 1000)
		if err != nil {
			log.ErrorContext(r.Context(), "read timeline", "err", err)
			httpserver.WriteError(w, http.StatusServiceUnavailable, "unavailable", "", "try again")
			return
		}
		if len(steps) == 0 {
			httpserver.WriteError(w, http.StatusNotFound, "customer_not_found", "id", "no orders known for customer "+id)
			return
		}
		httpserver.WriteJSON(w, http.StatusOK, map[string]any{"customer_id": id, "timeline": steps})
	}))
}
