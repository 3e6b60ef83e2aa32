package stock

import "testing"

func TestReserveAllOrNothing(t *testing.T) {
	levels := map[string]Level{
		"A": {SKU: "A", OnHand: 10, Reserved: 2, LowThreshold: 5},
		"B": {SKU: "B", OnHand: 1},
	}
	_, _, short := Reserve(levels, []Line{{"A", 3}, {"B", 2}, {"C", 1}})
	if len(short) != 2 || short[0] != (Shortage{"B", 2, 1}) || short[1] != (Shortage{"C", 1, 0}) {
		t.Fatalf("shortages %+v", short)
	}
	if levels["A"].Reserved != 2 {
		t.Fatal("a rejected reservation changed a level")
	}
	updated, lows, short := Reserve(levels, []Line{{"A", 4}, {"B", 1}})
	if short != nil || len(updated) != 2 || updated[0].Reserved != 6 || updated[1].Reserved != 1 {
		t.Fatalf("updated %+v short %+v", updated, short)
	}
	if len(lows) != 1 || lows[0] != (Low{"A", 4, 5}) {
		t.Fatalf("lows %+v: A went from 8 to 4 under threshold 5", lows)
	}
	if _, lows, _ := Reserve(levels, []Line{{"A", 1}}); len(lows) != 0 {
		t.Fatalf("already under the threshold must not repeat StockLow: %+v", lows)
	}
}
