// Package pdf renders billing's invoices and credit notes as PDF documents
// (platform/pdfdoc). The text is real text in the standard fonts, so tools such as
// pdftotext extract it.
package pdf

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"golang.org/x/text/currency"

	"github.com/orderflow/orderflow/platform/pdfdoc"
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
func Render(inv Invoice) []byte {
	doc := pdfdoc.New(pdfdoc.A4, pdfdoc.Info{Title: "Invoice " + inv.Number, Creator: "orderflow billing", Created: inv.IssuedAt})
	doc.SetFont(pdfdoc.HelveticaBold, 18)
	doc.Cell(0, 10, "Invoice "+inv.Number)
	doc.Ln(12)
	doc.SetFont(pdfdoc.Helvetica, 11)
	for _, s := range []string{
		"Order: " + inv.OrderID,
		"Issued: " + inv.IssuedAt.UTC().Format("2006-01-02"),
		"Customer: " + inv.CustomerName + " <" + inv.CustomerEmail + ">",
	} {
		doc.Cell(0, 7, s)
		doc.Ln(7)
	}
	doc.Ln(4)
	doc.SetFont(pdfdoc.HelveticaBold, 11)
	widths := []float64{35, 75, 20, 30, 30}
	for i, h := range []string{"SKU", "Product", "Qty", "Unit price", "Amount"} {
		doc.CellBorder(widths[i], 8, h, pdfdoc.Bottom)
	}
	doc.Ln(-1)
	doc.SetFont(pdfdoc.Helvetica, 11)
	for _, l := range inv.Lines {
		cells := []string{l.SKU, l.Name, strconv.Itoa(l.Quantity), Money(l.UnitPriceMinor, inv.Currency), Money(int64(l.Quantity)*l.UnitPriceMinor, inv.Currency)}
		for i, c := range cells {
			doc.Cell(widths[i], 7, c)
		}
		doc.Ln(-1)
	}
	doc.Ln(3)
	// The total under the amounts, labelled in the unit price's column (the text is
	// left-aligned: the standard fonts are not measured).
	doc.SetFont(pdfdoc.HelveticaBold, 12)
	doc.CellBorder(130, 8, "", pdfdoc.Top)
	doc.CellBorder(30, 8, "Total", pdfdoc.Top)
	doc.CellBorder(30, 8, Money(inv.TotalMinor, inv.Currency), pdfdoc.Top)
	return doc.PDF()
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
