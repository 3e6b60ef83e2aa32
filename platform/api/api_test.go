package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/orderflow/orderflow/platform/httpserver"
)

func TestProblemOfCarriesReasonFieldAndHTTPStatus(t *testing.T) {
	for _, c := range []struct {
		err               error
		http              int
		code, field, text string
	}{
		{Invalid("lines[0].quantity", "must be at least %d", 1), 400, "invalid_field", "lines[0].quantity", "must be at least 1"},
		{ErrorHTTP(codes.FailedPrecondition, 422, "unknown_sku", "lines[0].sku", "no SKU X"), 422, "unknown_sku", "lines[0].sku", "no SKU X"},
		{Error(codes.FailedPrecondition, "order_shipped", "id", "shipped"), 409, "order_shipped", "id", "shipped"},
		{Error(codes.NotFound, "order_not_found", "id", "no order"), 404, "order_not_found", "id", "no order"},
		{Error(codes.Unavailable, "unavailable", "", "later"), 503, "unavailable", "", "later"},
		// The gateway's own decoding errors, recognised by their wording.
		{statusErr(codes.InvalidArgument, `proto: (line 1:90): unknown field "coupon"`), 400, "unknown_field", "coupon", ""},
		{statusErr(codes.InvalidArgument, `proto: (line 1:50): invalid value for int32 field quantity: 99999999999999999999`), 400, "invalid_field", "quantity", ""},
		{statusErr(codes.InvalidArgument, `unknown query parameter "colour"`), 400, "unknown_field", "colour", ""},
		{statusErr(codes.InvalidArgument, `parsing field "limit": strconv.ParseInt: parsing "x": invalid syntax`), 400, "invalid_field", "limit", ""},
		{statusErr(codes.InvalidArgument, `proto: syntax error (line 1:1): unexpected token [`), 400, "malformed_json", "", ""},
		{errors.New("plain"), 500, "internal", "", "plain"},
	} {
		p := ProblemOf(c.err)
		if p.HTTP != c.http || p.Code != c.code || p.Field != c.field || (c.text != "" && p.Message != c.text) {
			t.Errorf("%v: got %+v, want %d %s %q %q", c.err, p, c.http, c.code, c.field, c.text)
		}
	}
}

func statusErr(c codes.Code, msg string) error { return status.Error(c, msg) }

func statusCode(err error) codes.Code { return status.Code(err) }

func TestGuardBody(t *testing.T) {
	h := GuardBody(16, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(b)
	}))
	for _, c := range []struct {
		name, ct, body string
		want           int
	}{
		{"json", "application/json; charset=utf-8", `{"a":1}`, 200},
		{"no body", "", "", 200},
		{"wrong type", "text/plain", `{}`, 415},
		{"too big", "application/json", `{"a":"0123456789abcdef"}`, 413},
		{"invalid utf-8", "application/json", "{\"a\":\"\xff\"}", 400},
	} {
		r := httptest.NewRequest("POST", "/v1/x", strings.NewReader(c.body))
		if c.ct != "" {
			r.Header.Set("Content-Type", c.ct)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, w.Code, w.Body, c.want)
		}
		if c.want == 200 && w.Body.String() != c.body {
			t.Errorf("%s: the handler read %q, want %q", c.name, w.Body, c.body)
		}
	}
}

func TestStrictQueryRefusesUnknownParameters(t *testing.T) {
	var d durationpb.Duration
	if err := (strictQuery{}).Parse(&d, url.Values{"seconds": {"3"}}, utilities.NewDoubleArray(nil)); err != nil || d.Seconds != 3 {
		t.Fatalf("known parameter: %v %v", err, d.Seconds)
	}
	err := (strictQuery{}).Parse(&d, url.Values{"secs": {"3"}}, utilities.NewDoubleArray(nil))
	if p := ProblemOf(statusErr(codes.InvalidArgument, err.Error())); p.Field != "secs" {
		t.Fatalf("unknown parameter: %v -> %+v", err, p)
	}
}

func TestRequireToken(t *testing.T) {
	in := func(kv ...string) context.Context {
		return metadata.NewIncomingContext(context.Background(), metadata.Pairs(kv...))
	}
	for _, c := range []struct {
		ctx  context.Context
		want codes.Code
	}{
		{context.Background(), codes.Unauthenticated},
		{in("authorization", "Basic abc"), codes.Unauthenticated},
		{in("authorization", "Bearer wrong"), codes.PermissionDenied},
		{in("authorization", "Bearer s3cret"), codes.OK},
	} {
		err := RequireToken(c.ctx, "s3cret")
		if got := statusCode(err); got != c.want {
			t.Errorf("%v: %v, want %v", c.ctx, err, c.want)
		}
	}
}

// gRPC and REST share the service's listener: a gRPC health check over h2c reaches the
// gRPC server while /v1 routes and /healthz stay HTTP/1.1.
func TestGRPCSharesTheHTTPListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	log := slog.New(slog.DiscardHandler)
	srv := httpserver.New(addr, "test", "v0", nil, log)
	a := New(1 << 10)
	a.Mount(srv)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, time.Second) }()
	defer func() { cancel(); <-done }()

	var resp *http.Response
	for i := 0; i < 50; i++ {
		if resp, err = http.Get("http://" + addr + "/v1/anything"); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil || resp.StatusCode != 503 {
		t.Fatalf("REST before Serving: %v %v, want 503", resp, err)
	}
	a.Serving(true)
	if resp, err = http.Get("http://" + addr + "/v1/anything"); err != nil || resp.StatusCode != 404 {
		t.Fatalf("unknown REST route: %v %v, want 404", resp, err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health over h2c: %v %v", hc, err)
	}
}
