// Package order is the shop's order aggregate: what an order is, how it may change, and
// the rules of placement. It does no I/O.
package order

import (
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/currency"
)

// Status is where an order is in its life.
type Status string

// The statuses. PENDING waits for stock and payment; CONFIRMED has both; SHIPPED left
// the warehouse; CANCELLED is final, with a reason.
const (
	Pending   Status = "PENDING"
	Confirmed Status = "CONFIRMED"
	Shipped   Status = "SHIPPED"
	Cancelled Status = "CANCELLED"
)

// Limits of a placement.
const (
	MaxLines    = 50
	MaxQuantity = 1000
)

// Errors of the aggregate.
var (
	ErrNotFound       = errors.New("order not found")
	ErrAlreadyShipped = errors.New("the order has shipped and can no longer be cancelled")
	ErrAlreadyFinal   = errors.New("the order is already cancelled")
)

// Line is one ordered product, priced from the catalog.
type Line struct {
	SKU            string `json:"sku"`
	Name           string `json:"name"`
	Quantity       int    `json:"quantity"`
	UnitPriceMinor int64  `json:"unit_price_minor"`
}

// Address is where the order ships to.
type Address struct {
	Name       string  `json:"name"`
	Line1      string  `json:"line1"`
	Line2      *string `json:"line2,omitempty"`
	City       string  `json:"city"`
	PostalCode string  `json:"postal_code"`
	Country    string  `json:"country"`
}

// Customer is who places the order.
type Customer struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Name  string `json:"name"`
}

// Order is the aggregate.
type Order struct {
	ID           string
	Customer     Customer
	Lines        []Line
	Currency     string
	TotalMinor   int64
	PaymentToken string
	Address      Address
	Status       Status
	CancelReason string
	// CancelRequestedAt is when the customer asked to cancel; nil when never asked.
	CancelRequestedAt *time.Time
	StockReserved     bool
	PaymentAuthorized bool
	PlacedAt          time.Time
	UpdatedAt         time.Time
}

// Product is a catalog entry.
type Product struct {
	SKU            string
	Name           string
	UnitPriceMinor int64
	Currency       string
}

// FieldError names the field of a request that breaks a rule.
type FieldError struct {
	Field   string
	Code    string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func fieldErr(field, code, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Requested is one line as the customer asks for it.
type Requested struct {
	SKU      string
	Quantity int
}

var (
	skuPattern     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	tokenPattern   = regexp.MustCompile(`^tok_[A-Za-z0-9_]{1,120}$`)
	countryPattern = regexp.MustCompile(`^[A-Z]{2}$`)
)

// ValidSKU reports whether s has the shape of a SKU: 1-64 letters, digits, '.', '_' or
// '-', starting with a letter or digit.
func ValidSKU(s string) bool { return skuPattern.MatchString(s) }

// Request is a placement Check accepted; only Check makes one, so Place never sees a
// request that was not validated, and validates none twice.
type Request struct {
	customer     Customer
	address      Address
	lines        []Requested
	paymentToken string
	currency     string
}

// Check validates a placement by every rule that needs no catalog, before anything is
// read or written for it. The first rule broken is reported with its field, in the
// request's own field names.
func Check(c Customer, addr Address, lines []Requested, paymentToken, wantCurrency string) (Request, error) {
	if err := check(c, addr, lines, paymentToken, wantCurrency); err != nil {
		return Request{}, err
	}
	return Request{customer: c, address: addr, lines: lines, paymentToken: paymentToken, currency: wantCurrency}, nil
}

func check(c Customer, addr Address, lines []Requested, paymentToken, wantCurrency string) error {
	if err := checkText("customer.id", c.ID, 1, 64); err != nil {
		return err
	}
	if err := checkText("customer.name", c.Name, 1, 200); err != nil {
		return err
	}
	if err := checkText("customer.email", c.Email, 3, 254); err != nil {
		return err
	}
	if a, err := mail.ParseAddress(c.Email); err != nil || a.Address != c.Email {
		return fieldErr("customer.email", "invalid_field", "%q is not an e-mail address", c.Email)
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"shipping_address.name", addr.Name, 200}, {"shipping_address.line1", addr.Line1, 200},
		{"shipping_address.city", addr.City, 100}, {"shipping_address.postal_code", addr.PostalCode, 20}} {
		if err := checkText(f.name, f.v, 1, f.max); err != nil {
			return err
		}
	}
	if addr.Line2 != nil {
		if err := checkText("shipping_address.line2", *addr.Line2, 0, 200); err != nil {
			return err
		}
	}
	if !countryPattern.MatchString(addr.Country) {
		return fieldErr("shipping_address.country", "invalid_field", "%q is not an ISO 3166-1 alpha-2 code such as DE", addr.Country)
	}
	if !tokenPattern.MatchString(paymentToken) {
		return fieldErr("payment_token", "invalid_field", "must look like tok_<letters, digits, _>")
	}
	if wantCurrency != "" {
		if _, err := currency.ParseISO(wantCurrency); err != nil || strings.ToUpper(wantCurrency) != wantCurrency {
			return fieldErr("currency", "invalid_field", "%q is not an ISO 4217 currency code", wantCurrency)
		}
	}
	if len(lines) == 0 {
		return fieldErr("lines", "invalid_field", "at least one line is required")
	}
	if len(lines) > MaxLines {
		return fieldErr("lines", "too_many_lines", "%d lines, at most %d", len(lines), MaxLines)
	}
	seen := map[string]bool{}
	for i, l := range lines {
		field := fmt.Sprintf("lines[%d]", i)
		if !ValidSKU(l.SKU) {
			return fieldErr(field+".sku", "invalid_field", "%q is not a SKU", l.SKU)
		}
		if seen[l.SKU] {
			return fieldErr(field+".sku", "duplicate_sku", "%s appears on more than one line; put the total on one", l.SKU)
		}
		seen[l.SKU] = true
		if l.Quantity < 1 || l.Quantity > MaxQuantity {
			return fieldErr(field+".quantity", "invalid_field", "quantity %d is outside 1..%d", l.Quantity, MaxQuantity)
		}
	}
	return nil
}

// Place prices a checked placement from the catalog. catalog returns the product of a
// SKU, or false when the SKU is unknown.
func Place(id string, r Request, catalog func(sku string) (Product, bool), now time.Time) (*Order, error) {
	if len(r.lines) == 0 { // the zero Request: Check refuses a placement without lines
		return nil, errors.New("order.Place: the request was not made by Check")
	}
	o := &Order{ID: id, Customer: r.customer, Address: r.address, PaymentToken: r.paymentToken, Currency: r.currency,
		Status: Pending, PlacedAt: now, UpdatedAt: now}
	for i, l := range r.lines {
		field := fmt.Sprintf("lines[%d]", i)
		p, ok := catalog(l.SKU)
		if !ok {
			return nil, fieldErr(field+".sku", "unknown_sku", "%s is not in the catalog", l.SKU)
		}
		if o.Currency == "" {
			o.Currency = p.Currency
		}
		if p.Currency != o.Currency {
			return nil, fieldErr(field+".sku", "currency_mismatch", "%s is priced in %s, the order in %s", l.SKU, p.Currency, o.Currency)
		}
		o.Lines = append(o.Lines, Line{SKU: p.SKU, Name: p.Name, Quantity: l.Quantity, UnitPriceMinor: p.UnitPriceMinor})
		o.TotalMinor += int64(l.Quantity) * p.UnitPriceMinor
	}
	return o, nil
}

func checkText(field, v string, minLen, maxLen int) error {
	n := utf8.RuneCountInString(strings.TrimSpace(v))
	if n < minLen {
		return fieldErr(field, "invalid_field", "is required")
	}
	if utf8.RuneCountInString(v) > maxLen {
		return fieldErr(field, "invalid_field", "is longer than %d characters", maxLen)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return fieldErr(field, "invalid_field", "contains control characters")
		}
	}
	return nil
}

// Outcome is what a reaction did to the order.
type Outcome int

// Outcomes of a reaction.
const (
	Unchanged Outcome = iota
	Updated
	NowConfirmed
	NowCancelled
	NowShipped
	// NowConfirmedAndShipped: the dispatch was the first the shop heard of the order's
	// stock and payment; it is confirmed and shipped at once.
	NowConfirmedAndShipped
)

// StockReservedAt records inventory's reservation.
func (o *Order) StockReservedAt(now time.Time) Outcome {
	if o.Status != Pending || o.StockReserved {
		return Unchanged
	}
	o.StockReserved = true
	return o.maybeConfirm(now)
}

// PaymentAuthorizedAt records billing's authorization.
func (o *Order) PaymentAuthorizedAt(now time.Time) Outcome {
	if o.Status != Pending || o.PaymentAuthorized {
		return Unchanged
	}
	o.PaymentAuthorized = true
	return o.maybeConfirm(now)
}

// maybeConfirm confirms the order once stock and payment are in, unless the customer has
// asked to cancel it: then it waits for logistics' answer, so that an order about to be
// cancelled is never charged (billing captures on confirmation) only to be refunded. If
// logistics refuses because the parcel left, ShippedAt confirms and ships it at once.
func (o *Order) maybeConfirm(now time.Time) Outcome {
	o.UpdatedAt = now
	if o.StockReserved && o.PaymentAuthorized && o.CancelRequestedAt == nil {
		o.Status = Confirmed
		return NowConfirmed
	}
	return Updated
}

// Reject cancels a pending order for a reason reported by another service (out of stock,
// payment declined). A confirmed, shipped or cancelled order is not affected.
func (o *Order) Reject(reason string, now time.Time) Outcome {
	if o.Status != Pending {
		return Unchanged
	}
	o.Status, o.CancelReason, o.UpdatedAt = Cancelled, reason, now
	return NowCancelled
}

// RequestCancel records the customer's wish to cancel. The shop cannot grant it alone:
// logistics may have handed the parcel over a moment ago, before the shop heard of it.
// So the request goes to logistics, which holds the parcel and answers, and the order is
// cancelled only when it agrees (CancelAgreed). An order known to have shipped or to be
// cancelled refuses at once. send is false when the customer asked less than
// ResendCancelAfter ago: the request is pending and asking again changes nothing. An
// older unanswered request (logistics was down, or too old to know the event) is sent
// again; logistics answers each from the shipment's state, so a repeat is harmless.
func (o *Order) RequestCancel(now time.Time) (send bool, err error) {
	switch o.Status {
	case Shipped:
		return false, ErrAlreadyShipped
	case Cancelled:
		return false, ErrAlreadyFinal
	}
	if o.CancelRequestedAt != nil && now.Sub(*o.CancelRequestedAt) < ResendCancelAfter {
		return false, nil
	}
	o.CancelRequestedAt, o.UpdatedAt = &now, now
	return true, nil
}

// ResendCancelAfter is how long a cancellation request waits for logistics' answer
// before the customer asking again sends it again.
const ResendCancelAfter = time.Minute

// CancelAgreed cancels the order for reason once logistics stopped its shipment at the
// customer's request. Without a request (logistics stopping a shipment of an order
// already cancelled) or after shipment nothing changes.
func (o *Order) CancelAgreed(reason string, now time.Time) Outcome {
	if o.CancelRequestedAt == nil || o.Status == Shipped || o.Status == Cancelled {
		return Unchanged
	}
	o.Status, o.CancelReason, o.UpdatedAt = Cancelled, reason, now
	return NowCancelled
}

// Cancellation describes a customer's cancellation request of an order in a status.
type Cancellation string

// What became of a cancellation request.
const (
	// NotRequested: the customer never asked.
	NotRequested Cancellation = ""
	// CancelRequested: logistics has not answered yet.
	CancelRequested Cancellation = "REQUESTED"
	// CancelRefused: the parcel had left; the order shipped.
	CancelRefused Cancellation = "REFUSED"
	// CancelDone: the order is cancelled.
	CancelDone Cancellation = "CANCELLED"
)

// CancellationOf tells what became of a request made (or not) for an order in status.
func CancellationOf(requested bool, status Status) Cancellation {
	switch {
	case !requested:
		return NotRequested
	case status == Shipped:
		return CancelRefused
	case status == Cancelled:
		return CancelDone
	}
	return CancelRequested
}

// ShippedAt records the dispatch of an order. The shop's topics are not ordered among
// each other, so a dispatch can arrive before the reservation or authorization it
// follows (a consumer catching up on a backlog fetches them in any order). Logistics
// prepares nothing without both, so a dispatch of a pending order proves them: the order
// is confirmed and shipped at once, and the late reports change nothing.
func (o *Order) ShippedAt(now time.Time) Outcome {
	switch o.Status {
	case Confirmed:
		o.Status, o.UpdatedAt = Shipped, now
		return NowShipped
	case Pending:
		o.StockReserved, o.PaymentAuthorized = true, true
		o.Status, o.UpdatedAt = Shipped, now
		return NowConfirmedAndShipped
	}
	return Unchanged
}
