package boot_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/platform/boot"
	"github.com/orderflow/orderflow/platform/config"
	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/internal/testevent"
	"github.com/orderflow/orderflow/platform/internal/testlog"
	"github.com/orderflow/orderflow/platform/kafka"
	"github.com/orderflow/orderflow/platform/kafka/kafkatest"
	"github.com/orderflow/orderflow/platform/pg/pgtest"
	"github.com/orderflow/orderflow/platform/projection"
)

type testConfig struct{ config.Base }

func spec(t *testing.T) boot.Spec {
	topic := kafkatest.Name("boot")
	return boot.Spec{
		Name: "testsvc", Version: "1.0.0-test",
		Topics:    []kafka.Topic{kafka.EventTopic(topic, 2)},
		Publishes: []boot.Publication{{Topic: topic, Type: testevent.V1}},
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestInvalidConfigExitsNamingTheKey(t *testing.T) {
	t.Setenv("ORDERFLOW_KAFKA_BROKERS", "")
	t.Setenv("ORDERFLOW_REGISTRY_URL", "http://127.0.0.1:1")
	t.Setenv("ORDERFLOW_DATABASE_URL", "postgres://x:y@127.0.0.1:1/z")
	t.Setenv("ORDERFLOW_ADMIN_TOKEN", "0123456789abcdef")
	var stderr bytes.Buffer
	code := boot.Run(context.Background(), spec(t), &testConfig{}, nil, &bytes.Buffer{}, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "ORDERFLOW_KAFKA_BROKERS") {
		t.Fatalf("exit %d, stderr %q; want 2 naming ORDERFLOW_KAFKA_BROKERS", code, stderr.String())
	}

	t.Setenv("ORDERFLOW_KAFKA_BROKERS", "127.0.0.1:9092")
	t.Setenv("ORDERFLOW_DATABASE_MAX_CONNS", "many")
	stderr.Reset()
	code = boot.Run(context.Background(), spec(t), &testConfig{}, nil, &bytes.Buffer{}, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "ORDERFLOW_DATABASE_MAX_CONNS") {
		t.Fatalf("exit %d, stderr %q; want 2 naming ORDERFLOW_DATABASE_MAX_CONNS", code, stderr.String())
	}
}

func TestUnknownCommandIsAUsageError(t *testing.T) {
	t.Setenv("ORDERFLOW_KAFKA_BROKERS", "127.0.0.1:9092")
	t.Setenv("ORDERFLOW_REGISTRY_URL", "http://127.0.0.1:1")
	t.Setenv("ORDERFLOW_DATABASE_URL", "postgres://x:y@127.0.0.1:1/z")
	t.Setenv("ORDERFLOW_ADMIN_TOKEN", "0123456789abcdef")
	var stderr bytes.Buffer
	if code := boot.Run(context.Background(), spec(t), &testConfig{}, []string{"frobnicate"}, &bytes.Buffer{}, &stderr); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), "frobnicate") {
		t.Fatalf("stderr %q does not name the command", stderr.String())
	}
}

// ORDERFLOW_CPU_PROFILE profiles the whole run of any subcommand, and a file that cannot
// be written stops the start naming the setting.
func TestCPUProfileSetting(t *testing.T) {
	t.Setenv("ORDERFLOW_KAFKA_BROKERS", "127.0.0.1:9092")
	t.Setenv("ORDERFLOW_REGISTRY_URL", "http://127.0.0.1:1")
	t.Setenv("ORDERFLOW_DATABASE_URL", "postgres://x:y@127.0.0.1:1/z")
	t.Setenv("ORDERFLOW_ADMIN_TOKEN", "0123456789abcdef")
	path := filepath.Join(t.TempDir(), "cpu.pprof")
	t.Setenv("ORDERFLOW_CPU_PROFILE", path)
	var stderr bytes.Buffer
	if code := boot.Run(context.Background(), spec(t), &testConfig{}, []string{"frobnicate"}, &bytes.Buffer{}, &stderr); code != 2 {
		t.Fatalf("exit %d, want 2: %s", code, stderr.String())
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Fatalf("profile %s: %v, %v", path, fi, err)
	}

	t.Setenv("ORDERFLOW_CPU_PROFILE", filepath.Join(t.TempDir(), "missing", "cpu.pprof"))
	stderr.Reset()
	if code := boot.Run(context.Background(), spec(t), &testConfig{}, []string{"frobnicate"}, &bytes.Buffer{}, &stderr); code != 2 ||
		!strings.Contains(stderr.String(), "ORDERFLOW_CPU_PROFILE") {
		t.Fatalf("exit %d, stderr %q; want 2 naming ORDERFLOW_CPU_PROFILE", code, stderr.String())
	}
}

// With a dependency unreachable the service stays up, reports not ready with what it
// waits for, and logs its retries; once the dependency is right it becomes ready.
func TestWaitsForUnreachableDependencies(t *testing.T) {
	dbURL := pgtest.NewDatabase(t, nil)
	brokers := kafkatest.Config(t).Brokers
	registry := kafkatest.RegistryURL(t)

	for _, tc := range []struct {
		name, brokers, registry, waitingFor string
	}{
		{"kafka", "127.0.0.1:1", registry, "kafka"},
		{"registry", strings.Join(brokers, ","), "http://127.0.0.1:1", "schema registry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := freeAddr(t)
			t.Setenv("ORDERFLOW_SERVICE_HTTP_ADDR", addr)
			t.Setenv("ORDERFLOW_KAFKA_BROKERS", tc.brokers)
			t.Setenv("ORDERFLOW_REGISTRY_URL", tc.registry)
			t.Setenv("ORDERFLOW_DATABASE_URL", dbURL)
			t.Setenv("ORDERFLOW_ADMIN_TOKEN", "0123456789abcdef")
			var logs testlog.Buffer
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan int)
			go func() { done <- boot.Run(ctx, spec(t), &testConfig{}, nil, &bytes.Buffer{}, &logs) }()
			defer func() {
				cancel()
				if code := <-done; code != 0 {
					t.Errorf("exit %d after cancel, want 0; logs:\n%s", code, logs.String())
				}
			}()

			deadline := time.Now().Add(20 * time.Second)
			for {
				status, body := readyz(addr)
				retries := strings.Count(logs.String(), `"dependency":"`+tc.waitingFor+`"`)
				if status == http.StatusServiceUnavailable && body["waiting_for"] == tc.waitingFor && retries >= 2 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("readyz %d %v, %d logged retries; logs:\n%s", status, body, retries, logs.String())
				}
				time.Sleep(100 * time.Millisecond)
			}
			if !strings.Contains(logs.String(), `"msg":"waiting for dependency"`) || !strings.Contains(logs.String(), `"retry_in"`) {
				t.Fatalf("logs do not say what the service waits for:\n%s", logs.String())
			}
		})
	}
}

// serveEnv points a service at the test stack, a database of its own and a free address,
// which it returns, with token as its admin token.
func serveEnv(t *testing.T, token string) string {
	addr := freeAddr(t)
	t.Setenv("ORDERFLOW_SERVICE_HTTP_ADDR", addr)
	t.Setenv("ORDERFLOW_KAFKA_BROKERS", strings.Join(kafkatest.Config(t).Brokers, ","))
	t.Setenv("ORDERFLOW_REGISTRY_URL", kafkatest.RegistryURL(t))
	t.Setenv("ORDERFLOW_DATABASE_URL", pgtest.NewDatabase(t, nil))
	t.Setenv("ORDERFLOW_ADMIN_TOKEN", token)
	return addr
}

func TestBecomesReadyWithEverythingUp(t *testing.T) {
	addr := serveEnv(t, "0123456789abcdef")
	var logs testlog.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() { done <- boot.Run(ctx, spec(t), &testConfig{}, nil, &bytes.Buffer{}, &logs) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, body := readyz(addr)
		if status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never ready: %d %v\n%s", status, body, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp, err := http.Get(fmt.Sprintf("http://%s/metrics", addr))
	if err != nil {
		t.Fatal(err)
	}
	var metrics bytes.Buffer
	_, _ = metrics.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(metrics.String(), "outbox_backlog") {
		t.Fatalf("/metrics lacks outbox_backlog")
	}
	if !strings.Contains(logs.String(), `"version":"1.0.0-test"`) {
		t.Fatalf("start-up log lacks the version")
	}
	if strings.Contains(logs.String(), "0123456789abcdef") {
		t.Fatalf("the admin token leaked into the logs")
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}
}

func readyz(addr string) (int, map[string]any) {
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// unreachableDeps configures a service whose dependencies cannot be reached: for
// commands that must fail before they try.
func unreachableDeps(t *testing.T) {
	t.Setenv("ORDERFLOW_KAFKA_BROKERS", "127.0.0.1:1")
	t.Setenv("ORDERFLOW_REGISTRY_URL", "http://127.0.0.1:1")
	t.Setenv("ORDERFLOW_DATABASE_URL", "postgres://x:y@127.0.0.1:1/z")
	t.Setenv("ORDERFLOW_ADMIN_TOKEN", "0123456789abcdef")
}

func TestReplayUsageErrors(t *testing.T) {
	unreachableDeps(t)
	sp := spec(t)
	for _, name := range []string{"totals", "counts"} {
		m := &projection.Model{Name: name, Tables: []projection.Table{{Name: "t", Key: "k"}}, Topics: []string{"x"},
			Apply: func(context.Context, pgx.Tx, projection.Tables, []projection.Event) error { return nil }}
		projection.On[testevent.Thing](m, testevent.V1)
		sp.Models = append(sp.Models, m)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"replay", "--model", "nope"}, `unknown read model "nope"; this service has: [counts totals]`},
		{[]string{"replay", "--from", "yesterday"}, `from "yesterday" is neither earliest nor an RFC 3339 time`},
		{[]string{"replay", "--verify", "--from", "2026-01-01T00:00:00Z"}, "cannot be combined with --from"},
		{[]string{"replay", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"replay", "extra"}, `unexpected argument "extra"`},
	} {
		var stderr bytes.Buffer
		code := boot.Run(context.Background(), sp, &testConfig{}, tc.args, &bytes.Buffer{}, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want 2 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
	var stderr bytes.Buffer
	if code := boot.Run(context.Background(), spec(t), &testConfig{}, []string{"replay"}, &bytes.Buffer{}, &stderr); code != 2 ||
		!strings.Contains(stderr.String(), "has no read models") {
		t.Errorf("replay without models: %d %q", code, stderr.String())
	}
}

// A dlq command that is wrong says what is wrong before it reaches Kafka: a flag in the
// place of the command used to be taken for a missing --group.
func TestDLQUsageErrors(t *testing.T) {
	unreachableDeps(t)
	sp := spec(t)
	sp.ConsumerGroups = []string{"testsvc.a", "testsvc.b"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dlq"}, "dlq list"},
		{[]string{"dlq", "--group", "testsvc.a", "list"}, `unknown dlq command "--group"`},
		{[]string{"dlq", "purge"}, `unknown dlq command "purge"`},
		{[]string{"dlq", "list"}, "--group is required; groups of testsvc: [testsvc.a testsvc.b]"},
		{[]string{"dlq", "list", "--group", "nope"}, `unknown group "nope"`},
		{[]string{"dlq", "list", "--group", "testsvc.a", "7"}, "takes no OFFSET"},
		{[]string{"dlq", "show", "--group", "testsvc.a"}, "dlq show takes one OFFSET"},
		{[]string{"dlq", "show", "--group", "testsvc.a", "x"}, `offset "x" is not a non-negative integer`},
		{[]string{"dlq", "redrive", "--group", "testsvc.a"}, "takes --all or OFFSETs"},
		{[]string{"dlq", "redrive", "--group", "testsvc.a", "--all", "3"}, "takes --all or OFFSETs"},
	} {
		var stderr bytes.Buffer
		code := boot.Run(context.Background(), sp, &testConfig{}, tc.args, &bytes.Buffer{}, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want 2 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}

func TestHealthcheckCommand(t *testing.T) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			_, _ = w.Write([]byte(`{"status":"ok"}`))
			return
		}
		http.Error(w, `{"status":"waiting","waiting_for":"kafka"}`, http.StatusServiceUnavailable)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	t.Setenv("ORDERFLOW_SERVICE_HTTP_ADDR", "0.0.0.0:"+fmt.Sprint(ln.Addr().(*net.TCPAddr).Port))
	var out, errOut bytes.Buffer
	if code := boot.Run(context.Background(), spec(t), &testConfig{}, []string{"healthcheck"}, &out, &errOut); code != 1 ||
		!strings.Contains(errOut.String(), "waiting_for") {
		t.Errorf("not ready: exit %d, %q", code, errOut.String())
	}
	if code := boot.Run(context.Background(), spec(t), &testConfig{}, []string{"healthcheck", "--live"}, &out, &errOut); code != 0 {
		t.Errorf("live: exit %d, %q", code, errOut.String())
	}
	t.Setenv("ORDERFLOW_SERVICE_HTTP_ADDR", "127.0.0.1:1")
	if code := boot.Run(context.Background(), spec(t), &testConfig{}, []string{"healthcheck"}, &out, &errOut); code != 1 {
		t.Errorf("nothing listening: exit %d", code)
	}
}

func TestRegisterSchemasCommand(t *testing.T) {
	sp := spec(t)
	t.Setenv("ORDERFLOW_KAFKA_BROKERS", "127.0.0.1:9092")
	t.Setenv("ORDERFLOW_REGISTRY_URL", kafkatest.RegistryURL(t))
	t.Setenv("ORDERFLOW_DATABASE_URL", "postgres://x:y@127.0.0.1:1/z")
	t.Setenv("ORDERFLOW_ADMIN_TOKEN", "0123456789abcdef")
	var out, errOut bytes.Buffer
	if code := boot.Run(context.Background(), sp, &testConfig{}, []string{"register-schemas"}, &out, &errOut); code != 0 ||
		!strings.Contains(out.String(), sp.Publishes[0].Topic+"-orderflow.test.Thing: schema id ") {
		t.Fatalf("exit %d, out %q, err %q", code, out.String(), errOut.String())
	}
	// A schema that breaks compatibility with what is registered is refused.
	sp.Publishes[0].Type = events.NewType("orderflow.test.Thing.v1", `{"type": "record", "name": "Thing", "namespace": "orderflow.test",
		"fields": [{"name": "id", "type": "long"}]}`)
	out.Reset()
	if code := boot.Run(context.Background(), sp, &testConfig{}, []string{"register-schemas"}, &out, &errOut); code != 1 {
		t.Fatalf("incompatible schema: exit %d, out %q", code, out.String())
	}
}

// With every request connection taken (ORDERFLOW_DATABASE_MAX_CONNS=1 and a request
// holding it, as a flood of requests would), an event appended to the outbox is still
// relayed, consumed and applied: the pipeline has a pool of its own. With one shared pool
// the relay and the consumer would wait for that connection forever.
func TestEventsFlowWhileRequestsHoldEveryConnection(t *testing.T) {
	dbURL := pgtest.NewDatabase(t, nil)
	t.Setenv("ORDERFLOW_SERVICE_HTTP_ADDR", freeAddr(t))
	t.Setenv("ORDERFLOW_KAFKA_BROKERS", strings.Join(kafkatest.Config(t).Brokers, ","))
	t.Setenv("ORDERFLOW_REGISTRY_URL", kafkatest.RegistryURL(t))
	t.Setenv("ORDERFLOW_DATABASE_URL", dbURL)
	t.Setenv("ORDERFLOW_ADMIN_TOKEN", "0123456789abcdef")
	t.Setenv("ORDERFLOW_DATABASE_MAX_CONNS", "1")
	sp := spec(t)
	topic := sp.Topics[0].Name
	applied := make(chan string, 1)
	sp.Wire = func(ctx context.Context, d *boot.Deps) ([]boot.Runner, error) {
		held, err := d.Pool.Acquire(ctx) // the request pool's only connection, never given back
		if err != nil {
			return nil, err
		}
		c, err := d.NewConsumer("boot-"+topic, topic)
		if err != nil {
			return nil, err
		}
		consumer.On(c, testevent.V1, func(ctx context.Context, tx pgx.Tx, m consumer.Message, th testevent.Thing) error {
			applied <- th.ID
			return nil
		})
		publish := func(ctx context.Context) error {
			defer held.Release()
			tx, err := d.EventPool.Begin(ctx)
			if err != nil {
				return err
			}
			defer func() { _ = tx.Rollback(ctx) }()
			ev := events.New(ctx, "test", topic, "k1", testevent.V1, testevent.Thing{ID: "while-busy", Seq: 1, Amount: 1}, events.Cause{})
			if err := d.Outbox.Append(ctx, tx, ev); err != nil {
				return err
			}
			if err := tx.Commit(ctx); err != nil {
				return err
			}
			d.Outbox.Committed(ctx)
			<-ctx.Done()
			return nil
		}
		return []boot.Runner{c.Run, publish}, nil
	}
	var logs testlog.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() { done <- boot.Run(ctx, sp, &testConfig{}, nil, &bytes.Buffer{}, &logs) }()
	select {
	case id := <-applied:
		if id != "while-busy" {
			t.Fatalf("applied %q", id)
		}
	case <-time.After(45 * time.Second):
		t.Fatalf("the event was never applied while requests held every connection\n%s", logs.String())
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d, want 0\n%s", code, logs.String())
	}
}

// The dead-letter endpoints answer a page at a time behind the admin token, and name the
// query parameter that is wrong.
func TestDeadLetterEndpoints(t *testing.T) {
	const token = "0123456789abcdef"
	addr := serveEnv(t, token)
	sp := spec(t)
	group := kafkatest.Name("g")
	sp.ConsumerGroups = []string{group}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() { done <- boot.Run(ctx, sp, &testConfig{}, nil, &bytes.Buffer{}, io.Discard) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if status, _ := readyz(addr); status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
	}

	cl := kafkatest.Client(t)
	if err := kafka.EnsureTopics(ctx, cl, kafka.DeadLetterTopic(group)); err != nil {
		t.Fatal(err)
	}
	source := kafkatest.Topic(t, 1)
	for i := range 3 {
		src := &kgo.Record{Topic: source, Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte("v")}
		if err := cl.ProduceSync(ctx, consumer.DeadLetterRecord(group, src, errors.New("bug"), 1)).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	// The subcommand lists them page by page, as text or as one JSON array.
	var printed bytes.Buffer
	if code := boot.Run(ctx, sp, &testConfig{}, []string{"dlq", "list", "--group", group, "--json"}, &printed, io.Discard); code != 0 {
		t.Fatalf("dlq list --json: exit %d", code)
	}
	var listed []map[string]any
	if err := json.Unmarshal(printed.Bytes(), &listed); err != nil || len(listed) != 3 || listed[2]["key"] != "k2" {
		t.Fatalf("dlq list --json: %s (%v), want an array of 3", printed.String(), err)
	}
	printed.Reset()
	if code := boot.Run(ctx, sp, &testConfig{}, []string{"dlq", "list", "--group", group}, &printed, io.Discard); code != 0 ||
		!strings.HasSuffix(printed.String(), fmt.Sprintf("3 dead letters in %s\n", kafka.DeadLetterTopicName(group))) {
		t.Fatalf("dlq list: exit %d, %q", code, printed.String())
	}

	call := func(method, path, auth string, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	list := "/admin/dlq/" + group
	if status, _ := call("GET", list, "", ""); status != http.StatusUnauthorized {
		t.Fatalf("without the token: %d, want 401", status)
	}
	if status, _ := call("GET", "/admin/dlq/nobody", token, ""); status != http.StatusNotFound {
		t.Fatalf("unknown group: %d, want 404", status)
	}
	for query, field := range map[string]string{"?limit=0": "limit", "?limit=1001": "limit", "?limit=x": "limit", "?from=-1": "from", "?from=1.5": "from",
		"?offset=2": "offset", "?limit=1&limit=2": "limit"} {
		status, out := call("GET", list+query, token, "")
		e, _ := out["error"].(map[string]any)
		if status != http.StatusBadRequest || e["field"] != field {
			t.Fatalf("GET %s: %d %v, want 400 naming %s", query, status, out, field)
		}
	}
	status, out := call("GET", list+"?limit=2", token, "")
	if dl, _ := out["dead_letters"].([]any); status != http.StatusOK || len(dl) != 2 || out["next"] != 2.0 || out["end"] != 3.0 {
		t.Fatalf("first page: %d %v, want 2 dead letters, next 2, end 3", status, out)
	}
	status, out = call("GET", list+"?from=2&limit=2", token, "")
	if dl, _ := out["dead_letters"].([]any); status != http.StatusOK || len(dl) != 1 || out["next"] != nil {
		t.Fatalf("last page: %d %v, want 1 dead letter and no next", status, out)
	}
	if status, out := call("POST", list+"/redrive?all=true", token, `{"offsets": [0]}`); status != http.StatusBadRequest || out["error"].(map[string]any)["field"] != "all" {
		t.Fatalf("redrive with an option in the query: %d %v, want 400 naming all", status, out)
	}
	if status, out := call("POST", list+"/redrive", token, `{"all": true}`); status != http.StatusOK || out["redriven"] != 3.0 {
		t.Fatalf("redrive: %d %v, want 3 re-driven", status, out)
	}
	if status, out := call("POST", list+"/redrive", token, `{"offsets": [7]}`); status != http.StatusUnprocessableEntity {
		t.Fatalf("redrive of a missing offset: %d %v, want 422", status, out)
	}
}
