package outbox

import (
	"bytes"
	"encoding/json"

	"github.com/twmb/franz-go/pkg/kgo"
)

// An outbox row keeps its Kafka headers in a jsonb column, in order:
// [{"k": "ce_id", "v": "..."}, ...], readable with SQL. Every event carries about ten
// of them, and encoding them on Append and decoding them in the relay with encoding/json
// took 3-5% of shop's and billing's CPU in profiles at 100 orders/s (the performance log,
// session 21). Both directions therefore take a fast path for the headers the suite
// writes (printable ASCII without quotes or backslashes: ids, types, times, trace
// contexts), two to five times faster (BenchmarkHeaders), and hand anything else to
// encoding/json, so any valid content still round-trips.

// header is one Kafka header as stored in the outbox row.
type header struct {
	Key   string `json:"k"`
	Value string `json:"v"`
}

// encodeHeaders returns hs as the outbox's JSON array.
func encodeHeaders(hs []kgo.RecordHeader) ([]byte, error) {
	plain := true
	n := 2
	for _, h := range hs {
		plain = plain && plainJSON(h.Key) && plainJSON(h.Value)
		n += len(h.Key) + len(h.Value) + len(`{"k":"","v":""},`)
	}
	if !plain {
		stored := make([]header, len(hs))
		for i, h := range hs {
			stored[i] = header{Key: h.Key, Value: string(h.Value)}
		}
		return json.Marshal(stored)
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, h := range hs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"k":"`...)
		b = append(b, h.Key...)
		b = append(b, `","v":"`...)
		b = append(b, h.Value...)
		b = append(b, `"}`...)
	}
	return append(b, ']'), nil
}

// plainJSON tells whether s is printable ASCII that JSON writes as it is: no quote, no
// backslash, nothing encoding/json would escape for HTML (<, >, &).
func plainJSON[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c > 0x7e, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// decodeHeaders reads the outbox's JSON array as PostgreSQL prints a jsonb value
// ([{"k": "...", "v": "..."}, ...]); what the fast path does not recognise goes to
// encoding/json.
func decodeHeaders(raw []byte) ([]kgo.RecordHeader, error) {
	if hs, ok := decodePlainHeaders(raw); ok {
		return hs, nil
	}
	var stored []header
	if err := json.Unmarshal(raw, &stored); err != nil {
		return nil, err
	}
	hs := make([]kgo.RecordHeader, len(stored))
	for i, h := range stored {
		hs[i] = kgo.RecordHeader{Key: h.Key, Value: []byte(h.Value)}
	}
	return hs, nil
}

// decodePlainHeaders parses raw when it is exactly an array of {"k": ..., "v": ...}
// objects, written compactly or with PostgreSQL's spacing, whose strings are printable
// ASCII without escapes; ok is false for anything else.
func decodePlainHeaders(raw []byte) (hs []kgo.RecordHeader, ok bool) {
	p := plainParser{b: raw}
	if !p.lit("[") {
		return nil, false
	}
	hs = make([]kgo.RecordHeader, 0, 12)
	if p.lit("]") {
		return hs, p.end()
	}
	for {
		var k, v []byte
		if !p.lit("{") || !p.lit(`"k"`) || !p.lit(":") {
			return nil, false
		}
		if k, ok = p.str(); !ok {
			return nil, false
		}
		if !p.lit(",") || !p.lit(`"v"`) || !p.lit(":") {
			return nil, false
		}
		if v, ok = p.str(); !ok {
			return nil, false
		}
		if !p.lit("}") {
			return nil, false
		}
		hs = append(hs, kgo.RecordHeader{Key: string(k), Value: bytes.Clone(v)})
		if p.lit("]") {
			return hs, p.end()
		}
		if !p.lit(",") {
			return nil, false
		}
	}
}

// plainParser reads the shape decodePlainHeaders accepts.
type plainParser struct {
	b []byte
	i int
}

// lit skips spaces, then consumes s if it comes next.
func (p *plainParser) lit(s string) bool {
	for p.i < len(p.b) && p.b[p.i] == ' ' {
		p.i++
	}
	if !bytes.HasPrefix(p.b[p.i:], []byte(s)) {
		return false
	}
	p.i += len(s)
	return true
}

// str consumes a string of printable ASCII without escapes and returns its content, which
// is then exactly what encoding/json would decode.
func (p *plainParser) str() ([]byte, bool) {
	if !p.lit(`"`) {
		return nil, false
	}
	for j := p.i; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			s := p.b[p.i:j]
			p.i = j + 1
			return s, true
		case c == '\\' || c < 0x20 || c > 0x7e:
			return nil, false
		}
	}
	return nil, false
}

// end tells whether nothing but spaces is left.
func (p *plainParser) end() bool {
	for p.i < len(p.b) && p.b[p.i] == ' ' {
		p.i++
	}
	return p.i == len(p.b)
}
