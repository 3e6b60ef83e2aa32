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

// A step keeps up only if crm e-mailed every confirmed order too: its e-mails queue in a
// table, where no consumer's lag shows them.
func TestAStepWithUnsentEmailsIsNotSustained(t *testing.T) {
	start := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	order := func(ms int, notified bool) *trace {
		t := &trace{scheduled: at(ms), answered: at(ms + 2), placed: at(ms + 1), confirmed: at(ms + 20)}
		if notified {
			t.notified = at(ms + 300)
		}
		return t
	}
	for _, c := range []struct {
		name       string
		notified   bool
		sustained  bool
		unnotified int
	}{{"every order e-mailed", true, true, 0}, {"one order not e-mailed", false, false, 1}} {
		g := &generator{orders: map[string]*trace{"a": order(0, true), "b": order(500, c.notified)}}
		res := Step{Offered: 2, Hops: map[string]Dist{}, Lag: Lag{Flat: true}}
		g.summarise(&res, start, at(1000))
		if res.Sustained != c.sustained || res.Unnotified != c.unnotified || res.Confirmed != 2 {
			t.Errorf("%s: sustained %v, not e-mailed %d, confirmed %d; want %v, %d, 2", c.name, res.Sustained, res.Unnotified, res.Confirmed, c.sustained, c.unnotified)
		}
		if got := g.pending(); got != c.unnotified {
			t.Errorf("%s: the drain waits for %d orders, want %d", c.name, got, c.unnotified)
		}
	}
}

// Lag is judged by its low points: batches of the groups that linger on purpose spike it,
// a backlog that grows lifts it.
func TestLagIsFlatWhenItsLowPointsDoNotRise(t *testing.T) {
	for _, c := range []struct {
		name    string
		samples []int64
		flat    bool
		lows    [2]int64
	}{
		// A 300/s step of session 30: every order confirmed within it; two peaks of over
		// 300 in its last third put that third's average 56 above the first's.
		{"spikes in the last third", []int64{62, 230, 82, 9, 20, 103, 87, 189, 94, 36, 9, 78, 64, 148, 0, 8, 157, 153, 317, 207}, true, [2]int64{9, 0}},
		// One of session 29: the lag never fell under 86 in the last six seconds.
		{"a floor that rose", []int64{162, 64, 93, 25, 2, 22, 2, 21, 16, 43, 26, 15, 136, 137, 151, 86, 127, 89, 98}, false, [2]int64{2, 86}},
		{"a backlog that grows", []int64{0, 40, 85, 130, 170, 220, 260, 300, 350, 390, 430}, false, [2]int64{0, 350}},
		{"a standing backlog that does not grow", []int64{400, 420, 380, 410, 395, 405, 430, 390, 415}, true, [2]int64{380, 390}},
		{"one sample", []int64{7}, true, [2]int64{7, 7}},
	} {
		l := lagSummary(c.samples)
		if l.Flat != c.flat || l.FirstLow != c.lows[0] || l.LastLow != c.lows[1] {
			t.Errorf("%s: flat %v, lows %d and %d; want %v, %d and %d", c.name, l.Flat, l.FirstLow, l.LastLow, c.flat, c.lows[0], c.lows[1])
		}
	}
	if l := lagSummary(nil); !l.Flat || l.Max != 0 {
		t.Errorf("no samples: %+v, want flat", l)
	}
}
