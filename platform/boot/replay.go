package boot

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/orderflow/orderflow/platform/config"
	"github.com/orderflow/orderflow/platform/httpserver"
	"github.com/orderflow/orderflow/platform/pg"
	"github.com/orderflow/orderflow/platform/projection"
	"github.com/orderflow/orderflow/platform/serde"
)

const replayUsage = `usage: replay [--model NAME] [--from earliest|TIMESTAMP] [--verify] [--dead-letter] [--json]
  --model        the read model to rebuild (default: every model of the service, one after the other)
  --from         earliest (default) or an RFC 3339 time: start every partition at its first record since then
  --verify       rebuild up to the live model's offsets, compare, report every difference, keep the live model
  --dead-letter  send undecodable records to <service>.<model>.replay.dlq instead of stopping
  --json         progress as JSON lines even on a terminal`

// replayOptions are the options shared by the command and the admin endpoint.
type replayOptions struct {
	From       string `json:"from"`
	Verify     bool   `json:"verify"`
	DeadLetter bool   `json:"dead_letter"`
}

func (o replayOptions) options() (projection.Options, error) {
	var po projection.Options
	switch o.From {
	case "", "earliest":
	default:
		t, err := time.Parse(time.RFC3339, o.From)
		if err != nil {
			return po, &UsageError{Msg: fmt.Sprintf("from %q is neither earliest nor an RFC 3339 time such as 2026-01-31T00:00:00Z", o.From)}
		}
		po.From = t
	}
	if o.Verify && !po.From.IsZero() {
		return po, &UsageError{Msg: "--verify compares the whole history and cannot be combined with --from"}
	}
	po.Verify, po.DeadLetter = o.Verify, o.DeadLetter
	return po, nil
}

// replayCommand implements `<service> replay ...`: it rebuilds read models from the
// topics while the service (if it runs) keeps serving, and exits non-zero when a
// verification finds differences.
func replayCommand(ctx context.Context, spec Spec, base *config.Base, log *slog.Logger, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	model := fs.String("model", "", "read model")
	var ro replayOptions
	fs.StringVar(&ro.From, "from", "earliest", "where to start")
	fs.BoolVar(&ro.Verify, "verify", false, "compare instead of swapping")
	fs.BoolVar(&ro.DeadLetter, "dead-letter", false, "dead-letter undecodable records")
	asJSON := fs.Bool("json", false, "JSON lines")
	if err := fs.Parse(args); err != nil {
		return &UsageError{Msg: err.Error() + "\n" + replayUsage}
	}
	if fs.NArg() > 0 {
		return &UsageError{Msg: fmt.Sprintf("unexpected argument %q\n%s", fs.Arg(0), replayUsage)}
	}
	if len(spec.Models) == 0 {
		return &UsageError{Msg: spec.Name + " has no read models"}
	}
	models := spec.Models
	if *model != "" {
		m, err := projection.Find(spec.Models, *model)
		if err != nil {
			return &UsageError{Msg: err.Error()}
		}
		models = []*projection.Model{m}
	}
	opts, err := ro.options()
	if err != nil {
		return err
	}
	pool, err := pg.Open(ctx, base.DatabaseURL, 4)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := pg.Migrate(ctx, pool, spec.Migrations, log); err != nil {
		return err
	}
	d := projection.Deps{Service: spec.Name, Pool: pool, Kafka: kafkaConfig(spec, base, log),
		Decoder: serde.New(base.RegistryURL, 5*time.Second), Log: log}
	var failed []error
	for _, m := range models {
		if *asJSON {
			opts.Progress = projection.JSONLines(stdout)
		} else {
			opts.Progress = projection.Printer(stdout)
		}
		res, err := projection.Rebuild(ctx, d, m, opts)
		if err != nil {
			return fmt.Errorf("replay %s: %w", m.Name, err)
		}
		if *asJSON {
			_ = json.NewEncoder(stdout).Encode(res)
		} else {
			printResult(stdout, res)
		}
		if res.Report != nil && !res.Report.Identical {
			failed = append(failed, fmt.Errorf("read model %s differs from its rebuild", m.Name))
		}
	}
	return errors.Join(failed...)
}

func printResult(w io.Writer, res *projection.Result) {
	fmt.Fprintf(w, "%s: read %d records (%d events) in %s, %.0f records/s", res.Model, res.Records, res.Events,
		res.Duration.Round(time.Millisecond), res.Rate)
	if res.DeadLettered > 0 {
		fmt.Fprintf(w, ", %d dead-lettered", res.DeadLettered)
	}
	if res.Swapped {
		fmt.Fprintf(w, "; swapped in as epoch %d\n", res.Epoch)
		return
	}
	fmt.Fprintln(w)
	if res.Report == nil {
		return
	}
	for _, t := range res.Report.Tables {
		state := "identical"
		if t.LiveRows != t.RebuiltRows || t.LiveHash != t.RebuiltHash {
			state = "DIFFERENT"
		}
		fmt.Fprintf(w, "  %-24s %-9s live %d rows (md5 %s), rebuilt %d rows (md5 %s)\n", t.Table, state,
			t.LiveRows, t.LiveHash, t.RebuiltRows, t.RebuiltHash)
		for _, d := range t.Differences {
			fmt.Fprintf(w, "    %-13s %s\n", d.Kind, d.Key)
		}
		if len(t.Differences) == projection.MaxDifferences {
			fmt.Fprintf(w, "    (first %d differences only)\n", projection.MaxDifferences)
		}
	}
	if res.Report.Identical {
		fmt.Fprintln(w, "  verified: the live model is identical to its rebuild")
	}
}

// replays runs the rebuilds started over HTTP and remembers the last one of each model.
type replays struct {
	ctx  context.Context // the service's lifetime
	deps projection.Deps
	spec Spec

	mu   sync.Mutex
	jobs map[string]*replayJob
}

type replayJob struct {
	Model    string               `json:"model"`
	State    string               `json:"state"` // running, done, failed, cancelled
	Options  replayOptions        `json:"options"`
	Started  time.Time            `json:"started_at"`
	Progress *projection.Progress `json:"progress,omitempty"`
	Result   *projection.Result   `json:"result,omitempty"`
	Error    string               `json:"error,omitempty"`
	cancel   context.CancelFunc
}

// replayRoutes serves rebuilds behind the admin token:
//
//	POST   /admin/replay/{model}  start one; body {"verify": bool, "from": "...", "dead_letter": bool} (optional)
//	GET    /admin/replay/{model}  the running or last rebuild started by this process
//	DELETE /admin/replay/{model}  cancel the running one; the live model stays as it was
func replayRoutes(srv *httpserver.Server, rp *replays, token string) {
	find := func(w http.ResponseWriter, r *http.Request) *projection.Model {
		if _, err := httpserver.Query(r); err != nil { // the options are in the body
			err.Write(w)
			return nil
		}
		m, err := projection.Find(rp.spec.Models, r.PathValue("model"))
		if err != nil {
			httpserver.WriteError(w, http.StatusNotFound, "unknown_model", "model", err.Error())
			return nil
		}
		return m
	}
	srv.Handle("POST /admin/replay/{model}", httpserver.RequireToken(token, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := find(w, r)
		if m == nil {
			return
		}
		var ro replayOptions
		if r.ContentLength != 0 { // no body: rebuild from the earliest offsets and swap
			if err := httpserver.DecodeJSON(w, r, &ro, 1<<12); err != nil {
				err.Message += `; send {"verify": bool, "from": "earliest" or an RFC 3339 time, "dead_letter": bool}`
				err.Write(w)
				return
			}
		}
		opts, err := ro.options()
		if err != nil {
			httpserver.WriteError(w, http.StatusBadRequest, "invalid_options", "from", err.Error())
			return
		}
		job, err := rp.start(m, ro, opts)
		var running *projection.RunningError
		switch {
		case errors.As(err, &running):
			httpserver.WriteError(w, http.StatusConflict, "rebuild_running", "model", err.Error())
		case err != nil:
			httpserver.WriteError(w, http.StatusServiceUnavailable, "rebuild_failed", "", err.Error())
		default:
			httpserver.WriteJSON(w, http.StatusAccepted, job)
		}
	})))
	srv.Handle("GET /admin/replay/{model}", httpserver.RequireToken(token, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := find(w, r)
		if m == nil {
			return
		}
		job, ok := rp.status(m.Name)
		if !ok {
			httpserver.WriteError(w, http.StatusNotFound, "no_rebuild", "model", "no rebuild of "+m.Name+" was started by this process")
			return
		}
		httpserver.WriteJSON(w, http.StatusOK, job)
	})))
	srv.Handle("DELETE /admin/replay/{model}", httpserver.RequireToken(token, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := find(w, r)
		if m == nil {
			return
		}
		if !rp.cancel(m.Name) {
			httpserver.WriteError(w, http.StatusNotFound, "no_rebuild", "model", "no rebuild of "+m.Name+" is running in this process")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})))
}

// start begins a rebuild (synchronously, so a refusal is the caller's answer) and runs
// it in the background.
func (rp *replays) start(m *projection.Model, ro replayOptions, opts projection.Options) (replayJob, error) {
	ctx, cancel := context.WithCancel(rp.ctx)
	job := &replayJob{Model: m.Name, State: "running", Options: ro, Started: time.Now().UTC(), cancel: cancel}
	opts.Progress = func(p projection.Progress) {
		rp.mu.Lock()
		job.Progress = &p
		rp.mu.Unlock()
	}
	b, err := projection.Begin(ctx, rp.deps, m, opts)
	if err != nil {
		cancel()
		return replayJob{}, err
	}
	rp.mu.Lock()
	rp.jobs[m.Name] = job
	snapshot := *job
	rp.mu.Unlock()
	go func() {
		defer cancel()
		res, err := b.Run(ctx)
		rp.mu.Lock()
		defer rp.mu.Unlock()
		job.Result = res
		switch {
		case err == nil:
			job.State = "done"
		case ctx.Err() != nil:
			job.State, job.Error = "cancelled", err.Error()
		default:
			job.State, job.Error = "failed", err.Error()
		}
	}()
	return snapshot, nil
}

func (rp *replays) status(model string) (replayJob, bool) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	j, ok := rp.jobs[model]
	if !ok {
		return replayJob{}, false
	}
	return *j, true
}

func (rp *replays) cancel(model string) bool {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	j, ok := rp.jobs[model]
	if !ok || j.State != "running" {
		return false
	}
	j.cancel()
	return true
}
