package pg

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// A uuid[] parameter given as Go strings goes in binary on the first attempt when each is
// in canonical form, in either case; any other spelling goes as text, for PostgreSQL to
// judge as before.
func TestUUIDStringsGoInBinaryWhenCanonical(t *testing.T) {
	m := pgtype.NewMap()
	registerTypes(m)
	sd := &pgconn.StatementDescription{ParamOIDs: []uint32{pgtype.UUIDArrayOID}}
	for _, c := range []struct {
		ids    []string
		format int16
	}{
		{[]string{"0b7c6a2e-3f35-4bd7-9b9a-3c3f3e6f0a11", "FFFFFFFF-0000-4000-8000-00000000000A"}, pgtype.BinaryFormatCode},
		{[]string{"0b7c6a2e-3f35-4bd7-9b9a-3c3f3e6f0a11", "{0b7c6a2e-3f35-4bd7-9b9a-3c3f3e6f0a11}"}, pgtype.TextFormatCode},
		{[]string{"0b7c6a2e3f354bd79b9a3c3f3e6f0a11"}, pgtype.TextFormatCode},
		{[]string{"0b7c6a2e-3f35-4bd7-9b9a-3c3f3e6f0a1g"}, pgtype.TextFormatCode},
		{[]string{"0b7c6a2e+3f35-4bd7-9b9a-3c3f3e6f0a11"}, pgtype.TextFormatCode},
	} {
		var b pgx.ExtendedQueryBuilder
		if err := b.Build(m, sd, []any{c.ids}); err != nil {
			t.Fatalf("%q: %v", c.ids, err)
		}
		if b.ParamFormats[0] != c.format {
			t.Errorf("%q went in format %d, want %d", c.ids, b.ParamFormats[0], c.format)
			continue
		}
		if c.format != pgtype.BinaryFormatCode {
			continue
		}
		var back []pgtype.UUID
		if err := m.Scan(pgtype.UUIDArrayOID, pgtype.BinaryFormatCode, b.ParamValues[0], &back); err != nil {
			t.Fatal(err)
		}
		for i, u := range back {
			v, err := u.Value()
			if err != nil {
				t.Fatalf("id %d: %v", i, err)
			}
			if want := c.ids[i]; !strings.EqualFold(v.(string), want) {
				t.Errorf("id %d reads back as %s, want %s", i, v, want)
			}
		}
	}
}

// BenchmarkUUIDArrayParameter encodes a batch's 20 event ids as the inbox insert passes
// them; without registerTypes each encoding failed in binary first.
func BenchmarkUUIDArrayParameter(b *testing.B) {
	ids := make([]string, 20)
	for i := range ids {
		ids[i] = "0b7c6a2e-3f35-4bd7-9b9a-3c3f3e6f0a11"
	}
	sd := &pgconn.StatementDescription{ParamOIDs: []uint32{pgtype.UUIDArrayOID}}
	for _, c := range []struct {
		name     string
		register bool
	}{{"pgx", false}, {"registered", true}} {
		b.Run(c.name, func(b *testing.B) {
			m := pgtype.NewMap()
			if c.register {
				registerTypes(m)
			}
			var qb pgx.ExtendedQueryBuilder
			b.ReportAllocs()
			for b.Loop() {
				if err := qb.Build(m, sd, []any{ids}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
