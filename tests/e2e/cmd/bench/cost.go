package main

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The cost ledger: what one order costs the stack, from PostgreSQL's cumulative statistics
// and the processes' CPU counters. Latency percentiles of a single run vary by half from
// run to run on a saturated machine (ADR 0007); transactions and rows per order vary far
// less. CPU per order tells something only at a rate that leaves CPU unused: on a
// saturated suite it is the cores divided by the rate, whatever a change did.

// services are the suite's five services.
var services = []string{"shop", "inventory", "billing", "logistics", "crm"}

// serviceDBs are the databases whose statistics the ledger reads: each service owns the
// database named like it.
var serviceDBs = services

// statsFlush is how long PostgreSQL may hold a backend's counters before publishing
// them: a busy backend flushes at most once a second, an idle one within ten seconds.
const statsFlush = 11 * time.Second

// Cost is what the step's orders cost, per accepted order.
type Cost struct {
	// Window is how long the ledger counted: the step, its drain and statsFlush.
	WindowSeconds float64 `json:"window_seconds"`
	// PostgresNotCounted says why the PostgreSQL part of the ledger (transactions, rows,
	// WAL, checkpoints, autovacuum) is absent: its statistics could not be read at the
	// step's start or end, or the cluster restarted in the window. The CPU and Kafka parts
	// are still there; the latency figures never depend on it.
	PostgresNotCounted string `json:"postgres_not_counted,omitempty"`
	// Transactions per order, per service database (commits and rollbacks).
	Transactions map[string]float64 `json:"transactions,omitempty"`
	// RowsWritten per order, per service database (rows inserted, updated or deleted).
	RowsWritten map[string]float64 `json:"rows_written,omitempty"`
	// SeqRowsRead per order, per service database: rows that sequential scans of its tables
	// read. Near zero when every statement finds its rows through an index; a plan cached
	// while a table was nearly empty shows here as thousands of rows per order.
	SeqRowsRead map[string]float64 `json:"seq_rows_read,omitempty"`
	// WALKiB is the write-ahead log the cluster wrote per order, and WALFullPageKiB at
	// most how much of it was images of whole pages (see fullPage): the first change to a
	// page after a checkpoint logs the page (full_page_writes), so this part grows with
	// how often checkpoints come.
	WALKiB         float64 `json:"wal_kib,omitempty"`
	WALFullPageKiB float64 `json:"wal_full_page_kib,omitempty"`
	// Checkpoints is how many checkpoints began in the window, by what asked for them:
	// "timed" (checkpoint_timeout) or "requested" (mostly max_wal_size reached).
	Checkpoints map[string]int64 `json:"checkpoints,omitempty"`
	// Autovacuum is how many times autovacuum analyzed ("analyze") and vacuumed
	// ("vacuum") a table of the service databases in the window, not per order: a young
	// stack's tables grow by a tenth within a naptime and are analyzed every naptime, and
	// their workers' CPU is in PostgreSQL's (ADR 0017).
	Autovacuum map[string]int64 `json:"autovacuum,omitempty"`
	// CPUMillis is the CPU time per order, per process, over the window.
	CPUMillis map[string]float64 `json:"cpu_ms"`
	// KafkaRequests per order that the five services wrote to the broker, by kind (Fetch,
	// Produce, and other for the rest), from their kafka_client_requests_total counters;
	// absent when a service's /metrics could not be read.
	KafkaRequests map[string]float64 `json:"kafka_requests,omitempty"`
	// KafkaFetches per order, per service: which readers the fetches come from.
	KafkaFetches map[string]float64 `json:"kafka_fetches,omitempty"`
}

// reqSnap is the services' Kafka request counters at one moment: by request kind over
// all services, and fetches per service.
type reqSnap struct {
	byKind  map[string]int64
	fetches map[string]int64
}

// kafkaKinds are the request kinds the ledger names; the others are summed as "other".
var kafkaKinds = []string{"Fetch", "Produce", "other"}

// dbSnap is the statistics of the service databases at one moment, or why they could
// not be read (err).
type dbSnap struct {
	err error
	// started is when the cluster's postmaster started: counters are compared only
	// between snapshots of one run of the cluster (a crash or an immediate shutdown
	// discards them, and a fast one keeps only what the backends had published).
	started              time.Time
	xacts, rows, seqRead map[string]int64
	wal, fpi             int64 // WAL bytes and full-page images written
	checkpoints          map[string]int64
	analyses, vacuums    int64 // autovacuum's, over the service databases
}

// fullPage is the most WAL one full-page image takes: a block of PostgreSQL's default
// size. An image leaves out the free space in the middle of its page (and
// wal_compression would shrink it), so images times fullPage is an upper bound of their
// bytes; pg_stat_wal counts images, not their bytes.
const fullPage = 8192

// dbStats reads PostgreSQL's statistics through the stack's admin role: the cluster's
// from its own database, each table's from the service's database (pg_stat_user_tables
// shows only the database a session is in). A connection that PostgreSQL closed (a
// restart, an outage) is opened again by the next snapshot, so a benchmark that runs
// through an outage loses the ledger of the steps it touched, not the run.
type dbStats struct {
	cfg   *pgx.ConnConfig
	conns map[string]*pgx.Conn // by database; "" is the admin URL's own
	// checkpointsSQL reads the checkpoint counters: from pg_stat_checkpointer since
	// PostgreSQL 17, from pg_stat_bgwriter before.
	checkpointsSQL string
}

// statsApplication names the benchmark's sessions in pg_stat_activity.
const statsApplication = "orderflow-bench"

func openDBStats(ctx context.Context, url string) (*dbStats, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("ORDERFLOW_PG_ADMIN_URL: %w", err)
	}
	cfg.RuntimeParams["application_name"] = statsApplication
	d := &dbStats{cfg: cfg, conns: map[string]*pgx.Conn{}}
	c, err := d.conn(ctx, "")
	if err != nil {
		return nil, err
	}
	var version int
	if err := c.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
		d.close()
		return nil, fmt.Errorf("read PostgreSQL's version: %w", err)
	}
	d.checkpointsSQL = `SELECT checkpoints_timed, checkpoints_req FROM pg_stat_bgwriter`
	if version >= 170000 {
		d.checkpointsSQL = `SELECT num_timed, num_requested FROM pg_stat_checkpointer`
	}
	for _, name := range serviceDBs {
		if _, err := d.conn(ctx, name); err != nil {
			d.close()
			return nil, err
		}
	}
	return d, nil
}

// conn returns the open connection to database name ("" for the admin URL's own),
// connecting again when there is none or PostgreSQL closed it.
func (d *dbStats) conn(ctx context.Context, name string) (*pgx.Conn, error) {
	if c := d.conns[name]; c != nil && !c.IsClosed() {
		return c, nil
	}
	cfg := d.cfg.Copy()
	if name != "" {
		cfg.Database = name
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		if name == "" {
			return nil, fmt.Errorf("ORDERFLOW_PG_ADMIN_URL: %w", err)
		}
		return nil, fmt.Errorf("ORDERFLOW_PG_ADMIN_URL, database %s: %w", name, err)
	}
	d.conns[name] = c
	return c, nil
}

func (d *dbStats) close() {
	// A PostgreSQL that stopped answering cannot hold the benchmark up with its goodbyes.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, c := range d.conns {
		_ = c.Close(ctx)
	}
	clear(d.conns)
}

// snapshotTimeout bounds a snapshot: a PostgreSQL that accepts connections but does not
// answer (stopped, or out of connections) costs the step its ledger, not the run.
const snapshotTimeout = 10 * time.Second

// snapshot reads the statistics, or returns a dbSnap whose err says why it could not.
func (d *dbStats) snapshot(ctx context.Context) dbSnap {
	ctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
	defer cancel()
	s, err := d.read(ctx)
	if err != nil && ctx.Err() == nil {
		// A connection PostgreSQL closed (a restart, an outage) says so only when it is
		// used: start again from new ones, once.
		d.close()
		s, err = d.read(ctx)
	}
	if err != nil {
		return dbSnap{err: err}
	}
	return s
}

func (d *dbStats) read(ctx context.Context) (dbSnap, error) {
	s := dbSnap{xacts: map[string]int64{}, rows: map[string]int64{}, seqRead: map[string]int64{}, checkpoints: map[string]int64{}}
	for _, name := range serviceDBs {
		c, err := d.conn(ctx, name)
		if err != nil {
			return s, err
		}
		var n, analyses, vacuums int64
		if err := c.QueryRow(ctx, `SELECT coalesce(sum(seq_tup_read), 0)::bigint, coalesce(sum(autoanalyze_count), 0)::bigint,
		                                  coalesce(sum(autovacuum_count), 0)::bigint FROM pg_stat_user_tables`).Scan(&n, &analyses, &vacuums); err != nil {
			return s, fmt.Errorf("read pg_stat_user_tables of %s: %w", name, err)
		}
		s.seqRead[name] = n
		s.analyses += analyses
		s.vacuums += vacuums
	}
	c, err := d.conn(ctx, "")
	if err != nil {
		return s, err
	}
	if err := c.QueryRow(ctx, `SELECT pg_postmaster_start_time()`).Scan(&s.started); err != nil {
		return s, fmt.Errorf("read when PostgreSQL started: %w", err)
	}
	rows, err := c.Query(ctx, `SELECT datname, xact_commit + xact_rollback, tup_inserted + tup_updated + tup_deleted
	                             FROM pg_stat_database WHERE datname = ANY($1)`, serviceDBs)
	if err != nil {
		return s, fmt.Errorf("read pg_stat_database: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var x, w int64
		if err := rows.Scan(&name, &x, &w); err != nil {
			return s, fmt.Errorf("read pg_stat_database: %w", err)
		}
		s.xacts[name], s.rows[name] = x, w
	}
	if err := rows.Err(); err != nil {
		return s, fmt.Errorf("read pg_stat_database: %w", err)
	}
	if err := c.QueryRow(ctx, `SELECT wal_bytes::bigint, wal_fpi FROM pg_stat_wal`).Scan(&s.wal, &s.fpi); err != nil {
		return s, fmt.Errorf("read pg_stat_wal: %w", err)
	}
	var timed, requested int64
	if err := c.QueryRow(ctx, d.checkpointsSQL).Scan(&timed, &requested); err != nil {
		return s, fmt.Errorf("read the checkpoint counters: %w", err)
	}
	s.checkpoints["timed"], s.checkpoints["requested"] = timed, requested
	return s, nil
}

// notCounted says why the PostgreSQL part of a ledger from db0 to db1 cannot be
// counted, or "" when it can.
func notCounted(db0, db1 dbSnap) string {
	switch {
	case db0.err != nil:
		return "statistics not read at the step's start: " + db0.err.Error()
	case db1.err != nil:
		return "statistics not read at the ledger's end: " + db1.err.Error()
	case !db0.started.Equal(db1.started):
		return fmt.Sprintf("PostgreSQL restarted in the window (at %s): its counters do not run across a restart",
			db1.started.UTC().Format("15:04:05"))
	}
	return ""
}

// cost divides what happened between the snapshots by orders. k0 and k1 are the
// services' Kafka requests; nil when they could not be read.
func cost(orders int, db0, db1 dbSnap, p0, p1 procSnap, k0, k1 *reqSnap) *Cost {
	if orders == 0 {
		return nil
	}
	n := float64(orders)
	c := &Cost{WindowSeconds: round2(p1.at.Sub(p0.at).Seconds()), CPUMillis: map[string]float64{}}
	for name, cpu := range p1.cpu {
		c.CPUMillis[name] = round2(max(0, cpu-p0.cpu[name]) * 1000 / n)
	}
	c.KafkaRequests, c.KafkaFetches = kafkaCost(n, k0, k1)
	if c.PostgresNotCounted = notCounted(db0, db1); c.PostgresNotCounted != "" {
		return c
	}
	c.Transactions, c.RowsWritten, c.SeqRowsRead = map[string]float64{}, map[string]float64{}, map[string]float64{}
	for _, name := range serviceDBs {
		c.Transactions[name] = round2(float64(db1.xacts[name]-db0.xacts[name]) / n)
		c.RowsWritten[name] = round2(float64(db1.rows[name]-db0.rows[name]) / n)
		c.SeqRowsRead[name] = round2(float64(db1.seqRead[name]-db0.seqRead[name]) / n)
	}
	c.WALKiB = round2(float64(db1.wal-db0.wal) / 1024 / n)
	c.WALFullPageKiB = round2(float64((db1.fpi-db0.fpi)*fullPage) / 1024 / n)
	c.Checkpoints = map[string]int64{}
	for kind, v := range db1.checkpoints {
		c.Checkpoints[kind] = v - db0.checkpoints[kind]
	}
	c.Autovacuum = map[string]int64{"analyze": db1.analyses - db0.analyses, "vacuum": db1.vacuums - db0.vacuums}
	return c
}

// kafkaCost is the services' Kafka requests per order (by kind) and fetches per order (by
// service) between k0 and k1; nil when either could not be read.
func kafkaCost(n float64, k0, k1 *reqSnap) (requests, fetches map[string]float64) {
	if k0 == nil || k1 == nil {
		return nil, nil
	}
	requests, fetches = map[string]float64{}, map[string]float64{}
	for kind, v := range k1.byKind {
		d := float64(max(0, v-k0.byKind[kind]))
		if !slices.Contains(kafkaKinds, kind) {
			kind = "other"
		}
		requests[kind] += d
	}
	for _, kind := range kafkaKinds {
		requests[kind] = round2(requests[kind] / n)
	}
	for svc, v := range k1.fetches {
		fetches[svc] = round2(float64(max(0, v-k0.fetches[svc])) / n)
	}
	return requests, fetches
}

func sum(m map[string]float64) float64 {
	t := 0.0
	for _, v := range m {
		t += v
	}
	return t
}

// line formats m as "total (a x, b y, ...)" with the largest parts first.
func line(m map[string]float64, order []string) string {
	if order == nil {
		for k := range m {
			order = append(order, k)
		}
		sort.Slice(order, func(i, j int) bool { return m[order[i]] > m[order[j]] })
	}
	parts := make([]string, 0, len(order))
	for _, k := range order {
		parts = append(parts, fmt.Sprintf("%s %.1f", k, m[k]))
	}
	return fmt.Sprintf("%.1f (%s)", sum(m), strings.Join(parts, ", "))
}

func printCost(c *Cost) {
	if c == nil {
		return
	}
	fmt.Printf("  cost per order (over %.0f s: the step, its drain and %v for PostgreSQL's counters)\n", c.WindowSeconds, statsFlush)
	if c.PostgresNotCounted != "" {
		fmt.Printf("    postgres not counted: %s\n", c.PostgresNotCounted)
	} else {
		fmt.Printf("    postgres transactions %s\n", line(c.Transactions, serviceDBs))
		fmt.Printf("    postgres rows written %s  WAL %.1f KiB (page images at most %.1f; checkpoints begun %d timed, %d requested)\n",
			line(c.RowsWritten, serviceDBs), c.WALKiB, c.WALFullPageKiB, c.Checkpoints["timed"], c.Checkpoints["requested"])
		fmt.Printf("    postgres rows read by sequential scans %s  autovacuum in the window: %d analyses, %d vacuums\n",
			line(c.SeqRowsRead, serviceDBs), c.Autovacuum["analyze"], c.Autovacuum["vacuum"])
	}
	fmt.Printf("    cpu ms %s\n", line(c.CPUMillis, nil))
	if c.KafkaRequests != nil {
		fmt.Printf("    kafka requests from the services %s; fetches %s\n", line(c.KafkaRequests, kafkaKinds), line(c.KafkaFetches, serviceDBs))
	}
}
