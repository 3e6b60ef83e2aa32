package e2e

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const settle = 30 * time.Second

// Happy path: confirmed, then shipped after dispatch; one authorization, one invoice
// whose PDF parses, one shipment with a label, stock taken off the shelf, e-mails sent.
func TestHappyPath(t *testing.T) {
	t.Parallel()
	s := stack(t)
	sku := s.product(t, 1250, 10, 0)
	body := orderBody("tok_visa", line{sku, 3})
	email := body["customer"].(map[string]any)["email"].(string)
	id := s.place(t, body)
	s.await(t, id, "CONFIRMED", settle)

	if n := s.scalar(t, "billing", `SELECT count(*) FROM payments WHERE order_id = $1 AND status = 'AUTHORIZED'`, id); n != int64(1) {
		t.Fatalf("%v authorizations, want 1", n)
	}
	var inv struct {
		Number string `json:"number"`
		Status string `json:"status"`
	}
	eventually(t, settle, func() string {
		if code := s.call(t, "GET", s.billing+"/v1/orders/"+id+"/invoice", nil, nil, &inv); code != 200 {
			return fmt.Sprintf("invoice: HTTP %d", code)
		}
		return ""
	})
	text := pdfText(t, s.get(t, s.billing+"/v1/invoices/"+inv.Number+"/pdf"))
	for _, want := range []string{inv.Number, id, sku, "37.50 EUR"} {
		if !strings.Contains(text, want) {
			t.Errorf("invoice PDF lacks %q:\n%s", want, text)
		}
	}
	eventually(t, settle, func() string {
		if st := s.scalar(t, "logistics", `SELECT status FROM shipments WHERE order_id = $1`, id); st != "PREPARED" {
			return fmt.Sprintf("shipment %v, want PREPARED", st)
		}
		return ""
	})
	if !strings.Contains(pdfText(t, s.get(t, s.logistics+"/v1/shipments/"+id+"/label")), "Hauptstrasse 1") {
		t.Error("label lacks the address")
	}

	var shipment struct {
		Status string `json:"status"`
	}
	if code := s.call(t, "POST", s.logistics+"/v1/shipments/"+id+"/dispatch", nil, nil, nil); code != 401 {
		t.Fatalf("dispatch without token: %d, want 401", code)
	}
	if code := s.call(t, "POST", s.logistics+"/v1/shipments/"+id+"/dispatch", nil, s.admin(), &shipment); code != 200 || shipment.Status != "DISPATCHED" {
		t.Fatalf("dispatch: %d %+v", code, shipment)
	}
	v := s.await(t, id, "SHIPPED", settle)
	eventually(t, settle, func() string {
		onHand := s.scalar(t, "inventory", `SELECT on_hand FROM stock WHERE sku = $1`, sku)
		reserved := s.scalar(t, "inventory", `SELECT reserved FROM stock WHERE sku = $1`, sku)
		if onHand != int32(7) || reserved != int32(0) {
			return fmt.Sprintf("stock on_hand %v reserved %v, want 7 and 0", onHand, reserved)
		}
		return ""
	})
	eventually(t, settle, func() string {
		got := s.mails(t, email)
		for _, want := range []string{"Your order is confirmed", "Your order is on its way", "How was your order?"} {
			if !slices.Contains(got, want) {
				return fmt.Sprintf("mails to %s: %v, missing %q", email, got, want)
			}
		}
		if len(got) != 3 {
			return fmt.Sprintf("mails to %s: %v, want exactly 3", email, got)
		}
		return ""
	})
	services := map[string]bool{}
	for _, st := range v.Timeline {
		services[st.Service] = true
	}
	for _, svc := range []string{"shop", "inventory", "billing", "logistics"} {
		if !services[svc] {
			t.Errorf("timeline lacks %s: %+v", svc, v.Timeline)
		}
	}
	s.awaitShopKnows(t, id, "SHIPPED", settle)
	if code := s.call(t, "POST", s.shop+"/v1/orders/"+id+"/cancel", nil, nil, nil); code != 409 {
		t.Fatalf("cancel after dispatch: %d, want 409", code)
	}
}

// Out of stock: cancelled with out_of_stock, authorization and invoice voided, no
// shipment, an apology, and nothing partially reserved.
func TestOutOfStock(t *testing.T) {
	t.Parallel()
	s := stack(t)
	plenty := s.product(t, 500, 100, 0)
	scarce := s.product(t, 700, 1, 0)
	body := orderBody("tok_visa", line{plenty, 2}, line{scarce, 5})
	email := body["customer"].(map[string]any)["email"].(string)
	id := s.place(t, body)
	v := s.await(t, id, "CANCELLED", settle)
	if v.Reason != "out_of_stock" {
		t.Fatalf("reason %q, want out_of_stock", v.Reason)
	}
	eventually(t, settle, func() string {
		p := s.scalar(t, "billing", `SELECT status FROM payments WHERE order_id = $1`, id)
		i := s.scalar(t, "billing", `SELECT COALESCE((SELECT status FROM invoices WHERE order_id = $1), 'NONE')`, id)
		if p != "VOIDED" || (i != "VOIDED" && i != "NONE") {
			return fmt.Sprintf("payment %v invoice %v, want VOIDED", p, i)
		}
		return ""
	})
	if r := s.scalar(t, "inventory", `SELECT reserved FROM stock WHERE sku = $1`, plenty); r != int32(0) {
		t.Fatalf("%v units of the available SKU stayed reserved", r)
	}
	if n := s.scalar(t, "logistics", `SELECT count(*) FROM shipments WHERE order_id = $1 AND shipment_id IS NOT NULL`, id); n != int64(0) {
		t.Fatal("a shipment was prepared")
	}
	eventually(t, settle, func() string {
		if got := s.mails(t, email); !slices.Equal(got, []string{"Your order was cancelled"}) {
			return fmt.Sprintf("mails %v, want the apology only", got)
		}
		return ""
	})
}

// Declined payment: cancelled with payment_declined, stock released, no shipment.
func TestPaymentDeclined(t *testing.T) {
	t.Parallel()
	s := stack(t)
	sku := s.product(t, 900, 5, 0)
	id := s.place(t, orderBody("tok_declined", line{sku, 2}))
	v := s.await(t, id, "CANCELLED", settle)
	if v.Reason != "payment_declined" {
		t.Fatalf("reason %q", v.Reason)
	}
	eventually(t, settle, func() string {
		r := s.scalar(t, "inventory", `SELECT COALESCE((SELECT status FROM reservations WHERE order_id = $1), 'NONE')`, id)
		reserved := s.scalar(t, "inventory", `SELECT reserved FROM stock WHERE sku = $1`, sku)
		if (r != "RELEASED" && r != "VOIDED") || reserved != int32(0) {
			return fmt.Sprintf("reservation %v, %v units reserved; want released and 0", r, reserved)
		}
		return ""
	})
	if n := s.scalar(t, "logistics", `SELECT count(*) FROM shipments WHERE order_id = $1 AND shipment_id IS NOT NULL`, id); n != int64(0) {
		t.Fatal("a shipment was prepared")
	}
}

// Cancel before shipment undoes everything.
func TestCancelBeforeShipment(t *testing.T) {
	t.Parallel()
	s := stack(t)
	sku := s.product(t, 300, 4, 0)
	id := s.place(t, orderBody("tok_visa", line{sku, 4}))
	s.await(t, id, "CONFIRMED", settle)
	eventually(t, settle, func() string {
		if st := s.scalar(t, "logistics", `SELECT status FROM shipments WHERE order_id = $1`, id); st != "PREPARED" {
			return fmt.Sprintf("shipment %v", st)
		}
		return ""
	})
	var out map[string]any
	if code := s.call(t, "POST", s.shop+"/v1/orders/"+id+"/cancel", nil, nil, &out); code != 202 {
		t.Fatalf("cancel: %d %v", code, out)
	}
	v := s.await(t, id, "CANCELLED", settle)
	if v.Reason != "customer_request" {
		t.Fatalf("reason %q", v.Reason)
	}
	eventually(t, settle, func() string {
		got := []any{
			s.scalar(t, "inventory", `SELECT reserved FROM stock WHERE sku = $1`, sku),
			s.scalar(t, "billing", `SELECT status FROM payments WHERE order_id = $1`, id),
			s.scalar(t, "billing", `SELECT status FROM invoices WHERE order_id = $1`, id),
			s.scalar(t, "logistics", `SELECT status FROM shipments WHERE order_id = $1`, id),
		}
		if !slices.Equal(got, []any{int32(0), "VOIDED", "VOIDED", "CANCELLED"}) {
			return fmt.Sprintf("reserved, payment, invoice, shipment = %v", got)
		}
		return ""
	})
	if code := s.call(t, "POST", s.logistics+"/v1/shipments/"+id+"/dispatch", nil, s.admin(), nil); code != 409 {
		t.Fatalf("dispatch of a cancelled shipment: %d, want 409", code)
	}
	if code := s.call(t, "POST", s.shop+"/v1/orders/"+id+"/cancel", nil, nil, nil); code != 409 {
		t.Fatalf("second cancel: %d, want 409", code)
	}
}

// 200 concurrent orders for 50 units of one SKU: exactly 50 reserved, the rest
// cancelled out of stock, stock never negative.
func TestNoOversellUnderConcurrency(t *testing.T) {
	t.Parallel()
	s := stack(t)
	sku := s.product(t, 100, 50, 0)
	ids := make([]string, 200)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i] = s.place(t, orderBody("tok_visa", line{sku, 1}))
		}()
	}
	wg.Wait()
	eventually(t, 90*time.Second, func() string {
		n := s.scalar(t, "shop", `SELECT count(*) FROM order_view WHERE order_id = ANY($1::uuid[]) AND status IN ('CONFIRMED', 'CANCELLED')`, ids)
		if n != int64(200) {
			return fmt.Sprintf("%v of 200 orders decided", n)
		}
		return ""
	})
	confirmed := s.scalar(t, "shop", `SELECT count(*) FROM order_view WHERE order_id = ANY($1::uuid[]) AND status = 'CONFIRMED'`, ids)
	outOfStock := s.scalar(t, "shop", `SELECT count(*) FROM order_view WHERE order_id = ANY($1::uuid[]) AND reason = 'out_of_stock'`, ids)
	if confirmed != int64(50) || outOfStock != int64(150) {
		t.Fatalf("%v confirmed, %v out of stock; want 50 and 150", confirmed, outOfStock)
	}
	if r := s.scalar(t, "inventory", `SELECT reserved FROM stock WHERE sku = $1`, sku); r != int32(50) {
		t.Fatalf("%v reserved, want 50", r)
	}
	eventually(t, settle, func() string {
		var av struct {
			Available int `json:"available"`
		}
		s.call(t, "GET", s.inventory+"/v1/stock/"+sku, nil, nil, &av)
		if av.Available != 0 {
			return fmt.Sprintf("availability view says %d, want 0", av.Available)
		}
		return ""
	})
}
