// Command demo shows the running suite doing its job: it stocks a small catalog, places
// a mix of orders through the shop's API (one that ships, one out of stock, one with a
// declined card, one with a flaky payment provider, one cancelled by the customer), waits
// for each to settle, and prints every order's final status and how long each service
// took to react, from the events' own timestamps. `make demo` runs it after `make up`.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type client struct {
	shop, inventory, billing, logistics, crm, mailpit, token string
}

func (c client) do(ctx context.Context, method, url string, body any, admin bool, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if admin {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, raw)
		}
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	return resp.StatusCode, nil
}

type scenario struct {
	name, token string
	sku         string
	quantity    int
	cancel      bool
	dispatch    bool
	want        string
	id          string
}

type view struct {
	Status   string    `json:"status"`
	Reason   string    `json:"reason"`
	PlacedAt time.Time `json:"placed_at"`
	Timeline []struct {
		At      time.Time `json:"at"`
		Service string    `json:"service"`
		Event   string    `json:"event"`
		Detail  string    `json:"detail"`
	} `json:"timeline"`
}

func run(ctx context.Context) error {
	c := client{shop: os.Getenv("ORDERFLOW_SHOP_URL"), inventory: os.Getenv("ORDERFLOW_INVENTORY_URL"), billing: os.Getenv("ORDERFLOW_BILLING_URL"),
		logistics: os.Getenv("ORDERFLOW_LOGISTICS_URL"), crm: os.Getenv("ORDERFLOW_CRM_URL"), mailpit: os.Getenv("ORDERFLOW_MAILPIT_URL"),
		token: os.Getenv("ORDERFLOW_ADMIN_TOKEN")}
	if c.shop == "" || c.token == "" {
		return errors.New("ORDERFLOW_SHOP_URL and ORDERFLOW_ADMIN_TOKEN are not set: run it as `make demo`")
	}
	run := time.Now().UTC().Format("150405")
	catalog := []struct {
		sku, name string
		price     int64
		stock     int
	}{{"DEMO-KEYBOARD", "Mechanical keyboard", 8900, 25}, {"DEMO-MOUSE", "Wireless mouse", 2450, 40}, {"DEMO-LAMP", "Desk lamp (last one)", 3900, 1}}
	fmt.Println("stocking the catalog (shop prices, inventory receives stock):")
	available := map[string]int{}
	for _, p := range catalog {
		if _, err := c.do(ctx, "PUT", c.shop+"/v1/products/"+p.sku, map[string]any{"name": p.name, "unit_price_minor": p.price, "currency": "EUR"}, true, nil); err != nil {
			return err
		}
		var lvl map[string]any
		if _, err := c.do(ctx, "POST", c.inventory+"/v1/stock/"+p.sku+"/receipts",
			map[string]any{"receipt_id": "demo-" + run + "-" + p.sku, "quantity": p.stock, "low_threshold": 5}, true, &lvl); err != nil {
			return err
		}
		fmt.Printf("  %-14s %-22s %6.2f EUR  on hand %v, available %v\n", p.sku, p.name, float64(p.price)/100, lvl["on_hand"], lvl["available"])
		if n, ok := lvl["available"].(float64); ok {
			available[p.sku] = int(n)
		}
	}

	// A stack just started pays once for the JVM's compilation, new connections and
	// consumer groups settling; one order through the workflow first keeps that out of
	// the timings below, and its own time is shown.
	fmt.Println("\nwarming up: one order through the whole workflow")
	warm := orderBody("demo-"+run+"-warmup", "Warm-up", "DEMO-MOUSE", 1, "tok_visa")
	var warmed struct {
		OrderID string `json:"order_id"`
	}
	warmStart := time.Now()
	if _, err := c.do(ctx, "POST", c.shop+"/v1/orders", warm, false, &warmed); err != nil {
		return err
	}
	if _, err := waitStatus(ctx, c, warmed.OrderID, "CONFIRMED"); err != nil {
		return err
	}
	fmt.Printf("  shop showed it CONFIRMED %.0f ms after it was placed (order %s)\n", float64(time.Since(warmStart).Microseconds())/1000, warmed.OrderID)

	scenarios := []*scenario{
		{name: "ships", token: "tok_visa", sku: "DEMO-KEYBOARD", quantity: 1, dispatch: true, want: "SHIPPED"},
		// One more lamp than there is, however many earlier demo runs left on a kept stack.
		{name: "out of stock", token: "tok_visa", sku: "DEMO-LAMP", quantity: available["DEMO-LAMP"] + 1, want: "CANCELLED"},
		{name: "card declined", token: "tok_declined", sku: "DEMO-MOUSE", quantity: 2, want: "CANCELLED"},
		{name: "flaky provider", token: "tok_flaky", sku: "DEMO-MOUSE", quantity: 1, want: "CONFIRMED"},
		{name: "customer cancels", token: "tok_visa", sku: "DEMO-KEYBOARD", quantity: 2, cancel: true, want: "CANCELLED"},
	}
	fmt.Println("\nplacing orders through POST /v1/orders:")
	for i, s := range scenarios {
		body := orderBody(fmt.Sprintf("demo-%s-%d", run, i), "Demo Customer "+fmt.Sprint(i+1), s.sku, s.quantity, s.token)
		var out struct {
			OrderID string `json:"order_id"`
		}
		start := time.Now()
		code, err := c.do(ctx, "POST", c.shop+"/v1/orders", body, false, &out)
		if err != nil {
			return err
		}
		s.id = out.OrderID
		fmt.Printf("  %-17s %d in %4.1f ms  order %s\n", s.name, code, float64(time.Since(start).Microseconds())/1000, s.id)
	}

	for _, s := range scenarios {
		switch {
		case s.cancel:
			if _, err := waitStatus(ctx, c, s.id, "CONFIRMED"); err != nil {
				return err
			}
			var answer struct {
				Cancellation string `json:"cancellation"`
			}
			code, err := c.do(ctx, "POST", c.shop+"/v1/orders/"+s.id+"/cancel", nil, false, &answer)
			if err != nil {
				return err
			}
			fmt.Printf("  %-17s cancel: %d, cancellation %s (logistics decides; this parcel is still in the warehouse)\n", s.name, code, answer.Cancellation)
		case s.dispatch:
			if err := waitPrepared(ctx, c, s.id); err != nil {
				return err
			}
			if _, err := c.do(ctx, "POST", c.logistics+"/v1/shipments/"+s.id+"/dispatch", nil, true, nil); err != nil {
				return err
			}
		}
	}

	fmt.Println("\nfinal state, the payment, and when each service reacted (ms after OrderPlaced, from event timestamps):")
	fmt.Printf("  %-17s %-10s %-17s %-9s %9s %9s %9s %9s %9s\n", "scenario", "status", "reason", "payment", "inventory", "billing", "logistics", "shop", "crm")
	for _, s := range scenarios {
		v, err := waitStatus(ctx, c, s.id, s.want)
		if err != nil {
			return err
		}
		time.Sleep(300 * time.Millisecond) // let trailing events (e-mails, voids) land
		if v, err = waitCRM(ctx, c, s.id); err != nil {
			return err
		}
		first := map[string]time.Duration{}
		for _, st := range v.Timeline {
			d := st.At.Sub(v.PlacedAt)
			if st.Service == "shop" && st.Event == "OrderPlaced" {
				continue
			}
			if old, ok := first[st.Service]; !ok || d < old {
				first[st.Service] = d
			}
		}
		cell := func(svc string) string {
			d, ok := first[svc]
			if !ok {
				return "-"
			}
			return fmt.Sprintf("%.0f", float64(d.Microseconds())/1000)
		}
		var payment struct {
			Status string `json:"status"`
		}
		if _, err := c.do(ctx, "GET", c.billing+"/v1/payments/"+s.id, nil, false, &payment); err != nil {
			return err
		}
		fmt.Printf("  %-17s %-10s %-17s %-9s %9s %9s %9s %9s %9s\n", s.name, v.Status, v.Reason, payment.Status,
			cell("inventory"), cell("billing"), cell("logistics"), cell("shop"), cell("crm"))
	}
	fmt.Println("\ntimeline of the order that shipped:")
	var v view
	if _, err := c.do(ctx, "GET", c.shop+"/v1/orders/"+scenarios[0].id, nil, false, &v); err != nil {
		return err
	}
	for _, st := range v.Timeline {
		fmt.Printf("  +%6.1f ms  %-9s %-19s %s\n", float64(st.At.Sub(v.PlacedAt).Microseconds())/1000, st.Service, st.Event, st.Detail)
	}
	var inv struct {
		Number string `json:"number"`
	}
	if _, err := c.do(ctx, "GET", c.billing+"/v1/orders/"+scenarios[0].id+"/invoice", nil, false, &inv); err != nil {
		return fmt.Errorf("the shipped order's invoice: %w", err)
	}
	creditNote := ""
	for _, s := range scenarios {
		if !s.cancel {
			continue
		}
		var cancelled struct {
			CreditNoteNumber string `json:"credit_note_number"`
		}
		if _, err := c.do(ctx, "GET", c.billing+"/v1/orders/"+s.id+"/invoice", nil, false, &cancelled); err != nil {
			return fmt.Errorf("the cancelled order's invoice: %w", err)
		}
		if cancelled.CreditNoteNumber != "" {
			creditNote = fmt.Sprintf("  a credit note (PDF)  %s/v1/invoices/%s/pdf    (the cancelled order's invoice, voided)\n", c.billing, cancelled.CreditNoteNumber)
			break
		}
	}
	fmt.Printf(`
where to look next:
  the order            %s/v1/orders/%s
  all orders           %s/v1/orders
  its invoice (PDF)    %s/v1/invoices/%s/pdf
  its label (PDF)      %s/v1/shipments/%s/label
%s  customer timeline    %s/v1/customers/demo-%s-0/timeline
  e-mails (Mailpit)    %s
  metrics              %s/metrics
  the API (OpenAPI)    %s/openapi.json   (gRPC on the same port: grpcurl -plaintext %s list)
  revenue per day      %s/v1/revenue/daily
  rebuild a read model make replay SERVICE=shop MODEL=order-view    (ARGS=--verify compares it with a rebuild)
  logs                 make logs    (make logs F=1 follows them)
`, c.shop, scenarios[0].id, c.shop, c.billing, inv.Number, c.logistics, scenarios[0].id, creditNote, c.crm, run, c.mailpit, c.shop,
		c.shop, strings.TrimPrefix(c.shop, "http://"), c.billing)
	return nil
}

// orderBody is a POST /v1/orders request for one line, shipped to Berlin.
func orderBody(customer, name, sku string, quantity int, token string) map[string]any {
	return map[string]any{
		"customer":         map[string]any{"id": customer, "email": customer + "@example.com", "name": name},
		"shipping_address": map[string]any{"name": name, "line1": "Torstrasse 1", "city": "Berlin", "postal_code": "10119", "country": "DE"},
		"lines":            []map[string]any{{"sku": sku, "quantity": quantity}},
		"payment_token":    token,
	}
}

func waitStatus(ctx context.Context, c client, id, want string) (view, error) {
	deadline := time.Now().Add(60 * time.Second)
	var v view
	for {
		code, _ := c.do(ctx, "GET", c.shop+"/v1/orders/"+id, nil, false, &v)
		if code == 200 && v.Status == want {
			return v, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return v, fmt.Errorf("order %s is %q after 60 s, expected %s", id, v.Status, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitCRM returns the order's view once it shows crm's reaction (every scenario sends an
// e-mail), or as it is after 30 s: crm lingers a quarter of a second, and on a first
// start its group may begin a few seconds after the others.
func waitCRM(ctx context.Context, c client, id string) (view, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		var v view
		if _, err := c.do(ctx, "GET", c.shop+"/v1/orders/"+id, nil, false, &v); err != nil {
			return v, err
		}
		for _, st := range v.Timeline {
			if st.Service == "crm" {
				return v, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return v, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitPrepared(ctx context.Context, c client, id string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		var s struct {
			Status string `json:"status"`
		}
		code, _ := c.do(ctx, "GET", c.logistics+"/v1/shipments/"+id, nil, false, &s)
		if code == 200 && s.Status == "PREPARED" {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("shipment of %s is %q after 60 s", id, s.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
