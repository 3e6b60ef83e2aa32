package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"unicode/utf8"

	"github.com/orderflow/orderflow/platform/httpserver"
)

// GuardBody checks a request body before the gateway decodes it: a body must be
// application/json, at most limit bytes, and valid UTF-8. Requests without a body pass.
// Each refusal names what is wrong (415, 413, 400).
func GuardBody(limit int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				httpserver.WriteError(w, http.StatusRequestEntityTooLarge, "body_too_large", "", fmt.Sprintf("the body is larger than %d bytes", limit))
				return
			}
			httpserver.WriteError(w, http.StatusBadRequest, "unreadable_body", "", "the body could not be read: "+err.Error())
			return
		}
		if len(bytes.TrimSpace(body)) > 0 {
			if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
				httpserver.WriteError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type",
					fmt.Sprintf("Content-Type must be application/json, got %q", r.Header.Get("Content-Type")))
				return
			}
			if !utf8.Valid(body) {
				httpserver.WriteError(w, http.StatusBadRequest, "invalid_utf8", "", "the body is not valid UTF-8")
				return
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		next.ServeHTTP(w, r)
	})
}
