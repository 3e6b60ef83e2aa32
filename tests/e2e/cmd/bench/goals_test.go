package main

import (
	"strings"
	"testing"
)

func peaks(mib map[string]float64) map[string]ProcPeak {
	p := map[string]ProcPeak{"kafka": {PeakMiB: 400}, "postgres": {PeakMiB: 580}} // never judged
	for name, v := range mib {
		p[name] = ProcPeak{PeakMiB: v}
	}
	return p
}

func underLimit() map[string]ProcPeak {
	return peaks(map[string]float64{"shop": 86, "inventory": 81.7, "billing": 81.8, "logistics": 83, "crm": 81.4})
}

func TestARunIsHeldAgainstEachGoal(t *testing.T) {
	at100 := Step{Offered: 100, Sent: 3000, Confirmed: 3000, Latency: Dist{P99: 27}, Sustained: true}
	at300 := Step{Offered: 300, Sent: 9000, Confirmed: 9000, Latency: Dist{P99: 361}, Sustained: true}
	lagging := Step{Offered: 300, Sent: 6000, Confirmed: 6000, Shortfalls: []string{"lag grew: at least 86 in the last third against 2 in the first (more than 50 above)"}}
	for _, c := range []struct {
		name  string
		r     Report
		want  [3]string // throughput, latency, memory
		words []string  // each must appear in some verdict's detail
	}{
		{"every goal met", Report{Steps: []Step{at100, at300}, Peak: underLimit()},
			[3]string{"met", "met", "met"}, []string{"300/s sustained", "p99 27.0 ms", "the largest shop 86.0 MiB"}},
		{"the latency goal missed", Report{Steps: []Step{{Offered: 100, Sent: 3000, Confirmed: 3000, Latency: Dist{P99: 62.8}}, at300}, Peak: underLimit()},
			[3]string{"met", "missed", "met"}, []string{"p99 62.8 ms"}},
		{"300/s offered and not kept up with", Report{Steps: []Step{at100, lagging}, Peak: underLimit()},
			[3]string{"missed", "met", "met"}, []string{"300/s not sustained: lag grew: at least 86"}},
		{"a faster step sustained counts", Report{Steps: []Step{at100, lagging, {Offered: 350, Sustained: true}}, Peak: underLimit()},
			[3]string{"met", "met", "met"}, []string{"350/s sustained"}},
		{"no step at either rate", Report{Steps: []Step{{Offered: 50, Sustained: true}, {Offered: 200, Sustained: true}}, Peak: underLimit()},
			[3]string{"not measured", "not measured", "met"}, []string{"no step offered 300/s or more", "no step at 100/s"}},
		{"a fast p99 over some of the orders", Report{Steps: []Step{{Offered: 100, Sent: 3000, Confirmed: 2990, Incomplete: 10, Latency: Dist{P99: 20}}}, Peak: underLimit()},
			[3]string{"not measured", "missed", "met"}, []string{"10 orders failed, cancelled or not confirmed"}},
		{"every step at 100/s counts", Report{Steps: []Step{at100, {Offered: 100, Sent: 3000, Confirmed: 3000, Latency: Dist{P99: 50.3}}}, Peak: underLimit()},
			[3]string{"not measured", "missed", "met"}, []string{"p99 27.0 ms, 50.3 ms"}},
		{"a service over the limit", Report{Steps: []Step{at100, at300},
			Peak: peaks(map[string]float64{"shop": 103.6, "inventory": 81.7, "billing": 81.8, "logistics": 83, "crm": 100})},
			[3]string{"met", "met", "missed"}, []string{"shop 103.6 MiB, crm 100.0 MiB"}},
		{"a service's peak not read", Report{Steps: []Step{at100, at300}, Peak: peaks(map[string]float64{"shop": 86, "inventory": 81.7})},
			[3]string{"met", "met", "not measured"}, []string{"3 of the 5 services' peaks not read"}},
	} {
		vs := judge(c.r)
		if len(vs) != 3 {
			t.Fatalf("%s: %d verdicts, want 3", c.name, len(vs))
		}
		var details []string
		for i, v := range vs {
			if v.State != c.want[i] {
				t.Errorf("%s: %q is %s (%s), want %s", c.name, v.Goal, v.State, v.Detail, c.want[i])
			}
			details = append(details, v.Detail)
		}
		all := strings.Join(details, " | ")
		for _, w := range c.words {
			if !strings.Contains(all, w) {
				t.Errorf("%s: the verdicts %q do not say %q", c.name, all, w)
			}
		}
	}
}

func TestAStepSaysWhyItWasNotSustained(t *testing.T) {
	kept := Step{Offered: 300, CompletedPerS: 300, Lag: Lag{Flat: true}}
	if got := shortfalls(kept); got != nil {
		t.Errorf("a step that kept up: %q, want none", got)
	}
	behind := Step{Offered: 300, Errors: 294, Incomplete: 3, Cancelled: 2, Unnotified: 7, CompletedPerS: 281.9,
		Lag: Lag{Flat: false, FirstLow: 2, LastLow: 86}}
	want := []string{"294 requests failed", "3 orders not confirmed", "2 orders cancelled", "7 confirmed orders not e-mailed",
		"281.9/s confirmed within the step, under 95% of 300/s", "lag grew: at least 86 in the last third against 2 in the first"}
	got := shortfalls(behind)
	if len(got) != len(want) {
		t.Fatalf("shortfalls %q, want one for each of %q", got, want)
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], w) {
			t.Errorf("shortfall %d: %q, want it to begin %q", i, got[i], w)
		}
	}
}
