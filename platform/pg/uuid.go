package pg

import (
	"errors"

	"github.com/google/uuid"
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
// case (the form platform/events validates event ids in). Other spellings PostgreSQL
// accepts (braces, no hyphens) fail here and go as text; so do those it refuses, such as
// the urn: form uuid.Parse would take, which is why only the 36-character form is parsed.
func (encodeUUIDString) Encode(value any, buf []byte) ([]byte, error) {
	s := value.(string)
	if len(s) != 36 {
		return nil, errNotCanonicalUUID
	}
	u, err := uuid.Parse(s)
	if err != nil {
		return nil, errNotCanonicalUUID
	}
	return append(buf, u[:]...), nil
}
