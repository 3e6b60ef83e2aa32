package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/platform/kafka"
)

// Options tunes a rebuild; the zero value rebuilds from the first offset of every
// partition, stops on an undecodable record and swaps.
type Options struct {
	// From starts every partition at its first record at or after this time instead of
	// its beginning. Events before it are not in the rebuilt model.
	From time.Time
	// Verify builds the model up to exactly the live model's offsets, compares the two
	// and drops the rebuilt version instead of swapping it in.
	Verify bool
	// DeadLetter sends undecodable records to <service>.<model>.replay.dlq and counts
	// them instead of stopping the rebuild.
	DeadLetter bool
	// Progress, when set, is called about once a second and once at the end.
	Progress func(Progress)
	// BatchSize is the most records applied in one transaction (default 2000). The
	// rebuild holds about three batches at once (one read ahead, one being written, one
	// being polled), so this is also what bounds its memory.
	BatchSize int
	// CatchUp is how close to the head (in records) the rebuild gets before it takes the
	// model's exclusive lock to drain the rest and swap (default 2000).
	CatchUp int64
	// DrainTimeout bounds how long the final drain may wait for records the broker
	// announced (default 30 s).
	DrainTimeout time.Duration
}

// Phases of a rebuild, as Progress reports them.
const (
	PhaseRebuilding = "rebuilding"
	PhaseSwapping   = "swapping"
	PhaseVerifying  = "verifying"
	PhaseDone       = "done"
)

// Progress is a snapshot of a running rebuild.
type Progress struct {
	Model   string `json:"model"`
	Phase   string `json:"phase"`
	Records int64  `json:"records"`
	// Rate is records per second since the rebuild started.
	Rate float64 `json:"records_per_second"`
	// Remaining counts records between the rebuild's position and the head, in total
	// and per partition ("topic/partition").
	Remaining    int64            `json:"remaining"`
	PerPartition map[string]int64 `json:"remaining_per_partition"`
	Elapsed      time.Duration    `json:"elapsed_ns"`
	// ETA estimates the time left at the current rate; zero when unknown.
	ETA          time.Duration `json:"eta_ns"`
	DeadLettered int64         `json:"dead_lettered,omitempty"`
}

// Result is what a finished rebuild did.
type Result struct {
	Model        string        `json:"model"`
	Records      int64         `json:"records"`
	Events       int64         `json:"events"`
	DeadLettered int64         `json:"dead_lettered"`
	Duration     time.Duration `json:"duration_ns"`
	Rate         float64       `json:"records_per_second"`
	// ReadWait is how long writing waited for records to be fetched and decoded;
	// WriteTime is how long it spent in its transactions. Their sum is most of Duration.
	ReadWait  time.Duration `json:"read_wait_ns"`
	WriteTime time.Duration `json:"write_ns"`
	// IndexTime is how long building the shadow tables' deferred keys and indexes took.
	IndexTime time.Duration `json:"index_ns"`
	// Swapped is true when the rebuilt version replaced the live one; Epoch is then the
	// model's new epoch.
	Swapped bool  `json:"swapped"`
	Epoch   int64 `json:"epoch,omitempty"`
	// Report is the comparison a verification made.
	Report *Report `json:"report,omitempty"`
}

// Report compares a rebuilt model with the live one.
type Report struct {
	Identical bool          `json:"identical"`
	Tables    []TableReport `json:"tables"`
}

// TableReport compares one table.
type TableReport struct {
	Table       string `json:"table"`
	LiveRows    int64  `json:"live_rows"`
	RebuiltRows int64  `json:"rebuilt_rows"`
	LiveHash    string `json:"live_hash"`
	RebuiltHash string `json:"rebuilt_hash"`
	// Differences are the keys of rows that differ, are missing from the live table
	// (only rebuilt) or from the rebuilt one (only live), at most MaxDifferences.
	Differences []Difference `json:"differences,omitempty"`
}

// Difference is a row that is not the same in both versions.
type Difference struct {
	Key  string `json:"key"`
	Kind string `json:"kind"` // "changed", "only_live", "only_rebuilt"
}

// MaxDifferences bounds the differing keys a TableReport lists.
const MaxDifferences = 100

// RunningError refuses a rebuild of a model that is being rebuilt.
type RunningError struct{ Model string }

func (e *RunningError) Error() string {
	return fmt.Sprintf("a rebuild of read model %s is already running; wait for it to finish or stop it", e.Model)
}

// Rebuild builds m anew from its topics into shadow tables and, once caught up, swaps it
// in (or compares it, with Options.Verify). It returns when done, on the first error, or
// when ctx ends; in the last two cases the live model is untouched and the shadow tables
// are dropped. It is Begin followed by Run.
func Rebuild(ctx context.Context, d Deps, m *Model, o Options) (*Result, error) {
	b, err := Begin(ctx, d, m, o)
	if err != nil {
		return nil, err
	}
	return b.Run(ctx)
}

// Build is a rebuild that has started: it holds the model's rebuild lock and its empty
// shadow tables exist. Run it, exactly once.
type Build struct {
	b    *builder
	conn *pgxpool.Conn
}

// Begin checks the options, takes the model's rebuild lock (a *RunningError when another
// rebuild holds it, in this process or any other) and creates the shadow tables.
func Begin(ctx context.Context, d Deps, m *Model, o Options) (*Build, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if o.Verify && !o.From.IsZero() {
		return nil, errors.New("verify compares the whole history: it cannot start from a time")
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 2000
	}
	if o.CatchUp <= 0 {
		o.CatchUp = 2000
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 30 * time.Second
	}
	conn, err := d.Pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquire: %w", err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, rebuildLock(m.Name)).Scan(&ok); err != nil {
		conn.Release()
		return nil, fmt.Errorf("rebuild lock: %w", err)
	}
	if !ok {
		conn.Release()
		return nil, &RunningError{Model: m.Name}
	}
	bd := &Build{conn: conn, b: &builder{d: d, m: m, o: o, started: time.Now(), log: d.Log.With("read_model", m.Name), bulk: true}}
	if err := bd.b.createShadow(ctx); err != nil {
		bd.b.dropShadow()
		bd.release()
		return nil, err
	}
	return bd, nil
}

func (bd *Build) release() {
	if _, err := bd.conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, rebuildLock(bd.b.m.Name)); err != nil {
		bd.conn.Conn().Close(context.Background()) // closing the session releases the lock
	}
	bd.conn.Release()
}

// Run rebuilds, swaps or verifies, drops what is left of the shadow tables and releases
// the rebuild lock.
func (bd *Build) Run(ctx context.Context) (*Result, error) {
	defer bd.release()
	defer bd.b.dropShadow()
	res, err := bd.b.run(ctx)
	switch {
	case errors.Is(err, ErrTopicMissing): // expected on a suite's first start
		bd.b.log.WarnContext(ctx, "rebuild waiting for a topic; the live model is untouched", "err", err)
		return nil, err
	case err != nil:
		bd.b.log.ErrorContext(ctx, "rebuild failed; the live model is untouched", "err", err)
		return nil, err
	}
	return res, nil
}

// builder is one rebuild.
type builder struct {
	d       Deps
	m       *Model
	o       Options
	log     *slog.Logger
	started time.Time
	swapped bool

	admin   *kgo.Client // bounds, dead letters
	pos     offsets     // everything before pos was read
	end     offsets     // the head as last seen
	records int64
	events  int64
	dead    int64
	// pending holds records read past the live model's offsets during a verification.
	pending  []Event
	lastTick time.Time

	deferred            []string      // definitions of the indexes built at the end
	keys                []deferredKey // unique constraints of append-only tables, added at the end
	bulk                bool          // append-only shadows have no key index yet
	chunks              <-chan polled
	readWait, writeTime time.Duration
	indexTime           time.Duration
}

func (b *builder) createShadow(ctx context.Context) error {
	b.dropShadowCtx(ctx)
	for _, t := range b.m.Tables {
		live, shadow := pgx.Identifier{t.Name}.Sanitize(), pgx.Identifier{shadowName(t.Name)}.Sanitize()
		// Logged from the start: COPY into a logged table costs less than rewriting an
		// unlogged one into the WAL at the end (measured with make bench-replay).
		if _, err := b.d.Pool.Exec(ctx, fmt.Sprintf(`CREATE TABLE %s (LIKE %s INCLUDING ALL)`, shadow, live)); err != nil {
			return fmt.Errorf("create shadow of %s: %w", t.Name, err)
		}
		if err := copySettings(ctx, b.d.Pool, live, shadow); err != nil {
			return fmt.Errorf("shadow of %s: %w", t.Name, err)
		}
		// Secondary indexes are built once at the end, which is several times faster than
		// maintaining them row by row. Unique ones stay for the upserts that need them,
		// except on append-only tables, which are written with COPY.
		if t.AppendOnly {
			rows, err := b.d.Pool.Query(ctx, `SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
			                                   WHERE conrelid = $1::regclass AND contype IN ('p', 'u')`, shadow)
			if err != nil {
				return fmt.Errorf("constraints of shadow of %s: %w", t.Name, err)
			}
			cons, err := pgx.CollectRows(rows, scanPair)
			if err != nil {
				return fmt.Errorf("constraints of shadow of %s: %w", t.Name, err)
			}
			for _, c := range cons {
				if _, err := b.d.Pool.Exec(ctx, fmt.Sprintf(`ALTER TABLE %s DROP CONSTRAINT %s`, shadow, ident(c[0]))); err != nil {
					return fmt.Errorf("defer constraint %s: %w", c[0], err)
				}
				b.keys = append(b.keys, deferredKey{table: t, add: fmt.Sprintf(`ALTER TABLE %s ADD CONSTRAINT %s %s`, shadow, ident(c[0]), c[1])})
			}
		}
		rows, err := b.d.Pool.Query(ctx, `SELECT c.relname, pg_get_indexdef(i.indexrelid)
		                                     FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		                                    WHERE i.indrelid = $1::regclass AND (NOT i.indisunique OR $2)
		                                      AND NOT EXISTS (SELECT FROM pg_constraint WHERE conindid = i.indexrelid)`, shadow, t.AppendOnly)
		if err != nil {
			return fmt.Errorf("indexes of shadow of %s: %w", t.Name, err)
		}
		idx, err := pgx.CollectRows(rows, scanPair)
		if err != nil {
			return fmt.Errorf("indexes of shadow of %s: %w", t.Name, err)
		}
		for _, ix := range idx {
			if _, err := b.d.Pool.Exec(ctx, `DROP INDEX `+ident(ix[0])); err != nil {
				return fmt.Errorf("defer index %s: %w", ix[0], err)
			}
			b.deferred = append(b.deferred, ix[1])
		}
	}
	return nil
}

// copySettings gives shadow the storage parameters of live (autovacuum's thresholds,
// fillfactor) and its columns' statistics targets, which the migrations set and LIKE
// ... INCLUDING ALL does not copy. Without them every rebuilt model, and so every model
// of a new deployment (the first start builds it from the topics' history), lost what
// its migrations had set: session 22 found the timelines' and the order view's document
// columns analyzed by autovacuum again, which shop's and crm's migrations had excluded.
func copySettings(ctx context.Context, pool *pgxpool.Pool, live, shadow string) error {
	var opts []string
	if err := pool.QueryRow(ctx, `SELECT coalesce(reloptions, '{}') FROM pg_class WHERE oid = $1::regclass`, live).Scan(&opts); err != nil {
		return fmt.Errorf("storage parameters: %w", err)
	}
	// attstattarget is -1 (before PostgreSQL 17) or NULL (since) where no target was set.
	rows, err := pool.Query(ctx, `SELECT attname::text, attstattarget::int FROM pg_attribute
	                               WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND attstattarget >= 0
	                               ORDER BY attnum`, live)
	if err != nil {
		return fmt.Errorf("statistics targets: %w", err)
	}
	targets, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var col string
		var target int
		err := r.Scan(&col, &target)
		return fmt.Sprintf("ALTER COLUMN %s SET STATISTICS %d", ident(col), target), err
	})
	if err != nil {
		return fmt.Errorf("statistics targets: %w", err)
	}
	var alter []string
	if len(opts) > 0 {
		params := make([]string, len(opts))
		for i, o := range opts { // name=value, as PostgreSQL lists them
			name, value, _ := strings.Cut(o, "=")
			params[i] = ident(name) + " = " + quoteLiteral(value)
		}
		alter = append(alter, "SET ("+strings.Join(params, ", ")+")")
	}
	alter = append(alter, targets...)
	if len(alter) == 0 {
		return nil
	}
	if _, err := pool.Exec(ctx, fmt.Sprintf("ALTER TABLE %s %s", shadow, strings.Join(alter, ", "))); err != nil {
		return fmt.Errorf("copy settings: %w", err)
	}
	return nil
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func scanPair(r pgx.CollectableRow) ([2]string, error) {
	var p [2]string
	err := r.Scan(&p[0], &p[1])
	return p, err
}

// deferredKey is a unique constraint of an append-only table, added back at the end.
type deferredKey struct {
	table Table
	add   string
}

// addKey adds a deferred unique constraint, first removing the duplicate rows a double
// publication left (any copy will do: copies of a key are identical).
func addKey(ctx context.Context, q txBeginner, k deferredKey) error {
	err := pgx.BeginFunc(ctx, q, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, k.add)
		return err
	})
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23505" {
		return err
	}
	var cols []string
	for _, c := range strings.Split(k.table.Key, ",") {
		cols = append(cols, strings.TrimSpace(c))
	}
	return pgx.BeginFunc(ctx, q, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, fmt.Sprintf(`DELETE FROM %[1]s a USING %[1]s b WHERE (a.%[2]s) = (b.%[3]s) AND a.ctid > b.ctid`,
			ident(shadowName(k.table.Name)), strings.Join(cols, ", a."), strings.Join(cols, ", b."))); err != nil {
			return fmt.Errorf("remove duplicates of %s: %w", k.table.Name, err)
		}
		_, err := tx.Exec(ctx, k.add)
		return err
	})
}

// finishShadow builds the shadow tables' deferred keys and indexes, outside the
// exclusive lock; the few records applied after it maintain them as usual.
func (b *builder) finishShadow(ctx context.Context) error {
	conn, err := b.d.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SET maintenance_work_mem = '256MB'`); err != nil {
		return err
	}
	defer func() { _, _ = conn.Exec(context.Background(), `RESET maintenance_work_mem`) }()
	for _, k := range b.keys {
		start := time.Now()
		if err := addKey(ctx, conn, k); err != nil {
			return fmt.Errorf("build key of %s: %w", k.table.Name, err)
		}
		b.log.InfoContext(ctx, "shadow key built", "statement", k.add, "took", time.Since(start).String())
	}
	b.bulk = false
	for _, def := range b.deferred {
		start := time.Now()
		if _, err := conn.Exec(ctx, def); err != nil {
			return fmt.Errorf("build index: %s: %w", def, err)
		}
		b.log.InfoContext(ctx, "shadow index built", "index", def, "took", time.Since(start).String())
	}
	return nil
}

// dropShadow drops the shadow tables unless they were swapped in; it runs after ctx
// may have ended.
func (b *builder) dropShadow() {
	if b.swapped {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b.dropShadowCtx(ctx)
}

func (b *builder) dropShadowCtx(ctx context.Context) {
	for _, t := range b.m.Tables {
		if _, err := b.d.Pool.Exec(ctx, `DROP TABLE IF EXISTS `+ident(shadowName(t.Name))); err != nil {
			// Harmless for the live model; the next rebuild or start drops it.
			b.log.WarnContext(ctx, "could not drop a shadow table", "table", shadowName(t.Name), "err", err)
		}
	}
}

func (b *builder) run(ctx context.Context) (*Result, error) {
	admin, err := kafka.NewClient(b.d.Kafka)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	b.admin = admin
	start, end, err := bounds(ctx, admin, b.m.Topics)
	if err != nil {
		return nil, err
	}
	b.end = end
	b.pos = start
	if !b.o.From.IsZero() {
		if b.pos, err = offsetsAfter(ctx, admin, b.m.Topics, b.o.From); err != nil {
			return nil, err
		}
	}
	var live state
	if b.o.Verify {
		if live, err = loadState(ctx, b.d.Pool, b.m.Name); err != nil {
			return nil, fmt.Errorf("cannot verify %s: %w", b.m.Name, err)
		}
		b.clampToLive(live.offsets, start)
	}
	rd, err := openReader(b.d.Kafka, b.m, b.d.Decoder, b.pos,
		kgo.FetchMaxBytes(rebuildFetchMaxBytes), kgo.FetchMaxPartitionBytes(rebuildFetchMaxPartitionBytes),
		kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		return nil, err
	}
	defer rd.close()
	// Reading and decoding the next chunk overlaps with writing this one.
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	b.chunks = prefetch(pctx, rd, b.o.BatchSize)

	// Catch up with the head (or the live model's offsets) without blocking anyone.
	for b.remaining(b.target(live)) > b.o.CatchUp {
		if err := b.step(ctx, b.d.Pool, live); err != nil {
			return nil, err
		}
		if b.o.Verify { // the live model moves on while the rebuild catches up
			if live, err = loadState(ctx, b.d.Pool, b.m.Name); err != nil {
				return nil, err
			}
			b.clampToLive(live.offsets, start)
		}
		b.tick(PhaseRebuilding, b.target(live))
	}
	if !b.o.Verify { // a verification compares and drops: it needs neither
		start := time.Now()
		if err := b.finishShadow(ctx); err != nil {
			return nil, err
		}
		b.indexTime = time.Since(start)
	}
	return b.finish(ctx)
}

// A rebuild runs inside the service that serves the model (its first start, or
// POST /admin/replay) or beside it, and shares its memory budget: the local stack's
// GOMEMLIMIT of 64 MiB, 192 or 384 MiB containers in deploy/k8s. What it reads is
// bounded by its fetches (compressed bytes; a record batch is decompressed whole) and by
// its batches of records. With 64 MiB fetches and batches of 20,000 records the shop's
// order view kept 640-700 MB of live heap rebuilding a million events, and under the
// 64 MiB limit its collector ran all the time: 37,800 records/s in two runs, against
// 70,000-89,000 in three with these fetches and batches of 2,000, at 87 MiB of RSS
// instead of 709-738 (session 23; TestRebuildHoldsBatchesNotTheHistory).
const (
	rebuildFetchMaxBytes          = 2 << 20
	rebuildFetchMaxPartitionBytes = 256 << 10
)

// polled is a chunk or the error that ended reading.
type polled struct {
	c   *chunk
	err error
}

// prefetch polls rd in its own goroutine and hands over chunks that hold records, one
// ahead of the writer, until ctx ends or a poll fails.
func prefetch(ctx context.Context, rd *reader, max int) <-chan polled {
	out := make(chan polled, 1)
	go func() {
		defer close(out)
		for {
			c, err := rd.poll(ctx, 500*time.Millisecond, max, nil)
			if err == nil && c.records == 0 {
				continue
			}
			select {
			case out <- polled{c, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return out
}

// clampToLive makes every partition the live model has never read count as read up to
// where the live model would start it.
func (b *builder) clampToLive(live, start offsets) {
	for p := range b.pos {
		if _, ok := live[p]; !ok {
			live[p] = start[p]
		}
	}
}

// target is where the rebuild is heading: the head, or the live model's offsets when
// verifying.
func (b *builder) target(live state) offsets {
	if b.o.Verify {
		return live.offsets
	}
	return b.end
}

func (b *builder) remaining(target offsets) int64 {
	var n int64
	for p, t := range target {
		n += max(0, t-b.pos[p])
	}
	return n
}

// step takes the next chunk (waiting up to half a second for one) and applies what is
// below the target in one transaction on q.
func (b *builder) step(ctx context.Context, q txBeginner, live state) error {
	waited := time.Now()
	var c *chunk
	select {
	case p, ok := <-b.chunks:
		if !ok {
			return ctx.Err()
		}
		if p.err != nil {
			return p.err
		}
		c = p.c
	case <-time.After(500 * time.Millisecond):
		c = &chunk{}
	case <-ctx.Done():
		return ctx.Err()
	}
	b.readWait += time.Since(waited)
	defer func(start time.Time) { b.writeTime += time.Since(start) }(time.Now())
	for p, hw := range c.high {
		b.end[p] = hw
	}
	if c.records == 0 && len(b.pending) == 0 {
		return nil
	}
	if len(c.bad) > 0 {
		if err := b.deadLetter(ctx, c.bad); err != nil {
			return err
		}
	}
	evs := c.events
	if b.o.Verify {
		evs, b.pending = splitBelow(append(b.pending, evs...), live.offsets)
	}
	if err := b.write(ctx, q, evs); err != nil {
		return err
	}
	b.records += int64(c.records)
	b.events += int64(len(evs))
	for p, n := range c.next {
		b.pos[p] = n
	}
	return nil
}

// write applies evs to the shadow tables in one transaction on q. Events that can never
// be applied stop the rebuild with their record's position, or with DeadLetter go to the
// dead-letter topic while the others are applied.
func (b *builder) write(ctx context.Context, q txBeginner, evs []Event) error {
	for len(evs) > 0 {
		err := pgx.BeginFunc(ctx, q, func(tx pgx.Tx) error {
			return b.m.apply(ctx, tx, b.m.shadow(b.bulk), evs)
		})
		if err == nil {
			return nil
		}
		if !isPermanent(err) {
			return fmt.Errorf("apply %d events: %w", len(evs), err)
		}
		bad, ierr := isolate(ctx, q, b.m, b.m.shadow(b.bulk), evs)
		if ierr != nil {
			return fmt.Errorf("apply %d events: %w", len(evs), ierr)
		}
		if len(bad) == 0 { // only the batch as a whole fails
			return fmt.Errorf("apply %d events: %w", len(evs), err)
		}
		var dead []badRecord
		evs, dead = without(evs, bad)
		if err := b.deadLetter(ctx, dead); err != nil {
			return err
		}
	}
	return nil
}

// txBeginner is a pool or a transaction (a nested Begin is a savepoint).
type txBeginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

var _ txBeginner = (*pgxpool.Pool)(nil)

// splitBelow separates events below the live offsets from those at or past them.
func splitBelow(evs []Event, live offsets) (below, past []Event) {
	for _, e := range evs {
		if e.Offset < live[position{e.Topic, e.Partition}] {
			below = append(below, e)
		} else {
			past = append(past, e)
		}
	}
	return below, past
}

// deadLetter stops the rebuild at the first bad record, or sends the records to the
// replay dead-letter topic when asked to.
func (b *builder) deadLetter(ctx context.Context, bad []badRecord) error {
	if !b.o.DeadLetter {
		return bad[0].err
	}
	group := DeadLetterGroup(b.d.Service, b.m.Name) + ".replay"
	if err := kafka.EnsureTopics(ctx, b.admin, kafka.DeadLetterTopic(group)); err != nil {
		return err
	}
	recs := make([]*kgo.Record, len(bad))
	for i, r := range bad {
		recs[i] = consumer.DeadLetterRecord(group, r.rec, r.err, 1)
	}
	if err := b.admin.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("dead-letter: %w", err)
	}
	b.dead += int64(len(bad))
	return nil
}

// finish takes the exclusive lock, drains to the target and swaps or compares.
func (b *builder) finish(ctx context.Context) (*Result, error) {
	tx, err := b.d.Pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, swapLock(b.m.Name)); err != nil {
		return nil, fmt.Errorf("swap lock: %w", err)
	}
	// The live runner is now between batches and stays there until this commits.
	var live state
	if b.o.Verify {
		start, _, err := bounds(ctx, b.admin, b.m.Topics)
		if err != nil {
			return nil, err
		}
		if live, err = loadState(ctx, tx, b.m.Name); err != nil {
			return nil, err
		}
		b.clampToLive(live.offsets, start)
	} else {
		_, end, err := bounds(ctx, b.admin, b.m.Topics)
		if err != nil {
			return nil, err
		}
		b.end = end
	}
	target := b.target(live)
	deadline := time.Now().Add(b.o.DrainTimeout)
	for b.remaining(target) > 0 || len(b.pending) > 0 && b.o.Verify && hasBelow(b.pending, target) {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("drain: %d records announced by the broker did not arrive within %s", b.remaining(target), b.o.DrainTimeout)
		}
		if err := b.step(ctx, tx, live); err != nil {
			return nil, err
		}
		b.tick(PhaseSwapping, target)
	}
	res := &Result{Model: b.m.Name, Records: b.records, Events: b.events, DeadLettered: b.dead,
		ReadWait: b.readWait, WriteTime: b.writeTime, IndexTime: b.indexTime}
	if b.o.Verify {
		b.tick(PhaseVerifying, target)
		for _, k := range b.keys { // duplicates would count as differences
			if err := addKey(ctx, tx, k); err != nil {
				return nil, fmt.Errorf("build key of %s: %w", k.table.Name, err)
			}
		}
		rep, err := compare(ctx, tx, b.m)
		if err != nil {
			return nil, err
		}
		res.Report = rep
	} else {
		unmatched, err := swap(ctx, tx, b.m)
		if err != nil {
			return nil, err
		}
		if len(unmatched) > 0 {
			b.log.WarnContext(ctx, "swapped indexes without a live twin keep their generated names", "indexes", unmatched)
		}
		if err := tx.QueryRow(ctx, `INSERT INTO platform_projections (model, epoch, rebuilt_at, events) VALUES ($1, 1, now(), $2)
		                            ON CONFLICT (model) DO UPDATE SET epoch = platform_projections.epoch + 1, rebuilt_at = now(), events = $2
		                            RETURNING epoch`, b.m.Name, b.records).Scan(&res.Epoch); err != nil {
			return nil, fmt.Errorf("bump epoch: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM platform_projection_offsets WHERE model = $1`, b.m.Name); err != nil {
			return nil, err
		}
		if err := saveOffsets(ctx, tx, b.m.Name, b.pos); err != nil {
			return nil, err
		}
		if err := tx.Commit(ctx); err != nil {
			return nil, fmt.Errorf("commit swap: %w", err)
		}
		b.swapped = true
		res.Swapped = true
	}
	res.Duration = time.Since(b.started)
	res.Rate = float64(b.records) / res.Duration.Seconds()
	b.lastTick = time.Time{}
	b.tick(PhaseDone, target)
	return res, nil
}

func hasBelow(evs []Event, live offsets) bool {
	below, _ := splitBelow(evs, live)
	return len(below) > 0
}

// tick reports progress at most once a second, and always for PhaseDone.
func (b *builder) tick(phase string, target offsets) {
	if b.o.Progress == nil || (phase != PhaseDone && time.Since(b.lastTick) < time.Second) {
		return
	}
	b.lastTick = time.Now()
	p := Progress{Model: b.m.Name, Phase: phase, Records: b.records, Elapsed: since(b.started),
		PerPartition: map[string]int64{}, DeadLettered: b.dead}
	for pos, t := range target {
		left := max(0, t-b.pos[pos])
		p.PerPartition[pos.String()] = left
		p.Remaining += left
	}
	if s := p.Elapsed.Seconds(); s > 0 {
		p.Rate = float64(b.records) / s
	}
	if p.Rate > 0 {
		p.ETA = time.Duration(float64(p.Remaining) / p.Rate * float64(time.Second))
	}
	b.o.Progress(p)
}

// Partitions returns the partition names of a progress report in a stable order.
func (p Progress) Partitions() []string {
	names := make([]string, 0, len(p.PerPartition))
	for n := range p.PerPartition {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
