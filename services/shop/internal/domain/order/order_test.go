package order

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func catalog(sku string) (Product, bool) {
	switch sku {
	case "A-1":
		return Product{SKU: "A-1", Name: "A", UnitPriceMinor: 250, Currency: "EUR"}, true
	case "B-2":
		return Product{SKU: "B-2", Name: "B", UnitPriceMinor: 1000, Currency: "EUR"}, true
	case "USD-1":
		return Product{SKU: "USD-1", Name: "U", UnitPriceMinor: 1, Currency: "USD"}, true
	}
	return Product{}, false
}

func place(mut func(c *Customer, a *Address, l *[]Requested, tok, cur *string)) (*Order, error) {
	c := Customer{ID: "c1", Email: "a@example.com", Name: "Ann"}
	a := Address{Name: "Ann", Line1: "Main 1", City: "Berlin", PostalCode: "10115", Country: "DE"}
	l := []Requested{{"A-1", 2}, {"B-2", 1}}
	tok, cur := "tok_visa", ""
	if mut != nil {
		mut(&c, &a, &l, &tok, &cur)
	}
	r, err := Check(c, a, l, tok, cur)
	if err != nil {
		return nil, err
	}
	return Place("id-1", r, catalog, now)
}

func TestPlacePricesFromTheCatalog(t *testing.T) {
	o, err := place(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.TotalMinor != 1500 || o.Currency != "EUR" || o.Status != Pending || o.Lines[0].Name != "A" {
		t.Fatalf("order %+v", o)
	}
}

func TestPlaceRejectsNamingTheField(t *testing.T) {
	cases := map[string]struct {
		mut   func(c *Customer, a *Address, l *[]Requested, tok, cur *string)
		field string
	}{
		"empty customer id": {func(c *Customer, _ *Address, _ *[]Requested, _, _ *string) { c.ID = " " }, "customer.id"},
		"bad email":         {func(c *Customer, _ *Address, _ *[]Requested, _, _ *string) { c.Email = "Ann <a@example.com>" }, "customer.email"},
		"control chars":     {func(c *Customer, _ *Address, _ *[]Requested, _, _ *string) { c.Name = "A\x00nn" }, "customer.name"},
		"bad country":       {func(_ *Customer, a *Address, _ *[]Requested, _, _ *string) { a.Country = "de" }, "shipping_address.country"},
		"no lines":          {func(_ *Customer, _ *Address, l *[]Requested, _, _ *string) { *l = nil }, "lines"},
		"duplicate sku":     {func(_ *Customer, _ *Address, l *[]Requested, _, _ *string) { *l = []Requested{{"A-1", 1}, {"A-1", 2}} }, "lines[1].sku"},
		"zero quantity":     {func(_ *Customer, _ *Address, l *[]Requested, _, _ *string) { *l = []Requested{{"A-1", 0}} }, "lines[0].quantity"},
		"too many": {func(_ *Customer, _ *Address, l *[]Requested, _, _ *string) {
			*l = []Requested{{"A-1", MaxQuantity + 1}}
		}, "lines[0].quantity"},
		"unknown sku": {func(_ *Customer, _ *Address, l *[]Requested, _, _ *string) { *l = []Requested{{"Z-9", 1}} }, "lines[0].sku"},
		"mixed currencies": {func(_ *Customer, _ *Address, l *[]Requested, _, _ *string) {
			*l = []Requested{{"A-1", 1}, {"USD-1", 1}}
		}, "lines[1].sku"},
		"unknown currency": {func(_ *Customer, _ *Address, _ *[]Requested, _, cur *string) { *cur = "ABC" }, "currency"},
		"bad token":        {func(_ *Customer, _ *Address, _ *[]Requested, tok, _ *string) { *tok = "4111 1111" }, "payment_token"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := place(tc.mut)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || fe.Message == "" {
				t.Fatalf("got %v, want a FieldError on %s", err, tc.field)
			}
		})
	}
	many := make([]Requested, MaxLines+1)
	for i := range many {
		many[i] = Requested{SKU: strings.Repeat("x", 1) + string(rune('a'+i%26)) + string(rune('a'+i/26)), Quantity: 1}
	}
	if _, err := place(func(_ *Customer, _ *Address, l *[]Requested, _, _ *string) { *l = many }); err == nil {
		t.Fatal("accepted more than MaxLines lines")
	}
}

func TestLifeCycle(t *testing.T) {
	o, _ := place(nil)
	if o.StockReservedAt(now) != Updated || o.StockReservedAt(now) != Unchanged {
		t.Fatal("stock reservation not recorded once")
	}
	if o.PaymentAuthorizedAt(now) != NowConfirmed || o.Status != Confirmed {
		t.Fatal("stock and payment did not confirm")
	}
	if o.Reject("out_of_stock", now) != Unchanged {
		t.Fatal("a confirmed order was rejected")
	}
	if o.ShippedAt(now) != NowShipped {
		t.Fatal("a confirmed order did not ship")
	}
	if _, err := o.RequestCancel(now); !errors.Is(err, ErrAlreadyShipped) {
		t.Fatalf("cancellation of a shipped order: %v, want ErrAlreadyShipped", err)
	}

	o2, _ := place(nil)
	if o2.Reject("payment_declined", now) != NowCancelled || o2.CancelReason != "payment_declined" {
		t.Fatal("pending order not rejected")
	}
	if _, err := o2.RequestCancel(now); o2.StockReservedAt(now) != Unchanged || !errors.Is(err, ErrAlreadyFinal) {
		t.Fatalf("a cancelled order changed (cancellation: %v)", err)
	}
}

// A customer's cancellation is a request until logistics agrees; a refused one leaves
// the order to ship.
func TestCancellationRequest(t *testing.T) {
	o, _ := place(nil)
	o.StockReservedAt(now)
	o.PaymentAuthorizedAt(now)
	if o.CancelAgreed("customer_request", now) != Unchanged {
		t.Fatal("cancelled without a request")
	}
	first, err := o.RequestCancel(now)
	if err != nil || !first || o.Status != Confirmed || CancellationOf(true, o.Status) != CancelRequested {
		t.Fatalf("request: first %v, %v, status %s", first, err, o.Status)
	}
	if again, err := o.RequestCancel(now.Add(ResendCancelAfter - time.Millisecond)); err != nil || again {
		t.Fatalf("second request: send %v, %v; want a pending request, nothing sent", again, err)
	}
	if again, err := o.RequestCancel(now.Add(ResendCancelAfter)); err != nil || !again {
		t.Fatalf("request unanswered for ResendCancelAfter: send %v, %v; want it sent again", again, err)
	}
	if o.CancelAgreed("customer_request", now) != NowCancelled || o.Status != Cancelled || o.CancelReason != "customer_request" {
		t.Fatalf("agreed cancellation left %s %q", o.Status, o.CancelReason)
	}
	if o.CancelAgreed("customer_request", now) != Unchanged || o.ShippedAt(now) != Unchanged {
		t.Fatal("a cancelled order changed")
	}

	refused, _ := place(nil)
	refused.StockReservedAt(now)
	refused.PaymentAuthorizedAt(now)
	if _, err := refused.RequestCancel(now); err != nil {
		t.Fatal(err)
	}
	if refused.ShippedAt(now) != NowShipped || refused.CancelAgreed("customer_request", now) != Unchanged {
		t.Fatal("a request logistics refused by dispatching did not leave the order shipped")
	}
	if CancellationOf(true, refused.Status) != CancelRefused || CancellationOf(false, Confirmed) != NotRequested ||
		CancellationOf(true, Cancelled) != CancelDone {
		t.Fatal("CancellationOf")
	}
}

// A dispatch that overtakes the reports of stock and payment (they come on other topics)
// confirms and ships the order at once; the late reports change nothing.
func TestDispatchOvertakesConfirmation(t *testing.T) {
	o, _ := place(nil)
	if o.ShippedAt(now) != NowConfirmedAndShipped || o.Status != Shipped || !o.StockReserved || !o.PaymentAuthorized {
		t.Fatalf("dispatch of a pending order left %s (stock %v, payment %v)", o.Status, o.StockReserved, o.PaymentAuthorized)
	}
	if o.StockReservedAt(now) != Unchanged || o.PaymentAuthorizedAt(now) != Unchanged || o.ShippedAt(now) != Unchanged {
		t.Fatal("a late report changed a shipped order")
	}
	rejected, _ := place(nil)
	rejected.Reject("out_of_stock", now)
	if rejected.ShippedAt(now) != Unchanged || rejected.Status != Cancelled {
		t.Fatal("a dispatch revived a cancelled order")
	}
}

// An order whose customer asked to cancel is not confirmed while logistics decides: it
// would be charged only to be refunded. A refusal (the parcel left) confirms and ships it.
func TestNoConfirmationWhileCancelling(t *testing.T) {
	o, _ := place(nil)
	o.StockReservedAt(now)
	if _, err := o.RequestCancel(now); err != nil {
		t.Fatal(err)
	}
	if o.PaymentAuthorizedAt(now) != Updated || o.Status != Pending {
		t.Fatalf("confirmed (%s) while a cancellation was pending", o.Status)
	}
	if o.CancelAgreed("customer_request", now) != NowCancelled {
		t.Fatal("the agreed cancellation did not cancel the pending order")
	}

	refused, _ := place(nil)
	if _, err := refused.RequestCancel(now); err != nil {
		t.Fatal(err)
	}
	refused.StockReservedAt(now)
	refused.PaymentAuthorizedAt(now)
	if refused.ShippedAt(now) != NowConfirmedAndShipped || refused.Status != Shipped {
		t.Fatalf("a refused request left the order %s", refused.Status)
	}
}

func TestPlaceRefusesARequestCheckDidNotMake(t *testing.T) {
	if o, err := Place("id-1", Request{}, catalog, now); err == nil {
		t.Fatalf("the zero Request placed %+v", o)
	}
}
