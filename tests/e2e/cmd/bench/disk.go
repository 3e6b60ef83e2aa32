package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The disk under a step. Every commit of every service waits for PostgreSQL to sync its
// WAL, so a host whose virtual disk is slow to flush makes every hop slower at once, with
// fewer cores busy rather than more: session 33 saw runs whose 300/s step spent half a
// core waiting for I/O and confirmed orders a second or more late, at the lowest CPU per
// order of the evening. The probe below syncs a small write on the filesystem that holds
// the stack (and PostgreSQL's WAL) ten times a second, so that such a run can be told
// from a change in the suite.

// DiskInStep summarises a step's samples of sampleDisk, in milliseconds.
type DiskInStep struct {
	Samples int `json:"samples"`
	// SyncMs is the median time one 8 KiB write took to reach the disk (fdatasync, as
	// PostgreSQL syncs its WAL), and SyncSlowestMs the slowest sample's.
	SyncMs        float64 `json:"sync_ms"`
	SyncSlowestMs float64 `json:"sync_slowest_ms"`
}

// diskInStep summarises samples (milliseconds); nil when there are none. The median of
// an even count is the lower middle sample.
func diskInStep(samples []float64) *DiskInStep {
	if len(samples) == 0 {
		return nil
	}
	s := slices.Sorted(slices.Values(samples))
	return &DiskInStep{Samples: len(s), SyncMs: round2(s[(len(s)-1)/2]), SyncSlowestMs: round2(s[len(s)-1])}
}

const (
	// diskProbeBytes is what each sample writes: one PostgreSQL page.
	diskProbeBytes = 8 << 10
	// diskProbeEvery is how often the probe syncs: often enough to meet a stall of a
	// few hundred milliseconds (once a second, a 200 ms stall falls between two syncs
	// four times in five), ten syncs a second beside the WAL's hundreds.
	diskProbeEvery = 100 * time.Millisecond
)

// sampleDisk writes diskProbeBytes to a file of its own in dir and syncs it with
// fdatasync every interval until ctx ends. Each sync is timed by the wall clock less the
// time its thread then waited for a core (the kernel's run delay, schedstat): the wait
// for the device stays in, and the wake-up after it on a machine whose cores the suite
// keeps busy is left out. The same bytes are rewritten in place, so each sync flushes
// one page and no file size. The file is removed at the end. A failure ends the
// sampling and is returned beside the samples taken.
func sampleDisk(ctx context.Context, dir string, interval time.Duration) (samples []float64, err error) {
	f, err := os.CreateTemp(dir, "disk-probe-*")
	if err != nil {
		return nil, fmt.Errorf("disk probe: %w", err)
	}
	defer func() {
		err = errors.Join(err, f.Close(), os.Remove(f.Name()))
	}()
	page := make([]byte, diskProbeBytes)
	var failed error
	samples = sampleEvery(ctx, interval, func() (float64, bool) {
		if failed != nil {
			return 0, false
		}
		d, err := syncOnce(f, page)
		if err != nil {
			failed = fmt.Errorf("disk probe: %w", err)
			return 0, false
		}
		return float64(d.Nanoseconds()) / 1e6, true
	})
	return samples, failed
}

// syncOnce writes page at the start of f and returns how long fdatasync took, less the
// time the thread waited for a core meanwhile.
//
// The clock runs around the two readings of the run delay, not between them: a wait for a
// core that began before the first reading or ended after the second would otherwise be
// subtracted from a window that does not hold it, and a sync then came out at 0 (a test
// saw it under the race detector). The readings themselves, a few microseconds, are in
// the sample.
func syncOnce(f *os.File, page []byte) (time.Duration, error) {
	if _, err := f.WriteAt(page, 0); err != nil {
		return 0, err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := time.Now()
	waited0, err := threadRunDelay()
	if err != nil {
		return 0, err
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return 0, err
	}
	waited1, err := threadRunDelay()
	if err != nil {
		return 0, err
	}
	return time.Since(start) - (waited1 - waited0), nil
}

// threadRunDelay is how long the calling thread has waited on a run queue, from
// /proc/thread-self/schedstat (CPU time, run delay and time slices, in nanoseconds).
func threadRunDelay() (time.Duration, error) {
	b, err := os.ReadFile("/proc/thread-self/schedstat")
	if err != nil {
		return 0, err
	}
	return parseRunDelay(string(b))
}

func parseRunDelay(schedstat string) (time.Duration, error) {
	f := strings.Fields(schedstat)
	if len(f) < 2 {
		return 0, fmt.Errorf("schedstat %q: want CPU time, run delay and time slices", schedstat)
	}
	ns, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("schedstat's run delay: %w", err)
	}
	return time.Duration(ns), nil
}

// diskText is the machine line's part about the disk probe: empty without samples.
func diskText(d *DiskInStep) string {
	if d == nil {
		return ""
	}
	return fmt.Sprintf("; an %d KiB write synced to the disk in %.2f ms (slowest %.2f)", diskProbeBytes>>10, d.SyncMs, d.SyncSlowestMs)
}

// probedDisk is what sampleDisk returned for a step.
type probedDisk struct {
	samples []float64
	err     error
}

// probeDisk probes the disk of the stack's directory every diskProbeEvery until ctx ends;
// without a stack directory (ORDERFLOW_STACK_DIR) there is no disk to name, and nothing
// is sampled.
func (g *generator) probeDisk(ctx context.Context) probedDisk {
	if g.env.stackDir == "" {
		return probedDisk{}
	}
	samples, err := sampleDisk(ctx, g.env.stackDir, diskProbeEvery)
	return probedDisk{samples, err}
}
