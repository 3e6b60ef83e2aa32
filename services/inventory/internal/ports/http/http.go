// Package http is inventory's inbound API, defined in proto/inventory/v1 and served as
// gRPC and REST: stock availability and (admin) stock receipts.
package http

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc/codes"

	"github.com/orderflow/orderflow/platform/api"
	inventoryv1 "github.com/orderflow/orderflow/proto/inventory/v1"
	"github.com/orderflow/orderflow/services/inventory/internal/adapters/postgres"
	"github.com/orderflow/orderflow/services/inventory/internal/app"
)

var (
	skuPattern     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	receiptPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,100}$`)
)

// Server implements inventoryv1.InventoryServiceServer.
type Server struct {
	inventoryv1.UnimplementedInventoryServiceServer
	app        *app.App
	pool       *pgxpool.Pool
	log        *slog.Logger
	adminToken string
}

// Register serves the inventory API on srv; adminToken guards stock receipts.
func Register(ctx context.Context, srv *api.Server, a *app.App, pool *pgxpool.Pool, log *slog.Logger, adminToken string) error {
	s := &Server{app: a, pool: pool, log: log, adminToken: adminToken}
	inventoryv1.RegisterInventoryServiceServer(srv.GRPC, s)
	srv.SetOpenAPI(inventoryv1.OpenAPI)
	return inventoryv1.RegisterInventoryServiceHandlerServer(ctx, srv.Gateway, s)
}

// GetStock implements inventoryv1.InventoryServiceServer.
func (s *Server) GetStock(ctx context.Context, req *inventoryv1.GetStockRequest) (*inventoryv1.Availability, error) {
	if !skuPattern.MatchString(req.GetSku()) {
		return nil, api.Invalid("sku", "%q is not a SKU", req.GetSku())
	}
	av, err := postgres.GetAvailability(ctx, s.pool, req.GetSku())
	if errors.Is(err, postgres.ErrUnknownSKU) {
		return nil, api.Error(codes.NotFound, "unknown_sku", "sku", "no stock known for %s", strconv.Quote(req.GetSku()))
	}
	if err != nil {
		return nil, api.Unavailable(ctx, s.log, "read availability", err)
	}
	return &inventoryv1.Availability{Sku: av.SKU, Available: int32(av.Available)}, nil
}

// ReceiveStock implements inventoryv1.InventoryServiceServer.
func (s *Server) ReceiveStock(ctx context.Context, req *inventoryv1.ReceiveStockRequest) (*inventoryv1.StockLevel, error) {
	if err := api.RequireToken(ctx, s.adminToken); err != nil {
		return nil, err
	}
	switch {
	case !skuPattern.MatchString(req.GetSku()):
		return nil, api.Invalid("sku", "%q is not a SKU", req.GetSku())
	case !receiptPattern.MatchString(req.GetReceiptId()):
		return nil, api.Invalid("receipt_id", "is required: 1-100 letters, digits or ._:-, unique per receipt")
	case req.GetQuantity() < 1 || req.GetQuantity() > 1_000_000:
		return nil, api.Invalid("quantity", "%d is outside 1..1000000", req.GetQuantity())
	case req.LowThreshold != nil && (req.GetLowThreshold() < 0 || req.GetLowThreshold() > 1_000_000):
		return nil, api.Invalid("low_threshold", "%d is outside 0..1000000", req.GetLowThreshold())
	}
	r := app.Receipt{ID: req.GetReceiptId(), SKU: req.GetSku(), Quantity: int(req.GetQuantity())}
	if req.LowThreshold != nil {
		t := int(req.GetLowThreshold())
		r.LowThreshold = &t
	}
	level, err := s.app.Receive(ctx, r)
	if errors.Is(err, app.ErrDuplicateReceipt) {
		return nil, api.Error(codes.AlreadyExists, "duplicate_receipt", "receipt_id", "receipt %s was already recorded", req.GetReceiptId())
	}
	if err != nil {
		return nil, api.Unavailable(ctx, s.log, "receive stock", err)
	}
	api.SetHTTPStatus(ctx, http.StatusCreated)
	return &inventoryv1.StockLevel{Sku: level.SKU, OnHand: int32(level.OnHand), Reserved: int32(level.Reserved),
		Available: int32(level.Available()), LowThreshold: int32(level.LowThreshold)}, nil
}
