// Package provider is billing's port to a payment provider and the deterministic local
// provider used by default, in tests and in the demo.
package provider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
)

// Request asks for an authorization. OrderID is the idempotency key: asking again for
// the same order returns the same authorization.
type Request struct {
	OrderID     string
	Token       string
	AmountMinor int64
	Currency    string
}

// Result is the provider's answer.
type Result struct {
	Approved        bool
	AuthorizationID string
	DeclineCode     string
}

// ErrUnavailable reports a provider that did not answer; the same request may succeed
// later.
var ErrUnavailable = errors.New("payment provider unavailable")

// Provider authorizes, voids, captures and refunds payments. Every call is idempotent:
// the same authorization captured or refunded twice is charged or refunded once, and the
// same reference comes back.
type Provider interface {
	Name() string
	Authorize(ctx context.Context, r Request) (Result, error)
	// Void releases an authorization that was not captured.
	Void(ctx context.Context, authorizationID string) error
	// Capture charges the authorized amount and returns the capture's reference.
	Capture(ctx context.Context, authorizationID string, amountMinor int64) (captureID string, err error)
	// Refund returns a captured amount in full and returns the refund's reference.
	Refund(ctx context.Context, captureID string, amountMinor int64) (refundID string, err error)
}

// Test tokens of the local provider.
const (
	TokenDeclined          = "tok_declined"           // declined: card_declined
	TokenInsufficientFunds = "tok_insufficient_funds" // declined: insufficient_funds
	TokenFlaky             = "tok_flaky"              // unavailable twice per order, then approved
	TokenFlakyCapture      = "tok_flaky_capture"      // approved; the capture is unavailable twice, then succeeds
)

// flakyCapturePrefix marks the authorizations of TokenFlakyCapture, so that Capture,
// which sees only the authorization, knows to fail.
const flakyCapturePrefix = "auth_fc_"

// Local is a deterministic provider: TokenDeclined and TokenInsufficientFunds decline,
// TokenFlaky fails transiently twice per order and then approves, TokenFlakyCapture
// approves and fails the capture transiently twice, every other token approves.
// Authorization ids derive from the order id. The failure counts live in the process: a
// restarted billing fails again twice.
type Local struct {
	mu    sync.Mutex
	flaky map[string]int // failures so far, by order (authorizations) or authorization (captures)
}

// NewLocal returns the local provider.
func NewLocal() *Local { return &Local{flaky: map[string]int{}} }

// failTwice reports whether the call counted under key is one of its first two.
func (l *Local) failTwice(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flaky[key]++
	return l.flaky[key] <= 2
}

// Name is the provider's name in events.
func (l *Local) Name() string { return "local" }

// Authorize answers as documented on Local.
func (l *Local) Authorize(ctx context.Context, r Request) (Result, error) {
	switch r.Token {
	case TokenDeclined:
		return Result{DeclineCode: "card_declined"}, nil
	case TokenInsufficientFunds:
		return Result{DeclineCode: "insufficient_funds"}, nil
	case TokenFlaky:
		if l.failTwice(r.OrderID) {
			return Result{}, ErrUnavailable
		}
	case TokenFlakyCapture:
		return Result{Approved: true, AuthorizationID: flakyCapturePrefix + ref("auth:"+r.OrderID)}, nil
	}
	return Result{Approved: true, AuthorizationID: "auth_" + ref("auth:"+r.OrderID)}, nil
}

// Void releases an authorization; the local provider always can.
func (l *Local) Void(ctx context.Context, authorizationID string) error { return nil }

// Capture charges an authorization; the local provider always can, except twice for one
// of TokenFlakyCapture. The capture id derives from the authorization's.
func (l *Local) Capture(ctx context.Context, authorizationID string, amountMinor int64) (string, error) {
	if strings.HasPrefix(authorizationID, flakyCapturePrefix) && l.failTwice("capture:"+authorizationID) {
		return "", ErrUnavailable
	}
	return "cap_" + ref(authorizationID), nil
}

// Refund returns a capture; the local provider always can. The refund id derives from
// the capture's.
func (l *Local) Refund(ctx context.Context, captureID string, amountMinor int64) (string, error) {
	return "ref_" + ref(captureID), nil
}

func ref(of string) string {
	sum := sha256.Sum256([]byte(of))
	return hex.EncodeToString(sum[:10])
}
