package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDiskInStepSummary(t *testing.T) {
	if got := diskInStep(nil); got != nil {
		t.Errorf("summary of no samples = %+v, want none", got)
	}
	got := diskInStep([]float64{0.31, 412.5, 0.274, 0.29})
	want := DiskInStep{Samples: 4, SyncMs: 0.29, SyncSlowestMs: 412.5}
	if got == nil || *got != want {
		t.Errorf("summary = %+v, want %+v (the lower middle sample as the median)", got, want)
	}
	line := machineLine(MachineUsage{BusyCores: 1.3, IOWaitCores: 0.49, CoreMBps: 1680, Disk: got, PageTablesMiB: 12})
	if !strings.Contains(line, "iowait 0.49") || !strings.HasSuffix(line, "; an 8 KiB write synced to the disk in 0.29 ms (slowest 412.50); the stack's page tables at most 12.0 MiB") {
		t.Errorf("machine line %q does not give the disk probe before the page tables", line)
	}
	failed := MachineUsage{CoreMBps: 1680, DiskError: "disk probe: open /gone/disk-probe-1: no such file or directory"}
	if line := machineLine(failed); !strings.HasSuffix(line, "just before the step; disk probe: open /gone/disk-probe-1: no such file or directory") {
		t.Errorf("machine line after a failed disk probe %q, want the failure named", line)
	}
}

// The probe syncs a real file: samples are taken, each a positive time, and nothing is
// left in the directory.
func TestSampleDiskSyncsAFileAndRemovesIt(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 350*time.Millisecond)
	defer cancel()
	samples, err := sampleDisk(ctx, dir, 50*time.Millisecond)
	if err != nil {
		t.Fatalf("sampleDisk: %v", err)
	}
	if len(samples) < 2 {
		t.Fatalf("%d samples in 350 ms at one per 50 ms, want several", len(samples))
	}
	for _, s := range samples {
		if s <= 0 {
			t.Errorf("a sync took %v ms, want a positive time", s)
		}
	}
	left, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("the probe left %d files in its directory, want none", len(left))
	}
}

func TestSampleDiskNamesADirectoryItCannotWriteTo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	samples, err := sampleDisk(ctx, filepath.Join(t.TempDir(), "gone"), 10*time.Millisecond)
	if err == nil || !strings.HasPrefix(err.Error(), "disk probe: ") || !strings.Contains(err.Error(), "gone") {
		t.Errorf("sampleDisk into a missing directory: err %v, want a disk probe error naming it", err)
	}
	if len(samples) != 0 {
		t.Errorf("%d samples from a probe that could not start", len(samples))
	}
}

func TestParseRunDelay(t *testing.T) {
	if d, err := parseRunDelay("137869 694846 2\n"); err != nil || d != 694846*time.Nanosecond {
		t.Errorf("parseRunDelay = %v, %v; want 694.846us", d, err)
	}
	for _, bad := range []string{"", "137869\n", "137869 x 2\n"} {
		if _, err := parseRunDelay(bad); err == nil {
			t.Errorf("parseRunDelay(%q) took it, want an error", bad)
		}
	}
	// This thread's own counter, as the probe reads it.
	if _, err := threadRunDelay(); err != nil {
		t.Errorf("threadRunDelay: %v", err)
	}
}
