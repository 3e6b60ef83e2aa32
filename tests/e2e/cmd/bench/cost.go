package main

import (
	"context"
	"fmt"
	"maps"
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

// serviceDBs are the databases whose statistics the ledger reads.
var serviceDBs = []string{"shop", "inventory", "billing", "logistics", "crm"}

// statsFlush is how long PostgreSQL may hold a backend's counters before publishing
// them: a busy backend flushes at most once a second, an idle one within ten seconds.
const statsFlush = 11 * time.Second

// Cost is what the step's orders cost, per accepted order.
type Cost struct {
	// Window is how long the ledger counted: the step, its drain and statsFlush.
	WindowSeconds float64 `json:"window_seconds"`
	// Transactions per order, per service database (commits and rollbacks).
	Transactions map[string]float64 `json:"transactions"`
	// RowsWritten per order, per service database (rows inserted, updated or deleted).
	RowsWritten map[string]float64 `json:"rows_written"`
	// SeqRowsRead per order, per service database: rows that sequential scans of its tables
	// read. Near zero when every statement finds its rows through an index; a plan cached
	// while a table was nearly empty shows here as thousands of rows per order.
	SeqRowsRead map[string]float64 `json:"seq_rows_read"`
	// WALKiB is the write-ahead log the cluster wrote per order, and WALFullPageKiB at
	// most how much of it was images of whole pages (see fullPage): the first change to a
	// page after a checkpoint logs the page (full_page_writes), so this part grows with
	// how often checkpoints come.
	WALKiB         float64 `json:"wal_kib"`
	WALFullPageKiB float64 `json:"wal_full_page_kib"`
	// Checkpoints is how many checkpoints began in the window, by what asked for them:
	// "timed" (checkpoint_timeout) or "requested" (mostly max_wal_size reached).
	Checkpoints map[string]int64 `json:"checkpoints"`
	// Autovacuum is how many times autovacuum analyzed ("analyze") and vacuumed
	// ("vacuum") a table of the service databases in the window, not per order: a young
	// stack's tables grow by a tenth within a naptime and are analyzed every naptime, and
	// their workers' CPU is in PostgreSQL's (ADR 0017).
	Autovacuum map[string]int64 `json:"autovacuum"`
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

// dbSnap is the statistics of the service databases at one moment.
type dbSnap struct {
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
// shows only the database a session is in).
type dbStats struct {
	conn *pgx.Conn
	dbs  map[string]*pgx.Conn
	// checkpointsSQL reads the checkpoint counters: from pg_stat_checkpointer since
	// PostgreSQL 17, from pg_stat_bgwriter before.
	checkpointsSQL string
}

func openDBStats(ctx context.Context, url string) (*dbStats, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("ORDERFLOW_PG_ADMIN_URL: %w", err)
	}
	d := &dbStats{dbs: map[string]*pgx.Conn{}}
	if d.conn, err = pgx.ConnectConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("ORDERFLOW_PG_ADMIN_URL: %w", err)
	}
	var version int
	if err := d.conn.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
		d.close()
		return nil, fmt.Errorf("read PostgreSQL's version: %w", err)
	}
	d.checkpointsSQL = `SELECT checkpoints_timed, checkpoints_req FROM pg_stat_bgwriter`
	if version >= 170000 {
		d.checkpointsSQL = `SELECT num_timed, num_requested FROM pg_stat_checkpointer`
	}
	for _, name := range serviceDBs {
		c := cfg.Copy()
		c.Database = name
		if d.dbs[name], err = pgx.ConnectConfig(ctx, c); err != nil {
			d.close()
			return nil, fmt.Errorf("ORDERFLOW_PG_ADMIN_URL, database %s: %w", name, err)
		}
	}
	return d, nil
}

func (d *dbStats) close() {
	for _, c := range append([]*pgx.Conn{d.conn}, slices.Collect(maps.Values(d.dbs))...) {
		if c != nil {
			_ = c.Close(context.Background())
		}
	}
}

func (d *dbStats) snapshot(ctx context.Context) (dbSnap, error) {
	s := dbSnap{xacts: map[string]int64{}, rows: map[string]int64{}, seqRead: map[string]int64{}, checkpoints: map[string]int64{}}
	for name, c := range d.dbs {
		var n, analyses, vacuums int64
		if err := c.QueryRow(ctx, `SELECT coalesce(sum(seq_tup_read), 0)::bigint, coalesce(sum(autoanalyze_count), 0)::bigint,
		                                  coalesce(sum(autovacuum_count), 0)::bigint FROM pg_stat_user_tables`).Scan(&n, &analyses, &vacuums); err != nil {
			return s, fmt.Errorf("read pg_stat_user_tables of %s: %w", name, err)
		}
		s.seqRead[name] = n
		s.analyses += analyses
		s.vacuums += vacuums
	}
	rows, err := d.conn.Query(ctx, `SELECT datname, xact_commit + xact_rollback, tup_inserted + tup_updated + tup_deleted
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
	if err := d.conn.QueryRow(ctx, `SELECT wal_bytes::bigint, wal_fpi FROM pg_stat_wal`).Scan(&s.wal, &s.fpi); err != nil {
		return s, fmt.Errorf("read pg_stat_wal: %w", err)
	}
	var timed, requested int64
	if err := d.conn.QueryRow(ctx, d.checkpointsSQL).Scan(&timed, &requested); err != nil {
		return s, fmt.Errorf("read the checkpoint counters: %w", err)
	}
	s.checkpoints["timed"], s.checkpoints["requested"] = timed, requested
	return s, nil
}

// cost divides what happened between the snapshots by orders. k0 and k1 are the
// services' Kafka requests; nil when they could not be read.
func cost(orders int, db0, db1 dbSnap, p0, p1 procSnap, k0, k1 *reqSnap) *Cost {
	if orders == 0 {
		return nil
	}
	n := float64(orders)
	c := &Cost{WindowSeconds: round2(p1.at.Sub(p0.at).Seconds()), Transactions: map[string]float64{},
		RowsWritten: map[string]float64{}, SeqRowsRead: map[string]float64{}, CPUMillis: map[string]float64{}}
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
	for name, cpu := range p1.cpu {
		c.CPUMillis[name] = round2(max(0, cpu-p0.cpu[name]) * 1000 / n)
	}
	if k0 != nil && k1 != nil {
		c.KafkaRequests, c.KafkaFetches = map[string]float64{}, map[string]float64{}
		for kind, v := range k1.byKind {
			d := float64(max(0, v-k0.byKind[kind]))
			if !slices.Contains(kafkaKinds, kind) {
				kind = "other"
			}
			c.KafkaRequests[kind] += d
		}
		for _, kind := range kafkaKinds {
			c.KafkaRequests[kind] = round2(c.KafkaRequests[kind] / n)
		}
		for svc, v := range k1.fetches {
			c.KafkaFetches[svc] = round2(float64(max(0, v-k0.fetches[svc])) / n)
		}
	}
	return c
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
	fmt.Printf("    postgres transactions %s\n", line(c.Transactions, serviceDBs))
	fmt.Printf("    postgres rows written %s  WAL %.1f KiB (page images at most %.1f; checkpoints begun %d timed, %d requested)\n",
		line(c.RowsWritten, serviceDBs), c.WALKiB, c.WALFullPageKiB, c.Checkpoints["timed"], c.Checkpoints["requested"])
	fmt.Printf("    postgres rows read by sequential scans %s  autovacuum in the window: %d analyses, %d vacuums\n",
		line(c.SeqRowsRead, serviceDBs), c.Autovacuum["analyze"], c.Autovacuum["vacuum"])
	fmt.Printf("    cpu ms %s\n", line(c.CPUMillis, nil))
	if c.KafkaRequests != nil {
		fmt.Printf("    kafka requests from the services %s; fetches %s\n", line(c.KafkaRequests, kafkaKinds), line(c.KafkaFetches, serviceDBs))
	}
}
