package pdfdoc_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/charmap"

	"github.com/orderflow/orderflow/platform/pdfdoc"
)

// sample lays out a page with every font, both borders and text that needs escaping.
func sample(title string) []byte {
	p := pdfdoc.New(pdfdoc.A4, pdfdoc.Info{Title: title, Creator: "orderflow test",
		Created: time.Date(2026, 12, 6, 16, 30, 5, 0, time.UTC)})
	p.SetFont(pdfdoc.HelveticaBold, 18)
	p.Cell(0, 10, "Invoice 2026-000042")
	p.Ln(12)
	p.SetFont(pdfdoc.Helvetica, 11)
	p.Cell(0, 7, "Customer: Zoë Müller (VIP) \\ Straße 1, €5")
	p.Ln(7)
	p.SetFont(pdfdoc.Courier, 11)
	p.CellBorder(40, 8, "SKU", pdfdoc.Bottom)
	p.CellBorder(40, 8, "Qty", pdfdoc.Bottom)
	p.Ln(-1)
	p.SetFont(pdfdoc.CourierBold, 11)
	p.CellBorder(40, 8, "TSHIRT-M", pdfdoc.Top)
	p.CellBorder(40, 8, "3", pdfdoc.Top)
	return p.PDF()
}

// Every object the cross-reference table lists starts where it says, the content stream
// is as long as its dictionary says, and the trailer points at the table.
func TestCrossReferenceTableIsExact(t *testing.T) {
	t.Parallel()
	checkStructure(t, sample("Invoice 2026-000042"))
}

func checkStructure(t *testing.T, doc []byte) {
	t.Helper()
	if !bytes.HasPrefix(doc, []byte("%PDF-1.4\n")) || !bytes.HasSuffix(doc, []byte("%%EOF\n")) {
		t.Fatalf("not a PDF file:\n%q", doc)
	}
	m := regexp.MustCompile(`startxref\n(\d+)\n%%EOF\n$`).FindSubmatch(doc)
	if m == nil {
		t.Fatal("no startxref")
	}
	xref, _ := strconv.Atoi(string(m[1]))
	if !bytes.HasPrefix(doc[xref:], []byte("xref\n0 ")) {
		t.Fatalf("startxref %d points at %q", xref, doc[xref:min(xref+10, len(doc))])
	}
	lines := strings.Split(string(doc[xref:]), "\n")
	count, _ := strconv.Atoi(strings.Fields(lines[1])[1])
	if lines[2] != "0000000000 65535 f " {
		t.Errorf("free entry %q", lines[2])
	}
	for i := 1; i < count; i++ {
		entry := lines[2+i]
		if len(entry)+1 != 20 || !strings.HasSuffix(entry, " 00000 n ") {
			t.Fatalf("entry %d %q is not 20 bytes in use", i, entry)
		}
		off, _ := strconv.Atoi(entry[:10])
		if want := strconv.Itoa(i) + " 0 obj\n"; !bytes.HasPrefix(doc[off:], []byte(want)) {
			t.Errorf("object %d: offset %d points at %q", i, off, doc[off:min(off+12, len(doc))])
		}
	}
	if want := "<< /Size " + strconv.Itoa(count) + " /Root 1 0 R /Info 5 0 R >>"; lines[2+count+1] != want {
		t.Errorf("trailer %q, want %q", lines[2+count+1], want)
	}
	sm := regexp.MustCompile(`(?s)<< /Length (\d+) >>\nstream\n(.*)\nendstream\n`).FindSubmatch(doc)
	if sm == nil {
		t.Fatal("no content stream")
	}
	if n, _ := strconv.Atoi(string(sm[1])); n != len(sm[2]) {
		t.Errorf("content stream /Length %d, stream has %d bytes", n, len(sm[2]))
	}
}

// What poppler's pdftotext extracts is the text laid out, in order, with the characters
// that need escaping or the code page intact; pdfinfo reads the metadata back, including
// a title outside ASCII.
func TestPopplerReadsTextAndMetadata(t *testing.T) {
	t.Parallel()
	doc := sample("Facture Zoë — 😀")
	text := poppler(t, "pdftotext", doc, "-layout")
	for _, want := range []string{"Invoice 2026-000042", "Customer: Zoë Müller (VIP) \\ Straße 1, €5", "SKU", "TSHIRT-M"} {
		if !strings.Contains(text, want) {
			t.Errorf("pdftotext lacks %q:\n%s", want, text)
		}
	}
	if strings.Index(text, "Invoice") > strings.Index(text, "Customer") || strings.Index(text, "SKU") > strings.Index(text, "TSHIRT-M") {
		t.Errorf("lines out of order:\n%s", text)
	}
	info := poppler(t, "pdfinfo", doc)
	for _, want := range []string{"Title:           Facture Zoë — 😀", "Creator:         orderflow test", "Producer:        orderflow pdfdoc",
		"Pages:           1", "Page size:       595.28 x 841.89 pts (A4)", "CreationDate:    Sun Dec  6 16:30:05 2026 UTC"} {
		if !strings.Contains(info, want) {
			t.Errorf("pdfinfo lacks %q:\n%s", want, info)
		}
	}
}

func poppler(t *testing.T, tool string, doc []byte, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Fatalf("%s is missing (apt-get install poppler-utils; scripts/test.sh installs it)", tool)
	}
	f := filepath.Join(t.TempDir(), "doc.pdf")
	if err := os.WriteFile(f, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	args = append(args, f)
	if tool == "pdftotext" {
		args = append(args, "-") // to standard output
	}
	cmd := exec.Command(tool, args...)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("Syntax Error")) {
		t.Fatalf("%s: %v\n%s", tool, err, out)
	}
	return string(out)
}

// Any text is written as a literal string that a PDF reader reads back as the text in
// Windows-1252, '?' for what the code page lacks, and the file stays well formed.
func FuzzTextReadsBack(f *testing.F) {
	for _, s := range []string{"", "plain", "(a) \\b\\ )(", "line\r\nbreak\ttab\x00nul\x7f", "Zoë €5 東京", "\xff\xfe invalid", "\\\\((("} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p := pdfdoc.New(pdfdoc.A6, pdfdoc.Info{Title: s})
		p.Cell(0, 6, s)
		doc := p.PDF()
		checkStructure(t, doc)
		var want []byte
		for _, r := range s {
			c, ok := charmap.Windows1252.EncodeRune(r)
			if !ok || r == '\uFFFD' {
				c = '?'
			}
			want = append(want, c)
		}
		stream := doc[bytes.Index(doc, []byte("stream\n"))+len("stream\n") : bytes.Index(doc, []byte("\nendstream"))]
		if s == "" {
			if bytes.Contains(stream, []byte(" Td ")) {
				t.Fatalf("an empty cell wrote text: %q", stream)
			}
			return
		}
		got, ok := readLiteral(stream[bytes.Index(stream, []byte(" Td "))+len(" Td "):])
		if !ok {
			t.Fatalf("no well-formed literal string in %q", stream)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("text %q reads back as %q, want %q", s, got, want)
		}
	})
}

// readLiteral reads a PDF literal string at the start of b as a reader does: escapes
// resolved, balanced parentheses kept, an unescaped end of line read as a line feed.
func readLiteral(b []byte) ([]byte, bool) {
	if len(b) == 0 || b[0] != '(' {
		return nil, false
	}
	var out []byte
	depth := 1
	for i := 1; i < len(b); i++ {
		switch c := b[i]; c {
		case '\\':
			i++
			if i == len(b) {
				return nil, false
			}
			switch e := b[i]; {
			case e >= '0' && e <= '7':
				v := 0
				for k := 0; k < 3 && i < len(b) && b[i] >= '0' && b[i] <= '7'; k++ {
					v = v*8 + int(b[i]-'0')
					i++
				}
				i--
				out = append(out, byte(v))
			case e == 'n':
				out = append(out, '\n')
			case e == 'r':
				out = append(out, '\r')
			case e == 't':
				out = append(out, '\t')
			case e == 'b':
				out = append(out, '\b')
			case e == 'f':
				out = append(out, '\f')
			default:
				out = append(out, e)
			}
		case '(':
			depth++
			out = append(out, c)
		case ')':
			depth--
			if depth == 0 {
				return out, true
			}
			out = append(out, c)
		case '\r':
			if i+1 < len(b) && b[i+1] == '\n' {
				i++
			}
			out = append(out, '\n')
		default:
			out = append(out, c)
		}
	}
	return nil, false
}

func BenchmarkPage(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sample("Invoice 2026-000042")
	}
}
