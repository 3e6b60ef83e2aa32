package projection

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Printer returns a Progress callback writing to w: a bar redrawn in place when w is a
// terminal, one JSON object per line otherwise (for logs and scripts).
func Printer(w io.Writer) func(Progress) {
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			return func(p Progress) { fmt.Fprint(w, Bar(p, 30)) }
		}
	}
	return JSONLines(w)
}

// JSONLines returns a Progress callback writing one JSON object per line to w.
func JSONLines(w io.Writer) func(Progress) {
	enc := json.NewEncoder(w)
	return func(p Progress) { _ = enc.Encode(p) }
}

// Bar renders p as one terminal line that overwrites the previous one, and ends with a
// newline when the rebuild is done.
func Bar(p Progress, width int) string {
	done := float64(p.Records)
	frac := 1.0
	if total := done + float64(p.Remaining); total > 0 {
		frac = done / total
	}
	filled := int(frac * float64(width))
	var b strings.Builder
	fmt.Fprintf(&b, "\r%s %-10s [%s%s] %5.1f%% %d records, %.0f/s, %d left",
		p.Model, p.Phase, strings.Repeat("#", filled), strings.Repeat(".", width-filled), frac*100,
		p.Records, p.Rate, p.Remaining)
	if p.ETA > 0 && p.Phase == PhaseRebuilding {
		fmt.Fprintf(&b, ", ETA %s", p.ETA.Round(time.Second))
	}
	if p.DeadLettered > 0 {
		fmt.Fprintf(&b, ", %d dead-lettered", p.DeadLettered)
	}
	b.WriteString("\x1b[K") // clear what a longer previous line left
	if p.Phase == PhaseDone {
		b.WriteString("\n")
	}
	return b.String()
}
