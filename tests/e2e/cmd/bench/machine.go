package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The machine as a whole over a step. Runs of the same code on this machine have differed
// by a factor of three at one rate, every hop slower alike, with the same CPU per order:
// the machine itself was slower or shared. Three readings tell such a run apart: how the
// cores were spent over the step (/proc/stat, including time the hypervisor gave to other
// guests, "stolen"), how fast one core hashes a fixed buffer just before the step, and two
// probes during the step, timed by their own CPU time: the same hashing, and a walk
// through memory that the caches the host shares decide.

// MachineUsage is how the machine's cores were spent over a step, in cores.
type MachineUsage struct {
	BusyCores   float64 `json:"busy_cores"`
	IdleCores   float64 `json:"idle_cores"`
	IOWaitCores float64 `json:"iowait_cores"`
	StolenCores float64 `json:"stolen_cores"`
	// CoreMBps is how many MB/s of SHA-256 one core computed just before the step, while
	// the suite was idle: lower than usual means a slower or busier host.
	CoreMBps float64 `json:"core_mb_per_s"`
	// InStep is what the probes found during the step (see sampleCore); absent when
	// nothing was sampled. InStepError is the first probe that failed, if any did.
	InStep      *CoreInStep `json:"core_in_step,omitempty"`
	InStepError string      `json:"core_in_step_error,omitempty"`
	// Disk is what the disk probe found during the step (see sampleDisk); absent when
	// nothing was sampled. DiskError is why the probe stopped, if it did.
	Disk      *DiskInStep `json:"disk_in_step,omitempty"`
	DiskError string      `json:"disk_in_step_error,omitempty"`
	// PageTablesMiB is the most page tables the stack's processes held at one sample
	// during the step (their VmPTE summed): PostgreSQL's backends each map its shared
	// memory, and on 4 KiB pages their tables outgrow the L3 cache (ADR 0023).
	PageTablesMiB float64 `json:"page_tables_mib,omitempty"`
	// Error is why the cores could not be read; the core speed is kept.
	Error string `json:"error,omitempty"`
}

// cpuTimes is the first line of /proc/stat, in seconds, at one moment.
type cpuTimes struct {
	at                        time.Time
	busy, idle, iowait, steal float64
}

// parseCPUTimes reads the machine-wide "cpu" line of /proc/stat: user nice system idle
// iowait irq softirq steal (guest time is already counted in user and nice).
func parseCPUTimes(stat string, at time.Time) (cpuTimes, error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return cpuTimes{}, fmt.Errorf("/proc/stat: first line %q is not the machine's cpu line", line)
	}
	var v [8]float64
	for i := range v {
		n, err := strconv.ParseFloat(f[i+1], 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("/proc/stat: field %d of the cpu line: %w", i+1, err)
		}
		v[i] = n / clockTicks
	}
	return cpuTimes{at: at, busy: v[0] + v[1] + v[2] + v[5] + v[6], idle: v[3], iowait: v[4], steal: v[7]}, nil
}

// autogroup reads /proc/sys/kernel/sched_autogroup_enabled: "on", "off", or empty for
// anything else.
func autogroup(setting string) string {
	switch strings.TrimSpace(setting) {
	case "1":
		return "on"
	case "0":
		return "off"
	}
	return ""
}

// onlineCores counts the per-core lines ("cpu0", "cpu1", ...) of /proc/stat.
func onlineCores(stat string) int {
	n := 0
	for _, l := range strings.Split(stat, "\n") {
		if len(l) > 3 && strings.HasPrefix(l, "cpu") && l[3] >= '0' && l[3] <= '9' {
			n++
		}
	}
	return n
}

func readCPUTimes() (cpuTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	return parseCPUTimes(string(b), time.Now())
}

// machineUsage is how the cores were spent between a and b.
func machineUsage(a, b cpuTimes, coreMBps float64) MachineUsage {
	secs := b.at.Sub(a.at).Seconds()
	if a.at.IsZero() || b.at.IsZero() || secs <= 0 {
		return MachineUsage{CoreMBps: coreMBps, Error: "no two readings of /proc/stat over the step"}
	}
	per := func(x, y float64) float64 { return round2(max(0, y-x) / secs) }
	return MachineUsage{
		BusyCores:   per(a.busy, b.busy),
		IdleCores:   per(a.idle, b.idle),
		IOWaitCores: per(a.iowait, b.iowait),
		StolenCores: per(a.steal, b.steal),
		CoreMBps:    coreMBps,
	}
}

// CoreInStep summarises a step's samples of sampleCore.
type CoreInStep struct {
	Samples int `json:"samples"`
	// HashMBps is the median MB/s of SHA-256 per second of the probe's CPU time, and
	// HashLowestMBps the slowest sample's.
	HashMBps       float64 `json:"hash_mb_per_s"`
	HashLowestMBps float64 `json:"hash_lowest_mb_per_s"`
	// WalkNs is the median nanoseconds of CPU time per load of the memory walk, and
	// WalkSlowestNs the slowest sample's.
	WalkNs        float64 `json:"walk_ns_per_load"`
	WalkSlowestNs float64 `json:"walk_slowest_ns_per_load"`
}

// coreSample is one second's reading of both probes.
type coreSample struct{ hashMBps, walkNs float64 }

// coreInStep summarises samples; nil when there are none. The median of an even count is
// the lower middle sample.
func coreInStep(samples []coreSample) *CoreInStep {
	if len(samples) == 0 {
		return nil
	}
	hash := make([]float64, len(samples))
	walk := make([]float64, len(samples))
	for i, c := range samples {
		hash[i], walk[i] = c.hashMBps, c.walkNs
	}
	slices.Sort(hash)
	slices.Sort(walk)
	mid := (len(samples) - 1) / 2
	return &CoreInStep{Samples: len(samples),
		HashMBps: float64(int(hash[mid])), HashLowestMBps: float64(int(hash[0])),
		WalkNs: round(walk[mid]), WalkSlowestNs: round(walk[len(walk)-1])}
}

// sampleCore reads two probes every interval until ctx ends, each timed by the CPU time
// of its own (locked) thread: while the suite keeps the cores busy, a clock on the wall
// would time the wait for a core as well, and the thread's CPU time leaves it out.
//   - SHA-256 of a 1 MiB buffer, twice: the core's own speed, its clock and whatever
//     shares it below the guest (a sibling hyperthread of the host's). The buffer stays
//     in the core's L2, so the caches do not enter.
//   - walkLoads steps of a random walk over walkBytes, each load depending on the last:
//     how long memory takes to answer, which the L3 cache that the host's other guests
//     share decides, and the suite's own working sets, whose every process depends on
//     the same thing.
//
// About 5 ms of CPU a second, which the generator's column includes, and 4 MiB of it. A
// sample whose probe failed is left out; the first failure is returned beside the others.
func sampleCore(ctx context.Context, interval time.Duration) ([]coreSample, error) {
	buf := make([]byte, 1<<20)
	walk := newMemoryWalk(walkBytes, 1)
	var failed error
	samples := sampleEvery(ctx, interval, func() (coreSample, bool) {
		h, err := hashPerCPUSecond(buf, 2)
		var w float64
		if err == nil {
			w, err = walk.nsPerLoad(walkLoads)
		}
		if err != nil {
			failed = cmp.Or(failed, err)
			return coreSample{}, false
		}
		return coreSample{hashMBps: h, walkNs: w}, true
	})
	return samples, failed
}

// hashPerCPUSecond hashes buf n times on a locked OS thread and returns MB per second of
// that thread's CPU time.
func hashPerCPUSecond(buf []byte, n int) (float64, error) {
	d, err := onThreadCPU(func() {
		for range n {
			sha256.Sum256(buf)
		}
	})
	if err != nil {
		return 0, err
	}
	return float64(n*len(buf)) / 1e6 / d.Seconds(), nil
}

const (
	// Four times the L2 cache of a core of the machines this ran on and an eighth of
	// their L3: a walk that misses L2 and stays in L3 as far as the host's other guests
	// leave it there. On the idle AMD EPYC of session 31 a load of it took 41-161 ns,
	// median 147 (of a 2 MiB walk 16-156); of a 16 MiB walk 145-222 idle and 190-240
	// under the suite's load whatever its cost per order, which is memory's own latency.
	walkBytes = 4 << 20
	walkLoads = 20_000
	lineWords = 16 // a 64-byte cache line of uint32
)

// memoryWalk is a single random cycle through the cache lines of its buffer: the first
// word of each line holds the index of the next line's, so that each load waits for the
// one before and no prefetcher can guess where it goes. Successive samples go on from
// where the last stopped, so that none meets the lines its predecessor brought in.
type memoryWalk struct {
	next []uint32
	at   uint32
}

func newMemoryWalk(bytes int, seed uint64) *memoryWalk {
	lines := bytes / (lineWords * 4)
	order := rand.New(rand.NewPCG(seed, seed)).Perm(lines)
	next := make([]uint32, lines*lineWords)
	for i, from := range order {
		next[from*lineWords] = uint32(order[(i+1)%lines] * lineWords)
	}
	return &memoryWalk{next: next, at: uint32(order[0] * lineWords)}
}

// nsPerLoad takes n steps of the walk on a locked OS thread and returns the thread's CPU
// nanoseconds per step.
func (w *memoryWalk) nsPerLoad(n int) (float64, error) {
	at := w.at
	d, err := onThreadCPU(func() {
		for range n {
			at = w.next[at]
		}
	})
	w.at = at
	if err != nil {
		return 0, err
	}
	return float64(d.Nanoseconds()) / float64(n), nil
}

// onThreadCPU runs f on a locked OS thread and returns the CPU time that thread spent.
func onThreadCPU(f func()) (time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t0, err := threadCPUTime()
	if err != nil {
		return 0, err
	}
	f()
	t1, err := threadCPUTime()
	if err != nil {
		return 0, err
	}
	if t1 <= t0 {
		return 0, errors.New("the thread's CPU clock did not advance")
	}
	return t1 - t0, nil
}

func threadCPUTime() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0, fmt.Errorf("thread CPU clock: %w", err)
	}
	return time.Duration(ts.Nano()), nil
}

// coreSpeed hashes a 1 MiB buffer for about d on the calling goroutine and returns MB/s.
func coreSpeed(d time.Duration) float64 {
	buf := make([]byte, 1<<20)
	start := time.Now()
	n := 0
	for time.Since(start) < d {
		sha256.Sum256(buf)
		n++
	}
	return float64(int(float64(n) / time.Since(start).Seconds()))
}

// machineLine is the step's line about the machine.
func machineLine(m MachineUsage) string {
	speed := fmt.Sprintf("one core hashed %.0f MB/s just before the step", m.CoreMBps)
	if in := m.InStep; in != nil {
		speed += fmt.Sprintf("; during it, per second of the probes' CPU time, %.0f MB/s (slowest second %.0f) and a load of a walk over %d MiB in %.1f ns (slowest %.1f)",
			in.HashMBps, in.HashLowestMBps, walkBytes>>20, in.WalkNs, in.WalkSlowestNs)
	}
	if m.InStepError != "" {
		speed += "; a probe during it failed: " + m.InStepError
	}
	speed += diskText(m.Disk)
	if m.DiskError != "" {
		speed += "; " + m.DiskError
	}
	if m.PageTablesMiB > 0 {
		speed += fmt.Sprintf("; the stack's page tables at most %.1f MiB", m.PageTablesMiB)
	}
	if m.Error != "" {
		return fmt.Sprintf("  machine  cores not read: %s;  %s", m.Error, speed)
	}
	return fmt.Sprintf("  machine  busy %.2f cores  idle %.2f  iowait %.2f  stolen %.2f;  %s",
		m.BusyCores, m.IdleCores, m.IOWaitCores, m.StolenCores, speed)
}

// runtimeVars are the Go runtime's variables a deployment sets for the services (ADRs
// 0016, 0019, 0022), in the order the report prints them.
var runtimeVars = []string{"GOMAXPROCS", "GOGC", "GOMEMLIMIT", "GODEBUG"}

// goRuntimeSettings picks runtimeVars out of a process's environment (the NUL-separated
// contents of /proc/<pid>/environ) as "NAME=value" words; a variable that is not set is
// left out, one set to nothing is kept ("GODEBUG=").
func goRuntimeSettings(environ string) string {
	set := map[string]string{}
	for _, kv := range strings.Split(environ, "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			set[k] = v
		}
	}
	var words []string
	for _, k := range runtimeVars {
		if v, ok := set[k]; ok {
			words = append(words, k+"="+v)
		}
	}
	return strings.Join(words, " ")
}

// serviceRuntime reads the Go runtime settings each service process started with, so that
// a report says what ran (a run without one of them is not comparable to one with it).
// Processes whose environment cannot be read are left out.
func serviceRuntime(pids map[string][]int) map[string]string {
	out := map[string]string{}
	for _, svc := range services {
		if len(pids[svc]) == 0 {
			continue
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pids[svc][0])); err == nil {
			out[svc] = goRuntimeSettings(string(b))
		}
	}
	return out
}

// runtimeText is the report's line for the services' runtime settings: one line when
// every service runs with the same, else one entry per service.
func runtimeText(settings map[string]string) string {
	if len(settings) == 0 {
		return ""
	}
	names := sortedKeys(settings)
	same := true
	for _, n := range names[1:] {
		same = same && settings[n] == settings[names[0]]
	}
	if same {
		return "services' Go runtime: " + orNone(settings[names[0]])
	}
	var parts []string
	for _, n := range names {
		parts = append(parts, n+" "+orNone(settings[n]))
	}
	return "services' Go runtime: " + strings.Join(parts, "; ")
}

func orNone(s string) string {
	if s == "" {
		return "the runtime's defaults"
	}
	return s
}
