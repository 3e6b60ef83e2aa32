package boot

import (
	"net/http"
	"net/http/pprof"

	"github.com/orderflow/orderflow/platform/httpserver"
)

// profilingRoutes serves Go's runtime profiles under /debug/pprof/ to holders of the
// admin token, for example `curl -H "Authorization: Bearer $TOKEN" <url>/debug/pprof/heap
// > heap.pb.gz && go tool pprof heap.pb.gz` (profile?seconds=30 for CPU). A profile shows
// a service's internals, so it is an admin operation like replay.
func profilingRoutes(srv *httpserver.Server, token string) {
	srv.Handle("GET /debug/pprof/", httpserver.RequireToken(token, http.HandlerFunc(pprof.Index)))
	srv.Handle("GET /debug/pprof/cmdline", httpserver.RequireToken(token, http.HandlerFunc(pprof.Cmdline)))
	srv.Handle("GET /debug/pprof/profile", httpserver.RequireToken(token, http.HandlerFunc(pprof.Profile)))
	srv.Handle("GET /debug/pprof/symbol", httpserver.RequireToken(token, http.HandlerFunc(pprof.Symbol)))
	srv.Handle("GET /debug/pprof/trace", httpserver.RequireToken(token, http.HandlerFunc(pprof.Trace)))
}
