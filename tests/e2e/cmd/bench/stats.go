package main

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"time"
)

// Step is the result of offering one rate.
type Step struct {
	Offered    int    `json:"offered_per_s"`
	Sent       int    `json:"sent"`
	Accepted   int    `json:"accepted"`
	Errors     int    `json:"errors"`
	FirstError string `json:"first_error,omitempty"`
	Confirmed  int    `json:"confirmed"`
	Cancelled  int    `json:"cancelled"`
	Incomplete int    `json:"incomplete"`
	// Unnotified counts confirmed orders whose confirmation e-mail crm had not sent
	// (no CustomerNotified) by the end of the drain: work the suite accepted and did
	// not keep up with, which no consumer's lag shows (the e-mails queue in a table).
	Unnotified    int                  `json:"unnotified"`
	CompletedPerS float64              `json:"completed_per_s"`
	Latency       Dist                 `json:"post_to_confirmed_ms"`
	Hops          map[string]Dist      `json:"hops_ms"`
	Lag           Lag                  `json:"consumer_lag"`
	Processes     map[string]ProcUsage `json:"processes"`
	Machine       MachineUsage         `json:"machine_usage"`
	Cost          *Cost                `json:"cost_per_order,omitempty"`
	Sustained     bool                 `json:"sustained"`
	// Shortfalls says why a step did not keep up, one reason for each rule it failed
	// (shortfalls); empty when it was sustained.
	Shortfalls []string `json:"shortfalls,omitempty"`
	// PerSecond is POST to confirmed by the second the orders were scheduled in, so that a
	// tail can be lined up with what else happened then (the broker's GC log, a checkpoint,
	// a lingering group's batch).
	PerSecond []Second `json:"per_second,omitempty"`
}

// Second is the confirmation latency of the orders scheduled in one second of a step.
type Second struct {
	At     time.Time `json:"at"`     // the second's start
	Offset int       `json:"offset"` // seconds since the step's start
	Dist
}

// sample is one confirmed order: when it was scheduled and how long it took.
type sample struct {
	scheduled time.Time
	ms        float64
}

// perSecond buckets samples by the second of the step they were scheduled in; seconds
// with no confirmed order are left out.
func perSecond(start time.Time, samples []sample) []Second {
	buckets := map[int][]float64{}
	for _, s := range samples {
		i := int(s.scheduled.Sub(start) / time.Second)
		i = max(i, 0) // a request of the step before, answered after this one began
		buckets[i] = append(buckets[i], s.ms)
	}
	out := make([]Second, 0, len(buckets))
	for _, i := range slices.Sorted(maps.Keys(buckets)) {
		out = append(out, Second{At: start.Add(time.Duration(i) * time.Second), Offset: i, Dist: dist(buckets[i])})
	}
	return out
}

// slowest returns the n seconds with the highest maximum, slowest first.
func slowest(secs []Second, n int) []Second {
	out := slices.Clone(secs)
	slices.SortStableFunc(out, func(a, b Second) int { return cmp.Compare(b.Max, a.Max) })
	return out[:min(n, len(out))]
}

// Dist is a latency distribution in milliseconds.
type Dist struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Lag summarises the total consumer lag sampled once a second during a step.
type Lag struct {
	Samples    []int64 `json:"samples"`
	Max        int64   `json:"max"`
	FirstThird float64 `json:"first_third_avg"`
	LastThird  float64 `json:"last_third_avg"`
	// FirstLow and LastLow are the lowest samples of the step's first and last thirds:
	// what Flat is judged by (lagSummary).
	FirstLow int64 `json:"first_third_low"`
	LastLow  int64 `json:"last_third_low"`
	Flat     bool  `json:"flat"`
}

// The hops, from the events' own timestamps (ce_time, set when the publishing
// service's transaction wrote the event).
const (
	hopAccept    = "http: scheduled -> 202"
	hopInventory = "inventory: placed -> reserved"
	// The inventory hop split at the broker by the records' Kafka timestamps (whole
	// milliseconds): shop's commit and relay, then the fetch and inventory's transaction,
	// then inventory's commit and relay.
	hopShopRelay      = "  shop relay: placed -> produced"
	hopInventoryApply = "  inventory: produced -> reserved"
	hopInventoryRelay = "  inventory relay: -> produced"
	hopBilling        = "billing: placed -> authorized"
	hopShop           = "shop: both -> confirmed"
	// The shop hop split at the broker: the later relay (inventory's or billing's) to its
	// record's Kafka timestamp, then the fetch and shop's transaction.
	hopBothRelay = "  relays: both -> both produced"
	hopShopApply = "  shop: both produced -> confirmed"
	hopLogistics = "logistics: both -> prepared"
	hopCRM       = "crm: confirmed -> notified"
	hopCapture   = "billing: confirmed -> captured"
)

var hopOrder = []string{hopAccept, hopInventory, hopShopRelay, hopInventoryApply, hopInventoryRelay, hopBilling, hopShop, hopBothRelay, hopShopApply, hopLogistics, hopCRM, hopCapture}

func dist(ms []float64) Dist {
	if len(ms) == 0 {
		return Dist{}
	}
	slices.Sort(ms)
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(ms)))) - 1
		return round(ms[max(0, min(i, len(ms)-1))])
	}
	return Dist{N: len(ms), P50: at(0.50), P95: at(0.95), P99: at(0.99), Max: round(ms[len(ms)-1])}
}

func round(v float64) float64 { return math.Round(v*10) / 10 }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// lagSummary calls lag flat when its lowest sample in the last third of the step is no
// more than 50 events above its lowest in the first third. A backlog that grows raises
// the low points; the groups that batch on purpose (read models, logistics and crm wait up
// to 200-250 ms for more records) raise only the peaks, by a few hundred records at 300
// orders/s whenever several of their batches fall in one sample. Until session 30 the
// averages of the two thirds were compared, and one or two such peaks in the last third
// failed steps whose every order was confirmed within them and whose lag fell back to
// 0-50 records within their last third.
func lagSummary(samples []int64) Lag {
	l := Lag{Samples: samples, Flat: true}
	if len(samples) == 0 {
		return l
	}
	avg := func(xs []int64) float64 {
		var s int64
		for _, x := range xs {
			s += x
		}
		return float64(s) / float64(len(xs))
	}
	third := max(1, len(samples)/3)
	first, last := samples[:third], samples[len(samples)-third:]
	l.Max = slices.Max(samples)
	l.FirstThird, l.LastThird = round(avg(first)), round(avg(last))
	l.FirstLow, l.LastLow = slices.Min(first), slices.Min(last)
	l.Flat = l.LastLow <= l.FirstLow+50
	return l
}

// summarise computes a step's figures from the traces of its orders.
func (g *generator) summarise(res *Step, start, end time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var e2e []float64
	var samples []sample
	hops := map[string][]float64{}
	inWindow := 0
	for _, t := range g.orders {
		if t.scheduled.IsZero() {
			continue
		}
		hops[hopAccept] = append(hops[hopAccept], ms(t.answered.Sub(t.scheduled)))
		switch {
		case t.cancelled:
			res.Cancelled++
			continue
		case t.confirmed.IsZero():
			res.Incomplete++
			continue
		}
		res.Confirmed++
		if t.notified.IsZero() {
			res.Unnotified++
		}
		latency := ms(t.confirmed.Sub(t.scheduled))
		e2e = append(e2e, latency)
		samples = append(samples, sample{t.scheduled, latency})
		if !t.confirmed.After(end.Add(time.Second)) {
			inWindow++
		}
		if !t.placed.IsZero() {
			if !t.reserved.IsZero() {
				hops[hopInventory] = append(hops[hopInventory], ms(t.reserved.Sub(t.placed)))
				hops[hopShopRelay] = append(hops[hopShopRelay], ms(t.placedProduced.Sub(t.placed)))
				hops[hopInventoryApply] = append(hops[hopInventoryApply], ms(t.reserved.Sub(t.placedProduced)))
				hops[hopInventoryRelay] = append(hops[hopInventoryRelay], ms(t.reservedProduced.Sub(t.reserved)))
			}
			if !t.authorized.IsZero() {
				hops[hopBilling] = append(hops[hopBilling], ms(t.authorized.Sub(t.placed)))
			}
		}
		if both := later(t.reserved, t.authorized); !t.reserved.IsZero() && !t.authorized.IsZero() {
			hops[hopShop] = append(hops[hopShop], ms(t.confirmed.Sub(both)))
			bothProduced := later(t.reservedProduced, t.authorizedProduced)
			hops[hopBothRelay] = append(hops[hopBothRelay], ms(bothProduced.Sub(both)))
			hops[hopShopApply] = append(hops[hopShopApply], ms(t.confirmed.Sub(bothProduced)))
			if !t.prepared.IsZero() {
				hops[hopLogistics] = append(hops[hopLogistics], ms(t.prepared.Sub(both)))
			}
		}
		if !t.notified.IsZero() {
			hops[hopCRM] = append(hops[hopCRM], ms(t.notified.Sub(t.confirmed)))
		}
		if !t.captured.IsZero() {
			hops[hopCapture] = append(hops[hopCapture], ms(t.captured.Sub(t.confirmed)))
		}
	}
	res.Latency = dist(e2e)
	res.PerSecond = perSecond(start, samples)
	for h, xs := range hops {
		res.Hops[h] = dist(xs)
	}
	// Completed per second: orders confirmed by one second after the step's last request,
	// over the step's length. What was only confirmed while draining does not count.
	res.CompletedPerS = round(float64(inWindow) / end.Sub(start).Seconds())
	res.Shortfalls = shortfalls(*res)
	res.Sustained = len(res.Shortfalls) == 0
}

// shortfalls are the reasons a step did not keep up, one for each rule it failed: every
// request accepted, every order confirmed (none cancelled, none still open after the
// drain) and e-mailed, at least 95% of the offered rate confirmed within the step, and
// lag flat (lagSummary). None means the step was sustained.
func shortfalls(s Step) []string {
	var why []string
	if s.Errors > 0 {
		why = append(why, fmt.Sprintf("%d requests failed", s.Errors))
	}
	if s.Incomplete > 0 {
		why = append(why, fmt.Sprintf("%d orders not confirmed by the end of the drain", s.Incomplete))
	}
	if s.Cancelled > 0 {
		why = append(why, fmt.Sprintf("%d orders cancelled", s.Cancelled))
	}
	if s.Unnotified > 0 {
		why = append(why, fmt.Sprintf("%d confirmed orders not e-mailed by the end of the drain", s.Unnotified))
	}
	if s.CompletedPerS < 0.95*float64(s.Offered) {
		why = append(why, fmt.Sprintf("%.1f/s confirmed within the step, under 95%% of %d/s", s.CompletedPerS, s.Offered))
	}
	if !s.Lag.Flat {
		why = append(why, fmt.Sprintf("lag grew: at least %d in the last third against %d in the first (more than 50 above)",
			s.Lag.LastLow, s.Lag.FirstLow))
	}
	return why
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
