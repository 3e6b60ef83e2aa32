package outbox

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/platform/backoff"
	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/telemetry"
)

// RelayOptions tunes a Relay; the zero value is usable.
type RelayOptions struct {
	// BatchSize is how many rows one pass publishes at most (default 2000).
	BatchSize int
	// Fallback is how long the relay waits for a wake-up (Wake, Outbox.Committed, or a
	// NOTIFY on Channel from another process) before looking anyway (default 200 ms). It
	// bounds the delay of a commit whose wake-up was missed.
	Fallback time.Duration
	// Linger is how long rows whose commit called WakeSoon may wait for company: the
	// pass that publishes them comes with the next Wake, or when the linger is up
	// (default 0: WakeSoon is Wake). See Publication.Linger.
	Linger time.Duration
	// Retention is how long published rows are kept for inspection before they are
	// deleted (default 1 h; their content stays in the topic).
	Retention time.Duration
	// AfterPublish, if set, runs after Kafka acknowledged a batch and before the batch is
	// marked published; an error abandons the batch exactly as a crash at that point
	// would. It exists for fault-injection tests.
	AfterPublish func(ids []int64) error
}

// Relay publishes committed outbox rows to Kafka. Create it with NewRelay and run it
// with Run; it is not meant to be shared.
type Relay struct {
	pool   *pgxpool.Pool
	client *kgo.Client
	log    *slog.Logger
	opts   RelayOptions
	lockID int64

	leading  atomic.Bool
	poke     chan struct{} // buffered(1): a wake-up for the leading relay of this process
	soon     chan struct{} // buffered(1): a wake-up that may wait up to opts.Linger
	unmarked atomic.Int64  // rows published and not yet marked (see lead)

	published     metric.Int64Counter
	latency       metric.Float64Histogram
	purged        metric.Int64Counter
	purgeFailures metric.Int64Counter
	tracer        trace.Tracer
}

// NewRelay returns a relay publishing the outbox of pool through client, which must be a
// producer configured with kafka.ProducerOpts.
func NewRelay(pool *pgxpool.Pool, client *kgo.Client, log *slog.Logger, opts RelayOptions) (*Relay, error) {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 2000
	}
	if opts.Fallback <= 0 {
		opts.Fallback = 200 * time.Millisecond
	}
	if opts.Retention <= 0 {
		opts.Retention = time.Hour
	}
	r := &Relay{pool: pool, client: client, log: log, opts: opts, lockID: 0x6f7574626f78, // "outbox"
		poke:   make(chan struct{}, 1),
		soon:   make(chan struct{}, 1),
		tracer: otel.Tracer("github.com/orderflow/orderflow/platform/outbox")}
	meter := otel.Meter("github.com/orderflow/orderflow/platform/outbox")
	var err error
	if r.published, err = meter.Int64Counter("outbox_published_total",
		metric.WithDescription("Outbox rows published to Kafka (a row re-published after a crash counts again).")); err != nil {
		return nil, err
	}
	if r.latency, err = meter.Float64Histogram("outbox_publish_latency_seconds",
		metric.WithDescription("From the outbox row's commit to Kafka's acknowledgement."),
		metric.WithExplicitBucketBoundaries(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)); err != nil {
		return nil, err
	}
	if err = telemetry.CountGauge(meter, "outbox_backlog", "Outbox rows committed and not yet published.", r.Backlog); err != nil {
		return nil, err
	}
	if r.purged, err = meter.Int64Counter("outbox_purged_total",
		metric.WithDescription("Published outbox rows deleted after their retention.")); err != nil {
		return nil, err
	}
	if r.purgeFailures, err = meter.Int64Counter("outbox_purge_failures_total",
		metric.WithDescription("Outbox purges that failed and will be tried again.")); err != nil {
		return nil, err
	}
	return r, nil
}

// Wake makes the relay publish now. When this process's relay leads, that is a channel
// send; otherwise the leader is another replica and hears a NOTIFY sent in a transaction
// of its own, after the caller's commit, so that the caller's commit never waited for it.
func (r *Relay) Wake(ctx context.Context) {
	r.wake(ctx, r.poke, "")
}

// WakeSoon makes the relay publish within RelayOptions.Linger, or with the next Wake if
// that comes first, as Wake does in every other respect.
func (r *Relay) WakeSoon(ctx context.Context) {
	if r.opts.Linger <= 0 {
		r.Wake(ctx)
		return
	}
	r.wake(ctx, r.soon, soonPayload)
}

// soonPayload marks a NOTIFY from WakeSoon; Wake's carries none.
const soonPayload = "soon"

func (r *Relay) wake(ctx context.Context, local chan struct{}, payload string) {
	if r.leading.Load() {
		nudge(local)
		return
	}
	if _, err := r.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, Channel, payload); err != nil && ctx.Err() == nil {
		r.log.DebugContext(ctx, "outbox wake-up notify failed; the relay looks again within its fallback", "err", err)
	}
}

func nudge(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// drain drops a pending wake-up: the pass about to read the outbox sees every row whose
// commit sent it.
func drain(c chan struct{}) {
	select {
	case <-c:
	default:
	}
}

// keepListening runs listen until ctx ends, reconnecting with backoff. While it is down,
// other replicas' commits wait for the fallback look; nothing is lost.
func (r *Relay) keepListening(ctx context.Context) {
	restarts := backoff.Streak{Base: 100 * time.Millisecond, Max: 10 * time.Second, Healthy: time.Minute}
	for ctx.Err() == nil {
		started := time.Now()
		err := r.listen(ctx)
		if ctx.Err() != nil {
			return
		}
		d := restarts.Failed(time.Since(started))
		r.log.WarnContext(ctx, "outbox relay lost its LISTEN connection; other replicas' commits wait for the fallback look until it is back",
			"err", err, "retry_in", d.String())
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
}

// listen forwards NOTIFYs on Channel to the relay until ctx ends or the connection fails.
func (r *Relay) listen(ctx context.Context) error {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire listen connection: %w", err)
	}
	// The connection carries a LISTEN: never give it back to the pool.
	c := conn.Hijack()
	defer func() { _ = c.Close(context.Background()) }()
	if _, err := c.Exec(ctx, "LISTEN "+Channel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	for {
		n, err := c.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if n.Payload == soonPayload && r.opts.Linger > 0 {
			nudge(r.soon)
		} else {
			nudge(r.poke)
		}
	}
}

// Backlog counts committed rows that are not yet published.
func (r *Relay) Backlog(ctx context.Context) (int64, error) {
	var n int64
	err := r.pool.QueryRow(ctx, `SELECT count(*) FROM platform_outbox WHERE published_at IS NULL`).Scan(&n)
	return max(0, n-r.unmarked.Load()), err
}

// Run publishes until ctx ends, and returns nil then. Database and Kafka errors are
// logged and retried with capped exponential backoff and jitter; they never end Run.
func (r *Relay) Run(ctx context.Context) error {
	restarts := backoff.Streak{Base: 100 * time.Millisecond, Max: 10 * time.Second, Healthy: time.Minute}
	for ctx.Err() == nil {
		started := time.Now()
		err := r.lead(ctx)
		if ctx.Err() != nil {
			return nil
		}
		d := restarts.Failed(time.Since(started))
		r.log.WarnContext(ctx, "outbox relay interrupted, retrying", "err", err, "retry_in", d.String())
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
	return nil
}

// lead waits to become the one relay of this database, then publishes until an error.
func (r *Relay) lead(ctx context.Context) error {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire listen connection: %w", err)
	}
	// The connection carries the session lock: never give it back to the pool.
	defer func() { _ = conn.Hijack().Close(context.Background()) }()

	for {
		var leader bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, r.lockID).Scan(&leader); err != nil {
			return fmt.Errorf("try relay lock: %w", err)
		}
		if leader {
			break
		}
		select { // another replica publishes; stand by
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	lctx, stopListening := context.WithCancel(ctx)
	defer stopListening()
	go r.keepListening(lctx)
	r.leading.Store(true)
	defer r.leading.Store(false)
	if err := setUpSession(ctx, conn.Conn()); err != nil {
		return err
	}
	r.log.InfoContext(ctx, "outbox relay leading")
	// Rows Kafka acknowledged are marked by the next pass's statement, which reads the
	// rows after them in the same round trip: a pass costs one statement instead of two,
	// and at tens of orders a second most passes follow a wake-up within a few
	// milliseconds. Marks wait at most markWithin. Rows whose marks a crash loses are
	// published again, as after a crash between publishing and marking always were.
	marks := []int64{} // never nil: a nil slice is SQL NULL, and "id <> ALL(NULL)" holds for no row
	defer r.unmarked.Store(0)
	defer func() { // on shutdown or an error: mark what was published, if the connection still can
		if len(marks) == 0 {
			return
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if _, err := conn.Exec(fctx, `UPDATE platform_outbox SET published_at = now() WHERE id = ANY($1)`, marks); err != nil {
			r.log.WarnContext(fctx, "could not mark the last published rows; the next leader publishes them again", "rows", len(marks), "err", err)
		}
	}()
	// Published rows past their retention are deleted between passes, a chunk at a time,
	// about once a minute: one DELETE of a minute's rows (18,780 in shop's outbox at 100
	// orders/s, 250 ms on an idle machine) held up publishing for its whole length. The
	// same purge beside the passes, on a connection of its own, measured worse (session 25).
	nextPurge, purging := time.Now(), false
	for {
		drain(r.poke)
		drain(r.soon)
		n, err := r.publishBatch(ctx, conn.Conn(), &marks)
		if err != nil {
			return err
		}
		if purging || time.Now().After(nextPurge) {
			if purging = r.purgeChunk(ctx); !purging {
				nextPurge = time.Now().Add(time.Minute)
			}
		}
		if n == r.opts.BatchSize || purging {
			continue // more are waiting
		}
		wait := r.opts.Fallback
		if len(marks) > 0 {
			wait = min(wait, markWithin)
		}
		if err := r.await(ctx, wait); err != nil {
			return err
		}
	}
}

// await returns at a Wake, at the end of the linger that a WakeSoon began, or after
// wait, whichever comes first; or with ctx's error.
func (r *Relay) await(ctx context.Context, wait time.Duration) error {
	look := time.NewTimer(wait)
	defer look.Stop()
	var lingered <-chan time.Time // armed by the first WakeSoon
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.poke:
			return nil
		case <-look.C:
			return nil
		case <-lingered:
			return nil
		case <-r.soon:
			if lingered == nil {
				t := time.NewTimer(r.opts.Linger)
				defer t.Stop()
				lingered = t.C
			}
		}
	}
}

type row struct {
	id        int64
	topic     string
	key       string
	value     []byte
	headers   []byte
	createdAt time.Time
}

// markWithin bounds how long published rows wait for the pass that marks them.
const markWithin = 100 * time.Millisecond

// maxRidingMarks is the most marks that ride on the next read; a pass that published
// more marks them in a statement of its own, as before marks rode. The read leaves the
// marked rows out one by one (every row against every mark), and reads past them first:
// with full passes of 2,000 rows riding, the relay published 14,000 events/s instead of
// 30,000 (make bench-platform). Riding pays where passes are small, at tens of orders a
// second, where a statement per pass is what a pass costs.
const maxRidingMarks = 64

// setUpSession prepares the leader's connection, which only reads the outbox and marks
// it, so its settings touch nothing else.
//
// Marks need not wait for the WAL flush: if a crash loses one, its rows are published
// again, which the guarantees allow; losing rows is what they forbid.
//
// A pass's statement takes an array of marks, so PostgreSQL would plan it afresh on every
// execution (a generic plan assumes ten elements and loses to a custom plan for the usual
// none to few). At 100 orders/s that was 0.06-0.17 ms of planning per pass, as much as its
// execution, and the largest part of each service's planning. The generic plan reads both
// indexes by id, even one made on an empty table (TestRelaySessionPlansThePassOnce).
func setUpSession(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, "SET synchronous_commit = off; SET plan_cache_mode = force_generic_plan"); err != nil {
		return fmt.Errorf("set up the relay's session: %w", err)
	}
	return nil
}

// passSQL marks the rows in $1 published and reads up to $2 pending rows in id order.
// The marks are not visible to the SELECT of their own statement, which leaves them out
// by id.
const passSQL = `WITH marked AS (UPDATE platform_outbox SET published_at = now() WHERE id = ANY($1))
	SELECT id, topic, key, value, headers::text, created_at
	  FROM platform_outbox WHERE published_at IS NULL AND id <> ALL($1)
	 ORDER BY id LIMIT $2`

// publishBatch marks the rows in marks published, then publishes up to BatchSize pending
// rows in id order and leaves in marks those Kafka acknowledged. It returns how many rows
// it read.
func (r *Relay) publishBatch(ctx context.Context, conn *pgx.Conn, marks *[]int64) (int, error) {
	rows, err := conn.Query(ctx, passSQL, *marks, r.opts.BatchSize)
	if err != nil {
		return 0, fmt.Errorf("mark published and read outbox: %w", err)
	}
	var batch []row
	for rows.Next() {
		var rw row
		var hs string
		if err := rows.Scan(&rw.id, &rw.topic, &rw.key, &rw.value, &hs, &rw.createdAt); err != nil {
			rows.Close()
			return 0, fmt.Errorf("read outbox: %w", err)
		}
		rw.headers = []byte(hs)
		batch = append(batch, rw)
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("mark published and read outbox: %w", err)
	}
	*marks = (*marks)[:0]
	r.unmarked.Store(0)
	if len(batch) == 0 {
		return 0, nil
	}

	records := make([]*kgo.Record, len(batch))
	spans := make([]trace.Span, len(batch))
	for i, rw := range batch {
		hs, err := decodeHeaders(rw.headers)
		if err != nil {
			return 0, fmt.Errorf("outbox row %d has unreadable headers: %w", rw.id, err)
		}
		rec := &kgo.Record{Topic: rw.topic, Key: []byte(rw.key), Value: rw.value, Headers: hs}
		spans[i] = r.startSpan(ctx, rec)
		records[i] = rec
	}

	results := r.client.ProduceSync(ctx, records...)
	now := time.Now()
	// Mark what was acknowledged, except rows that follow a failed row of the same
	// aggregate: those go out again, after it, on the next pass.
	failed := map[string]bool{}
	acked := make([]int64, 0, len(batch))
	var firstErr error
	for i, res := range results {
		agg := batch[i].topic + "\x00" + batch[i].key
		spans[i].End()
		if res.Err != nil {
			failed[agg] = true
			if firstErr == nil {
				firstErr = fmt.Errorf("publish outbox row %d to %s: %w", batch[i].id, batch[i].topic, res.Err)
			}
			continue
		}
		if failed[agg] {
			continue
		}
		acked = append(acked, batch[i].id)
		attrs := metric.WithAttributes(attribute.String("topic", batch[i].topic))
		r.latency.Record(ctx, now.Sub(batch[i].createdAt).Seconds(), attrs)
		r.published.Add(ctx, 1, attrs)
	}
	if len(acked) > 0 {
		if r.opts.AfterPublish != nil {
			if err := r.opts.AfterPublish(acked); err != nil {
				return 0, fmt.Errorf("after publish: %w", err)
			}
		}
		*marks = append(*marks, acked...)
		if len(*marks) > maxRidingMarks { // a large pass is marked at once: see maxRidingMarks
			if _, err := conn.Exec(ctx, `UPDATE platform_outbox SET published_at = now() WHERE id = ANY($1)`, *marks); err != nil {
				return 0, fmt.Errorf("mark published: %w", err)
			}
			*marks = (*marks)[:0]
		}
		r.unmarked.Store(int64(len(*marks)))
	}
	if firstErr != nil {
		return 0, firstErr
	}
	return len(batch), nil
}

// startSpan starts the relay's span as a child of the trace stored with the row and
// makes it the parent the consumer sees, so one trace runs from the request that wrote
// the event through the relay into every consumer.
func (r *Relay) startSpan(ctx context.Context, rec *kgo.Record) trace.Span {
	carrier := headerCarrier{rec}
	parent := propagation.TraceContext{}.Extract(ctx, carrier)
	sctx, span := r.tracer.Start(parent, "publish "+rec.Topic,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.destination.name", rec.Topic),
			attribute.String("messaging.message.id", carrier.Get(events.HeaderID)),
		))
	if span.SpanContext().IsValid() {
		propagation.TraceContext{}.Inject(sctx, carrier)
	}
	return span
}

// purgeChunk deletes one chunk of the published rows past their retention and reports
// whether more may be waiting. A failure is counted and logged, and the purge is tried
// again at its next turn: publishing does not depend on it.
func (r *Relay) purgeChunk(ctx context.Context) (more bool) {
	n, err := deleteChunk(ctx, r.pool, time.Now().Add(-r.opts.Retention))
	r.purged.Add(ctx, n)
	if err != nil {
		if ctx.Err() == nil {
			r.purgeFailures.Add(ctx, 1)
			r.log.WarnContext(ctx, "outbox purge failed; retrying in a minute", "err", err)
		}
		return false
	}
	return n == purgeChunkRows
}

// purgeChunkRows is how many rows one purge statement deletes at most: about 20 ms of work.
const purgeChunkRows = 5000

// PurgeOutbox deletes the rows published before cutoff, oldest first, in transactions of
// up to purgeChunkRows rows, and returns how many it deleted. Unpublished rows are never
// deleted, however old. The leading relay does the same a chunk at a time between its
// passes.
func PurgeOutbox(ctx context.Context, pool *pgxpool.Pool, cutoff time.Time) (int64, error) {
	var total int64
	for {
		n, err := deleteChunk(ctx, pool, cutoff)
		total += n
		if err != nil || n < purgeChunkRows {
			return total, err
		}
	}
}

func deleteChunk(ctx context.Context, pool *pgxpool.Pool, cutoff time.Time) (int64, error) {
	var n int64
	err := pool.QueryRow(ctx, `
		WITH gone AS (
			DELETE FROM platform_outbox WHERE id = ANY(ARRAY(
				SELECT id FROM platform_outbox WHERE published_at < $1 ORDER BY published_at LIMIT $2))
			RETURNING 1)
		SELECT count(*) FROM gone`, cutoff, purgeChunkRows).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("purge published outbox rows: %w", err)
	}
	return n, nil
}

// headerCarrier lets OpenTelemetry read and write a record's headers.
type headerCarrier struct{ r *kgo.Record }

func (c headerCarrier) Get(key string) string {
	for i := len(c.r.Headers) - 1; i >= 0; i-- {
		if c.r.Headers[i].Key == key {
			return string(c.r.Headers[i].Value)
		}
	}
	return ""
}

func (c headerCarrier) Set(key, value string) {
	for i := range c.r.Headers {
		if c.r.Headers[i].Key == key {
			c.r.Headers[i].Value = []byte(value)
			return
		}
	}
	c.r.Headers = append(c.r.Headers, kgo.RecordHeader{Key: key, Value: []byte(value)})
}

func (c headerCarrier) Keys() []string {
	ks := make([]string, len(c.r.Headers))
	for i, h := range c.r.Headers {
		ks[i] = h.Key
	}
	return ks
}
