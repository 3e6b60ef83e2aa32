package api

import (
	"bytes"
	"io"
	"net/http"

	"github.com/orderflow/orderflow/platform/httpserver"
)

// GuardBody checks a request body before the gateway decodes it, with the same rules as
// every orderflow JSON endpoint (httpserver.ReadBody): application/json, at most limit
// bytes, valid UTF-8. Requests without a body pass.
func GuardBody(limit int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			next.ServeHTTP(w, r)
			return
		}
		body, err := httpserver.ReadBody(w, r, limit)
		if err != nil {
			err.Write(w)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		next.ServeHTTP(w, r)
	})
}
