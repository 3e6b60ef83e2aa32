package backoff

import (
	"testing"
	"time"
)

func TestDurationGrowsAndCaps(t *testing.T) {
	base, max := 100*time.Millisecond, 2*time.Second
	for attempt := 1; attempt <= 20; attempt++ {
		want := base << (attempt - 1)
		if want > max || want <= 0 {
			want = max
		}
		for range 50 {
			d := Duration(attempt, base, max)
			if d < want/2 || d > want {
				t.Fatalf("attempt %d: %v outside [%v, %v]", attempt, d, want/2, want)
			}
		}
	}
}

func TestDurationJitters(t *testing.T) {
	seen := map[time.Duration]bool{}
	for range 100 {
		seen[Duration(5, 10*time.Millisecond, time.Second)] = true
	}
	if len(seen) < 10 {
		t.Fatalf("only %d distinct delays in 100 draws: no jitter", len(seen))
	}
}

// Quick failures in a row wait longer each time, up to the cap; a failure after a run
// that had been working waits the base again.
func TestStreakStartsOverAfterAHealthyRun(t *testing.T) {
	s := Streak{Base: 100 * time.Millisecond, Max: 10 * time.Second, Healthy: time.Minute}
	within := func(d, want time.Duration) bool { return d >= want/2 && d <= want }
	for i, want := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond} {
		if d := s.Failed(time.Second); !within(d, want) {
			t.Fatalf("quick failure %d: waits %v, want within [%v, %v]", i+1, d, want/2, want)
		}
	}
	for range 10 {
		s.Failed(0)
	}
	if d := s.Failed(0); !within(d, 10*time.Second) {
		t.Fatalf("after many quick failures: waits %v, want the cap", d)
	}
	if d := s.Failed(2 * time.Hour); !within(d, 100*time.Millisecond) {
		t.Fatalf("failure after two healthy hours: waits %v, want the base again", d)
	}
	if d := s.Failed(time.Second); !within(d, 200*time.Millisecond) {
		t.Fatalf("quick failure after that: waits %v, want twice the base", d)
	}
}
