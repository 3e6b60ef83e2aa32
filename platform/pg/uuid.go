package pg

import (
	"errors"

	"github.com/jackc/pgx/v5/pgtype"
)

// The suite keeps ids as Go strings and passes batches of them as uuid[] parameters (the
// inbox's event ids, the orders, reservations and shipments a batch locks). pgx's UUID
// codec writes a string only in text format, while uuid's preferred format is binary: for
// every such parameter pgx first tried binary, built an error that formats the whole
// slice with %#v, then encoded it again as text. That was 1.4% of the services' CPU at
// 100 orders/s (session 35's profiles). registerTypes gives each connection a uuid
// codec that writes a canonical UUID string in binary; anything else fails there as
// before, pgx falls back to text, and PostgreSQL accepts or refuses it exactly as it
// would have.

// registerTypes replaces uuid and uuid[] in a connection's type map.
func registerTypes(m *pgtype.Map) {
	u := &pgtype.Type{Name: "uuid", OID: pgtype.UUIDOID, Codec: uuidCodec{}}
	m.RegisterType(u)
	m.RegisterType(&pgtype.Type{Name: "_uuid", OID: pgtype.UUIDArrayOID, Codec: &pgtype.ArrayCodec{ElementType: u}})
}

// uuidCodec is pgx's UUID codec that also writes a Go string in binary format.
type uuidCodec struct{ pgtype.UUIDCodec }

func (c uuidCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if _, ok := value.(string); ok && format == pgtype.BinaryFormatCode {
		return encodeUUIDString{}
	}
	return c.UUIDCodec.PlanEncode(m, oid, format, value)
}

type encodeUUIDString struct{}

var errNotCanonicalUUID = errors.New("not a UUID in canonical form (8-4-4-4-12 hex digits)")

// Encode appends the 16 bytes of a UUID written as 8-4-4-4-12 hex digits, in either
// case. Other spellings PostgreSQL accepts (braces, no hyphens) fail here and go as text.
func (encodeUUIDString) Encode(value any, buf []byte) ([]byte, error) {
	s := value.(string)
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return nil, errNotCanonicalUUID
	}
	var b [16]byte
	for i, j := 0, 0; i < 36; i++ {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			continue
		}
		hi, ok1 := unhex(s[i])
		lo, ok2 := unhex(s[i+1])
		if !ok1 || !ok2 {
			return nil, errNotCanonicalUUID
		}
		b[j] = hi<<4 | lo
		i, j = i+1, j+1
	}
	return append(buf, b[:]...), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
