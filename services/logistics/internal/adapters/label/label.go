// Package label renders shipping labels as PDF documents with go-pdf/fpdf.
package label

import (
	"bytes"
	"fmt"
	"sync"
	"time"

	"github.com/go-pdf/fpdf"
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
	tr := cp1252()
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

// cp1252 maps UTF-8 text to the code page of fpdf's core fonts. Building it parses a
// table with Sscanf, so it is built once, not per document; the function fpdf returns
// reuses one buffer, so calls take turns (the race detector caught concurrent renders
// sharing it).
var cp1252 = sync.OnceValue(func() func(string) string {
	tr := fpdf.New("P", "mm", "A4", "").UnicodeTranslatorFromDescriptor("")
	var mu sync.Mutex
	return func(s string) string {
		mu.Lock()
		defer mu.Unlock()
		return tr(s)
	}
})
