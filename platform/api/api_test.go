package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"github.com/jackc/pgx/v5/pgconn"
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
		{statusErr(codes.InvalidArgument, `invalid URL escape "%zz"`), 400, "malformed_query", "", ""},
		{statusErr(codes.InvalidArgument, `proto: (line 1:32): invalid value for int64 field unitPriceMinor: "99999999999999999999"`), 400, "invalid_field", "unit_price_minor", ""},
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
	a := New(1 << 10)
	addr := serve(t, a)

	resp, err := http.Get("http://" + addr + "/v1/anything")
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

// serve runs a on a listener of its own until the test ends and returns its address.
func serve(t *testing.T, a *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	srv := httpserver.New(addr, "test", "v0", nil, slog.New(slog.DiscardHandler))
	a.Mount(srv)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, time.Second) }()
	t.Cleanup(func() { cancel(); <-done })
	for i := 0; ; i++ {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			_ = resp.Body.Close()
			return addr
		}
		if i == 100 {
			t.Fatalf("the server did not start: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The headers handlers read reach them through the gateway exactly as sent, or the
// request is refused naming them. The gateway alone drops a value gRPC metadata cannot
// carry, so a non-ASCII Idempotency-Key reached the shop as no key at all.
func TestRequestHeadersReachHandlersAsSentOrAreRefused(t *testing.T) {
	a := New(1 << 10)
	err := a.Gateway.HandlePath("POST", "/v1/echo", func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
		ctx, err := runtime.AnnotateIncomingContext(r.Context(), a.Gateway, r, "/test.Echo/Echo")
		if err != nil {
			t.Errorf("annotate: %v", err)
			return
		}
		key, err := Header(ctx, "idempotency-key")
		if err != nil {
			t.Errorf("idempotency-key: %v", err)
		}
		auth, err := Header(ctx, "authorization")
		if err != nil {
			t.Errorf("authorization: %v", err)
		}
		_, _ = io.WriteString(w, key+"|"+auth)
	})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, a)
	a.Serving(true)

	for _, c := range []struct {
		name    string
		headers [][2]string
		status  int
		body    string // the handler's answer, or the field the error names
	}{
		{"a key", [][2]string{{"Idempotency-Key", "k-1"}}, 200, "k-1|"},
		{"a token", [][2]string{{"Authorization", "Bearer t"}}, 200, "|Bearer t"},
		{"a non-ASCII key", [][2]string{{"Idempotency-Key", "cl\u00e9-1"}}, 400, "Idempotency-Key"},
		{"a key with a tab", [][2]string{{"Idempotency-Key", "k\t3"}}, 400, "Idempotency-Key"},
		{"a key twice", [][2]string{{"Idempotency-Key", "k-4"}, {"Idempotency-Key", "k-5"}}, 400, "Idempotency-Key"},
		{"a non-ASCII token", [][2]string{{"Authorization", "Bearer \u00fc"}}, 400, "Authorization"},
		{"two tokens", [][2]string{{"Authorization", "Bearer a"}, {"Authorization", "Bearer b"}}, 400, "Authorization"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest("POST", "http://"+addr+"/v1/echo", nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range c.headers {
				req.Header.Add(h[0], h[1])
			}
			resp, body := roundTrip(t, req)
			if c.status == 200 {
				if resp.StatusCode != 200 || string(body) != c.body {
					t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, body, c.body)
				}
				return
			}
			var out struct{ Error httpserver.Error }
			if resp.StatusCode != c.status || json.Unmarshal(body, &out) != nil || out.Error.Field != c.body {
				t.Fatalf("got %d %s, want %d naming %s", resp.StatusCode, body, c.status, c.body)
			}
		})
	}
}

// Over gRPC a header given twice with different values is refused; the same value twice
// (as the gateway passes a REST call's Authorization) is that value.
func TestHeaderRefusesTwoDifferentValues(t *testing.T) {
	in := func(kv ...string) context.Context {
		return metadata.NewIncomingContext(context.Background(), metadata.Pairs(kv...))
	}
	if v, err := Header(in("authorization", "Bearer a", "authorization", "Bearer a"), "authorization"); err != nil || v != "Bearer a" {
		t.Fatalf("the same value twice: %q %v", v, err)
	}
	if v, err := Header(context.Background(), "idempotency-key"); err != nil || v != "" {
		t.Fatalf("absent: %q %v", v, err)
	}
	_, err := Header(in("idempotency-key", "a", "idempotency-key", "b"), "idempotency-key")
	if p := ProblemOf(err); statusCode(err) != codes.InvalidArgument || p.Field != "Idempotency-Key" {
		t.Fatalf("two values: %v -> %+v", err, p)
	}
	if err := RequireToken(in("authorization", "Bearer s3cret", "authorization", "Bearer other"), "s3cret"); statusCode(err) != codes.InvalidArgument {
		t.Fatalf("two tokens: %v", err)
	}
}

func TestCursorRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 6, 22, 41, 51, 537123000, time.UTC)
	id := "086e38a8-4130-4341-ad98-eaac1b13d3bc"
	gotAt, gotID, err := ParseCursor("cursor", Cursor(at, id))
	if err != nil || !gotAt.Equal(at) || gotID != id {
		t.Fatalf("round trip: %v %q %v", gotAt, gotID, err)
	}
	for _, c := range []string{"", "yesterday", "123", "123_", "x_" + id, "123_not-a-uuid", id} {
		if _, _, err := ParseCursor("cursor", c); ProblemOf(err).Field != "cursor" || statusCode(err) != codes.InvalidArgument {
			t.Errorf("%q: %v, want InvalidArgument naming cursor", c, err)
		}
	}
}

func TestPageOf(t *testing.T) {
	n := func(v int32) *int32 { return &v }
	if p, err := PageOf(nil, "", 50, 500); err != nil || p != (Page{Limit: 50}) {
		t.Fatalf("defaults: %+v %v", p, err)
	}
	at := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	id := "086e38a8-4130-4341-ad98-eaac1b13d3bc"
	if p, err := PageOf(n(500), Cursor(at, id), 50, 500); err != nil || p.Limit != 500 || !p.AfterAt.Equal(at) || p.AfterID != id {
		t.Fatalf("limit and cursor: %+v %v", p, err)
	}
	for _, c := range []struct {
		limit  *int32
		cursor string
		field  string
	}{{n(0), "", "limit"}, {n(501), "", "limit"}, {n(-1), "", "limit"}, {nil, "xyz", "cursor"}} {
		if _, err := PageOf(c.limit, c.cursor, 50, 500); ProblemOf(err).Field != c.field {
			t.Errorf("%v %q: %v, want an error naming %s", c.limit, c.cursor, err, c.field)
		}
	}
}

// A database that refuses the text a request carried is the request's fault: a 400, not
// a 503 to retry. Any other failure stays a 503.
func TestUnavailableTellsUnstorableTextFromAFailure(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	ctx := context.Background()
	nul := fmt.Errorf("read timeline: %w", &pgconn.PgError{Code: "22021", Message: `invalid byte sequence for encoding "UTF8": 0x00`})
	if p := ProblemOf(Unavailable(ctx, log, "read timeline", nul)); p.HTTP != 400 || p.Code != "invalid_text" {
		t.Fatalf("NUL: %+v, want 400 invalid_text", p)
	}
	down := fmt.Errorf("read timeline: %w", &pgconn.PgError{Code: "57P01"})
	if p := ProblemOf(Unavailable(ctx, log, "read timeline", down)); p.HTTP != 503 || p.Code != "unavailable" {
		t.Fatalf("admin shutdown: %+v, want 503 unavailable", p)
	}
}

// A REST body that gives a path parameter another value is refused before the gateway
// would overwrite it from the path; the same value, or none, reaches the handler intact.
func TestBodyMayNotContradictThePath(t *testing.T) {
	a := New(1 << 10)
	echo := func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(b)
	}
	if err := a.Gateway.HandlePath("PUT", "/v1/things/{sku_code}", echo); err != nil {
		t.Fatal(err)
	}
	if err := a.Gateway.HandlePath("POST", "/v1/things", echo); err != nil {
		t.Fatal(err)
	}
	addr := serve(t, a)
	a.Serving(true)

	for _, c := range []struct {
		name, method, path, body string
		status                   int
	}{
		{"no such field in the body", "PUT", "/v1/things/A-1", `{"name":"x"}`, 200},
		{"the same value", "PUT", "/v1/things/A-1", `{"sku_code":"A-1","name":"x"}`, 200},
		{"the same value by JSON name", "PUT", "/v1/things/A-1", `{"skuCode":"A-1"}`, 200},
		{"another value", "PUT", "/v1/things/A-1", `{"sku_code":"B-2","name":"x"}`, 400},
		{"another value by JSON name", "PUT", "/v1/things/A-1", `{"skuCode":"B-2"}`, 400},
		{"an escaped path", "PUT", "/v1/things/A%2D1", `{"sku_code":"A-1"}`, 200},
		{"not a string: the decoder's to refuse", "PUT", "/v1/things/A-1", `{"sku_code":7}`, 200},
		{"not an object: the decoder's to refuse", "PUT", "/v1/things/A-1", `["sku_code","B"]`, 200},
		{"no path parameter", "POST", "/v1/things", `{"sku_code":"B-2"}`, 200},
		{"no body", "PUT", "/v1/things/A-1", ``, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest(c.method, "http://"+addr+c.path, strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			resp, body := roundTrip(t, req)
			if c.status == 200 {
				if resp.StatusCode != 200 || string(body) != c.body {
					t.Fatalf("got %d %q, want 200 and the body as sent", resp.StatusCode, body)
				}
				return
			}
			var out struct{ Error httpserver.Error }
			if resp.StatusCode != c.status || json.Unmarshal(body, &out) != nil || out.Error.Field != "sku_code" ||
				!strings.Contains(out.Error.Message, `"A-1"`) || !strings.Contains(out.Error.Message, `"B-2"`) {
				t.Fatalf("got %d %s, want %d naming sku_code and both values", resp.StatusCode, body, c.status)
			}
		})
	}
}

// roundTrip sends req and returns the response with its body read and closed.
func roundTrip(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	return resp, body
}
