// Package http is logistics' inbound API, defined in proto/logistics/v1 and served as
// gRPC and REST: shipments, labels and (admin) dispatch.
package http

import (
	"context"
	"errors"
	"log/slog"
	"strconv"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/orderflow/orderflow/platform/api"
	logisticsv1 "github.com/orderflow/orderflow/proto/logistics/v1"
	"github.com/orderflow/orderflow/services/logistics/internal/adapters/postgres"
	"github.com/orderflow/orderflow/services/logistics/internal/app"
)

// Server implements logisticsv1.LogisticsServiceServer.
type Server struct {
	logisticsv1.UnimplementedLogisticsServiceServer
	app        *app.App
	pool       *pgxpool.Pool
	log        *slog.Logger
	adminToken string
}

// Register serves the logistics API on srv; adminToken guards dispatch.
func Register(ctx context.Context, srv *api.Server, a *app.App, pool *pgxpool.Pool, log *slog.Logger, adminToken string) error {
	s := &Server{app: a, pool: pool, log: log, adminToken: adminToken}
	logisticsv1.RegisterLogisticsServiceServer(srv.GRPC, s)
	srv.SetOpenAPI(logisticsv1.OpenAPI)
	return logisticsv1.RegisterLogisticsServiceHandlerServer(ctx, srv.Gateway, s)
}

// GetShipment implements logisticsv1.LogisticsServiceServer.
func (s *Server) GetShipment(ctx context.Context, req *logisticsv1.GetShipmentRequest) (*logisticsv1.Shipment, error) {
	if uuid.Validate(req.GetOrderId()) != nil {
		return nil, s.fail(ctx, req.GetOrderId(), postgres.ErrNotFound)
	}
	sh, err := postgres.Get(ctx, s.pool, req.GetOrderId())
	if err != nil {
		return nil, s.fail(ctx, req.GetOrderId(), err)
	}
	return toProto(sh), nil
}

// GetLabel implements logisticsv1.LogisticsServiceServer.
func (s *Server) GetLabel(ctx context.Context, req *logisticsv1.GetShipmentRequest) (*httpbody.HttpBody, error) {
	if uuid.Validate(req.GetOrderId()) != nil {
		return nil, s.fail(ctx, req.GetOrderId(), postgres.ErrNotFound)
	}
	body, err := postgres.Label(ctx, s.pool, req.GetOrderId())
	if err != nil {
		return nil, s.fail(ctx, req.GetOrderId(), err)
	}
	return &httpbody.HttpBody{ContentType: "application/pdf", Data: body}, nil
}

// DispatchShipment implements logisticsv1.LogisticsServiceServer.
func (s *Server) DispatchShipment(ctx context.Context, req *logisticsv1.DispatchShipmentRequest) (*logisticsv1.Shipment, error) {
	if err := api.RequireToken(ctx, s.adminToken); err != nil {
		return nil, err
	}
	if uuid.Validate(req.GetOrderId()) != nil {
		return nil, s.fail(ctx, req.GetOrderId(), postgres.ErrNotFound)
	}
	sh, err := s.app.Dispatch(ctx, req.GetOrderId())
	if err != nil {
		return nil, s.fail(ctx, req.GetOrderId(), err)
	}
	return toProto(sh), nil
}

func toProto(sh postgres.Shipment) *logisticsv1.Shipment {
	out := &logisticsv1.Shipment{OrderId: sh.OrderID, Status: sh.Status, StockReserved: sh.StockReserved,
		PaymentAuthorized: sh.PaymentAuthorized, ShipmentId: sh.ShipmentID, Carrier: sh.Carrier, TrackingNumber: sh.TrackingNumber,
		Recipient: &logisticsv1.Recipient{CustomerId: sh.Recipient.CustomerID, Name: sh.Recipient.Name, Lines: sh.Recipient.Lines}}
	if sh.PreparedAt != nil {
		out.PreparedAt = timestamppb.New(*sh.PreparedAt)
	}
	if sh.DispatchedAt != nil {
		out.DispatchedAt = timestamppb.New(*sh.DispatchedAt)
	}
	return out
}

func (s *Server) fail(ctx context.Context, id string, err error) error {
	switch {
	case errors.Is(err, postgres.ErrNotFound):
		return api.Error(codes.NotFound, "shipment_not_found", "order_id", "no shipment for order %s", strconv.Quote(id))
	case errors.Is(err, app.ErrNotReady):
		return api.Error(codes.FailedPrecondition, "shipment_not_ready", "order_id", "%v", err)
	case errors.Is(err, app.ErrNotDispatchable):
		return api.Error(codes.FailedPrecondition, "shipment_cancelled", "order_id", "%v", err)
	case errors.Is(err, app.ErrAlreadyShipped):
		return api.Error(codes.FailedPrecondition, "shipment_dispatched", "order_id", "%v", err)
	}
	return api.Unavailable(ctx, s.log, "shipment", err)
}
