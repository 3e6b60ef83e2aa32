// Package config reads a service's typed configuration from the environment, validates
// all of it at start, and renders it for the start-up log with secrets masked.
//
// A config is a struct whose fields carry `env:"NAME,required"` or
// `env:"NAME,default=VALUE"` tags (github.com/sethvargo/go-envconfig), and `secret:"true"`
// on fields that must never be printed. Every error names the variable it is about, and
// Load reports all problems at once, not the first.
package config

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"
)

// Validator is implemented by configs with rules beyond types and presence.
type Validator interface {
	Validate() error
}

// Load fills cfg, a pointer to a config struct, from the environment looked up by
// lookup (nil for the process environment) and validates it.
func Load(ctx context.Context, cfg any, lookup envconfig.Lookuper) error {
	if lookup == nil {
		lookup = envconfig.OsLookuper()
	}
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: cfg, Lookuper: lookup}); err != nil {
		return nameKey(cfg, err)
	}
	if v, ok := cfg.(Validator); ok {
		return v.Validate()
	}
	return nil
}

// nameKey rewrites go-envconfig's parse errors, which start with the Go field name, to
// start with the variable name the operator actually sets.
func nameKey(cfg any, err error) error {
	keys := map[string]string{}
	walk(reflect.ValueOf(cfg), func(f reflect.StructField, _ reflect.Value, key string) { keys[f.Name] = key })
	// Errors of embedded structs read "Base: Field: reason".
	parts := strings.Split(err.Error(), ": ")
	for i, part := range parts[:len(parts)-1] {
		if key, known := keys[part]; known {
			return fmt.Errorf("%s: %s", key, strings.Join(parts[i+1:], ": "))
		}
	}
	return err
}

// walk calls fn for every field with an env tag, descending into embedded structs.
func walk(v reflect.Value, fn func(f reflect.StructField, v reflect.Value, key string)) {
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous || (f.Type.Kind() == reflect.Struct && f.Tag.Get("env") == "") {
			walk(v.Field(i), fn)
			continue
		}
		if key, _, _ := strings.Cut(f.Tag.Get("env"), ","); key != "" {
			fn(f, v.Field(i), key)
		}
	}
}

// Lingering is the setting of a service whose consumer group no one waits on (crm's
// e-mails, logistics' shipments); such a service embeds it beside Base.
type Lingering struct {
	// ConsumerLinger is how long the broker may hold the group's fetch to gather records
	// for one transaction (consumer.Options.Linger); 0 applies every event as it
	// arrives. The group's reactions come up to the linger later, and the CPU it no
	// longer spends on a fetch and a transaction per event goes to the groups an order's
	// confirmation waits for: at 100 orders/s, 100ms for crm and logistics halved the
	// POST-to-confirmed p99, and 250ms took another sixth off it and a third off the p50
	// (alternating pairs of make bench, session 14).
	ConsumerLinger time.Duration `env:"ORDERFLOW_CONSUMER_LINGER,default=250ms"`
}

// Validate checks the linger.
func (l Lingering) Validate() error {
	var p Problems
	if l.ConsumerLinger != 0 && (l.ConsumerLinger < 100*time.Millisecond || l.ConsumerLinger > 5*time.Second) {
		p.Add("ORDERFLOW_CONSUMER_LINGER", "%v is neither 0 nor between 100ms and 5s (an idle group asks the broker once per linger, and every 100ms without one: shorter ones fetch more, not less)", l.ConsumerLinger)
	}
	return p.Err()
}

// Problems collects validation errors that each name their variable.
type Problems []error

// Add records a problem with variable key.
func (p *Problems) Add(key, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

// Err joins the problems, or returns nil when there are none.
func (p Problems) Err() error { return errors.Join(p...) }

// Base is the configuration every orderflow service shares. Services embed it.
type Base struct {
	HTTPAddr string `env:"ORDERFLOW_SERVICE_HTTP_ADDR,default=127.0.0.1:8080"`
	// HTTPMaxInFlight bounds the REST requests served at once; one more waits up to
	// HTTPQueueWait for a slot, then gets 503 overloaded.
	HTTPMaxInFlight int           `env:"ORDERFLOW_HTTP_MAX_IN_FLIGHT,default=64"`
	HTTPQueueWait   time.Duration `env:"ORDERFLOW_HTTP_QUEUE_WAIT,default=500ms"`

	KafkaBrokers       []string `env:"ORDERFLOW_KAFKA_BROKERS,required"`
	KafkaTLS           bool     `env:"ORDERFLOW_KAFKA_TLS,default=false"`
	KafkaSASLMechanism string   `env:"ORDERFLOW_KAFKA_SASL_MECHANISM"`
	KafkaSASLUser      string   `env:"ORDERFLOW_KAFKA_SASL_USER"`
	KafkaSASLPassword  string   `env:"ORDERFLOW_KAFKA_SASL_PASSWORD" secret:"true"`
	// KafkaSessionTimeout is how long a consumer group's coordinator waits for a member
	// that stopped heartbeating before it gives that member's partitions to the others.
	// A replica that crashes (killed, out of memory) leaves its partitions unread for
	// this long, restarted or not: its new process is a new member. franz-go's default
	// is 45 s; a member heartbeats every third of it.
	KafkaSessionTimeout time.Duration `env:"ORDERFLOW_KAFKA_SESSION_TIMEOUT,default=10s"`

	RegistryURL string `env:"ORDERFLOW_REGISTRY_URL,required"`

	DatabaseURL string `env:"ORDERFLOW_DATABASE_URL,required" secret:"true"`
	// DatabaseMaxConns sizes the pool of requests and of what the service wires itself;
	// DatabaseEventMaxConns the event pipeline's own pool (outbox relay, consumer groups,
	// live read models), so that requests queueing for connections under a flood cannot
	// starve the events that complete the orders already accepted.
	DatabaseMaxConns      int32 `env:"ORDERFLOW_DATABASE_MAX_CONNS,default=16"`
	DatabaseEventMaxConns int32 `env:"ORDERFLOW_DATABASE_EVENT_MAX_CONNS,default=12"`
	// OutboxRetention is how long published outbox rows stay for inspection before the
	// relay deletes them; about 1 KiB per event, so at high rates it sizes the database.
	OutboxRetention time.Duration `env:"ORDERFLOW_OUTBOX_RETENTION,default=1h"`
	// OutboxLinger is how long the relay may hold events no one waits on at once (a
	// service's lingering publications: boot.Publication.Linger) for the next event that
	// cannot wait, so that both leave in one batch and wake their readers once; 0
	// publishes every commit at once.
	OutboxLinger time.Duration `env:"ORDERFLOW_OUTBOX_LINGER,default=20ms"`
	// InboxRetention is how long a consumer group keeps the inbox rows of the events it
	// applied (~200 bytes each, ~2 KB per order) before purging them; a purge leaves every
	// event applied once (platform/consumer, PurgeInbox). Keep it longer than any outage of
	// a relay, which publishes again what it published just before it stopped.
	InboxRetention time.Duration `env:"ORDERFLOW_INBOX_RETENTION,default=168h"`
	// ReadModelLinger is how long a live read model lets the broker gather records for
	// one batch; 0 applies every event as it arrives. A linger trades the models'
	// freshness (they trail the events by up to the linger) for fewer fetches and
	// transactions, and so for CPU the write side's consumers then have: at 25 orders/s,
	// 200ms took a fifth of the suite's CPU and half of the POST-to-confirmed p99.
	ReadModelLinger time.Duration `env:"ORDERFLOW_READ_MODEL_LINGER,default=200ms"`

	AdminToken string `env:"ORDERFLOW_ADMIN_TOKEN,required" secret:"true"`

	LogLevel         string        `env:"ORDERFLOW_LOG_LEVEL,default=info"`
	OTLPEndpoint     string        `env:"ORDERFLOW_OTLP_ENDPOINT"`
	TraceSampleRatio float64       `env:"ORDERFLOW_TRACE_SAMPLE_RATIO,default=1"`
	ShutdownTimeout  time.Duration `env:"ORDERFLOW_SHUTDOWN_TIMEOUT,default=20s"`
	// CPUProfile, when set, is the file a CPU profile of the whole run (any subcommand)
	// is written to, for `go tool pprof`.
	CPUProfile string `env:"ORDERFLOW_CPU_PROFILE"`
}

// BaseConfig returns the shared part of a service's configuration; a service config
// that embeds Base gets it, and with it boot.Configurable, for free.
func (b *Base) BaseConfig() *Base { return b }

// Validate checks what types alone cannot.
func (b *Base) Validate() error {
	var p Problems
	if _, _, err := net.SplitHostPort(b.HTTPAddr); err != nil {
		p.Add("ORDERFLOW_SERVICE_HTTP_ADDR", "%q is not host:port", b.HTTPAddr)
	}
	if len(b.KafkaBrokers) == 0 {
		p.Add("ORDERFLOW_KAFKA_BROKERS", "is empty; give host:port[,host:port...]")
	}
	for _, br := range b.KafkaBrokers {
		if _, _, err := net.SplitHostPort(br); err != nil {
			p.Add("ORDERFLOW_KAFKA_BROKERS", "%q is not host:port", br)
		}
	}
	switch b.KafkaSASLMechanism {
	case "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	default:
		p.Add("ORDERFLOW_KAFKA_SASL_MECHANISM", "%q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", b.KafkaSASLMechanism)
	}
	if b.KafkaSASLMechanism != "" && (b.KafkaSASLUser == "" || b.KafkaSASLPassword == "") {
		p.Add("ORDERFLOW_KAFKA_SASL_USER", "SASL needs ORDERFLOW_KAFKA_SASL_USER and ORDERFLOW_KAFKA_SASL_PASSWORD")
	}
	if b.KafkaSessionTimeout < 6*time.Second || b.KafkaSessionTimeout > 30*time.Minute {
		p.Add("ORDERFLOW_KAFKA_SESSION_TIMEOUT", "%v is not between 6s and 30m (the bounds a Kafka broker accepts by default: group.min.session.timeout.ms and group.max.session.timeout.ms)", b.KafkaSessionTimeout)
	}
	if u, err := url.Parse(b.RegistryURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.Add("ORDERFLOW_REGISTRY_URL", "%q is not an http(s) URL", b.RegistryURL)
	}
	// The server is the URL's host, or a host parameter: a Unix socket directory
	// (postgres:///shop?host=/run/postgresql&port=5432), as libpq reads it.
	if u, err := url.Parse(b.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") ||
		(u.Host == "" && u.Query().Get("host") == "") {
		p.Add("ORDERFLOW_DATABASE_URL", "not a postgres:// URL with a host (or a host parameter naming a socket directory)")
	}
	if b.HTTPMaxInFlight < 1 {
		p.Add("ORDERFLOW_HTTP_MAX_IN_FLIGHT", "%d is below 1", b.HTTPMaxInFlight)
	}
	if b.HTTPQueueWait < 0 {
		p.Add("ORDERFLOW_HTTP_QUEUE_WAIT", "%s is negative", b.HTTPQueueWait)
	}
	if b.DatabaseMaxConns < 1 {
		p.Add("ORDERFLOW_DATABASE_MAX_CONNS", "%d is below 1", b.DatabaseMaxConns)
	}
	if b.DatabaseEventMaxConns < 3 {
		p.Add("ORDERFLOW_DATABASE_EVENT_MAX_CONNS", "%d is below 3 (the outbox relay holds two connections: its leader lock and its LISTEN)", b.DatabaseEventMaxConns)
	}
	if b.OutboxRetention < time.Minute {
		p.Add("ORDERFLOW_OUTBOX_RETENTION", "%v is below 1m (the relay deletes published rows once a minute)", b.OutboxRetention)
	}
	if b.OutboxLinger < 0 || b.OutboxLinger > time.Second {
		p.Add("ORDERFLOW_OUTBOX_LINGER", "%v is not between 0 and 1s (it delays the events no one waits on at once; longer would only make them late)", b.OutboxLinger)
	}
	if b.InboxRetention < time.Hour {
		p.Add("ORDERFLOW_INBOX_RETENTION", "%v is below 1h (a relay that restarts publishes again what it published just before it stopped; the inbox must still know those events)", b.InboxRetention)
	}
	if b.ReadModelLinger != 0 && (b.ReadModelLinger < 100*time.Millisecond || b.ReadModelLinger > 5*time.Second) {
		p.Add("ORDERFLOW_READ_MODEL_LINGER", "%v is neither 0 nor between 100ms and 5s (an idle model asks the broker once per linger: shorter ones fetch more, not less)", b.ReadModelLinger)
	}
	if len(b.AdminToken) < 16 {
		p.Add("ORDERFLOW_ADMIN_TOKEN", "must be at least 16 characters")
	}
	switch b.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		p.Add("ORDERFLOW_LOG_LEVEL", "%q is not debug, info, warn or error", b.LogLevel)
	}
	if b.TraceSampleRatio < 0 || b.TraceSampleRatio > 1 {
		p.Add("ORDERFLOW_TRACE_SAMPLE_RATIO", "%v is not between 0 and 1", b.TraceSampleRatio)
	}
	if b.ShutdownTimeout <= 0 {
		p.Add("ORDERFLOW_SHUTDOWN_TIMEOUT", "%v is not positive", b.ShutdownTimeout)
	}
	return p.Err()
}

// Masked renders cfg as variable=value pairs for the start-up log, with secret fields
// replaced by "*****" (or, for URLs, only their password masked).
func Masked(cfg any) map[string]string {
	out := map[string]string{}
	walk(reflect.ValueOf(cfg), func(f reflect.StructField, v reflect.Value, key string) {
		val := fmt.Sprint(v.Interface())
		if f.Tag.Get("secret") == "true" && val != "" {
			if u, err := url.Parse(val); err == nil && u.User != nil && u.Host != "" {
				val = u.Redacted()
			} else {
				val = "*****"
			}
		}
		out[key] = val
	})
	return out
}

// Key is a variable a config reads.
type Key struct {
	Name     string `json:"name"`
	Required bool   `json:"required"`
	Default  string `json:"default,omitempty"`
	Secret   bool   `json:"secret,omitempty"`
}

// Keys lists every variable cfg reads, in declaration order: what deployments check
// their environment against (`<service> config-keys`).
func Keys(cfg any) []Key {
	var keys []Key
	walk(reflect.ValueOf(cfg), func(f reflect.StructField, _ reflect.Value, name string) {
		k := Key{Name: name, Secret: f.Tag.Get("secret") == "true"}
		_, opts, _ := strings.Cut(f.Tag.Get("env"), ",")
		for _, o := range strings.Split(opts, ",") {
			switch {
			case o == "required":
				k.Required = true
			case strings.HasPrefix(o, "default="):
				k.Default = strings.TrimPrefix(o, "default=")
			}
		}
		keys = append(keys, k)
	})
	return keys
}
