package deploy

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

var services = []string{"shop", "inventory", "billing", "logistics", "crm"}

// configKey is one line of `<service> config-keys`.
type configKey struct {
	Name     string `json:"name"`
	Required bool   `json:"required"`
}

var (
	keysOnce sync.Once
	keysErr  error
	keysBy   map[string][]configKey
)

// accepted returns the variables each service's binary accepts, from the binary itself.
func accepted(t *testing.T) map[string][]configKey {
	t.Helper()
	keysOnce.Do(func() {
		keysBy = map[string][]configKey{}
		dir, err := os.MkdirTemp("", "config-keys")
		if err != nil {
			keysErr = err
			return
		}
		defer os.RemoveAll(dir)
		for _, s := range services {
			bin := filepath.Join(dir, s)
			build := exec.Command("go", "build", "-o", bin, "./cmd/"+s)
			build.Dir = filepath.Join("..", "..", "services", s)
			if out, err := build.CombinedOutput(); err != nil {
				keysErr = err
				t.Logf("build %s: %s", s, out)
				return
			}
			out, err := exec.Command(bin, "config-keys").Output()
			if err != nil {
				keysErr = err
				return
			}
			var keys []configKey
			if err := json.Unmarshal(out, &keys); err != nil {
				keysErr = err
				return
			}
			keysBy[s] = keys
		}
	})
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	return keysBy
}

// checkEnv reports variables the service does not read (a typo or a stale setting) and
// required ones that are missing.
func checkEnv(t *testing.T, where, svc string, env map[string]bool) {
	t.Helper()
	keys := accepted(t)[svc]
	known := map[string]bool{"GOMEMLIMIT": true, "GOGC": true, "GOMAXPROCS": true, "GODEBUG": true} // read by the Go runtime
	for _, k := range keys {
		known[k.Name] = true
		if k.Required && !env[k.Name] {
			t.Errorf("%s: %s requires %s, which is not set", where, svc, k.Name)
		}
	}
	var unknown []string
	for name := range env {
		if !known[name] {
			unknown = append(unknown, name)
		}
	}
	sort.Strings(unknown)
	for _, name := range unknown {
		t.Errorf("%s: %s does not read %s (a typo, or a setting it no longer has)", where, svc, name)
	}
}

func loadCompose(t *testing.T, env map[string]string) *types.Project {
	t.Helper()
	var environ []string
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	opts, err := cli.NewProjectOptions([]string{"../../docker-compose.yml"},
		cli.WithWorkingDirectory("../.."), cli.WithEnv(environ), cli.WithResolvedPaths(true), cli.WithInterpolation(true))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// secrets are what deploy/compose/gen-env.sh writes into .env.
func secrets() map[string]string {
	env := map[string]string{"ORDERFLOW_PG_PASSWORD": "x", "ORDERFLOW_ADMIN_TOKEN": "0123456789abcdef0123", "GRAFANA_ADMIN_PASSWORD": "x"}
	for _, db := range []string{"shop", "inventory", "billing", "logistics", "crm", "schemaregistry"} {
		env["PW_"+db] = "pw-" + db
	}
	return env
}

func TestComposeLoadsAndMatchesEveryServiceConfig(t *testing.T) {
	p := loadCompose(t, secrets())
	for _, want := range []string{"postgres", "kafka", "kafka-topics", "registry", "mailpit", "otel-collector", "jaeger", "prometheus", "grafana"} {
		if _, err := p.GetService(want); err != nil {
			t.Errorf("compose has no %s: %v", want, err)
		}
	}
	for _, s := range services {
		svc, err := p.GetService(s)
		if err != nil {
			t.Errorf("compose has no %s", s)
			continue
		}
		env := map[string]bool{}
		for k, v := range svc.Environment {
			if v == nil || *v == "" {
				t.Errorf("compose: %s has %s without a value", s, k)
			}
			env[k] = true
		}
		checkEnv(t, "docker-compose.yml", s, env)
		if svc.Build == nil || svc.Build.Dockerfile != "services/"+s+"/Dockerfile" {
			t.Errorf("compose: %s is not built from services/%s/Dockerfile: %+v", s, s, svc.Build)
		}
		if svc.HealthCheck == nil || !slices.Contains(svc.HealthCheck.Test, "healthcheck") {
			t.Errorf("compose: %s has no healthcheck through its binary", s)
		}
		for _, dep := range []string{"postgres", "kafka-topics", "registry"} {
			if _, ok := svc.DependsOn[dep]; !ok {
				t.Errorf("compose: %s does not depend on %s", s, dep)
			}
		}
		if c := svc.DependsOn["postgres"].Condition; c != types.ServiceConditionHealthy {
			t.Errorf("compose: %s waits for postgres with condition %q, want healthy", s, c)
		}
		if db := *svc.Environment["ORDERFLOW_DATABASE_URL"]; !strings.Contains(db, "//"+s+":pw-"+s+"@postgres:5432/"+s+"?") {
			t.Errorf("compose: %s connects as %q, want its own role and database", s, db)
		}
	}
	// Prometheus scrapes every service, and the dashboard and collector configs exist.
	prom, err := os.ReadFile("../../deploy/compose/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range services {
		if !strings.Contains(string(prom), `"`+s+`:8080"`) {
			t.Errorf("prometheus does not scrape %s", s)
		}
	}
	var dash struct {
		Panels []struct {
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	raw, err := os.ReadFile("../../deploy/compose/grafana/dashboards/orderflow.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, metric := range []string{"consumer_lag", "consumer_event_age_seconds_bucket", "projection_lag", "outbox_backlog", "consumer_inbox_purge_failures_total"} {
		if !strings.Contains(strings.Join(exprs, "\n"), metric) {
			t.Errorf("the dashboard does not chart %s", metric)
		}
	}
}

// Without the secrets, compose refuses to start and names what is missing.
func TestComposeRequiresSecrets(t *testing.T) {
	env := secrets()
	delete(env, "ORDERFLOW_ADMIN_TOKEN")
	opts, err := cli.NewProjectOptions([]string{"../../docker-compose.yml"}, cli.WithWorkingDirectory("../.."),
		cli.WithEnv(envList(env)), cli.WithInterpolation(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := opts.LoadProject(context.Background()); err == nil || !strings.Contains(err.Error(), "ORDERFLOW_ADMIN_TOKEN") {
		t.Fatalf("got %v, want an error naming ORDERFLOW_ADMIN_TOKEN", err)
	}
}

func envList(env map[string]string) []string {
	var out []string
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}
