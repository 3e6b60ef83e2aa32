package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/avro/contract"
	"github.com/orderflow/orderflow/platform/events"
)

type benchEnv struct {
	shop, inventory, token, stackDir string
	// pgAdmin reaches the cluster's statistics (the cost ledger).
	pgAdmin string
	brokers []string
	// metrics are the five services' /metrics URLs, and services their names in the same
	// order.
	metrics, services []string
}

func loadEnv() (benchEnv, error) {
	e := benchEnv{shop: os.Getenv("ORDERFLOW_SHOP_URL"), inventory: os.Getenv("ORDERFLOW_INVENTORY_URL"),
		token: os.Getenv("ORDERFLOW_ADMIN_TOKEN"), stackDir: os.Getenv("ORDERFLOW_STACK_DIR"),
		pgAdmin: os.Getenv("ORDERFLOW_PG_ADMIN_URL")}
	brokers := os.Getenv("ORDERFLOW_KAFKA_BROKERS")
	for name, v := range map[string]string{"ORDERFLOW_SHOP_URL": e.shop, "ORDERFLOW_INVENTORY_URL": e.inventory,
		"ORDERFLOW_ADMIN_TOKEN": e.token, "ORDERFLOW_STACK_DIR": e.stackDir, "ORDERFLOW_KAFKA_BROKERS": brokers,
		"ORDERFLOW_PG_ADMIN_URL": e.pgAdmin} {
		if v == "" {
			return e, fmt.Errorf("%s is not set: run through `make bench`, or eval \"$(deploy/local/stack.sh env)\"", name)
		}
	}
	e.brokers = strings.Split(brokers, ",")
	for _, svc := range []string{"SHOP", "INVENTORY", "BILLING", "LOGISTICS", "CRM"} {
		u := os.Getenv("ORDERFLOW_" + svc + "_URL")
		if u == "" {
			return e, fmt.Errorf("ORDERFLOW_%s_URL is not set: run through `make bench`", svc)
		}
		e.metrics = append(e.metrics, u+"/metrics")
		e.services = append(e.services, strings.ToLower(svc))
	}
	return e, nil
}

const skus = 20

// trace is what the generator learns about one order.
type trace struct {
	scheduled, answered time.Time
	placed, reserved    time.Time
	// When the relays produced OrderPlaced, StockReserved and PaymentAuthorized (the
	// records' Kafka timestamps, whole milliseconds), to split the inventory and shop
	// hops at the broker.
	placedProduced, reservedProduced time.Time
	authorized, authorizedProduced   time.Time
	confirmed, prepared              time.Time
	captured, notified               time.Time
	cancelled                        bool
}

type generator struct {
	env    benchEnv
	http   *http.Client
	kafka  *kgo.Client
	db     *dbStats
	prefix string

	mu     sync.Mutex
	orders map[string]*trace // by order id
}

func newGenerator(ctx context.Context, env benchEnv) (*generator, error) {
	g := &generator{env: env, orders: map[string]*trace{}, prefix: "BENCH-" + uuid.NewString()[:6],
		http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute}}}
	// The generator reads the workflow's topics from their current end: it sees the events
	// of its own orders and nothing older. No consumer group, so no service is disturbed.
	// It takes each event's time from its ce_time header, so reading late changes no
	// figure: the broker holds its fetches until a mebibyte or half a second has gathered.
	// Answered at once, they were one more reader of every event, and the broker's CPU
	// that the ledger charges to the suite (about 0.4 ms a fetch) was partly the generator's.
	var err error
	if g.db, err = openDBStats(ctx, env.pgAdmin); err != nil {
		return nil, err
	}
	g.kafka, err = kgo.NewClient(kgo.SeedBrokers(env.brokers...),
		kgo.ConsumeTopics(contract.TopicShopOrders, contract.TopicInventoryReservations, contract.TopicBillingPayments,
			contract.TopicLogisticsShipments, contract.TopicCRMEngagements),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()), kgo.FetchMaxWait(500*time.Millisecond), kgo.FetchMinBytes(1<<20))
	if err != nil {
		g.db.close()
		return nil, err
	}
	go g.follow(ctx)
	return g, nil
}

func (g *generator) close() {
	g.kafka.Close()
	g.db.close()
}

// follow records the event times of the generator's orders.
func (g *generator) follow(ctx context.Context) {
	for ctx.Err() == nil {
		fs := g.kafka.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			m, err := events.ParseHeaders(r.Headers)
			if err != nil {
				return
			}
			g.mu.Lock()
			defer g.mu.Unlock()
			// An order's first events can arrive before its POST has answered: the trace
			// is created by whichever comes first. Events of orders this step did not
			// place stay without a scheduled time and are left out of every figure.
			t := g.orders[m.CorrelationID]
			if t == nil {
				t = &trace{}
				g.orders[m.CorrelationID] = t
			}
			at := m.Time
			switch m.Type {
			case contract.OrderPlaced.Name:
				t.placed, t.placedProduced = at, r.Timestamp
			case contract.StockReserved.Name:
				t.reserved, t.reservedProduced = at, r.Timestamp
			case contract.PaymentAuthorized.Name:
				t.authorized, t.authorizedProduced = at, r.Timestamp
			case contract.OrderConfirmed.Name:
				t.confirmed = at
			case contract.ShipmentPrepared.Name:
				t.prepared = at
			case contract.PaymentCaptured.Name:
				t.captured = at
			case contract.CustomerNotified.Name:
				if t.notified.IsZero() {
					t.notified = at
				}
			case contract.OrderCancelled.Name:
				t.cancelled = true
			}
		})
	}
}

// seed puts the generator's SKUs in the catalog with stock for any run.
func (g *generator) seed(ctx context.Context) error {
	for i := range skus {
		sku := fmt.Sprintf("%s-%02d", g.prefix, i)
		if err := g.call(ctx, "PUT", g.env.shop+"/v1/products/"+sku,
			map[string]any{"name": "Bench item " + sku, "unit_price_minor": 100 + i, "currency": "EUR"}, 200); err != nil {
			return err
		}
		if err := g.call(ctx, "POST", g.env.inventory+"/v1/stock/"+sku+"/receipts",
			map[string]any{"receipt_id": "seed-" + sku, "quantity": 1_000_000}, 201); err != nil {
			return err
		}
	}
	return nil
}

func (g *generator) call(ctx context.Context, method, url string, body any, want int) error {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+g.env.token)
	resp, err := g.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, msg)
	}
	return nil
}

// place sends one order and records it under its id.
func (g *generator) place(ctx context.Context, n int, scheduled time.Time) error {
	sku := fmt.Sprintf("%s-%02d", g.prefix, n%skus)
	body, _ := json.Marshal(map[string]any{
		"customer":         map[string]any{"id": fmt.Sprintf("bench-%d", n%5000), "email": fmt.Sprintf("bench-%d@example.com", n%5000), "name": "Bench Customer"},
		"shipping_address": map[string]any{"name": "Bench Customer", "line1": "1 Load Street", "city": "Berlin", "postal_code": "10115", "country": "DE"},
		"lines":            []map[string]any{{"sku": sku, "quantity": 1 + n%3}},
		"payment_token":    "tok_visa",
	})
	req, _ := http.NewRequestWithContext(ctx, "POST", g.env.shop+"/v1/orders", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", uuid.NewString())
	resp, err := g.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var out struct {
		OrderID string `json:"order_id"`
	}
	if resp.StatusCode != http.StatusAccepted {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("POST /v1/orders: %d %s", resp.StatusCode, msg)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.OrderID == "" {
		return fmt.Errorf("POST /v1/orders: unreadable answer: %v", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	// Events may already have arrived for this order: keep what follow recorded.
	t := g.orders[out.OrderID]
	if t == nil {
		t = &trace{}
		g.orders[out.OrderID] = t
	}
	t.scheduled, t.answered = scheduled, time.Now()
	return nil
}

// step offers rate orders/s for d, then waits up to drain for them to complete.
func (g *generator) step(ctx context.Context, rate int, d, drain time.Duration, procs *sampler) (Step, error) {
	g.mu.Lock()
	g.orders = map[string]*trace{}
	g.mu.Unlock()

	res := Step{Offered: rate, Hops: map[string]Dist{}}
	interval := time.Second / time.Duration(rate)
	total := int(d / interval)
	var (
		wg       sync.WaitGroup
		errs     atomic.Int64
		accepted atomic.Int64
		firstErr atomic.Value
		inflight = make(chan struct{}, 4096)
	)
	// Before any reading of the step, so that the loop's CPU counts in none of them.
	speed := coreSpeed(300 * time.Millisecond)
	k0 := g.kafkaRequests(ctx)
	db0 := g.db.snapshot(ctx)
	lagCtx, stopLag := context.WithCancel(ctx)
	lags := make(chan []int64, 1)
	go func() { lags <- g.sampleLag(lagCtx) }()
	type probed struct {
		samples []coreSample
		err     error
	}
	cores := make(chan probed, 1)
	go func() {
		samples, err := sampleCore(lagCtx, time.Second)
		cores <- probed{samples, err}
	}()
	disk := make(chan probedDisk, 1)
	go func() { disk <- g.probeDisk(lagCtx) }()
	before := procs.snapshot()
	m0, errM := readCPUTimes()
	start := time.Now()
	for i := 0; i < total && ctx.Err() == nil; i++ {
		at := start.Add(time.Duration(i) * interval)
		if wait := time.Until(at); wait > 0 {
			time.Sleep(wait)
		}
		select {
		case inflight <- struct{}{}:
		default:
			errs.Add(1) // more than 4096 requests outstanding: the shop is not answering
			firstErr.CompareAndSwap(nil, "over 4096 requests in flight")
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-inflight }()
			if err := g.place(ctx, i, at); err != nil {
				errs.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			accepted.Add(1)
		}()
	}
	end := time.Now()
	wg.Wait()
	stopLag()
	after := procs.snapshot()
	m1, err := readCPUTimes()
	res.Machine = machineUsage(m0, m1, speed)
	if err = cmp.Or(errM, err); err != nil {
		res.Machine = MachineUsage{CoreMBps: speed, Error: err.Error()}
	}
	res.Machine.PageTablesMiB = round(after.pageTablesMiB)
	core := <-cores
	res.Machine.InStep = coreInStep(core.samples)
	if core.err != nil {
		res.Machine.InStepError = core.err.Error()
	}
	probe := <-disk
	res.Machine.Disk = diskInStep(probe.samples)
	if probe.err != nil {
		res.Machine.DiskError = probe.err.Error()
	}
	res.Sent, res.Errors, res.Accepted = total, int(errs.Load()), int(accepted.Load())
	if v := firstErr.Load(); v != nil {
		res.FirstError = v.(string)
	}
	res.Lag = lagSummary(<-lags)
	res.Processes = procs.usage(before, after)

	deadline := time.Now().Add(drain)
	for time.Now().Before(deadline) && ctx.Err() == nil && g.pending() > 0 {
		time.Sleep(200 * time.Millisecond)
	}
	g.summarise(&res, start, end)
	// Backends publish their counters up to statsFlush late; the ledger waits for them.
	if wait := statsFlush - time.Since(end); wait > 0 && ctx.Err() == nil {
		time.Sleep(wait)
	}
	p1 := procs.snapshot()
	db1 := g.db.snapshot(ctx)
	res.Cost = cost(res.Accepted, db0, db1, before, p1, k0, g.kafkaRequests(ctx))
	return res, ctx.Err()
}

// pending counts the step's orders not yet confirmed, or confirmed and not yet e-mailed
// about: the drain waits for both.
func (g *generator) pending() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, t := range g.orders {
		if !t.scheduled.IsZero() && !t.cancelled && (t.confirmed.IsZero() || t.notified.IsZero()) {
			n++
		}
	}
	return n
}

// settle waits, up to max, until the services have applied everything: a step that did
// not keep up leaves a backlog, and the next step would otherwise measure it too.
func (g *generator) settle(ctx context.Context, max time.Duration) {
	start := time.Now()
	for first := true; ; first = false {
		var sum int64
		var unknown error // a service that did not answer: its lag is not known to be zero
		for _, u := range g.env.metrics {
			n, err := g.lagOf(ctx, u)
			if err != nil {
				unknown = fmt.Errorf("%s: %w", u, err)
				break
			}
			sum += n
		}
		state := fmt.Sprintf("%d records", sum)
		if unknown != nil {
			state = "unknown (" + unknown.Error() + ")"
		}
		if first && (sum != 0 || unknown != nil) {
			fmt.Printf("lag left by the previous step: %s; waiting up to %v for it to clear\n", state, max)
		}
		switch {
		case sum == 0 && unknown == nil:
			if !first {
				fmt.Printf("cleared after %.1f s\n", time.Since(start).Seconds())
			}
			return
		case time.Since(start) >= max || ctx.Err() != nil:
			fmt.Printf("lag still %s after %v; starting the next step anyway\n", state, max)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// sampleLag sums the lag of the services' groups once a second until ctx ends.
func (g *generator) sampleLag(ctx context.Context) []int64 {
	return sampleEvery(ctx, time.Second, func() (int64, bool) {
		var sum int64
		for _, u := range g.env.metrics {
			n, err := g.lagOf(ctx, u)
			if err != nil {
				if ctx.Err() == nil {
					// A service that did not answer (overloaded, restarting) would make the
					// sum too small: drop the whole sample rather than record a false low.
					fmt.Fprintf(os.Stderr, "lag sample dropped: %s: %v\n", u, err)
				}
				return 0, false
			}
			sum += n
		}
		return sum, true
	})
}

// sampleEvery calls sample once every interval until ctx ends and returns the samples it
// kept (those for which it returned true).
func sampleEvery[T any](ctx context.Context, interval time.Duration, sample func() (T, bool)) []T {
	var out []T
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return out
		case <-tick.C:
		}
		if v, ok := sample(); ok && ctx.Err() == nil {
			out = append(out, v)
		}
	}
}

// kafkaRequests sums the services' kafka_client_requests_total counters by request kind,
// and their fetches per service; nil when a service's /metrics cannot be read (the
// ledger then leaves them out).
func (g *generator) kafkaRequests(ctx context.Context) *reqSnap {
	out := &reqSnap{byKind: map[string]int64{}, fetches: map[string]int64{}}
	for i, u := range g.env.metrics {
		svc := g.env.services[i]
		err := g.scrape(ctx, u, []string{"kafka_client_requests_total"}, func(line string) {
			if !strings.HasPrefix(line, "kafka_client_requests_total{") {
				return
			}
			_, rest, ok := strings.Cut(line, `request="`)
			kind, _, ok2 := strings.Cut(rest, `"`)
			f := strings.Fields(line)
			if v, err := strconv.ParseFloat(f[len(f)-1], 64); ok && ok2 && err == nil {
				out.byKind[kind] += int64(v)
				if kind == "Fetch" {
					out.fetches[svc] += int64(v)
				}
			}
		})
		if err != nil {
			fmt.Fprintf(os.Stderr, "kafka request counters not read: %s: %v\n", u, err)
			return nil
		}
	}
	return out
}

// lagOf sums a service's consumer_lag and projection_lag gauges: records between what it
// has applied (not what a consumer group last committed, which trails by the commit
// interval) and each partition's high watermark.
func (g *generator) lagOf(ctx context.Context, url string) (int64, error) {
	var sum int64
	err := g.scrape(ctx, url, []string{"consumer_lag", "projection_lag"}, func(line string) {
		if !strings.HasPrefix(line, "consumer_lag{") && !strings.HasPrefix(line, "projection_lag{") {
			return
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil && v > 0 {
			sum += int64(v)
		}
	})
	return sum, err
}

// scrape reads the metric families names from a service's /metrics and hands each line
// to fn. The lag is read every second, far more often than a Prometheus server would
// scrape, so the request asks for only those families (promhttp's name[] filter) and
// for no compression (the services gzipped 50-95 KB a second each for the generator to
// unzip, over loopback): what the instrument costs comes out of the two cores the suite
// is measured on. fn still sees only whole lines and should match names itself, as a
// server that ignores the filter sends everything.
func (g *generator) scrape(ctx context.Context, url string, names []string, fn func(line string)) error {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	q := neturl.Values{"name[]": names}
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, url+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := g.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fn(sc.Text())
	}
	return sc.Err()
}
