// Package backoff computes retry delays: capped exponential backoff with jitter, so that
// many clients retrying after one outage spread out instead of arriving together.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Duration returns the delay before retry number attempt (1 for the first retry): base
// doubled per earlier attempt, capped at max, then jittered to a random value in
// [d/2, d].
func Duration(attempt int, base, max time.Duration) time.Duration {
	d := base
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	half := d / 2
	return half + rand.N(half+1)
}

// Streak paces the restarts of a loop that runs until it fails (a relay, a read model, a
// listener): each failure in a row waits longer, and a run that lasted at least Healthy
// had been working, so its failure starts the count over. Without that, a process that
// survived a handful of brief outages over weeks would wait the cap after every later
// one. The zero value is not usable; set every field.
type Streak struct {
	Base, Max time.Duration // as for Duration
	Healthy   time.Duration // a run at least this long resets the count
	failures  int
}

// Failed records a run that lasted ran and ended in failure, and returns how long to wait
// before the next run.
func (s *Streak) Failed(ran time.Duration) time.Duration {
	if ran >= s.Healthy {
		s.failures = 0
	}
	s.failures++
	return Duration(s.failures, s.Base, s.Max)
}
