package pdf

import (
	"bytes"
	"fmt"
	"time"

	"github.com/go-pdf/fpdf"

	"github.com/orderflow/orderflow/platform/cp1252"
)

// CreditNote is what a credit note shows: it cancels an issued invoice in full.
type CreditNote struct {
	Number          string
	InvoiceNumber   string
	InvoiceIssuedAt time.Time
	OrderID         string
	Reason          string
	Currency        string
	// AmountMinor is the invoice's total; the note credits all of it.
	AmountMinor int64
	IssuedAt    time.Time
}

// RenderCreditNote returns the credit note as a PDF.
func RenderCreditNote(cn CreditNote) ([]byte, error) {
	doc := fpdf.New("P", "mm", "A4", "")
	doc.SetCompression(false) // as for invoices: a zlib writer per document costs more than the rest
	doc.SetTitle("Credit note "+cn.Number, true)
	doc.SetCreator("orderflow billing", true)
	doc.SetCreationDate(cn.IssuedAt)
	doc.SetModificationDate(cn.IssuedAt)
	doc.AddPage()
	doc.SetFont("Helvetica", "B", 18)
	doc.Cell(0, 10, "Credit note "+cn.Number)
	doc.Ln(12)
	doc.SetFont("Helvetica", "", 11)
	for _, s := range []string{
		"Cancels invoice " + cn.InvoiceNumber + " of " + cn.InvoiceIssuedAt.UTC().Format("2006-01-02") + " in full",
		"Order: " + cn.OrderID,
		"Issued: " + cn.IssuedAt.UTC().Format("2006-01-02"),
		"Reason: " + cp1252.Encode(cn.Reason),
	} {
		doc.Cell(0, 7, s)
		doc.Ln(7)
	}
	doc.Ln(4)
	doc.SetFont("Helvetica", "B", 12)
	doc.CellFormat(160, 8, "Total credited", "T", 0, "R", false, 0, "")
	doc.CellFormat(30, 8, Money(-cn.AmountMinor, cn.Currency), "T", 0, "L", false, 0, "")
	var buf bytes.Buffer
	if err := doc.Output(&buf); err != nil {
		return nil, fmt.Errorf("render credit note %s: %w", cn.Number, err)
	}
	return buf.Bytes(), nil
}
