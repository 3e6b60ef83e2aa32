// Package label renders shipping labels as PDF documents with go-pdf/fpdf.
package label

import (
	"bytes"
	"fmt"
	"time"

	"github.com/go-pdf/fpdf"

	"github.com/orderflow/orderflow/platform/cp1252"
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
func Render(l Label) ([]byte, error) {
	doc := fpdf.New("P", "mm", "A6", "")
	// Uncompressed: the page is a few lines of text, and a zlib writer per document (about
	// a megabyte to allocate and clear) cost more CPU than the rest of the document.
	doc.SetCompression(false)
	doc.SetTitle("Shipping label "+l.TrackingNumber, true)
	doc.SetCreationDate(l.PreparedAt)
	doc.SetModificationDate(l.PreparedAt)
	doc.AddPage()
	tr := cp1252.Encode
	doc.SetFont("Helvetica", "B", 14)
	doc.Cell(0, 8, l.Carrier)
	doc.Ln(10)
	doc.SetFont("Courier", "B", 16)
	doc.Cell(0, 8, l.TrackingNumber)
	doc.Ln(12)
	doc.SetFont("Helvetica", "", 11)
	doc.Cell(0, 6, "Ship to:")
	doc.Ln(6)
	doc.SetFont("Helvetica", "B", 12)
	for _, s := range append([]string{l.Name}, l.Lines...) {
		doc.Cell(0, 6, tr(s))
		doc.Ln(6)
	}
	doc.Ln(4)
	doc.SetFont("Helvetica", "", 8)
	doc.Cell(0, 5, "Order "+l.OrderID)
	doc.Ln(4)
	doc.Cell(0, 5, "Shipment "+l.ShipmentID)
	var buf bytes.Buffer
	if err := doc.Output(&buf); err != nil {
		return nil, fmt.Errorf("render label %s: %w", l.TrackingNumber, err)
	}
	return buf.Bytes(), nil
}
