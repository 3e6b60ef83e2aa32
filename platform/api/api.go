// Package api serves a service's synchronous API, defined once in proto/<service>/v1, on
// two transports from the same implementation: gRPC, and HTTP/JSON REST routes derived
// from the google.api.http annotations by grpc-gateway (registered in process, so a REST
// call costs no extra hop). Both share one listener with the health and metrics routes:
// gRPC arrives as HTTP/2 without TLS (h2c) with an application/grpc content type.
//
// Errors are gRPC statuses built with Error; they carry a stable reason, the offending
// field and, where the gRPC code alone would mislead, the HTTP status. REST clients see
// them as the JSON error body every orderflow endpoint uses
// ({"error": {"code", "message", "field"}}); gRPC clients get the code plus ErrorInfo
// and BadRequest details.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"

	"github.com/orderflow/orderflow/platform/httpserver"
	"github.com/orderflow/orderflow/platform/pg"
)

// Domain is the ErrorInfo domain of every orderflow error.
const Domain = "orderflow"

// Metadata keys a handler sets (SetHTTPStatus, SetHeader) and the REST gateway turns
// into the response status and headers.
const httpCodeKey = "x-http-code"

// forwardedHeaders are the response headers handlers may set, by their metadata key.
var forwardedHeaders = map[string]string{
	"location":            "Location",
	"idempotent-replayed": "Idempotent-Replayed",
	"content-disposition": "Content-Disposition",
}

// Server holds a service's gRPC server and REST gateway; register implementations on
// both (the generated Register<X>Server and Register<X>HandlerServer functions).
type Server struct {
	GRPC    *grpc.Server
	Gateway *runtime.ServeMux
	health  *health.Server
	maxBody int64
	openAPI []byte
	serving atomic.Bool
}

// New returns a server whose REST routes accept request bodies of at most maxBody bytes.
func New(maxBody int64) *Server {
	s := &Server{
		GRPC:    grpc.NewServer(grpc.StatsHandler(otelgrpc.NewServerHandler()), grpc.MaxRecvMsgSize(int(maxBody))),
		health:  health.NewServer(),
		maxBody: maxBody,
	}
	healthpb.RegisterHealthServer(s.GRPC, s.health)
	reflection.Register(s.GRPC)
	s.Gateway = runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.HTTPBodyMarshaler{Marshaler: &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}}),
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		runtime.WithOutgoingHeaderMatcher(outgoingHeader),
		runtime.WithForwardResponseOption(forwardStatus),
		runtime.WithErrorHandler(writeError),
		runtime.WithRoutingErrorHandler(routingError),
		runtime.SetQueryParameterParser(strictQuery{}),
		runtime.WithMiddlewares(pathWinsSilently),
	)
	return s
}

// SetOpenAPI sets the document served at GET /openapi.json.
func (s *Server) SetOpenAPI(doc []byte) { s.openAPI = doc }

// Mount serves the REST routes under /v1/, the OpenAPI document and gRPC on srv.
func (s *Server) Mount(srv *httpserver.Server) {
	guarded := GuardBody(s.maxBody, s.Gateway)
	srv.Handle("/v1/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.serving.Load() {
			w.Header().Set("Retry-After", "1")
			httpserver.WriteError(w, http.StatusServiceUnavailable, "starting", "", "the service is starting; retry shortly")
			return
		}
		if err := checkRequestHeaders(r.Header); err != nil {
			err.Write(w)
			return
		}
		guarded.ServeHTTP(w, r)
	}))
	srv.Handle("GET /openapi.json", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.openAPI == nil {
			httpserver.WriteError(w, http.StatusNotFound, "not_found", "", "this service publishes no OpenAPI document")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(s.openAPI)
	}))
	srv.ServeGRPC(s.GRPC)
}

// Serving marks the gRPC health of the service as SERVING (or NOT_SERVING).
func (s *Server) Serving(ok bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ok {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", st)
	s.serving.Store(ok)
}

// Stop ends every gRPC stream; HTTP shutdown drains unary calls.
func (s *Server) Stop() { s.GRPC.Stop() }

// requestHeaders are the request headers handlers read (Header), which the gateway passes
// on as gRPC metadata.
var requestHeaders = []string{"Idempotency-Key", "Authorization"}

// checkRequestHeaders refuses a REST request whose requestHeaders the gateway would not
// pass on as sent. It drops, without a word, a value gRPC metadata cannot carry (anything
// but printable ASCII): an Idempotency-Key lost that way let a retry place a second order.
// A header given twice would reach the handler as its first value only.
func checkRequestHeaders(h http.Header) *httpserver.RequestError {
	for _, name := range requestHeaders {
		vals := h.Values(name)
		if len(vals) > 1 {
			return httpserver.Invalid(name, "is given %d times; send it once", len(vals))
		}
		for _, v := range vals {
			if strings.ContainsFunc(v, func(c rune) bool { return c < 0x20 || c > 0x7e }) {
				return httpserver.Invalid(name, "must be printable ASCII")
			}
		}
	}
	return nil
}

func incomingHeader(key string) (string, bool) {
	switch k := strings.ToLower(key); k {
	case "idempotency-key", "authorization":
		return k, true
	}
	return runtime.DefaultHeaderMatcher(key)
}

func outgoingHeader(key string) (string, bool) {
	h, ok := forwardedHeaders[strings.ToLower(key)]
	return h, ok
}

// forwardStatus applies the HTTP status a handler chose with SetHTTPStatus.
func forwardStatus(ctx context.Context, w http.ResponseWriter, _ proto.Message) error {
	md, ok := runtime.ServerMetadataFromContext(ctx)
	if !ok {
		return nil
	}
	if v := md.HeaderMD.Get(httpCodeKey); len(v) > 0 {
		code, err := strconv.Atoi(v[0])
		if err != nil {
			return fmt.Errorf("handler set %s to %q", httpCodeKey, v[0])
		}
		w.WriteHeader(code)
	}
	return nil
}

// SetHTTPStatus makes a successful REST answer use code (201, 202) instead of 200. gRPC
// clients see it as response metadata they may ignore.
func SetHTTPStatus(ctx context.Context, code int) {
	setHeader(ctx, httpCodeKey, strconv.Itoa(code))
}

// SetHeader sets a response header (Location, Idempotent-Replayed, Content-Disposition);
// gRPC clients get it as response metadata.
func SetHeader(ctx context.Context, key, value string) {
	setHeader(ctx, strings.ToLower(key), value)
}

// setHeader cannot fail inside a handler: the gRPC server and the in-process gateway both
// give it a stream. Outside one it is a programming error, and says so loudly rather than
// answering 200 where 202 was meant.
func setHeader(ctx context.Context, key, value string) {
	if err := grpc.SetHeader(ctx, metadata.Pairs(key, value)); err != nil {
		panic(fmt.Sprintf("api: response header %s set outside a handler: %v", key, err))
	}
}

// Header returns a request header (gRPC metadata) such as idempotency-key, "" when it
// is absent. One given twice with different values is refused with an InvalidArgument
// error naming it: which of them counted would otherwise depend on the order of the
// metadata. (The gateway itself passes a REST call's Authorization twice, unchanged.)
func Header(ctx context.Context, key string) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	v := md.Get(strings.ToLower(key))
	if len(v) == 0 {
		return "", nil
	}
	for _, other := range v[1:] {
		if other != v[0] {
			return "", Invalid(textproto.CanonicalMIMEHeaderKey(key), "is given %d times with different values; send it once", len(v))
		}
	}
	return v[0], nil
}

// Error returns a status error: code for gRPC, reason as the stable machine-readable
// code, field naming the offending input ("" for none).
func Error(code codes.Code, reason, field, format string, args ...any) error {
	return ErrorHTTP(code, 0, reason, field, format, args...)
}

// ErrorHTTP is Error with an HTTP status other than the one the code implies, such as
// 422 for a well-formed request the domain refuses, or 409 for a state conflict.
func ErrorHTTP(code codes.Code, httpStatus int, reason, field, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	st := status.New(code, msg)
	info := &errdetails.ErrorInfo{Reason: reason, Domain: Domain, Metadata: map[string]string{}}
	if field != "" {
		info.Metadata["field"] = field
	}
	if httpStatus != 0 {
		info.Metadata["http_status"] = strconv.Itoa(httpStatus)
	}
	details := []protoadapt.MessageV1{info}
	if field != "" {
		details = append(details, &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: msg}}})
	}
	withDetails, err := st.WithDetails(details...)
	if err != nil { // only for codes.OK, which is no error to report
		return st.Err()
	}
	return withDetails.Err()
}

// Invalid is a 400 InvalidArgument naming field.
func Invalid(field, format string, args ...any) error {
	return Error(codes.InvalidArgument, "invalid_field", field, format, args...)
}

// Unavailable logs an unexpected failure once, here, and returns what callers may see:
// that the service cannot answer now and the request may be retried.
//
// One database error is the request's fault, not the service's: PostgreSQL refuses text
// holding a NUL character (or bytes its encoding has no character for) that a handler
// passed on unchecked. That is answered as invalid input, not as a failure to retry.
func Unavailable(ctx context.Context, log *slog.Logger, what string, err error) error {
	if errors.Is(err, context.Canceled) {
		return status.Error(codes.Canceled, "the client went away")
	}
	if pg.IsUnstorableText(err) {
		log.WarnContext(ctx, what+": the request holds text the database cannot store", "err", err)
		return Error(codes.InvalidArgument, "invalid_text", "", "%s: the request holds text that cannot be stored (a NUL character?)", what)
	}
	log.ErrorContext(ctx, what+" failed", "err", err)
	return Error(codes.Unavailable, "unavailable", "", "%s: the service cannot answer right now; retry", what)
}

// RequireToken admits a call bearing "Authorization: Bearer <token>" (gRPC metadata
// authorization), checked as every orderflow admin route checks it.
func RequireToken(ctx context.Context, token string) error {
	header, err := Header(ctx, "authorization")
	if err != nil {
		return err
	}
	if err := httpserver.CheckBearer(header, token); err != nil {
		code := codes.PermissionDenied
		if err.Status == http.StatusUnauthorized {
			code = codes.Unauthenticated
		}
		return Error(code, err.Code, err.Field, "%s", err.Message)
	}
	return nil
}

// Cursor is where a keyset-paged listing stopped: the time and the id of the last row of
// a page, which the next page starts after.
func Cursor(at time.Time, id string) string {
	return strconv.FormatInt(at.UnixNano(), 10) + "_" + id
}

// ParseCursor reads a Cursor sent back as the request parameter field; anything else is
// an InvalidArgument error naming field.
func ParseCursor(field, c string) (time.Time, string, error) {
	ts, id, ok := strings.Cut(c, "_")
	nanos, err := strconv.ParseInt(ts, 10, 64)
	if !ok || err != nil || uuid.Validate(id) != nil {
		return time.Time{}, "", Invalid(field, "not a cursor this API returned")
	}
	return time.Unix(0, nanos).UTC(), id, nil
}

// Page is what a request of a keyset-paged listing asks for: how many rows, and after
// which (the zero time and "" for the first page).
type Page struct {
	Limit   int
	AfterAt time.Time
	AfterID string
}

// PageOf reads a listing's limit parameter (def when unset, 1 to max) and its cursor
// parameter (a Cursor); errors name the one that is wrong.
func PageOf(limit *int32, cursor string, def, max int) (Page, error) {
	p := Page{Limit: def}
	if limit != nil {
		if *limit < 1 || int(*limit) > max {
			return Page{}, Invalid("limit", "%d is not a number from 1 to %d", *limit, max)
		}
		p.Limit = int(*limit)
	}
	if cursor != "" {
		var err error
		if p.AfterAt, p.AfterID, err = ParseCursor("cursor", cursor); err != nil {
			return Page{}, err
		}
	}
	return p, nil
}
