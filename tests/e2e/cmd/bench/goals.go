package main

import (
	"fmt"
	"strings"
)

// The suite's performance goals on a 2-core machine running the whole stack and the
// generator (README, Performance): the report says of each whether this run met it.
const (
	goalRate      = 300 // orders/s sustained
	goalP99Rate   = 100 // orders/s at which the latency goal holds
	goalP99Millis = 50  // p99 POST to OrderConfirmed
	goalRSSMiB    = 100 // each service's peak resident memory
)

// Verdict says whether one goal was met in a run: "met", "missed", or "not measured" when
// the run had no step that could tell.
type Verdict struct {
	Goal   string `json:"goal"`
	State  string `json:"state"`
	Detail string `json:"detail"`
}

// judge holds a run against the goals.
func judge(r Report) []Verdict {
	return []Verdict{throughputVerdict(r.Steps), latencyVerdict(r.Steps), memoryVerdict(r.Peak)}
}

func throughputVerdict(steps []Step) Verdict {
	v := Verdict{Goal: fmt.Sprintf("at least %d orders/s sustained", goalRate), State: "not measured",
		Detail: fmt.Sprintf("no step offered %d/s or more", goalRate)}
	for _, s := range steps {
		switch {
		case s.Offered < goalRate:
		case s.Sustained:
			return Verdict{Goal: v.Goal, State: "met", Detail: fmt.Sprintf("%d/s sustained", s.Offered)}
		case v.State != "missed":
			v.State = "missed"
			v.Detail = fmt.Sprintf("%d/s not sustained: %s", s.Offered, strings.Join(s.Shortfalls, "; "))
		}
	}
	return v
}

// latencyVerdict needs every step at goalP99Rate to meet it, and every order of such a
// step to have been confirmed: the p99 of the confirmed orders says nothing of the others.
func latencyVerdict(steps []Step) Verdict {
	v := Verdict{Goal: fmt.Sprintf("p99 POST to OrderConfirmed at most %d ms at %d orders/s", goalP99Millis, goalP99Rate),
		State: "not measured", Detail: fmt.Sprintf("no step at %d/s", goalP99Rate)}
	var p99s, unconfirmed []string
	missed := false
	for _, s := range steps {
		if s.Offered != goalP99Rate {
			continue
		}
		p99s = append(p99s, fmt.Sprintf("%.1f ms", s.Latency.P99))
		missed = missed || s.Latency.P99 > goalP99Millis
		if n := s.Errors + s.Incomplete + s.Cancelled; n > 0 {
			missed = true
			unconfirmed = append(unconfirmed, fmt.Sprintf("%d orders failed, cancelled or not confirmed", n))
		}
	}
	if p99s == nil {
		return v
	}
	v.State, v.Detail = "met", "p99 "+strings.Join(p99s, ", ")
	if missed {
		v.State = "missed"
	}
	if unconfirmed != nil {
		v.Detail += "; " + strings.Join(unconfirmed, "; ")
	}
	return v
}

func memoryVerdict(peak map[string]ProcPeak) Verdict {
	v := Verdict{Goal: fmt.Sprintf("each service under %d MiB of resident memory", goalRSSMiB), State: "not measured",
		Detail: "no service's peak was read"}
	var over []string
	largest, read := "", 0
	for _, name := range services {
		p, ok := peak[name]
		if !ok {
			continue
		}
		read++
		if largest == "" || p.PeakMiB > peak[largest].PeakMiB {
			largest = name
		}
		if p.PeakMiB >= goalRSSMiB {
			over = append(over, fmt.Sprintf("%s %.1f MiB", name, p.PeakMiB))
		}
	}
	switch {
	case read == 0:
		return v
	case over != nil:
		v.State, v.Detail = "missed", strings.Join(over, ", ")
	case read < len(services):
		v.Detail = fmt.Sprintf("%d of the %d services' peaks not read", len(services)-read, len(services))
	default:
		v.State, v.Detail = "met", fmt.Sprintf("the largest %s %.1f MiB", largest, peak[largest].PeakMiB)
	}
	return v
}

func printGoals(vs []Verdict) {
	fmt.Println("goals:")
	for _, v := range vs {
		fmt.Printf("  %-58s %s: %s\n", v.Goal, v.State, v.Detail)
	}
}
