package app_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/orderflow/orderflow/services/crm/internal/adapters/postgres"
	"github.com/orderflow/orderflow/services/crm/internal/adapters/smtp"
	"github.com/orderflow/orderflow/services/crm/internal/app"
)

// A server that refuses a recipient or a message for good (5xx) gets it once: the e-mail
// is FAILED with the server's answer. One that refuses for now (4xx) gets it again and
// takes it. (A refusal for good was retried every five minutes, forever.)
func TestMailerGivesUpOnlyOnARefusalForGood(t *testing.T) {
	t.Parallel()
	srv := startSMTP(t)
	a, pool := newApp(t, smtp.Mailer{Addr: srv.addr, From: "shop@orderflow.test"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	want := map[string]string{ // recipient: the status its confirmation ends in
		"refused@example.com": "FAILED", // 550 to RCPT TO
		"spam@example.com":    "FAILED", // 554 to the message
		"busy@example.com":    "SENT",   // 451 to RCPT TO once
		"ok@example.com":      "SENT",
	}
	orders := map[string]string{}
	for to := range want {
		orders[to] = queueConfirmation(t, a, pool, to)
	}
	done := make(chan error, 1)
	go func() { done <- a.RunMailer(ctx) }()
	defer func() { cancel(); <-done }()

	status := func(to string) (st, lastErr string) {
		t.Helper()
		err := pool.QueryRow(ctx, `SELECT status, COALESCE(last_error, '') FROM emails WHERE order_id = $1 AND kind = 'confirmation'`,
			orders[to]).Scan(&st, &lastErr)
		if err != nil {
			t.Fatal(err)
		}
		return st, lastErr
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		settled := true
		for to, w := range want {
			if st, _ := status(to); st != w {
				settled = false
			}
		}
		if settled {
			break
		}
		if time.Now().After(deadline) {
			for to, w := range want {
				st, lastErr := status(to)
				t.Errorf("%s: %s (%s), want %s", to, st, lastErr, w)
			}
			t.Fatal("the e-mails did not settle")
		}
	}
	for to, code := range map[string]string{"refused@example.com": "550", "spam@example.com": "554"} {
		if _, lastErr := status(to); !strings.Contains(lastErr, code) {
			t.Errorf("%s: last error %q, want the server's %s", to, lastErr, code)
		}
	}
	time.Sleep(2500 * time.Millisecond) // past the first retry's backoff (1 s)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for to, n := range map[string]int{"refused@example.com": 1, "spam@example.com": 1, "busy@example.com": 2, "ok@example.com": 1} {
		if srv.rcpts[to] != n {
			t.Errorf("%s was offered %d times, want %d", to, srv.rcpts[to], n)
		}
	}
	if len(srv.delivered) != 2 {
		t.Errorf("the server took %v, want the messages to busy@ and ok@", srv.delivered)
	}
}

// fakeSMTP is a mail server for the mailer's failure paths, which a sink that takes
// everything cannot show: it refuses recipients and messages by their address.
type fakeSMTP struct {
	addr      string
	mu        sync.Mutex
	rcpts     map[string]int // RCPT TO per address
	delivered []string       // the recipients of the messages it took
}

func startSMTP(t *testing.T) *fakeSMTP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	s := &fakeSMTP{addr: ln.Addr().String(), rcpts: map[string]int{}}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(conn)
		}
	}()
	return s
}

func (s *fakeSMTP) serve(conn net.Conn) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	say := func(line string) { _, _ = io.WriteString(conn, line+"\r\n") }
	say("220 fake ESMTP")
	var to string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			say("250 fake")
		case strings.HasPrefix(cmd, "MAIL FROM:"), cmd == "RSET", cmd == "NOOP":
			say("250 OK")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			to = strings.ToLower(strings.Trim(strings.TrimSpace(line)[len("RCPT TO:"):], "<> "))
			s.mu.Lock()
			s.rcpts[to]++
			n := s.rcpts[to]
			s.mu.Unlock()
			switch {
			case strings.HasPrefix(to, "refused@"):
				say("550 5.1.1 no such user")
			case strings.HasPrefix(to, "busy@") && n == 1:
				say("451 4.3.0 try again later")
			default:
				say("250 OK")
			}
		case cmd == "DATA":
			say("354 end with <CRLF>.<CRLF>")
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
			}
			if strings.HasPrefix(to, "spam@") {
				say("554 5.7.1 message refused")
				continue
			}
			s.mu.Lock()
			s.delivered = append(s.delivered, to)
			s.mu.Unlock()
			say("250 OK queued")
		case cmd == "QUIT":
			say("221 bye")
			return
		default:
			say("502 not implemented")
		}
	}
}

// One round sends everything that is due, however many batches it takes: one batch
// per wake-up let the queue grow once orders came faster than about 20 per consumer
// batch. Sent through the stack's mail sink.
func TestSendQueuedSendsEverythingDue(t *testing.T) {
	t.Parallel()
	addr := os.Getenv("ORDERFLOW_SMTP_ADDR")
	if addr == "" {
		t.Skip("ORDERFLOW_SMTP_ADDR is not set: run with `make test`")
	}
	a, pool := newApp(t, smtp.Mailer{Addr: addr, From: "shop@orderflow.test"})
	ctx := context.Background()
	const n = 47 // two full batches and a short one
	queueConfirmations(t, a, pool, n)
	claimed, err := a.SendQueued(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var sent, other int
	if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'SENT'), count(*) FILTER (WHERE status <> 'SENT') FROM emails`).Scan(&sent, &other); err != nil {
		t.Fatal(err)
	}
	if claimed != n || sent != n || other != 0 {
		t.Fatalf("one round claimed %d and sent %d of %d e-mails (%d not sent)", claimed, sent, n, other)
	}
	if claimed, err := a.SendQueued(ctx); err != nil || claimed != 0 {
		t.Fatalf("a second round claimed %d (%v), want none", claimed, err)
	}
}

// A round against a server that does not answer stops after a batch of which none went
// out, and that batch costs one connection, not one per e-mail: each of its e-mails
// waits for its backoff, and the rest of the queue is not tried against the same server.
func TestSendQueuedStopsWhenTheServerIsDown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	var connections atomic.Int64
	go func() { // takes each connection and hangs up before the greeting
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			connections.Add(1)
			_ = conn.Close()
		}
	}()
	a, pool := newApp(t, smtp.Mailer{Addr: ln.Addr().String(), From: "shop@orderflow.test"})
	ctx := context.Background()
	const n = 47
	queueConfirmations(t, a, pool, n)
	claimed, err := a.SendQueued(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var tried, untouched, other int
	if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'PENDING' AND attempts = 1 AND next_attempt_at > now() AND last_error LIKE '%greeting%'),
	                                     count(*) FILTER (WHERE status = 'PENDING' AND attempts = 0),
	                                     count(*) FILTER (WHERE status <> 'PENDING')
	                                FROM emails`).Scan(&tried, &untouched, &other); err != nil {
		t.Fatal(err)
	}
	if claimed != 20 || tried != 20 || untouched != n-20 || other != 0 {
		t.Fatalf("claimed %d; %d tried and waiting for their backoff, %d untouched, %d otherwise; want 20, 20, %d, 0", claimed, tried, untouched, other, n-20)
	}
	if c := connections.Load(); c != 1 {
		t.Fatalf("the round opened %d connections to a server that hung up at once, want 1", c)
	}
}

// queueConfirmations places and confirms n orders of as many customers, which queues a
// confirmation e-mail for each.
func queueConfirmations(t *testing.T, a *app.App, pool *pgxpool.Pool, n int) {
	t.Helper()
	for i := range n {
		queueConfirmation(t, a, pool, fmt.Sprintf("customer-%d@example.com", i))
	}
}

// queueConfirmation places and confirms one order of a customer at address to, which
// queues its confirmation e-mail, and returns the order's id.
func queueConfirmation(t *testing.T, a *app.App, pool *pgxpool.Pool, to string) string {
	t.Helper()
	ctx := context.Background()
	id := uuid.NewString()
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := a.Placed(ctx, tx, postgres.Contact{OrderID: id, CustomerID: "c-" + to, Email: to, Name: "Ada"}); err != nil {
			return err
		}
		return a.Confirmed(ctx, tx, id, "1.00 EUR")
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// A mailer that dies between its claim and recording the server's answer leaves its
// batch SENDING. Once the claim is older than the lease, any mailer marks those e-mails
// UNCERTAIN with the reason (they may or may not have gone out; none is sent again); a
// younger claim, which a live mailer may still be sending, is left alone, and so is
// everything not claimed. (They used to stay SENDING for good, in no state that said so.)
func TestOrphanedClaimsBecomeUncertainAfterTheLease(t *testing.T) {
	t.Parallel()
	a, pool := newApp(t, smtp.Mailer{Addr: "127.0.0.1:1", From: "shop@orderflow.test"})
	ctx := context.Background()
	queueConfirmations(t, a, pool, 3)
	claimed, err := postgres.ClaimEmails(ctx, pool, 2) // the mailer that claims these dies here
	if err != nil || len(claimed) != 2 {
		t.Fatalf("claimed %d (%v), want 2", len(claimed), err)
	}
	counts := func() (sending, uncertain, pending int) {
		t.Helper()
		err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'SENDING'),
		                                  count(*) FILTER (WHERE status = 'UNCERTAIN' AND last_error LIKE 'crm stopped before it recorded%'),
		                                  count(*) FILTER (WHERE status = 'PENDING')
		                             FROM emails`).Scan(&sending, &uncertain, &pending)
		if err != nil {
			t.Fatal(err)
		}
		return sending, uncertain, pending
	}

	a.UncertainOrphanedClaims(ctx, time.Hour)
	if s, u, p := counts(); s != 2 || u != 0 || p != 1 {
		t.Fatalf("within the lease: %d sending, %d uncertain, %d pending; want 2, 0, 1", s, u, p)
	}
	time.Sleep(10 * time.Millisecond)
	a.UncertainOrphanedClaims(ctx, time.Millisecond)
	if s, u, p := counts(); s != 0 || u != 2 || p != 1 {
		t.Fatalf("past the lease: %d sending, %d uncertain, %d pending; want 0, 2, 1", s, u, p)
	}
}

// The mailer counts each e-mail's outcome in crm_emails_total, and crm_emails_due shows
// what waits: here one e-mail refused for good, one taken after a refusal for now.
func TestMailerCountsOutcomes(t *testing.T) {
	t.Parallel()
	srv := startSMTP(t)
	a, pool := newApp(t, smtp.Mailer{Addr: srv.addr, From: "shop@orderflow.test"})
	reader := sdkmetric.NewManualReader()
	if err := a.ExportMetrics(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	queueConfirmation(t, a, pool, "refused@example.com")
	queueConfirmation(t, a, pool, "busy@example.com")
	read := func() (outcomes map[string]int64, due int64) {
		t.Helper()
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(ctx, &rm); err != nil {
			t.Fatal(err)
		}
		outcomes = map[string]int64{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				switch d := m.Data.(type) {
				case metricdata.Sum[int64]:
					for _, p := range d.DataPoints {
						o, _ := p.Attributes.Value("outcome")
						outcomes[o.AsString()] += p.Value
					}
				case metricdata.Gauge[int64]:
					due = d.DataPoints[0].Value
				}
			}
		}
		return outcomes, due
	}
	if _, due := read(); due != 2 {
		t.Fatalf("crm_emails_due %d before sending, want 2", due)
	}
	if _, err := a.SendQueued(ctx); err != nil { // busy@ is refused for now: it waits for its backoff
		t.Fatal(err)
	}
	if got, due := read(); fmt.Sprint(got) != "map[failed:1 retry:1]" || due != 0 {
		t.Fatalf("after the first round: outcomes %v, due %d; want failed 1, retry 1 and none due", got, due)
	}
	if _, err := pool.Exec(ctx, `UPDATE emails SET next_attempt_at = now() WHERE status = 'PENDING'`); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SendQueued(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := read(); fmt.Sprint(got) != "map[failed:1 retry:1 sent:1]" {
		t.Fatalf("after the second round: outcomes %v, want failed 1, retry 1, sent 1", got)
	}
	// A claim whose mailer died counts as uncertain when it is found, once.
	queueConfirmation(t, a, pool, "ok@example.com")
	if _, err := postgres.ClaimEmails(ctx, pool, 20); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	a.UncertainOrphanedClaims(ctx, time.Millisecond)
	a.UncertainOrphanedClaims(ctx, time.Millisecond)
	if got, _ := read(); fmt.Sprint(got) != "map[failed:1 retry:1 sent:1 uncertain:1]" {
		t.Fatalf("after an orphaned claim: outcomes %v, want failed 1, retry 1, sent 1, uncertain 1", got)
	}
}
