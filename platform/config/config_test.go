package config_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/orderflow/orderflow/platform/config"
)

func valid() map[string]string {
	return map[string]string{
		"ORDERFLOW_KAFKA_BROKERS": "127.0.0.1:9092",
		"ORDERFLOW_REGISTRY_URL":  "http://127.0.0.1:8081",
		"ORDERFLOW_DATABASE_URL":  "postgres://shop:s3cret@127.0.0.1:5432/shop",
		"ORDERFLOW_ADMIN_TOKEN":   "0123456789abcdef0123",
	}
}

func load(env map[string]string) (*config.Base, error) {
	var b config.Base
	err := config.Load(context.Background(), &b, envconfig.MapLookuper(env))
	return &b, err
}

func TestLoadValid(t *testing.T) {
	b, err := load(valid())
	if err != nil {
		t.Fatal(err)
	}
	if b.HTTPAddr != "127.0.0.1:8080" || b.DatabaseMaxConns != 16 || b.DatabaseEventMaxConns != 12 || b.LogLevel != "info" ||
		b.KafkaSessionTimeout != 10*time.Second {
		t.Fatalf("defaults not applied: %+v", b)
	}
}

func TestDatabaseOverAUnixSocket(t *testing.T) {
	env := valid()
	env["ORDERFLOW_DATABASE_URL"] = "postgres://shop:pw@/shop?host=/run/postgresql&port=5432&sslmode=disable"
	if _, err := load(env); err != nil {
		t.Fatalf("a socket directory in the host parameter was refused: %v", err)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		name    string
		change  map[string]string
		drop    string
		wantKey string
	}{
		{name: "missing brokers", drop: "ORDERFLOW_KAFKA_BROKERS", wantKey: "ORDERFLOW_KAFKA_BROKERS"},
		{name: "missing database", drop: "ORDERFLOW_DATABASE_URL", wantKey: "ORDERFLOW_DATABASE_URL"},
		{name: "bad broker", change: map[string]string{"ORDERFLOW_KAFKA_BROKERS": "nohostport"}, wantKey: "ORDERFLOW_KAFKA_BROKERS"},
		{name: "bad registry", change: map[string]string{"ORDERFLOW_REGISTRY_URL": "ftp://x"}, wantKey: "ORDERFLOW_REGISTRY_URL"},
		{name: "bad int", change: map[string]string{"ORDERFLOW_DATABASE_MAX_CONNS": "lots"}, wantKey: "ORDERFLOW_DATABASE_MAX_CONNS"},
		{name: "database without host", change: map[string]string{"ORDERFLOW_DATABASE_URL": "postgres:///shop?sslmode=disable"}, wantKey: "ORDERFLOW_DATABASE_URL"},
		{name: "event pool too small", change: map[string]string{"ORDERFLOW_DATABASE_EVENT_MAX_CONNS": "2"}, wantKey: "ORDERFLOW_DATABASE_EVENT_MAX_CONNS"},
		{name: "negative queue wait", change: map[string]string{"ORDERFLOW_HTTP_QUEUE_WAIT": "-1s"}, wantKey: "ORDERFLOW_HTTP_QUEUE_WAIT"},
		{name: "bad duration", change: map[string]string{"ORDERFLOW_SHUTDOWN_TIMEOUT": "soon"}, wantKey: "ORDERFLOW_SHUTDOWN_TIMEOUT"},
		{name: "outbox retention too short", change: map[string]string{"ORDERFLOW_OUTBOX_RETENTION": "30s"}, wantKey: "ORDERFLOW_OUTBOX_RETENTION"},
		{name: "negative outbox linger", change: map[string]string{"ORDERFLOW_OUTBOX_LINGER": "-1ms"}, wantKey: "ORDERFLOW_OUTBOX_LINGER"},
		{name: "outbox linger too long", change: map[string]string{"ORDERFLOW_OUTBOX_LINGER": "2s"}, wantKey: "ORDERFLOW_OUTBOX_LINGER"},
		{name: "inbox retention too short", change: map[string]string{"ORDERFLOW_INBOX_RETENTION": "30m"}, wantKey: "ORDERFLOW_INBOX_RETENTION"},
		{name: "read model linger too short", change: map[string]string{"ORDERFLOW_READ_MODEL_LINGER": "50ms"}, wantKey: "ORDERFLOW_READ_MODEL_LINGER"},
		{name: "short token", change: map[string]string{"ORDERFLOW_ADMIN_TOKEN": "short"}, wantKey: "ORDERFLOW_ADMIN_TOKEN"},
		{name: "bad level", change: map[string]string{"ORDERFLOW_LOG_LEVEL": "loud"}, wantKey: "ORDERFLOW_LOG_LEVEL"},
		{name: "session timeout below the broker's minimum", change: map[string]string{"ORDERFLOW_KAFKA_SESSION_TIMEOUT": "2s"}, wantKey: "ORDERFLOW_KAFKA_SESSION_TIMEOUT"},
		{name: "session timeout above the broker's maximum", change: map[string]string{"ORDERFLOW_KAFKA_SESSION_TIMEOUT": "1h"}, wantKey: "ORDERFLOW_KAFKA_SESSION_TIMEOUT"},
		{name: "bad sasl", change: map[string]string{"ORDERFLOW_KAFKA_SASL_MECHANISM": "GSSAPI"}, wantKey: "ORDERFLOW_KAFKA_SASL_MECHANISM"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := valid()
			delete(env, tc.drop)
			for k, v := range tc.change {
				env[k] = v
			}
			_, err := load(env)
			if err == nil || !strings.Contains(err.Error(), tc.wantKey) {
				t.Fatalf("error %v does not name %s", err, tc.wantKey)
			}
		})
	}
}

func TestAllProblemsAtOnce(t *testing.T) {
	env := valid()
	env["ORDERFLOW_LOG_LEVEL"] = "loud"
	env["ORDERFLOW_ADMIN_TOKEN"] = "x"
	_, err := load(env)
	if err == nil || !strings.Contains(err.Error(), "ORDERFLOW_LOG_LEVEL") || !strings.Contains(err.Error(), "ORDERFLOW_ADMIN_TOKEN") {
		t.Fatalf("want both problems, got %v", err)
	}
}

func TestMaskedHidesSecrets(t *testing.T) {
	b, err := load(valid())
	if err != nil {
		t.Fatal(err)
	}
	m := config.Masked(b)
	all := ""
	for _, v := range m {
		all += v + " "
	}
	if strings.Contains(all, "s3cret") || strings.Contains(all, "0123456789abcdef") {
		t.Fatalf("secret leaked: %v", m)
	}
	if !strings.Contains(m["ORDERFLOW_DATABASE_URL"], "127.0.0.1:5432/shop") {
		t.Fatalf("database URL over-masked: %q", m["ORDERFLOW_DATABASE_URL"])
	}
	if m["ORDERFLOW_KAFKA_BROKERS"] != "[127.0.0.1:9092]" {
		t.Fatalf("brokers: %q", m["ORDERFLOW_KAFKA_BROKERS"])
	}
}

func TestKeys(t *testing.T) {
	var cfg struct {
		config.Base
		Extra string `env:"ORDERFLOW_EXTRA,default=x"`
	}
	keys := config.Keys(&cfg)
	byName := map[string]config.Key{}
	for _, k := range keys {
		byName[k.Name] = k
	}
	if k := byName["ORDERFLOW_DATABASE_URL"]; !k.Required || !k.Secret {
		t.Errorf("database url: %+v", k)
	}
	if k := byName["ORDERFLOW_EXTRA"]; k.Required || k.Default != "x" {
		t.Errorf("extra: %+v", k)
	}
	if k := byName["ORDERFLOW_SERVICE_HTTP_ADDR"]; k.Default != "127.0.0.1:8080" {
		t.Errorf("http addr: %+v", k)
	}
	if len(keys) != 24 { // 23 of Base and ORDERFLOW_EXTRA
		t.Errorf("%d keys: %+v", len(keys), keys)
	}
}

// lingering is how crm and logistics configure themselves: Base and Lingering side by side.
type lingering struct {
	config.Base
	config.Lingering
}

func (l *lingering) Validate() error { return errors.Join(l.Base.Validate(), l.Lingering.Validate()) }

// ORDERFLOW_CONSUMER_LINGER defaults to 250ms, takes 0 or 100ms to 5s, and a value
// outside is refused with its name; an unparsable one too.
func TestConsumerLinger(t *testing.T) {
	for value, wantErr := range map[string]bool{"": false, "0s": false, "100ms": false, "5s": false, "50ms": true, "6s": true, "-1s": true, "soon": true} {
		env := valid()
		if value != "" {
			env["ORDERFLOW_CONSUMER_LINGER"] = value
		}
		var l lingering
		err := config.Load(context.Background(), &l, envconfig.MapLookuper(env))
		if wantErr != (err != nil) || (err != nil && !strings.Contains(err.Error(), "ORDERFLOW_CONSUMER_LINGER")) {
			t.Errorf("ORDERFLOW_CONSUMER_LINGER=%q: %v", value, err)
		}
		if value == "" && err == nil && l.ConsumerLinger != 250*time.Millisecond {
			t.Errorf("default linger %v, want 250ms", l.ConsumerLinger)
		}
	}
}
