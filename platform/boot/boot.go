// Package boot is the shared life cycle of an orderflow service binary: it reads and
// validates the configuration, sets up logs, traces and metrics, serves the health
// endpoints at once, waits for Postgres, Kafka and the schema registry (reporting what it
// waits for), migrates the database, declares the service's topics, registers the
// schemas it publishes, runs the outbox relay and the service's consumers, and shuts all
// of it down in order on SIGINT or SIGTERM.
//
// Subcommands: serve (the default), migrate, dlq, version.
package boot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"golang.org/x/sync/errgroup"

	"github.com/orderflow/orderflow/platform/api"
	"github.com/orderflow/orderflow/platform/backoff"
	"github.com/orderflow/orderflow/platform/config"
	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/platform/httpserver"
	"github.com/orderflow/orderflow/platform/kafka"
	"github.com/orderflow/orderflow/platform/outbox"
	"github.com/orderflow/orderflow/platform/pg"
	"github.com/orderflow/orderflow/platform/projection"
	"github.com/orderflow/orderflow/platform/serde"
	"github.com/orderflow/orderflow/platform/telemetry"
)

// Publication is an event type a service publishes on a topic; its schema is registered
// before the service starts, and the service's outbox takes no other event. One with
// Linger set waits up to ORDERFLOW_OUTBOX_LINGER for the next event that cannot wait,
// and leaves in one batch with it.
type Publication = outbox.Publication

// Runner is a long-running component; it returns when ctx ends.
type Runner func(ctx context.Context) error

// Spec describes a service to the runtime.
type Spec struct {
	Name    string
	Version string
	// Migrations holds the service's numbered .sql files at its root.
	Migrations fs.FS
	// Topics are the topics the service owns, created at start.
	Topics []kafka.Topic
	// Publishes lists every event type the service writes.
	Publishes []Publication
	// ConsumerGroups lists the service's consumer groups, for the dlq subcommand.
	ConsumerGroups []string
	// Wire builds the service's components once its dependencies are up: it registers
	// HTTP routes on d.HTTP and returns the runners (consumers, schedulers) to run.
	Wire func(ctx context.Context, d *Deps) ([]Runner, error)
	// Models are the service's read models: each runs live on one replica, and
	// `<service> replay` or POST /admin/replay/{model} rebuilds it from the topics.
	Models []*projection.Model
	// MaxRequestBody bounds REST request bodies and gRPC messages; 64 KiB when zero.
	MaxRequestBody int64
}

// Configurable is a service config struct that embeds config.Base.
type Configurable interface {
	BaseConfig() *config.Base
}

// Deps is what a service's Wire receives.
type Deps struct {
	Log *slog.Logger
	// Pool serves requests and whatever the service runs itself (schedulers, issuers).
	Pool *pgxpool.Pool
	// EventPool serves the event pipeline: consumer groups made with NewConsumer, the
	// read models and the outbox relay. A flood of requests queueing for Pool leaves it
	// alone, so orders already accepted keep completing at full speed.
	EventPool *pgxpool.Pool
	Kafka     kafka.Config
	Producer  *kgo.Client
	Serde     *serde.Serde
	Outbox    *outbox.Outbox
	HTTP      *httpserver.Server
	// API serves the service's proto-defined API as gRPC and REST; register on it.
	API *api.Server
	// InboxRetention is what NewConsumer gives its groups (ORDERFLOW_INBOX_RETENTION).
	InboxRetention time.Duration
}

// NewConsumer returns a consumer group of the service with the default options.
func (d *Deps) NewConsumer(group string, topics ...string) (*consumer.Consumer, error) {
	return d.NewConsumerWith(group, consumer.Options{}, topics...)
}

// NewConsumerWith returns a consumer group of the service with opts. A batch whose
// handlers appended to d.Outbox wakes the relay when it commits (outbox.Outbox.Append).
func (d *Deps) NewConsumerWith(group string, opts consumer.Options, topics ...string) (*consumer.Consumer, error) {
	if opts.InboxRetention == 0 {
		opts.InboxRetention = d.InboxRetention
	}
	return consumer.New(group, topics, d.Kafka, d.EventPool, d.Serde, d.Log, opts)
}

// Main runs the binary and exits with its status: 0 on a clean stop, 1 on a failure, 2
// on invalid configuration or usage.
func Main(spec Spec, cfg Configurable) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Run(ctx, spec, cfg, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// UsageError is a command line that names no known subcommand or flag.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Run is Main without the process: it returns the exit status.
func Run(ctx context.Context, spec Spec, cfg Configurable, args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	if cmd == "version" {
		fmt.Fprintf(stdout, "%s %s\n", spec.Name, spec.Version)
		return 0
	}
	if cmd == "healthcheck" { // for container health checks: images have no curl
		return healthcheck(ctx, args, stdout, stderr)
	}
	if cmd == "config-keys" { // what a deployment's environment is checked against
		if err := json.NewEncoder(stdout).Encode(config.Keys(cfg)); err != nil {
			fmt.Fprintf(stderr, "%s: config-keys: %v\n", spec.Name, err)
			return 1
		}
		return 0
	}
	if err := config.Load(ctx, cfg, nil); err != nil {
		fmt.Fprintf(stderr, "%s: invalid configuration: %v\n", spec.Name, err)
		return 2
	}
	base := cfg.BaseConfig()
	log := telemetry.NewLogger(stderr, spec.Name, level(base.LogLevel))
	if base.CPUProfile != "" {
		stop, err := startCPUProfile(base.CPUProfile)
		if err != nil {
			fmt.Fprintf(stderr, "%s: ORDERFLOW_CPU_PROFILE: %v\n", spec.Name, err)
			return 2
		}
		defer stop()
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, spec, cfg, log)
	case "migrate":
		err = migrateOnly(ctx, spec, base, log)
	case "dlq":
		err = dlqCommand(ctx, spec, base, args, stdout)
	case "replay":
		err = replayCommand(ctx, spec, base, log, args, stdout)
	case "register-schemas":
		err = registerSchemas(spec, base, stdout)
	default:
		err = &UsageError{Msg: fmt.Sprintf("unknown command %q; commands: serve, migrate, register-schemas, dlq, replay, healthcheck, config-keys, version", cmd)}
	}
	var usage *UsageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "%s: %v\n", spec.Name, err)
		return 2
	default:
		log.Error("exiting", "err", err)
		return 1
	}
}

// registerSchemas registers every schema the service publishes, the deploy step before a
// new version rolls out: the registry refuses a schema that breaks BACKWARD_TRANSITIVE
// compatibility, and then the rollout stops before any instance writes it.
func registerSchemas(spec Spec, base *config.Base, stdout io.Writer) error {
	sd := serde.New(base.RegistryURL, 10*time.Second)
	for _, p := range spec.Publishes {
		id, err := sd.Register(p.Topic, p.Type.Schema)
		if err != nil {
			return fmt.Errorf("register %s on %s: %w", p.Type.Name, p.Topic, err)
		}
		subject, _ := serde.Subject(p.Topic, p.Type.Schema)
		fmt.Fprintf(stdout, "%s: schema id %d\n", subject, id)
	}
	return nil
}

// healthcheck asks the service running in this container (ORDERFLOW_SERVICE_HTTP_ADDR)
// for /readyz, or /healthz with --live, and exits 0 when it answers 200, 1 otherwise.
func healthcheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	path := "/readyz"
	if len(args) == 1 && args[0] == "--live" {
		path = "/healthz"
	} else if len(args) > 0 {
		fmt.Fprintln(stderr, "usage: healthcheck [--live]")
		return 2
	}
	// Only the address: a probe must not fail on settings the service itself would
	// report.
	var probe struct {
		HTTPAddr string `env:"ORDERFLOW_SERVICE_HTTP_ADDR,default=127.0.0.1:8080"`
	}
	if err := config.Load(ctx, &probe, nil); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	addr := probe.HTTPAddr
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		fmt.Fprintf(stderr, "ORDERFLOW_SERVICE_HTTP_ADDR %q: %v\n", addr, err)
		return 2
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+path, nil)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", path, err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "%s: %s %s\n", path, resp.Status, body)
		return 1
	}
	fmt.Fprintf(stdout, "%s: %s\n", path, body)
	return 0
}

// startCPUProfile writes a CPU profile of the whole run to path.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// goMemoryLimit is the Go runtime's soft memory limit (GOMEMLIMIT) as the start log shows
// it: the deployment sets it, not the service's configuration.
func goMemoryLimit() string {
	n := debug.SetMemoryLimit(-1)
	if n == math.MaxInt64 {
		return "none"
	}
	return fmt.Sprintf("%dMiB", n>>20)
}

// goGCPercent is the Go runtime's collection target (GOGC) as the start log shows it:
// the deployment sets it, not the service's configuration.
func goGCPercent() string {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	if p < 0 {
		return "off"
	}
	return strconv.Itoa(p)
}

func level(s string) slog.Level {
	var l slog.Level
	_ = l.UnmarshalText([]byte(s))
	return l
}

func kafkaConfig(spec Spec, b *config.Base, log *slog.Logger) kafka.Config {
	return kafka.Config{
		Brokers: b.KafkaBrokers, ClientID: spec.Name, TLS: b.KafkaTLS,
		SASLMechanism: b.KafkaSASLMechanism, SASLUser: b.KafkaSASLUser, SASLPassword: b.KafkaSASLPassword,
		Logger: log, SessionTimeout: b.KafkaSessionTimeout,
	}
}

func serve(ctx context.Context, spec Spec, cfg Configurable, log *slog.Logger) error {
	base := cfg.BaseConfig()
	log.InfoContext(ctx, "starting", "version", spec.Version, "config", config.Masked(cfg), "go_memory_limit", goMemoryLimit(), "go_gc_percent", goGCPercent(), "go_max_procs", runtime.GOMAXPROCS(0), "go_debug", os.Getenv("GODEBUG"))

	// OpenTelemetry reports its own failures (an export, a gauge's query) through this.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("telemetry failed", "err", err) }))
	tel, err := telemetry.Setup(ctx, telemetry.Config{Service: spec.Name, Version: spec.Version,
		OTLPEndpoint: base.OTLPEndpoint, SampleRatio: base.TraceSampleRatio})
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx)
	}()

	pool, err := pg.Open(ctx, base.DatabaseURL, base.DatabaseMaxConns)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	defer pool.Close()
	eventPool, err := pg.Open(ctx, base.DatabaseURL, base.DatabaseEventMaxConns)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	defer eventPool.Close()
	kcfg := kafkaConfig(spec, base, log)
	producer, err := kafka.NewClient(kcfg)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer producer.Close()
	sd := serde.New(base.RegistryURL, 5*time.Second)

	srv := httpserver.New(base.HTTPAddr, spec.Name, spec.Version, tel.MetricsHandler(), log)
	srv.MaxInFlight, srv.QueueWait = base.HTTPMaxInFlight, base.HTTPQueueWait
	srv.AddCheck("postgres", func(ctx context.Context) error { return pool.Ping(ctx) })
	srv.AddCheck("kafka", func(ctx context.Context) error { return kafka.Ping(ctx, producer) })
	srv.AddCheck("registry", registryCheck(base.RegistryURL))
	if len(deadLetterGroups(spec)) > 0 {
		dlqRoutes(srv, spec, kcfg, base.AdminToken)
	}
	rp := &replays{ctx: ctx, spec: spec, jobs: map[string]*replayJob{}, deps: projection.Deps{
		Service: spec.Name, Pool: pool, Kafka: kcfg, Decoder: sd, Log: log}}
	if len(spec.Models) > 0 {
		replayRoutes(srv, rp, base.AdminToken)
	}
	profilingRoutes(srv, base.AdminToken)
	maxBody := spec.MaxRequestBody
	if maxBody == 0 {
		maxBody = 64 << 10
	}
	apiSrv := api.New(maxBody)
	apiSrv.Mount(srv)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Run(gctx, base.ShutdownTimeout) })
	g.Go(func() error {
		runners, err := start(gctx, spec, log, srv, apiSrv, pools{pool, eventPool}, producer, sd, kcfg, pipelineOptions{
			relay:          outbox.RelayOptions{Retention: base.OutboxRetention, Linger: base.OutboxLinger},
			models:         projection.RunnerOptions{Linger: base.ReadModelLinger},
			inboxRetention: base.InboxRetention,
		})
		if err != nil {
			if gctx.Err() != nil {
				return nil // stopped while starting
			}
			return err
		}
		srv.Started()
		apiSrv.Serving(true)
		log.InfoContext(gctx, "started")
		rg, rctx := errgroup.WithContext(gctx)
		for _, r := range runners {
			rg.Go(func() error { return r(rctx) })
		}
		return rg.Wait()
	})
	err = g.Wait()
	// Runners have returned: consumers committed their offsets. Flush what the producer
	// still holds before closing it.
	fctx, cancel := context.WithTimeout(context.Background(), base.ShutdownTimeout)
	defer cancel()
	if ferr := producer.Flush(fctx); ferr != nil {
		log.Warn("producer flush on shutdown failed", "err", ferr)
	}
	log.Info("stopped")
	return err
}

// pools are a service's two connection pools: requests, and the event pipeline.
type pools struct{ requests, events *pgxpool.Pool }

// pipelineOptions are the settings of the event pipeline a service's configuration holds.
type pipelineOptions struct {
	relay          outbox.RelayOptions
	models         projection.RunnerOptions
	inboxRetention time.Duration
}

// start waits for each dependency in turn and builds the service's runners.
func start(ctx context.Context, spec Spec, log *slog.Logger, srv *httpserver.Server, apiSrv *api.Server, ps pools,
	producer *kgo.Client, sd *serde.Serde, kcfg kafka.Config, opts pipelineOptions) ([]Runner, error) {
	wait := func(what string, fn func(context.Context) error) error {
		srv.Waiting(what)
		for attempt := 1; ; attempt++ {
			actx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := fn(actx)
			cancel()
			if err == nil {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			d := backoff.Duration(attempt, 200*time.Millisecond, 10*time.Second)
			log.WarnContext(ctx, "waiting for dependency", "dependency", what, "attempt", attempt, "retry_in", d.String(), "err", err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(d):
			}
		}
	}
	if err := wait("postgres", func(ctx context.Context) error { return ps.requests.Ping(ctx) }); err != nil {
		return nil, err
	}
	if err := wait("postgres migrations", func(ctx context.Context) error { return pg.Migrate(ctx, ps.requests, spec.Migrations, log) }); err != nil {
		return nil, err
	}
	if err := wait("kafka", func(ctx context.Context) error {
		return kafka.EnsureTopics(ctx, producer, spec.Topics...)
	}); err != nil {
		return nil, err
	}
	if err := wait("schema registry", func(context.Context) error {
		for _, p := range spec.Publishes {
			if _, err := sd.Register(p.Topic, p.Type.Schema); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	srv.Waiting("wiring")
	relay, err := outbox.NewRelay(ps.events, producer, log, opts.relay)
	if err != nil {
		return nil, err
	}
	ob := outbox.New(sd)
	ob.SetWaker(relay)
	ob.Declare(spec.Publishes...)
	d := &Deps{Log: log, Pool: ps.requests, EventPool: ps.events, Kafka: kcfg, Producer: producer, Serde: sd, Outbox: ob, HTTP: srv, API: apiSrv,
		InboxRetention: opts.inboxRetention}
	var runners []Runner
	if spec.Wire != nil {
		rs, err := spec.Wire(ctx, d)
		if err != nil {
			return nil, fmt.Errorf("wire: %w", err)
		}
		runners = rs
	}
	for _, m := range spec.Models {
		r, err := projection.NewRunner(projection.Deps{Service: spec.Name, Pool: ps.events, Kafka: kcfg, Decoder: sd, Log: log},
			m, opts.models)
		if err != nil {
			return nil, err
		}
		runners = append(runners, r.Run)
	}
	return append(runners, relay.Run), nil
}

func registryCheck(url string) httpserver.Check {
	client := &http.Client{Timeout: 2 * time.Second}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/config", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("registry answered %s", resp.Status)
		}
		return nil
	}
}

func migrateOnly(ctx context.Context, spec Spec, base *config.Base, log *slog.Logger) error {
	pool, err := pg.Open(ctx, base.DatabaseURL, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := pg.Migrate(ctx, pool, spec.Migrations, log); err != nil {
		return err
	}
	log.InfoContext(ctx, "migrations applied")
	return nil
}
