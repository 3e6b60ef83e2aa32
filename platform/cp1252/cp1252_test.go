package cp1252_test

import (
	"testing"

	"github.com/orderflow/orderflow/platform/cp1252"
)

func TestEncode(t *testing.T) {
	for in, want := range map[string]string{
		"Zoë Müller":     "Zo\xeb M\xfcller",
		"Françoise Dœuf": "Fran\xe7oise D\x9cuf",
		"Straße 1, €5":   "Stra\xdfe 1, \x805",
		"東京 ok":          "?? ok",
		"":               "",
	} {
		if got := cp1252.Encode(in); got != want {
			t.Errorf("Encode(%q) = %q, want %q", in, got, want)
		}
	}
}
