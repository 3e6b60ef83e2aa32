// Package pdf renders billing's invoices as PDF documents with go-pdf/fpdf. The text is
// real text (core fonts), so tools such as pdftotext extract it.
package pdf

import (
	"bytes"
	"fmt"
	"math"
	"time"

	"github.com/go-pdf/fpdf"

	"github.com/orderflow/orderflow/platform/cp1252"
	"golang.org/x/text/currency"
)

// Invoice is what an invoice shows.
type Invoice struct {
	Number        string
	OrderID       string
	CustomerName  string
	CustomerEmail string
	Currency      string
	Lines         []Line
	TotalMinor    int64
	IssuedAt      time.Time
}

// Line is an invoiced product.
type Line struct {
	SKU            string
	Name           string
	Quantity       int
	UnitPriceMinor int64
}

// Render returns the invoice as a PDF.
func Render(inv Invoice) ([]byte, error) {
	doc := fpdf.New("P", "mm", "A4", "")
	// Uncompressed: the page is a few lines of text, and a zlib writer per document (about
	// a megabyte to allocate and clear) cost more CPU than the rest of the document.
	doc.SetCompression(false)
	doc.SetTitle("Invoice "+inv.Number, true)
	doc.SetCreator("orderflow billing", true)
	doc.SetCreationDate(inv.IssuedAt)
	doc.SetModificationDate(inv.IssuedAt)
	doc.AddPage()
	tr := cp1252.Encode
	doc.SetFont("Helvetica", "B", 18)
	doc.Cell(0, 10, "Invoice "+inv.Number)
	doc.Ln(12)
	doc.SetFont("Helvetica", "", 11)
	for _, s := range []string{
		"Order: " + inv.OrderID,
		"Issued: " + inv.IssuedAt.UTC().Format("2006-01-02"),
		"Customer: " + tr(inv.CustomerName) + " <" + inv.CustomerEmail + ">",
	} {
		doc.Cell(0, 7, s)
		doc.Ln(7)
	}
	doc.Ln(4)
	doc.SetFont("Helvetica", "B", 11)
	widths := []float64{35, 75, 20, 30, 30}
	for i, h := range []string{"SKU", "Product", "Qty", "Unit price", "Amount"} {
		doc.CellFormat(widths[i], 8, h, "B", 0, "L", false, 0, "")
	}
	doc.Ln(-1)
	doc.SetFont("Helvetica", "", 11)
	for _, l := range inv.Lines {
		cells := []string{l.SKU, tr(l.Name), fmt.Sprint(l.Quantity), Money(l.UnitPriceMinor, inv.Currency), Money(int64(l.Quantity)*l.UnitPriceMinor, inv.Currency)}
		for i, c := range cells {
			doc.CellFormat(widths[i], 7, c, "", 0, "L", false, 0, "")
		}
		doc.Ln(-1)
	}
	doc.Ln(3)
	doc.SetFont("Helvetica", "B", 12)
	doc.CellFormat(160, 8, "Total", "T", 0, "R", false, 0, "")
	doc.CellFormat(30, 8, Money(inv.TotalMinor, inv.Currency), "T", 0, "L", false, 0, "")
	var buf bytes.Buffer
	if err := doc.Output(&buf); err != nil {
		return nil, fmt.Errorf("render invoice %s: %w", inv.Number, err)
	}
	return buf.Bytes(), nil
}

// Money formats minor units with the currency's decimals: 1999 EUR -> "19.99 EUR".
func Money(minor int64, code string) string {
	scale := 2
	if u, err := currency.ParseISO(code); err == nil {
		scale, _ = currency.Standard.Rounding(u)
	}
	if scale == 0 {
		return fmt.Sprintf("%d %s", minor, code)
	}
	div := int64(math.Pow10(scale))
	sign := ""
	if minor < 0 {
		sign, minor = "-", -minor
	}
	return fmt.Sprintf("%s%d.%0*d %s", sign, minor/div, scale, minor%div, code)
}
