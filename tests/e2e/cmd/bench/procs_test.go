package main

import (
	"os"
	"os/exec"
	"slices"
	"strings"
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

// A backend's status: what it maps of the shared memory on huge pages shows only in
// HugetlbPages, its page tables in VmPTE.
const backendStatus = `Name:	postgres
VmHWM:	   30720 kB
VmRSS:	   28672 kB
RssAnon:	    4096 kB
RssFile:	    8192 kB
RssShmem:	   16384 kB
VmPTE:	     512 kB
HugetlbPages:	  296960 kB
`

func TestParseStatusReadsTheMemoryCounters(t *testing.T) {
	got := parseStatus(strings.NewReader(backendStatus))
	want := memory{rss: 28, hwm: 30, anon: 4, file: 8, shmem: 16, hugetlb: 290, pte: 0.5}
	if got != want {
		t.Errorf("parseStatus = %+v, want %+v", got, want)
	}
}

// PostgreSQL's backends share their mappings: private memory is summed, what they share
// (the binary, shared memory on small or huge pages) is counted once, and each holds
// page tables of its own.
func TestSumMemoryCountsSharedMappingsOnceAndPageTablesPerProcess(t *testing.T) {
	ms := []memory{
		{anon: 10, file: 8, shmem: 2, hugetlb: 0, pte: 0.25}, // the postmaster
		{anon: 4, file: 8, shmem: 16, hugetlb: 290, pte: 0.5},
		{anon: 6, file: 7, shmem: 12, hugetlb: 280, pte: 1.25},
	}
	mib, pte := sumMemory(ms)
	if want := 10.0 + 4 + 6 + 8 + 16 + 290; mib != want {
		t.Errorf("memory %.2f MiB, want %.2f", mib, want)
	}
	if pte != 2 {
		t.Errorf("page tables %.2f MiB, want 2", pte)
	}
	one := memory{rss: 40, anon: 30, file: 10, pte: 0.75}
	if mib, pte := sumMemory([]memory{one}); mib != 40 || pte != 0.75 {
		t.Errorf("one process: %.2f MiB and %.2f of page tables, want its RSS 40 and 0.75", mib, pte)
	}
}

// This process's own status has page tables: the sampler reads real counters.
func TestReadMemoryOfThisProcess(t *testing.T) {
	m := readMemory(os.Getpid())
	if m.rss <= 0 || m.pte <= 0 {
		t.Errorf("readMemory(self) = %+v, want a resident size and page tables", m)
	}
}
