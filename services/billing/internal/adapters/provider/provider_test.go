package provider

import (
	"context"
	"errors"
	"testing"
)

// The local provider's test tokens behave as documented, and every call is idempotent:
// the same order or authorization gets the same reference.
func TestLocalTokens(t *testing.T) {
	ctx := context.Background()
	l := NewLocal()
	for token, code := range map[string]string{TokenDeclined: "card_declined", TokenInsufficientFunds: "insufficient_funds"} {
		if r, err := l.Authorize(ctx, Request{OrderID: "o-" + token, Token: token}); err != nil || r.Approved || r.DeclineCode != code {
			t.Errorf("%s: %+v %v, want declined %s", token, r, err, code)
		}
	}
	for range 2 {
		if _, err := l.Authorize(ctx, Request{OrderID: "o-flaky", Token: TokenFlaky}); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("tok_flaky: %v, want ErrUnavailable twice", err)
		}
	}
	if r, err := l.Authorize(ctx, Request{OrderID: "o-flaky", Token: TokenFlaky}); err != nil || !r.Approved {
		t.Fatalf("tok_flaky the third time: %+v %v, want approved", r, err)
	}

	r, err := l.Authorize(ctx, Request{OrderID: "o-fc", Token: TokenFlakyCapture})
	if err != nil || !r.Approved {
		t.Fatalf("tok_flaky_capture: %+v %v, want approved", r, err)
	}
	for range 2 {
		if _, err := l.Capture(ctx, r.AuthorizationID, 100); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("capture of tok_flaky_capture: %v, want ErrUnavailable twice", err)
		}
	}
	first, err := l.Capture(ctx, r.AuthorizationID, 100)
	again, err2 := l.Capture(ctx, r.AuthorizationID, 100)
	if err != nil || err2 != nil || first == "" || first != again {
		t.Fatalf("capture the third and fourth time: %q %v, %q %v; want one reference", first, err, again, err2)
	}

	ok, _ := l.Authorize(ctx, Request{OrderID: "o-visa", Token: "tok_visa"})
	if c, err := l.Capture(ctx, ok.AuthorizationID, 100); err != nil || c == "" {
		t.Fatalf("capture of tok_visa: %q %v", c, err)
	}
	if a, b := mustRefund(t, l, first), mustRefund(t, l, first); a != b {
		t.Fatalf("refunds of one capture: %q and %q, want one reference", a, b)
	}
}

func mustRefund(t *testing.T, l *Local, captureID string) string {
	t.Helper()
	id, err := l.Refund(context.Background(), captureID, 100)
	if err != nil || id == "" {
		t.Fatalf("refund: %q %v", id, err)
	}
	return id
}
