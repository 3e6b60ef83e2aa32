// Package http is billing's inbound API, defined in proto/billing/v1 and served as gRPC
// and REST: payments, invoices and their PDFs.
package http

import (
	"context"
	"errors"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/text/currency"
	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/orderflow/orderflow/platform/api"
	billingv1 "github.com/orderflow/orderflow/proto/billing/v1"
	"github.com/orderflow/orderflow/services/billing/internal/adapters/postgres"
)

// documentNumber is the shape of every invoice and credit note number billing issues
// (postgres.InvoiceNumber, postgres.CreditNoteNumber); no other string is looked up.
var documentNumber = regexp.MustCompile(`^(INV|CN)-[0-9]{4}-[0-9]{6,}$`)

// Server implements billingv1.BillingServiceServer.
type Server struct {
	billingv1.UnimplementedBillingServiceServer
	pool *pgxpool.Pool
	log  *slog.Logger
}

// Register serves the billing API on srv.
func Register(ctx context.Context, srv *api.Server, pool *pgxpool.Pool, log *slog.Logger) error {
	s := &Server{pool: pool, log: log}
	billingv1.RegisterBillingServiceServer(srv.GRPC, s)
	srv.SetOpenAPI(billingv1.OpenAPI)
	return billingv1.RegisterBillingServiceHandlerServer(ctx, srv.Gateway, s)
}

// GetPayment implements billingv1.BillingServiceServer.
func (s *Server) GetPayment(ctx context.Context, req *billingv1.GetPaymentRequest) (*billingv1.Payment, error) {
	if uuid.Validate(req.GetOrderId()) != nil {
		return nil, notFound("payment", "order_id", req.GetOrderId())
	}
	p, err := postgres.GetPayment(ctx, s.pool, req.GetOrderId())
	if err != nil {
		return nil, s.fail(ctx, "payment", "order_id", req.GetOrderId(), err)
	}
	return &billingv1.Payment{OrderId: p.OrderID, CustomerId: p.CustomerID, Status: p.Status, AmountMinor: p.AmountMinor,
		Currency: p.Currency, AuthorizationId: p.AuthorizationID, DeclineReason: p.DeclineReason, UpdatedAt: timestamppb.New(p.UpdatedAt),
		CaptureId: p.CaptureID, RefundId: p.RefundID}, nil
}

// GetOrderInvoice implements billingv1.BillingServiceServer.
func (s *Server) GetOrderInvoice(ctx context.Context, req *billingv1.GetOrderInvoiceRequest) (*billingv1.Invoice, error) {
	if uuid.Validate(req.GetOrderId()) != nil {
		return nil, notFound("invoice", "order_id", req.GetOrderId())
	}
	inv, err := postgres.GetInvoiceOfOrder(ctx, s.pool, req.GetOrderId())
	if err != nil {
		return nil, s.fail(ctx, "invoice", "order_id", req.GetOrderId(), err)
	}
	return toProtoInvoice(inv), nil
}

// GetInvoice implements billingv1.BillingServiceServer.
func (s *Server) GetInvoice(ctx context.Context, req *billingv1.GetInvoiceRequest) (*billingv1.Invoice, error) {
	if !documentNumber.MatchString(req.GetNumber()) {
		return nil, notFound("invoice", "number", req.GetNumber())
	}
	inv, err := postgres.GetInvoice(ctx, s.pool, req.GetNumber())
	if err != nil {
		return nil, s.fail(ctx, "invoice", "number", req.GetNumber(), err)
	}
	return toProtoInvoice(inv), nil
}

// GetInvoicePDF implements billingv1.BillingServiceServer.
func (s *Server) GetInvoicePDF(ctx context.Context, req *billingv1.GetInvoiceRequest) (*httpbody.HttpBody, error) {
	if !documentNumber.MatchString(req.GetNumber()) {
		return nil, notFound("invoice", "number", req.GetNumber())
	}
	body, err := postgres.InvoicePDF(ctx, s.pool, req.GetNumber())
	if err != nil {
		return nil, s.fail(ctx, "invoice", "number", req.GetNumber(), err)
	}
	api.SetHeader(ctx, "Content-Disposition", `inline; filename="`+req.GetNumber()+`.pdf"`)
	return &httpbody.HttpBody{ContentType: "application/pdf", Data: body}, nil
}

// ListDailyRevenue implements billingv1.BillingServiceServer.
func (s *Server) ListDailyRevenue(ctx context.Context, req *billingv1.ListDailyRevenueRequest) (*billingv1.ListDailyRevenueResponse, error) {
	var f postgres.RevenueFilter
	for _, d := range []struct {
		field, value string
		into         *time.Time
	}{{"from", req.GetFrom(), &f.From}, {"to", req.GetTo(), &f.To}} {
		if d.value == "" {
			continue
		}
		t, err := time.Parse(time.DateOnly, d.value)
		if err != nil {
			return nil, api.Invalid(d.field, "%s %q is not a day as YYYY-MM-DD", d.field, d.value)
		}
		*d.into = t
	}
	if !f.From.IsZero() && !f.To.IsZero() && f.To.Before(f.From) {
		return nil, api.Invalid("to", "to %s is before from %s", req.GetTo(), req.GetFrom())
	}
	if c := req.GetCurrency(); c != "" {
		if _, err := currency.ParseISO(c); err != nil || len(c) != 3 || strings.ToUpper(c) != c {
			return nil, api.Invalid("currency", "currency %q is not an ISO 4217 code such as EUR", c)
		}
		f.Currency = c
	}
	days, err := postgres.ListRevenue(ctx, s.pool, f)
	if err != nil {
		return nil, api.Unavailable(ctx, s.log, "read revenue", err)
	}
	out := &billingv1.ListDailyRevenueResponse{Days: make([]*billingv1.DailyRevenue, len(days))}
	for i, d := range days {
		out.Days[i] = &billingv1.DailyRevenue{Day: d.Day.Format(time.DateOnly), Currency: d.Currency,
			Authorizations: d.Authorizations, AuthorizedMinor: d.AuthorizedMinor, Voids: d.Voids, VoidedMinor: d.VoidedMinor,
			Captures: d.Captures, CapturedMinor: d.CapturedMinor, Refunds: d.Refunds, RefundedMinor: d.RefundedMinor,
			NetMinor: d.AuthorizedMinor - d.VoidedMinor - d.RefundedMinor}
	}
	return out, nil
}

func toProtoInvoice(inv postgres.Invoice) *billingv1.Invoice {
	out := &billingv1.Invoice{Number: inv.Number, OrderId: inv.OrderID, Status: inv.Status, AmountMinor: inv.AmountMinor,
		Currency: inv.Currency, CreditNoteNumber: inv.CreditNoteNumber}
	if inv.IssuedAt != nil {
		out.IssuedAt = timestamppb.New(*inv.IssuedAt)
	}
	if inv.VoidedAt != nil {
		out.VoidedAt = timestamppb.New(*inv.VoidedAt)
	}
	return out
}

func notFound(what, field, id string) error {
	return api.Error(codes.NotFound, what+"_not_found", field, "no %s %s", what, strconv.Quote(id))
}

func (s *Server) fail(ctx context.Context, what, field, id string, err error) error {
	if errors.Is(err, postgres.ErrNotFound) {
		return notFound(what, field, id)
	}
	return api.Unavailable(ctx, s.log, "read "+what, err)
}
