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
