package e2e

import (
	"errors"
	"fmt"
	neturl "net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

const settle = 30 * time.Second

// An order can be read the moment its placement is answered, though the order view
// trails the events by up to the read models' linger: until the view has it, shop
// answers from its write model with the order as placed. Its status never goes back
// while the view catches up, and the view's timeline follows.
func TestOrderReadableRightAfterPlacement(t *testing.T) {
	t.Parallel()
	s := stack(t)
	sku := s.product(t, 700, 100, 0)
	rank := map[string]int{"PENDING": 1, "CONFIRMED": 2}
	for range 5 {
		id := s.place(t, orderBody("tok_visa", line{sku, 2}))
		var seen []string
		for deadline := time.Now().Add(settle); ; {
			var o struct {
				view
				Lines []struct {
					SKU      string `json:"sku"`
					Quantity int    `json:"quantity"`
				} `json:"lines"`
			}
			if code := s.call(t, "GET", s.shop+"/v1/orders/"+id, nil, nil, &o); code != 200 {
				t.Fatalf("order %s after %v: HTTP %d, want 200", id, seen, code)
			}
			if len(o.Lines) != 1 || o.Lines[0].SKU != sku || o.Lines[0].Quantity != 2 {
				t.Fatalf("order %s: lines %+v, want 2 of %s", id, o.Lines, sku)
			}
			if len(seen) > 0 && rank[o.Status] < rank[seen[len(seen)-1]] {
				t.Fatalf("order %s: status went back: %v then %s", id, seen, o.Status)
			}
			seen = append(seen, o.Status)
			if o.Status == "CONFIRMED" && slices.ContainsFunc(o.Timeline, func(st struct {
				Service string `json:"service"`
				Event   string `json:"event"`
			}) bool {
				return st.Event == "OrderPlaced"
			}) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("order %s: %v, never CONFIRMED with its placement in the timeline", id, seen)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// Happy path: confirmed, then shipped after dispatch; one payment, authorized and then
// captured once the order is confirmed, one invoice whose PDF parses, one shipment with a
// label, stock taken off the shelf, e-mails sent.
func TestHappyPath(t *testing.T) {
	t.Parallel()
	s := stack(t)
	sku := s.product(t, 1250, 10, 0)
	body := orderBody("tok_visa", line{sku, 3})
	email := body["customer"].(map[string]any)["email"].(string)
	id := s.place(t, body)
	s.await(t, id, "CONFIRMED", settle)

	eventually(t, settle, func() string {
		if n := s.scalar(t, "billing", `SELECT count(*) FROM payments WHERE order_id = $1 AND status = 'CAPTURED' AND capture_id IS NOT NULL`, id); n != int64(1) {
			return fmt.Sprintf("%v captured payments, want 1", n)
		}
		return ""
	})
	number := s.awaitInvoiceIssued(t, id)
	text := pdfText(t, s.get(t, s.billing+"/v1/invoices/"+number+"/pdf"))
	for _, want := range []string{number, id, sku, "37.50 EUR"} {
		if !strings.Contains(text, want) {
			t.Errorf("invoice PDF lacks %q:\n%s", want, text)
		}
	}
	s.awaitPrepared(t, id)
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
	body := orderBody("tok_visa", line{sku, 4})
	email := body["customer"].(map[string]any)["email"].(string)
	id := s.place(t, body)
	s.await(t, id, "CONFIRMED", settle)
	s.awaitPrepared(t, id)
	s.awaitInvoiceIssued(t, id)
	var out map[string]any
	if code := s.call(t, "POST", s.shop+"/v1/orders/"+id+"/cancel", nil, nil, &out); code != 202 || out["cancellation"] != "REQUESTED" {
		t.Fatalf("cancel: %d %v, want 202 and cancellation REQUESTED", code, out)
	}
	if code := s.call(t, "POST", s.shop+"/v1/orders/"+id+"/cancel", nil, nil, &out); code != 202 && code != 409 {
		t.Fatalf("cancel while the first request is decided: %d %v, want 202 (the same answer) or 409 (already cancelled)", code, out)
	}
	v := s.await(t, id, "CANCELLED", settle)
	if v.Reason != "customer_request" || v.Cancellation != "CANCELLED" {
		t.Fatalf("reason %q, cancellation %q", v.Reason, v.Cancellation)
	}
	s.awaitUndone(t, id, sku, []string{"REFUNDED"}, "VOIDED") // confirmed, so captured: refunded
	// The invoice was issued before the cancellation (the order was confirmed and
	// prepared): it stays as it was, answered by a credit note of its own.
	var inv struct {
		Number           string `json:"number"`
		CreditNoteNumber string `json:"credit_note_number"`
	}
	if code := s.call(t, "GET", s.billing+"/v1/orders/"+id+"/invoice", nil, nil, &inv); code != 200 || inv.Number == "" ||
		!strings.HasPrefix(inv.CreditNoteNumber, "CN-") {
		t.Fatalf("invoice of the cancelled order: HTTP %d %+v, want an issued invoice with a credit note", code, inv)
	}
	text := pdfText(t, s.get(t, s.billing+"/v1/invoices/"+inv.CreditNoteNumber+"/pdf"))
	for _, want := range []string{"Credit note " + inv.CreditNoteNumber, "Cancels invoice " + inv.Number, id, "-12.00 EUR", "Reason: customer_request"} {
		if !strings.Contains(text, want) {
			t.Errorf("credit note PDF lacks %q:\n%s", want, text)
		}
	}
	if !strings.Contains(pdfText(t, s.get(t, s.billing+"/v1/invoices/"+inv.Number+"/pdf")), "12.00 EUR") {
		t.Error("the issued invoice's PDF changed")
	}
	eventually(t, settle, func() string {
		if text := s.mailText(t, email, "Your order was cancelled"); !strings.Contains(text, "Your payment is refunded in full.") {
			return fmt.Sprintf("the cancellation e-mail does not mention the refund:\n%s", text)
		}
		return ""
	})
	if code := s.call(t, "POST", s.shop+"/v1/orders/"+id+"/cancel", nil, nil, nil); code != 409 {
		t.Fatalf("second cancel: %d, want 409", code)
	}
}

// Cancel as soon as the order is placed, before logistics has prepared anything: it
// agrees without a shipment, and every service undoes its part.
func TestCancelWhilePending(t *testing.T) {
	t.Parallel()
	s := stack(t)
	sku := s.product(t, 300, 2, 0)
	body := orderBody("tok_visa", line{sku, 2})
	email := body["customer"].(map[string]any)["email"].(string)
	id := s.place(t, body)
	if code := s.call(t, "POST", s.shop+"/v1/orders/"+id+"/cancel", nil, nil, nil); code != 202 {
		t.Fatalf("cancel: %d, want 202", code)
	}
	v := s.await(t, id, "CANCELLED", settle)
	if v.Reason != "customer_request" || v.Cancellation != "CANCELLED" {
		t.Fatalf("reason %q, cancellation %q", v.Reason, v.Cancellation)
	}
	// Whether the shop confirmed the order before the request reached it is a race; what
	// follows from it is not. Confirmed first: captured, so refunded, and the customer got
	// the confirmation. Asked first: never confirmed (the shop waits for logistics), so
	// voided and no confirmation. The invoice may not have been issued yet either way.
	confirmed := s.scalar(t, "shop", `SELECT count(*) FROM order_timeline WHERE order_id = $1 AND event = 'OrderConfirmed'`, id) == int64(1)
	payment, mails := "VOIDED", []string{"Your order was cancelled"}
	if confirmed {
		payment, mails = "REFUNDED", []string{"Your order is confirmed", "Your order was cancelled"}
	}
	s.awaitUndone(t, id, sku, []string{payment}, "VOIDED", "NONE")
	money := map[bool]string{false: "Nothing will be charged.", true: "Your payment is refunded in full."}[confirmed]
	eventually(t, settle, func() string {
		got := s.mails(t, email)
		slices.Sort(got)
		if !slices.Equal(got, mails) {
			return fmt.Sprintf("mails %v, want %v (confirmed first: %v)", got, mails, confirmed)
		}
		if text := s.mailText(t, email, "Your order was cancelled"); !strings.Contains(text, money) {
			return fmt.Sprintf("the cancellation e-mail does not say %q:\n%s", money, text)
		}
		return ""
	})
	t.Logf("confirmed before the request: %v", confirmed)
}

// awaitPrepared waits until logistics has prepared an order's shipment.
func (s *suite) awaitPrepared(t *testing.T, id string) {
	t.Helper()
	eventually(t, settle, func() string {
		if st := s.scalar(t, "logistics", `SELECT status FROM shipments WHERE order_id = $1`, id); st != "PREPARED" {
			return fmt.Sprintf("shipment of %s %v, want PREPARED", id, st)
		}
		return ""
	})
}

// awaitUndone waits until a cancelled order's parts are undone everywhere: nothing of
// sku reserved, the payment in one of payment, the invoice in one of invoice (NONE: no
// invoice), the shipment cancelled and refused by the dispatch endpoint.
func (s *suite) awaitUndone(t *testing.T, id, sku string, payment []string, invoice ...string) {
	t.Helper()
	eventually(t, settle, func() string {
		reserved := s.scalar(t, "inventory", `SELECT reserved FROM stock WHERE sku = $1`, sku)
		// No payment row yet is a state to wait through (billing may not have read the
		// order), not a reason to stop: hence COALESCE, as for the invoice.
		pay := s.scalar(t, "billing", `SELECT COALESCE((SELECT status FROM payments WHERE order_id = $1), 'NONE')`, id).(string)
		shipment := s.scalar(t, "logistics", `SELECT status FROM shipments WHERE order_id = $1`, id)
		inv := s.scalar(t, "billing", `SELECT COALESCE((SELECT status FROM invoices WHERE order_id = $1), 'NONE')`, id).(string)
		if reserved != int32(0) || !slices.Contains(payment, pay) || shipment != "CANCELLED" || !slices.Contains(invoice, inv) {
			return fmt.Sprintf("reserved %v, payment %s, shipment %v, invoice %s; want 0, one of %v, CANCELLED, one of %v",
				reserved, pay, shipment, inv, payment, invoice)
		}
		return ""
	})
	if code := s.call(t, "POST", s.logistics+"/v1/shipments/"+id+"/dispatch", nil, s.admin(), nil); code != 409 {
		t.Fatalf("dispatch of a cancelled order: %d, want 409", code)
	}
}

// A cancellation racing a dispatch: logistics, which holds the parcel, decides which
// came first, and every service agrees with it. Half the orders are dispatched and then
// cancelled at once (the cancellation reaches the shop before the shop has heard of the
// dispatch); half are cancelled and dispatched 0 to 50 ms later, while logistics decides.
// Each order ends either shipped, with its payment captured and its stock taken, or
// cancelled, with its payment refunded, its stock released and its parcel still in the
// warehouse: never goods out of the door for a refunded payment. Before ADR 0009 the shop
// decided alone and all twelve ended cancelled with their parcels dispatched.
func TestCancelRacingDispatch(t *testing.T) {
	t.Parallel()
	s := stack(t)
	const n = 12
	sku := s.product(t, 450, n, 0)
	ids, emails := make([]string, n), make([]string, n)
	for i := range ids {
		body := orderBody("tok_visa", line{sku, 1})
		emails[i] = body["customer"].(map[string]any)["email"].(string)
		ids[i] = s.place(t, body)
	}
	for _, id := range ids {
		s.await(t, id, "CONFIRMED", settle)
		s.awaitPrepared(t, id)
	}

	dispatched, cancelRefused := make([]int, n), make([]int, n)
	var wg sync.WaitGroup
	for i, id := range ids {
		dispatch := func() {
			dispatched[i] = s.call(t, "POST", s.logistics+"/v1/shipments/"+id+"/dispatch", nil, s.admin(), nil)
		}
		cancel := func() { cancelRefused[i] = s.call(t, "POST", s.shop+"/v1/orders/"+id+"/cancel", nil, nil, nil) }
		if i%2 == 0 {
			dispatch()
			cancel()
			continue
		}
		wg.Add(2)
		go func() { defer wg.Done(); cancel() }()
		go func() { defer wg.Done(); time.Sleep(time.Duration(i/2) * 10 * time.Millisecond); dispatch() }()
	}
	wg.Wait()

	for i := range ids {
		if dispatched[i] != 200 && dispatched[i] != 409 {
			t.Errorf("order %d: dispatch answered %d, want 200 or 409", i, dispatched[i])
		}
		if cancelRefused[i] != 202 && cancelRefused[i] != 409 {
			t.Errorf("order %d: cancel answered %d, want 202 or 409", i, cancelRefused[i])
		}
	}
	shipped := []any{"SHIPPED", "DISPATCHED", "CAPTURED", "SHIPPED"}
	cancelled := []any{"CANCELLED", "CANCELLED", "REFUNDED", "RELEASED"}
	var wrong []string
	for deadline := time.Now().Add(settle); ; time.Sleep(200 * time.Millisecond) {
		wrong = wrong[:0]
		for i, id := range ids {
			got := []any{
				s.scalar(t, "shop", `SELECT status FROM orders WHERE id = $1`, id),
				s.scalar(t, "logistics", `SELECT status FROM shipments WHERE order_id = $1`, id),
				s.scalar(t, "billing", `SELECT status FROM payments WHERE order_id = $1`, id),
				s.scalar(t, "inventory", `SELECT status FROM reservations WHERE order_id = $1`, id),
			}
			switch {
			case !slices.Equal(got, shipped) && !slices.Equal(got, cancelled):
				wrong = append(wrong, fmt.Sprintf("order %d (dispatch %d, cancel %d): shop, shipment, payment, stock = %v",
					i, dispatched[i], cancelRefused[i], got))
			case (dispatched[i] == 200 || cancelRefused[i] == 409) && got[0] != "SHIPPED":
				wrong = append(wrong, fmt.Sprintf("order %d: dispatch %d, cancel %d, yet the order is %v", i, dispatched[i], cancelRefused[i], got[0]))
			}
		}
		if len(wrong) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, w := range wrong {
		t.Error(w)
	}
	if len(wrong) > 0 {
		t.Fatalf("every order must end %v or %v", shipped, cancelled)
	}

	// The order view tells the customer what became of the request.
	outcomes := map[string]int{}
	for i, id := range ids {
		st := s.scalar(t, "shop", `SELECT status FROM orders WHERE id = $1`, id).(string)
		want := map[string]string{"SHIPPED": "REFUSED", "CANCELLED": "CANCELLED"}[st]
		if cancelRefused[i] == 409 {
			want = "" // refused by the shop itself: no request was made
		}
		// The view reads the request (shop.orders) and the dispatch (logistics.shipments)
		// independently: it may show SHIPPED a moment before it shows the request.
		eventually(t, settle, func() string {
			var v view
			s.call(t, "GET", s.shop+"/v1/orders/"+id, nil, nil, &v)
			if v.Status != st || v.Cancellation != want {
				return fmt.Sprintf("order %d (cancel %d): view says %s, cancellation %q; want %s, %q", i, cancelRefused[i], v.Status, v.Cancellation, st, want)
			}
			return ""
		})
		// And crm tells the customer: cancelled, or too late (only when a request was made).
		wantMail, notMail := "Your order was cancelled", "Your order could not be cancelled"
		if st == "SHIPPED" {
			wantMail, notMail = "Your order could not be cancelled", "Your order was cancelled"
			if cancelRefused[i] == 409 {
				wantMail = "Your order is on its way"
			}
		}
		eventually(t, settle, func() string {
			got := s.mails(t, emails[i])
			if !slices.Contains(got, wantMail) || slices.Contains(got, notMail) {
				return fmt.Sprintf("order %d %s (cancel %d): mails %v, want %q and not %q", i, st, cancelRefused[i], got, wantMail, notMail)
			}
			return ""
		})
		outcomes[fmt.Sprintf("%s (dispatch %d, cancel %d)", st, dispatched[i], cancelRefused[i])]++
	}
	t.Logf("outcomes: %v", outcomes)
}

// 200 concurrent orders for 50 units of one SKU: exactly 50 reserved, the rest
// cancelled out of stock, stock never negative.
func TestNoOversellUnderConcurrency(t *testing.T) {
	t.Parallel()
	s := stack(t)
	sku := s.product(t, 100, 50, 0)
	ids := make([]string, 200)
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i], errs[i] = s.placeLikeAClient(orderBody("tok_visa", line{sku, 1}))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
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

// A customer's crm timeline is read newest first, a page at a time, and takes the same
// customer ids as shop: up to 64 characters, not bytes. (It returned the oldest 1000
// steps and refused an id of 64 accented letters that shop had taken.)
func TestCustomerTimelinePages(t *testing.T) {
	t.Parallel()
	s := stack(t)
	sku := s.product(t, 250, 100, 0)
	customer := "kundé-" + strings.Repeat("ü", 50) + uuid.NewString()[:8] // 64 characters, 115 bytes
	var orders []string
	for range 3 {
		body := orderBody("tok_visa", line{sku, 1})
		body["customer"].(map[string]any)["id"] = customer
		orders = append(orders, s.place(t, body))
	}
	for _, id := range orders {
		s.await(t, id, "CONFIRMED", settle)
	}
	type page struct {
		Timeline []struct {
			OrderID string    `json:"order_id"`
			At      time.Time `json:"at"`
			Event   string    `json:"event"`
		} `json:"timeline"`
		NextCursor string `json:"next_cursor"`
	}
	url := s.crm + "/v1/customers/" + neturl.PathEscape(customer) + "/timeline"
	// Placed, reserved, authorized, prepared, confirmed and invoiced: six steps an order.
	var all page
	eventually(t, settle, func() string {
		all = page{}
		if code := s.call(t, "GET", url+"?limit=1000", nil, nil, &all); code != 200 || len(all.Timeline) != 18 {
			return fmt.Sprintf("HTTP %d, %d steps, want 18", code, len(all.Timeline))
		}
		return ""
	})
	for i := 1; i < len(all.Timeline); i++ {
		if all.Timeline[i].At.After(all.Timeline[i-1].At) {
			t.Fatalf("step %d (%v) is newer than step %d (%v): want newest first", i, all.Timeline[i].At, i-1, all.Timeline[i-1].At)
		}
	}
	if all.NextCursor != "" && len(all.Timeline) < 1000 {
		t.Errorf("a page shorter than its limit has a next cursor %q", all.NextCursor)
	}
	var paged []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatalf("more than 10 pages of 4 for 18 steps: %v", paged)
		}
		var p page
		if code := s.call(t, "GET", url+"?limit=4&cursor="+cursor, nil, nil, &p); code != 200 {
			t.Fatalf("page %d: HTTP %d", pages, code)
		}
		for _, st := range p.Timeline {
			paged = append(paged, st.OrderID+"/"+st.Event)
		}
		if p.NextCursor == "" {
			break
		}
		cursor = neturl.QueryEscape(p.NextCursor)
	}
	var want []string
	for _, st := range all.Timeline {
		want = append(want, st.OrderID+"/"+st.Event)
	}
	if !slices.Equal(paged, want) {
		t.Fatalf("pages of 4:\n%v\nwant the one page of 1000:\n%v", paged, want)
	}

	var listed struct{ Orders []struct{} }
	if code := s.call(t, "GET", s.shop+"/v1/orders?customer_id="+neturl.QueryEscape(customer), nil, nil, &listed); code != 200 || len(listed.Orders) != 3 {
		t.Errorf("shop's list for the customer: HTTP %d, %d orders, want 3", code, len(listed.Orders))
	}
	var bad struct {
		Error struct{ Field string } `json:"error"`
	}
	for query, field := range map[string]string{"?limit=0": "limit", "?limit=1001": "limit", "?cursor=yesterday": "cursor", "?page=2": "page"} {
		if code := s.call(t, "GET", url+query, nil, nil, &bad); code != 400 || bad.Error.Field != field {
			t.Errorf("timeline%s: HTTP %d naming %q, want 400 naming %s", query, code, bad.Error.Field, field)
		}
	}
	long := neturl.QueryEscape(customer + "x")
	if code := s.call(t, "GET", s.crm+"/v1/customers/"+long+"/timeline", nil, nil, &bad); code != 400 || bad.Error.Field != "id" {
		t.Errorf("crm, a 65-character id: HTTP %d naming %q, want 400 naming id", code, bad.Error.Field)
	}
	if code := s.call(t, "GET", s.shop+"/v1/orders?customer_id="+long, nil, nil, &bad); code != 400 || bad.Error.Field != "customer_id" {
		t.Errorf("shop, a 65-character id: HTTP %d naming %q, want 400 naming customer_id", code, bad.Error.Field)
	}
}
