package consumer

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/platform/backoff"
	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/kafka"
	"github.com/orderflow/orderflow/platform/pg"
	"github.com/orderflow/orderflow/platform/telemetry"
)

// worker applies the records of one partition in order.
type worker struct {
	c         *Consumer
	topic     string
	partition int32
	attrs     metric.MeasurementOption

	mu           sync.Mutex
	queue        []*kgo.Record
	highWater    int64
	lastEnqueued int64
	paused       bool

	wake     chan struct{}
	stopping chan struct{}
	stopOnce sync.Once
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{}
}

func newWorker(c *Consumer, topic string, partition int32) *worker {
	ctx, cancel := context.WithCancel(context.Background())
	return &worker{
		c: c, topic: topic, partition: partition,
		attrs: metric.WithAttributes(attribute.String("consumer_group", c.group),
			attribute.String("topic", topic), attribute.Int("partition", int(partition))),
		lastEnqueued: -1,
		wake:         make(chan struct{}, 1),
		stopping:     make(chan struct{}),
		ctx:          ctx,
		cancel:       cancel,
		done:         make(chan struct{}),
	}
}

// enqueue hands fetched records to the worker without blocking the poll loop. Records
// at or below the last enqueued offset (refetched after a pause) are dropped. A full
// queue pauses the partition at the broker.
func (w *worker) enqueue(recs []*kgo.Record, highWater int64) {
	w.mu.Lock()
	for _, r := range recs {
		if r.Offset > w.lastEnqueued {
			w.queue = append(w.queue, r)
			w.lastEnqueued = r.Offset
		}
	}
	w.highWater = highWater
	if !w.paused && len(w.queue) >= w.c.opts.QueueHigh {
		w.paused = true
		w.c.client.PauseFetchPartitions(map[string][]int32{w.topic: {w.partition}})
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// take removes up to n records from the queue, resuming a paused partition once the
// queue is below half its limit.
func (w *worker) take(n int) []*kgo.Record {
	w.mu.Lock()
	defer w.mu.Unlock()
	n = min(n, len(w.queue))
	out := w.queue[:n:n]
	w.queue = w.queue[n:]
	if w.paused && len(w.queue) < w.c.opts.QueueHigh/2 {
		w.paused = false
		w.c.client.ResumeFetchPartitions(map[string][]int32{w.topic: {w.partition}})
	}
	return out
}

// stop asks the worker to finish its batch in flight and exit; abort cancels the batch.
func (w *worker) stop(abort bool) {
	w.stopOnce.Do(func() { close(w.stopping) })
	if abort {
		w.cancel()
	}
}

func (w *worker) stopped() bool {
	select {
	case <-w.stopping:
		return true
	default:
		return false
	}
}

func (w *worker) run() {
	defer close(w.done)
	defer w.cancel()
	for {
		select {
		case <-w.stopping:
			return
		case <-w.wake:
		}
		for !w.stopped() {
			batch := w.take(w.c.opts.BatchSize * 4)
			if len(batch) == 0 {
				break
			}
			w.process(batch)
		}
	}
}

// pending is a record with what the worker learned of it so far.
type pending struct {
	rec      *kgo.Record
	msg      Message
	route    *route
	payload  any
	err      error // a decode or header error: the record is dead on arrival
	attempts int
}

// process applies recs in order, committing each applied prefix and marking its offsets.
func (w *worker) process(recs []*kgo.Record) {
	ps := make([]*pending, len(recs))
	for i, r := range recs {
		ps[i] = w.prepare(r)
	}
	for len(ps) > 0 {
		if w.ctx.Err() != nil {
			return
		}
		limit := min(len(ps), w.c.opts.BatchSize)
		if w.c.opts.Serial {
			w.c.serial.Lock()
		}
		n, err := w.apply(ps[:limit])
		if w.c.opts.Serial {
			w.c.serial.Unlock()
		}
		if n > 0 {
			w.settle(ps[:n])
			ps = ps[n:]
		}
		if err == nil {
			continue
		}
		// ps[0] failed (n records before it were applied and are done).
		p := ps[0]
		p.attempts++
		k := classify(err)
		if k == permanent || (k == unknown && p.attempts >= w.c.opts.MaxAttempts) {
			if w.deadLetter(p, err) {
				w.settle(ps[:1])
				ps = ps[1:]
			}
			continue
		}
		w.c.metrics.retries.Add(w.ctx, 1, w.attrs)
		delay := backoff.Duration(p.attempts, w.c.opts.BackoffBase, w.c.opts.BackoffMax)
		w.c.log.WarnContext(telemetry.WithCorrelationID(w.ctx, p.msg.CorrelationID), "handler failed, retrying",
			"topic", w.topic, "partition", w.partition, "offset", p.rec.Offset, "ce_type", p.msg.Type,
			"attempt", p.attempts, "retry_in", delay.String(), "err", err)
		if !w.sleep(delay) {
			return
		}
	}
}

// sleep waits d unless the worker is stopped; it reports whether to go on.
func (w *worker) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-w.stopping:
		return false
	case <-w.ctx.Done():
		return false
	}
}

// prepare parses headers and decodes the payload outside any transaction.
func (w *worker) prepare(r *kgo.Record) *pending {
	p := &pending{rec: r, msg: Message{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: string(r.Key)}}
	md, err := events.ParseHeaders(r.Headers)
	if err != nil {
		p.err = Permanent(err)
		return p
	}
	p.msg.Metadata = md
	rt, ok := w.c.routes[md.Type]
	if !ok {
		return p // not for this service
	}
	p.route = &rt
	p.payload, p.err = rt.decode(r.Value)
	return p
}

// apply runs ps in one transaction. On success it returns len(ps), nil. When ps[i] fails
// it rolls back, re-applies ps[:i] (which succeeded a moment ago) and returns i and the
// error of ps[i]. Transaction errors return 0 and the error.
func (w *worker) apply(ps []*pending) (int, error) {
	for i, p := range ps {
		if p.err != nil && classify(p.err) != permanent { // e.g. the registry was down: decode again
			attempts := p.attempts
			*p = *w.prepare(p.rec)
			p.attempts = attempts
		}
		if p.err != nil { // dead on arrival: apply what comes before it first
			if i == 0 {
				return 0, p.err
			}
			n, err := w.apply(ps[:i])
			if err != nil {
				return n, err
			}
			return i, p.err
		}
	}
	ctx := w.ctx
	// One round trip opens the transaction, takes the batch's key locks and records every
	// routed record in the inbox; the handlers then run only for events new to the inbox.
	first := &pgx.Batch{}
	if w.c.opts.Serial {
		first.Queue(`SELECT pg_advisory_xact_lock(hashtextextended('consumer/' || $1, 0))`, w.c.group)
	} else {
		lockKeys(first, w.c.group, ps)
	}
	fresh := map[string]bool{}
	if ids, offsets := inboxRows(ps); len(ids) > 0 {
		first.Queue(`INSERT INTO platform_inbox (consumer, event_id, topic, partition, "offset")
		             SELECT $1, e, $2, $3, o FROM unnest($4::uuid[], $5::bigint[]) AS a(e, o)
		             ON CONFLICT DO NOTHING RETURNING event_id::text`,
			w.c.group, w.topic, w.partition, ids, offsets).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					return err
				}
				fresh[id] = true
			}
			return rows.Err()
		})
	}
	tx, err := pg.Begin(ctx, w.c.pool, first)
	if err != nil {
		return 0, Transient(fmt.Errorf("begin: %w", err))
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	for i, p := range ps {
		if p.route == nil {
			continue
		}
		if !fresh[p.msg.ID] { // applied before (or twice in this batch): acknowledge without effect
			w.c.metrics.duplicates.Add(ctx, 1, w.attrs)
			continue
		}
		delete(fresh, p.msg.ID)
		if err := w.handle(ctx, tx, p); err != nil {
			_ = tx.Rollback(ctx)
			if i == 0 {
				return 0, err
			}
			n, rerr := w.apply(ps[:i])
			if rerr != nil {
				return n, rerr
			}
			return i, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, Transient(fmt.Errorf("commit: %w", err))
	}
	if w.c.opts.AfterCommit != nil {
		w.c.opts.AfterCommit(ctx)
	}
	return len(ps), nil
}

// inboxRows returns the event ids and offsets of the routed records of ps.
func inboxRows(ps []*pending) (ids []string, offsets []int64) {
	for _, p := range ps {
		if p.route != nil {
			ids = append(ids, p.msg.ID)
			offsets = append(offsets, p.rec.Offset)
		}
	}
	return ids, offsets
}

// handle runs p's handler in tx, in a span of the event's trace.
func (w *worker) handle(ctx context.Context, tx pgx.Tx, p *pending) (err error) {
	hctx := telemetry.WithCorrelationID(p.msg.Metadata.Context(ctx), p.msg.CorrelationID)
	hctx, span := w.c.tracer.Start(hctx, "process "+p.msg.Type, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.consumer.group.name", w.c.group),
			attribute.String("messaging.destination.name", p.rec.Topic),
			attribute.Int("messaging.destination.partition.id", int(p.rec.Partition)),
			attribute.Int64("messaging.kafka.offset", p.rec.Offset),
			attribute.String("messaging.message.id", p.msg.ID),
		))
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
		w.c.metrics.handlerDuration.Record(ctx, time.Since(start).Seconds(),
			metric.WithAttributes(attribute.String("consumer_group", w.c.group), attribute.String("ce_type", p.msg.Type),
				attribute.Bool("ok", err == nil)))
	}()
	return p.route.handle(hctx, tx, p.msg, p.payload)
}

// settle marks applied (or dead-lettered) records for commit and updates lag and age.
func (w *worker) settle(ps []*pending) {
	last := ps[len(ps)-1].rec
	w.c.client.MarkCommitRecords(last)
	now := time.Now()
	for _, p := range ps {
		if !p.msg.Time.IsZero() {
			w.c.metrics.eventAge.Record(w.ctx, now.Sub(p.msg.Time).Seconds(), w.attrs)
		}
	}
	w.c.metrics.processed.Add(w.ctx, int64(len(ps)), w.attrs)
	w.mu.Lock()
	hw := w.highWater
	w.mu.Unlock()
	w.c.metrics.lag.Record(w.ctx, max(0, hw-last.Offset-1), w.attrs)
}

// deadLetter writes p to the group's dead-letter topic. It reports false when the write
// failed, and the record is then retried like a transient failure.
func (w *worker) deadLetter(p *pending, cause error) bool {
	rec := DeadLetterRecord(w.c.group, p.rec, cause, p.attempts)
	if err := w.c.client.ProduceSync(w.ctx, rec).FirstErr(); err != nil {
		w.c.log.ErrorContext(w.ctx, "dead-letter write failed, will retry", "topic", p.rec.Topic,
			"partition", p.rec.Partition, "offset", p.rec.Offset, "err", err)
		w.sleep(backoff.Duration(p.attempts, w.c.opts.BackoffBase, w.c.opts.BackoffMax))
		return false
	}
	w.c.metrics.deadLetters.Add(w.ctx, 1, w.attrs)
	w.c.log.ErrorContext(telemetry.WithCorrelationID(w.ctx, p.msg.CorrelationID), "record dead-lettered",
		"topic", p.rec.Topic, "partition", p.rec.Partition, "offset", p.rec.Offset,
		"ce_type", p.msg.Type, "attempts", p.attempts, "dlq", rec.Topic, "err", cause)
	return true
}

// DeadLetterRecord returns the dead letter of rec for group's dead-letter topic: rec's
// key, value and headers, followed by the Header* headers that say what went wrong,
// how often it was tried and where the record came from (plus the stack of a panic).
func DeadLetterRecord(group string, rec *kgo.Record, cause error, attempts int) *kgo.Record {
	dead := &kgo.Record{
		Topic: kafka.DeadLetterTopicName(group),
		Key:   rec.Key,
		Value: rec.Value,
		Headers: append(append([]kgo.RecordHeader(nil), rec.Headers...),
			kgo.RecordHeader{Key: HeaderDLQError, Value: []byte(cause.Error())},
			kgo.RecordHeader{Key: HeaderDLQAttempts, Value: []byte(strconv.Itoa(attempts))},
			kgo.RecordHeader{Key: HeaderDLQTopic, Value: []byte(rec.Topic)},
			kgo.RecordHeader{Key: HeaderDLQPartition, Value: []byte(strconv.Itoa(int(rec.Partition)))},
			kgo.RecordHeader{Key: HeaderDLQOffset, Value: []byte(strconv.FormatInt(rec.Offset, 10))},
			kgo.RecordHeader{Key: HeaderDLQGroup, Value: []byte(group)},
			kgo.RecordHeader{Key: HeaderDLQTime, Value: []byte(time.Now().UTC().Format(time.RFC3339Nano))},
		),
	}
	var pe *PanicError
	if errors.As(cause, &pe) {
		dead.Headers = append(dead.Headers, kgo.RecordHeader{Key: HeaderDLQStack, Value: pe.Stack})
	}
	return dead
}

// Headers added to a dead-lettered record, after its original headers.
const (
	HeaderDLQError     = "dlq_error"
	HeaderDLQAttempts  = "dlq_attempts"
	HeaderDLQTopic     = "dlq_source_topic"
	HeaderDLQPartition = "dlq_source_partition"
	HeaderDLQOffset    = "dlq_source_offset"
	HeaderDLQGroup     = "dlq_consumer_group"
	HeaderDLQTime      = "dlq_time"
	HeaderDLQStack     = "dlq_stack"
)

// lockKeys queues in b a transaction-scoped advisory lock for every distinct record key of a
// batch, in ascending order, before any handler runs.
//
// Why: a group that consumes several topics keyed by the same aggregate id (an order's
// events arrive on inventory.reservations and billing.payments) runs one worker per
// topic-partition, so two workers can hold batches that touch the same orders in
// different orders, and their row locks deadlock. Taking every key's lock up front, in
// one global order, serialises such batches instead. Rows keyed by something else than
// the record key (stock per SKU) are not covered: consumers that lock those use
// BatchSize 1 and lock in a fixed order themselves.
func lockKeys(b *pgx.Batch, group string, ps []*pending) {
	keys := make([]int64, 0, len(ps))
	for _, p := range ps {
		if p.route == nil {
			continue // acknowledged without effect: nothing to serialise
		}
		h := fnv.New64a()
		_, _ = h.Write([]byte(group))
		_, _ = h.Write([]byte{0})
		_, _ = h.Write(p.rec.Key)
		keys = append(keys, int64(h.Sum64()))
	}
	if len(keys) < 2 {
		return // one aggregate: its first row lock serialises it already
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	// unnest keeps the array's order, so the locks are taken in ascending key order.
	b.Queue(`SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) AS t(k)`, keys)
}
