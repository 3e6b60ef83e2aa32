package projection

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/internal/testevent"
	"github.com/orderflow/orderflow/platform/internal/testlog"
	"github.com/orderflow/orderflow/platform/kafka"
	"github.com/orderflow/orderflow/platform/kafka/kafkatest"
	"github.com/orderflow/orderflow/platform/pg/pgtest"
	"github.com/orderflow/orderflow/platform/serde"
)

// fixture is a database with a two-table read model over two fresh topics: per key the
// sum of amounts, the greatest note and the latest event time, deduplicated by event id:
// commutative, as every model must be.
type fixture struct {
	t      *testing.T
	pool   *pgxpool.Pool
	deps   Deps
	model  *Model
	topics []string
	serde  *serde.Serde
	prod   *kgo.Client
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, pool: pgtest.NewPool(t, nil), topics: []string{kafkatest.Topic(t, 3), kafkatest.Topic(t, 2)}}
	f.serde = serde.New(kafkatest.RegistryURL(t), 5*time.Second)
	f.prod = kafkatest.Client(t)
	var w io.Writer = io.Discard
	if testing.Verbose() {
		w = os.Stderr
	}
	f.deps = Deps{Service: kafkatest.Name("svc"), Pool: f.pool, Kafka: kafkatest.Config(t), Decoder: f.serde,
		Log: slog.New(slog.NewJSONHandler(w, nil))}
	_, err := f.pool.Exec(context.Background(), `
		CREATE TABLE totals (key text PRIMARY KEY, total bigint NOT NULL CHECK (total < 1000000), note text, last_at timestamptz NOT NULL);
		CREATE INDEX totals_by_total ON totals (total, key);
		CREATE TABLE totals_seen (event_id uuid PRIMARY KEY);
		CREATE TABLE totals_log (event_id uuid PRIMARY KEY, key text NOT NULL, amount bigint NOT NULL, at timestamptz NOT NULL);
		CREATE INDEX totals_log_key ON totals_log (key, at);
		ALTER TABLE totals_log SET (autovacuum_analyze_scale_factor = 1.0, fillfactor = 90);
		ALTER TABLE totals_log ALTER COLUMN amount SET STATISTICS 0, ALTER COLUMN at SET STATISTICS 0;
		ALTER TABLE totals ALTER COLUMN note SET STATISTICS 10`)
	if err != nil {
		t.Fatal(err)
	}
	f.model = &Model{
		Name: "totals",
		Tables: []Table{{Name: "totals", Key: "key"}, {Name: "totals_seen", Key: "event_id"},
			{Name: "totals_log", Key: "event_id", AppendOnly: true}},
		Topics: f.topics,
		Apply:  applyTotals,
	}
	On[testevent.ThingV2](f.model, testevent.V2)
	return f
}

func applyTotals(ctx context.Context, tx pgx.Tx, t Tables, batch []Event) error {
	log := make([][]any, len(batch))
	for i, e := range batch {
		th := e.Payload.(testevent.ThingV2)
		log[i] = []any{UUID(e.ID), th.ID, th.Amount, e.Time}
	}
	if err := Append(ctx, tx, t, "totals_log", []string{"event_id", "key", "amount", "at"}, log); err != nil {
		return err
	}
	fresh, err := FirstSeen(ctx, tx, t.Of("totals_seen"), batch)
	if err != nil {
		return err
	}
	var keys, notes []string
	var amounts []int64
	var ats []time.Time
	for _, e := range fresh {
		th := e.Payload.(testevent.ThingV2)
		note := ""
		if th.Note != nil {
			note = *th.Note
		}
		keys, amounts, notes, ats = append(keys, th.ID), append(amounts, th.Amount), append(notes, note), append(ats, e.Time)
	}
	_, err = tx.Exec(ctx, fmt.Sprintf(`
		INSERT INTO %[1]s AS o (key, total, note, last_at)
		SELECT k, sum(a), max(NULLIF(n, '')), max(at)
		  FROM unnest($1::text[], $2::bigint[], $3::text[], $4::timestamptz[]) AS u (k, a, n, at) GROUP BY k
		ON CONFLICT (key) DO UPDATE SET total = o.total + excluded.total,
		    note = GREATEST(o.note, excluded.note),
		    last_at = GREATEST(o.last_at, excluded.last_at)`, t.Of("totals")), keys, amounts, notes, ats)
	return err
}

// checkSettings fails the test unless the model's tables have the storage parameters
// and statistics targets the fixture gave them, which a rebuild's swap must keep.
func (f *fixture) checkSettings() {
	f.t.Helper()
	ctx := context.Background()
	var opts []string
	if err := f.pool.QueryRow(ctx, `SELECT coalesce(reloptions, '{}') FROM pg_class WHERE oid = 'totals_log'::regclass`).Scan(&opts); err != nil {
		f.t.Fatal(err)
	}
	if want := "[autovacuum_analyze_scale_factor=1.0 fillfactor=90]"; fmt.Sprint(opts) != want {
		f.t.Errorf("totals_log storage parameters %v, want %s", opts, want)
	}
	rows, err := f.pool.Query(ctx, `SELECT attrelid::regclass::text || '.' || attname || '=' || attstattarget FROM pg_attribute
	                                 WHERE attrelid IN ('totals'::regclass, 'totals_log'::regclass) AND attnum > 0 AND attstattarget >= 0
	                                 ORDER BY 1`)
	if err != nil {
		f.t.Fatal(err)
	}
	targets, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		f.t.Fatal(err)
	}
	if want := "[totals.note=10 totals_log.amount=0 totals_log.at=0]"; fmt.Sprint(targets) != want {
		f.t.Errorf("statistics targets %v, want %s", targets, want)
	}
}

// send produces one event per amount for key on topic, with schema typ.
func (f *fixture) send(topic, key string, typ events.Type, payload any) {
	f.t.Helper()
	ev := events.New(context.Background(), "test", topic, key, typ, payload, events.Cause{})
	val, err := f.serde.Encode(topic, typ.Schema, payload)
	if err != nil {
		f.t.Fatal(err)
	}
	rec := &kgo.Record{Topic: topic, Key: []byte(key), Value: val, Headers: ev.Metadata.Headers()}
	if err := f.prod.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
		f.t.Fatal(err)
	}
}

// history sends n events over both topics and returns the expected total per key.
func (f *fixture) history(n int) map[string]int64 {
	f.t.Helper()
	want := map[string]int64{}
	recs := make([]*kgo.Record, 0, n)
	for i := range n {
		key := fmt.Sprintf("k%02d", i%17)
		topic := f.topics[i%2]
		th := testevent.ThingV2{ID: key, Seq: int64(i), Amount: int64(i%5 + 1)}
		if i%7 == 0 {
			note := fmt.Sprintf("note %d", i)
			th.Note = &note
		}
		ev := events.New(context.Background(), "test", topic, key, testevent.V2, th, events.Cause{})
		val, err := f.serde.Encode(topic, testevent.V2.Schema, th)
		if err != nil {
			f.t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(key), Value: val, Headers: ev.Metadata.Headers()})
		want[key] += th.Amount
	}
	if err := f.prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		f.t.Fatal(err)
	}
	return want
}

// run runs the live runner until the test ends.
func (f *fixture) run() {
	f.t.Helper()
	f.runWith(RunnerOptions{Standby: 200 * time.Millisecond})
}

func (f *fixture) runWith(opts RunnerOptions) {
	f.t.Helper()
	r, err := NewRunner(f.deps, f.model, opts)
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	f.t.Cleanup(func() { cancel(); <-done })
	f.waitBuilt()
}

// waitBuilt waits until the runner's first build is over: the model has its state row
// and nobody holds the rebuild lock.
func (f *fixture) waitBuilt() {
	f.t.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var built, free bool
		err := f.pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM platform_projections WHERE model = $1)`, f.model.Name).Scan(&built)
		if err != nil {
			f.t.Fatal(err)
		}
		if !built {
			continue
		}
		// Look at pg_locks rather than take the lock: taking it, even for a moment, would
		// make the runner believe a rebuild is running.
		key := uint64(rebuildLock(f.model.Name))
		err = f.pool.QueryRow(ctx, `SELECT NOT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory'
		                              AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1)`,
			int64(key>>32), int64(key&0xffffffff)).Scan(&free)
		if err != nil {
			f.t.Fatal(err)
		}
		if free {
			return
		}
	}
	f.t.Fatal("the runner did not build the model within 30 s")
}

func (f *fixture) totals() map[string]int64 {
	f.t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT key, total FROM totals`)
	if err != nil {
		f.t.Fatal(err)
	}
	got := map[string]int64{}
	for rows.Next() {
		var k string
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			f.t.Fatal(err)
		}
		got[k] = n
	}
	return got
}

func (f *fixture) waitTotals(want map[string]int64) {
	f.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := f.totals()
		if fmt.Sprint(got) == fmt.Sprint(want) {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("totals: got %v, want %v", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (f *fixture) tables() []string {
	f.t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT tablename FROM pg_tables WHERE tablename LIKE 'totals%' ORDER BY 1`)
	if err != nil {
		f.t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		f.t.Fatal(err)
	}
	return names
}

func TestLiveRunnerBuildsFromHistoryThenFollows(t *testing.T) {
	f := newFixture(t)
	want := f.history(200) // history before the model existed
	f.run()
	f.waitTotals(want)
	more := f.history(100)
	for k, v := range more {
		want[k] += v
	}
	f.waitTotals(want)
	var n int
	if err := f.pool.QueryRow(context.Background(), `SELECT sum(next_offset) FROM platform_projection_offsets WHERE model = 'totals'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 300 { // every partition starts at 0: the offsets sum to the records read
		t.Fatalf("stored offsets sum to %d, want 300", n)
	}
	f.checkSettings() // the first build swapped in tables of its own
}

// A lingering model (the broker holds its fetches to gather records) still applies
// everything, from history and then live, record by record as they trickle in.
func TestLingeringRunnerFollows(t *testing.T) {
	f := newFixture(t)
	want := f.history(200)
	f.runWith(RunnerOptions{Standby: 200 * time.Millisecond, Linger: 300 * time.Millisecond})
	f.waitTotals(want)
	for range 10 { // one record at a time, well under the mebibyte the fetch waits for
		for k, v := range f.history(1) {
			want[k] += v
		}
		time.Sleep(30 * time.Millisecond)
	}
	f.waitTotals(want)
}

func TestDuplicateEventsAreAppliedOnce(t *testing.T) {
	f := newFixture(t)
	f.run()
	want := f.history(50)
	f.waitTotals(want)
	// The relay may publish an event twice; both copies must count once.
	th := testevent.ThingV2{ID: "dup", Amount: 7}
	ev := events.New(context.Background(), "test", f.topics[0], "dup", testevent.V2, th, events.Cause{})
	val, err := f.serde.Encode(f.topics[0], testevent.V2.Schema, th)
	if err != nil {
		t.Fatal(err)
	}
	rec := func() *kgo.Record {
		return &kgo.Record{Topic: f.topics[0], Key: []byte("dup"), Value: val, Headers: ev.Metadata.Headers()}
	}
	if err := f.prod.ProduceSync(context.Background(), rec(), rec()).FirstErr(); err != nil {
		t.Fatal(err)
	}
	want["dup"] = 7
	f.waitTotals(want)
	// A rebuild writes the log with COPY, both copies included, and removes one before
	// it builds the key.
	res, err := Rebuild(context.Background(), f.deps, f.model, Options{})
	if err != nil || !res.Swapped {
		t.Fatalf("rebuild: %+v %v", res, err)
	}
	f.waitTotals(want)
	var logged int
	if err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM totals_log WHERE key = 'dup'`).Scan(&logged); err != nil || logged != 1 {
		t.Fatalf("log rows of the duplicated event: %d (%v), want 1", logged, err)
	}
	res, err = Rebuild(context.Background(), f.deps, f.model, Options{Verify: true})
	if err != nil || !res.Report.Identical {
		t.Fatalf("verify after a rebuild with duplicates: %+v %v", res, err)
	}
}

func TestRebuildVerifySwap(t *testing.T) {
	f := newFixture(t)
	var logs testlog.Buffer
	f.deps.Log = slog.New(slog.NewJSONHandler(&logs, nil))
	f.run()
	want := f.history(300)
	f.waitTotals(want)
	ctx := context.Background()

	res, err := Rebuild(ctx, f.deps, f.model, Options{Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Report.Identical || res.Swapped {
		t.Fatalf("verify of an intact model: %+v", res.Report)
	}

	// Corrupt the live model: a wrong total, a lost row, an invented row.
	if _, err := f.pool.Exec(ctx, `UPDATE totals SET total = total + 1 WHERE key = 'k01';
	                              DELETE FROM totals WHERE key = 'k02';
	                              INSERT INTO totals VALUES ('bogus', 1, NULL, now())`); err != nil {
		t.Fatal(err)
	}
	res, err = Rebuild(ctx, f.deps, f.model, Options{Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Report.Identical {
		t.Fatal("verify did not notice the corruption")
	}
	got := map[string]string{}
	for _, d := range res.Report.Tables[0].Differences {
		got[d.Key] = d.Kind
	}
	wantDiff := map[string]string{"(k01)": "changed", "(k02)": "only_rebuilt", "(bogus)": "only_live"}
	if fmt.Sprint(got) != fmt.Sprint(wantDiff) {
		t.Fatalf("differences: got %v, want %v", got, wantDiff)
	}
	if tables := f.tables(); fmt.Sprint(tables) != "[totals totals_log totals_seen]" {
		t.Fatalf("verify left tables behind: %v", tables)
	}

	// Rebuild while events keep arriving; the live runner carries on after the swap.
	stop := make(chan struct{})
	var sent sync.WaitGroup
	var mu sync.Mutex
	sent.Add(1)
	go func() {
		defer sent.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			more := f.history(10)
			mu.Lock()
			for k, v := range more {
				want[k] += v
			}
			mu.Unlock()
		}
	}()
	var progress []Progress
	res, err = Rebuild(ctx, f.deps, f.model, Options{BatchSize: 50, CatchUp: 20, Progress: func(p Progress) { progress = append(progress, p) }})
	close(stop)
	sent.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !res.Swapped || res.Epoch != 2 {
		t.Fatalf("rebuild result: %+v", res)
	}
	if len(progress) == 0 || progress[len(progress)-1].Phase != PhaseDone {
		t.Fatalf("progress: %+v", progress)
	}
	f.waitTotals(want)
	// A swap is what a rebuild is for: the runner follows the new tables at once, and
	// says so without an error (it used to log one and back off before resuming).
	if !strings.Contains(logs.String(), `"msg":"read model swapped by a rebuild: following the new tables"`) {
		t.Errorf("the runner did not say it follows the swapped tables; its log:\n%s", logs.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if strings.Contains(line, `"level":"ERROR"`) {
			t.Errorf("the rebuild and swap logged an error: %s", line)
		}
	}
	res, err = Rebuild(ctx, f.deps, f.model, Options{Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Report.Identical {
		t.Fatalf("after the rebuild: %+v", res.Report)
	}
	// Indexes keep the names the migrations gave them.
	rows, err := f.pool.Query(ctx, `SELECT indexname FROM pg_indexes WHERE tablename = 'totals' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	idx, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	if fmt.Sprint(idx) != "[totals_by_total totals_pkey]" {
		t.Fatalf("indexes after the swap: %v", idx)
	}
	rows, err = f.pool.Query(ctx, `SELECT conname FROM pg_constraint WHERE conrelid = 'totals_log'::regclass ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	cons, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	rows, err = f.pool.Query(ctx, `SELECT indexname FROM pg_indexes WHERE tablename = 'totals_log' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	idx, _ = pgx.CollectRows(rows, pgx.RowTo[string])
	if fmt.Sprint(cons) != "[totals_log_pkey]" || fmt.Sprint(idx) != "[totals_log_key totals_log_pkey]" {
		t.Fatalf("append-only table after the swap: constraints %v, indexes %v", cons, idx)
	}
	var logged string
	if err := f.pool.QueryRow(ctx, `SELECT relpersistence::text FROM pg_class WHERE relname = 'totals'`).Scan(&logged); err != nil || logged != "p" {
		t.Fatalf("swapped table persistence %q (%v), want p (logged)", logged, err)
	}
	f.checkSettings()
}

func TestSecondRebuildIsRefused(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	conn, err := f.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, rebuildLock("totals")); err != nil {
		t.Fatal(err)
	}
	_, err = Rebuild(ctx, f.deps, f.model, Options{})
	var running *RunningError
	if !errors.As(err, &running) || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("got %v, want a RunningError", err)
	}
	if tables := f.tables(); fmt.Sprint(tables) != "[totals totals_log totals_seen]" {
		t.Fatalf("a refused rebuild touched the tables: %v", tables)
	}
}

func TestUndecodableRecordStopsRebuildOrIsDeadLettered(t *testing.T) {
	f := newFixture(t)
	f.run()
	want := f.history(20)
	f.waitTotals(want)
	ctx := context.Background()
	bad := events.New(ctx, "test", f.topics[1], "k00", testevent.V2, nil, events.Cause{})
	rec := &kgo.Record{Topic: f.topics[1], Key: []byte("k00"), Value: []byte("not avro"), Headers: bad.Metadata.Headers()}
	res := f.prod.ProduceSync(ctx, rec)
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	badRec, _ := res.First()
	more := f.history(10)
	for k, v := range more {
		want[k] += v
	}
	f.waitTotals(want) // the live runner dead-letters it and goes on

	_, err := Rebuild(ctx, f.deps, f.model, Options{})
	var re *RecordError
	if !errors.As(err, &re) || re.Topic != f.topics[1] || re.Partition != badRec.Partition || re.Offset != badRec.Offset {
		t.Fatalf("got %v, want the record error of %s/%d@%d", err, f.topics[1], badRec.Partition, badRec.Offset)
	}
	if tables := f.tables(); fmt.Sprint(tables) != "[totals totals_log totals_seen]" {
		t.Fatalf("a failed rebuild left tables behind: %v", tables)
	}
	f.waitTotals(want) // live model untouched

	r, err := Rebuild(ctx, f.deps, f.model, Options{DeadLetter: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.DeadLettered != 1 || !r.Swapped {
		t.Fatalf("rebuild with dead letters: %+v", r)
	}
	recs := kafkatest.Consume(t, DeadLetterGroup(f.deps.Service, "totals")+".replay.dlq", 1, 10*time.Second)
	if len(recs) != 1 || !bytes.Equal(recs[0].Value, []byte("not avro")) {
		t.Fatalf("replay dead letters: %d", len(recs))
	}
	f.waitTotals(want)
}

// An event the model's SQL refuses (here: a total its CHECK constraint forbids) is
// isolated from its batch and dead-lettered live; a rebuild stops at it or dead-letters
// it when asked.
func TestEventTheModelRefusesIsIsolated(t *testing.T) {
	f := newFixture(t)
	f.run()
	want := f.history(40)
	f.waitTotals(want)
	ctx := context.Background()
	th := testevent.ThingV2{ID: "poison", Amount: 5_000_000}
	ev := events.New(ctx, "test", f.topics[0], "poison", testevent.V2, th, events.Cause{})
	val, err := f.serde.Encode(f.topics[0], testevent.V2.Schema, th)
	if err != nil {
		t.Fatal(err)
	}
	res := f.prod.ProduceSync(ctx, &kgo.Record{Topic: f.topics[0], Key: []byte("poison"), Value: val, Headers: ev.Metadata.Headers()})
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	poison, _ := res.First()
	more := f.history(40) // in the same batches as the poison, most likely
	for k, v := range more {
		want[k] += v
	}
	f.waitTotals(want)
	dead := kafkatest.Consume(t, DeadLetterGroup(f.deps.Service, "totals")+".dlq", 1, 10*time.Second)
	if len(dead) != 1 || !bytes.Equal(dead[0].Value, val) {
		t.Fatalf("live dead letters: %d", len(dead))
	}

	_, err = Rebuild(ctx, f.deps, f.model, Options{})
	var re *RecordError
	if !errors.As(err, &re) || re.Topic != poison.Topic || re.Partition != poison.Partition || re.Offset != poison.Offset ||
		!strings.Contains(err.Error(), "check constraint") {
		t.Fatalf("got %v, want the record error of %s/%d@%d", err, poison.Topic, poison.Partition, poison.Offset)
	}
	r, err := Rebuild(ctx, f.deps, f.model, Options{DeadLetter: true})
	if err != nil || r.DeadLettered != 1 || !r.Swapped {
		t.Fatalf("rebuild with dead letters: %+v %v", r, err)
	}
	f.waitTotals(want)
}

func TestInterruptedRebuildLeavesLiveModelAlone(t *testing.T) {
	f := newFixture(t)
	f.run()
	want := f.history(2000)
	f.waitTotals(want)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := Rebuild(ctx, f.deps, f.model, Options{BatchSize: 10, Progress: func(p Progress) {
		if p.Records > 0 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if tables := f.tables(); fmt.Sprint(tables) != "[totals totals_log totals_seen]" {
		t.Fatalf("an interrupted rebuild left tables behind: %v", tables)
	}
	f.waitTotals(want)
}

// A rebuild whose process died leaves its shadow tables; the next start of the model
// drops them.
func TestLeftoverShadowTablesAreDroppedAtStart(t *testing.T) {
	f := newFixture(t)
	if _, err := Rebuild(context.Background(), f.deps, f.model, Options{}); err != nil { // built before
		t.Fatal(err)
	}
	if _, err := f.pool.Exec(context.Background(), `CREATE TABLE totals__shadow (LIKE totals INCLUDING ALL)`); err != nil {
		t.Fatal(err)
	}
	f.run() // returns at once: the model is built; the runner drops the leftover as it takes the lead
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		tables := f.tables()
		if fmt.Sprint(tables) == "[totals totals_log totals_seen]" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tables 10 s after start: %v", tables)
		}
	}
}

func TestOlderSchemaVersionIsReadWithTheCurrentOne(t *testing.T) {
	f := newFixture(t)
	// Written before the note field existed.
	f.send(f.topics[0], "old", testevent.V1, testevent.Thing{ID: "old", Seq: 1, Amount: 4})
	note := "new"
	f.send(f.topics[0], "old", testevent.V2, testevent.ThingV2{ID: "old", Seq: 2, Amount: 1, Note: &note})
	f.run()
	f.waitTotals(map[string]int64{"old": 5})
}

func TestFindNamesTheValidModels(t *testing.T) {
	models := []*Model{{Name: "b"}, {Name: "a"}}
	_, err := Find(models, "c")
	if err == nil || err.Error() != `unknown read model "c"; this service has: [a b]` {
		t.Fatalf("got %v", err)
	}
	if m, err := Find(models, "b"); err != nil || m != models[0] {
		t.Fatal(m, err)
	}
}

func TestModelValidate(t *testing.T) {
	err := (&Model{Name: "Bad Name"}).Validate()
	for _, want := range []string{"lowercase", "no tables", "no topics", "no event types", "no Apply"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate: %v does not mention %q", err, want)
		}
	}
}

func TestBar(t *testing.T) {
	p := Progress{Model: "order-view", Phase: PhaseRebuilding, Records: 250, Remaining: 750, Rate: 100, ETA: 7500 * time.Millisecond}
	got := Bar(p, 8)
	if !strings.Contains(got, "[##......]  25.0%") || !strings.Contains(got, "ETA 8s") || strings.HasSuffix(got, "\n") {
		t.Fatalf("bar: %q", got)
	}
	p.Phase, p.Remaining = PhaseDone, 0
	if got := Bar(p, 8); !strings.Contains(got, "[########] 100.0%") || !strings.HasSuffix(got, "\n") {
		t.Fatalf("bar: %q", got)
	}
	var buf bytes.Buffer
	Printer(&buf)(p)
	if !strings.HasPrefix(buf.String(), `{"model":"order-view","phase":"done"`) {
		t.Fatalf("json line: %s", buf.String())
	}
}

// A rebuild runs inside the service that serves the model and shares its memory limit
// (64 MiB in the local stack), so what it holds at once must not grow with the history:
// a few batches of records and a fetch, whatever the topics hold. This history is 80 MiB
// of payloads that do not compress; what the rebuild adds to the live heap, sampled
// after forced collections while it runs, must stay under half of that. (With
// 64 MiB fetches and batches of 20,000 records it added 420 MiB.)
func TestRebuildHoldsBatchesNotTheHistory(t *testing.T) {
	f := newFixture(t)
	const count, noteSize = 40_000, 2 << 10
	noise := make([]byte, count*noteSize/2)
	if _, err := rand.Read(noise); err != nil {
		t.Fatal(err)
	}
	recs := make([]*kgo.Record, 0, 1000)
	flush := func() {
		if err := f.prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		recs = recs[:0]
	}
	for i := range count {
		note := hex.EncodeToString(noise[i*noteSize/2 : (i+1)*noteSize/2]) // 2 KiB of text, random
		key, topic := fmt.Sprintf("k%02d", i%17), f.topics[i%2]
		th := testevent.ThingV2{ID: key, Seq: int64(i), Amount: 1, Note: &note}
		ev := events.New(context.Background(), "test", topic, key, testevent.V2, th, events.Cause{})
		val, err := f.serde.Encode(topic, testevent.V2.Schema, th)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(key), Value: val, Headers: ev.Metadata.Headers()})
		if len(recs) == cap(recs) {
			flush()
		}
	}
	flush()
	noise, recs = nil, nil
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc

	done := make(chan struct{})
	peak := make(chan uint64)
	go func() {
		var most uint64
		var ms runtime.MemStats
		for {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			most = max(most, ms.HeapAlloc)
			select {
			case <-done:
				peak <- most
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	res, err := Rebuild(context.Background(), f.deps, f.model, Options{})
	close(done)
	most := <-peak
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != count || !res.Swapped {
		t.Fatalf("rebuild: %+v, want %d records swapped in", res, count)
	}
	held := float64(most-min(most, before)) / (1 << 20)
	t.Logf("the rebuild held at most %.1f MiB of live heap while it read %d MiB of history", held, count*noteSize>>20)
	if limit := float64(count*noteSize>>20) / 2; held > limit {
		t.Fatalf("the rebuild held %.1f MiB of live heap, more than half the %d MiB of history it read",
			held, count*noteSize>>20)
	}
}

// On a suite's first start a model can start before the service that owns one of its
// topics: the runner says which topic it waits for, as a warning, not an error, and builds
// the model once the topic is there.
func TestRunnerWaitsForATopicItsOwnerHasNotCreated(t *testing.T) {
	f := newFixture(t)
	late := kafkatest.Name("t")
	f.model.Topics = []string{f.topics[0], late}
	var logs testlog.Buffer
	f.deps.Log = slog.New(slog.NewJSONHandler(&logs, nil))
	t.Cleanup(func() { // the test creates the late topic below
		_, _ = kadm.NewClient(kafkatest.Client(t)).DeleteTopics(context.Background(), late)
	})
	r, err := NewRunner(f.deps, f.model, RunnerOptions{Standby: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(logs.String(), late); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the runner did not say it waits for %s within 30 s; its log:\n%s", late, logs.String())
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if strings.Contains(line, late) && !strings.Contains(line, `"level":"WARN"`) {
			t.Errorf("the wait for a missing topic logged above a warning: %s", line)
		}
	}

	if err := kafka.EnsureTopics(ctx, f.prod, kafka.EventTopic(late, 2)); err != nil {
		t.Fatal(err)
	}
	f.topics[1] = late
	want := f.history(50)
	f.waitBuilt()
	f.waitTotals(want)
}
