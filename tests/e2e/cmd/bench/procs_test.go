package main

import (
	"os"
	"os/exec"
	"slices"
	"testing"
)

// The kernel's lists of a process's children name the same processes as reading the
// parent of every process on the machine, whichever thread started them.
func TestChildrenAreThoseTheScanFinds(t *testing.T) {
	var started []int
	for range 3 {
		cmd := exec.Command("sleep", "30")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		started = append(started, cmd.Process.Pid)
	}
	got, scanned := children(os.Getpid()), childrenByScan(os.Getpid())
	slices.Sort(got)
	slices.Sort(scanned)
	if !slices.Equal(got, scanned) {
		t.Fatalf("children = %v, the scan found %v", got, scanned)
	}
	for _, pid := range started {
		if !slices.Contains(got, pid) {
			t.Errorf("children = %v, lacks %d", got, pid)
		}
	}
}
