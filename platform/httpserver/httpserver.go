// Package httpserver is the HTTP surface every service shares: liveness (/healthz),
// readiness (/readyz) that checks the service's dependencies, Prometheus metrics
// (/metrics), JSON errors, bearer-token protection for admin routes, and graceful
// shutdown.
package httpserver

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
)

// Check reports whether one dependency is usable.
type Check func(ctx context.Context) error

// Server is a service's HTTP server. Register routes and checks before Run.
type Server struct {
	addr    string
	service string
	version string
	log     *slog.Logger
	mux     *http.ServeMux
	grpc    http.Handler

	mu      sync.Mutex
	checks  map[string]Check
	started atomic.Bool
	waiting atomic.Value // string: what start-up is waiting for

	// MaxInFlight bounds the REST requests served at once (0: no bound). One more waits
	// up to QueueWait for a slot and is then answered 503 overloaded with Retry-After, so
	// a burst is absorbed while sustained overload is shed in bounded time instead of
	// queueing without bound for database connections; health, readiness and metrics
	// are always answered. Set both before Run.
	MaxInFlight int
	QueueWait   time.Duration
}

// New returns a server for addr serving the health endpoints and metrics.
func New(addr, service, version string, metrics http.Handler, log *slog.Logger) *Server {
	s := &Server{addr: addr, service: service, version: version, log: log, mux: http.NewServeMux(), checks: map[string]Check{}}
	s.waiting.Store("start-up")
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	if metrics != nil {
		s.mux.Handle("GET /metrics", metrics)
	}
	return s
}

// Handle registers a route on the server's mux (Go 1.22 patterns).
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// ServeGRPC routes gRPC calls (HTTP/2 with an application/grpc content type) to h, on
// the same listener: the server then also speaks HTTP/2 without TLS (h2c). Call before Run.
func (s *Server) ServeGRPC(h http.Handler) { s.grpc = h }

// AddCheck adds a readiness check.
func (s *Server) AddCheck(name string, c Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[name] = c
}

// Waiting records what start-up is waiting for; /readyz reports it until Started.
func (s *Server) Waiting(what string) { s.waiting.Store(what) }

// Started marks start-up complete; from now on readiness is decided by the checks.
func (s *Server) Started() { s.started.Store(true) }

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]string{"status": "ok", "service": s.service, "version": s.version})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if !s.started.Load() {
		WriteJSON(w, http.StatusServiceUnavailable, map[string]any{
			"status": "starting", "waiting_for": s.waiting.Load()})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	s.mu.Lock()
	checks := make(map[string]Check, len(s.checks))
	for k, v := range s.checks {
		checks[k] = v
	}
	s.mu.Unlock()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		results = map[string]string{}
		ok      = true
	)
	for name, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c(ctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				ok = false
				results[name] = err.Error()
			} else {
				results[name] = "ok"
			}
		}()
	}
	wg.Wait()
	status := http.StatusOK
	state := "ready"
	if !ok {
		status, state = http.StatusServiceUnavailable, "not ready"
	}
	WriteJSON(w, status, map[string]any{"status": state, "checks": results})
}

// Run serves until ctx ends, then stops accepting connections and waits up to grace for
// requests in flight.
func (s *Server) Run(ctx context.Context, grace time.Duration) error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return err
	}
	// Every request gets a server span (W3C trace context honoured), so the events a
	// handler appends to the outbox carry the request's trace onward.
	var handler http.Handler = otelhttp.NewHandler(s.mux, s.service,
		otelhttp.WithFilter(func(r *http.Request) bool {
			return r.URL.Path != "/healthz" && r.URL.Path != "/readyz" && r.URL.Path != "/metrics"
		}),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.Pattern }))
	if s.MaxInFlight > 0 {
		handler = LimitInFlight(s.service, s.MaxInFlight, s.QueueWait, handler)
	}
	if s.grpc != nil {
		rest := handler
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
				s.grpc.ServeHTTP(w, r)
				return
			}
			rest.ServeHTTP(w, r)
		})
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		Protocols:         new(http.Protocols),
	}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(s.grpc != nil)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.InfoContext(ctx, "http server listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Error is the JSON body of every error response: a stable machine-readable code, a
// message for people, and the offending field when there is one.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// WriteError writes an Error with status.
func WriteError(w http.ResponseWriter, status int, code, field, message string) {
	WriteJSON(w, status, map[string]Error{"error": {Code: code, Message: message, Field: field}})
}

// WriteJSON writes v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// CheckBearer compares an Authorization header with "Bearer <token>" in constant time: a
// missing or non-bearer header is 401, a wrong token 403, both naming Authorization.
func CheckBearer(header, token string) *RequestError {
	if header == "" || !strings.HasPrefix(header, "Bearer ") {
		return &RequestError{Status: http.StatusUnauthorized, Code: "unauthenticated", Field: "Authorization",
			Message: "admin routes need an Authorization: Bearer token"}
	}
	if subtle.ConstantTimeCompare([]byte(header), []byte("Bearer "+token)) != 1 {
		return &RequestError{Status: http.StatusForbidden, Code: "forbidden", Field: "Authorization", Message: "the bearer token is not valid"}
	}
	return nil
}

// RequireToken protects an admin handler with a bearer token (CheckBearer).
func RequireToken(token string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := CheckBearer(r.Header.Get("Authorization"), token); err != nil {
			if err.Status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="orderflow-admin"`)
			}
			err.Write(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// LimitInFlight serves at most max requests at once; a request beyond waits up to wait
// for one of them to finish and is otherwise answered 503 overloaded, with Retry-After.
// /healthz, /readyz and /metrics are always served.
func LimitInFlight(service string, max int, wait time.Duration, next http.Handler) http.Handler {
	slots := make(chan struct{}, max)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz", "/readyz", "/metrics":
			next.ServeHTTP(w, r)
			return
		}
		select {
		case slots <- struct{}{}:
		default:
			if !waitForSlot(r.Context(), slots, wait) {
				w.Header().Set("Retry-After", "1")
				WriteError(w, http.StatusServiceUnavailable, "overloaded", "",
					fmt.Sprintf("%s is serving %d requests, its limit, and none finished within %s; retry in a second", service, max, wait))
				return
			}
		}
		defer func() { <-slots }()
		next.ServeHTTP(w, r)
	})
}

// waitForSlot takes a slot within wait, unless the request ends first.
func waitForSlot(ctx context.Context, slots chan struct{}, wait time.Duration) bool {
	if wait <= 0 {
		return false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case slots <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// Handler returns the server's routes, for tests and for embedding.
func (s *Server) Handler() http.Handler { return s.mux }
