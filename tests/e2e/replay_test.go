package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderflow/orderflow/platform/projection"
)

// replayJob is the answer of the replay admin endpoints.
type replayJob struct {
	Model    string `json:"model"`
	State    string `json:"state"`
	Error    string `json:"error"`
	Progress *struct {
		Phase   string `json:"phase"`
		Records int64  `json:"records"`
	} `json:"progress"`
	Result *struct {
		Records int64 `json:"records"`
		Swapped bool  `json:"swapped"`
		Epoch   int64 `json:"epoch"`
		Report  *struct {
			Identical bool `json:"identical"`
			Tables    []struct {
				Table       string `json:"table"`
				LiveRows    int64  `json:"live_rows"`
				RebuiltRows int64  `json:"rebuilt_rows"`
				Differences []struct {
					Key  string `json:"key"`
					Kind string `json:"kind"`
				} `json:"differences"`
			} `json:"tables"`
		} `json:"report"`
	} `json:"result"`
}

// replay starts a rebuild over the admin API and waits for it to end.
func (s *suite) replay(t *testing.T, base, model string, body map[string]any) replayJob {
	t.Helper()
	var job replayJob
	if code := s.call(t, "POST", base+"/admin/replay/"+model, body, s.admin(), &job); code != 202 {
		t.Fatalf("start replay of %s: %d %+v", model, code, job)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for job.State == "running" {
		if time.Now().After(deadline) {
			t.Fatalf("replay of %s still running after 2 minutes: %+v", model, job.Progress)
		}
		time.Sleep(100 * time.Millisecond)
		if code := s.call(t, "GET", base+"/admin/replay/"+model, nil, s.admin(), &job); code != 200 {
			t.Fatalf("replay status of %s: %d", model, code)
		}
	}
	if job.State != "done" {
		t.Fatalf("replay of %s: %s: %s", model, job.State, job.Error)
	}
	return job
}

// After a few hundred orders, corrupt the order view, see verify report it, rebuild it
// while orders keep being placed and read, and see verify report it identical.
func TestReplayRebuildsOrderViewOnline(t *testing.T) {
	s := stack(t)
	sku := s.product(t, 250, 1000, 0)
	var ids []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				token := "tok_visa"
				if (w+i)%5 == 0 {
					token = "tok_declined"
				}
				id := s.place(t, orderBody(token, line{sku, 1 + i%3}))
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, id := range ids {
		eventually(t, 60*time.Second, func() string {
			var v view
			s.call(t, "GET", s.shop+"/v1/orders/"+id, nil, nil, &v)
			if v.Status == "CONFIRMED" || v.Status == "CANCELLED" {
				return ""
			}
			return fmt.Sprintf("order %s is %q", id, v.Status)
		})
	}
	time.Sleep(time.Second) // let the e-mail events of the last orders reach the view

	job := s.replay(t, s.shop, "order-view", map[string]any{"verify": true})
	if job.Result.Report == nil || !job.Result.Report.Identical {
		t.Fatalf("verify before any damage: %+v", job.Result.Report)
	}

	// Damage: rows lost, a status changed, timeline steps lost.
	ctx := context.Background()
	lost, changed := ids[:3], ids[3]
	if _, err := s.db["shop"].Exec(ctx, `DELETE FROM order_view WHERE order_id = ANY($1::uuid[])`, lost); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db["shop"].Exec(ctx, `UPDATE order_view SET status = 'PENDING' WHERE order_id = $1`, changed); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db["shop"].Exec(ctx, `DELETE FROM order_timeline WHERE order_id = $1`, ids[4]); err != nil {
		t.Fatal(err)
	}
	job = s.replay(t, s.shop, "order-view", map[string]any{"verify": true})
	rep := job.Result.Report
	if rep == nil || rep.Identical {
		t.Fatalf("verify did not notice the damage: %+v", rep)
	}
	found := map[string]string{}
	for _, tb := range rep.Tables {
		for _, d := range tb.Differences {
			found[tb.Table+" "+d.Key] = d.Kind
		}
	}
	for _, id := range lost {
		if found["order_view ("+id+")"] != "only_rebuilt" {
			t.Errorf("verify did not report lost order %s: %v", id, found)
		}
	}
	if found["order_view ("+changed+")"] != "changed" {
		t.Errorf("verify did not report changed order %s: %v", changed, found)
	}
	if n := countPrefix(found, "order_timeline "); n == 0 {
		t.Errorf("verify did not report the lost timeline steps: %v", found)
	}

	// Rebuild while customers keep placing and reading orders.
	var stop atomic.Bool
	var errs []string
	var placedDuring []string
	var load sync.WaitGroup
	for w := range 2 {
		load.Add(1)
		go func() {
			defer load.Done()
			for i := 0; !stop.Load(); i++ {
				var out struct {
					OrderID string `json:"order_id"`
				}
				code := s.call(t, "POST", s.shop+"/v1/orders", orderBody("tok_visa", line{sku, 1}), nil, &out)
				mu.Lock()
				if code != 202 {
					errs = append(errs, fmt.Sprintf("POST /v1/orders: %d", code))
				} else {
					placedDuring = append(placedDuring, out.OrderID)
				}
				mu.Unlock()
				var v view
				if code := s.call(t, "GET", s.shop+"/v1/orders/"+ids[(w*31+i)%len(ids)], nil, nil, &v); code != 200 && code != 404 {
					mu.Lock()
					errs = append(errs, fmt.Sprintf("GET /v1/orders/{id}: %d", code))
					mu.Unlock()
				}
				if code := s.call(t, "GET", s.shop+"/v1/orders?limit=20", nil, nil, nil); code != 200 {
					mu.Lock()
					errs = append(errs, fmt.Sprintf("GET /v1/orders: %d", code))
					mu.Unlock()
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	job = s.replay(t, s.shop, "order-view", nil)
	stop.Store(true)
	load.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d requests failed during the rebuild, first: %s", len(errs), errs[0])
	}
	if !job.Result.Swapped || job.Result.Records == 0 {
		t.Fatalf("rebuild: %+v", job.Result)
	}
	if len(placedDuring) == 0 {
		t.Fatal("no order was placed during the rebuild")
	}
	for _, id := range append(append([]string{}, lost...), changed) {
		var v view
		if code := s.call(t, "GET", s.shop+"/v1/orders/"+id, nil, nil, &v); code != 200 || v.Status == "PENDING" {
			t.Errorf("order %s after the rebuild: %d %q", id, code, v.Status)
		}
	}
	for _, id := range placedDuring {
		s.await(t, id, "CONFIRMED", 60*time.Second)
	}
	time.Sleep(time.Second)
	job = s.replay(t, s.shop, "order-view", map[string]any{"verify": true})
	if rep := job.Result.Report; rep == nil || !rep.Identical {
		t.Fatalf("verify after the rebuild: %+v", rep)
	}
}

func countPrefix(m map[string]string, prefix string) int {
	n := 0
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}

// The replay endpoints refuse what they cannot do, with errors that say why.
func TestReplayRefusals(t *testing.T) {
	s := stack(t)
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Field   string `json:"field"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if code := s.call(t, "POST", s.shop+"/admin/replay/order-view", nil, nil, &e); code != 401 {
		t.Errorf("without a token: %d", code)
	}
	if code := s.call(t, "POST", s.shop+"/admin/replay/orders", nil, s.admin(), &e); code != 404 || !strings.Contains(e.Error.Message, "order-view") {
		t.Errorf("unknown model: %d %+v", code, e)
	}
	if code := s.call(t, "POST", s.shop+"/admin/replay/order-view", map[string]any{"from": "yesterday"}, s.admin(), &e); code != 400 || e.Error.Field != "from" {
		t.Errorf("bad from: %d %+v", code, e)
	}
	if code := s.call(t, "POST", s.shop+"/admin/replay/order-view", map[string]any{"verify": true, "from": "2026-01-01T00:00:00Z"}, s.admin(), &e); code != 400 {
		t.Errorf("verify with from: %d %+v", code, e)
	}
	if code := s.call(t, "POST", s.shop+"/admin/replay/order-view", map[string]any{"bogus": true}, s.admin(), &e); code != 400 || e.Error.Field != "bogus" {
		t.Errorf("unknown option: %d %+v", code, e)
	}
	// The options go in the body; one given in the query string was ignored, and a
	// rebuild meant to start at a time started from the beginning.
	if code := s.call(t, "POST", s.shop+"/admin/replay/order-view?from=2026-01-01T00:00:00Z", nil, s.admin(), &e); code != 400 || e.Error.Field != "from" {
		t.Errorf("an option in the query: %d %+v", code, e)
	}
	// A rebuild is running in another process (this test holds its lock as one would):
	// a second one is refused and nothing is touched.
	ctx := context.Background()
	conn, err := s.db["shop"].Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, projection.RebuildLockID("order-view")); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, projection.RebuildLockID("order-view")) }()
	if code := s.call(t, "POST", s.shop+"/admin/replay/order-view", nil, s.admin(), &e); code != 409 || !strings.Contains(e.Error.Message, "already running") {
		t.Errorf("second rebuild: %d %+v", code, e)
	}
	if n := s.scalar(t, "shop", `SELECT count(*) FROM pg_tables WHERE tablename LIKE '%__shadow'`); fmt.Sprint(n) != "0" {
		t.Errorf("a refused rebuild left %v shadow tables", n)
	}
}

// The revenue model was added to billing after it went live: a start without it fills it
// from the payment history, and it agrees with billing's own payments.
func TestRevenueModelFilledFromHistory(t *testing.T) {
	s := stack(t)
	sku := s.product(t, 1234, 10, 0)
	paid := s.place(t, orderBody("tok_visa", line{sku, 2}))
	s.await(t, paid, "CONFIRMED", settle)

	// Make billing meet the model for the first time: no table rows, no bookkeeping.
	startBilling := stopService(t, "billing")
	ctx := context.Background()
	if _, err := s.db["billing"].Exec(ctx, `TRUNCATE revenue_per_day, revenue_events;
		DELETE FROM platform_projection_offsets WHERE model = 'revenue'; DELETE FROM platform_projections WHERE model = 'revenue'`); err != nil {
		t.Fatal(err)
	}
	startBilling()

	// Every authorization (or capture) billing ever made, by day and currency.
	want := func(ceType string) string {
		return fmt.Sprint(s.scalar(t, "billing", `
			SELECT string_agg(d || ' ' || c || ' ' || n || ' ' || a, ', ' ORDER BY d, c) FROM (
			  SELECT e.at::date::text AS d, e.currency AS c, count(*)::text AS n, sum(e.amount)::text AS a
			    FROM (SELECT (jsonb_path_query_first(o.headers, '$[*] ? (@.k == "ce_time").v') #>> '{}')::timestamptz AT TIME ZONE 'UTC' AS at,
			                 p.currency, p.amount_minor AS amount
			            FROM platform_outbox o JOIN payments p ON p.order_id::text = o.key
			           WHERE jsonb_path_query_first(o.headers, '$[*] ? (@.k == "ce_type").v') #>> '{}' = $1) e
			   GROUP BY 1, 2) x`, ceType))
	}
	var got struct {
		Days []struct {
			Day             string `json:"day"`
			Currency        string `json:"currency"`
			Authorizations  string `json:"authorizations"`
			AuthorizedMinor string `json:"authorized_minor"`
			Captures        string `json:"captures"`
			CapturedMinor   string `json:"captured_minor"`
		} `json:"days"`
	}
	eventually(t, 60*time.Second, func() string {
		if code := s.call(t, "GET", s.billing+"/v1/revenue/daily", nil, nil, &got); code != 200 {
			return fmt.Sprintf("GET /v1/revenue/daily: %d", code)
		}
		var auths, caps []string
		for i := len(got.Days) - 1; i >= 0; i-- {
			d := got.Days[i]
			auths = append(auths, d.Day+" "+d.Currency+" "+d.Authorizations+" "+d.AuthorizedMinor)
			if d.Captures != "0" && d.Captures != "" {
				caps = append(caps, d.Day+" "+d.Currency+" "+d.Captures+" "+d.CapturedMinor)
			}
		}
		if g, w := strings.Join(auths, ", "), want("orderflow.billing.PaymentAuthorized.v1"); g != w {
			return fmt.Sprintf("revenue model's authorizations %q, payments say %q", g, w)
		}
		if g, w := strings.Join(caps, ", "), want("orderflow.billing.PaymentCaptured.v1"); g != w {
			return fmt.Sprintf("revenue model's captures %q, payments say %q", g, w)
		}
		return ""
	})
	var bad struct {
		Error struct {
			Field string `json:"field"`
		} `json:"error"`
	}
	if code := s.call(t, "GET", s.billing+"/v1/revenue/daily?from=2026-13-01", nil, nil, &bad); code != 400 || bad.Error.Field != "from" {
		t.Errorf("bad day: %d %+v", code, bad)
	}
	if code := s.call(t, "GET", s.billing+"/v1/revenue/daily?currency=eur", nil, nil, &bad); code != 400 || bad.Error.Field != "currency" {
		t.Errorf("bad currency: %d %+v", code, bad)
	}
	if code := s.call(t, "GET", s.billing+"/v1/revenue/daily?currency=XYZ", nil, nil, &bad); code != 400 || bad.Error.Field != "currency" {
		t.Errorf("unknown currency: %d %+v", code, bad)
	}
	if code := s.call(t, "GET", s.billing+"/v1/revenue/daily?from=2026-12-10&to=2026-12-01", nil, nil, &bad); code != 400 || bad.Error.Field != "to" {
		t.Errorf("to before from: %d %+v", code, bad)
	}
}
