package httpserver_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/platform/httpserver"
)

type payload struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
	Inner struct {
		Qty int `json:"qty"`
	} `json:"inner"`
}

func TestDecodeJSON(t *testing.T) {
	cases := []struct {
		name, ctype, body string
		status            int
		code, field       string
	}{
		{"ok", "application/json; charset=utf-8", `{"name":"a","count":1}`, 0, "", ""},
		{"wrong type", "text/plain", `{}`, 415, "unsupported_media_type", "Content-Type"},
		{"no type", "", `{}`, 415, "unsupported_media_type", "Content-Type"},
		{"malformed", "application/json", `{"name":`, 400, "malformed_json", ""},
		{"syntax", "application/json", `{"name" "a"}`, 400, "malformed_json", ""},
		{"unknown field", "application/json", `{"nmae":"a"}`, 400, "unknown_field", "nmae"},
		{"wrong field type", "application/json", `{"count":"x"}`, 400, "invalid_field", "count"},
		{"nested type", "application/json", `{"inner":{"qty":1.5}}`, 400, "invalid_field", "inner.qty"},
		{"two values", "application/json", `{} {}`, 400, "malformed_json", ""},
		{"empty", "application/json", ``, 400, "empty_body", ""},
		{"invalid utf8", "application/json", "{\"name\":\"\xff\"}", 400, "invalid_utf8", ""},
		{"too large", "application/json", `{"name":"` + strings.Repeat("x", 2000) + `"}`, 413, "body_too_large", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
			if tc.ctype != "" {
				r.Header.Set("Content-Type", tc.ctype)
			}
			var p payload
			err := httpserver.DecodeJSON(httptest.NewRecorder(), r, &p, 1024)
			if tc.status == 0 {
				if err != nil {
					t.Fatalf("unexpected error %+v", err)
				}
				return
			}
			if err == nil || err.Status != tc.status || err.Code != tc.code || err.Field != tc.field {
				t.Fatalf("got %+v, want status %d code %s field %q", err, tc.status, tc.code, tc.field)
			}
		})
	}
}

func TestQueryTakesOnlyTheParametersARouteKnows(t *testing.T) {
	cases := []struct {
		query       string
		allowed     []string
		code, field string
	}{
		{"", nil, "", ""},
		{"from=3&limit=10", []string{"from", "limit"}, "", ""},
		{"from=2026-01-01T00:00:00Z", nil, "unknown_field", "from"},
		{"form=3", []string{"from", "limit"}, "unknown_field", "form"},
		{"from=3&from=4", []string{"from"}, "invalid_field", "from"},
		{"from=%zz", []string{"from"}, "malformed_query", ""},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			q, err := httpserver.Query(httptest.NewRequest(http.MethodGet, "/x?"+tc.query, nil), tc.allowed...)
			if tc.code == "" {
				if err != nil || (tc.query != "" && q.Get("from") == "") {
					t.Fatalf("got %v %+v, want the parameters", q, err)
				}
				return
			}
			if err == nil || err.Status != http.StatusBadRequest || err.Code != tc.code || err.Field != tc.field || err.Message == "" {
				t.Fatalf("got %+v, want 400 %s naming %q", err, tc.code, tc.field)
			}
		})
	}
}
