package pdf

import (
	"time"

	"github.com/orderflow/orderflow/platform/pdfdoc"
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
func RenderCreditNote(cn CreditNote) []byte {
	doc := pdfdoc.New(pdfdoc.A4, pdfdoc.Info{Title: "Credit note " + cn.Number, Creator: "orderflow billing", Created: cn.IssuedAt})
	doc.SetFont(pdfdoc.HelveticaBold, 18)
	doc.Cell(0, 10, "Credit note "+cn.Number)
	doc.Ln(12)
	doc.SetFont(pdfdoc.Helvetica, 11)
	for _, s := range []string{
		"Cancels invoice " + cn.InvoiceNumber + " of " + cn.InvoiceIssuedAt.UTC().Format("2006-01-02") + " in full",
		"Order: " + cn.OrderID,
		"Issued: " + cn.IssuedAt.UTC().Format("2006-01-02"),
		"Reason: " + cn.Reason,
	} {
		doc.Cell(0, 7, s)
		doc.Ln(7)
	}
	doc.Ln(4)
	doc.SetFont(pdfdoc.HelveticaBold, 12)
	doc.CellBorder(120, 8, "", pdfdoc.Top)
	doc.CellBorder(40, 8, "Total credited", pdfdoc.Top)
	doc.CellBorder(30, 8, Money(-cn.AmountMinor, cn.Currency), pdfdoc.Top)
	return doc.PDF()
}
