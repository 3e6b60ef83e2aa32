package deploy

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Deployments that share a machine start the services with GODEBUG=schedtrace set to a
// period of 24.8 days (deploy/local/stack.sh, docker-compose.yml, ADR 0022). Its only
// purpose is a side effect: the Go runtime's monitor thread (sysmon) no longer sleeps
// deeply while every P is idle, so the first system call after each idle moment no longer
// wakes it to watch the next 20 us. This test pins that side effect to the Go release in
// use: a process that alternates between a short idle and a system call, as a service
// woken by events does, must switch context far less often with the setting than
// without. When a Go release changes the monitor so that the setting stops helping, this
// fails and the setting should go.
func TestSchedtraceKeepsTheMonitorThreadFromWakingAfterEveryIdleMoment(t *testing.T) {
	if testing.Short() {
		t.Skip("starts helper processes")
	}
	const setting = "schedtrace=2147483647"
	for _, f := range []string{"../../deploy/local/stack.sh", "../../docker-compose.yml"} {
		b, err := os.ReadFile(filepath.FromSlash(f))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), setting) {
			t.Errorf("%s does not set %s; this test measures what that setting buys", f, setting)
		}
	}

	with, without := idleWakeSwitches(t, setting), idleWakeSwitches(t, "")
	t.Logf("context switches over %d idle-then-syscall rounds: %d with GODEBUG=%s, %d without", probeRounds, with, setting, without)
	if with*3 > without*2 {
		t.Errorf("GODEBUG=%s cut the context switches of an idle-then-syscall process only from %d to %d (wanted at least a third fewer): "+
			"this Go release's monitor thread no longer behaves as ADR 0022 measured; drop the setting from deploy/local/stack.sh and docker-compose.yml", setting, without, with)
	}
}

const probeRounds = 400

// idleWakeSwitches runs TestIdleWakeProbe in a child process with GOMAXPROCS=1 and the
// given GODEBUG and returns the context switches the child counted over its rounds.
func idleWakeSwitches(t *testing.T, godebug string) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleWakeProbe$", "-test.count=1")
	cmd.Env = append(os.Environ(), "ORDERFLOW_IDLE_WAKE_PROBE=1", "GOMAXPROCS=1", "GODEBUG="+godebug)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("probe with GODEBUG=%q: %v\n%s", godebug, err, out)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "idle-wake-switches "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("probe printed %q: %v", sc.Text(), err)
			}
			return n
		}
	}
	t.Fatalf("probe with GODEBUG=%q printed no count:\n%s", godebug, out)
	return 0
}

// TestIdleWakeProbe is the child process of the test above: probeRounds times a
// millisecond's sleep, with every P idle, then a system call (a write to a pipe), the
// rhythm of a service woken by events. It prints the context switches of all the
// process's threads over the rounds.
func TestIdleWakeProbe(t *testing.T) {
	if os.Getenv("ORDERFLOW_IDLE_WAKE_PROBE") != "1" {
		t.Skip("the child process of TestSchedtraceKeepsTheMonitorThreadFromWakingAfterEveryIdleMoment")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	before, err := processSwitches()
	if err != nil {
		t.Fatal(err)
	}
	for range probeRounds {
		time.Sleep(time.Millisecond)
		if _, err := w.Write([]byte{0}); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
	}
	after, err := processSwitches()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("idle-wake-switches %d\n", after-before)
}

// processSwitches sums the voluntary and involuntary context switches of every thread of
// this process (/proc/self/task/*/status).
func processSwitches() (int, error) {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0, err
	}
	total := 0
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc/self/task", task.Name(), "status"))
		if err != nil {
			continue // the thread exited
		}
		for line := range strings.Lines(string(b)) {
			name, v, _ := strings.Cut(line, ":")
			if name != "voluntary_ctxt_switches" && name != "nonvoluntary_ctxt_switches" {
				continue
			}
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return 0, fmt.Errorf("thread %s: %s: %w", task.Name(), name, err)
			}
			total += n
		}
	}
	return total, nil
}
