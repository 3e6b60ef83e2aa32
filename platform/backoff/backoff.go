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
