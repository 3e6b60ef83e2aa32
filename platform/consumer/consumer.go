// Package consumer runs a service's event handlers as a Kafka consumer group with
// exactly-once effects.
//
// Guarantees:
//
//   - Idempotent effects: a handler runs inside a Postgres transaction that also inserts
//     an inbox row (consumer group, ce_id). A redelivered event finds its row and is
//     acknowledged without running the handler, so every event takes effect once even
//     though Kafka delivers at least once.
//   - Offsets are committed only after the transaction that applied the records
//     committed; a crash anywhere replays from the last commit and the inbox absorbs it.
//   - Order: the records of one partition are applied one after the other in offset
//     order. One goroutine applies a partition number of every topic of the group that
//     this member is assigned: topics keyed by the same aggregate id and partitioned
//     alike hold an aggregate's events in the same partition number, so its events from
//     several topics meet in one goroutine and one transaction instead of waiting for
//     each other's locks. Partition numbers run in parallel; a Serial group has one
//     goroutine for all its partitions. Consecutive records are applied in batches of up
//     to Options.BatchSize per transaction; a failure inside a batch re-applies the
//     records before it and isolates the failing one.
//   - Retries: a transient error (Transient, or a database connection or serialization
//     error) is retried with capped exponential backoff and jitter for as long as it
//     takes. Meanwhile the failing record's partition is held back (its later records
//     wait behind it, and it is paused at the broker once its queue is full), and every
//     other partition keeps flowing. An error of unknown kind is retried up to
//     Options.MaxAttempts times.
//   - Memory: fetched records wait in the workers' queues, at most Options.QueueHigh of
//     a partition and Options.QueueBytes of the whole group, shared among its
//     partitions; a partition that holds its share is paused at the broker until it
//     drains.
//   - Dead letters: a record that can never succeed (undecodable, unknown schema, failed
//     validation, a Permanent error, a panic, or an unknown error past MaxAttempts) is
//     written to <group>.dlq with its original key, value and headers plus the error,
//     the attempt count and its source topic, partition and offset, and the partition
//     moves on.
//   - Inbox retention: rows older than Options.InboxRetention are purged, leaving per
//     topic-partition a floor below which records are acknowledged without effect, so
//     a group whose Kafka offsets were lost does not apply its history again; re-driven
//     dead letters are applied only by their group and their rows are kept (inbox.go).
//   - Rebalances: when partitions are revoked, their workers finish the batch in flight,
//     and the marked offsets are committed before the partitions are released. Shutdown
//     does the same for every partition.
//
// Records whose ce_type has no handler are acknowledged without effect: a topic carries
// every event of its aggregate and a service subscribes to the ones it needs.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/platform/backoff"
	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/kafka"
)

// Decoder reads a Confluent-framed payload with a reader schema; *serde.Serde is one.
type Decoder interface {
	Decode(data []byte, reader avro.Schema, out any) error
}

// Message is what a handler receives besides its decoded payload.
type Message struct {
	events.Metadata
	Topic     string
	Partition int32
	Offset    int64
	Key       string
	// ProducedAt is the record's Kafka timestamp, in whole milliseconds: for an event
	// relayed from an outbox, when the relay handed it to its producer (event topics keep
	// the producer's create time).
	ProducedAt time.Time
}

// Handler applies one event inside tx. It must do all its writes through tx; they
// commit together with the inbox row. The payload was decoded and validated before.
type Handler[T any] func(ctx context.Context, tx pgx.Tx, m Message, payload T) error

// Validator is implemented by payloads that check themselves after decoding; an error
// dead-letters the record.
type Validator interface {
	Validate() error
}

type route struct {
	typ    events.Type
	decode func(data []byte) (any, error)
	handle func(ctx context.Context, tx pgx.Tx, m Message, payload any) error
}

// Fetch sizes of live consumers (consumer groups and read models following the topics):
// small enough that a service lagging behind holds a few MiB of fetched records, large
// enough for thousands of records per fetch.
const (
	LiveFetchMaxBytes          = 4 << 20
	LiveFetchMaxPartitionBytes = 256 << 10
)

// Options tunes a Consumer; the zero value of each field picks the default.
type Options struct {
	// BatchSize is the most records applied in one transaction (default 32).
	BatchSize int
	// MaxAttempts bounds retries of errors of unknown kind (default 5).
	MaxAttempts int
	// BackoffBase and BackoffMax shape the retry delays (defaults 50 ms and 10 s).
	BackoffBase, BackoffMax time.Duration
	// QueueHigh is how many fetched records of a partition may wait before it is paused at
	// the broker (default 1000); it resumes below half of that.
	QueueHigh int
	// QueueBytes bounds the fetched records waiting for the group's workers, all its
	// partitions together (default 8 MiB), so that what a lagging service holds does not
	// grow with the number of partitions it reads: each assigned topic-partition may hold
	// an equal share (at least 64 KiB) before it is paused at the broker, and resumes
	// below half of its share and of QueueHigh. A record counts its key, value and
	// headers and what the client keeps beside them (queuedSize). A partition can hold up
	// to two fetches beyond its share: the one that took it over and one already in
	// flight when it was paused, each LiveFetchMaxPartitionBytes (compressed) or one whole
	// record batch when its producer wrote a larger one (Kafka returns at least one).
	QueueBytes int
	// ShutdownGrace is how long in-flight batches may run on shutdown or revocation
	// before they are abandoned (default 10 s).
	ShutdownGrace time.Duration
	// Serial makes the group apply one batch at a time: in a process one worker applies
	// every assigned partition, in batches that span them, and across replicas a
	// transaction-scoped advisory lock on the group's name lets one batch run at a time.
	// It is for groups whose handlers lock rows that many aggregates share (stock per
	// SKU) in an order no batch can fix up front: serial batches cannot deadlock, and
	// under load they grow, so one commit covers many events. Without it such a group
	// needs BatchSize 1.
	Serial bool
	// GenericPlans runs the statements of the group's transactions, the handlers' and the
	// Preload's included, on their generic plans (pg.QueueGenericPlans): for groups that
	// look their aggregates up by key, in batches (id = ANY($1)), which PostgreSQL would
	// otherwise plan afresh for every batch.
	GenericPlans bool
	// InboxRetention is how long inbox rows are kept before they are purged (default
	// DefaultInboxRetention, 7 days); see PurgeInbox for why purged rows leave every
	// event applied once. A relay that published rows and crashed before marking them
	// publishes them again when it restarts: keep this longer than any relay outage.
	InboxRetention time.Duration
	// Preload, if set, queues statements into the round trip that opens a batch's
	// transaction, after its locks and inbox rows, given the distinct keys of the batch's
	// records that have a handler. What it returns is kept with the transaction for the
	// handlers (Preloaded). A group whose handlers each load and lock their aggregate uses
	// it to load every aggregate of the batch in that round trip instead of one round trip
	// per event. The keys come from the records as they are: a Preload must not queue a
	// statement that a malformed key makes fail, or the batch fails every time it is
	// applied; leave such keys to the handlers.
	Preload func(b *pgx.Batch, keys []string) any
	// AfterCommit, if set, runs after every committed batch, outside its transaction:
	// the place to wake what works on the batch's results (the outbox relay wakes by
	// itself: outbox.Outbox.Append).
	AfterCommit func(ctx context.Context)
	// Linger is how long the broker may hold the group's fetch to gather records, so that
	// one transaction applies many events instead of one; zero answers a fetch as soon
	// as a record arrives. It is for groups no one waits on (e-mails, shipments): each of
	// their reactions comes up to Linger later, and the CPU they no longer spend on a
	// fetch and a transaction per event goes to the groups on an order's way to
	// confirmation. Below 10 ms counts as 10 ms (franz-go's least wait); a partition
	// resumed after a pause also waits up to Linger for the next fetch.
	Linger time.Duration
}

func (o *Options) defaults() {
	if o.BatchSize <= 0 {
		o.BatchSize = 32
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = 50 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 10 * time.Second
	}
	if o.QueueHigh <= 0 {
		o.QueueHigh = 1000
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = 8 << 20
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = 10 * time.Second
	}
	if o.InboxRetention <= 0 {
		o.InboxRetention = DefaultInboxRetention
	}
}

// Consumer is one consumer group of one service. Register handlers with On before Run.
type Consumer struct {
	group  string
	topics []string
	kcfg   kafka.Config
	pool   *pgxpool.Pool
	dec    Decoder
	log    *slog.Logger
	opts   Options
	routes map[string]route

	client *kgo.Client

	mu      sync.Mutex
	workers map[int32]*worker // by slot

	held   atomic.Int64 // topic-partitions the workers hold: QueueBytes is shared among them
	queued atomic.Int64 // bytes of records waiting in the workers' queues (queuedSize)

	// Partition numbers, not partitions, go to members; cooperative-sticky stays listed so
	// that members of a release before CopartitionedBalancer and newer ones agree on a
	// protocol during a rolling deploy.
	balancers []kgo.GroupBalancer
	testOpts  []kgo.Opt // a test's own client options (export_test.go)

	tracer    trace.Tracer
	metrics   *metrics
	groupAttr metric.MeasurementOption
}

// New returns a consumer for group reading topics. group is part of the contract with
// Kafka: renaming it starts the group from scratch, so keep it a constant.
func New(group string, topics []string, kcfg kafka.Config, pool *pgxpool.Pool, dec Decoder, log *slog.Logger, opts Options) (*Consumer, error) {
	if group == "" || len(topics) == 0 {
		return nil, errors.New("consumer needs a group and at least one topic")
	}
	opts.defaults()
	m, err := newMetrics()
	if err != nil {
		return nil, err
	}
	return &Consumer{
		group: group, topics: topics, kcfg: kcfg, pool: pool, dec: dec,
		log:       log.With("consumer_group", group),
		opts:      opts,
		routes:    map[string]route{},
		workers:   map[int32]*worker{},
		balancers: []kgo.GroupBalancer{CopartitionedBalancer(), kgo.CooperativeStickyBalancer()},
		tracer:    otel.Tracer("github.com/orderflow/orderflow/platform/consumer"),
		metrics:   m,
		groupAttr: metric.WithAttributes(attribute.String("consumer_group", group)),
	}, nil
}

// On registers h for events of typ. Registering a type twice replaces the handler.
func On[T any](c *Consumer, typ events.Type, h Handler[T]) {
	c.routes[typ.Name] = route{
		typ: typ,
		decode: func(data []byte) (any, error) {
			var v T
			if err := c.dec.Decode(data, typ.Schema, &v); err != nil {
				return nil, err
			}
			if val, ok := any(&v).(Validator); ok {
				if err := val.Validate(); err != nil {
					return nil, Permanent(fmt.Errorf("validate %s: %w", typ.Name, err))
				}
			}
			return v, nil
		},
		handle: func(ctx context.Context, tx pgx.Tx, m Message, payload any) error {
			return h(ctx, tx, m, payload.(T))
		},
	}
}

// Group is the consumer group name.
func (c *Consumer) Group() string { return c.group }

// DeadLetterTopic is the topic this group's dead letters go to.
func (c *Consumer) DeadLetterTopic() string { return kafka.DeadLetterTopicName(c.group) }

// Run consumes until ctx ends, then shuts down gracefully (finish in-flight batches,
// commit offsets, leave the group) and returns nil. It returns an error only when the
// client cannot be created.
func (c *Consumer) Run(ctx context.Context) error {
	opts := []kgo.Opt{
		kgo.ConsumerGroup(c.group),
		kgo.ConsumeTopics(c.topics...),
		kgo.Balancers(c.balancers...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(time.Second),
		kgo.BlockRebalanceOnPoll(),
		// A fetch holds thousands of the suite's records at these sizes; franz-go's
		// defaults (50 MiB, 1 MiB per partition) let a lagging service buffer tens of MiB.
		kgo.FetchMaxBytes(LiveFetchMaxBytes), kgo.FetchMaxPartitionBytes(LiveFetchMaxPartitionBytes),
		kgo.OnPartitionsAssigned(c.assigned),
		kgo.OnPartitionsRevoked(c.revoked),
		kgo.OnPartitionsLost(c.lost),
	}
	if c.opts.Linger > 0 {
		opts = append(opts, kgo.FetchMaxWait(max(c.opts.Linger, 10*time.Millisecond)), kgo.FetchMinBytes(1<<20))
	} else {
		opts = append(opts, kgo.FetchMaxWait(100*time.Millisecond))
	}
	opts = append(append(opts, c.kcfg.GroupOpts()...), c.testOpts...)
	client, err := kafka.NewClient(c.kcfg, opts...)
	if err != nil {
		return fmt.Errorf("consumer %s: %w", c.group, err)
	}
	c.client = client
	for attempt := 1; ; attempt++ {
		err := kafka.EnsureTopics(ctx, client, kafka.DeadLetterTopic(c.group))
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			client.Close()
			return nil
		}
		d := backoff.Duration(attempt, 100*time.Millisecond, 5*time.Second)
		c.log.WarnContext(ctx, "waiting for kafka to create the dead-letter topic", "err", err, "retry_in", d.String())
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
	c.log.InfoContext(ctx, "consumer starting", "topics", c.topics)
	purgeCtx, stopPurging := context.WithCancel(ctx)
	purged := make(chan struct{})
	go func() { defer close(purged); c.purgeLoop(purgeCtx) }()
	defer func() { stopPurging(); <-purged }()

	for {
		fetches := client.PollRecords(ctx, 10_000)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			break
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				c.log.WarnContext(ctx, "fetch failed", "topic", topic, "partition", p, "err", err)
			}
		})
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			c.mu.Lock()
			w := c.workers[c.slot(p.Partition)]
			c.mu.Unlock()
			if w != nil {
				w.enqueue(p.Topic, p.Partition, p.Records, p.HighWatermark)
			}
		})
		client.AllowRebalance()
	}

	// Shutdown: stop fetching, let workers finish, commit, leave.
	client.AllowRebalance()
	c.stopWorkers(c.allPartitions(), true)
	cctx, cancel := context.WithTimeout(context.Background(), c.opts.ShutdownGrace)
	defer cancel()
	if err := client.CommitMarkedOffsets(cctx); err != nil {
		c.log.WarnContext(cctx, "final offset commit failed; the next owner replays from the previous commit", "err", err)
	}
	client.CloseAllowingRebalance()
	c.log.InfoContext(cctx, "consumer stopped")
	return nil
}

func (c *Consumer) assigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for topic, ps := range assigned {
		for _, p := range ps {
			s := c.slot(p)
			w, ok := c.workers[s]
			if !ok {
				w = newWorker(c, s)
				c.workers[s] = w
				go w.run()
			}
			w.add(topic, p)
		}
	}
	c.log.InfoContext(ctx, "partitions assigned", "partitions", assigned)
}

func (c *Consumer) revoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	c.stopWorkers(revoked, true)
	if err := cl.CommitMarkedOffsets(ctx); err != nil {
		c.log.WarnContext(ctx, "offset commit on revoke failed; the next owner replays from the previous commit", "err", err)
	}
	c.log.InfoContext(ctx, "partitions revoked", "partitions", revoked)
}

func (c *Consumer) lost(ctx context.Context, cl *kgo.Client, lost map[string][]int32) {
	c.stopWorkers(lost, false)
	c.log.WarnContext(ctx, "partitions lost", "partitions", lost)
}

// slot is the worker that applies partition p: one per partition number, or one for
// every partition of a Serial group.
func (c *Consumer) slot(p int32) int32 {
	if c.opts.Serial {
		return 0
	}
	return p
}

func (c *Consumer) allPartitions() map[string][]int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	all := map[string][]int32{}
	for _, w := range c.workers {
		for _, k := range w.assigned() {
			all[k.topic] = append(all[k.topic], k.partition)
		}
	}
	return all
}

// stopWorkers takes ps away from their workers. A worker left without partitions stops:
// graceful workers finish their batch in flight within ShutdownGrace; others are
// cancelled at once (their partitions are already someone else's). A worker that keeps
// other partitions drops the records of ps and goes on (release).
func (c *Consumer) stopWorkers(ps map[string][]int32, graceful bool) {
	byWorker := map[*worker][]tp{}
	c.mu.Lock()
	for topic, parts := range ps {
		for _, p := range parts {
			if w, ok := c.workers[c.slot(p)]; ok {
				byWorker[w] = append(byWorker[w], tp{topic, p})
			}
		}
	}
	var stopping, releasing []*worker
	for w, parts := range byWorker {
		if len(w.assigned()) > len(parts) {
			releasing = append(releasing, w)
			continue
		}
		delete(c.workers, w.slot)
		stopping = append(stopping, w)
	}
	c.mu.Unlock()
	for _, w := range stopping {
		w.stop(!graceful)
	}
	var wg sync.WaitGroup
	for _, w := range releasing {
		wg.Go(func() { w.release(byWorker[w]) })
	}
	// Past ShutdownGrace every batch still in flight is cancelled, not only the first
	// one found running: the grace is the whole shutdown's, not each worker's.
	grace := time.NewTimer(c.opts.ShutdownGrace)
	defer grace.Stop()
	expired := false
	for _, w := range stopping {
		if !expired {
			select {
			case <-w.done:
				continue
			case <-grace.C:
				expired = true
				for _, s := range stopping {
					s.stop(true)
				}
			}
		}
		<-w.done
	}
	wg.Wait()
}
