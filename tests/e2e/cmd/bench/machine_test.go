package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMachineUsageFromProcStat(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC)
	// user nice system idle iowait irq softirq steal guest guest_nice, in USER_HZ.
	a, err := parseCPUTimes("cpu  1000 0 500 4000 100 0 100 50 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n", t0)
	if err != nil {
		t.Fatal(err)
	}
	// Ten seconds later: 1500 ticks busy (user 1000, system 300, softirq 200), idle 300,
	// iowait 100, steal 100.
	b, err := parseCPUTimes("cpu  2000 0 800 4300 200 0 300 150 0 0\n", t0.Add(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	m := machineUsage(a, b, 1372)
	want := MachineUsage{BusyCores: 1.5, IdleCores: 0.3, IOWaitCores: 0.1, StolenCores: 0.1, CoreMBps: 1372}
	if m != want {
		t.Errorf("machine usage %+v, want %+v", m, want)
	}
	if m := machineUsage(cpuTimes{}, b, 900); m.CoreMBps != 900 || m.BusyCores != 0 || m.Error == "" {
		t.Errorf("usage without a first reading = %+v, want the core speed and an error, no cores", m)
	}
}

func TestProcStatThatIsNotTheMachinesLineIsRefused(t *testing.T) {
	for _, stat := range []string{"", "cpu0 1 2 3 4 5 6 7 8\n", "cpu 1 2 3\n", "cpu 1 2 x 4 5 6 7 8 9 10\n"} {
		if _, err := parseCPUTimes(stat, time.Now()); err == nil || !strings.Contains(err.Error(), "/proc/stat") {
			t.Errorf("parseCPUTimes(%q) error = %v, want one naming /proc/stat", stat, err)
		}
	}
}

func TestCoreSpeedHashes(t *testing.T) {
	if s := coreSpeed(20 * time.Millisecond); s <= 0 {
		t.Errorf("core speed %v MB/s, want above zero", s)
	}
}

func TestCoreProbesAreTimedByTheirThreadsCPUTime(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	samples, err := sampleCore(ctx, 30*time.Millisecond)
	if err != nil {
		t.Fatalf("a probe failed: %v", err)
	}
	if len(samples) < 3 {
		t.Fatalf("%d samples in a second at one every 30 ms, want at least 3", len(samples))
	}
	// A core of any machine that runs the suite hashes tens of MB/s at least, and none
	// 100 GB/s, as a division by a clock that barely moved would claim; a load that
	// misses the caches takes more than a fraction of a nanosecond and less than 10 us.
	for _, c := range samples {
		if c.hashMBps < 10 || c.hashMBps > 100_000 {
			t.Errorf("hash sample %.0f MB/s per CPU second, want a core's speed", c.hashMBps)
		}
		if c.walkNs < 0.5 || c.walkNs > 10_000 {
			t.Errorf("walk sample %.1f ns a load, want a memory's latency", c.walkNs)
		}
	}
}

func TestMemoryWalkVisitsEveryLineOnce(t *testing.T) {
	w := newMemoryWalk(64<<10, 7) // 1,024 lines
	seen := map[uint32]bool{}
	at := w.at
	for range 1024 {
		if at%lineWords != 0 || seen[at] {
			t.Fatalf("the walk came to word %d twice or off a line's start after %d lines", at, len(seen))
		}
		seen[at] = true
		at = w.next[at]
	}
	if at != w.at {
		t.Errorf("after every line the walk is at %d, want back at its start %d", at, w.at)
	}
	if _, err := w.nsPerLoad(100); err != nil {
		t.Fatal(err)
	}
	if w.at == at {
		t.Errorf("a sample left the walk where it began; the next would meet the lines it brought in")
	}
}

func TestCoreInStepSummary(t *testing.T) {
	if got := coreInStep(nil); got != nil {
		t.Errorf("summary of no samples = %+v, want none", got)
	}
	got := coreInStep([]coreSample{{1650.4, 40.04}, {1420.9, 95.5}, {1702.2, 38.1}, {1688.1, 52.3}})
	want := CoreInStep{Samples: 4, HashMBps: 1650, HashLowestMBps: 1420, WalkNs: 40, WalkSlowestNs: 95.5}
	if got == nil || *got != want {
		t.Errorf("summary = %+v, want %+v (the lower middle sample as the median)", got, want)
	}
	line := machineLine(MachineUsage{BusyCores: 1.9, CoreMBps: 1680, InStep: got})
	if !strings.HasSuffix(line, "one core hashed 1680 MB/s just before the step; during it, per second of the probes' CPU time, 1650 MB/s (slowest second 1420) and a load of a walk over 4 MiB in 40.0 ns (slowest 95.5)") {
		t.Errorf("machine line %q does not give both probes", line)
	}
	if line := machineLine(MachineUsage{CoreMBps: 1680}); !strings.HasSuffix(line, "hashed 1680 MB/s just before the step") {
		t.Errorf("machine line without samples in the step %q, want the pre-step speed alone", line)
	}
	failed := MachineUsage{CoreMBps: 1680, InStepError: "thread CPU clock: operation not permitted"}
	if line := machineLine(failed); !strings.HasSuffix(line, "just before the step; a probe during it failed: thread CPU clock: operation not permitted") {
		t.Errorf("machine line after a failed probe %q, want the failure named", line)
	}
}

func TestOnlineCoresCountsThePerCoreLines(t *testing.T) {
	stat := "cpu  1 2 3 4 5 6 7 8 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\ncpu1 1 2 3 4 5 6 7 8 0 0\nintr 1 2\nctxt 5\ncpufreq 3\n"
	if n := onlineCores(stat); n != 2 {
		t.Errorf("onlineCores = %d, want 2", n)
	}
	if n := onlineCores(""); n != 0 {
		t.Errorf("onlineCores of nothing = %d, want 0", n)
	}
}

func TestAutogroupReadsTheKernelSetting(t *testing.T) {
	for in, want := range map[string]string{"1\n": "on", "0\n": "off", "": "", "2\n": ""} {
		if got := autogroup(in); got != want {
			t.Errorf("autogroup(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCoresTextSaysWhenTheBenchmarkWasPinned(t *testing.T) {
	for _, c := range []struct {
		m    Machine
		want string
	}{
		{Machine{Cores: 2, OnlineCores: 2}, "2 cores"},
		{Machine{Cores: 1, OnlineCores: 2}, "2 cores, the benchmark pinned to 1"},
		{Machine{Cores: 1, OnlineCores: 1}, "1 core"},
		{Machine{Cores: 2}, "2 cores"}, // a bench.json from before online_cores was written
	} {
		if got := c.m.coresText(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.m, got, c.want)
		}
	}
}

func TestComponentNamesTheStacksProcesses(t *testing.T) {
	for _, c := range []struct {
		cmd  string
		want string
	}{
		{"java -Xms256m -cp /x/libs/* kafka.Kafka /tmp/ts/kafka/server.properties", "kafka"},
		{"/usr/lib/postgresql/15/bin/postgres -D /tmp/ts/pg/data", "postgres"},
		{"postgres: shop shop [local] idle", ""}, // a backend: its postmaster is counted
		{"/work/.cache/bin/mailpit-4b3d --listen 127.0.0.1:19825", "mailpit"},
		{"/work/.cache/bin/registry-1a2b -config /tmp/ts/registry.yaml", "registry"},
		{"/tmp/ts/bin/shop serve", "shop"},
		{"/tmp/ts/bin/shop version", ""},
		{"/usr/bin/vim notes.txt", ""},
	} {
		if got := component(strings.Fields(c.cmd)); got != c.want {
			t.Errorf("component(%q) = %q, want %q", c.cmd, got, c.want)
		}
	}
}

// A process that looks like another stack's Mailpit is listed, and left out once it is
// one of ours.
func TestOtherStacksListsOthersAndLeavesOutOurs(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	cmd.Args[0] = "/tmp/other-stack/bin/mailpit-test" // what /proc/<pid>/cmdline shows
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	want := fmt.Sprintf("mailpit (pid %d)", cmd.Process.Pid)
	if got := otherStacks(nil); !slices.Contains(got, want) {
		t.Errorf("otherStacks(nil) = %v, want it to hold %q", got, want)
	}
	if got := otherStacks(map[int]bool{cmd.Process.Pid: true}); slices.Contains(got, want) {
		t.Errorf("otherStacks with the pid ours = %v, want it without %q", got, want)
	}
}

func TestGoRuntimeSettingsPicksTheRuntimesVariablesInOrder(t *testing.T) {
	environ := "PATH=/bin\x00GODEBUG=schedtrace=2147483647\x00GOMAXPROCS=1\x00ORDERFLOW_ADMIN_TOKEN=secret\x00GOGC=400\x00GOMEMLIMIT=64MiB\x00"
	if got, want := goRuntimeSettings(environ), "GOMAXPROCS=1 GOGC=400 GOMEMLIMIT=64MiB GODEBUG=schedtrace=2147483647"; got != want {
		t.Errorf("goRuntimeSettings = %q, want %q", got, want)
	}
	if got, want := goRuntimeSettings("GODEBUG=\x00GOGC=400\x00"), "GOGC=400 GODEBUG="; got != want {
		t.Errorf("an empty GODEBUG: %q, want %q", got, want)
	}
	if got := goRuntimeSettings("PATH=/bin\x00"); got != "" {
		t.Errorf("no runtime variable: %q, want nothing", got)
	}
}

func TestRuntimeTextIsOneLineWhenTheServicesAgree(t *testing.T) {
	same := map[string]string{"shop": "GOMAXPROCS=1 GODEBUG=schedtrace=2147483647", "crm": "GOMAXPROCS=1 GODEBUG=schedtrace=2147483647"}
	if got, want := runtimeText(same), "services' Go runtime: GOMAXPROCS=1 GODEBUG=schedtrace=2147483647"; got != want {
		t.Errorf("runtimeText = %q, want %q", got, want)
	}
	differ := map[string]string{"shop": "GOMAXPROCS=1 GODEBUG=", "crm": "GOMAXPROCS=1 GODEBUG=schedtrace=2147483647", "billing": ""}
	if got, want := runtimeText(differ), "services' Go runtime: billing the runtime's defaults; crm GOMAXPROCS=1 GODEBUG=schedtrace=2147483647; shop GOMAXPROCS=1 GODEBUG="; got != want {
		t.Errorf("runtimeText = %q, want %q", got, want)
	}
	if got := runtimeText(nil); got != "" {
		t.Errorf("no services read: %q, want nothing", got)
	}
}

// The bench reads a process's own environment the way it reads a service's.
func TestServiceRuntimeReadsTheProcessEnvironment(t *testing.T) {
	got := serviceRuntime(map[string][]int{"shop": {os.Getpid()}, "crm": {1 << 30}})
	if _, ok := got["crm"]; ok {
		t.Errorf("a process that does not exist should be left out, got %q", got["crm"])
	}
	b, err := os.ReadFile("/proc/self/environ")
	if err != nil {
		t.Skip("no /proc here")
	}
	if want := goRuntimeSettings(string(b)); got["shop"] != want {
		t.Errorf("serviceRuntime read %q for this process, its environment has %q", got["shop"], want)
	}
}
