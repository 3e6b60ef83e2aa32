// Package stock holds inventory's rules: all-or-nothing reservation of an order's lines
// and the low-stock threshold. It does no I/O.
package stock

// Level is the stock of one SKU.
type Level struct {
	SKU          string
	OnHand       int
	Reserved     int
	LowThreshold int
}

// Available is what can still be reserved.
func (l Level) Available() int { return l.OnHand - l.Reserved }

// Line is a quantity of a SKU.
type Line struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

// Shortage is a line that cannot be served.
type Shortage struct {
	SKU       string
	Requested int
	Available int
}

// Low is a SKU whose availability crossed under its threshold.
type Low struct {
	SKU       string
	Available int
	Threshold int
}

// Reserve decides a reservation over the current levels (a SKU without a level has
// none). Either every line fits, and it returns the new levels and the SKUs that just
// went under their threshold; or nothing is reserved, and it returns every shortage.
func Reserve(levels map[string]Level, lines []Line) (updated []Level, lows []Low, shortages []Shortage) {
	for _, l := range lines {
		lv := levels[l.SKU]
		if lv.Available() < l.Quantity {
			shortages = append(shortages, Shortage{SKU: l.SKU, Requested: l.Quantity, Available: max(0, lv.Available())})
		}
	}
	if len(shortages) > 0 {
		return nil, nil, shortages
	}
	for _, l := range lines {
		lv := levels[l.SKU]
		before := lv.Available()
		lv.Reserved += l.Quantity
		if before >= lv.LowThreshold && lv.Available() < lv.LowThreshold {
			lows = append(lows, Low{SKU: lv.SKU, Available: lv.Available(), Threshold: lv.LowThreshold})
		}
		levels[l.SKU] = lv
		updated = append(updated, lv)
	}
	return updated, lows, nil
}
