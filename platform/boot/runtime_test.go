package boot

import (
	"runtime/debug"
	"testing"
)

// The start log reports the collector's target and memory limit the deployment chose
// (GOGC, GOMEMLIMIT), and reading them must not change them.
func TestStartLogShowsTheRuntimeSettings(t *testing.T) {
	gc, limit := debug.SetGCPercent(400), debug.SetMemoryLimit(64<<20)
	t.Cleanup(func() { debug.SetGCPercent(gc); debug.SetMemoryLimit(limit) })

	if got := goGCPercent(); got != "400" {
		t.Errorf("goGCPercent() = %q with GOGC=400", got)
	}
	if got := goGCPercent(); got != "400" {
		t.Errorf("goGCPercent() = %q when read a second time: reading changed it", got)
	}
	if got := goMemoryLimit(); got != "64MiB" {
		t.Errorf("goMemoryLimit() = %q with GOMEMLIMIT=64MiB", got)
	}
	debug.SetGCPercent(-1)
	if got := goGCPercent(); got != "off" {
		t.Errorf("goGCPercent() = %q with GOGC=off", got)
	}
}
