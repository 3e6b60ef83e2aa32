package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A rolling upgrade with a contract change, on the running stack: while orders flow,
// logistics is replaced by a build whose ShipmentPrepared carries a new optional field
// (service_level); shop and crm, still on the old code, keep reading the event; then crm
// is replaced by a build that shows the field on its timeline. Every order placed during
// all of it completes, with exactly one shipment and one ShipmentPrepared step per order
// in every consumer. The stack gets its original binaries back at the end.
func TestRollingUpgradeAddsOptionalField(t *testing.T) {
	s := stack(t)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	stackDir := env("ORDERFLOW_STACK_DIR")
	if stackDir == "" {
		stackDir = filepath.Join(root, ".local", "dev")
	}

	// The next versions, built from a patched copy of the repository.
	next := t.TempDir()
	run(t, root, "bash", "-c", `tar --exclude=./.git --exclude=./.local --exclude=./.cache --exclude=./bench -cf - . | tar -xf - -C "$0"`, next)
	patch(t, filepath.Join(next, "avro/logistics/ShipmentPrepared.avsc"),
		`{"name": "prepared_at", "type": {"type": "long", "logicalType": "timestamp-millis"}}`,
		`{"name": "prepared_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "service_level", "type": ["null", "string"], "default": null, "doc": "standard or express; absent before logistics 1.2."}`)
	run(t, next, "bash", "scripts/gen.sh", "avro")
	patch(t, filepath.Join(next, "services/logistics/internal/app/app.go"),
		`TrackingNumber: s.TrackingNumber, PreparedAt: now}`,
		`TrackingNumber: s.TrackingNumber, PreparedAt: now, ServiceLevel: func(v string) *string { return &v }("standard")}`)
	patch(t, filepath.Join(next, "services/crm/internal/ports/events/events.go"),
		`s.OrderID, s.At, s.Detail = p.OrderID, p.PreparedAt, p.TrackingNumber`,
		`s.OrderID, s.At, s.Detail = p.OrderID, p.PreparedAt, p.TrackingNumber
			if p.ServiceLevel != nil {
				s.Detail += " " + *p.ServiceLevel
			}`)
	for _, svc := range []string{"logistics", "crm"} {
		run(t, filepath.Join(next, "services", svc), "go", "build", "-o", filepath.Join(next, "bin", svc), "./cmd/"+svc)
	}

	// Orders flow through the whole upgrade.
	sku := s.product(t, 500, 10000, 0)
	var (
		mu     sync.Mutex
		ids    []string
		failed []string
		stop   atomic.Bool
		wg     sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			var out struct {
				OrderID string `json:"order_id"`
			}
			code := s.call(t, "POST", s.shop+"/v1/orders", orderBody("tok_visa", line{sku, 1}), nil, &out)
			mu.Lock()
			if code == 202 {
				ids = append(ids, out.OrderID)
			} else {
				failed = append(failed, fmt.Sprint(code))
			}
			mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
	}()
	placed := func() int { mu.Lock(); defer mu.Unlock(); return len(ids) }
	waitFor := func(n int) {
		for deadline := time.Now().Add(30 * time.Second); placed() < n && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
		}
	}
	swap := func(svc, bin string) {
		t.Helper()
		stackCmd(t, "stop", svc)
		data, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(stackDir, "bin", svc), data, 0o755); err != nil {
			t.Fatal(err)
		}
		stackCmd(t, "start", svc)
	}
	// The stack's own binaries come back whatever happens.
	for _, svc := range []string{"logistics", "crm"} {
		orig, err := os.ReadFile(filepath.Join(stackDir, "bin", svc))
		if err != nil {
			t.Fatal(err)
		}
		saved := filepath.Join(t.TempDir(), svc)
		if err := os.WriteFile(saved, orig, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { swap(svc, saved) })
	}

	waitFor(10)
	swap("logistics", filepath.Join(next, "bin", "logistics")) // the producer first
	upgradedAt := placed()
	waitFor(upgradedAt + 15)
	swap("crm", filepath.Join(next, "bin", "crm")) // then a consumer that uses the field
	crmAt := placed()
	waitFor(crmAt + 15)
	stop.Store(true)
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d orders refused during the upgrade: %v", len(failed), failed)
	}
	t.Logf("%d orders: %d before the logistics upgrade, %d before the crm upgrade", len(ids), upgradedAt, crmAt)

	for _, id := range ids {
		s.await(t, id, "CONFIRMED", 90*time.Second)
	}
	count := func(svc, query string) map[string]int64 {
		rows, err := s.db[svc].Query(t.Context(), query, ids)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]int64{}
		for rows.Next() {
			var id string
			var n int64
			if err := rows.Scan(&id, &n); err != nil {
				t.Fatal(err)
			}
			out[id] = n
		}
		return out
	}
	// Confirmation does not wait for logistics: its shipments are counted with the rest.
	eventually(t, 60*time.Second, func() string {
		shipments := count("logistics", `SELECT order_id::text, count(*) FROM shipments WHERE order_id = ANY($1::uuid[]) GROUP BY 1`)
		shopSteps := count("shop", `SELECT order_id::text, count(*) FROM order_timeline WHERE event = 'ShipmentPrepared' AND order_id = ANY($1::uuid[]) GROUP BY 1`)
		crmSteps := count("crm", `SELECT order_id::text, count(*) FROM timeline WHERE event = 'ShipmentPrepared' AND order_id = ANY($1::uuid[]) GROUP BY 1`)
		for _, id := range ids {
			if shipments[id] != 1 || shopSteps[id] != 1 || crmSteps[id] != 1 {
				return fmt.Sprintf("order %s: %d shipments, %d ShipmentPrepared steps in shop, %d in crm; want one each",
					id, shipments[id], shopSteps[id], crmSteps[id])
			}
		}
		return ""
	})
	// Orders placed after crm's upgrade were prepared by the new logistics and applied by
	// the new crm: the field shows.
	for _, id := range ids[crmAt:] {
		detail := fmt.Sprint(s.scalar(t, "crm", `SELECT detail FROM timeline WHERE event = 'ShipmentPrepared' AND order_id = $1`, id))
		if !strings.HasSuffix(detail, " standard") {
			t.Errorf("order %s, placed after the crm upgrade: crm's timeline says %q, want the service level", id, detail)
		}
	}
}

func run(t *testing.T, dir string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func patch(t *testing.T, file, old, new string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s no longer contains %q: update the upgrade test", file, old)
	}
	if err := os.WriteFile(file, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}
