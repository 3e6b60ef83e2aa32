package main

import (
	"testing"
	"time"
)

func TestPerSecondBucketsByScheduledSecond(t *testing.T) {
	start := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	secs := perSecond(start, []sample{
		{at(10), 5}, {at(990), 7}, // second 0
		{at(2500), 40}, {at(2999), 20}, {at(2000), 30}, // second 2; second 1 had no order
		{at(-1500), 9}, // scheduled before the step started: counted in its first second
	})
	if len(secs) != 2 {
		t.Fatalf("got %d seconds, want 2 (an empty second is left out): %+v", len(secs), secs)
	}
	if s := secs[0]; s.Offset != 0 || !s.At.Equal(start) || s.N != 3 || s.Max != 9 || s.P50 != 7 {
		t.Errorf("second 0: %+v, want n 3, p50 7, max 9 at the step's start", s)
	}
	if s := secs[1]; s.Offset != 2 || !s.At.Equal(start.Add(2*time.Second)) || s.N != 3 || s.Max != 40 || s.P50 != 30 {
		t.Errorf("second 2: %+v, want n 3, p50 30, max 40", s)
	}
}

func TestSlowestSecondsComeFirst(t *testing.T) {
	secs := []Second{{Offset: 0, Dist: Dist{Max: 10}}, {Offset: 1, Dist: Dist{Max: 90}}, {Offset: 2, Dist: Dist{Max: 50}}, {Offset: 3, Dist: Dist{Max: 70}}}
	got := slowest(secs, 3)
	if len(got) != 3 || got[0].Offset != 1 || got[1].Offset != 3 || got[2].Offset != 2 {
		t.Errorf("slowest: %+v, want seconds 1, 3, 2", got)
	}
	if secs[0].Offset != 0 || secs[1].Offset != 1 {
		t.Errorf("slowest reordered its argument: %+v", secs)
	}
	if got := slowest(secs[:1], 3); len(got) != 1 {
		t.Errorf("slowest of one second: %+v", got)
	}
}
