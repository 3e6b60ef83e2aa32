package e2e

import (
	"context"
	"encoding/json"
	"net/url"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	logisticsv1 "github.com/orderflow/orderflow/proto/logistics/v1"
	shopv1 "github.com/orderflow/orderflow/proto/shop/v1"
)

// dial opens a gRPC connection to a service's HTTP address: gRPC and REST share it.
func dial(t *testing.T, base string) *grpc.ClientConn {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(u.Host, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// The same implementation answers over gRPC: an order placed with gRPC is confirmed and
// readable over both transports, errors carry codes and the admin token is enforced.
func TestGRPC(t *testing.T) {
	t.Parallel()
	s := stack(t)
	sku := s.product(t, 250, 5, 0)
	shop := shopv1.NewShopServiceClient(dial(t, s.shop))
	ctx, cancel := context.WithTimeout(context.Background(), settle)
	defer cancel()

	req := &shopv1.PlaceOrderRequest{
		Customer:        &shopv1.Customer{Id: "grpc-" + uuid.NewString()[:8], Email: "grpc@example.com", Name: "Grace Hopper"},
		ShippingAddress: &shopv1.Address{Name: "Grace Hopper", Line1: "1 Main St", City: "Berlin", PostalCode: "10115", Country: "DE"},
		Lines:           []*shopv1.RequestedLine{{Sku: sku, Quantity: 2}},
		PaymentToken:    "tok_visa",
	}
	keyed := metadata.AppendToOutgoingContext(ctx, "idempotency-key", "grpc-"+sku)
	var header metadata.MD
	placed, err := shop.PlaceOrder(keyed, req, grpc.Header(&header))
	if err != nil {
		t.Fatal(err)
	}
	if placed.GetStatus() != "PENDING" || header.Get("location")[0] != "/v1/orders/"+placed.GetOrderId() {
		t.Fatalf("placed %+v, header %v", placed, header)
	}
	again, err := shop.PlaceOrder(keyed, req)
	if err != nil || again.GetOrderId() != placed.GetOrderId() {
		t.Fatalf("replay with the same key: %v %v", again, err)
	}
	v := s.await(t, placed.GetOrderId(), "CONFIRMED", settle)
	got, err := shop.GetOrder(ctx, &shopv1.GetOrderRequest{Id: placed.GetOrderId()})
	if err != nil || got.GetStatus() != v.Status || got.GetTotalMinor() != 500 || len(got.GetTimeline()) == 0 {
		t.Fatalf("GetOrder over gRPC: %+v %v (REST says %s)", got, err, v.Status)
	}

	_, err = shop.PlaceOrder(ctx, &shopv1.PlaceOrderRequest{Customer: req.Customer, ShippingAddress: req.ShippingAddress,
		Lines: []*shopv1.RequestedLine{{Sku: sku, Quantity: 0}}, PaymentToken: "tok_visa"})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("zero quantity: %v, want InvalidArgument", err)
	}
	_, err = shop.GetOrder(ctx, &shopv1.GetOrderRequest{Id: uuid.NewString()})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("unknown order: %v, want NotFound", err)
	}
	logistics := logisticsv1.NewLogisticsServiceClient(dial(t, s.logistics))
	_, err = logistics.DispatchShipment(ctx, &logisticsv1.DispatchShipmentRequest{OrderId: placed.GetOrderId()})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("dispatch without token: %v, want Unauthenticated", err)
	}
	admin := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+s.token)
	var shipment *logisticsv1.Shipment
	eventually(t, settle, func() string {
		shipment, err = logistics.DispatchShipment(admin, &logisticsv1.DispatchShipmentRequest{OrderId: placed.GetOrderId()})
		if err != nil {
			return "dispatch: " + err.Error()
		}
		return ""
	})
	if shipment.GetStatus() != "DISPATCHED" || shipment.GetTrackingNumber() == "" {
		t.Fatalf("dispatched %+v", shipment)
	}
	s.await(t, placed.GetOrderId(), "SHIPPED", settle)
	s.awaitShopKnows(t, placed.GetOrderId(), "SHIPPED", settle)
	_, err = shop.CancelOrder(ctx, &shopv1.CancelOrderRequest{Id: placed.GetOrderId()})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("cancel after dispatch: %v, want FailedPrecondition", err)
	}

	// A cancellable order: the answer is a request, decided by logistics.
	other, err := shop.PlaceOrder(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	asked, err := shop.CancelOrder(ctx, &shopv1.CancelOrderRequest{Id: other.GetOrderId()})
	if err != nil || asked.GetCancellation() != "REQUESTED" {
		t.Fatalf("cancel over gRPC: %+v %v, want cancellation REQUESTED", asked, err)
	}
	s.await(t, other.GetOrderId(), "CANCELLED", settle)
	if got, err := shop.GetOrder(ctx, &shopv1.GetOrderRequest{Id: other.GetOrderId()}); err != nil || got.GetCancellation() != "CANCELLED" {
		t.Fatalf("GetOrder of the cancelled order: %+v %v, want cancellation CANCELLED", got, err)
	}
}

// Every service publishes the OpenAPI document generated from its proto.
func TestOpenAPIDocuments(t *testing.T) {
	t.Parallel()
	s := stack(t)
	for base, path := range map[string]string{s.shop: "/v1/orders", s.inventory: "/v1/stock/{sku}", s.billing: "/v1/invoices/{number}/pdf",
		s.logistics: "/v1/shipments/{order_id}/dispatch", s.crm: "/v1/customers/{id}/timeline"} {
		var doc struct {
			Swagger string                     `json:"swagger"`
			Paths   map[string]json.RawMessage `json:"paths"`
		}
		if err := json.Unmarshal(s.get(t, base+"/openapi.json"), &doc); err != nil {
			t.Fatalf("%s/openapi.json: %v", base, err)
		}
		if doc.Swagger != "2.0" || doc.Paths[path] == nil {
			t.Fatalf("%s/openapi.json lacks %s: %d paths", base, path, len(doc.Paths))
		}
	}
}
