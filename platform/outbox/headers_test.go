package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/pg/pgtest"
)

// suiteHeaders are the headers an event of the suite carries.
func suiteHeaders() []kgo.RecordHeader {
	return events.Metadata{
		ID: "0b0e5f6a-3c9e-4d8f-9a57-58c2a1e4b1c7", Type: "orderflow.shop.OrderPlaced.v1", Source: "shop",
		Time: time.Date(2026, 12, 6, 13, 0, 0, 123e6, time.UTC), Subject: "ord-1", CorrelationID: "ord-1",
		CausationID: "6f1b3c1e-8f7d-4c8a-b2a9-0e4d2f6a9b10",
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", TraceState: "congo=t61rcWkgMzE",
	}.Headers()
}

// Headers go into the outbox's jsonb column and come back as PostgreSQL prints them;
// the suite's own take the fast path both ways, and anything else still round-trips.
func TestHeadersRoundTripThroughJSONB(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, nil)
	ctx := context.Background()
	odd := []kgo.RecordHeader{
		{Key: "quote", Value: []byte(`say "hi"`)}, {Key: "back\\slash", Value: []byte(`C:\tmp`)},
		{Key: "control", Value: []byte("line\nbreak\ttab\x01")}, {Key: "html", Value: []byte("<a href='x'>&</a>")},
		{Key: "unicode", Value: []byte("Grüße, 注文 🚚")}, {Key: "empty", Value: []byte{}},
	}
	for _, tc := range []struct {
		name string
		hs   []kgo.RecordHeader
		fast bool // whether PostgreSQL's text of it takes the fast path
	}{
		{"the suite's", suiteHeaders(), true},
		{"none", []kgo.RecordHeader{}, true},
		{"escaped and non-ASCII", odd, false},
		{"the suite's and one odd", append(suiteHeaders(), odd[0]), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := encodeHeaders(tc.hs)
			if err != nil {
				t.Fatal(err)
			}
			var viaJSON []header
			if err := json.Unmarshal(raw, &viaJSON); err != nil {
				t.Fatalf("encodeHeaders wrote invalid JSON %s: %v", raw, err)
			}
			var printed string
			if err := pool.QueryRow(ctx, `SELECT $1::text::jsonb::text`, string(raw)).Scan(&printed); err != nil {
				t.Fatal(err)
			}
			if _, ok := decodePlainHeaders([]byte(printed)); ok != tc.fast {
				t.Errorf("fast path taken %v for PostgreSQL's %s, want %v", ok, printed, tc.fast)
			}
			got, err := decodeHeaders([]byte(printed))
			if err != nil {
				t.Fatalf("decode %s: %v", printed, err)
			}
			if !equalHeaders(got, tc.hs) {
				t.Errorf("round trip of %s gave %q, want %q", printed, got, tc.hs)
			}
		})
	}
}

// The fast encoder writes what encoding/json writes.
func TestEncodeHeadersMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	hs := suiteHeaders()
	got, err := encodeHeaders(hs)
	if err != nil {
		t.Fatal(err)
	}
	stored := make([]header, len(hs))
	for i, h := range hs {
		stored[i] = header{Key: h.Key, Value: string(h.Value)}
	}
	want, err := json.Marshal(stored)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("encodeHeaders wrote\n%s\nencoding/json writes\n%s", got, want)
	}
}

// Whatever the fast path accepts, encoding/json reads the same way; what it refuses is
// left to encoding/json, so decodeHeaders reads exactly what encoding/json reads.
func FuzzDecodeHeadersAgreesWithEncodingJSON(f *testing.F) {
	for _, s := range []string{
		`[]`, ` [ ] `, `[{"k": "a", "v": "b"}]`, `[{"k":"a","v":"b"},{"k":"c","v":""}]`,
		`[{"k": "a", "v": "b"}, {"k": "c", "v": "d"}]`, `[{"v": "b", "k": "a"}]`, `[{"k": "a\"", "v": "b"}]`,
		`[{"k": "a", "v": "b"}`, `[{"k": "a", "v": "b"}] x`, `[{"K": "a", "v": "b"}]`, `{"k": "a"}`, `null`,
		`[{"k": "a", "v": "b", "x": 1}]`, `[{"k": "ü", "v": "b"}]`, "[{\"k\": \"a\tb\", \"v\": \"c\"}]",
	} {
		f.Add([]byte(s))
	}
	raw, err := encodeHeaders(suiteHeaders())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Fuzz(func(t *testing.T, raw []byte) {
		var stored []header
		jsonErr := json.Unmarshal(raw, &stored)
		fast, ok := decodePlainHeaders(raw)
		if ok {
			if jsonErr != nil {
				t.Fatalf("fast path read %q, which encoding/json refuses: %v", raw, jsonErr)
			}
			if want := fromStored(stored); !equalHeaders(fast, want) {
				t.Fatalf("fast path read %q as %q, encoding/json as %q", raw, fast, want)
			}
		}
		got, err := decodeHeaders(raw)
		if (err == nil) != (jsonErr == nil) {
			t.Fatalf("decodeHeaders(%q) error %v, encoding/json %v", raw, err, jsonErr)
		}
		if err == nil && !equalHeaders(got, fromStored(stored)) {
			t.Fatalf("decodeHeaders(%q) = %q, encoding/json %q", raw, got, fromStored(stored))
		}
	})
}

// Any header survives encodeHeaders and decodeHeaders.
func FuzzHeadersRoundTrip(f *testing.F) {
	f.Add("ce_id", "0b0e5f6a-3c9e-4d8f-9a57-58c2a1e4b1c7", "tracestate", "")
	f.Add("k\"ey", "va\\lue\n", "<&>", "Grüße")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		hs := []kgo.RecordHeader{{Key: k1, Value: []byte(v1)}, {Key: k2, Value: []byte(v2)}}
		raw, err := encodeHeaders(hs)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeHeaders(raw)
		if err != nil {
			t.Fatalf("decode %s: %v", raw, err)
		}
		// encoding/json writes invalid UTF-8 as U+FFFD, so compare with what it keeps.
		var want []header
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatal(err)
		}
		if !equalHeaders(got, fromStored(want)) {
			t.Fatalf("%q came back as %q", hs, got)
		}
		if plainJSON(k1) && plainJSON(v1) && plainJSON(k2) && plainJSON(v2) && !equalHeaders(got, hs) {
			t.Fatalf("%q came back as %q", hs, got)
		}
	})
}

func fromStored(stored []header) []kgo.RecordHeader {
	hs := make([]kgo.RecordHeader, len(stored))
	for i, h := range stored {
		hs[i] = kgo.RecordHeader{Key: h.Key, Value: []byte(h.Value)}
	}
	return hs
}

func equalHeaders(a, b []kgo.RecordHeader) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || string(a[i].Value) != string(b[i].Value) {
			return false
		}
	}
	return true
}

func BenchmarkHeaders(b *testing.B) {
	hs := suiteHeaders()
	var printed []byte // as PostgreSQL prints jsonb: a space after each colon and comma
	for i, h := range hs {
		if i > 0 {
			printed = append(printed, ", "...)
		}
		printed = fmt.Appendf(printed, `{"k": %q, "v": %q}`, h.Key, h.Value)
	}
	printed = append(append([]byte{'['}, printed...), ']')
	b.Run("encode", func(b *testing.B) {
		for b.Loop() {
			if _, err := encodeHeaders(hs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode/encoding-json", func(b *testing.B) {
		for b.Loop() {
			stored := make([]header, len(hs))
			for i, h := range hs {
				stored[i] = header{Key: h.Key, Value: string(h.Value)}
			}
			if _, err := json.Marshal(stored); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeHeaders(printed); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode/encoding-json", func(b *testing.B) {
		for b.Loop() {
			var stored []header
			if err := json.Unmarshal(printed, &stored); err != nil {
				b.Fatal(err)
			}
			_ = fromStored(stored)
		}
	})
}
