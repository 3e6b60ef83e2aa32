package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// Bad input on every endpoint gets a 4xx JSON error naming what is wrong, writes
// nothing, and never a 5xx.
func TestBadInputIsRefusedWithoutEffect(t *testing.T) {
	t.Parallel()
	s := stack(t)
	sku := s.product(t, 100, 10, 0)
	valid := func() map[string]any { return orderBody("tok_visa", line{sku, 1}) }
	with := func(mut func(map[string]any)) map[string]any { b := valid(); mut(b); return b }
	customer := func(b map[string]any) map[string]any { return b["customer"].(map[string]any) }
	manyLines := make([]line, 51)
	for i := range manyLines {
		manyLines[i] = line{fmt.Sprintf("SKU-%d", i), 1}
	}

	type tc struct {
		name, method, url string
		body              any
		headers           map[string]string
		status            int
		field             string
	}
	json := map[string]string{"Content-Type": "application/json"}
	cases := []tc{
		{"malformed json", "POST", "/v1/orders", `{"customer":`, nil, 400, ""},
		{"not an object", "POST", "/v1/orders", `[1,2]`, nil, 400, ""},
		{"wrong content type", "POST", "/v1/orders", `{}`, map[string]string{"Content-Type": "text/plain"}, 415, "Content-Type"},
		{"invalid utf-8", "POST", "/v1/orders", "{\"payment_token\":\"\xff\xfe\"}", json, 400, ""},
		{"oversized body", "POST", "/v1/orders", `{"payment_token":"` + strings.Repeat("x", 70_000) + `"}`, nil, 413, ""},
		{"unknown field", "POST", "/v1/orders", with(func(b map[string]any) { b["coupon"] = "FREE" }), nil, 400, "coupon"},
		{"missing customer", "POST", "/v1/orders", with(func(b map[string]any) { delete(b, "customer") }), nil, 400, "customer"},
		{"missing address", "POST", "/v1/orders", with(func(b map[string]any) { delete(b, "shipping_address") }), nil, 400, "shipping_address"},
		{"missing lines", "POST", "/v1/orders", with(func(b map[string]any) { delete(b, "lines") }), nil, 400, "lines"},
		{"bad email", "POST", "/v1/orders", with(func(b map[string]any) { customer(b)["email"] = "nope" }), nil, 400, "customer.email"},
		{"zero quantity", "POST", "/v1/orders", with(func(b map[string]any) { b["lines"] = []line{{sku, 0}} }), nil, 400, "lines[0].quantity"},
		{"negative quantity", "POST", "/v1/orders", with(func(b map[string]any) { b["lines"] = []line{{sku, -3}} }), nil, 400, "lines[0].quantity"},
		{"huge quantity", "POST", "/v1/orders", with(func(b map[string]any) { b["lines"] = []line{{sku, 1_000_000}} }), nil, 400, "lines[0].quantity"},
		{"overflowing quantity", "POST", "/v1/orders", strings.Replace(mustJSON(valid()), `"quantity":1`, `"quantity":99999999999999999999`, 1), nil, 400, "quantity"},
		{"NUL in a sku", "POST", "/v1/orders", with(func(b map[string]any) { b["lines"] = []line{{"A\x00B", 1}, {sku, 1}} }), nil, 400, "lines[0].sku"},
		{"unknown sku", "POST", "/v1/orders", with(func(b map[string]any) { b["lines"] = []line{{"NO-SUCH-SKU", 1}} }), nil, 422, "lines[0].sku"},
		{"unknown currency", "POST", "/v1/orders", with(func(b map[string]any) { b["currency"] = "XYZ" }), nil, 400, "currency"},
		{"too many lines", "POST", "/v1/orders", with(func(b map[string]any) { b["lines"] = manyLines }), nil, 400, "lines"},
		{"bad token", "POST", "/v1/orders", with(func(b map[string]any) { b["payment_token"] = "4111111111111111" }), nil, 400, "payment_token"},
		{"non-ASCII Idempotency-Key", "POST", "/v1/orders", valid(), map[string]string{"Idempotency-Key": "cl\u00e9-" + sku}, 400, "Idempotency-Key"},
		{"Idempotency-Key with a tab", "POST", "/v1/orders", valid(), map[string]string{"Idempotency-Key": "k\t" + sku}, 400, "Idempotency-Key"},
		{"bad country", "POST", "/v1/orders", with(func(b map[string]any) {
			b["shipping_address"].(map[string]any)["country"] = "Germany"
		}), nil, 400, "shipping_address.country"},
		{"unknown order", "GET", "/v1/orders/00000000-0000-0000-0000-000000000000", nil, nil, 404, "id"},
		{"malformed order id", "GET", "/v1/orders/not-a-uuid", nil, nil, 404, "id"},
		{"cancel unknown order", "POST", "/v1/orders/00000000-0000-0000-0000-000000000000/cancel", nil, nil, 404, "id"},
		{"list bad status", "GET", "/v1/orders?status=LOST", nil, nil, 400, "status"},
		{"list bad limit", "GET", "/v1/orders?limit=0", nil, nil, 400, "limit"},
		{"list unknown param", "GET", "/v1/orders?colour=red", nil, nil, 400, "colour"},
		{"list bad cursor", "GET", "/v1/orders?cursor=xyz", nil, nil, 400, "cursor"},
		{"list NUL customer", "GET", "/v1/orders?customer_id=a%00b", nil, nil, 400, "customer_id"},
		{"list malformed query", "GET", "/v1/orders?cursor=%zz", nil, nil, 400, ""},
		{"catalog without token", "PUT", "/v1/products/X-1", map[string]any{"name": "x", "unit_price_minor": 1, "currency": "EUR"}, nil, 401, "Authorization"},
		{"catalog negative price", "PUT", "/v1/products/X-1", map[string]any{"name": "x", "unit_price_minor": -1, "currency": "EUR"}, s.admin(), 400, "unit_price_minor"},
		{"catalog bad currency", "PUT", "/v1/products/X-1", map[string]any{"name": "x", "unit_price_minor": 1, "currency": "EURO"}, s.admin(), 400, "currency"},
		{"catalog overflowing price", "PUT", "/v1/products/X-1", `{"name": "x", "unit_price_minor": "99999999999999999999", "currency": "EUR"}`, s.admin(), 400, "unit_price_minor"},
		{"catalog NUL in a name", "PUT", "/v1/products/X-1", map[string]any{"name": "x\x00y", "unit_price_minor": 1, "currency": "EUR"}, s.admin(), 400, "name"},
		{"catalog unorderable sku", "PUT", "/v1/products/X%231", map[string]any{"name": "x", "unit_price_minor": 1, "currency": "EUR"}, s.admin(), 400, "sku"},
		{"catalog sku in the body differs from the path", "PUT", "/v1/products/" + sku + "-PATH", map[string]any{"sku": sku + "-BODY", "name": "x", "unit_price_minor": 1, "currency": "EUR"}, s.admin(), 400, "sku"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out struct {
				Error struct {
					Code, Message, Field string
				} `json:"error"`
			}
			code := s.call(t, c.method, s.shop+c.url, c.body, c.headers, &out)
			if code != c.status || out.Error.Code == "" || out.Error.Message == "" || out.Error.Field != c.field {
				t.Fatalf("got %d %+v, want %d naming field %q", code, out.Error, c.status, c.field)
			}
		})
	}
	// Every valid-looking body above names this test's SKU: none of them may have
	// written an order.
	if n := s.scalar(t, "shop", `SELECT count(*) FROM orders WHERE lines @> jsonb_build_array(jsonb_build_object('sku', $1::text))`, sku); n != int64(0) {
		t.Fatalf("bad requests wrote %v orders", n)
	}
	if n := s.scalar(t, "shop", `SELECT count(*) FROM products WHERE sku IN ($1 || '-PATH', $1 || '-BODY')`, sku); n != int64(0) {
		t.Fatalf("bad requests wrote %v products", n)
	}

	// The other services' endpoints.
	other := []tc{
		{"stock unknown sku", "GET", s.inventory + "/v1/stock/NOPE-1", nil, nil, 404, "sku"},
		{"stock NUL sku", "GET", s.inventory + "/v1/stock/A%00B", nil, nil, 400, "sku"},
		{"receipt without token", "POST", s.inventory + "/v1/stock/" + sku + "/receipts", map[string]any{"receipt_id": "x", "quantity": 1}, nil, 401, "Authorization"},
		{"receipt zero quantity", "POST", s.inventory + "/v1/stock/" + sku + "/receipts", map[string]any{"receipt_id": "x0", "quantity": 0}, s.admin(), 400, "quantity"},
		{"receipt unknown field", "POST", s.inventory + "/v1/stock/" + sku + "/receipts", map[string]any{"receipt_id": "x1", "quantity": 1, "qty": 2}, s.admin(), 400, "qty"},
		{"receipt replayed", "POST", s.inventory + "/v1/stock/" + sku + "/receipts", map[string]any{"receipt_id": "r-" + sku, "quantity": 1}, s.admin(), 409, "receipt_id"},
		{"receipt sku in the body differs from the path", "POST", s.inventory + "/v1/stock/" + sku + "/receipts", map[string]any{"sku": sku + "-BODY", "receipt_id": "x2-" + sku, "quantity": 1}, s.admin(), 400, "sku"},
		{"payment unknown order", "GET", s.billing + "/v1/payments/00000000-0000-0000-0000-000000000000", nil, nil, 404, "order_id"},
		{"invoice unknown", "GET", s.billing + "/v1/invoices/INV-1900-000001", nil, nil, 404, "number"},
		{"invoice pdf unknown", "GET", s.billing + "/v1/invoices/INV-1900-000001/pdf", nil, nil, 404, "number"},
		{"invoice NUL number", "GET", s.billing + "/v1/invoices/INV%00", nil, nil, 404, "number"},
		{"invoice pdf NUL number", "GET", s.billing + "/v1/invoices/INV%00/pdf", nil, nil, 404, "number"},
		{"shipment unknown", "GET", s.logistics + "/v1/shipments/00000000-0000-0000-0000-000000000000", nil, nil, 404, "order_id"},
		{"label malformed id", "GET", s.logistics + "/v1/shipments/nope/label", nil, nil, 404, "order_id"},
		{"dispatch wrong token", "POST", s.logistics + "/v1/shipments/00000000-0000-0000-0000-000000000000/dispatch", nil, map[string]string{"Authorization": "Bearer wrong"}, 403, "Authorization"},
		{"dispatch unknown", "POST", s.logistics + "/v1/shipments/00000000-0000-0000-0000-000000000000/dispatch", nil, s.admin(), 404, "order_id"},
		{"timeline unknown", "GET", s.crm + "/v1/customers/nobody-at-all/timeline", nil, nil, 404, "id"},
		{"timeline NUL id", "GET", s.crm + "/v1/customers/a%00b/timeline", nil, nil, 400, "id"},
		{"profile without token", "GET", s.shop + "/debug/pprof/heap", nil, nil, 401, "Authorization"},
		{"profile wrong token", "GET", s.billing + "/debug/pprof/profile?seconds=1", nil, map[string]string{"Authorization": "Bearer wrong"}, 403, "Authorization"},
	}
	for _, c := range other {
		t.Run(c.name, func(t *testing.T) {
			var out struct {
				Error struct{ Code, Message, Field string } `json:"error"`
			}
			code := s.call(t, c.method, c.url, c.body, c.headers, &out)
			if code != c.status || out.Error.Code == "" || out.Error.Field != c.field {
				t.Fatalf("got %d %+v, want %d naming field %q", code, out.Error, c.status, c.field)
			}
		})
	}
	if n := s.scalar(t, "inventory", `SELECT count(*) FROM receipts WHERE receipt_id = 'x2-' || $1`, sku); n != int64(0) {
		t.Fatalf("a refused receipt was recorded %v times", n)
	}
}

// The same Idempotency-Key and body answer with the same order; another body is refused.
func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	s := stack(t)
	sku := s.product(t, 100, 10, 0)
	body := orderBody("tok_visa", line{sku, 1})
	key := map[string]string{"Idempotency-Key": "key-" + sku}
	var first, again struct {
		OrderID string `json:"order_id"`
	}
	if code := s.call(t, "POST", s.shop+"/v1/orders", body, key, &first); code != 202 {
		t.Fatalf("first: %d", code)
	}
	if code := s.call(t, "POST", s.shop+"/v1/orders", body, key, &again); code != 202 || again.OrderID != first.OrderID {
		t.Fatalf("replay: %d %s, want 202 %s", code, again.OrderID, first.OrderID)
	}
	body["lines"] = []line{{sku, 2}}
	var out struct {
		Error struct{ Code, Field string } `json:"error"`
	}
	if code := s.call(t, "POST", s.shop+"/v1/orders", body, key, &out); code != 422 || out.Error.Field != "Idempotency-Key" {
		t.Fatalf("other body: %d %+v", code, out)
	}
	if n := s.scalar(t, "shop", `SELECT count(*) FROM orders WHERE customer_id = $1`, body["customer"].(map[string]any)["id"]); n != int64(1) {
		t.Fatalf("%v orders for one key, want 1", n)
	}
}

// Requests with one Idempotency-Key that arrive together place one order: the first to
// claim the key places it, and the others wait for its commit and answer with its order.
// A key whose request was refused (an unknown SKU) is not kept.
func TestIdempotencyKeyConcurrentAndRefused(t *testing.T) {
	t.Parallel()
	s := stack(t)
	sku := s.product(t, 100, 40, 0)
	key := map[string]string{"Idempotency-Key": "key-" + sku}
	refused := orderBody("tok_visa", line{"NO-SUCH-" + sku, 1})
	if code := s.call(t, "POST", s.shop+"/v1/orders", refused, key, nil); code != 422 {
		t.Fatalf("unknown SKU: %d, want 422", code)
	}
	body, err := jsonMarshal(orderBody("tok_visa", line{sku, 1}))
	if err != nil {
		t.Fatal(err)
	}
	const n = 16
	type answer struct {
		code int
		id   string
		err  error
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequest("POST", s.shop+"/v1/orders", bytes.NewReader(body))
			if err != nil {
				answers[i].err = err
				return
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", key["Idempotency-Key"])
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				answers[i].err = err
				return
			}
			defer resp.Body.Close()
			var out struct {
				OrderID string `json:"order_id"`
			}
			answers[i].code = resp.StatusCode
			answers[i].err = json.NewDecoder(resp.Body).Decode(&out)
			answers[i].id = out.OrderID
		}()
	}
	wg.Wait()
	for i, a := range answers {
		if a.err != nil || a.code != 202 || a.id == "" || a.id != answers[0].id {
			t.Fatalf("request %d: %d %q %v; want 202 and the order %q every request got", i, a.code, a.id, a.err, answers[0].id)
		}
	}
	if got := s.scalar(t, "shop", `SELECT count(*) FROM orders o JOIN idempotency_keys k ON k.order_id = o.id WHERE k.key = $1`,
		key["Idempotency-Key"]); got != int64(1) {
		t.Fatalf("%v orders for the key, want 1", got)
	}
	if got := s.scalar(t, "shop", `SELECT count(*) FROM orders WHERE lines @> jsonb_build_array(jsonb_build_object('sku', $1::text))`, sku); got != int64(1) {
		t.Fatalf("%v orders of %s, want 1", got, sku)
	}
}

func mustJSON(v any) string {
	b, err := jsonMarshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// Runtime profiles are an admin operation: with the token a service hands out its heap
// profile (gzipped protobuf, what go tool pprof reads).
func TestProfilesNeedTheAdminToken(t *testing.T) {
	t.Parallel()
	s := stack(t)
	req, err := http.NewRequest("GET", s.crm+"/debug/pprof/heap", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || len(body) < 2 || body[0] != 0x1f || body[1] != 0x8b {
		t.Fatalf("heap profile: %d, %d bytes, want 200 and gzip", resp.StatusCode, len(body))
	}
}
