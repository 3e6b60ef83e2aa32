package main

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"
)

// The machine as a whole over a step. Runs of the same code on this machine have differed
// by a factor of three at one rate, every hop slower alike, with the same CPU per order:
// the machine itself was slower or shared. Three readings tell such a run apart: how the
// cores were spent over the step (/proc/stat, including time the hypervisor gave to other
// guests, "stolen"), how fast one core hashes a fixed buffer just before the step, and how
// long a load takes from a ring bigger than a core's own caches (cacheLatency): a host
// whose other tenants fill the shared last-level cache slows a step's every process
// without slowing the hash, which runs in a core's own cache.

// MachineUsage is how the machine's cores were spent over a step, in cores.
type MachineUsage struct {
	BusyCores   float64 `json:"busy_cores"`
	IdleCores   float64 `json:"idle_cores"`
	IOWaitCores float64 `json:"iowait_cores"`
	StolenCores float64 `json:"stolen_cores"`
	// CoreMBps is how many MB/s of SHA-256 one core computed just before the step, while
	// the suite was idle: lower than usual means a slower or busier host.
	CoreMBps float64 `json:"core_mb_per_s"`
	// CacheLoadNs is how many nanoseconds one load took, just before the step, in a random
	// walk over a ring of cacheRing bytes: a few tens when the shared cache holds it, a
	// hundred and more when other work on the host has pushed it out.
	CacheLoadNs float64 `json:"cache_load_ns"`
	// Error is why the cores could not be read; the probes' readings are kept.
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

// probes is what the two host probes read just before a step.
type probes struct {
	coreMBps, cacheLoadNs float64
}

// machineUsage is how the cores were spent between a and b, with the probes' readings.
func machineUsage(a, b cpuTimes, p probes) MachineUsage {
	secs := b.at.Sub(a.at).Seconds()
	if a.at.IsZero() || b.at.IsZero() || secs <= 0 {
		return MachineUsage{CoreMBps: p.coreMBps, CacheLoadNs: p.cacheLoadNs, Error: "no two readings of /proc/stat over the step"}
	}
	per := func(x, y float64) float64 { return round2(max(0, y-x) / secs) }
	return MachineUsage{
		BusyCores:   per(a.busy, b.busy),
		IdleCores:   per(a.idle, b.idle),
		IOWaitCores: per(a.iowait, b.iowait),
		StolenCores: per(a.steal, b.steal),
		CoreMBps:    p.coreMBps,
		CacheLoadNs: p.cacheLoadNs,
	}
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

// cacheRing is the size of the ring cacheLatency walks: on the AMD EPYC benchmark machine
// of sessions 26-28, twice the 2 MiB of L2 a core has to itself and well inside the 32 MiB
// of L3 the cores share.
const cacheRing = 4 << 20

// newCacheRing links cacheRing bytes of 4-byte slots into one cycle in random order, so
// that each load depends on the one before and no prefetcher can guess the next.
func newCacheRing() []uint32 {
	order := rand.Perm(cacheRing / 4)
	ring := make([]uint32, len(order))
	for i, slot := range order {
		ring[slot] = uint32(order[(i+1)%len(order)])
	}
	return ring
}

// cacheLatency walks ring for about d on the calling goroutine and returns the
// nanoseconds one load took.
func cacheLatency(ring []uint32, d time.Duration) float64 {
	const chunk = 100_000
	start := time.Now()
	at, loads := uint32(0), 0
	for time.Since(start) < d {
		for range chunk {
			at = ring[at]
		}
		loads += chunk
	}
	walked = at // keeps the walk from being optimised away
	return round2(float64(time.Since(start).Nanoseconds()) / float64(loads))
}

// walked is where the last walk ended.
var walked uint32

func printMachine(m MachineUsage) {
	probes := fmt.Sprintf("one core hashed %.0f MB/s and loaded from a %d MiB ring in %.1f ns just before the step",
		m.CoreMBps, cacheRing>>20, m.CacheLoadNs)
	if m.Error != "" {
		fmt.Printf("  machine  cores not read: %s;  %s\n", m.Error, probes)
		return
	}
	fmt.Printf("  machine  busy %.2f cores  idle %.2f  iowait %.2f  stolen %.2f;  %s\n",
		m.BusyCores, m.IdleCores, m.IOWaitCores, m.StolenCores, probes)
}
