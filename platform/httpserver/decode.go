package httpserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"
)

// RequestError is a client error with the status to answer and the offending field.
type RequestError struct {
	Status  int
	Code    string
	Field   string
	Message string
}

func (e *RequestError) Error() string { return e.Message }

// Write answers the request with the error.
func (e *RequestError) Write(w http.ResponseWriter) {
	WriteError(w, e.Status, e.Code, e.Field, e.Message)
}

// Invalid returns a 400 naming field.
func Invalid(field, format string, args ...any) *RequestError {
	return &RequestError{Status: http.StatusBadRequest, Code: "invalid_field", Field: field, Message: fmt.Sprintf(format, args...)}
}

// ReadBody reads a JSON request body for decoding elsewhere: the content type must be
// application/json and the body at most limit bytes of valid UTF-8. An empty body is
// returned as such; the caller decides whether that is allowed.
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *RequestError) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &RequestError{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
				Message: fmt.Sprintf("the body is larger than %d bytes", limit)}
		}
		return nil, &RequestError{Status: http.StatusBadRequest, Code: "unreadable_body", Message: "the body could not be read: " + err.Error()}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return body, nil
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, &RequestError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type", Field: "Content-Type",
			Message: fmt.Sprintf("Content-Type must be application/json, got %q", r.Header.Get("Content-Type"))}
	}
	if !utf8.Valid(body) {
		return nil, &RequestError{Status: http.StatusBadRequest, Code: "invalid_utf8", Message: "the body is not valid UTF-8"}
	}
	return body, nil
}

// DecodeJSON reads a JSON request body into v strictly: ReadBody's checks, then exactly
// one JSON value with no field v does not declare. Every failure names what is wrong and,
// where there is one, the field.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any, limit int64) *RequestError {
	body, rerr := ReadBody(w, r, limit)
	if rerr != nil {
		return rerr
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return &RequestError{Status: http.StatusBadRequest, Code: "empty_body", Message: "the body is empty; send a JSON object"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return &RequestError{Status: http.StatusBadRequest, Code: "malformed_json", Message: "the body holds more than one JSON value"}
	}
	return nil
}

func jsonError(err error) *RequestError {
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return &RequestError{Status: http.StatusBadRequest, Code: "malformed_json",
			Message: fmt.Sprintf("malformed JSON at byte %d: %v", syntax.Offset, err)}
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return &RequestError{Status: http.StatusBadRequest, Code: "malformed_json",
				Message: fmt.Sprintf("the body must be a JSON object, got %s", typeErr.Value)}
		}
		return &RequestError{Status: http.StatusBadRequest, Code: "invalid_field", Field: field,
			Message: fmt.Sprintf("%s must be %s, got %s", field, typeErr.Type.String(), typeErr.Value)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &RequestError{Status: http.StatusBadRequest, Code: "unknown_field", Field: field,
			Message: fmt.Sprintf("unknown field %q", field)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &RequestError{Status: http.StatusBadRequest, Code: "malformed_json", Message: "the JSON body ends too early"}
	default:
		return &RequestError{Status: http.StatusBadRequest, Code: "malformed_json", Message: "malformed JSON: " + err.Error()}
	}
}

// Query reads the request's query parameters, each at most once and only those allowed:
// a misspelt or unsupported parameter is refused (400 naming it), not ignored, so that
// `?from=` on a route that takes its options in the body does not quietly do the default.
func Query(r *http.Request, allowed ...string) (url.Values, *RequestError) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, &RequestError{Status: http.StatusBadRequest, Code: "malformed_query", Message: "malformed query string: " + err.Error()}
	}
	for _, name := range slices.Sorted(maps.Keys(q)) {
		if !slices.Contains(allowed, name) {
			msg := fmt.Sprintf("unknown query parameter %q; this route takes none", name)
			if len(allowed) > 0 {
				msg = fmt.Sprintf("unknown query parameter %q; this route takes %s", name, strings.Join(allowed, ", "))
			}
			return nil, &RequestError{Status: http.StatusBadRequest, Code: "unknown_field", Field: name, Message: msg}
		}
		if len(q[name]) > 1 {
			return nil, Invalid(name, "is given %d times; give it once", len(q[name]))
		}
	}
	return q, nil
}
