// Package label renders shipping labels as PDF documents (platform/pdfdoc).
package label

import (
	"time"

	"github.com/orderflow/orderflow/platform/pdfdoc"
)

// Label is what a shipping label shows.
type Label struct {
	ShipmentID     string
	OrderID        string
	Carrier        string
	TrackingNumber string
	Name           string
	Lines          []string // address lines, in order
	PreparedAt     time.Time
}

// Render returns the label as an A6 PDF.
func Render(l Label) []byte {
	doc := pdfdoc.New(pdfdoc.A6, pdfdoc.Info{Title: "Shipping label " + l.TrackingNumber, Creator: "orderflow logistics", Created: l.PreparedAt})
	doc.SetFont(pdfdoc.HelveticaBold, 14)
	doc.Cell(0, 8, l.Carrier)
	doc.Ln(10)
	doc.SetFont(pdfdoc.CourierBold, 16)
	doc.Cell(0, 8, l.TrackingNumber)
	doc.Ln(12)
	doc.SetFont(pdfdoc.Helvetica, 11)
	doc.Cell(0, 6, "Ship to:")
	doc.Ln(6)
	doc.SetFont(pdfdoc.HelveticaBold, 12)
	for _, s := range append([]string{l.Name}, l.Lines...) {
		doc.Cell(0, 6, s)
		doc.Ln(6)
	}
	doc.Ln(4)
	doc.SetFont(pdfdoc.Helvetica, 8)
	doc.Cell(0, 5, "Order "+l.OrderID)
	doc.Ln(4)
	doc.Cell(0, 5, "Shipment "+l.ShipmentID)
	return doc.PDF()
}
