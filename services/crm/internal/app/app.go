// Package app holds crm's use cases: recording every order event on the customer's
// timeline, queueing the e-mails an order deserves (each at most once per kind),
// scheduling the follow-up after dispatch, and the mailer that sends them.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/orderflow/orderflow/avro/contract"
	"github.com/orderflow/orderflow/avro/crm"
	"github.com/orderflow/orderflow/platform/backoff"
	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/outbox"
	"github.com/orderflow/orderflow/platform/pg"
	"github.com/orderflow/orderflow/platform/telemetry"
	"github.com/orderflow/orderflow/services/crm/internal/adapters/postgres"
	"github.com/orderflow/orderflow/services/crm/internal/adapters/smtp"
)

// Source is the ce_source of crm's events.
const Source = "crm"

// Email kinds.
const (
	KindConfirmation = "confirmation"
	KindCancellation = "cancellation"
	KindShipped      = "shipped"
	KindFollowUp     = "follow_up"
	// KindCancellationRefused tells a customer whose cancellation request came after
	// the dispatch that the order is on its way anyway (ADR 0009).
	KindCancellationRefused = "cancellation_refused"
)

// App is crm's application layer.
type App struct {
	pool          *pgxpool.Pool
	outbox        *outbox.Outbox
	mailer        smtp.Mailer
	followUpDelay time.Duration
	log           *slog.Logger
	now           func() time.Time
	wake          chan struct{}       // buffered(1): e-mails were queued
	emails        metric.Int64Counter // crm_emails_total by outcome; nil until ExportMetrics
}

// ExportMetrics registers with meter the mailer's crm_emails_total (e-mails by outcome:
// sent, retry, failed, uncertain) and crm_emails_due (queued e-mails whose time has
// come and that no mailer has claimed yet: it grows while the mail server is down).
func (a *App) ExportMetrics(meter metric.Meter) error {
	var err error
	if a.emails, err = meter.Int64Counter("crm_emails_total",
		metric.WithDescription("E-mails by outcome: sent (the server took it), retry (refused for now or unreachable; sent again later), failed (refused for good), uncertain (the server's answer, or the mailer, was lost; not sent again).")); err != nil {
		return err
	}
	return telemetry.CountGauge(meter, "crm_emails_due", "Queued e-mails due now that no mailer has claimed yet.",
		func(ctx context.Context) (int64, error) { return postgres.CountDueEmails(ctx, a.pool) })
}

// counted adds n e-mails of outcome to crm_emails_total.
func (a *App) counted(ctx context.Context, outcome string, n int) {
	if a.emails != nil && n > 0 {
		a.emails.Add(ctx, int64(n), metric.WithAttributes(attribute.String("outcome", outcome)))
	}
}

// New returns the application layer.
func New(pool *pgxpool.Pool, ob *outbox.Outbox, mailer smtp.Mailer, followUpDelay time.Duration, log *slog.Logger) *App {
	return &App{pool: pool, outbox: ob, mailer: mailer, followUpDelay: followUpDelay, log: log,
		now: func() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }, wake: make(chan struct{}, 1)}
}

// Wake tells the mailer that e-mails may have been queued; it never blocks. The
// consumer calls it after each commit, so an e-mail leaves without waiting for the
// mailer's next look at the queue.
func (a *App) Wake(context.Context) {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// Placed remembers who to write to about the order, and announces the order's follow-up
// if its dispatch came first and it waited for the customer.
func (a *App) Placed(ctx context.Context, tx pgx.Tx, c postgres.Contact) error {
	f, err := postgres.PutContact(ctx, tx, c)
	if err != nil || f == nil {
		return err
	}
	return a.announceFollowUp(ctx, tx, events.Cause{ID: f.CauseID, CorrelationID: c.OrderID}, c.OrderID, c.CustomerID, f.DueAt, f.ScheduledAt)
}

func (a *App) announceFollowUp(ctx context.Context, tx pgx.Tx, cause events.Cause, orderID, customerID string, due, scheduled time.Time) error {
	return a.outbox.Append(ctx, tx, events.New(ctx, Source, contract.TopicCRMEngagements, orderID, contract.FollowUpScheduled,
		crm.FollowUpScheduled{OrderID: orderID, CustomerID: customerID, DueAt: due, ScheduledAt: scheduled}, cause))
}

// Confirmed queues the confirmation e-mail.
func (a *App) Confirmed(ctx context.Context, tx pgx.Tx, orderID string, total string) error {
	return postgres.QueueEmail(ctx, tx, orderID, KindConfirmation, "Your order is confirmed",
		fmt.Sprintf("Good news: order %s is confirmed (total %s). We will tell you when it ships.", orderID, total))
}

// Cancelled queues the apology with the reason, and what happens to the money: an order
// that was confirmed had its payment captured (billing captures on confirmation, ADR
// 0010) and is refunded; one that never was is not charged. crm knows which from its own
// record of the confirmation, which arrived before the cancellation on the same topic.
func (a *App) Cancelled(ctx context.Context, tx pgx.Tx, orderID, reason, detail string) error {
	confirmed, err := postgres.Queued(ctx, tx, orderID, KindConfirmation)
	if err != nil {
		return err
	}
	money := "Nothing will be charged."
	if confirmed {
		money = "Your payment is refunded in full."
	}
	why := map[string]string{
		contract.ReasonOutOfStock:      "some items are out of stock",
		contract.ReasonPaymentDeclined: "the payment was declined",
		contract.ReasonCustomerRequest: "you asked us to cancel it",
	}[reason]
	if why == "" {
		why = reason
	}
	return postgres.QueueEmail(ctx, tx, orderID, KindCancellation, "Your order was cancelled",
		fmt.Sprintf("We are sorry: order %s was cancelled because %s (reason: %s). %s\n%s", orderID, why, reason, detail, money))
}

// CancellationRequested remembers that the customer asked to cancel. Logistics decides;
// if it refuses, the order ships, and the customer hears why from whichever of the
// request and the dispatch crm sees second (they come on different topics).
func (a *App) CancellationRequested(ctx context.Context, tx pgx.Tx, orderID string, at time.Time) error {
	shipped, err := postgres.RecordCancellationRequest(ctx, tx, orderID, at)
	if err != nil || !shipped {
		return err
	}
	return a.cancellationRefused(ctx, tx, orderID)
}

func (a *App) cancellationRefused(ctx context.Context, tx pgx.Tx, orderID string) error {
	return postgres.QueueEmail(ctx, tx, orderID, KindCancellationRefused, "Your order could not be cancelled",
		fmt.Sprintf("We are sorry: order %s had already left our warehouse when you asked to cancel it. It is on its way to you.", orderID))
}

// Shipped queues the shipping e-mail (and, if the customer had asked to cancel, the
// news that it came too late) and schedules the follow-up.
func (a *App) Shipped(ctx context.Context, tx pgx.Tx, cause events.Cause, orderID, carrier, tracking string, at time.Time) error {
	if err := postgres.QueueEmail(ctx, tx, orderID, KindShipped, "Your order is on its way",
		fmt.Sprintf("Order %s left our warehouse with %s, tracking number %s.", orderID, carrier, tracking)); err != nil {
		return err
	}
	// The customer is unknown when the dispatch overtook the order (another topic): the
	// follow-up is scheduled now and announced by Placed.
	customerID, requested, err := postgres.Dispatched(ctx, tx, orderID)
	if err != nil {
		return err
	}
	if requested {
		if err := a.cancellationRefused(ctx, tx, orderID); err != nil {
			return err
		}
	}
	due := at.Add(a.followUpDelay)
	fresh, err := postgres.ScheduleFollowUp(ctx, tx, orderID, due, customerID != "", cause.ID)
	if err != nil || !fresh || customerID == "" {
		return err
	}
	return a.announceFollowUp(ctx, tx, cause, orderID, customerID, due, a.now())
}

// RunFollowUps queues follow-up e-mails as they fall due, until ctx ends.
func (a *App) RunFollowUps(ctx context.Context) error {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		err := pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
			due, err := postgres.DueFollowUps(ctx, tx, a.now(), 100)
			if err != nil {
				return err
			}
			for _, id := range due {
				if err := postgres.QueueEmail(ctx, tx, id, KindFollowUp, "How was your order?",
					fmt.Sprintf("Order %s arrived a while ago. How did we do? Just reply to this e-mail.", id)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil && ctx.Err() == nil {
			a.log.WarnContext(ctx, "follow-up scan failed", "err", err)
		}
	}
}

// RunMailer sends queued e-mails until ctx ends. Each e-mail is claimed (committed)
// before it is sent and marked sent, with CustomerNotified, after: at most once per
// order and kind. A server that refuses for now (4xx, or the sender) or cannot be
// reached gets the e-mail again later with backoff; one that refuses the recipient or
// the message for good (5xx) marks it FAILED; a lost answer after the message was
// transmitted marks it UNCERTAIN. Neither is sent again. Once a minute it also marks
// UNCERTAIN the claims a stopped mailer left in SENDING (UncertainOrphanedClaims).
func (a *App) RunMailer(ctx context.Context) error {
	t := time.NewTicker(500 * time.Millisecond) // for follow-ups, retries and other replicas' e-mails
	defer t.Stop()
	var swept time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-a.wake:
		}
		if _, err := a.SendQueued(ctx); err != nil && ctx.Err() == nil {
			a.log.WarnContext(ctx, "claim e-mails failed", "err", err)
		}
		if time.Since(swept) >= time.Minute {
			swept = time.Now()
			a.UncertainOrphanedClaims(ctx, orphanLease)
		}
	}
}

// orphanLease is how long a claimed e-mail may stay SENDING before it counts as orphaned:
// longer than a batch can take (a dial and greeting of up to 35 s, then up to 30 s for
// each of its 20 e-mails).
const orphanLease = 15 * time.Minute

// UncertainOrphanedClaims marks UNCERTAIN, with the reason, the e-mails claimed more than
// lease ago that are still SENDING (the mailer that claimed them died before it recorded
// the server's answer), so that no e-mail stays in flight for good; none is sent again.
func (a *App) UncertainOrphanedClaims(ctx context.Context, lease time.Duration) {
	keys, err := postgres.UncertainOrphanedClaims(ctx, a.pool, lease)
	if err != nil {
		if ctx.Err() == nil {
			a.log.WarnContext(ctx, "could not look for orphaned e-mail claims", "err", err)
		}
		return
	}
	for _, k := range keys {
		a.log.ErrorContext(ctx, "e-mail claimed by a mailer that stopped before recording the outcome; marked UNCERTAIN, not sent again", "email", k)
	}
	a.counted(ctx, "uncertain", len(keys))
}

// mailBatch is how many e-mails one claim takes: they go over one SMTP session and are
// recorded in one transaction.
const mailBatch = 20

// SendQueued sends the e-mails that are due, a claimed batch at a time, until a claim
// comes back short of a full batch, and returns how many it claimed. A batch of which
// the server took none ends the round too: the server is most likely down or refusing,
// and the rest of the queue waits for the next round instead of being tried one by one
// against it. (One batch a wake-up capped crm at about 20 e-mails per consumer batch or
// tick: at 200 orders/s the confirmations queued for over a second, and the queue grew
// with the rate.)
func (a *App) SendQueued(ctx context.Context) (int, error) {
	claimed := 0
	for ctx.Err() == nil {
		batch, err := postgres.ClaimEmails(ctx, a.pool, mailBatch)
		if err != nil {
			return claimed, err
		}
		claimed += len(batch)
		if sent := a.sendAll(ctx, batch); len(batch) < mailBatch || sent == 0 {
			break
		}
	}
	return claimed, nil
}

// sendAll sends a claimed batch over one SMTP session (a new one after any error),
// records the delivered ones in one transaction and returns how many the server took.
func (a *App) sendAll(ctx context.Context, batch []postgres.Email) int {
	var (
		sess *smtp.Session
		sent []postgres.Email
		err  error
	)
	for i, e := range batch {
		if sess == nil {
			if sess, err = a.mailer.Open(); err != nil {
				// Unreachable, or no greeting: the rest of the batch would fail the same
				// way, a dial of up to 5 s each. All of it waits for its backoff.
				for _, rest := range batch[i:] {
					a.failed(ctx, rest, err)
				}
				break
			}
		}
		if err = sess.Send(smtp.Message{To: e.To, Subject: e.Subject, Body: e.Body, ID: e.OrderID + "." + e.Kind}); err == nil {
			sent = append(sent, e)
			continue
		}
		sess.Close() // the session's state is unknown after an error: start afresh
		sess = nil
		a.failed(ctx, e, err)
	}
	if sess != nil {
		sess.Close()
	}
	a.recordSent(ctx, sent)
	return len(sent)
}

// recordSent marks delivered e-mails SENT and appends their CustomerNotified, in one
// transaction. Bookkeeping after a send must not be cut short by shutdown.
func (a *App) recordSent(ctx context.Context, sent []postgres.Email) {
	if len(sent) == 0 {
		return
	}
	bctx := context.WithoutCancel(ctx)
	err := pg.Run(bctx, a.pool, nil, func(tx *pg.Tx) error {
		if err := postgres.MarkSent(bctx, tx, sent); err != nil {
			return err
		}
		evs := make([]events.Event, len(sent))
		for i, e := range sent {
			evs[i] = events.New(bctx, Source, contract.TopicCRMEngagements, e.OrderID, contract.CustomerNotified,
				crm.CustomerNotified{OrderID: e.OrderID, CustomerID: e.CustomerID, Kind: e.Kind, NotifiedAt: a.now()},
				events.Cause{CorrelationID: e.OrderID})
		}
		return a.outbox.Append(bctx, tx, evs...)
	})
	if err != nil {
		for _, e := range sent {
			a.log.ErrorContext(ctx, "e-mail sent but not recorded; it is marked UNCERTAIN after the claim lease and not sent again", "order_id", e.OrderID, "kind", e.Kind, "err", err)
		}
		return // they stay SENDING, and become UNCERTAIN (and counted so) after the lease
	}
	a.counted(ctx, "sent", len(sent))
}

// failed books an e-mail the server did not take: an uncertain outcome and a refusal
// for good are never sent again, any other refusal or an unreachable server gets it
// again later with backoff.
func (a *App) failed(ctx context.Context, e postgres.Email, err error) {
	bctx := context.WithoutCancel(ctx)
	if errors.Is(err, smtp.ErrRejected) {
		a.log.ErrorContext(ctx, "e-mail refused for good; not sending it again", "order_id", e.OrderID, "kind", e.Kind, "err", err)
		if err := postgres.MarkFailed(bctx, a.pool, e.OrderID, e.Kind, err.Error()); err != nil {
			a.log.ErrorContext(ctx, "mark e-mail failed", "err", err)
		}
		a.counted(ctx, "failed", 1)
		return
	}
	if errors.Is(err, smtp.ErrUncertain) {
		a.log.ErrorContext(ctx, "e-mail outcome unknown; not sending it again", "order_id", e.OrderID, "kind", e.Kind, "err", err)
		if err := postgres.MarkUncertain(bctx, a.pool, e.OrderID, e.Kind, err.Error()); err != nil {
			a.log.ErrorContext(ctx, "mark e-mail uncertain", "err", err)
		}
		a.counted(ctx, "uncertain", 1)
		return
	}
	next := a.now().Add(backoff.Duration(e.Attempts, time.Second, 5*time.Minute))
	a.log.WarnContext(ctx, "e-mail not accepted, will retry", "order_id", e.OrderID, "kind", e.Kind, "attempt", e.Attempts,
		"retry_at", next, "err", err)
	if err := postgres.MarkRetry(bctx, a.pool, e.OrderID, e.Kind, err.Error(), next); err != nil {
		a.log.ErrorContext(ctx, "requeue e-mail", "err", err)
	}
	a.counted(ctx, "retry", 1)
}
