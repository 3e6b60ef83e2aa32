package events

import (
	"testing"
	"time"

	"github.com/orderflow/orderflow/avro/inventory"
	shopevents "github.com/orderflow/orderflow/avro/shop"
	"github.com/orderflow/orderflow/platform/projection"
)

func TestTimelineDetailsCountLines(t *testing.T) {
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		payload any
		want    string
	}{
		{shopevents.OrderPlaced{OrderID: "o", PlacedAt: at, Lines: make([]shopevents.OrderLine, 1), TotalMinor: 1250, Currency: "EUR"}, "1 line, 12.50 EUR"},
		{shopevents.OrderPlaced{OrderID: "o", PlacedAt: at, Lines: make([]shopevents.OrderLine, 3), TotalMinor: 5, Currency: "EUR"}, "3 lines, 0.05 EUR"},
		{inventory.StockReserved{OrderID: "o", ReservedAt: at, Lines: make([]inventory.ReservedLine, 1)}, "1 line reserved"},
		{inventory.StockReserved{OrderID: "o", ReservedAt: at, Lines: make([]inventory.ReservedLine, 2)}, "2 lines reserved"},
	} {
		if _, _, got := describe(projection.Event{Payload: c.payload}); got != c.want {
			t.Errorf("%T with its lines: %q, want %q", c.payload, got, c.want)
		}
	}
}
