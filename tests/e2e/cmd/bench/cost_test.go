package main

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestCostDividesByOrders(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	db0 := dbSnap{xacts: map[string]int64{"shop": 100, "crm": 50}, rows: map[string]int64{"shop": 1000}, seqRead: map[string]int64{"billing": 7}, wal: 1 << 20, fpi: 10,
		checkpoints: map[string]int64{"timed": 3, "requested": 1}, analyses: 40, vacuums: 7}
	db1 := dbSnap{xacts: map[string]int64{"shop": 600, "crm": 350}, rows: map[string]int64{"shop": 3500}, seqRead: map[string]int64{"billing": 400007}, wal: 3 << 20, fpi: 135,
		checkpoints: map[string]int64{"timed": 3, "requested": 3}, analyses: 61, vacuums: 9}
	p0 := procSnap{at: t0, cpu: map[string]float64{"shop": 10, "kafka": 5}}
	p1 := procSnap{at: t0.Add(30 * time.Second), cpu: map[string]float64{"shop": 12, "kafka": 4, "crm": 1}}

	k0 := &reqSnap{byKind: map[string]int64{"Fetch": 1000, "Produce": 100, "Heartbeat": 10}, fetches: map[string]int64{"shop": 600, "crm": 400}}
	k1 := &reqSnap{byKind: map[string]int64{"Fetch": 4000, "Produce": 600, "Heartbeat": 60, "Metadata": 50}, fetches: map[string]int64{"shop": 2600, "crm": 1400}}
	c := cost(100, db0, db1, p0, p1, k0, k1)
	if c.WindowSeconds != 30 {
		t.Errorf("window %v s, want 30", c.WindowSeconds)
	}
	if c.Transactions["shop"] != 5 || c.Transactions["crm"] != 3 || c.Transactions["billing"] != 0 {
		t.Errorf("transactions per order %v, want shop 5, crm 3, billing 0", c.Transactions)
	}
	if c.RowsWritten["shop"] != 25 {
		t.Errorf("rows per order %v, want shop 25", c.RowsWritten)
	}
	if c.SeqRowsRead["billing"] != 4000 || c.SeqRowsRead["shop"] != 0 {
		t.Errorf("rows read by sequential scans per order %v, want billing 4000, shop 0", c.SeqRowsRead)
	}
	if c.WALKiB != 20.48 {
		t.Errorf("WAL %v KiB per order, want 20.48", c.WALKiB)
	}
	if c.WALFullPageKiB != 10 {
		t.Errorf("full-page images %v KiB per order, want 10 (125 images of 8 KiB over 100 orders)", c.WALFullPageKiB)
	}
	if c.Checkpoints["timed"] != 0 || c.Checkpoints["requested"] != 2 {
		t.Errorf("checkpoints %v, want 0 timed and 2 requested", c.Checkpoints)
	}
	if a := c.Autovacuum; a["analyze"] != 21 || a["vacuum"] != 2 {
		t.Errorf("autovacuum %v, want 21 analyses and 2 vacuums in the window (not per order)", a)
	}
	// A process that started during the window counts from zero; a counter that went
	// backwards (a restarted process) counts nothing rather than a negative cost.
	if c.CPUMillis["shop"] != 20 || c.CPUMillis["crm"] != 10 || c.CPUMillis["kafka"] != 0 {
		t.Errorf("cpu ms per order %v, want shop 20, crm 10, kafka 0", c.CPUMillis)
	}
	// Kinds the ledger does not name add up as other, each from its own start.
	if k := c.KafkaRequests; k["Fetch"] != 30 || k["Produce"] != 5 || k["other"] != 1 {
		t.Errorf("kafka requests per order %v, want Fetch 30, Produce 5, other 1", k)
	}
	if f := c.KafkaFetches; f["shop"] != 20 || f["crm"] != 10 {
		t.Errorf("fetches per order %v, want shop 20, crm 10", f)
	}
	if c := cost(100, db0, db1, p0, p1, nil, k1); c.KafkaRequests != nil {
		t.Errorf("kafka requests without a first reading: %v, want none", c.KafkaRequests)
	}
	if got := line(map[string]float64{"a": 1, "b": 2.5}, nil); got != "3.5 (b 2.5, a 1.0)" {
		t.Errorf("line = %q", got)
	}
}

func TestCostOfNoOrdersIsNotReported(t *testing.T) {
	if c := cost(0, dbSnap{}, dbSnap{}, procSnap{}, procSnap{}, nil, nil); c != nil {
		t.Fatalf("cost of a step with no accepted orders = %+v, want nil", c)
	}
}

func TestCostLeavesOutPostgresWhenItsStatisticsCannotBeCompared(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	ok0 := dbSnap{started: t0, xacts: map[string]int64{"shop": 100}}
	ok1 := dbSnap{started: t0, xacts: map[string]int64{"shop": 600}}
	restarted := dbSnap{started: t0.Add(time.Hour), xacts: map[string]int64{"shop": 3}}
	down := dbSnap{err: errors.New("ORDERFLOW_PG_ADMIN_URL, database shop: connection refused")}
	p0 := procSnap{at: t0, cpu: map[string]float64{"shop": 10}}
	p1 := procSnap{at: t0.Add(30 * time.Second), cpu: map[string]float64{"shop": 12}}
	k0 := &reqSnap{byKind: map[string]int64{"Fetch": 100}, fetches: map[string]int64{"shop": 100}}
	k1 := &reqSnap{byKind: map[string]int64{"Fetch": 300}, fetches: map[string]int64{"shop": 300}}

	if c := cost(100, ok0, ok1, p0, p1, k0, k1); c.PostgresNotCounted != "" || c.Transactions["shop"] != 5 {
		t.Fatalf("one run of the cluster: not counted %q, transactions %v; want counted, shop 5", c.PostgresNotCounted, c.Transactions)
	}
	for _, tc := range []struct {
		name     string
		db0, db1 dbSnap
		want     string
	}{
		{"down at the start", down, ok1, "not read at the step's start: ORDERFLOW_PG_ADMIN_URL, database shop: connection refused"},
		{"down at the end", ok0, down, "not read at the ledger's end: ORDERFLOW_PG_ADMIN_URL, database shop: connection refused"},
		{"restarted", ok0, restarted, "PostgreSQL restarted in the window (at 06:00:00)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cost(100, tc.db0, tc.db1, p0, p1, k0, k1)
			if !strings.Contains(c.PostgresNotCounted, tc.want) {
				t.Errorf("not counted %q, want it to say %q", c.PostgresNotCounted, tc.want)
			}
			if c.Transactions != nil || c.RowsWritten != nil || c.SeqRowsRead != nil || c.Checkpoints != nil || c.Autovacuum != nil || c.WALKiB != 0 {
				t.Errorf("PostgreSQL's part counted anyway: %+v", c)
			}
			// What does not come from PostgreSQL is still there.
			if c.CPUMillis["shop"] != 20 || c.KafkaRequests["Fetch"] != 2 || c.KafkaFetches["shop"] != 2 {
				t.Errorf("cpu %v, kafka %v %v; want shop 20 ms, 2 fetches per order", c.CPUMillis, c.KafkaRequests, c.KafkaFetches)
			}
		})
	}
}

func TestSnapshotOfAnUnreachablePostgresSaysSoInsteadOfFailingTheRun(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	cfg, err := pgx.ParseConfig("postgres://nobody@" + addr + "/postgres?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	d := &dbStats{cfg: cfg, conns: map[string]*pgx.Conn{}}
	s := d.snapshot(context.Background())
	if s.err == nil || !strings.Contains(s.err.Error(), "ORDERFLOW_PG_ADMIN_URL, database shop") {
		t.Fatalf("snapshot error %v, want one naming ORDERFLOW_PG_ADMIN_URL and the database", s.err)
	}
}

// TestDBStatsReadsAgainAfterPostgresClosedItsConnections runs against the test stack's
// PostgreSQL: the statistics connections are terminated, as a restart or an outage
// closes them, and the next snapshot opens them again.
func TestDBStatsReadsAgainAfterPostgresClosedItsConnections(t *testing.T) {
	url := os.Getenv("ORDERFLOW_PG_ADMIN_URL")
	if url == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("ORDERFLOW_PG_ADMIN_URL is not set under CI")
		}
		t.Skip("ORDERFLOW_PG_ADMIN_URL is not set: run with `make test`")
	}
	ctx := context.Background()
	d, err := openDBStats(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	first := d.snapshot(ctx)
	if first.err != nil {
		t.Fatal(first.err)
	}
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var terminated int
	if err := admin.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
	                                WHERE application_name = $1 AND pid <> pg_backend_pid()`, statsApplication).Scan(&terminated); err != nil {
		t.Fatal(err)
	}
	if want := len(serviceDBs) + 1; terminated < want {
		t.Fatalf("terminated %d statistics connections, want at least %d", terminated, want)
	}
	second := d.snapshot(ctx)
	if second.err != nil {
		t.Fatalf("snapshot after PostgreSQL closed the connections: %v", second.err)
	}
	if reason := notCounted(first, second); reason != "" {
		t.Errorf("the same run of the cluster, yet not counted: %s", reason)
	}
}
