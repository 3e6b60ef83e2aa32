// Command bench is orderflow's open-loop load generator (`make bench`). It places orders
// through the shop's REST API at fixed arrival rates, one step per rate: a request is sent
// at its scheduled time whether or not earlier ones have been answered, and every latency
// is measured from that scheduled time, so a slow system cannot hide its slowness by
// slowing the generator down (no coordinated omission).
//
// For every step it reports orders/s offered and completed, HTTP errors, the latency from
// the scheduled POST to the order's OrderConfirmed event (p50/p95/p99/max), per-hop
// latencies from the events' own timestamps (ce_time), the total lag of the services'
// consumer groups sampled every second, and the CPU and peak memory of every process of
// the stack. It writes bench.json and latency.svg (percentiles against offered rate).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	rates := flag.String("rates", "50,100,150,200,300", "offered rates in orders/s, one step each")
	stepDur := flag.Duration("step", 20*time.Second, "how long each rate is offered")
	// A minute: the broker's JIT needs about that long at these rates. After a 10 s warm-up
	// it took 3.4-4.0 ms of CPU per order at 100/s, after 60 s 2.7-3.0 (session 19).
	warmup := flag.Duration("warmup", 60*time.Second, "a first step at the lowest rate, not reported")
	drain := flag.Duration("drain", 30*time.Second, "how long to wait after a step for its orders to be confirmed and e-mailed")
	settle := flag.Duration("settle", 60*time.Second, "how long to wait before a step for the lag the previous one left to clear")
	out := flag.String("out", "bench/out", "directory for bench.json and latency.svg")
	replot := flag.String("replot", "", "only redraw latency.svg (in -out) from this bench.json")
	flag.Parse()
	if *replot != "" {
		var r Report
		b, err := os.ReadFile(*replot)
		if err == nil {
			err = json.Unmarshal(b, &r)
		}
		if err != nil {
			return fmt.Errorf("-replot: %w", err)
		}
		return os.WriteFile(filepath.Join(*out, "latency.svg"), chart(r), 0o644)
	}
	var steps []int
	for _, s := range strings.Split(*rates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 10_000 {
			return fmt.Errorf("-rates: %q is not a rate from 1 to 10000", s)
		}
		steps = append(steps, n)
	}
	env, err := loadEnv()
	if err != nil {
		return err
	}
	g, err := newGenerator(ctx, env)
	if err != nil {
		return err
	}
	defer g.close()
	if err := g.seed(ctx); err != nil {
		return fmt.Errorf("seed the catalog: %w", err)
	}
	procs := newSampler(env.stackDir)
	go procs.run(ctx, 500*time.Millisecond)

	report := Report{Machine: machine(), Started: time.Now().UTC(), StepSeconds: stepDur.Seconds()}
	ours := map[int]bool{}
	running := procs.pids()
	report.Machine.ServiceRuntime = serviceRuntime(running)
	report.Machine.PostgresPages = postgresPages(running["postgres"])
	for _, pids := range running {
		for _, pid := range pids {
			ours[pid] = true
		}
	}
	if report.Machine.OtherStacks = otherStacks(ours); len(report.Machine.OtherStacks) > 0 {
		fmt.Printf("warning: other stacks share this machine and its cores, so these results are not comparable to a run alone: %s\n",
			strings.Join(report.Machine.OtherStacks, ", "))
	}
	if *warmup > 0 {
		fmt.Printf("warm-up: %d orders/s for %v\n", steps[0], *warmup)
		if _, err := g.step(ctx, steps[0], *warmup, *drain, procs); err != nil {
			return err
		}
	}
	for _, rate := range steps {
		g.settle(ctx, *settle)
		fmt.Printf("step: %d orders/s for %v\n", rate, *stepDur)
		res, err := g.step(ctx, rate, *stepDur, *drain, procs)
		if err != nil {
			return err
		}
		report.Steps = append(report.Steps, res)
		printStep(res)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	report.Peak = procs.peaks()
	report.MaxSustained = maxSustained(report.Steps)
	report.Goals = judge(report)
	printSummary(report)
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(report, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*out, "bench.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*out, "latency.svg"), chart(report), 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote %s and %s\n", filepath.Join(*out, "bench.json"), filepath.Join(*out, "latency.svg"))
	return nil
}

// Report is bench.json.
type Report struct {
	Machine      Machine             `json:"machine"`
	Started      time.Time           `json:"started"`
	StepSeconds  float64             `json:"step_seconds"`
	Steps        []Step              `json:"steps"`
	Peak         map[string]ProcPeak `json:"peak_per_process"`
	MaxSustained int                 `json:"max_sustained_orders_per_s"`
	Goals        []Verdict           `json:"goals"`
}

// Machine describes where the numbers were measured.
type Machine struct {
	// Cores is how many cores the benchmark could use: all of the machine's, or those it
	// was pinned to (taskset -c 0 make bench), which every process of the stack inherits.
	Cores int `json:"cores"`
	// OnlineCores is how many the machine has (from /proc/stat; 0 when it could not be
	// read, and then nothing is said about pinning).
	OnlineCores int    `json:"online_cores,omitempty"`
	MemGiB      int    `json:"mem_gib"`
	CPU         string `json:"cpu"`
	Go          string `json:"go"`
	Hostname    string `json:"hostname"`
	// Autogroup is "on" when the kernel schedules each session as a group of its own: every
	// process of the stack, and every PostgreSQL backend, starts its own session, so each
	// gets an equal share of a busy machine however many threads it runs, and nice changes
	// nothing between them (ADR 0017). "off", or empty when the kernel has no such setting.
	Autogroup string `json:"autogroup,omitempty"`
	// OtherStacks are processes of other stacks that were running when the benchmark
	// started (otherStacks): their CPU is in no column but takes the same cores.
	OtherStacks []string `json:"other_stacks,omitempty"`
	// ServiceRuntime is the Go runtime settings (GOMAXPROCS, GOGC, GOMEMLIMIT, GODEBUG)
	// each service process started with, from its environment.
	ServiceRuntime map[string]string `json:"service_runtime,omitempty"`
	// PostgresPages is the pages PostgreSQL's shared memory was on when the run began:
	// "huge" when its processes map huge pages (HugetlbPages; ADR 0023), "4 KiB" when
	// not, empty when its processes were not found.
	PostgresPages string `json:"postgres_pages,omitempty"`
}

func machine() Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	m.Hostname, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		m.OnlineCores = onlineCores(string(b))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/sched_autogroup_enabled"); err == nil {
		m.Autogroup = autogroup(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		fmt.Sscanf(string(b), "MemTotal: %d kB", &kb)
		m.MemGiB = (kb + 512*1024) / (1024 * 1024)
	}
	return m
}

// coresText says how many cores the numbers were measured on, and whether the benchmark
// was pinned to fewer than the machine has.
func (m Machine) coresText() string {
	plural := func(n int) string {
		if n == 1 {
			return "1 core"
		}
		return fmt.Sprintf("%d cores", n)
	}
	if m.OnlineCores > m.Cores {
		return fmt.Sprintf("%s, the benchmark pinned to %d", plural(m.OnlineCores), m.Cores)
	}
	return plural(m.Cores)
}

// maxSustained is the highest offered rate of a step that kept up: every order
// completed, no errors, completed rate within 5% of offered, and consumer lag flat.
func maxSustained(steps []Step) int {
	best := 0
	for _, s := range steps {
		if s.Sustained && s.Offered > best {
			best = s.Offered
		}
	}
	return best
}

func printStep(s Step) {
	fmt.Printf("  offered %d/s  sent %d  accepted %d  errors %d  confirmed %d (%.1f/s)  not e-mailed %d  sustained %v\n",
		s.Offered, s.Sent, s.Accepted, s.Errors, s.Confirmed, s.CompletedPerS, s.Unnotified, s.Sustained)
	if len(s.Shortfalls) > 0 {
		fmt.Printf("  not sustained: %s\n", strings.Join(s.Shortfalls, "; "))
	}
	fmt.Printf("  POST->CONFIRMED ms  p50 %.1f  p95 %.1f  p99 %.1f  max %.1f\n", s.Latency.P50, s.Latency.P95, s.Latency.P99, s.Latency.Max)
	for _, h := range hopOrder {
		if d, ok := s.Hops[h]; ok {
			fmt.Printf("    %-30s p50 %7.1f  p99 %7.1f  max %7.1f  (n=%d)\n", h, d.P50, d.P99, d.Max, d.N)
		}
	}
	if secs := slowest(s.PerSecond, 3); len(secs) > 0 {
		fmt.Printf("    slowest seconds:")
		for _, sec := range secs {
			fmt.Printf("  +%ds (%s) p50 %.1f max %.1f", sec.Offset, sec.At.UTC().Format("15:04:05"), sec.P50, sec.Max)
		}
		fmt.Println()
	}
	fmt.Printf("  lag (consumers and read models, applied offsets)  max %d  first-third low %d avg %.0f  last-third low %d avg %.0f\n",
		s.Lag.Max, s.Lag.FirstLow, s.Lag.FirstThird, s.Lag.LastLow, s.Lag.LastThird)
	fmt.Println(machineLine(s.Machine))
	for _, name := range sortedKeys(s.Processes) {
		p := s.Processes[name]
		fmt.Printf("    %-10s cpu %5.2f cores  peak %6.1f MiB\n", name, p.CPUCores, p.PeakMiB)
	}
	printCost(s.Cost)
}

func printSummary(r Report) {
	fmt.Printf("\nmachine: %s, %d GiB, %s", r.Machine.coresText(), r.Machine.MemGiB, r.Machine.CPU)
	if r.Machine.Autogroup != "" {
		fmt.Printf(", autogroup scheduling %s", r.Machine.Autogroup)
	}
	if p := r.Machine.PostgresPages; p != "" {
		fmt.Printf(", PostgreSQL's shared memory on %s pages", p)
	}
	fmt.Println()
	if t := runtimeText(r.Machine.ServiceRuntime); t != "" {
		fmt.Println(t)
	}
	if len(r.Machine.OtherStacks) > 0 {
		fmt.Printf("other stacks running beside it: %s\n", strings.Join(r.Machine.OtherStacks, ", "))
	}
	// The CPU per order tells runs on a slower hour of the same machine from a change in
	// the suite: compare runs whose figure at a low rate agrees.
	fmt.Printf("%8s %10s %8s %8s %8s %8s %8s %10s %12s\n", "offered", "completed", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors", "sustained", "cpu ms/order")
	for _, s := range r.Steps {
		cpu := "-"
		if s.Cost != nil {
			cpu = fmt.Sprintf("%.1f", sum(s.Cost.CPUMillis))
		}
		fmt.Printf("%8d %10.1f %8.1f %8.1f %8.1f %8.1f %8d %10v %12s\n", s.Offered, s.CompletedPerS, s.Latency.P50, s.Latency.P95, s.Latency.P99, s.Latency.Max, s.Errors, s.Sustained, cpu)
	}
	fmt.Printf("max sustained: %d orders/s\npeak memory per process over the run:\n", r.MaxSustained)
	for _, name := range sortedKeys(r.Peak) {
		fmt.Printf("  %-10s %6.1f MiB (%s)\n", name, r.Peak[name].PeakMiB, r.Peak[name].Measure)
	}
	printGoals(r.Goals)
}
