// Package cp1252 converts text for PDFs drawn with the PDF core fonts (Helvetica,
// Courier, ...), whose encoding is Windows-1252: billing's invoices and logistics'
// labels.
package cp1252

import "golang.org/x/text/encoding/charmap"

// Encode returns s in Windows-1252; a character the code page lacks becomes '?'. It is
// safe for concurrent use (the code page table is read-only), unlike the translator
// fpdf builds, which reuses one buffer.
func Encode(s string) string {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		c, ok := charmap.Windows1252.EncodeRune(r)
		if !ok {
			c = '?'
		}
		b = append(b, c)
	}
	return string(b)
}
