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

	"github.com/google/uuid"
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

// worker applies, in order, the records of the topic-partitions it is given: in a
// parallel group one partition number of every topic of the group assigned to this
// member, in a Serial group every assigned partition. Topics keyed by the same aggregate
// id with the same partition count put an aggregate in the same partition number of each
// (Kafka's co-partitioning), so one worker sees all of an order's events from the topics
// it reads and applies them in one transaction, instead of one worker per topic each
// opening its own and waiting for the others' key locks. Records keep their order per
// topic-partition; across topic-partitions they are applied in the order they were
// fetched, except that a topic-partition whose head record waits for a retry is held back
// while the others go on.
type worker struct {
	c    *Consumer
	slot int32 // the key of c.workers: the partition number, or 0 for a Serial group

	busy sync.Mutex // held while a batch is taken and applied

	mu        sync.Mutex
	queue     []*kgo.Record
	parts     map[tp]*partState  // the assigned topic-partitions
	abortWork context.CancelFunc // cancels the batch in flight

	// partsGen counts assignments; the worker reloads the group's inbox floors when
	// floorsGen falls behind it. Only the worker goroutine touches floors and floorsGen.
	partsGen    int
	floorsGen   int
	floors      map[tp]int64 // the highest offset whose inbox row was purged
	floorLogged map[tp]bool

	wake     chan struct{}
	stopping chan struct{}
	stopOnce sync.Once
	base     context.Context // the worker's life
	cancel   context.CancelFunc
	ctx      context.Context // the batch in flight; only the worker goroutine uses it
	done     chan struct{}
}

// tp is a topic-partition.
type tp struct {
	topic     string
	partition int32
}

func tpOf(r *kgo.Record) tp { return tp{r.Topic, r.Partition} }

// partState is what a worker keeps per assigned topic-partition.
type partState struct {
	highWater    int64
	lastEnqueued int64
	queued       int   // its records in the worker's queue
	queuedBytes  int64 // and their queuedSize
	paused       bool  // at the broker, until its queued records drain
	attrs        metric.MeasurementOption

	// A head record that failed transiently waits until retryAt, and its partition's
	// later records with it; attempts counts its failures so far.
	retryAt       time.Time
	retryOffset   int64
	retryAttempts int
}

func newWorker(c *Consumer, slot int32) *worker {
	base, cancel := context.WithCancel(context.Background())
	return &worker{
		c: c, slot: slot,
		parts:       map[tp]*partState{},
		floorLogged: map[tp]bool{},
		wake:        make(chan struct{}, 1),
		stopping:    make(chan struct{}),
		base:        base,
		ctx:         base,
		cancel:      cancel,
		done:        make(chan struct{}),
	}
}

// add assigns a topic-partition to the worker.
func (w *worker) add(topic string, partition int32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := tp{topic, partition}
	if _, ok := w.parts[k]; ok {
		return
	}
	w.partsGen++
	w.parts[k] = &partState{lastEnqueued: -1, retryOffset: -1, attrs: partAttrs(w.c.group, k)}
	w.c.held.Add(1)
}

// queuedSize is what a fetched record costs the service while it waits in a queue: its
// key, value and headers, and the client's structures around them (a kgo.Record is about
// 160 bytes, a header 40 plus its key's string header). The decompressed batch that key,
// value and header values point into is shared by the batch's records and counted
// through them.
func queuedSize(r *kgo.Record) int64 {
	n := 200 + len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += 56 + len(h.Key) + len(h.Value)
	}
	return int64(n)
}

// overQueue reports whether st holds as many records as its partition may queue: QueueHigh
// of them, or its share of the group's QueueBytes.
func (w *worker) overQueue(st *partState) bool {
	return st.queued >= w.c.opts.QueueHigh || st.queuedBytes >= w.c.share()
}

// underQueue reports whether a paused partition has drained enough to fetch again.
func (w *worker) underQueue(st *partState) bool {
	return st.queued < w.c.opts.QueueHigh/2 && st.queuedBytes < w.c.share()/2
}

// share is the bytes of records each topic-partition the group holds may queue.
func (c *Consumer) share() int64 {
	return max(int64(c.opts.QueueBytes)/max(c.held.Load(), 1), 64<<10)
}

// addQueued counts n more (or, negative, fewer) bytes waiting in the group's queues.
func (c *Consumer) addQueued(ctx context.Context, n int64) {
	if n != 0 {
		c.metrics.queuedBytes.Record(ctx, c.queued.Add(n), c.groupAttr)
	}
}

func partAttrs(group string, k tp) metric.MeasurementOption {
	return metric.WithAttributes(attribute.String("consumer_group", group),
		attribute.String("topic", k.topic), attribute.Int("partition", int(k.partition)))
}

// assigned reports the worker's topic-partitions.
func (w *worker) assigned() []tp {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]tp, 0, len(w.parts))
	for k := range w.parts {
		out = append(out, k)
	}
	return out
}

// enqueue hands fetched records of one topic-partition to the worker without blocking
// the poll loop. Records at or below the last enqueued offset of their partition
// (refetched after a pause), or of a partition no longer assigned, are dropped. A
// partition holding as much as it may queue (overQueue) is paused at the broker.
func (w *worker) enqueue(topic string, partition int32, recs []*kgo.Record, highWater int64) {
	w.mu.Lock()
	k := tp{topic, partition}
	st := w.parts[k]
	if st == nil {
		w.mu.Unlock()
		return
	}
	var size int64
	for _, r := range recs {
		if r.Offset > st.lastEnqueued {
			w.queue = append(w.queue, r)
			st.lastEnqueued = r.Offset
			st.queued++
			size += queuedSize(r)
		}
	}
	st.queuedBytes += size
	st.highWater = highWater
	if !st.paused && w.overQueue(st) {
		st.paused = true
		w.c.client.PauseFetchPartitions(map[string][]int32{topic: {partition}})
	}
	w.mu.Unlock()
	w.c.addQueued(w.base, size)
	w.poke()
}

// poke wakes the worker's loop.
func (w *worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// take removes up to n records from the queue, skipping the partitions held back for a
// retry, and resumes paused partitions that have drained (underQueue). It makes the
// batch context that abort cancels, and returns when the earliest held partition is due
// (zero when none is held).
func (w *worker) take(n int) (batch []*kgo.Record, due time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	kept := w.queue[:0]
	var size int64
	for _, r := range w.queue {
		st := w.parts[tpOf(r)]
		if st == nil { // released meanwhile
			continue
		}
		if len(batch) < n && !st.retryAt.After(now) {
			batch = append(batch, r)
			st.queued--
			sz := queuedSize(r)
			st.queuedBytes -= sz
			size += sz
			continue
		}
		if st.retryAt.After(now) && (due.IsZero() || st.retryAt.Before(due)) {
			due = st.retryAt
		}
		kept = append(kept, r)
	}
	clear(w.queue[len(kept):])
	w.queue = kept
	w.c.addQueued(w.base, -size)
	var resume map[string][]int32 // allocated only when a partition resumes
	for k, st := range w.parts {
		if st.paused && w.underQueue(st) {
			st.paused = false
			if resume == nil {
				resume = map[string][]int32{}
			}
			resume[k.topic] = append(resume[k.topic], k.partition)
		}
	}
	if resume != nil {
		w.c.client.ResumeFetchPartitions(resume)
	}
	if len(batch) > 0 {
		w.ctx, w.abortWork = context.WithCancel(w.base)
	}
	return batch, due
}

// requeue puts records a batch did not settle back at the front of the queue, except
// those of partitions no longer assigned.
func (w *worker) requeue(recs []*kgo.Record) {
	w.mu.Lock()
	defer w.mu.Unlock()
	keep := make([]*kgo.Record, 0, len(recs)+len(w.queue))
	var size int64
	for _, r := range recs {
		if st := w.parts[tpOf(r)]; st != nil {
			keep = append(keep, r)
			st.queued++
			sz := queuedSize(r)
			st.queuedBytes += sz
			size += sz
		}
	}
	w.queue = append(keep, w.queue...)
	w.c.addQueued(w.base, size)
}

// holdBack makes p's partition wait until delay has passed: p and the records after it
// in its partition go back to the queue, and the worker's other partitions go on.
func (w *worker) holdBack(p *pending, delay time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if st := w.parts[tpOf(p.rec)]; st != nil {
		st.retryAt = time.Now().Add(delay)
		st.retryOffset, st.retryAttempts = p.rec.Offset, p.attempts
	}
}

// restoreAttempts gives a held record back the failures it had before it was held.
func (w *worker) restoreAttempts(ps []*pending) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range ps {
		if st := w.parts[tpOf(p.rec)]; st != nil && st.retryOffset == p.rec.Offset {
			p.attempts = st.retryAttempts
		}
	}
}

// release unassigns topic-partitions from the worker while its others go on: their
// queued records are dropped and the batch in flight finishes (their offsets are then
// marked) within ShutdownGrace, or is cancelled and its records of the remaining
// partitions go back to the queue. It returns once no batch is in flight.
func (w *worker) release(parts []tp) {
	w.mu.Lock()
	resume := map[string][]int32{}
	for _, k := range parts {
		st := w.parts[k]
		if st == nil {
			continue
		}
		if st.paused {
			resume[k.topic] = append(resume[k.topic], k.partition)
		}
		w.forget(k, st)
	}
	kept := w.queue[:0]
	for _, r := range w.queue {
		if w.parts[tpOf(r)] != nil {
			kept = append(kept, r)
		}
	}
	clear(w.queue[len(kept):])
	w.queue = kept
	abort := w.abortWork
	w.mu.Unlock()
	if len(resume) > 0 { // a paused partition stays paused in the client, even when reassigned
		w.c.client.ResumeFetchPartitions(resume)
	}
	acquired := make(chan struct{})
	go func() { w.busy.Lock(); close(acquired) }()
	select {
	case <-acquired:
	case <-time.After(w.c.opts.ShutdownGrace):
		if abort != nil {
			abort()
		}
		<-acquired
	}
	w.busy.Unlock()
}

// forget drops topic-partition k from the worker, with its share of the group's
// queue accounting. The caller holds w.mu; its queued records are left for the caller
// or take to drop.
func (w *worker) forget(k tp, st *partState) {
	delete(w.parts, k)
	w.c.held.Add(-1)
	w.c.addQueued(w.base, -st.queuedBytes)
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
	defer func() { // a stopped worker's partitions must not stay paused in the client
		w.mu.Lock()
		resume := map[string][]int32{}
		for k, st := range w.parts {
			if st.paused {
				resume[k.topic] = append(resume[k.topic], k.partition)
			}
			w.forget(k, st) // and a record enqueued after this finds no partition
		}
		w.queue = nil
		w.mu.Unlock()
		if len(resume) > 0 {
			w.c.client.ResumeFetchPartitions(resume)
		}
	}()
	var retry <-chan time.Time // fires when a held partition is due
	for {
		select {
		case <-w.stopping:
			return
		case <-w.wake:
		case <-retry:
		}
		retry = nil
		for !w.stopped() {
			w.busy.Lock()
			batch, due := w.take(w.c.opts.BatchSize * 4)
			if len(batch) == 0 {
				w.busy.Unlock()
				if !due.IsZero() {
					retry = time.After(time.Until(due))
				}
				break
			}
			if rest := w.process(batch); len(rest) > 0 && w.base.Err() == nil {
				w.requeue(rest)
			}
			w.abortWork()
			w.busy.Unlock()
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
	pinned   bool // a re-driven dead letter: its inbox row is never purged
}

// process applies recs in order, committing each applied prefix and marking its offsets.
// A record that fails transiently goes back to the queue with the rest of its partition's
// records, and its partition waits for the retry while the others go on. When the batch
// is cancelled it returns the records it did not settle.
func (w *worker) process(recs []*kgo.Record) []*kgo.Record {
	_ = w.loadFloors() // on failure apply reads them again and retries; meanwhile prepare decodes everything
	ps := make([]*pending, len(recs))
	for i, r := range recs {
		ps[i] = w.prepare(r)
	}
	w.restoreAttempts(ps)
	rest := func() []*kgo.Record {
		out := make([]*kgo.Record, len(ps))
		for i, p := range ps {
			out[i] = p.rec
		}
		return out
	}
	for len(ps) > 0 {
		if w.ctx.Err() != nil {
			return rest()
		}
		n, err := w.apply(ps[:min(len(ps), w.c.opts.BatchSize)])
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
		w.c.metrics.retries.Add(w.ctx, 1, w.attrsOf(p.rec))
		delay := backoff.Duration(p.attempts, w.c.opts.BackoffBase, w.c.opts.BackoffMax)
		w.c.log.WarnContext(telemetry.WithCorrelationID(w.ctx, p.msg.CorrelationID), "handler failed, retrying",
			"topic", p.rec.Topic, "partition", p.rec.Partition, "offset", p.rec.Offset, "ce_type", p.msg.Type,
			"attempt", p.attempts, "retry_in", delay.String(), "err", err)
		w.holdBack(p, delay)
		held := tpOf(p.rec)
		var back []*kgo.Record
		ps = slices.DeleteFunc(ps, func(q *pending) bool {
			if tpOf(q.rec) == held {
				back = append(back, q.rec)
				return true
			}
			return false
		})
		w.requeue(back)
	}
	return nil
}

// attrsOf is the metric attributes of r's partition; a partition released meanwhile
// gets them anew.
func (w *worker) attrsOf(r *kgo.Record) metric.MeasurementOption {
	w.mu.Lock()
	st := w.parts[tpOf(r)]
	w.mu.Unlock()
	if st != nil {
		return st.attrs
	}
	return partAttrs(w.c.group, tpOf(r))
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
	p := &pending{rec: r, msg: Message{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: string(r.Key), ProducedAt: r.Timestamp}}
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
	if to, redriven := redriveTarget(r); redriven {
		if to != "" && to != w.c.group {
			return p // another group's dead letter, re-driven: this group applied the original
		}
		p.pinned = true
	}
	p.route = &rt
	if r.Offset <= w.floorOf(r) {
		return p // applied before its inbox row was purged: apply skips it, no need to decode it
	}
	p.payload, p.err = rt.decode(r.Value)
	return p
}

// apply runs ps in one transaction. On success it returns len(ps), nil. When ps[i] fails
// it rolls back, re-applies ps[:i] (which succeeded a moment ago) and returns i and the
// error of ps[i]. Transaction errors return 0 and the error.
func (w *worker) apply(ps []*pending) (int, error) {
	if err := w.loadFloors(); err != nil {
		return 0, Transient(err)
	}
	for _, p := range ps {
		if p.rec.Offset <= w.floorOf(p.rec) {
			w.belowFloor(p)
		}
	}
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
	if !slices.ContainsFunc(ps, func(p *pending) bool { return p.route != nil }) {
		return len(ps), nil // nothing here for this group: acknowledged without a transaction
	}
	// One round trip opens the transaction, takes the batch's key locks and records every
	// routed record in the inbox; the handlers then run only for events new to the inbox.
	first := &pgx.Batch{}
	if w.c.opts.GenericPlans {
		pg.QueueGenericPlans(first)
	}
	if w.c.opts.Serial {
		first.Queue(`SELECT pg_advisory_xact_lock(hashtextextended('consumer/' || $1, 0))`, w.c.group)
	} else {
		lockKeys(first, w.c.group, ps)
	}
	fresh := map[string]bool{}
	if rows := inboxRows(ps); len(rows.ids) > 0 {
		first.Queue(`INSERT INTO platform_inbox (consumer, event_id, topic, partition, "offset", pinned)
		             SELECT $1, e, t, p, o, k FROM unnest($2::uuid[], $3::text[], $4::int[], $5::bigint[], $6::bool[]) AS a(e, t, p, o, k)
		             ON CONFLICT DO NOTHING RETURNING event_id::text`,
			w.c.group, rows.ids, rows.topics, rows.partitions, rows.offsets, rows.pinned).Query(func(rows pgx.Rows) error {
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
	var preloaded any
	if w.c.opts.Preload != nil {
		preloaded = w.c.opts.Preload(first, routedKeys(ps))
	}
	tx, err := pg.Begin(ctx, w.c.pool, first)
	if err != nil {
		return 0, Transient(fmt.Errorf("begin: %w", err))
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if preloaded != nil {
		tx.Local(preloadKey{}, func() any { return preloaded })
	}
	for i, p := range ps {
		if p.route == nil {
			continue
		}
		if !fresh[p.msg.ID] { // applied before (or twice in this batch): acknowledge without effect
			w.c.metrics.duplicates.Add(ctx, 1, w.attrsOf(p.rec))
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
		if !pg.IsDataError(err) {
			return 0, Transient(fmt.Errorf("commit: %w", err))
		}
		// A statement sent with the COMMIT (an aggregate written back, an outbox row) broke
		// a constraint or could not take its data: a retry of the same records meets it
		// again. Applied one at a time, the error lands on the record that causes it, as if
		// its handler's own statement had failed: that record alone is retried and then
		// dead-lettered, and the records around it are applied.
		if len(ps) > 1 {
			return w.applyEach(ps)
		}
		return 0, fmt.Errorf("commit: %w", err)
	}
	if w.c.opts.AfterCommit != nil {
		w.c.opts.AfterCommit(ctx)
	}
	return len(ps), nil
}

// applyEach applies ps one record per transaction, in order, and returns as apply does:
// how many were applied, and the error of the first that failed.
func (w *worker) applyEach(ps []*pending) (int, error) {
	for i := range ps {
		if _, err := w.apply(ps[i : i+1]); err != nil {
			return i, err
		}
	}
	return len(ps), nil
}

// routedKeys returns the distinct keys of the records of ps that have a handler, in
// batch order.
func routedKeys(ps []*pending) []string {
	keys := make([]string, 0, len(ps))
	seen := make(map[string]bool, len(ps))
	for _, p := range ps {
		if k := string(p.rec.Key); p.route != nil && !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return keys
}

type preloadKey struct{}

// Preloaded returns what the group's Preload returned for the batch tx applies, or nil
// (no Preload, or tx is not a consumer's transaction).
func Preloaded(tx pgx.Tx) any {
	if l, ok := tx.(interface{ Local(any, func() any) any }); ok {
		return l.Local(preloadKey{}, func() any { return nil })
	}
	return nil
}

// inboxColumns are the inbox rows of a batch, column by column, for one unnest.
type inboxColumns struct {
	ids, topics []string
	partitions  []int32
	offsets     []int64
	pinned      []bool
}

// inboxRows returns the inbox rows of the routed records of ps.
func inboxRows(ps []*pending) inboxColumns {
	var c inboxColumns
	for _, p := range ps {
		if p.route != nil {
			c.ids = append(c.ids, p.msg.ID)
			c.topics = append(c.topics, p.rec.Topic)
			c.partitions = append(c.partitions, p.rec.Partition)
			c.offsets = append(c.offsets, p.rec.Offset)
			c.pinned = append(c.pinned, p.pinned)
		}
	}
	return c
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
	// The last record of each topic-partition: marking it marks everything before it.
	last := map[tp]*kgo.Record{}
	count := map[tp]int64{}
	attrs := map[tp]metric.MeasurementOption{}
	now := time.Now()
	for _, p := range ps {
		k := tpOf(p.rec)
		if _, ok := attrs[k]; !ok {
			attrs[k] = w.attrsOf(p.rec)
		}
		last[k] = p.rec
		count[k]++
		if !p.msg.Time.IsZero() {
			w.c.metrics.eventAge.Record(w.ctx, now.Sub(p.msg.Time).Seconds(), attrs[k])
		}
	}
	marks := make([]*kgo.Record, 0, len(last))
	for _, r := range last {
		marks = append(marks, r)
	}
	w.c.client.MarkCommitRecords(marks...)
	for k, r := range last {
		w.c.metrics.processed.Add(w.ctx, count[k], attrs[k])
		w.mu.Lock()
		var hw int64
		if st := w.parts[k]; st != nil {
			hw = st.highWater
		}
		w.mu.Unlock()
		w.c.metrics.lag.Record(w.ctx, max(0, hw-r.Offset-1), attrs[k])
	}
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
	w.c.metrics.deadLetters.Add(w.ctx, 1, w.attrsOf(p.rec))
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

// UUIDKeys returns the keys of keys that are UUIDs in the canonical form the services
// write (36 lowercase characters), for a Preload that casts them to Postgres' uuid:
// uuid.Validate also takes a urn:uuid: prefix, which the cast refuses (and a statement
// that fails on a key fails its batch every time), and a key in another accepted form
// (upper case, braces, no hyphens) is not the string the handlers look their aggregate
// up by. Such keys are left to the handlers, which load their aggregate themselves.
func UUIDKeys(keys []string) []string {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if u, err := uuid.Parse(k); err == nil && u.String() == k {
			out = append(out, k)
		}
	}
	return out
}
