package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// suite is the running stack as `make env` describes it.
type suite struct {
	shop, inventory, billing, logistics, crm string // base URLs
	mailpit                                  string
	token                                    string
	db                                       map[string]*pgxpool.Pool
}

var (
	once   sync.Once
	shared *suite
	setup  string // why the suite is not available
)

func env(name string) string { return os.Getenv(name) }

// stack returns the suite, or skips (fails under CI) when the services are not running.
func stack(t *testing.T) *suite {
	t.Helper()
	once.Do(func() {
		if env("ORDERFLOW_SHOP_URL") == "" {
			setup = "ORDERFLOW_SHOP_URL is not set: end-to-end tests run with `make test`"
			return
		}
		s := &suite{shop: env("ORDERFLOW_SHOP_URL"), inventory: env("ORDERFLOW_INVENTORY_URL"), billing: env("ORDERFLOW_BILLING_URL"),
			logistics: env("ORDERFLOW_LOGISTICS_URL"), crm: env("ORDERFLOW_CRM_URL"), mailpit: env("ORDERFLOW_MAILPIT_URL"),
			token: env("ORDERFLOW_ADMIN_TOKEN"), db: map[string]*pgxpool.Pool{}}
		for _, svc := range []string{"shop", "inventory", "billing", "logistics", "crm"} {
			p, err := pgxpool.New(context.Background(), env("ORDERFLOW_"+strings.ToUpper(svc)+"_DATABASE_URL"))
			if err != nil {
				setup = err.Error()
				return
			}
			s.db[svc] = p
		}
		if resp, err := http.Get(s.shop + "/readyz"); err != nil || resp.StatusCode != 200 {
			setup = fmt.Sprintf("shop is not ready at %s: %v", s.shop, err)
			return
		}
		shared = s
	})
	if shared == nil {
		if env("CI") != "" {
			t.Fatal(setup)
		}
		t.Skip(setup)
	}
	return shared
}

// call sends a JSON request and decodes the JSON answer into out (when not nil).
func (s *suite) call(t *testing.T, method, url string, body any, headers map[string]string, out any) int {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: answer %d is not JSON: %q", method, url, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode
}

func (s *suite) admin() map[string]string {
	return map[string]string{"Authorization": "Bearer " + s.token}
}

// product puts a fresh SKU in the catalog and stock, and returns it.
func (s *suite) product(t *testing.T, price int64, stock, threshold int) string {
	t.Helper()
	sku := "SKU-" + strings.ToUpper(uuid.NewString()[:8])
	if code := s.call(t, "PUT", s.shop+"/v1/products/"+sku, map[string]any{"name": "Widget " + sku, "unit_price_minor": price, "currency": "EUR"}, s.admin(), nil); code != 200 {
		t.Fatalf("catalog upsert: %d", code)
	}
	if stock > 0 {
		body := map[string]any{"receipt_id": "r-" + sku, "quantity": stock, "low_threshold": threshold}
		if code := s.call(t, "POST", s.inventory+"/v1/stock/"+sku+"/receipts", body, s.admin(), nil); code != 201 {
			t.Fatalf("stock receipt: %d", code)
		}
	}
	return sku
}

type line struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

// orderBody is a valid placement for a fresh customer.
func orderBody(token string, lines ...line) map[string]any {
	c := "cust-" + uuid.NewString()[:8]
	return map[string]any{
		"customer":         map[string]any{"id": c, "email": c + "@example.com", "name": "Customer " + c},
		"shipping_address": map[string]any{"name": "Customer " + c, "line1": "Hauptstrasse 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
		"lines":            lines,
		"payment_token":    token,
	}
}

// place places an order and returns its id.
func (s *suite) place(t *testing.T, body map[string]any) string {
	t.Helper()
	var out struct {
		OrderID string `json:"order_id"`
	}
	if code := s.call(t, "POST", s.shop+"/v1/orders", body, nil, &out); code != 202 {
		t.Fatalf("place order: %d %+v", code, out)
	}
	return out.OrderID
}

// placeLikeAClient places an order the way a well-behaved client does in a burst: with
// an Idempotency-Key, and when shop sheds the request (503 overloaded with Retry-After,
// its admission control) it waits as told and sends the same request again, for up to a
// minute. It returns an error instead of failing the test, so any goroutine can call it.
func (s *suite) placeLikeAClient(body map[string]any) (string, error) {
	j, err := json.Marshal(body)
	if err != nil {
		return "", err
	}
	key := uuid.NewString()
	deadline := time.Now().Add(time.Minute)
	for {
		req, err := http.NewRequest("POST", s.shop+"/v1/orders", bytes.NewReader(j))
		if err != nil {
			return "", err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", fmt.Errorf("place order: %w", err)
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return "", fmt.Errorf("place order: read answer %d: %w", resp.StatusCode, err)
		}
		wait, err := time.ParseDuration(resp.Header.Get("Retry-After") + "s")
		if resp.StatusCode == http.StatusServiceUnavailable && err == nil && time.Now().Add(wait).Before(deadline) {
			time.Sleep(wait)
			continue
		}
		var out struct {
			OrderID string `json:"order_id"`
		}
		if resp.StatusCode != http.StatusAccepted || json.Unmarshal(raw, &out) != nil || out.OrderID == "" {
			return "", fmt.Errorf("place order: %d %s", resp.StatusCode, raw)
		}
		return out.OrderID, nil
	}
}

type view struct {
	Status       string `json:"status"`
	Reason       string `json:"reason"`
	Cancellation string `json:"cancellation"`
	Timeline     []struct {
		Service string `json:"service"`
		Event   string `json:"event"`
	} `json:"timeline"`
}

// await polls the order view until its status is want.
func (s *suite) await(t *testing.T, id, want string, timeout time.Duration) view {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var v view
	for {
		code := s.call(t, "GET", s.shop+"/v1/orders/"+id, nil, nil, &v)
		if code == 200 && v.Status == want {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("order %s: status %q (HTTP %d) after %v, want %s; timeline %+v", id, v.Status, code, timeout, want, v.Timeline)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// awaitShopKnows waits until shop's own write model (not its order view) has the order
// in status want. The two learn of an event independently, through a consumer group and
// a read model: the view can show SHIPPED while the write model, which decides whether a
// cancellation is refused, has not yet applied ShipmentDispatched.
func (s *suite) awaitShopKnows(t *testing.T, id, want string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, func() string {
		if st := s.scalar(t, "shop", `SELECT status FROM orders WHERE id = $1`, id); st != want {
			return fmt.Sprintf("shop's orders row of %s: %v, want %s", id, st, want)
		}
		return ""
	})
}

// awaitInvoiceIssued waits until billing has issued the order's invoice (numbered; the
// issuer works through a queue, up to a linger after the authorization) and returns its
// number.
func (s *suite) awaitInvoiceIssued(t *testing.T, id string) string {
	t.Helper()
	var inv struct {
		Number string `json:"number"`
		Status string `json:"status"`
	}
	eventually(t, settle, func() string {
		if code := s.call(t, "GET", s.billing+"/v1/orders/"+id+"/invoice", nil, nil, &inv); code != 200 || inv.Number == "" {
			return fmt.Sprintf("invoice of %s: HTTP %d %+v, want an issued one", id, code, inv)
		}
		return ""
	})
	return inv.Number
}

// eventually polls cond until it returns "" or the timeout passes, then fails with its
// last complaint.
func eventually(t *testing.T, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// scalar runs a one-value query in a service's database. No row yields nil rather than
// a failure: the services converge asynchronously, so callers polling with eventually
// must be able to see "not there yet".
func (s *suite) scalar(t *testing.T, svc, query string, args ...any) any {
	t.Helper()
	var v any
	err := s.db[svc].QueryRow(context.Background(), query, args...).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		t.Fatalf("%s: %s: %v", svc, query, err)
	}
	return v
}

// mails returns the subjects of the e-mails Mailpit received for addr.
func (s *suite) mails(t *testing.T, addr string) []string {
	t.Helper()
	var out struct {
		Messages []struct {
			Subject string `json:"Subject"`
		} `json:"messages"`
	}
	s.call(t, "GET", s.mailpit+"/api/v1/search?query="+addr, nil, nil, &out)
	subjects := make([]string, len(out.Messages))
	for i, m := range out.Messages {
		subjects[i] = m.Subject
	}
	return subjects
}

// mailText returns the plain-text body of the message to addr with subject, or "" when
// there is none (yet).
func (s *suite) mailText(t *testing.T, addr, subject string) string {
	t.Helper()
	var found struct {
		Messages []struct {
			ID      string `json:"ID"`
			Subject string `json:"Subject"`
		} `json:"messages"`
	}
	s.call(t, "GET", s.mailpit+"/api/v1/search?query="+addr, nil, nil, &found)
	for _, m := range found.Messages {
		if m.Subject == subject {
			var msg struct {
				Text string `json:"Text"`
			}
			s.call(t, "GET", s.mailpit+"/api/v1/message/"+m.ID, nil, nil, &msg)
			return msg.Text
		}
	}
	return ""
}

// pdfText extracts a PDF's text with pdftotext.
func pdfText(t *testing.T, body []byte) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "doc.pdf")
	if err := os.WriteFile(f, body, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("pdftotext", "-layout", f, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v: %s", err, out)
	}
	return string(out)
}

func (s *suite) get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return b
}

// stackCmd runs deploy/local/stack.sh with the test stack's settings.
func stackCmd(t *testing.T, args ...string) {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(root, "deploy/local/stack.sh"), args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("stack.sh %v: %v\n%s", args, err, out)
	}
}

// stopService stops one service of the running stack and returns the function that
// starts it again. A test that ends before calling it (a failure) has it started by its
// cleanup, so that the tests after it find the whole stack running.
func stopService(t *testing.T, svc string) (start func()) {
	t.Helper()
	return takeDown(t, "stop", svc)
}

// killService is stopService with SIGKILL: no graceful shutdown, so its consumer groups
// see it vanish as after a crash.
func killService(t *testing.T, svc string) (start func()) {
	t.Helper()
	return takeDown(t, "kill", svc)
}

// takeDown runs stack.sh's stop or kill on svc and returns what starts it again.
func takeDown(t *testing.T, action, svc string) (start func()) {
	t.Helper()
	stackCmd(t, action, svc)
	started := false
	t.Cleanup(func() {
		if !started {
			stackCmd(t, "start", svc)
		}
	})
	return func() {
		t.Helper()
		stackCmd(t, "start", svc)
		started = true
	}
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
