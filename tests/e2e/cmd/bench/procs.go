package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// sampler follows the CPU time and memory of the stack's processes: every process
// started by stack.sh (its pid files), PostgreSQL (the postmaster and its children) and
// the generator itself.
type sampler struct {
	stackDir, pgData string

	mu       sync.Mutex
	peak     map[string]float64 // MiB, over the run
	stepPeak map[string]float64 // MiB, since the last snapshot
	stepPTE  float64            // MiB: the most page tables the processes held at once since the last snapshot
}

// ProcUsage is a process's share of a step.
type ProcUsage struct {
	CPUCores float64 `json:"cpu_cores"`
	PeakMiB  float64 `json:"peak_mib"`
}

// ProcPeak is a process's peak memory over the whole run.
type ProcPeak struct {
	PeakMiB float64 `json:"peak_mib"`
	Measure string  `json:"measure"`
}

type procSnap struct {
	at   time.Time
	cpu  map[string]float64 // seconds of CPU
	peak map[string]float64 // MiB: the peak since the previous snapshot
	// pageTablesMiB is the most page tables the stack's processes held at one sample
	// since the previous snapshot (their VmPTE summed).
	pageTablesMiB float64
}

var clockTicks = 100.0 // USER_HZ on Linux

func newSampler(stackDir string) *sampler {
	return &sampler{stackDir: stackDir, pgData: os.Getenv("ORDERFLOW_PG_DATA"), peak: map[string]float64{}}
}

// pids maps a name to the pids that make it up.
func (s *sampler) pids() map[string][]int {
	out := map[string][]int{"loadgen": {os.Getpid()}}
	files, _ := filepath.Glob(filepath.Join(s.stackDir, "run", "*.pid"))
	for _, f := range files {
		if pid := readPid(f); pid > 0 {
			out[strings.TrimSuffix(filepath.Base(f), ".pid")] = []int{pid}
		}
	}
	if s.pgData != "" {
		if pm := readPid(filepath.Join(s.pgData, "postmaster.pid")); pm > 0 {
			out["postgres"] = append([]int{pm}, children(pm)...)
		}
	}
	return out
}

func readPid(file string) int {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}

// children lists parent's child processes. The kernel keeps each thread's list in
// /proc/<pid>/task/<tid>/children; without those files (a kernel built without
// CONFIG_PROC_CHILDREN) it reads the parent of every process on the machine, which is
// what the generator did twice a second before (0.47% of the machine's CPU in a profile
// of a 100/s step: every process's stat read to find PostgreSQL's backends).
func children(parent int) []int {
	files, _ := filepath.Glob("/proc/" + strconv.Itoa(parent) + "/task/*/children")
	if len(files) == 0 {
		return childrenByScan(parent)
	}
	var out []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread ended
		}
		for _, field := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(field); err == nil {
				out = append(out, pid)
			}
		}
	}
	return out
}

func childrenByScan(parent int) []int {
	var out []int
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if f := statFields(pid); len(f) > 3 && f[3] == strconv.Itoa(parent) {
			out = append(out, pid)
		}
	}
	return out
}

// statFields returns /proc/pid/stat split after the command name, renumbered so that
// f[i] is field i+1 of proc(5) (f[0] is the pid, f[2] the state, f[3] the ppid).
func statFields(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return append([]string{strconv.Itoa(pid), "comm"}, strings.Fields(s[i+1:])...)
}

func cpuSeconds(pid int) float64 {
	f := statFields(pid)
	if len(f) < 15 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[13], 64)
	k, _ := strconv.ParseFloat(f[14], 64)
	return (u + k) / clockTicks
}

// memory is what /proc/<pid>/status says of a process's resident memory, in MiB.
// Reading it is cheap: the kernel keeps these counters. (Measuring PSS through
// smaps_rollup instead walks every page table of the process under its mmap lock: for
// the stack's 60 processes twice a second that cost the generator 0.4 cores of system
// time and slowed the processes it measured.)
type memory struct {
	rss, hwm          float64 // resident now, and the peak since the process started
	anon, file, shmem float64 // RssAnon, RssFile, RssShmem
	hugetlb           float64 // HugetlbPages: huge pages mapped, which no RSS counts
	pte               float64 // VmPTE: the process's page tables
}

func readMemory(pid int) memory {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return memory{}
	}
	defer f.Close()
	return parseStatus(f)
}

// parseStatus reads the memory counters of a /proc/<pid>/status file.
func parseStatus(r io.Reader) memory {
	var m memory
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
		mib := kb / 1024
		switch key {
		case "VmRSS":
			m.rss = mib
		case "VmHWM":
			m.hwm = mib
		case "RssAnon":
			m.anon = mib
		case "RssFile":
			m.file = mib
		case "RssShmem":
			m.shmem = mib
		case "HugetlbPages":
			m.hugetlb = mib
		case "VmPTE":
			m.pte = mib
		}
	}
	return m
}

// readGroup reads the memory counters of each of a group's processes.
func readGroup(pids []int) []memory {
	ms := make([]memory, len(pids))
	for i, p := range pids {
		ms[i] = readMemory(p)
	}
	return ms
}

// sumMemory is a single process's RSS, or for PostgreSQL's processes their private
// memory summed plus the shared mappings (shared buffers, the binary) once, so that
// shared buffers are not counted per backend; shared memory on huge pages, which no RSS
// counts, is added once as well. Page tables belong to each process and are summed.
func sumMemory(ms []memory) (mib, pageTables float64) {
	if len(ms) == 1 {
		return ms[0].rss + ms[0].hugetlb, ms[0].pte
	}
	var private, file, shmem, huge float64
	for _, m := range ms {
		private += m.anon
		file, shmem, huge = max(file, m.file), max(shmem, m.shmem), max(huge, m.hugetlb)
		pageTables += m.pte
	}
	return private + file + shmem + huge, pageTables
}

// postgresPages is "huge" when any of PostgreSQL's processes maps huge pages (they all
// do when its shared memory is on them), "4 KiB" when none does, and empty when there
// are no processes to read.
func postgresPages(pids []int) string {
	if len(pids) == 0 {
		return ""
	}
	for _, p := range pids {
		if readMemory(p).hugetlb > 0 {
			return "huge"
		}
	}
	return "4 KiB"
}

func (s *sampler) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		var pte float64
		for name, pids := range s.pids() {
			ms := readGroup(pids)
			mem, pt := sumMemory(ms)
			pte += pt
			s.mu.Lock()
			if len(ms) == 1 { // the kernel's own peak catches what sampling misses
				s.peak[name] = max(s.peak[name], ms[0].hwm)
			}
			s.peak[name] = max(s.peak[name], mem)
			if s.stepPeak != nil {
				s.stepPeak[name] = max(s.stepPeak[name], mem)
			}
			s.mu.Unlock()
		}
		s.mu.Lock()
		s.stepPTE = max(s.stepPTE, pte)
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *sampler) snapshot() procSnap {
	snap := procSnap{at: time.Now(), cpu: map[string]float64{}}
	for name, pids := range s.pids() {
		for _, p := range pids {
			snap.cpu[name] += cpuSeconds(p)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	snap.peak, s.stepPeak = s.stepPeak, map[string]float64{}
	snap.pageTablesMiB, s.stepPTE = s.stepPTE, 0
	return snap
}

// usage is each process's CPU between two snapshots, in cores, and its peak memory
// between them.
func (s *sampler) usage(a, b procSnap) map[string]ProcUsage {
	wall := b.at.Sub(a.at).Seconds()
	out := map[string]ProcUsage{}
	for name, cpu := range b.cpu {
		// PostgreSQL backends come and go; those that ended between the snapshots take
		// their CPU with them, so its figure is a lower bound.
		out[name] = ProcUsage{CPUCores: round2(max(0, cpu-a.cpu[name]) / wall), PeakMiB: round(b.peak[name])}
	}
	return out
}

func (s *sampler) peaks() map[string]ProcPeak {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]ProcPeak{}
	for name, v := range s.peak {
		m := "peak RSS (VmHWM)"
		if name == "postgres" {
			m = "private RSS of the postmaster and its backends plus shared mappings (huge pages too) once, sampled every 500 ms"
		}
		out[name] = ProcPeak{PeakMiB: round(v), Measure: m}
	}
	return out
}

func round2(v float64) float64 { return float64(int(v*100+0.5)) / 100 }
