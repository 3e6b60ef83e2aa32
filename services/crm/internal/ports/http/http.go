// Package http is crm's inbound API, defined in proto/crm/v1 and served as gRPC and
// REST: customer timelines.
package http

import (
	"context"
	"log/slog"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/orderflow/orderflow/platform/api"
	crmv1 "github.com/orderflow/orderflow/proto/crm/v1"
	"github.com/orderflow/orderflow/services/crm/internal/adapters/postgres"
)

// Server implements crmv1.CRMServiceServer.
type Server struct {
	crmv1.UnimplementedCRMServiceServer
	pool *pgxpool.Pool
	log  *slog.Logger
}

// Register serves the crm API on srv.
func Register(ctx context.Context, srv *api.Server, pool *pgxpool.Pool, log *slog.Logger) error {
	s := &Server{pool: pool, log: log}
	crmv1.RegisterCRMServiceServer(srv.GRPC, s)
	srv.SetOpenAPI(crmv1.OpenAPI)
	return crmv1.RegisterCRMServiceHandlerServer(ctx, srv.Gateway, s)
}

// GetCustomerTimeline implements crmv1.CRMServiceServer.
func (s *Server) GetCustomerTimeline(ctx context.Context, req *crmv1.GetCustomerTimelineRequest) (*crmv1.CustomerTimeline, error) {
	id := req.GetId()
	if id == "" || utf8.RuneCountInString(id) > 64 || strings.ContainsFunc(id, unicode.IsControl) { // as shop takes them
		return nil, api.Invalid("id", "a customer id has 1 to 64 characters and no control characters")
	}
	asked, err := api.PageOf(req.Limit, req.GetCursor(), 100, 1000)
	if err != nil {
		return nil, err
	}
	page := postgres.TimelinePage{CustomerID: id, Limit: asked.Limit, Before: asked.AfterAt, BeforeEventID: asked.AfterID}
	steps, err := postgres.CustomerTimeline(ctx, s.pool, page)
	if err != nil {
		return nil, api.Unavailable(ctx, s.log, "read timeline", err)
	}
	if len(steps) == 0 && page.BeforeEventID == "" {
		return nil, api.Error(codes.NotFound, "customer_not_found", "id", "no orders known for customer %s", id)
	}
	out := &crmv1.CustomerTimeline{CustomerId: id}
	for _, st := range steps {
		out.Timeline = append(out.Timeline, &crmv1.Step{OrderId: st.OrderID, At: timestamppb.New(st.At), Service: st.Service, Event: st.Event, Detail: st.Detail})
	}
	if len(steps) == page.Limit {
		last := steps[len(steps)-1]
		out.NextCursor = api.Cursor(last.At, last.EventID)
	}
	return out, nil
}
