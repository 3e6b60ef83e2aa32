package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/orderflow/orderflow/platform/backoff"
	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/platform/kafka"
	"github.com/orderflow/orderflow/platform/pg"
)

// Deps is what running and rebuilding a model needs.
type Deps struct {
	// Service names the dead-letter topics: <service>.<model>.dlq for the live runner,
	// <service>.<model>.replay.dlq for a rebuild asked to dead-letter.
	Service string
	Pool    *pgxpool.Pool
	Kafka   kafka.Config
	Decoder Decoder
	Log     *slog.Logger
}

// DeadLetterGroup is the name whose <name>.dlq topic receives the live runner's dead
// letters of model; `<service> dlq --group <name>` reads them.
func DeadLetterGroup(service, model string) string { return service + "." + model }

// RunnerOptions tunes a Runner; zero values pick the defaults.
type RunnerOptions struct {
	// BatchSize is the most records applied in one transaction (default 2000).
	BatchSize int
	// Standby is how often a replica that does not run the model checks whether it
	// should take over (default 2 s).
	Standby time.Duration
	// Linger is how long the broker may hold the model's fetch to gather records, so that
	// one transaction applies many events instead of one; zero answers every fetch as
	// soon as a record arrives. Below 10 ms counts as 10 ms (franz-go's least wait).
	Linger time.Duration
}

// Runner keeps a model up to date with its topics. Run it on every replica: one of them
// runs the model, the others stand by.
type Runner struct {
	d    Deps
	m    *Model
	opts RunnerOptions
	log  *slog.Logger
	met  *runnerMetrics
}

// NewRunner returns the live runner of m.
func NewRunner(d Deps, m *Model, opts RunnerOptions) (*Runner, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 2000
	}
	if opts.Standby <= 0 {
		opts.Standby = 2 * time.Second
	}
	met, err := newRunnerMetrics()
	if err != nil {
		return nil, err
	}
	return &Runner{d: d, m: m, opts: opts, log: d.Log.With("read_model", m.Name), met: met}, nil
}

// Run applies the model's topics until ctx ends. The replica holding the model's run
// lock applies; a model that has never been built is first rebuilt from history.
func (r *Runner) Run(ctx context.Context) error {
	restarts := backoff.Streak{Base: 200 * time.Millisecond, Max: 10 * time.Second, Healthy: time.Minute}
	for ctx.Err() == nil {
		started := time.Now()
		led, err := r.leadOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case err != nil:
			d := restarts.Failed(time.Since(started))
			if errors.Is(err, ErrTopicMissing) { // a suite's first start, before the topic's owner
				r.log.WarnContext(ctx, "read model waiting for a topic", "err", err, "retry_in", d.String())
			} else {
				r.log.ErrorContext(ctx, "read model stopped, restarting", "err", err, "retry_in", d.String())
			}
			sleep(ctx, d)
		case !led:
			sleep(ctx, r.opts.Standby)
		default: // swapped by a rebuild: run again at once
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// errEpochChanged tells the runner that a rebuild swapped the model's tables: its
// offsets are no longer the model's.
var errEpochChanged = errors.New("read model was swapped by a rebuild")

// leadOnce takes the run lock and runs the model until ctx ends, the tables are swapped
// (it returns true, nil to be called again) or an error. It reports false when another
// replica holds the lock.
func (r *Runner) leadOnce(ctx context.Context) (bool, error) {
	conn, err := r.d.Pool.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("acquire: %w", err)
	}
	defer conn.Release()
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, runLock(r.m.Name)).Scan(&ok); err != nil {
		return false, fmt.Errorf("run lock: %w", err)
	}
	if !ok {
		return false, nil
	}
	defer func() {
		if _, err := conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, runLock(r.m.Name)); err != nil {
			conn.Conn().Close(context.Background()) // closing the session releases the lock
		}
	}()

	if err := dropLeftovers(ctx, conn, r.m); err != nil {
		r.log.WarnContext(ctx, "could not drop the shadow tables of an interrupted rebuild", "err", err)
	}
	st, err := loadState(ctx, conn, r.m.Name)
	if errors.Is(err, errNotBuilt) {
		r.log.InfoContext(ctx, "read model has never been built: rebuilding it from the topics' history")
		_, err := Rebuild(ctx, r.d, r.m, Options{})
		var running *RunningError
		if errors.As(err, &running) {
			r.log.InfoContext(ctx, "another process is building the read model, waiting")
			sleep(ctx, r.opts.Standby)
			return true, nil
		}
		return true, err
	}
	if err != nil {
		return true, err
	}
	if err := r.follow(ctx, st); !errors.Is(err, errEpochChanged) {
		return true, err
	}
	r.log.InfoContext(ctx, "read model swapped by a rebuild: following the new tables")
	return true, nil
}

// dropLeftovers drops shadow tables that a rebuild killed without its cleanup (the
// process died) left behind, unless a rebuild is running now.
func dropLeftovers(ctx context.Context, conn *pgxpool.Conn, m *Model) error {
	var free bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, rebuildLock(m.Name)).Scan(&free); err != nil || !free {
		return err
	}
	defer func() { _, _ = conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, rebuildLock(m.Name)) }()
	for _, t := range m.Tables {
		if _, err := conn.Exec(ctx, `DROP TABLE IF EXISTS `+ident(shadowName(t.Name))); err != nil {
			return err
		}
	}
	return nil
}

// follow applies records from st's offsets until ctx ends or the epoch changes.
func (r *Runner) follow(ctx context.Context, st state) error {
	admin, err := kafka.NewClient(r.d.Kafka)
	if err != nil {
		return err
	}
	defer admin.Close()
	start, _, err := bounds(ctx, admin, r.m.Topics)
	if err != nil {
		return err
	}
	from := offsets{}
	for p, first := range start {
		from[p] = first // a partition the model never read starts at its beginning
		if off, ok := st.offsets[p]; ok {
			from[p] = max(off, first)
		}
	}
	// Without a linger the broker answers a fetch as soon as any of its partitions has a
	// record, so how long it may hold an empty one only sets how often an idle model
	// asks: every 100 ms cost an idle suite's broker a tenth of a core. The reader is
	// never paused, so a long wait delays nothing (unlike a consumer group's resumed
	// partitions). With a linger the broker holds the fetch until it has a mebibyte or the
	// linger passed: at tens of orders a second a model then commits once per linger
	// instead of once per event.
	wait := []kgo.Opt{kgo.FetchMaxWait(time.Second)}
	if r.opts.Linger > 0 {
		wait = []kgo.Opt{kgo.FetchMaxWait(max(r.opts.Linger, 10*time.Millisecond)), kgo.FetchMinBytes(1 << 20)}
	}
	rd, err := openReader(r.d.Kafka, r.m, r.d.Decoder, from, append(wait,
		kgo.FetchMaxBytes(consumer.LiveFetchMaxBytes), kgo.FetchMaxPartitionBytes(consumer.LiveFetchMaxPartitionBytes))...)
	if err != nil {
		return err
	}
	defer rd.close()
	r.log.InfoContext(ctx, "read model running", "epoch", st.epoch)
	for {
		c, err := rd.poll(ctx, time.Second, r.opts.BatchSize, nil)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if c.records == 0 {
			continue
		}
		for attempt := 1; ; attempt++ {
			err := r.apply(ctx, rd.client, st.epoch, c)
			if err == nil {
				break
			}
			if errors.Is(err, errEpochChanged) || ctx.Err() != nil {
				return err
			}
			if isPermanent(err) { // some events can never be applied: dead-letter them, keep the rest
				bad, ierr := isolate(ctx, r.d.Pool, r.m, r.m.live(), c.events)
				if ierr == nil && len(bad) > 0 {
					var dead []badRecord
					c.events, dead = without(c.events, bad)
					c.bad = append(c.bad, dead...)
					continue
				}
			}
			d := backoff.Duration(attempt, 100*time.Millisecond, 10*time.Second)
			r.met.retries.Add(ctx, 1, metric.WithAttributes(attribute.String("read_model", r.m.Name)))
			r.log.WarnContext(ctx, "applying a batch failed, retrying", "records", c.records, "attempt", attempt,
				"retry_in", d.String(), "err", err)
			sleep(ctx, d)
		}
		r.observe(ctx, c)
	}
}

// apply writes a chunk into the live tables with its offsets, under the shared swap lock.
func (r *Runner) apply(ctx context.Context, producer *kgo.Client, epoch int64, c *chunk) error {
	start := time.Now()
	// A read model's rows and offsets commit together, so a commit a crash loses is simply
	// read again from Kafka: no need to wait for the WAL flush, which is the dearest part
	// of a small batch and is shared with the services' write models. The epoch must be
	// read by a later statement than the one that waits for the lock: a statement's
	// snapshot is taken before it waits, and would miss a swap that committed meanwhile.
	// Both travel with BEGIN; the offsets travel with COMMIT.
	var now int64
	first := &pgx.Batch{}
	first.Queue(`SELECT set_config('synchronous_commit', 'off', true), pg_advisory_xact_lock_shared($1)`, swapLock(r.m.Name))
	first.Queue(`SELECT epoch FROM platform_projections WHERE model = $1`, r.m.Name).QueryRow(func(row pgx.Row) error {
		if err := row.Scan(&now); err != nil {
			return fmt.Errorf("read epoch: %w", err)
		}
		return nil
	})
	tx, err := pg.Begin(ctx, r.d.Pool, first)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if now != epoch {
		return errEpochChanged
	}
	if len(c.bad) > 0 {
		if err := r.deadLetter(ctx, producer, c.bad); err != nil {
			return err
		}
	}
	if len(c.events) > 0 {
		if err := r.m.apply(ctx, tx, r.m.live(), c.events); err != nil {
			return fmt.Errorf("apply %d events: %w", len(c.events), err)
		}
	}
	tx.BeforeCommit(func(b *pgx.Batch) { queueOffsets(b, r.m.Name, c.next) })
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	r.met.batch.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(attribute.String("read_model", r.m.Name)))
	return nil
}

// deadLetter writes records that can never be applied to the model's dead-letter topic.
func (r *Runner) deadLetter(ctx context.Context, producer *kgo.Client, bad []badRecord) error {
	group := DeadLetterGroup(r.d.Service, r.m.Name)
	if err := kafka.EnsureTopics(ctx, producer, kafka.DeadLetterTopic(group)); err != nil {
		return err
	}
	recs := make([]*kgo.Record, len(bad))
	for i, b := range bad {
		recs[i] = consumer.DeadLetterRecord(group, b.rec, b.err, 1)
		r.log.ErrorContext(ctx, "record dead-lettered", "topic", b.rec.Topic, "partition", b.rec.Partition,
			"offset", b.rec.Offset, "dlq", recs[i].Topic, "err", b.err)
	}
	if err := producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("dead-letter: %w", err)
	}
	r.met.deadLetters.Add(ctx, int64(len(bad)), metric.WithAttributes(attribute.String("read_model", r.m.Name)))
	return nil
}

func (r *Runner) observe(ctx context.Context, c *chunk) {
	model := attribute.String("read_model", r.m.Name)
	r.met.records.Add(ctx, int64(c.records), metric.WithAttributes(model))
	for p, next := range c.next {
		if hw, ok := c.high[p]; ok {
			r.met.lag.Record(ctx, max(0, hw-next), metric.WithAttributes(model,
				attribute.String("topic", p.Topic), attribute.Int("partition", int(p.Partition))))
		}
	}
	now := time.Now()
	for _, e := range c.events {
		if !e.Time.IsZero() {
			r.met.age.Record(ctx, now.Sub(e.Time).Seconds(), metric.WithAttributes(model))
		}
	}
}

type runnerMetrics struct {
	records, retries, deadLetters metric.Int64Counter
	lag                           metric.Int64Gauge
	age, batch                    metric.Float64Histogram
}

var buckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

func newRunnerMetrics() (*runnerMetrics, error) {
	meter := otel.Meter("github.com/orderflow/orderflow/platform/projection")
	var m runnerMetrics
	var errs [6]error
	m.records, errs[0] = meter.Int64Counter("projection_records_total",
		metric.WithDescription("Records a read model consumed (applied, skipped or dead-lettered)."))
	m.retries, errs[1] = meter.Int64Counter("projection_retries_total",
		metric.WithDescription("Batches that failed and were retried."))
	m.deadLetters, errs[2] = meter.Int64Counter("projection_dead_letters_total",
		metric.WithDescription("Records written to the read model's dead-letter topic."))
	m.lag, errs[3] = meter.Int64Gauge("projection_lag",
		metric.WithDescription("Records between a read model's offset and the partition's high watermark."))
	m.age, errs[4] = meter.Float64Histogram("projection_event_age_seconds",
		metric.WithDescription("From an event's ce_time to its application to a read model."),
		metric.WithExplicitBucketBoundaries(buckets...))
	m.batch, errs[5] = meter.Float64Histogram("projection_batch_duration_seconds",
		metric.WithDescription("Time to apply one batch to a read model, inside its transaction."),
		metric.WithExplicitBucketBoundaries(buckets...))
	return &m, errors.Join(errs[:]...)
}
