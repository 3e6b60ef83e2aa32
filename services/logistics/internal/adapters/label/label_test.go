package label_test

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/services/logistics/internal/adapters/label"
)

// Labels render concurrently (one per partition worker): a render must show its own text,
// converted to the core fonts' code page, and nobody else's (a shared converter once
// swapped text between renders).
// (Labels are not compressed, so the converted text is in the PDF as it is.)
func TestConcurrentRendersAreIndependent(t *testing.T) {
	t.Parallel()
	names := []string{"Zoë Müller", "José Núñez", "Ærøskøbing Øst", "Françoise Dœuf"}
	cp1252 := []string{"Zo\xeb M\xfcller", "Jos\xe9 N\xfa\xf1ez", "\xc6r\xf8sk\xf8bing \xd8st", "Fran\xe7oise D\x9cuf"}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for r := range 25 {
				i := (g + r) % len(names)
				b := label.Render(label.Label{ShipmentID: "s", OrderID: "o", Carrier: "DHL", TrackingNumber: "T1",
					Name: names[i], Lines: []string{"Straße 1", "Köln"}, PreparedAt: time.Now()})
				for j, other := range cp1252 {
					if got := bytes.Contains(b, []byte("("+other+")")); got != (i == j) {
						t.Errorf("label for %q: contains %q = %v", names[i], names[j], got)
						return
					}
				}
				if !bytes.Contains(b, []byte("(Stra\xdfe 1)")) || !bytes.Contains(b, []byte("(K\xf6ln)")) {
					t.Errorf("label for %q lacks its address", names[i])
					return
				}
			}
		})
	}
	wg.Wait()
}
