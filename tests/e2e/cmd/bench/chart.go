package main

import (
	"bytes"
	"fmt"
	"math"
)

// chart draws POST->CONFIRMED latency percentiles against offered rate as an SVG, the
// latency axis logarithmic so that both the floor and the knee are readable.
func chart(r Report) []byte {
	const w, h, left, right, top, bottom = 760.0, 440.0, 70.0, 150.0, 40.0, 50.0
	pw, ph := w-left-right, h-top-bottom
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="22" font-size="14">orderflow: POST /v1/orders to OrderConfirmed, open loop (%s, %s)</text>`+"\n",
		left, r.Machine.coresText(), r.Started.Format("2006-01-02"))
	if len(r.Steps) == 0 {
		b.WriteString("</svg>\n")
		return b.Bytes()
	}
	maxRate, maxMs := 0.0, 1.0
	for _, s := range r.Steps {
		maxRate = math.Max(maxRate, float64(s.Offered))
		maxMs = math.Max(maxMs, s.Latency.Max)
	}
	lo, hi := 0.0, math.Ceil(math.Log10(maxMs)) // 1 ms .. next power of ten
	x := func(rate float64) float64 { return left + rate/maxRate*pw }
	y := func(v float64) float64 {
		l := math.Log10(math.Max(v, 1))
		return top + ph - (l-lo)/(hi-lo)*ph
	}
	// Axes and grid.
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`+"\n", left, top+ph, left+pw, top+ph)
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`+"\n", left, top, left, top+ph)
	for e := lo; e <= hi; e++ {
		v := math.Pow(10, e)
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#ddd"/><text x="%.0f" y="%.1f" text-anchor="end">%g ms</text>`+"\n",
			left, y(v), left+pw, y(v), left-6, y(v)+4, v)
	}
	for _, s := range r.Steps {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%d</text>`+"\n", x(float64(s.Offered)), top+ph+18, s.Offered)
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="middle">offered rate (orders/s)</text>`+"\n", left+pw/2, h-10)
	// The goal: p99 at most 50 ms at 100 orders/s.
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#c00" stroke-dasharray="4 4"/><text x="%.0f" y="%.1f" fill="#c00">50 ms goal</text>`+"\n",
		left, y(50), left+pw, y(50), left+pw+6, y(50)+4)
	series := []struct {
		name, color string
		get         func(Dist) float64
	}{
		{"p50", "#1f77b4", func(d Dist) float64 { return d.P50 }},
		{"p95", "#2ca02c", func(d Dist) float64 { return d.P95 }},
		{"p99", "#ff7f0e", func(d Dist) float64 { return d.P99 }},
		{"max", "#7f7f7f", func(d Dist) float64 { return d.Max }},
	}
	for i, se := range series {
		var pts bytes.Buffer
		for _, s := range r.Steps {
			fmt.Fprintf(&pts, "%.1f,%.1f ", x(float64(s.Offered)), y(se.get(s.Latency)))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", se.color, pts.String())
		for _, s := range r.Steps {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", x(float64(s.Offered)), y(se.get(s.Latency)), se.color)
		}
		ly := top + 20 + float64(i)*18
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="%s" stroke-width="2"/><text x="%.0f" y="%.0f">%s</text>`+"\n",
			left+pw+10, ly, left+pw+30, ly, se.color, left+pw+36, ly+4, se.name)
	}
	// Steps that did not keep up are marked with a red cross on the rate axis.
	for _, s := range r.Steps {
		if !s.Sustained {
			cx, cy := x(float64(s.Offered)), top+ph
			fmt.Fprintf(&b, `<path d="M%.1f %.1f l8 8 m0 -8 l-8 8" stroke="#c00" stroke-width="2"/>`+"\n", cx-4, cy-4)
		}
	}
	ly := top + 20 + float64(len(series))*18
	fmt.Fprintf(&b, `<path d="M%.1f %.1f l8 8 m0 -8 l-8 8" stroke="#c00" stroke-width="2"/><text x="%.0f" y="%.0f">not sustained</text>`+"\n",
		left+pw+16, ly-4, left+pw+36, ly+4)
	b.WriteString("</svg>\n")
	return b.Bytes()
}
