// Package http is the shop's inbound API, defined in proto/shop/v1 and served as gRPC and
// as the REST routes of its google.api.http annotations: placing, reading, listing and
// cancelling orders, and the catalog that prices them.
package http

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/text/currency"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/orderflow/orderflow/platform/api"
	shopv1 "github.com/orderflow/orderflow/proto/shop/v1"
	"github.com/orderflow/orderflow/services/shop/internal/adapters/postgres"
	"github.com/orderflow/orderflow/services/shop/internal/app"
	"github.com/orderflow/orderflow/services/shop/internal/domain/order"
)

// Server implements shopv1.ShopServiceServer.
type Server struct {
	shopv1.UnimplementedShopServiceServer
	app        *app.App
	pool       *pgxpool.Pool
	log        *slog.Logger
	adminToken string
}

// Register serves the shop API on srv; adminToken guards the catalog writes.
func Register(ctx context.Context, srv *api.Server, a *app.App, pool *pgxpool.Pool, log *slog.Logger, adminToken string) error {
	s := &Server{app: a, pool: pool, log: log, adminToken: adminToken}
	shopv1.RegisterShopServiceServer(srv.GRPC, s)
	srv.SetOpenAPI(shopv1.OpenAPI)
	return shopv1.RegisterShopServiceHandlerServer(ctx, srv.Gateway, s)
}

// PlaceOrder implements shopv1.ShopServiceServer.
func (s *Server) PlaceOrder(ctx context.Context, req *shopv1.PlaceOrderRequest) (*shopv1.PlaceOrderResponse, error) {
	key, err := api.Header(ctx, "idempotency-key")
	if err != nil {
		return nil, err
	}
	if len(key) > 200 || strings.ContainsFunc(key, func(c rune) bool { return c < 0x21 || c > 0x7e }) {
		return nil, api.Invalid("Idempotency-Key", "must be at most 200 visible ASCII characters")
	}
	if req.GetCustomer() == nil {
		return nil, api.Invalid("customer", "is required")
	}
	if req.GetShippingAddress() == nil {
		return nil, api.Invalid("shipping_address", "is required")
	}
	placed, err := s.app.PlaceOrder(ctx, toPlaceOrder(key, req))
	if err != nil {
		return nil, s.fail(ctx, "place order", req.GetCustomer().GetId(), err)
	}
	self := "/v1/orders/" + placed.OrderID
	api.SetHTTPStatus(ctx, http.StatusAccepted)
	api.SetHeader(ctx, "Location", self)
	if placed.Replayed {
		api.SetHeader(ctx, "Idempotent-Replayed", "true")
	}
	return &shopv1.PlaceOrderResponse{OrderId: placed.OrderID, Status: string(placed.Status),
		Links: &shopv1.Links{Self: self, Cancel: self + "/cancel"}}, nil
}

func toPlaceOrder(key string, req *shopv1.PlaceOrderRequest) app.PlaceOrder {
	c, a := req.GetCustomer(), req.GetShippingAddress()
	cmd := app.PlaceOrder{
		IdempotencyKey: key,
		Customer:       order.Customer{ID: c.GetId(), Email: c.GetEmail(), Name: c.GetName()},
		Address: order.Address{Name: a.GetName(), Line1: a.GetLine1(), Line2: a.Line2, City: a.GetCity(),
			PostalCode: a.GetPostalCode(), Country: a.GetCountry()},
		PaymentToken: req.GetPaymentToken(),
		Currency:     req.GetCurrency(),
	}
	for _, l := range req.GetLines() {
		cmd.Lines = append(cmd.Lines, order.Requested{SKU: l.GetSku(), Quantity: int(l.GetQuantity())})
	}
	return cmd
}

// GetOrder implements shopv1.ShopServiceServer.
func (s *Server) GetOrder(ctx context.Context, req *shopv1.GetOrderRequest) (*shopv1.Order, error) {
	if uuid.Validate(req.GetId()) != nil {
		return nil, orderNotFound(req.GetId())
	}
	v, err := postgres.GetView(ctx, s.pool, req.GetId())
	if errors.Is(err, postgres.ErrNotInView) { // placed, not yet in the view
		var o *order.Order
		if o, err = postgres.GetOrder(ctx, s.pool, req.GetId()); err == nil {
			v = postgres.PlacedView(o)
		}
	}
	if err != nil {
		return nil, s.fail(ctx, "read order", req.GetId(), err)
	}
	return toProto(v), nil
}

// ListOrders implements shopv1.ShopServiceServer.
func (s *Server) ListOrders(ctx context.Context, req *shopv1.ListOrdersRequest) (*shopv1.ListOrdersResponse, error) {
	f := postgres.ListFilter{CustomerID: req.GetCustomerId(), Status: req.GetStatus()}
	if utf8.RuneCountInString(f.CustomerID) > 64 || strings.ContainsFunc(f.CustomerID, unicode.IsControl) {
		return nil, api.Invalid("customer_id", "a customer id has 1 to 64 characters and no control characters")
	}
	switch order.Status(f.Status) {
	case "", order.Pending, order.Confirmed, order.Shipped, order.Cancelled:
	default:
		return nil, api.Invalid("status", "%q is not PENDING, CONFIRMED, SHIPPED or CANCELLED", f.Status)
	}
	page, err := api.PageOf(req.Limit, req.GetCursor(), 50, 500)
	if err != nil {
		return nil, err
	}
	f.Limit, f.AfterPlaced, f.AfterID = page.Limit, page.AfterAt, page.AfterID
	views, err := postgres.ListViews(ctx, s.pool, f)
	if err != nil {
		return nil, s.fail(ctx, "list orders", "", err)
	}
	resp := &shopv1.ListOrdersResponse{Orders: make([]*shopv1.Order, len(views))}
	for i, v := range views {
		resp.Orders[i] = toProto(v)
	}
	if len(views) == f.Limit {
		last := views[len(views)-1]
		resp.NextCursor = api.Cursor(last.PlacedAt, last.OrderID)
	}
	return resp, nil
}

// CancelOrder implements shopv1.ShopServiceServer.
func (s *Server) CancelOrder(ctx context.Context, req *shopv1.CancelOrderRequest) (*shopv1.CancelOrderResponse, error) {
	if uuid.Validate(req.GetId()) != nil {
		return nil, orderNotFound(req.GetId())
	}
	c, err := s.app.CancelOrder(ctx, req.GetId())
	if err != nil {
		return nil, s.fail(ctx, "cancel order", req.GetId(), err)
	}
	api.SetHTTPStatus(ctx, http.StatusAccepted)
	api.SetHeader(ctx, "Location", "/v1/orders/"+req.GetId())
	return &shopv1.CancelOrderResponse{OrderId: req.GetId(), Status: string(c.Status), Cancellation: string(c.Cancellation)}, nil
}

// PutProduct implements shopv1.ShopServiceServer.
func (s *Server) PutProduct(ctx context.Context, req *shopv1.PutProductRequest) (*shopv1.Product, error) {
	if err := api.RequireToken(ctx, s.adminToken); err != nil {
		return nil, err
	}
	sku := req.GetSku()
	p := order.Product{SKU: sku, Name: strings.TrimSpace(req.GetName()), Currency: req.GetCurrency()}
	switch {
	case !order.ValidSKU(sku): // a SKU an order line could not name would be unorderable
		return nil, api.Invalid("sku", "%q is not a SKU: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", sku)
	case p.Name == "" || utf8.RuneCountInString(p.Name) > 200 || strings.ContainsFunc(p.Name, unicode.IsControl):
		return nil, api.Invalid("name", "is required, at most 200 characters and no control characters")
	case req.UnitPriceMinor == nil || req.GetUnitPriceMinor() < 0 || req.GetUnitPriceMinor() > 1e12:
		return nil, api.Invalid("unit_price_minor", "is required, from 0 to 10^12 minor units")
	}
	if _, err := currency.ParseISO(p.Currency); err != nil || strings.ToUpper(p.Currency) != p.Currency {
		return nil, api.Invalid("currency", "%q is not an ISO 4217 currency code", p.Currency)
	}
	p.UnitPriceMinor = req.GetUnitPriceMinor()
	if err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return postgres.UpsertProduct(ctx, tx, p) }); err != nil {
		return nil, s.fail(ctx, "upsert product", "", err)
	}
	return toProtoProduct(p), nil
}

// ListProducts implements shopv1.ShopServiceServer.
func (s *Server) ListProducts(ctx context.Context, _ *shopv1.ListProductsRequest) (*shopv1.ListProductsResponse, error) {
	var ps []order.Product
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		ps, err = postgres.ListProducts(ctx, tx)
		return err
	})
	if err != nil {
		return nil, s.fail(ctx, "list products", "", err)
	}
	resp := &shopv1.ListProductsResponse{Products: make([]*shopv1.Product, len(ps))}
	for i, p := range ps {
		resp.Products[i] = toProtoProduct(p)
	}
	return resp, nil
}

func toProtoProduct(p order.Product) *shopv1.Product {
	return &shopv1.Product{Sku: p.SKU, Name: p.Name, UnitPriceMinor: p.UnitPriceMinor, Currency: p.Currency}
}

func toProto(v postgres.View) *shopv1.Order {
	o := &shopv1.Order{OrderId: v.OrderID, CustomerId: v.CustomerID, Status: v.Status, Reason: v.Reason, Cancellation: string(v.Cancellation),
		Currency: v.Currency, TotalMinor: v.TotalMinor, PlacedAt: timestamppb.New(v.PlacedAt), UpdatedAt: timestamppb.New(v.UpdatedAt)}
	for _, l := range v.Lines {
		o.Lines = append(o.Lines, &shopv1.Line{Sku: l.SKU, Name: l.Name, Quantity: int32(l.Quantity), UnitPriceMinor: l.UnitPriceMinor})
	}
	for _, st := range v.Timeline {
		o.Timeline = append(o.Timeline, &shopv1.TimelineStep{At: timestamppb.New(st.At), Service: st.Service, Event: st.Event, Detail: st.Detail})
	}
	return o
}

func orderNotFound(id string) error {
	return api.Error(codes.NotFound, "order_not_found", "id", "no order %s", strconv.Quote(id))
}

// fail maps an error to its status; unexpected errors are logged here, once.
func (s *Server) fail(ctx context.Context, what, id string, err error) error {
	var fe *order.FieldError
	switch {
	case errors.As(err, &fe):
		if fe.Code == "unknown_sku" || fe.Code == "currency_mismatch" {
			return api.ErrorHTTP(codes.FailedPrecondition, http.StatusUnprocessableEntity, fe.Code, fe.Field, "%s", fe.Message)
		}
		return api.Error(codes.InvalidArgument, fe.Code, fe.Field, "%s", fe.Message)
	case errors.Is(err, app.ErrIdempotencyKeyReused):
		return api.ErrorHTTP(codes.FailedPrecondition, http.StatusUnprocessableEntity, "idempotency_key_reused", "Idempotency-Key", "%v", err)
	case errors.Is(err, order.ErrNotFound), errors.Is(err, postgres.ErrNotInView):
		return orderNotFound(id)
	case errors.Is(err, order.ErrAlreadyShipped):
		return api.Error(codes.FailedPrecondition, "order_shipped", "id", "%v", err)
	case errors.Is(err, order.ErrAlreadyFinal):
		return api.Error(codes.FailedPrecondition, "order_cancelled", "id", "%v", err)
	}
	return api.Unavailable(ctx, s.log, what, err)
}
