package httpserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/platform/httpserver"
)

func get(t *testing.T, h http.Handler, path string, header ...string) (*http.Response, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var body map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	return rec.Result(), body
}

func newServer() *httpserver.Server {
	return httpserver.New("127.0.0.1:0", "svc", "1.2.3", nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func TestReadinessFollowsStartupAndChecks(t *testing.T) {
	s := newServer()
	h := s.Handler()
	s.Waiting("kafka")
	resp, body := get(t, h, "/readyz")
	if resp.StatusCode != 503 || body["waiting_for"] != "kafka" {
		t.Fatalf("before start: %d %v", resp.StatusCode, body)
	}
	failing := errors.New("connection refused")
	var dbErr error
	s.AddCheck("postgres", func(context.Context) error { return dbErr })
	s.Started()
	if resp, body := get(t, h, "/readyz"); resp.StatusCode != 200 {
		t.Fatalf("healthy: %d %v", resp.StatusCode, body)
	}
	dbErr = failing
	resp, body = get(t, h, "/readyz")
	if resp.StatusCode != 503 || body["checks"].(map[string]any)["postgres"] != failing.Error() {
		t.Fatalf("failing check: %d %v", resp.StatusCode, body)
	}
	if resp, body := get(t, h, "/healthz"); resp.StatusCode != 200 || body["version"] != "1.2.3" {
		t.Fatalf("healthz: %d %v", resp.StatusCode, body)
	}
}

func TestRequireToken(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	h := httpserver.RequireToken("0123456789abcdef", ok)
	if resp, body := get(t, h, "/"); resp.StatusCode != 401 || body["error"] == nil {
		t.Fatalf("no token: %d %v", resp.StatusCode, body)
	}
	if resp, _ := get(t, h, "/", "Authorization", "Bearer wrong"); resp.StatusCode != 403 {
		t.Fatalf("wrong token: %d", resp.StatusCode)
	}
	if resp, _ := get(t, h, "/", "Authorization", "Bearer 0123456789abcdef"); resp.StatusCode != 204 {
		t.Fatalf("right token: %d", resp.StatusCode)
	}
}

// Beyond its limit a server lets a request wait its queue time, then answers 503
// overloaded with Retry-After, keeps answering health checks, and serves again when a
// slot frees.
func TestLimitInFlightShedsLoad(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 2)
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.WriteHeader(200)
			return
		}
		entered <- struct{}{}
		<-release
		w.WriteHeader(204)
	})
	h := httpserver.LimitInFlight("svc", 2, 50*time.Millisecond, slow)
	done := make(chan int, 2)
	for range 2 {
		go func() { resp, _ := get(t, h, "/v1/orders"); done <- resp.StatusCode }()
	}
	<-entered
	<-entered
	asked := time.Now()
	resp, body := get(t, h, "/v1/orders")
	if waited := time.Since(asked); waited < 50*time.Millisecond {
		t.Fatalf("answered after %s, before its queue time", waited)
	}
	e, _ := body["error"].(map[string]any)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" || e["code"] != "overloaded" {
		t.Fatalf("third request: %d %q %v, want 503 overloaded with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if resp, _ := get(t, h, "/healthz"); resp.StatusCode != 200 {
		t.Fatalf("healthz while full: %d", resp.StatusCode)
	}
	close(release)
	for range 2 {
		if code := <-done; code != 204 {
			t.Fatalf("admitted request: %d", code)
		}
	}
	entered2 := make(chan struct{})
	go func() { <-entered; close(entered2) }()
	if resp, _ := get(t, h, "/v1/orders"); resp.StatusCode != 204 {
		t.Fatalf("after the slots freed: %d", resp.StatusCode)
	}
}

// A burst larger than the limit is served in full when slots free within the queue time.
func TestLimitInFlightAbsorbsABurst(t *testing.T) {
	quick := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond)
		w.WriteHeader(204)
	})
	h := httpserver.LimitInFlight("svc", 4, 5*time.Second, quick)
	codes := make(chan int, 40)
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() { resp, _ := get(t, h, "/v1/orders"); codes <- resp.StatusCode })
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 204 {
			t.Fatalf("a request of the burst got %d, want every one served", c)
		}
	}
}
